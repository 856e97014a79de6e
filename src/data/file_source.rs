//! An open file's bytes as a ranged byte source ([`FileSource`]): how an archive inside an
//! artifact is read. Every read goes through the file's [`FileReader`], so the bytes come
//! through the same cache, readahead, inflater and checks as a `cat` of the file would (a
//! pass through the whole file completes its CRC check; a failed check is an error here too).
//! A reader that saw a failure refuses from then on, as any handle does: its owner replaces
//! it with a fresh one, which is allowed the one refetch.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;

use super::{DataError, FileReader};
use crate::archive::ArchiveError;
use crate::error::SourceError;
use crate::source::ByteSource;

/// Most bytes asked of the reader at once.
const STEP: u64 = 1 << 20;

pub struct FileSource {
    reader: RwLock<Arc<FileReader>>,
}

impl FileSource {
    pub fn new(reader: Arc<FileReader>) -> FileSource {
        FileSource {
            reader: RwLock::new(reader),
        }
    }

    fn reader(&self) -> Arc<FileReader> {
        self.reader.read().unwrap().clone()
    }

    /// Whether the file's reader refuses every read (see [`FileReader::refuses`]).
    pub fn refuses(&self) -> bool {
        self.reader().refuses()
    }

    /// Reads through `reader` from now on (a fresh handle of the same file).
    pub fn replace(&self, reader: Arc<FileReader>) {
        *self.reader.write().unwrap() = reader;
    }
}

/// What a failed read of a file is to the reader of an archive inside it.
pub fn source_error(e: DataError) -> SourceError {
    match e {
        DataError::Integrity(m) | DataError::Archive(ArchiveError::Corrupt(m)) => {
            SourceError::Integrity(m)
        }
        DataError::Archive(ArchiveError::Source(e)) | DataError::Source(e) => e,
        DataError::Archive(ArchiveError::Write(e)) => SourceError::Cache(e),
        DataError::Archive(e @ ArchiveError::Unsupported(_)) => SourceError::Remote(e.to_string()),
        DataError::Inflater(m) => SourceError::Remote(m),
    }
}

#[async_trait]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.reader().size()
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let reader = self.reader();
        let end = offset.saturating_add(len as u64).min(reader.size());
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let n = (end - at).min(STEP) as u32;
            let b = reader.read(at, n).await.map_err(source_error)?;
            if b.is_empty() {
                break;
            }
            at += b.len() as u64;
            out.extend_from_slice(&b);
        }
        Ok(Bytes::from(out))
    }

    async fn forget(&self, offset: u64, len: u64) {
        self.reader().forget(offset, len).await;
    }
}
