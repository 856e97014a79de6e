//! Tests of `CachedBlob`.

use super::*;
use crate::data::verify::{Expected, Verdict};
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
    let file = src.file().cloned().unwrap();
    file.punch(3);
    let mut wrong = d[3 * BLOCK_SIZE as usize..4 * BLOCK_SIZE as usize].to_vec();
    wrong[9] ^= 4;
    assert!(matches!(
        src.store.store(&file, 3, Bytes::from(wrong.clone())).await,
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
    assert_eq!(src.file().unwrap().missing(0, 2).len(), 3);
    assert_eq!(
        src.cache().used_by_files(),
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
        assert!(src.cache().used() <= cap, "{} > {cap}", src.cache().used());
    }
    // A read bigger than the cap still answers (straight from the network).
    let got = src.read_at(0, 20 * BLOCK_SIZE as usize).await.unwrap();
    assert!(got[..] == d[..20 * BLOCK_SIZE as usize]);
    assert!(src.cache().used() <= cap);
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
        src.cache().used_by_files(),
        2 * BLOCK_SIZE + 8192,
        "two blocks and the blob's overhead (map, extent tree)"
    );
    let got = src.read_at(BLOCK_SIZE + 1, 1000).await.unwrap();
    assert_eq!(&got[..], &d[BLOCK_SIZE as usize + 1..][..1000]);
    assert_eq!(remote.requests.load(Ordering::SeqCst), 0);
}
