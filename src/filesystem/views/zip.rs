//! A zip artifact's directory (`runs/RUN/NAME/`) and the entries inside it: directories
//! synthesized from the paths of the archive's central directory (its sanitized tree), files
//! with their uncompressed sizes, modes and times.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::runs::run_of;
use super::{View, dir_attr};
use crate::archive::tree::NodeKind;
use crate::filesystem::listing::parse_time;
use crate::filesystem::{
    ArtifactFs, Attr, ENTRY_TTL, FileKind, FsError, FsResult, Ino, Node, VOLATILE_TTL,
};

pub struct Zip;

/// (repo, artifact, tree node) of a zip-view directory node.
fn dir_of(node: &Node) -> Option<(usize, u64, usize)> {
    match *node {
        Node::ArtifactDir(r, id) => Some((r, id, 0)),
        Node::Entry(r, id, n) => Some((r, id, n)),
        _ => None,
    }
}

#[async_trait]
impl View for Zip {
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node> {
        let (r, id, dir) = dir_of(parent).ok_or(FsError::NotDir)?;
        let index = fs.archive_index(r, id).await?;
        if !matches!(
            index.tree.nodes.get(dir).map(|n| &n.kind),
            Some(NodeKind::Dir { .. })
        ) {
            return Err(FsError::NotDir);
        }
        let n = index.tree.lookup(dir, name).ok_or(FsError::NotFound)?;
        Ok(Node::Entry(r, id, n))
    }

    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr> {
        let (r, id, n) = dir_of(node).ok_or(FsError::NotFound)?;
        if n == 0 {
            let a = fs.artifact(r, id).await?;
            let mtime = parse_time(a.created_at.as_deref()).unwrap_or(fs.mounted_at);
            return Ok(dir_attr(ino, mtime, VOLATILE_TTL));
        }
        let index = fs.archive_index(r, id).await?;
        let tn = index.tree.nodes.get(n).ok_or(FsError::NotFound)?;
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(tn.mtime.max(0) as u64);
        Ok(match &tn.kind {
            NodeKind::Dir { .. } => dir_attr(ino, mtime, ENTRY_TTL),
            NodeKind::File { entry } => {
                let e = &index.cd.entries[*entry];
                let exec = e.unix_mode().is_some_and(|m| m & 0o111 != 0);
                Attr {
                    ino,
                    kind: FileKind::File,
                    size: e.uncompressed_size,
                    perm: if exec { 0o555 } else { 0o444 },
                    mtime,
                    ttl: ENTRY_TTL,
                }
            }
        })
    }

    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>> {
        let (r, id, dir) = dir_of(node).ok_or(FsError::NotDir)?;
        let index = fs.archive_index(r, id).await?;
        let tn = index.tree.nodes.get(dir).ok_or(FsError::NotFound)?;
        if !matches!(tn.kind, NodeKind::Dir { .. }) {
            return Err(FsError::NotDir);
        }
        Ok(index
            .tree
            .children(dir)
            .iter()
            .map(|&c| {
                let child = &index.tree.nodes[c];
                let kind = match child.kind {
                    NodeKind::Dir { .. } => FileKind::Dir,
                    NodeKind::File { .. } => FileKind::File,
                };
                (child.name.clone(), Node::Entry(r, id, c), kind)
            })
            .collect())
    }

    fn parent(&self, fs: &ArtifactFs, node: &Node) -> Node {
        match *node {
            Node::ArtifactDir(r, id) => run_of(fs, r, id),
            // Entries' directories are found through the tree; `..` of any entry directory
            // is answered with the artifact's directory, as before.
            Node::Entry(r, id, _) => Node::ArtifactDir(r, id),
            _ => Node::Root,
        }
    }
}
