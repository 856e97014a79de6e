//! Deleting: the unit is the artifact (`rm NAME.zip`, `rm NAME` of an unzipped artifact,
//! `rmdir NAME/`), one `DELETE` each; afterwards it is gone from every view at once, and the
//! names the kernel may have cached are returned to be invalidated.

use std::sync::Arc;

use super::listing::RunChild;
use super::{ArtifactFs, FsError, FsResult, Ino, Invalidation, Node, RepoIdx};
use crate::github::ApiError;

impl ArtifactFs {
    /// `rm`: deletes the artifact behind `runs/RUN/NAME.zip` or an unzipped `runs/RUN/NAME`.
    pub async fn unlink(&self, parent: Ino, name: &str) -> FsResult<Vec<Invalidation>> {
        let p = self.node(parent)?;
        if self.cfg.read_only {
            return Err(FsError::ReadOnly("mounted --read-only"));
        }
        match &p {
            Node::Run(..) => match self.child(&p, name).await? {
                Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                    self.delete_artifact(r, id).await
                }
                Node::ArtifactDir(..) => Err(FsError::IsDir),
                _ => Err(FsError::NotFound),
            },
            _ => Err(FsError::ReadOnly("only whole artifacts can be deleted")),
        }
    }

    /// `rmdir`: deletes the artifact behind `runs/RUN/NAME/` (even though it is not empty).
    pub async fn rmdir(&self, parent: Ino, name: &str) -> FsResult<Vec<Invalidation>> {
        let p = self.node(parent)?;
        if self.cfg.read_only {
            return Err(FsError::ReadOnly("mounted --read-only"));
        }
        match &p {
            Node::Run(..) => match self.child(&p, name).await? {
                Node::ArtifactDir(r, id) => self.delete_artifact(r, id).await,
                _ => Err(FsError::NotDir),
            },
            Node::Runs(r) => {
                let Node::Run(_, run) = self.child(&p, name).await? else {
                    return Err(FsError::NotFound);
                };
                // A run without live artifacts is removed by saying so: nothing is sent.
                if self.listing(*r).await?.runs.contains_key(&run) {
                    Err(FsError::NotEmpty)
                } else {
                    Ok(Vec::new())
                }
            }
            _ => Err(FsError::ReadOnly("only whole artifacts can be deleted")),
        }
    }

    async fn delete_artifact(&self, r: RepoIdx, id: u64) -> FsResult<Vec<Invalidation>> {
        let st = self.repo(r);
        // Names that point at the artifact now, to tell the kernel after the delete.
        let before = self.listing(r).await?;
        let mut stale = Vec::new();
        if let Some((run, name)) = before.run_name(id) {
            if let Some(run_ino) = self.inodes.existing(&Node::Run(r, run))
                && let Ok(kids) = self.run_children(r, run).await
            {
                for (n, c) in kids {
                    let cid = match c {
                        RunChild::ArtifactDir(i)
                        | RunChild::ArchiveFile(i)
                        | RunChild::RawFile(i) => i,
                    };
                    if cid == id {
                        stale.push(Invalidation {
                            parent: run_ino,
                            name: n,
                        });
                    }
                }
            }
            if let Some(latest_ino) = self.inodes.existing(&Node::Latest(r))
                && before.latest.get(name) == Some(&id)
            {
                stale.push(Invalidation {
                    parent: latest_ino,
                    name: name.to_string(),
                });
            }
            for (b, m) in &before.branches {
                if m.get(name) == Some(&id)
                    && let Some(bi) = self.inodes.existing(&Node::Branch(r, b.clone()))
                {
                    stale.push(Invalidation {
                        parent: bi,
                        name: name.to_string(),
                    });
                }
            }
        }
        match self.remote.delete_artifact(&st.repo, id).await {
            Ok(()) => {
                st.deletions
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(repo = %st.repo, artifact = id, "deleted artifact");
                {
                    let mut slot = st.listing.lock().unwrap();
                    if let Some(l) = slot.as_ref() {
                        *slot = Some(Arc::new(l.without(id)));
                    }
                }
                self.data.drop_blob(id);
                self.probes.forget(id);
                Ok(stale)
            }
            Err(e) => {
                if matches!(e, ApiError::NotFound(_)) {
                    // The server says it is gone: believe it at the next look.
                    *st.listing.lock().unwrap() = None;
                }
                Err(e.into())
            }
        }
    }
}
