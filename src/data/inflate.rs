//! A deflated zip entry served as it is inflated. One [`InflatedEntry`] per entry, shared by
//! its readers: a streaming inflater fed by ranged reads of the compressed bytes (through the
//! block cache, with readahead), whose output is served at once and, when the cache has room
//! for the whole entry, also written to a temporary file that becomes the cached inflated copy
//! once the stream ends with the right size and CRC-32.
//!
//! So `head` of a big log costs its first compressed chunks; a later read of bytes already
//! inflated is a `pread` of the partial copy; a read behind the stream with no copy (an entry
//! bigger than the cache, a full disk) inflates again from the start. An evicted copy is
//! simply inflated again. Untrusted input rules as in `archive::entry`: never more output
//! than the declared size, a stream that ends early or late is corrupt.
//!
//! The per-entry stream sits behind an async mutex: readers of the same entry wait for the
//! bytes they all need; readers of other files never wait on it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};

use super::DataError;
use super::blob::CachedBlob;
use super::prefetch::Readahead;
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
}

#[derive(Default)]
struct State {
    /// The complete, CRC-checked copy in the cache.
    complete: Option<Arc<File>>,
    stream: Option<Stream>,
    /// The copy being written by the current stream: bytes `0..stream.out_pos`.
    spill: Option<Spill>,
}

struct Stream {
    z: Decompress,
    /// Compressed bytes consumed.
    in_pos: u64,
    /// Uncompressed bytes produced.
    out_pos: u64,
    crc: crc32fast::Hasher,
    input: Bytes,
    input_at: usize,
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
        let mut st = self.state.lock().await;
        if let Some(f) = self.complete_copy(&mut st) {
            drop(st);
            return Ok(pread_full(&f, off, n as usize)?);
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
        if st.stream.as_ref().is_none_or(|s| s.out_pos > off) {
            self.restart(&mut st);
        }
        let result = self.advance(&mut st, off, n).await;
        if result.is_err() {
            // A failed stream is not resumed: the next read starts over.
            st.stream = None;
            st.spill = None;
        }
        result
    }

    /// The committed copy, if the cache still has it.
    fn complete_copy(&self, st: &mut State) -> Option<Arc<File>> {
        match self.cache.entry(&self.key, self.index) {
            Some(path) => {
                if st.complete.is_none() {
                    st.complete = File::open(path).ok().map(Arc::new);
                }
                st.complete.clone()
            }
            None => {
                st.complete = None; // evicted: inflate again
                None
            }
        }
    }

    /// A new stream from the start, writing a copy when the cache has room for all of it.
    fn restart(&self, st: &mut State) {
        st.spill = None;
        st.stream = Some(Stream {
            z: Decompress::new(false),
            in_pos: 0,
            out_pos: 0,
            crc: crc32fast::Hasher::new(),
            input: Bytes::new(),
            input_at: 0,
        });
        let size = self.entry.uncompressed_size;
        if !self.cache.fits(size) {
            return;
        }
        let Some(reservation) = self.cache.reserve(size) else {
            return;
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
    }

    /// Inflates until `off + n` has been produced, returning bytes `off..off + n`.
    async fn advance(&self, st: &mut State, off: u64, n: u64) -> Result<Vec<u8>, DataError> {
        let e = &self.entry;
        let mut out = Vec::with_capacity(n as usize);
        let mut buf = vec![0u8; OUT_CHUNK as usize];
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
            let (in0, out0) = (s.z.total_in(), s.z.total_out());
            let status =
                s.z.decompress(
                    &s.input[s.input_at..],
                    &mut buf[..cap],
                    FlushDecompress::None,
                )
                .map_err(|x| corrupt(format!("{}: corrupt deflate data: {x}", e.name)))?;
            let used = (s.z.total_in() - in0) as usize;
            let made = (s.z.total_out() - out0) as usize;
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
            s.crc.update(produced);
            s.out_pos += made as u64;
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
            if status == Status::StreamEnd {
                self.finish(st)?;
                return Ok(out);
            }
            if used == 0 && made == 0 {
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
        let got = s.crc.clone().finalize();
        if got != e.crc32 {
            return Err(DataError::Integrity(format!(
                "{}: CRC-32 {got:08x}, expected {:08x}",
                e.name, e.crc32
            )));
        }
        if let Some(sp) = st.spill.take() {
            match self
                .cache
                .commit_entry(&self.key, self.index, &sp.path, &sp.reservation)
            {
                Ok(path) => st.complete = File::open(path).ok().map(Arc::new),
                Err(err) => self.cache.write_failed("an inflated entry", &err),
            }
        }
        Ok(())
    }
}
