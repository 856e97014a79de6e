//! Tests of the disk cache's accounting, eviction and persistence.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn key(id: u64) -> BlobKey {
    BlobKey {
        id,
        version: "v".into(),
    }
}

/// Keeps `bytes` bytes of seek points for entry `index` of `key`; where they are.
fn put(cache: &DiskCache, key: &BlobKey, index: usize, bytes: usize) -> PathBuf {
    cache.store_seek_points(key, index, &vec![7u8; bytes]);
    cache.root().join(DiskCache::seek_rel(key, index))
}

#[test]
fn dirs_are_private_and_files_0600() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("c");
    let cache = DiskCache::open(&root, 1 << 20).unwrap();
    let p = put(&cache, &key(1), 0, 10);
    cache.block_file(&key(2), BLOCK_SIZE).unwrap();
    for dir in [&root, &root.join("entries"), &root.join("blocks")] {
        let mode = fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    }
    for file in [
        p,
        root.join("blocks/a2-v.data"),
        root.join("blocks/a2-v.map"),
    ] {
        let mode = fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

#[test]
fn evicts_least_recently_used_past_limit() {
    let d = tempfile::tempdir().unwrap();
    // Three 4 KiB files do not fit in 10 000 bytes.
    let cache = DiskCache::open(d.path(), 10_000).unwrap();
    let peak = watch_peak(&cache);
    put(&cache, &key(1), 0, 4000);
    put(&cache, &key(2), 0, 4000);
    assert!(cache.seek_points(&key(1), 0).is_some()); // 1 is now most recent
    put(&cache, &key(3), 0, 4000);
    assert!(
        cache.seek_points(&key(2), 0).is_none(),
        "2 was least recently used"
    );
    assert!(cache.seek_points(&key(1), 0).is_some());
    assert!(cache.seek_points(&key(3), 0).is_some());
    assert!(cache.used() <= 10_000);
    assert!(disk_usage(d.path()) <= 10_000);
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= 10_000,
        "{peak} bytes on disk as the third was written"
    );
}

#[test]
fn survives_reopen_and_remove_blobs() {
    let d = tempfile::tempdir().unwrap();
    {
        let cache = DiskCache::open(d.path(), 1 << 20).unwrap();
        put(&cache, &key(5), 0, 10);
        cache.store_inner_index(&key(5), "inner-x.tar", b"index");
        cache.store_meta("kinds.json", b"{}").unwrap();
    }
    let cache = DiskCache::open(d.path(), 1 << 20).unwrap();
    assert_eq!(cache.seek_points(&key(5), 0).unwrap(), vec![7u8; 10]);
    assert_eq!(cache.inner_index(&key(5), "inner-x.tar").unwrap(), b"index");
    assert_eq!(cache.load_meta("kinds.json").unwrap(), b"{}");
    assert_eq!(
        cache.used(),
        3 * 4096,
        "two entries and a metadata file, in disk allocation units"
    );
    cache.remove_blobs(5);
    assert!(cache.seek_points(&key(5), 0).is_none());
    assert!(cache.inner_index(&key(5), "inner-x.tar").is_none());
    assert_eq!(cache.used(), 4096, "the metadata file stays");
}

/// What the files under `root` take on disk, as `du` counts them (`st_blocks`); a file
/// removed while it is counted counts nothing.
pub(crate) fn disk_usage(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(md) if md.is_dir() => stack.push(e.path()),
                Ok(md) => total += md.blocks() * 512,
                Err(_) => {}
            }
        }
    }
    total
}

/// The most the files under the cache's root take on disk right after any write under it
/// (before the bytes are accounted: the cache at its fullest), from now on.
pub(crate) fn watch_peak(cache: &DiskCache) -> Arc<AtomicU64> {
    let peak = Arc::new(AtomicU64::new(0));
    let p = peak.clone();
    cache.on_written(move |root| {
        p.fetch_max(disk_usage(root), Ordering::SeqCst);
    });
    peak
}

/// Stores blocks `first..=last` of `key`'s blob as a fetch would (each block `i` filled with
/// `i`); whether they were kept.
fn store_run(cache: &DiskCache, key: &BlobKey, file: &BlockFile, first: u64, last: u64) -> bool {
    let mut bytes = Vec::new();
    for i in first..=last {
        bytes.extend(std::iter::repeat_n(i as u8, file.block_len(i) as usize));
    }
    match cache.store_blocks(key, file, first, &bytes).unwrap() {
        BlocksStored::Written { bad } => bad.is_empty(),
        BlocksStored::NoRoom => false,
    }
}

#[test]
fn a_store_never_takes_the_cache_past_its_cap_even_for_a_moment() {
    const CAP: u64 = 4 << 20;
    const RUN: u64 = (2 << 20) / BLOCK_SIZE; // readahead's 2 MiB requests
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), CAP).unwrap();
    let peak = watch_peak(&cache);
    let within_cap = |what: &str| {
        let now = disk_usage(d.path());
        assert!(now <= CAP, "{what}: {now} bytes on disk, cap {CAP}");
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            peak <= CAP,
            "{what}: {peak} bytes on disk at a write, cap {CAP}"
        );
    };
    // Stores of 2 MiB, one after another: each has to evict for the next.
    let a = cache.block_file(&key(1), 32 << 20).unwrap();
    for k in 0..8 {
        assert!(store_run(&cache, &key(1), &a, k * RUN, k * RUN + RUN - 1));
        within_cap(&format!("store {k}"));
    }
    // Readers in flight pin what they read (3 MiB of it): a 2 MiB store can't make room
    // beside them, so it is not written.
    let (first, last) = (10 * RUN, 10 * RUN + 3 * RUN / 2 - 1);
    assert!(store_run(&cache, &key(1), &a, first, last));
    let pin = cache.pin(&key(1), first, last);
    let b = cache.block_file(&key(2), 16 << 20).unwrap();
    within_cap("a second blob's map");
    let kept = store_run(&cache, &key(2), &b, 0, RUN - 1);
    within_cap("a store beside pinned blocks");
    assert!(!kept, "no room beside the pinned blocks: not kept");
    assert_eq!(b.missing(0, RUN - 1).len() as u64, RUN, "nothing written");
    assert!(a.missing(first, last).is_empty(), "the pinned blocks stay");
    // Unpinned, the same store evicts them and fits.
    drop(pin);
    assert!(store_run(&cache, &key(2), &b, 0, RUN - 1));
    within_cap("the store once unpinned");
    assert!(b.missing(0, RUN - 1).is_empty());
    assert!(cache.used() <= CAP);
}

#[test]
fn a_blob_with_no_room_for_its_map_gets_it_with_its_first_block() {
    // Room for seven pinned blocks, their blob's map, and 4 KiB more: not a second map.
    const CAP: u64 = 7 * BLOCK_SIZE + 8192 + 4096;
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), CAP).unwrap();
    let a = cache.block_file(&key(1), 8 * BLOCK_SIZE).unwrap();
    assert!(store_run(&cache, &key(1), &a, 0, 6));
    let pin = cache.pin(&key(1), 0, 6);
    let b = cache.block_file(&key(2), 64 << 20).unwrap();
    let map = d.path().join("blocks/a2-v.map");
    assert!(!map.exists(), "no room: opened without its map");
    assert!(!store_run(&cache, &key(2), &b, 0, 0), "still no room");
    assert!(disk_usage(d.path()) <= CAP);
    drop(pin);
    assert!(store_run(&cache, &key(2), &b, 0, 0));
    assert_eq!(
        BlockFile::recorded_blocks(&map),
        vec![0],
        "the map came with it"
    );
    assert!(disk_usage(d.path()) <= CAP, "{}", disk_usage(d.path()));
    assert!(cache.used() <= CAP);
    drop(cache);
    let cache = DiskCache::open(d.path(), CAP).unwrap();
    let b = cache.block_file(&key(2), 64 << 20).unwrap();
    assert!(b.has(0), "kept across a reopen");
}

#[test]
fn blocks_kept_for_a_reader_go_after_those_it_read_the_nearest_last() {
    const CAP: u64 = 4 << 20; // 31 blocks beside the map
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), CAP).unwrap();
    let a = cache.block_file(&key(1), 64 << 20).unwrap();
    // Fetched in order; 0..16 read, 16..24 fetched ahead of the reader.
    assert!(store_run(&cache, &key(1), &a, 0, 23));
    cache.touch_blocks(&key(1), 0, 15);
    cache.keep_for_reader(&key(1), 16..24);
    // Room for 16 more: the blocks read go, those ahead of the reader stay.
    assert!(store_run(&cache, &key(1), &a, 24, 39));
    assert!(a.missing(16, 23).is_empty(), "kept for the reader");
    assert_eq!(a.missing(0, 15), (0..9).collect::<Vec<_>>());
    // Room for 8 more: the rest of those read, then the farthest from the reader.
    assert!(store_run(&cache, &key(1), &a, 40, 47));
    assert_eq!(a.missing(0, 23), (0..16).chain([23]).collect::<Vec<_>>());
    assert!(cache.used() <= CAP);
}
