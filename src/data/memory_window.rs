//! Reads the cache does not take (paused after a failed write, such as a full disk, or a
//! cache too small for the blob) kept in memory instead, in the same shape as the cache: a
//! blob's bytes fetched in aligned [`WINDOW_CHUNK`]s, each fetched once however many readers
//! want it (others wait on the fetch), so readahead fills it ahead of a sequential reader
//! exactly as it fills the cache, in the same large ranged requests side by side. Bytes a
//! fetch brought for the cache that the cache could not write are handed over too (any
//! range), so nothing in flight when the disk filled up is fetched twice.
//!
//! At most [`WINDOW_BYTES`] per blob: what lies behind the latest read goes first, then the
//! least recently used; a chunk being fetched is never dropped. Released when the blob's
//! reader closes.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::error::SourceError;

/// One ranged request of the window: readahead's `CHUNK` (`readahead.rs` checks that they
/// stay the same).
pub const WINDOW_CHUNK: u64 = 2 << 20;
/// What a blob keeps at most: readahead's `MAX_AHEAD` (16 MiB, what it keeps ahead of a
/// reader), and a few chunks under and behind it.
pub const WINDOW_BYTES: u64 = (16 << 20) + 4 * WINDOW_CHUNK;

enum Slot {
    /// The aligned chunk from its start, being fetched: changes (or closes) when done.
    Fetching(watch::Receiver<bool>),
    /// Bytes from its start.
    Ready(Bytes),
}

#[derive(Default)]
struct Held {
    /// (start, slot), most recently used first.
    slots: VecDeque<(u64, Slot)>,
    /// Where the latest read ended.
    read_to: u64,
}

impl Held {
    /// The ready slot holding byte `at`.
    fn ready_at(&self, at: u64) -> Option<usize> {
        self.slots.iter().position(|(s, slot)| match slot {
            Slot::Ready(b) => *s <= at && at < s + b.len() as u64,
            Slot::Fetching(_) => false,
        })
    }

    /// The first byte of `from..to` not held (`to` when all are).
    fn first_gap(&self, from: u64, to: u64) -> u64 {
        let mut at = from;
        while at < to {
            match self.ready_at(at) {
                Some(i) => {
                    let (s, Slot::Ready(b)) = &self.slots[i] else {
                        unreachable!("a ready slot")
                    };
                    at = s + b.len() as u64;
                }
                None => return at,
            }
        }
        to
    }

    /// The first byte after `from` (and before `to`) that is held (`to` when none is).
    fn next_held(&self, from: u64, to: u64) -> u64 {
        (self.slots.iter())
            .filter_map(|(s, slot)| match slot {
                Slot::Ready(_) if *s > from && *s < to => Some(*s),
                _ => None,
            })
            .min()
            .unwrap_or(to)
    }

    fn bytes(&self) -> u64 {
        (self.slots.iter())
            .map(|(_, s)| match s {
                Slot::Ready(b) => b.len() as u64,
                Slot::Fetching(_) => 0,
            })
            .sum()
    }

    /// Drops ready slots past the budget: those behind the latest read first (lowest
    /// first), then the least recently used.
    fn trim(&mut self) {
        while self.bytes() > WINDOW_BYTES {
            let behind = (self.slots.iter().enumerate())
                .filter(|(_, (s, slot))| match slot {
                    Slot::Ready(b) => s + b.len() as u64 <= self.read_to,
                    Slot::Fetching(_) => false,
                })
                .min_by_key(|(_, (s, _))| *s)
                .map(|(i, _)| i);
            let victim = behind
                .or_else(|| (self.slots.iter()).rposition(|(_, s)| matches!(s, Slot::Ready(_))));
            match victim {
                Some(i) => drop(self.slots.remove(i)),
                None => return,
            }
        }
    }
}

/// One blob's bytes in memory.
#[derive(Default)]
pub struct MemoryWindow {
    held: Mutex<Held>,
}

/// Takes a claimed chunk back out when its fetch fails or is cancelled.
struct Claim<'a> {
    window: &'a MemoryWindow,
    start: u64,
    _done: watch::Sender<bool>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut h = self.window.held.lock().unwrap();
        (h.slots).retain(|(s, slot)| !(*s == self.start && matches!(slot, Slot::Fetching(_))));
    }
}

impl MemoryWindow {
    /// Makes `offset..end` (of a blob of `len` bytes) present, fetching each aligned chunk
    /// with missing bytes under it with `fetch(start, stop)`.
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
            let stop = (start + WINDOW_CHUNK).min(len);
            // Present, being fetched by someone else (wait, then look again), or ours.
            enum Next {
                Present,
                Wait(watch::Receiver<bool>),
                /// The chunk's first hole: what is not held from its start on.
                Fetch(watch::Sender<bool>, u64, u64),
            }
            let next = {
                let mut h = self.held.lock().unwrap();
                let fetching = h.slots.iter().find_map(|(s, slot)| match slot {
                    Slot::Fetching(rx) if *s == start => Some(rx.clone()),
                    _ => None,
                });
                let (need_from, need_to) = (offset.max(start), end.min(stop));
                if h.first_gap(need_from, need_to) >= need_to {
                    Next::Present
                } else if let Some(rx) = fetching {
                    Next::Wait(rx)
                } else {
                    let (tx, rx) = watch::channel(false);
                    let from = h.first_gap(start, stop);
                    let to = h.next_held(from, stop);
                    h.slots.push_front((start, Slot::Fetching(rx)));
                    Next::Fetch(tx, from, to)
                }
            };
            match next {
                Next::Present => {}
                Next::Wait(mut rx) => {
                    let _ = rx.changed().await;
                    continue; // filled, or its fetch failed: look again
                }
                Next::Fetch(tx, from, to) => {
                    let claim = Claim {
                        window: self,
                        start,
                        _done: tx,
                    };
                    let bytes = fetch(from, to).await?;
                    self.insert(from, bytes);
                    drop(claim);
                    continue; // another hole in the chunk, maybe
                }
            }
            start += WINDOW_CHUNK;
        }
        Ok(())
    }

    /// Keeps `bytes` fetched from `start` (a chunk, or what the cache could not take).
    pub fn insert(&self, start: u64, bytes: Bytes) {
        let mut h = self.held.lock().unwrap();
        let end = start + bytes.len() as u64;
        // What it holds whole goes (held twice otherwise).
        h.slots.retain(|(s, slot)| match slot {
            Slot::Ready(b) => !(start <= *s && s + b.len() as u64 <= end),
            Slot::Fetching(_) => true,
        });
        h.slots.push_front((start, Slot::Ready(bytes)));
        h.trim();
    }

    /// `offset..end` when every byte of it is held (a read: the bytes before it may go).
    pub fn get(&self, offset: u64, end: u64) -> Option<Bytes> {
        self.lookup(offset, end, true)
    }

    /// `offset..end` when every byte of it is held, for a fetch that would bring them
    /// again (the cache writing again): nothing about the reader's place changes.
    pub fn peek(&self, offset: u64, end: u64) -> Option<Bytes> {
        self.lookup(offset, end, false)
    }

    fn lookup(&self, offset: u64, end: u64, read: bool) -> Option<Bytes> {
        let mut h = self.held.lock().unwrap();
        let mut parts = Vec::new();
        let mut at = offset;
        while at < end {
            let i = h.ready_at(at)?;
            let entry = h.slots.remove(i).expect("found");
            let (s, Slot::Ready(b)) = &entry else {
                unreachable!("a ready slot")
            };
            let to = end.min(s + b.len() as u64);
            parts.push(b.slice((at - s) as usize..(to - s) as usize));
            at = to;
            h.slots.push_front(entry);
        }
        if read {
            h.read_to = end;
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

    /// Drops every byte held (chunks being fetched stay claimed).
    pub fn clear(&self) {
        let mut h = self.held.lock().unwrap();
        if !h.slots.is_empty() {
            h.slots.retain(|(_, s)| matches!(s, Slot::Fetching(_)));
        }
    }
}
