//! A blob's bytes when the cache does not take them (a range bigger than half of it, a
//! paused cache, a cache too small to keep them until they are read): kept in the blob's
//! memory window, in the chunks readahead asks for, with what the cache holds (or is
//! fetching) copied in rather than fetched again; a read bigger than two chunks straight
//! from the network; a host that ignores Range from its whole download. Bytes of a sealed
//! blob fetched this way are checked against their sealed checksums (one more fetch, then
//! EIO).

use bytes::Bytes;

use super::CachedBlob;
use super::runs;
use crate::cache::BLOCK_SIZE;
use crate::cache::blocks::checksum;
use crate::data::block_store::mismatch_error;
use crate::data::memory_window::WINDOW_CHUNK;
use crate::error::SourceError;

impl CachedBlob {
    /// Blocks `first..=last` into the memory window (the cache does not take them), unless
    /// they are more than a request: a read that big fetches its own.
    pub(super) async fn ensure_in_memory(&self, first: u64, last: u64) -> Result<(), SourceError> {
        let offset = first * BLOCK_SIZE;
        let end = ((last + 1) * BLOCK_SIZE).min(self.len);
        let on_disk = self
            .file()
            .is_some_and(|f| f.missing(first, last).is_empty());
        if end - offset > 2 * WINDOW_CHUNK || on_disk {
            return Ok(());
        }
        self.cache_to_memory(offset, end).await;
        (self.memory)
            .ensure(offset, end, self.len, |a, b| self.fetch_checked(a, b))
            .await
    }

    /// The blocks of the window chunks under `offset..end` (what the window fetches for them).
    fn window_blocks(&self, offset: u64, end: u64) -> (u64, u64) {
        let start = offset / WINDOW_CHUNK * WINDOW_CHUNK;
        let stop = end
            .div_ceil(WINDOW_CHUNK)
            .saturating_mul(WINDOW_CHUNK)
            .min(self.len);
        (start / BLOCK_SIZE, (stop - 1) / BLOCK_SIZE)
    }

    /// Before the window fetches for `offset..end`: waits for the fetches into the cache
    /// under way over its chunks (readahead's, which the cache takes when the reads it runs
    /// ahead of are too big for it), then copies what the cache holds there into the window,
    /// so that it fetches only what neither has.
    async fn cache_to_memory(&self, offset: u64, end: u64) {
        let (first, last) = self.window_blocks(offset, end);
        let under_way: Vec<_> = {
            let p = self.pending.lock().unwrap();
            (first..=last).filter_map(|b| p.get(&b).cloned()).collect()
        };
        for mut rx in under_way {
            let _ = rx.changed().await; // stored, or given up: either way, look
        }
        self.disk_to_memory(first, last);
    }

    /// Copies the blocks `first..=last` the cache holds into the window.
    fn disk_to_memory(&self, first: u64, last: u64) {
        let Some(file) = self.file() else {
            return;
        };
        let missing = file.missing(first, last);
        let present: Vec<u64> = (first..=last).filter(|b| !missing.contains(b)).collect();
        for (a, b) in runs(&present) {
            let from = a * BLOCK_SIZE;
            let to = ((b + 1) * BLOCK_SIZE).min(self.len);
            if self.memory.peek(from, to).is_none()
                && let Ok(bytes) = file.read(from, (to - from) as usize)
            {
                self.memory.insert(from, bytes);
            }
        }
    }

    /// `len` bytes at `offset` without the cache: from the memory window (fetched into it
    /// first: the chunks readahead asks for), a read bigger than two chunks straight from
    /// the network, a host that ignores Range from its whole download.
    pub(super) async fn read_uncached(
        &self,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, SourceError> {
        let end = (offset + len as u64).min(self.len);
        if !self.remote.whole_only() {
            let r = if end - offset > 2 * WINDOW_CHUNK {
                self.fetch_checked(offset, end).await
            } else {
                self.read_via_memory(offset, end).await
            };
            match r {
                Err(SourceError::RangeIgnored) => {} // learnt just now
                other => return other,
            }
        }
        (self.downloads)
            .read(&self.download_ctx(), offset, end)
            .await
    }

    /// `offset..end` from the memory window, fetched into it if need be (what the cache
    /// holds of it copied first, not fetched again).
    async fn read_via_memory(&self, offset: u64, end: u64) -> Result<Bytes, SourceError> {
        for _ in 0..4 {
            if let Some(b) = self.memory.get(offset, end) {
                return Ok(b);
            }
            self.cache_to_memory(offset, end).await;
            (self.memory)
                .ensure(offset, end, self.len, |a, b| self.fetch_checked(a, b))
                .await?;
        }
        // Dropped as fast as it is fetched (readers of many parts at once): this read alone.
        self.fetch_checked(offset, end).await
    }

    /// `offset..end` straight from the network. A sealed blob's bytes are fetched in whole
    /// blocks and checked against their sealed checksums (one more fetch, then EIO).
    async fn fetch_checked(&self, offset: u64, end: u64) -> Result<Bytes, SourceError> {
        let Some(file) = self.file().filter(|f| f.any_sealed()) else {
            return self.fetch_exact(offset, end - offset).await;
        };
        let (first, last) = (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE);
        let start = first * BLOCK_SIZE;
        let stop = ((last + 1) * BLOCK_SIZE).min(self.len);
        let mut bad = 0;
        for _attempt in 0..2 {
            let bytes = self.fetch_exact(start, stop - start).await?;
            let wrong = (first..=last).find(|&i| {
                let at = ((i - first) * BLOCK_SIZE) as usize;
                !file.matches(i, checksum(&bytes[at..at + file.block_len(i) as usize]))
            });
            match wrong {
                None => {
                    return Ok(bytes.slice((offset - start) as usize..(end - start) as usize));
                }
                Some(i) => {
                    tracing::warn!(
                        "{}: block {i} fetched again differs from its sealed checksum",
                        self.what()
                    );
                    bad = i;
                }
            }
        }
        Err(mismatch_error(self.what(), bad))
    }
}
