//! The core's error type: every failure becomes one errno (docs/semantics.md, "Errors") plus a
//! message for the log.

use crate::archive::ArchiveError;
use crate::error::{SourceError, ToErrno};
use crate::github::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("read-only: {0}")]
    ReadOnly(&'static str),
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("no such attribute")]
    NoAttr,
    #[error("bad file handle")]
    BadHandle,
    #[error("GitHub: {0}")]
    Api(#[from] ApiError),
    #[error("archive: {0}")]
    Archive(#[from] ArchiveError),
    #[error("integrity: {0}")]
    Integrity(String),
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl ToErrno for FsError {
    fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::ReadOnly(_) => libc::EROFS,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NoAttr => libc::ENODATA,
            FsError::BadHandle => libc::EBADF,
            FsError::Api(e) => e.errno(),
            FsError::Archive(e) => e.errno(),
            FsError::Integrity(_) => libc::EIO,
            FsError::Source(e) => e.errno(),
            FsError::Io(e) => e.errno(),
        }
    }
}

impl FsError {
    /// The errno a user sees (see [`ToErrno`]; here so callers need no import).
    pub fn errno(&self) -> i32 {
        ToErrno::errno(self)
    }

    /// Errors a user causes in the ordinary course (not worth a warning in the log). A read
    /// without a token is one: the client says once that downloads need a token.
    pub fn is_ordinary(&self) -> bool {
        matches!(
            self,
            FsError::NotFound
                | FsError::ReadOnly(_)
                | FsError::NotEmpty
                | FsError::NotDir
                | FsError::IsDir
                | FsError::NoAttr
        ) || self.needs_token()
    }

    /// Whether this is a read refused for want of a token, at whichever layer it surfaced.
    pub fn needs_token(&self) -> bool {
        matches!(
            self,
            FsError::Api(ApiError::NeedsToken(_))
                | FsError::Source(SourceError::NeedsToken(_))
                | FsError::Archive(ArchiveError::Source(SourceError::NeedsToken(_)))
        )
    }
}

impl From<crate::data::DataError> for FsError {
    fn from(e: crate::data::DataError) -> FsError {
        use crate::data::DataError;
        match e {
            DataError::Integrity(m) => FsError::Integrity(m),
            DataError::Archive(a) => FsError::Archive(a),
            DataError::Source(e) => FsError::Source(e),
            DataError::Inflater(m) => FsError::Io(std::io::Error::other(m)),
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;
