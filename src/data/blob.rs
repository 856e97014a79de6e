//! One blob read through the disk block cache: a [`ByteSource`] that answers from the cache
//! and fetches only the blocks it lacks: contiguous missing blocks in one ranged request (at
//! most [`MAX_REQUEST`]), each block fetched once however many readers want it (readers of a
//! block another reader is fetching wait for that fetch). Cancelling a read (Ctrl-C on `cat`)
//! drops its fetch and releases its claims, so waiters fetch for themselves.
//!
//! The cache never breaks a read: a range too big for the cache, a cache that cannot be
//! written (ENOSPC, EDQUOT, EIO: one warning, then a pause) or blocks evicted under a reader
//! are all served from the network. When a fetch completes the blob, its sha256 is checked
//! against the digest and the verdict recorded in the blob's [`Integrity`]; a whole-blob fetch
//! (small archives, hosts that ignore `Range`) is checked before anything is stored.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use super::verify::{Expected, Integrity, Verdict};
use crate::cache::{BLOCK_SIZE, BlobKey, BlockFile, DiskCache};
use crate::error::SourceError;
use crate::source::ByteSource;
use crate::stats::Stats;

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
        CachedBlob {
            cache,
            key,
            len,
            file,
            remote,
            whole,
            pending: Mutex::new(HashMap::new()),
            stats,
        }
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

    /// Makes every block under `offset..offset+len` present, when the cache can hold them
    /// (else does nothing: [`ByteSource::read_at`] then reads from the network).
    pub async fn ensure(&self, offset: u64, len: u64) -> Result<(), SourceError> {
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
        }
    }

    /// Fetches blocks `first..=last` in requests of at most `MAX_REQUEST`; false when they
    /// were not kept (the cache could not write them, or they completed a blob that failed
    /// its digest check).
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
            let off = b * BLOCK_SIZE;
            let want = ((e + 1) * BLOCK_SIZE).min(self.len) - off;
            let bytes = self.fetch_exact(off, want).await?;
            if !self.store(file, b, bytes).await {
                return Ok(false);
            }
            b = e + 1;
        }
        Ok(true)
    }

    /// Writes consecutive blocks starting at `first` (off the async threads); a write that
    /// fails pauses the cache (false). If that completed the blob, checks its digest (false
    /// when it failed: the blocks are dropped).
    async fn store(&self, file: &Arc<BlockFile>, first: u64, bytes: Bytes) -> bool {
        let file = file.clone();
        let cache = self.cache.clone();
        let key = self.key.clone();
        let check = self
            .whole
            .clone()
            .filter(|w| w.verdict() == Verdict::Unchecked);
        let stored = tokio::task::spawn_blocking(move || -> io::Result<bool> {
            let mut done = Vec::new();
            let mut at = 0usize;
            let mut i = first;
            let result = loop {
                if at >= bytes.len() {
                    break Ok(true);
                }
                let n = file.block_len(i) as usize;
                if let Err(e) = file.write_block(i, &bytes[at..at + n]) {
                    break Err(e);
                }
                done.push(i);
                at += n;
                i += 1;
            };
            cache.add_blocks(&key, &file, &done);
            result?;
            match check.filter(|_| file.all_present()) {
                Some(whole) => check_cached_digest(&file, &cache, &key, &whole),
                None => Ok(true),
            }
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        match stored {
            Ok(kept) => kept,
            Err(e) => {
                self.cache.write_failed("blob blocks", &e);
                false
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
            self.store(&file.clone(), 0, bytes).await;
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

/// Hashes a complete blob from its block file and records the verdict; a mismatch drops
/// every block (false).
fn check_cached_digest(
    file: &BlockFile,
    cache: &DiskCache,
    key: &BlobKey,
    whole: &Integrity,
) -> io::Result<bool> {
    if whole.verdict() != Verdict::Unchecked {
        return Ok(true); // decided meanwhile (a reader's check, a refetch)
    }
    let mut h = whole.expected.hasher();
    let before = file.changes();
    let mut off = 0u64;
    while off < file.len() {
        let chunk = file.read(off, 1 << 20)?;
        h.update(&chunk);
        off += chunk.len() as u64;
    }
    if file.changes() != before {
        return Ok(true); // blocks changed while hashing: no verdict
    }
    match h.check(&whole.expected) {
        Ok(()) => {
            whole.pass(Some(before));
            Ok(true)
        }
        Err(got) => {
            if !whole.fail_unchecked(&got) {
                return Ok(true); // decided meanwhile: the readers' checks go on
            }
            drop_blocks(file, cache, key, 0, file.block_count().saturating_sub(1));
            Ok(false)
        }
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

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let Some((first, last)) = self.block_range(offset, len as u64) else {
            return Ok(Bytes::new());
        };
        if let Some(file) = &self.file {
            let missing = file.missing(first, last).len() as u64;
            self.stats.cache_hits(last - first + 1 - missing);
        }
        for _ in 0..8 {
            let Some(file) = self.cached(first, last) else {
                break;
            };
            let before = file.evictions();
            self.ensure(offset, len as u64).await?;
            if !file.missing(first, last).is_empty() {
                if file.evictions() != before {
                    continue; // evicted under us: try again
                }
                break; // not kept: from the network
            }
            let data = match file.read(offset, len) {
                Ok(d) => d,
                Err(e) => {
                    self.cache.write_failed("(reading) blob blocks", &e);
                    break;
                }
            };
            // Any eviction meanwhile may have punched what was read (even if the block came
            // back since): read again.
            if file.evictions() == before {
                self.cache.touch_blocks(&self.key, first, last);
                return Ok(Bytes::from(data));
            }
        }
        // Not cacheable, the cache is paused, or too small to hold even this read.
        let end = (offset + len as u64).min(self.len);
        self.fetch_exact(offset, end - offset).await
    }
}

#[cfg(test)]
mod tests {
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
        async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
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
        assert_eq!(src.whole().unwrap().verdict(), Verdict::Good);
    }

    #[tokio::test]
    async fn a_wrong_digest_fails_the_blob_and_drops_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(3 * BLOCK_SIZE as usize);
        let (_, src) = setup(dir.path(), &d, 1 << 30, Some("00".repeat(32)));
        src.read_at(0, 10).await.unwrap();
        assert_eq!(src.whole().unwrap().verdict(), Verdict::Unchecked);
        // The read that completes the blob records the failure where every reader sees it
        // (a background prefetch completing it could not swallow it).
        src.ensure(0, d.len() as u64).await.unwrap();
        assert_eq!(src.whole().unwrap().failures(), 1);
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
