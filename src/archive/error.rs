//! Errors of the archive layer and the errno each one becomes.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The byte source failed (network, cache file).
    #[error("reading archive: {0}")]
    Source(#[from] io::Error),
    /// The bytes are not a valid zip, or disagree with themselves (CRC, sizes, offsets).
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    /// Valid but not readable by us: encryption, an unknown compression method.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl ArchiveError {
    pub fn errno(&self) -> i32 {
        match self {
            ArchiveError::Source(e) => match e.kind() {
                io::ErrorKind::NotFound => libc::ENOENT,
                io::ErrorKind::PermissionDenied => libc::EACCES,
                _ => e.raw_os_error().unwrap_or(libc::EIO),
            },
            ArchiveError::Corrupt(_) => libc::EIO,
            ArchiveError::Unsupported(_) => libc::ENOTSUP,
        }
    }
}

pub(crate) fn corrupt(msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt(msg.into())
}
