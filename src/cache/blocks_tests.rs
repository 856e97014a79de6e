//! Tests of `BlockFile`.

use super::*;

fn block(i: u64, n: u64) -> Vec<u8> {
    (0..n).map(|j| (i as u8).wrapping_add(j as u8)).collect()
}

/// Stores `block(i, len)` as block `i`.
fn put(f: &BlockFile, i: u64) {
    let b = block(i, f.block_len(i));
    f.write_block(i, &b, checksum(&b)).unwrap();
}

#[test]
fn blocks_persist_across_reopen() {
    let d = tempfile::tempdir().unwrap();
    let len = 3 * BLOCK_SIZE + 100;
    {
        let f = BlockFile::open(d.path(), "a1-v", len).unwrap();
        assert_eq!(f.block_count(), 4);
        assert_eq!(f.block_len(3), 100);
        assert_eq!(f.missing(0, 3), vec![0, 1, 2, 3]);
        put(&f, 1);
        put(&f, 3);
        assert!(f.write_block(2, &[1, 2, 3], 0).is_err(), "wrong length");
    }
    let f = BlockFile::open(d.path(), "a1-v", len).unwrap();
    assert_eq!(f.missing(0, 3), vec![0, 2]);
    assert_eq!(
        f.read(BLOCK_SIZE + 5, 10).unwrap(),
        &block(1, BLOCK_SIZE)[5..15]
    );
    assert_eq!(f.read(3 * BLOCK_SIZE, 1000).unwrap(), block(3, 100));
    assert_eq!(
        BlockFile::recorded_blocks(&d.path().join("a1-v.map")),
        vec![1, 3]
    );
    assert_eq!(
        BlockFile::recorded_len(&d.path().join("a1-v.map")),
        Some(len)
    );
    // A different length (a changed blob) starts over.
    let g = BlockFile::open(d.path(), "a1-v", len + 1).unwrap();
    assert_eq!(g.missing(0, 3).len(), 4);
}

#[test]
fn a_map_of_the_old_format_is_discarded_with_its_data() {
    let d = tempfile::tempdir().unwrap();
    let len = 2 * BLOCK_SIZE;
    // The format before checksums: length, then the bitmap (both blocks present).
    let mut old = len.to_le_bytes().to_vec();
    old.push(0b11);
    fs::write(d.path().join("a6-v.map"), &old).unwrap();
    fs::write(d.path().join("a6-v.data"), vec![7u8; len as usize]).unwrap();
    assert_eq!(BlockFile::recorded_len(&d.path().join("a6-v.map")), None);
    assert!(BlockFile::recorded_blocks(&d.path().join("a6-v.map")).is_empty());
    let f = BlockFile::open(d.path(), "a6-v", len).unwrap();
    assert_eq!(f.missing(0, 1), vec![0, 1], "nothing claimed");
    let on_disk = fs::metadata(d.path().join("a6-v.data")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(on_disk.blocks(), 0, "the old bytes are gone");
    assert_eq!(
        BlockFile::recorded_len(&d.path().join("a6-v.map")),
        Some(len),
        "rewritten in this format"
    );
}

#[test]
fn a_damaged_block_is_an_error_at_that_block_never_bytes() {
    let d = tempfile::tempdir().unwrap();
    let f = BlockFile::open(d.path(), "a7-v", 3 * BLOCK_SIZE).unwrap();
    for i in 0..3 {
        put(&f, i);
    }
    let data = OpenOptions::new()
        .write(true)
        .open(d.path().join("a7-v.data"))
        .unwrap();
    // One flipped bit in block 1; zeros over block 2 (a lost write).
    let mut b = [0u8; 1];
    f.data.read_exact_at(&mut b, BLOCK_SIZE + 77).unwrap();
    data.write_all_at(&[b[0] ^ 0x10], BLOCK_SIZE + 77).unwrap();
    data.write_all_at(&vec![0u8; 4096], 2 * BLOCK_SIZE + 8192)
        .unwrap();
    assert_eq!(f.read(10, 100).unwrap(), &block(0, BLOCK_SIZE)[10..110]);
    let e = f.read(BLOCK_SIZE - 10, 20).unwrap_err();
    assert_eq!(bad_block(&e), Some(1), "{e}");
    assert_eq!(bad_block(&f.read(2 * BLOCK_SIZE, 1).unwrap_err()), Some(2));
    // Reopened (a remount): still caught.
    drop(f);
    let f = BlockFile::open(d.path(), "a7-v", 3 * BLOCK_SIZE).unwrap();
    assert_eq!(bad_block(&f.read(BLOCK_SIZE + 77, 1).unwrap_err()), Some(1));
}

#[test]
fn a_sealed_blob_keeps_its_checksums_and_refuses_other_bytes() {
    let d = tempfile::tempdir().unwrap();
    let f = BlockFile::open(d.path(), "a8-v", 2 * BLOCK_SIZE).unwrap();
    put(&f, 0);
    put(&f, 1);
    let sums: Vec<u32> = (0..2).map(|i| checksum(&block(i, BLOCK_SIZE))).collect();
    assert!(f.seal(&sums).unwrap().is_empty());
    f.punch(1);
    let mut other = block(1, BLOCK_SIZE);
    other[5] ^= 1;
    let e = f.write_block(1, &other, checksum(&other)).unwrap_err();
    assert_eq!(bad_block(&e), Some(1));
    assert_eq!(f.missing(0, 1), vec![1], "not stored");
    drop(f);
    // The seal outlives a remount.
    let f = BlockFile::open(d.path(), "a8-v", 2 * BLOCK_SIZE).unwrap();
    assert!(f.is_sealed());
    assert!(f.write_block(1, &other, checksum(&other)).is_err());
    put(&f, 1);
    assert!(f.all_present());
}

#[test]
fn a_retired_blob_leaves_nothing_on_disk_and_comes_back_when_written() {
    let d = tempfile::tempdir().unwrap();
    let f = BlockFile::open(d.path(), "a9-v", 2 * BLOCK_SIZE).unwrap();
    put(&f, 0);
    assert!(!f.retire(), "a block is still present");
    f.punch(0);
    assert!(f.retire());
    assert!(!d.path().join("a9-v.map").exists());
    put(&f, 1);
    assert_eq!(
        BlockFile::recorded_blocks(&d.path().join("a9-v.map")),
        vec![1]
    );
}

#[test]
fn a_retired_blob_keeps_its_seals_until_unsealed() {
    let d = tempfile::tempdir().unwrap();
    let f = BlockFile::open(d.path(), "a10-v", 3 * BLOCK_SIZE).unwrap();
    for i in 0..3 {
        put(&f, i);
    }
    // Block 1 sealed on its own (an entry's check), then the whole blob evicted.
    f.seal_blocks(&[(1, checksum(&block(1, BLOCK_SIZE)))])
        .unwrap();
    for i in 0..3 {
        f.punch(i);
    }
    assert!(f.retire());
    assert!(!d.path().join("a10-v.map").exists());
    let mut other = block(1, BLOCK_SIZE);
    other[9] ^= 1;
    let e = f.write_block(1, &other, checksum(&other)).unwrap_err();
    assert_eq!(bad_block(&e), Some(1), "still sealed after retirement");
    // Unsealed blocks take anything; the map comes back with the seal in it.
    let mut zero = block(0, BLOCK_SIZE);
    zero[3] ^= 1;
    f.write_block(0, &zero, checksum(&zero)).unwrap();
    drop(f);
    let f = BlockFile::open(d.path(), "a10-v", 3 * BLOCK_SIZE).unwrap();
    assert!(
        f.write_block(1, &other, checksum(&other)).is_err(),
        "persisted"
    );
    f.unseal();
    f.write_block(1, &other, checksum(&other)).unwrap();
}

#[test]
fn a_deleted_blob_stays_deleted() {
    let d = tempfile::tempdir().unwrap();
    let f = BlockFile::open(d.path(), "a3-v", BLOCK_SIZE).unwrap();
    f.delete_files();
    put(&f, 0); // a late write after rm
    assert!(!d.path().join("a3-v.map").exists());
    // A map whose data file is gone claims nothing.
    let g = BlockFile::open(d.path(), "a4-v", BLOCK_SIZE).unwrap();
    put(&g, 0);
    drop(g);
    fs::remove_file(d.path().join("a4-v.data")).unwrap();
    let g = BlockFile::open(d.path(), "a4-v", BLOCK_SIZE).unwrap();
    assert_eq!(g.missing(0, 0), vec![0]);
}

#[test]
fn punching_clears_and_counts() {
    let d = tempfile::tempdir().unwrap();
    let f = BlockFile::open(d.path(), "a2-v", 2 * BLOCK_SIZE).unwrap();
    put(&f, 0);
    put(&f, 1);
    assert!(f.all_present());
    let e = f.evictions();
    f.punch(0);
    assert_eq!(f.evictions(), e + 1);
    assert_eq!(f.missing(0, 1), vec![0]);
    let mut hole = [1u8; 4];
    f.data.read_exact_at(&mut hole, 0).unwrap();
    assert_eq!(hole, [0; 4], "punched: no stale bytes");
    assert!(f.read(0, 4).is_err(), "and never served as the blob's");
    f.punch(1);
    assert_eq!(f.missing(0, 1), vec![0, 1]);
}

#[test]
fn an_eviction_the_map_cannot_record_keeps_the_bytes_it_still_claims() {
    let d = tempfile::tempdir().unwrap();
    let map = d.path().join("a5-v.map");
    let f = BlockFile::open(d.path(), "a5-v", 2 * BLOCK_SIZE).unwrap();
    put(&f, 0);
    put(&f, 1);
    // The map can't be written (here: a directory where it was).
    let on_disk = fs::read(&map).unwrap();
    fs::remove_file(&map).unwrap();
    fs::create_dir(&map).unwrap();
    f.punch(0);
    assert_eq!(f.missing(0, 1), vec![0], "this process no longer serves it");
    drop(f);
    // Remounted with the map as the disk still has it: block 0 present, and its bytes.
    fs::remove_dir(&map).unwrap();
    fs::write(&map, on_disk).unwrap();
    let f = BlockFile::open(d.path(), "a5-v", 2 * BLOCK_SIZE).unwrap();
    assert!(f.all_present());
    let kept = f.read(0, BLOCK_SIZE as usize).unwrap() == block(0, BLOCK_SIZE);
    assert!(
        kept,
        "block 0 reads as what was written, not a punched hole"
    );
}
