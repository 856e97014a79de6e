//! Reading: opening a file node, and its reads through the data layer (which fetches,
//! inflates and verifies); whether the kernel may keep a file's pages.

use std::sync::Arc;

use crate::archive::tree::NodeKind;
use crate::cache::BlobKey;
use crate::data::{BlobRef, FileReader, FileSpec};
use crate::github::{Artifact, RepoRef};

use super::{ArtifactFs, FsError, FsResult, Ino, Node, OpenFile, RepoIdx};

impl ArtifactFs {
    /// Opens a file; nothing is fetched until the first read.
    pub async fn open(&self, ino: Ino) -> FsResult<u64> {
        let node = self.node(ino)?;
        match node {
            Node::ArchiveFile(..) | Node::RawFile(..) => {}
            Node::Entry(r, id, n) => {
                let index = self.archive_index(r, id).await?;
                match index.tree.nodes.get(n).map(|t| &t.kind) {
                    Some(NodeKind::File { .. }) => {}
                    Some(NodeKind::Dir { .. }) => return Err(FsError::IsDir),
                    None => return Err(FsError::NotFound),
                }
            }
            Node::LatestLink(..) | Node::BranchLink(..) => return Err(FsError::NotFound),
            _ => return Err(FsError::IsDir),
        }
        let fh = self
            .next_handle
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handles.lock().unwrap().insert(
            fh,
            Arc::new(OpenFile {
                ino,
                node,
                reader: tokio::sync::OnceCell::new(),
            }),
        );
        Ok(fh)
    }

    pub fn release(&self, fh: u64) {
        self.handles.lock().unwrap().remove(&fh);
    }

    /// Up to `size` bytes at `offset` (fewer only at end of file).
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let h = self
            .handles
            .lock()
            .unwrap()
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let reader = h
            .reader
            .get_or_try_init(|| async { self.make_reader(&h.node).await.map(Arc::new) })
            .await?
            .clone();
        let r = reader.read(offset, size).await.map_err(FsError::from);
        if let Err(FsError::Integrity(_)) = &r {
            self.corrupt.lock().unwrap().insert(h.ino);
        }
        r
    }

    /// Whether the kernel may keep a file's pages in its page cache: only once its bytes have
    /// been verified. Until then every read must reach the data layer, where the handle's
    /// check sees every byte it hands out (pages shared through the page cache would let a
    /// second reader finish on bytes only the first one's check saw), and never after they
    /// failed a check.
    pub async fn page_cache_allowed(&self, ino: Ino) -> bool {
        if self.corrupt.lock().unwrap().contains(&ino) {
            return false;
        }
        let Ok(node) = self.node(ino) else {
            return false;
        };
        let Ok((r, id, spec)) = self.file_of(&node).await else {
            return false;
        };
        let Ok(a) = self.artifact(r, id).await else {
            return false;
        };
        let repo = self.repo(r).repo.clone();
        self.data.is_verified(&self.blob_ref(&repo, &a), spec)
    }

    /// Which file of which artifact a file node is.
    async fn file_of(&self, node: &Node) -> FsResult<(RepoIdx, u64, FileSpec)> {
        match *node {
            Node::ArchiveFile(r, id) | Node::RawFile(r, id) => Ok((r, id, FileSpec::Whole)),
            Node::Entry(r, id, n) => {
                let index = self.archive_index(r, id).await?;
                match index.tree.nodes.get(n).map(|t| &t.kind) {
                    Some(NodeKind::File { entry }) => Ok((r, id, FileSpec::Entry(*entry))),
                    _ => Err(FsError::IsDir),
                }
            }
            _ => Err(FsError::IsDir),
        }
    }

    /// The artifact's blob as the data layer sees it.
    pub(super) fn blob_ref(&self, repo: &RepoRef, a: &Artifact) -> BlobRef {
        BlobRef {
            key: blob_key(a),
            len: a.size_in_bytes,
            sha256: a.sha256_hex().map(str::to_ascii_lowercase),
            what: format!("artifact {} ({})", a.id, a.name),
            remote: self.remote.blob(repo, a),
        }
    }

    /// How a file node's bytes are read: the whole blob for the archive and an unzipped
    /// artifact, an entry of it otherwise (the data layer fetches, inflates and verifies).
    async fn make_reader(&self, node: &Node) -> FsResult<FileReader> {
        let (r, id, spec) = self.file_of(node).await?;
        let a = self.artifact(r, id).await?;
        let repo = self.repo(r).repo.clone();
        Ok(self.data.open(&self.blob_ref(&repo, &a), spec).await?)
    }
}

/// Names one version of an artifact's bytes in the cache: the digest, or (for artifacts
/// without one) size and creation time, so a re-uploaded artifact never meets stale bytes.
fn blob_key(a: &Artifact) -> BlobKey {
    let version = match a.sha256_hex() {
        Some(hex) => hex[..32].to_ascii_lowercase(),
        None => {
            let created: String = a
                .created_at
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect();
            format!("s{}-t{}", a.size_in_bytes, created)
        }
    };
    BlobKey { id: a.id, version }
}
