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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::Remote;
use super::meta_map::MetaMap;
use crate::archive::central_directory::tail_len_for;
use crate::data::{BlobRef, DataLayer};
use crate::github::{ApiError, ArtifactKind, RepoRef};
use crate::single_flight::SingleFlight;
use crate::stats::quota;

/// Zip or raw, per artifact id (`meta/kinds.json`).
pub type Kinds = MetaMap<u64, ArtifactKind>;

/// How many download redirects (kind probes) run at once for one request.
pub const IN_FLIGHT: usize = 8;
/// The most API requests one read-ahead pass (one listing of `runs/`) may send, within the
/// quota budget of speculation (`stats::quota`): probes of the newest artifacts first.
pub const READ_AHEAD_REQUESTS: u64 = 256;
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
    /// Read-ahead passes running now.
    passes: AtomicU64,
}

impl Prober {
    /// Writes the kinds learnt and not written yet (see [`MetaMap::flush`]).
    pub fn persist(&self) {
        self.kinds.flush();
    }

    pub fn new(remote: Arc<dyn Remote>, kinds: Arc<Kinds>, ttl: Duration) -> Prober {
        Prober {
            remote,
            kinds,
            ttl,
            failed: Mutex::new(HashMap::new()),
            inflight: SingleFlight::default(),
            read_ahead: Mutex::new(HashSet::new()),
            passes: AtomicU64::new(0),
        }
    }

    /// The remembered kind of artifact `id`.
    pub fn known(&self, id: u64) -> Option<ArtifactKind> {
        self.kinds.get(&id)
    }

    /// Forgets artifact `id` (deleted).
    pub fn forget(&self, id: u64) {
        self.kinds.forget(&id);
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
            .map(|id| async move {
                let _ = self.probe(repo, id).await;
            })
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

    /// Gives artifacts back that a read-ahead could not take on (the quota budget was
    /// spent): a later listing may.
    fn unclaim(&self, ids: impl IntoIterator<Item = u64>) {
        let mut taken = self.read_ahead.lock().unwrap();
        for id in ids {
            taken.remove(&id);
        }
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
        self.passes.fetch_add(1, Ordering::SeqCst);
        rt.spawn(async move {
            me.read_ahead(&repo, artifacts, &data).await;
            me.passes.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// `artifacts`: id and blob, oldest first. Speculation: its API requests spend at most
    /// [`READ_AHEAD_REQUESTS`] and the quota budget (`stats::quota`), the newest artifacts
    /// chosen first; those left out are given back for a later listing.
    pub(super) async fn read_ahead(
        &self,
        repo: &RepoRef,
        artifacts: Vec<(u64, BlobRef)>,
        data: &DataLayer,
    ) {
        let cap = Arc::new(AtomicU64::new(READ_AHEAD_REQUESTS));
        let refused = Mutex::new(Vec::new());
        quota::speculatively(cap, self.read_ahead_pass(repo, artifacts, data, &refused)).await;
        let refused = refused.into_inner().unwrap();
        if !refused.is_empty() {
            tracing::debug!(
                artifacts = refused.len(),
                "read-ahead left artifacts for later: its quota budget is spent"
            );
            self.unclaim(refused);
        }
    }

    /// Read-ahead passes started in the background and not ended (each has given back what
    /// it could not take on once it is no longer counted here).
    #[cfg(test)]
    pub fn passes_running(&self) -> u64 {
        self.passes.load(Ordering::SeqCst)
    }

    async fn read_ahead_pass(
        &self,
        repo: &RepoRef,
        artifacts: Vec<(u64, BlobRef)>,
        data: &DataLayer,
        refused: &Mutex<Vec<u64>>,
    ) {
        // What this pass takes on is chosen newest first (the budget goes to what people
        // look at first): the newest READ_AHEAD_REQUESTS artifacts that need a probe, and
        // every one that needs none; central directories within INDEX_READAHEAD_BUDGET.
        // The rest is given back. What is taken on is then done oldest first, the order in
        // which `ls -R`, `find` and `tree` walk the runs.
        let mut taken = vec![false; artifacts.len()];
        let mut wanted = vec![false; artifacts.len()];
        let (mut probes, mut budget) = (0u64, INDEX_READAHEAD_BUDGET.min(data.cache().limit() / 2));
        for (i, (id, b)) in artifacts.iter().enumerate().rev() {
            if self.needs_probe(*id) {
                if probes == READ_AHEAD_REQUESTS {
                    refused.lock().unwrap().push(*id);
                    continue;
                }
                probes += 1;
            }
            taken[i] = true;
            let cost = read_ahead_cost(b.len);
            if cost <= budget {
                budget -= cost;
                wanted[i] = true;
            } else {
                budget = 0;
            }
        }
        let chosen: Vec<((u64, BlobRef), bool)> = (artifacts.into_iter().zip(wanted))
            .zip(taken)
            .filter_map(|(a, t)| t.then_some(a))
            .collect();
        futures::stream::iter(chosen)
            .map(|((id, b), wanted)| async move {
                if self.needs_probe(id)
                    && let Err(ApiError::Budget(_)) = self.probe(repo, id).await
                {
                    refused.lock().unwrap().push(id);
                    return None;
                }
                let zip = self.kinds.get(&id) == Some(ArtifactKind::Zip);
                (wanted && zip).then_some((id, b))
            })
            .buffer_unordered(IN_FLIGHT)
            .filter_map(futures::future::ready)
            .map(|(id, b)| async move {
                match data.index(&b).await {
                    Ok(_) => {}
                    Err(e) if is_budget(&e) => refused.lock().unwrap().push(id),
                    Err(e) => {
                        tracing::debug!(blob = %b.what, "central directory read ahead failed: {e}")
                    }
                }
            })
            .buffer_unordered(INDEX_IN_FLIGHT)
            .for_each(|_| futures::future::ready(()))
            .await;
    }

    /// Not known, and not failed within `--metadata-ttl`.
    fn needs_probe(&self, id: u64) -> bool {
        self.kinds.get(&id).is_none()
            && (self.failed.lock().unwrap().get(&id)).is_none_or(|t| t.elapsed() >= self.ttl)
    }

    /// Learns artifact `id`'s kind (remembered); a failure is remembered for
    /// `--metadata-ttl`, except a speculative probe the quota budget did not let go.
    async fn probe(&self, repo: &RepoRef, id: u64) -> Result<ArtifactKind, ApiError> {
        let r = self
            .inflight
            .get_or_try_init(&id, || async {
                let kind = self.remote.artifact_kind(repo, id).await?;
                self.kinds.set(id, kind.clone());
                Ok::<_, ApiError>(kind)
            })
            .await;
        match &r {
            Err(ApiError::Budget(_)) => {}
            Err(e) => {
                tracing::warn!(repo = %repo, artifact = id, "could not tell zip from raw: {e}");
                self.failed.lock().unwrap().insert(id, Instant::now());
            }
            Ok(_) => {}
        }
        r
    }
}

/// Whether a data-layer error is a speculative request the quota budget held back.
fn is_budget(e: &crate::data::DataError) -> bool {
    use crate::archive::ArchiveError;
    use crate::data::DataError;
    use crate::error::SourceError;
    matches!(
        e,
        DataError::Source(SourceError::Budget(_))
            | DataError::Archive(ArchiveError::Source(SourceError::Budget(_)))
    )
}
