//! Reads the cache does not take (paused after a failed write, such as a full disk, or a
//! cache too small for the blob) kept in memory instead, in the same shape as the cache: a
//! blob's bytes in aligned [`WINDOW_CHUNK`]s, each fetched once however many readers want it
//! (others wait on the fetch), so readahead fills it ahead of a sequential reader exactly as
//! it fills the cache, in the same large ranged requests side by side. At most
//! [`WINDOW_CHUNKS`] chunks per blob (the least recently used go first; a chunk being
//! fetched is never dropped), released when the blob's last reader closes or the cache
//! works again.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::readahead::{CHUNK, MAX_AHEAD};
use crate::error::SourceError;

/// One ranged request of the window (the readahead's).
pub const WINDOW_CHUNK: u64 = CHUNK;
/// How many chunks a blob keeps: what readahead keeps ahead of a reader, and the chunks
/// under it.
pub const WINDOW_CHUNKS: usize = (MAX_AHEAD / CHUNK) as usize + 4;

enum Slot {
    /// Being fetched: changes (or closes) when done.
    Fetching(watch::Receiver<bool>),
    Ready(Bytes),
}

/// One blob's chunks in memory, most recently used first.
#[derive(Default)]
pub struct MemoryWindow {
    chunks: Mutex<VecDeque<(u64, Slot)>>,
}

/// Takes a claimed chunk back out when its fetch fails or is cancelled.
struct Claim<'a> {
    window: &'a MemoryWindow,
    start: u64,
    _done: watch::Sender<bool>,
    filled: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.filled {
            let mut c = self.window.chunks.lock().unwrap();
            c.retain(|(s, slot)| !(*s == self.start && matches!(slot, Slot::Fetching(_))));
        }
    }
}

impl MemoryWindow {
    /// Makes the chunks under `offset..end` (of a blob of `len` bytes) present, fetching
    /// each missing one with `fetch(start, stop)`.
    pub async fn ensure<F, Fut>(
        &self,
        offset: u64,
        end: u64,
        len: u64,
        fetch: F,
    ) -> Result<(), SourceError>
    where
        F: Fn(u64, u64) -> Fut,
        Fut: Future<Output = Result<Bytes, SourceError>>,
    {
        let mut start = offset / WINDOW_CHUNK * WINDOW_CHUNK;
        while start < end {
            // Present, being fetched by someone else (wait, then look again), or ours.
            enum Next {
                Present,
                Wait(watch::Receiver<bool>),
                Fetch(watch::Sender<bool>),
            }
            let next = {
                let mut c = self.chunks.lock().unwrap();
                match c.iter().find(|(s, _)| *s == start) {
                    Some((_, Slot::Ready(_))) => Next::Present,
                    Some((_, Slot::Fetching(rx))) => Next::Wait(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(false);
                        c.push_front((start, Slot::Fetching(rx)));
                        Next::Fetch(tx)
                    }
                }
            };
            match next {
                Next::Present => {}
                Next::Wait(mut rx) => {
                    let _ = rx.changed().await;
                    continue; // filled, or its fetch failed: look again
                }
                Next::Fetch(tx) => {
                    let mut claim = Claim {
                        window: self,
                        start,
                        _done: tx,
                        filled: false,
                    };
                    let stop = (start + WINDOW_CHUNK).min(len);
                    let bytes = fetch(start, stop).await?;
                    self.fill(start, bytes);
                    claim.filled = true;
                }
            }
            start += WINDOW_CHUNK;
        }
        Ok(())
    }

    fn fill(&self, start: u64, bytes: Bytes) {
        let mut c = self.chunks.lock().unwrap();
        c.retain(|(s, _)| *s != start);
        c.push_front((start, Slot::Ready(bytes)));
        while c.len() > WINDOW_CHUNKS {
            match c.iter().rposition(|(_, s)| matches!(s, Slot::Ready(_))) {
                Some(i) => drop(c.remove(i)),
                None => break,
            }
        }
    }

    /// `offset..end` when every chunk under it is present.
    pub fn get(&self, offset: u64, end: u64) -> Option<Bytes> {
        let mut c = self.chunks.lock().unwrap();
        let mut parts = Vec::new();
        let mut at = offset;
        while at < end {
            let start = at / WINDOW_CHUNK * WINDOW_CHUNK;
            let i = c
                .iter()
                .position(|(s, slot)| *s == start && matches!(slot, Slot::Ready(_)))?;
            let entry = c.remove(i).expect("found");
            let Slot::Ready(b) = &entry.1 else {
                unreachable!("matched Ready")
            };
            let to = end.min(start + b.len() as u64);
            if to <= at {
                c.push_front(entry);
                return None; // past the end of the blob
            }
            parts.push(b.slice((at - start) as usize..(to - start) as usize));
            at = to;
            c.push_front(entry);
        }
        Some(match parts.len() {
            1 => parts.pop().expect("one"),
            _ => {
                let mut all = BytesMut::with_capacity((end - offset) as usize);
                for p in parts {
                    all.extend_from_slice(&p);
                }
                all.freeze()
            }
        })
    }

    /// Drops every chunk that is not being fetched.
    pub fn clear(&self) {
        let mut c = self.chunks.lock().unwrap();
        if !c.is_empty() {
            c.retain(|(_, s)| matches!(s, Slot::Fetching(_)));
        }
    }
}
