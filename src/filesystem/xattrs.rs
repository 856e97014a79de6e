//! Extended attributes: an artifact's API facts (`user.artifact.*`), a run's (`user.run.*`,
//! from the run metadata), a zip entry's (`user.zip.*`), and for archives inside an artifact
//! `user.archive.contents` (on the file: the name of its `FILE.d/`) and
//! `user.archive.symlink` (a link shown as a file). No name outside `user.` ever exists ([`may_exist`]), so the
//! `security.selinux` and `system.posix_acl_access` that `ls -l`, `cp -a` and file managers
//! ask of every file are answered without looking at the node. The rest comes from what the
//! node's listing holds ([`super::held`]): [`ArtifactFs::xattrs_now`] answers without
//! waiting when it is there, [`ArtifactFs::xattrs`] loads it first when it is not.

use std::sync::{Arc, LazyLock};

use crate::archive::inner::{MAX_DEPTH, contents_name, opens_as_archive};
use crate::archive::tree::{ArchiveTree, NodeKind};
use crate::data::ArchiveIndex;
use crate::github::Run;

use super::held::Xattrs;
use super::inner::InnerArchive;
use super::{ArtifactFs, FsError, FsResult, Ino, Node};

static NONE: LazyLock<Xattrs> = LazyLock::new(|| Arc::from(Vec::new()));

/// Whether an attribute called `name` can exist on any node of this filesystem.
#[cfg_attr(not(feature = "fuse"), allow(dead_code))]
pub fn may_exist(name: &str) -> bool {
    name.starts_with("user.")
}

impl ArtifactFs {
    /// A run directory's `user.run.*` attributes; `None` for any other node.
    pub async fn run_attributes(&self, ino: Ino) -> FsResult<Option<Vec<(String, String)>>> {
        match self.node(ino)? {
            Node::Run(r, run) | Node::LogRun(r, run, _) => Ok(Some(
                (self.run_info(r, run).await?)
                    .map(|info| run_xattrs(&info))
                    .unwrap_or_default(),
            )),
            _ => Ok(None),
        }
    }

    /// The node's extended attributes if memory has them now: `None` when a listing or a
    /// central directory must be loaded first (or a listing is due for a refresh), which only
    /// [`Self::xattrs`] may wait for. Never waits, never fetches; takes a few short locks.
    pub fn xattrs_now(&self, ino: Ino) -> Option<FsResult<Xattrs>> {
        let node = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        match node {
            Node::ArtifactDir(r, id) | Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                let l = self.listing_now(r)?;
                Some(
                    l.held(id)
                        .map(|h| h.xattrs.clone())
                        .ok_or(FsError::NotFound),
                )
            }
            // A run's metadata, or a log archive's index, may have to be fetched: the
            // runtime's.
            Node::Run(..) | Node::LogRun(..) | Node::LogEntry(..) => None,
            Node::Entry(r, id, n) => {
                let l = self.listing_now(r)?;
                let Some(held) = l.held(id) else {
                    return Some(Err(FsError::NotFound));
                };
                Some(Ok(entry_xattrs(held.index.get()?, n)))
            }
            Node::Inner(a, n) => {
                let archive = self.inner.loaded(a)?;
                Some(Ok(inner_xattrs(&archive, n, self.inner_depth(a))))
            }
            _ => Some(Ok(NONE.clone())),
        }
    }

    /// Extended attributes of a node: name → value. Loads what [`Self::xattrs_now`] lacks.
    pub async fn xattrs(&self, ino: Ino) -> FsResult<Xattrs> {
        if let Some(answer) = self.xattrs_now(ino) {
            return answer;
        }
        match self.node(ino)? {
            Node::ArtifactDir(r, id) | Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                let l = self.listing(r).await?;
                Ok(l.held(id).ok_or(FsError::NotFound)?.xattrs.clone())
            }
            Node::Run(r, run) | Node::LogRun(r, run, _) => {
                Ok(match self.run_info(r, run).await? {
                    Some(info) => Arc::from(run_xattrs(&info)),
                    None => NONE.clone(),
                })
            }
            Node::Entry(r, id, n) => {
                let index = self.archive_index(r, id).await?;
                Ok(entry_xattrs(&index, n))
            }
            Node::LogEntry(r, run, attempt, n) => {
                let (_, index) = self.log_archive(r, run, attempt).await?;
                Ok(entry_xattrs(&index, n))
            }
            Node::Inner(a, n) => {
                let archive = self.inner(a).await?;
                Ok(inner_xattrs(&archive, n, self.inner_depth(a)))
            }
            _ => Ok(NONE.clone()),
        }
    }
}

/// A zip entry's attributes (a directory inside a zip has none), from its central
/// directory record.
fn entry_xattrs(index: &ArchiveIndex, n: usize) -> Xattrs {
    let Some(NodeKind::File { entry }) = index.tree.nodes.get(n).map(|t| &t.kind) else {
        return NONE.clone();
    };
    let e = &index.cd.entries[*entry];
    let method = match e.method {
        0 => "stored".to_string(),
        8 => "deflated".to_string(),
        m => m.to_string(),
    };
    let mut out = vec![
        ("user.zip.crc32".to_string(), format!("{:08x}", e.crc32)),
        ("user.zip.method".to_string(), method),
        (
            "user.zip.compressed_size".to_string(),
            e.compressed_size.to_string(),
        ),
    ];
    out.extend(contents_xattr(&index.tree, n));
    Arc::from(out)
}

/// A node inside an inner archive (at level `depth`): `user.archive.symlink` on a link shown
/// as a file, `user.archive.contents` on an archive file that opens (below level 4).
fn inner_xattrs(archive: &InnerArchive, n: usize, depth: usize) -> Xattrs {
    let index = &archive.index;
    let mut out = Vec::new();
    if let Some(t) = index.escaping_target(n) {
        out.push(("user.archive.symlink".to_string(), t.to_string()));
    } else if index.link_target(n).is_none() && depth < MAX_DEPTH {
        out.extend(contents_xattr(&index.tree, n));
    }
    Arc::from(out)
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
