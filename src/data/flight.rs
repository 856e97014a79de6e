//! One whole download's state, shared by the task that runs it and the readers that wait
//! on it (see `whole_download`): where its bytes land from which offset on ([`Place`]), how
//! far it got and how it ended ([`Progress`], a `watch`), and the readers of a download
//! that keeps nothing ([`Want`]), served as it passes and pacing it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, oneshot, watch};

use super::spool::Spool;
use crate::error::SourceError;

/// How long a download that keeps nothing waits for a reader to ask for more before it
/// stops; also how long a finished download's spool stays after its last read.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(20);

/// Where the bytes of a download from some offset on land.
#[derive(Clone)]
pub enum Place {
    Cache,
    Spool(Arc<Spool>),
    /// Handed to the readers waiting for them, then dropped.
    Passing,
}

/// A reader waiting for `start..end` of a download that keeps nothing.
pub struct Want {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) buf: BytesMut,
    pub(super) tx: oneshot::Sender<Bytes>,
}

/// How far a download got.
#[derive(Clone, Default)]
pub struct Progress {
    /// Bytes from 0 landed (or passed).
    pub(super) landed: u64,
    /// Finished: how (an error's text and errno-bearing kind).
    pub(super) end: Option<Result<(), Failure>>,
}

/// A download's error, kept for every reader that waited on it.
#[derive(Clone, Debug)]
pub enum Failure {
    NotFound(String),
    Denied(String),
    Integrity(String),
    Other(String),
}

impl Failure {
    /// Not worth another download: the source already retried what can be retried; only
    /// changed bytes get one more.
    pub(super) fn is_final(&self) -> bool {
        !matches!(self, Failure::Integrity(_))
    }

    pub(super) fn of(e: &SourceError) -> Failure {
        match e {
            SourceError::NotFound(m) => Failure::NotFound(m.clone()),
            SourceError::Denied(m) | SourceError::NeedsToken(m) => Failure::Denied(m.clone()),
            SourceError::Integrity(m) => Failure::Integrity(m.clone()),
            e => Failure::Other(e.to_string()),
        }
    }

    pub(super) fn error(&self) -> SourceError {
        match self.clone() {
            Failure::NotFound(m) => SourceError::NotFound(m),
            Failure::Denied(m) => SourceError::Denied(m),
            Failure::Integrity(m) => SourceError::Integrity(m),
            Failure::Other(m) => SourceError::Remote(m),
        }
    }
}

/// One download.
pub struct Flight {
    pub(super) progress: watch::Sender<Progress>,
    /// Where bytes land, from which offset on (ascending).
    pub(super) places: Mutex<Vec<(u64, Place)>>,
    /// Readers of a download that keeps nothing, and what it has passed (under one lock).
    pub(super) wants: Mutex<(Vec<Want>, u64)>,
    pub(super) wanted: Notify,
    pub(super) last_use: Mutex<Instant>,
    /// The spool's bytes can't be trusted (a block read back wrong, or the digest).
    pub(super) spoiled: AtomicBool,
    /// A reader needs bytes this download has passed: it stops once nobody waits on it.
    pub(super) stop: AtomicBool,
}

impl Flight {
    pub(super) fn new(first: Place) -> Flight {
        Flight {
            progress: watch::channel(Progress::default()).0,
            places: Mutex::new(vec![(0, first)]),
            wants: Mutex::new((Vec::new(), 0)),
            wanted: Notify::new(),
            last_use: Mutex::new(Instant::now()),
            spoiled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }

    pub(super) fn running(&self) -> bool {
        self.progress.borrow().end.is_none()
    }

    /// Where `offset..end` landed (or lands), when one place holds all of it.
    pub(super) fn place_of(&self, offset: u64, end: u64) -> Option<Place> {
        let places = self.places.lock().unwrap();
        let i = places.iter().rposition(|(from, _)| *from <= offset)?;
        let next = places.get(i + 1).map_or(u64::MAX, |(from, _)| *from);
        (end <= next).then(|| places[i].1.clone())
    }

    /// Where the block cache stops receiving this download's bytes.
    pub(super) fn cache_until(&self) -> u64 {
        let places = self.places.lock().unwrap();
        let mut until = 0;
        for (k, (from, p)) in places.iter().enumerate() {
            if matches!(p, Place::Cache) && *from <= until {
                until = places.get(k + 1).map_or(u64::MAX, |(f, _)| *f);
            }
        }
        until
    }

    /// Waits until `end` has landed or the download ended.
    pub(super) async fn wait_landed(&self, end: u64) -> Progress {
        let mut rx = self.progress.subscribe();
        let p = rx
            .wait_for(|p| p.landed >= end || p.end.is_some())
            .await
            .map(|p| p.clone())
            .unwrap_or_default();
        *self.last_use.lock().unwrap() = Instant::now();
        p
    }

    /// Waits until `..end` has landed in the cache, the download put what is left of it
    /// elsewhere (a write failed), or it ended.
    pub(super) async fn wait_cached(&self, end: u64) {
        let mut rx = self.progress.subscribe();
        let _ = rx
            .wait_for(|p| p.landed >= end || p.end.is_some() || self.cache_until() < end)
            .await;
        *self.last_use.lock().unwrap() = Instant::now();
    }

    /// Registers a reader of `start..end` with a download that keeps nothing; `None` when
    /// it has passed `start` already.
    pub(super) fn want(&self, start: u64, end: u64) -> Option<oneshot::Receiver<Bytes>> {
        let (tx, rx) = oneshot::channel();
        let mut w = self.wants.lock().unwrap();
        if w.1 > start || !self.running() {
            return None;
        }
        let buf = BytesMut::with_capacity((end - start) as usize);
        w.0.push(Want {
            start,
            end,
            buf,
            tx,
        });
        drop(w);
        self.wanted.notify_one();
        Some(rx)
    }

    /// Hands the bytes at `pos` to the readers waiting for them.
    pub(super) fn pass(&self, pos: u64, bytes: &[u8]) {
        let end = pos + bytes.len() as u64;
        let mut w = self.wants.lock().unwrap();
        let (wants, passed) = &mut *w;
        *passed = end;
        let mut k = 0;
        while k < wants.len() {
            let want = &mut wants[k];
            let at = want.start + want.buf.len() as u64;
            if at >= pos && at < end {
                let to = want.end.min(end);
                want.buf
                    .extend_from_slice(&bytes[(at - pos) as usize..(to - pos) as usize]);
            }
            if want.start + want.buf.len() as u64 >= want.end {
                let done = wants.swap_remove(k);
                let _ = done.tx.send(done.buf.freeze());
            } else if at < pos {
                wants.swap_remove(k); // passed it by: that reader starts another download
            } else {
                k += 1;
            }
        }
    }

    /// Waits until a reader waits for bytes; false when none did for [`LINGER`], or one
    /// needs bytes already passed and nobody else waits (the download stops).
    pub(super) async fn paced(&self) -> bool {
        loop {
            let notified = self.wanted.notified();
            if !self.wants.lock().unwrap().0.is_empty() {
                return true;
            }
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            if tokio::time::timeout(LINGER, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Asks a download that keeps nothing to stop once no reader waits on it.
    pub(super) fn stop_when_idle(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wanted.notify_one();
    }

    pub(super) fn finish(&self, r: Result<(), SourceError>) {
        self.wants.lock().unwrap().0.clear(); // their readers start another download
        self.progress
            .send_modify(|p| p.end = Some(r.map_err(|e| Failure::of(&e))));
    }
}
