//! Binds the GitHub client to the filesystem core's [`Remote`] trait: listings and deletes
//! through the API client, blob reads through per-artifact [`BlobHandle`]s (which keep the
//! short-lived signed URL and refresh it when it expires). Blob reads in flight and the bytes
//! they bring are counted for the mount's status.

use std::collections::HashMap;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::SourceError;
use crate::github::blob::{BlobClient, BlobHandle, Ranged, WholeBody};
use crate::github::client::GitHubClient;
use crate::github::{
    ApiError, Artifact, ArtifactKind, Download, Job, LogBlob, PullRequest, Remote, RepoRef, Run,
    RunFilter, RunsPage, Workflow,
};
use crate::source::{ByteSource, ByteStream};
use crate::stats::{InFlight, Stats};

pub struct GitHubRemote {
    api: GitHubClient,
    blob: BlobClient,
    handles: Mutex<HashMap<(String, String, Download), Arc<BlobHandle>>>,
    stats: Arc<Stats>,
}

impl GitHubRemote {
    pub fn new(api: GitHubClient, blob: BlobClient, stats: Arc<Stats>) -> Self {
        GitHubRemote {
            api,
            blob,
            handles: Mutex::new(HashMap::new()),
            stats,
        }
    }

    fn handle(&self, repo: &RepoRef, id: u64) -> Arc<BlobHandle> {
        self.handle_of(repo, Download::Artifact(id))
    }

    fn handle_of(&self, repo: &RepoRef, target: Download) -> Arc<BlobHandle> {
        let (o, r) = repo.key();
        self.handles
            .lock()
            .unwrap()
            .entry((o, r, target.clone()))
            .or_insert_with(|| {
                Arc::new(BlobHandle::of(
                    self.api.clone(),
                    self.blob.clone(),
                    repo.clone(),
                    target,
                ))
            })
            .clone()
    }
}

struct GitHubBlob {
    handle: Arc<BlobHandle>,
    len: u64,
    stats: Arc<Stats>,
}

#[async_trait]
impl ByteSource for GitHubBlob {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let len = (len as u64).min(self.len.saturating_sub(offset));
        if len == 0 {
            return Ok(Bytes::new());
        }
        let _counted = self.stats.blob_request();
        match self.handle.read_range(offset, len).await? {
            Ranged::Bytes(bytes) => {
                self.stats.blob_bytes(bytes.len() as u64);
                Ok(bytes)
            }
            Ranged::Whole => Err(SourceError::RangeIgnored),
        }
    }

    fn whole_only(&self) -> bool {
        self.handle.ranges_ignored()
    }

    async fn stream_whole(&self) -> Result<Box<dyn ByteStream + '_>, SourceError> {
        Ok(Box::new(CountedBody {
            body: self.handle.stream_whole(),
            _counted: self.stats.blob_request(),
            stats: &self.stats,
        }))
    }
}

/// A whole download, counted as one blob request in flight while it lasts and its bytes as
/// they arrive.
struct CountedBody<'a> {
    body: WholeBody<'a>,
    _counted: InFlight<'a>,
    stats: &'a Stats,
}

#[async_trait]
impl ByteStream for CountedBody<'_> {
    async fn next(&mut self) -> Result<Option<Bytes>, SourceError> {
        let c = self.body.next_chunk().await?;
        if let Some(c) = &c {
            self.stats.blob_bytes(c.len() as u64);
        }
        Ok(c)
    }
}

#[async_trait]
impl Remote for GitHubRemote {
    async fn list_artifacts(&self, repo: &RepoRef) -> Result<Vec<Artifact>, ApiError> {
        self.api.list_artifacts(repo, None).await
    }

    async fn delete_artifact(&self, repo: &RepoRef, id: u64) -> Result<(), ApiError> {
        let r = self.api.delete_artifact(repo, id).await;
        if r.is_ok() {
            let (o, n) = repo.key();
            (self.handles.lock().unwrap()).remove(&(o, n, Download::Artifact(id)));
        }
        r
    }

    async fn owner_exists(&self, owner: &str) -> Result<bool, ApiError> {
        self.api.owner_exists(owner).await
    }

    fn can_download(&self) -> bool {
        self.api.has_token()
    }

    async fn artifact_kind(&self, repo: &RepoRef, id: u64) -> Result<ArtifactKind, ApiError> {
        self.handle(repo, id).kind().await
    }

    async fn runs_page(
        &self,
        repo: &RepoRef,
        filter: &RunFilter,
        page: u32,
    ) -> Result<RunsPage, ApiError> {
        self.api.runs_page(repo, filter, page).await
    }

    async fn get_run(&self, repo: &RepoRef, id: u64) -> Result<Run, ApiError> {
        self.api.get_run(repo, id).await
    }

    async fn list_workflows(&self, repo: &RepoRef) -> Result<Vec<Workflow>, ApiError> {
        self.api.list_workflows(repo).await
    }

    async fn get_pull(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ApiError> {
        self.api.get_pull(repo, number).await
    }

    async fn run_jobs(&self, repo: &RepoRef, run: u64) -> Result<Vec<Job>, ApiError> {
        self.api.run_jobs(repo, run).await
    }

    async fn log_blob(&self, repo: &RepoRef, target: &Download) -> Result<LogBlob, ApiError> {
        let handle = self.handle_of(repo, target.clone());
        let (len, etag) = handle.probe_len().await?;
        Ok(LogBlob {
            len,
            etag,
            source: Arc::new(GitHubBlob {
                handle,
                len,
                stats: self.stats.clone(),
            }),
        })
    }

    fn known_log_blob(
        &self,
        repo: &RepoRef,
        target: &Download,
        len: u64,
        etag: Option<String>,
    ) -> Option<LogBlob> {
        Some(LogBlob {
            len,
            etag,
            source: Arc::new(GitHubBlob {
                handle: self.handle_of(repo, target.clone()),
                len,
                stats: self.stats.clone(),
            }),
        })
    }

    fn blob(&self, repo: &RepoRef, artifact: &Artifact) -> Arc<dyn ByteSource> {
        Arc::new(GitHubBlob {
            handle: self.handle(repo, artifact.id),
            len: artifact.size_in_bytes,
            stats: self.stats.clone(),
        })
    }
}
