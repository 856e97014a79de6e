//! Readahead for one sequential reader of a byte range, in the shape of mountpoint-s3's
//! prefetcher: a read fetches what it needs (at least one block) and waits only for that;
//! while reads continue where the previous one ended, the range ahead of the reader is kept
//! requested, in [`CHUNK`]-sized ranged requests that run side by side (a blob host serves
//! each connection well below a machine's bandwidth), the distance ahead doubling from
//! [`MIN_AHEAD`] to [`MAX_AHEAD`] (at most a quarter of the cache) as the reader keeps up.
//! A jump resets it. Memory stays
//! bounded by what is in flight (at most [`MAX_AHEAD`] per reader): fetched blocks go to the
//! disk cache. Background fetches only fill the cache (they hand no bytes to anyone, so they
//! cannot hide a bad byte) and are aborted when the reader goes away. Used for blob ranges
//! (`NAME.zip`, stored entries) and for the compressed bytes an inflater consumes.

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
    /// Off: each read fetches what it needs and nothing ahead (a reader that jumps, such as
    /// an inflater working from seek points, whose cost is bounded by what it reads).
    enabled: std::sync::atomic::AtomicBool,
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
            enabled: std::sync::atomic::AtomicBool::new(true),
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

    /// Turns reading ahead on or off (it is on at first).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Before reading `n` bytes at `offset` (relative to the range): makes them present in
    /// the cache (returns at once when they are) and keeps the range ahead requested.
    pub async fn before_read(&self, offset: u64, n: u64) -> Result<(), crate::error::SourceError> {
        if offset >= self.len {
            return Ok(());
        }
        let end = (offset + n.max(BLOCK_SIZE)).min(self.len);
        if !self.enabled.load(std::sync::atomic::Ordering::Relaxed) {
            return self.blob.ensure(self.base + offset, end - offset).await;
        }
        let chunks = {
            let mut w = self.window.lock().unwrap();
            let sequential = offset == w.next && (offset > 0 || w.to_the_end);
            w.ahead = if sequential {
                // Never so far ahead that it evicts what the reader is about to read.
                (w.ahead * 2).clamp(
                    MIN_AHEAD,
                    MAX_AHEAD.min(self.blob.cache_limit() / 4).max(MIN_AHEAD),
                )
            } else {
                0
            };
            w.next = offset + n;
            if !sequential || w.requested_to < end {
                w.requested_to = end;
            }
            let target = (end + w.ahead).min(self.len);
            let mut chunks = Vec::new();
            while w.requested_to < target {
                let l = CHUNK.min(self.len - w.requested_to);
                chunks.push((w.requested_to, l));
                w.requested_to += l;
            }
            chunks
        };
        if !chunks.is_empty() {
            let mut tasks = self.tasks.lock().unwrap();
            tasks.retain(|t| !t.is_finished());
            for (start, l) in chunks {
                let blob = self.blob.clone();
                let abs = self.base + start;
                let task = tokio::spawn(async move {
                    if let Err(e) = blob.ensure(abs, l).await {
                        tracing::debug!("readahead of {l} bytes at {abs}: {e}");
                    }
                });
                tasks.push(task.abort_handle());
            }
        }
        self.blob.ensure(self.base + offset, end - offset).await
    }
}
