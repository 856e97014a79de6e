//! A deflated entry's inflated copy in the cache: a block file beside its blob's (keyed by the
//! blob key and the entry: `blocks/a{id}-{version}-e{n}.data` and `.map`), so it carries a
//! CRC-32C per 128 KiB block like every cached blob, is evicted block by block in the one
//! LRU, survives a remount, and is sealed once a stream from the start has verified the
//! entry's CRC-32 ([`InflatedCopy::seal`]): from then on every block written to it must match
//! its sealed checksum. A block damaged on disk is noticed when read, dropped, and inflated
//! again; it is never served.
//!
//! [`CopyWriter`] cuts a stream's output into whole blocks and stores them, reporting how far
//! the copy now reaches from the start (the frontier readers behind it wait for).

use std::sync::Arc;

use tokio::sync::watch;

use super::DataError;
use crate::cache::blocks::{bad_block, checksum};
use crate::cache::{BLOCK_SIZE, BlobKey, BlockFile, BlocksStored, DiskCache};

/// Entries smaller than this get no copy: inflating one again from its cached compressed
/// bytes takes a few milliseconds, and each copy keeps its block file open for the mount.
pub const MIN_COPY: u64 = 1 << 20;

pub struct InflatedCopy {
    cache: Arc<DiskCache>,
    /// The copy's own key: the blob's, with the entry in its version.
    key: BlobKey,
    file: Arc<BlockFile>,
    size: u64,
}

/// How far a background pass has come: the copy holds every block before `frontier`; `ended`
/// once the pass stopped (`Some(Ok)`: verified and sealed; `Some(Err(Some(m)))`: the entry
/// failed its check; `Some(Err(None))`: it stopped for another reason, such as a network error).
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub frontier: u64,
    pub ended: Option<Result<(), Option<String>>>,
}

impl InflatedCopy {
    /// The key of entry `index`'s copy of blob `blob`. Its stem starts with the blob's, so
    /// dropping the blob's id drops its copies too.
    pub fn key_for(blob: &BlobKey, index: usize) -> BlobKey {
        BlobKey {
            id: blob.id,
            version: format!("{}-e{index}", blob.version),
        }
    }

    /// The copy of entry `index` (`size` bytes inflated), when the cache takes it: it is at
    /// least [`MIN_COPY`], fits in half the cache, and its files can be opened.
    pub fn open(
        cache: &Arc<DiskCache>,
        blob: &BlobKey,
        index: usize,
        size: u64,
    ) -> Option<InflatedCopy> {
        if size < MIN_COPY || !cache.fits(size) {
            return None;
        }
        let key = Self::key_for(blob, index);
        match cache.block_file(&key, size) {
            Ok(file) => Some(InflatedCopy {
                cache: cache.clone(),
                key,
                file,
                size,
            }),
            Err(e) => {
                cache.write_failed("an inflated copy's map", &e);
                None
            }
        }
    }

    /// Whether a stream from the start verified the copy's blocks (see the module doc).
    pub fn is_sealed(&self) -> bool {
        self.file.is_sealed()
    }

    /// Bytes `off..off + n` (within the entry) when every block under them is present and
    /// matches its checksum. A damaged block is dropped (to be inflated again), not served.
    pub fn read(&self, off: u64, n: u64) -> Option<Vec<u8>> {
        if n == 0 || off + n > self.size {
            return None;
        }
        let (first, last) = (off / BLOCK_SIZE, (off + n - 1) / BLOCK_SIZE);
        if !self.file.missing(first, last).is_empty() {
            return None;
        }
        // Pinned: eviction cannot punch them between the look and the read.
        let _pin = self.cache.pin(&self.key, first, last);
        if !self.file.missing(first, last).is_empty() {
            return None;
        }
        match self.file.read(off, n as usize) {
            Ok(b) if b.len() as u64 == n => {
                self.cache.touch_blocks(&self.key, first, last);
                Some(Vec::from(b))
            }
            Ok(_) => None,
            Err(e) => {
                match bad_block(&e) {
                    Some(i) => {
                        tracing::warn!(
                            copy = %self.key.stem(),
                            block = i,
                            "cache: a block of an inflated copy does not match its checksum; \
                             dropped, inflated again"
                        );
                        self.file.punch(i);
                        self.cache.remove_blocks(&self.key, &[i]);
                    }
                    None => self.cache.write_failed("(reading) an inflated copy", &e),
                }
                None
            }
        }
    }

    /// Err when the copy is sealed and `sum` is not block `i`'s sealed checksum: the stream
    /// that made the block went wrong.
    fn check(&self, i: u64, sum: u32) -> Result<(), DataError> {
        if self.file.matches(i, sum) {
            Ok(())
        } else {
            Err(sealed_mismatch(i))
        }
    }

    /// Stores block `i`, in room the cache reserves for it first. Ok(false): not stored (the
    /// cache is paused, a write failed and paused it, or there was no room beside what reads
    /// in flight pin); the bytes are still served from the stream. Err: the copy is sealed
    /// and these bytes differ from what its seal says, so the stream that made them went
    /// wrong.
    fn store(&self, i: u64, bytes: &[u8]) -> Result<bool, DataError> {
        if !self.cache.writable() {
            return Ok(false);
        }
        match self.cache.store_blocks(&self.key, &self.file, i, bytes) {
            Ok(BlocksStored::Written { bad }) if bad.is_empty() => Ok(true),
            Ok(BlocksStored::Written { .. }) => Err(sealed_mismatch(i)),
            Ok(BlocksStored::NoRoom) => Ok(false),
            Err(e) => {
                self.cache.write_failed("an inflated copy", &e);
                Ok(false)
            }
        }
    }

    /// Seals the copy with the checksums of every block, as a stream from the start made
    /// them and the entry's CRC-32 verified them (a present block that differs is dropped).
    pub fn seal(&self, sums: &[u32]) {
        if sums.len() as u64 != self.file.block_count() {
            return;
        }
        match self.file.seal(sums) {
            Ok(stale) => self.cache.remove_blocks(&self.key, &stale),
            Err(e) => self.cache.write_failed("an inflated copy's map (seal)", &e),
        }
    }

    /// Drops every block and the seal (the entry failed a check).
    pub fn drop_all(&self) {
        let present: Vec<u64> = (0..self.file.block_count())
            .filter(|&i| self.file.has(i))
            .collect();
        for &i in &present {
            self.file.punch(i);
        }
        self.cache.remove_blocks(&self.key, &present);
        self.file.retire();
        self.file.unseal();
        self.cache.account_map_of(&self.key, &self.file);
    }
}

fn sealed_mismatch(i: u64) -> DataError {
    DataError::Integrity(format!(
        "inflated block {i} differs from the copy's sealed checksum"
    ))
}

/// Cuts a stream's output into the copy's blocks: from the first block boundary the stream
/// reaches, each whole block is stored; a stream from the start also keeps every block's
/// checksum, for the seal.
pub struct CopyWriter {
    copy: Arc<InflatedCopy>,
    /// Where `buf` starts (a block boundary), once the stream has reached one.
    at: Option<u64>,
    buf: Vec<u8>,
    /// Every block's checksum so far (a stream from the start only).
    sums: Option<Vec<u32>>,
    /// Where to report the frontier (a background pass).
    progress: Option<watch::Sender<Progress>>,
    /// A write failed: nothing more is stored by this stream.
    stopped: bool,
}

impl CopyWriter {
    /// For a stream whose next output is at `from`.
    pub fn new(copy: Arc<InflatedCopy>, from: u64) -> CopyWriter {
        let aligned = from.is_multiple_of(BLOCK_SIZE);
        CopyWriter {
            copy,
            at: aligned.then_some(from),
            buf: Vec::new(),
            sums: (from == 0).then(Vec::new),
            progress: None,
            stopped: false,
        }
    }

    /// Reports the frontier to `tx` from now on.
    pub fn report_to(&mut self, tx: watch::Sender<Progress>) {
        tx.send_modify(|p| p.frontier = p.frontier.max(self.stored_to()));
        self.progress = Some(tx);
    }

    /// How far the blocks stored by this writer reach (from a stream from the start: the
    /// frontier).
    fn stored_to(&self) -> u64 {
        if self.stopped {
            return 0;
        }
        self.at.unwrap_or(0)
    }

    /// Whether a write failed (nothing more is stored by this stream).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The checksum of every block, once a stream from the start produced them all.
    pub fn sums(&self) -> Option<&[u32]> {
        self.sums
            .as_deref()
            .filter(|s| s.len() as u64 == self.copy.file.block_count())
    }

    /// The copy written to.
    pub fn copy(&self) -> &Arc<InflatedCopy> {
        &self.copy
    }

    /// Takes output `produced` at `from` (right after the previous output).
    pub fn take(&mut self, from: u64, produced: &[u8]) -> Result<(), DataError> {
        let size = self.copy.size;
        let at = match self.at {
            Some(at) => at,
            None => {
                // The first block boundary inside this output, if any.
                let b = from.next_multiple_of(BLOCK_SIZE);
                if b >= from + produced.len() as u64 {
                    return Ok(());
                }
                self.at = Some(b);
                self.buf.clear();
                self.buf.extend_from_slice(&produced[(b - from) as usize..]);
                return self.flush();
            }
        };
        debug_assert_eq!(at + self.buf.len() as u64, from);
        if at + (self.buf.len() as u64) < size {
            self.buf.extend_from_slice(produced);
        }
        self.flush()
    }

    /// Stores the whole blocks gathered.
    fn flush(&mut self) -> Result<(), DataError> {
        let size = self.copy.size;
        let mut done = 0;
        while let Some(at) = self.at {
            let want = BLOCK_SIZE.min(size - at) as usize;
            if want == 0 || self.buf.len() - done < want {
                break;
            }
            let block = &self.buf[done..done + want];
            let sum = checksum(block);
            if let Some(s) = self.sums.as_mut() {
                s.push(sum);
            }
            // Checked against the seal even when not stored (a paused cache, a failed
            // write): the stream's output is served either way.
            self.copy.check(at / BLOCK_SIZE, sum)?;
            if !self.stopped && !self.copy.store(at / BLOCK_SIZE, block)? {
                self.stopped = true;
            }
            done += want;
            self.at = Some(at + want as u64);
            if let Some(tx) = &self.progress {
                let to = self.stored_to();
                tx.send_modify(|p| p.frontier = p.frontier.max(to));
            }
        }
        self.buf.drain(..done);
        Ok(())
    }
}
