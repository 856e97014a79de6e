//! The data layer: every byte a reader gets. For each byte path (a stored entry, a deflated
//! entry, `NAME.zip`, an unzipped artifact, a small archive fetched whole) it owns fetching
//! through the disk cache ([`blob`]), readahead ([`readahead`]), inflating ([`inflate`]) and
//! verification ([`verify`], enforced in [`reader`]). The core asks it for a zip's index and
//! for an open file's bytes; it knows blobs only as a [`BlobRef`] (an opaque key, a length,
//! an optional digest and a ranged source), nothing of GitHub or FUSE.
//!
//! ```text
//! core ─► DataLayer::open ─► FileReader ─┬─ Range: Readahead ─► CachedBlob ─► cache blocks
//!                                        │                                 └► remote ranges
//!                                        └─ Inflated: InflatedEntry ─┬► InflatedCopy (blocks)
//!                                                                    └► CachedBlob (compressed)
//!          every read ─► ServedCheck (per handle) ─► Integrity (per file) ─► EIO or bytes
//! ```

pub mod blob;
pub mod block_store;
pub mod file_source;
pub mod flight;
pub mod gzip;
pub mod inflate;
pub mod inflate_stream;
pub mod inflated_copy;
pub mod memory_window;
pub mod pieces;
pub mod raw_inflate;
pub mod readahead;
pub mod reader;
pub mod seal;
pub mod seek_index;
pub mod spool;
pub mod verify;
pub mod whole_download;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::archive::ArchiveError;
use crate::archive::central_directory::{CentralDirectory, read_central_directory};
use crate::archive::entry::{METHOD_STORED, check_readable, data_offset};
use crate::archive::tree::ArchiveTree;
use crate::cache::{BlobKey, DiskCache};
use crate::error::SourceError;
use crate::single_flight::SingleFlight;
use crate::source::ByteSource;
use crate::stats::Stats;

pub use blob::CachedBlob;
use inflate::InflatedEntry;
use inflated_copy::InflatedCopy;
use reader::FileBytes;
pub use reader::FileReader;
use verify::{Expected, Integrity};

/// Archives at most this big are fetched whole on first read (one request, then local).
///
/// Why 1 MiB: a lazy first read costs three requests (tail, central directory, the entry),
/// each paying GitHub's latency (tens of ms for the redirect and the first byte), where one
/// whole fetch costs one. At the 100 MiB/s of a typical link, 1 MiB takes ~10 ms, less than
/// the two requests saved; and it keeps a small file's read within the "< 1 MiB fetched"
/// budget even for a 1 MiB archive. Bigger archives go lazy: there the bytes saved dominate
/// (see `docs/benchmarks.md`).
pub const WHOLE_FETCH_THRESHOLD: u64 = 1 << 20;

/// How many deflated entries keep their inflater (stream buffers, seek points) when no file
/// has them open: each may hold a few MiB while streaming.
const INFLATERS_KEPT: std::num::NonZeroUsize = std::num::NonZeroUsize::new(32).unwrap();

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A check failed (CRC-32 or digest): EIO.
    #[error("integrity: {0}")]
    Integrity(String),
    #[error("archive: {0}")]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Source(#[from] SourceError),
    /// zlib could not start a stream (out of memory): EIO.
    #[error("inflater: {0}")]
    Inflater(String),
}

/// A blob as the data layer sees it.
#[derive(Clone)]
pub struct BlobRef {
    pub key: BlobKey,
    pub len: u64,
    /// `sha256` of the whole blob, lowercase hex, when known.
    pub sha256: Option<String>,
    /// For log lines: "artifact 7 (logs)".
    pub what: String,
    /// Ranged reads of the blob from the network.
    pub remote: Arc<dyn ByteSource>,
}

/// Which file of a blob to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileSpec {
    /// The blob itself (`NAME.zip`, an unzipped artifact).
    Whole,
    /// Entry `n` of the blob's zip central directory.
    Entry(usize),
}

/// A zip artifact's parsed central directory and the tree a user sees.
pub struct ArchiveIndex {
    pub cd: CentralDirectory,
    pub tree: ArchiveTree,
}

/// Shared by all requests; no lock held across I/O (waits are per key: single flights,
/// block claims, one inflater per entry).
pub struct DataLayer {
    cache: Arc<DiskCache>,
    /// Where cache hits and misses are counted.
    stats: Arc<Stats>,
    blobs: Mutex<HashMap<BlobKey, Arc<CachedBlob>>>,
    indexes: Arc<SingleFlight<BlobKey, Arc<ArchiveIndex>>>,
    offsets: Arc<SingleFlight<(BlobKey, usize), u64>>,
    /// The verdict on each entry that has been opened (whole blobs keep theirs in the blob).
    entries: Mutex<HashMap<(BlobKey, usize), Arc<Integrity>>>,
    /// The inflaters of recently read deflated entries (open files keep theirs alive).
    inflaters: Arc<Mutex<Inflaters>>,
}

/// Recently read deflated entries' inflaters, by blob and entry.
type Inflaters = lru::LruCache<(BlobKey, usize), Arc<InflatedEntry>>;

impl DataLayer {
    pub fn new(cache: Arc<DiskCache>, stats: Arc<Stats>) -> DataLayer {
        DataLayer {
            cache,
            stats,
            blobs: Mutex::new(HashMap::new()),
            indexes: Arc::default(),
            offsets: Arc::default(),
            entries: Mutex::new(HashMap::new()),
            inflaters: Arc::new(Mutex::new(lru::LruCache::new(INFLATERS_KEPT))),
        }
    }

    pub fn cache(&self) -> &Arc<DiskCache> {
        &self.cache
    }

    /// Forgets everything about blob id `id`, every version (memory and disk).
    pub fn drop_blob(&self, id: u64) {
        self.blobs.lock().unwrap().retain(|k, _| k.id != id);
        self.indexes.remove_if(|k| k.id == id);
        self.offsets.remove_if(|(k, _)| k.id == id);
        self.entries.lock().unwrap().retain(|(k, _), _| k.id != id);
        {
            let mut inflaters = self.inflaters.lock().unwrap();
            let gone: Vec<_> = inflaters
                .iter()
                .filter(|((k, _), _)| k.id == id)
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                inflaters.pop(&k);
            }
        }
        self.cache.remove_blobs(id);
    }

    /// The blob behind the block cache (one per blob, shared by all readers).
    pub fn blob(&self, b: &BlobRef) -> Arc<CachedBlob> {
        if let Some(s) = self.blobs.lock().unwrap().get(&b.key) {
            return s.clone();
        }
        let whole = b
            .sha256
            .clone()
            .map(|h| Arc::new(Integrity::new(b.what.clone(), Expected::Sha256(h))));
        let blob = Arc::new(CachedBlob::new(
            self.cache.clone(),
            b.key.clone(),
            b.len,
            b.remote.clone(),
            whole,
            self.stats.clone(),
        ));
        self.blobs
            .lock()
            .unwrap()
            .entry(b.key.clone())
            .or_insert(blob)
            .clone()
    }

    /// The archive's central directory and tree: the tail and the directory by ranged reads,
    /// never the whole archive (`ls` must not download one, even a small one).
    pub async fn index(&self, b: &BlobRef) -> Result<Arc<ArchiveIndex>, DataError> {
        self.indexes
            .get_or_try_init(&b.key, || async {
                let blob = self.blob(b);
                let cd = read_central_directory(blob.as_ref()).await?;
                let tree = ArchiveTree::build(&cd.entries);
                tracing::debug!(blob = %b.what, entries = cd.entries.len(), "read central directory");
                Ok::<_, DataError>(Arc::new(ArchiveIndex { cd, tree }))
            })
            .await
    }

    /// The blob for reading entries: what is missing of an archive up to
    /// [`WHOLE_FETCH_THRESHOLD`] is fetched first, in one request; completing the blob checks
    /// its digest (a mismatch drops it, and the entries' own checks fail their readers).
    async fn blob_for_reading(&self, b: &BlobRef) -> Result<Arc<CachedBlob>, DataError> {
        let blob = self.blob(b);
        if b.len <= WHOLE_FETCH_THRESHOLD {
            blob.ensure(0, b.len).await?;
        }
        Ok(blob)
    }

    /// Where entry `index`'s data starts in the blob (reads its local header once).
    async fn data_offset(&self, b: &BlobRef, index: usize) -> Result<u64, DataError> {
        let idx = self.index(b).await?;
        let entry = idx.cd.entries.get(index).cloned().ok_or_else(no_entry)?;
        self.offsets
            .get_or_try_init(&(b.key.clone(), index), || async {
                let blob = self.blob_for_reading(b).await?;
                Ok::<_, DataError>(data_offset(blob.as_ref(), &entry).await?)
            })
            .await
    }

    /// Whether a file's bytes have been read through and verified, and nothing of its blob
    /// was evicted since (or there is nothing to verify them against): then the kernel may
    /// keep them in its page cache, where no handle's check would see them.
    pub fn is_verified(&self, b: &BlobRef, spec: FileSpec) -> bool {
        let blob = self.blob(b);
        if blob.sealed() {
            return true; // every byte served from now on is checked against its seal
        }
        let generation = blob.generation();
        match spec {
            FileSpec::Whole => blob.whole().is_none(),
            FileSpec::Entry(n) => self
                .entries
                .lock()
                .unwrap()
                .get(&(b.key.clone(), n))
                .is_some_and(|i| i.good_at(generation)),
        }
    }

    /// Opens a file of the blob; nothing is read until the first read (but an entry's local
    /// header, and a small archive whole).
    pub async fn open(&self, b: &BlobRef, spec: FileSpec) -> Result<FileReader, DataError> {
        let index = match spec {
            FileSpec::Whole => {
                let blob = self.blob(b);
                let whole = blob.whole().cloned();
                return Ok(FileReader::new(FileBytes::range(blob, 0, b.len), whole));
            }
            FileSpec::Entry(n) => n,
        };
        let idx = self.index(b).await?;
        let e = idx.cd.entries.get(index).cloned().ok_or_else(no_entry)?;
        check_readable(&e)?;
        let start = self.data_offset(b, index).await?;
        let blob = self.blob_for_reading(b).await?;
        let key = (b.key.clone(), index);
        let integrity = {
            let mut entries = self.entries.lock().unwrap();
            let fresh = || {
                Arc::new(Integrity::new(
                    format!("{}: {}", b.what, e.name),
                    Expected::Crc32(e.crc32),
                ))
            };
            let i = entries.entry(key.clone()).or_insert_with(fresh);
            if i.expected != Expected::Crc32(e.crc32) {
                // The central directory was fetched again and says otherwise: the verdict
                // was on a CRC that was itself wrong.
                *i = fresh();
            }
            i.clone()
        };
        let heal = self.healer(&blob, &idx, index, start);
        let bytes = if e.method == METHOD_STORED {
            FileBytes::range(blob, start, e.uncompressed_size)
        } else {
            let known = self.inflaters.lock().unwrap().get(&key).cloned();
            let inflater = match known {
                Some(i) => i,
                None => {
                    // Opening its copy makes room for the copy's map (evicting): not under
                    // the lock every opener of a deflated entry takes.
                    let copy =
                        InflatedCopy::open(&self.cache, blob.key(), index, e.uncompressed_size);
                    let fresh = || {
                        Arc::new(InflatedEntry::new(
                            blob,
                            self.cache.clone(),
                            (index, start),
                            e.clone(),
                            integrity.clone(),
                            copy,
                            self.stats.clone(),
                        ))
                    };
                    self.inflaters
                        .lock()
                        .unwrap()
                        .get_or_insert(key, fresh)
                        .clone()
                }
            };
            FileBytes::Inflated(inflater)
        };
        Ok(FileReader::new(bytes, Some(integrity)).healed_by(heal))
    }

    /// What a failed check of entry `index` drops beyond the entry's bytes: everything they
    /// were read through (its local header, the central directory and the end records, the
    /// parsed index, the data offset, the inflater and what it kept), so one refetch heals a
    /// transient fault in any of them.
    fn healer(
        &self,
        blob: &Arc<CachedBlob>,
        idx: &ArchiveIndex,
        index: usize,
        start: u64,
    ) -> reader::Heal {
        let (blob, indexes, offsets, inflaters) = (
            blob.clone(),
            self.indexes.clone(),
            self.offsets.clone(),
            self.inflaters.clone(),
        );
        let header = idx.cd.entries[index].local_header_offset;
        let cd_from = idx.cd.cd_offset.min(blob.len());
        Box::new(move || {
            let key = blob.key().clone();
            blob.drop_range(header, start.saturating_sub(header));
            blob.drop_range(cd_from, blob.len() - cd_from);
            indexes.remove(&key);
            offsets.remove_if(|(k, _)| *k == key);
            inflaters.lock().unwrap().pop(&(key, index));
        })
    }
}

fn no_entry() -> DataError {
    DataError::Source(SourceError::NotFound("no such entry".into()))
}

#[cfg(test)]
mod background_pass_tests;
#[cfg(test)]
mod tests;
