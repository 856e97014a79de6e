//! The disk cache: blob blocks, inflated zip entries and small metadata files, under one
//! directory (mode 0700, files 0600), bounded by `--cache-size` (and kept clear of
//! `--cache-min-free`) with least-recently-used eviction. It knows nothing of GitHub: blobs
//! are named by opaque [`BlobKey`]s, metadata by file name.
//!
//! Layout:
//! ```text
//! CACHE_DIR/
//!   tmp/                         files being written (renamed into place when complete)
//!   entries/a{id}-{version}.*    seek points and inner archives' indexes (see `entries`)
//!   blocks/a{id}-{version}.data  the blob's bytes fetched so far (sparse; see `blocks`)
//!   blocks/a{id}-{version}.map   which 128 KiB blocks of it are present, their checksums,
//!                                seals and sealed pieces (see `block_map`)
//!   blocks/a{id}-{version}-e{n}.*  zip entry n inflated (`data::inflated_copy`), the same way
//!   meta/NAME                    small remembered answers (e.g. which artifacts are zips)
//!   artifactfs.log[.1]           a background mount's log (capped; see `crate::logfile`)
//! ```
//! Everything under the directory counts against the cap: the directories themselves (fixed
//! space at their size on disk, refreshed whenever a file is created in one, a directory
//! growing by at most [`DIR_GROWTH`] reserved with the file), blocks, block maps and entries (one
//! LRU list; an evicted block is a hole punched in its data file; a blob's map, with the
//! allocation unit of its data file, is used whenever one of its blocks is, so it is evicted
//! after the last of them, and with it the whole blob), metadata files (not evicted, counted
//! as they are) and the log's fixed budget. Every write is reserved before it is made (see
//! `reserve`), so the cap holds at every moment. Writing is best effort: a write that finds
//! no room beside what reads in flight pin is not made, and a write that fails (ENOSPC,
//! EDQUOT, EIO) is reported with [`DiskCache::write_failed`], after which the cache stops
//! writing for a while; either way readers are served from the network.
//! Files are immutable once renamed into place; readers keep an open descriptor, so eviction
//! (unlink) never disturbs a read in progress. Nothing secret is written here. One process
//! at a time uses a directory (see `lock`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;

use scan::{collect_blocks, collect_files};

mod accounting;
mod block_map;
pub mod blocks;
mod entries;
mod lock;
mod reserve;
mod scan;
mod sealed_pieces;

use accounting::{LruState, parse_block_rel, parse_map_rel};
pub(crate) use accounting::{block_rel, map_rel};
pub use blocks::{BLOCK_SIZE, BlockFile};
use lock::DirLock;
pub use reserve::BlocksStored;
pub use sealed_pieces::Piece;

/// Names one version of one blob's bytes. The cache only uses it to name files: `id` groups
/// the versions that [`DiskCache::remove_blobs`] drops together.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlobKey {
    pub id: u64,
    pub version: String,
}

impl BlobKey {
    pub fn stem(&self) -> String {
        format!("a{}-{}", self.id, self.version)
    }
}

/// The cache's directories (the root, `.`, and those under it), counted as fixed space at
/// their size on disk.
const DIRS: [&str; 5] = [".", "tmp", "entries", "blocks", "meta"];

/// What a directory may grow by when a file is created in it (one disk unit): reserved with
/// the file, then the directory is counted at its real size ([`DiskCache::dir_size`]).
const DIR_GROWTH: u64 = 4096;

/// How long the cache stops writing after a write failed (the disk may free up).
const WRITE_PAUSE: Duration = Duration::from_secs(10);

/// What bounds the cache.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--cache-size`: every byte under the cache directory.
    pub size: u64,
    /// `--cache-min-free`: keep this much free on the cache's filesystem.
    pub min_free: u64,
    /// Bytes set aside for files the cache does not write itself (the log).
    pub reserved: u64,
}

/// Tests only: what watches the disk right after each write (see [`DiskCache::on_written`]).
#[cfg(test)]
type WriteProbe = Box<dyn Fn(&Path) + Send + Sync>;

/// The on-disk cache. Cheap to share behind an `Arc`; the internal lock is never held
/// across I/O other than `unlink` of evicted files.
pub struct DiskCache {
    root: PathBuf,
    limits: Limits,
    state: Mutex<LruState>,
    tmp_counter: AtomicU64,
    /// Open block files by stem.
    blocks: Mutex<HashMap<String, std::sync::Arc<BlockFile>>>,
    /// Until when writing is paused after a failed write.
    paused_until: Mutex<Option<Instant>>,
    /// A write found no room (logged once until one finds room again).
    short_of_room: AtomicBool,
    _lock: DirLock,
    /// Tests only: called with the root right after bytes were written under it.
    #[cfg(test)]
    write_probe: std::sync::OnceLock<WriteProbe>,
}

/// What a file of `len` bytes really takes on disk (4 KiB allocation units), which is what
/// `--cache-size` bounds.
pub fn on_disk(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

/// What a blob's files take beyond its blocks: the `.map` file, and one allocation unit for
/// the sparse data file's extent tree (a file with holes needs one on ext4 and others).
pub(crate) fn blob_overhead(map_len: u64) -> u64 {
    on_disk(map_len) + 4096
}

pub(crate) fn mkdir_private(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// Directory `rel` of the cache at `root` and what it takes on disk now (`st_blocks`, as
/// `du` counts it), to count as fixed space.
fn dir_size(root: &Path, rel: &str) -> (PathBuf, u64) {
    use std::os::unix::fs::MetadataExt;
    let size = fs::metadata(root.join(rel)).map_or(0, |md| md.blocks() * 512);
    (PathBuf::from(rel), size)
}

/// Free bytes on the filesystem holding `path` (for unprivileged users).
fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs with a valid NUL-terminated path and a zeroed out-struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (r == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

impl DiskCache {
    /// Opens (creating if needed) the cache at `root`, limited to `limit` bytes.
    pub fn open(root: &Path, limit: u64) -> io::Result<DiskCache> {
        DiskCache::open_with(
            root,
            Limits {
                size: limit,
                min_free: 0,
                reserved: 0,
            },
        )
    }

    /// Opens (creating if needed) the cache at `root` within `limits`. Leftover partial
    /// files are removed; existing files are accounted, oldest first.
    pub fn open_with(root: &Path, limits: Limits) -> io::Result<DiskCache> {
        mkdir_private(root)?;
        // Before anything is removed or counted: this process alone uses the directory.
        let lock = DirLock::take(root)?;
        for sub in ["tmp", "entries", "blocks", "meta"] {
            mkdir_private(&root.join(sub))?;
        }
        for e in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(e?.path());
        }
        // The layout before flat entries: a directory per blob, dropped with what it holds.
        for e in fs::read_dir(root.join("entries"))? {
            let e = e?;
            if e.file_type()?.is_dir() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let mut found = Vec::new();
        collect_files(root, &root.join("entries"), &mut found)?;
        collect_blocks(&root.join("blocks"), &mut found)?;
        let mut fixed = Vec::new();
        collect_files(root, &root.join("meta"), &mut fixed)?;
        // Oldest access first, so the most recent ends up at the LRU front.
        found.sort_by_key(|(_, _, t)| *t);
        let mut state = LruState {
            files: LruCache::unbounded(),
            total: 0,
            fixed: HashMap::new(),
            fixed_total: 0,
            reserved: 0,
            evicting: 0,
            pins: HashMap::new(),
        };
        for (rel, size, _) in found {
            state.put(rel, size);
        }
        for (rel, size, _) in fixed {
            state.set_fixed(rel, size);
        }
        for dir in DIRS {
            let (rel, size) = dir_size(root, dir);
            state.set_fixed(rel, size);
        }
        let cache = DiskCache {
            root: root.to_path_buf(),
            limits,
            state: Mutex::new(state),
            tmp_counter: AtomicU64::new(0),
            blocks: Mutex::new(HashMap::new()),
            paused_until: Mutex::new(None),
            short_of_room: AtomicBool::new(false),
            _lock: lock,
            #[cfg(test)]
            write_probe: std::sync::OnceLock::new(),
        };
        cache.evict_to_limit();
        Ok(cache)
    }

    /// Tests only: `probe` is called with the root right after each write under it, before
    /// the bytes are accounted (the moment the cache is fullest).
    #[cfg(test)]
    pub(crate) fn on_written(&self, probe: impl Fn(&Path) + Send + Sync + 'static) {
        let _ = self.write_probe.set(Box::new(probe));
    }

    /// Bytes were just written under the root (tests watch the disk here).
    pub(crate) fn written(&self) {
        #[cfg(test)]
        if let Some(probe) = self.write_probe.get() {
            probe(&self.root);
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `--cache-size`.
    pub fn limit(&self) -> u64 {
        self.limits.size
    }

    /// Bytes currently held under the cache directory (the log's budget included).
    pub fn used(&self) -> u64 {
        self.state.lock().unwrap().used() + self.limits.reserved
    }

    /// What the cache may hold now: `--cache-size`, less what `--cache-min-free` asks to
    /// keep free on the filesystem (`accounted`: what its files in place take; the free space
    /// does not show reservations yet to be written, so they count in full against it).
    fn budget(&self, accounted: u64) -> u64 {
        let cap = self.limits.size.saturating_sub(self.limits.reserved);
        if self.limits.min_free == 0 {
            return cap;
        }
        match free_space(&self.root) {
            Some(free) => cap.min((accounted + free).saturating_sub(self.limits.min_free)),
            None => cap,
        }
    }

    /// Whether a single piece of `len` bytes is worth caching at all: more than half the
    /// cache would evict everything else for it, so it is read from the network instead.
    pub fn fits(&self, len: u64) -> bool {
        len <= self.limit() / 2
    }

    /// Whether the cache is writing (not paused after a failed write).
    pub fn writable(&self) -> bool {
        let mut p = self.paused_until.lock().unwrap();
        match *p {
            Some(t) if Instant::now() < t => false,
            Some(_) => {
                *p = None;
                true
            }
            None => true,
        }
    }

    /// Reports a write into the cache that failed: one warning, then no writes for a while;
    /// readers carry on from the network.
    pub fn write_failed(&self, what: &str, e: &io::Error) {
        let mut p = self.paused_until.lock().unwrap();
        if p.is_none() {
            tracing::warn!(
                "cache: writing {what} failed ({e}); reading from the network without caching for {}s",
                WRITE_PAUSE.as_secs()
            );
        }
        *p = Some(Instant::now() + WRITE_PAUSE);
    }

    fn get(&self, rel: &Path) -> Option<PathBuf> {
        let mut st = self.state.lock().unwrap();
        if st.files.get(rel).is_some() {
            let p = self.root.join(rel);
            if p.exists() {
                return Some(p);
            }
            // Removed behind our back: forget it.
            st.remove(rel);
        }
        None
    }

    /// A fresh temporary file (mode 0600) to download into.
    pub fn temp_file(&self) -> io::Result<(PathBuf, fs::File)> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{}-{}.part", std::process::id(), n));
        let file = fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        Ok((path, file))
    }

    /// The block file for `key`'s blob of `len` bytes (opened once, shared). Its map is
    /// written when it is opened, in room reserved for it; with no room (the rest pinned) it
    /// is opened without one, and its map comes with its first block stored.
    pub fn block_file(&self, key: &BlobKey, len: u64) -> io::Result<std::sync::Arc<BlockFile>> {
        let stem = key.stem();
        if let Some(f) = self.blocks.lock().unwrap().get(&stem)
            && f.len() == len
        {
            return Ok(f.clone());
        }
        // Not under the `blocks` lock: making room evicts, which takes it. The map pinned
        // first: one accounted now stays so while it is opened (and rewritten in place).
        let pin = self.pin_range(&stem, 0..0);
        let map = blob_overhead(BlockFile::map_len_for(len));
        let accounted = (self.state.lock().unwrap().files)
            .peek(&map_rel(&stem))
            .copied()
            .unwrap_or(0);
        let reservation = self.reserve(map.saturating_sub(accounted) + DIR_GROWTH, Some(pin));
        let mut blocks = self.blocks.lock().unwrap();
        if let Some(f) = blocks.get(&stem)
            && f.len() == len
        {
            return Ok(f.clone());
        }
        // Opened under the lock: one instance per blob, also against `evict_block`.
        let dir = self.root.join("blocks");
        let f = std::sync::Arc::new(match reservation {
            Some(_) => BlockFile::open(&dir, &stem, len)?,
            None => BlockFile::open_without_map(&dir, &stem, len)?,
        });
        blocks.insert(stem.clone(), f.clone());
        drop(blocks);
        // Its files may have grown `blocks/` (with or without a reservation).
        let dir = self.dir_size("blocks");
        match reservation {
            Some(r) => {
                self.written();
                // A map kept from an earlier run may hold sealed pieces: its own length counts.
                r.commit(|st| {
                    reserve::account_map(st, &stem, reserve::map_cost(&f));
                    st.set_fixed(dir.0, dir.1);
                });
            }
            None => self.state.lock().unwrap().set_fixed(dir.0, dir.1),
        }
        Ok(f)
    }

    /// Forgets blocks whose holes were punched by their owner (bad bytes dropped).
    pub fn remove_blocks(&self, key: &BlobKey, blocks: &[u64]) {
        let stem = key.stem();
        let mut st = self.state.lock().unwrap();
        for &i in blocks {
            st.remove(&block_rel(&stem, i));
        }
    }

    /// Marks blocks `first..=last` of `key` as just used.
    pub fn touch_blocks(&self, key: &BlobKey, first: u64, last: u64) {
        self.touch(key, first..=last);
    }

    /// Marks `key`'s `blocks` that a reader has yet to read (fetched ahead of it) as just
    /// used, the last of them first: every block already read goes before them, and of them
    /// the farthest from the reader first. Not a pin: a reader that stops reading no longer
    /// moves them, and they age like any other.
    pub fn keep_for_reader(&self, key: &BlobKey, blocks: std::ops::Range<u64>) {
        self.touch(key, blocks.rev());
    }

    /// Marks `blocks` of `key` (those present), in this order, and its map as just used.
    fn touch(&self, key: &BlobKey, blocks: impl Iterator<Item = u64>) {
        let stem = key.stem();
        let mut st = self.state.lock().unwrap();
        for i in blocks {
            st.files.get(&block_rel(&stem, i));
        }
        st.files.get(&map_rel(&stem));
    }

    /// The one `BlockFile` of `stem`, opened and registered if nobody has it open (a second
    /// instance would keep its own bitmap); `None` when it has no map.
    fn open_block_file(&self, stem: &str) -> Option<std::sync::Arc<BlockFile>> {
        let mut blocks = self.blocks.lock().unwrap();
        if let Some(f) = blocks.get(stem) {
            return Some(f.clone());
        }
        let len = BlockFile::recorded_len(&self.root.join(map_rel(stem)))?;
        let f = std::sync::Arc::new(BlockFile::open(&self.root.join("blocks"), stem, len).ok()?);
        blocks.insert(stem.to_string(), f.clone());
        Some(f)
    }

    /// Frees what the accounting just let go of: a block (a hole punched), a blob's map (the
    /// whole blob), or a file.
    fn evict(&self, victim: &Path) {
        tracing::debug!(file = %victim.display(), "cache: evicting");
        if let Some((stem, i)) = parse_block_rel(victim) {
            self.evict_block(&stem, i);
        } else if let Some(stem) = parse_map_rel(victim) {
            self.evict_blob(&stem);
        } else {
            self.remove_file(victim);
        }
    }

    /// Removes the file `rel` (a directory keeps its size: it stays counted as it is).
    fn remove_file(&self, rel: &Path) {
        let _ = fs::remove_file(self.root.join(rel));
    }

    /// Directory `rel` of the cache and what it takes on disk now (see [`DIRS`]).
    pub(super) fn dir_size(&self, rel: &str) -> (PathBuf, u64) {
        dir_size(&self.root, rel)
    }

    /// Evicts a whole blob whose blocks are all gone: its map and its data file's last
    /// allocation unit. A blob nobody has open is deleted; an open one is retired (it comes
    /// back when a block is stored again).
    fn evict_blob(&self, stem: &str) {
        let open = self.blocks.lock().unwrap().get(stem).cloned();
        match open {
            Some(f) => {
                // Retired: no map (a commit that accounted it meanwhile is undone); else a
                // block is being stored right now, and the map stays with it.
                f.retire();
                let mut st = self.state.lock().unwrap();
                reserve::account_map(&mut st, stem, reserve::map_cost(&f));
            }
            None => {
                let dir = self.root.join("blocks");
                let _ = fs::remove_file(dir.join(format!("{stem}.map")));
                let _ = fs::remove_file(dir.join(format!("{stem}.data")));
            }
        }
    }

    /// Punches block `i` of `stem` through the one `BlockFile` of that blob (opened and
    /// registered here if nobody has it open: a second instance would keep its own bitmap).
    fn evict_block(&self, stem: &str, i: u64) {
        if let Some(file) = self.open_block_file(stem) {
            file.punch(i);
        }
    }

    /// Drops everything cached for blob id `id` (all versions).
    pub fn remove_blobs(&self, id: u64) {
        let prefix = format!("a{id}-");
        let ours = |rel: &Path| {
            rel.components()
                .nth(1)
                .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with(&prefix))
        };
        let victims: Vec<PathBuf> = {
            let mut st = self.state.lock().unwrap();
            let keys: Vec<PathBuf> = st
                .files
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| ours(k))
                .collect();
            for k in &keys {
                st.remove(k);
            }
            let maps: Vec<PathBuf> = st.fixed.keys().filter(|k| ours(k)).cloned().collect();
            for m in maps {
                st.unset_fixed(&m);
            }
            keys
        };
        let open: Vec<std::sync::Arc<BlockFile>> = {
            let mut blocks = self.blocks.lock().unwrap();
            let stems: Vec<String> = blocks
                .keys()
                .filter(|s| s.starts_with(&prefix))
                .cloned()
                .collect();
            stems.iter().filter_map(|s| blocks.remove(s)).collect()
        };
        for f in open {
            f.delete_files();
        }
        if let Ok(dir) = fs::read_dir(self.root.join("blocks")) {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        for rel in victims {
            if parse_block_rel(&rel).is_some() {
                continue;
            }
            self.remove_file(&rel);
        }
    }

    /// Evicts what is past the budget (a budget that shrank, what pins kept).
    fn evict_to_limit(&self) {
        let _ = self.make_room();
    }

    /// A small remembered file from `meta/` (e.g. which artifacts are zips).
    pub fn load_meta(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.root.join("meta").join(name)).ok()
    }

    /// Replaces `meta/NAME` atomically (counted against the cap, never evicted); not
    /// written when there is no room for it.
    pub fn store_meta(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        if !self.writable() {
            return Ok(());
        }
        let rel = Path::new("meta").join(name);
        self.write_file(&rel, bytes, "metadata", |st, size| {
            st.set_fixed(rel.clone(), size)
        })
    }

    /// Writes `rel` whole and atomically (a temporary file renamed into place) in room
    /// reserved for it first, then `account`s it (with its size on disk) in place of the
    /// reservation; with no room, writes nothing. A failure leaves nothing behind and pauses
    /// the cache ([`DiskCache::write_failed`]).
    fn write_file(
        &self,
        rel: &Path,
        bytes: &[u8],
        what: &str,
        account: impl FnOnce(&mut LruState, u64),
    ) -> io::Result<()> {
        use std::io::Write;
        let size = on_disk(bytes.len() as u64);
        let Some(reservation) = self.reserve(size + DIR_GROWTH, None) else {
            return Ok(());
        };
        let dest = self.root.join(rel);
        let written = self.temp_file().and_then(|(tmp, mut f)| {
            let r = f
                .write_all(bytes)
                .inspect(|()| self.written())
                .and_then(|()| mkdir_private(dest.parent().expect("a file under the root")))
                .and_then(|()| fs::rename(&tmp, &dest));
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r
        });
        match written {
            Ok(()) => {
                let parent = rel.parent().and_then(Path::to_str).unwrap_or(".");
                let dirs = [self.dir_size(parent), self.dir_size("tmp")];
                reservation.commit(|st| {
                    account(st, size);
                    for (dir, size) in dirs {
                        st.set_fixed(dir, size);
                    }
                });
                Ok(())
            }
            Err(e) => {
                self.write_failed(what, &e);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
