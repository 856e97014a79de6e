//! The views that need what GitHub says about runs (`run_meta`): `workflows/W/NAME` and
//! `workflows/W/branches/B/NAME` (the newest live artifact NAME of a successful run of
//! workflow W, of the repository itself: nightly.link's rule), `commits/SHA/NAME` (runs at
//! that commit; a full sha, or a unique prefix of at least 7 hex digits among the shas known)
//! and `pulls/N/NAME` (runs at the pull request's current head commit, matched by sha since a
//! fork's pull request is not on its runs). Symlinks into `runs/`. Commits and pull requests
//! are reached by path only; unknown ones are ENOENT, remembered for `--metadata-ttl`.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::{View, dir_attr, link_attr};
use crate::filesystem::listing::{newest_by_name, own_run};
use crate::filesystem::names::encode_branch;
use crate::filesystem::{
    ArtifactFs, Attr, FileKind, FsError, FsResult, Ino, LISTING_TTL, Node, RepoIdx, VOLATILE_TTL,
};

pub struct Ci;

/// The shortest commit prefix `commits/` takes.
pub const MIN_PREFIX: usize = 7;

/// `workflows/W/…`'s artifacts: name → newest live artifact of a successful run of workflow
/// file `file` whose head repository is the repository itself (on `branch`, encoded, if
/// given).
async fn workflow_map(
    fs: &ArtifactFs,
    r: RepoIdx,
    file: &str,
    branch: Option<&str>,
) -> FsResult<BTreeMap<String, u64>> {
    let l = fs.listing(r).await?;
    let runs = fs.listing_runs(r).await?;
    let arts = l.artifacts.iter().filter(|a| {
        own_run(a)
            && runs.get(&a.run_id()).is_some_and(|run| {
                run.own() && run.succeeded() && run.workflow_file() == Some(file)
            })
            && branch.is_none_or(|b| a.head_branch().map(encode_branch).as_deref() == Some(b))
    });
    Ok(newest_by_name(arts))
}

/// The branches (encoded) that `workflows/W/branches/` has.
async fn workflow_branches(fs: &ArtifactFs, r: RepoIdx, file: &str) -> FsResult<BTreeSet<String>> {
    let l = fs.listing(r).await?;
    // Every branch one of the workflow's successful runs has an artifact on.
    let runs = fs.listing_runs(r).await?;
    Ok(l.artifacts
        .iter()
        .filter(|a| {
            own_run(a)
                && runs.get(&a.run_id()).is_some_and(|run| {
                    run.own() && run.succeeded() && run.workflow_file() == Some(file)
                })
        })
        .filter_map(|a| a.head_branch().filter(|b| !b.is_empty()).map(encode_branch))
        .collect())
}

/// Whether `file` is one of the repository's workflows.
async fn known_workflow(fs: &ArtifactFs, r: RepoIdx, file: &str) -> FsResult<bool> {
    Ok(fs.workflows(r).await?.iter().any(|w| w.file() == file))
}

/// `commits/SHA/`'s artifacts: name → newest live artifact of the runs at `sha` (forks
/// included: the path says which commit).
async fn commit_map(fs: &ArtifactFs, r: RepoIdx, sha: &str) -> FsResult<BTreeMap<String, u64>> {
    let l = fs.listing(r).await?;
    let at = |a: &&crate::github::Artifact| {
        a.workflow_run
            .as_ref()
            .and_then(|w| w.head_sha.as_deref())
            .is_some_and(|s| s.eq_ignore_ascii_case(sha))
    };
    Ok(newest_by_name(l.artifacts.iter().filter(at)))
}

/// The full sha `name` stands for under `commits/`: a full sha (always: a commit without
/// builds is an empty directory), or a prefix of at least [`MIN_PREFIX`] hex digits that
/// exactly one known head sha starts with.
async fn resolve_commit(fs: &ArtifactFs, r: RepoIdx, name: &str) -> FsResult<String> {
    let name = name.to_ascii_lowercase();
    if name.len() < MIN_PREFIX || name.len() > 40 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FsError::NotFound);
    }
    let l = fs.listing(r).await?;
    let mut known: BTreeSet<String> = l
        .artifacts
        .iter()
        .filter_map(|a| a.workflow_run.as_ref()?.head_sha.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    known.extend(
        fs.repo(r)
            .meta
            .known_shas()
            .into_iter()
            .map(|s| s.to_ascii_lowercase()),
    );
    if name.len() == 40 {
        // A full sha always resolves: a commit without builds is an empty directory.
        return Ok(name);
    }
    let mut matching = known.into_iter().filter(|s| s.starts_with(&name));
    match (matching.next(), matching.next()) {
        (Some(full), None) => Ok(full),
        _ => Err(FsError::NotFound),
    }
}

/// `pulls/N/`'s artifacts: those at the pull request's current head commit.
async fn pull_map(fs: &ArtifactFs, r: RepoIdx, n: u64) -> FsResult<BTreeMap<String, u64>> {
    let pr = fs.pull(r, n).await?.ok_or(FsError::NotFound)?;
    commit_map(fs, r, &pr.head.sha).await
}

/// The artifacts a directory of this view shows.
async fn map_of(fs: &ArtifactFs, dir: &Node) -> FsResult<BTreeMap<String, u64>> {
    match dir {
        Node::Workflow(r, w) => {
            let mut m = workflow_map(fs, *r, w, None).await?;
            // The branches directory wins over an artifact called `branches`.
            m.remove("branches");
            Ok(m)
        }
        Node::WorkflowBranch(r, w, b) => workflow_map(fs, *r, w, Some(b)).await,
        Node::Commit(r, sha) => commit_map(fs, *r, sha).await,
        Node::Pull(r, n) => pull_map(fs, *r, *n).await,
        _ => Err(FsError::NotDir),
    }
}

/// The link node called `name` in directory `dir`.
fn link_node(dir: &Node, name: &str) -> Node {
    let name = name.to_string();
    match dir {
        Node::Workflow(r, w) => Node::WorkflowLink(*r, w.clone(), None, name),
        Node::WorkflowBranch(r, w, b) => Node::WorkflowLink(*r, w.clone(), Some(b.clone()), name),
        Node::Commit(r, sha) => Node::CommitLink(*r, sha.clone(), name),
        Node::Pull(r, n) => Node::PullLink(*r, *n, name),
        _ => Node::Root,
    }
}

/// The directory a link is in, and its name there.
fn link_dir(link: &Node) -> Option<(Node, &str)> {
    Some(match link {
        Node::WorkflowLink(r, w, None, n) => (Node::Workflow(*r, w.clone()), n),
        Node::WorkflowLink(r, w, Some(b), n) => (Node::WorkflowBranch(*r, w.clone(), b.clone()), n),
        Node::CommitLink(r, sha, n) => (Node::Commit(*r, sha.clone()), n),
        Node::PullLink(r, pr, n) => (Node::Pull(*r, *pr), n),
        _ => return None,
    })
}

#[async_trait]
impl View for Ci {
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node> {
        match parent {
            Node::Workflows(r) => {
                if !known_workflow(fs, *r, name).await? {
                    return Err(FsError::NotFound);
                }
                Ok(Node::Workflow(*r, name.to_string()))
            }
            Node::Workflow(r, w) if name == "branches" => Ok(Node::WorkflowBranches(*r, w.clone())),
            Node::WorkflowBranches(r, w) => {
                if !workflow_branches(fs, *r, w).await?.contains(name) {
                    return Err(FsError::NotFound);
                }
                Ok(Node::WorkflowBranch(*r, w.clone(), name.to_string()))
            }
            Node::Commits(r) => Ok(Node::Commit(*r, resolve_commit(fs, *r, name).await?)),
            Node::Pulls(r) => {
                let n: u64 = name.parse().map_err(|_| FsError::NotFound)?;
                if n.to_string() != name || fs.pull(*r, n).await?.is_none() {
                    return Err(FsError::NotFound);
                }
                Ok(Node::Pull(*r, n))
            }
            Node::Workflow(..) | Node::WorkflowBranch(..) | Node::Commit(..) | Node::Pull(..) => {
                map_of(fs, parent)
                    .await?
                    .get(name)
                    .ok_or(FsError::NotFound)?;
                Ok(link_node(parent, name))
            }
            _ => Err(FsError::NotDir),
        }
    }

    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr> {
        let t0 = fs.mounted_at;
        match node {
            Node::WorkflowLink(..) | Node::CommitLink(..) | Node::PullLink(..) => {
                let target = link_target(fs, node).await?;
                Ok(link_attr(ino, &target, t0, VOLATILE_TTL))
            }
            Node::Workflow(..) | Node::WorkflowBranch(..) | Node::Commit(..) | Node::Pull(..) => {
                let m = map_of(fs, node).await?;
                let l = fs.listing(repo_of(node)).await?;
                let mtime = m
                    .values()
                    .filter_map(|id| {
                        crate::filesystem::listing::parse_time(
                            l.artifact(*id)?.created_at.as_deref(),
                        )
                    })
                    .max()
                    .unwrap_or(t0);
                Ok(dir_attr(ino, mtime, LISTING_TTL))
            }
            _ => Ok(dir_attr(ino, t0, LISTING_TTL)),
        }
    }

    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>> {
        let mut out = Vec::new();
        match node {
            Node::Workflows(r) => {
                let files: BTreeSet<String> = fs
                    .workflows(*r)
                    .await?
                    .iter()
                    .map(|w| w.file().to_string())
                    .collect();
                for f in files {
                    out.push((f.clone(), Node::Workflow(*r, f), FileKind::Dir));
                }
            }
            Node::WorkflowBranches(r, w) => {
                for b in workflow_branches(fs, *r, w).await? {
                    let n = Node::WorkflowBranch(*r, w.clone(), b.clone());
                    out.push((b, n, FileKind::Dir));
                }
            }
            // By path only.
            Node::Commits(_) | Node::Pulls(_) => {}
            Node::Workflow(..) | Node::WorkflowBranch(..) | Node::Commit(..) | Node::Pull(..) => {
                if let Node::Workflow(r, w) = node {
                    let n = Node::WorkflowBranches(*r, w.clone());
                    out.push(("branches".to_string(), n, FileKind::Dir));
                }
                for name in map_of(fs, node).await?.into_keys() {
                    let link = link_node(node, &name);
                    out.push((name, link, FileKind::Symlink));
                }
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(out)
    }

    fn parent(&self, _fs: &ArtifactFs, node: &Node) -> Node {
        match node {
            Node::Workflows(r) | Node::Commits(r) | Node::Pulls(r) => Node::Repo(*r),
            Node::Workflow(r, _) => Node::Workflows(*r),
            Node::WorkflowBranches(r, w) => Node::Workflow(*r, w.clone()),
            Node::WorkflowBranch(r, w, _) => Node::WorkflowBranches(*r, w.clone()),
            Node::Commit(r, _) => Node::Commits(*r),
            Node::Pull(r, _) => Node::Pulls(*r),
            link => link_dir(link).map_or(Node::Root, |(d, _)| d),
        }
    }
}

/// The repository a node of this view is in.
fn repo_of(node: &Node) -> RepoIdx {
    match node {
        Node::Workflows(r)
        | Node::Workflow(r, _)
        | Node::WorkflowBranches(r, _)
        | Node::WorkflowBranch(r, ..)
        | Node::WorkflowLink(r, ..)
        | Node::Commits(r)
        | Node::Commit(r, _)
        | Node::CommitLink(r, ..)
        | Node::Pulls(r)
        | Node::Pull(r, _)
        | Node::PullLink(r, ..) => *r,
        _ => 0,
    }
}

/// Where a link of this view points: `../../runs/RUN/NAME` (two more `..` under
/// `workflows/W/branches/B/`).
pub async fn link_target(fs: &ArtifactFs, node: &Node) -> FsResult<String> {
    let (dir, name) = link_dir(node).ok_or(FsError::NotFound)?;
    let id = *map_of(fs, &dir).await?.get(name).ok_or(FsError::NotFound)?;
    let up = match node {
        Node::WorkflowLink(_, _, Some(_), _) => "../../../..",
        _ => "../..",
    };
    let l = fs.listing(repo_of(node)).await?;
    let (run, name) = l.run_name(id).ok_or(FsError::NotFound)?;
    Ok(format!("{up}/runs/{run}/{name}"))
}
