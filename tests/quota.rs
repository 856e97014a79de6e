//! The quota budget through real mounts: `ls runs` of 3000 artifacts costs its list pages and
//! at most 256 other API requests, all of them speculative (as `artifactfs status` says);
//! with a token whose quota is below a fifth, nothing is spent on speculation and a `cat`
//! still works.

mod common;

use std::time::Duration;

use common::*;
use fake_github::zipgen::ZipBuilder;
use fake_github::{Counters, FakeArtifactSpec, FakeGitHub};

const REPO: &str = "octo-org/hello";

/// `runs` runs of `per_run` small zip artifacts each, `result.txt` in each.
fn many(gh: &FakeGitHub, runs: u64, per_run: u64) {
    for run in 0..runs {
        for a in 0..per_run {
            let mut z = ZipBuilder::new();
            z.add("result.txt", format!("shard {a} of run {run}\n").as_bytes());
            gh.add_artifact(FakeArtifactSpec::zip(
                "octo-org",
                "hello",
                &format!("shard-{a:02}"),
                2000 + run,
                z.finish(),
            ));
        }
    }
}

/// The fake's counters once no API request has come for a while (the read-ahead is done).
fn settled(gh: &FakeGitHub) -> Counters {
    let mut last = gh.counters();
    loop {
        std::thread::sleep(Duration::from_millis(400));
        let now = gh.counters();
        if now.api_requests == last.api_requests && now.blob_requests == last.blob_requests {
            return now;
        }
        last = now;
    }
}

#[test]
fn ls_runs_of_3000_artifacts_costs_its_list_pages_and_at_most_256_more() {
    require_fuse();
    let _w = Watchdog::arm("quota", 240);
    let gh = start_fake();
    many(&gh, 75, 40);
    let runtime = tempfile::tempdir().unwrap();
    gh.reset_counters();
    let m = Daemon::new(&gh, REPO)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .mount();
    let runs = std::fs::read_dir(m.path("octo-org/hello/runs"))
        .unwrap()
        .count();
    assert_eq!(runs, 75);
    let c = settled(&gh);
    let pages = c.endpoint("list_repo");
    assert_eq!(pages, 30, "3000 artifacts are 30 pages of 100");
    let others = c.api_requests - pages;
    assert!(
        others <= 256,
        "{others} other requests: {:?}",
        c.by_endpoint
    );
    assert!(others >= 200, "the read-ahead ran: {:?}", c.by_endpoint);
    let s = status_json(runtime.path(), &m.mountpoint);
    assert_eq!(s.api_requests, c.api_requests, "{s:?}");
    assert_eq!(
        s.api_requests_speculative, others,
        "every other request was speculative"
    );
}

#[test]
fn below_a_fifth_of_the_quota_nothing_is_speculated_and_cat_still_works() {
    require_fuse();
    let _w = Watchdog::arm("quota-low", 120);
    let gh = start_fake();
    many(&gh, 5, 4);
    gh.set_quota_remaining(TOKEN, 900);
    let runtime = tempfile::tempdir().unwrap();
    gh.reset_counters();
    let m = Daemon::new(&gh, REPO)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .mount();
    assert_eq!(
        std::fs::read_dir(m.path("octo-org/hello/runs"))
            .unwrap()
            .count(),
        5
    );
    let c = settled(&gh);
    assert_eq!(
        c.endpoint("download"),
        0,
        "no speculation: {:?}",
        c.by_endpoint
    );
    assert_eq!(c.blob_requests, 0);
    assert_eq!(
        std::fs::read(m.path("octo-org/hello/runs/2003/shard-01/result.txt")).unwrap(),
        b"shard 1 of run 3\n"
    );
    let c = settled(&gh);
    assert!(c.endpoint("download") >= 1);
    let s = status_json(runtime.path(), &m.mountpoint);
    assert_eq!(s.api_requests_speculative, 0, "{s:?}");
    assert!(s.rate_limit.unwrap().remaining < 1000);
}
