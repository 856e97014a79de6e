//! Readahead for one sequential reader of a byte range, in the shape of mountpoint-s3's
//! prefetcher: a read fetches what it needs (at least one block) and waits only for that;
//! while reads continue where the previous one ended (or arrive out of order within what was
//! requested, as the kernel's reads in flight side by side do), the range ahead of the reader
//! is kept requested, in [`CHUNK`]-sized ranged requests that run side by side (a blob host
//! serves each connection well below a machine's bandwidth), the distance ahead doubling from
//! [`MIN_AHEAD`] to [`MAX_AHEAD`] as the reader keeps up. A jump resets it. Memory stays
//! bounded by what is in flight (at most [`MAX_AHEAD`] per reader): fetched blocks go to the
//! disk cache. Background fetches only fill the cache (they hand no bytes to anyone, so they
//! cannot hide a bad byte) and are aborted when the reader goes away. Used for blob ranges
//! (`NAME.zip`, stored entries) and for the compressed bytes an inflater consumes.
//!
//! What it asked for is fetched once, however small the cache. What it keeps ahead of the
//! reader (the distance and one request, see [`Readahead::limits`]) is at most a quarter of
//! the cache, and around each read the blocks from it to the end of what was requested are
//! marked just used, the farthest first ([`CachedBlob::keep_for_reader`]; again after the
//! read, which marked what it read): eviction takes every block the reader has read before
//! any it has yet to read, and the reads in flight and the stores beside them fit in the rest.
//! (The read fetches its own bytes, which it pins.) Keeping ahead is an order, not a pin: a
//! reader that stops reading keeps nothing from eviction. Requests end on block boundaries,
//! so no block is in two of them, and one that starts late (a busy machine) skips what its
//! reader has read meanwhile. And before a reader in order leaves the blocks of its previous
//! read behind, the blob's digest pass hashes those it has yet to (they are the most recently
//! used), so the pass never lacks a block its reader fetched and a blob read in order seals,
//! however small the cache.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::blob::CachedBlob;
use super::memory_window;
use crate::cache::BLOCK_SIZE;

/// One background ranged request.
pub const CHUNK: u64 = 2 << 20;
/// How far ahead of a reader that just became sequential requests go.
pub const MIN_AHEAD: u64 = 1 << 20;
/// How far ahead they go at most (so at most this many bytes in flight per reader).
pub const MAX_AHEAD: u64 = 16 << 20;

// A cache that does not take the bytes keeps them in memory in the same chunks, as much as
// readahead asks for ahead of a reader.
const _: () = assert!(CHUNK == memory_window::WINDOW_CHUNK);
const _: () = assert!(MAX_AHEAD < memory_window::WINDOW_BYTES);

struct Window {
    /// Where the next sequential read would start.
    next: u64,
    ahead: u64,
    /// End of what background fetches have asked for.
    requested_to: u64,
    /// The reader said it goes on to the end (see [`Readahead::to_the_end_from`]).
    to_the_end: bool,
}

/// One reader's readahead over `base..base + len` of a blob.
pub struct Readahead {
    blob: Arc<CachedBlob>,
    base: u64,
    len: u64,
    window: Mutex<Window>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Where the reader's latest read starts (requests skip what is before it).
    reader_at: Arc<AtomicU64>,
    /// Off: each read fetches what it needs and nothing ahead (a reader that jumps, such as
    /// an inflater working from seek points, whose cost is bounded by what it reads).
    enabled: AtomicBool,
}

impl Drop for Readahead {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        // What it read ahead into memory (a cache that does not take it) goes with it.
        self.blob.release_memory();
    }
}

impl Readahead {
    pub fn new(blob: Arc<CachedBlob>, base: u64, len: u64) -> Readahead {
        Readahead {
            blob,
            base,
            len,
            window: Mutex::new(Window {
                next: 0,
                ahead: 0,
                requested_to: 0,
                to_the_end: false,
            }),
            tasks: Mutex::new(Vec::new()),
            reader_at: Arc::default(),
            enabled: AtomicBool::new(true),
        }
    }

    /// Tells that the reader will read on from `offset` to the end (an inflater's copy pass):
    /// its first read there is taken as sequential, with the range ahead requested as far as
    /// a reader that kept up would have it.
    pub fn to_the_end_from(&self, offset: u64) {
        let mut w = self.window.lock().unwrap();
        w.next = offset;
        w.ahead = MAX_AHEAD;
        w.to_the_end = true;
    }

    /// How far ahead a reader whose reads are of `n` bytes at `offset` is fetched for when it
    /// keeps up, and in requests of how much: [`MAX_AHEAD`] and [`CHUNK`], but never so much
    /// that what it keeps ahead (the distance and one request) is more than a quarter of the
    /// cache, so that the reads in flight and the stores beside it fit in the rest without
    /// evicting it. Reads the cache does not take (a paused cache, or reads of more than
    /// half of it) go through the memory window: then so does readahead, as far ahead as
    /// with a roomy cache (what it fetched into a cache too small for the reads would be
    /// evicted before the window got it).
    fn limits(&self, offset: u64, n: u64) -> (u64, u64) {
        if !self.blob.takes(self.base + offset, n) {
            return (MAX_AHEAD, CHUNK);
        }
        let quarter = self.blob.cache_limit() / 4;
        let ahead = MAX_AHEAD.min(quarter / 2).max(BLOCK_SIZE);
        (ahead, CHUNK.min(ahead))
    }

    /// Marks the blocks from the read at `offset` to `requested_to` (relative to the range)
    /// as what the reader has yet to read.
    fn keep_ahead(&self, offset: u64, requested_to: u64) {
        let from = (self.base + offset) / BLOCK_SIZE;
        let to = (self.base + requested_to).div_ceil(BLOCK_SIZE);
        self.blob.keep_for_reader(from..to);
    }

    /// Before a reader in order at `offset` leaves behind the blocks of its previous read (at
    /// `previous`): the digest's pass hashes those it has yet to.
    async fn let_the_pass_catch_up(&self, previous: u64, offset: u64) {
        let (from, reader) = (
            (self.base + previous) / BLOCK_SIZE,
            (self.base + offset) / BLOCK_SIZE,
        );
        if let Some(at) = self.blob.hashing_at()
            && (from..reader).contains(&at)
        {
            self.blob.hash_up_to(reader).await;
        }
    }

    /// Turns reading ahead on or off (it is on at first).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Runs `read`, of `n` bytes at `offset` (relative to the range), with the readahead
    /// around it: before it, the range ahead is kept requested; after it (which marked the
    /// blocks it read used), what the reader has yet to read goes after them again. The read
    /// fetches its own bytes ([`CachedBlob::read_at`], which pins them first: fetched here,
    /// they could be evicted before the read took them).
    pub async fn around_read<T>(&self, offset: u64, n: u64, read: impl Future<Output = T>) -> T {
        self.before_read(offset, n).await;
        let out = read.await;
        self.after_read(offset, n);
        out
    }

    /// After a read of `n` bytes at `offset`: what is requested past it goes after it.
    fn after_read(&self, offset: u64, n: u64) {
        if offset >= self.len || !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let requested_to = self.window.lock().unwrap().requested_to;
        if offset + n < requested_to {
            self.keep_ahead(offset + n, requested_to);
        }
    }

    /// Before a read of `n` bytes at `offset`: keeps the range ahead requested.
    async fn before_read(&self, offset: u64, n: u64) {
        if offset >= self.len || !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let end = (offset + n.max(BLOCK_SIZE)).min(self.len);
        let previous = self.reader_at.swap(offset, Ordering::SeqCst);
        let (max_ahead, chunk) = self.limits(offset, n);
        let (chunks, sequential, requested_to) = {
            let mut w = self.window.lock().unwrap();
            let sequential = if offset == w.next {
                offset > 0 || w.to_the_end
            } else {
                // Reads the kernel has in flight side by side arrive in any order: one within
                // what was requested, at most a request behind the furthest, goes on in order.
                w.ahead > 0 && offset < w.requested_to && offset + CHUNK >= w.next
            };
            w.ahead = if sequential {
                (w.ahead * 2).clamp(MIN_AHEAD.min(max_ahead), max_ahead)
            } else {
                0
            };
            w.next = if sequential {
                w.next.max(offset + n)
            } else {
                offset + n
            };
            if !sequential || w.requested_to < end {
                w.requested_to = end;
            }
            let target = (end + w.ahead).min(self.len);
            let mut chunks = Vec::new();
            while w.requested_to < target {
                // Ending on a block of the blob: no block is asked for by two requests.
                let stop = (self.base + w.requested_to + chunk) / BLOCK_SIZE * BLOCK_SIZE;
                let stop = (stop - self.base).min(self.len);
                chunks.push((w.requested_to, stop - w.requested_to));
                w.requested_to = stop;
            }
            (chunks, sequential, w.requested_to)
        };
        if sequential {
            self.let_the_pass_catch_up(previous, offset).await;
        }
        self.keep_ahead(offset, requested_to);
        if !chunks.is_empty() {
            let mut tasks = self.tasks.lock().unwrap();
            tasks.retain(|t| !t.is_finished());
            for (start, l) in chunks {
                let (blob, base, reader_at) =
                    (self.blob.clone(), self.base, self.reader_at.clone());
                let task = tokio::spawn(async move {
                    // Not what the reader has read (and let go of) since it was asked for.
                    let from = start.max(reader_at.load(Ordering::SeqCst));
                    let (abs, l) = (base + from, (start + l).saturating_sub(from));
                    if l == 0 {
                        return;
                    }
                    if let Err(e) = blob.ensure(abs, l).await {
                        tracing::debug!("readahead of {l} bytes at {abs}: {e}");
                    }
                });
                tasks.push(task.abort_handle());
            }
        }
    }
}
