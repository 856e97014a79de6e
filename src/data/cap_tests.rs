//! `--cache-size` holds at every moment: a sequential reader with readahead over a blob
//! several times the cap never has more on disk than the cap, not even right after a write,
//! still reads every byte right, and fetches each byte once.

use super::*;
use crate::cache::BLOCK_SIZE;
use crate::cache::tests::{disk_usage, watch_peak};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_reader_over_a_blob_four_times_the_cap_never_overshoots_it_and_fetches_each_byte_once()
 {
    const CAP: u64 = 4 << 20;
    let blob = noise(16 << 20, 31);
    let s = setup(&blob, CAP, u64::MAX, 0);
    let root = s.data.cache().root().to_path_buf();
    let peak = watch_peak(s.data.cache());
    let r = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    let mut read = Vec::with_capacity(blob.len());
    let mut reads = 0;
    while (read.len() as u64) < r.size() {
        // The kernel's largest read: readahead keeps 2 MiB requests going ahead of it.
        let got = r.read(read.len() as u64, 128 << 10).await.unwrap();
        assert!(!got.is_empty());
        read.extend_from_slice(&got);
        reads += 1;
        let now = disk_usage(&root);
        assert!(
            now <= CAP,
            "after read {reads}: {now} bytes on disk, cap {CAP}"
        );
        let at_write = peak.load(Ordering::SeqCst);
        assert!(
            at_write <= CAP,
            "by read {reads}: {at_write} bytes on disk right after a write, cap {CAP}"
        );
    }
    assert_eq!(sha(&read), sha(&blob));
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    eprintln!(
        "figures: {reads} reads of a 16 MiB blob under a 4 MiB cap: at most {} bytes on disk \
         right after a write, {fetched} bytes fetched",
        peak.load(Ordering::SeqCst)
    );
    // Each byte once: what readahead fetched ahead stays until the reader (and the digest's
    // pass) took it. Slack: one block.
    assert!(
        fetched <= blob.len() as u64 + BLOCK_SIZE,
        "{fetched} bytes fetched for a {} byte blob",
        blob.len()
    );
    assert!(peak.load(Ordering::SeqCst) > 0, "the cache was written");
}
