//! The disk cache: blob blocks, inflated zip entries and remembered metadata, under one
//! directory (mode 0700, files 0600), bounded by `--cache-size` with least-recently-used
//! eviction.
//!
//! Layout:
//! ```text
//! CACHE_DIR/
//!   tmp/                         entries being inflated (renamed into place when complete)
//!   entries/a{id}-{version}/{n}  zip entry n, inflated and CRC-checked
//!   blocks/a{id}-{version}.data  the blob's bytes fetched so far (sparse; see `blocks`)
//!   blocks/a{id}-{version}.map   which 128 KiB blocks of it are present
//!   meta/kinds.json              artifact id → zip or raw (costs a 302 to learn; paid once)
//! ```
//! One least-recently-used list covers files and blocks alike, so `--cache-size` bounds
//! them together; an evicted block is a hole punched in its data file.
//! `version` is the digest's first 32 hex digits, or `s{size}-t{created_at}` when the
//! artifact has no digest, so a re-uploaded artifact never hits stale bytes. Files are
//! immutable once renamed into place; readers keep an open descriptor, so eviction (unlink)
//! never disturbs a read in progress. Nothing secret is written here: no token, no URL.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;

use crate::github::{Artifact, ArtifactKind};

pub mod blocks;
pub mod cached_source;

pub use blocks::{BLOCK_SIZE, BlockFile};
pub use cached_source::CachedSource;

/// Identifies one version of one artifact's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlobKey {
    pub id: u64,
    pub version: String,
}

impl BlobKey {
    pub fn for_artifact(a: &Artifact) -> BlobKey {
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

    pub fn stem(&self) -> String {
        format!("a{}-{}", self.id, self.version)
    }
}

struct LruState {
    /// Relative path → size in bytes. Most recently used at the front.
    files: LruCache<PathBuf, u64>,
    total: u64,
}

/// The on-disk cache. Cheap to share behind an `Arc`; the internal lock is never held
/// across I/O other than `unlink` of evicted files.
pub struct DiskCache {
    root: PathBuf,
    limit: u64,
    state: Mutex<LruState>,
    kinds: Mutex<HashMap<u64, ArtifactKind>>,
    tmp_counter: AtomicU64,
    /// Open block files by stem.
    blocks: Mutex<HashMap<String, std::sync::Arc<BlockFile>>>,
}

/// What a file of `len` bytes really takes on disk (4 KiB allocation units), which is what
/// `--cache-size` bounds.
fn on_disk(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

fn block_rel(stem: &str, i: u64) -> PathBuf {
    Path::new("blocks").join(format!("{stem}#{i}"))
}

/// `blocks/{stem}#{i}` → (stem, i).
fn parse_block_rel(rel: &Path) -> Option<(String, u64)> {
    if !rel.starts_with("blocks") {
        return None;
    }
    let name = rel.file_name()?.to_str()?;
    let (stem, i) = name.rsplit_once('#')?;
    Some((stem.to_string(), i.parse().ok()?))
}

fn mkdir_private(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

impl DiskCache {
    /// Opens (creating if needed) the cache at `root`, limited to `limit` bytes.
    /// Leftover partial downloads are removed; existing files are accounted, oldest first.
    pub fn open(root: &Path, limit: u64) -> io::Result<DiskCache> {
        mkdir_private(root)?;
        for sub in ["tmp", "entries", "blocks", "meta"] {
            mkdir_private(&root.join(sub))?;
        }
        for e in fs::read_dir(root.join("tmp"))? {
            let _ = fs::remove_file(e?.path());
        }
        let mut found = Vec::new();
        collect_files(root, &root.join("entries"), &mut found)?;
        collect_blocks(&root.join("blocks"), &mut found)?;
        // Oldest access first, so the most recent ends up at the LRU front.
        found.sort_by_key(|(_, _, t)| *t);
        let mut state = LruState {
            files: LruCache::unbounded(),
            total: 0,
        };
        for (rel, size, _) in found {
            state.total += size;
            state.files.put(rel, size);
        }
        let kinds = fs::read(root.join("meta/kinds.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<HashMap<u64, ArtifactKind>>(&b).ok())
            .unwrap_or_default();
        let cache = DiskCache {
            root: root.to_path_buf(),
            limit,
            state: Mutex::new(state),
            kinds: Mutex::new(kinds),
            tmp_counter: AtomicU64::new(0),
            blocks: Mutex::new(HashMap::new()),
        };
        cache.evict_to_limit();
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes currently held.
    pub fn used(&self) -> u64 {
        self.state.lock().unwrap().total
    }

    fn entry_rel(key: &BlobKey, index: usize) -> PathBuf {
        Path::new("entries")
            .join(key.stem())
            .join(index.to_string())
    }

    /// The cached extracted entry, if present (and marks it used).
    pub fn entry(&self, key: &BlobKey, index: usize) -> Option<PathBuf> {
        self.get(&Self::entry_rel(key, index))
    }

    fn get(&self, rel: &Path) -> Option<PathBuf> {
        let mut st = self.state.lock().unwrap();
        if st.files.get(rel).is_some() {
            let p = self.root.join(rel);
            if p.exists() {
                return Some(p);
            }
            // Removed behind our back: forget it.
            if let Some(size) = st.files.pop(rel) {
                st.total -= size;
            }
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

    /// Moves a complete, verified temp file into place as entry `index` of `key`.
    pub fn commit_entry(&self, key: &BlobKey, index: usize, tmp: &Path) -> io::Result<PathBuf> {
        let rel = Self::entry_rel(key, index);
        mkdir_private(
            &self
                .root
                .join(rel.parent().expect("entry path has a parent")),
        )?;
        self.commit(&rel, tmp)
    }

    fn commit(&self, rel: &Path, tmp: &Path) -> io::Result<PathBuf> {
        let dest = self.root.join(rel);
        let size = on_disk(fs::metadata(tmp)?.len());
        fs::rename(tmp, &dest)?;
        {
            let mut st = self.state.lock().unwrap();
            if let Some(old) = st.files.put(rel.to_path_buf(), size) {
                st.total -= old;
            }
            st.total += size;
        }
        self.evict_to_limit();
        Ok(dest)
    }

    /// The block file for `key`'s blob of `len` bytes (opened once, shared).
    pub fn block_file(&self, key: &BlobKey, len: u64) -> io::Result<std::sync::Arc<BlockFile>> {
        let stem = key.stem();
        if let Some(f) = self.blocks.lock().unwrap().get(&stem)
            && f.len() == len
        {
            return Ok(f.clone());
        }
        let f = std::sync::Arc::new(BlockFile::open(&self.root.join("blocks"), &stem, len)?);
        Ok(self.blocks.lock().unwrap().entry(stem).or_insert(f).clone())
    }

    /// Accounts blocks just written (most recently used), then evicts past the limit.
    pub fn note_blocks(&self, key: &BlobKey, file: &BlockFile, blocks: &[u64]) {
        let stem = key.stem();
        {
            let mut st = self.state.lock().unwrap();
            for &i in blocks {
                let size = on_disk(file.block_len(i));
                if let Some(old) = st.files.put(block_rel(&stem, i), size) {
                    st.total -= old;
                }
                st.total += size;
            }
        }
        self.evict_to_limit();
    }

    /// Forgets blocks that were dropped for being bad (their holes already punched).
    pub fn forget_blocks(&self, key: &BlobKey, blocks: &[u64]) {
        let stem = key.stem();
        let mut st = self.state.lock().unwrap();
        for &i in blocks {
            if let Some(size) = st.files.pop(&block_rel(&stem, i)) {
                st.total -= size;
            }
        }
    }

    /// Marks blocks `first..=last` of `key` as just used.
    pub fn touch_blocks(&self, key: &BlobKey, first: u64, last: u64) {
        let stem = key.stem();
        let mut st = self.state.lock().unwrap();
        for i in first..=last {
            st.files.get(&block_rel(&stem, i));
        }
    }

    fn evict_block(&self, stem: &str, i: u64) {
        let open = self.blocks.lock().unwrap().get(stem).cloned();
        let file = match open {
            Some(f) => f,
            None => {
                let map = self.root.join("blocks").join(format!("{stem}.map"));
                let Some(len) = BlockFile::recorded_len(&map) else {
                    return;
                };
                match BlockFile::open(&self.root.join("blocks"), stem, len) {
                    Ok(f) => std::sync::Arc::new(f),
                    Err(_) => return,
                }
            }
        };
        file.punch(i);
    }

    /// Drops everything cached for artifact `id` (all versions).
    pub fn remove_artifact(&self, id: u64) {
        let prefix = format!("a{id}-");
        let victims: Vec<PathBuf> = {
            let mut st = self.state.lock().unwrap();
            let keys: Vec<PathBuf> = st
                .files
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| {
                    k.components()
                        .nth(1)
                        .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with(&prefix))
                })
                .collect();
            for k in &keys {
                if let Some(size) = st.files.pop(k) {
                    st.total -= size;
                }
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
            let _ = fs::remove_file(self.root.join(&rel));
            if let Some(parent) = rel.parent().filter(|p| p.starts_with("entries/")) {
                let _ = fs::remove_dir(self.root.join(parent));
            }
        }
        self.kinds.lock().unwrap().remove(&id);
    }

    fn evict_to_limit(&self) {
        loop {
            let victim = {
                let mut st = self.state.lock().unwrap();
                if st.total <= self.limit {
                    return;
                }
                match st.files.pop_lru() {
                    Some((rel, size)) => {
                        st.total -= size;
                        rel
                    }
                    None => return,
                }
            };
            tracing::debug!(file = %victim.display(), "cache: evicting");
            match parse_block_rel(&victim) {
                Some((stem, i)) => self.evict_block(&stem, i),
                None => {
                    let _ = fs::remove_file(self.root.join(victim));
                }
            }
        }
    }

    /// The remembered kind of artifact `id`.
    pub fn kind(&self, id: u64) -> Option<ArtifactKind> {
        self.kinds.lock().unwrap().get(&id).cloned()
    }

    /// Remembers (and persists) the kind of artifact `id`.
    pub fn set_kind(&self, id: u64, kind: ArtifactKind) {
        let snapshot = {
            let mut kinds = self.kinds.lock().unwrap();
            if kinds.get(&id) == Some(&kind) {
                return;
            }
            kinds.insert(id, kind);
            serde_json::to_vec(&*kinds).unwrap_or_default()
        };
        if let Err(e) = self.write_meta("kinds.json", &snapshot) {
            tracing::warn!("cache: could not persist artifact kinds: {e}");
        }
    }

    fn write_meta(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let (tmp, mut f) = self.temp_file()?;
        f.write_all(bytes)?;
        drop(f);
        fs::rename(tmp, self.root.join("meta").join(name))
    }
}

/// Accounts the blocks recorded in `blocks/*.map`, as of each map's last write.
fn collect_blocks(
    dir: &Path,
    out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>,
) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".map") else {
            continue;
        };
        if !dir.join(format!("{stem}.data")).exists() {
            let _ = fs::remove_file(e.path()); // an orphan map claims nothing
            continue;
        }
        let Some(len) = BlockFile::recorded_len(&e.path()) else {
            continue;
        };
        let t = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        for i in BlockFile::recorded_blocks(&e.path()) {
            let size = BLOCK_SIZE.min(len.saturating_sub(i * BLOCK_SIZE));
            out.push((block_rel(stem, i), on_disk(size), t));
        }
    }
    Ok(())
}

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>,
) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let md = e.metadata()?;
        if md.is_dir() {
            collect_files(root, &e.path(), out)?;
        } else if md.is_file() {
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            let t = md
                .accessed()
                .or_else(|_| md.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            out.push((rel, on_disk(md.len()), t));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn put(cache: &DiskCache, key: &BlobKey, bytes: usize) -> PathBuf {
        let (tmp, mut f) = cache.temp_file().unwrap();
        f.write_all(&vec![7u8; bytes]).unwrap();
        cache.commit_entry(key, 0, &tmp).unwrap()
    }

    fn key(id: u64) -> BlobKey {
        BlobKey {
            id,
            version: "v".into(),
        }
    }

    #[test]
    fn dirs_are_private_and_files_0600() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("c");
        let cache = DiskCache::open(&root, 1 << 20).unwrap();
        let p = put(&cache, &key(1), 10);
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn evicts_least_recently_used_past_limit() {
        let d = tempfile::tempdir().unwrap();
        // Three 4 KiB files do not fit in 10 000 bytes.
        let cache = DiskCache::open(d.path(), 10_000).unwrap();
        put(&cache, &key(1), 4000);
        put(&cache, &key(2), 4000);
        assert!(cache.entry(&key(1), 0).is_some()); // 1 is now most recent
        put(&cache, &key(3), 4000);
        assert!(
            cache.entry(&key(2), 0).is_none(),
            "2 was least recently used"
        );
        assert!(cache.entry(&key(1), 0).is_some());
        assert!(cache.entry(&key(3), 0).is_some());
        assert!(cache.used() <= 10_000);
    }

    #[test]
    fn survives_reopen_and_remove_artifact() {
        let d = tempfile::tempdir().unwrap();
        {
            let cache = DiskCache::open(d.path(), 1 << 20).unwrap();
            put(&cache, &key(5), 10);
            let (tmp, mut f) = cache.temp_file().unwrap();
            f.write_all(b"x").unwrap();
            cache.commit_entry(&key(5), 3, &tmp).unwrap();
            cache.set_kind(5, ArtifactKind::Zip);
        }
        let cache = DiskCache::open(d.path(), 1 << 20).unwrap();
        assert!(cache.entry(&key(5), 0).is_some());
        assert!(cache.entry(&key(5), 3).is_some());
        assert_eq!(cache.kind(5), Some(ArtifactKind::Zip));
        assert_eq!(cache.used(), 2 * 4096, "accounted in disk allocation units");
        cache.remove_artifact(5);
        assert!(cache.entry(&key(5), 0).is_none());
        assert!(cache.entry(&key(5), 3).is_none());
        assert_eq!(cache.kind(5), None);
        assert_eq!(cache.used(), 0);
    }
}
