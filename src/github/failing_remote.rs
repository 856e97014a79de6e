//! A [`Remote`] that fails on demand around any other (mountpoint-s3's failure client, for
//! the core's tests): listings and deletes that fail, latency on every call, blob reads that
//! are refused or carry a changed byte, a number of times or always. The faults are read at
//! each call, so a test turns them on and off while the core runs; the remote underneath (the
//! in-memory one, usually) stays a plain store with counters, reachable through `Deref`.

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::SourceError;
use crate::github::{
    ApiError, Artifact, ArtifactKind, Download, Job, LogBlob, PullRequest, Remote, RepoRef, Run,
    RunFilter, RunsPage, Workflow, log_blob_id,
};
use crate::source::{ByteSource, ByteStream};

/// A byte of one artifact's blob changed (XOR 0xFF) in the reads that cover it.
#[derive(Clone, Debug)]
pub struct Flip {
    /// The artifact's id (a log's: [`log_blob_id`]).
    pub artifact: u64,
    pub offset: u64,
    /// How many reads get the changed byte; `None`: every one.
    pub times: Option<u64>,
}

/// What goes wrong, and how often.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Listings (artifacts, runs, workflows) fail with this error.
    pub list_error: Option<ApiError>,
    /// Deletes fail with this error.
    pub delete_error: Option<ApiError>,
    /// Every call and every blob read waits this long first.
    pub latency: Option<Duration>,
    /// Blob reads fail with this error (`Forbidden` for a URL that stays refused).
    pub blob_error: Option<ApiError>,
    pub flip: Option<Flip>,
}

pub struct FailingRemote<R> {
    inner: R,
    faults: Arc<Mutex<Faults>>,
}

impl<R: Remote> FailingRemote<R> {
    /// `inner`, behaving until [`FailingRemote::set`] says otherwise.
    pub fn new(inner: R) -> FailingRemote<R> {
        FailingRemote {
            inner,
            faults: Arc::new(Mutex::new(Faults::default())),
        }
    }

    /// Changes the faults from now on (blobs handed out earlier follow too).
    pub fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().unwrap());
    }

    fn now(&self) -> Faults {
        self.faults.lock().unwrap().clone()
    }

    async fn delay(&self) {
        if let Some(d) = self.now().latency {
            tokio::time::sleep(d).await;
        }
    }
}

impl<R> Deref for FailingRemote<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.inner
    }
}

#[async_trait]
impl<R: Remote> Remote for FailingRemote<R> {
    async fn list_artifacts(&self, repo: &RepoRef) -> Result<Vec<Artifact>, ApiError> {
        self.delay().await;
        if let Some(e) = self.now().list_error {
            return Err(e);
        }
        self.inner.list_artifacts(repo).await
    }

    async fn delete_artifact(&self, repo: &RepoRef, id: u64) -> Result<(), ApiError> {
        self.delay().await;
        if let Some(e) = self.now().delete_error {
            return Err(e);
        }
        self.inner.delete_artifact(repo, id).await
    }

    async fn owner_exists(&self, owner: &str) -> Result<bool, ApiError> {
        self.delay().await;
        self.inner.owner_exists(owner).await
    }

    fn can_download(&self) -> bool {
        self.inner.can_download()
    }

    async fn artifact_kind(&self, repo: &RepoRef, id: u64) -> Result<ArtifactKind, ApiError> {
        self.delay().await;
        self.inner.artifact_kind(repo, id).await
    }

    async fn runs_page(
        &self,
        repo: &RepoRef,
        filter: &RunFilter,
        page: u32,
    ) -> Result<RunsPage, ApiError> {
        self.delay().await;
        if let Some(e) = self.now().list_error {
            return Err(e);
        }
        self.inner.runs_page(repo, filter, page).await
    }

    async fn get_run(&self, repo: &RepoRef, id: u64) -> Result<Run, ApiError> {
        self.delay().await;
        self.inner.get_run(repo, id).await
    }

    async fn list_workflows(&self, repo: &RepoRef) -> Result<Vec<Workflow>, ApiError> {
        self.delay().await;
        if let Some(e) = self.now().list_error {
            return Err(e);
        }
        self.inner.list_workflows(repo).await
    }

    async fn get_pull(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ApiError> {
        self.delay().await;
        self.inner.get_pull(repo, number).await
    }

    async fn run_jobs(&self, repo: &RepoRef, run: u64) -> Result<Vec<Job>, ApiError> {
        self.delay().await;
        if let Some(e) = self.now().list_error {
            return Err(e);
        }
        self.inner.run_jobs(repo, run).await
    }

    async fn log_blob(&self, repo: &RepoRef, target: &Download) -> Result<LogBlob, ApiError> {
        self.delay().await;
        if let Some(e) = self.now().blob_error {
            return Err(e);
        }
        let mut b = self.inner.log_blob(repo, target).await?;
        b.source = Arc::new(FailingSource {
            inner: b.source,
            artifact: log_blob_id(target),
            faults: self.faults.clone(),
        });
        Ok(b)
    }

    fn known_log_blob(
        &self,
        repo: &RepoRef,
        target: &Download,
        len: u64,
        etag: Option<String>,
    ) -> Option<LogBlob> {
        let mut b = self.inner.known_log_blob(repo, target, len, etag)?;
        b.source = Arc::new(FailingSource {
            inner: b.source,
            artifact: log_blob_id(target),
            faults: self.faults.clone(),
        });
        Some(b)
    }

    fn blob(&self, repo: &RepoRef, artifact: &Artifact) -> Arc<dyn ByteSource> {
        Arc::new(FailingSource {
            inner: self.inner.blob(repo, artifact),
            artifact: artifact.id,
            faults: self.faults.clone(),
        })
    }
}

struct FailingSource {
    inner: Arc<dyn ByteSource>,
    artifact: u64,
    faults: Arc<Mutex<Faults>>,
}

impl FailingSource {
    /// Whether this read of `start..end` gets the changed byte (counting it), and where.
    fn flip_in(&self, start: u64, end: u64) -> Option<u64> {
        let mut f = self.faults.lock().unwrap();
        let flip = f.flip.as_mut()?;
        if flip.artifact != self.artifact || !(start..end).contains(&flip.offset) {
            return None;
        }
        let at = flip.offset;
        match &mut flip.times {
            None => {}
            Some(0) => return None,
            Some(n) => *n -= 1,
        }
        Some(at)
    }
}

#[async_trait]
impl ByteSource for FailingSource {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let faults = self.faults.lock().unwrap().clone();
        if let Some(d) = faults.latency {
            tokio::time::sleep(d).await;
        }
        if let Some(e) = faults.blob_error {
            return Err(e.into());
        }
        let bytes = self.inner.read_at(offset, len).await?;
        match self.flip_in(offset, offset + bytes.len() as u64) {
            Some(at) => {
                let mut v = bytes.to_vec();
                v[(at - offset) as usize] ^= 0xFF;
                Ok(Bytes::from(v))
            }
            None => Ok(bytes),
        }
    }

    fn whole_only(&self) -> bool {
        self.inner.whole_only()
    }

    async fn stream_whole(&self) -> Result<Box<dyn ByteStream + '_>, SourceError> {
        let faults = self.faults.lock().unwrap().clone();
        if let Some(d) = faults.latency {
            tokio::time::sleep(d).await;
        }
        if let Some(e) = faults.blob_error {
            return Err(e.into());
        }
        Ok(Box::new(FailingStream {
            src: self,
            inner: self.inner.stream_whole().await?,
            at: 0,
        }))
    }
}

/// A whole download with the same byte changed in flight as a ranged read gets.
struct FailingStream<'a> {
    src: &'a FailingSource,
    inner: Box<dyn ByteStream + 'a>,
    at: u64,
}

#[async_trait]
impl ByteStream for FailingStream<'_> {
    async fn next(&mut self) -> Result<Option<Bytes>, SourceError> {
        let Some(piece) = self.inner.next().await? else {
            return Ok(None);
        };
        let start = self.at;
        self.at += piece.len() as u64;
        Ok(Some(match self.src.flip_in(start, self.at) {
            Some(at) => {
                let mut v = piece.to_vec();
                v[(at - start) as usize] ^= 0xFF;
                Bytes::from(v)
            }
            None => piece,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ToErrno;
    use crate::github::memory_remote::MemoryRemote;
    use crate::github::{ArtifactKind, RepoRef};

    fn remote() -> (FailingRemote<MemoryRemote>, RepoRef, Artifact) {
        let m = MemoryRemote::default();
        m.add(
            1,
            "a",
            10,
            "main",
            1,
            b"0123456789".to_vec(),
            ArtifactKind::Zip,
        );
        let repo = RepoRef::parse("octo/hello").unwrap();
        let r = FailingRemote::new(m);
        let a = futures::executor::block_on(r.list_artifacts(&repo)).unwrap()[0].clone();
        (r, repo, a)
    }

    #[tokio::test]
    async fn a_byte_flipped_once_is_flipped_in_one_read_only() {
        let (r, repo, a) = remote();
        let blob = r.blob(&repo, &a);
        r.set(|f| {
            f.flip = Some(Flip {
                artifact: 1,
                offset: 3,
                times: Some(1),
            })
        });
        assert_eq!(
            &blob.read_at(0, 2).await.unwrap()[..],
            b"01",
            "not covered: untouched"
        );
        assert_eq!(blob.read_at(2, 4).await.unwrap()[1], b'3' ^ 0xFF);
        assert_eq!(&blob.read_at(0, 10).await.unwrap()[..], b"0123456789");
        assert_eq!(r.blob_bytes.load(std::sync::atomic::Ordering::SeqCst), 16);
    }

    #[tokio::test]
    async fn faults_apply_from_the_moment_they_are_set() {
        let (r, repo, a) = remote();
        let blob = r.blob(&repo, &a);
        r.set(|f| f.blob_error = Some(ApiError::Forbidden("refused".into())));
        assert_eq!(blob.read_at(0, 1).await.unwrap_err().errno(), libc::EACCES);
        r.set(|f| {
            f.list_error = Some(ApiError::Server {
                status: 502,
                what: "x".into(),
            })
        });
        assert_eq!(
            r.list_artifacts(&repo).await.unwrap_err().errno(),
            libc::EIO
        );
        r.set(|f| *f = Faults::default());
        assert_eq!(&blob.read_at(0, 1).await.unwrap()[..], b"0");
        assert_eq!(r.list_artifacts(&repo).await.unwrap().len(), 1);
    }
}
