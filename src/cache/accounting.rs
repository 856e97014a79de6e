//! The cache's accounting: one least-recently-used list over the files and blocks under the
//! cache directory (by relative path, in 4 KiB disk units), the fixed, reserved and
//! being-evicted space beside it, the blocks pinned by reads and stores under way ([`Pin`]),
//! and the relative paths that name a blob's blocks and map.

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
    /// Space set aside for writes under way (see `super::reserve`).
    pub(super) reserved: u64,
    /// Taken off `files` for eviction, not freed on disk yet.
    pub(super) evicting: u64,
    /// What is pinned, by blob stem (see [`DiskCache::pin`]): never evicted.
    pub(super) pins: HashMap<String, StemPins>,
}

/// The pins on one blob: its map stays while any is held, and so do the blocks they name.
#[derive(Default)]
pub(super) struct StemPins {
    holders: u32,
    /// Block → how many pins hold it.
    blocks: HashMap<u64, u32>,
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

    /// Everything counted against the cap: files, metadata, reservations and what is being
    /// evicted.
    pub(super) fn used(&self) -> u64 {
        self.accounted() + self.reserved + self.evicting
    }

    /// What the files in place take (written and accounted).
    pub(super) fn accounted(&self) -> u64 {
        self.total + self.fixed_total
    }

    /// What eviction could free now: the files that are not pinned.
    pub(super) fn evictable(&self) -> u64 {
        let mut pinned = 0;
        for (stem, p) in &self.pins {
            pinned += self.files.peek(&map_rel(stem)).copied().unwrap_or(0);
            for i in p.blocks.keys() {
                pinned += self.files.peek(&block_rel(stem, *i)).copied().unwrap_or(0);
            }
        }
        self.total - pinned
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
            Some((stem, i)) => self
                .pins
                .get(&stem)
                .is_some_and(|p| p.blocks.contains_key(&i)),
            None => parse_map_rel(rel).is_some_and(|stem| self.pins.contains_key(&stem)),
        }
    }

    /// The least recently used file that is not pinned, taken out of the list, and its size.
    pub(super) fn pop_victim(&mut self) -> Option<(PathBuf, u64)> {
        let rel = if self.pins.is_empty() {
            self.files.peek_lru().map(|(k, _)| k.clone())?
        } else {
            self.files
                .iter()
                .rev()
                .find(|(k, _)| !self.is_pinned(k))
                .map(|(k, _)| k.clone())?
        };
        let size = self.files.pop(&rel)?;
        self.total -= size;
        Some((rel, size))
    }

    fn add_pin(&mut self, stem: &str, blocks: std::ops::Range<u64>) {
        let p = self.pins.entry(stem.to_string()).or_default();
        p.holders += 1;
        for i in blocks {
            *p.blocks.entry(i).or_default() += 1;
        }
    }

    fn remove_pin(&mut self, stem: &str, blocks: std::ops::Range<u64>) {
        let Some(p) = self.pins.get_mut(stem) else {
            return;
        };
        for i in blocks {
            if let Some(n) = p.blocks.get_mut(&i) {
                *n -= 1;
                if *n == 0 {
                    p.blocks.remove(&i);
                }
            }
        }
        p.holders -= 1;
        if p.holders == 0 {
            self.pins.remove(stem);
        }
    }
}

/// Blocks of a blob being read or stored (and with them the blob's map): eviction leaves
/// them alone until the pin is dropped, so a reader is never handed a hole and a store never
/// loses what it is writing.
pub struct Pin<'a> {
    cache: &'a DiskCache,
    stem: String,
    blocks: std::ops::Range<u64>,
}

impl DiskCache {
    /// Pins blocks `first..=last` of `key` while the guard lives (see [`Pin`]).
    pub fn pin(&self, key: &super::BlobKey, first: u64, last: u64) -> Pin<'_> {
        self.pin_range(&key.stem(), first..last + 1)
    }

    /// Pins `stem`'s `blocks` (none: only its map).
    pub(super) fn pin_range(&self, stem: &str, blocks: std::ops::Range<u64>) -> Pin<'_> {
        self.state.lock().unwrap().add_pin(stem, blocks.clone());
        Pin {
            cache: self,
            stem: stem.to_string(),
            blocks,
        }
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        (self.cache.state.lock().unwrap()).remove_pin(&self.stem, self.blocks.clone());
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
