//! The GitHub layer: typed REST client for the artifact endpoints, runs, workflows and pulls (API host, with the
//! token) and the blob host (signed URLs, no token), with pagination, retries and rate limits.

pub mod auth;
pub mod blob;
pub mod blob_headers;
pub mod body;
pub mod client;
pub mod client_remote;
pub mod error;
#[cfg(test)]
pub mod failing_remote;
pub mod link;
#[cfg(test)]
pub mod memory_remote;
pub mod redact;
pub mod remote;
pub mod retry;
pub mod runs;
pub mod types;

pub use client_remote::GitHubRemote;
pub use error::ApiError;
pub use remote::Remote;
pub use runs::{PullRequest, Run, RunFilter, RunsPage, Workflow};
pub use types::{Artifact, ArtifactKind, ArtifactList, RepoRef, WorkflowRun};
