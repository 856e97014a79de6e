//! Verification: what a file's bytes must hash to ([`Expected`]), the one shared verdict on
//! each file however many handles read it ([`Integrity`]), and the running check each open
//! handle keeps over exactly the bytes it served, in file order ([`ServedCheck`]).
//!
//! The invariant this serves (docs/semantics.md, "Integrity"): a program that reads a file from
//! start to end never finishes with exit 0 on bytes that differ from what was uploaded. A
//! handle hashes what it served, not what the cache holds now, so readahead, eviction and
//! refetches underneath cannot hide a changed byte; the read that completes a failed check is
//! EIO, and so is every later read until one refetch of the whole file verifies.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sha2::Digest;

use crate::cache::Piece;

/// What a whole file must hash to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A zip entry's CRC-32 (of its uncompressed bytes).
    Crc32(u32),
    /// A blob's `sha256:` digest, lowercase hex.
    Sha256(String),
}

impl Expected {
    pub fn hasher(&self) -> Hasher {
        match self {
            Expected::Crc32(_) => Hasher::Crc32(crc32fast::Hasher::new()),
            Expected::Sha256(_) => Hasher::Sha256(Box::default()),
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Crc32(c) => write!(f, "CRC-32 {c:08x}"),
            Expected::Sha256(h) => write!(f, "sha256 {h}"),
        }
    }
}

/// A running hash of one of the [`Expected`] kinds.
pub enum Hasher {
    Crc32(crc32fast::Hasher),
    Sha256(Box<sha2::Sha256>),
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    /// `Ok` when the hash is what `want` says, else `Err(what it was)`.
    pub fn check(self, want: &Expected) -> Result<(), String> {
        let got = match self {
            Hasher::Crc32(h) => format!("{:08x}", h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
        };
        let ok = match want {
            Expected::Crc32(c) => got == format!("{c:08x}"),
            Expected::Sha256(w) => got.eq_ignore_ascii_case(w),
        };
        if ok { Ok(()) } else { Err(got) }
    }
}

/// The shared verdict on one file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody has read it through yet.
    Unchecked,
    /// Read through and matched.
    Good,
    /// The latest check failed; the one refetch allowed after it has (or not) been tried
    /// and failed too.
    Failed { refetched: bool },
}

/// A generation that no cache has: a verdict reached on bytes not kept.
const NO_GENERATION: u64 = u64::MAX;

/// One file's integrity state, shared by every handle that reads it.
pub struct Integrity {
    /// The file, for log lines.
    pub what: String,
    pub expected: Expected,
    verdict: Mutex<Verdict>,
    /// Failed checks so far (never decreases).
    failures: std::sync::atomic::AtomicU32,
    /// The generation of the cached bytes when the check passed (see [`Integrity::good_at`]).
    good_gen: std::sync::atomic::AtomicU64,
    /// At most one refetch at a time; the others wait for its verdict.
    pub refetching: tokio::sync::Mutex<()>,
    /// Held by the background pass that reads the file through for an out-of-order reader
    /// (see [`Integrity::start_pass`]): one at a time; a reader that needs its verdict
    /// waits on it.
    passing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Integrity {
    pub fn new(what: String, expected: Expected) -> Integrity {
        Integrity {
            what,
            expected,
            verdict: Mutex::new(Verdict::Unchecked),
            failures: Default::default(),
            good_gen: std::sync::atomic::AtomicU64::new(NO_GENERATION),
            refetching: tokio::sync::Mutex::new(()),
            passing: Default::default(),
        }
    }

    /// The right to run the background pass over the file (`None`: one is running).
    pub fn start_pass(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.passing.clone().try_lock_owned().ok()
    }

    /// Waits for a background pass over the file, if one is running.
    pub async fn pass_done(&self) {
        drop(self.passing.lock().await);
    }

    pub fn verdict(&self) -> Verdict {
        *self.verdict.lock().unwrap()
    }

    /// How many checks have failed so far (a handle opened before a failure must not go on).
    pub fn failures(&self) -> u32 {
        self.failures.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a failed check (the caller drops the bad bytes).
    pub fn fail(&self, got: &str) {
        let mut v = self.verdict.lock().unwrap();
        self.failures
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *v = Verdict::Failed { refetched: false };
        tracing::warn!(
            "{}: {} expected, got {got}: EIO until a refetch verifies; cached bytes dropped",
            self.what,
            self.expected
        );
    }

    /// Records a failed check by a check nobody asked for (a fetch completing a blob),
    /// only while nothing is known yet: it must not start a new failure episode over a
    /// verdict (or a refetch) already under way. True when it did.
    pub fn fail_unchecked(&self, got: &str) -> bool {
        if *self.verdict.lock().unwrap() != Verdict::Unchecked {
            return false;
        }
        self.fail(got);
        true
    }

    /// Records the outcome of the one refetch allowed after a failure (`generation`: of the
    /// cached bytes it verified).
    pub fn refetched(&self, ok: bool, generation: Option<u64>) {
        let mut v = self.verdict.lock().unwrap();
        if ok {
            *v = Verdict::Good;
            self.set_generation(generation);
            tracing::info!("{}: refetched and verified", self.what);
        } else if let Verdict::Failed { .. } = *v {
            *v = Verdict::Failed { refetched: true };
            tracing::warn!("{}: the refetch failed its check too: EIO stays", self.what);
        }
    }

    /// Records a check that passed over the cached bytes of `generation` (never overrides a
    /// failure: only a refetch clears one).
    pub fn pass(&self, generation: Option<u64>) {
        let mut v = self.verdict.lock().unwrap();
        if matches!(*v, Verdict::Unchecked | Verdict::Good) {
            // Passing again over bytes refetched since the last pass makes those trusted.
            *v = Verdict::Good;
            self.set_generation(generation);
        }
    }

    fn set_generation(&self, generation: Option<u64>) {
        self.good_gen.store(
            generation.unwrap_or(NO_GENERATION),
            std::sync::atomic::Ordering::Release,
        );
    }

    /// Whether the bytes in the cache now are the ones that passed: the verdict is good and
    /// nothing of the blob was evicted (and maybe refetched) since. Only then may the kernel
    /// keep the file's pages, where no handle's check sees them; `generation` is the blob's
    /// eviction count now (`None`: not cached at all).
    pub fn good_at(&self, generation: Option<u64>) -> bool {
        self.verdict() == Verdict::Good
            && generation
                .is_some_and(|g| g == self.good_gen.load(std::sync::atomic::Ordering::Acquire))
    }
}

/// Bytes served out of order kept for the running hash until the gap before them is served.
const STASH_LIMIT: usize = 8 << 20;

/// What feeding served bytes to a [`ServedCheck`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing decided yet (or decided before).
    Pending,
    /// Every byte was served, in order, and they hash right.
    Matched,
    /// Every byte was served and they hash wrong: what they hashed to.
    Mismatch(String),
    /// Half the file was served, out of an order the running hash can follow: a pass that
    /// reads the file through in the background can start (said once).
    PassAsked,
    /// As many bytes as the file holds were served, but not in an order the running hash
    /// could follow: the file has to be checked by reading it through once (the pass
    /// asked for before, or now).
    NeedsPass,
}

/// One handle's running check over the bytes it served, in file order: bytes that arrive
/// ahead of the hash (concurrent reads finishing out of order) wait in a bounded stash.
pub struct ServedCheck {
    len: u64,
    expected: Expected,
    hasher: Option<Hasher>,
    upto: u64,
    stash: BTreeMap<u64, Vec<u8>>,
    stash_bytes: usize,
    served: u64,
    pass_asked: bool,
    /// [`Outcome::PassAsked`] was said.
    pass_offered: bool,
    /// The checksums of the blob blocks inside the file, as hashed (see [`BlockSums`]).
    blocks: Option<BlockSums>,
}

/// The CRC-32C of each cache block that lies whole inside `len` bytes at `base` of a blob,
/// taken from the bytes a check hashes in order: what a passed check vouches for (a stored
/// entry's bytes, hashed by its [`ServedCheck`]; a deflated entry's compressed bytes, taken
/// by the stream from the start that checks its CRC-32).
pub struct BlockSums {
    base: u64,
    len: u64,
    crc: u32,
    sums: Vec<(u64, u32)>,
    parts: Vec<Piece>,
}

impl BlockSums {
    pub fn new(base: u64, len: u64) -> BlockSums {
        BlockSums {
            base,
            len,
            crc: 0,
            sums: Vec::new(),
            parts: Vec::new(),
        }
    }

    /// Takes the bytes at `pos` from `base` (right after the previous ones).
    pub fn absorb(&mut self, mut pos: u64, mut d: &[u8]) {
        use crate::cache::BLOCK_SIZE;
        while !d.is_empty() {
            let abs = self.base + pos;
            let block = abs / BLOCK_SIZE;
            let block_end = (block + 1) * BLOCK_SIZE;
            let n = ((block_end - abs) as usize).min(d.len());
            // The part of this block inside the range: the whole block, or a piece of it.
            let (from, to) = (
                (block * BLOCK_SIZE).max(self.base),
                block_end.min(self.base + self.len),
            );
            if abs == from {
                self.crc = 0;
            }
            self.crc = crc32c::crc32c_append(self.crc, &d[..n]);
            if abs + n as u64 == to {
                if to - from == BLOCK_SIZE {
                    self.sums.push((block, self.crc));
                } else {
                    self.parts.push(Piece {
                        at: from,
                        len: to - from,
                        crc: self.crc,
                    });
                }
            }
            pos += n as u64;
            d = &d[n..];
        }
    }

    /// The blocks' checksums.
    pub fn sums(&self) -> &[(u64, u32)] {
        &self.sums
    }

    /// The pieces of blocks shared with bytes outside the range (at most one at each end).
    pub fn parts(&self) -> &[Piece] {
        &self.parts
    }
}

impl ServedCheck {
    pub fn new(len: u64, expected: Expected) -> ServedCheck {
        ServedCheck {
            len,
            hasher: Some(expected.hasher()),
            expected,
            upto: 0,
            stash: BTreeMap::new(),
            stash_bytes: 0,
            served: 0,
            pass_asked: false,
            pass_offered: false,
            blocks: None,
        }
    }

    /// Also takes the checksums of the blob blocks inside the file (see [`BlockSums`]).
    pub fn with_blocks(mut self, base: u64) -> ServedCheck {
        self.blocks = Some(BlockSums::new(base, self.len));
        self
    }

    /// The checksums taken (of whole blocks and of the pieces at the edges), once the check
    /// has matched.
    pub fn take_block_sums(&mut self) -> Option<BlockSums> {
        self.blocks.take()
    }

    /// Takes bytes `offset..offset + data.len()` as served.
    pub fn feed(&mut self, offset: u64, data: &[u8]) -> Outcome {
        self.served += data.len() as u64;
        let Some(h) = self.hasher.as_mut() else {
            return Outcome::Pending;
        };
        let end = offset + data.len() as u64;
        if offset <= self.upto && end > self.upto {
            let d = &data[(self.upto - offset) as usize..];
            h.update(d);
            if let Some(b) = self.blocks.as_mut() {
                b.absorb(self.upto, d);
            }
            self.upto = end;
            while let Some(entry) = self.stash.first_entry() {
                if *entry.key() > self.upto {
                    break;
                }
                let at = *entry.key();
                let bytes = entry.remove();
                self.stash_bytes -= bytes.len();
                let e = at + bytes.len() as u64;
                if e > self.upto {
                    let d = &bytes[(self.upto - at) as usize..];
                    h.update(d);
                    if let Some(b) = self.blocks.as_mut() {
                        b.absorb(self.upto, d);
                    }
                    self.upto = e;
                }
            }
        } else if offset > self.upto && !self.pass_asked {
            if self.stash_bytes + data.len() <= STASH_LIMIT {
                self.stash_bytes += data.len();
                self.stash.insert(offset, data.to_vec());
            } else {
                // Too far out of order to follow: a read-through check decides instead.
                self.stash.clear();
                self.stash_bytes = 0;
                self.pass_asked = true;
            }
        }
        if self.upto >= self.len {
            let h = self.hasher.take().expect("checked above");
            self.stash.clear();
            return match h.check(&self.expected) {
                Ok(()) => Outcome::Matched,
                Err(got) => Outcome::Mismatch(got),
            };
        }
        if self.served >= self.len && self.pass_asked {
            self.hasher = None;
            self.stash.clear();
            self.stash_bytes = 0;
            return Outcome::NeedsPass;
        }
        if self.pass_asked && !self.pass_offered && self.served * 2 >= self.len {
            self.pass_offered = true;
            return Outcome::PassAsked;
        }
        Outcome::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc(d: &[u8]) -> Expected {
        Expected::Crc32(crc32fast::hash(d))
    }

    #[test]
    fn in_order_and_reordered_reads_are_hashed_as_served() {
        let d: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut c = ServedCheck::new(d.len() as u64, crc(&d));
        assert_eq!(c.feed(0, &d[..3000]), Outcome::Pending);
        assert_eq!(c.feed(6000, &d[6000..]), Outcome::Pending, "stashed");
        assert_eq!(c.feed(1000, &d[1000..4000]), Outcome::Pending, "overlap");
        assert_eq!(c.feed(4000, &d[4000..6000]), Outcome::Matched);
        // A changed byte anywhere is a mismatch.
        let mut bad = d.clone();
        bad[7777] ^= 1;
        let mut c = ServedCheck::new(d.len() as u64, crc(&d));
        c.feed(5000, &bad[5000..]);
        assert!(matches!(c.feed(0, &bad[..5000]), Outcome::Mismatch(_)));
        // Sha-256 too.
        let want = Expected::Sha256(hex::encode(sha2::Sha256::digest(&d)));
        let mut c = ServedCheck::new(d.len() as u64, want);
        assert!(matches!(c.feed(0, &bad), Outcome::Mismatch(_)));
    }

    #[test]
    fn reads_too_far_apart_ask_for_a_pass_once_everything_was_served() {
        let len = STASH_LIMIT as u64 * 3;
        let chunk = vec![0u8; 1 << 20];
        let mut c = ServedCheck::new(len, Expected::Crc32(0));
        let mut outcomes = Vec::new();
        // The second half first (more than the stash holds), then the first half.
        for off in (len / 2..len)
            .step_by(chunk.len())
            .chain((0..len / 2).step_by(chunk.len()))
        {
            outcomes.push(c.feed(off, &chunk));
        }
        assert_eq!(outcomes.pop(), Some(Outcome::NeedsPass));
        // The background pass is asked for once, when half the file has been served.
        let asked: Vec<usize> = (outcomes.iter().enumerate())
            .filter(|(_, o)| **o == Outcome::PassAsked)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(asked, vec![outcomes.len() / 2]);
        assert!((outcomes.iter()).all(|o| matches!(o, Outcome::Pending | Outcome::PassAsked)));
        assert_eq!(c.feed(0, &chunk), Outcome::Pending, "asked once");
    }

    #[test]
    fn block_sums_seal_whole_blocks_and_keep_the_pieces_at_the_edges() {
        use crate::cache::BLOCK_SIZE;
        let blob: Vec<u8> = (0..4 * BLOCK_SIZE).map(|i| (i * 31 % 251) as u8).collect();
        let (base, len) = (100, 3 * BLOCK_SIZE - 50);
        let mut b = BlockSums::new(base, len);
        // In uneven pieces, in order.
        let range = &blob[base as usize..(base + len) as usize];
        let mut pos = 0;
        for c in range.chunks(70_001) {
            b.absorb(pos, c);
            pos += c.len() as u64;
        }
        let block = |i: u64| &blob[(i * BLOCK_SIZE) as usize..((i + 1) * BLOCK_SIZE) as usize];
        assert_eq!(
            b.sums(),
            &[(1, crc32c::crc32c(block(1))), (2, crc32c::crc32c(block(2)))]
        );
        let head = Piece {
            at: 100,
            len: BLOCK_SIZE - 100,
            crc: crc32c::crc32c(&blob[100..BLOCK_SIZE as usize]),
        };
        let tail_at = 3 * BLOCK_SIZE;
        let tail = Piece {
            at: tail_at,
            len: base + len - tail_at,
            crc: crc32c::crc32c(&blob[tail_at as usize..(base + len) as usize]),
        };
        assert_eq!(b.parts(), &[head, tail]);
        assert_eq!(head.matches(0, &blob), Some(true));
        assert_eq!(head.matches(200, &blob[200..]), None, "not all of it");
        let mut changed = blob.clone();
        changed[(tail_at + 5) as usize] ^= 1;
        assert_eq!(tail.matches(0, &changed), Some(false));
    }

    #[test]
    fn a_failure_stays_until_a_refetch_verifies() {
        let i = Integrity::new("f".into(), Expected::Crc32(1));
        i.pass(Some(3));
        assert_eq!(i.verdict(), Verdict::Good);
        assert!(i.good_at(Some(3)) && !i.good_at(Some(4)) && !i.good_at(None));
        i.fail("2");
        assert_eq!(i.failures(), 1);
        i.pass(Some(3));
        assert_eq!(i.failures(), 1, "a pass does not clear a failure");
        i.refetched(false, None);
        assert_eq!(i.verdict(), Verdict::Failed { refetched: true });
        i.fail("3");
        assert_eq!(i.verdict(), Verdict::Failed { refetched: false });
        i.refetched(true, Some(5));
        assert_eq!(i.verdict(), Verdict::Good);
        assert_eq!(i.failures(), 2, "never decreases");
    }
}
