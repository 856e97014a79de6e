//! The filesystem core: the tree and semantics of docs/semantics.md as plain async Rust. It
//! knows nothing of FUSE: the adapter (`crate::fuse`) turns each kernel request into one call
//! here and the result into a reply. Tested against an in-memory [`Remote`]
//! (`github::memory_remote`).

mod deleting;
pub mod error;
pub mod held;
pub mod inner;
pub mod inode;
pub mod listing;
mod logs;
mod meta_map;
mod metadata;
pub mod names;
mod probes;
mod reading;
pub mod run_meta;
pub mod statfs;
pub mod views;
pub mod xattrs;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::cache::DiskCache;
use crate::data::{ArchiveIndex, DataLayer, FileReader};
use crate::github::{Artifact, RepoRef};
use crate::stats::{Stats, Status};

pub use crate::github::Remote;
pub use error::{FsError, FsResult};
pub use inode::{Ino, Node, ROOT_INO};
use inode::{InodeTable, RepoIdx};
use meta_map::MetaMap;
use metadata::{Remembered, Repos};
use views::view;

/// Kernel cache lifetime for things inside a zip (they never change).
pub const ENTRY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Kernel cache lifetime for listing directories (owners, repos, runs/, latest/, branches/).
pub const LISTING_TTL: Duration = Duration::from_secs(1);
/// Kernel cache lifetime for the names one `rm` removes (a run, an artifact's `NAME/`,
/// `NAME.zip`, `NAME`, its `latest/` and `branches/` links): none. The kernel asks again on
/// every path walk, answered from the in-memory listing, so a deleted artifact is gone from
/// every view at once. (Invalidating these names before replying to the unlink would
/// deadlock on the parent directory's lock; after the reply it would race the next stat.)
pub const VOLATILE_TTL: Duration = Duration::ZERO;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    Symlink,
}

#[derive(Clone, Debug)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits (never any write bit).
    pub perm: u16,
    pub mtime: SystemTime,
    /// How long the kernel may cache this attribute and the entry naming it.
    pub ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: Ino,
    pub name: String,
    pub kind: FileKind,
}

/// A name the kernel may still have cached that no longer exists (after a delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalidation {
    pub parent: Ino,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct FsConfig {
    pub repos: Vec<RepoRef>,
    pub metadata_ttl: Duration,
    pub read_only: bool,
}

/// An open file: the cached local copy it reads from, opened on first read.
struct OpenFile {
    ino: Ino,
    node: Node,
    reader: tokio::sync::OnceCell<Arc<FileReader>>,
}

pub struct ArtifactFs {
    remote: Arc<dyn Remote>,
    data: Arc<DataLayer>,
    probes: Arc<probes::Prober>,
    cfg: FsConfig,
    inodes: InodeTable,
    repos: Mutex<Repos>,
    remembered: Remembered,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// Archives inside artifacts opened at `FILE.d/` (see [`inner`]).
    inner: inner::InnerArchives,
    /// Each log blob's length and `ETag` as the blob host gave them (see [`logs`]).
    log_lengths: Arc<MetaMap<String, (u64, Option<String>)>>,
    /// Files whose bytes failed a check: the kernel must not keep their pages.
    corrupt: Mutex<std::collections::HashSet<Ino>>,
    next_handle: std::sync::atomic::AtomicU64,
    mounted_at: SystemTime,
    stats: Arc<Stats>,
}

/// Artifacts whose kind (zip or raw) the cache remembers: under 1 MiB of `meta/kinds.json`.
const KINDS_KEPT: usize = 20_000;
/// Log blobs whose length and `ETag` the cache remembers: about 1 MiB of
/// `meta/log-lengths.json`.
const LOG_LENGTHS_KEPT: usize = 8_000;

impl ArtifactFs {
    /// Writes what the metadata maps learnt and have not written yet (they write a second
    /// after a change): at unmount, and at the end of `serve`.
    pub fn persist_metadata(&self) {
        self.probes.persist();
        self.log_lengths.flush();
    }

    /// The core over `remote`; what it does is counted in `stats` (see [`crate::stats`]).
    pub fn new(
        remote: Arc<dyn Remote>,
        cache: Arc<DiskCache>,
        cfg: FsConfig,
        stats: Arc<Stats>,
    ) -> ArtifactFs {
        let fs = ArtifactFs {
            probes: Arc::new(probes::Prober::new(
                remote.clone(),
                Arc::new(MetaMap::load(cache.clone(), "kinds.json", KINDS_KEPT)),
                cfg.metadata_ttl,
            )),
            log_lengths: Arc::new(MetaMap::load(
                cache.clone(),
                "log-lengths.json",
                LOG_LENGTHS_KEPT,
            )),
            data: Arc::new(DataLayer::new(cache, stats.clone())),
            remote,
            inodes: InodeTable::new(),
            repos: Mutex::new(Repos::default()),
            remembered: Remembered::default(),
            handles: Mutex::new(HashMap::new()),
            inner: inner::InnerArchives::default(),
            corrupt: Mutex::new(std::collections::HashSet::new()),
            next_handle: std::sync::atomic::AtomicU64::new(1),
            mounted_at: SystemTime::now(),
            stats,
            cfg,
        };
        for r in fs.cfg.repos.clone() {
            fs.repo_idx(&r, true);
        }
        fs
    }

    pub fn cache(&self) -> &Arc<DiskCache> {
        self.data.cache()
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// What this core is doing now: the snapshot the front ends serve.
    pub fn status(&self) -> Status {
        let repos = self.visible_repos().iter().map(|r| r.to_string()).collect();
        Status::of(&self.stats, self.cache(), repos)
    }

    pub fn inode_count(&self) -> usize {
        self.inodes.len()
    }

    // ----- repositories and listings: see `metadata` --------------------------------

    async fn artifact(&self, idx: RepoIdx, id: u64) -> FsResult<Artifact> {
        self.listing(idx)
            .await?
            .artifact(id)
            .cloned()
            .ok_or(FsError::NotFound)
    }

    /// A zip artifact's central directory and tree: held by its listing once read, so
    /// every later lookup, attribute and listing inside the artifact is answered from memory.
    async fn archive_index(&self, idx: RepoIdx, id: u64) -> FsResult<Arc<ArchiveIndex>> {
        let l = self.listing(idx).await?;
        let a = l.artifact(id).ok_or(FsError::NotFound)?;
        if let Some(index) = l.held.of(a).index.get() {
            return Ok(index.clone());
        }
        let repo = self.repo(idx).repo.clone();
        let index = self.data.index(&self.blob_ref(&repo, a)).await?;
        l.held.keep_index(a, &index);
        Ok(index)
    }

    /// What listing `runs/` starts in the background: see [`probes::Prober::read_ahead_in_background`].
    /// Each artifact is taken on once ([`probes::Prober::claim_for_read_ahead`]).
    fn read_ahead_runs(&self, idx: RepoIdx, artifacts: &[Artifact]) {
        let new = self
            .probes
            .claim_for_read_ahead(artifacts.iter().map(|a| a.id));
        if new.is_empty() {
            return;
        }
        let repo = self.repo(idx).repo.clone();
        let blobs = artifacts
            .iter()
            .filter(|a| new.contains(&a.id))
            .map(|a| (a.id, self.blob_ref(&repo, a)))
            .collect();
        self.probes
            .read_ahead_in_background(repo, blobs, self.data.clone());
    }

    // ----- names -----------------------------------------------------------------------

    fn node(&self, ino: Ino) -> FsResult<Node> {
        self.inodes.node(ino).ok_or(FsError::NotFound)
    }

    /// The node called `name` inside `parent`.
    async fn child(&self, parent: &Node, name: &str) -> FsResult<Node> {
        view(parent).child(self, parent, name).await
    }

    // ----- operations ------------------------------------------------------------------

    pub async fn lookup(&self, parent: Ino, name: &str) -> FsResult<Attr> {
        let p = self.node(parent)?;
        let node = self.child(&p, name).await?;
        let ino = self.inodes.ino(node.clone());
        self.attr_of(ino, &node).await
    }

    pub async fn getattr(&self, ino: Ino) -> FsResult<Attr> {
        let node = self.node(ino)?;
        self.attr_of(ino, &node).await
    }

    async fn attr_of(&self, ino: Ino, node: &Node) -> FsResult<Attr> {
        view(node).attr(self, ino, node).await
    }

    pub async fn readlink(&self, ino: Ino) -> FsResult<String> {
        let node = self.node(ino)?;
        if let Node::Inner(..) = node {
            return views::inner::link_target(self, &node).await;
        }
        views::links::link_target(self, &node).await
    }

    /// All entries of a directory (without `.` and `..`), in a stable order.
    pub async fn readdir(&self, ino: Ino) -> FsResult<Vec<DirEntry>> {
        let node = self.node(ino)?;
        let entries = view(&node).list(self, &node).await?;
        Ok(entries
            .into_iter()
            .map(|(name, node, kind)| DirEntry {
                ino: self.inodes.ino(node),
                name,
                kind,
            })
            .collect())
    }

    /// A directory's entries with their attributes, in one pass over what the listing (and
    /// inside an artifact, its held index) has in memory: what `serve` formats. An entry
    /// whose attributes fail (gone since the listing) is left out.
    pub async fn readdir_plus(&self, ino: Ino) -> FsResult<Vec<(DirEntry, Attr)>> {
        let node = self.node(ino)?;
        let entries = view(&node).list(self, &node).await?;
        let mut out = Vec::with_capacity(entries.len());
        for (name, node, kind) in entries {
            let ino = self.inodes.ino(node.clone());
            if let Ok(a) = self.attr_of(ino, &node).await {
                out.push((DirEntry { ino, name, kind }, a));
            }
        }
        Ok(out)
    }

    /// The parent of a directory inode (for `..`).
    pub fn parent_of(&self, ino: Ino) -> Ino {
        let Some(node) = self.inodes.node(ino) else {
            return ROOT_INO;
        };
        let parent = view(&node).parent(self, &node);
        self.inodes.existing(&parent).unwrap_or(ROOT_INO)
    }
}

#[cfg(test)]
mod deflate_seal_tests;
#[cfg(test)]
mod fallback_tests;
#[cfg(test)]
mod held_tests;
#[cfg(test)]
mod inner_gib_tests;
#[cfg(test)]
mod inner_heal_tests;
#[cfg(test)]
mod inner_tests;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod metadata_tests;
#[cfg(test)]
mod reftests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod view_tests;
