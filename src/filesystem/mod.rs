//! The filesystem core: the contract's tree and semantics as plain async Rust. It knows
//! nothing of FUSE: the adapter (`crate::fuse`) turns each kernel request into one call here
//! and the result into a reply. Tested against an in-memory [`remote::Remote`].

pub mod error;
pub mod inode;
mod kinds;
pub mod listing;
mod metadata;
pub mod names;
pub mod remote;
pub mod statfs;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::archive::tree::NodeKind;
use crate::cache::{BlobKey, DiskCache};
use crate::data::{ArchiveIndex, BlobRef, DataLayer, FileReader, FileSpec};
use crate::github::{ApiError, Artifact, ArtifactKind, RepoRef};

pub use error::{FsError, FsResult};
pub use inode::{Ino, Node, ROOT_INO};
use inode::{InodeTable, RepoIdx};
use kinds::Kinds;
use listing::{RunChild, parse_time};
use metadata::{Remembered, Repos};
use names::{valid_owner, valid_repo};
pub use remote::Remote;

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
    data: DataLayer,
    kinds: Arc<Kinds>,
    cfg: FsConfig,
    inodes: InodeTable,
    repos: Mutex<Repos>,
    remembered: Remembered,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// Files whose bytes failed a check: the kernel must not keep their pages.
    corrupt: Mutex<std::collections::HashSet<Ino>>,
    next_handle: std::sync::atomic::AtomicU64,
    mounted_at: SystemTime,
}

fn dir_attr(ino: Ino, mtime: SystemTime, ttl: Duration) -> Attr {
    Attr {
        ino,
        kind: FileKind::Dir,
        size: 0,
        perm: 0o555,
        mtime,
        ttl,
    }
}

impl ArtifactFs {
    pub fn new(remote: Arc<dyn Remote>, cache: Arc<DiskCache>, cfg: FsConfig) -> ArtifactFs {
        let fs = ArtifactFs {
            kinds: Arc::new(Kinds::load(cache.clone())),
            data: DataLayer::new(cache),
            remote,
            inodes: InodeTable::new(),
            repos: Mutex::new(Repos::default()),
            remembered: Remembered::default(),
            handles: Mutex::new(HashMap::new()),
            corrupt: Mutex::new(std::collections::HashSet::new()),
            next_handle: std::sync::atomic::AtomicU64::new(1),
            mounted_at: SystemTime::now(),
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

    async fn archive_index(
        &self,
        idx: RepoIdx,
        id: u64,
    ) -> FsResult<(Artifact, Arc<ArchiveIndex>)> {
        let a = self.artifact(idx, id).await?;
        let repo = self.repo(idx).repo.clone();
        let index = self.data.index(&self.blob_ref(&repo, &a)).await?;
        Ok((a, index))
    }

    // ----- names -----------------------------------------------------------------------

    fn node(&self, ino: Ino) -> FsResult<Node> {
        self.inodes.node(ino).ok_or(FsError::NotFound)
    }

    /// The node called `name` inside `parent`.
    async fn child(&self, parent: &Node, name: &str) -> FsResult<Node> {
        match parent {
            Node::Root => {
                let owner = name.to_ascii_lowercase();
                // An owner not named on the command line exists only if GitHub says so.
                if !valid_owner(name) || !self.owner_exists(&owner).await? {
                    return Err(FsError::NotFound);
                }
                Ok(Node::Owner(owner))
            }
            Node::Owner(owner) => {
                if !valid_repo(name) {
                    return Err(FsError::NotFound);
                }
                let repo = RepoRef::new(self.owner_display(owner), name);
                let known = self.repos.lock().unwrap().by_key.get(&repo.key()).copied();
                let idx = match known {
                    Some(i) => i,
                    None => self.repo_idx(&repo, false),
                };
                // A repo not named on the command line exists if it can be listed.
                self.listing(idx).await?;
                self.repo_idx(&repo, true);
                Ok(Node::Repo(idx))
            }
            Node::Repo(r) => match name {
                "runs" => Ok(Node::Runs(*r)),
                "latest" => Ok(Node::Latest(*r)),
                "branches" => Ok(Node::Branches(*r)),
                _ => Err(FsError::NotFound),
            },
            Node::Runs(r) => {
                let run: u64 = name.parse().map_err(|_| FsError::NotFound)?;
                if run.to_string() != name || !self.listing(*r).await?.runs.contains_key(&run) {
                    return Err(FsError::NotFound);
                }
                Ok(Node::Run(*r, run))
            }
            Node::Run(r, run) => {
                let kids = self.run_children(*r, *run).await?;
                let (_, c) = kids
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .ok_or(FsError::NotFound)?;
                Ok(match c {
                    RunChild::ArtifactDir(id) => Node::ArtifactDir(*r, id),
                    RunChild::ArchiveFile(id) => Node::ArchiveFile(*r, id),
                    RunChild::RawFile(id) => Node::RawFile(*r, id),
                })
            }
            Node::Latest(r) => {
                let l = self.listing(*r).await?;
                l.latest.get(name).ok_or(FsError::NotFound)?;
                Ok(Node::LatestLink(*r, name.to_string()))
            }
            Node::Branches(r) => {
                let l = self.listing(*r).await?;
                l.branches.get(name).ok_or(FsError::NotFound)?;
                Ok(Node::Branch(*r, name.to_string()))
            }
            Node::Branch(r, b) => {
                let l = self.listing(*r).await?;
                l.branches
                    .get(b)
                    .and_then(|m| m.get(name))
                    .ok_or(FsError::NotFound)?;
                Ok(Node::BranchLink(*r, b.clone(), name.to_string()))
            }
            Node::ArtifactDir(r, id) | Node::Entry(r, id, _) => {
                let dir = match parent {
                    Node::Entry(_, _, n) => *n,
                    _ => 0,
                };
                let (_, index) = self.archive_index(*r, *id).await?;
                if !matches!(
                    index.tree.nodes.get(dir).map(|n| &n.kind),
                    Some(NodeKind::Dir { .. })
                ) {
                    return Err(FsError::NotDir);
                }
                let n = index.tree.lookup(dir, name).ok_or(FsError::NotFound)?;
                Ok(Node::Entry(*r, *id, n))
            }
            Node::ArchiveFile(..)
            | Node::RawFile(..)
            | Node::LatestLink(..)
            | Node::BranchLink(..) => Err(FsError::NotDir),
        }
    }

    fn owner_display(&self, owner_lc: &str) -> String {
        let repos = self.repos.lock().unwrap();
        repos
            .list
            .iter()
            .find(|st| st.repo.owner.eq_ignore_ascii_case(owner_lc))
            .map(|st| st.repo.owner.clone())
            .unwrap_or_else(|| owner_lc.to_string())
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
        let t0 = self.mounted_at;
        Ok(match node {
            Node::Root | Node::Owner(_) => dir_attr(ino, t0, LISTING_TTL),
            Node::Repo(r) | Node::Runs(r) | Node::Latest(r) | Node::Branches(r) => {
                let mtime = self.listing(*r).await?.newest().unwrap_or(t0);
                dir_attr(ino, mtime, LISTING_TTL)
            }
            Node::Run(r, run) => {
                let l = self.listing(*r).await?;
                let mtime = l.run_mtime(*run).ok_or(FsError::NotFound)?;
                dir_attr(ino, mtime, VOLATILE_TTL)
            }
            Node::Branch(r, b) => {
                let l = self.listing(*r).await?;
                let m = l.branches.get(b).ok_or(FsError::NotFound)?;
                let mtime = m
                    .values()
                    .filter_map(|id| parse_time(l.artifact(*id)?.created_at.as_deref()))
                    .max()
                    .unwrap_or(t0);
                dir_attr(ino, mtime, LISTING_TTL)
            }
            Node::ArtifactDir(r, id) => {
                let a = self.artifact(*r, *id).await?;
                dir_attr(
                    ino,
                    parse_time(a.created_at.as_deref()).unwrap_or(t0),
                    VOLATILE_TTL,
                )
            }
            Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                let a = self.artifact(*r, *id).await?;
                Attr {
                    ino,
                    kind: FileKind::File,
                    size: a.size_in_bytes,
                    perm: 0o444,
                    mtime: parse_time(a.created_at.as_deref()).unwrap_or(t0),
                    ttl: VOLATILE_TTL,
                }
            }
            Node::Entry(r, id, n) => {
                let (_, index) = self.archive_index(*r, *id).await?;
                let tn = index.tree.nodes.get(*n).ok_or(FsError::NotFound)?;
                let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(tn.mtime.max(0) as u64);
                match &tn.kind {
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
                }
            }
            Node::LatestLink(..) | Node::BranchLink(..) => {
                let target = self.link_target(node).await?;
                Attr {
                    ino,
                    kind: FileKind::Symlink,
                    size: target.len() as u64,
                    perm: 0o777,
                    mtime: t0,
                    ttl: VOLATILE_TTL,
                }
            }
        })
    }

    async fn link_target(&self, node: &Node) -> FsResult<String> {
        let (r, id, up) = match node {
            Node::LatestLink(r, name) => {
                let l = self.listing(*r).await?;
                (*r, *l.latest.get(name).ok_or(FsError::NotFound)?, "..")
            }
            Node::BranchLink(r, b, name) => {
                let l = self.listing(*r).await?;
                let id = *l
                    .branches
                    .get(b)
                    .and_then(|m| m.get(name))
                    .ok_or(FsError::NotFound)?;
                (*r, id, "../..")
            }
            _ => return Err(FsError::NotFound),
        };
        let l = self.listing(r).await?;
        let (run, name) = l.run_name(id).ok_or(FsError::NotFound)?;
        Ok(format!("{up}/runs/{run}/{name}"))
    }

    pub async fn readlink(&self, ino: Ino) -> FsResult<String> {
        let node = self.node(ino)?;
        self.link_target(&node).await
    }

    /// All entries of a directory (without `.` and `..`), in a stable order.
    pub async fn readdir(&self, ino: Ino) -> FsResult<Vec<DirEntry>> {
        let node = self.node(ino)?;
        let mut out: Vec<(String, Node, FileKind)> = Vec::new();
        match &node {
            Node::Root => {
                let owners: BTreeSet<String> = {
                    let repos = self.repos.lock().unwrap();
                    repos
                        .list
                        .iter()
                        .filter(|s| s.visible.load(std::sync::atomic::Ordering::Relaxed))
                        .map(|s| s.repo.owner.clone())
                        .collect()
                };
                for o in owners {
                    let lc = o.to_ascii_lowercase();
                    out.push((o, Node::Owner(lc), FileKind::Dir));
                }
            }
            Node::Owner(owner) => {
                let repos: Vec<(String, RepoIdx)> = {
                    let repos = self.repos.lock().unwrap();
                    repos
                        .list
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| {
                            s.visible.load(std::sync::atomic::Ordering::Relaxed)
                                && s.repo.owner.eq_ignore_ascii_case(owner)
                        })
                        .map(|(i, s)| (s.repo.name.clone(), i))
                        .collect()
                };
                for (name, i) in repos {
                    out.push((name, Node::Repo(i), FileKind::Dir));
                }
            }
            Node::Repo(r) => {
                out.push(("branches".into(), Node::Branches(*r), FileKind::Dir));
                out.push(("latest".into(), Node::Latest(*r), FileKind::Dir));
                out.push(("runs".into(), Node::Runs(*r), FileKind::Dir));
            }
            Node::Runs(r) => {
                let l = self.listing(*r).await?;
                for run in l.runs.keys() {
                    out.push((run.to_string(), Node::Run(*r, *run), FileKind::Dir));
                }
            }
            Node::Run(r, run) => {
                // Files first: `rm -rf runs/RUN` then deletes each artifact by `NAME.zip`
                // before it reaches `NAME/`, which is gone by then (quiet under -f), rather
                // than failing on every entry inside `NAME/`.
                let mut kids = self.run_children(*r, *run).await?;
                kids.sort_by_key(|(_, c)| matches!(c, RunChild::ArtifactDir(_)));
                for (name, c) in kids {
                    let (node, kind) = match c {
                        RunChild::ArtifactDir(id) => (Node::ArtifactDir(*r, id), FileKind::Dir),
                        RunChild::ArchiveFile(id) => (Node::ArchiveFile(*r, id), FileKind::File),
                        RunChild::RawFile(id) => (Node::RawFile(*r, id), FileKind::File),
                    };
                    out.push((name, node, kind));
                }
            }
            Node::Latest(r) => {
                let l = self.listing(*r).await?;
                for name in l.latest.keys() {
                    out.push((
                        name.clone(),
                        Node::LatestLink(*r, name.clone()),
                        FileKind::Symlink,
                    ));
                }
            }
            Node::Branches(r) => {
                let l = self.listing(*r).await?;
                for b in l.branches.keys() {
                    out.push((b.clone(), Node::Branch(*r, b.clone()), FileKind::Dir));
                }
            }
            Node::Branch(r, b) => {
                let l = self.listing(*r).await?;
                for name in l.branches.get(b).ok_or(FsError::NotFound)?.keys() {
                    out.push((
                        name.clone(),
                        Node::BranchLink(*r, b.clone(), name.clone()),
                        FileKind::Symlink,
                    ));
                }
            }
            Node::ArtifactDir(r, id) | Node::Entry(r, id, _) => {
                let dir = match node {
                    Node::Entry(_, _, n) => n,
                    _ => 0,
                };
                let (_, index) = self.archive_index(*r, *id).await?;
                let tn = index.tree.nodes.get(dir).ok_or(FsError::NotFound)?;
                if !matches!(tn.kind, NodeKind::Dir { .. }) {
                    return Err(FsError::NotDir);
                }
                for &c in index.tree.children(dir) {
                    let child = &index.tree.nodes[c];
                    let kind = match child.kind {
                        NodeKind::Dir { .. } => FileKind::Dir,
                        NodeKind::File { .. } => FileKind::File,
                    };
                    out.push((child.name.clone(), Node::Entry(*r, *id, c), kind));
                }
            }
            Node::ArchiveFile(..)
            | Node::RawFile(..)
            | Node::LatestLink(..)
            | Node::BranchLink(..) => {
                return Err(FsError::NotDir);
            }
        }
        Ok(out
            .into_iter()
            .map(|(name, node, kind)| DirEntry {
                ino: self.inodes.ino(node),
                name,
                kind,
            })
            .collect())
    }

    /// The parent of a directory inode (for `..`).
    pub fn parent_of(&self, ino: Ino) -> Ino {
        let Some(node) = self.inodes.node(ino) else {
            return ROOT_INO;
        };
        let parent = match node {
            Node::Root | Node::Owner(_) => Node::Root,
            Node::Repo(r) => {
                let owner = self.repo(r).repo.owner.to_ascii_lowercase();
                Node::Owner(owner)
            }
            Node::Runs(r) | Node::Latest(r) | Node::Branches(r) => Node::Repo(r),
            Node::Run(r, _) => Node::Runs(r),
            Node::Branch(r, _) => Node::Branches(r),
            Node::ArtifactDir(r, id) | Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                match self
                    .repo(r)
                    .listing
                    .lock()
                    .unwrap()
                    .as_ref()
                    .and_then(|l| l.artifact(id).map(|a| a.run_id()))
                {
                    Some(run) => Node::Run(r, run),
                    None => Node::Runs(r),
                }
            }
            Node::Entry(r, id, _) => Node::ArtifactDir(r, id),
            Node::LatestLink(r, _) => Node::Latest(r),
            Node::BranchLink(r, b, _) => Node::Branch(r, b),
        };
        self.inodes.existing(&parent).unwrap_or(ROOT_INO)
    }

    // ----- reading ---------------------------------------------------------------------

    /// Opens a file; nothing is fetched until the first read.
    pub async fn open(&self, ino: Ino) -> FsResult<u64> {
        let node = self.node(ino)?;
        match node {
            Node::ArchiveFile(..) | Node::RawFile(..) => {}
            Node::Entry(r, id, n) => {
                let (_, index) = self.archive_index(r, id).await?;
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
                let (_, index) = self.archive_index(r, id).await?;
                match index.tree.nodes.get(n).map(|t| &t.kind) {
                    Some(NodeKind::File { entry }) => Ok((r, id, FileSpec::Entry(*entry))),
                    _ => Err(FsError::IsDir),
                }
            }
            _ => Err(FsError::IsDir),
        }
    }

    /// The artifact's blob as the data layer sees it.
    fn blob_ref(&self, repo: &RepoRef, a: &Artifact) -> BlobRef {
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

    // ----- deleting --------------------------------------------------------------------

    /// `rm`: deletes the artifact behind `runs/RUN/NAME.zip` or an unzipped `runs/RUN/NAME`.
    pub async fn unlink(&self, parent: Ino, name: &str) -> FsResult<Vec<Invalidation>> {
        let p = self.node(parent)?;
        if self.cfg.read_only {
            return Err(FsError::ReadOnly("mounted --read-only"));
        }
        match &p {
            Node::Run(..) => match self.child(&p, name).await? {
                Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                    self.delete_artifact(r, id).await
                }
                Node::ArtifactDir(..) => Err(FsError::IsDir),
                _ => Err(FsError::NotFound),
            },
            _ => Err(FsError::ReadOnly("only whole artifacts can be deleted")),
        }
    }

    /// `rmdir`: deletes the artifact behind `runs/RUN/NAME/` (even though it is not empty).
    pub async fn rmdir(&self, parent: Ino, name: &str) -> FsResult<Vec<Invalidation>> {
        let p = self.node(parent)?;
        if self.cfg.read_only {
            return Err(FsError::ReadOnly("mounted --read-only"));
        }
        match &p {
            Node::Run(..) => match self.child(&p, name).await? {
                Node::ArtifactDir(r, id) => self.delete_artifact(r, id).await,
                _ => Err(FsError::NotDir),
            },
            Node::Runs(_) => {
                self.child(&p, name).await?;
                Err(FsError::NotEmpty)
            }
            _ => Err(FsError::ReadOnly("only whole artifacts can be deleted")),
        }
    }

    async fn delete_artifact(&self, r: RepoIdx, id: u64) -> FsResult<Vec<Invalidation>> {
        let st = self.repo(r);
        // Names that point at the artifact now, to tell the kernel after the delete.
        let before = self.listing(r).await?;
        let mut stale = Vec::new();
        if let Some((run, name)) = before.run_name(id) {
            if let Some(run_ino) = self.inodes.existing(&Node::Run(r, run)) {
                if let Ok(kids) = self.run_children(r, run).await {
                    for (n, c) in kids {
                        let cid = match c {
                            RunChild::ArtifactDir(i)
                            | RunChild::ArchiveFile(i)
                            | RunChild::RawFile(i) => i,
                        };
                        if cid == id {
                            stale.push(Invalidation {
                                parent: run_ino,
                                name: n,
                            });
                        }
                    }
                }
            }
            if let Some(latest_ino) = self.inodes.existing(&Node::Latest(r)) {
                if before.latest.get(name) == Some(&id) {
                    stale.push(Invalidation {
                        parent: latest_ino,
                        name: name.to_string(),
                    });
                }
            }
            for (b, m) in &before.branches {
                if m.get(name) == Some(&id) {
                    if let Some(bi) = self.inodes.existing(&Node::Branch(r, b.clone())) {
                        stale.push(Invalidation {
                            parent: bi,
                            name: name.to_string(),
                        });
                    }
                }
            }
        }
        match self.remote.delete_artifact(&st.repo, id).await {
            Ok(()) => {
                st.deletions
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(repo = %st.repo, artifact = id, "deleted artifact");
                {
                    let mut slot = st.listing.lock().unwrap();
                    if let Some(l) = slot.as_ref() {
                        *slot = Some(Arc::new(l.without(id)));
                    }
                }
                self.data.drop_blob(id);
                self.kinds.forget(id);
                Ok(stale)
            }
            Err(e) => {
                if matches!(e, ApiError::NotFound(_)) {
                    // The server says it is gone: believe it at the next look.
                    *st.listing.lock().unwrap() = None;
                }
                Err(e.into())
            }
        }
    }

    // ----- metadata --------------------------------------------------------------------

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
            }
            _ => {}
        }
        Ok(out)
    }

    pub fn kind_hint(&self, id: u64) -> Option<ArtifactKind> {
        self.kinds.get(id)
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

#[cfg(test)]
mod metadata_tests;
#[cfg(test)]
mod tests;
