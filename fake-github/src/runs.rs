//! Workflow runs, their jobs, the workflows they belong to and pull requests: the fake's
//! model ([`FakeRunSpec`], [`FakePullSpec`]) and the endpoints that show it with GitHub's
//! shapes (`GET .../actions/runs` with the `branch`, `event`, `status`, `head_sha` filters,
//! `.../actions/runs/{id}`, `.../runs/{id}/jobs`, `.../actions/workflows`,
//! `.../actions/workflows/{id or file}/runs`, `GET .../pulls/{n}`), paged and with ETags like
//! the artifact lists. A run can be of a fork (its head repository is another one; then, as
//! on GitHub, its `pull_requests` is empty) and re-run (its attempt goes up). Every artifact
//! belongs to a run: one is made with defaults when an artifact names a run not added.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::shapes;
use crate::state::{State, rfc3339};

/// A workflow run to add to the fake (`FakeGitHub::add_run`).
#[derive(Clone, Debug)]
pub struct FakeRunSpec {
    pub owner: String,
    pub repo: String,
    pub id: u64,
    /// The workflow's file name under `.github/workflows/` (`ci.yml`).
    pub workflow: String,
    /// The workflow's name (`CI`).
    pub workflow_name: String,
    pub event: String,
    /// `queued`, `in_progress`, `completed`.
    pub status: String,
    /// `success`, `failure`, `cancelled`...; `None` while the run is not completed.
    pub conclusion: Option<String>,
    pub head_branch: String,
    pub head_sha: String,
    pub attempt: u32,
    /// `owner/name` of the fork the run's head commit is in (a pull request from a fork).
    pub fork: Option<String>,
    /// Pull requests the run lists (ignored for a fork's run: GitHub lists none there).
    pub pull_requests: Vec<u64>,
    /// The names of its jobs.
    pub jobs: Vec<String>,
    /// Default: the fake's clock (one second after the last thing created).
    pub created_at: Option<OffsetDateTime>,
    /// A job whose log carries this many bytes more (tens of MiB, made cheaply).
    pub big_log: Option<(String, usize)>,
    /// Jobs whose step files the log archive lacks (GitHub leaves them out at times).
    pub no_step_files: Vec<String>,
}

/// The sha the fake gives run `run_id` when none is given: 40 hex digits that differ from
/// the first digit on (so short prefixes tell runs apart, as real commit shas do).
pub fn default_sha(run_id: u64) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(run_id.to_le_bytes());
    hex::encode(h)[..40].to_string()
}

impl FakeRunSpec {
    /// A completed, successful `push` run of `ci.yml` on `main`.
    pub fn new(owner: &str, repo: &str, id: u64) -> FakeRunSpec {
        FakeRunSpec {
            owner: owner.into(),
            repo: repo.into(),
            id,
            workflow: "ci.yml".into(),
            workflow_name: "CI".into(),
            event: "push".into(),
            status: "completed".into(),
            conclusion: Some("success".into()),
            head_branch: "main".into(),
            head_sha: default_sha(id),
            attempt: 1,
            fork: None,
            pull_requests: Vec::new(),
            jobs: vec!["build".into()],
            created_at: None,
            big_log: None,
            no_step_files: Vec::new(),
        }
    }

    pub fn workflow(mut self, file: &str, name: &str) -> Self {
        self.workflow = file.into();
        self.workflow_name = name.into();
        self
    }

    pub fn event(mut self, event: &str) -> Self {
        self.event = event.into();
        self
    }

    /// Completed with this conclusion (`failure`, `cancelled`...).
    pub fn conclusion(mut self, conclusion: &str) -> Self {
        self.status = "completed".into();
        self.conclusion = Some(conclusion.into());
        self
    }

    /// Still running: no conclusion yet.
    pub fn in_progress(mut self) -> Self {
        self.status = "in_progress".into();
        self.conclusion = None;
        self
    }

    head_commit_setters!();

    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The head commit is in fork `owner/name` (a `pull_request` run from a fork).
    pub fn from_fork(mut self, fork: &str) -> Self {
        self.fork = Some(fork.into());
        self.event = "pull_request".into();
        self
    }

    pub fn pull_requests(mut self, numbers: &[u64]) -> Self {
        self.pull_requests = numbers.to_vec();
        self
    }

    pub fn jobs(mut self, jobs: &[&str]) -> Self {
        self.jobs = jobs.iter().map(|j| j.to_string()).collect();
        self
    }

    /// Job `job`'s log (its `Run tests` step) gets `bytes` more of test output.
    pub fn big_log(mut self, job: &str, bytes: usize) -> Self {
        self.big_log = Some((job.into(), bytes));
        self
    }

    /// The log archive has no step files for job `job`.
    pub fn without_step_files(mut self, job: &str) -> Self {
        self.no_step_files.push(job.into());
        self
    }
}

/// A pull request to add to the fake (`FakeGitHub::add_pull`).
#[derive(Clone, Debug)]
pub struct FakePullSpec {
    pub owner: String,
    pub repo: String,
    pub number: u64,
    /// The current head commit.
    pub head_sha: String,
    pub head_ref: String,
    /// `owner/name` of the fork the head branch is in.
    pub fork: Option<String>,
    pub state: String,
}

impl FakePullSpec {
    pub fn new(owner: &str, repo: &str, number: u64, head_ref: &str, head_sha: &str) -> Self {
        FakePullSpec {
            owner: owner.into(),
            repo: repo.into(),
            number,
            head_sha: head_sha.into(),
            head_ref: head_ref.into(),
            fork: None,
            state: "open".into(),
        }
    }

    pub fn from_fork(mut self, fork: &str) -> Self {
        self.fork = Some(fork.into());
        self
    }
}

/// A workflow: (id, name, when it was created).
pub(crate) type Workflow = (u64, String, OffsetDateTime);

pub(crate) struct StoredRun {
    pub spec: FakeRunSpec,
    pub repo: (String, String),
    pub head_repo: (String, String),
    pub run_number: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Jobs (by index) of a run in progress that have finished.
    pub jobs_done: std::collections::BTreeSet<usize>,
}

pub(crate) struct StoredPull {
    pub spec: FakePullSpec,
    pub head_repo: (String, String),
    pub created_at: OffsetDateTime,
}

/// The path of a workflow file in its repository.
pub(crate) fn workflow_path(file: &str) -> String {
    format!(".github/workflows/{file}")
}

impl State {
    /// A repository's id, creating the repository (public) if it does not exist.
    fn repo_id_or_add(&mut self, full: &str) -> (String, String) {
        let (o, n) = full.split_once('/').unwrap_or((full, full));
        let k = crate::state::key(o, n);
        if !self.repos.contains_key(&k) {
            self.add_repo(o, n, false);
        }
        k
    }

    pub(crate) fn add_run(&mut self, spec: FakeRunSpec) {
        let repo = self.repo_id_or_add(&format!("{}/{}", spec.owner, spec.repo));
        let head_repo = match &spec.fork {
            Some(f) => self.repo_id_or_add(f),
            None => repo.clone(),
        };
        let created_at = spec.created_at.unwrap_or_else(|| {
            self.clock += time::Duration::seconds(1);
            self.clock
        });
        let path = workflow_path(&spec.workflow);
        let wf_key = (repo.clone(), path);
        if !self.workflows.contains_key(&wf_key) {
            let id = 160_000 + self.workflows.len() as u64;
            self.workflows
                .insert(wf_key, (id, spec.workflow_name.clone(), created_at));
        }
        let (run_number, created_at) = match self.runs.get(&spec.id) {
            Some(old) => (old.run_number, old.created_at),
            None => {
                let n = self.runs.values().filter(|r| r.repo == repo).count() as u64 + 1;
                (n, created_at)
            }
        };
        self.runs.insert(
            spec.id,
            StoredRun {
                spec,
                repo,
                head_repo,
                run_number,
                created_at,
                updated_at: created_at,
                jobs_done: Default::default(),
            },
        );
    }

    /// A default run for an artifact that names a run not added yet.
    pub(crate) fn ensure_run(
        &mut self,
        owner: &str,
        repo: &str,
        id: u64,
        branch: &str,
        sha: &str,
        at: OffsetDateTime,
    ) {
        if !self.runs.contains_key(&id) {
            self.add_run(
                FakeRunSpec::new(owner, repo, id)
                    .branch(branch)
                    .sha(sha)
                    .created_at(at),
            );
        }
    }

    /// Re-runs run `id`: its attempt goes up and it is updated now.
    pub(crate) fn rerun(&mut self, id: u64) {
        self.clock += time::Duration::seconds(1);
        let now = self.clock;
        if let Some(r) = self.runs.get_mut(&id) {
            r.spec.attempt += 1;
            r.updated_at = now;
        }
    }

    /// Job `job` (index) of run `id`, in progress, finishes (with success).
    pub(crate) fn finish_job(&mut self, id: u64, job: usize) {
        self.clock += time::Duration::seconds(1);
        let now = self.clock;
        if let Some(r) = self.runs.get_mut(&id) {
            r.jobs_done.insert(job);
            r.updated_at = now;
        }
    }

    /// Run `id` completes with `conclusion`: every job has finished.
    pub(crate) fn complete_run(&mut self, id: u64, conclusion: &str) {
        self.clock += time::Duration::seconds(1);
        let now = self.clock;
        if let Some(r) = self.runs.get_mut(&id) {
            r.spec.status = "completed".into();
            r.spec.conclusion = Some(conclusion.into());
            r.updated_at = now;
        }
    }

    pub(crate) fn add_pull(&mut self, spec: FakePullSpec) {
        let repo = self.repo_id_or_add(&format!("{}/{}", spec.owner, spec.repo));
        let head_repo = match &spec.fork {
            Some(f) => self.repo_id_or_add(f),
            None => repo.clone(),
        };
        self.clock += time::Duration::seconds(1);
        let created_at = self.clock;
        self.pulls.insert(
            (repo, spec.number),
            StoredPull {
                spec,
                head_repo,
                created_at,
            },
        );
    }

    fn repo_json(&self, base: &str, k: &(String, String)) -> Value {
        let r = &self.repos[k];
        shapes::repository(base, &r.owner, &r.name, r.id, false)
    }

    /// A run (`workflow-run`).
    pub(crate) fn run_json(&self, base: &str, r: &StoredRun) -> Value {
        let repo = &self.repos[&r.repo];
        let head = &self.repos[&r.head_repo];
        let s = &r.spec;
        let rb = format!("{base}/repos/{}/{}", repo.owner, repo.name);
        let u = format!("{rb}/actions/runs/{}", s.id);
        let path = workflow_path(&s.workflow);
        let wf_id = self
            .workflows
            .get(&(r.repo.clone(), path.clone()))
            .map_or(0, |w| w.0);
        let fork = r.head_repo != r.repo;
        let pulls: Vec<Value> = if fork {
            Vec::new()
        } else {
            s.pull_requests
                .iter()
                .map(|&n| {
                    shapes::pull_minimal(
                        base,
                        (&repo.owner, &repo.name, repo.id),
                        n,
                        (&s.head_branch, &s.head_sha, head.id, &head.name),
                        "main",
                        &default_sha(n),
                    )
                })
                .collect()
        };
        let created = rfc3339(r.created_at);
        let updated = rfc3339(r.updated_at);
        let mut head_repo = self.repo_json(base, &r.head_repo);
        head_repo["fork"] = Value::Bool(fork);
        let actor = shapes::user(base, &head.owner, 9000 + head.id % 1000);
        let mut v = json!({
            "id": s.id, "name": s.workflow_name, "node_id": format!("WFR_kw{}", s.id),
            "check_suite_id": s.id + 1, "check_suite_node_id": format!("CS_kw{}", s.id + 1),
            "head_branch": s.head_branch, "head_sha": s.head_sha,
            "path": path, "display_title": format!("{} #{}", s.workflow_name, r.run_number),
            "run_number": r.run_number, "run_attempt": s.attempt, "referenced_workflows": [],
            "event": s.event, "status": s.status, "conclusion": s.conclusion,
            "workflow_id": wf_id, "url": u,
            "html_url": format!("https://github.com/{}/{}/actions/runs/{}", repo.owner, repo.name, s.id),
            "pull_requests": pulls, "created_at": created, "updated_at": updated,
            "actor": actor.clone(), "triggering_actor": actor, "run_started_at": updated,
            "jobs_url": format!("{u}/jobs"), "logs_url": format!("{u}/logs"),
            "check_suite_url": format!("{rb}/check-suites/{}", s.id + 1),
            "artifacts_url": format!("{u}/artifacts"), "cancel_url": format!("{u}/cancel"),
            "rerun_url": format!("{u}/rerun"),
            "workflow_url": format!("{rb}/actions/workflows/{wf_id}"),
            "head_commit": shapes::head_commit(&s.head_sha, &created),
            "repository": self.repo_json(base, &r.repo), "head_repository": head_repo,
            "head_repository_id": head.id,
        });
        if s.attempt > 1 {
            v["previous_attempt_url"] = Value::String(format!("{u}/attempts/{}", s.attempt - 1));
        }
        v
    }

    /// A run's jobs (`job`): those of its latest attempt, or of every attempt.
    pub(crate) fn jobs_json(&self, base: &str, r: &StoredRun, all: bool) -> Vec<Value> {
        let repo = &self.repos[&r.repo];
        let s = &r.spec;
        let rb = format!("{base}/repos/{}/{}", repo.owner, repo.name);
        let first = if all { 1 } else { s.attempt };
        let mut out = Vec::new();
        for attempt in first..=s.attempt {
            let latest = attempt == s.attempt;
            for (i, name) in s.jobs.iter().enumerate() {
                let id = s.id * 1000 + u64::from(attempt) * 100 + i as u64;
                let (status, conclusion) = if !latest {
                    ("completed".to_string(), Some("failure".to_string()))
                } else if s.status != "completed" && r.jobs_done.contains(&i) {
                    ("completed".to_string(), Some("success".to_string()))
                } else {
                    (s.status.clone(), s.conclusion.clone())
                };
                let at = rfc3339(r.created_at);
                let steps: Vec<Value> = (crate::logs::STEPS.iter().enumerate())
                    .map(|(n, step)| {
                        let done = status == "completed";
                        json!({
                            "name": step, "number": n + 1,
                            "status": if done { "completed" } else { "in_progress" },
                            "conclusion": if done { conclusion.clone().map_or(Value::Null, Value::String) } else { Value::Null },
                            "started_at": at, "completed_at": if done { Value::String(at.clone()) } else { Value::Null },
                        })
                    })
                    .collect();
                out.push(json!({
                    "id": id, "run_id": s.id, "run_url": format!("{rb}/actions/runs/{}", s.id),
                    "run_attempt": attempt, "node_id": format!("CR_kw{id}"), "head_sha": s.head_sha,
                    "url": format!("{rb}/actions/jobs/{id}"),
                    "html_url": format!("https://github.com/{}/{}/actions/runs/{}/job/{id}", repo.owner, repo.name, s.id),
                    "status": status, "conclusion": conclusion,
                    "created_at": at, "started_at": at,
                    "completed_at": if status == "completed" { Value::String(at.clone()) } else { Value::Null },
                    "name": name, "steps": steps, "check_run_url": format!("{rb}/check-runs/{id}"),
                    "labels": ["ubuntu-latest"], "runner_id": 1, "runner_name": "GitHub Actions 1",
                    "runner_group_id": 1, "runner_group_name": "GitHub Actions",
                    "workflow_name": s.workflow_name, "head_branch": s.head_branch,
                }));
            }
        }
        out
    }

    /// A workflow (`workflow`).
    pub(crate) fn workflow_json(
        &self,
        base: &str,
        repo: &(String, String),
        path: &str,
        (id, name, at): &Workflow,
    ) -> Value {
        let r = &self.repos[repo];
        let rb = format!("{base}/repos/{}/{}", r.owner, r.name);
        let html = format!("https://github.com/{}/{}/blob/main/{path}", r.owner, r.name);
        json!({
            "id": id, "node_id": format!("W_kw{id}"), "name": name, "path": path,
            "state": "active", "created_at": rfc3339(*at), "updated_at": rfc3339(*at),
            "url": format!("{rb}/actions/workflows/{id}"), "html_url": html,
            "badge_url": format!("https://github.com/{}/{}/workflows/{}/badge.svg", r.owner, r.name, name),
        })
    }

    /// A pull request (`pull-request`).
    pub(crate) fn pull_json(&self, base: &str, repo: &(String, String), p: &StoredPull) -> Value {
        let mut head_repo = self.repo_json(base, &p.head_repo);
        head_repo["fork"] = Value::Bool(p.head_repo != *repo);
        shapes::pull(
            base,
            self.repo_json(base, repo),
            p.spec.number,
            &p.spec.state,
            &p.spec.head_ref,
            &p.spec.head_sha,
            head_repo,
            &default_sha(p.spec.number),
            &rfc3339(p.created_at),
        )
    }

    /// The runs of `repo` that the filters of a runs list (`query`) keep, newest first;
    /// `workflow` (a workflow's id or file name) for `.../workflows/{w}/runs`.
    /// A repository's workflow by id or by file name (`ci.yml`), as GitHub's
    /// `{workflow_id}` takes either: its path and record.
    pub(crate) fn find_workflow(
        &self,
        repo: &(String, String),
        w: &str,
    ) -> Option<(&str, &Workflow)> {
        self.workflows
            .iter()
            .find(|((r, path), (id, _, _))| {
                r == repo && (id.to_string() == w || path.rsplit('/').next() == Some(w))
            })
            .map(|((_, path), wf)| (path.as_str(), wf))
    }

    pub(crate) fn runs_matching(
        &self,
        repo: &(String, String),
        workflow: Option<&str>,
        query: &str,
    ) -> Option<Vec<&StoredRun>> {
        use crate::api::{percent_decode, query_param};
        let q = |n: &str| query_param(query, n).map(percent_decode);
        let (branch, event, status, sha) = (q("branch"), q("event"), q("status"), q("head_sha"));
        let wf_path = match workflow {
            None => None,
            Some(w) => Some(self.find_workflow(repo, w)?.0.to_string()),
        };
        let mut v: Vec<&StoredRun> = self
            .runs
            .values()
            .filter(|r| &r.repo == repo)
            .filter(|r| {
                wf_path
                    .as_ref()
                    .is_none_or(|p| *p == workflow_path(&r.spec.workflow))
            })
            .filter(|r| branch.as_ref().is_none_or(|b| *b == r.spec.head_branch))
            .filter(|r| event.as_ref().is_none_or(|e| *e == r.spec.event))
            .filter(|r| {
                status.as_ref().is_none_or(|s| {
                    *s == r.spec.status || r.spec.conclusion.as_deref() == Some(s.as_str())
                })
            })
            .filter(|r| sha.as_ref().is_none_or(|s| *s == r.spec.head_sha))
            .collect();
        v.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.spec.id.cmp(&a.spec.id))
        });
        Some(v)
    }
}
