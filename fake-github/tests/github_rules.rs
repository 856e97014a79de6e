//! The fake checked against GitHub, not against itself: the artifact objects against the
//! example in GitHub's REST reference (`tests/data/list-artifacts-example.json`), and the behaviours GitHub documents
//! that a client depends on: a request without `User-Agent` is refused, the anonymous rate
//! limit (60 an hour) is enforced and a 304 costs nothing, a 304 repeats only what RFC 9110
//! §15.4.5 lists, `GET /users/{login}` answers for owners only, and a renamed repository
//! answers 301 (307 for other methods) to `/repositories/{id}/...`.

mod common;

use std::collections::BTreeSet;

use fake_github::FakeGitHub;
use reqwest::StatusCode;
use serde_json::Value;

use common::Answer;

const TOKEN: &str = "test-token";

/// One request; `ua`: the User-Agent to send, if any.
fn request(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    ua: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(ua) = ua {
            b = b.user_agent(ua);
        }
        common::send(b.build().unwrap().request(method, url), token, extra).await
    })
}

fn get(url: &str, token: Option<&str>) -> Answer {
    request(reqwest::Method::GET, url, token, Some("rules-test"), &[])
}

fn fake_with(n: u64) -> FakeGitHub {
    common::fake_with_artifacts(n, 1)
}

/// The first example response of "List artifacts for a repository" in GitHub's REST
/// reference, as published (`tests/data/list-artifacts-example.json`).
fn documented_list_example() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/list-artifacts-example.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("GitHub's example at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("the example is JSON")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn artifact_objects_have_the_documented_shape() {
    let doc = documented_list_example();
    let gh = fake_with(2);
    let ours = get(
        &format!("{}/repos/o/r/actions/artifacts", gh.api_url()),
        None,
    )
    .json();
    assert_eq!(keys(&ours), keys(&doc));
    let (a, d) = (&ours["artifacts"][0], &doc["artifacts"][0]);
    // `digest` is newer than the reference (docs/semantics.md, "What artifactfs assumes of
    // GitHub"); nothing else differs.
    let mut documented = keys(d);
    documented.insert("digest".into());
    assert_eq!(keys(a), documented);
    assert_eq!(keys(&a["workflow_run"]), keys(&d["workflow_run"]));
    for k in keys(d) {
        let same_type = std::mem::discriminant(&a[&k]) == std::mem::discriminant(&d[&k]);
        assert!(same_type, "{k}: {} vs documented {}", a[&k], d[&k]);
    }
}

#[test]
fn a_request_without_user_agent_is_refused() {
    let gh = fake_with(1);
    let url = format!("{}/repos/o/r/actions/artifacts", gh.api_url());
    let a = request(reqwest::Method::GET, &url, Some(TOKEN), None, &[]);
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&a.body).contains("User-Agent"));
    assert_eq!(gh.counters().refused_no_user_agent, 1);
    assert_eq!(gh.counters().endpoint("list_repo"), 0);
    assert_eq!(get(&url, Some(TOKEN)).status, StatusCode::OK);
}

#[test]
fn the_anonymous_rate_limit_is_enforced_and_304s_are_free() {
    let gh = fake_with(1);
    let url = format!("{}/repos/o/r/actions/artifacts", gh.api_url());
    let first = get(&url, None);
    let etag = first.header("etag").unwrap();
    assert_eq!(first.header("x-ratelimit-limit").as_deref(), Some("60"));
    for _ in 0..10 {
        let a = request(
            reqwest::Method::GET,
            &url,
            None,
            Some("rules-test"),
            &[("if-none-match", &etag)],
        );
        assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    }
    for i in 1..60 {
        let a = get(&url, None);
        assert_eq!(a.status, StatusCode::OK, "request {}", i + 1);
        assert_eq!(
            a.header("x-ratelimit-remaining"),
            Some((59 - i).to_string())
        );
    }
    let over = get(&url, None);
    assert_eq!(over.status, StatusCode::FORBIDDEN);
    assert_eq!(over.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(over.header("x-ratelimit-reset").is_some());
    assert!(
        over.json()["message"]
            .as_str()
            .unwrap()
            .contains("rate limit exceeded")
    );
    assert_eq!(gh.counters().rate_limited, 1);
    // A token has its own budget.
    assert_eq!(get(&url, Some(TOKEN)).status, StatusCode::OK);
}

#[test]
fn a_304_carries_only_what_rfc_9110_lists() {
    let gh = fake_with(45);
    let url = format!("{}/repos/o/r/actions/artifacts?per_page=10", gh.api_url());
    let a = get(&url, Some(TOKEN));
    assert!(a.header("link").is_some(), "a 200 page has its Link");
    let etag = a.header("etag").unwrap();
    let b = request(
        reqwest::Method::GET,
        &url,
        Some(TOKEN),
        Some("rules-test"),
        &[("if-none-match", &etag)],
    );
    assert_eq!(b.status, StatusCode::NOT_MODIFIED);
    let allowed = [
        "etag",
        "cache-control",
        "date",
        "vary",
        "content-location",
        "expires",
    ];
    for name in b.headers.keys() {
        let n = name.as_str();
        assert!(
            allowed.contains(&n) || n.starts_with("x-ratelimit-"),
            "a 304 should not carry {n}"
        );
    }
    assert!(b.header("etag").is_some() && b.header("date").is_some());
}

#[test]
fn users_answer_for_owners_only() {
    let gh = fake_with(1);
    gh.add_user("someone", false);
    let o = get(&format!("{}/users/O", gh.api_url()), None);
    assert_eq!(o.status, StatusCode::OK);
    assert_eq!(o.json()["login"], "o");
    assert_eq!(o.json()["type"], "Organization");
    let u = get(&format!("{}/users/someone", gh.api_url()), None);
    assert_eq!(u.json()["type"], "User");
    let none = get(&format!("{}/users/no-such-owner", gh.api_url()), None);
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(gh.counters().endpoint("user"), 3);
}

#[test]
fn a_renamed_repository_answers_with_a_redirect_to_its_id() {
    let gh = fake_with(12);
    let id = gh.repo_id("o", "r").unwrap();
    gh.rename_repo("o/r", "p/q");
    let old = format!("{}/repos/o/r/actions/artifacts?per_page=5", gh.api_url());
    let a = get(&old, Some(TOKEN));
    assert_eq!(a.status, StatusCode::MOVED_PERMANENTLY);
    let loc = a.header("location").unwrap();
    assert_eq!(
        loc,
        format!(
            "{}/repositories/{id}/actions/artifacts?per_page=5",
            gh.api_url()
        )
    );
    let moved = get(&loc, Some(TOKEN));
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(moved.json()["total_count"], 12);
    let link = moved.header("link").unwrap();
    assert!(
        link.contains(&format!(
            "/repositories/{id}/actions/artifacts?per_page=5&page=2"
        )),
        "{link}"
    );
    // The new name works; DELETE by the old name is 307 (the method is kept).
    let new = format!("{}/repos/p/q/actions/artifacts", gh.api_url());
    assert_eq!(get(&new, Some(TOKEN)).json()["total_count"], 12);
    let art = moved.json()["artifacts"][0]["id"].as_u64().unwrap();
    let del = request(
        reqwest::Method::DELETE,
        &format!("{}/repos/o/r/actions/artifacts/{art}", gh.api_url()),
        Some(TOKEN),
        Some("rules-test"),
        &[],
    );
    assert_eq!(del.status, StatusCode::TEMPORARY_REDIRECT);
    let unknown = format!("{}/repositories/999/actions/artifacts", gh.api_url());
    assert_eq!(get(&unknown, Some(TOKEN)).status, StatusCode::NOT_FOUND);
}
