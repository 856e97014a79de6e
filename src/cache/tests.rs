//! Tests of the disk cache's accounting, eviction and persistence.

use super::*;
use std::io::Write;
use std::sync::Arc;

fn put(cache: &Arc<DiskCache>, key: &BlobKey, bytes: usize) -> PathBuf {
    put_entry(cache, key, 0, bytes)
}

fn put_entry(cache: &Arc<DiskCache>, key: &BlobKey, index: usize, bytes: usize) -> PathBuf {
    let r = cache.reserve(bytes as u64).expect("room");
    let (tmp, mut f) = cache.temp_file().unwrap();
    f.write_all(&vec![7u8; bytes]).unwrap();
    cache.commit_entry(key, index, &tmp, &r).unwrap()
}

fn key(id: u64) -> BlobKey {
    BlobKey {
        id,
        version: "v".into(),
    }
}

#[test]
fn dirs_are_private_and_files_0600() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("c");
    let cache = Arc::new(DiskCache::open(&root, 1 << 20).unwrap());
    let p = put(&cache, &key(1), 10);
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn evicts_least_recently_used_past_limit() {
    let d = tempfile::tempdir().unwrap();
    // Three 4 KiB files do not fit in 10 000 bytes.
    let cache = Arc::new(DiskCache::open(d.path(), 10_000).unwrap());
    put(&cache, &key(1), 4000);
    put(&cache, &key(2), 4000);
    assert!(cache.entry(&key(1), 0).is_some()); // 1 is now most recent
    put(&cache, &key(3), 4000);
    assert!(
        cache.entry(&key(2), 0).is_none(),
        "2 was least recently used"
    );
    assert!(cache.entry(&key(1), 0).is_some());
    assert!(cache.entry(&key(3), 0).is_some());
    assert!(cache.used() <= 10_000);
}

#[test]
fn survives_reopen_and_remove_blobs() {
    let d = tempfile::tempdir().unwrap();
    {
        let cache = Arc::new(DiskCache::open(d.path(), 1 << 20).unwrap());
        put(&cache, &key(5), 10);
        put_entry(&cache, &key(5), 3, 1);
        cache.store_meta("kinds.json", b"{}").unwrap();
    }
    let cache = Arc::new(DiskCache::open(d.path(), 1 << 20).unwrap());
    assert!(cache.entry(&key(5), 0).is_some());
    assert!(cache.entry(&key(5), 3).is_some());
    assert_eq!(cache.load_meta("kinds.json").unwrap(), b"{}");
    assert_eq!(
        cache.used(),
        3 * 4096,
        "two entries and a metadata file, in disk allocation units"
    );
    cache.remove_blobs(5);
    assert!(cache.entry(&key(5), 0).is_none());
    assert!(cache.entry(&key(5), 3).is_none());
    assert_eq!(cache.used(), 4096, "the metadata file stays");
}
