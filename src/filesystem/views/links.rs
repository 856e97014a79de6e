//! `latest/NAME` and `branches/BRANCH/NAME`: symlinks to the newest live artifact of each
//! name (on that branch), pointing into `runs/`.

use async_trait::async_trait;

use super::{View, dir_attr, link_attr};
use crate::filesystem::listing::parse_time;
use crate::filesystem::{
    ArtifactFs, Attr, FileKind, FsError, FsResult, Ino, LISTING_TTL, Node, VOLATILE_TTL,
};

pub struct Links;

#[async_trait]
impl View for Links {
    async fn child(&self, fs: &ArtifactFs, parent: &Node, name: &str) -> FsResult<Node> {
        match parent {
            Node::Latest(r) => {
                let l = fs.listing(*r).await?;
                l.latest.get(name).ok_or(FsError::NotFound)?;
                Ok(Node::LatestLink(*r, name.to_string()))
            }
            Node::Branches(r) => {
                let l = fs.listing(*r).await?;
                l.branches.get(name).ok_or(FsError::NotFound)?;
                Ok(Node::Branch(*r, name.to_string()))
            }
            Node::Branch(r, b) => {
                let l = fs.listing(*r).await?;
                l.branches
                    .get(b)
                    .and_then(|m| m.get(name))
                    .ok_or(FsError::NotFound)?;
                Ok(Node::BranchLink(*r, b.clone(), name.to_string()))
            }
            _ => Err(FsError::NotDir),
        }
    }

    async fn attr(&self, fs: &ArtifactFs, ino: Ino, node: &Node) -> FsResult<Attr> {
        let t0 = fs.mounted_at;
        Ok(match node {
            Node::Latest(r) | Node::Branches(r) => {
                let mtime = fs.listing(*r).await?.newest().unwrap_or(t0);
                dir_attr(ino, mtime, LISTING_TTL)
            }
            Node::Branch(r, b) => {
                let l = fs.listing(*r).await?;
                let m = l.branches.get(b).ok_or(FsError::NotFound)?;
                let mtime = m
                    .values()
                    .filter_map(|id| parse_time(l.artifact(*id)?.created_at.as_deref()))
                    .max()
                    .unwrap_or(t0);
                dir_attr(ino, mtime, LISTING_TTL)
            }
            _ => {
                let target = link_target(fs, node).await?;
                link_attr(ino, &target, t0, VOLATILE_TTL)
            }
        })
    }

    async fn list(&self, fs: &ArtifactFs, node: &Node) -> FsResult<Vec<(String, Node, FileKind)>> {
        let mut out = Vec::new();
        match node {
            Node::Latest(r) => {
                let l = fs.listing(*r).await?;
                for name in l.latest.keys() {
                    let link = Node::LatestLink(*r, name.clone());
                    out.push((name.clone(), link, FileKind::Symlink));
                }
            }
            Node::Branches(r) => {
                let l = fs.listing(*r).await?;
                for b in l.branches.keys() {
                    out.push((b.clone(), Node::Branch(*r, b.clone()), FileKind::Dir));
                }
            }
            Node::Branch(r, b) => {
                let l = fs.listing(*r).await?;
                for name in l.branches.get(b).ok_or(FsError::NotFound)?.keys() {
                    let link = Node::BranchLink(*r, b.clone(), name.clone());
                    out.push((name.clone(), link, FileKind::Symlink));
                }
            }
            _ => return Err(FsError::NotDir),
        }
        Ok(out)
    }

    fn parent(&self, _fs: &ArtifactFs, node: &Node) -> Node {
        match node {
            Node::Latest(r) | Node::Branches(r) => Node::Repo(*r),
            Node::Branch(r, _) => Node::Branches(*r),
            Node::LatestLink(r, _) => Node::Latest(*r),
            Node::BranchLink(r, b, _) => Node::Branch(*r, b.clone()),
            _ => Node::Root,
        }
    }
}

/// Where a `latest/` or `branches/` link points: `../runs/RUN/NAME` (one more `..` for a
/// branch).
pub async fn link_target(fs: &ArtifactFs, node: &Node) -> FsResult<String> {
    let (r, id, up) = match node {
        Node::LatestLink(r, name) => {
            let l = fs.listing(*r).await?;
            (*r, *l.latest.get(name).ok_or(FsError::NotFound)?, "..")
        }
        Node::BranchLink(r, b, name) => {
            let l = fs.listing(*r).await?;
            let id = *l
                .branches
                .get(b)
                .and_then(|m| m.get(name))
                .ok_or(FsError::NotFound)?;
            (*r, id, "../..")
        }
        _ => return super::ci::link_target(fs, node).await,
    };
    let l = fs.listing(r).await?;
    let (run, name) = l.run_name(id).ok_or(FsError::NotFound)?;
    Ok(format!("{up}/runs/{run}/{name}"))
}
