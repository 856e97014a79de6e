//! Core tests of the slow paths at network speed: a blob host that ignores `Range` (one
//! whole download per blob at a time, into the cache, a spool file, or straight to the
//! readers) and a cache that does not write (reads in readahead's large ranges, side by
//! side, as with a working cache).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fake_github::zipgen::{EntryOptions, ZipBuilder, noise};

use super::tests::read_in_chunks;
use super::*;
use crate::github::ArtifactKind;
use crate::github::failing_remote::{FailingRemote, Flip};
use crate::github::memory_remote::MemoryRemote;

const MIB: usize = 1 << 20;

/// A zip whose one stored entry is `data`.
fn zip_of(data: &[u8]) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", data, EntryOptions::stored());
    z.add("small.txt", b"small\n");
    z.finish()
}

/// A core over `remote` whose cache is capped at `cache_size`: (core, cache, its directory).
fn core(
    remote: Arc<dyn Remote>,
    cache_size: u64,
) -> (ArtifactFs, Arc<DiskCache>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(DiskCache::open(&dir.path().join("cache"), cache_size).unwrap());
    let fs = ArtifactFs::new(
        remote,
        cache.clone(),
        FsConfig {
            repos: vec![RepoRef::new("octo", "hello")],
            metadata_ttl: Duration::from_secs(60),
            read_only: false,
        },
        Default::default(),
    );
    (fs, cache, dir)
}

/// The file at `path`, read front to back in the kernel's 128 KiB reads.
async fn read_file(fs: &ArtifactFs, path: &str) -> Vec<u8> {
    try_read_file(fs, path).await.unwrap()
}

async fn try_read_file(fs: &ArtifactFs, path: &str) -> FsResult<Vec<u8>> {
    read_in_chunks(fs, path, 128 << 10).await
}

/// A remote whose blob host ignores `Range`, with a 6 MiB zip (run 100, `big`) and a 6 MiB
/// raw file (run 101, `raw`): (remote, zip, entry, raw).
fn whole_only_remote() -> (Arc<MemoryRemote>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let remote = Arc::new(MemoryRemote::default());
    let data = noise(6 * MIB, 1);
    let zip = zip_of(&data);
    remote.add(1, "big", 100, "main", 1, zip.clone(), ArtifactKind::Zip);
    let raw = noise(6 * MIB + 77, 2);
    add_raw_whole_only(&remote, &raw);
    (remote, zip, data, raw)
}

/// `raw` as artifact 2 (run 101, `raw`, an unzipped `raw.bin`), and the blob host set to
/// ignore `Range`.
fn add_raw_whole_only(remote: &MemoryRemote, raw: &[u8]) {
    remote.add(
        2,
        "raw",
        101,
        "main",
        2,
        raw.to_vec(),
        ArtifactKind::Raw {
            file_name: Some("raw.bin".into()),
        },
    );
    remote.whole_only.on.store(true, Ordering::SeqCst);
}

fn downloads(remote: &MemoryRemote) -> (u64, u64, u64) {
    let w = &remote.whole_only;
    (
        w.downloads.load(Ordering::SeqCst),
        w.in_flight_max.load(Ordering::SeqCst),
        remote.blob_bytes.load(Ordering::SeqCst),
    )
}

#[tokio::test]
async fn a_host_that_ignores_range_costs_one_download_into_the_cache() {
    let (remote, zip, data, _) = whole_only_remote();
    let (fs, _cache, _dir) = core(remote.clone(), 1 << 30);
    // The index, then the entry: one download brings the blob, readers take their blocks
    // as they land.
    assert_eq!(
        read_file(&fs, "octo/hello/runs/100/big/big.bin").await,
        data
    );
    assert_eq!(
        downloads(&remote),
        (1, 1, zip.len() as u64),
        "(downloads, most at once, bytes)"
    );
    // Cached: the rest of the blob costs nothing more.
    assert_eq!(read_file(&fs, "octo/hello/runs/100/big.zip").await, zip);
    assert_eq!(downloads(&remote), (1, 1, zip.len() as u64));
}

#[tokio::test]
async fn two_readers_of_a_blob_from_a_host_that_ignores_range_share_one_download() {
    let (remote, _, _, raw) = whole_only_remote();
    let (fs, _cache, _dir) = core(remote.clone(), 1 << 30);
    let path = "octo/hello/runs/101/raw";
    let (a, b) = tokio::join!(read_file(&fs, path), read_file(&fs, path));
    assert!(a == raw && b == raw);
    assert_eq!(downloads(&remote), (1, 1, raw.len() as u64));
}

#[tokio::test]
async fn a_blob_too_big_for_the_cache_is_spooled_once() {
    let (remote, zip, data, raw) = whole_only_remote();
    // 8 MiB: a 6 MiB blob is more than half of it, so not cached.
    let (fs, cache, _dir) = core(remote.clone(), 8 << 20);
    assert_eq!(
        read_file(&fs, "octo/hello/runs/100/big/big.bin").await,
        data
    );
    assert_eq!(downloads(&remote), (1, 1, zip.len() as u64));
    let (a, b) = tokio::join!(
        read_file(&fs, "octo/hello/runs/101/raw"),
        read_file(&fs, "octo/hello/runs/101/raw")
    );
    assert!(a == raw && b == raw);
    assert_eq!(downloads(&remote), (2, 1, (zip.len() + raw.len()) as u64));
    assert!(cache.used() <= 8 << 20, "the spool is not in the cache");
}

#[tokio::test]
async fn with_no_room_for_a_spool_readers_are_served_as_the_download_passes() {
    let (remote, _, _, raw) = whole_only_remote();
    let (fs, _cache, dir) = core(remote.clone(), 8 << 20);
    // No spool file can be made in the cache directory.
    let tmp = dir.path().join("cache/tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    assert_eq!(read_file(&fs, "octo/hello/runs/101/raw").await, raw);
    assert_eq!(downloads(&remote), (1, 1, raw.len() as u64));
}

#[tokio::test]
async fn a_paused_cache_reads_ahead_in_the_same_ranges_as_a_working_one() {
    let remote = Arc::new(MemoryRemote::default());
    *remote.latency.lock().unwrap() = Some(Duration::from_millis(5));
    let data = noise(24 * MIB, 3);
    let zip = zip_of(&data);
    remote.add(1, "big", 100, "main", 1, zip.clone(), ArtifactKind::Zip);
    let path = "octo/hello/runs/100/big/big.bin";
    let reads = || remote.blob_reads.lock().unwrap().len();
    let in_flight_max = || remote.blob_reads_in_flight.1.load(Ordering::SeqCst);

    let (fs, _cache, _dir) = core(remote.clone(), 1 << 30);
    assert_eq!(read_file(&fs, path).await, data);
    let working = reads();
    let working_bytes = remote.blob_bytes.load(Ordering::SeqCst);

    remote.blob_reads.lock().unwrap().clear();
    remote.blob_bytes.store(0, Ordering::SeqCst);
    remote.blob_reads_in_flight.1.store(0, Ordering::SeqCst);
    let (fs, cache, _dir) = core(remote.clone(), 1 << 30);
    // A full disk: the cache stops writing for a while.
    cache.write_failed("a test", &std::io::Error::from_raw_os_error(libc::ENOSPC));
    assert!(!cache.writable());
    assert_eq!(read_file(&fs, path).await, data);
    let paused = reads();
    let paused_bytes = remote.blob_bytes.load(Ordering::SeqCst);
    assert!(
        paused <= working + 4,
        "{paused} requests paused, {working} with a working cache"
    );
    assert!(
        paused_bytes <= working_bytes + (4 << 20),
        "{paused_bytes} bytes paused, {working_bytes} with a working cache"
    );
    assert!(
        in_flight_max() >= 2,
        "readahead runs requests side by side while paused"
    );
}

#[tokio::test]
async fn a_byte_changed_in_a_whole_download_is_eio_and_one_more_download_heals_it() {
    let remote = Arc::new(FailingRemote::new(MemoryRemote::default()));
    let raw = noise(6 * MIB, 4);
    add_raw_whole_only(&remote, &raw);
    remote.set(|f| {
        f.flip = Some(Flip {
            artifact: 2,
            offset: 3 * MIB as u64 + 7,
            times: Some(1),
        })
    });
    let (fs, _cache, _dir) = core(remote.clone(), 1 << 30);
    let path = "octo/hello/runs/101/raw";
    assert_eq!(
        crate::error::ToErrno::errno(&try_read_file(&fs, path).await.unwrap_err()),
        libc::EIO,
        "the changed byte never reaches a full read"
    );
    assert_eq!(read_file(&fs, path).await, raw, "one refetch heals it");
    // The changed download, the one refetch, and at most one more: the failing reader's
    // read under way when the bad bytes were dropped takes its bytes from a new download,
    // which the refetch does not trust (it drops what is cached first). Never two at once.
    let (n, at_once, bytes) = downloads(&remote);
    assert!((2..=3).contains(&n), "{n} downloads");
    assert_eq!((at_once, bytes), (1, n * raw.len() as u64));
}
