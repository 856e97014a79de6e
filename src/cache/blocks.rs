//! One blob's bytes on disk, block by block: a sparse data file plus a persisted bitmap of
//! the blocks present, so that a remount with the same cache directory serves everything
//! already fetched without asking the network.
//!
//! **Block size: 128 KiB.** It is the unit of caching and of eviction, not of requests
//! (contiguous missing blocks are fetched in one ranged request, up to 8 MiB). Smaller blocks
//! waste less on a cold small read: a `cat` of a 10 KB log in a big archive costs the tail
//! (65.6 KiB → at most 2 blocks), the central directory (usually 1–2 more) and the entry's
//! block(s): about 0.5 MiB, under the 1 MiB budget, where 1 MiB blocks would cost 3–4 MiB.
//! 128 KiB is also the kernel's largest FUSE read, so a read never straddles more than two
//! blocks; and the bitmap stays tiny (2 KiB for a 2 GiB blob). `docs/benchmarks.md` has the
//! bytes-fetched figures this was checked against.
//!
//! Files: `blocks/{stem}.data` (sparse, 0600) and `blocks/{stem}.map` (8-byte little-endian
//! blob length, then one bit per block). Data is written before its bit is set; an evicted
//! block's bit is cleared (and the eviction counted) before its hole is punched, so a reader
//! that sees the counter unchanged around its `pread` read real bytes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub const BLOCK_SIZE: u64 = 128 * 1024;

pub struct BlockFile {
    len: u64,
    data: File,
    data_path: PathBuf,
    map_path: PathBuf,
    present: Mutex<Vec<u8>>,
    evictions: AtomicU64,
    /// Blocks written so far (with `evictions`: whether any byte may differ from before).
    writes: AtomicU64,
}

fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
}

impl BlockFile {
    /// Opens the block file of `stem` under `dir` for a blob of `len` bytes, keeping what a
    /// previous run stored when the length matches (else starting empty).
    pub fn open(dir: &Path, stem: &str, len: u64) -> io::Result<BlockFile> {
        let data_path = dir.join(format!("{stem}.data"));
        let map_path = dir.join(format!("{stem}.map"));
        // A map without its data file (deleted, or lost) must not claim anything.
        let had_data = data_path.exists();
        let data = open_private(&data_path)?;
        // The map is opened per write, not kept: one descriptor per blob, not two.
        let map = open_private(&map_path)?;
        let nblocks = len.div_ceil(BLOCK_SIZE);
        let bytes = nblocks.div_ceil(8) as usize;
        let mut present = vec![0u8; bytes];
        let mut header = [0u8; 8];
        let stored_len = match map.read_exact_at(&mut header, 0) {
            Ok(()) => Some(u64::from_le_bytes(header)),
            Err(_) => None,
        };
        if had_data && stored_len == Some(len) {
            map.read_exact_at(&mut present, 8)
                .or_else(|_| -> io::Result<()> {
                    present.fill(0);
                    Ok(())
                })?;
        } else {
            data.set_len(0)?;
        }
        data.set_len(len)?;
        drop(map);
        let f = BlockFile {
            len,
            data,
            data_path,
            map_path,
            present: Mutex::new(present),
            evictions: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        };
        f.persist(&f.present.lock().unwrap())?;
        Ok(f)
    }

    /// Reads the blob length recorded in a `.map` file.
    pub fn recorded_len(map_path: &Path) -> Option<u64> {
        let f = File::open(map_path).ok()?;
        let mut h = [0u8; 8];
        f.read_exact_at(&mut h, 0).ok()?;
        Some(u64::from_le_bytes(h))
    }

    /// The blocks a `.map` file says are present (for accounting at startup).
    pub fn recorded_blocks(map_path: &Path) -> Vec<u64> {
        let Ok(bytes) = fs::read(map_path) else {
            return Vec::new();
        };
        if bytes.len() < 8 {
            return Vec::new();
        }
        let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let n = len.div_ceil(BLOCK_SIZE);
        (0..n)
            .filter(|&i| {
                bytes
                    .get(8 + (i / 8) as usize)
                    .is_some_and(|b| b & (1 << (i % 8)) != 0)
            })
            .collect()
    }

    fn persist(&self, present: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(8 + present.len());
        buf.extend_from_slice(&self.len.to_le_bytes());
        buf.extend_from_slice(present);
        // Never recreate a map that was deleted with its blob (a late write after `rm`).
        match OpenOptions::new().write(true).open(&self.map_path) {
            Ok(f) => f.write_all_at(&buf, 0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn block_count(&self) -> u64 {
        self.len.div_ceil(BLOCK_SIZE)
    }

    /// Bytes in block `i` (the last one may be short).
    pub fn block_len(&self, i: u64) -> u64 {
        BLOCK_SIZE.min(self.len.saturating_sub(i * BLOCK_SIZE))
    }

    pub fn has(&self, i: u64) -> bool {
        let p = self.present.lock().unwrap();
        p.get((i / 8) as usize)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Blocks in `first..=last` that are not present.
    pub fn missing(&self, first: u64, last: u64) -> Vec<u64> {
        let p = self.present.lock().unwrap();
        (first..=last.min(self.block_count().saturating_sub(1)))
            .filter(|&i| {
                p.get((i / 8) as usize)
                    .is_none_or(|b| b & (1 << (i % 8)) == 0)
            })
            .collect()
    }

    pub fn all_present(&self) -> bool {
        self.missing(0, self.block_count().saturating_sub(1))
            .is_empty()
    }

    /// Stores block `i` (exactly `block_len(i)` bytes) and marks it present.
    pub fn write_block(&self, i: u64, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() as u64 != self.block_len(i) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "block {i}: {} bytes, want {}",
                    bytes.len(),
                    self.block_len(i)
                ),
            ));
        }
        self.data.write_all_at(bytes, i * BLOCK_SIZE)?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut p = self.present.lock().unwrap();
        p[(i / 8) as usize] |= 1 << (i % 8);
        self.persist(&p)
    }

    /// Drops block `i`: bit cleared and persisted, then the hole punched. When the map can't
    /// be written, the bytes stay (the map on disk still says present: a hole there would be
    /// zeros served as the blob's bytes after a remount); only this process forgets them.
    pub fn punch(&self, i: u64) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        let persisted = {
            let mut p = self.present.lock().unwrap();
            if let Some(b) = p.get_mut((i / 8) as usize) {
                *b &= !(1 << (i % 8));
            }
            self.persist(&p)
        };
        match persisted {
            Ok(()) => punch_hole(&self.data, i * BLOCK_SIZE, self.block_len(i)),
            Err(e) => tracing::warn!(
                map = %self.map_path.display(),
                block = i,
                "cache: could not record an eviction ({e}); the block's bytes are kept"
            ),
        }
    }

    /// Changes whenever a block is written or evicted: the cached bytes are the same as when
    /// it last had this value.
    pub fn changes(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst) + self.writes.load(Ordering::SeqCst)
    }

    /// How many blocks were ever evicted (a reader compares it around its `pread`).
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::SeqCst)
    }

    /// `len` bytes at `offset` from the data file (fewer only at the end of the blob).
    pub fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let len = len.min(self.len.saturating_sub(offset) as usize);
        let mut buf = vec![0u8; len];
        self.data.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Bytes the `.map` file takes (length header and bitmap).
    pub fn map_len(&self) -> u64 {
        8 + self.block_count().div_ceil(8)
    }

    /// Removes both files (the open descriptors stay valid until dropped).
    pub fn delete_files(&self) {
        let _ = fs::remove_file(&self.data_path);
        let _ = fs::remove_file(&self.map_path);
    }
}

fn punch_hole(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on a valid descriptor; failure only means the space is not freed.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        // No hole punching here (some filesystems): overwrite with zeros instead, so at
        // least stale bytes are gone; the space is reclaimed when the blob is dropped.
        let _ = f.write_all_at(&vec![0u8; len as usize], offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(i: u64, n: u64) -> Vec<u8> {
        (0..n).map(|j| (i as u8).wrapping_add(j as u8)).collect()
    }

    #[test]
    fn blocks_persist_across_reopen() {
        let d = tempfile::tempdir().unwrap();
        let len = 3 * BLOCK_SIZE + 100;
        {
            let f = BlockFile::open(d.path(), "a1-v", len).unwrap();
            assert_eq!(f.block_count(), 4);
            assert_eq!(f.block_len(3), 100);
            assert_eq!(f.missing(0, 3), vec![0, 1, 2, 3]);
            f.write_block(1, &block(1, BLOCK_SIZE)).unwrap();
            f.write_block(3, &block(3, 100)).unwrap();
            assert!(f.write_block(2, &[1, 2, 3]).is_err(), "wrong length");
        }
        let f = BlockFile::open(d.path(), "a1-v", len).unwrap();
        assert_eq!(f.missing(0, 3), vec![0, 2]);
        assert_eq!(
            f.read(BLOCK_SIZE + 5, 10).unwrap(),
            &block(1, BLOCK_SIZE)[5..15]
        );
        assert_eq!(f.read(3 * BLOCK_SIZE, 1000).unwrap(), block(3, 100));
        assert_eq!(
            BlockFile::recorded_blocks(&d.path().join("a1-v.map")),
            vec![1, 3]
        );
        assert_eq!(
            BlockFile::recorded_len(&d.path().join("a1-v.map")),
            Some(len)
        );
        // A different length (a changed blob) starts over.
        let g = BlockFile::open(d.path(), "a1-v", len + 1).unwrap();
        assert_eq!(g.missing(0, 3).len(), 4);
    }

    #[test]
    fn a_deleted_blob_stays_deleted() {
        let d = tempfile::tempdir().unwrap();
        let f = BlockFile::open(d.path(), "a3-v", BLOCK_SIZE).unwrap();
        f.delete_files();
        f.write_block(0, &block(0, BLOCK_SIZE)).unwrap(); // a late write after rm
        assert!(!d.path().join("a3-v.map").exists());
        // A map whose data file is gone claims nothing.
        let g = BlockFile::open(d.path(), "a4-v", BLOCK_SIZE).unwrap();
        g.write_block(0, &block(0, BLOCK_SIZE)).unwrap();
        drop(g);
        fs::remove_file(d.path().join("a4-v.data")).unwrap();
        let g = BlockFile::open(d.path(), "a4-v", BLOCK_SIZE).unwrap();
        assert_eq!(g.missing(0, 0), vec![0]);
    }

    #[test]
    fn punching_clears_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let f = BlockFile::open(d.path(), "a2-v", 2 * BLOCK_SIZE).unwrap();
        f.write_block(0, &block(0, BLOCK_SIZE)).unwrap();
        f.write_block(1, &block(1, BLOCK_SIZE)).unwrap();
        assert!(f.all_present());
        let e = f.evictions();
        f.punch(0);
        assert_eq!(f.evictions(), e + 1);
        assert_eq!(f.missing(0, 1), vec![0]);
        assert_eq!(f.read(0, 4).unwrap(), vec![0; 4], "punched: no stale bytes");
        f.punch(1);
        assert_eq!(f.missing(0, 1), vec![0, 1]);
    }

    #[test]
    fn an_eviction_the_map_cannot_record_keeps_the_bytes_it_still_claims() {
        let d = tempfile::tempdir().unwrap();
        let map = d.path().join("a5-v.map");
        let f = BlockFile::open(d.path(), "a5-v", 2 * BLOCK_SIZE).unwrap();
        f.write_block(0, &block(0, BLOCK_SIZE)).unwrap();
        f.write_block(1, &block(1, BLOCK_SIZE)).unwrap();
        // The map can't be written (here: a directory where it was).
        let on_disk = fs::read(&map).unwrap();
        fs::remove_file(&map).unwrap();
        fs::create_dir(&map).unwrap();
        f.punch(0);
        assert_eq!(f.missing(0, 1), vec![0], "this process no longer serves it");
        drop(f);
        // Remounted with the map as the disk still has it: block 0 present, and its bytes.
        fs::remove_dir(&map).unwrap();
        fs::write(&map, on_disk).unwrap();
        let f = BlockFile::open(d.path(), "a5-v", 2 * BLOCK_SIZE).unwrap();
        assert!(f.all_present());
        let kept = f.read(0, BLOCK_SIZE as usize).unwrap() == block(0, BLOCK_SIZE);
        assert!(
            kept,
            "block 0 reads as what was written, not a punched hole"
        );
    }
}
