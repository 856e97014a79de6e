//! One inflate stream over a deflated zip entry's compressed bytes: from the start (checking
//! the CRC-32, recording seek points, writing every block of the inflated copy) or from a seek
//! point (writing the blocks it completes). Used by a reader's read and by the background
//! pass that inflates a randomly read entry to its copy. Untrusted input rules as in
//! `archive::entry`: never more output than the declared size, a stream that ends early or
//! late is corrupt.
//!
//! A stream from the start also takes the CRC-32C of every blob block whole inside the
//! entry's compressed bytes, from the bytes the inflater consumes, in order
//! ([`Stream::input_sums`]): once the CRC-32 verified, they are what the entry vouches for,
//! and sealing them checks every later fetch of those blocks (see `InflatedEntry::completed`).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::DataError;
use super::blob::CachedBlob;
use super::inflated_copy::CopyWriter;
use super::pieces::read_vouched;
use super::raw_inflate::RawInflate;
use super::readahead::Readahead;
use super::seek_index::SeekRecorder;
use super::verify::BlockSums;
use crate::archive::central_directory::ZipEntry;
use crate::archive::error::corrupt;

/// Most output produced per inflate call.
const OUT_CHUNK: u64 = 256 << 10;

pub struct Stream {
    z: RawInflate,
    /// Compressed bytes consumed.
    pub in_pos: u64,
    /// Uncompressed bytes produced.
    pub out_pos: u64,
    /// The CRC-32 of everything produced: only for a stream from the start.
    crc: Option<crc32fast::Hasher>,
    input: Bytes,
    input_at: usize,
    /// Seek points this stream is recording (a stream from the start, no index yet).
    pub recorder: Option<SeekRecorder>,
    /// The inflated copy this stream writes (when the cache takes one).
    pub writer: Option<CopyWriter>,
    /// The checksums of the blob blocks inside the compressed bytes consumed so far (a
    /// stream from the start only): what the CRC-32 vouches for once it verified.
    input_sums: Option<BlockSums>,
}

/// Where a stream's compressed bytes come from (the entry's data at `start` in `blob`), how
/// much it asks for at a time, and where its output is counted.
pub struct Input<'a> {
    pub entry: &'a ZipEntry,
    pub blob: &'a CachedBlob,
    pub start: u64,
    pub readahead: &'a Readahead,
    pub chunk: u64,
    pub inflated: &'a AtomicU64,
}

impl Input<'_> {
    /// Compressed bytes `at..at + len`, widened to take in whole any piece they cut (the
    /// blob's map keeps the pieces at the edges of the compressed bytes that a verified
    /// stream vouched for: their blocks are shared with other bytes, so not sealed), each
    /// such piece checked against what the entry's CRC-32 verified: a mismatch drops its
    /// block and reads once more, then it is a failed check.
    async fn read(&self, at: u64, len: u64) -> Result<Bytes, DataError> {
        let e = self.entry;
        let (from, to) = (self.start + at, self.start + at + len);
        let bytes = read_vouched(self.blob, (from, to), &e.name).await?;
        if (bytes.len() as u64) < len {
            return Err(corrupt(format!("{}: compressed data cut short", e.name)).into());
        }
        Ok(bytes)
    }
}

impl Stream {
    pub fn new(z: RawInflate, in_pos: u64, out_pos: u64, record: bool) -> Stream {
        Stream {
            z,
            in_pos,
            out_pos,
            crc: (out_pos == 0).then(crc32fast::Hasher::new),
            input: Bytes::new(),
            input_at: 0,
            recorder: record.then(SeekRecorder::default),
            writer: None,
            input_sums: None,
        }
    }

    /// Where the stream's next read of compressed bytes starts (after what it holds).
    pub fn next_input_at(&self) -> u64 {
        self.in_pos + (self.input.len() - self.input_at) as u64
    }

    /// Whether this stream started at the entry's first byte (it checks the CRC-32).
    pub fn is_from_start(&self) -> bool {
        self.crc.is_some()
    }

    /// The CRC-32C of every blob block whole inside the compressed bytes, and of the pieces
    /// at their edges, once a stream from the start has consumed them all (after
    /// [`Stream::run`] returned true, the CRC-32 verified them).
    pub fn input_sums(&self) -> Option<&BlockSums> {
        self.input_sums.as_ref()
    }

    /// Inflates until `upto` bytes have been produced, handing each piece of output to `sink`
    /// with its offset. True when the stream reached its end, with the declared size and (from
    /// the start) the right CRC-32.
    pub async fn run(
        &mut self,
        src: &Input<'_>,
        upto: u64,
        sink: &mut (dyn FnMut(u64, &[u8]) + Send),
    ) -> Result<bool, DataError> {
        let e = src.entry;
        if self.crc.is_some() && self.in_pos == 0 && self.input_sums.is_none() {
            self.input_sums = Some(BlockSums::new(src.start, e.compressed_size));
        }
        let mut buf = vec![0u8; OUT_CHUNK as usize];
        let mut idle = 0u32;
        loop {
            let at_size = self.out_pos == e.uncompressed_size;
            if self.out_pos >= upto && !at_size {
                return Ok(false);
            }
            if self.input_at >= self.input.len() && self.in_pos < e.compressed_size {
                let len = (e.compressed_size - self.in_pos).min(src.chunk);
                let at = self.in_pos;
                self.input = src
                    .readahead
                    .around_read(at, len, src.read(at, len))
                    .await?;
                self.input_at = 0;
                continue;
            }
            // At the declared size, one more byte would prove the entry lies about it.
            let want = if at_size { 1 } else { upto - self.out_pos };
            let cap = want.min(OUT_CHUNK) as usize;
            let step = self
                .z
                .inflate(&self.input[self.input_at..], &mut buf[..cap])
                .map_err(|m| corrupt(format!("{}: {m}", e.name)))?;
            let (used, made) = (step.used, step.made);
            if let Some(sums) = self.input_sums.as_mut() {
                // Exactly the bytes the inflater took, in order from the entry's first.
                sums.absorb(
                    self.in_pos,
                    &self.input[self.input_at..self.input_at + used],
                );
            }
            self.input_at += used;
            self.in_pos += used as u64;
            let from = self.out_pos;
            if from + made as u64 > e.uncompressed_size {
                return Err(corrupt(format!(
                    "{}: inflates past its declared size {}",
                    e.name, e.uncompressed_size
                ))
                .into());
            }
            let produced = &buf[..made];
            if let Some(crc) = self.crc.as_mut() {
                crc.update(produced);
            }
            if let Some(r) = self.recorder.as_mut() {
                r.output(produced);
            }
            self.out_pos += made as u64;
            src.inflated.fetch_add(made as u64, Ordering::Relaxed);
            if let Some(bits) = step.boundary
                && self.input_at > 0
                && let Some(r) = self.recorder.as_mut()
            {
                r.boundary(
                    self.out_pos,
                    self.in_pos,
                    bits,
                    self.input[self.input_at - 1],
                );
            }
            if let Some(w) = self.writer.as_mut() {
                w.take(from, produced)?;
            }
            sink(from, produced);
            if step.ended {
                self.check_end(e)?;
                return Ok(true);
            }
            // A call at a block boundary may move nothing once; twice in a row is a stall.
            idle = if used == 0 && made == 0 { idle + 1 } else { 0 };
            if idle > 0
                && (step.boundary.is_none() || idle > 1 || self.input_at >= self.input.len())
            {
                if self.input_at < self.input.len() {
                    return Err(corrupt(format!("{}: deflate stream stalled", e.name)).into());
                }
                // No input left and nothing more comes out.
                if at_size {
                    self.check_end(e)?; // every declared byte: the end
                    return Ok(true);
                }
                return Err(corrupt(format!("{}: compressed data ends early", e.name)).into());
            }
        }
    }

    /// The stream ended: the declared size, and (from the start) the CRC-32.
    fn check_end(&self, e: &ZipEntry) -> Result<(), DataError> {
        if self.out_pos != e.uncompressed_size {
            return Err(corrupt(format!(
                "{}: inflates to {} bytes, declared {}",
                e.name, self.out_pos, e.uncompressed_size
            ))
            .into());
        }
        // A stream from a seek point cannot check the CRC: its readers' checks do.
        if let Some(crc) = self.crc.clone() {
            let got = crc.finalize();
            if got != e.crc32 {
                return Err(DataError::Integrity(format!(
                    "{}: CRC-32 {got:08x}, expected {:08x}",
                    e.name, e.crc32
                )));
            }
        }
        Ok(())
    }
}
