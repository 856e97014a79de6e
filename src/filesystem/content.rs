//! Getting bytes: whole blobs into the cache (digest-checked), a zip's central directory and
//! tree (from the cached blob when there is one, else by ranged reads), and zip entries
//! inflated once into the cache (CRC-checked). Every archive access goes through
//! [`ByteSource`], so a block cache can later replace the whole-blob path without the
//! archive layer noticing.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::archive::ByteSource;
use crate::archive::central_directory::{CentralDirectory, read_central_directory};
use crate::archive::entry::extract_entry;
use crate::archive::tree::ArchiveTree;
use crate::cache::{BlobKey, DiskCache};
use crate::github::{Artifact, RepoRef};

use super::error::{FsError, FsResult};
use super::remote::Remote;
use super::single_flight::SingleFlight;

/// Archives at most this big are fetched whole on first access (one request, then local).
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

/// Fetches and remembers artifact bytes. Shared by all requests; no lock held across I/O.
pub struct Content {
    remote: Arc<dyn Remote>,
    cache: Arc<DiskCache>,
    blobs: SingleFlight<BlobKey, PathBuf>,
    entries: SingleFlight<(BlobKey, usize), PathBuf>,
    indexes: SingleFlight<BlobKey, Arc<ArchiveIndex>>,
}

impl Content {
    pub fn new(remote: Arc<dyn Remote>, cache: Arc<DiskCache>) -> Content {
        Content {
            remote,
            cache,
            blobs: SingleFlight::default(),
            entries: SingleFlight::default(),
            indexes: SingleFlight::default(),
        }
    }

    pub fn cache(&self) -> &Arc<DiskCache> {
        &self.cache
    }

    /// Forgets everything about artifact `id` (memory and disk).
    pub fn drop_artifact(&self, id: u64) {
        self.blobs.remove_if(|k| k.id == id);
        self.entries.remove_if(|(k, _)| k.id == id);
        self.indexes.remove_if(|k| k.id == id);
        self.cache.remove_artifact(id);
    }

    /// The whole blob in the cache, downloading it once; sha256 checked against `digest`.
    pub async fn blob_file(&self, repo: &RepoRef, a: &Artifact) -> FsResult<PathBuf> {
        let key = BlobKey::for_artifact(a);
        if let Some(p) = self.cache.blob(&key) {
            return Ok(p);
        }
        self.blobs
            .get_or_try_init(&key, || async {
                if let Some(p) = self.cache.blob(&key) {
                    return Ok(p);
                }
                let (tmp, file) = self.cache.temp_file()?;
                let mut out = tokio::fs::File::from_std(file);
                let blob = self.remote.blob(repo, a);
                let result = blob.download_to(&mut out).await;
                drop(out);
                let (n, sha) = match result {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(FsError::Io(e));
                    }
                };
                if let Some(want) = a.sha256_hex() {
                    if !want.eq_ignore_ascii_case(&sha) {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(FsError::Integrity(format!(
                            "artifact {} ({}): sha256 {sha} does not match digest {want}",
                            a.id, a.name
                        )));
                    }
                }
                tracing::debug!(artifact = a.id, bytes = n, "downloaded whole blob");
                Ok(self.cache.commit_blob(&key, &tmp)?)
            })
            .await
    }

    /// The best source for the artifact's bytes: the cached blob, else (small archives, when
    /// `whole_if_small`) the blob fetched whole now, else ranged reads.
    async fn source(
        &self,
        repo: &RepoRef,
        a: &Artifact,
        whole_if_small: bool,
    ) -> FsResult<Arc<dyn ByteSource>> {
        let key = BlobKey::for_artifact(a);
        let local = match self.cache.blob(&key) {
            Some(p) => Some(p),
            None if whole_if_small && a.size_in_bytes <= WHOLE_FETCH_THRESHOLD => {
                Some(self.blob_file(repo, a).await?)
            }
            None => None,
        };
        match local {
            Some(p) => Ok(Arc::new(FileSource::open(&p)?)),
            None => Ok(self.remote.blob(repo, a) as Arc<dyn ByteSource>),
        }
    }

    /// The archive's central directory and tree (one ranged tail read + one CD read; never
    /// a whole download: `ls` must stay cheap).
    pub async fn index(&self, repo: &RepoRef, a: &Artifact) -> FsResult<Arc<ArchiveIndex>> {
        let key = BlobKey::for_artifact(a);
        self.indexes
            .get_or_try_init(&key, || async {
                let src = self.source(repo, a, false).await?;
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
                let src = self.source(repo, a, true).await?;
                let (tmp, mut file) = self.cache.temp_file()?;
                let result = extract_entry(src.as_ref(), &entry, &mut file).await;
                drop(file);
                if let Err(e) = result {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(FsError::Archive(e));
                }
                Ok(self.cache.commit_entry(&key, index, &tmp)?)
            })
            .await
    }
}
