//! A deflated entry read at random: inflated once, in the background, to its copy in the
//! cache; then served from the copy (no blob bytes, no inflate stream), whose blocks are
//! checked (a damaged one is inflated again, never served), across a remount too.

use super::*;
use crate::data::inflated_copy::InflatedCopy;
use crate::stats::Status;

/// A zip holding one deflated log of `len` bytes: (zip, log).
fn deflated(len: usize) -> (Vec<u8>, Vec<u8>) {
    let log = log_text(len, 11);
    let mut z = ZipBuilder::new();
    z.add("db.log", &log);
    (z.finish(), log)
}

/// A random reader's pattern: the first page, then pages all over, back and forth (as a
/// database's indexed query reads).
fn pattern(len: u64) -> Vec<u64> {
    let mut offs = vec![0];
    let mut x = 0x2545_F491u64;
    for _ in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        offs.push((x % (len / 4096)) * 4096);
    }
    offs
}

/// Reads `offs` (4 KiB each) through one handle, checking every byte.
async fn read_pattern(data: &DataLayer, blob: &BlobRef, offs: &[u64], want: &[u8]) {
    let r = data.open(blob, FileSpec::Entry(0)).await.unwrap();
    for &off in offs {
        let got = r.read(off, 4096).await.unwrap();
        let end = (off as usize + 4096).min(want.len());
        assert!(got == want[off as usize..end], "bytes at {off}");
    }
}

fn streams(data: &DataLayer) -> u64 {
    Status::of(&data.stats, &data.cache, vec![]).inflate_streams
}

/// Waits for entry 0's copy pass to end; whether it verified (`None`: no pass, or it was
/// dropped with the entry's inflater after a failed check).
async fn pass_outcome(data: &DataLayer) -> Option<bool> {
    let progress = data
        .inflaters
        .lock()
        .unwrap()
        .iter()
        .find_map(|(_, e)| e.pass_progress());
    let mut rx = progress?;
    let p = rx.wait_for(|p| p.ended.is_some()).await.ok()?;
    Some(matches!(p.ended, Some(Ok(()))))
}

/// Waits for entry 0's copy pass to end; whether it verified.
async fn pass_done(data: &DataLayer) -> bool {
    pass_outcome(data).await.expect("a copy pass was started")
}

/// The copy's data file as it is on disk (`len` bytes).
fn copy_on_disk(s: &Setup, len: usize) -> Vec<u8> {
    let stem = InflatedCopy::key_for(&s.blob.key, 0).stem();
    let mut b = std::fs::read(s._dir.path().join(format!("blocks/{stem}.data"))).unwrap();
    b.truncate(len);
    b
}

#[tokio::test]
async fn a_random_reader_inflates_once_then_reads_the_copy_at_no_cost() {
    let (zip, log) = deflated(12 << 20);
    let s = setup(&zip, 1 << 30, u64::MAX, 0);
    let offs = pattern(log.len() as u64);
    read_pattern(&s.data, &s.blob, &offs, &log).await;
    assert_eq!(
        streams(&s.data),
        1,
        "one stream from the start, taken over by the copy pass: no restarts"
    );
    assert!(
        pass_done(&s.data).await,
        "the copy pass verified the CRC-32"
    );
    assert!(
        s.remote.bytes.load(Ordering::SeqCst) <= zip.len() as u64,
        "the compressed bytes fetched once"
    );
    assert!(s.data.is_verified(&s.blob, FileSpec::Entry(0)));
    // The same query again (a new handle): from the copy.
    let (bytes, requests) = (
        s.remote.bytes.load(Ordering::SeqCst),
        s.remote.requests.load(Ordering::SeqCst),
    );
    let before = streams(&s.data);
    for _ in 0..2 {
        read_pattern(&s.data, &s.blob, &offs, &log).await;
    }
    assert_eq!(
        s.remote.bytes.load(Ordering::SeqCst),
        bytes,
        "no blob bytes"
    );
    assert_eq!(s.remote.requests.load(Ordering::SeqCst), requests);
    assert_eq!(streams(&s.data), before, "no inflate stream started");
    // A new mount on the same cache: the copy is still there.
    let data = DataLayer::new(s.data.cache().clone(), Default::default());
    read_pattern(&data, &s.blob, &offs, &log).await;
    assert_eq!(
        s.remote.bytes.load(Ordering::SeqCst),
        bytes,
        "after a remount"
    );
    assert_eq!(streams(&data), 0, "after a remount");
}

#[tokio::test]
async fn the_inflated_copy_is_the_entry_byte_for_byte() {
    let (zip, log) = deflated(5 << 20);
    let s = setup(&zip, 1 << 30, u64::MAX, 0);
    read_pattern(&s.data, &s.blob, &[0, 3 << 20, 1 << 20], &log).await;
    assert!(pass_done(&s.data).await);
    assert_eq!(sha(&copy_on_disk(&s, log.len())), sha(&log));
}

#[tokio::test]
async fn a_copy_damaged_on_disk_is_found_and_rebuilt_never_served() {
    let (zip, log) = deflated(12 << 20);
    let s = setup(&zip, 1 << 30, u64::MAX, 0);
    read_pattern(&s.data, &s.blob, &[0, 9 << 20, 2 << 20], &log).await;
    assert!(pass_done(&s.data).await);
    // One bit of the copy flipped on disk, between two reads.
    let stem = InflatedCopy::key_for(&s.blob.key, 0).stem();
    let path = s._dir.path().join(format!("blocks/{stem}.data"));
    let at = (7 << 20) + 12_345;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x08], at).unwrap();
    }
    let fetched = s.remote.bytes.load(Ordering::SeqCst);
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    let got = r.read(at - 100, 200).await.unwrap();
    assert!(
        got == log[at as usize - 100..at as usize + 100],
        "never served"
    );
    // Rebuilt: the copy is right again, and the next read of it costs nothing.
    assert_eq!(sha(&copy_on_disk(&s, log.len())), sha(&log), "rebuilt");
    let before = streams(&s.data);
    let got = r.read(at - 100, 200).await.unwrap();
    assert!(got == log[at as usize - 100..at as usize + 100]);
    assert_eq!(streams(&s.data), before, "served from the rebuilt copy");
    assert_eq!(
        s.remote.bytes.load(Ordering::SeqCst),
        fetched,
        "inflated again from cached compressed bytes"
    );
}

#[tokio::test]
async fn a_copy_pass_that_fails_the_crc_fails_the_entry_and_one_refetch_heals_it() {
    let (zip, log) = deflated(6 << 20);
    // A byte in the middle of the compressed data changed in the first body that carries it.
    // No digest: the blob's own check would catch it first.
    let mut s = setup(&zip, 1 << 30, zip.len() as u64 / 2, 1);
    s.blob.sha256 = None;
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    r.read(0, 4096).await.unwrap();
    // Starts the pass. Served before the pass reaches the end (as any streamed byte is), or
    // failed when the pass failed first: either way the pass fails the entry.
    if r.read(5 << 20, 4096).await.is_ok() {
        assert_eq!(pass_outcome(&s.data).await, Some(false), "the pass failed");
    }
    assert!(r.read(0, 4096).await.is_err(), "this handle is refused");
    assert_eq!(
        s.data.entries.lock().unwrap()[&(s.blob.key.clone(), 0)].verdict(),
        verify::Verdict::Failed { refetched: false }
    );
    // The next open refetches once (reading the entry through, which writes the copy
    // again); a random reader then gets the right bytes, from the copy.
    let offs = pattern(log.len() as u64);
    read_pattern(&s.data, &s.blob, &offs, &log).await;
    assert_eq!(sha(&copy_on_disk(&s, log.len())), sha(&log));
    assert!(s.data.is_verified(&s.blob, FileSpec::Entry(0)));
}

#[tokio::test]
async fn the_copy_is_evicted_block_by_block_under_the_cap_and_reads_stay_right() {
    let log = log_text(3 << 20, 12);
    let big = noise(6 << 20, 13);
    let mut z = ZipBuilder::new();
    z.add("db.log", &log);
    z.add_with("big.bin", &big, EntryOptions::stored());
    let zip = z.finish();
    let limit = 8 << 20;
    let s = setup(&zip, limit, u64::MAX, 0);
    let offs = pattern(log.len() as u64);
    read_pattern(&s.data, &s.blob, &offs, &log).await;
    assert!(pass_done(&s.data).await);
    let stem = InflatedCopy::key_for(&s.blob.key, 0).stem();
    let map = s._dir.path().join(format!("blocks/{stem}.map"));
    let blocks = (log.len() as u64).div_ceil(crate::cache::BLOCK_SIZE) as usize;
    assert_eq!(crate::cache::BlockFile::recorded_blocks(&map).len(), blocks);
    assert!(
        s.data.cache().used() <= limit,
        "the copy counts against the cap"
    );
    // Reading the 6 MiB file evicts the least recently used: the copy's blocks among them.
    let r = s.data.open(&s.blob, FileSpec::Entry(1)).await.unwrap();
    assert!(joined(read_through(&r, 1 << 20).await).unwrap() == big);
    assert!(s.data.cache().used() <= limit);
    let left = crate::cache::BlockFile::recorded_blocks(&map).len();
    assert!(left < blocks, "{left} of {blocks} copy blocks left");
    read_pattern(&s.data, &s.blob, &offs, &log).await;
    assert!(s.data.cache().used() <= limit);
}

#[tokio::test]
async fn a_sealed_copy_checks_what_refills_it_while_the_cache_is_paused() {
    use std::io::Read;
    // Incompressible: stored deflate blocks, where a changed byte inflates to a changed byte.
    let data = noise(3 << 20, 14);
    let mut z = ZipBuilder::new();
    z.add("db.bin", &data);
    let zip = z.finish();
    let start = zip::ZipArchive::new(std::io::Cursor::new(&zip[..]))
        .unwrap()
        .by_index(0)
        .unwrap()
        .data_start();
    // A byte of the first stored block, in the blob block the entry shares with its local
    // header: no seal of the entry's compressed blocks covers it (its piece of the block is
    // checked by the entry's streams, forgotten below), only the copy's seal.
    let at = start + 100;
    let mut changed = zip[start as usize..].to_vec();
    changed[100] ^= 0xFF;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(&changed[..])
        .read_to_end(&mut out)
        .unwrap();
    let diff: Vec<usize> = (0..data.len()).filter(|&i| out[i] != data[i]).collect();
    assert_eq!(diff, vec![95], "inflates with one byte changed");
    let mut s = setup(&zip, 1 << 30, u64::MAX, 0);
    s.blob.sha256 = None;
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    assert!(joined(read_through(&r, 1 << 20).await).unwrap() == data);
    let key = InflatedCopy::key_for(&s.blob.key, 0);
    let copy = s.data.cache().block_file(&key, data.len() as u64).unwrap();
    assert!(
        copy.is_sealed(),
        "the stream from the start sealed the copy"
    );
    // The copy's first block and the compressed bytes under it evicted; the cache paused.
    copy.punch(0);
    s.data.cache().remove_blocks(&key, &[0]);
    s.data.blob(&s.blob).drop_range(at, 1);
    // Its piece forgotten: the blob's seals, pieces with them.
    (s.data.cache().block_file(&s.blob.key, s.blob.len))
        .unwrap()
        .unseal();
    s.data
        .cache()
        .write_failed("a test", &std::io::Error::other("paused"));
    assert!(!s.data.cache().writable());
    s.remote.flip(at, 1);
    let requests = s.remote.requests.load(Ordering::SeqCst);
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    let got = r.read(0, 4096).await;
    assert!(
        got.is_err(),
        "refilled from a changed byte, not stored, served unchecked"
    );
    assert_eq!(s.remote.flips.load(Ordering::SeqCst), 0, "it was changed");
    assert!(s.remote.requests.load(Ordering::SeqCst) > requests);
    // The next open's one refetch reads the entry through again: right.
    let r = s.data.open(&s.blob, FileSpec::Entry(0)).await.unwrap();
    assert!(r.read(0, 4096).await.unwrap() == data[..4096]);
    assert!(joined(read_through(&r, 1 << 20).await).unwrap() == data);
}

#[test]
fn a_dropped_copy_leaves_nothing_counted() {
    // The entry failed a check: the copy's blocks go, and its map with them (retired), in
    // the accounting too.
    let d = tempfile::tempdir().unwrap();
    let cache = Arc::new(crate::cache::DiskCache::open(d.path(), 64 << 20).unwrap());
    let blob = crate::cache::BlobKey {
        id: 1,
        version: "v".into(),
    };
    let size = 2 << 20;
    let copy = InflatedCopy::open(&cache, &blob, 0, size).unwrap();
    let key = InflatedCopy::key_for(&blob, 0);
    let file = cache.block_file(&key, size).unwrap();
    let block = vec![5u8; crate::cache::BLOCK_SIZE as usize];
    cache.store_blocks(&key, &file, 0, &block).unwrap();
    assert!(cache.used_by_files() > 0);
    copy.drop_all();
    assert_eq!(cache.used_by_files(), 0, "nothing of the copy counted");
    assert_eq!(cache.used(), crate::cache::tests::disk_usage(d.path()));
}
