//! Under a cache far smaller than what is read, nothing is fetched over and over: a deflated
//! entry read through fetches its compressed bytes once, and a blob with a digest bigger than
//! the cache costs its readers' bytes and nothing for its digest's pass, which seals the blob
//! when it is read in order and otherwise waits for a reader to bring what it lacks.

use super::*;
use crate::cache::BLOCK_SIZE;
use crate::data::blob::tests::settle;

/// The cache of the blobs' tests: a quarter of each blob.
const CAP: u64 = 4 << 20;

/// Reads `r` from `from` to `to` in `chunk`-sized reads: the bytes.
async fn read_span(r: &FileReader, from: u64, to: u64, chunk: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((to - from) as usize);
    while from + (out.len() as u64) < to {
        let want = chunk.min((to - from - out.len() as u64) as u32);
        let got = r.read(from + out.len() as u64, want).await.unwrap();
        assert!(!got.is_empty(), "a read short of the end");
        out.extend_from_slice(&got);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deflated_entry_read_through_under_a_small_cache_fetches_its_compressed_bytes_once() {
    // Noise does not compress: 24 MiB of compressed bytes, several times each cap (and no
    // copy: the entry is bigger than half the cache).
    let big = noise(24 << 20, 41);
    let mut z = ZipBuilder::new();
    z.add("big.bin", &big);
    let zip = z.finish();
    // Down to caches under twice the inflater's 1 MiB reads, which go through memory.
    for cap in [1 << 20, 2 << 20, 4 << 20, 5 << 20, 6 << 20, 8 << 20] {
        let s = setup(&zip, cap, u64::MAX, 0);
        let compressed = s.data.index(&s.blob).await.unwrap().cd.entries[0].compressed_size;
        let before = s.remote.bytes.load(Ordering::SeqCst);
        let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
        let got = read_span(&r, 0, r.size(), 128 << 10).await;
        assert_eq!(sha(&got), sha(&big));
        let fetched = s.remote.bytes.load(Ordering::SeqCst) - before;
        eprintln!(
            "figures: a deflated entry of {compressed} compressed bytes read through under a \
             {cap} byte cache: {fetched} bytes fetched (the directory before: {before})"
        );
        // Slack: the two blocks at the entry's ends, which it shares with its local header
        // and the central directory (read before the entry, evicted by the time it ends).
        assert!(
            fetched <= compressed + 2 * BLOCK_SIZE,
            "cache {cap}: {fetched} bytes fetched for {compressed} compressed bytes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_with_a_digest_bigger_than_the_cap_read_in_order_is_fetched_once_and_seals() {
    let blob = noise(16 << 20, 43);
    let s = setup(&blob, CAP, u64::MAX, 0);
    let r = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    // The kernel's reads once read_ahead_kb is raised: 1 MiB.
    let got = read_span(&r, 0, r.size(), 1 << 20).await;
    assert_eq!(sha(&got), sha(&blob));
    let cached = s.data.blob(&s.blob);
    settle(&cached).await;
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    eprintln!(
        "figures: a {} byte blob with a digest read in order under a {CAP} byte cache: \
         {fetched} bytes fetched, sealed: {}",
        blob.len(),
        cached.sealed()
    );
    // The digest's pass hashed every block as it arrived: nothing fetched for it. Slack:
    // one block.
    assert!(
        fetched <= blob.len() as u64 + BLOCK_SIZE,
        "{fetched} bytes fetched for a {} byte blob",
        blob.len()
    );
    assert!(
        cached.sealed(),
        "the pass kept pace with the reader and sealed"
    );
    assert!(s.data.is_verified(&s.blob, FileSpec::Whole));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_pass_that_lacks_evicted_blocks_fetches_nothing_and_seals_once_a_reader_brings_them()
 {
    let blob = noise(16 << 20, 47);
    let len = blob.len() as u64;
    let s = setup(&blob, CAP, u64::MAX, 0);
    let cached = s.data.blob(&s.blob);
    // The second half first (with readahead, as `dd skip=` reads), then the first half
    // without readahead (so that every byte fetched past the blob is the pass's): by then
    // the second half is long evicted, and the pass, which hashes in order, lacks it.
    let second = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert_eq!(
        read_span(&second, len / 2, len, 128 << 10).await,
        blob[len as usize / 2..]
    );
    drop(second);
    let first = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    first.set_readahead(false);
    assert_eq!(
        read_span(&first, 0, len / 2, 128 << 10).await,
        blob[..len as usize / 2]
    );
    settle(&cached).await;
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    eprintln!(
        "figures: a {len} byte blob with a digest read out of order under a {CAP} byte cache: \
         {fetched} bytes fetched, sealed: {}",
        cached.sealed()
    );
    assert!(
        fetched <= len + BLOCK_SIZE,
        "{fetched} bytes fetched for a {len} byte blob read once"
    );
    assert!(!cached.sealed(), "the second half was never hashed");
    // A reader that reads the second half again brings the blocks the pass waits for.
    let again = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert_eq!(
        read_span(&again, len / 2, len, 128 << 10).await,
        blob[len as usize / 2..]
    );
    settle(&cached).await;
    let more = s.remote.bytes.load(Ordering::SeqCst) - fetched;
    assert!(
        more <= len / 2 + BLOCK_SIZE,
        "{more} bytes fetched for the half"
    );
    assert!(
        cached.sealed(),
        "the pass went on over what the reader brought"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_a_sealed_blob_read_out_of_order_is_not_read_through_again() {
    let blob = noise(24 << 20, 59);
    let len = blob.len() as u64;
    let s = setup(&blob, CAP, u64::MAX, 0);
    let cached = s.data.blob(&s.blob);
    let first = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert_eq!(read_span(&first, 0, len, 1 << 20).await, blob);
    settle(&cached).await;
    assert!(cached.sealed());
    let before = s.remote.bytes.load(Ordering::SeqCst);
    // The second half, then the first: further out of order than a handle's running hash
    // follows (as a page cache that already holds the start makes the kernel read). Every
    // byte served is checked against its sealed block: no pass reads the file through again.
    let r = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert_eq!(
        read_span(&r, len / 2, len, 1 << 20).await,
        blob[len as usize / 2..]
    );
    assert_eq!(
        read_span(&r, 0, len / 2, 1 << 20).await,
        blob[..len as usize / 2]
    );
    settle(&cached).await;
    let fetched = s.remote.bytes.load(Ordering::SeqCst) - before;
    eprintln!(
        "figures: a sealed {len} byte blob read again out of order under a {CAP} byte cache: \
         {fetched} bytes fetched"
    );
    // What the cache no longer held, once, and nothing for a pass. Slack: what readahead
    // asked for past the end of the first half, where the reader jumped away (at most its
    // distance ahead and one request: half the cache).
    assert!(
        fetched <= len + CAP / 2,
        "{fetched} bytes fetched to read a {len} byte blob again"
    );
}

/// Reads `r` from the start up to `to` as the kernel's readahead does: two 1 MiB reads in
/// order, then two at a time, the later one arriving first. The bytes.
async fn read_in_pairs(r: &FileReader, to: u64) -> Vec<u8> {
    let step = 1u64 << 20;
    let mut got = read_span(r, 0, 2 * step, step as u32).await;
    got.resize(to as usize, 0);
    for at in (2 * step..to).step_by(2 * step as usize) {
        let (b, a) = tokio::join!(r.read(at + step, step as u32), r.read(at, step as u32));
        got[at as usize..(at + step) as usize].copy_from_slice(&a.unwrap());
        got[(at + step) as usize..(at + 2 * step) as usize].copy_from_slice(&b.unwrap());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_in_flight_side_by_side_arriving_out_of_order_keep_readahead_going_and_fetch_once() {
    let blob = noise(16 << 20, 61);
    let len = blob.len() as u64;
    // Under a small cache: each byte once.
    let s = setup(&blob, CAP, u64::MAX, 0);
    let r = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert_eq!(sha(&read_in_pairs(&r, len).await), sha(&blob));
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    eprintln!(
        "figures: a {len} byte blob read two 1 MiB reads at a time, out of order, under a \
         {CAP} byte cache: {fetched} bytes fetched"
    );
    assert!(
        fetched <= len + BLOCK_SIZE,
        "{fetched} bytes fetched for a {len} byte blob"
    );
    // Under a roomy cache: the reads count as in order, so the range ahead is requested.
    let s = setup(&blob, 1 << 30, u64::MAX, 0);
    let r = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert_eq!(read_in_pairs(&r, 4 << 20).await, blob[..4 << 20]);
    let cached = s.data.blob(&s.blob);
    for _ in 0..2000 {
        if cached.is_cached(4 << 20, 4 << 20) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        cached.is_cached(4 << 20, 4 << 20),
        "fetched ahead of the reads"
    );
}
