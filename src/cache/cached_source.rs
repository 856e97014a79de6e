//! A [`ByteSource`] that answers from the disk block cache and fetches only the blocks it
//! lacks: contiguous missing blocks in one ranged request (at most [`MAX_REQUEST`]), each
//! block fetched once however many readers want it (readers of a block another reader is
//! fetching wait for that fetch). Cancelling a read (Ctrl-C on `cat`) drops its fetch and
//! releases its claims, so waiters fetch for themselves.
//!
//! When every block is present the blob's sha256 is checked against the artifact's
//! `digest` once; a mismatch drops all of it and is an error (EIO), never wrong bytes.
//! A blob host that ignores `Range` is detected by the remote source and then the whole
//! blob is fetched once, in one request.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use super::blocks::{BLOCK_SIZE, BlockFile};
use super::{BlobKey, DiskCache};
use crate::archive::ByteSource;

/// The most bytes one request asks for (and holds in memory).
pub const MAX_REQUEST: u64 = 8 << 20;

pub struct CachedSource {
    cache: Arc<DiskCache>,
    key: BlobKey,
    file: Arc<BlockFile>,
    remote: Arc<dyn ByteSource>,
    /// `sha256:` hex of the whole blob, when the API gave one.
    digest: Option<String>,
    verified: AtomicBool,
    /// Blocks being fetched right now → a receiver that changes (or closes) when done.
    pending: Mutex<HashMap<u64, watch::Receiver<bool>>>,
}

/// Removes this fetcher's claims when it finishes or is dropped (cancelled).
struct Claims<'a> {
    src: &'a CachedSource,
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

impl CachedSource {
    pub fn new(
        cache: Arc<DiskCache>,
        key: BlobKey,
        len: u64,
        remote: Arc<dyn ByteSource>,
        digest: Option<String>,
    ) -> io::Result<CachedSource> {
        let file = cache.block_file(&key, len)?;
        Ok(CachedSource {
            cache,
            key,
            file,
            remote,
            digest,
            verified: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn block_range(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let end = offset.saturating_add(len).min(self.file.len());
        (end > offset).then(|| (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE))
    }

    /// Whether every byte of `offset..offset+len` is on disk (no network needed).
    pub fn is_cached(&self, offset: u64, len: u64) -> bool {
        match self.block_range(offset, len) {
            Some((a, b)) => self.file.missing(a, b).is_empty(),
            None => true,
        }
    }

    /// Makes every block under `offset..offset+len` present.
    pub async fn ensure(&self, offset: u64, len: u64) -> io::Result<()> {
        let Some((first, last)) = self.block_range(offset, len) else {
            return Ok(());
        };
        if self.too_big_to_cache(first, last) {
            return Ok(());
        }
        for _round in 0..64 {
            let missing = self.file.missing(first, last);
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
                self.fetch_run(run.0, run.1).await?;
            }
            drop(claims);
            for mut rx in theirs {
                // Changed or closed: either way, look again.
                let _ = rx.changed().await;
            }
        }
        Err(io::Error::other(format!(
            "artifact {}: blocks kept disappearing (cache too small?)",
            self.key.id
        )))
    }

    /// The CRC-32 of `offset..offset+len` from the disk cache, or `None` when any of it is
    /// missing (or was evicted while reading).
    pub async fn crc32_of(&self, offset: u64, len: u64) -> io::Result<Option<u32>> {
        if !self.is_cached(offset, len) {
            return Ok(None);
        }
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            let before = file.evictions();
            let mut h = crc32fast::Hasher::new();
            let mut at = offset;
            while at < offset + len {
                let n = (offset + len - at).min(1 << 20) as usize;
                h.update(&file.read(at, n)?);
                at += n as u64;
            }
            Ok((file.evictions() == before).then(|| h.finalize()))
        })
        .await
        .map_err(io::Error::other)?
    }

    /// How many of this blob's blocks were ever evicted (changes when bytes may be refetched).
    pub fn evictions(&self) -> u64 {
        self.file.evictions()
    }

    /// Drops the cached blocks under `offset..offset+len` (bad bytes found by a reader).
    pub fn drop_range(&self, offset: u64, len: u64) {
        if let Some((first, last)) = self.block_range(offset, len) {
            self.drop_blocks(first, last);
        }
    }

    fn drop_blocks(&self, first: u64, last: u64) {
        drop_blocks(&self.file, &self.cache, &self.key, first, last);
    }

    /// A range that would take more than half the cache is not worth evicting everything
    /// for: it is read straight from the network.
    fn too_big_to_cache(&self, first: u64, last: u64) -> bool {
        (last - first + 1) * BLOCK_SIZE > self.cache.limit() / 2
    }

    /// Fetches blocks `first..=last` in requests of at most `MAX_REQUEST`.
    async fn fetch_run(&self, first: u64, last: u64) -> io::Result<()> {
        let per_request = (MAX_REQUEST / BLOCK_SIZE).max(1);
        let mut b = first;
        while b <= last {
            let e = last.min(b + per_request - 1);
            let off = b * BLOCK_SIZE;
            let want = (e + 1) * BLOCK_SIZE;
            let want = want.min(self.file.len()) - off;
            let bytes = self.fetch_exact(off, want).await?;
            self.store(b, bytes).await?;
            b = e + 1;
        }
        Ok(())
    }

    /// Writes consecutive blocks starting at `first` from `bytes` (off the async threads),
    /// and checks the digest if that completed the blob.
    async fn store(&self, first: u64, bytes: Bytes) -> io::Result<()> {
        let file = self.file.clone();
        let cache = self.cache.clone();
        let key = self.key.clone();
        let want = self
            .digest
            .clone()
            .filter(|_| !self.verified.load(Ordering::Acquire));
        let verified = tokio::task::spawn_blocking(move || -> io::Result<bool> {
            let mut done = Vec::new();
            let mut at = 0usize;
            let mut i = first;
            while at < bytes.len() {
                let n = file.block_len(i) as usize;
                file.write_block(i, &bytes[at..at + n])?;
                done.push(i);
                at += n;
                i += 1;
            }
            cache.note_blocks(&key, &file, &done);
            let Some(want) = want else {
                return Ok(false);
            };
            if !file.all_present() {
                return Ok(false);
            }
            let got = sha256_of(&file)?;
            if got.eq_ignore_ascii_case(&want) {
                return Ok(true);
            }
            drop_blocks(&file, &cache, &key, 0, file.block_count().saturating_sub(1));
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "artifact {}: sha256 {got} does not match digest {want}; cached bytes dropped",
                    key.id
                ),
            ))
        })
        .await
        .map_err(io::Error::other)??;
        if verified {
            self.verified.store(true, Ordering::Release);
        }
        Ok(())
    }

    async fn fetch_whole(&self) -> io::Result<()> {
        let bytes = self.fetch_exact(0, self.file.len()).await?;
        self.store(0, bytes).await
    }

    /// Exactly `want` bytes at `off` from the remote (fewer is an error).
    async fn fetch_exact(&self, off: u64, want: u64) -> io::Result<Bytes> {
        let bytes = self.remote.read_at(off, want as usize).await?;
        if (bytes.len() as u64) < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "artifact {}: got {} of {want} bytes at {off}",
                    self.key.id,
                    bytes.len()
                ),
            ));
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
    cache.forget_blocks(key, &present);
}

fn sha256_of(file: &BlockFile) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut off = 0u64;
    while off < file.len() {
        let chunk = file.read(off, 1 << 20)?;
        h.update(&chunk);
        off += chunk.len() as u64;
    }
    Ok(hex::encode(h.finalize()))
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
impl ByteSource for CachedSource {
    fn len(&self) -> u64 {
        self.file.len()
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let Some((first, last)) = self.block_range(offset, len as u64) else {
            return Ok(Bytes::new());
        };
        if self.too_big_to_cache(first, last) {
            return self.remote.read_at(offset, len).await;
        }
        for _ in 0..8 {
            let before = self.file.evictions();
            self.ensure(offset, len as u64).await?;
            let data = self.file.read(offset, len)?;
            if self.file.evictions() == before || self.file.missing(first, last).is_empty() {
                self.cache.touch_blocks(&self.key, first, last);
                return Ok(Bytes::from(data));
            }
        }
        // The cache is too small to hold even this read: go to the network directly.
        self.remote.read_at(offset, len).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::source::MemorySource;
    use std::sync::atomic::AtomicUsize;

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
    ) -> (Arc<Counting>, CachedSource) {
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
        let src = CachedSource::new(cache, key, d.len() as u64, remote.clone(), digest).unwrap();
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
        assert!(src.verified.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_wrong_digest_is_an_error_and_drops_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = data(3 * BLOCK_SIZE as usize);
        let (_, src) = setup(dir.path(), &d, 1 << 30, Some("00".repeat(32)));
        src.read_at(0, 10).await.unwrap();
        let e = src.read_at(0, d.len()).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(src.file.missing(0, 2).len(), 3);
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
        assert_eq!(src.cache.used(), 2 * BLOCK_SIZE);
        let got = src.read_at(BLOCK_SIZE + 1, 1000).await.unwrap();
        assert_eq!(&got[..], &d[BLOCK_SIZE as usize + 1..][..1000]);
        assert_eq!(remote.requests.load(Ordering::SeqCst), 0);
    }
}
