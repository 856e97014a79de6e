//! Errors of the GitHub layer (API and blob host), the errno each one becomes, and what a
//! blob read's failure says to the layers above ([`SourceError`]).

use crate::error::{SourceError, ToErrno};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 404, or a repository the token can't see.
    #[error("not found: {0}")]
    NotFound(String),
    /// 410: the artifact expired.
    #[error("gone (expired): {0}")]
    Gone(String),
    /// 401 bad credentials.
    #[error("unauthorized (bad credentials): {0}")]
    Unauthorized(String),
    /// A download asked for without a token (GitHub needs one even for public
    /// repositories): nothing was sent.
    #[error("downloads need a token (GH_TOKEN): {0}")]
    NeedsToken(String),
    /// 403 that is not a rate limit, or a blob URL that stayed forbidden after a refresh.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Rate limited past the wait budget.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// 5xx after retries.
    #[error("server error {status}: {what}")]
    Server { status: u16, what: String },
    /// Connection failures, timeouts, truncated bodies after retries.
    #[error("network: {0}")]
    Network(String),
    /// A speculative request (readahead) not sent: the quota budget for speculation is
    /// spent (see `stats::quota`). Never a request someone made.
    #[error("not sent: the quota budget for readahead is spent: {0}")]
    Budget(String),
    /// A response we could not understand (bad JSON, missing Location, ...).
    #[error("protocol: {0}")]
    Protocol(String),
}

impl ToErrno for ApiError {
    /// The errno a user sees for this error (docs/semantics.md, "Errors").
    fn errno(&self) -> i32 {
        match self {
            ApiError::NotFound(_) | ApiError::Gone(_) => libc::ENOENT,
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) | ApiError::NeedsToken(_) => {
                libc::EACCES
            }
            ApiError::RateLimited(_)
            | ApiError::Server { .. }
            | ApiError::Network(_)
            | ApiError::Budget(_)
            | ApiError::Protocol(_) => libc::EIO,
        }
    }
}

impl From<ApiError> for SourceError {
    fn from(e: ApiError) -> SourceError {
        let what = e.to_string();
        match e {
            ApiError::NotFound(_) | ApiError::Gone(_) => SourceError::NotFound(what),
            ApiError::NeedsToken(m) => SourceError::NeedsToken(m),
            ApiError::Budget(m) => SourceError::Budget(m),
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) => SourceError::Denied(what),
            ApiError::RateLimited(_)
            | ApiError::Server { .. }
            | ApiError::Network(_)
            | ApiError::Protocol(_) => SourceError::Remote(what),
        }
    }
}
