//! Whole files kept beside a blob, evictable in the one LRU: a deflated zip entry's seek points
//! (`entries/{stem}/{n}.seek`), the indexes of archives inside a blob's files
//! (`entries/{stem}/{name}.inner`), and whole verified files (`entries/{stem}/{n}`, written
//! under a reservation; the data layer's inflated copies are block files now, see
//! `data::inflated_copy`, so only the cache's own tests still write these).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{BlobKey, DiskCache, Reservation, mkdir_private, on_disk};

impl DiskCache {
    fn entry_rel(key: &BlobKey, index: usize) -> PathBuf {
        Path::new("entries")
            .join(key.stem())
            .join(index.to_string())
    }

    /// The cached extracted entry, if present (and marks it used).
    pub fn entry(&self, key: &BlobKey, index: usize) -> Option<PathBuf> {
        self.get(&Self::entry_rel(key, index))
    }

    /// Moves a complete, verified temp file into place as entry `index` of `key`; the
    /// reservation it was written under becomes the entry's place in the LRU.
    pub fn commit_entry(
        &self,
        key: &BlobKey,
        index: usize,
        tmp: &Path,
        reservation: &Reservation,
    ) -> io::Result<PathBuf> {
        let rel = Self::entry_rel(key, index);
        mkdir_private(
            &self
                .root
                .join(rel.parent().expect("entry path has a parent")),
        )?;
        let dest = self.root.join(&rel);
        let size = on_disk(fs::metadata(tmp)?.len());
        fs::rename(tmp, &dest)?;
        self.state.lock().unwrap().put(rel, size);
        reservation.release();
        self.evict_to_limit();
        Ok(dest)
    }

    fn seek_rel(key: &BlobKey, index: usize) -> PathBuf {
        Path::new("entries")
            .join(key.stem())
            .join(format!("{index}.seek"))
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
        Path::new("entries")
            .join(key.stem())
            .join(format!("{name}.inner"))
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
    /// is writing and it takes at most half the cap; `what` names it in a failed write's log.
    fn store_evictable(&self, rel: PathBuf, bytes: &[u8], what: &str) {
        if !self.writable() || !self.fits(bytes.len() as u64) {
            return;
        }
        if self.write_file(&rel, bytes, what).is_err() {
            return;
        }
        self.state
            .lock()
            .unwrap()
            .put(rel, on_disk(bytes.len() as u64));
        self.evict_to_limit();
    }

    /// Drops a cached inflated entry (it failed a check, or its blob is gone).
    pub fn remove_entry(&self, key: &BlobKey, index: usize) {
        let rel = Self::entry_rel(key, index);
        let known = self.state.lock().unwrap().remove(&rel);
        if known {
            let _ = fs::remove_file(self.root.join(rel));
        }
    }
}
