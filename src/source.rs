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
    /// ignores `Range`): callers then take it by [`ByteSource::stream_whole`], once, instead
    /// of range by range. The read that learns it fails with [`SourceError::RangeIgnored`]
    /// (the whole body it was answered with is kept for the stream).
    fn whole_only(&self) -> bool {
        false
    }

    /// Forgets what it keeps of bytes `offset..offset + len` (cached copies, decoding state)
    /// after a check over them failed, so that the next read fetches them again: one refetch
    /// heals what a failed check touched. A source that keeps nothing does nothing.
    async fn forget(&self, _offset: u64, _len: u64) {}

    /// The whole blob from its first byte, piece by piece as it arrives (memory: one piece
    /// at a time). A transfer that breaks off is resumed by the source where it can be;
    /// this default reads it range by range.
    async fn stream_whole(&self) -> Result<Box<dyn ByteStream + '_>, SourceError> {
        Ok(Box::new(RangedStream { src: self, at: 0 }))
    }
}

/// A blob's bytes in file order (see [`ByteSource::stream_whole`]).
#[async_trait]
pub trait ByteStream: Send {
    /// The next piece; `None` after the last.
    async fn next(&mut self) -> Result<Option<Bytes>, SourceError>;
}

/// What a piece of [`RangedStream`] asks for.
const STREAM_PIECE: usize = 1 << 20;

/// A source read front to back in ranges.
struct RangedStream<'a, S: ?Sized> {
    src: &'a S,
    at: u64,
}

#[async_trait]
impl<S: ByteSource + ?Sized> ByteStream for RangedStream<'_, S> {
    async fn next(&mut self) -> Result<Option<Bytes>, SourceError> {
        if self.at >= self.src.len() {
            return Ok(None);
        }
        let b = self.src.read_at(self.at, STREAM_PIECE).await?;
        if b.is_empty() {
            return Ok(None);
        }
        self.at += b.len() as u64;
        Ok(Some(b))
    }
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
