//! What the filesystem core needs from GitHub, as a trait beside the client that implements
//! it ([`super::GitHubRemote`]); the core's tests use an in-memory one (`memory_remote`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::github::{
    ApiError, Artifact, ArtifactKind, Download, Job, PullRequest, RepoRef, Run, RunFilter,
    RunsPage, Workflow,
};
use crate::source::ByteSource;

/// A log's blob (a run's archive, a job's text): GitHub gives neither a length nor a digest
/// for it, so the first answer of the blob host tells the length (and an `ETag`, if any).
#[derive(Clone)]
pub struct LogBlob {
    pub len: u64,
    pub etag: Option<String>,
    /// Ranged reads of it.
    pub source: Arc<dyn ByteSource>,
}

/// The number that names a log's blob (in the cache, and in the test remotes' faults):
/// run archives and job logs each in a range of their own, apart from artifact ids.
pub fn log_blob_id(target: &Download) -> u64 {
    match target {
        Download::Artifact(id) => *id,
        Download::RunLogs { run, .. } => (1 << 62) | run,
        Download::JobLogs(job) => (1 << 61) | job,
    }
}

#[async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Every artifact of the repository (all pages), expired ones included.
    async fn list_artifacts(&self, repo: &RepoRef) -> Result<Vec<Artifact>, ApiError>;
    /// One `DELETE`.
    async fn delete_artifact(&self, repo: &RepoRef, id: u64) -> Result<(), ApiError>;
    /// Whether a user or organisation called `owner` exists (`GET /users/{owner}`).
    async fn owner_exists(&self, owner: &str) -> Result<bool, ApiError>;
    /// Whether downloads can be asked for at all (GitHub needs a token for them even for
    /// public repositories); without, no zip-or-raw probe is made.
    fn can_download(&self) -> bool {
        true
    }
    /// Zip or a raw file (costs a download redirect, no blob bytes).
    async fn artifact_kind(&self, repo: &RepoRef, id: u64) -> Result<ArtifactKind, ApiError>;
    /// Page `page` (from 1) of the repository's workflow runs, newest first, 100 a page
    /// (`GET .../actions/runs`, revalidated: an unchanged page costs no quota).
    async fn runs_page(
        &self,
        repo: &RepoRef,
        filter: &RunFilter,
        page: u32,
    ) -> Result<RunsPage, ApiError>;
    /// One run (`GET .../actions/runs/{id}`, revalidated).
    async fn get_run(&self, repo: &RepoRef, id: u64) -> Result<Run, ApiError>;
    /// The repository's workflows (`GET .../actions/workflows`).
    async fn list_workflows(&self, repo: &RepoRef) -> Result<Vec<Workflow>, ApiError>;
    /// A pull request (`GET .../pulls/{n}`, revalidated).
    async fn get_pull(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ApiError>;
    /// The jobs of a run's latest attempt (`GET .../runs/{id}/jobs`).
    async fn run_jobs(&self, repo: &RepoRef, run: u64) -> Result<Vec<Job>, ApiError>;
    /// A log's blob (`target` a run's logs or a job's): the download redirect and one request
    /// for its first byte, which tells the length. 404 while not there yet, 410 once expired.
    async fn log_blob(&self, repo: &RepoRef, target: &Download) -> Result<LogBlob, ApiError>;
    /// A log's blob whose length (and `ETag`) an earlier answer told (kept in the cache): no
    /// request until bytes are read, and then the redirect only for bytes not cached.
    /// `None`: this remote cannot, ask [`Remote::log_blob`].
    fn known_log_blob(
        &self,
        _repo: &RepoRef,
        _target: &Download,
        _len: u64,
        _etag: Option<String>,
    ) -> Option<LogBlob> {
        None
    }
    /// The artifact's blob as ranged reads (the block cache sits in front of it).
    fn blob(&self, repo: &RepoRef, artifact: &Artifact) -> Arc<dyn ByteSource>;
}
