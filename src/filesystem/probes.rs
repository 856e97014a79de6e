//! Zip or raw, learnt for many artifacts at once. A probe costs one download redirect, so
//! probes run a few at a time ([`IN_FLIGHT`]), each artifact is probed once however many
//! listings want it (single flight), answers are remembered ([`Kinds`], persisted), failures
//! are not asked again for `--metadata-ttl`, and without a token nothing is asked. Listing
//! `runs/` starts the probes of every artifact in the background, so that `ls -R`, `tree` or
//! `find` over a repository do not pay one round trip per artifact in sequence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::Remote;
use super::kinds::Kinds;
use crate::github::{ArtifactKind, RepoRef};
use crate::single_flight::SingleFlight;

/// How many download redirects (kind probes) run at once for one request.
pub const IN_FLIGHT: usize = 8;

pub struct Prober {
    remote: Arc<dyn Remote>,
    kinds: Arc<Kinds>,
    ttl: Duration,
    /// Artifact id → when its probe failed.
    failed: Mutex<HashMap<u64, Instant>>,
    inflight: SingleFlight<u64, ArtifactKind>,
}

impl Prober {
    pub fn new(remote: Arc<dyn Remote>, kinds: Arc<Kinds>, ttl: Duration) -> Prober {
        Prober {
            remote,
            kinds,
            ttl,
            failed: Mutex::new(HashMap::new()),
            inflight: SingleFlight::default(),
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
        let missing: Vec<u64> = {
            let failed = self.failed.lock().unwrap();
            ids.into_iter()
                .filter(|id| self.kinds.get(*id).is_none())
                .filter(|id| failed.get(id).is_none_or(|t| t.elapsed() >= self.ttl))
                .collect()
        };
        futures::stream::iter(missing)
            .map(|id| self.probe(repo, id))
            .buffer_unordered(IN_FLIGHT)
            .for_each(|_| futures::future::ready(()))
            .await;
    }

    /// [`Prober::ensure`] in the background (when a runtime is running).
    pub fn ensure_in_background(self: &Arc<Self>, repo: RepoRef, ids: Vec<u64>) {
        if ids.iter().all(|id| self.kinds.get(*id).is_some()) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = self.clone();
            rt.spawn(async move { me.ensure(&repo, ids).await });
        }
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
