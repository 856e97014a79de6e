//! Extended attributes: an artifact's API facts (`user.artifact.*`), a zip entry's
//! (`user.zip.*`), and for archives inside an artifact `user.archive.contents` (on the file:
//! the name of its `FILE.d/`) and `user.archive.symlink` (a link shown as a file).

use crate::archive::inner::{contents_name, opens_as_archive};
use crate::archive::tree::{ArchiveTree, NodeKind};

use super::{ArtifactFs, FsResult, Ino, Node};

impl ArtifactFs {
    /// Extended attributes of a node: name → value.
    pub async fn xattrs(&self, ino: Ino) -> FsResult<Vec<(String, String)>> {
        let node = self.node(ino)?;
        let mut out = Vec::new();
        match node {
            Node::ArtifactDir(r, id) | Node::ArchiveFile(r, id) | Node::RawFile(r, id) => {
                let a = self.artifact(r, id).await?;
                let run = a.workflow_run.clone().unwrap_or_default();
                out.push(("user.artifact.id".into(), a.id.to_string()));
                if let Some(d) = &a.digest {
                    out.push(("user.artifact.digest".into(), d.clone()));
                }
                out.push(("user.artifact.run_id".into(), a.run_id().to_string()));
                if let Some(b) = run.head_branch {
                    out.push(("user.artifact.head_branch".into(), b));
                }
                if let Some(s) = run.head_sha {
                    out.push(("user.artifact.head_sha".into(), s));
                }
                if let Some(t) = &a.created_at {
                    out.push(("user.artifact.created_at".into(), t.clone()));
                }
                if let Some(t) = &a.expires_at {
                    out.push(("user.artifact.expires_at".into(), t.clone()));
                }
                out.push(("user.artifact.size".into(), a.size_in_bytes.to_string()));
            }
            Node::Entry(r, id, n) => {
                let (_, index) = self.archive_index(r, id).await?;
                if let Some(NodeKind::File { entry }) = index.tree.nodes.get(n).map(|t| &t.kind) {
                    let e = &index.cd.entries[*entry];
                    out.push(("user.zip.crc32".into(), format!("{:08x}", e.crc32)));
                    let method = match e.method {
                        0 => "stored".to_string(),
                        8 => "deflated".to_string(),
                        m => m.to_string(),
                    };
                    out.push(("user.zip.method".into(), method));
                    out.push((
                        "user.zip.compressed_size".into(),
                        e.compressed_size.to_string(),
                    ));
                }
                out.extend(contents_xattr(&index.tree, n));
            }
            Node::Inner(a, n) => {
                let archive = self.inner(a).await?;
                if let Some(t) = archive.index.escaping_target(n) {
                    out.push(("user.archive.symlink".into(), t.to_string()));
                } else if archive.index.link_target(n).is_none()
                    && self.inner_depth(a) < crate::archive::inner::MAX_DEPTH
                {
                    out.extend(contents_xattr(&archive.index.tree, n));
                }
            }
            _ => {}
        }
        Ok(out)
    }
}

/// `user.archive.contents` for a file of `tree` that opens at `FILE.d/` (unless a real entry
/// has that name: it wins).
fn contents_xattr(tree: &ArchiveTree, n: usize) -> Option<(String, String)> {
    let t = tree.nodes.get(n)?;
    let contents = contents_name(&t.name);
    (matches!(t.kind, NodeKind::File { .. })
        && opens_as_archive(&t.name)
        && tree.lookup(t.parent, &contents).is_none())
    .then(|| ("user.archive.contents".to_string(), contents))
}
