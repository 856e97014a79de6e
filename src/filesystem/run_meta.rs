//! What GitHub says about workflow runs, pull requests and workflows, remembered for
//! `--metadata-ttl` (negative answers too: an unknown run, pull request or commit costs one
//! request per TTL): the runs of the artifact listing (pages of the runs list, newest first,
//! until every run with artifacts is seen), a run by id (`GET .../runs/{id}`), the runs at a
//! commit (the `head_sha` filter), a pull request, the workflows. Every answer is revalidated
//! with `If-None-Match` by the client after the TTL, which costs no quota when unchanged. One
//! fetch per question at a time (single flight), no lock held across a request.
//!
//! A run's attributes and attempt ([`Run`]) are what `runs/RUN`'s `user.run.*`, the serve
//! listing, `workflows/` and the logs read.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::github::{ApiError, PullRequest, Run, RunFilter, Workflow};
use crate::single_flight::SingleFlight;

use super::inode::RepoIdx;
use super::{ArtifactFs, FsResult};

/// The most pages of the runs list one pass walks to find the runs of the artifact listing
/// (100 runs a page); runs older than that are asked one by one, when asked for.
pub const MAX_RUN_PAGES: u32 = 30;

/// Answers kept for a while, one fetch per key at a time.
pub(super) struct Memo<K, V> {
    known: Mutex<HashMap<K, (V, Instant)>>,
    flights: SingleFlight<K, V>,
}

impl<K: Eq + Hash + Clone, V: Clone> Default for Memo<K, V> {
    fn default() -> Self {
        Memo {
            known: Mutex::new(HashMap::new()),
            flights: SingleFlight::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    /// The answer for `key` if younger than `ttl`.
    pub(super) fn fresh(&self, key: &K, ttl: Duration) -> Option<V> {
        let known = self.known.lock().unwrap();
        let (v, at) = known.get(key)?;
        (at.elapsed() < ttl).then(|| v.clone())
    }

    /// The answer for `key`: the one kept if younger than `ttl`, else `fetch`'s (shared by
    /// concurrent callers; a failure is not kept).
    pub(super) async fn get<F, Fut>(&self, key: &K, ttl: Duration, fetch: F) -> Result<V, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, ApiError>>,
    {
        if let Some(v) = self.fresh(key, ttl) {
            return Ok(v);
        }
        let r = self
            .flights
            .get_or_try_init(key, || async {
                let v = fetch().await?;
                self.known
                    .lock()
                    .unwrap()
                    .insert(key.clone(), (v.clone(), Instant::now()));
                Ok(v)
            })
            .await;
        self.flights.remove(key);
        r
    }
}

/// One repository's run metadata.
#[derive(Default)]
pub(super) struct RunMeta {
    /// Every run seen, by id, as last seen (from a list page or a lookup).
    runs: Mutex<HashMap<u64, Arc<Run>>>,
    /// `GET .../runs/{id}`: the run, or `None` (404).
    lookups: Memo<u64, Option<Arc<Run>>>,
    /// A pass over the runs list that found the runs of these artifact-listing run ids.
    covered: Memo<(), Arc<BTreeSet<u64>>>,
    /// Pull requests, `None` for a 404.
    pulls: Memo<u64, Option<Arc<PullRequest>>>,
    workflows: Memo<(), Arc<Vec<Workflow>>>,
}

impl RunMeta {
    pub(super) fn remember(&self, runs: &[Run]) {
        let mut known = self.runs.lock().unwrap();
        for r in runs {
            known.insert(r.id, Arc::new(r.clone()));
        }
    }

    fn known(&self, id: u64) -> Option<Arc<Run>> {
        self.runs.lock().unwrap().get(&id).cloned()
    }

    /// The head shas of every run seen.
    pub(super) fn known_shas(&self) -> Vec<String> {
        let known = self.runs.lock().unwrap();
        known.values().filter_map(|r| r.head_sha.clone()).collect()
    }
}

impl ArtifactFs {
    /// What GitHub says about run `id` of repository `idx` (`None`: no such run), from the
    /// pass over the runs list that covers the artifact listing when the run has artifacts,
    /// else from `GET .../runs/{id}`; remembered for `--metadata-ttl`.
    pub async fn run_info(&self, idx: RepoIdx, id: u64) -> FsResult<Option<Arc<Run>>> {
        let listed = self.listing(idx).await?.runs.contains_key(&id);
        let meta = &self.repo(idx).meta;
        if listed && self.runs_of_listing(idx).await?.contains(&id) {
            return Ok(meta.known(id));
        }
        let ttl = self.cfg.metadata_ttl;
        let repo = self.repo(idx).repo.clone();
        let remote = self.remote.clone();
        let r = meta
            .lookups
            .get(&id, ttl, || async move {
                match remote.get_run(&repo, id).await {
                    Ok(run) => Ok(Some(Arc::new(run))),
                    Err(ApiError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        if let Some(run) = &r {
            meta.remember(std::slice::from_ref(run));
        }
        Ok(r)
    }

    /// The run ids of the artifact listing that the runs list has (walked newest first, 100
    /// a page, until every one is seen, the list ends, or its runs are older than the
    /// oldest wanted; at most [`MAX_RUN_PAGES`] pages). Their metadata is then known.
    pub(super) async fn runs_of_listing(&self, idx: RepoIdx) -> FsResult<Arc<BTreeSet<u64>>> {
        let wanted: BTreeSet<u64> = self.listing(idx).await?.runs.keys().copied().collect();
        let st = self.repo(idx);
        let ttl = self.cfg.metadata_ttl;
        let (remote, repo) = (self.remote.clone(), st.repo.clone());
        let meta = &st.meta;
        let covered = meta
            .covered
            .get(&(), ttl, || async move {
                let mut found = BTreeSet::new();
                let Some(&oldest) = wanted.iter().next() else {
                    return Ok(Arc::new(found));
                };
                for page in 1..=MAX_RUN_PAGES {
                    let p = remote.runs_page(&repo, &RunFilter::default(), page).await?;
                    meta.remember(&p.runs);
                    found.extend(p.runs.iter().map(|r| r.id).filter(|id| wanted.contains(id)));
                    let below = p.runs.iter().any(|r| r.id < oldest);
                    if found.len() == wanted.len() || !p.more || below {
                        break;
                    }
                }
                Ok(Arc::new(found))
            })
            .await?;
        Ok(covered)
    }

    /// The runs (known metadata) of every run of the artifact listing.
    pub(super) async fn listing_runs(&self, idx: RepoIdx) -> FsResult<HashMap<u64, Arc<Run>>> {
        let ids = self.runs_of_listing(idx).await?;
        let meta = &self.repo(idx).meta;
        Ok(ids
            .iter()
            .filter_map(|id| Some((*id, meta.known(*id)?)))
            .collect())
    }

    /// Pull request `number` (`None`: no such pull request), remembered for
    /// `--metadata-ttl`.
    pub(super) async fn pull(
        &self,
        idx: RepoIdx,
        number: u64,
    ) -> FsResult<Option<Arc<PullRequest>>> {
        let st = self.repo(idx);
        let (remote, repo) = (self.remote.clone(), st.repo.clone());
        Ok(st
            .meta
            .pulls
            .get(&number, self.cfg.metadata_ttl, || async move {
                match remote.get_pull(&repo, number).await {
                    Ok(p) => Ok(Some(Arc::new(p))),
                    Err(ApiError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?)
    }

    /// The repository's workflows, remembered for `--metadata-ttl`.
    pub(super) async fn workflows(&self, idx: RepoIdx) -> FsResult<Arc<Vec<Workflow>>> {
        let st = self.repo(idx);
        let (remote, repo) = (self.remote.clone(), st.repo.clone());
        Ok(st
            .meta
            .workflows
            .get(&(), self.cfg.metadata_ttl, || async move {
                Ok(Arc::new(remote.list_workflows(&repo).await?))
            })
            .await?)
    }
}
