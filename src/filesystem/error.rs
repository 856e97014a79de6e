//! The core's error type: every failure becomes one errno (the contract's table) plus a
//! message for the log.

use crate::archive::ArchiveError;
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
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl FsError {
    pub fn errno(&self) -> i32 {
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
            FsError::Io(e) => match e.kind() {
                std::io::ErrorKind::NotFound => libc::ENOENT,
                std::io::ErrorKind::PermissionDenied => libc::EACCES,
                _ => e.raw_os_error().unwrap_or(libc::EIO),
            },
        }
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

    /// Whether this is a read refused for want of a token, however the layers wrapped it.
    pub fn needs_token(&self) -> bool {
        fn io_needs_token(e: &std::io::Error) -> bool {
            let mut inner = e.get_ref();
            while let Some(i) = inner {
                if let Some(a) = i.downcast_ref::<ApiError>() {
                    return matches!(a, ApiError::NeedsToken(_));
                }
                inner = i.downcast_ref::<std::io::Error>().and_then(|e| e.get_ref());
            }
            false
        }
        match self {
            FsError::Api(a) => matches!(a, ApiError::NeedsToken(_)),
            FsError::Io(e) | FsError::Archive(ArchiveError::Source(e)) => io_needs_token(e),
            _ => false,
        }
    }
}

impl From<crate::data::DataError> for FsError {
    fn from(e: crate::data::DataError) -> FsError {
        use crate::data::DataError;
        match e {
            DataError::Integrity(m) => FsError::Integrity(m),
            DataError::Archive(a) => FsError::Archive(a),
            DataError::Io(io) => FsError::Io(io),
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;
