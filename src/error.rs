//! The one home of errnos: [`ToErrno`], the trait every error a user can meet implements
//! (docs/semantics.md, "Errors": not found → ENOENT, refused → EACCES, everything that failed
//! after retries or a check → EIO), the one `io::Error` → errno rule, and [`SourceError`], the
//! typed error of a ranged read ([`crate::source::ByteSource::read_at`]) that the GitHub
//! client, the cache and the archive layer share, so no layer has to downcast to learn what
//! happened.

use std::io;

/// The errno a user sees for an error.
pub trait ToErrno {
    fn errno(&self) -> i32;
}

impl ToErrno for io::Error {
    fn errno(&self) -> i32 {
        match self.kind() {
            io::ErrorKind::NotFound => libc::ENOENT,
            io::ErrorKind::PermissionDenied => libc::EACCES,
            _ => self.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// Why a ranged read of a blob failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The blob is gone or never was (404, 410).
    #[error("not found: {0}")]
    NotFound(String),
    /// Refused (bad credentials, forbidden, a signed URL that stayed forbidden).
    #[error("refused: {0}")]
    Denied(String),
    /// A download asked for without a token (GitHub needs one even for public
    /// repositories): nothing was sent. Ordinary, not worth a warning.
    #[error("downloads need a token (GH_TOKEN): {0}")]
    NeedsToken(String),
    /// The remote failed after retries (network, 5xx, rate limit, an answer we could not
    /// understand).
    #[error("{0}")]
    Remote(String),
    /// The bytes failed a check (a short body, the digest).
    #[error("integrity: {0}")]
    Integrity(String),
    /// A speculative request (readahead) not sent: its quota budget is spent
    /// (`stats::quota`). Never a read someone made.
    #[error("not sent: {0}")]
    Budget(String),
    /// The local cache file.
    #[error("cache file: {0}")]
    Cache(#[from] io::Error),
    /// The host answered a ranged read with the whole blob: from now on the source is read
    /// by its whole stream (`ByteSource::stream_whole`). The data layer takes it; a user
    /// never sees it (EIO if one did).
    #[error("the blob host ignores Range")]
    RangeIgnored,
}

impl ToErrno for SourceError {
    fn errno(&self) -> i32 {
        match self {
            SourceError::NotFound(_) => libc::ENOENT,
            SourceError::Denied(_) | SourceError::NeedsToken(_) => libc::EACCES,
            SourceError::Remote(_)
            | SourceError::Integrity(_)
            | SourceError::Budget(_)
            | SourceError::RangeIgnored => libc::EIO,
            SourceError::Cache(e) => e.errno(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_by_kind_then_os_error() {
        assert_eq!(
            io::Error::from(io::ErrorKind::NotFound).errno(),
            libc::ENOENT
        );
        assert_eq!(
            io::Error::from(io::ErrorKind::PermissionDenied).errno(),
            libc::EACCES
        );
        assert_eq!(
            io::Error::from_raw_os_error(libc::ENOSPC).errno(),
            libc::ENOSPC
        );
        assert_eq!(io::Error::other("x").errno(), libc::EIO);
    }

    #[test]
    fn source_errors_map_to_the_contracts_errnos() {
        assert_eq!(SourceError::NotFound("a".into()).errno(), libc::ENOENT);
        assert_eq!(SourceError::NeedsToken("a".into()).errno(), libc::EACCES);
        assert_eq!(SourceError::Denied("a".into()).errno(), libc::EACCES);
        assert_eq!(SourceError::Remote("a".into()).errno(), libc::EIO);
        assert_eq!(SourceError::Integrity("a".into()).errno(), libc::EIO);
    }
}
