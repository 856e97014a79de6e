//! The one interface every byte of a blob goes through: a ranged byte source.
//!
//! The GitHub client implements it (ranged reads of the blob host), the data layer wraps one
//! in the disk block cache and implements it again, and the zip layer reads only through it,
//! so the archive code never sees HTTP, the cache or files.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::SourceError;

#[async_trait]
pub trait ByteSource: Send + Sync {
    /// Total length of the blob in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `len` bytes at `offset`. Returns fewer bytes only when the range runs past the end.
    /// The error says what failed (see [`SourceError`]; its errno is what the user sees).
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError>;

    /// True once the source has learnt that it can only serve the whole blob (a host that
    /// ignores `Range`): callers then fetch everything once instead of range by range.
    fn whole_only(&self) -> bool {
        false
    }

    /// Forgets what it keeps of bytes `offset..offset + len` (cached copies, decoding state)
    /// after a check over them failed, so that the next read fetches them again: one refetch
    /// heals what a failed check touched. A source that keeps nothing does nothing.
    async fn forget(&self, _offset: u64, _len: u64) {}
}

/// An in-memory source, for tests and for blobs small enough to hold whole.
pub struct MemorySource(pub Bytes);

#[async_trait]
impl ByteSource for MemorySource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let start = (offset.min(self.0.len() as u64)) as usize;
        let end = start.saturating_add(len).min(self.0.len());
        Ok(self.0.slice(start..end))
    }
}
