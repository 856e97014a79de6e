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

impl DiskCache {
    /// [`DiskCache::used`] but for the cache's directories: what its files take.
    pub(crate) fn used_by_files(&self) -> u64 {
        let st = self.state.lock().unwrap();
        let dirs: u64 = DIRS.iter().map(|d| st.fixed[Path::new(d)]).sum();
        drop(st);
        self.used() - dirs
    }
}

/// What a new, empty cache takes: its directories.
fn new_cache_dirs() -> u64 {
    let d = tempfile::tempdir().unwrap();
    let used = DiskCache::open(d.path(), 1 << 20).unwrap().used();
    assert_eq!(used, disk_usage(d.path()));
    used
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
    // Three 4 KiB files do not fit in 12 KiB beside the directories (two do, with the unit
    // a write reserves for its directory to grow by).
    let cap = new_cache_dirs() + 12 * 1024;
    let cache = DiskCache::open(d.path(), cap).unwrap();
    let peak = watch_peak(&cache);
    put(&cache, &key(1), 0, 4000);
    let second = put(&cache, &key(2), 0, 4000);
    assert!(cache.seek_points(&key(1), 0).is_some()); // 1 is now most recent
    put(&cache, &key(3), 0, 4000);
    assert!(
        cache.seek_points(&key(2), 0).is_none(),
        "2 was least recently used"
    );
    assert!(!second.exists());
    assert_eq!(
        second.parent(),
        Some(d.path().join("entries").as_path()),
        "flat"
    );
    assert!(cache.seek_points(&key(1), 0).is_some());
    assert!(cache.seek_points(&key(3), 0).is_some());
    assert!(cache.used() <= cap);
    assert_eq!(cache.used(), disk_usage(d.path()));
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= cap, "{peak} bytes on disk as the third was written");
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
    let dirs = new_cache_dirs();
    assert_eq!(
        cache.used(),
        dirs + 3 * 4096,
        "two entries and a metadata file, in disk allocation units, and the directories"
    );
    assert_eq!(cache.used(), disk_usage(d.path()));
    cache.remove_blobs(5);
    assert!(cache.seek_points(&key(5), 0).is_none());
    assert!(cache.inner_index(&key(5), "inner-x.tar").is_none());
    assert_eq!(cache.used(), dirs + 4096, "the metadata file stays");
    assert_eq!(cache.used(), disk_usage(d.path()));
}

#[path = "../../tests/common/disk_usage.rs"]
mod du;
pub(crate) use du::disk_usage;

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
    // Room for the directories, seven pinned blocks, their blob's map, and 4 KiB more: not
    // a second map.
    let cap = new_cache_dirs() + 7 * BLOCK_SIZE + 8192 + 4096;
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), cap).unwrap();
    let a = cache.block_file(&key(1), 8 * BLOCK_SIZE).unwrap();
    assert!(store_run(&cache, &key(1), &a, 0, 6));
    let pin = cache.pin(&key(1), 0, 6);
    let b = cache.block_file(&key(2), 64 << 20).unwrap();
    let map = d.path().join("blocks/a2-v.map");
    assert!(!map.exists(), "no room: opened without its map");
    assert!(!store_run(&cache, &key(2), &b, 0, 0), "still no room");
    assert!(disk_usage(d.path()) <= cap);
    drop(pin);
    assert!(store_run(&cache, &key(2), &b, 0, 0));
    assert_eq!(
        BlockFile::recorded_blocks(&map),
        vec![0],
        "the map came with it"
    );
    assert!(disk_usage(d.path()) <= cap, "{}", disk_usage(d.path()));
    assert!(cache.used() <= cap);
    drop(cache);
    let cache = DiskCache::open(d.path(), cap).unwrap();
    let b = cache.block_file(&key(2), 64 << 20).unwrap();
    assert!(b.has(0), "kept across a reopen");
}

#[test]
fn the_cap_counts_the_cache_directories() {
    // Seek points of 16 blobs under a 64 KiB cap (the reviewer's case): the directories
    // count as `du` counts them, the cache's own included.
    const CAP: u64 = 64 << 10;
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), CAP).unwrap();
    let peak = watch_peak(&cache);
    for id in 0..16 {
        put(&cache, &key(id), 0, 100);
    }
    let du = disk_usage(d.path());
    eprintln!("figures: used() {}, du {du}", cache.used());
    assert_eq!(cache.used(), du, "used() is what du counts");
    assert!(du <= CAP, "{du} bytes on disk, cap {CAP}");
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= CAP, "{peak} bytes on disk at a write, cap {CAP}");
}

#[test]
fn a_directory_that_grows_is_counted_at_its_size() {
    // Enough blobs that `blocks/` takes more than one disk unit.
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), 8 << 20).unwrap();
    for id in 0..300 {
        cache.block_file(&key(id), BLOCK_SIZE).unwrap();
    }
    use std::os::unix::fs::MetadataExt;
    let on_disk = || fs::metadata(d.path().join("blocks")).unwrap().blocks() * 512;
    let counted = |c: &DiskCache| c.state.lock().unwrap().fixed[Path::new("blocks")];
    assert!(on_disk() > 4096, "blocks/ grew");
    assert_eq!(counted(&cache), on_disk());
    assert!(cache.used() >= disk_usage(d.path()));
    drop(cache);
    let cache = DiskCache::open(d.path(), 8 << 20).unwrap();
    assert_eq!(counted(&cache), on_disk(), "reopened");
}

#[test]
fn a_cache_of_the_old_layout_drops_its_per_blob_directories() {
    let d = tempfile::tempdir().unwrap();
    drop(DiskCache::open(d.path(), 1 << 20).unwrap());
    let old = d.path().join("entries/a1-v");
    fs::create_dir(&old).unwrap();
    fs::write(old.join("0.seek"), b"points").unwrap();
    let cache = DiskCache::open(d.path(), 1 << 20).unwrap();
    assert!(!old.exists(), "dropped");
    assert!(cache.seek_points(&key(1), 0).is_none());
    assert_eq!(cache.used(), disk_usage(d.path()));
}

#[test]
fn a_store_accounts_its_map_without_taking_the_blobs_lock_under_the_state_lock() {
    // The blob's lock is held across its disk writes (a seal, a retirement): a commit that
    // waited for it under the state lock would make every cache operation wait on them.
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), 8 << 20).unwrap();
    let f = cache.block_file(&key(1), 4 * BLOCK_SIZE).unwrap();
    assert!(store_run(&cache, &key(1), &f, 0, 1));
    assert_eq!(
        cache.used_by_files(),
        2 * BLOCK_SIZE + blob_overhead(f.map_len()),
        "its blocks and its map"
    );
}

#[test]
fn a_map_brought_back_by_a_failed_store_is_counted() {
    // A retired blob's next store recreates its map, then its data write fails (EFBIG):
    // the map is on disk, so it is counted.
    let d = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(d.path(), 8 << 20).unwrap();
    let f = cache.block_file(&key(1), 4 * BLOCK_SIZE).unwrap();
    assert!(store_run(&cache, &key(1), &f, 0, 0));
    f.punch(0);
    cache.remove_blocks(&key(1), &[0]);
    assert!(f.retire());
    cache.state.lock().unwrap().remove(&map_rel("a1-v"));
    assert_eq!(cache.used(), disk_usage(d.path()), "retired: nothing of it");
    f.fail_data_writes.store(true, Ordering::SeqCst);
    let bytes = vec![1u8; BLOCK_SIZE as usize];
    let e = cache.store_blocks(&key(1), &f, 0, &bytes).err().unwrap();
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG));
    assert!(
        d.path().join("blocks/a1-v.map").exists(),
        "the map came back"
    );
    assert_eq!(
        cache.used(),
        disk_usage(d.path()) + 4096,
        "the map counted (with the data file's unit, empty here)"
    );
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
