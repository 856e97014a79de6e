//! Archives inside an artifact, as the core keeps them: each archive file that has been
//! opened at `FILE.d/` gets a number (its [`Container`]: the file it is, a zip artifact's
//! entry or a member of another inner archive) and, once read, its index and the byte source
//! it reads through (the holding file's own reader, so fetching, inflating and checks are
//! the data layer's as for any `cat`). The index is read once per mount, shared by every
//! caller (a failure is not remembered: the next lookup tries again). Parsing lives in
//! `archive::inner`; the nodes in `views::inner`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use crate::archive::inner::{InnerIndex, MAX_DEPTH, archive_of_contents, read_index};
use crate::archive::tar::MemberKind;
use crate::archive::tree::{ArchiveTree, NodeKind};
use crate::data::FileReader;
use crate::data::file_source::FileSource;
use crate::source::ByteSource;

use super::{ArtifactFs, FsError, FsResult, Node, RepoIdx};

/// The file an inner archive is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    /// A file of a zip artifact: (repo, artifact id, tree node).
    Entry(RepoIdx, u64, usize),
    /// A member of another inner archive: (its number, tree node).
    Inner(u32, usize),
}

impl Container {
    /// The file's node.
    pub fn node(&self) -> Node {
        match *self {
            Container::Entry(r, id, n) => Node::Entry(r, id, n),
            Container::Inner(a, n) => Node::Inner(a, n),
        }
    }
}

/// An inner archive once read: its index and its bytes.
pub struct InnerArchive {
    pub index: InnerIndex,
    pub source: Arc<dyn ByteSource>,
}

#[derive(Clone)]
struct Slot {
    container: Container,
    /// The level its `FILE.d/` is at (the artifact is 0).
    depth: usize,
    cell: Arc<OnceCell<Arc<InnerArchive>>>,
}

/// Every inner archive named so far, numbered in order.
#[derive(Default)]
pub struct InnerArchives {
    table: Mutex<(HashMap<Container, u32>, Vec<Slot>)>,
}

impl InnerArchives {
    fn number(&self, container: Container, depth: usize) -> u32 {
        let mut t = self.table.lock().unwrap();
        if let Some(&n) = t.0.get(&container) {
            return n;
        }
        let n = t.1.len() as u32;
        t.1.push(Slot {
            container: container.clone(),
            depth,
            cell: Arc::default(),
        });
        t.0.insert(container, n);
        n
    }

    fn slot(&self, n: u32) -> Option<Slot> {
        self.table.lock().unwrap().1.get(n as usize).cloned()
    }

    /// The file inner archive `n` is.
    pub fn container(&self, n: u32) -> Option<Container> {
        self.slot(n).map(|s| s.container)
    }

    /// Inner archive `n` if it has been read.
    pub fn loaded(&self, n: u32) -> Option<Arc<InnerArchive>> {
        self.slot(n)?.cell.get().cloned()
    }
}

impl ArtifactFs {
    /// Inner archive `n`, read on first use.
    /// (Boxed: the holding file may itself be a member of an inner archive.)
    pub(super) fn inner(&self, n: u32) -> BoxFuture<'_, FsResult<Arc<InnerArchive>>> {
        Box::pin(self.read_inner(n))
    }

    async fn read_inner(&self, n: u32) -> FsResult<Arc<InnerArchive>> {
        let slot = self.inner.slot(n).ok_or(FsError::NotFound)?;
        slot.cell
            .get_or_try_init(|| async {
                let reader = self.make_reader(&slot.container.node()).await?;
                let source: Arc<dyn ByteSource> = Arc::new(FileSource::new(Arc::new(reader)));
                let index = read_index(source.as_ref()).await?;
                tracing::debug!(
                    archive = n,
                    members = index.members.len(),
                    "read an archive inside an artifact"
                );
                Ok::<_, FsError>(Arc::new(InnerArchive { index, source }))
            })
            .await
            .cloned()
    }

    /// `NAME.d` in a directory whose tree is `tree` (node `dir`), when `NAME` is an archive
    /// file there and no real entry is called `NAME.d`: the root of its contents, read now
    /// (a corrupt archive is EIO here, a file that is no archive by name ENOENT).
    pub(super) async fn contents_node(
        &self,
        tree: &ArchiveTree,
        dir: usize,
        name: &str,
        file: impl Fn(usize) -> Container,
        depth: usize,
    ) -> FsResult<Node> {
        let archive = archive_of_contents(name).ok_or(FsError::NotFound)?;
        let n = tree.lookup(dir, archive).ok_or(FsError::NotFound)?;
        if !matches!(tree.nodes[n].kind, NodeKind::File { .. }) || depth + 1 > MAX_DEPTH {
            return Err(FsError::NotFound);
        }
        let number = self.inner.number(file(n), depth + 1);
        self.inner(number).await?;
        Ok(Node::Inner(number, 0))
    }

    /// The level inner archive `n`'s contents are at.
    pub(super) fn inner_depth(&self, n: u32) -> usize {
        self.inner.slot(n).map_or(MAX_DEPTH, |s| s.depth)
    }

    /// A reader of member node `node` of inner archive `n`: its bytes within the archive's
    /// (an empty file for devices, fifos and links shown as files).
    pub(super) async fn inner_reader(&self, n: u32, node: usize) -> FsResult<FileReader> {
        let a = self.inner(n).await?;
        let t = a.index.tree.nodes.get(node).ok_or(FsError::NotFound)?;
        if matches!(t.kind, NodeKind::Dir { .. }) {
            return Err(FsError::IsDir);
        }
        let m = a.index.member(node).ok_or(FsError::NotFound)?;
        Ok(match m.kind {
            MemberKind::File => FileReader::over(a.source.clone(), m.offset, m.size),
            _ => FileReader::over(a.source.clone(), 0, 0),
        })
    }
}
