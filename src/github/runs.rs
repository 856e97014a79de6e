//! Typed shapes of workflow runs, workflows and pull requests, as the REST API returns them
//! (only the fields artifactfs uses; unknown fields are ignored), and the filters of the runs
//! list. What the core keeps about a run (its attributes, its attempt) comes from here, for
//! `runs/`, the views and the logs alike.

use serde::{Deserialize, Serialize};

/// `{"id": N}` of a repository inside a run or a pull request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoId {
    pub id: u64,
}

/// A pull request as a run lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPull {
    pub number: u64,
}

/// One workflow run (list, get).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    /// The workflow's name (`CI`).
    #[serde(default)]
    pub name: Option<String>,
    /// The workflow file's path (`.github/workflows/ci.yml`).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub workflow_id: Option<u64>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub head_sha: Option<String>,
    #[serde(default)]
    pub run_attempt: Option<u32>,
    #[serde(default)]
    pub run_number: Option<u64>,
    /// Empty for a pull request from a fork (match by `head_sha` then).
    #[serde(default)]
    pub pull_requests: Option<Vec<RunPull>>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub repository: Option<RepoId>,
    #[serde(default)]
    pub head_repository: Option<RepoId>,
}

impl Run {
    /// The workflow's file name (`ci.yml`): the last component of `path`, without a `@ref`.
    pub fn workflow_file(&self) -> Option<&str> {
        let p = self.path.as_deref()?;
        let p = p.split('@').next().unwrap_or(p);
        p.rsplit('/').next().filter(|f| !f.is_empty())
    }

    /// The run's latest attempt (1 when the API did not say).
    pub fn attempt(&self) -> u32 {
        self.run_attempt.unwrap_or(1).max(1)
    }

    /// Whether the run's head commit is in the repository itself (not a fork's).
    pub fn own(&self) -> bool {
        match (&self.repository, &self.head_repository) {
            (Some(r), Some(h)) => r.id == h.id,
            _ => false,
        }
    }

    /// `conclusion == success`.
    pub fn succeeded(&self) -> bool {
        self.conclusion.as_deref() == Some("success")
    }

    /// The numbers of the pull requests the API lists for the run.
    pub fn pull_numbers(&self) -> Vec<u64> {
        (self.pull_requests.iter().flatten())
            .map(|p| p.number)
            .collect()
    }

    /// The first 7 hex digits of the head commit.
    pub fn short_sha(&self) -> Option<&str> {
        self.head_sha.as_deref().map(|s| &s[..s.len().min(7)])
    }
}

/// The body of the runs lists.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunList {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub workflow_runs: Vec<Run>,
}

/// One page of a runs list.
#[derive(Clone, Debug, Default)]
pub struct RunsPage {
    pub runs: Vec<Run>,
    /// Whether a next page exists.
    pub more: bool,
}

/// The filters of `GET .../actions/runs` that artifactfs uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RunFilter {
    pub head_sha: Option<String>,
    pub branch: Option<String>,
    pub event: Option<String>,
    pub status: Option<String>,
}

impl RunFilter {
    pub fn head_sha(sha: &str) -> RunFilter {
        RunFilter {
            head_sha: Some(sha.to_string()),
            ..Default::default()
        }
    }

    /// The query pairs, in a stable order.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("branch", &self.branch),
            ("event", &self.event),
            ("status", &self.status),
            ("head_sha", &self.head_sha),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref()?)))
        .collect()
    }
}

/// One workflow (`GET .../actions/workflows`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    /// `.github/workflows/ci.yml`.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub state: Option<String>,
}

impl Workflow {
    /// The file name (`ci.yml`).
    pub fn file(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WorkflowList {
    #[serde(default)]
    pub total_count: u64,
    #[serde(default)]
    pub workflows: Vec<Workflow>,
}

/// A pull request's head (`GET .../pulls/{n}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullHead {
    pub sha: String,
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub repo: Option<RepoId>,
}

/// A pull request (`GET .../pulls/{n}`): what artifactfs needs of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    #[serde(default)]
    pub state: Option<String>,
    pub head: PullHead,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_files_and_forks() {
        let mut r = Run {
            path: Some(".github/workflows/ci.yml".into()),
            head_sha: Some("0123456789abcdef".into()),
            ..Default::default()
        };
        assert_eq!(r.workflow_file(), Some("ci.yml"));
        r.path = Some("octo/repo/.github/workflows/build.yml@main".into());
        assert_eq!(r.workflow_file(), Some("build.yml"));
        assert_eq!(r.short_sha(), Some("0123456"));
        assert_eq!(r.attempt(), 1);
        assert!(!r.own(), "unknown is not ours");
        r.repository = Some(RepoId { id: 1 });
        r.head_repository = Some(RepoId { id: 2 });
        assert!(!r.own());
        r.head_repository = Some(RepoId { id: 1 });
        assert!(r.own());
        let f = RunFilter::head_sha("abc");
        assert_eq!(f.pairs(), vec![("head_sha", "abc")]);
    }
}
