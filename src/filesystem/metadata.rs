//! What GitHub says exists, remembered for `--metadata-ttl`: each repository's listing, served
//! stale while one refresh runs in the background (no caller waits on the network when a
//! listing exists, and no lock is held across network I/O); repositories and owners found
//! missing (`GET /users/{owner}`: negative answers are remembered too, so a typo costs one
//! request per TTL, not one per access); and zip-or-raw probes that failed. Without a token
//! no probe is made at all (downloads need one): artifacts are shown as zips.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::github::{ApiError, Artifact, ArtifactKind, RepoRef};

use super::inode::RepoIdx;
use super::listing::{Listing, RunChild};
use super::{ArtifactFs, FsError, FsResult, Remote};

type Refresh = Shared<BoxFuture<'static, Result<Arc<Listing>, ApiError>>>;

pub(super) struct RepoState {
    pub repo: RepoRef,
    /// Named on the command line (or reached by path and found to exist).
    pub visible: AtomicBool,
    pub listing: Mutex<Option<Arc<Listing>>>,
    /// When the repository was last found not to exist.
    missing_since: Mutex<Option<Instant>>,
    /// The refresh in flight, if any: at most one per repository.
    refresh: Mutex<Option<Refresh>>,
    /// Bumped by every deletion: a refresh that started before one is not stored (it may
    /// still list the deleted artifact).
    pub deletions: AtomicU64,
    /// What GitHub says about its runs, pull requests and workflows.
    pub meta: super::run_meta::RunMeta,
}

impl RepoState {
    fn new(repo: RepoRef, visible: bool) -> RepoState {
        RepoState {
            repo,
            visible: AtomicBool::new(visible),
            listing: Mutex::new(None),
            missing_since: Mutex::new(None),
            refresh: Mutex::new(None),
            deletions: AtomicU64::new(0),
            meta: Default::default(),
        }
    }
}

#[derive(Default)]
pub(super) struct Repos {
    pub list: Vec<Arc<RepoState>>,
    pub by_key: HashMap<(String, String), RepoIdx>,
}

/// Answers remembered for `--metadata-ttl`, negative ones included.
#[derive(Default)]
pub(super) struct Remembered {
    /// Lower-cased login → (exists, when asked).
    owners: Mutex<HashMap<String, (bool, Instant)>>,
}

impl ArtifactFs {
    pub(super) fn repo_idx(&self, repo: &RepoRef, visible: bool) -> RepoIdx {
        let mut repos = self.repos.lock().unwrap();
        if let Some(&i) = repos.by_key.get(&repo.key()) {
            if visible {
                repos.list[i].visible.store(true, Ordering::Relaxed);
            }
            return i;
        }
        let i = repos.list.len();
        repos
            .list
            .push(Arc::new(RepoState::new(repo.clone(), visible)));
        repos.by_key.insert(repo.key(), i);
        i
    }

    pub(super) fn repo(&self, idx: RepoIdx) -> Arc<RepoState> {
        self.repos.lock().unwrap().list[idx].clone()
    }

    /// The repositories shown: named on the command line, or reached by path and found to
    /// exist.
    pub fn visible_repos(&self) -> Vec<RepoRef> {
        let repos = self.repos.lock().unwrap();
        repos
            .list
            .iter()
            .filter(|r| r.visible.load(Ordering::Relaxed))
            .map(|r| r.repo.clone())
            .collect()
    }

    /// Seeds a repository's listing with one just fetched (the mount's preflight), so the
    /// first `ls` doesn't list it again.
    pub fn prime_listing(&self, repo: &RepoRef, artifacts: Vec<Artifact>) {
        let idx = self.repo_idx(repo, true);
        let st = self.repo(idx);
        *st.listing.lock().unwrap() = Some(Arc::new(Listing::build(artifacts, Instant::now())));
    }

    /// The repository's listing. Older than `--metadata-ttl`, it is still served while one
    /// refresh runs in the background (a failed refresh keeps it, logged); only a first load
    /// is waited for. A repository found missing stays missing for `--metadata-ttl`.
    pub(super) async fn listing(&self, idx: RepoIdx) -> FsResult<Arc<Listing>> {
        let st = self.repo(idx);
        let ttl = self.cfg.metadata_ttl;
        if st
            .missing_since
            .lock()
            .unwrap()
            .is_some_and(|t| t.elapsed() < ttl)
        {
            return Err(FsError::NotFound);
        }
        let current = st.listing.lock().unwrap().clone();
        match current {
            Some(l) if l.fetched_at.elapsed() < ttl => Ok(l),
            Some(stale) => {
                let (refresh, started) = self.refresh(&st);
                if started {
                    tokio::spawn(refresh);
                }
                Ok(stale)
            }
            None => Ok(self.refresh(&st).0.await?),
        }
    }

    /// The repository's listing if one is held and no refresh is due: what requests
    /// answered without waiting (see [`ArtifactFs::xattrs_now`]) read. `None` sends the
    /// caller to [`Self::listing`], which loads or refreshes it.
    pub(super) fn listing_now(&self, idx: RepoIdx) -> Option<Arc<Listing>> {
        let l = self.repo(idx).listing.lock().unwrap().clone()?;
        (l.fetched_at.elapsed() < self.cfg.metadata_ttl).then_some(l)
    }

    /// What the listings held now have built for answering from memory (see
    /// [`super::held`]): a count that only grows while listings are reused.
    pub fn held_builds(&self) -> u64 {
        let repos = self.repos.lock().unwrap().list.clone();
        repos
            .iter()
            .filter_map(|st| st.listing.lock().unwrap().clone())
            .map(|l| l.held.builds())
            .sum()
    }

    /// The refresh in flight for `st`, and whether this call started it.
    fn refresh(&self, st: &Arc<RepoState>) -> (Refresh, bool) {
        let mut slot = st.refresh.lock().unwrap();
        if let Some(r) = slot.as_ref() {
            return (r.clone(), false);
        }
        let (remote, st2) = (self.remote.clone(), st.clone());
        let r = refresh_listing(remote, st2).boxed().shared();
        *slot = Some(r.clone());
        (r, true)
    }

    /// Whether `owner_lc` is the owner of a repository named on the command line, or a user
    /// or organisation GitHub knows (asked once per `--metadata-ttl`, either answer kept).
    pub(super) async fn owner_exists(&self, owner_lc: &str) -> FsResult<bool> {
        let named = self.repos.lock().unwrap().list.iter().any(|s| {
            s.visible.load(Ordering::Relaxed) && s.repo.owner.eq_ignore_ascii_case(owner_lc)
        });
        if named {
            return Ok(true);
        }
        let ttl = self.cfg.metadata_ttl;
        let known = self
            .remembered
            .owners
            .lock()
            .unwrap()
            .get(owner_lc)
            .copied();
        if let Some((exists, at)) = known
            && at.elapsed() < ttl
        {
            return Ok(exists);
        }
        let exists = self.remote.owner_exists(owner_lc).await?;
        self.remembered
            .owners
            .lock()
            .unwrap()
            .insert(owner_lc.to_string(), (exists, Instant::now()));
        Ok(exists)
    }

    pub(super) async fn run_children(
        &self,
        idx: RepoIdx,
        run: u64,
    ) -> FsResult<Vec<(String, RunChild)>> {
        let l = self.listing(idx).await?;
        let Some(entries) = l.runs.get(&run) else {
            // A run without live artifacts is an empty directory, if GitHub knows it.
            self.run_info(idx, run).await?.ok_or(FsError::NotFound)?;
            return Ok(Vec::new());
        };
        let ids: Vec<u64> = entries.iter().map(|(_, id)| *id).collect();
        let repo = self.repo(idx).repo.clone();
        self.probes.ensure(&repo, ids).await;
        // A kind we could not learn (no token, network trouble) is taken to be a zip, the
        // common case, and not remembered in the cache.
        let probes = &self.probes;
        Ok(l.run_children(run, |id| {
            Some(probes.known(id).unwrap_or(ArtifactKind::Zip))
        }))
    }
}

/// Fetches a listing and stores it (unless a deletion happened meanwhile); clears the
/// in-flight slot when done. Runs detached when callers are served a stale listing.
async fn refresh_listing(
    remote: Arc<dyn Remote>,
    st: Arc<RepoState>,
) -> Result<Arc<Listing>, ApiError> {
    let deletions = st.deletions.load(Ordering::SeqCst);
    let result = remote.list_artifacts(&st.repo).await;
    let out = match result {
        Ok(all) => {
            let l = Arc::new(Listing::build(all, Instant::now()));
            if st.deletions.load(Ordering::SeqCst) == deletions {
                *st.listing.lock().unwrap() = Some(l.clone());
            }
            *st.missing_since.lock().unwrap() = None;
            Ok(l)
        }
        Err(e) => {
            if matches!(e, ApiError::NotFound(_)) {
                *st.missing_since.lock().unwrap() = Some(Instant::now());
                *st.listing.lock().unwrap() = None;
            } else if st.listing.lock().unwrap().is_some() {
                tracing::warn!(repo = %st.repo, "listing refresh failed, serving the previous one: {e}");
            }
            Err(e)
        }
    };
    *st.refresh.lock().unwrap() = None;
    out
}
