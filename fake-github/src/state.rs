//! The fake server's world: repositories, artifacts and their blobs, tokens, URL signing,
//! faults and counters. Plain data behind one mutex, never held across an await.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::counters::Counters;
use crate::faults::Faults;
use crate::runs::{StoredPull, StoredRun};
use crate::{BlobKind, FakeArtifactSpec, TokenAccess};

pub(crate) struct Repo {
    pub owner: String,
    pub name: String,
    pub id: u64,
    pub private: bool,
}

/// A user or organisation (`GET /users/{login}`).
pub(crate) struct User {
    pub login: String,
    pub id: u64,
    pub organization: bool,
}

pub(crate) struct StoredArtifact {
    pub id: u64,
    /// Lower-cased (owner, repo) key of the repository it belongs to.
    pub repo: (String, String),
    pub name: String,
    pub run_id: u64,
    pub head_branch: String,
    pub head_sha: String,
    pub body: Bytes,
    pub kind: BlobKind,
    pub digest: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub expired: bool,
}

/// Request counters for "every Nth" faults, reset whenever the faults change.
#[derive(Default)]
pub(crate) struct FaultCounts {
    pub api: u64,
    pub api_ok: u64,
    pub blob: u64,
    pub blob_403: u64,
    pub delete: u64,
    pub blob_flips: u64,
}

pub(crate) struct State {
    pub repos: HashMap<(String, String), Repo>,
    /// Old (owner, name) of a renamed or transferred repository → its id.
    pub moved: HashMap<(String, String), u64>,
    /// (owner, name) → a base URL on another host it answers 301 to (`{base}/{rest}`).
    pub moved_elsewhere: HashMap<(String, String), String>,
    /// Lower-cased login → user or organisation.
    pub users: HashMap<String, User>,
    pub artifacts: BTreeMap<u64, StoredArtifact>,
    /// Workflow runs by id (every artifact's run is here).
    pub runs: BTreeMap<u64, StoredRun>,
    /// (repository, number) → pull request.
    pub pulls: HashMap<((String, String), u64), StoredPull>,
    /// (repository, workflow path) → (id, name, created).
    pub workflows: BTreeMap<((String, String), String), crate::runs::Workflow>,
    pub next_id: u64,
    pub next_repo_id: u64,
    pub clock: OffsetDateTime,
    pub tokens: HashMap<String, TokenAccess>,
    pub url_ttl: Duration,
    pub secret: [u8; 32],
    pub faults: Faults,
    pub fault_counts: FaultCounts,
    /// Blob bodies being sent right now.
    pub blob_in_flight: u64,
    /// Blob URL signatures refused by the forced-403 fault: expired for good.
    pub expired_signatures: std::collections::HashSet<String>,
    /// When each artifact's URL was last expired by the forced-403 fault (unix ms).
    pub forced_expiry_at: HashMap<u64, u64>,
    pub rate_limited_until: Option<Instant>,
    pub counters: Counters,
    /// Remaining primary quota per token ("" = anonymous).
    pub quota_used: HashMap<String, u64>,
    pub quota_reset: u64,
}

pub(crate) fn key(owner: &str, repo: &str) -> (String, String) {
    (owner.to_ascii_lowercase(), repo.to_ascii_lowercase())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl State {
    pub fn new(tokens: HashMap<String, TokenAccess>, url_ttl: Duration, faults: Faults) -> Self {
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut secret[..]);
        let rate_limited_until = faults.rate_limit_exhausted_for.map(|d| Instant::now() + d);
        State {
            repos: HashMap::new(),
            moved: HashMap::new(),
            moved_elsewhere: HashMap::new(),
            users: HashMap::new(),
            artifacts: BTreeMap::new(),
            runs: BTreeMap::new(),
            pulls: HashMap::new(),
            workflows: BTreeMap::new(),
            next_id: 1001,
            next_repo_id: 500_001,
            // Artifacts are created one second apart, ending about now.
            clock: OffsetDateTime::now_utc() - time::Duration::days(1),
            tokens,
            url_ttl,
            secret,
            faults,
            fault_counts: FaultCounts::default(),
            expired_signatures: Default::default(),
            forced_expiry_at: HashMap::new(),
            blob_in_flight: 0,
            rate_limited_until,
            counters: Counters::default(),
            quota_used: HashMap::new(),
            quota_reset: unix_now() + 3600,
        }
    }

    pub fn set_faults(&mut self, faults: Faults) {
        self.rate_limited_until = faults.rate_limit_exhausted_for.map(|d| Instant::now() + d);
        self.faults = faults;
        self.fault_counts = FaultCounts::default();
    }

    pub fn add_repo(&mut self, owner: &str, name: &str, private: bool) {
        let id = self.next_repo_id;
        let repo = self.repos.entry(key(owner, name)).or_insert_with(|| Repo {
            owner: owner.to_string(),
            name: name.to_string(),
            id,
            private,
        });
        repo.private = private;
        if repo.id == id {
            self.next_repo_id += 1;
        }
        self.add_user(owner, true);
    }

    /// Makes `login` exist (an organisation, or a user), if it does not yet.
    pub fn add_user(&mut self, login: &str, organization: bool) {
        let id = 9000 + self.users.len() as u64;
        self.users
            .entry(login.to_ascii_lowercase())
            .or_insert_with(|| User {
                login: login.to_string(),
                id,
                organization,
            });
    }

    /// Renames or transfers a repository: its artifacts go with it, and the old name answers
    /// with a redirect to `/repositories/{id}` from then on.
    pub fn rename_repo(&mut self, from: (&str, &str), to: (&str, &str)) {
        let old = key(from.0, from.1);
        let Some(mut repo) = self.repos.remove(&old) else {
            return;
        };
        let new = key(to.0, to.1);
        repo.owner = to.0.to_string();
        repo.name = to.1.to_string();
        self.moved.insert(old.clone(), repo.id);
        self.moved.remove(&new);
        self.repos.insert(new.clone(), repo);
        for a in self.artifacts.values_mut().filter(|a| a.repo == old) {
            a.repo = new.clone();
        }
        for r in self.runs.values_mut() {
            if r.repo == old {
                r.repo = new.clone();
            }
            if r.head_repo == old {
                r.head_repo = new.clone();
            }
        }
        let pulls = std::mem::take(&mut self.pulls);
        self.pulls = pulls
            .into_iter()
            .map(|((r, n), mut p)| {
                if p.head_repo == old {
                    p.head_repo = new.clone();
                }
                ((if r == old { new.clone() } else { r }, n), p)
            })
            .collect();
        let workflows = std::mem::take(&mut self.workflows);
        self.workflows = workflows
            .into_iter()
            .map(|((r, p), w)| ((if r == old { new.clone() } else { r }, p), w))
            .collect();
        self.add_user(to.0, true);
    }

    pub fn add_artifact(&mut self, spec: FakeArtifactSpec) -> u64 {
        if !self.repos.contains_key(&key(&spec.owner, &spec.repo)) {
            self.add_repo(&spec.owner, &spec.repo, false);
        }
        let id = self.next_id;
        self.next_id += 1;
        let created_at = spec.created_at.unwrap_or_else(|| {
            self.clock += time::Duration::seconds(1);
            self.clock
        });
        self.ensure_run(
            &spec.owner,
            &spec.repo,
            spec.run_id,
            &spec.head_branch,
            &spec.head_sha,
            created_at,
        );
        let digest = spec
            .digest
            .then(|| format!("sha256:{}", hex::encode(Sha256::digest(&spec.body))));
        self.artifacts.insert(
            id,
            StoredArtifact {
                id,
                repo: key(&spec.owner, &spec.repo),
                name: spec.name,
                run_id: spec.run_id,
                head_branch: spec.head_branch,
                head_sha: spec.head_sha,
                body: Bytes::from(spec.body),
                kind: spec.kind,
                digest,
                created_at,
                expires_at: created_at + time::Duration::days(90),
                expired: false,
            },
        );
        id
    }

    /// The artifact object, as the API shows it.
    pub fn artifact_json(&self, a: &StoredArtifact, api_url: &str) -> Value {
        let repo = &self.repos[&a.repo];
        // The run's head repository: another one for a fork's pull request.
        let head_repository_id = self
            .runs
            .get(&a.run_id)
            .and_then(|r| self.repos.get(&r.head_repo))
            .map_or(repo.id, |r| r.id);
        let base = format!(
            "{api_url}/repos/{}/{}/actions/artifacts/{}",
            repo.owner, repo.name, a.id
        );
        json!({
            "id": a.id,
            "node_id": format!("MDg6QXJ0aWZhY3Q{}", a.id),
            "name": a.name,
            "size_in_bytes": a.body.len(),
            "url": base,
            "archive_download_url": format!("{base}/zip"),
            "expired": a.expired,
            "created_at": rfc3339(a.created_at),
            "updated_at": rfc3339(a.created_at),
            "expires_at": rfc3339(a.expires_at),
            "digest": a.digest,
            "workflow_run": {
                "id": a.run_id,
                "repository_id": repo.id,
                "head_repository_id": head_repository_id,
                "head_branch": a.head_branch,
                "head_sha": a.head_sha,
            }
        })
    }

    /// Signature of a blob URL: keyed hash over the artifact id and the expiry.
    pub fn sign(&self, id: u64, expires_ms: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(id.to_le_bytes());
        h.update(expires_ms.to_le_bytes());
        hex::encode(&h.finalize()[..16])
    }

    pub fn expire(&mut self, id: u64) {
        if let Some(a) = self.artifacts.get_mut(&id) {
            a.expired = true;
            a.expires_at = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        }
    }
}

/// The blob file name the URL path ends with.
pub(crate) fn blob_file_name(a: &StoredArtifact) -> String {
    match &a.kind {
        BlobKind::Zip => format!("{}.zip", a.name),
        BlobKind::Raw { file_name, .. } => file_name.clone(),
    }
}
