//! An in-memory GitHub for the core's tests: artifacts with their bodies, runs, workflows and
//! pull requests, counters of what was asked, and a latency (a slow remote), so the core's
//! behaviour (docs/semantics.md) is tested without FUSE or HTTP. What goes wrong on demand
//! (errors, a byte changed in flight) is [`super::failing_remote`]'s, around this one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::SourceError;
use crate::github::runs::RepoId;
use crate::github::{
    ApiError, Artifact, ArtifactKind, Download, Job, LogBlob, PullRequest, Remote, RepoRef, Run,
    RunFilter, RunsPage, Workflow, WorkflowRun, log_blob_id,
};
use crate::source::ByteSource;

struct MemArtifact {
    repo: (String, String),
    artifact: Artifact,
    body: Bytes,
    kind: ArtifactKind,
}

#[derive(Default)]
pub struct MemoryRemote {
    /// How long every listing, probe and blob read takes (a slow remote; calls are counted in
    /// flight meanwhile).
    pub latency: Mutex<Option<Duration>>,
    arts: Mutex<Vec<MemArtifact>>,
    pub list_calls: AtomicU64,
    pub kind_calls: AtomicU64,
    /// Kind probes running now, and the most at once.
    pub kind_in_flight: AtomicU64,
    pub kind_in_flight_max: AtomicU64,
    pub owner_calls: AtomicU64,
    /// Users and organisations that exist without artifacts.
    pub users: Mutex<Vec<String>>,
    pub deletes: AtomicU64,
    pub blob_bytes: Arc<AtomicU64>,
    /// Every blob read answered: (artifact id, start, end).
    pub blob_reads: Arc<Mutex<Vec<(u64, u64, u64)>>>,
    /// Ranged blob reads running now, and the most at once.
    pub blob_reads_in_flight: Arc<(AtomicU64, AtomicU64)>,
    /// Workflow runs (newest first as listed: by id, descending), workflows, pull requests.
    pub runs: Mutex<Vec<Run>>,
    pub workflows: Mutex<Vec<Workflow>>,
    pub pulls: Mutex<Vec<PullRequest>>,
    /// Requests to the runs list (each page), a run, the workflows, a pull request.
    pub runs_page_calls: AtomicU64,
    pub run_calls: AtomicU64,
    pub workflow_calls: AtomicU64,
    pub pull_calls: AtomicU64,
    /// Runs a page of the runs list holds (GitHub: up to 100).
    pub runs_per_page: Mutex<Option<usize>>,
    /// Log archives by (run, attempt); a run's jobs; finished jobs' logs; runs whose logs
    /// expired (410).
    pub logs: Mutex<std::collections::HashMap<(u64, u32), Bytes>>,
    pub jobs: Mutex<std::collections::HashMap<u64, Vec<Job>>>,
    pub job_logs: Mutex<std::collections::HashMap<u64, Bytes>>,
    pub gone_logs: Mutex<std::collections::HashSet<u64>>,
    /// Log downloads asked for (each a redirect and a first byte), job lists asked for.
    pub log_calls: AtomicU64,
    pub job_calls: AtomicU64,
    /// What the quota budget of speculation reads (the rate limit) and counts, as the real
    /// client's: probes are admitted as it admits requests.
    pub quota: Arc<crate::stats::Stats>,
    /// The blob host ignores `Range` (answers every read with the whole blob), and what
    /// whole downloads it served.
    pub whole_only: Arc<WholeOnly>,
}

/// A blob host that ignores `Range`, as some GHES storage does: a ranged read learns it
/// (its answer is the whole blob, taken by the download that follows, as the real client
/// does), then blobs come by whole downloads only, counted.
#[derive(Default)]
pub struct WholeOnly {
    pub on: std::sync::atomic::AtomicBool,
    /// Whole downloads started, running now, and the most at once.
    pub downloads: AtomicU64,
    pub in_flight: AtomicU64,
    pub in_flight_max: AtomicU64,
}

struct MemBlob {
    id: u64,
    body: Bytes,
    served: Arc<AtomicU64>,
    reads: Arc<Mutex<Vec<(u64, u64, u64)>>>,
    latency: Option<Duration>,
    in_flight: Arc<(AtomicU64, AtomicU64)>,
    host: Arc<WholeOnly>,
    /// A read was answered whole: this source knows the host ignores `Range`.
    learnt: std::sync::atomic::AtomicBool,
}

impl MemoryRemote {
    fn mem_blob(&self, id: u64, body: Bytes) -> MemBlob {
        MemBlob {
            id,
            body,
            served: self.blob_bytes.clone(),
            reads: self.blob_reads.clone(),
            latency: *self.latency.lock().unwrap(),
            in_flight: self.blob_reads_in_flight.clone(),
            host: self.whole_only.clone(),
            learnt: Default::default(),
        }
    }
}

/// One whole download of a [`MemBlob`], in 64 KiB pieces.
struct MemDownload<'a> {
    blob: &'a MemBlob,
    at: usize,
}

impl Drop for MemDownload<'_> {
    fn drop(&mut self) {
        self.blob.host.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl crate::source::ByteStream for MemDownload<'_> {
    async fn next(&mut self) -> Result<Option<Bytes>, SourceError> {
        let b = &self.blob.body;
        if self.at >= b.len() {
            return Ok(None);
        }
        tokio::task::yield_now().await; // a network: other tasks run between pieces
        let end = (self.at + (64 << 10)).min(b.len());
        let piece = b.slice(self.at..end);
        (self.blob.served).fetch_add(piece.len() as u64, Ordering::SeqCst);
        (self.blob.reads.lock().unwrap()).push((self.blob.id, self.at as u64, end as u64));
        self.at = end;
        Ok(Some(piece))
    }
}

#[async_trait]
impl ByteSource for MemBlob {
    fn len(&self) -> u64 {
        self.body.len() as u64
    }

    fn whole_only(&self) -> bool {
        self.learnt.load(Ordering::SeqCst)
    }

    async fn stream_whole(&self) -> Result<Box<dyn crate::source::ByteStream + '_>, SourceError> {
        if let Some(d) = self.latency {
            tokio::time::sleep(d).await;
        }
        let h = &self.host;
        h.downloads.fetch_add(1, Ordering::SeqCst);
        let now = h.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        h.in_flight_max.fetch_max(now, Ordering::SeqCst);
        Ok(Box::new(MemDownload { blob: self, at: 0 }))
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let (now, max) = &*self.in_flight;
        max.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        if let Some(d) = self.latency {
            tokio::time::sleep(d).await;
        }
        now.fetch_sub(1, Ordering::SeqCst);
        if self.host.on.load(Ordering::SeqCst) {
            self.learnt.store(true, Ordering::SeqCst);
            return Err(SourceError::RangeIgnored);
        }
        let start = (offset as usize).min(self.body.len());
        let end = (start + len).min(self.body.len());
        self.served
            .fetch_add((end - start) as u64, Ordering::SeqCst);
        (self.reads.lock().unwrap()).push((self.id, start as u64, end as u64));
        Ok(self.body.slice(start..end))
    }
}

#[async_trait]
impl Remote for MemoryRemote {
    async fn list_artifacts(&self, repo: &RepoRef) -> Result<Vec<Artifact>, ApiError> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        let latency = *self.latency.lock().unwrap();
        if let Some(d) = latency {
            tokio::time::sleep(d).await;
        }
        let arts = self.arts.lock().unwrap();
        let key = repo.key();
        let v: Vec<Artifact> = arts
            .iter()
            .filter(|a| a.repo == key)
            .map(|a| a.artifact.clone())
            .collect();
        if v.is_empty() && key.1 != "empty" {
            return Err(ApiError::NotFound(repo.to_string()));
        }
        Ok(v)
    }

    async fn delete_artifact(&self, _repo: &RepoRef, id: u64) -> Result<(), ApiError> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.arts.lock().unwrap().retain(|a| a.artifact.id != id);
        Ok(())
    }

    async fn owner_exists(&self, owner: &str) -> Result<bool, ApiError> {
        self.owner_calls.fetch_add(1, Ordering::SeqCst);
        let arts = self.arts.lock().unwrap();
        let users = self.users.lock().unwrap();
        Ok(users.iter().any(|u| u.eq_ignore_ascii_case(owner))
            || arts.iter().any(|a| a.repo.0.eq_ignore_ascii_case(owner)))
    }

    async fn artifact_kind(&self, _repo: &RepoRef, id: u64) -> Result<ArtifactKind, ApiError> {
        if !crate::stats::quota::admit(&self.quota) {
            return Err(ApiError::Budget(format!("probe of {id}")));
        }
        let _counted = self.quota.api_request();
        self.kind_calls.fetch_add(1, Ordering::SeqCst);
        let now = self.kind_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.kind_in_flight_max.fetch_max(now, Ordering::SeqCst);
        let latency = *self.latency.lock().unwrap();
        if let Some(d) = latency {
            tokio::time::sleep(d).await;
        }
        self.kind_in_flight.fetch_sub(1, Ordering::SeqCst);
        let arts = self.arts.lock().unwrap();
        arts.iter()
            .find(|a| a.artifact.id == id)
            .map(|a| a.kind.clone())
            .ok_or_else(|| ApiError::NotFound(id.to_string()))
    }

    async fn runs_page(
        &self,
        _repo: &RepoRef,
        filter: &RunFilter,
        page: u32,
    ) -> Result<RunsPage, ApiError> {
        self.runs_page_calls.fetch_add(1, Ordering::SeqCst);
        let per_page = self.runs_per_page.lock().unwrap().unwrap_or(100);
        let mut runs: Vec<Run> = (self.runs.lock().unwrap().iter())
            .filter(|r| filter.head_sha.is_none() || r.head_sha == filter.head_sha)
            .filter(|r| filter.branch.is_none() || r.head_branch == filter.branch)
            .cloned()
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.id));
        let start = (page.max(1) as usize - 1) * per_page;
        let more = runs.len() > start + per_page;
        Ok(RunsPage {
            runs: runs.into_iter().skip(start).take(per_page).collect(),
            more,
        })
    }

    async fn get_run(&self, _repo: &RepoRef, id: u64) -> Result<Run, ApiError> {
        self.run_calls.fetch_add(1, Ordering::SeqCst);
        (self.runs.lock().unwrap().iter())
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("run {id}")))
    }

    async fn list_workflows(&self, _repo: &RepoRef) -> Result<Vec<Workflow>, ApiError> {
        self.workflow_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.workflows.lock().unwrap().clone())
    }

    async fn get_pull(&self, _repo: &RepoRef, number: u64) -> Result<PullRequest, ApiError> {
        self.pull_calls.fetch_add(1, Ordering::SeqCst);
        (self.pulls.lock().unwrap().iter())
            .find(|p| p.number == number)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("pull {number}")))
    }

    async fn run_jobs(&self, _repo: &RepoRef, run: u64) -> Result<Vec<Job>, ApiError> {
        self.job_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .jobs
            .lock()
            .unwrap()
            .get(&run)
            .cloned()
            .unwrap_or_default())
    }

    async fn log_blob(&self, _repo: &RepoRef, target: &Download) -> Result<LogBlob, ApiError> {
        self.log_calls.fetch_add(1, Ordering::SeqCst);
        let latency = *self.latency.lock().unwrap();
        if let Some(d) = latency {
            tokio::time::sleep(d).await;
        }
        let body = self.log_body(target)?;
        Ok(LogBlob {
            len: body.len() as u64,
            etag: None,
            source: self.log_source(target, body),
        })
    }

    fn known_log_blob(
        &self,
        _repo: &RepoRef,
        target: &Download,
        len: u64,
        etag: Option<String>,
    ) -> Option<LogBlob> {
        let body = self.log_body(target).unwrap_or_default();
        Some(LogBlob {
            len,
            etag,
            source: self.log_source(target, body),
        })
    }

    fn blob(&self, _repo: &RepoRef, artifact: &Artifact) -> Arc<dyn ByteSource> {
        let arts = self.arts.lock().unwrap();
        let body = arts
            .iter()
            .find(|a| a.artifact.id == artifact.id)
            .map(|a| a.body.clone())
            .unwrap_or_default();
        drop(arts);
        Arc::new(self.mem_blob(artifact.id, body))
    }
}

/// The id of `octo/hello` in the in-memory remote (a fork's runs carry another head
/// repository id).
pub const MEMORY_REPO_ID: u64 = 1;

/// A run of `octo/hello` for the in-memory remote: workflow file `workflow`, `conclusion`,
/// on `branch` at `sha`, of the repository itself.
pub fn mem_run(id: u64, workflow: &str, conclusion: &str, branch: &str, sha: &str) -> Run {
    Run {
        id,
        name: Some(workflow.trim_end_matches(".yml").to_uppercase()),
        path: Some(format!(".github/workflows/{workflow}")),
        event: Some("push".into()),
        status: Some("completed".into()),
        conclusion: Some(conclusion.into()),
        head_branch: Some(branch.into()),
        head_sha: Some(sha.into()),
        run_attempt: Some(1),
        html_url: Some(format!("https://github.com/octo/hello/actions/runs/{id}")),
        repository: Some(RepoId { id: MEMORY_REPO_ID }),
        head_repository: Some(RepoId { id: MEMORY_REPO_ID }),
        ..Default::default()
    }
}

impl MemoryRemote {
    /// A log's bytes as the in-memory GitHub has them (404 while absent, 410 once gone).
    fn log_body(&self, target: &Download) -> Result<Bytes, ApiError> {
        let (run, body) = match target {
            Download::RunLogs { run, attempt } => {
                let attempt = match attempt {
                    Some(n) => *n,
                    None => (self.runs.lock().unwrap().iter())
                        .find(|r| r.id == *run)
                        .map_or(1, |r| r.attempt()),
                };
                (
                    Some(*run),
                    self.logs.lock().unwrap().get(&(*run, attempt)).cloned(),
                )
            }
            Download::JobLogs(job) => {
                let run = (self.jobs.lock().unwrap().iter())
                    .find(|(_, jobs)| jobs.iter().any(|j| j.id == *job))
                    .map(|(r, _)| *r);
                (run, self.job_logs.lock().unwrap().get(job).cloned())
            }
            Download::Artifact(_) => (None, None),
        };
        if run.is_some_and(|r| self.gone_logs.lock().unwrap().contains(&r)) {
            return Err(ApiError::Gone(format!("{target}: 410")));
        }
        body.ok_or_else(|| ApiError::NotFound(format!("{target}: 404")))
    }

    fn log_source(&self, target: &Download, body: Bytes) -> Arc<dyn ByteSource> {
        Arc::new(self.mem_blob(log_blob_id(target), body))
    }

    /// Adds a run; artifacts of it (added before or after) take its branch, sha and head
    /// repository.
    pub fn add_run(&self, run: Run) {
        let mut arts = self.arts.lock().unwrap();
        for a in arts.iter_mut() {
            if let Some(w) = a.artifact.workflow_run.as_mut()
                && w.id == Some(run.id)
            {
                w.head_branch = run.head_branch.clone();
                w.head_sha = run.head_sha.clone();
                w.head_repository_id = run.head_repository.as_ref().map(|r| r.id);
            }
        }
        let mut runs = self.runs.lock().unwrap();
        runs.retain(|r| r.id != run.id);
        runs.push(run);
    }

    /// Makes artifact `id` the build of a fork's pull request: its run's head repository is
    /// `head_repository_id`, not the repository.
    pub fn from_fork(&self, id: u64, head_repository_id: u64) {
        let mut arts = self.arts.lock().unwrap();
        if let Some(a) = arts.iter_mut().find(|a| a.artifact.id == id)
            && let Some(r) = a.artifact.workflow_run.as_mut()
        {
            r.head_repository_id = Some(head_repository_id);
        }
    }

    /// Sets artifact `id`'s `created_at` (a re-run's attempt made later, say).
    pub fn set_created_at(&self, id: u64, created_at: &str) {
        let mut arts = self.arts.lock().unwrap();
        if let Some(a) = arts.iter_mut().find(|a| a.artifact.id == id) {
            a.artifact.created_at = Some(created_at.into());
        }
    }

    /// Serves other bytes for artifact `id` than its digest says (a tampered blob).
    pub fn replace_body(&self, id: u64, body: Bytes) {
        let mut arts = self.arts.lock().unwrap();
        if let Some(a) = arts.iter_mut().find(|a| a.artifact.id == id) {
            a.body = body;
        }
    }

    /// Changes what the API says about artifact `id` (from the next listing on).
    pub fn edit(&self, id: u64, change: impl FnOnce(&mut Artifact)) {
        let mut arts = self.arts.lock().unwrap();
        if let Some(a) = arts.iter_mut().find(|a| a.artifact.id == id) {
            change(&mut a.artifact);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &self,
        id: u64,
        name: &str,
        run: u64,
        branch: &str,
        day: u32,
        body: impl Into<Bytes>,
        kind: ArtifactKind,
    ) {
        let body: Bytes = body.into();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        self.arts.lock().unwrap().push(MemArtifact {
            repo: ("octo".into(), "hello".into()),
            artifact: Artifact {
                id,
                node_id: None,
                name: name.into(),
                size_in_bytes: body.len() as u64,
                url: None,
                archive_download_url: None,
                expired: false,
                created_at: Some(format!("2024-01-{day:02}T00:00:00Z")),
                expires_at: Some("2024-04-01T00:00:00Z".into()),
                updated_at: None,
                digest: Some(digest),
                workflow_run: Some(WorkflowRun {
                    id: Some(run),
                    repository_id: Some(MEMORY_REPO_ID),
                    head_repository_id: Some(MEMORY_REPO_ID),
                    head_branch: Some(branch.into()),
                    head_sha: Some("abc".into()),
                }),
            },
            body,
            kind,
        });
        let known = self
            .runs
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.id == run)
            .cloned();
        if let Some(r) = known {
            self.add_run(r);
        }
    }
}
