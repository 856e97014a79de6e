//! The data layer without FUSE: an in-memory remote that can change a byte in flight, and
//! every byte path (stored entry, deflated entry, whole blob) held to the integrity invariant;
//! a cache far smaller than the files still gives the right bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};

use super::*;
use crate::error::SourceError;
use crate::source::MemorySource;

/// A blob host in memory that changes the byte at `flip_at` in the next `flips` bodies that
/// cover it.
pub(super) struct FlakyRemote {
    inner: MemorySource,
    flip_at: AtomicU64,
    flips: AtomicU64,
    pub(super) bytes: AtomicU64,
    requests: AtomicU64,
}

impl FlakyRemote {
    /// Changes the byte at `at` in the next `times` bodies that cover it.
    fn flip(&self, at: u64, times: u64) {
        self.flip_at.store(at, Ordering::SeqCst);
        self.flips.store(times, Ordering::SeqCst);
    }
}

#[async_trait]
impl ByteSource for FlakyRemote {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let b = self.inner.read_at(offset, len).await?;
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(b.len() as u64, Ordering::SeqCst);
        let end = offset + b.len() as u64;
        let flip_at = self.flip_at.load(Ordering::SeqCst);
        if (offset..end).contains(&flip_at)
            && self
                .flips
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            let mut v = b.to_vec();
            v[(flip_at - offset) as usize] ^= 0xFF;
            return Ok(Bytes::from(v));
        }
        Ok(b)
    }
}

pub(super) struct Setup {
    _dir: tempfile::TempDir,
    pub(super) data: DataLayer,
    pub(super) blob: BlobRef,
    pub(super) remote: Arc<FlakyRemote>,
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

pub(super) fn setup(zip: &[u8], cache_size: u64, flip_at: u64, flips: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(crate::cache::DiskCache::open(dir.path(), cache_size).unwrap());
    let remote = Arc::new(FlakyRemote {
        inner: MemorySource(Bytes::from(zip.to_vec())),
        flip_at: AtomicU64::new(flip_at),
        flips: AtomicU64::new(flips),
        bytes: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });
    let blob = BlobRef {
        key: BlobKey {
            id: 1,
            version: "v".into(),
        },
        len: zip.len() as u64,
        sha256: Some(sha(zip)),
        what: "artifact 1".into(),
        remote: remote.clone(),
    };
    Setup {
        _dir: dir,
        data: DataLayer::new(cache, Default::default()),
        blob,
        remote,
    }
}

/// Reads a file through in `chunk`-sized reads: every result, in order.
async fn read_through(r: &FileReader, chunk: u32) -> Vec<Result<Vec<u8>, DataError>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < r.size() {
        let res = r.read(off, chunk).await;
        let n = res.as_ref().map_or(chunk as u64, |b| b.len() as u64);
        out.push(res);
        off += n;
    }
    out
}

fn joined(results: Vec<Result<Vec<u8>, DataError>>) -> Result<Vec<u8>, String> {
    let mut all = Vec::new();
    for r in results {
        all.extend(r.map_err(|e| e.to_string())?);
    }
    Ok(all)
}

/// A stored 3 MiB file after a deflated 2 MiB log: (zip, log, big, offset of big's data).
fn archive() -> (Vec<u8>, Vec<u8>, Vec<u8>, u64) {
    sized_archive(2 << 20, 3 << 20)
}

/// A stored `big_len` file after a deflated `log_len` log.
pub(super) fn sized_archive(log_len: usize, big_len: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>, u64) {
    let log = log_text(log_len, 1);
    let big = noise(big_len, 2);
    let mut z = ZipBuilder::new();
    z.add("app.log", &log);
    z.add_with("big.bin", &big, EntryOptions::stored());
    let zip = z.finish();
    let at = zip.windows(64).position(|w| w == &big[..64]).unwrap() as u64;
    (zip, log, big, at)
}

#[tokio::test]
async fn every_path_fails_the_read_that_completes_a_changed_file_and_every_later_one() {
    let (zip, _, _, big_at) = archive();
    // Stored entry, whole blob, deflated entry (a byte of its compressed data).
    for (spec, flip_at) in [
        (FileSpec::Entry(1), big_at + 1_000_000),
        (FileSpec::Whole, big_at + 1_000_000),
        (FileSpec::Entry(0), 5_000),
    ] {
        let s = setup(&zip, 1 << 30, flip_at, u64::MAX);
        let r = s.data.open(&s.blob, spec).await.unwrap();
        let mut results = read_through(&r, 128 << 10).await;
        let last = results.pop().unwrap();
        assert!(last.is_err(), "{spec:?}: the completing read");
        assert!(r.read(0, 10).await.is_err(), "{spec:?}: a later read");
        // A new handle: the one refetch is changed too, so EIO stays, without fetching more.
        let r2 = s.data.open(&s.blob, spec).await.unwrap();
        assert!(r2.read(0, 10).await.is_err(), "{spec:?}: refetch failed");
        let fetched = s.remote.bytes.load(Ordering::SeqCst);
        let r3 = s.data.open(&s.blob, spec).await.unwrap();
        assert!(r3.read(0, 10).await.is_err(), "{spec:?}: EIO stays");
        assert_eq!(s.remote.bytes.load(Ordering::SeqCst), fetched, "{spec:?}");
    }
}

#[tokio::test]
async fn one_refetch_heals_a_transient_change() {
    let (zip, log, big, big_at) = archive();
    for (spec, flip_at, want) in [
        (FileSpec::Entry(1), big_at + 2_000_000, &big),
        (FileSpec::Whole, big_at + 2_000_000, &zip),
        (FileSpec::Entry(0), 9_000, &log),
    ] {
        let s = setup(&zip, 1 << 30, flip_at, 1);
        let r = s.data.open(&s.blob, spec).await.unwrap();
        assert!(joined(read_through(&r, 1 << 20).await).is_err(), "{spec:?}");
        let r = s.data.open(&s.blob, spec).await.unwrap();
        let got = joined(read_through(&r, 1 << 20).await).unwrap();
        assert!(got == *want, "{spec:?}: right bytes after one refetch");
        assert!(s.data.is_verified(&s.blob, spec), "{spec:?}");
    }
}

#[tokio::test]
async fn a_mismatch_found_by_readahead_is_not_swallowed() {
    let (zip, _, _, big_at) = archive();
    let s = setup(&zip, 1 << 30, big_at + 100, u64::MAX);
    let r = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert!(r.read(0, 4096).await.is_ok());
    // Background readahead completes the blob: its digest check (in the background) fails.
    let blob = s.data.blob(&s.blob);
    blob.ensure(0, zip.len() as u64).await.unwrap();
    super::blob::tests::settle(&blob).await;
    assert!(
        r.read(4096, 4096).await.is_err(),
        "the open handle is refused"
    );
    assert!(!s.data.is_verified(&s.blob, FileSpec::Whole));
}

#[tokio::test]
async fn two_readers_of_a_changed_file_both_end_in_eio() {
    let (zip, _, _, big_at) = archive();
    let s = setup(&zip, 1 << 30, big_at + 3, u64::MAX);
    let a = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    let b = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    let chunk = 256 << 10;
    let mut off = 0;
    let (mut a_err, mut b_err) = (false, false);
    while off < a.size() {
        a_err |= a.read(off, chunk).await.is_err();
        b_err |= b.read(off, chunk).await.is_err();
        off += chunk as u64;
    }
    assert!(a_err && b_err);
}

#[tokio::test]
async fn a_cache_far_smaller_than_the_files_gives_the_right_bytes_twice() {
    let (zip, log, big, _) = sized_archive(8 << 20, 6 << 20);
    let s = setup(&zip, 1 << 20, u64::MAX, 0);
    for round in 0..2 {
        for (spec, want) in [
            (FileSpec::Entry(0), &log),
            (FileSpec::Entry(1), &big),
            (FileSpec::Whole, &zip),
        ] {
            let r = s.data.open(&s.blob, spec).await.unwrap();
            let got = joined(read_through(&r, 128 << 10).await).unwrap();
            assert!(got == *want, "{spec:?}, round {round}");
            assert!(s.data.cache().used() <= 1 << 20, "{spec:?}, round {round}");
        }
    }
    // Backwards through the deflated entry: each read behind the stream starts it over.
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    for off in [7 << 20, 3 << 20, 0] {
        let got = r.read(off, 1000).await.unwrap();
        assert_eq!(&got[..], &log[off as usize..off as usize + 1000]);
    }
}

#[tokio::test]
async fn a_deflated_entry_is_served_as_it_is_inflated_and_kept_when_verified() {
    let log = log_text(24 << 20, 5);
    let mut z = ZipBuilder::new();
    z.add("app.log", &log);
    z.add("other.txt", b"x");
    let zip = z.finish();
    let s = setup(&zip, 1 << 30, u64::MAX, 0);
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    let got = r.read(0, 4096).await.unwrap();
    assert_eq!(&got[..], &log[..4096]);
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    assert!(
        fetched <= 2 << 20,
        "the first 4 KiB cost {fetched} of {} bytes",
        zip.len()
    );
    let got = joined(read_through(&r, 1 << 20).await).unwrap();
    assert!(got == log);
    // Verified and copied: another handle reads from the cache, nothing fetched.
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    assert_eq!(
        &r.read(5 << 20, 100).await.unwrap()[..],
        &log[5 << 20..(5 << 20) + 100]
    );
    assert_eq!(s.remote.bytes.load(Ordering::SeqCst), fetched);
    assert!(s.data.is_verified(&s.blob, FileSpec::Entry(0)));
}

#[tokio::test]
async fn seek_points_bound_a_random_read_to_one_span_even_after_a_remount() {
    use super::seek_index::SPAN;
    let log = log_text(24 << 20, 9);
    let mut z = ZipBuilder::new();
    z.add("app.log", &log);
    let zip = z.finish();
    // 16 MiB: the compressed bytes stay cached, the inflated copy (24 MiB) is never kept.
    let s = setup(&zip, 16 << 20, u64::MAX, 0);
    let inflated = |data: &DataLayer| {
        data.inflaters
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.inflated())
            .sum::<u64>()
    };
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    assert!(joined(read_through(&r, 1 << 20).await).unwrap() == log);
    assert_eq!(inflated(&s.data), log.len() as u64);
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    // Backwards, from the end: each read inflates from the point before it.
    for off in [22 << 20, 13 << 20, 5 << 20] {
        let before = inflated(&s.data);
        let got = r.read(off, 4096).await.unwrap();
        assert_eq!(&got[..], &log[off as usize..off as usize + 4096]);
        let cost = inflated(&s.data) - before;
        assert!(
            cost <= SPAN + (1 << 20),
            "read at {off} inflated {cost} bytes"
        );
    }
    assert_eq!(
        s.remote.bytes.load(Ordering::SeqCst),
        fetched,
        "nothing fetched"
    );
    // A new mount on the same cache: the points come from the cache.
    let data = DataLayer::new(s.data.cache().clone(), Default::default());
    let r = data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    let off = 21 << 20;
    let got = r.read(off, 4096).await.unwrap();
    assert_eq!(&got[..], &log[off as usize..off as usize + 4096]);
    assert!(inflated(&data) <= SPAN + (1 << 20), "{}", inflated(&data));
}

#[tokio::test]
async fn reading_many_deflated_entries_keeps_a_bounded_number_of_inflaters() {
    let mut z = ZipBuilder::new();
    for i in 0..100u64 {
        z.add(&format!("logs/{i}.log"), &log_text(200_000, i));
    }
    let zip = z.finish();
    let s = setup(&zip, 1 << 30, u64::MAX, 0);
    for i in 0..100usize {
        let r = s.data.open(&s.blob, FileSpec::Entry(i)).await.unwrap();
        assert_eq!(r.read(0, 100).await.unwrap().len(), 100, "entry {i}");
    }
    let kept = s.data.inflaters.lock().unwrap().len();
    assert!(kept <= super::INFLATERS_KEPT.get(), "{kept} inflaters kept");
}

#[tokio::test]
async fn without_a_seal_a_verified_file_is_trusted_only_while_nothing_of_its_blob_was_evicted() {
    let (zip, _, big, _) = sized_archive(1 << 20, 3 << 20);
    // 3 MiB: reading the archive after the 3 MiB file evicts blocks of the file.
    let mut s = setup(&zip, 3 << 20, u64::MAX, 0);
    s.blob.sha256 = None; // no digest (old artifacts, GHES): no seal
    let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    assert!(joined(read_through(&r, 1 << 20).await).unwrap() == big);
    assert!(s.data.is_verified(&s.blob, FileSpec::Entry(1)));
    let whole = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert!(joined(read_through(&whole, 128 << 10).await).unwrap() == zip);
    // Its cached bytes may have been refetched since: the kernel must not keep its pages
    // (every read goes through a check again) until a reader verifies it anew.
    assert!(!s.data.is_verified(&s.blob, FileSpec::Entry(1)));
    let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    assert!(joined(read_through(&r, 1 << 20).await).unwrap() == big);
    assert!(
        s.data.is_verified(&s.blob, FileSpec::Entry(1)),
        "read through and matched again: trusted again"
    );
}

#[tokio::test]
async fn a_sealed_blob_is_trusted_through_evictions_and_checks_what_comes_back() {
    let (zip, _, big, big_at) = sized_archive(1 << 20, 3 << 20);
    let s = setup(&zip, 3 << 20, u64::MAX, 0);
    let whole = s.data.open(&s.blob, FileSpec::Whole).await.unwrap();
    assert!(joined(read_through(&whole, 128 << 10).await).unwrap() == zip);
    let blob = s.data.blob(&s.blob);
    super::blob::tests::settle(&blob).await;
    assert!(blob.sealed(), "the digest verified in the background");
    // Most of the archive was evicted since; sealed, every file is trusted anyway.
    assert!(!blob.is_cached(0, zip.len() as u64));
    assert!(s.data.is_verified(&s.blob, FileSpec::Whole));
    assert!(s.data.is_verified(&s.blob, FileSpec::Entry(1)));
    // A byte changed once on the refetch of an evicted block, read partially (`dd`): the
    // block is refused and fetched once more.
    let at = big_at + 100_000;
    blob.drop_range(at, 1); // evicted (if it was not already)
    s.remote.flip(at, 1);
    let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    let got = r.read(90_000, 20_000).await.unwrap();
    assert_eq!(&got[..], &big[90_000..110_000]);
    assert_eq!(
        s.remote.flips.load(Ordering::SeqCst),
        0,
        "it was changed once"
    );
    // Changed twice: EIO, never the changed bytes.
    let at = big_at + 1_500_000;
    blob.drop_range(at, 1);
    s.remote.flip(at, 2);
    let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    assert!(r.read(1_499_000, 4096).await.is_err());
    assert_eq!(s.remote.flips.load(Ordering::SeqCst), 0);
    // Healed: the next read is right.
    let got = r.read(1_499_000, 4096).await.unwrap();
    assert_eq!(&got[..], &big[1_499_000..1_499_000 + 4096]);
}

#[tokio::test]
async fn a_block_damaged_on_disk_is_fetched_again_never_served() {
    let (zip, _, big, big_at) = sized_archive(1 << 20, 3 << 20);
    for (sealed, damage) in [
        (false, "zeros"),
        (false, "bit"),
        (true, "zeros"),
        (true, "bit"),
    ] {
        let mut s = setup(&zip, 1 << 30, u64::MAX, 0);
        if !sealed {
            s.blob.sha256 = None;
        }
        let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
        assert!(joined(read_through(&r, 1 << 20).await).unwrap() == big);
        if sealed {
            let blob = s.data.blob(&s.blob);
            blob.ensure(0, zip.len() as u64).await.unwrap();
            super::blob::tests::settle(&blob).await;
            assert!(blob.sealed());
        }
        // Between two reads, the cache's copy of one block is damaged.
        let path = s._dir.path().join("blocks/a1-v.data");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let at = big_at + 2_000_000;
        use std::os::unix::fs::FileExt;
        if damage == "zeros" {
            f.write_all_at(&[0u8; 4096], at & !4095).unwrap();
        } else {
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
        }
        let fetched = s.remote.bytes.load(Ordering::SeqCst);
        let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
        let got = r.read(2_000_000 - 50, 100).await.unwrap();
        assert_eq!(
            &got[..],
            &big[1_999_950..2_000_050],
            "{damage}, sealed {sealed}"
        );
        assert_eq!(
            s.remote.bytes.load(Ordering::SeqCst) - fetched,
            crate::cache::BLOCK_SIZE,
            "that block fetched again"
        );
    }
}

/// Where the CRC-32 of entry `name` sits in the archive's central directory.
fn cd_crc_offset(zip: &[u8], name: &str) -> u64 {
    let end = zip
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .expect("end record");
    let u16_at = |p: usize| u16::from_le_bytes([zip[p], zip[p + 1]]) as usize;
    let mut at = u32::from_le_bytes(zip[end + 16..end + 20].try_into().unwrap()) as usize;
    loop {
        let (n, x, c) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        if &zip[at + 46..at + 46 + n] == name.as_bytes() {
            return at as u64 + 16;
        }
        at += 46 + n + x + c;
    }
}

#[tokio::test]
async fn one_refetch_heals_a_changed_byte_of_the_central_directory() {
    let (zip, log, big, _) = archive();
    for (spec, name, want) in [
        (FileSpec::Entry(1), "big.bin", &big),
        (FileSpec::Entry(0), "app.log", &log),
    ] {
        // One byte of the entry's CRC in the central directory, changed once.
        let s = setup(&zip, 1 << 30, cd_crc_offset(&zip, name), 1);
        let r = s.data.open(&s.blob, spec).await.unwrap();
        assert!(
            joined(read_through(&r, 1 << 20).await).is_err(),
            "{name}: the check fails"
        );
        assert_eq!(s.remote.flips.load(Ordering::SeqCst), 0);
        // The next open reads the central directory again: right bytes.
        let r = s.data.open(&s.blob, spec).await.unwrap();
        let got = joined(read_through(&r, 1 << 20).await);
        assert!(got.as_ref() == Ok(want), "{name}: {:?}", got.err());
    }
}

#[tokio::test]
async fn many_small_archives_under_a_tiny_cache_cost_one_read_each_and_read_right() {
    // 400 archives of one small file, a cache of 256 KiB: every blob's map and data file
    // must be evictable with it, or the cache is over its cap for good and evicts every
    // block as soon as it is written.
    const N: u64 = 400;
    const CAP: u64 = 256 << 10;
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(crate::cache::DiskCache::open(dir.path(), CAP).unwrap());
    let data = DataLayer::new(cache, Default::default());
    let mut blobs = Vec::new();
    for i in 0..N {
        let text = log_text(123, i);
        let mut z = ZipBuilder::new();
        z.add("out/result.txt", &text);
        let zip = z.finish();
        let remote = Arc::new(FlakyRemote {
            inner: MemorySource(Bytes::from(zip.clone())),
            flip_at: AtomicU64::new(u64::MAX),
            flips: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let blob = BlobRef {
            key: BlobKey {
                id: i + 1,
                version: "v".into(),
            },
            len: zip.len() as u64,
            sha256: Some(sha(&zip)),
            what: format!("artifact {}", i + 1),
            remote: remote.clone(),
        };
        blobs.push((blob, remote, text));
    }
    for (b, remote, text) in &blobs {
        let idx = data.index(b).await.unwrap();
        assert_eq!(idx.cd.entries.len(), 1);
        let r = data.open(b, FileSpec::Entry(0)).await.unwrap();
        let got = joined(read_through(&r, 128 << 10).await).unwrap();
        assert!(got == *text, "{}", b.what);
        let n = remote.requests.load(Ordering::SeqCst);
        assert!(n <= 2, "{}: {n} requests", b.what);
        assert!(
            data.cache().used() <= CAP,
            "{} > {CAP}",
            data.cache().used()
        );
    }
    for (b, _, _) in &blobs {
        let blob = data.blob(b);
        super::blob::tests::settle(&blob).await;
        assert_eq!(blob.whole().unwrap().failures(), 0, "{}", b.what);
    }
}

#[tokio::test]
async fn a_stored_entry_that_passed_its_crc_seals_the_blocks_inside_it() {
    let (zip, _, big, big_at) = sized_archive(1 << 20, 3 << 20);
    for digest in [true, false] {
        let mut s = setup(&zip, 1 << 30, u64::MAX, 0);
        if !digest {
            s.blob.sha256 = None;
        }
        let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
        assert!(joined(read_through(&r, 1 << 20).await).unwrap() == big);
        let blob = s.data.blob(&s.blob);
        assert!(
            !blob.sealed(),
            "the log was never read: no seal of the whole"
        );
        // A block inside the entry, evicted, then fetched again with a byte changed once.
        let at = big_at + 1_000_000;
        blob.drop_range(at, 1);
        s.remote.flip(at, 1);
        let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
        let got = r.read(999_990, 20).await.unwrap();
        assert_eq!(&got[..], &big[999_990..1_000_010], "digest {digest}");
        assert_eq!(s.remote.flips.load(Ordering::SeqCst), 0, "it was changed");
    }
}

#[path = "copy_tests.rs"]
mod copy_tests;

#[path = "cap_tests.rs"]
mod cap_tests;

#[path = "fetch_once_tests.rs"]
mod fetch_once_tests;
