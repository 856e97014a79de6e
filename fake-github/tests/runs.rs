//! Runs, jobs, workflows and pulls over plain HTTP, each answer checked against GitHub's
//! OpenAPI description (`github-openapi/actions.json`): a fork's run (another head
//! repository, no `pull_requests`, its artifacts say so too), a re-run's attempt, a failed
//! run, the `head_sha`/`branch`/`event`/`status` filters, paging and the free 304.

mod common;

use fake_github::openapi::OpenApi;
use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub, FakePullSpec, FakeRunSpec};
use reqwest::StatusCode;
use serde_json::Value;

use common::{Answer, spec};

const TOKEN: &str = "test-token";
const FORK_SHA: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

fn get(url: &str, extra: &[(&str, &str)]) -> Answer {
    common::get(url, Some(TOKEN), extra)
}

/// `o/r` with: run 10 (ci.yml, push, main, success, re-run once), run 11 (ci.yml, main,
/// failure), run 12 (nightly.yml, schedule), run 13 (a pull request from fork `forker/r`
/// whose branch is called main), pull requests 1 (same repository) and 2 (the fork's).
fn world() -> FakeGitHub {
    let gh = FakeGitHub::start(FakeConfig::default());
    gh.add_run(FakeRunSpec::new("o", "r", 10).jobs(&["build", "test"]));
    gh.add_artifact(FakeArtifactSpec::zip("o", "r", "build", 10, vec![1]));
    gh.rerun(10);
    gh.add_artifact(FakeArtifactSpec::zip("o", "r", "build", 10, vec![2]));
    gh.add_run(FakeRunSpec::new("o", "r", 11).conclusion("failure"));
    gh.add_run(
        FakeRunSpec::new("o", "r", 12)
            .workflow("nightly.yml", "Nightly")
            .event("schedule"),
    );
    gh.add_run(
        FakeRunSpec::new("o", "r", 14)
            .event("pull_request")
            .branch("feature")
            .pull_requests(&[1]),
    );
    gh.add_run(
        FakeRunSpec::new("o", "r", 13)
            .from_fork("forker/r")
            .sha(FORK_SHA),
    );
    gh.add_artifact(FakeArtifactSpec::zip("o", "r", "build", 13, vec![3]).sha(FORK_SHA));
    gh.add_pull(FakePullSpec::new(
        "o",
        "r",
        1,
        "feature",
        &fake_github::runs::default_sha(14),
    ));
    gh.add_pull(FakePullSpec::new("o", "r", 2, "main", FORK_SHA).from_fork("forker/r"));
    gh
}

fn checked(api: &OpenApi, gh: &FakeGitHub, path: &str) -> Value {
    let a = get(&format!("{}{path}", gh.api_url()), &[]);
    assert_eq!(a.status, StatusCode::OK, "{path}");
    let body = a.json();
    let bare = path.split('?').next().unwrap();
    let errs = api.check_answer("GET", bare, &body);
    assert!(errs.is_empty(), "{path}: {errs:#?}");
    let errs = api.check_request(&format!("GET {path}"));
    assert!(errs.is_empty(), "{path}: {errs:#?}");
    body
}

#[test]
fn every_answer_has_githubs_shape() {
    let (api, gh) = (spec(), world());
    let runs = checked(&api, &gh, "/repos/o/r/actions/runs?per_page=100");
    assert_eq!(runs["total_count"], 5);
    let ids: Vec<u64> = (runs["workflow_runs"].as_array().unwrap().iter())
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![13, 14, 12, 11, 10], "newest first");
    for id in [10, 11, 12, 13, 14] {
        checked(&api, &gh, &format!("/repos/o/r/actions/runs/{id}"));
    }
    let jobs = checked(&api, &gh, "/repos/o/r/actions/runs/10/jobs");
    assert_eq!(jobs["total_count"], 2, "the latest attempt's jobs");
    let all = checked(&api, &gh, "/repos/o/r/actions/runs/10/jobs?filter=all");
    assert_eq!(all["total_count"], 4, "both attempts' jobs");
    let wfs = checked(&api, &gh, "/repos/o/r/actions/workflows");
    let paths: Vec<&str> = (wfs["workflows"].as_array().unwrap().iter())
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        vec![".github/workflows/ci.yml", ".github/workflows/nightly.yml"]
    );
    let nightly = checked(&api, &gh, "/repos/o/r/actions/workflows/nightly.yml/runs");
    assert_eq!(nightly["workflow_runs"][0]["id"], 12);
    let by_id = wfs["workflows"][1]["id"].as_u64().unwrap();
    let same = checked(
        &api,
        &gh,
        &format!("/repos/o/r/actions/workflows/{by_id}/runs"),
    );
    assert_eq!(same["total_count"], 1);
    let wf = checked(&api, &gh, &format!("/repos/o/r/actions/workflows/{by_id}"));
    assert_eq!(wf["path"], ".github/workflows/nightly.yml");
    let by_name = checked(&api, &gh, "/repos/o/r/actions/workflows/nightly.yml");
    assert_eq!(by_name, wf, "by id and by file name alike");
    let missing = get(
        &format!("{}/repos/o/r/actions/workflows/1", gh.api_url()),
        &[],
    );
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    checked(&api, &gh, "/repos/o/r/pulls/1");
    checked(&api, &gh, "/repos/o/r/pulls/2");
    checked(&api, &gh, "/repos/o/r/actions/artifacts?per_page=100");
}

#[test]
fn forks_reruns_and_failures_are_what_github_says() {
    let (api, gh) = (spec(), world());
    let repo_id = gh.repo_id("o", "r").unwrap();
    let fork_id = gh.repo_id("forker", "r").unwrap();
    assert_ne!(repo_id, fork_id);

    let fork_run = checked(&api, &gh, "/repos/o/r/actions/runs/13");
    assert_eq!(fork_run["head_repository"]["id"], fork_id);
    assert_eq!(fork_run["head_repository"]["fork"], true);
    assert_eq!(fork_run["repository"]["id"], repo_id);
    assert_eq!(fork_run["head_branch"], "main");
    assert_eq!(fork_run["event"], "pull_request");
    assert_eq!(
        fork_run["pull_requests"],
        Value::Array(vec![]),
        "GitHub lists none for a fork"
    );
    let own_pr_run = checked(&api, &gh, "/repos/o/r/actions/runs/14");
    assert_eq!(own_pr_run["pull_requests"][0]["number"], 1);

    let rerun = checked(&api, &gh, "/repos/o/r/actions/runs/10");
    assert_eq!(rerun["run_attempt"], 2);
    assert!(
        rerun["previous_attempt_url"]
            .as_str()
            .unwrap()
            .ends_with("/attempts/1")
    );
    let failed = checked(&api, &gh, "/repos/o/r/actions/runs/11");
    assert_eq!(failed["conclusion"], "failure");

    // The artifacts of the fork's run say whose run it is.
    let arts = checked(&api, &gh, "/repos/o/r/actions/artifacts?per_page=100");
    for a in arts["artifacts"].as_array().unwrap() {
        let wr = &a["workflow_run"];
        assert_eq!(wr["repository_id"], repo_id);
        let want = if wr["id"] == 13 { fork_id } else { repo_id };
        assert_eq!(wr["head_repository_id"], want, "{a}");
    }

    let pr = checked(&api, &gh, "/repos/o/r/pulls/2");
    assert_eq!(pr["head"]["sha"], FORK_SHA);
    assert_eq!(pr["head"]["repo"]["id"], fork_id);
    assert_eq!(pr["head"]["repo"]["fork"], true);
    let a = get(&format!("{}/repos/o/r/pulls/99", gh.api_url()), &[]);
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = get(&format!("{}/repos/o/r/actions/runs/99", gh.api_url()), &[]);
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[test]
fn filters_pages_and_free_revalidation() {
    let (api, gh) = (spec(), world());
    let ids = |v: &Value| -> Vec<u64> {
        (v["workflow_runs"].as_array().unwrap().iter())
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    };
    let q = |query: &str| checked(&api, &gh, &format!("/repos/o/r/actions/runs?{query}"));
    assert_eq!(ids(&q(&format!("head_sha={FORK_SHA}"))), vec![13]);
    assert_eq!(ids(&q("branch=feature")), vec![14]);
    assert_eq!(ids(&q("event=schedule")), vec![12]);
    assert_eq!(ids(&q("status=failure")), vec![11]);
    assert_eq!(ids(&q("status=success")), vec![13, 14, 12, 10]);

    let first = get(
        &format!("{}/repos/o/r/actions/runs?per_page=2", gh.api_url()),
        &[],
    );
    let link = first.header("link").unwrap();
    assert!(link.contains("per_page=2&page=2>; rel=\"next\""), "{link}");
    assert!(link.contains("page=3>; rel=\"last\""), "{link}");

    for path in [
        "/repos/o/r/actions/runs?per_page=100",
        "/repos/o/r/actions/runs/10",
        "/repos/o/r/pulls/2",
    ] {
        let url = format!("{}{path}", gh.api_url());
        let a = get(&url, &[]);
        let etag = a.header("etag").unwrap();
        let used = a.header("x-ratelimit-used").unwrap();
        let b = get(&url, &[("if-none-match", &etag)]);
        assert_eq!(b.status, StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(b.header("x-ratelimit-used").unwrap(), used, "a 304 is free");
    }
    // A re-run changes the run: the old ETag no longer matches.
    let url = format!("{}/repos/o/r/actions/runs/10", gh.api_url());
    let etag = get(&url, &[]).header("etag").unwrap();
    gh.rerun(10);
    assert_eq!(
        get(&url, &[("if-none-match", &etag)]).status,
        StatusCode::OK
    );
}

#[test]
fn the_checker_catches_what_is_not_githubs() {
    let api = spec();
    assert!(
        !api.check_request("GET /repos/o/r/actions/runs?sort=asc")
            .is_empty()
    );
    assert!(
        !api.check_request("GET /repos/o/r/actions/runs?per_page=x")
            .is_empty()
    );
    assert!(
        !api.check_request("GET /repos/o/r/actions/runs/5/jobs?filter=newest")
            .is_empty()
    );
    assert!(
        !api.check_request("GET /repos/o/r/actions/nothing")
            .is_empty()
    );
    assert!(
        api.check_request("GET /repos/o/r/actions/runs?head_sha=abc&per_page=100")
            .is_empty()
    );
    let mut run = serde_json::json!({"id": 1});
    let errs = api.check_answer("GET", "/repos/o/r/actions/runs/1", &run);
    assert!(errs.iter().any(|e| e.contains("`head_sha`")), "{errs:?}");
    run = serde_json::json!({"total_count": "x", "workflow_runs": []});
    assert!(
        !api.check_answer("GET", "/repos/o/r/actions/runs", &run)
            .is_empty()
    );
}
