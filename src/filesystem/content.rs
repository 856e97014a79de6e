//! Getting bytes: every artifact's blob is read through one [`CachedSource`] (the disk block
//! cache in front of ranged HTTP reads), from which come a zip's central directory and tree
//! (the tail and the directory: two ranged reads, never the archive), stored entries (served
//! straight from blob ranges by the reader) and deflated entries (inflated once into the
//! cache, CRC-checked, so any `pread` offset is cheap afterwards). Archives up to
//! [`WHOLE_FETCH_THRESHOLD`] are fetched whole in one request on first use.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::archive::ByteSource;
use crate::archive::central_directory::{CentralDirectory, read_central_directory};
use crate::archive::entry::{data_offset, extract_entry};
use crate::archive::tree::ArchiveTree;
use crate::cache::{BlobKey, CachedSource, DiskCache};
use crate::github::{Artifact, RepoRef};

use super::error::{FsError, FsResult};
use super::remote::Remote;
use super::single_flight::SingleFlight;

/// Archives at most this big are fetched whole on first access (one request, then local).
///
/// Why 1 MiB: a lazy first read costs three requests (tail, central directory, the entry),
/// each paying GitHub's latency (tens of ms for the redirect and the first byte), where one
/// whole fetch costs one. At the 100 MiB/s of a typical link, 1 MiB takes ~10 ms, less than
/// the two requests saved; and it keeps a small file's read within the issue's "< 1 MiB
/// fetched" budget even for a 1 MiB archive. Bigger archives go lazy: there the bytes saved
/// dominate (see `docs/benchmarks.md`).
pub const WHOLE_FETCH_THRESHOLD: u64 = 1 << 20;

/// A zip artifact's parsed central directory and the tree a user sees.
pub struct ArchiveIndex {
    pub cd: CentralDirectory,
    pub tree: ArchiveTree,
}

/// A local file as a byte source (a blob already in the cache).
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> io::Result<FileSource> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

/// Reads up to `len` bytes at `offset`, fewer only at end of file.
pub fn pread_full(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(buf)
}

#[async_trait]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let len = len.min(self.len.saturating_sub(offset) as usize);
        pread_full(&self.file, offset, len).map(Bytes::from)
    }
}

/// Deletes a temporary file when dropped, unless disarmed (it was renamed into place).
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Fetches and remembers artifact bytes. Shared by all requests; no lock held across I/O.
pub struct Content {
    remote: Arc<dyn Remote>,
    cache: Arc<DiskCache>,
    sources: Mutex<HashMap<BlobKey, Arc<CachedSource>>>,
    entries: SingleFlight<(BlobKey, usize), PathBuf>,
    indexes: SingleFlight<BlobKey, Arc<ArchiveIndex>>,
    offsets: SingleFlight<(BlobKey, usize), u64>,
    /// Stored entries whose CRC a reader has checked (while their blocks stay cached).
    checked: Mutex<HashMap<(BlobKey, usize), Arc<std::sync::atomic::AtomicU64>>>,
}

impl Content {
    pub fn new(remote: Arc<dyn Remote>, cache: Arc<DiskCache>) -> Content {
        Content {
            remote,
            cache,
            sources: Mutex::new(HashMap::new()),
            entries: SingleFlight::default(),
            indexes: SingleFlight::default(),
            offsets: SingleFlight::default(),
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// The flag recording that entry `index`'s CRC was checked (shared by all its readers).
    pub fn crc_checked(&self, a: &Artifact, index: usize) -> Arc<std::sync::atomic::AtomicU64> {
        self.checked
            .lock()
            .unwrap()
            .entry((BlobKey::for_artifact(a), index))
            .or_default()
            .clone()
    }

    pub fn cache(&self) -> &Arc<DiskCache> {
        &self.cache
    }

    /// Forgets everything about artifact `id` (memory and disk).
    pub fn drop_artifact(&self, id: u64) {
        self.sources.lock().unwrap().retain(|k, _| k.id != id);
        self.entries.remove_if(|(k, _)| k.id == id);
        self.indexes.remove_if(|k| k.id == id);
        self.offsets.remove_if(|(k, _)| k.id == id);
        self.checked.lock().unwrap().retain(|(k, _), _| k.id != id);
        self.cache.remove_artifact(id);
    }

    /// The artifact's blob behind the block cache (one per blob, shared by all readers).
    pub fn source(&self, repo: &RepoRef, a: &Artifact) -> FsResult<Arc<CachedSource>> {
        let key = BlobKey::for_artifact(a);
        if let Some(s) = self.sources.lock().unwrap().get(&key) {
            return Ok(s.clone());
        }
        let remote: Arc<dyn ByteSource> = self.remote.blob(repo, a);
        let src = Arc::new(CachedSource::new(
            self.cache.clone(),
            key.clone(),
            a.size_in_bytes,
            remote,
            a.sha256_hex().map(str::to_string),
        )?);
        Ok(self
            .sources
            .lock()
            .unwrap()
            .entry(key)
            .or_insert(src)
            .clone())
    }

    /// The archive's central directory and tree: the tail and the directory by ranged reads,
    /// never the whole archive (`ls` must not download one, even a small one).
    pub async fn index(&self, repo: &RepoRef, a: &Artifact) -> FsResult<Arc<ArchiveIndex>> {
        let key = BlobKey::for_artifact(a);
        self.indexes
            .get_or_try_init(&key, || async {
                let src = self.source(repo, a)?;
                let cd = read_central_directory(src.as_ref()).await?;
                let tree = ArchiveTree::build(&cd.entries);
                tracing::debug!(
                    artifact = a.id,
                    entries = cd.entries.len(),
                    "read central directory"
                );
                Ok::<_, FsError>(Arc::new(ArchiveIndex { cd, tree }))
            })
            .await
    }

    /// The source for reading an entry's bytes: for an archive up to
    /// [`WHOLE_FETCH_THRESHOLD`], the whole blob is fetched first, in one request.
    async fn source_for_reading(
        &self,
        repo: &RepoRef,
        a: &Artifact,
    ) -> FsResult<Arc<CachedSource>> {
        let src = self.source(repo, a)?;
        if a.size_in_bytes <= WHOLE_FETCH_THRESHOLD {
            src.ensure(0, a.size_in_bytes).await?;
        }
        Ok(src)
    }

    /// Where entry `index`'s data starts in the blob (reads its local header once).
    pub async fn data_offset(&self, repo: &RepoRef, a: &Artifact, index: usize) -> FsResult<u64> {
        let key = BlobKey::for_artifact(a);
        let idx = self.index(repo, a).await?;
        let entry = idx.cd.entries.get(index).ok_or(FsError::NotFound)?.clone();
        self.offsets
            .get_or_try_init(&(key, index), || async {
                let src = self.source_for_reading(repo, a).await?;
                Ok::<_, FsError>(data_offset(src.as_ref(), &entry).await?)
            })
            .await
    }

    /// Entry `index` of the archive, inflated into the cache once (CRC-checked).
    pub async fn entry_file(
        &self,
        repo: &RepoRef,
        a: &Artifact,
        index: usize,
    ) -> FsResult<PathBuf> {
        let key = BlobKey::for_artifact(a);
        if let Some(p) = self.cache.entry(&key, index) {
            return Ok(p);
        }
        let idx = self.index(repo, a).await?;
        let entry = idx.cd.entries.get(index).ok_or(FsError::NotFound)?.clone();
        self.entries
            .get_or_try_init(&(key.clone(), index), || async {
                if let Some(p) = self.cache.entry(&key, index) {
                    return Ok(p);
                }
                let src = self.source_for_reading(repo, a).await?;
                let (tmp, mut file) = self.cache.temp_file()?;
                // Removes the partial file if extraction fails or is cancelled.
                let guard = TempGuard(Some(tmp.clone()));
                let result = extract_entry(src.as_ref(), &entry, &mut file).await;
                drop(file);
                result.map_err(FsError::Archive)?;
                let path = self.cache.commit_entry(&key, index, &tmp)?;
                guard.disarm();
                Ok(path)
            })
            .await
    }
}
