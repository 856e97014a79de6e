//! What the filesystem core needs from GitHub, as a trait: the real client implements it
//! (`GitHubRemote`), and core tests use an in-memory fake.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;

use crate::archive::ByteSource;
use crate::github::{ApiError, Artifact, ArtifactKind, RepoRef};

/// One artifact's blob: ranged reads (for the zip central directory and entries) and a
/// whole, streamed download (for `NAME.zip`, raw artifacts and small archives).
#[async_trait]
pub trait Blob: ByteSource {
    /// Streams the whole blob into `out`; returns (bytes written, sha256 hex of them).
    async fn download_to(&self, out: &mut tokio::fs::File) -> io::Result<(u64, String)>;
}

#[async_trait]
pub trait Remote: Send + Sync + 'static {
    /// Every artifact of the repository (all pages), expired ones included.
    async fn list_artifacts(&self, repo: &RepoRef) -> Result<Vec<Artifact>, ApiError>;
    /// One `DELETE`.
    async fn delete_artifact(&self, repo: &RepoRef, id: u64) -> Result<(), ApiError>;
    /// Zip or a raw file (costs a download redirect, no blob bytes).
    async fn artifact_kind(&self, repo: &RepoRef, id: u64) -> Result<ArtifactKind, ApiError>;
    /// A handle for reading the artifact's blob.
    fn blob(&self, repo: &RepoRef, artifact: &Artifact) -> Arc<dyn Blob>;
}
