//! Inflated entries in the cache: the verified copy of a deflated zip entry
//! (`entries/{stem}/{n}`) and its seek points (`entries/{stem}/{n}.seek`), both evictable
//! files in the one LRU.

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
        {
            let mut st = self.state.lock().unwrap();
            if let Some(old) = st.files.put(rel, size) {
                st.total -= old;
            }
            st.total += size;
        }
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
        use std::io::Write;
        if !self.writable() || !self.fits(bytes.len() as u64) {
            return;
        }
        let rel = Self::seek_rel(key, index);
        let dest = self.root.join(&rel);
        let written = self.temp_file().and_then(|(tmp, mut f)| {
            let r = f
                .write_all(bytes)
                .and_then(|()| mkdir_private(dest.parent().expect("entry path has a parent")))
                .and_then(|()| fs::rename(&tmp, &dest));
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            r
        });
        if let Err(e) = written {
            self.write_failed("seek points", &e);
            return;
        }
        {
            let mut st = self.state.lock().unwrap();
            let size = on_disk(bytes.len() as u64);
            if let Some(old) = st.files.put(rel, size) {
                st.total -= old;
            }
            st.total += size;
        }
        self.evict_to_limit();
    }

    /// Drops a cached inflated entry (it failed a check, or its blob is gone).
    pub fn remove_entry(&self, key: &BlobKey, index: usize) {
        let rel = Self::entry_rel(key, index);
        let known = {
            let mut st = self.state.lock().unwrap();
            st.files.pop(&rel).map(|size| st.total -= size).is_some()
        };
        if known {
            let _ = fs::remove_file(self.root.join(rel));
        }
    }
}
