//! The seal of a blob's block checksums: one pass per blob, in file order, over its blocks as
//! they are cached (taken from a fetch's bytes when they arrive where the pass stands, else
//! read back from the block file, each checked against the checksum it got on arrival),
//! hashing sha256 as it goes. It never fetches (a `cat` of one file must not download the
//! archive) and never reads the blob inside a read call: each store of fetched blocks (on its
//! blocking thread) advances it over what it just wrote and at most 2 MiB of blocks already
//! cached after it, so the pass keeps pace with the fetches (a pass that lagged behind a
//! reader would find its next block evicted under a small cache); the rest, and blocks cached
//! by an earlier mount, are hashed by a background task. When it reaches the end and the hash is the
//! blob's digest, the checksums of exactly the bytes it hashed are sealed into the block map
//! ([`BlockFile::seal`]): from then on a block fetched again must match its sealed checksum.
//! When the hash is wrong, every cached block of the blob is dropped (which one was wrong
//! is not known) and the pass starts over.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use sha2::Digest;

use super::verify::{Expected, Integrity};
use crate::cache::blocks::{bad_block, checksum};
use crate::cache::{BLOCK_SIZE, BlobKey, BlockFile, DiskCache};

#[derive(Default)]
struct State {
    /// The next block to hash.
    at: u64,
    hasher: sha2::Sha256,
    /// The checksums of blocks `0..at`, as hashed.
    sums: Vec<u32>,
}

/// One blob's pass (see the module doc).
#[derive(Default)]
pub struct SealPass {
    state: Mutex<State>,
    /// `state.at`, readable without waiting for a pass under way.
    at: AtomicU64,
    /// Kicks not finished yet.
    running: AtomicUsize,
    /// How many times bad bytes of the blob were dropped (by this pass or a failed check).
    drops: AtomicUsize,
}

impl SealPass {
    /// Starts over (bytes the pass hashed were found bad).
    pub fn reset(&self) {
        *self.state.lock().unwrap() = State::default();
        self.at.store(0, Ordering::SeqCst);
    }

    /// The next block the pass has to hash (the blocks before it are hashed): a reader
    /// holds what it took from there on for it (see `readahead`).
    pub fn at(&self) -> u64 {
        self.at.load(Ordering::SeqCst)
    }

    /// Counts a drop of bad bytes: fetches under way for them stop (see
    /// [`SealPass::drops`]) instead of fetching them again.
    pub fn dropped(&self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }

    /// How many times bad bytes were dropped: a fetch (readahead) that sees this change
    /// gives up, so only the reader that meets the failure, or its one refetch, fetches
    /// them again.
    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }

    /// Whether a kick is queued or running.
    #[cfg(test)]
    pub fn busy(&self) -> bool {
        self.running.load(Ordering::SeqCst) > 0
    }

    pub(super) fn kicked(&self) {
        self.running.fetch_add(1, Ordering::SeqCst);
    }

    /// A background run (after [`SealPass::kicked`]).
    pub(super) fn run_kicked(
        &self,
        file: &BlockFile,
        cache: &DiskCache,
        key: &BlobKey,
        whole: &Integrity,
    ) {
        self.advance(file, cache, key, whole, None, u64::MAX);
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Hashes block `st.at` (`b`, whose checksum is `sum`) and moves on to the next.
    fn hash(&self, st: &mut State, b: &[u8], sum: u32) {
        st.hasher.update(b);
        st.sums.push(sum);
        st.at += 1;
        self.at.store(st.at, Ordering::SeqCst);
    }

    /// Goes as far as the cached blocks allow (blocking), reading at most `from_disk` of
    /// them back; `fed`: blocks from `.0` on, just stored.
    pub(super) fn advance(
        &self,
        file: &BlockFile,
        cache: &DiskCache,
        key: &BlobKey,
        whole: &Integrity,
        fed: Option<(u64, &Bytes)>,
        mut from_disk: u64,
    ) {
        if file.is_sealed() {
            return;
        }
        let mut st = self.state.lock().unwrap();
        if let Some((first, bytes)) = fed {
            while st.at >= first && (st.at - first) * BLOCK_SIZE < bytes.len() as u64 {
                let from = ((st.at - first) * BLOCK_SIZE) as usize;
                let b = &bytes[from..from + file.block_len(st.at) as usize];
                self.hash(&mut st, b, checksum(b));
            }
        }
        while st.at < file.block_count() {
            let i = st.at;
            if !file.has(i) || from_disk == 0 {
                return; // the next store kicks the pass again
            }
            let evictions = file.evictions();
            match file.read_block(i) {
                Ok((b, sum)) => {
                    self.hash(&mut st, &b, sum);
                    from_disk -= 1;
                }
                Err(e) if bad_block(&e).is_some() && file.evictions() != evictions => {} // look again
                Err(e) if bad_block(&e).is_some() => {
                    tracing::warn!("cache: {}: {e}; dropped", whole.what);
                    file.punch(i);
                    cache.remove_blocks(key, &[i]);
                    return;
                }
                Err(_) => return,
            }
        }
        let done = std::mem::take(&mut *st);
        self.at.store(0, Ordering::SeqCst);
        drop(st);
        let got = hex::encode(done.hasher.finalize());
        let Expected::Sha256(want) = &whole.expected else {
            return;
        };
        if got.eq_ignore_ascii_case(want) {
            match file.seal(&done.sums) {
                Ok(stale) => {
                    cache.remove_blocks(key, &stale);
                    whole.pass(Some(file.changes()));
                    tracing::debug!("{}: verified, block checksums sealed", whole.what);
                }
                Err(e) => cache.write_failed("a block map (seal)", &e),
            }
        } else {
            whole.fail_unchecked(&got);
            tracing::warn!(
                "{}: the cached blocks hash to {got}, not the digest: dropped",
                whole.what
            );
            self.dropped();
            let present: Vec<u64> = (0..file.block_count()).filter(|&b| file.has(b)).collect();
            for &b in &present {
                file.punch(b);
            }
            cache.remove_blocks(key, &present);
        }
    }
}
