//! Extended attributes: an artifact's API facts (`user.artifact.*`), a run's
//! (`user.run.*`, from the run metadata), a zip entry's (`user.zip.*`), and for archives
//! inside an artifact `user.archive.contents` (on the file: the name of its `FILE.d/`) and
//! `user.archive.symlink` (a link shown as a file).

use crate::archive::inner::{contents_name, opens_as_archive};
use crate::archive::tree::{ArchiveTree, NodeKind};
use crate::github::Run;

use super::{ArtifactFs, FsResult, Ino, Node};

impl ArtifactFs {
    /// A run directory's `user.run.*` attributes; `None` for any other node.
    pub async fn run_attributes(&self, ino: Ino) -> FsResult<Option<Vec<(String, String)>>> {
        match self.node(ino)? {
            Node::Run(r, run) => Ok(Some(
                (self.run_info(r, run).await?)
                    .map(|info| run_xattrs(&info))
                    .unwrap_or_default(),
            )),
            _ => Ok(None),
        }
    }

    /// Extended attributes of a node: name → value.
    pub async fn xattrs(&self, ino: Ino) -> FsResult<Vec<(String, String)>> {
        let node = self.node(ino)?;
        let mut out = Vec::new();
        match node {
            Node::ArtifactDir(r, id) | Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                let a = self.artifact(r, id).await?;
                let run = a.workflow_run.clone().unwrap_or_default();
                out.push(("user.artifact.id".into(), a.id.to_string()));
                if let Some(d) = &a.digest {
                    out.push(("user.artifact.digest".into(), d.clone()));
                }
                out.push(("user.artifact.run_id".into(), a.run_id().to_string()));
                if let Some(b) = run.head_branch {
                    out.push(("user.artifact.head_branch".into(), b));
                }
                if let Some(s) = run.head_sha {
                    out.push(("user.artifact.head_sha".into(), s));
                }
                if let Some(t) = &a.created_at {
                    out.push(("user.artifact.created_at".into(), t.clone()));
                }
                if let Some(t) = &a.expires_at {
                    out.push(("user.artifact.expires_at".into(), t.clone()));
                }
                out.push(("user.artifact.size".into(), a.size_in_bytes.to_string()));
            }
            Node::Run(r, run) => {
                if let Some(info) = self.run_info(r, run).await? {
                    out.extend(run_xattrs(&info));
                }
            }
            Node::Entry(r, id, n) => {
                let (_, index) = self.archive_index(r, id).await?;
                if let Some(NodeKind::File { entry }) = index.tree.nodes.get(n).map(|t| &t.kind) {
                    let e = &index.cd.entries[*entry];
                    out.push(("user.zip.crc32".into(), format!("{:08x}", e.crc32)));
                    let method = match e.method {
                        0 => "stored".to_string(),
                        8 => "deflated".to_string(),
                        m => m.to_string(),
                    };
                    out.push(("user.zip.method".into(), method));
                    out.push((
                        "user.zip.compressed_size".into(),
                        e.compressed_size.to_string(),
                    ));
                }
                out.extend(contents_xattr(&index.tree, n));
            }
            Node::Inner(a, n) => {
                let archive = self.inner(a).await?;
                if let Some(t) = archive.index.escaping_target(n) {
                    out.push(("user.archive.symlink".into(), t.to_string()));
                } else if archive.index.link_target(n).is_none()
                    && self.inner_depth(a) < crate::archive::inner::MAX_DEPTH
                {
                    out.extend(contents_xattr(&archive.index.tree, n));
                }
            }
            _ => {}
        }
        Ok(out)
    }
}

/// `user.archive.contents` for a file of `tree` that opens at `FILE.d/` (unless a real entry
/// has that name: it wins).
fn contents_xattr(tree: &ArchiveTree, n: usize) -> Option<(String, String)> {
    let t = tree.nodes.get(n)?;
    let contents = contents_name(&t.name);
    (matches!(t.kind, NodeKind::File { .. })
        && opens_as_archive(&t.name)
        && tree.lookup(t.parent, &contents).is_none())
    .then(|| ("user.archive.contents".to_string(), contents))
}

/// A run's `user.run.*` attributes: workflow (file name), name, event, status, conclusion,
/// head_branch, head_sha, attempt, pull_requests (comma-separated numbers, empty for a fork's
/// pull request as the API lists none), url (its page on GitHub). Absent values are left out.
pub fn run_xattrs(run: &Run) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push((format!("user.run.{k}"), v));
        }
    };
    put("workflow", run.workflow_file().map(str::to_string));
    put("name", run.name.clone());
    put("event", run.event.clone());
    put("status", run.status.clone());
    put("conclusion", run.conclusion.clone());
    put("head_branch", run.head_branch.clone());
    put("head_sha", run.head_sha.clone());
    put("attempt", Some(run.attempt().to_string()));
    let prs: Vec<String> = run.pull_numbers().iter().map(u64::to_string).collect();
    put("pull_requests", Some(prs.join(",")));
    put("url", run.html_url.clone());
    out
}
