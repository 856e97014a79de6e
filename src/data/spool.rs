//! A spool: an unlinked file in the cache directory's `tmp/` holding a whole download's bytes
//! at their offsets in the blob, for a blob the block cache does not take (see
//! `whole_download`). Outside `--cache-size` (it is there only while read), gone with its
//! last descriptor whatever happens to the process; each block is checksummed as it lands
//! and checked when read back, as cache blocks are.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use bytes::Bytes;

use crate::cache::blocks::checksum;
use crate::cache::{BLOCK_SIZE, DiskCache};
use crate::error::SourceError;

/// An unlinked file holding a download's bytes at their offsets in the blob.
pub struct Spool {
    file: File,
    /// Each landed block's checksum.
    sums: Mutex<Vec<u32>>,
}

impl Spool {
    /// A fresh one in the cache's `tmp/`, unlinked at once: its space goes with the last
    /// descriptor, whatever happens to the process.
    pub fn create(cache: &DiskCache, len: u64) -> std::io::Result<Spool> {
        let (path, file) = cache.temp_file()?;
        std::fs::remove_file(&path)?;
        Ok(Spool {
            file,
            sums: Mutex::new(vec![0; len.div_ceil(BLOCK_SIZE) as usize]),
        })
    }

    /// Writes whole blocks from `first` (blocking).
    pub fn write(&self, first: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, first * BLOCK_SIZE)?;
        let mut sums = self.sums.lock().unwrap();
        for (k, b) in bytes.chunks(BLOCK_SIZE as usize).enumerate() {
            sums[first as usize + k] = checksum(b);
        }
        Ok(())
    }

    /// `offset..end` (landed), each block checked against the checksum it got (blocking).
    pub fn read(&self, offset: u64, end: u64, len: u64) -> Result<Bytes, SourceError> {
        let (first, last) = (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE);
        let start = first * BLOCK_SIZE;
        let stop = ((last + 1) * BLOCK_SIZE).min(len);
        let mut buf = vec![0u8; (stop - start) as usize];
        self.file.read_exact_at(&mut buf, start)?;
        let sums = self.sums.lock().unwrap();
        for (k, b) in buf.chunks(BLOCK_SIZE as usize).enumerate() {
            if checksum(b) != sums[first as usize + k] {
                return Err(SourceError::Integrity(format!(
                    "spooled block {} does not match its checksum",
                    first + k as u64
                )));
            }
        }
        let at = (offset - start) as usize;
        Ok(Bytes::from(buf).slice(at..at + (end - offset) as usize))
    }
}
