//! Typed shapes of GitHub's artifact objects, as the REST API returns them.

use serde::{Deserialize, Serialize};

/// `owner/repo`, as given on the command line or reached by path.
/// GitHub treats both parts case-insensitively; we keep the spelling we were given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RepoRef {
    pub owner: String,
    pub name: String,
}

impl RepoRef {
    pub fn new(owner: impl Into<String>, name: impl Into<String>) -> Self {
        RepoRef {
            owner: owner.into(),
            name: name.into(),
        }
    }

    /// Parses `owner/repo`.
    pub fn parse(s: &str) -> Option<Self> {
        let (owner, name) = s.split_once('/')?;
        let valid = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (valid(owner) && valid(name)).then(|| RepoRef::new(owner, name))
    }

    /// The key used to compare repositories (GitHub names are case-insensitive).
    pub fn key(&self) -> (String, String) {
        (
            self.owner.to_ascii_lowercase(),
            self.name.to_ascii_lowercase(),
        )
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// `workflow_run` inside an artifact object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRun {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub repository_id: Option<u64>,
    #[serde(default)]
    pub head_repository_id: Option<u64>,
    #[serde(default)]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub head_sha: Option<String>,
}

/// One artifact object (list, get).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub id: u64,
    #[serde(default)]
    pub node_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub size_in_bytes: u64,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub archive_download_url: Option<String>,
    #[serde(default)]
    pub expired: bool,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// `sha256:<hex>`; absent or null for old artifacts and on GHES.
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub workflow_run: Option<WorkflowRun>,
}

impl Artifact {
    /// The run this artifact belongs to (0 when the API did not say).
    pub fn run_id(&self) -> u64 {
        self.workflow_run.as_ref().and_then(|r| r.id).unwrap_or(0)
    }

    pub fn head_branch(&self) -> Option<&str> {
        self.workflow_run.as_ref()?.head_branch.as_deref()
    }

    /// The sha256 hex of the blob, when the API gave a `sha256:` digest.
    pub fn sha256_hex(&self) -> Option<&str> {
        let d = self.digest.as_deref()?;
        let hex = d.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
    }
}

/// The body of both list endpoints.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ArtifactList {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

/// What the blob behind an artifact is: a zip archive, or (upload-artifact v7) one raw file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArtifactKind {
    Zip,
    /// A single unzipped file; `file_name` from `Content-Disposition` when the blob host gave one.
    Raw {
        file_name: Option<String>,
    },
}
