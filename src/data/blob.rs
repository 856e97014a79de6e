//! One blob read through the disk block cache: a [`ByteSource`] that answers from the cache
//! and fetches only the blocks it lacks: contiguous missing blocks in one ranged request (at
//! most [`MAX_REQUEST`]), each block fetched once however many readers want it (readers of a
//! block another reader is fetching wait for that fetch). Cancelling a read (Ctrl-C on `cat`)
//! drops its fetch and releases its claims, so waiters fetch for themselves.
//!
//! The cache never breaks a read: a range too big for the cache, a cache that cannot be
//! written (ENOSPC, EDQUOT, EIO: one warning, then a pause) or blocks evicted under a reader
//! are all served from the network. Every block read back from the cache is checked against
//! the checksum it got on arrival: a damaged one (zeros, a flipped bit, a torn write) is
//! dropped and fetched once more, then EIO. A blob with a digest is verified by its
//! [`SealPass`] in the background, which seals the block checksums; a block of a sealed blob
//! fetched again must match its sealed checksum (else one more fetch, then EIO), in the cache
//! or straight from the network. A whole-blob fetch (small archives, hosts that ignore
//! `Range`) is checked before anything is stored. The blocks a read is about to serve are
//! pinned, so eviction never punches them between their fetch and the read.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use super::seal::SealPass;
use super::verify::{Expected, Integrity, Verdict};
use crate::cache::blocks::{bad_block, checksum};
use crate::cache::{BLOCK_SIZE, BlobKey, BlockFile, DiskCache};
use crate::error::SourceError;
use crate::source::ByteSource;
use crate::stats::Stats;

/// The most bytes one request asks for (and holds in memory).
pub const MAX_REQUEST: u64 = 8 << 20;

/// What a read the cache does not take (paused after a failed write, or a cache too small)
/// fetches at least, kept in memory for the reads after it: a sequential reader costs one
/// request per chunk, as with a working cache, not one per kernel read.
pub const MEMORY_CHUNK: u64 = 4 << 20;
/// How many cached blocks after those just stored a store hashes for the seal itself; the
/// seal pass goes on over the rest in the background.
const SEAL_INLINE: u64 = 16;

/// How many such chunks a blob keeps (memory: at most this many × [`MEMORY_CHUNK`]).
const MEMORY_CHUNKS: usize = 2;

pub struct CachedBlob {
    cache: Arc<DiskCache>,
    key: BlobKey,
    len: u64,
    /// `None` when the cache could not even create the blob's files: every read goes to
    /// the network.
    file: Option<Arc<BlockFile>>,
    remote: Arc<dyn ByteSource>,
    /// The verdict on the whole blob, when its digest is known.
    whole: Option<Arc<Integrity>>,
    /// Blocks being fetched right now → a receiver that changes (or closes) when done.
    pending: Mutex<HashMap<u64, watch::Receiver<bool>>>,
    /// Where blocks read from the cache (hits) and fetched (misses) are counted.
    stats: Arc<Stats>,
    /// The background check of the digest that seals the block checksums.
    seal: Arc<SealPass>,
    /// Chunks fetched for reads the cache did not take (most recent first).
    memory: Mutex<std::collections::VecDeque<(u64, Bytes)>>,
    /// One such chunk fetched at a time.
    memory_flight: tokio::sync::Mutex<()>,
    /// One whole-blob download at a time (hosts that ignore `Range`).
    whole_flight: tokio::sync::Mutex<()>,
}

/// What storing fetched blocks came to.
enum Stored {
    Kept,
    /// Not kept (the cache could not write them): the reader goes to the network.
    NotKept,
    /// These blocks differ from their sealed checksums: not stored.
    Mismatch(Vec<u64>),
}

/// A block of a sealed blob fetched twice and wrong both times.
fn mismatch_error(what: &str, i: u64) -> SourceError {
    SourceError::Integrity(format!(
        "{what}: block {i} fetched twice, neither matches its sealed checksum"
    ))
}

/// Removes this fetcher's claims when it finishes or is dropped (cancelled).
struct Claims<'a> {
    src: &'a CachedBlob,
    blocks: Vec<u64>,
    _done: watch::Sender<bool>,
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        let mut p = self.src.pending.lock().unwrap();
        for b in &self.blocks {
            p.remove(b);
        }
        // `_done` drops after this: waiters wake and look again.
    }
}

/// An error of the whole-blob digest check.
pub fn digest_error(what: &str) -> SourceError {
    SourceError::Integrity(format!(
        "{what}: sha256 does not match the artifact's digest"
    ))
}

impl CachedBlob {
    pub fn new(
        cache: Arc<DiskCache>,
        key: BlobKey,
        len: u64,
        remote: Arc<dyn ByteSource>,
        whole: Option<Arc<Integrity>>,
        stats: Arc<Stats>,
    ) -> CachedBlob {
        let file = match cache.block_file(&key, len) {
            Ok(f) => Some(f),
            Err(e) => {
                cache.write_failed("a block map", &e);
                None
            }
        };
        let blob = CachedBlob {
            cache,
            key,
            len,
            file,
            remote,
            whole,
            pending: Mutex::new(HashMap::new()),
            stats,
            seal: Arc::default(),
            memory: Mutex::default(),
            memory_flight: tokio::sync::Mutex::new(()),
            whole_flight: tokio::sync::Mutex::new(()),
        };
        if blob.file.as_ref().is_some_and(|f| f.any_present()) {
            blob.kick_seal(); // blocks cached by an earlier mount
        }
        blob
    }

    /// Whether the digest verified and sealed the block checksums (every byte served from
    /// now on is checked against them).
    pub fn sealed(&self) -> bool {
        self.whole.is_some() && self.file.as_ref().is_some_and(|f| f.is_sealed())
    }

    /// Seals the checksums of blocks a check verified (see [`BlockFile::seal_blocks`]).
    pub fn seal_blocks(&self, sums: &[(u64, u32)]) {
        if let Some(f) = &self.file
            && !sums.is_empty()
        {
            match f.seal_blocks(sums) {
                Ok(stale) => self.cache.remove_blocks(&self.key, &stale),
                Err(e) => self.cache.write_failed("a block map (seal)", &e),
            }
        }
    }

    /// Whether the background check of the digest has work queued or running.
    #[cfg(test)]
    pub fn sealing(&self) -> bool {
        self.seal.busy()
    }

    /// Lets the seal pass go on over cached blocks, in the background.
    fn kick_seal(&self) {
        let (Some(file), Some(whole)) = (&self.file, &self.whole) else {
            return;
        };
        if file.is_sealed() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (file, whole, cache, key, seal) = (
            file.clone(),
            whole.clone(),
            self.cache.clone(),
            self.key.clone(),
            self.seal.clone(),
        );
        seal.kicked();
        rt.spawn_blocking(move || seal.run_kicked(&file, &cache, &key, &whole));
    }

    /// `--cache-size` (how far ahead a reader may fetch without evicting its own reads).
    pub fn cache_limit(&self) -> u64 {
        self.cache.limit()
    }

    pub fn key(&self) -> &BlobKey {
        &self.key
    }

    /// Changes whenever a cached byte of the blob is written or evicted: a verdict holds for
    /// the cached bytes only while it stays the same. `None`: the blob is not cached.
    pub fn generation(&self) -> Option<u64> {
        self.file.as_ref().map(|f| f.changes())
    }

    /// The verdict on the whole blob (when it has a digest).
    pub fn whole(&self) -> Option<&Arc<Integrity>> {
        self.whole.as_ref()
    }

    fn block_range(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let end = offset.saturating_add(len).min(self.len);
        (end > offset).then(|| (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE))
    }

    /// The block file, when this range should go through it.
    fn cached(&self, first: u64, last: u64) -> Option<&Arc<BlockFile>> {
        let f = self.file.as_ref()?;
        (self.cache.fits((last - first + 1) * BLOCK_SIZE) && self.cache.writable()).then_some(f)
    }

    /// Whether every byte of `offset..offset+len` is on disk (no network needed).
    #[cfg(test)]
    pub fn is_cached(&self, offset: u64, len: u64) -> bool {
        match (self.block_range(offset, len), &self.file) {
            (Some((a, b)), Some(f)) => f.missing(a, b).is_empty(),
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    /// Makes every block under `offset..offset+len` present, when the cache can hold them
    /// (else does nothing: [`ByteSource::read_at`] then reads from the network).
    pub async fn ensure(&self, offset: u64, len: u64) -> Result<(), SourceError> {
        let Some((first, last)) = self.block_range(offset, len) else {
            return Ok(());
        };
        let drops = self.seal.drops();
        for _round in 0..64 {
            let Some(file) = self.cached(first, last) else {
                return Ok(());
            };
            if self.seal.drops() != drops {
                // Bad bytes were dropped meanwhile: not fetched again behind the back of
                // the check that failed (its one refetch does that).
                return Ok(());
            }
            let missing = file.missing(first, last);
            if missing.is_empty() {
                return Ok(());
            }
            if self.remote.whole_only() {
                // One download per blob at a time: readers and readahead wait for it.
                let _one = self.whole_flight.lock().await;
                if file.missing(first, last).is_empty() {
                    return Ok(());
                }
                return self.fetch_whole().await;
            }
            // Claim what nobody is fetching; remember what others are.
            let (tx, _rx) = watch::channel(false);
            let mut mine = Vec::new();
            let mut theirs = Vec::new();
            {
                let mut p = self.pending.lock().unwrap();
                for b in missing {
                    match p.get(&b) {
                        Some(rx) => theirs.push(rx.clone()),
                        None => {
                            p.insert(b, tx.subscribe());
                            mine.push(b);
                        }
                    }
                }
            }
            let claims = Claims {
                src: self,
                blocks: mine.clone(),
                _done: tx,
            };
            for run in runs(&mine) {
                if !self.fetch_run(file, run.0, run.1).await? {
                    return Ok(()); // not kept: the reader goes to the network
                }
            }
            drop(claims);
            for mut rx in theirs {
                // Changed or closed: either way, look again.
                let _ = rx.changed().await;
            }
        }
        Ok(()) // blocks keep disappearing (a tiny cache): the read goes to the network
    }

    /// Drops the cached blocks under `offset..offset+len` (bad bytes found by a check), and
    /// the chunks kept in memory that overlap them.
    pub fn drop_range(&self, offset: u64, len: u64) {
        self.memory
            .lock()
            .unwrap()
            .retain(|(s, b)| s + b.len() as u64 <= offset || offset.saturating_add(len) <= *s);
        if let (Some((first, last)), Some(f)) = (self.block_range(offset, len), &self.file) {
            self.seal.dropped();
            drop_blocks(f, &self.cache, &self.key, first, last);
            if !f.is_sealed() {
                self.seal.reset(); // it may have hashed the bad bytes
            }
        }
    }

    /// Fetches blocks `first..=last` in requests of at most `MAX_REQUEST`; false when they
    /// were not kept (the cache could not write them). Blocks of a sealed blob that come back
    /// different from their sealed checksums are fetched once more, then it is an error.
    async fn fetch_run(
        &self,
        file: &Arc<BlockFile>,
        first: u64,
        last: u64,
    ) -> Result<bool, SourceError> {
        let per_request = (MAX_REQUEST / BLOCK_SIZE).max(1);
        let mut b = first;
        while b <= last {
            let e = last.min(b + per_request - 1);
            match self.fetch_store(file, b, e).await? {
                Stored::Kept => {}
                Stored::NotKept => return Ok(false),
                Stored::Mismatch(bad) => {
                    tracing::warn!(
                        "{}: blocks {bad:?} fetched again differ from their sealed checksums; fetching them once more",
                        self.what()
                    );
                    for (x, y) in runs(&bad) {
                        match self.fetch_store(file, x, y).await? {
                            Stored::Kept => {}
                            Stored::NotKept => return Ok(false),
                            Stored::Mismatch(bad) => {
                                return Err(mismatch_error(self.what(), bad[0]));
                            }
                        }
                    }
                }
            }
            b = e + 1;
        }
        Ok(true)
    }

    fn what(&self) -> &str {
        self.whole.as_ref().map_or("blob", |w| w.what.as_str())
    }

    /// Fetches blocks `first..=last` (one request) and stores them.
    async fn fetch_store(
        &self,
        file: &Arc<BlockFile>,
        first: u64,
        last: u64,
    ) -> Result<Stored, SourceError> {
        let off = first * BLOCK_SIZE;
        let want = ((last + 1) * BLOCK_SIZE).min(self.len) - off;
        let bytes = self.fetch_exact(off, want).await?;
        Ok(self.store(file, first, bytes).await)
    }

    /// Writes consecutive blocks starting at `first` (off the async threads), each with its
    /// checksum; a write that fails pauses the cache. Blocks that differ from their sealed
    /// checksums are not stored. What was stored is handed to the seal pass.
    async fn store(&self, file: &Arc<BlockFile>, first: u64, bytes: Bytes) -> Stored {
        let f = file.clone();
        let cache = self.cache.clone();
        let key = self.key.clone();
        let seal = self.whole.clone().map(|w| (w, self.seal.clone()));
        let stored = tokio::task::spawn_blocking(move || -> io::Result<Vec<u64>> {
            let mut done = Vec::new();
            let mut bad = Vec::new();
            let mut at = 0usize;
            let mut i = first;
            let result = loop {
                if at >= bytes.len() {
                    break Ok(());
                }
                let n = f.block_len(i) as usize;
                let block = &bytes[at..at + n];
                let sum = checksum(block);
                if !f.matches(i, sum) {
                    bad.push(i);
                } else {
                    match f.write_block(i, block, sum) {
                        Ok(()) => done.push(i),
                        Err(e) if bad_block(&e).is_some() => bad.push(i),
                        Err(e) => break Err(e),
                    }
                }
                at += n;
                i += 1;
            };
            cache.add_blocks(&key, &f, &done);
            if let (Ok(()), true, Some((whole, pass))) = (&result, bad.is_empty(), seal) {
                // What was just fetched, and a few cached blocks after it; the rest of a
                // cached run is hashed in the background (a read never waits for it).
                pass.advance(&f, &cache, &key, &whole, Some((first, &bytes)), SEAL_INLINE);
            }
            result.map(|()| bad)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        match stored {
            Ok(bad) if bad.is_empty() => {
                self.kick_seal();
                Stored::Kept
            }
            Ok(bad) => Stored::Mismatch(bad),
            Err(e) => {
                self.cache.write_failed("blob blocks", &e);
                Stored::NotKept
            }
        }
    }

    /// The whole blob in one request, its digest checked before anything is stored (one
    /// more fetch if it does not match; then the blob's verdict is a failure and EIO).
    pub async fn fetch_whole(&self) -> Result<(), SourceError> {
        if let Some(whole) = &self.whole
            && whole.verdict() == (Verdict::Failed { refetched: true })
        {
            return Err(digest_error(&whole.what)); // EIO stays: no more fetches
        }
        let mut bytes = self.fetch_exact(0, self.len).await?;
        if let Some(whole) = &self.whole {
            let Expected::Sha256(want) = &whole.expected else {
                unreachable!("a blob's check is its digest")
            };
            if !sha256_hex(&bytes).eq_ignore_ascii_case(want) {
                whole.fail(&sha256_hex(&bytes));
                bytes = self.fetch_exact(0, self.len).await?;
                let ok = sha256_hex(&bytes).eq_ignore_ascii_case(want);
                whole.refetched(ok, None);
                if !ok {
                    return Err(digest_error(&whole.what));
                }
            }
        }
        if let Some(file) = self.cached(0, self.len.div_ceil(BLOCK_SIZE).max(1) - 1) {
            // Verified whole: a block that differs from a sealed checksum can't be here.
            let _ = self.store(&file.clone(), 0, bytes).await;
        }
        if let Some(whole) = &self.whole {
            whole.pass(self.generation());
        }
        Ok(())
    }

    /// Exactly `want` bytes at `off` from the remote (fewer is an error); each block it
    /// covers is a miss.
    async fn fetch_exact(&self, off: u64, want: u64) -> Result<Bytes, SourceError> {
        let bytes = self.remote.read_at(off, want as usize).await?;
        let (first, last) = (off / BLOCK_SIZE, (off + want.max(1) - 1) / BLOCK_SIZE);
        self.stats.cache_misses(last - first + 1);
        if (bytes.len() as u64) < want {
            return Err(SourceError::Integrity(format!(
                "blob {}: got {} of {want} bytes at {off}",
                self.key.id,
                bytes.len()
            )));
        }
        Ok(bytes.slice(..want as usize))
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Punches blocks `first..=last` and forgets them in the cache's accounting.
fn drop_blocks(file: &BlockFile, cache: &DiskCache, key: &BlobKey, first: u64, last: u64) {
    let present: Vec<u64> = (first..=last).filter(|&b| file.has(b)).collect();
    for &b in &present {
        file.punch(b);
    }
    cache.remove_blocks(key, &present);
}

/// Sorted block numbers → inclusive runs of consecutive ones.
fn runs(blocks: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &b in blocks {
        match out.last_mut() {
            Some((_, e)) if *e + 1 == b => *e = b,
            _ => out.push((b, b)),
        }
    }
    out
}

#[async_trait]
impl ByteSource for CachedBlob {
    fn len(&self) -> u64 {
        self.len
    }

    async fn forget(&self, offset: u64, len: u64) {
        self.drop_range(offset, len);
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let Some((first, last)) = self.block_range(offset, len as u64) else {
            return Ok(Bytes::new());
        };
        if let Some(file) = &self.file {
            let missing = file.missing(first, last).len() as u64;
            self.stats.cache_hits(last - first + 1 - missing);
        }
        // Eviction leaves these blocks alone until the read is done.
        let _pin = self
            .file
            .as_ref()
            .map(|_| self.cache.pin(&self.key, first, last));
        let mut refetched = false;
        for _ in 0..8 {
            let Some(file) = self.cached(first, last) else {
                break;
            };
            let before = file.evictions();
            self.ensure(offset, len as u64).await?;
            if !file.missing(first, last).is_empty() {
                if file.evictions() != before {
                    continue; // dropped under us: try again
                }
                break; // not kept: from the network
            }
            match file.read(offset, len) {
                // Checked against the blocks' checksums: these are the bytes that arrived.
                Ok(data) => {
                    self.cache.touch_blocks(&self.key, first, last);
                    let mut memory = self.memory.lock().unwrap();
                    if !memory.is_empty() {
                        memory.clear(); // the cache works again
                    }
                    return Ok(data);
                }
                Err(e) => match bad_block(&e) {
                    Some(_) if file.evictions() != before => {} // dropped under us: again
                    Some(i) if refetched => {
                        return Err(SourceError::Integrity(format!(
                            "{}: cached block {i} damaged again after a refetch",
                            self.what()
                        )));
                    }
                    Some(i) => {
                        tracing::warn!(
                            "cache: {}: block {i} does not match its checksum (damaged on disk); fetching it again",
                            self.what()
                        );
                        refetched = true;
                        drop_blocks(file, &self.cache, &self.key, i, i);
                    }
                    None => {
                        self.cache.write_failed("(reading) blob blocks", &e);
                        break;
                    }
                },
            }
        }
        // Not cacheable, the cache is paused, or too small to hold even this read.
        self.fetch_uncached(offset, len).await
    }
}

impl CachedBlob {
    /// `len` bytes at `offset` without the cache: from a chunk kept in memory, or a chunk
    /// of [`MEMORY_CHUNK`] from there on fetched (one at a time) and kept; a big read goes
    /// straight to the network.
    async fn fetch_uncached(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let end = (offset + len as u64).min(self.len);
        if end - offset > MEMORY_CHUNK / 2 || self.remote.whole_only() {
            return self.fetch_checked(offset, end).await;
        }
        if let Some(b) = self.in_memory(offset, end) {
            return Ok(b);
        }
        let _one = self.memory_flight.lock().await;
        if let Some(b) = self.in_memory(offset, end) {
            return Ok(b);
        }
        let start = offset / BLOCK_SIZE * BLOCK_SIZE;
        let stop = (start + MEMORY_CHUNK).min(self.len);
        let chunk = self.fetch_checked(start, stop).await?;
        let got = chunk.slice((offset - start) as usize..(end - start) as usize);
        let mut memory = self.memory.lock().unwrap();
        memory.push_front((start, chunk));
        memory.truncate(MEMORY_CHUNKS);
        Ok(got)
    }

    /// `offset..end` from a chunk kept in memory.
    fn in_memory(&self, offset: u64, end: u64) -> Option<Bytes> {
        let memory = self.memory.lock().unwrap();
        memory.iter().find_map(|(start, b)| {
            (*start <= offset && end <= start + b.len() as u64)
                .then(|| b.slice((offset - start) as usize..(end - start) as usize))
        })
    }

    /// `offset..end` straight from the network. A sealed blob's bytes are fetched in whole
    /// blocks and checked against their sealed checksums (one more fetch, then EIO).
    async fn fetch_checked(&self, offset: u64, end: u64) -> Result<Bytes, SourceError> {
        let Some(file) = self.file.as_ref().filter(|f| f.any_sealed()) else {
            return self.fetch_exact(offset, end - offset).await;
        };
        let (first, last) = (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE);
        let start = first * BLOCK_SIZE;
        let stop = ((last + 1) * BLOCK_SIZE).min(self.len);
        let mut bad = 0;
        for _attempt in 0..2 {
            let bytes = self.fetch_exact(start, stop - start).await?;
            let wrong = (first..=last).find(|&i| {
                let at = ((i - first) * BLOCK_SIZE) as usize;
                !file.matches(i, checksum(&bytes[at..at + file.block_len(i) as usize]))
            });
            match wrong {
                None => {
                    return Ok(bytes.slice((offset - start) as usize..(end - start) as usize));
                }
                Some(i) => {
                    tracing::warn!(
                        "{}: block {i} fetched again differs from its sealed checksum",
                        self.what()
                    );
                    bad = i;
                }
            }
        }
        Err(mismatch_error(self.what(), bad))
    }
}

#[cfg(test)]
#[path = "blob_tests.rs"]
pub(crate) mod tests;
