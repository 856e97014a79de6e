//! Where a blob's fetched bytes are kept: its block file (each block with the checksum it got
//! on arrival), the cache's accounting, and the seal pass that hashes them for the digest.
//! Cheap to clone, so that a download running on its own task (see `whole_download`) stores
//! blocks exactly as a ranged fetch does.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::seal::SealPass;
use super::verify::Integrity;
use crate::cache::{BlobKey, BlockFile, BlocksStored, DiskCache};

/// How many cached blocks after those just stored a store hashes for the seal itself; the
/// seal pass goes on over the rest in the background.
const SEAL_INLINE: u64 = 16;

/// What storing fetched blocks came to.
pub enum Stored {
    Kept,
    /// Not kept (the cache could not write them, or had no room for them beside what
    /// reads in flight pin): the reader goes to the network.
    NotKept,
    /// These blocks differ from their sealed checksums: not stored.
    Mismatch(Vec<u64>),
}

/// A block of a sealed blob fetched twice and wrong both times.
pub fn mismatch_error(what: &str, i: u64) -> crate::error::SourceError {
    crate::error::SourceError::Integrity(format!(
        "{what}: block {i} fetched twice, neither matches its sealed checksum"
    ))
}

/// One blob's place in the cache.
#[derive(Clone)]
pub struct BlockStore {
    pub cache: Arc<DiskCache>,
    pub key: BlobKey,
    /// `None` when the cache could not even create the blob's files: every read goes to
    /// the network.
    pub file: Option<Arc<BlockFile>>,
    /// The verdict on the whole blob, when its digest is known.
    pub whole: Option<Arc<Integrity>>,
    /// The background check of the digest that seals the block checksums.
    pub seal: Arc<SealPass>,
}

impl BlockStore {
    /// Writes consecutive blocks starting at `first` (off the async threads), each with its
    /// checksum, in room the cache reserves for them first ([`DiskCache::store_blocks`]); a
    /// write that fails pauses the cache. Blocks that differ from their sealed checksums are
    /// not stored. What was stored is handed to the seal pass.
    pub async fn store(&self, file: &Arc<BlockFile>, first: u64, bytes: Bytes) -> Stored {
        let f = file.clone();
        let cache = self.cache.clone();
        let key = self.key.clone();
        let seal = self.whole.clone().map(|w| (w, self.seal.clone()));
        let stored = tokio::task::spawn_blocking(move || -> io::Result<BlocksStored> {
            let stored = cache.store_blocks(&key, &f, first, &bytes)?;
            if let (BlocksStored::Written { bad }, Some((whole, pass))) = (&stored, seal)
                && bad.is_empty()
            {
                // What was just fetched, and a few cached blocks after it; the rest of a
                // cached run is hashed in the background (a read never waits for it).
                pass.advance(&f, &cache, &key, &whole, Some((first, &bytes)), SEAL_INLINE);
            }
            Ok(stored)
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        match stored {
            Ok(BlocksStored::Written { bad }) if bad.is_empty() => {
                self.kick_seal();
                Stored::Kept
            }
            Ok(BlocksStored::Written { bad }) => Stored::Mismatch(bad),
            Ok(BlocksStored::NoRoom) => Stored::NotKept,
            Err(e) => {
                self.cache.write_failed("blob blocks", &e);
                Stored::NotKept
            }
        }
    }

    /// Lets the seal pass hash the cached blocks before `block` it has yet to, off the async
    /// threads, and waits for it (a reader about to let go of them; see `readahead`).
    pub async fn hash_up_to(&self, block: u64) {
        let (Some(file), Some(whole)) = (self.file.clone(), self.whole.clone()) else {
            return;
        };
        let behind = block.saturating_sub(self.seal.at());
        if behind == 0 || file.is_sealed() {
            return;
        }
        let (cache, key, seal) = (self.cache.clone(), self.key.clone(), self.seal.clone());
        let _ = tokio::task::spawn_blocking(move || {
            seal.advance(&file, &cache, &key, &whole, None, behind);
        })
        .await;
    }

    /// Lets the seal pass go on over cached blocks, in the background.
    pub fn kick_seal(&self) {
        let (Some(file), Some(whole)) = (&self.file, &self.whole) else {
            return;
        };
        if file.is_sealed() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (file, whole, cache, key, seal) = (
            file.clone(),
            whole.clone(),
            self.cache.clone(),
            self.key.clone(),
            self.seal.clone(),
        );
        seal.kicked();
        rt.spawn_blocking(move || seal.run_kicked(&file, &cache, &key, &whole));
    }

    /// The blob's name in log lines.
    pub fn what(&self) -> &str {
        self.whole.as_ref().map_or("blob", |w| w.what.as_str())
    }
}
