//! `runs/`, one directory per workflow run with live artifacts, and the files of a run: a zip
//! artifact's `NAME.zip` (its `NAME/` directory belongs to the zip view) and an unzipped
//! artifact's `NAME`.

use async_trait::async_trait;

use super::{View, dir_attr};
use crate::filesystem::listing::{RunChild, parse_time};
use crate::filesystem::{
    ArtifactFs, Attr, FileKind, FsError, FsResult, Ino, LISTING_TTL, Node, VOLATILE_TTL,
};

pub struct Runs;

/// The node of a run's child.
pub fn run_child_node(r: usize, c: RunChild) -> (Node, FileKind) {
    match c {
        RunChild::ArtifactDir(id) => (Node::ArtifactDir(r, id), FileKind::Dir),
        RunChild::ArchiveFile(id) => (Node::ArchiveFile(r, id), FileKind::File),
        RunChild::RawFile(id) => (Node::RawFile(r, id), FileKind::File),
    }
}

#[async_trait]
impl View for Runs {
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node> {
        match parent {
            Node::Runs(r) => {
                let run: u64 = name.parse().map_err(|_| FsError::NotFound)?;
                if run.to_string() != name || run == 0 {
                    return Err(FsError::NotFound);
                }
                // Any run resolves by path, listed (it has live artifacts) or not (GitHub
                // knows it: an empty directory).
                if !fs.listing(*r).await?.runs.contains_key(&run)
                    && fs.run_info(*r, run).await?.is_none()
                {
                    return Err(FsError::NotFound);
                }
                Ok(Node::Run(*r, run))
            }
            Node::Run(r, run) => {
                let kids = fs.run_children(*r, *run).await?;
                let (_, c) = kids
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .ok_or(FsError::NotFound)?;
                Ok(run_child_node(*r, c).0)
            }
            _ => Err(FsError::NotDir),
        }
    }

    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr> {
        Ok(match node {
            Node::Runs(r) => {
                let mtime = fs.listing(*r).await?.newest().unwrap_or(fs.mounted_at);
                dir_attr(ino, mtime, LISTING_TTL)
            }
            Node::Run(r, run) => {
                let l = fs.listing(*r).await?;
                let mtime = match l.run_mtime(*run) {
                    Some(t) => t,
                    // A run without live artifacts: when it was last updated.
                    None => {
                        let info = fs.run_info(*r, *run).await?.ok_or(FsError::NotFound)?;
                        parse_time(info.updated_at.as_deref().or(info.created_at.as_deref()))
                            .unwrap_or(fs.mounted_at)
                    }
                };
                dir_attr(ino, mtime, VOLATILE_TTL)
            }
            Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                let a = fs.artifact(*r, *id).await?;
                Attr {
                    ino,
                    kind: FileKind::File,
                    size: a.size_in_bytes,
                    perm: 0o444,
                    mtime: parse_time(a.created_at.as_deref()).unwrap_or(fs.mounted_at),
                    ttl: VOLATILE_TTL,
                }
            }
            _ => return Err(FsError::NotFound),
        })
    }

    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>> {
        let mut out = Vec::new();
        match node {
            Node::Runs(r) => {
                let l = fs.listing(*r).await?;
                // Whoever lists runs/ is likely to look inside the runs next: learn every
                // artifact's kind and read the zips' directories now, a few at a time,
                // instead of run after run.
                fs.read_ahead_runs(*r, &l.artifacts);
                for run in l.runs.keys() {
                    out.push((run.to_string(), Node::Run(*r, *run), FileKind::Dir));
                }
            }
            Node::Run(r, run) => {
                // Files first: `rm -rf runs/RUN` then deletes each artifact by `NAME.zip`
                // before it reaches `NAME/`, which is gone by then (quiet under -f), rather
                // than failing on every entry inside `NAME/`.
                let mut kids = fs.run_children(*r, *run).await?;
                kids.sort_by_key(|(_, c)| matches!(c, RunChild::ArtifactDir(_)));
                for (name, c) in kids {
                    let (node, kind) = run_child_node(*r, c);
                    out.push((name, node, kind));
                }
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(out)
    }

    fn parent(&self, fs: &ArtifactFs, node: &Node) -> Node {
        match *node {
            Node::Runs(r) => Node::Repo(r),
            Node::Run(r, _) => Node::Runs(r),
            Node::ArchiveFile(r, id) | Node::RawFile(r, id) => run_of(fs, r, id),
            _ => Node::Root,
        }
    }
}

/// The run directory an artifact is in (`runs/` when the listing no longer has it).
pub fn run_of(fs: &ArtifactFs, r: usize, id: u64) -> Node {
    let run = fs
        .repo(r)
        .listing
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|l| l.artifact(id).map(|a| a.run_id()));
    match run {
        Some(run) => Node::Run(r, run),
        None => Node::Runs(r),
    }
}
