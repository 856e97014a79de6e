//! The cache's accounting: one least-recently-used list over the files and blocks under the
//! cache directory (by relative path, in 4 KiB disk units), the fixed space beside it, the
//! blocks pinned by reads under way ([`Pin`]), and the relative paths that name a blob's
//! blocks and map.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lru::LruCache;

use super::DiskCache;

pub(super) struct LruState {
    /// Relative path → size on disk. Most recently used at the front.
    pub(super) files: LruCache<PathBuf, u64>,
    /// Sum of `files`.
    pub(super) total: u64,
    /// Metadata files: counted, never evicted (relative path → size).
    pub(super) fixed: HashMap<PathBuf, u64>,
    pub(super) fixed_total: u64,
    /// Blocks being read right now (see [`DiskCache::pin`]): never evicted, nor their maps.
    pub(super) pins: HashMap<String, HashMap<u64, u32>>,
}

impl LruState {
    /// Accounts `rel` as `size` bytes, most recently used.
    pub(super) fn put(&mut self, rel: PathBuf, size: u64) {
        if let Some(old) = self.files.put(rel, size) {
            self.total -= old;
        }
        self.total += size;
    }

    /// Stops accounting `rel`; whether it was accounted.
    pub(super) fn remove(&mut self, rel: &Path) -> bool {
        match self.files.pop(rel) {
            Some(size) => {
                self.total -= size;
                true
            }
            None => false,
        }
    }

    pub(super) fn used(&self) -> u64 {
        self.total + self.fixed_total
    }

    pub(super) fn set_fixed(&mut self, rel: PathBuf, size: u64) {
        let old = self.fixed.insert(rel, size).unwrap_or(0);
        self.fixed_total = self.fixed_total - old + size;
    }

    pub(super) fn unset_fixed(&mut self, rel: &Path) {
        if let Some(old) = self.fixed.remove(rel) {
            self.fixed_total -= old;
        }
    }

    /// Whether `rel` (a block, or a blob's map) must stay: it is being read.
    pub(super) fn is_pinned(&self, rel: &Path) -> bool {
        if self.pins.is_empty() {
            return false;
        }
        match parse_block_rel(rel) {
            Some((stem, i)) => self.pins.get(&stem).is_some_and(|p| p.contains_key(&i)),
            None => parse_map_rel(rel).is_some_and(|stem| self.pins.contains_key(&stem)),
        }
    }

    /// The least recently used file that is not pinned, taken out of the list.
    pub(super) fn pop_victim(&mut self) -> Option<PathBuf> {
        let rel = if self.pins.is_empty() {
            self.files.peek_lru().map(|(k, _)| k.clone())?
        } else {
            self.files
                .iter()
                .rev()
                .find(|(k, _)| !self.is_pinned(k))
                .map(|(k, _)| k.clone())?
        };
        self.remove(&rel);
        Some(rel)
    }
}

/// Blocks of a blob being read: eviction leaves them (and their blob's map) alone until the
/// pin is dropped, so a reader is never handed a hole.
pub struct Pin<'a> {
    pub(super) cache: &'a DiskCache,
    pub(super) stem: String,
    pub(super) first: u64,
    pub(super) last: u64,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        {
            let mut st = self.cache.state.lock().unwrap();
            if let Some(p) = st.pins.get_mut(&self.stem) {
                for i in self.first..=self.last {
                    if let Some(n) = p.get_mut(&i) {
                        *n -= 1;
                        if *n == 0 {
                            p.remove(&i);
                        }
                    }
                }
                if p.is_empty() {
                    st.pins.remove(&self.stem);
                }
            }
        }
        // What the pin kept past the limit goes now.
        self.cache.evict_to_limit();
    }
}

pub(crate) fn block_rel(stem: &str, i: u64) -> PathBuf {
    Path::new("blocks").join(format!("{stem}#{i}"))
}

pub(crate) fn map_rel(stem: &str) -> PathBuf {
    Path::new("blocks").join(format!("{stem}.map"))
}

/// `blocks/{stem}.map` → stem.
pub(super) fn parse_map_rel(rel: &Path) -> Option<String> {
    if !rel.starts_with("blocks") {
        return None;
    }
    let name = rel.file_name()?.to_str()?;
    name.strip_suffix(".map").map(str::to_string)
}

/// `blocks/{stem}#{i}` → (stem, i).
pub(super) fn parse_block_rel(rel: &Path) -> Option<(String, u64)> {
    if !rel.starts_with("blocks") {
        return None;
    }
    let name = rel.file_name()?.to_str()?;
    let (stem, i) = name.rsplit_once('#')?;
    Some((stem.to_string(), i.parse().ok()?))
}
