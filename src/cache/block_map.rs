//! The map of one blob's blocks ([`BlockMap`]): which blocks are present, each one's
//! CRC-32C, which checksums are sealed (the whole blob's, or block by block) and the sealed
//! pieces of blocks (see [`Piece`]); in memory, and its format in the blob's `.map` file
//! (`cache::blocks` writes it).
//!
//! Format: the magic [`MAP_MAGIC`] (which names the format: a map of any other format is
//! discarded with its data), the blob length (u64 LE), a flags byte (1: the whole blob
//! sealed) padded to 24 bytes, one bit per block present, one bit per block sealed, one
//! CRC-32C (u32 LE) per block, then the number of pieces (u32 LE), zeros up to the next
//! multiple of 16 bytes ([`records_at`]), and each piece in [`Piece::ENCODED`] bytes (its
//! block, its offset in the block, its length and its CRC-32C, with the record's own check:
//! see `sealed_pieces`). A piece sealed later is appended, then counted, so a write torn
//! between the two leaves it out; one counted but never written reads as zeros, which fail
//! the check. A whole rewrite (pieces sorted, so a slot may hold another piece than before)
//! torn at any byte leaves records whole, old or new, when it tears at a sector or page
//! boundary (records are aligned), and a record torn elsewhere fails its check: no torn
//! record is trusted.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::BLOCK_SIZE;
use super::sealed_pieces::{Piece, SealedPieces};

/// The first bytes of a `.map` of this format (bumped whenever the format changes).
pub const MAP_MAGIC: [u8; 8] = *b"AFSMAP04";
/// Magic, length, flags (and padding) before the bitmap.
pub(super) const HEADER: u64 = 24;
const SEALED: u8 = 1;

/// One blob's map, as this process knows it.
pub(super) struct BlockMap {
    pub present: Vec<u8>,
    pub sums: Vec<u32>,
    /// The whole blob's checksums are sealed (by its digest).
    pub sealed: bool,
    /// Blocks sealed one by one.
    pub sealed_blocks: Vec<u8>,
    /// Pieces of blocks sealed (see [`Piece`]).
    pub pieces: SealedPieces,
    /// How many pieces the map file records (a piece sealed since is appended after them).
    pub pieces_on_disk: usize,
    /// The `.map` file exists (not retired by eviction of the whole blob).
    pub on_disk: bool,
}

fn bitmap_len(len: u64) -> u64 {
    len.div_ceil(BLOCK_SIZE).div_ceil(8)
}

/// Where block `i`'s byte of the present bitmap is in a map.
pub(super) fn present_at(i: u64) -> u64 {
    HEADER + i / 8
}

/// Where block `i`'s checksum is in a map of a blob of `len` bytes.
pub(super) fn sum_at(len: u64, i: u64) -> u64 {
    HEADER + 2 * bitmap_len(len) + 4 * i
}

/// Where a map of a blob of `len` bytes records its pieces (their number, then each).
pub(super) fn pieces_at(len: u64) -> u64 {
    sum_at(len, len.div_ceil(BLOCK_SIZE))
}

/// Where a map of a blob of `len` bytes has its first piece's record: after the number of
/// pieces, aligned to 16 bytes (a record is never cut by a page or a sector boundary).
pub(super) fn records_at(len: u64) -> u64 {
    (pieces_at(len) + 4).next_multiple_of(Piece::ENCODED as u64)
}

/// A map's header: (blob length, flags), when it is of this format.
pub(super) fn read_header(map: &File) -> Option<(u64, u8)> {
    let mut h = [0u8; HEADER as usize];
    map.read_exact_at(&mut h, 0).ok()?;
    if h[..8] != MAP_MAGIC {
        return None;
    }
    Some((u64::from_le_bytes(h[8..16].try_into().ok()?), h[16]))
}

/// The pieces `map` (of a blob of `len` bytes) records: none when it records none, as many
/// as it holds whole when it is cut short.
fn read_pieces(map: &File, len: u64) -> SealedPieces {
    let at = pieces_at(len);
    let mut n = [0u8; 4];
    if map.read_exact_at(&mut n, at).is_err() {
        return SealedPieces::default();
    }
    let count = u32::from_le_bytes(n) as u64;
    let first = records_at(len);
    let room = map
        .metadata()
        .map_or(0, |md| md.len().saturating_sub(first));
    let mut records = vec![0u8; (count * Piece::ENCODED as u64).min(room) as usize];
    match map.read_exact_at(&mut records, first) {
        Ok(()) => SealedPieces::decode(&records, len),
        Err(_) => SealedPieces::default(),
    }
}

impl BlockMap {
    /// The map of a blob of `len` bytes of which nothing is known.
    pub fn empty(len: u64) -> BlockMap {
        BlockMap {
            present: vec![0u8; bitmap_len(len) as usize],
            sums: vec![0u32; len.div_ceil(BLOCK_SIZE) as usize],
            sealed: false,
            sealed_blocks: vec![0u8; bitmap_len(len) as usize],
            pieces: SealedPieces::default(),
            pieces_on_disk: 0,
            on_disk: true,
        }
    }

    /// What `map` says of a blob of `len` bytes, when it is of this format and that length.
    pub fn load(map: &File, len: u64) -> Option<BlockMap> {
        let (_, flags) = read_header(map).filter(|h| h.0 == len)?;
        let mut m = BlockMap::empty(len);
        let mut rest = vec![0u8; (pieces_at(len) - HEADER) as usize];
        map.read_exact_at(&mut rest, HEADER).ok()?;
        let (bits, rest) = rest.split_at(m.present.len());
        let (sealed, sums) = rest.split_at(m.present.len());
        m.present.copy_from_slice(bits);
        m.sealed_blocks.copy_from_slice(sealed);
        for (s, b) in m.sums.iter_mut().zip(sums.chunks_exact(4)) {
            *s = u32::from_le_bytes(b.try_into().expect("4 bytes"));
        }
        m.sealed = flags & SEALED != 0;
        m.pieces = read_pieces(map, len);
        Some(m)
    }

    /// The whole map of a blob of `len` bytes, as its file holds it.
    pub fn encode(&self, len: u64) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.encoded_len(len) as usize);
        buf.extend_from_slice(&MAP_MAGIC);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.push(if self.sealed { SEALED } else { 0 });
        buf.resize(HEADER as usize, 0);
        buf.extend_from_slice(&self.present);
        buf.extend_from_slice(&self.sealed_blocks);
        for s in &self.sums {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        buf.extend_from_slice(&(self.pieces.kept() as u32).to_le_bytes());
        buf.resize(records_at(len) as usize, 0);
        self.pieces.encode_into(&mut buf);
        buf
    }

    /// Bytes [`BlockMap::encode`] makes.
    pub fn encoded_len(&self, len: u64) -> u64 {
        records_at(len) + (self.pieces.kept() * Piece::ENCODED) as u64
    }

    /// Whether block `i`'s checksum is sealed (by the digest, or on its own).
    pub fn is_sealed(&self, i: u64) -> bool {
        self.sealed
            || self
                .sealed_blocks
                .get((i / 8) as usize)
                .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }
}
