//! Errors of the archive layer and the errno each one becomes.

use std::io;

use crate::error::{SourceError, ToErrno};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The byte source failed (network, cache file).
    #[error("reading archive: {0}")]
    Source(#[from] SourceError),
    /// The bytes are not a valid zip, or disagree with themselves (CRC, sizes, offsets).
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    /// Writing what was read failed (the caller's sink).
    #[error("writing: {0}")]
    Write(#[from] io::Error),
    /// Valid but not readable by us: encryption, an unknown compression method.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl ToErrno for ArchiveError {
    fn errno(&self) -> i32 {
        match self {
            ArchiveError::Source(e) => e.errno(),
            ArchiveError::Write(e) => e.errno(),
            ArchiveError::Corrupt(_) => libc::EIO,
            ArchiveError::Unsupported(_) => libc::ENOTSUP,
        }
    }
}

pub(crate) fn corrupt(msg: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt(msg.into())
}
