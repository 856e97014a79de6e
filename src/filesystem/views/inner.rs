//! The contents of an archive inside an artifact (`NAME/dist.tar.gz.d/`, reachable by path,
//! never listed): directories, files, symlinks that stay inside and the rest as empty files,
//! with the modes (write and set-id bits cleared, exec bits kept) and times the archive
//! records. The archive itself is read by the core's `inner` module.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{View, dir_attr};
use crate::archive::tar::MemberKind;
use crate::archive::tree::NodeKind;
use crate::filesystem::inner::Container;
use crate::filesystem::{ArtifactFs, Attr, ENTRY_TTL, FileKind, FsError, FsResult, Ino, Node};

pub struct Inner;

/// The permission bits shown for a recorded mode: no write bit, no set-id or sticky bit.
pub fn shown_perm(mode: u32) -> u16 {
    (mode & 0o555) as u16
}

fn inner_of(node: &Node) -> FsResult<(u32, usize)> {
    match *node {
        Node::Inner(a, n) => Ok((a, n)),
        _ => Err(FsError::NotFound),
    }
}

#[async_trait]
impl View for Inner {
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node> {
        let (a, dir) = inner_of(parent)?;
        let archive = fs.inner(a).await?;
        let tree = &archive.index.tree;
        if !matches!(
            tree.nodes.get(dir).map(|n| &n.kind),
            Some(NodeKind::Dir { .. })
        ) {
            return Err(FsError::NotDir);
        }
        if let Some(n) = tree.lookup(dir, name) {
            return Ok(Node::Inner(a, n));
        }
        let depth = fs.inner_depth(a);
        fs.contents_node(tree, dir, name, |n| Container::Inner(a, n), depth)
            .await
    }

    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr> {
        let (a, n) = inner_of(node)?;
        let archive = fs.inner(a).await?;
        let index = &archive.index;
        let tn = index.tree.nodes.get(n).ok_or(FsError::NotFound)?;
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(tn.mtime.max(0) as u64);
        let member = index.member(n);
        if matches!(tn.kind, NodeKind::Dir { .. }) {
            let mut attr = dir_attr(ino, mtime, ENTRY_TTL);
            if let Some(m) = member {
                attr.perm = shown_perm(m.mode);
            }
            return Ok(attr);
        }
        let m = member.ok_or(FsError::NotFound)?;
        if let Some(target) = index.link_target(n) {
            return Ok(Attr {
                ino,
                kind: FileKind::Symlink,
                size: target.len() as u64,
                perm: 0o777,
                mtime,
                ttl: ENTRY_TTL,
            });
        }
        Ok(Attr {
            ino,
            kind: FileKind::File,
            size: if m.kind == MemberKind::File {
                m.size
            } else {
                0
            },
            perm: shown_perm(m.mode),
            mtime,
            ttl: ENTRY_TTL,
        })
    }

    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>> {
        let (a, dir) = inner_of(node)?;
        let archive = fs.inner(a).await?;
        let index = &archive.index;
        if !matches!(
            index.tree.nodes.get(dir).map(|n| &n.kind),
            Some(NodeKind::Dir { .. })
        ) {
            return Err(FsError::NotDir);
        }
        Ok(index
            .tree
            .children(dir)
            .iter()
            .map(|&c| {
                let kind = match index.tree.nodes[c].kind {
                    NodeKind::Dir { .. } => FileKind::Dir,
                    NodeKind::File { .. } if index.link_target(c).is_some() => FileKind::Symlink,
                    NodeKind::File { .. } => FileKind::File,
                };
                (index.tree.nodes[c].name.clone(), Node::Inner(a, c), kind)
            })
            .collect())
    }

    fn parent(&self, fs: &ArtifactFs, node: &Node) -> Node {
        let Node::Inner(a, n) = *node else {
            return Node::Root;
        };
        if n != 0 {
            let p = fs
                .inner
                .loaded(a)
                .map_or(0, |x| x.index.tree.nodes[n].parent);
            return Node::Inner(a, p);
        }
        match fs.inner.container(a) {
            // As for the zip view's entries: `..` is answered with the artifact's directory.
            Some(Container::Entry(r, id, _)) => Node::ArtifactDir(r, id),
            Some(Container::Inner(b, m)) => {
                let p = fs
                    .inner
                    .loaded(b)
                    .map_or(0, |x| x.index.tree.nodes[m].parent);
                Node::Inner(b, p)
            }
            None => Node::Root,
        }
    }
}

/// The target of a symlink node inside an inner archive.
pub async fn link_target(fs: &ArtifactFs, node: &Node) -> FsResult<String> {
    let (a, n) = inner_of(node)?;
    let archive = fs.inner(a).await?;
    archive
        .index
        .link_target(n)
        .map(str::to_string)
        .ok_or(FsError::NotFound)
}
