//! Tests of `BlockFile`.

use super::*;
use crate::cache::block_map::HEADER;

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
fn a_map_of_an_old_format_is_discarded_with_its_data() {
    let len = 2 * BLOCK_SIZE;
    // The format before checksums: length, then the bitmap (both blocks present).
    let mut before_sums = len.to_le_bytes().to_vec();
    before_sums.push(0b11);
    // The format before pieces: both blocks present, with their checksums.
    let mut before_pieces = b"AFSMAP02".to_vec();
    before_pieces.extend_from_slice(&len.to_le_bytes());
    before_pieces.resize(HEADER as usize, 0);
    before_pieces.extend_from_slice(&[0b11, 0]);
    for _ in 0..2 {
        before_pieces.extend_from_slice(&checksum(&[7u8; BLOCK_SIZE as usize]).to_le_bytes());
    }
    for old in [before_sums, before_pieces] {
        discarded_with_its_data(&old, len);
    }
}

/// A map `old` of a blob of `len` bytes, with its data file, claims nothing.
fn discarded_with_its_data(old: &[u8], len: u64) {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("a6-v.map"), old).unwrap();
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

/// The piece of block `i` (as [`put`] stores it) at `offset` in it, `len` bytes long.
fn piece(i: u64, offset: u64, len: u64) -> Piece {
    let b = block(i, BLOCK_SIZE);
    Piece {
        at: i * BLOCK_SIZE + offset,
        len,
        crc: checksum(&b[offset as usize..(offset + len) as usize]),
    }
}

#[test]
fn sealed_pieces_survive_reopen_and_eviction_until_unsealed() {
    let d = tempfile::tempdir().unwrap();
    let len = 3 * BLOCK_SIZE + 100;
    let map = d.path().join("a11-v.map");
    let (head, tail) = (piece(0, 100, BLOCK_SIZE - 100), piece(2, 0, 50));
    {
        let f = BlockFile::open(d.path(), "a11-v", len).unwrap();
        for i in 0..4 {
            put(&f, i);
        }
        assert!(f.seal_pieces(&[head, tail]).unwrap(), "the map grew");
        assert!(!f.seal_pieces(&[tail]).unwrap(), "kept once");
        assert_eq!(f.map_len(), fs::metadata(&map).unwrap().len());
        // The blocks evicted: their pieces stay.
        f.punch(0);
        f.punch(2);
        assert_eq!(f.pieces_in(0, len), vec![head, tail]);
    }
    let f = BlockFile::open(d.path(), "a11-v", len).unwrap();
    assert_eq!(f.missing(0, 3), vec![0, 2]);
    assert_eq!(f.pieces_in(0, len), vec![head, tail], "reopened");
    assert_eq!(f.pieces_in(0, 100), vec![], "before the head piece");
    assert_eq!(f.pieces_in(99, 101), vec![head]);
    assert_eq!(f.pieces_in(BLOCK_SIZE, 2 * BLOCK_SIZE), vec![]);
    assert_eq!(f.pieces_in(2 * BLOCK_SIZE + 49, 3 * BLOCK_SIZE), vec![tail]);
    assert_eq!(f.pieces_in(2 * BLOCK_SIZE + 50, 3 * BLOCK_SIZE), vec![]);
    assert_eq!(f.map_len(), fs::metadata(&map).unwrap().len());
    f.unseal();
    assert_eq!(f.pieces_in(0, len), vec![]);
    drop(f);
    let f = BlockFile::open(d.path(), "a11-v", len).unwrap();
    assert_eq!(f.pieces_in(0, len), vec![], "unsealed on disk too");
    assert_eq!(f.map_len(), fs::metadata(&map).unwrap().len(), "cut short");
}

#[test]
fn a_block_sealed_whole_needs_no_piece() {
    let d = tempfile::tempdir().unwrap();
    let len = 3 * BLOCK_SIZE;
    let f = BlockFile::open(d.path(), "a12-v", len).unwrap();
    let sum = |i| (i, checksum(&block(i, BLOCK_SIZE)));
    f.seal_blocks(&[sum(1)]).unwrap();
    assert!(!f.seal_pieces(&[piece(1, 10, 20)]).unwrap());
    assert_eq!(f.pieces_in(0, len), vec![], "not kept for a sealed block");
    // A piece, then its block sealed whole: the piece goes.
    let (p0, p2) = (piece(0, 10, 20), piece(2, 5, 6));
    f.seal_pieces(&[p0, p2]).unwrap();
    f.seal_blocks(&[sum(2)]).unwrap();
    assert_eq!(f.pieces_in(0, len), vec![p0]);
    // The whole blob sealed: none.
    f.seal(&(0..3).map(|i| sum(i).1).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(f.pieces_in(0, len), vec![]);
    drop(f);
    let f = BlockFile::open(d.path(), "a12-v", len).unwrap();
    assert_eq!(f.pieces_in(0, len), vec![]);
}

#[test]
fn a_retired_blob_keeps_its_pieces_and_a_torn_one_is_left_out() {
    let d = tempfile::tempdir().unwrap();
    let len = 2 * BLOCK_SIZE;
    let map = d.path().join("a13-v.map");
    let f = BlockFile::open(d.path(), "a13-v", len).unwrap();
    put(&f, 0);
    let p = piece(0, 7, 70);
    f.seal_pieces(&[p]).unwrap();
    f.punch(0);
    assert!(f.retire());
    assert!(!map.exists());
    assert_eq!(f.pieces_in(0, len), vec![p], "kept in memory");
    // Sealed while retired: kept, and written when the map comes back.
    let q = piece(1, 0, 9);
    assert!(!f.seal_pieces(&[q]).unwrap());
    put(&f, 1);
    drop(f);
    let f = BlockFile::open(d.path(), "a13-v", len).unwrap();
    assert_eq!(f.pieces_in(0, len), vec![p, q], "back with the map");
    drop(f);
    // A piece counted but never written (a write torn between the two): zeros, left out.
    let mut bytes = fs::read(&map).unwrap();
    let at = crate::cache::block_map::pieces_at(len) as usize;
    bytes[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&[0u8; Piece::ENCODED]);
    fs::write(&map, bytes).unwrap();
    let f = BlockFile::open(d.path(), "a13-v", len).unwrap();
    assert_eq!(f.pieces_in(0, len), vec![p, q]);
}

/// A whole-map rewrite torn at any byte (a kill -9 in its `pwrite`: new bytes before the cut,
/// the old ones after) never leaves a piece that condemns the block's correct bytes: every
/// piece loaded is one that was sealed. The pieces are appended in arrival order and rewritten
/// sorted, so a slot holds another piece after the rewrite; 950 blocks put the records 4066
/// bytes into a page (the reviewer's case).
#[test]
fn a_map_rewrite_torn_at_any_byte_loads_no_wrong_piece() {
    let d = tempfile::tempdir().unwrap();
    let len = 950 * BLOCK_SIZE;
    let map = d.path().join("a14-v.map");
    let sealed: Vec<Piece> = [20, 40, 10, 30].map(|i| piece(i, 100, 1000)).to_vec();
    let (old, new) = {
        let f = BlockFile::open(d.path(), "a14-v", len).unwrap();
        for p in &sealed {
            assert!(f.seal_pieces(&[*p]).unwrap(), "appended");
        }
        let old = fs::read(&map).unwrap();
        // A whole rewrite (another block sealed), the pieces now sorted.
        f.seal_blocks(&[(0, checksum(&block(0, BLOCK_SIZE)))])
            .unwrap();
        (old, fs::read(&map).unwrap())
    };
    assert_eq!(old.len(), new.len());
    assert_ne!(old, new, "the records moved");
    let mut loaded_all = 0;
    for cut in 0..=new.len() {
        let mut torn = new[..cut].to_vec();
        torn.extend_from_slice(&old[cut..]);
        fs::write(&map, &torn).unwrap();
        let f = BlockFile::open(d.path(), "a14-v", len).unwrap();
        let loaded = f.pieces_in(0, len);
        for p in &loaded {
            let right = block(p.block(), BLOCK_SIZE);
            let from = p.block() * BLOCK_SIZE;
            assert_eq!(p.matches(from, &right), Some(true), "cut at {cut}: {p:?}");
        }
        loaded_all += usize::from(loaded.len() == sealed.len());
    }
    assert!(loaded_all > 0, "an untorn map loads its pieces");
}

#[test]
fn a_piece_kept_in_memory_only_is_never_written() {
    // Sealed with no room for the map to grow: a later whole rewrite (another block sealed)
    // does not write it either, so the map stays the size it is accounted at.
    let d = tempfile::tempdir().unwrap();
    let len = 3 * BLOCK_SIZE;
    let map = d.path().join("a15-v.map");
    let f = BlockFile::open(d.path(), "a15-v", len).unwrap();
    let before = fs::metadata(&map).unwrap().len();
    let p = piece(0, 10, 20);
    f.seal_pieces_unwritten(&[p]);
    f.seal_blocks(&[(2, checksum(&block(2, BLOCK_SIZE)))])
        .unwrap();
    assert_eq!(fs::metadata(&map).unwrap().len(), before, "not written");
    assert_eq!(f.map_size(), Some(before));
    assert_eq!(f.pieces_in(0, len), vec![p], "checked all the same");
    // Sealed again with room for it: written.
    assert!(f.seal_pieces(&[p]).unwrap());
    let after = before + Piece::ENCODED as u64;
    assert_eq!(fs::metadata(&map).unwrap().len(), after);
    assert_eq!(f.map_size(), Some(after));
    drop(f);
    let f = BlockFile::open(d.path(), "a15-v", len).unwrap();
    assert_eq!(f.pieces_in(0, len), vec![p]);
}
