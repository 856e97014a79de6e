//! A blob from a host that ignores `Range`: one download of the whole blob at a time (a
//! single flight: readers and readahead wait on the one running), streamed to where it can
//! be kept as it arrives, so a reader waiting on block N is served once N has landed, not at
//! the end, and memory stays bounded (a batch of [`BATCH`] bytes) whatever the size.
//!
//! Where the bytes land, chosen when the download starts and changed on the way if a write
//! fails (docs/design.md, "A host that ignores Range"):
//! 1. the block cache, when it takes the blob (writing, and the blob at most half of it):
//!    blocks stored with their checksums and fed to the seal pass as for a ranged fetch;
//! 2. else an unlinked file in the cache directory's `tmp/` (the *spool*), each block
//!    checksummed as it lands and checked when read back; kept while it is read, dropped
//!    [`LINGER`] after its last read;
//! 3. else (that file can't be written either: a full disk) nothing is kept: the download
//!    is paced by its readers and hands each the bytes it asked for as they pass.
//!
//! A download that breaks off is resumed by the source (see `ByteSource::stream_whole`); one
//! that fails ends the flight with its error, and a reader still missing bytes starts the
//! next one (at most [`ATTEMPTS`] per read).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use sha2::Digest;

use super::block_store::{BlockStore, Stored};
use super::flight::{Flight, LINGER, Place};
use super::spool::Spool;
use crate::cache::{BLOCK_SIZE, BlockFile};
use crate::error::SourceError;
use crate::source::ByteSource;
use crate::stats::Stats;

/// What the download lands at once (whole blocks): all it holds in memory.
pub const BATCH: u64 = 8 * BLOCK_SIZE;
/// How many downloads one read may wait on before it gives up.
const ATTEMPTS: usize = 3;

/// What a download needs from its blob.
#[derive(Clone)]
pub struct Ctx {
    pub remote: Arc<dyn ByteSource>,
    pub len: u64,
    pub store: BlockStore,
    pub stats: Arc<Stats>,
}

impl Ctx {
    /// Whether the block cache takes the whole blob now.
    fn cache_takes_it(&self) -> bool {
        self.store.file.is_some()
            && self.store.cache.fits(self.len.max(1))
            && self.store.cache.writable()
    }
}

/// A blob's downloads: the one running or last run (see the module doc).
#[derive(Default)]
pub struct WholeDownloads {
    current: Arc<Mutex<Option<Arc<Flight>>>>,
}

impl WholeDownloads {
    /// The download running, or a new one once none is (`after`: one that can't serve the
    /// caller, which must end first).
    async fn flight(&self, ctx: &Ctx, after: Option<&Arc<Flight>>) -> Arc<Flight> {
        loop {
            let cur = self.current.lock().unwrap().clone();
            if let Some(f) = &cur {
                let spent = after.is_some_and(|a| Arc::ptr_eq(a, f));
                if f.running() && spent {
                    f.stop_when_idle();
                    f.wait_landed(u64::MAX).await;
                    continue;
                }
                // Running, or done and what it kept still good (a spool).
                let kept = matches!(f.progress.borrow().end, Some(Ok(())))
                    && !f.spoiled.load(Ordering::SeqCst);
                if !spent && (f.running() || kept) {
                    return f.clone();
                }
            }
            let mut slot = self.current.lock().unwrap();
            let same = match (&*slot, &cur) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same {
                continue; // another reader started one meanwhile
            }
            let place = if ctx.cache_takes_it() {
                Place::Cache
            } else {
                spool_or_passing(ctx)
            };
            let f = Arc::new(Flight::new(place));
            *slot = Some(f.clone());
            drop(slot);
            tokio::spawn(run(f.clone(), ctx.clone(), Arc::downgrade(&self.current)));
            return f;
        }
    }

    /// Makes `first..=last` present in the cache (`file`) through the downloads; returns
    /// when they are, or when the download puts those bytes elsewhere (the read then takes
    /// them from there).
    pub async fn ensure_cached(
        &self,
        ctx: &Ctx,
        file: &BlockFile,
        offset: u64,
        end: u64,
    ) -> Result<(), SourceError> {
        let (first, last) = (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE);
        let drops = ctx.store.seal.drops();
        let mut after = None;
        for attempt in 0..ATTEMPTS {
            if file.missing(first, last).is_empty() {
                return Ok(());
            }
            if ctx.store.seal.drops() != drops {
                // Bad bytes were dropped meanwhile: not downloaded again behind the back of
                // the check that failed (its one refetch does that).
                return Ok(());
            }
            let f = self.flight(ctx, after.as_ref()).await;
            if f.cache_until() <= offset {
                return Ok(()); // not into the cache: the read takes them where they land
            }
            f.wait_cached(end).await;
            if file.missing(first, last).is_empty() {
                return Ok(());
            }
            if f.running() && f.cache_until() < end {
                return Ok(()); // the rest lands elsewhere: the read takes it from there
            }
            let p = f.progress.borrow().clone();
            if let Some(Err(e)) = &p.end
                && (attempt + 1 == ATTEMPTS || e.is_final())
            {
                return Err(e.error());
            }
            after = Some(f);
        }
        Ok(()) // evicted as fast as they land: the read takes them from the network
    }

    /// `offset..end` of the blob without the cache: from the spool, or from the stream as
    /// it passes.
    pub async fn read(&self, ctx: &Ctx, offset: u64, end: u64) -> Result<Bytes, SourceError> {
        let mut after = None;
        let mut last_err = None;
        for _ in 0..ATTEMPTS {
            let f = self.flight(ctx, after.as_ref()).await;
            match f.place_of(offset, end) {
                Some(Place::Passing) => {
                    if let Some(rx) = f.want(offset, end)
                        && let Ok(b) = rx.await
                    {
                        return Ok(b);
                    }
                }
                Some(Place::Spool(spool)) if !f.spoiled.load(Ordering::SeqCst) => {
                    let p = f.wait_landed(end).await;
                    if p.landed >= end {
                        let len = ctx.len;
                        let r = tokio::task::spawn_blocking(move || spool.read(offset, end, len))
                            .await
                            .map_err(|e| SourceError::Remote(e.to_string()))?;
                        match r {
                            Ok(b) => return Ok(b),
                            Err(e) => {
                                tracing::warn!("{}: {e}; downloading again", ctx.store.what());
                                f.spoiled.store(true, Ordering::SeqCst);
                                last_err = Some(e);
                            }
                        }
                    } else if let Some(Err(e)) = p.end {
                        if e.is_final() {
                            return Err(e.error());
                        }
                        last_err = Some(e.error());
                    }
                }
                Some(Place::Cache) => {
                    f.wait_cached(end).await;
                    let p = f.progress.borrow().clone();
                    if let Some(file) = &ctx.store.file
                        && p.landed >= end
                        && let Ok(b) = file.read(offset, (end - offset) as usize)
                    {
                        return Ok(b);
                    }
                    if let Some(Err(e)) = p.end {
                        if e.is_final() {
                            return Err(e.error());
                        }
                        last_err = Some(e.error());
                    }
                }
                _ => {}
            }
            let ended = f.progress.borrow().end.clone();
            if let Some(Err(e)) = ended {
                if e.is_final() {
                    return Err(e.error());
                }
                last_err = Some(e.error());
            }
            after = Some(f);
        }
        Err(last_err.unwrap_or_else(|| {
            SourceError::Remote(format!(
                "{}: bytes {offset}..{end} not delivered by {ATTEMPTS} whole downloads",
                ctx.store.what()
            ))
        }))
    }
}

/// An unlinked file in the cache directory, else nothing kept.
fn spool_or_passing(ctx: &Ctx) -> Place {
    match Spool::create(&ctx.store.cache, ctx.len) {
        Ok(s) => Place::Spool(Arc::new(s)),
        Err(e) => {
            tracing::info!(
                "{}: no room for a spool file ({e}): serving readers as the download passes",
                ctx.store.what()
            );
            Place::Passing
        }
    }
}

/// The download's task: streams the blob to where it lands, then keeps a spool for
/// [`LINGER`] after its last read.
async fn run(f: Arc<Flight>, ctx: Ctx, slot: std::sync::Weak<Mutex<Option<Arc<Flight>>>>) {
    let r = download(&f, &ctx).await;
    if let Err(e) = &r {
        tracing::warn!("{}: whole download failed: {e}", ctx.store.what());
    }
    f.finish(r);
    let spooled = f
        .places
        .lock()
        .unwrap()
        .iter()
        .any(|(_, p)| matches!(p, Place::Spool(_)));
    if !spooled {
        return;
    }
    loop {
        let idle = f.last_use.lock().unwrap().elapsed();
        if idle >= LINGER {
            break;
        }
        tokio::time::sleep(LINGER - idle).await;
    }
    if let Some(slot) = slot.upgrade() {
        let mut cur = slot.lock().unwrap();
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, &f)) {
            *cur = None; // the spool's space goes with the last reader holding it
        }
    }
}

/// Streams the whole blob, landing it a batch at a time.
async fn download(f: &Flight, ctx: &Ctx) -> Result<(), SourceError> {
    let mut stream = ctx.remote.stream_whole().await?;
    let mut hash = ctx.store.whole.as_ref().map(|_| sha2::Sha256::new());
    let mut pending = BytesMut::new();
    let mut pos = 0u64; // where `pending` starts
    loop {
        // Kept nowhere: each piece goes to its readers at once, and only while one waits.
        let passing = matches!(f.place_of(pos, pos + 1), Some(Place::Passing));
        if passing && !f.paced().await {
            return Ok(()); // nobody reads on: stop (a later reader starts another)
        }
        let piece = stream.next().await?;
        let at_end = piece.is_none();
        if let Some(c) = piece {
            if let Some(h) = hash.as_mut() {
                h.update(&c);
            }
            pending.extend_from_slice(&c);
            if pos + pending.len() as u64 > ctx.len {
                return Err(SourceError::Integrity(format!(
                    "{}: the download is longer than the blob's {} bytes",
                    ctx.store.what(),
                    ctx.len
                )));
            }
        }
        let batch = if passing { 1 } else { BATCH };
        while pending.len() as u64 >= batch || (at_end && !pending.is_empty()) {
            let n = (pending.len() as u64).min(BATCH) as usize;
            let batch = pending.split_to(n).freeze();
            land(f, ctx, pos, batch).await?;
            pos += n as u64;
            f.progress.send_modify(|p| p.landed = pos);
        }
        if at_end {
            break;
        }
    }
    if pos != ctx.len {
        return Err(SourceError::Integrity(format!(
            "{}: the download gave {pos} of {} bytes",
            ctx.store.what(),
            ctx.len
        )));
    }
    if let (Some(h), Some(whole)) = (hash, &ctx.store.whole) {
        let got = hex::encode(h.finalize());
        if let super::verify::Expected::Sha256(want) = &whole.expected
            && !got.eq_ignore_ascii_case(want)
        {
            // As for ranged fetches: the bytes were delivered, the readers' own checks
            // fail them (the verdict says so now), and the spool is not read again.
            f.spoiled.store(true, Ordering::SeqCst);
            whole.fail_unchecked(&got);
        }
    }
    Ok(())
}

/// Lands `bytes` (whole blocks but at the end) at `pos` where the download puts them,
/// moving on to the next place when a write fails.
async fn land(f: &Flight, ctx: &Ctx, pos: u64, bytes: Bytes) -> Result<(), SourceError> {
    let first = pos / BLOCK_SIZE;
    ctx.stats
        .cache_misses((bytes.len() as u64).div_ceil(BLOCK_SIZE));
    loop {
        let place = f.place_of(pos, pos + 1).expect("a place from 0 on");
        let fallback = match &place {
            Place::Cache => {
                let file = ctx.store.file.as_ref().expect("cache place has a file");
                match store_missing(ctx, file, first, &bytes).await {
                    Stored::Kept => return Ok(()),
                    Stored::Mismatch(bad) => {
                        return Err(super::block_store::mismatch_error(ctx.store.what(), bad[0]));
                    }
                    Stored::NotKept => spool_or_passing(ctx),
                }
            }
            Place::Spool(s) => {
                let (s2, b2) = (s.clone(), bytes.clone());
                let r = tokio::task::spawn_blocking(move || s2.write(first, &b2))
                    .await
                    .map_err(std::io::Error::other)
                    .and_then(|r| r);
                match r {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        tracing::info!(
                            "{}: writing the spool failed ({e}): serving readers as the download passes",
                            ctx.store.what()
                        );
                        Place::Passing
                    }
                }
            }
            Place::Passing => {
                f.pass(pos, &bytes);
                return Ok(());
            }
        };
        f.places.lock().unwrap().push((pos, fallback));
        f.progress.send_modify(|_| {}); // waiters on the cache look again
    }
}

/// Stores the blocks of `bytes` (from block `first`) that the cache lacks.
async fn store_missing(ctx: &Ctx, file: &Arc<BlockFile>, first: u64, bytes: &Bytes) -> Stored {
    let last = first + (bytes.len() as u64).div_ceil(BLOCK_SIZE) - 1;
    let missing = file.missing(first, last);
    let mut k = 0;
    while k < missing.len() {
        let a = missing[k];
        let mut b = a;
        while k + 1 < missing.len() && missing[k + 1] == b + 1 {
            k += 1;
            b += 1;
        }
        k += 1;
        let from = ((a - first) * BLOCK_SIZE) as usize;
        let to = (((b + 1 - first) * BLOCK_SIZE) as usize).min(bytes.len());
        match ctx.store.store(file, a, bytes.slice(from..to)).await {
            Stored::Kept => {}
            other => return other,
        }
    }
    Stored::Kept
}
