//! A deflated zip entry served as it is inflated. One [`InflatedEntry`] per entry, shared by
//! its readers: a streaming inflater fed by ranged reads of the compressed bytes (through the
//! block cache, with readahead), whose output is served at once and, when the cache has room
//! for the whole entry, also written to a temporary file that becomes the cached inflated copy
//! once the stream ends with the right size and CRC-32.
//!
//! A stream from the start also records seek points ([`super::seek_index`]), kept once the
//! stream verifies: a read behind the stream, or far ahead of it, with no copy to read from
//! (an entry bigger than half the cache, a full disk, an evicted copy) starts from the nearest
//! point before it, inflating at most one span. Untrusted input rules as in `archive::entry`:
//! never more output than the declared size, a stream that ends early or late is corrupt.
//!
//! The per-entry stream sits behind an async mutex: readers of the same entry wait for the
//! bytes they all need; readers of other files never wait on it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::DataError;
use super::blob::CachedBlob;
use super::raw_inflate::{RawInflate, WINDOW};
use super::readahead::Readahead;
use super::seek_index::{SPAN, SeekIndex, SeekPoint};
use crate::archive::central_directory::ZipEntry;
use crate::archive::error::corrupt;
use crate::cache::{BlobKey, DiskCache, Reservation};
use crate::source::ByteSource;

/// Compressed bytes fetched per step.
const READ_CHUNK: u64 = 1 << 20;
/// Most output produced per inflate call.
const OUT_CHUNK: u64 = 256 << 10;

pub struct InflatedEntry {
    blob: Arc<CachedBlob>,
    cache: Arc<DiskCache>,
    key: BlobKey,
    index: usize,
    /// Where the compressed bytes start in the blob.
    start: u64,
    entry: ZipEntry,
    readahead: Readahead,
    state: tokio::sync::Mutex<State>,
    /// Bytes inflated so far, all streams together (what a seek point saves shows here).
    inflated: AtomicU64,
}

#[derive(Default)]
struct State {
    stream: Option<Stream>,
    /// The copy being written by the current stream: bytes `0..stream.out_pos`.
    spill: Option<Spill>,
    /// Seek points from a verified stream (loaded from the cache on first use).
    index: Option<Arc<SeekIndex>>,
    index_loaded: bool,
}

struct Stream {
    z: RawInflate,
    /// Compressed bytes consumed.
    in_pos: u64,
    /// Uncompressed bytes produced.
    out_pos: u64,
    /// The CRC-32 of everything produced: only for a stream from the start.
    crc: Option<crc32fast::Hasher>,
    input: Bytes,
    input_at: usize,
    /// The last output (at least 32 KiB of it once there is that much), for seek points.
    history: Vec<u8>,
    /// Seek points this stream is recording (a stream from the start, no index yet).
    recording: Option<Vec<SeekPoint>>,
}

impl Stream {
    fn new(z: RawInflate, in_pos: u64, out_pos: u64, from_start: bool, record: bool) -> Stream {
        Stream {
            z,
            in_pos,
            out_pos,
            crc: from_start.then(crc32fast::Hasher::new),
            input: Bytes::new(),
            input_at: 0,
            history: Vec::new(),
            recording: record.then(Vec::new),
        }
    }

    fn remember(&mut self, produced: &[u8]) {
        if self.recording.is_none() {
            return;
        }
        self.history.extend_from_slice(produced);
        if self.history.len() > 4 * WINDOW {
            self.history.drain(..self.history.len() - WINDOW);
        }
    }

    /// At a block boundary: a seek point if a span has passed since the last one.
    fn boundary(&mut self, bits: u8, byte: u8) {
        let Some(points) = self.recording.as_mut() else {
            return;
        };
        let last = points.last().map_or(0, |p| p.out);
        if self.out_pos < last + SPAN {
            return;
        }
        let w = self.history.len().saturating_sub(WINDOW);
        points.push(SeekPoint {
            out: self.out_pos,
            input: self.in_pos,
            bits,
            byte,
            window: self.history[w..].to_vec(),
        });
    }
}

struct Spill {
    path: PathBuf,
    file: File,
    reservation: Reservation,
}

impl Drop for Spill {
    fn drop(&mut self) {
        // Still here: not committed (failed, cancelled or abandoned).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `len` bytes at `offset` of a local file (fewer only at its end).
pub fn pread_full(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

impl InflatedEntry {
    pub fn new(
        blob: Arc<CachedBlob>,
        cache: Arc<DiskCache>,
        index: usize,
        start: u64,
        entry: ZipEntry,
    ) -> InflatedEntry {
        InflatedEntry {
            readahead: Readahead::new(blob.clone(), start, entry.compressed_size),
            inflated: AtomicU64::new(0),
            key: blob.key().clone(),
            blob,
            cache,
            index,
            start,
            entry,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The entry's uncompressed size.
    pub fn size(&self) -> u64 {
        self.entry.uncompressed_size
    }

    /// The blob the compressed bytes come from.
    pub fn blob(&self) -> &Arc<CachedBlob> {
        &self.blob
    }

    /// Bytes inflated so far by every stream of this entry.
    #[cfg(test)]
    pub fn inflated(&self) -> u64 {
        self.inflated.load(Ordering::Relaxed)
    }

    /// Forgets every copy of the entry and its compressed bytes (they failed a check).
    pub async fn drop_cached(&self) {
        let mut st = self.state.lock().await;
        *st = State::default();
        self.cache.remove_entry(&self.key, self.index);
        self.blob.drop_range(self.start, self.entry.compressed_size);
    }

    /// Up to `n` bytes at `off` (fewer only at the end).
    pub async fn read(&self, off: u64, n: usize) -> Result<Vec<u8>, DataError> {
        let size = self.entry.uncompressed_size;
        if off >= size || n == 0 {
            return Ok(Vec::new());
        }
        let n = (n as u64).min(size - off);
        // The complete, CRC-checked copy, while the cache has it (opened per read: an idle
        // entry holds no descriptor, and an evicted copy's space is freed at once).
        if let Some(b) = self.read_copy(off, n) {
            return Ok(b);
        }
        let mut st = self.state.lock().await;
        if let Some(b) = self.read_copy(off, n) {
            return Ok(b);
        }
        if let (Some(sp), Some(s)) = (&st.spill, &st.stream)
            && off + n <= s.out_pos
        {
            match pread_full(&sp.file, off, n as usize) {
                Ok(b) if b.len() as u64 == n => return Ok(b),
                Ok(_) => st.spill = None,
                Err(e) => {
                    self.cache.write_failed("(reading) an inflated entry", &e);
                    st.spill = None;
                }
            }
        }
        self.position(&mut st, off)?;
        let result = self.advance(&mut st, off, n).await;
        if result.is_err() {
            // A failed stream is not resumed: the next read starts over.
            st.stream = None;
            st.spill = None;
        }
        result
    }

    /// Bytes `off..off + n` from the committed copy, if the cache still has it. A copy that
    /// cannot be read (a failing cache disk, a truncated file) is dropped with one warning,
    /// and the bytes are inflated again instead.
    fn read_copy(&self, off: u64, n: u64) -> Option<Vec<u8>> {
        let f = File::open(self.cache.entry(&self.key, self.index)?).ok()?;
        let read = pread_full(&f, off, n as usize).and_then(|b| {
            if b.len() as u64 == n {
                Ok(b)
            } else {
                let short = format!("{} of {n} bytes", b.len());
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, short))
            }
        });
        match read {
            Ok(b) => Some(b),
            Err(e) => {
                self.cache.write_failed("(reading) an inflated entry", &e);
                self.cache.remove_entry(&self.key, self.index);
                None
            }
        }
    }

    /// Makes the stream able to reach `off`: the current one if it is at or before it (and
    /// no seek point would skip more than a span of it), else one from the nearest seek
    /// point, else one from the start.
    fn position(&self, st: &mut State, off: u64) -> Result<(), DataError> {
        if !st.index_loaded {
            st.index_loaded = true;
            st.index = self
                .cache
                .seek_points(&self.key, self.index)
                .and_then(|b| SeekIndex::decode(&b))
                .filter(|i| i.size == self.entry.uncompressed_size && i.crc == self.entry.crc32)
                .map(Arc::new);
        }
        let point = st.index.as_ref().and_then(|i| i.before(off)).cloned();
        let current = st.stream.as_ref().map(|s| s.out_pos);
        let keep = match (current, &point) {
            (Some(at), _) if at > off => false,
            // Writing the cached copy: keep going in order.
            (Some(_), _) if st.spill.is_some() => true,
            (Some(at), Some(p)) => p.out <= at + SPAN,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if keep {
            return Ok(());
        }
        match point {
            Some(p) => {
                let z = p
                    .inflater()
                    .map_err(|m| corrupt(format!("{}: {m}", self.entry.name)))?;
                st.spill = None;
                st.stream = Some(Stream::new(z, p.input, p.out, false, false));
            }
            None => self.restart(st)?,
        }
        Ok(())
    }

    /// A new stream from the start, writing a copy when the cache has room for all of it,
    /// and recording seek points unless they are known.
    fn restart(&self, st: &mut State) -> Result<(), DataError> {
        st.spill = None;
        let z = RawInflate::new().map_err(DataError::Inflater)?;
        st.stream = Some(Stream::new(z, 0, 0, true, st.index.is_none()));
        let size = self.entry.uncompressed_size;
        if !self.cache.fits(size) {
            return Ok(());
        }
        let Some(reservation) = self.cache.reserve(size) else {
            return Ok(());
        };
        match self.cache.temp_file() {
            Ok((path, file)) => {
                st.spill = Some(Spill {
                    path,
                    file,
                    reservation,
                })
            }
            Err(e) => self.cache.write_failed("an inflated entry", &e),
        }
        Ok(())
    }

    /// Inflates until `off + n` has been produced, returning bytes `off..off + n`.
    async fn advance(&self, st: &mut State, off: u64, n: u64) -> Result<Vec<u8>, DataError> {
        let e = &self.entry;
        let mut out = Vec::with_capacity(n as usize);
        let mut buf = vec![0u8; OUT_CHUNK as usize];
        let mut idle = 0u32;
        loop {
            let s = st.stream.as_mut().expect("stream started");
            let at_size = s.out_pos == e.uncompressed_size;
            if s.out_pos >= off + n && !at_size {
                return Ok(out);
            }
            if s.input_at >= s.input.len() && s.in_pos < e.compressed_size {
                let len = (e.compressed_size - s.in_pos).min(READ_CHUNK);
                let at = s.in_pos;
                self.readahead.before_read(at, len).await?;
                let input = self.blob.read_at(self.start + at, len as usize).await?;
                if (input.len() as u64) < len {
                    return Err(corrupt(format!("{}: compressed data cut short", e.name)).into());
                }
                let s = st.stream.as_mut().expect("stream started");
                s.input = input;
                s.input_at = 0;
                continue;
            }
            // Never produce past what this read needs: output not served and not copied
            // would be lost.
            // At the declared size, one more byte would prove the entry lies about it.
            let want = if at_size {
                1
            } else if s.out_pos < off {
                off - s.out_pos
            } else {
                off + n - s.out_pos
            };
            let cap = want.min(OUT_CHUNK) as usize;
            let step =
                s.z.inflate(&s.input[s.input_at..], &mut buf[..cap])
                    .map_err(|m| corrupt(format!("{}: {m}", e.name)))?;
            let (used, made) = (step.used, step.made);
            s.input_at += used;
            s.in_pos += used as u64;
            let from = s.out_pos;
            if from + made as u64 > e.uncompressed_size {
                return Err(corrupt(format!(
                    "{}: inflates past its declared size {}",
                    e.name, e.uncompressed_size
                ))
                .into());
            }
            let produced = &buf[..made];
            if let Some(crc) = s.crc.as_mut() {
                crc.update(produced);
            }
            s.remember(produced);
            s.out_pos += made as u64;
            self.inflated.fetch_add(made as u64, Ordering::Relaxed);
            if let Some(bits) = step.boundary
                && s.input_at > 0
            {
                let byte = s.input[s.input_at - 1];
                s.boundary(bits, byte);
            }
            // The part of this output the read asked for.
            let lo = off.max(from);
            let hi = (off + n).min(s.out_pos);
            if hi > lo {
                out.extend_from_slice(&produced[(lo - from) as usize..(hi - from) as usize]);
            }
            if let Some(sp) = &st.spill
                && let Err(err) = sp.file.write_all_at(produced, from)
            {
                self.cache.write_failed("an inflated entry", &err);
                st.spill = None;
            }
            let s = st.stream.as_mut().expect("stream started");
            if step.ended {
                self.finish(st)?;
                return Ok(out);
            }
            // A call at a block boundary may move nothing once; twice in a row is a stall.
            idle = if used == 0 && made == 0 { idle + 1 } else { 0 };
            if idle > 0 && (step.boundary.is_none() || idle > 1 || s.input_at >= s.input.len()) {
                if s.input_at < s.input.len() {
                    return Err(corrupt(format!("{}: deflate stream stalled", e.name)).into());
                }
                // No input left and nothing more comes out.
                if at_size {
                    self.finish(st)?; // every declared byte: the end
                    return Ok(out);
                }
                return Err(corrupt(format!("{}: compressed data ends early", e.name)).into());
            }
        }
    }

    /// The stream produced the declared size (or ended): checks size and CRC-32, and keeps
    /// the copy when it matches.
    fn finish(&self, st: &mut State) -> Result<(), DataError> {
        let e = &self.entry;
        let s = st.stream.as_ref().expect("stream started");
        if s.out_pos != e.uncompressed_size {
            return Err(corrupt(format!(
                "{}: inflates to {} bytes, declared {}",
                e.name, s.out_pos, e.uncompressed_size
            ))
            .into());
        }
        // A stream from a seek point cannot check the CRC: its readers' checks do.
        let Some(crc) = s.crc.clone() else {
            return Ok(());
        };
        let got = crc.finalize();
        if got != e.crc32 {
            return Err(DataError::Integrity(format!(
                "{}: CRC-32 {got:08x}, expected {:08x}",
                e.name, e.crc32
            )));
        }
        let stream = st.stream.as_mut().expect("stream started");
        if let Some(points) = stream.recording.take() {
            let index = SeekIndex {
                size: e.uncompressed_size,
                crc: e.crc32,
                points,
            };
            if !index.points.is_empty() {
                self.cache
                    .store_seek_points(&self.key, self.index, &index.encode());
            }
            st.index = Some(Arc::new(index));
        }
        if let Some(sp) = st.spill.take() {
            match self
                .cache
                .commit_entry(&self.key, self.index, &sp.path, &sp.reservation)
            {
                Ok(_) => {}
                Err(err) => self.cache.write_failed("an inflated entry", &err),
            }
        }
        // Done: the stream's buffers go (a later read uses the copy or a seek point).
        st.stream = None;
        Ok(())
    }
}
