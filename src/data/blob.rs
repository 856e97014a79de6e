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
use crate::source::ByteSource;
use crate::status::Stats;

/// The most bytes one request asks for (and holds in memory).
pub const MAX_REQUEST: u64 = 8 << 20;

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
fn mismatch_error(what: &str, i: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}: block {i} fetched twice, neither matches its sealed checksum"),
    )
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
pub fn digest_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what}: sha256 does not match the artifact's digest"),
    )
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

    /// Whether the background check of the digest has work queued or running.
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
    pub fn is_cached(&self, offset: u64, len: u64) -> bool {
        match (self.block_range(offset, len), &self.file) {
            (Some((a, b)), Some(f)) => f.missing(a, b).is_empty(),
            (None, _) => true,
            (Some(_), None) => false,
        }
    }

    /// Makes every block under `offset..offset+len` present, when the cache can hold them
    /// (else does nothing: [`ByteSource::read_at`] then reads from the network).
    pub async fn ensure(&self, offset: u64, len: u64) -> io::Result<()> {
        let Some((first, last)) = self.block_range(offset, len) else {
            return Ok(());
        };
        for _round in 0..64 {
            let Some(file) = self.cached(first, last) else {
                return Ok(());
            };
            let missing = file.missing(first, last);
            if missing.is_empty() {
                return Ok(());
            }
            if self.remote.whole_only() {
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

    /// Drops the cached blocks under `offset..offset+len` (bad bytes found by a check).
    pub fn drop_range(&self, offset: u64, len: u64) {
        if let (Some((first, last)), Some(f)) = (self.block_range(offset, len), &self.file) {
            drop_blocks(f, &self.cache, &self.key, first, last);
            if !f.is_sealed() {
                self.seal.reset(); // it may have hashed the bad bytes
            }
        }
    }

    /// Fetches blocks `first..=last` in requests of at most `MAX_REQUEST`; false when they
    /// were not kept (the cache could not write them). Blocks of a sealed blob that come back
    /// different from their sealed checksums are fetched once more, then it is an error.
    async fn fetch_run(&self, file: &Arc<BlockFile>, first: u64, last: u64) -> io::Result<bool> {
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
    ) -> io::Result<Stored> {
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
                pass.advance(&f, &cache, &key, &whole, Some((first, &bytes)));
            }
            result.map(|()| bad)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        match stored {
            Ok(bad) if bad.is_empty() => Stored::Kept,
            Ok(bad) => Stored::Mismatch(bad),
            Err(e) => {
                self.cache.write_failed("blob blocks", &e);
                Stored::NotKept
            }
        }
    }

    /// The whole blob in one request, its digest checked before anything is stored (one
    /// more fetch if it does not match; then the blob's verdict is a failure and EIO).
    pub async fn fetch_whole(&self) -> io::Result<()> {
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
    async fn fetch_exact(&self, off: u64, want: u64) -> io::Result<Bytes> {
        let bytes = self.remote.read_at(off, want as usize).await?;
        let (first, last) = (off / BLOCK_SIZE, (off + want.max(1) - 1) / BLOCK_SIZE);
        self.stats.cache_misses(last - first + 1);
        if (bytes.len() as u64) < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "blob {}: got {} of {want} bytes at {off}",
                    self.key.id,
                    bytes.len()
                ),
            ));
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

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
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
                    return Ok(data);
                }
                Err(e) => match bad_block(&e) {
                    Some(_) if file.evictions() != before => {} // dropped under us: again
                    Some(i) if refetched => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "{}: cached block {i} damaged again after a refetch",
                                self.what()
                            ),
                        ));
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
    /// `len` bytes at `offset` straight from the network. A sealed blob's bytes are fetched
    /// in whole blocks and checked against their sealed checksums (one more fetch, then EIO).
    async fn fetch_uncached(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let end = (offset + len as u64).min(self.len);
        let Some(file) = self.file.as_ref().filter(|f| f.is_sealed()) else {
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
pub(crate) mod tests {
    use super::*;
    use crate::source::MemorySource;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts requests and bytes, optionally slowly.
    struct Counting {
        inner: MemorySource,
        requests: AtomicUsize,
        bytes: AtomicUsize,
        delay: std::time::Duration,
    }

    #[async_trait]
    impl ByteSource for Counting {
        fn len(&self) -> u64 {
            self.inner.len()
        }
        async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let b = self.inner.read_at(offset, len).await?;
            self.bytes.fetch_add(b.len(), Ordering::SeqCst);
            Ok(b)
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn sha(d: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(d))
    }

    fn setup(
        dir: &std::path::Path,
        d: &[u8],
        limit: u64,
        digest: Option<String>,
    ) -> (Arc<Counting>, CachedBlob) {
        let cache = Arc::new(DiskCache::open(dir, limit).unwrap());
        let remote = Arc::new(Counting {
            inner: MemorySource(Bytes::from(d.to_vec())),
            requests: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            delay: std::time::Duration::from_millis(20),
        });
        let key = BlobKey {
            id: 1,
            version: "v".into(),
        };
        let whole = digest.map(|d| Arc::new(Integrity::new("blob 1".into(), Expected::Sha256(d))));
        let src = CachedBlob::new(
            cache,
            key,
            d.len() as u64,
            remote.clone(),
            whole,
            Default::default(),
        );
        (remote, src)
    }

    /// Waits for the blob's background check of its digest to finish what it can.
    pub(crate) async fn settle(src: &CachedBlob) {
        for _ in 0..2000 {
            if !src.sealing() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("the seal pass never finished");
    }

    #[tokio::test]
    async fn fetches_each_block_once_and_coalesces_runs() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(20 * BLOCK_SIZE as usize + 77);
        let (remote, src) = setup(dir.path(), &d, 1 << 30, Some(sha(&d)));
        // A small read costs one block.
        let got = src.read_at(5 * BLOCK_SIZE + 10, 100).await.unwrap();
        assert_eq!(&got[..], &d[5 * BLOCK_SIZE as usize + 10..][..100]);
        assert_eq!(remote.bytes.load(Ordering::SeqCst), BLOCK_SIZE as usize);
        // Again: nothing.
        src.read_at(5 * BLOCK_SIZE + 10, 100).await.unwrap();
        assert_eq!(remote.requests.load(Ordering::SeqCst), 1);
        // Blocks 0..=9 minus 5: two runs, two requests.
        let got = src.read_at(0, 10 * BLOCK_SIZE as usize).await.unwrap();
        assert_eq!(&got[..], &d[..10 * BLOCK_SIZE as usize]);
        assert_eq!(remote.requests.load(Ordering::SeqCst), 3);
        // Many readers of the same blocks at once: one fetch per block.
        let src = Arc::new(src);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = src.clone();
            tasks.push(tokio::spawn(async move {
                s.read_at(12 * BLOCK_SIZE, 3 * BLOCK_SIZE as usize).await
            }));
        }
        for t in tasks {
            assert_eq!(
                &t.await.unwrap().unwrap()[..],
                &d[12 * BLOCK_SIZE as usize..15 * BLOCK_SIZE as usize]
            );
        }
        assert_eq!(remote.requests.load(Ordering::SeqCst), 4);
        // The tail, short last block included; then the whole blob is verified.
        let got = src.read_at(0, d.len() + 10).await.unwrap();
        assert_eq!(got.len(), d.len());
        assert!(got[..] == d[..]);
        settle(&src).await;
        assert_eq!(src.whole().unwrap().verdict(), Verdict::Good);
        assert!(src.sealed(), "verified in the background: checksums sealed");
    }

    #[tokio::test]
    async fn a_sealed_blob_checks_every_block_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(6 * BLOCK_SIZE as usize);
        let (remote, src) = setup(dir.path(), &d, 1 << 30, Some(sha(&d)));
        src.read_at(0, d.len()).await.unwrap();
        settle(&src).await;
        assert!(src.sealed());
        // Block 3 evicted, then fetched again: a changed byte is refused, not stored.
        let file = src.file.clone().unwrap();
        file.punch(3);
        let mut wrong = d[3 * BLOCK_SIZE as usize..4 * BLOCK_SIZE as usize].to_vec();
        wrong[9] ^= 4;
        assert!(matches!(
            src.store(&file, 3, Bytes::from(wrong.clone())).await,
            Stored::Mismatch(b) if b == vec![3]
        ));
        assert_eq!(file.missing(0, 5), vec![3]);
        let requests = remote.requests.load(Ordering::SeqCst);
        let got = src.read_at(3 * BLOCK_SIZE + 5, 10).await.unwrap();
        assert_eq!(&got[..], &d[3 * BLOCK_SIZE as usize + 5..][..10]);
        assert_eq!(remote.requests.load(Ordering::SeqCst), requests + 1);
    }

    #[tokio::test]
    async fn a_wrong_digest_fails_the_blob_and_drops_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(3 * BLOCK_SIZE as usize);
        let (_, src) = setup(dir.path(), &d, 1 << 30, Some("00".repeat(32)));
        src.read_at(0, 10).await.unwrap();
        settle(&src).await;
        assert_eq!(src.whole().unwrap().verdict(), Verdict::Unchecked);
        // Completing the blob lets the background check finish: the failure is recorded
        // where every reader sees it (a background prefetch completing it can't swallow it).
        src.ensure(0, d.len() as u64).await.unwrap();
        settle(&src).await;
        assert_eq!(src.whole().unwrap().failures(), 1);
        assert!(!src.sealed());
        assert_eq!(src.file.as_ref().unwrap().missing(0, 2).len(), 3);
        assert_eq!(
            src.cache.used(),
            8192,
            "only the blob's overhead (map, extent tree) is left"
        );
    }

    #[tokio::test]
    async fn stays_under_the_cap_and_still_reads_right() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(40 * BLOCK_SIZE as usize);
        let cap = 8 * BLOCK_SIZE;
        let (_, src) = setup(dir.path(), &d, cap, None);
        for i in 0..40u64 {
            let got = src.read_at(i * BLOCK_SIZE + 3, 1000).await.unwrap();
            assert_eq!(&got[..], &d[(i * BLOCK_SIZE + 3) as usize..][..1000]);
            assert!(src.cache.used() <= cap, "{} > {cap}", src.cache.used());
        }
        // A read bigger than the cap still answers (straight from the network).
        let got = src.read_at(0, 20 * BLOCK_SIZE as usize).await.unwrap();
        assert!(got[..] == d[..20 * BLOCK_SIZE as usize]);
        assert!(src.cache.used() <= cap);
    }

    #[tokio::test]
    async fn a_cancelled_fetch_does_not_strand_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(4 * BLOCK_SIZE as usize);
        let (_, src) = setup(dir.path(), &d, 1 << 30, None);
        let src = Arc::new(src);
        let s = src.clone();
        let first = tokio::spawn(async move { s.read_at(0, 100).await });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        first.abort(); // Ctrl-C on the first reader, mid-fetch
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), src.read_at(0, 100))
            .await
            .expect("no hang")
            .unwrap();
        assert_eq!(&got[..], &d[..100]);
    }

    #[tokio::test]
    async fn a_remount_serves_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(5 * BLOCK_SIZE as usize);
        {
            let (_, src) = setup(dir.path(), &d, 1 << 30, None);
            src.read_at(BLOCK_SIZE, 2 * BLOCK_SIZE as usize)
                .await
                .unwrap();
        }
        let (remote, src) = setup(dir.path(), &d, 1 << 30, None);
        assert_eq!(
            src.cache.used(),
            2 * BLOCK_SIZE + 8192,
            "two blocks and the blob's overhead (map, extent tree)"
        );
        let got = src.read_at(BLOCK_SIZE + 1, 1000).await.unwrap();
        assert_eq!(&got[..], &d[BLOCK_SIZE as usize + 1..][..1000]);
        assert_eq!(remote.requests.load(Ordering::SeqCst), 0);
    }
}
