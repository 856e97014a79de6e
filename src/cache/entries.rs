//! Whole files kept beside a blob, evictable in the one LRU: a deflated zip entry's seek points
//! (`entries/{stem}.{n}.seek`) and the indexes of archives inside a blob's files
//! (`entries/{stem}.{name}.inner`). Each is written whole, in room reserved for it first.
//! Flat in `entries/`, no directory per blob: a directory costs a disk unit of its own.

use std::fs;
use std::path::{Path, PathBuf};

use super::{BlobKey, DiskCache};

impl DiskCache {
    pub(super) fn seek_rel(key: &BlobKey, index: usize) -> PathBuf {
        Path::new("entries").join(format!("{}.{index}.seek", key.stem()))
    }

    /// The seek points kept for entry `index` of `key` (and marks them used).
    pub fn seek_points(&self, key: &BlobKey, index: usize) -> Option<Vec<u8>> {
        fs::read(self.get(&Self::seek_rel(key, index))?).ok()
    }

    /// Keeps seek points for entry `index` of `key` (replaced atomically, evictable).
    pub fn store_seek_points(&self, key: &BlobKey, index: usize, bytes: &[u8]) {
        self.store_evictable(Self::seek_rel(key, index), bytes, "seek points");
    }

    fn inner_rel(key: &BlobKey, name: &str) -> PathBuf {
        Path::new("entries").join(format!("{}.{name}.inner", key.stem()))
    }

    /// The saved index of the archive inside blob `key` called `name` (and marks it used).
    pub fn inner_index(&self, key: &BlobKey, name: &str) -> Option<Vec<u8>> {
        fs::read(self.get(&Self::inner_rel(key, name))?).ok()
    }

    /// Keeps the index of an archive inside blob `key` (replaced atomically, evictable).
    pub fn store_inner_index(&self, key: &BlobKey, name: &str, bytes: &[u8]) {
        self.store_evictable(
            Self::inner_rel(key, name),
            bytes,
            "an inner archive's index",
        );
    }

    /// Writes `bytes` at `rel` (replaced atomically) and counts it in the LRU, when the cache
    /// is writing, it takes at most half the cap and there is room for it; `what` names it
    /// in a failed write's log.
    fn store_evictable(&self, rel: PathBuf, bytes: &[u8], what: &str) {
        if !self.writable() || !self.fits(bytes.len() as u64) {
            return;
        }
        let _ = self.write_file(&rel, bytes, what, |st, size| st.put(rel.clone(), size));
    }
}
