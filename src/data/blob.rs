//! One blob read through the disk block cache: a [`ByteSource`] that answers from the cache
//! and fetches only the blocks it lacks: contiguous missing blocks in one ranged request (at
//! most [`MAX_REQUEST`]), each block fetched once however many readers want it (readers of a
//! block another reader is fetching wait for that fetch). Cancelling a read (Ctrl-C on `cat`)
//! drops its fetch and releases its claims, so waiters fetch for themselves.
//!
//! The cache never breaks a read: a range too big for the cache, a cache that cannot be
//! written (ENOSPC, EDQUOT, EIO: one warning, then a pause) or blocks evicted under a reader
//! are all served from the network, through a [`MemoryWindow`] in the chunks readahead asks
//! for (`blob_uncached.rs`). Every block read back from the cache is checked against the
//! checksum it got on arrival: a damaged one (zeros, a flipped bit, a torn write) is dropped
//! and fetched once more, then EIO. A blob with a digest is verified by its [`SealPass`] in
//! the background, which seals the block checksums; a block of a sealed blob fetched again
//! must match its sealed checksum (else one more fetch, then EIO), in the cache or straight
//! from the network. A host that ignores `Range` is read by one whole download at a time,
//! streamed into the cache as it arrives ([`WholeDownloads`]). The blocks a read is about to
//! serve are pinned, so eviction never punches them between their fetch and the read; and
//! one [`CachedBlob::ensure`] fetches each block at most once, so a readahead request whose
//! blocks were read and evicted meanwhile does not bring them back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use super::block_store::{BlockStore, Stored, mismatch_error};
use super::memory_window::MemoryWindow;
use super::seal::SealPass;
use super::verify::{BlockSums, Integrity};
use super::whole_download::{Ctx, WholeDownloads};
use crate::cache::blocks::bad_block;
use crate::cache::{BLOCK_SIZE, BlobKey, BlockFile, DiskCache, Piece};
use crate::error::SourceError;
use crate::source::ByteSource;
use crate::stats::Stats;

/// The most bytes one request asks for (and holds in memory).
pub const MAX_REQUEST: u64 = 8 << 20;

pub struct CachedBlob {
    /// The block file, the cache's accounting, the verdict and the seal pass.
    store: BlockStore,
    len: u64,
    remote: Arc<dyn ByteSource>,
    /// Blocks being fetched right now → a receiver that changes (or closes) when done.
    pending: Mutex<HashMap<u64, watch::Receiver<bool>>>,
    /// Where blocks read from the cache (hits) and fetched (misses) are counted.
    stats: Arc<Stats>,
    /// Chunks fetched for reads the cache does not take.
    memory: MemoryWindow,
    /// The whole downloads of a host that ignores `Range`.
    downloads: WholeDownloads,
}

/// Removes this fetcher's claims when it finishes or is dropped (cancelled).
struct Claims<'a> {
    src: &'a CachedBlob,
    blocks: Vec<u64>,
    /// Set to true once the blocks are stored; dropped (closed) either way.
    done: watch::Sender<bool>,
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        let mut p = self.src.pending.lock().unwrap();
        for b in &self.blocks {
            p.remove(b);
        }
        // `done` drops after this: waiters wake and look again.
    }
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
            store: BlockStore {
                cache,
                key,
                file,
                whole,
                seal: Arc::<SealPass>::default(),
            },
            len,
            remote,
            pending: Mutex::new(HashMap::new()),
            stats,
            memory: MemoryWindow::default(),
            downloads: WholeDownloads::default(),
        };
        if blob.file().is_some_and(|f| f.any_present()) {
            blob.store.kick_seal(); // blocks cached by an earlier mount
        }
        blob
    }

    fn file(&self) -> Option<&Arc<BlockFile>> {
        self.store.file.as_ref()
    }

    fn cache(&self) -> &Arc<DiskCache> {
        &self.store.cache
    }

    /// Whether the digest verified and sealed the block checksums (every byte served from
    /// now on is checked against them).
    pub fn sealed(&self) -> bool {
        self.store.whole.is_some() && self.file().is_some_and(|f| f.is_sealed())
    }

    /// Seals what a passed check vouched for in the block map: the checksums of the blocks
    /// whole inside the bytes it hashed ([`BlockFile::seal_blocks`]) and its pieces of the
    /// blocks at their edges ([`BlockFile::seal_pieces`]), which outlive a remount with it.
    pub fn seal_verified(&self, sums: &BlockSums) {
        let Some(f) = self.file() else {
            return;
        };
        if !sums.sums().is_empty() {
            match f.seal_blocks(sums.sums()) {
                Ok(stale) => self.cache().remove_blocks(&self.store.key, &stale),
                Err(e) => self.cache().write_failed("a block map (seal)", &e),
            }
        }
        if let Err(e) = self.cache().seal_pieces(&self.store.key, f, sums.parts()) {
            self.cache().write_failed("a block map (pieces)", &e);
        }
    }

    /// The pieces sealed in the block map that share a byte with blob bytes `from..to`
    /// (see [`BlockFile::pieces_in`]).
    pub fn pieces_in(&self, from: u64, to: u64) -> Vec<Piece> {
        self.file()
            .map(|f| f.pieces_in(from, to))
            .unwrap_or_default()
    }

    /// Whether the background check of the digest has work queued or running.
    #[cfg(test)]
    pub fn sealing(&self) -> bool {
        self.store.seal.busy()
    }

    /// `--cache-size` (how far ahead a reader may fetch without evicting its own reads).
    pub fn cache_limit(&self) -> u64 {
        self.cache().limit()
    }

    /// Marks `blocks` as what a reader has yet to read: they go after everything else
    /// cached (see [`DiskCache::keep_for_reader`]).
    pub fn keep_for_reader(&self, blocks: std::ops::Range<u64>) {
        if self.file().is_some() {
            self.cache().keep_for_reader(&self.store.key, blocks);
        }
    }

    /// The next block the digest's pass has to hash, while there is a pass to keep pace
    /// with (the blob has a digest and has not sealed).
    pub fn hashing_at(&self) -> Option<u64> {
        let unsealed = self.file().is_some_and(|f| !f.is_sealed());
        (self.store.whole.is_some() && unsealed).then(|| self.store.seal.at())
    }

    /// Lets the digest's pass hash the cached blocks before `block` it has yet to, now.
    pub async fn hash_up_to(&self, block: u64) {
        self.store.hash_up_to(block).await;
    }

    pub fn key(&self) -> &BlobKey {
        &self.store.key
    }

    /// Changes whenever a cached byte of the blob is written or evicted: a verdict holds for
    /// the cached bytes only while it stays the same. `None`: the blob is not cached.
    pub fn generation(&self) -> Option<u64> {
        self.file().map(|f| f.changes())
    }

    /// The verdict on the whole blob (when it has a digest).
    pub fn whole(&self) -> Option<&Arc<Integrity>> {
        self.store.whole.as_ref()
    }

    /// Lets go of what reads the cache did not take kept in memory (a reader closed).
    pub fn release_memory(&self) {
        self.memory.clear();
    }

    fn block_range(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let end = offset.saturating_add(len).min(self.len);
        (end > offset).then(|| (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE))
    }

    /// Whether a read of `len` bytes at `offset` goes through the cache (else through the
    /// memory window: more than half the cache, or a paused one).
    pub fn takes(&self, offset: u64, len: u64) -> bool {
        self.block_range(offset, len)
            .is_some_and(|(first, last)| self.cached(first, last).is_some())
    }

    /// The block file, when this range should go through it.
    fn cached(&self, first: u64, last: u64) -> Option<&Arc<BlockFile>> {
        let f = self.file()?;
        (self.cache().fits((last - first + 1) * BLOCK_SIZE) && self.cache().writable()).then_some(f)
    }

    /// What a whole download of the blob needs.
    fn download_ctx(&self) -> Ctx {
        Ctx {
            remote: self.remote.clone(),
            len: self.len,
            store: self.store.clone(),
            stats: self.stats.clone(),
        }
    }

    /// Whether every byte of `offset..offset+len` is on disk (no network needed).
    #[cfg(test)]
    pub fn is_cached(&self, offset: u64, len: u64) -> bool {
        match (self.block_range(offset, len), self.file()) {
            (Some((a, b)), Some(f)) => f.missing(a, b).is_empty(),
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    /// Makes every byte under `offset..offset+len` present: in the cache when it can hold
    /// them, else in memory ([`MemoryWindow`]; a range bigger than a request is left to the
    /// read, which then fetches it). One call fetches each block at most once: a block
    /// evicted after it stored it is left to the read that wants it (which pins it first).
    pub async fn ensure(&self, offset: u64, len: u64) -> Result<(), SourceError> {
        let Some((first, last)) = self.block_range(offset, len) else {
            return Ok(());
        };
        if !self.remote.whole_only() {
            match self.ensure_ranged(first, last).await {
                Err(SourceError::RangeIgnored) => {} // learnt just now
                other => return other,
            }
        }
        // A host that ignores Range: into the cache through the one download at a time.
        let end = (offset + len).min(self.len);
        match self.cached(first, last) {
            Some(file) => {
                (self.downloads)
                    .ensure_cached(&self.download_ctx(), file, offset, end)
                    .await
            }
            None => Ok(()), // the read takes them from the download as it lands
        }
    }

    /// [`CachedBlob::ensure`] by ranged requests.
    async fn ensure_ranged(&self, first: u64, last: u64) -> Result<(), SourceError> {
        let drops = self.store.seal.drops();
        // The blocks (from `first`) this call saw present, stored by its own fetch or by
        // another it waited for: never fetched again by it (one evicted since is left to the
        // read that wants it, which pins it first).
        let mut seen = vec![false; (last - first + 1) as usize];
        for _round in 0..64 {
            let Some(file) = self.cached(first, last) else {
                return self.ensure_in_memory(first, last).await;
            };
            if self.store.seal.drops() != drops {
                // Bad bytes were dropped meanwhile: not fetched again behind the back of
                // the check that failed (its one refetch does that).
                return Ok(());
            }
            let absent = file.missing(first, last);
            for (b, seen) in (first..).zip(seen.iter_mut()) {
                *seen |= absent.binary_search(&b).is_err();
            }
            let missing: Vec<u64> = (absent.into_iter())
                .filter(|b| !seen[(b - first) as usize])
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            // Claim what nobody is fetching; remember what others are.
            let (tx, _rx) = watch::channel(false);
            let mut mine = Vec::new();
            let mut theirs = Vec::new();
            {
                let mut p = self.pending.lock().unwrap();
                for b in missing {
                    match p.get(&b) {
                        Some(rx) => theirs.push((b, rx.clone())),
                        // Stored since `missing` was taken: a fetcher marks its blocks
                        // present before it lets go of their claims.
                        None if file.has(b) => seen[(b - first) as usize] = true,
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
                done: tx,
            };
            for run in runs(&mine) {
                if !self.fetch_run(file, run.0, run.1).await? {
                    return Ok(()); // not kept: the reader goes to the network
                }
            }
            claims.done.send_replace(true);
            drop(claims);
            for b in mine {
                seen[(b - first) as usize] = true;
            }
            for (b, mut rx) in theirs {
                // Stored (true), or its fetch failed or was cancelled: then look again.
                let _ = rx.changed().await;
                seen[(b - first) as usize] |= *rx.borrow();
            }
        }
        Ok(()) // others' fetches keep failing: the read goes to the network
    }

    /// Drops the cached blocks under `offset..offset+len` (bad bytes found by a check).
    pub fn drop_range(&self, offset: u64, len: u64) {
        self.memory.clear();
        if let (Some((first, last)), Some(f)) = (self.block_range(offset, len), self.file()) {
            self.store.seal.dropped();
            drop_blocks(f, self.cache(), &self.store.key, first, last);
            if !f.is_sealed() {
                self.store.seal.reset(); // it may have hashed the bad bytes
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
        self.store.what()
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
        // What a paused cache kept in memory is not fetched again now that it writes.
        let bytes = match self.memory.peek(off, off + want) {
            Some(b) => b,
            None => self.fetch_exact(off, want).await?,
        };
        let stored = self.store.store(file, first, bytes.clone()).await;
        if let Stored::NotKept = stored {
            // The cache could not write them (a full disk): kept in memory instead, for the
            // reader they were fetched for.
            self.memory.insert(off, bytes);
        }
        Ok(stored)
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
                self.store.key.id,
                bytes.len()
            )));
        }
        Ok(bytes.slice(..want as usize))
    }
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
        if let Some(file) = self.file() {
            let missing = file.missing(first, last).len() as u64;
            self.stats.cache_hits(last - first + 1 - missing);
        }
        // Eviction leaves these blocks alone until the read is done.
        let _pin = self
            .file()
            .map(|_| self.cache().pin(&self.store.key, first, last));
        let mut refetched = false;
        for _ in 0..8 {
            let Some(file) = self.file() else {
                break;
            };
            let before = file.evictions();
            // A cache that does not take them now may still hold them.
            if self.cached(first, last).is_some() {
                self.ensure(offset, len as u64).await?;
            }
            if !file.missing(first, last).is_empty() {
                if file.evictions() != before {
                    continue; // dropped under us: try again
                }
                break; // not kept: from the network
            }
            match file.read(offset, len) {
                // Checked against the blocks' checksums: these are the bytes that arrived.
                Ok(data) => {
                    self.cache().touch_blocks(&self.store.key, first, last);
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
                        drop_blocks(file, self.cache(), &self.store.key, i, i);
                    }
                    None => {
                        self.cache().write_failed("(reading) blob blocks", &e);
                        break;
                    }
                },
            }
        }
        // Not cacheable, the cache is paused, or too small to hold even this read.
        self.read_uncached(offset, len).await
    }
}

#[path = "blob_uncached.rs"]
mod uncached;

#[cfg(test)]
#[path = "blob_tests.rs"]
pub(crate) mod tests;
