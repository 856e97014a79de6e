//! Tests of the disk cache's accounting, eviction and persistence.

use super::*;

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
