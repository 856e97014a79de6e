//! Extended attributes: an artifact's API facts (`user.artifact.*`), a run's
//! (`user.run.*`, from the run metadata) and a zip entry's (`user.zip.*`).

use crate::archive::tree::NodeKind;
use crate::data::ArchiveIndex;
use crate::github::Run;

use super::{ArtifactFs, FsResult, Ino, Node};

impl ArtifactFs {
    /// A run directory's `user.run.*` attributes; `None` for any other node.
    pub async fn run_attributes(&self, ino: Ino) -> FsResult<Option<Vec<(String, String)>>> {
        match self.node(ino)? {
            Node::Run(r, run) | Node::LogRun(r, run, _) => Ok(Some(
                (self.run_info(r, run).await?)
                    .map(|info| run_xattrs(&info))
                    .unwrap_or_default(),
            )),
            _ => Ok(None),
        }
    }

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
            Node::Run(r, run) | Node::LogRun(r, run, _) => {
                if let Some(info) = self.run_info(r, run).await? {
                    out.extend(run_xattrs(&info));
                }
            }
            Node::Entry(r, id, n) => {
                let (_, index) = self.archive_index(r, id).await?;
                out.extend(zip_xattrs(&index, n));
            }
            Node::LogEntry(r, run, attempt, n) => {
                let (_, index) = self.log_archive(r, run, attempt).await?;
                out.extend(zip_xattrs(&index, n));
            }
            _ => {}
        }
        Ok(out)
    }
}

/// A zip entry's `user.zip.*` attributes (tree node `n`; none for a directory).
fn zip_xattrs(index: &ArchiveIndex, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
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
    out
}

/// A run's `user.run.*` attributes: workflow (file name), name, event, status, conclusion,
/// head_branch, head_sha, attempt, pull_requests (comma-separated numbers, empty for a fork's
/// pull request as the API lists none), url (its page on GitHub). Absent values are left out.
pub fn run_xattrs(run: &Run) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push((format!("user.run.{k}"), v));
        }
    };
    put("workflow", run.workflow_file().map(str::to_string));
    put("name", run.name.clone());
    put("event", run.event.clone());
    put("status", run.status.clone());
    put("conclusion", run.conclusion.clone());
    put("head_branch", run.head_branch.clone());
    put("head_sha", run.head_sha.clone());
    put("attempt", Some(run.attempt().to_string()));
    let prs: Vec<String> = run.pull_numbers().iter().map(u64::to_string).collect();
    put("pull_requests", Some(prs.join(",")));
    put("url", run.html_url.clone());
    out
}
