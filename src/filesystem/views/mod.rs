//! The tree, one view per room: each view answers lookup, attributes, listing and parent for
//! the nodes it owns. `mod.rs` of the core dispatches a node to its view with [`view`]; a new
//! kind of node means a variant in `inode::Node`, a line in [`view`], and its view's arms.
//!
//! - [`top`]: the root, owners and repositories;
//! - [`runs`]: `runs/`, a run, `NAME.zip` and an unzipped `NAME`;
//! - [`links`]: `latest/` and `branches/` and their symlinks;
//! - [`ci`]: `workflows/`, `commits/` and `pulls/` (from the run metadata) and their symlinks;
//! - [`zip`]: an artifact's directory and the entries inside it.

pub mod ci;
pub mod links;
pub mod runs;
pub mod top;
pub mod zip;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{ArtifactFs, Attr, FileKind, FsResult, Ino, Node};

/// One room of the tree.
#[async_trait]
pub trait View: Sync {
    /// The node called `name` inside `parent` (a directory of this view).
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node>;
    /// The attributes of `node` (numbered `ino`).
    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr>;
    /// The entries of directory `node`: name, node, kind.
    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>>;
    /// The directory `node` is in.
    fn parent(&self, fs: &ArtifactFs, node: &Node) -> Node;
}

/// The view that owns `node`.
pub fn view(node: &Node) -> &'static dyn View {
    match node {
        Node::Root | Node::Owner(_) | Node::Repo(_) => &top::Top,
        Node::Runs(_) | Node::Run(..) | Node::ArchiveFile(..) | Node::RawFile(..) => &runs::Runs,
        Node::Latest(_)
        | Node::Branches(_)
        | Node::Branch(..)
        | Node::LatestLink(..)
        | Node::BranchLink(..) => &links::Links,
        Node::ArtifactDir(..) | Node::Entry(..) => &zip::Zip,
        Node::Workflows(_)
        | Node::Workflow(..)
        | Node::WorkflowBranches(..)
        | Node::WorkflowBranch(..)
        | Node::WorkflowLink(..)
        | Node::Commits(_)
        | Node::Commit(..)
        | Node::CommitLink(..)
        | Node::Pulls(_)
        | Node::Pull(..)
        | Node::PullLink(..) => &ci::Ci,
    }
}

/// A directory's attributes.
/// A symlink's attributes: its size is its target's length.
pub fn link_attr(ino: Ino, target: &str, mtime: SystemTime, ttl: Duration) -> Attr {
    Attr {
        ino,
        kind: FileKind::Symlink,
        size: target.len() as u64,
        perm: 0o777,
        mtime,
        ttl,
    }
}

pub fn dir_attr(ino: Ino, mtime: SystemTime, ttl: Duration) -> Attr {
    Attr {
        ino,
        kind: FileKind::Dir,
        size: 0,
        perm: 0o555,
        mtime,
        ttl,
    }
}
