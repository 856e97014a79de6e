//! The logs of workflow runs (`logs/`): which runs `logs/` lists (the first page of the runs
//! list, revalidated), and what `logs/RUN/` and `logs/RUN.ATTEMPT/` hold. A completed attempt's
//! log archive is read like an artifact (same data layer, cache and CRC checks; no digest):
//! a [`BlobRef`] keyed by run, attempt, length and `ETag`, its length learnt from the blob
//! host's first answer and kept in the cache's metadata (`meta/log-lengths.json`), so that a
//! remount asks for it no more (the redirect comes only when bytes are missing). A run still in progress has no archive: its finished jobs' logs
//! (`JOB.txt`, from the per-job endpoint) stand in, until the run completes. Logs past
//! retention (410) or absent (404) make an empty directory and one log line per
//! `--metadata-ttl`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::BlobKey;
use crate::data::{ArchiveIndex, BlobRef};
use crate::github::{ApiError, Download, Job, LogBlob, RunFilter, log_blob_id};

use super::inode::RepoIdx;
use super::names::{encode_branch, unique_name};
use super::run_meta::Memo;
use super::{ArtifactFs, FsError, FsResult};

/// A completed attempt's logs and a finished job's log never change: kept for the mount.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One repository's logs.
#[derive(Default)]
pub(super) struct LogState {
    /// The runs of the first page of the runs list: (id, latest attempt), newest first.
    recent: Memo<(), Arc<Vec<(u64, u32)>>>,
    /// Log blobs by (run or job) download: `None` when GitHub has none (404) or no longer
    /// (410).
    blobs: Memo<Download, Option<LogBlob>>,
    /// A run in progress's jobs.
    jobs: Memo<u64, Arc<Vec<Job>>>,
}

/// What `logs/RUN/` (or `logs/RUN.ATTEMPT/`) holds.
pub enum LogDir {
    /// The attempt's log archive.
    Archive {
        attempt: u32,
        blob: BlobRef,
        index: Arc<ArchiveIndex>,
    },
    /// A run in progress: its finished jobs' logs, as (file name, job id, length).
    Jobs(Vec<(String, u64, u64)>),
    /// No logs (expired, or none): an empty directory.
    Empty,
}

/// The name of a finished job's log in a run in progress: `JOB.txt` (`/` as `%2F`),
/// duplicates `JOB (1).txt`, `JOB (2).txt`...
pub fn job_file_names(jobs: &[Job]) -> Vec<String> {
    let mut taken = HashSet::new();
    jobs.iter()
        .map(|j| format!("{}.txt", unique_name(&encode_branch(&j.name), &mut taken)))
        .collect()
}

/// `RUN` or `RUN.ATTEMPT` as (run, attempt); `None` for anything else (leading zeros, 0).
pub fn parse_log_dir(name: &str) -> Option<(u64, Option<u32>)> {
    let canonical =
        |s: &str| !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    match name.split_once('.') {
        None => canonical(name).then(|| Some((name.parse().ok()?, None)))?,
        Some((r, a)) if canonical(r) && canonical(a) => {
            Some((r.parse().ok()?, Some(a.parse().ok()?)))
        }
        _ => None,
    }
}

impl ArtifactFs {
    /// The runs `logs/` lists: the first page of the runs list (the newest 100), with their
    /// latest attempts; revalidated after `--metadata-ttl` (free when unchanged).
    pub(super) async fn log_runs(&self, idx: RepoIdx) -> FsResult<Arc<Vec<(u64, u32)>>> {
        let st = self.repo(idx);
        let (remote, repo) = (self.remote.clone(), st.repo.clone());
        let meta = &st.meta;
        Ok(st
            .logs
            .recent
            .get(&(), self.cfg.metadata_ttl, || async move {
                let p = remote.runs_page(&repo, &RunFilter::default(), 1).await?;
                meta.remember(&p.runs);
                Ok(Arc::new(
                    p.runs.iter().map(|r| (r.id, r.attempt())).collect(),
                ))
            })
            .await?)
    }

    /// A log's blob, or `None` when GitHub has none (404) or no longer has it (410: one
    /// warning). What exists is kept for the mount, its length and `ETag` in the cache for
    /// later mounts (asked for once); a missing answer for `--metadata-ttl`.
    async fn log_blob(&self, idx: RepoIdx, target: Download) -> FsResult<Option<LogBlob>> {
        let st = self.repo(idx);
        if let Some(Some(b)) = st.logs.blobs.fresh(&target, FOREVER) {
            return Ok(Some(b));
        }
        let (remote, repo) = (self.remote.clone(), st.repo.clone());
        let t = target.clone();
        let lengths = &self.log_lengths;
        let got = st
            .logs
            .blobs
            .get(&target, self.cfg.metadata_ttl, || async move {
                let key = format!("{repo} {t}");
                if let Some((len, etag)) = lengths.get(&key)
                    && let Some(b) = remote.known_log_blob(&repo, &t, len, etag)
                {
                    return Ok(Some(b));
                }
                match remote.log_blob(&repo, &t).await {
                    Ok(b) => {
                        lengths.set(key, (b.len, b.etag.clone()));
                        Ok(Some(b))
                    }
                    Err(ApiError::Gone(_)) => {
                        tracing::warn!(repo = %repo, "{t}: expired (410), shown as an empty directory");
                        Ok(None)
                    }
                    Err(ApiError::NotFound(_)) => {
                        tracing::info!(repo = %repo, "{t}: none (404), shown as an empty directory");
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(got)
    }

    /// What `logs/RUN/` (`attempt` `None`: the latest) holds now.
    pub(super) async fn log_dir(
        &self,
        idx: RepoIdx,
        run: u64,
        attempt: Option<u32>,
    ) -> FsResult<LogDir> {
        let info = self.run_info(idx, run).await?.ok_or(FsError::NotFound)?;
        let latest = info.attempt();
        let a = attempt.unwrap_or(latest);
        if a == 0 || a > latest {
            return Err(FsError::NotFound);
        }
        if a == latest && info.status.as_deref() != Some("completed") {
            return self.finished_jobs(idx, run).await.map(LogDir::Jobs);
        }
        // A run never re-run through its own endpoint, the attempts of one that was by
        // number (so that what is kept for an attempt is never another's).
        let target = Download::RunLogs {
            run,
            attempt: (latest > 1).then_some(a),
        };
        let Some(b) = self.log_blob(idx, target).await? else {
            return Ok(LogDir::Empty);
        };
        let blob = self.log_blob_ref(
            idx,
            &Download::RunLogs {
                run,
                attempt: Some(a),
            },
            &b,
        );
        let index = self.data.index(&blob).await?;
        Ok(LogDir::Archive {
            attempt: a,
            blob,
            index,
        })
    }

    /// The archive of attempt `attempt` of `run`, for reading its entries.
    pub(super) async fn log_archive(
        &self,
        idx: RepoIdx,
        run: u64,
        attempt: u32,
    ) -> FsResult<(BlobRef, Arc<ArchiveIndex>)> {
        match self.log_dir(idx, run, Some(attempt)).await? {
            LogDir::Archive { blob, index, .. } => Ok((blob, index)),
            _ => Err(FsError::NotFound),
        }
    }

    /// A run in progress's finished jobs: (file name, job id, length of its log).
    async fn finished_jobs(&self, idx: RepoIdx, run: u64) -> FsResult<Vec<(String, u64, u64)>> {
        let st = self.repo(idx);
        let (remote, repo) = (self.remote.clone(), st.repo.clone());
        let jobs = st
            .logs
            .jobs
            .get(&run, self.cfg.metadata_ttl, || async move {
                Ok(Arc::new(remote.run_jobs(&repo, run).await?))
            })
            .await?;
        let done: Vec<Job> = jobs.iter().filter(|j| j.finished()).cloned().collect();
        let names = job_file_names(&done);
        let mut out = Vec::new();
        for (job, name) in done.iter().zip(names) {
            if let Some(b) = self.log_blob(idx, Download::JobLogs(job.id)).await? {
                out.push((name, job.id, b.len));
            }
        }
        Ok(out)
    }

    /// A finished job's log, for reading.
    pub(super) async fn job_log(&self, idx: RepoIdx, job: u64) -> FsResult<BlobRef> {
        let target = Download::JobLogs(job);
        let b = (self.log_blob(idx, target.clone()).await?).ok_or(FsError::NotFound)?;
        Ok(self.log_blob_ref(idx, &target, &b))
    }

    /// A log's blob as the data layer sees it: keyed by what it is (run and attempt, or
    /// job), its length and `ETag`; no digest (the archive's entries have their CRCs).
    fn log_blob_ref(&self, idx: RepoIdx, target: &Download, b: &LogBlob) -> BlobRef {
        let mut version = match target {
            Download::RunLogs { attempt, .. } => format!("l{}-s{}", attempt.unwrap_or(0), b.len),
            _ => format!("s{}", b.len),
        };
        if let Some(etag) = &b.etag {
            version.push_str(&format!("-e{}", &hex::encode(Sha256::digest(etag))[..16]));
        }
        BlobRef {
            key: BlobKey {
                id: log_blob_id(target),
                version,
            },
            len: b.len,
            sha256: None,
            what: format!("{target} of {}", self.repo(idx).repo),
            remote: b.source.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_directory_names() {
        assert_eq!(parse_log_dir("42"), Some((42, None)));
        assert_eq!(parse_log_dir("42.2"), Some((42, Some(2))));
        for bad in ["042", "42.0", "42.", ".2", "x", "", "42.2.1", "0"] {
            assert_eq!(parse_log_dir(bad), None, "{bad}");
        }
        let job = |n: &str| Job {
            name: n.into(),
            ..Default::default()
        };
        assert_eq!(
            job_file_names(&[job("build"), job("a/b (x)"), job("build")]),
            ["build.txt", "a%2Fb (x).txt", "build (1).txt"]
        );
    }
}
