//! `logs/`: the runs of the first page of the runs list (and their earlier attempts as
//! `RUN.ATTEMPT`), any run by path; `logs/RUN/` the entries of the run's log archive (its
//! sanitized tree, like an artifact's), or a run in progress's finished jobs as `JOB.txt`, or
//! nothing (logs expired). What it holds comes from `filesystem/logs.rs`. Everything has a
//! one-second kernel TTL: `logs/RUN/` follows the run (a re-run, a run completing).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{View, dir_attr};
use crate::archive::tree::NodeKind;
use crate::filesystem::listing::parse_time;
use crate::filesystem::logs::{LogDir, parse_log_dir};
use crate::filesystem::{ArtifactFs, Attr, FileKind, FsError, FsResult, Ino, LISTING_TTL, Node};

pub struct Logs;

/// The mtime of a run's log directory: when the run was last updated (a job finishing, the
/// run completing, a re-run).
async fn run_mtime(fs: &ArtifactFs, r: usize, run: u64) -> FsResult<SystemTime> {
    let info = fs.run_info(r, run).await?.ok_or(FsError::NotFound)?;
    Ok(
        parse_time(info.updated_at.as_deref().or(info.created_at.as_deref()))
            .unwrap_or(fs.mounted_at),
    )
}

#[async_trait]
impl View for Logs {
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node> {
        match *parent {
            Node::Logs(r) => {
                let (run, attempt) = parse_log_dir(name).ok_or(FsError::NotFound)?;
                let info = fs.run_info(r, run).await?.ok_or(FsError::NotFound)?;
                if attempt.is_some_and(|a| a > info.attempt()) {
                    return Err(FsError::NotFound);
                }
                Ok(Node::LogRun(r, run, attempt))
            }
            Node::LogRun(r, run, attempt) => match fs.log_dir(r, run, attempt).await? {
                LogDir::Archive { attempt, index, .. } => {
                    let n = index.tree.lookup(0, name).ok_or(FsError::NotFound)?;
                    Ok(Node::LogEntry(r, run, attempt, n))
                }
                LogDir::Jobs(jobs) => {
                    let (_, job, _) = (jobs.into_iter())
                        .find(|(n, _, _)| n == name)
                        .ok_or(FsError::NotFound)?;
                    Ok(Node::JobLog(r, run, job))
                }
                LogDir::Empty => Err(FsError::NotFound),
            },
            Node::LogEntry(r, run, attempt, dir) => {
                let (_, index) = fs.log_archive(r, run, attempt).await?;
                if !matches!(
                    index.tree.nodes.get(dir).map(|n| &n.kind),
                    Some(NodeKind::Dir { .. })
                ) {
                    return Err(FsError::NotDir);
                }
                let n = index.tree.lookup(dir, name).ok_or(FsError::NotFound)?;
                Ok(Node::LogEntry(r, run, attempt, n))
            }
            _ => Err(FsError::NotDir),
        }
    }

    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr> {
        Ok(match *node {
            Node::Logs(r) => {
                let mtime = fs.listing(r).await?.newest().unwrap_or(fs.mounted_at);
                dir_attr(ino, mtime, LISTING_TTL)
            }
            Node::LogRun(r, run, _) => dir_attr(ino, run_mtime(fs, r, run).await?, LISTING_TTL),
            Node::LogEntry(r, run, attempt, n) => {
                let (_, index) = fs.log_archive(r, run, attempt).await?;
                let tn = index.tree.nodes.get(n).ok_or(FsError::NotFound)?;
                let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(tn.mtime.max(0) as u64);
                match &tn.kind {
                    NodeKind::Dir { .. } => dir_attr(ino, mtime, LISTING_TTL),
                    NodeKind::File { entry } => Attr {
                        ino,
                        kind: FileKind::File,
                        size: index.cd.entries[*entry].uncompressed_size,
                        perm: 0o444,
                        mtime,
                        ttl: LISTING_TTL,
                    },
                }
            }
            Node::JobLog(r, run, job) => {
                let LogDir::Jobs(jobs) = fs.log_dir(r, run, None).await? else {
                    return Err(FsError::NotFound);
                };
                let (_, _, len) = (jobs.into_iter())
                    .find(|(_, j, _)| *j == job)
                    .ok_or(FsError::NotFound)?;
                Attr {
                    ino,
                    kind: FileKind::File,
                    size: len,
                    perm: 0o444,
                    mtime: run_mtime(fs, r, run).await?,
                    ttl: LISTING_TTL,
                }
            }
            _ => return Err(FsError::NotFound),
        })
    }

    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>> {
        let mut out = Vec::new();
        let entries =
            |out: &mut Vec<_>, r, run, attempt, index: &crate::data::ArchiveIndex, dir| {
                for &c in index.tree.children(dir) {
                    let child = &index.tree.nodes[c];
                    let kind = match child.kind {
                        NodeKind::Dir { .. } => FileKind::Dir,
                        NodeKind::File { .. } => FileKind::File,
                    };
                    out.push((child.name.clone(), Node::LogEntry(r, run, attempt, c), kind));
                }
            };
        match *node {
            Node::Logs(r) => {
                for &(run, attempt) in fs.log_runs(r).await?.iter() {
                    out.push((run.to_string(), Node::LogRun(r, run, None), FileKind::Dir));
                    for a in 1..attempt {
                        let name = format!("{run}.{a}");
                        out.push((name, Node::LogRun(r, run, Some(a)), FileKind::Dir));
                    }
                }
            }
            Node::LogRun(r, run, attempt) => match fs.log_dir(r, run, attempt).await? {
                LogDir::Archive { attempt, index, .. } => {
                    entries(&mut out, r, run, attempt, &index, 0)
                }
                LogDir::Jobs(jobs) => {
                    for (name, job, _) in jobs {
                        out.push((name, Node::JobLog(r, run, job), FileKind::File));
                    }
                }
                LogDir::Empty => {}
            },
            Node::LogEntry(r, run, attempt, dir) => {
                let (_, index) = fs.log_archive(r, run, attempt).await?;
                let tn = index.tree.nodes.get(dir).ok_or(FsError::NotFound)?;
                if !matches!(tn.kind, NodeKind::Dir { .. }) {
                    return Err(FsError::NotDir);
                }
                entries(&mut out, r, run, attempt, &index, dir);
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(out)
    }

    fn parent(&self, fs: &ArtifactFs, node: &Node) -> Node {
        match *node {
            Node::Logs(r) => Node::Repo(r),
            Node::LogRun(r, ..) => Node::Logs(r),
            // As in an artifact's directory: `..` of any directory inside is the run's.
            Node::LogEntry(r, run, attempt, _) => {
                let exact = Node::LogRun(r, run, Some(attempt));
                match fs.inodes.existing(&exact) {
                    Some(_) => exact,
                    None => Node::LogRun(r, run, None),
                }
            }
            Node::JobLog(r, run, _) => Node::LogRun(r, run, None),
            _ => Node::Root,
        }
    }
}
