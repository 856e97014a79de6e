//! A deflated zip entry's reads. One [`InflatedEntry`] per entry, shared by its readers: an
//! inflate stream ([`super::inflate_stream`]) fed by ranged reads of the compressed bytes
//! (through the block cache, with readahead), whose output is served at once and, when the
//! cache takes the entry (it fits in half of it), also written to the entry's inflated copy
//! ([`super::inflated_copy`]: a block file with a checksum per block, sealed once a stream
//! from the start verified the entry's CRC-32). Every read is served from the copy when its
//! blocks are there.
//!
//! A sequential reader drives one stream from the start. A random reader (a read behind the
//! stream, or more than [`RANDOM_JUMP`] ahead of it, or not at the start with no stream) would
//! restart streams over and over; instead it starts the entry's **copy pass**: the stream
//! from the start (the reader's, taken over, or a new one) runs to the end in the background
//! at full speed (compressed bytes asked for in [`PASS_CHUNK`] reads with readahead),
//! writing every block of the copy and advancing the *frontier* (the copy holds every block
//! before it). A read behind the frontier is a `pread` of the copy; a read ahead of it waits
//! for the frontier, unless a seek point past the frontier (or a stream already there) is
//! closer, which serves it as before. The pass that verifies the CRC-32 seals the copy,
//! keeps the seek points and records the entry's verdict; one that fails it fails the entry
//! (EIO, its one refetch) and drops the copy.
//!
//! A stream from the start also records seek points ([`super::seek_index`]), kept once the
//! stream verifies: with no copy (an entry bigger than half the cache, a paused cache, an
//! evicted block), a read starts from the nearest point before it, inflating at most one span.
//!
//! The per-entry stream sits behind an async mutex: readers of the same entry wait for the
//! bytes they all need; readers of other files never wait on it. Nobody holds it while
//! waiting for the frontier.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::DataError;
use super::blob::CachedBlob;
use super::inflate_stream::{Input, Stream};
use super::inflated_copy::{CopyWriter, InflatedCopy, Progress};
use super::raw_inflate::RawInflate;
use super::readahead::Readahead;
use super::seek_index::{SPAN, SeekIndex};
use super::verify::{Integrity, Verdict};
use crate::archive::ArchiveError;
use crate::archive::central_directory::ZipEntry;
use crate::archive::error::corrupt;
use crate::cache::{BLOCK_SIZE, BlobKey, DiskCache};
use crate::stats::Stats;

/// Compressed bytes a reader's stream fetches per step.
const READ_CHUNK: u64 = 1 << 20;
/// Compressed bytes the copy pass fetches per step (its readahead keeps more in flight).
const PASS_CHUNK: u64 = 4 << 20;
/// Output the copy pass produces between two looks at whether it should go on.
const PASS_STEP: u64 = 1 << 20;
/// A read this far ahead of the stream (or behind it) is a random reader's.
pub const RANDOM_JUMP: u64 = 1 << 20;

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
    /// Where new streams are counted.
    stats: Arc<Stats>,
    /// The entry's verdict, which the copy pass records.
    integrity: Arc<Integrity>,
    /// The inflated copy, when the cache takes the entry.
    copy: Option<Arc<InflatedCopy>>,
    /// The copy pass, once started (kept after it ends: its outcome).
    pass: Mutex<Option<Pass>>,
}

struct Pass {
    progress: watch::Receiver<Progress>,
    task: tokio::task::AbortHandle,
}

#[derive(Default)]
struct State {
    /// The readers' stream.
    stream: Option<Stream>,
    /// Seek points from a verified stream (loaded from the cache on first use).
    index: Option<Arc<SeekIndex>>,
    index_loaded: bool,
}

impl InflatedEntry {
    pub fn new(
        blob: Arc<CachedBlob>,
        cache: Arc<DiskCache>,
        (index, start): (usize, u64),
        entry: ZipEntry,
        integrity: Arc<Integrity>,
        copy: Option<InflatedCopy>,
        stats: Arc<Stats>,
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
            stats,
            integrity,
            copy: copy.map(Arc::new),
            pass: Mutex::new(None),
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

    /// A stream's input: this entry's compressed bytes, `chunk` at a time with `readahead`.
    fn input<'a>(&'a self, readahead: &'a Readahead, chunk: u64) -> Input<'a> {
        Input {
            entry: &self.entry,
            blob: &self.blob,
            start: self.start,
            readahead,
            chunk,
            inflated: &self.inflated,
        }
    }

    /// Bytes inflated so far by every stream of this entry.
    #[cfg(test)]
    pub fn inflated(&self) -> u64 {
        self.inflated.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The copy pass's progress, if one was started.
    #[cfg(test)]
    pub fn pass_progress(&self) -> Option<watch::Receiver<Progress>> {
        self.pass
            .lock()
            .unwrap()
            .as_ref()
            .map(|p| p.progress.clone())
    }

    /// Forgets every copy of the entry and its compressed bytes (they failed a check).
    pub async fn drop_cached(&self) {
        if let Some(p) = self.pass.lock().unwrap().take() {
            p.task.abort();
        }
        let mut st = self.state.lock().await;
        *st = State::default();
        self.forget();
    }

    /// Drops the copy and the compressed bytes.
    fn forget(&self) {
        if let Some(c) = &self.copy {
            c.drop_all();
        }
        self.blob.drop_range(self.start, self.entry.compressed_size);
    }

    /// Up to `n` bytes at `off` (fewer only at the end).
    pub async fn read(self: &Arc<Self>, off: u64, n: usize) -> Result<Vec<u8>, DataError> {
        let size = self.entry.uncompressed_size;
        if off >= size || n == 0 {
            return Ok(Vec::new());
        }
        let n = (n as u64).min(size - off);
        if let Some(b) = self.copied(off, n) {
            return Ok(b);
        }
        let mut st = self.state.lock().await;
        if let Some(b) = self.copied(off, n) {
            return Ok(b);
        }
        self.load_index(&mut st);
        let mut pass = self.running_pass();
        if pass.is_none() && self.is_random(&st, off) && self.copy_wanted(&st) {
            pass = Some(self.start_pass(&mut st)?);
        }
        if let Some(mut progress) = pass {
            let frontier = progress.borrow().frontier;
            if !self.closer_than(&st, off, frontier) {
                drop(st);
                let ended = match progress
                    .wait_for(|p| p.frontier >= off + n || p.ended.is_some())
                    .await
                {
                    Ok(p) => p.ended.clone(),
                    Err(_) => Some(Err(None)), // aborted: the entry was dropped
                };
                if let Some(Err(Some(m))) = ended {
                    return Err(DataError::Integrity(m));
                }
                if let Some(b) = self.copied(off, n) {
                    return Ok(b);
                }
                // The pass stopped short, or the blocks went: inflate it here.
                st = self.state.lock().await;
            }
        }
        self.position(&mut st, off)?;
        let result = self.advance(&mut st, off, n).await;
        if result.is_err() {
            // A failed stream is not resumed: the next read starts over.
            st.stream = None;
        }
        result
    }

    /// Bytes `off..off + n` from the copy, when it has them all (checked).
    fn copied(&self, off: u64, n: u64) -> Option<Vec<u8>> {
        self.copy.as_ref()?.read(off, n)
    }

    fn load_index(&self, st: &mut State) {
        if !st.index_loaded {
            st.index_loaded = true;
            st.index = self
                .cache
                .seek_points(&self.key, self.index)
                .and_then(|b| SeekIndex::decode(&b))
                .filter(|i| i.size == self.entry.uncompressed_size && i.crc == self.entry.crc32)
                .map(Arc::new);
        }
    }

    /// A read at `off` that the readers' stream cannot serve by going on in order.
    fn is_random(&self, st: &State, off: u64) -> bool {
        match &st.stream {
            Some(s) => off < s.out_pos || off > s.out_pos + RANDOM_JUMP,
            None => off > 0,
        }
    }

    /// Whether a copy pass would help: the cache takes a copy, and it is not already sealed
    /// with seek points to fill its holes from.
    fn copy_wanted(&self, st: &State) -> bool {
        self.copy
            .as_ref()
            .is_some_and(|c| !(c.is_sealed() && st.index.is_some()))
            && self.cache.writable()
    }

    /// Whether a read at `off`, ahead of the pass's `frontier`, is served sooner here: from a
    /// seek point past the frontier, or by the readers' stream already past it and close.
    fn closer_than(&self, st: &State, off: u64, frontier: u64) -> bool {
        if off < frontier {
            return false;
        }
        let point = st
            .index
            .as_ref()
            .and_then(|i| i.before(off))
            .is_some_and(|p| p.out > frontier);
        let stream = st
            .stream
            .as_ref()
            .is_some_and(|s| s.out_pos > frontier && s.out_pos <= off && off - s.out_pos <= SPAN);
        point || stream
    }

    /// The copy pass's progress while it runs.
    fn running_pass(&self) -> Option<watch::Receiver<Progress>> {
        let pass = self.pass.lock().unwrap();
        let p = pass.as_ref()?;
        p.progress
            .borrow()
            .ended
            .is_none()
            .then(|| p.progress.clone())
    }

    /// Starts the copy pass: the readers' stream if it is from the start (it goes on where
    /// it is), else a new one.
    fn start_pass(
        self: &Arc<Self>,
        st: &mut State,
    ) -> Result<watch::Receiver<Progress>, DataError> {
        let mut stream = match st.stream.take() {
            Some(s) if s.is_from_start() && s.writer.is_some() => s,
            other => {
                st.stream = other;
                self.stream_from_start(st.index.is_none())?
            }
        };
        let (tx, rx) = watch::channel(Progress::default());
        stream
            .writer
            .as_mut()
            .expect("a copy is wanted")
            .report_to(tx.clone());
        let me = self.clone();
        let task = tokio::spawn(async move { me.run_pass(stream, tx).await });
        tracing::debug!(entry = %self.entry.name, "random reads: inflating the entry to its copy");
        *self.pass.lock().unwrap() = Some(Pass {
            progress: rx.clone(),
            task: task.abort_handle(),
        });
        Ok(rx)
    }

    /// The copy pass: `stream` (from the start) to the end, then its outcome.
    async fn run_pass(self: Arc<Self>, mut stream: Stream, tx: watch::Sender<Progress>) {
        let readahead = Readahead::new(self.blob.clone(), self.start, self.entry.compressed_size);
        readahead.to_the_end_from(stream.next_input_at());
        let input = self.input(&readahead, PASS_CHUNK);
        let size = self.entry.uncompressed_size;
        let result = loop {
            let upto = (stream.out_pos + PASS_STEP).min(size);
            match stream.run(&input, upto, &mut |_, _| {}).await {
                Ok(true) => break Ok(()),
                Ok(false) if stream.writer.as_ref().is_some_and(|w| w.stopped()) => {
                    break Err(None); // the cache stopped taking blocks
                }
                Ok(false) => tokio::task::yield_now().await,
                Err(e) => break Err(Some(e)),
            }
        };
        let ended = match result {
            Ok(()) => {
                let mut st = self.state.lock().await;
                self.completed(&mut stream, &mut st);
                drop(st);
                self.integrity.pass(self.blob.generation());
                Ok(())
            }
            Err(Some(DataError::Integrity(m) | DataError::Archive(ArchiveError::Corrupt(m)))) => {
                if !matches!(self.integrity.verdict(), Verdict::Failed { .. }) {
                    self.integrity.fail(&m);
                }
                self.forget();
                Err(Some(m))
            }
            Err(e) => {
                if let Some(e) = e {
                    tracing::debug!(entry = %self.entry.name, "the copy pass stopped: {e}");
                }
                Err(None)
            }
        };
        tx.send_modify(|p| p.ended = Some(ended));
    }

    /// A new stream from the start, writing the copy when the cache takes one, recording
    /// seek points when `record`.
    fn stream_from_start(&self, record: bool) -> Result<Stream, DataError> {
        let z = RawInflate::new().map_err(DataError::Inflater)?;
        self.stats.inflate_stream();
        let mut s = Stream::new(z, 0, 0, record);
        s.writer = self.copy.clone().map(|c| CopyWriter::new(c, 0));
        Ok(s)
    }

    /// Makes the readers' stream able to reach `off`: the current one if it is at or before
    /// it (and no seek point would skip more than a span of it), else one from the nearest
    /// seek point, else one from the start.
    fn position(&self, st: &mut State, off: u64) -> Result<(), DataError> {
        let current = st.stream.as_ref().map(|s| s.out_pos);
        // A new stream starts where it can write the copy's block under `off` whole.
        let target = if self.copy.is_some() && current.is_none_or(|at| at > off) {
            off - off % BLOCK_SIZE
        } else {
            off
        };
        let point = st.index.as_ref().and_then(|i| i.before(target)).cloned();
        let keep = match (current, &point) {
            (Some(at), _) if at > off => false,
            (Some(at), Some(p)) => p.out <= at + SPAN,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if keep {
            return Ok(());
        }
        st.stream = Some(match point {
            Some(p) => {
                let z = p
                    .inflater()
                    .map_err(|m| corrupt(format!("{}: {m}", self.entry.name)))?;
                self.stats.inflate_stream();
                let mut s = Stream::new(z, p.input, p.out, false);
                s.writer = self.copy.clone().map(|c| CopyWriter::new(c, p.out));
                s
            }
            None => self.stream_from_start(st.index.is_none())?,
        });
        Ok(())
    }

    /// Inflates until `off + n` has been produced, returning bytes `off..off + n`.
    async fn advance(&self, st: &mut State, off: u64, n: u64) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::with_capacity(n as usize);
        let input = self.input(&self.readahead, READ_CHUNK);
        let s = st.stream.as_mut().expect("stream started");
        // Writing the copy (or checking against its seal what a paused cache does not
        // take): on to the end of the last block, so the read leaves it whole (checked).
        let upto = if s
            .writer
            .as_ref()
            .is_some_and(|w| !w.stopped() || w.copy().is_sealed())
        {
            (off + n).next_multiple_of(BLOCK_SIZE).min(self.size())
        } else {
            off + n
        };
        let ended = s
            .run(&input, upto, &mut |from, produced| {
                // The part of this output the read asked for.
                let to = from + produced.len() as u64;
                let (lo, hi) = (off.max(from), (off + n).min(to));
                if hi > lo {
                    out.extend_from_slice(&produced[(lo - from) as usize..(hi - from) as usize]);
                }
            })
            .await?;
        if ended {
            // Done: the stream's buffers go (a later read uses the copy or a seek point).
            let mut s = st.stream.take().expect("stream started");
            self.completed(&mut s, st);
        }
        Ok(out)
    }

    /// A stream ended verified: its seek points are kept, and (from the start) the blob
    /// blocks whole inside the compressed bytes and the copy sealed with every block's
    /// checksum: from then on a block of either fetched or made again must match.
    fn completed(&self, s: &mut Stream, st: &mut State) {
        if let Some(sums) = s.input_sums() {
            self.blob.seal_verified(sums);
        }
        if let Some(r) = s.recorder.take() {
            let index = SeekIndex {
                size: self.entry.uncompressed_size,
                crc: self.entry.crc32,
                points: r.into_points(),
            };
            if !index.points.is_empty() {
                self.cache
                    .store_seek_points(&self.key, self.index, &index.encode());
            }
            st.index = Some(Arc::new(index));
        }
        if s.is_from_start()
            && let Some(w) = &s.writer
            && let Some(sums) = w.sums()
        {
            w.copy().seal(sums);
        }
    }
}
