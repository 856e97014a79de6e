//! The pieces of a blob's blocks that a check vouched for without sealing the block
//! ([`Piece`]): an entry's part of each of the two blocks it shares with its neighbours (its
//! local header, the next entry), which no check covers whole. A blob's block map keeps them
//! ([`SealedPieces`]): in memory, ordered for the reads that look them up
//! (`data::pieces::read_vouched`), and in the `.map` file after the block checksums, as
//! [`Piece::ENCODED`] bytes each (see `block_map`). Each record carries its own check (29
//! bits of a CRC-32C of its fields, in the bits the offset and the length leave spare), so a
//! record torn on disk (half one piece, half another) is left out on load, never trusted.

use std::collections::BTreeMap;

use super::BLOCK_SIZE;

// An offset in a block and a length fit the bits a record gives them.
const _: () = assert!(BLOCK_SIZE <= 1 << Piece::OFFSET_BITS && BLOCK_SIZE < 1 << Piece::LEN_BITS);

/// The part of a blob block that lies inside a range a check vouched for, when the block is
/// shared with bytes outside it: it can't be sealed whole, so whoever reads the range again
/// checks it ([`Piece::matches`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Where it starts in the blob.
    pub at: u64,
    pub len: u64,
    /// Its CRC-32C.
    pub crc: u32,
}

impl Piece {
    /// Bytes a piece takes in the map: its block, its offset in the block, its length and
    /// its CRC-32C (u32 LE each), the record's check in the offset's and the length's spare
    /// high bits ([`Piece::OFFSET_BITS`], [`Piece::LEN_BITS`]).
    pub const ENCODED: usize = 16;
    /// Bits an offset in a block takes (`0..BLOCK_SIZE`).
    const OFFSET_BITS: u32 = 17;
    /// Bits a length takes (`1..=BLOCK_SIZE`).
    const LEN_BITS: u32 = 18;
    /// Bits of the record's check: what the offset and the length leave of their words.
    const CHECK_BITS: u32 = 64 - Self::OFFSET_BITS - Self::LEN_BITS;

    /// Whether `bytes` (of the blob, from `from`) hold this piece as it was checked; `None`
    /// when they do not hold all of it.
    pub fn matches(&self, from: u64, bytes: &[u8]) -> Option<bool> {
        let lo = self.at.checked_sub(from)? as usize;
        let d = bytes.get(lo..lo + self.len as usize)?;
        Some(crc32c::crc32c(d) == self.crc)
    }

    /// The block it lies in.
    pub fn block(&self) -> u64 {
        self.at / BLOCK_SIZE
    }

    /// Whether it is one a map of a blob of `blob_len` bytes can hold: not empty, inside one
    /// block and inside the blob (a record torn on disk reads as zeros: empty).
    fn fits(&self, blob_len: u64) -> bool {
        self.len > 0
            && self.at % BLOCK_SIZE + self.len <= BLOCK_SIZE
            && self.at + self.len <= blob_len
            && self.block() <= u64::from(u32::MAX)
    }

    /// The record's check: the low [`Piece::CHECK_BITS`] of a CRC-32C of its fields.
    fn check(block: u32, offset: u32, len: u32, crc: u32) -> u32 {
        let mut fields = [0u8; 16];
        for (chunk, v) in fields.chunks_exact_mut(4).zip([block, offset, len, crc]) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        crc32c::crc32c(&fields) & ((1 << Self::CHECK_BITS) - 1)
    }

    fn encode(&self) -> [u8; Self::ENCODED] {
        let (block, offset) = (self.block() as u32, (self.at % BLOCK_SIZE) as u32);
        let len = self.len as u32;
        let check = Self::check(block, offset, len, self.crc);
        let low_bits = Self::CHECK_BITS - (32 - Self::OFFSET_BITS);
        let fields = [
            block,
            offset | (check >> low_bits) << Self::OFFSET_BITS,
            len | (check & ((1 << low_bits) - 1)) << Self::LEN_BITS,
            self.crc,
        ];
        let mut b = [0u8; Self::ENCODED];
        for (chunk, v) in b.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The piece a record holds; `None` when its check fails (a torn record).
    fn decode(b: &[u8]) -> Option<Piece> {
        let field = |k: usize| u32::from_le_bytes(b[4 * k..4 * k + 4].try_into().expect("4 bytes"));
        let (block, crc) = (field(0), field(3));
        let offset = field(1) & ((1 << Self::OFFSET_BITS) - 1);
        let len = field(2) & ((1 << Self::LEN_BITS) - 1);
        let low_bits = Self::CHECK_BITS - (32 - Self::OFFSET_BITS);
        let check = (field(1) >> Self::OFFSET_BITS) << low_bits | field(2) >> Self::LEN_BITS;
        (check == Self::check(block, offset, len, crc)).then(|| Piece {
            at: u64::from(block) * BLOCK_SIZE + u64::from(offset),
            len: u64::from(len),
            crc,
        })
    }
}

/// One blob's pieces, by where they start: each with its CRC-32C and whether it is *kept*
/// (the map's file holds it, or may: room was reserved for it) or in memory only (sealed
/// when the cache had no room for the map to grow; never written, so no rewrite of the map
/// grows it past what is accounted).
#[derive(Default)]
pub(super) struct SealedPieces {
    by_at: BTreeMap<(u64, u64), (u32, bool)>,
}

impl SealedPieces {
    /// The pieces in `records` (as the map stores them) whose check passes and that a blob
    /// of `blob_len` bytes can hold; the others (a torn record) are left out.
    pub fn decode(records: &[u8], blob_len: u64) -> SealedPieces {
        let mut s = SealedPieces::default();
        for r in records.chunks_exact(Piece::ENCODED) {
            if let Some(p) = Piece::decode(r).filter(|p| p.fits(blob_len)) {
                s.by_at.insert((p.at, p.len), (p.crc, true));
            }
        }
        s
    }

    /// Appends every kept piece's record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for (&(at, len), &(crc, kept)) in &self.by_at {
            if kept {
                out.extend_from_slice(&Piece { at, len, crc }.encode());
            }
        }
    }

    /// The records of `pieces`, as [`SealedPieces::encode_into`] writes them.
    pub fn encode(pieces: &[Piece]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.encode()).collect()
    }

    /// How many pieces are kept (what the map's file records).
    pub fn kept(&self) -> usize {
        self.by_at.values().filter(|v| v.1).count()
    }

    /// Adds `p` (one a blob of `blob_len` bytes can hold), `kept` or in memory only; true
    /// when it was not there as it is (a piece kept now that was in memory only included).
    pub fn insert(&mut self, p: Piece, blob_len: u64, kept: bool) -> bool {
        if !p.fits(blob_len) {
            return false;
        }
        let old = self.by_at.get(&(p.at, p.len)).copied();
        if old.is_some_and(|(crc, k)| crc == p.crc && (k || !kept)) {
            return false;
        }
        self.by_at.insert((p.at, p.len), (p.crc, kept));
        true
    }

    /// The pieces that share a byte with blob bytes `from..to`.
    pub fn overlapping(&self, from: u64, to: u64) -> Vec<Piece> {
        // A piece lies inside one block: one that reaches `from` starts less than a block
        // before it.
        let lo = (from.saturating_sub(BLOCK_SIZE), 0);
        (self.by_at.range(lo..(to, 0)))
            .map(|(&(at, len), &(crc, _))| Piece { at, len, crc })
            .filter(|p| p.at + p.len > from)
            .collect()
    }

    /// Keeps only the pieces whose block `keep` accepts; true when any went.
    pub fn retain_blocks(&mut self, keep: impl Fn(u64) -> bool) -> bool {
        let before = self.by_at.len();
        self.by_at.retain(|&(at, _), _| keep(at / BLOCK_SIZE));
        self.by_at.len() != before
    }

    pub fn clear(&mut self) {
        self.by_at.clear();
    }
}
