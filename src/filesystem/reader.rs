//! What an open file reads from: a local file (a deflated entry inflated into the cache), or
//! a range of the blob through the block cache (`NAME.zip`, an unzipped artifact, a stored
//! entry), with readahead for sequential reads and a CRC-32 check for stored entries read
//! through to the end.
//!
//! Readahead follows mountpoint-s3's prefetcher: a read that continues where the previous one
//! ended doubles the window (from 128 KiB up to 8 MiB); the window is fetched with the read
//! (one request), and the next window is fetched in the background, so a sequential `cat`
//! keeps one request in flight ahead of the reader. A jump resets the window. Memory stays
//! bounded by the window: blocks go to the disk cache, not to RAM.

use std::fs::File;
use std::sync::{Arc, Mutex};

use crate::archive::ByteSource;
use crate::cache::{BLOCK_SIZE, CachedSource};

use super::content::pread_full;
use super::error::{FsError, FsResult};

const MIN_WINDOW: u64 = BLOCK_SIZE;
const MAX_WINDOW: u64 = 8 << 20;

pub enum Reader {
    Local(File),
    Ranged(RangedReader),
}

impl Reader {
    pub async fn read(&self, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        match self {
            Reader::Local(f) => Ok(pread_full(f, offset, size as usize)?),
            Reader::Ranged(r) => r.read(offset, size).await,
        }
    }
}

struct ReadState {
    /// Where the next sequential read would start.
    next: u64,
    window: u64,
    /// CRC of bytes `0..crc_upto`, while reads have been sequential from the start.
    crc: Option<crc32fast::Hasher>,
    crc_upto: u64,
    /// End of what a background prefetch has asked for.
    prefetched_to: u64,
    /// The CRC did not match: every later read of this handle is EIO too (the kernel may
    /// retry a failed readahead with a plain read, which must not succeed).
    corrupt: bool,
    /// Bytes served by this handle so far (with repeats).
    served: u64,
}

/// What a read has to do about the entry's CRC after serving its bytes.
enum CrcStep {
    Nothing,
    /// Reads came out of order but the whole entry has been read through: check it from the
    /// cache.
    VerifyFromCache,
}

/// `len` bytes of the blob from `base`, read through the block cache.
pub struct RangedReader {
    src: Arc<CachedSource>,
    base: u64,
    len: u64,
    /// The CRC-32 the bytes must have when read through (stored zip entries), and where to
    /// record that a reader has checked it: later handles skip the check while none of the
    /// blob's blocks has been evicted since (the mark is the eviction count + 1).
    expect_crc: Option<u32>,
    checked: Option<Arc<std::sync::atomic::AtomicU64>>,
    what: String,
    state: Mutex<ReadState>,
    /// Background readahead started for this handle: aborted when the handle goes away.
    prefetches: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for RangedReader {
    fn drop(&mut self) {
        for p in self.prefetches.lock().unwrap().drain(..) {
            p.abort();
        }
    }
}

impl RangedReader {
    pub fn new(
        src: Arc<CachedSource>,
        base: u64,
        len: u64,
        check: Option<(u32, Arc<std::sync::atomic::AtomicU64>)>,
        what: String,
    ) -> RangedReader {
        use std::sync::atomic::Ordering;
        // Already checked by an earlier handle, and nothing refetched since: known good.
        let now = src.evictions() + 1;
        let check = check.filter(|(_, mark)| mark.load(Ordering::Acquire) != now);
        RangedReader {
            src,
            base,
            len,
            expect_crc: check.as_ref().map(|(crc, _)| *crc),
            checked: check.map(|(_, done)| done),
            what,
            state: Mutex::new(ReadState {
                next: 0,
                window: MIN_WINDOW,
                crc: Some(crc32fast::Hasher::new()),
                crc_upto: 0,
                prefetched_to: 0,
                corrupt: false,
                served: 0,
            }),
            prefetches: Mutex::new(Vec::new()),
        }
    }

    pub async fn read(&self, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        if offset >= self.len {
            return Ok(Vec::new());
        }
        let n = (size as u64).min(self.len - offset);
        let (fetch, prefetch) = {
            let mut st = self.state.lock().unwrap();
            if st.corrupt {
                return Err(self.corrupt_error());
            }
            let sequential = offset == st.next && offset > 0;
            st.window = if sequential {
                (st.window * 2).min(MAX_WINDOW)
            } else {
                MIN_WINDOW
            };
            st.next = offset + n;
            let fetch = n.max(st.window).min(self.len - offset);
            let ahead_start = offset + fetch;
            let prefetch = (sequential
                && ahead_start < self.len
                && st.prefetched_to <= ahead_start)
                .then(|| {
                    let l = st.window.min(self.len - ahead_start);
                    st.prefetched_to = ahead_start + l;
                    (ahead_start, l)
                });
            (fetch, prefetch)
        };
        // The window with the read: returns at once when all of it is cached.
        self.src.ensure(self.base + offset, fetch).await?;
        if let Some((start, l)) = prefetch {
            let src = self.src.clone();
            let abs = self.base + start;
            let task = tokio::spawn(async move {
                if let Err(e) = src.ensure(abs, l).await {
                    tracing::debug!("readahead of {l} bytes at {abs}: {e}");
                }
            });
            let mut p = self.prefetches.lock().unwrap();
            p.retain(|t| !t.is_finished());
            p.push(task.abort_handle());
        }
        let data = self
            .src
            .read_at(self.base + offset, n as usize)
            .await?
            .to_vec();
        if let CrcStep::VerifyFromCache = self.check_crc(offset, &data)? {
            self.verify_from_cache().await?;
        }
        Ok(data)
    }

    /// The CRC of the whole entry computed from the block cache (when all of it is there).
    async fn verify_from_cache(&self) -> FsResult<()> {
        let Some(want) = self.expect_crc else {
            return Ok(());
        };
        match self.src.crc32_of(self.base, self.len).await? {
            Some(got) if got != want => Err(self.mark_corrupt(got, want)),
            Some(_) => {
                self.state.lock().unwrap().crc = None; // verified: nothing more to do
                self.mark_checked();
                Ok(())
            }
            None => Ok(()), // not all of it is cached (yet): a later read tries again
        }
    }

    fn mark_checked(&self) {
        if let Some(mark) = &self.checked {
            mark.store(
                self.src.evictions() + 1,
                std::sync::atomic::Ordering::Release,
            );
        }
    }

    fn mark_corrupt(&self, got: u32, want: u32) -> FsError {
        self.state.lock().unwrap().corrupt = true;
        self.src.drop_range(self.base, self.len);
        tracing::warn!(
            "{}: CRC-32 {got:08x}, expected {want:08x}; cached bytes dropped",
            self.what
        );
        self.corrupt_error()
    }

    /// Feeds sequential bytes to the CRC; at the end, compares. A mismatch drops the cached
    /// bytes and is EIO. Reads that arrive out of order (concurrent readahead) end the
    /// running CRC; the entry is then checked from the cache once it has been read through.
    fn check_crc(&self, offset: u64, data: &[u8]) -> FsResult<CrcStep> {
        let Some(want) = self.expect_crc else {
            return Ok(CrcStep::Nothing);
        };
        let mut st = self.state.lock().unwrap();
        st.served += data.len() as u64;
        if st.crc.is_none() {
            return Ok(CrcStep::Nothing); // checked already
        }
        if offset == st.crc_upto {
            if let Some(h) = st.crc.as_mut() {
                h.update(data);
            }
            st.crc_upto += data.len() as u64;
            if st.crc_upto >= self.len {
                let got = st.crc.take().map(|h| h.finalize()).unwrap_or(want);
                drop(st);
                if got != want {
                    return Err(self.mark_corrupt(got, want));
                }
                self.mark_checked();
                return Ok(CrcStep::Nothing);
            }
        }
        // Out of order, but as many bytes as the entry holds have gone by.
        if st.served >= self.len {
            return Ok(CrcStep::VerifyFromCache);
        }
        Ok(CrcStep::Nothing)
    }

    fn corrupt_error(&self) -> FsError {
        FsError::Integrity(format!("{}: CRC-32 mismatch", self.what))
    }
}
