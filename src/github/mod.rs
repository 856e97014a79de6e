//! The GitHub layer: typed REST client for the five artifact endpoints and the blob host.

pub mod error;
pub mod types;

pub use error::ApiError;
pub use types::{Artifact, ArtifactKind, ArtifactList, RepoRef, WorkflowRun};
