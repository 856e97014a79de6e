//! Extended attributes: an artifact's API facts (`user.artifact.*`) and a zip entry's
//! (`user.zip.*`).

use crate::archive::tree::NodeKind;

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
            }
            _ => {}
        }
        Ok(out)
    }
}
