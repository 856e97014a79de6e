//! What the filesystem core needs from GitHub, as a trait beside the client that implements
//! it ([`super::GitHubRemote`]); the core's tests use an in-memory one (`memory_remote`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::github::{
    ApiError, Artifact, ArtifactKind, PullRequest, RepoRef, Run, RunFilter, RunsPage, Workflow,
};
use crate::source::ByteSource;

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
    /// The artifact's blob as ranged reads (the block cache sits in front of it).
    fn blob(&self, repo: &RepoRef, artifact: &Artifact) -> Arc<dyn ByteSource>;
}
