//! Which API endpoint a request is for. A repository is addressed by name
//! (`/repos/{owner}/{repo}/...`, case-insensitive) or, as GitHub's redirects for renamed and
//! transferred repositories do, by id (`/repositories/{id}/...`); owners by `/users/{login}`.

use axum::http::Method;

/// How a request names its repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RepoSel {
    Name(String, String),
    Id(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    ListRepo,
    ListRun(u64),
    Get(u64),
    Delete(u64),
    Download {
        id: u64,
        format: String,
    },
    /// `GET .../actions/runs`.
    ListRuns,
    /// `GET .../actions/runs/{id}`.
    GetRun(u64),
    /// `GET .../actions/runs/{id}/jobs`.
    RunJobs(u64),
    /// `GET .../actions/workflows`.
    ListWorkflows,
    /// `GET .../actions/workflows/{id or file name}` (what `gh run view` asks).
    GetWorkflow(String),
    /// `GET .../actions/workflows/{id or file name}/runs`.
    WorkflowRuns(String),
    /// `GET .../pulls/{number}`.
    GetPull(u64),
    /// `GET .../actions/runs/{id}/logs` (attempt `None`) or
    /// `.../runs/{id}/attempts/{n}/logs`.
    RunLogs(u64, Option<u32>),
    /// `GET .../actions/jobs/{job_id}/logs`.
    JobLogs(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /users/{login}` (users and organisations alike).
    User(String),
    /// An artifact endpoint; `rest` is the path after the repository part
    /// (`actions/artifacts/7/zip`), for redirects.
    Repo {
        repo: RepoSel,
        action: Action,
        rest: String,
    },
}

impl Route {
    /// The counter name of the endpoint.
    pub(crate) fn endpoint(&self) -> &'static str {
        match self {
            Route::User(_) => "user",
            Route::Repo { action, .. } => match action {
                Action::ListRepo => "list_repo",
                Action::ListRun(_) => "list_run",
                Action::Get(_) => "get",
                Action::Delete(_) => "delete",
                Action::Download { .. } => "download",
                Action::ListRuns => "runs",
                Action::GetRun(_) => "run",
                Action::RunJobs(_) => "jobs",
                Action::ListWorkflows => "workflows",
                Action::GetWorkflow(_) => "workflow",
                Action::WorkflowRuns(_) => "workflow_runs",
                Action::GetPull(_) => "pull",
                Action::RunLogs(..) => "run_logs",
                Action::JobLogs(_) => "job_logs",
            },
        }
    }
}

pub(crate) fn parse_route(method: &Method, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = *method == Method::GET || *method == Method::HEAD;
    let (repo, rest) = match segs.first().copied() {
        Some("users") if segs.len() == 2 && get && !segs[1].is_empty() => {
            return Some(Route::User(segs[1].to_string()));
        }
        Some("repos") if segs.len() >= 3 => (
            RepoSel::Name(segs[1].to_string(), segs[2].to_string()),
            &segs[3..],
        ),
        Some("repositories") if segs.len() >= 2 => (RepoSel::Id(segs[1].parse().ok()?), &segs[2..]),
        _ => return None,
    };
    let s = |i: usize| rest.get(i).copied().unwrap_or("");
    if s(0) == "pulls" && rest.len() == 2 && get {
        return Some(Route::Repo {
            repo,
            action: Action::GetPull(s(1).parse().ok()?),
            rest: rest.join("/"),
        });
    }
    if s(0) != "actions" {
        return None;
    }
    let action = match (rest.len(), s(1)) {
        (2, "runs") if get => Action::ListRuns,
        (3, "runs") if get => Action::GetRun(s(2).parse().ok()?),
        (4, "runs") if get && s(3) == "jobs" => Action::RunJobs(s(2).parse().ok()?),
        (4, "runs") if get && s(3) == "logs" => Action::RunLogs(s(2).parse().ok()?, None),
        (6, "runs") if get && s(3) == "attempts" && s(5) == "logs" => {
            Action::RunLogs(s(2).parse().ok()?, Some(s(4).parse().ok()?))
        }
        (4, "jobs") if get && s(3) == "logs" => Action::JobLogs(s(2).parse().ok()?),
        (2, "workflows") if get => Action::ListWorkflows,
        (3, "workflows") if get && !s(2).is_empty() => Action::GetWorkflow(s(2).to_string()),
        (4, "workflows") if get && s(3) == "runs" && !s(2).is_empty() => {
            Action::WorkflowRuns(s(2).to_string())
        }
        (2, "artifacts") if get => Action::ListRepo,
        (4, "runs") if get && s(3) == "artifacts" => Action::ListRun(s(2).parse().ok()?),
        (3, "artifacts") => {
            let id = s(2).parse().ok()?;
            if get {
                Action::Get(id)
            } else if *method == Method::DELETE {
                Action::Delete(id)
            } else {
                return None;
            }
        }
        (4, "artifacts") if get => Action::Download {
            id: s(2).parse().ok()?,
            format: s(3).to_string(),
        },
        _ => return None,
    };
    Some(Route::Repo {
        repo,
        action,
        rest: rest.join("/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(m: Method, p: &str) -> Option<Action> {
        match parse_route(&m, p)? {
            Route::Repo { action, .. } => Some(action),
            Route::User(_) => None,
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/artifacts"),
            Some(Action::ListRepo)
        );
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/runs/5/artifacts"),
            Some(Action::ListRun(5))
        );
        assert_eq!(
            action(Method::DELETE, "/repos/o/r/actions/artifacts/7"),
            Some(Action::Delete(7))
        );
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/artifacts/7/zip"),
            Some(Action::Download {
                id: 7,
                format: "zip".into()
            })
        );
        assert!(parse_route(&Method::POST, "/repos/o/r/actions/artifacts/7").is_none());
        assert!(parse_route(&Method::GET, "/repos/o/r/actions/artifacts/x").is_none());
        assert!(parse_route(&Method::GET, "/user").is_none());
        assert_eq!(
            parse_route(&Method::GET, "/users/Octo-Org"),
            Some(Route::User("Octo-Org".into()))
        );
        assert_eq!(
            parse_route(&Method::GET, "/repositories/42/actions/runs/5/artifacts"),
            Some(Route::Repo {
                repo: RepoSel::Id(42),
                action: Action::ListRun(5),
                rest: "actions/runs/5/artifacts".into()
            })
        );
        assert!(parse_route(&Method::GET, "/repositories/x/actions/artifacts").is_none());
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/runs"),
            Some(Action::ListRuns)
        );
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/runs/9/jobs"),
            Some(Action::RunJobs(9))
        );
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/workflows/ci.yml/runs"),
            Some(Action::WorkflowRuns("ci.yml".into()))
        );
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/workflows/160000"),
            Some(Action::GetWorkflow("160000".into()))
        );
        assert_eq!(
            action(Method::GET, "/repos/o/r/pulls/12"),
            Some(Action::GetPull(12))
        );
        assert!(parse_route(&Method::GET, "/repos/o/r/pulls/x").is_none());
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/runs/9/attempts/2/logs"),
            Some(Action::RunLogs(9, Some(2)))
        );
        assert_eq!(
            action(Method::GET, "/repos/o/r/actions/jobs/9001/logs"),
            Some(Action::JobLogs(9001))
        );
    }
}
