//! The views against the fake GitHub, through `artifactfs serve` (the same core as a mount,
//! no FUSE needed): forks never reach `latest/` or `branches/`, a re-run's newest attempt
//! takes the plain name.

mod common;

use common::serve::Server;
use common::*;
use fake_github::zipgen::ZipBuilder;
use fake_github::{FakeArtifactSpec, FakeGitHub, FakeRunSpec};

const REPO: &str = "/octo-org/hello";

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add(name, data);
    z.finish()
}

fn build(run: u64, text: &str) -> FakeArtifactSpec {
    FakeArtifactSpec::zip(
        "octo-org",
        "hello",
        "build",
        run,
        zip_of("tool.sh", text.as_bytes()),
    )
}

fn serve(gh: &FakeGitHub) -> Server {
    Daemon::new(gh, "octo-org/hello").serve()
}

/// Where `path` (a view's link) redirects to.
fn target(s: &Server, path: &str) -> (u16, String) {
    let r = s.get(path);
    (
        r.status,
        r.header("location").unwrap_or_default().to_string(),
    )
}

#[test]
fn a_forks_pull_request_from_its_main_never_becomes_branches_main() {
    let gh = start_fake();
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 100));
    gh.add_artifact(build(100, "echo ours\n"));
    // Newer: a pull request from a fork whose branch is called main.
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 200).from_fork("stranger/hello"));
    gh.add_artifact(build(200, "echo theirs\n"));
    let s = serve(&gh);
    for view in ["branches/main/build", "latest/build"] {
        assert_eq!(
            target(&s, &format!("{REPO}/{view}")),
            (302, format!("{REPO}/runs/100/build")),
            "{view}"
        );
    }
    let ours = s.get(&format!("{REPO}/branches/main/build/tool.sh"));
    assert_eq!(ours.status, 302);
    assert_eq!(
        s.get(&format!("{REPO}/runs/100/build/tool.sh")).body,
        b"echo ours\n"
    );
    // The fork's build is under runs/, by its run id.
    assert_eq!(
        s.get(&format!("{REPO}/runs/200/build/tool.sh")).body,
        b"echo theirs\n"
    );
}

#[test]
fn a_re_runs_newest_attempt_takes_the_plain_name_and_latest() {
    let gh = start_fake();
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 300));
    gh.add_artifact(build(300, "attempt 1\n"));
    gh.rerun(300);
    gh.add_artifact(build(300, "attempt 2\n"));
    let s = serve(&gh);
    assert_eq!(
        s.get(&format!("{REPO}/runs/300/build/tool.sh")).body,
        b"attempt 2\n"
    );
    assert_eq!(
        s.get(&format!("{REPO}/runs/300/build%20(1)/tool.sh")).body,
        b"attempt 1\n"
    );
    assert_eq!(
        target(&s, &format!("{REPO}/latest/build")),
        (302, format!("{REPO}/runs/300/build"))
    );
}

const SHA_FORK: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";
const SHA_MAIN: &str = "0123456789abcdef0123456789abcdef01234567";

/// `octo-org/hello`: run 10 (ci.yml, success, main, SHA_MAIN), run 11 (ci.yml, *failure*,
/// main, newer), run 12 (nightly.yml), run 13 (a fork's pull request from its main, SHA_FORK;
/// pull request 2), pull request 3 (head with no runs yet). Each run uploads `build`.
fn ci_world() -> FakeGitHub {
    let gh = start_fake();
    let (o, r) = ("octo-org", "hello");
    gh.add_run(FakeRunSpec::new(o, r, 10).sha(SHA_MAIN));
    gh.add_artifact(build(10, "ten\n").sha(SHA_MAIN));
    gh.add_run(FakeRunSpec::new(o, r, 11).conclusion("failure"));
    gh.add_artifact(build(11, "eleven\n"));
    gh.add_run(
        FakeRunSpec::new(o, r, 12)
            .workflow("nightly.yml", "Nightly")
            .event("schedule"),
    );
    gh.add_artifact(build(12, "twelve\n"));
    gh.add_run(
        FakeRunSpec::new(o, r, 13)
            .from_fork("stranger/hello")
            .sha(SHA_FORK),
    );
    gh.add_artifact(build(13, "thirteen\n").sha(SHA_FORK));
    gh.add_pull(
        fake_github::FakePullSpec::new(o, r, 2, "main", SHA_FORK).from_fork("stranger/hello"),
    );
    gh.add_pull(fake_github::FakePullSpec::new(
        o,
        r,
        3,
        "wip",
        &"9".repeat(40),
    ));
    gh
}

/// Every request artifactfs sent is one GitHub documents, with documented parameters.
fn requests_are_documented(gh: &FakeGitHub) {
    let api = fake_github::openapi::OpenApi::load_above(env!("CARGO_MANIFEST_DIR").as_ref());
    let log = gh.counters().api_request_log;
    assert!(!log.is_empty());
    let errs: Vec<String> = log.iter().flat_map(|l| api.check_request(l)).collect();
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn views_by_workflow_commit_and_pull_request_redirect_into_runs() {
    let gh = ci_world();
    let s = serve(&gh);
    for (view, run) in [
        // The newest successful ci.yml run (11 failed; 13 is a fork's).
        ("workflows/ci.yml/build", 10),
        ("workflows/ci.yml/branches/main/build", 10),
        ("workflows/nightly.yml/build", 12),
        ("commits/0123456/build", 10),
        (&format!("commits/{SHA_MAIN}/build"), 10),
        // The fork's pull request: its run lists no pull request; matched by head sha.
        ("pulls/2/build", 13),
        // latest/ and branches/ skip the fork's newer build.
        ("latest/build", 12),
    ] {
        assert_eq!(
            target(&s, &format!("{REPO}/{view}")),
            (302, format!("{REPO}/runs/{run}/build")),
            "{view}"
        );
    }
    assert_eq!(
        s.get(&format!("{REPO}/workflows/ci.yml/build/tool.sh"))
            .status,
        302
    );
    let listed = s.get(&format!("{REPO}/workflows/?format=json")).text();
    assert!(
        listed.contains("\"ci.yml\"") && listed.contains("\"nightly.yml\""),
        "{listed}"
    );
    for p in [
        "workflows/release.yml/",
        "commits/012345/",
        "commits/zzzzzzz/",
        "pulls/9/",
        "pulls/3/build",
    ] {
        assert_eq!(s.get(&format!("{REPO}/{p}")).status, 404, "{p}");
    }
    // A pull request whose head has no runs yet: an empty folder.
    let empty = s.get(&format!("{REPO}/pulls/3/?format=json"));
    assert_eq!(empty.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&empty.body).unwrap();
    assert_eq!(v["entries"], serde_json::json!([]), "{}", empty.text());
    requests_are_documented(&gh);
}

#[test]
fn the_runs_listing_shows_workflow_branch_sha_and_conclusion() {
    let gh = ci_world();
    let s = serve(&gh);
    let html = s.get(&format!("{REPO}/runs/?list")).text();
    assert!(html.contains("CI · main · 0123456 · success"), "{html}");
    assert!(html.contains("CI · main · "), "{html}");
    assert!(html.contains("· failure"), "{html}");
    let json: serde_json::Value =
        serde_json::from_slice(&s.get(&format!("{REPO}/runs/?format=json")).body).unwrap();
    let fork = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "13")
        .unwrap();
    let run = &fork["run"];
    assert_eq!(run["workflow"], "ci.yml");
    assert_eq!(run["name"], "CI");
    assert_eq!(run["event"], "pull_request");
    assert_eq!(run["status"], "completed");
    assert_eq!(run["conclusion"], "success");
    assert_eq!(run["head_branch"], "main");
    assert_eq!(run["head_sha"], SHA_FORK);
    assert_eq!(run["attempt"], "1");
    assert_eq!(
        run["pull_requests"], "",
        "GitHub lists none for a fork's pull request"
    );
    assert!(run["url"].as_str().unwrap().ends_with("/actions/runs/13"));
    // A run without artifacts resolves by path: an empty folder.
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 77));
    let r = s.get(&format!("{REPO}/runs/77/?format=json"));
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(s.get(&format!("{REPO}/runs/78/")).status, 404);
    requests_are_documented(&gh);
}

#[test]
fn a_pull_request_lookup_costs_three_requests_cold_none_warm_and_304s_after_the_ttl() {
    let gh = ci_world();
    let s = Daemon::new(&gh, "octo-org/hello")
        .arg("--metadata-ttl")
        .arg("2")
        .serve();
    gh.reset_counters();
    let path = format!("{REPO}/pulls/2/build");
    assert_eq!(target(&s, &path).0, 302);
    let cold = gh.counters();
    assert!(cold.api_requests <= 3, "cold: {:?}", cold.by_endpoint);
    assert_eq!(cold.endpoint("pull"), 1);
    assert_eq!(target(&s, &path).0, 302);
    assert_eq!(
        gh.counters().api_requests,
        cold.api_requests,
        "warm: nothing asked"
    );
    // After the TTL everything is revalidated, and every revalidation is a free 304.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(target(&s, &path), (302, format!("{REPO}/runs/13/build")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let c = gh.counters();
        let asked = c.api_requests - cold.api_requests;
        let free = c.not_modified - cold.not_modified;
        if asked >= 2 && asked == free {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revalidations: {asked} asked, {free} were 304: {:?}",
            c.by_endpoint
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    requests_are_documented(&gh);
}
