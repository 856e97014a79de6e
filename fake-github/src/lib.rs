//! A fake GitHub for artifactfs's tests, benchmarks and demo: the five Actions artifact
//! endpoints (plus `GET /users/{login}` and renamed repositories' redirects) on one listener, the signed blob host they redirect to on another, fault switches
//! and counters. It follows GitHub's REST reference and the documented behaviour of the blob
//! host (the facts artifactfs relies on are listed in the repository's docs/semantics.md,
//! "What artifactfs assumes of GitHub"), not artifactfs's habits.
//!
//! [`FakeGitHub::start`] runs both listeners on their own runtime thread, so it can be used from
//! plain `#[test]` functions and from inside another runtime alike.

// The JSON shapes of a pull request are larger than `json!`'s default recursion allows.
#![recursion_limit = "256"]

/// The setters a run and an artifact share (over their `head_branch`, `head_sha` and
/// `created_at` fields): the head commit and when it was made.
macro_rules! head_commit_setters {
    () => {
        /// The head branch (default `main`).
        pub fn branch(mut self, branch: &str) -> Self {
            self.head_branch = branch.into();
            self
        }

        /// The head commit (default [`crate::runs::default_sha`] of the run).
        pub fn sha(mut self, sha: &str) -> Self {
            self.head_sha = sha.into();
            self
        }

        /// When it was created (default: one second after the last thing the fake made).
        pub fn created_at(mut self, t: time::OffsetDateTime) -> Self {
            self.created_at = Some(t);
            self
        }
    };
}

pub mod api;
pub mod bench;
pub mod bench_content;
pub mod blob;
pub mod counters;
pub mod demo;
pub mod faults;
pub mod logs;
pub mod openapi;
mod pages;
pub mod quota;
mod routes;
pub mod runs;
mod shapes;
mod state;
pub mod zipgen;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::Value;

pub use counters::Counters;
pub use faults::{BlobFlip, Faults};
pub use runs::{FakePullSpec, FakeRunSpec};

use state::State;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenAccess {
    /// Read and delete.
    ReadWrite,
    /// Read only: DELETE answers 403.
    ReadOnly,
    /// A valid token without access to anything: every request answers 403.
    Denied,
}

#[derive(Clone, Debug)]
pub struct FakeConfig {
    /// Accepted tokens. Default: `test-token` with read-write access.
    pub tokens: HashMap<String, TokenAccess>,
    /// How long a signed blob URL stays valid (GitHub: about a minute).
    pub url_ttl: Duration,
    pub faults: Faults,
    /// Serve the API under a path prefix, as GitHub Enterprise Server does (`/api/v3`).
    pub path_prefix: Option<String>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            tokens: HashMap::from([("test-token".to_string(), TokenAccess::ReadWrite)]),
            url_ttl: Duration::from_secs(60),
            faults: Faults::default(),
            path_prefix: None,
        }
    }
}

/// What an artifact's blob is: a zip archive, or (upload-artifact v7) one unzipped file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobKind {
    Zip,
    Raw {
        file_name: String,
        content_type: String,
    },
}

/// An artifact to add to the fake.
#[derive(Clone, Debug)]
pub struct FakeArtifactSpec {
    pub owner: String,
    pub repo: String,
    pub name: String,
    pub run_id: u64,
    pub head_branch: String,
    pub head_sha: String,
    pub body: Vec<u8>,
    pub kind: BlobKind,
    /// Whether the artifact object carries `digest` (old artifacts and GHES have none).
    pub digest: bool,
    /// Default: one second after the previous artifact.
    pub created_at: Option<time::OffsetDateTime>,
}

impl FakeArtifactSpec {
    /// A zip artifact.
    pub fn zip(owner: &str, repo: &str, name: &str, run_id: u64, zip: Vec<u8>) -> Self {
        FakeArtifactSpec {
            owner: owner.into(),
            repo: repo.into(),
            name: name.into(),
            run_id,
            head_branch: "main".into(),
            head_sha: runs::default_sha(run_id),
            body: zip,
            kind: BlobKind::Zip,
            digest: true,
            created_at: None,
        }
    }

    /// An unzipped (upload-artifact v7 `archive: false`) artifact: one raw file.
    pub fn raw(
        owner: &str,
        repo: &str,
        name: &str,
        run_id: u64,
        file_name: &str,
        data: Vec<u8>,
    ) -> Self {
        let content_type = match file_name.rsplit_once('.').map(|(_, e)| e) {
            Some("md") => "text/markdown",
            Some("txt" | "log") => "text/plain",
            Some("json") => "application/json",
            Some("html") => "text/html",
            _ => "application/octet-stream",
        };
        FakeArtifactSpec {
            kind: BlobKind::Raw {
                file_name: file_name.into(),
                content_type: content_type.into(),
            },
            ..FakeArtifactSpec::zip(owner, repo, name, run_id, data)
        }
    }

    head_commit_setters!();

    pub fn no_digest(mut self) -> Self {
        self.digest = false;
        self
    }
}

/// What both listeners share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// API base URL including the prefix, no trailing slash.
    pub(crate) api_url: String,
    pub(crate) prefix: String,
    pub(crate) blob_origin: String,
}

/// A running fake GitHub. Dropping it stops both listeners.
pub struct FakeGitHub {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    blob_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGitHub {
    /// Starts on two ephemeral ports of 127.0.0.1.
    pub fn start(config: FakeConfig) -> FakeGitHub {
        Self::start_on(
            "127.0.0.1:0".parse().expect("addr"),
            "127.0.0.1:0".parse().expect("addr"),
            config,
        )
        .expect("start fake GitHub")
    }

    /// Starts on the given addresses (port 0: any free port).
    pub fn start_on(
        api_addr: SocketAddr,
        blob_addr: SocketAddr,
        config: FakeConfig,
    ) -> std::io::Result<FakeGitHub> {
        let api_listener = std::net::TcpListener::bind(api_addr)?;
        let blob_listener = std::net::TcpListener::bind(blob_addr)?;
        api_listener.set_nonblocking(true)?;
        blob_listener.set_nonblocking(true)?;
        let api_addr = api_listener.local_addr()?;
        let blob_addr = blob_listener.local_addr()?;
        let prefix = config
            .path_prefix
            .as_deref()
            .map(|p| format!("/{}", p.trim_matches('/')))
            .filter(|p| p != "/")
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(config.tokens, config.url_ttl, config.faults)),
            api_url: format!("http://{api_addr}{prefix}"),
            prefix,
            blob_origin: format!("http://{blob_addr}"),
        });
        let api_app = Router::new()
            .fallback(api::handle)
            .with_state(shared.clone());
        let blob_app = Router::new()
            .fallback(blob::handle)
            .with_state(shared.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-github".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake-github runtime");
                rt.block_on(async move {
                    let api = tokio::net::TcpListener::from_std(api_listener).expect("listener");
                    let blob = tokio::net::TcpListener::from_std(blob_listener).expect("listener");
                    let a = tokio::spawn(async move { axum::serve(api, api_app).await });
                    let b = tokio::spawn(async move { axum::serve(blob, blob_app).await });
                    let _ = stop_rx.await;
                    a.abort();
                    b.abort();
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(FakeGitHub {
            shared,
            api_addr,
            blob_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The API base URL (`--api-url`), with the path prefix if any.
    pub fn api_url(&self) -> String {
        self.shared.api_url.clone()
    }

    pub fn api_origin(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn blob_origin(&self) -> String {
        format!("http://{}", self.blob_addr)
    }

    /// Adds a repository (artifacts add theirs on demand, public). Private repositories are
    /// invisible (404) without a token.
    pub fn add_repo(&self, owner: &str, name: &str, private: bool) {
        self.shared
            .state
            .lock()
            .unwrap()
            .add_repo(owner, name, private);
    }

    /// Makes a user (`organization`: false) or an organisation exist without repositories.
    /// Owners of repositories exist anyway.
    pub fn add_user(&self, login: &str, organization: bool) {
        self.shared
            .state
            .lock()
            .unwrap()
            .add_user(login, organization);
    }

    /// Renames (or, with another owner, transfers) a repository. The old name then answers
    /// 301 (307 for DELETE) to `/repositories/{id}/...`, as GitHub does.
    pub fn rename_repo(&self, from: &str, to: &str) {
        let (fo, fr) = from.split_once('/').expect("OWNER/REPO");
        let (to_o, to_r) = to.split_once('/').expect("OWNER/REPO");
        self.shared
            .state
            .lock()
            .unwrap()
            .rename_repo((fo, fr), (to_o, to_r));
    }

    /// Makes `owner/repo` answer 301 to the same path under `base` (a base URL on another
    /// host, e.g. another fake's `api_url() + "/repos/o/r"`): what a hostile or broken server
    /// could send, to check that a client does not follow it (nor send its token there).
    pub fn redirect_repo_elsewhere(&self, repo: &str, base: &str) {
        let (o, r) = repo.split_once('/').expect("OWNER/REPO");
        self.shared
            .state
            .lock()
            .unwrap()
            .moved_elsewhere
            .insert(state::key(o, r), base.trim_end_matches('/').to_string());
    }

    /// The id of a repository (what `/repositories/{id}` takes).
    pub fn repo_id(&self, owner: &str, name: &str) -> Option<u64> {
        let st = self.shared.state.lock().unwrap();
        st.repos.get(&state::key(owner, name)).map(|r| r.id)
    }

    /// Adds an artifact and returns its id (ids count from 1001).
    pub fn add_artifact(&self, spec: FakeArtifactSpec) -> u64 {
        self.shared.state.lock().unwrap().add_artifact(spec)
    }

    /// Adds a workflow run (or replaces one of that id: an artifact's run made with defaults,
    /// say). Its fork, if any, is added as a repository.
    pub fn add_run(&self, spec: FakeRunSpec) {
        self.shared.state.lock().unwrap().add_run(spec);
    }

    /// Re-runs run `id`: its `run_attempt` goes up by one (artifacts added to it from then on
    /// are the new attempt's).
    pub fn rerun(&self, id: u64) {
        self.shared.state.lock().unwrap().rerun(id);
    }

    /// Job `job` (its index in the run's jobs) of run `run`, in progress, finishes: its log
    /// can be downloaded (`.../actions/jobs/{id}/logs`), the run's archive not yet.
    pub fn finish_job(&self, run: u64, job: usize) {
        self.shared.state.lock().unwrap().finish_job(run, job);
    }

    /// Run `run` completes with `conclusion` (`success`, `failure`...): its log archive
    /// appears.
    pub fn complete_run(&self, run: u64, conclusion: &str) {
        self.shared
            .state
            .lock()
            .unwrap()
            .complete_run(run, conclusion);
    }

    /// The logs of run `run` are past retention: their downloads answer 410.
    pub fn expire_logs(&self, run: u64) {
        self.shared.state.lock().unwrap().logs.expired.insert(run);
    }

    /// Every file of attempt `attempt` of run `run`'s log archive, with its bytes, in
    /// archive order (whether or not the run has completed): what a test compares with.
    pub fn run_log_files(&self, run: u64, attempt: u32) -> Vec<(String, Vec<u8>)> {
        let st = self.shared.state.lock().unwrap();
        st.runs
            .get(&run)
            .map(|r| logs::originals(&r.spec, attempt))
            .unwrap_or_default()
    }

    /// The blob id of attempt `attempt` of run `run`'s log archive (what the blob fault
    /// switches and `blob_bytes_by_artifact` name it by), making it if need be.
    pub fn run_log_blob_id(&self, run: u64, attempt: u32) -> Option<u64> {
        (self.shared.state.lock().unwrap()).log_blob(logs::LogKey::Run(run, attempt))
    }

    /// The length of log blob `id` (see [`FakeGitHub::run_log_blob_id`]).
    pub fn log_blob_len(&self, id: u64) -> Option<u64> {
        let st = self.shared.state.lock().unwrap();
        st.logs.blobs.get(&id).map(|b| b.body.len() as u64)
    }

    /// The id of job `job` (index) of attempt `attempt` of run `run`.
    pub fn job_id(run: u64, attempt: u32, job: usize) -> u64 {
        run * 1000 + u64::from(attempt) * 100 + job as u64
    }

    /// Adds (or replaces) a pull request.
    pub fn add_pull(&self, spec: FakePullSpec) {
        self.shared.state.lock().unwrap().add_pull(spec);
    }

    /// Marks an artifact expired: still listed (`expired: true`), download 410.
    pub fn expire_artifact(&self, id: u64) {
        self.shared.state.lock().unwrap().expire(id);
    }

    /// Removes an artifact as if deleted elsewhere (not counted as a DELETE).
    pub fn remove_artifact(&self, id: u64) {
        self.shared.state.lock().unwrap().artifacts.remove(&id);
    }

    /// The artifact object as the API would show it.
    pub fn artifact(&self, id: u64) -> Option<Value> {
        let st = self.shared.state.lock().unwrap();
        let a = st.artifacts.get(&id)?;
        Some(st.artifact_json(a, &self.shared.api_url))
    }

    pub fn counters(&self) -> Counters {
        self.shared.state.lock().unwrap().counters.clone()
    }

    pub fn reset_counters(&self) {
        self.shared.state.lock().unwrap().counters = Counters::default();
    }

    /// Sets how much of `token`'s hourly quota (5000) is left in the current window (a token
    /// that spent most of it elsewhere).
    pub fn set_quota_remaining(&self, token: &str, remaining: u64) {
        let mut st = self.shared.state.lock().unwrap();
        let used = quota::QUOTA_AUTHENTICATED.saturating_sub(remaining);
        st.quota_used.insert(token.to_string(), used);
    }

    /// Replaces the fault switches (their "every N" counts restart).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.state.lock().unwrap().set_faults(faults);
    }

    /// Stops both listeners.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.stop_now();
    }
}
