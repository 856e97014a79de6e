//! The root, owners and repositories: `MOUNT/`, `MOUNT/OWNER/`, `MOUNT/OWNER/REPO/`.
//! Owners and repositories named on the command line are listed; others exist when GitHub
//! says so (reached by path).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use super::{View, dir_attr};
use crate::filesystem::names::{valid_owner, valid_repo};
use crate::filesystem::{
    ArtifactFs, Attr, FileKind, FsError, FsResult, Ino, LISTING_TTL, Node, RepoIdx,
};
use crate::github::RepoRef;

pub struct Top;

#[async_trait]
impl View for Top {
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node> {
        match parent {
            Node::Root => {
                let owner = name.to_ascii_lowercase();
                // An owner not named on the command line exists only if GitHub says so.
                if !valid_owner(name) || !fs.owner_exists(&owner).await? {
                    return Err(FsError::NotFound);
                }
                Ok(Node::Owner(owner))
            }
            Node::Owner(owner) => {
                if !valid_repo(name) {
                    return Err(FsError::NotFound);
                }
                let repo = RepoRef::new(owner_display(fs, owner), name);
                let known = fs.repos.lock().unwrap().by_key.get(&repo.key()).copied();
                let idx = match known {
                    Some(i) => i,
                    None => fs.repo_idx(&repo, false),
                };
                // A repo not named on the command line exists if it can be listed.
                fs.listing(idx).await?;
                fs.repo_idx(&repo, true);
                Ok(Node::Repo(idx))
            }
            Node::Repo(r) => match name {
                "runs" => Ok(Node::Runs(*r)),
                "latest" => Ok(Node::Latest(*r)),
                "branches" => Ok(Node::Branches(*r)),
                "workflows" => Ok(Node::Workflows(*r)),
                "commits" => Ok(Node::Commits(*r)),
                "pulls" => Ok(Node::Pulls(*r)),
                _ => Err(FsError::NotFound),
            },
            _ => Err(FsError::NotDir),
        }
    }

    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr> {
        Ok(match node {
            Node::Repo(r) => {
                let mtime = fs.listing(*r).await?.newest().unwrap_or(fs.mounted_at);
                dir_attr(ino, mtime, LISTING_TTL)
            }
            _ => dir_attr(ino, fs.mounted_at, LISTING_TTL),
        })
    }

    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>> {
        let mut out = Vec::new();
        match node {
            Node::Root => {
                let owners: BTreeSet<String> = {
                    let repos = fs.repos.lock().unwrap();
                    repos
                        .list
                        .iter()
                        .filter(|s| s.visible.load(Ordering::Relaxed))
                        .map(|s| s.repo.owner.clone())
                        .collect()
                };
                for o in owners {
                    let lc = o.to_ascii_lowercase();
                    out.push((o, Node::Owner(lc), FileKind::Dir));
                }
            }
            Node::Owner(owner) => {
                let repos: Vec<(String, RepoIdx)> = {
                    let repos = fs.repos.lock().unwrap();
                    repos
                        .list
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| {
                            s.visible.load(Ordering::Relaxed)
                                && s.repo.owner.eq_ignore_ascii_case(owner)
                        })
                        .map(|(i, s)| (s.repo.name.clone(), i))
                        .collect()
                };
                for (name, i) in repos {
                    out.push((name, Node::Repo(i), FileKind::Dir));
                }
            }
            Node::Repo(r) => {
                out.push(("branches".into(), Node::Branches(*r), FileKind::Dir));
                out.push(("commits".into(), Node::Commits(*r), FileKind::Dir));
                out.push(("latest".into(), Node::Latest(*r), FileKind::Dir));
                out.push(("pulls".into(), Node::Pulls(*r), FileKind::Dir));
                out.push(("runs".into(), Node::Runs(*r), FileKind::Dir));
                out.push(("workflows".into(), Node::Workflows(*r), FileKind::Dir));
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(out)
    }

    fn parent(&self, fs: &ArtifactFs, node: &Node) -> Node {
        match node {
            Node::Repo(r) => Node::Owner(fs.repo(*r).repo.owner.to_ascii_lowercase()),
            _ => Node::Root,
        }
    }
}

/// An owner's name as the command line spelled it (else as asked, lower-cased).
fn owner_display(fs: &ArtifactFs, owner_lc: &str) -> String {
    let repos = fs.repos.lock().unwrap();
    repos
        .list
        .iter()
        .find(|st| st.repo.owner.eq_ignore_ascii_case(owner_lc))
        .map(|st| st.repo.owner.clone())
        .unwrap_or_else(|| owner_lc.to_string())
}
