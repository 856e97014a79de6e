//! Zip or raw, learnt for many artifacts at once. A probe costs one download redirect, so
//! probes run a few at a time ([`IN_FLIGHT`]), each artifact is probed once however many
//! listings want it (single flight), answers are remembered ([`Kinds`], persisted), failures
//! are not asked again for `--metadata-ttl`, and without a token nothing is asked. Listing
//! `runs/` starts the probes of every artifact in the background and, as each zip artifact
//! is known, the read of its central directory (within [`INDEX_READAHEAD_BUDGET`], newest
//! artifacts first; each artifact is taken on once), so that `ls -R`, `tree` or `find` over a repository do not pay two round
//! trips per artifact in sequence. `ls` may read a zip's central directory (that is what the
//! directory is), never more (docs/semantics.md, "What a listing may cost"): see
//! docs/design.md, "Directory readahead".

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::Remote;
use super::kinds::Kinds;
use crate::archive::central_directory::tail_len_for;
use crate::data::{BlobRef, DataLayer};
use crate::github::{ArtifactKind, RepoRef};
use crate::single_flight::SingleFlight;

/// How many download redirects (kind probes) run at once for one request.
pub const IN_FLIGHT: usize = 8;
/// How many central directory reads listing `runs/` keeps in flight (blob host: no API quota).
pub const INDEX_IN_FLIGHT: usize = 16;
/// The most cache space (see [`read_ahead_cost`]) one listing of `runs/` reads ahead into:
/// every central directory of a repository of small artifacts, those of the newest few dozen
/// big ones. Paid once: the tails stay in the block cache. Never more than half the cache,
/// so that reading ahead does not evict what it read moments ago.
pub const INDEX_READAHEAD_BUDGET: u64 = 16 << 20;

/// What reading the tail of a blob of `len` bytes ahead takes in the cache: the tail's bytes
/// and the blob's map with its data file's allocation unit (8 KiB for a small blob).
pub fn read_ahead_cost(len: u64) -> u64 {
    tail_len_for(len) + 8192
}

pub struct Prober {
    remote: Arc<dyn Remote>,
    kinds: Arc<Kinds>,
    ttl: Duration,
    /// Artifact id → when its probe failed.
    failed: Mutex<HashMap<u64, Instant>>,
    inflight: SingleFlight<u64, ArtifactKind>,
    /// Artifacts a read-ahead has taken on: each once, so listing `runs/` again (every
    /// second under `ls -R` or a file manager) starts nothing for them.
    read_ahead: Mutex<HashSet<u64>>,
}

impl Prober {
    pub fn new(remote: Arc<dyn Remote>, kinds: Arc<Kinds>, ttl: Duration) -> Prober {
        Prober {
            remote,
            kinds,
            ttl,
            failed: Mutex::new(HashMap::new()),
            inflight: SingleFlight::default(),
            read_ahead: Mutex::new(HashSet::new()),
        }
    }

    /// The remembered kind of artifact `id`.
    pub fn known(&self, id: u64) -> Option<ArtifactKind> {
        self.kinds.get(id)
    }

    /// Forgets artifact `id` (deleted).
    pub fn forget(&self, id: u64) {
        self.kinds.forget(id);
        self.inflight.remove(&id);
    }

    /// Learns the kinds of `ids` not known yet; artifacts whose kind can't be learnt are
    /// logged and left out.
    pub async fn ensure(&self, repo: &RepoRef, ids: Vec<u64>) {
        if !self.remote.can_download() {
            return;
        }
        let missing: Vec<u64> = ids.into_iter().filter(|id| self.needs_probe(*id)).collect();
        futures::stream::iter(missing)
            .map(|id| self.probe(repo, id))
            .buffer_unordered(IN_FLIGHT)
            .for_each(|_| futures::future::ready(()))
            .await;
    }

    /// Of `ids`, those no read-ahead has taken on yet, taken on from now (none without a
    /// token: nothing would be read).
    pub fn claim_for_read_ahead(&self, ids: impl Iterator<Item = u64>) -> HashSet<u64> {
        if !self.remote.can_download() {
            return HashSet::new();
        }
        let mut taken = self.read_ahead.lock().unwrap();
        ids.filter(|id| taken.insert(*id)).collect()
    }

    /// What listing `runs/` starts in the background (when a runtime is running): the kinds
    /// of `artifacts` not known yet, [`IN_FLIGHT`] at a time, and, for each zip artifact as
    /// soon as its kind is known, its central directory, [`INDEX_IN_FLIGHT`] at a time. Only
    /// the newest artifacts whose tails fit in [`INDEX_READAHEAD_BUDGET`] are read ahead;
    /// failures are left for whoever lists the artifact to meet and report. `artifacts` are
    /// those just claimed ([`Prober::claim_for_read_ahead`]).
    pub fn read_ahead_in_background(
        self: &Arc<Self>,
        repo: RepoRef,
        artifacts: Vec<(u64, BlobRef)>,
        data: Arc<DataLayer>,
    ) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let me = self.clone();
        rt.spawn(async move { me.read_ahead(&repo, artifacts, &data).await });
    }

    /// `artifacts`: id and blob, oldest first.
    pub(super) async fn read_ahead(
        &self,
        repo: &RepoRef,
        artifacts: Vec<(u64, BlobRef)>,
        data: &DataLayer,
    ) {
        let mut budget = INDEX_READAHEAD_BUDGET.min(data.cache().limit() / 2);
        let mut wanted = vec![false; artifacts.len()];
        for (i, (_, b)) in artifacts.iter().enumerate().rev() {
            let cost = read_ahead_cost(b.len);
            if cost > budget {
                break;
            }
            budget -= cost;
            wanted[i] = true;
        }
        futures::stream::iter(artifacts.into_iter().zip(wanted))
            .map(|((id, b), wanted)| async move {
                if self.needs_probe(id) {
                    self.probe(repo, id).await;
                }
                let zip = self.kinds.get(id) == Some(ArtifactKind::Zip);
                (wanted && zip).then_some(b)
            })
            .buffer_unordered(IN_FLIGHT)
            .filter_map(futures::future::ready)
            .map(|b| async move {
                if let Err(e) = data.index(&b).await {
                    tracing::debug!(blob = %b.what, "central directory read ahead failed: {e}");
                }
            })
            .buffer_unordered(INDEX_IN_FLIGHT)
            .for_each(|_| futures::future::ready(()))
            .await;
    }

    /// Not known, and not failed within `--metadata-ttl`.
    fn needs_probe(&self, id: u64) -> bool {
        self.kinds.get(id).is_none()
            && (self.failed.lock().unwrap().get(&id)).is_none_or(|t| t.elapsed() >= self.ttl)
    }

    async fn probe(&self, repo: &RepoRef, id: u64) {
        let r = self
            .inflight
            .get_or_try_init(&id, || async {
                let kind = self.remote.artifact_kind(repo, id).await?;
                self.kinds.set(id, kind.clone());
                Ok::<_, crate::github::ApiError>(kind)
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(repo = %repo, artifact = id, "could not tell zip from raw: {e}");
            self.failed.lock().unwrap().insert(id, Instant::now());
        }
    }
}
