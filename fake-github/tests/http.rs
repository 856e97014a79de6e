//! The fake server over plain HTTP, checked against GitHub's documented shapes: pagination,
//! `Link`, `per_page` clamp, name filter, the 302 and the blob host's Range/403/416 answers,
//! ETag/304, tokens, DELETE, the GHES prefix and the fault switches.

mod common;

use std::time::Duration;

use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub, Faults, TokenAccess};
use reqwest::StatusCode;

use common::Answer;

const TOKEN: &str = "test-token";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("fake-github-tests")
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn get(url: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Answer {
    send(reqwest::Method::GET, url, token, extra)
}

fn send(method: reqwest::Method, url: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Answer {
    rt().block_on(common::send(http().request(method, url), token, extra))
}

fn with_artifacts(n: u64) -> FakeGitHub {
    common::fake_with_artifacts(n, 2)
}

#[test]
fn lists_page_like_github() {
    let gh = with_artifacts(45);
    let base = format!("{}/repos/o/r/actions/artifacts", gh.api_url());

    let a = get(&base, Some(TOKEN), &[]);
    assert_eq!(a.status, StatusCode::OK);
    let j = a.json();
    assert_eq!(j["total_count"], 45);
    assert_eq!(
        j["artifacts"].as_array().unwrap().len(),
        30,
        "default per_page"
    );
    // Newest first.
    assert_eq!(j["artifacts"][0]["name"], "a44");
    let link = a.header("link").unwrap();
    assert!(
        link.contains(&format!("<{base}?per_page=30&page=2>; rel=\"next\"")),
        "{link}"
    );
    assert!(link.contains("rel=\"last\""), "{link}");

    let j = get(&format!("{base}?per_page=30&page=2"), Some(TOKEN), &[]).json();
    assert_eq!(j["artifacts"].as_array().unwrap().len(), 15);
    let a = get(&format!("{base}?per_page=30&page=2"), Some(TOKEN), &[]);
    let link = a.header("link").unwrap();
    assert!(
        link.contains("rel=\"prev\"") && !link.contains("rel=\"next\""),
        "{link}"
    );

    // per_page is clamped to 1..=100.
    let j = get(&format!("{base}?per_page=0"), Some(TOKEN), &[]).json();
    assert_eq!(j["artifacts"].as_array().unwrap().len(), 1);
    let a = get(&format!("{base}?per_page=500"), Some(TOKEN), &[]);
    assert_eq!(a.json()["artifacts"].as_array().unwrap().len(), 45);
    assert!(a.header("link").is_none(), "one page: no Link");
    // Past the last page: empty, same total.
    let j = get(&format!("{base}?page=9"), Some(TOKEN), &[]).json();
    assert_eq!(j["total_count"], 45);
    assert!(j["artifacts"].as_array().unwrap().is_empty());

    // Name filter (exact) and the run listing.
    let j = get(&format!("{base}?name=a7"), Some(TOKEN), &[]).json();
    assert_eq!(j["total_count"], 1);
    assert_eq!(j["artifacts"][0]["name"], "a7");
    let run = format!(
        "{}/repos/o/r/actions/runs/11/artifacts?per_page=100",
        gh.api_url()
    );
    let j = get(&run, Some(TOKEN), &[]).json();
    assert_eq!(j["total_count"], 22);
    assert!(
        j["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["workflow_run"]["id"] == 11)
    );

    // The artifact object has GitHub's fields.
    let art = &j["artifacts"][0];
    for k in [
        "id",
        "node_id",
        "name",
        "size_in_bytes",
        "url",
        "archive_download_url",
        "expired",
        "created_at",
        "expires_at",
        "updated_at",
        "digest",
        "workflow_run",
    ] {
        assert!(art.get(k).is_some(), "missing {k}");
    }
    assert!(art["digest"].as_str().unwrap().starts_with("sha256:"));
    // Owner and repo are case-insensitive.
    let j = get(
        &format!("{}/repos/O/R/actions/artifacts", gh.api_url()),
        Some(TOKEN),
        &[],
    )
    .json();
    assert_eq!(j["total_count"], 45);
    assert_eq!(gh.counters().endpoint("list_repo"), 8);
    assert_eq!(gh.counters().endpoint("list_run"), 1);
}

#[test]
fn etags_revalidate_for_free() {
    let gh = with_artifacts(3);
    let url = format!("{}/repos/o/r/actions/artifacts", gh.api_url());
    let a = get(&url, Some(TOKEN), &[]);
    let etag = a.header("etag").unwrap();
    assert!(etag.starts_with("W/\""), "{etag}");
    let remaining: u64 = a.header("x-ratelimit-remaining").unwrap().parse().unwrap();
    let b = get(&url, Some(TOKEN), &[("if-none-match", &etag)]);
    assert_eq!(b.status, StatusCode::NOT_MODIFIED);
    assert!(b.body.is_empty());
    let after: u64 = b.header("x-ratelimit-remaining").unwrap().parse().unwrap();
    assert_eq!(after, remaining, "a 304 costs no quota");
    assert_eq!(gh.counters().not_modified, 1);
    // A change makes the old ETag stale.
    gh.add_artifact(FakeArtifactSpec::zip("o", "r", "new", 1, vec![0; 22]));
    let c = get(&url, Some(TOKEN), &[("if-none-match", &etag)]);
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(c.json()["total_count"], 4);
    assert_eq!(c.header("x-ratelimit-limit").as_deref(), Some("5000"));
    let anon = get(&url, None, &[]);
    assert_eq!(anon.header("x-ratelimit-limit").as_deref(), Some("60"));
}

#[test]
fn downloads_redirect_to_a_signed_ranged_blob() {
    let gh = FakeGitHub::start(FakeConfig {
        url_ttl: Duration::from_secs(1),
        ..Default::default()
    });
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let zip_id = gh.add_artifact(FakeArtifactSpec::zip("o", "r", "z", 1, data.clone()));
    let raw_id = gh.add_artifact(FakeArtifactSpec::raw(
        "o",
        "r",
        "notes",
        1,
        "notes.md",
        b"# hi\n".to_vec(),
    ));
    let dl = |id: u64| format!("{}/repos/o/r/actions/artifacts/{id}/zip", gh.api_url());

    assert_eq!(get(&dl(zip_id), None, &[]).status, StatusCode::UNAUTHORIZED);
    let a = get(&dl(zip_id), Some(TOKEN), &[]);
    assert_eq!(a.status, StatusCode::FOUND);
    let loc = a.header("location").unwrap();
    assert!(loc.starts_with(&gh.blob_origin()), "{loc}");
    assert_ne!(gh.blob_origin(), gh.api_origin());
    assert!(loc.contains("/z.zip?"), "{loc}");

    let whole = get(&loc, None, &[]);
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body, data);
    assert_eq!(
        whole.header("content-type").as_deref(),
        Some("application/zip")
    );
    assert_eq!(whole.header("accept-ranges").as_deref(), Some("bytes"));

    let r = get(&loc, None, &[("range", "bytes=100-199")]);
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(
        r.header("content-range").as_deref(),
        Some("bytes 100-199/10000")
    );
    let r = get(&loc, None, &[("range", "bytes=9990-")]);
    assert_eq!(r.body, &data[9990..]);
    let r = get(&loc, None, &[("range", "bytes=9990-20000")]);
    assert_eq!(
        r.header("content-range").as_deref(),
        Some("bytes 9990-9999/10000")
    );
    assert_eq!(
        get(&loc, None, &[("range", "bytes=10000-")]).status,
        StatusCode::RANGE_NOT_SATISFIABLE
    );
    assert_eq!(
        get(&loc, None, &[("range", "bytes=-100")]).status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "suffix ranges: undocumented, the emulator answers 500"
    );
    assert_eq!(
        get(&loc, None, &[("range", "bytes=0-1,5-6")]).status,
        StatusCode::OK,
        "multi-range: the whole blob"
    );

    // A tampered or expired signature: 403 with Azure's XML.
    let bad = get(&loc.replace("sig=", "sig=0"), None, &[]);
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&bad.body).contains("AuthenticationFailed"));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&loc, None, &[]).status, StatusCode::FORBIDDEN);

    // An unzipped artifact: not application/zip, file name in Content-Disposition.
    let loc = get(&dl(raw_id), Some(TOKEN), &[])
        .header("location")
        .unwrap();
    assert!(!loc.contains(".zip"), "{loc}");
    let r = send(reqwest::Method::HEAD, &loc, None, &[]);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type").as_deref(), Some("text/markdown"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .contains("notes.md")
    );
    assert_eq!(r.header("content-length").as_deref(), Some("5"));

    // Expired artifacts: 410. Other formats: 404.
    gh.expire_artifact(zip_id);
    assert_eq!(get(&dl(zip_id), Some(TOKEN), &[]).status, StatusCode::GONE);
    let tar = format!("{}/repos/o/r/actions/artifacts/{raw_id}/tar", gh.api_url());
    assert_eq!(get(&tar, Some(TOKEN), &[]).status, StatusCode::NOT_FOUND);

    let c = gh.counters();
    assert_eq!(c.blob_auth_headers_seen, 0);
    assert_eq!(
        c.blob_bytes_by_artifact[&zip_id],
        10_000 + 100 + 10 + 10 + 10_000
    );
    assert!(c.ranges_served >= 3);
}

#[test]
fn tokens_and_deletes() {
    let mut cfg = FakeConfig::default();
    cfg.tokens.insert("reader".into(), TokenAccess::ReadOnly);
    cfg.tokens.insert("nobody".into(), TokenAccess::Denied);
    let gh = FakeGitHub::start(cfg);
    let id = gh.add_artifact(FakeArtifactSpec::zip("o", "r", "a", 1, vec![0; 22]));
    gh.add_repo("o", "private", true);
    let art = format!("{}/repos/o/r/actions/artifacts/{id}", gh.api_url());
    let list = |repo: &str| format!("{}/repos/o/{repo}/actions/artifacts", gh.api_url());

    assert_eq!(get(&art, None, &[]).status, StatusCode::OK);
    let bad = get(&art, Some("wrong"), &[]);
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.json()["message"], "Bad credentials");
    assert_eq!(get(&art, Some("nobody"), &[]).status, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&list("private"), None, &[]).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&list("private"), Some(TOKEN), &[]).status,
        StatusCode::OK
    );
    assert_eq!(
        get(&list("missing"), Some(TOKEN), &[]).status,
        StatusCode::NOT_FOUND
    );
    let other = format!("{}/repos/o/private/actions/artifacts/{id}", gh.api_url());
    assert_eq!(
        get(&other, Some(TOKEN), &[]).status,
        StatusCode::NOT_FOUND,
        "wrong repo"
    );

    let del = |t: Option<&str>| send(reqwest::Method::DELETE, &art, t, &[]).status;
    assert_eq!(del(None), StatusCode::UNAUTHORIZED);
    assert_eq!(del(Some("reader")), StatusCode::FORBIDDEN);
    assert_eq!(del(Some(TOKEN)), StatusCode::NO_CONTENT);
    assert_eq!(del(Some(TOKEN)), StatusCode::NOT_FOUND);
    assert_eq!(get(&art, Some(TOKEN), &[]).status, StatusCode::NOT_FOUND);
    let c = gh.counters();
    assert_eq!(c.delete_requests, 4);
    assert_eq!(c.deleted_ids, vec![id]);
}

#[test]
fn serves_under_a_ghes_prefix() {
    let gh = FakeGitHub::start(FakeConfig {
        path_prefix: Some("/api/v3".into()),
        ..Default::default()
    });
    gh.add_artifact(FakeArtifactSpec::zip("o", "r", "a", 1, vec![0; 22]).no_digest());
    assert!(gh.api_url().ends_with("/api/v3"));
    let a = get(
        &format!("{}/repos/o/r/actions/artifacts", gh.api_url()),
        Some(TOKEN),
        &[],
    );
    assert_eq!(a.status, StatusCode::OK);
    let j = a.json();
    assert!(j["artifacts"][0]["digest"].is_null());
    assert!(
        j["artifacts"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(&gh.api_url())
    );
    let bare = format!("{}/repos/o/r/actions/artifacts", gh.api_origin());
    assert_eq!(get(&bare, Some(TOKEN), &[]).status, StatusCode::NOT_FOUND);
}

#[test]
fn fault_switches() {
    let gh = with_artifacts(1);
    let url = format!("{}/repos/o/r/actions/artifacts", gh.api_url());
    gh.set_faults(Faults {
        api_fail_every: 2,
        ..Default::default()
    });
    let s: Vec<u16> = (0..4)
        .map(|_| get(&url, Some(TOKEN), &[]).status.as_u16())
        .collect();
    assert_eq!(s, vec![200, 502, 200, 502]);

    gh.set_faults(Faults {
        api_429_every: 1,
        ..Default::default()
    });
    let a = get(&url, Some(TOKEN), &[]);
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.header("retry-after").as_deref(), Some("1"));

    gh.set_faults(Faults {
        rate_limit_exhausted_for: Some(Duration::from_secs(1)),
        ..Default::default()
    });
    let a = get(&url, Some(TOKEN), &[]);
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.header("x-ratelimit-remaining").as_deref(), Some("0"));
    let reset: u64 = a.header("x-ratelimit-reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset >= now && reset <= now + 2, "{reset} vs {now}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&url, Some(TOKEN), &[]).status, StatusCode::OK);

    // Truncated blob bodies: fewer bytes than Content-Length, then the connection drops.
    gh.set_faults(Faults {
        blob_truncate_every: 1,
        ..Default::default()
    });
    let id = gh.add_artifact(FakeArtifactSpec::zip("o", "r", "big", 1, vec![7; 100_000]));
    let dl = format!("{}/repos/o/r/actions/artifacts/{id}/zip", gh.api_url());
    let loc = get(&dl, Some(TOKEN), &[]).header("location").unwrap();
    let r = rt().block_on(async {
        let resp = http().get(&loc).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(100_000));
        resp.bytes().await
    });
    assert!(r.is_err(), "a truncated body is an error to the client");

    gh.set_faults(Faults {
        no_range: true,
        ..Default::default()
    });
    let r = get(&loc, None, &[("range", "bytes=0-9")]);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 100_000);
    assert!(r.header("accept-ranges").is_none());
}
