//! One blob's bytes on disk, block by block: a sparse data file plus a persisted map of the
//! blocks present and of each block's checksum, so that a remount with the same cache
//! directory serves everything already fetched without asking the network, and a block that
//! comes back different (zeros, a flipped bit, a torn write) is noticed at that block.
//!
//! **Block size: 128 KiB.** It is the unit of caching and of eviction, not of requests
//! (contiguous missing blocks are fetched in one ranged request, up to 8 MiB). Smaller blocks
//! waste less on a cold small read: a `cat` of a 10 KB log in a big archive costs the tail
//! (65.6 KiB → at most 2 blocks), the central directory (usually 1–2 more) and the entry's
//! block(s): about 0.5 MiB, under the 1 MiB budget, where 1 MiB blocks would cost 3–4 MiB.
//! 128 KiB is also the kernel's largest FUSE read, so a read never straddles more than two
//! blocks; and the map stays small (66 KiB for a 2 GiB blob). `docs/benchmarks.md` has the
//! bytes-fetched figures this was checked against.
//!
//! **Checksums.** Every block gets a CRC-32C when it is stored (hardware-assisted: ~10 µs a
//! block), and every read from the data file checks the blocks it touches against theirs: a
//! mismatch is a [`BadBlock`] error, never bytes. Once the blob's digest has vouched for
//! them (see `data::seal`), the checksums are *sealed*: they are kept when their blocks are
//! evicted, and a block stored again must match its sealed checksum ([`BlockFile::matches`]).
//! Blocks can also be sealed one by one ([`BlockFile::seal_blocks`]: the blocks inside an
//! entry whose read-through passed its CRC), and so can *pieces* of blocks
//! ([`BlockFile::seal_pieces`]: such an entry's part of each of the two blocks it shares with
//! its neighbours, see [`Piece`]), which every read that touches one checks
//! (`data::pieces::read_vouched`). Pieces live as long as seals do: kept when their blocks
//! are evicted, forgotten by [`BlockFile::unseal`]; a block sealed whole needs none (its
//! pieces are dropped when it seals, and none is taken for it since).
//!
//! Files: `blocks/{stem}.data` (sparse, 0600) and `blocks/{stem}.map` (its format, and what
//! this process knows of it, are `block_map`'s). Data is written before its checksum,
//! the checksum before its bit; an evicted block's bit is cleared (and the eviction counted)
//! before its hole is punched, so a reader that sees the counter unchanged around its `pread`
//! read real bytes, and a torn write is a checksum mismatch, not bytes served.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::block_map::{BlockMap, pieces_at, present_at, read_header, records_at, sum_at};
use super::sealed_pieces::{Piece, SealedPieces};

pub const BLOCK_SIZE: u64 = 128 * 1024;

/// A block whose bytes on disk do not match its checksum (the error's inner value).
#[derive(Debug)]
pub struct BadBlock(pub u64);

impl std::fmt::Display for BadBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cached block {} does not match its checksum", self.0)
    }
}

impl std::error::Error for BadBlock {}

/// The block a read found damaged, if that is what `e` is.
pub fn bad_block(e: &io::Error) -> Option<u64> {
    e.get_ref()?.downcast_ref::<BadBlock>().map(|b| b.0)
}

/// The checksum a block gets.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

pub struct BlockFile {
    len: u64,
    data: File,
    data_path: PathBuf,
    map_path: PathBuf,
    meta: Mutex<BlockMap>,
    evictions: AtomicU64,
    /// Blocks written so far (with `evictions`: whether any byte may differ from before).
    writes: AtomicU64,
    /// Deleted with its blob (`rm`): a late write must not bring the map back.
    deleted: AtomicBool,
    /// Bytes the `.map` file holds (0: there is none), kept beside the lock so that the
    /// cache accounts the map as the file is without waiting on this blob's writes.
    map_file_len: AtomicU64,
    /// Tests only: writes to the data file fail (as at a full disk, or EFBIG).
    #[cfg(test)]
    pub(crate) fail_data_writes: AtomicBool,
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
    /// previous run stored when the length and the map's format match (else starting empty).
    pub fn open(dir: &Path, stem: &str, len: u64) -> io::Result<BlockFile> {
        Self::open_with(dir, stem, len, true)
    }

    /// [`BlockFile::open`], but a map that is not there is not created: the blob starts
    /// retired (see [`BlockFile::retire`]), and its map comes with the first block stored (the
    /// cache had no room for it now).
    pub fn open_without_map(dir: &Path, stem: &str, len: u64) -> io::Result<BlockFile> {
        Self::open_with(dir, stem, len, false)
    }

    fn open_with(dir: &Path, stem: &str, len: u64, create_map: bool) -> io::Result<BlockFile> {
        let data_path = dir.join(format!("{stem}.data"));
        let map_path = dir.join(format!("{stem}.map"));
        // A map without its data file (deleted, or lost) must not claim anything.
        let had_data = data_path.exists();
        let data = open_private(&data_path)?;
        // The map is opened per write, not kept: one descriptor per blob, not two.
        let map = match create_map {
            true => Some(open_private(&map_path)?),
            false => match OpenOptions::new().read(true).write(true).open(&map_path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
        };
        let loaded = map
            .as_ref()
            .filter(|_| had_data)
            .and_then(|m| BlockMap::load(m, len));
        let kept = loaded.is_some();
        let mut meta = loaded.unwrap_or_else(|| BlockMap::empty(len));
        meta.on_disk = map.is_some();
        if !kept {
            data.set_len(0)?;
        }
        data.set_len(len)?;
        drop(map);
        let f = BlockFile {
            len,
            data,
            data_path,
            map_path,
            meta: Mutex::new(meta),
            evictions: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
            map_file_len: AtomicU64::new(0),
            #[cfg(test)]
            fail_data_writes: AtomicBool::new(false),
        };
        f.persist_all(&mut f.meta.lock().unwrap(), false)?;
        Ok(f)
    }

    /// Reads the blob length recorded in a `.map` file (`None`: none, or another format).
    pub fn recorded_len(map_path: &Path) -> Option<u64> {
        read_header(&File::open(map_path).ok()?).map(|h| h.0)
    }

    /// The blocks a `.map` file says are present (for accounting at startup).
    pub fn recorded_blocks(map_path: &Path) -> Vec<u64> {
        let Ok(bytes) = fs::read(map_path) else {
            return Vec::new();
        };
        let Some(len) = Self::recorded_len(map_path) else {
            return Vec::new();
        };
        let n = len.div_ceil(BLOCK_SIZE);
        (0..n)
            .filter(|&i| {
                bytes
                    .get(present_at(i) as usize)
                    .is_some_and(|b| b & (1 << (i % 8)) != 0)
            })
            .collect()
    }

    /// Writes the whole map (creating it only when `create`: a map deleted with its blob
    /// stays deleted).
    fn persist_all(&self, m: &mut BlockMap, create: bool) -> io::Result<()> {
        let buf = m.encode(self.len);
        let f = if create {
            open_private(&self.map_path)
        } else {
            OpenOptions::new().write(true).open(&self.map_path)
        };
        match f {
            // Cut to what was written: pieces forgotten since the last write are gone.
            Ok(f) => f
                .write_all_at(&buf, 0)
                .and_then(|()| f.set_len(buf.len() as u64))
                .map(|()| {
                    m.pieces_on_disk = m.pieces.kept();
                    self.map_file_len.store(buf.len() as u64, Ordering::SeqCst);
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes pieces just sealed (`new`, the last of `m.pieces`) after those the map holds,
    /// then their number: a write torn between the two leaves them out. The whole map when
    /// it does not hold exactly the others (an earlier write failed, a piece changed).
    fn persist_pieces(&self, m: &mut BlockMap, new: &[Piece]) -> io::Result<()> {
        if m.pieces_on_disk + new.len() != m.pieces.kept() {
            return self.persist_all(m, false);
        }
        let f = match OpenOptions::new().write(true).open(&self.map_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let at = pieces_at(self.len);
        let records = records_at(self.len) + (m.pieces_on_disk * Piece::ENCODED) as u64;
        f.write_all_at(&SealedPieces::encode(new), records)?;
        f.write_all_at(&(m.pieces.kept() as u32).to_le_bytes(), at)?;
        m.pieces_on_disk = m.pieces.kept();
        self.map_file_len
            .store(m.encoded_len(self.len), Ordering::SeqCst);
        Ok(())
    }

    /// Writes block `i`'s checksum (when `sum`) and its byte of the bitmap.
    fn persist_block(&self, m: &BlockMap, i: u64, sum: bool) -> io::Result<()> {
        let f = match OpenOptions::new().write(true).open(&self.map_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if sum {
            f.write_all_at(&m.sums[i as usize].to_le_bytes(), sum_at(self.len, i))?;
        }
        f.write_all_at(&[m.present[(i / 8) as usize]], present_at(i))
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
        let m = self.meta.lock().unwrap();
        m.present
            .get((i / 8) as usize)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    /// Blocks in `first..=last` that are not present.
    pub fn missing(&self, first: u64, last: u64) -> Vec<u64> {
        let m = self.meta.lock().unwrap();
        (first..=last.min(self.block_count().saturating_sub(1)))
            .filter(|&i| {
                m.present
                    .get((i / 8) as usize)
                    .is_none_or(|b| b & (1 << (i % 8)) == 0)
            })
            .collect()
    }

    pub fn all_present(&self) -> bool {
        self.missing(0, self.block_count().saturating_sub(1))
            .is_empty()
    }

    /// Whether any block is present.
    pub fn any_present(&self) -> bool {
        self.meta.lock().unwrap().present.iter().any(|b| *b != 0)
    }

    /// Whether the blob's digest vouches for the checksums (see [`BlockFile::seal`]).
    pub fn is_sealed(&self) -> bool {
        self.meta.lock().unwrap().sealed
    }

    /// Whether any block's checksum is sealed.
    pub fn any_sealed(&self) -> bool {
        let m = self.meta.lock().unwrap();
        m.sealed || m.sealed_blocks.iter().any(|b| *b != 0)
    }

    /// Whether `sum` may be stored as block `i`: always before its seal; after it, only the
    /// sealed checksum.
    pub fn matches(&self, i: u64, sum: u32) -> bool {
        let m = self.meta.lock().unwrap();
        !m.is_sealed(i) || m.sums.get(i as usize) == Some(&sum)
    }

    /// Stores block `i` (exactly `block_len(i)` bytes, whose checksum is `sum`) and marks it
    /// present. A sealed blob refuses a block that does not match its sealed checksum
    /// (`InvalidData`, see [`BlockFile::matches`]).
    pub fn write_block(&self, i: u64, bytes: &[u8], sum: u32) -> io::Result<()> {
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
        // Held throughout: a retirement (which empties the data file) never meets a write.
        let mut m = self.meta.lock().unwrap();
        if m.is_sealed(i) && m.sums[i as usize] != sum {
            return Err(io::Error::new(io::ErrorKind::InvalidData, BadBlock(i)));
        }
        if !m.on_disk && !self.deleted.load(Ordering::SeqCst) {
            // A retired blob comes back: its map first.
            self.persist_all(&mut m, true)?;
            m.on_disk = true;
        }
        #[cfg(test)]
        if self.fail_data_writes.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        self.data.write_all_at(bytes, i * BLOCK_SIZE)?;
        self.writes.fetch_add(1, Ordering::SeqCst);
        m.sums[i as usize] = sum;
        m.present[(i / 8) as usize] |= 1 << (i % 8);
        self.persist_block(&m, i, true)
    }

    /// Drops block `i`: bit cleared and persisted, then the hole punched (a sealed checksum
    /// stays). When the map can't be written, the bytes stay (the map on disk still says
    /// present: a hole there would be a bad block after a remount); only this process
    /// forgets them.
    pub fn punch(&self, i: u64) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
        let persisted = {
            let mut m = self.meta.lock().unwrap();
            if let Some(b) = m.present.get_mut((i / 8) as usize) {
                *b &= !(1 << (i % 8));
            }
            if i < self.block_count() {
                self.persist_block(&m, i, false)
            } else {
                Ok(())
            }
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

    /// Seals the blob's checksums: `sums` are those of bytes its digest verified. A present
    /// block that no longer matches (stored again since it was hashed) is punched; returns
    /// those blocks.
    pub fn seal(&self, sums: &[u32]) -> io::Result<Vec<u64>> {
        let stale: Vec<u64> = {
            let m = self.meta.lock().unwrap();
            (0..self.block_count())
                .filter(|&i| {
                    m.present[(i / 8) as usize] & (1 << (i % 8)) != 0
                        && m.sums[i as usize] != sums[i as usize]
                })
                .collect()
        };
        for &i in &stale {
            self.punch(i);
        }
        let mut m = self.meta.lock().unwrap();
        m.sums.copy_from_slice(sums);
        m.sealed = true;
        // Every block is sealed whole: no piece is needed any more.
        let pieces = std::mem::take(&mut m.pieces);
        if let Err(e) = self.persist_all(&mut m, false) {
            m.sealed = false;
            m.pieces = pieces;
            return Err(e);
        }
        Ok(stale)
    }

    /// Seals the checksums of some blocks (`(block, checksum)` of bytes a check verified),
    /// like [`BlockFile::seal`] does for all; returns the present blocks punched for not
    /// matching.
    pub fn seal_blocks(&self, sums: &[(u64, u32)]) -> io::Result<Vec<u64>> {
        let stale: Vec<u64> = {
            let m = self.meta.lock().unwrap();
            sums.iter()
                .filter(|(i, s)| {
                    *i < self.block_count()
                        && m.present[(i / 8) as usize] & (1 << (i % 8)) != 0
                        && m.sums[*i as usize] != *s
                })
                .map(|(i, _)| *i)
                .collect()
        };
        for &i in &stale {
            self.punch(i);
        }
        let mut m = self.meta.lock().unwrap();
        for &(i, sum) in sums.iter().filter(|(i, _)| *i < self.block_count()) {
            m.sums[i as usize] = sum;
            m.sealed_blocks[(i / 8) as usize] |= 1 << (i % 8);
        }
        // A block sealed whole needs no piece.
        (m.pieces).retain_blocks(|b| sums.iter().all(|(i, _)| *i != b));
        self.persist_all(&mut m, false)?;
        Ok(stale)
    }

    /// Seals pieces of blocks (what a check verified in blocks it shares with other bytes,
    /// see [`Piece`]), each checked by every later read that touches it
    /// ([`BlockFile::pieces_in`]); a piece of a block sealed whole is not kept (the block's
    /// seal covers it). True when the map grew.
    pub fn seal_pieces(&self, pieces: &[Piece]) -> io::Result<bool> {
        self.add_pieces(pieces, true)
    }

    /// [`BlockFile::seal_pieces`] in memory only (the cache had no room for the map to grow):
    /// checked all the same while this process runs, never written (a later
    /// [`BlockFile::seal_pieces`] of the same piece writes it).
    pub fn seal_pieces_unwritten(&self, pieces: &[Piece]) {
        let _ = self.add_pieces(pieces, false);
    }

    fn add_pieces(&self, pieces: &[Piece], write: bool) -> io::Result<bool> {
        let mut m = self.meta.lock().unwrap();
        let mut new = Vec::new();
        for p in pieces {
            if !m.is_sealed(p.block()) && m.pieces.insert(*p, self.len, write) {
                new.push(*p);
            }
        }
        if new.is_empty() || !m.on_disk || !write {
            // A retired blob writes them when its map comes back.
            return Ok(false);
        }
        self.persist_pieces(&mut m, &new)?;
        Ok(true)
    }

    /// The sealed pieces that share a byte with blob bytes `from..to`.
    pub fn pieces_in(&self, from: u64, to: u64) -> Vec<Piece> {
        self.meta.lock().unwrap().pieces.overlapping(from, to)
    }

    /// Forgets the blob on disk (evicted whole, its blocks gone): the map file is removed and
    /// the data file emptied. Sealed checksums and pieces stay in memory (they cost nothing
    /// more there: the map's vector is kept anyway), so a block fetched again while this
    /// process runs is still checked against them; the next block stored brings the map
    /// back, seals included.
    /// A remount after that meets the blob as new. False (nothing done) while a block is
    /// still present.
    pub fn retire(&self) -> bool {
        let mut m = self.meta.lock().unwrap();
        if m.present.iter().any(|b| *b != 0) {
            return false;
        }
        self.evictions.fetch_add(1, Ordering::SeqCst);
        for i in 0..self.block_count() {
            if !m.is_sealed(i) {
                m.sums[i as usize] = 0;
            }
        }
        m.on_disk = false;
        let _ = self
            .data
            .set_len(0)
            .and_then(|()| self.data.set_len(self.len));
        let _ = fs::remove_file(&self.map_path);
        self.map_file_len.store(0, Ordering::SeqCst);
        true
    }

    /// Forgets every seal, of blocks and of pieces (the bytes they vouched for failed a
    /// check).
    pub fn unseal(&self) {
        let mut m = self.meta.lock().unwrap();
        m.sealed = false;
        m.sealed_blocks.fill(0);
        m.pieces.clear();
        if m.on_disk
            && let Err(e) = self.persist_all(&mut m, false)
        {
            tracing::warn!(map = %self.map_path.display(), "cache: could not record an unseal ({e})");
        }
    }

    /// Whether the blob was deleted (`rm`): its blocks are no longer accounted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
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

    /// `len` bytes at `offset` from the data file (fewer only at the end of the blob), every
    /// block they touch checked against its checksum: a mismatch is an `InvalidData` error
    /// carrying the [`BadBlock`].
    pub fn read(&self, offset: u64, len: usize) -> io::Result<bytes::Bytes> {
        let len = len.min(self.len.saturating_sub(offset) as usize);
        if len == 0 {
            return Ok(bytes::Bytes::new());
        }
        let (first, last) = (offset / BLOCK_SIZE, (offset + len as u64 - 1) / BLOCK_SIZE);
        let start = first * BLOCK_SIZE;
        let end = ((last + 1) * BLOCK_SIZE).min(self.len);
        let mut buf = vec![0u8; (end - start) as usize];
        self.data.read_exact_at(&mut buf, start)?;
        for (k, chunk) in buf.chunks(BLOCK_SIZE as usize).enumerate() {
            let i = first + k as u64;
            let want = self.meta.lock().unwrap().sums[i as usize];
            if checksum(chunk) != want {
                return Err(io::Error::new(io::ErrorKind::InvalidData, BadBlock(i)));
            }
        }
        let at = (offset - start) as usize;
        Ok(bytes::Bytes::from(buf).slice(at..at + len))
    }

    /// Block `i`'s bytes, checked, and its checksum.
    pub fn read_block(&self, i: u64) -> io::Result<(bytes::Bytes, u32)> {
        let b = self.read(i * BLOCK_SIZE, self.block_len(i) as usize)?;
        let sum = self.meta.lock().unwrap().sums[i as usize];
        Ok((b, sum))
    }

    /// Bytes the `.map` file takes (header, bitmaps, checksums and pieces).
    pub fn map_len(&self) -> u64 {
        #[cfg(test)]
        super::lock::assert_not_under_state_lock();
        self.meta.lock().unwrap().encoded_len(self.len)
    }

    /// Bytes the `.map` file holds now; `None` when there is none (retired, deleted, or not
    /// created for want of room). Takes no lock: what the cache accounts a map by.
    pub fn map_size(&self) -> Option<u64> {
        Some(self.map_file_len.load(Ordering::SeqCst)).filter(|&n| n > 0)
    }

    /// Bytes the `.map` file of a blob of `len` bytes takes before any piece is sealed.
    pub fn map_len_for(len: u64) -> u64 {
        records_at(len)
    }

    /// Removes both files (the open descriptors stay valid until dropped).
    pub fn delete_files(&self) {
        self.deleted.store(true, Ordering::SeqCst);
        let _ = fs::remove_file(&self.data_path);
        let _ = fs::remove_file(&self.map_path);
        self.map_file_len.store(0, Ordering::SeqCst);
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
#[path = "blocks_tests.rs"]
mod tests;
