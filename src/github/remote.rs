//! What the filesystem core needs from GitHub, as a trait beside the client that implements
//! it ([`super::GitHubRemote`]); the core's tests use an in-memory one (`memory_remote`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::github::{ApiError, Artifact, ArtifactKind, RepoRef};
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
    /// The artifact's blob as ranged reads (the block cache sits in front of it).
    fn blob(&self, repo: &RepoRef, artifact: &Artifact) -> Arc<dyn ByteSource>;
}
