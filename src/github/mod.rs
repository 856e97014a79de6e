//! The GitHub layer: typed REST client for the artifact endpoints, runs, workflows and pulls (API host, with the
//! token) and the blob host (signed URLs, no token), with pagination, retries and rate limits.

pub mod auth;
pub mod blob;
pub mod blob_headers;
pub mod body;
pub mod client;
pub mod error;
pub mod link;
pub mod redact;
pub mod retry;
pub mod runs;
pub mod types;

pub use error::ApiError;
pub use runs::{PullRequest, Run, RunFilter, RunsPage, Workflow};
pub use types::{Artifact, ArtifactKind, ArtifactList, RepoRef, WorkflowRun};
