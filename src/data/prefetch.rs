//! Readahead for one sequential reader of a byte range, in the shape of mountpoint-s3's
//! prefetcher: a read that continues where the previous one ended doubles the window (from
//! 128 KiB up to 8 MiB); the window is fetched with the read (one request), and the next
//! window is fetched in the background, so a sequential reader keeps one request in flight
//! ahead of it. A jump resets the window. Background fetches only fill the block cache (they
//! hand no bytes to anyone, so they cannot hide a bad byte) and are aborted when the reader
//! goes away. Used for blob ranges (`NAME.zip`, stored entries) and for the compressed bytes
//! an inflater consumes.

use std::sync::{Arc, Mutex};

use super::blob::CachedBlob;
use crate::cache::BLOCK_SIZE;

const MIN_WINDOW: u64 = BLOCK_SIZE;
const MAX_WINDOW: u64 = 8 << 20;

struct Window {
    /// Where the next sequential read would start.
    next: u64,
    size: u64,
    /// End of what a background fetch has asked for.
    prefetched_to: u64,
}

/// One reader's readahead over `base..base + len` of a blob.
pub struct Readahead {
    blob: Arc<CachedBlob>,
    base: u64,
    len: u64,
    window: Mutex<Window>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Readahead {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
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
                size: MIN_WINDOW,
                prefetched_to: 0,
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Before reading `n` bytes at `offset` (relative to the range): fetches the window that
    /// starts there into the cache (returns at once when cached) and starts the next one in
    /// the background.
    pub async fn before_read(&self, offset: u64, n: u64) -> std::io::Result<()> {
        if offset >= self.len {
            return Ok(());
        }
        let (fetch, ahead) = {
            let mut w = self.window.lock().unwrap();
            let sequential = offset == w.next && offset > 0;
            w.size = if sequential {
                (w.size * 2).min(MAX_WINDOW)
            } else {
                MIN_WINDOW
            };
            w.next = offset + n;
            let fetch = n.max(w.size).min(self.len - offset);
            let start = offset + fetch;
            let ahead = (sequential && start < self.len && w.prefetched_to <= start).then(|| {
                let l = w.size.min(self.len - start);
                w.prefetched_to = start + l;
                (start, l)
            });
            (fetch, ahead)
        };
        self.blob.ensure(self.base + offset, fetch).await?;
        if let Some((start, l)) = ahead {
            let blob = self.blob.clone();
            let abs = self.base + start;
            let task = tokio::spawn(async move {
                if let Err(e) = blob.ensure(abs, l).await {
                    tracing::debug!("readahead of {l} bytes at {abs}: {e}");
                }
            });
            let mut tasks = self.tasks.lock().unwrap();
            tasks.retain(|t| !t.is_finished());
            tasks.push(task.abort_handle());
        }
        Ok(())
    }
}
