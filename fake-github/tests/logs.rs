//! Run and job logs over plain HTTP, checked against GitHub's OpenAPI description
//! (`github-openapi/actions.json`): the run, attempt and job log downloads answer 302
//! (with `Location`) to the blob host, which serves a zip shaped like GitHub's (job files,
//! step folders, names with spaces and parentheses, a big job log) or a job's plain text, by
//! range; 404 while not finished, 410 once expired, 401 without a token.

mod common;

use std::io::Read;

use fake_github::openapi::OpenApi;
use fake_github::{FakeConfig, FakeGitHub, FakeRunSpec};
use reqwest::StatusCode;

use common::{Answer, get, spec};

const TOKEN: &str = "test-token";

/// The download at `path`, checked as a documented 302; the blob it points to.
fn download(api: &OpenApi, gh: &FakeGitHub, path: &str) -> Answer {
    let a = get(&format!("{}{path}", gh.api_url()), Some(TOKEN), &[]);
    assert_eq!(a.status, StatusCode::FOUND, "{path}");
    let loc = a.header("location").unwrap();
    let errs = api.check_status("GET", path, 302, true);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(api.check_request(&format!("GET {path}")).is_empty());
    assert!(loc.starts_with(&gh.blob_origin()), "{loc}");
    let blob = get(&loc, None, &[]);
    assert_eq!(blob.status, StatusCode::OK);
    blob
}

#[test]
fn run_logs_are_a_zip_like_githubs() {
    let (api, gh) = (spec(), FakeGitHub::start(FakeConfig::default()));
    gh.add_run(
        FakeRunSpec::new("o", "r", 7)
            .jobs(&["build", "test (ubuntu-latest, 3.12)", "lint"])
            .without_step_files("lint")
            .big_log("build", 20 << 20)
            .conclusion("failure"),
    );
    let blob = download(&api, &gh, "/repos/o/r/actions/runs/7/logs");
    assert_eq!(blob.header("content-type").unwrap(), "application/zip");
    let originals = gh.run_log_files(7, 1);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&blob.body)).unwrap();
    assert_eq!(zip.len(), originals.len());
    let names: Vec<&str> = originals.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[..3],
        [
            "1_build.txt",
            "2_test (ubuntu-latest, 3.12).txt",
            "3_lint.txt"
        ]
    );
    assert!(names.contains(&"test (ubuntu-latest, 3.12)/2_Run actionscheckout@v4.txt"));
    assert!(
        !names.iter().any(|n| n.starts_with("lint/")),
        "no step files for lint"
    );
    for (name, bytes) in &originals {
        let mut got = Vec::new();
        zip.by_name(name).unwrap().read_to_end(&mut got).unwrap();
        assert!(got == *bytes, "{name}");
    }
    let build = &originals[0].1;
    assert!(build.len() > 20 << 20, "tens of MiB");
    // The job file and its step file each hold the 20 MiB, deflated about 4.4 times.
    assert!(blob.body.len() < build.len() / 2, "compressed like a log");
    let text = String::from_utf8_lossy(&originals[1].1);
    assert!(text.starts_with('\u{feff}'));
    assert!(text.contains("Z ##[group]Run tests"));
    assert!(text.contains("##[endgroup]"));
    assert!(text.contains("\u{1b}[31mERROR"));

    // The blob host serves it by range, with the length in Content-Range.
    let loc = get(
        &format!("{}/repos/o/r/actions/runs/7/logs", gh.api_url()),
        Some(TOKEN),
        &[],
    )
    .header("location")
    .unwrap();
    let part = get(&loc, None, &[("range", "bytes=0-0")]);
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.header("content-range").unwrap(),
        format!("bytes 0-0/{}", blob.body.len())
    );
    // No token: 401, as for artifact downloads.
    let anon = get(
        &format!("{}/repos/o/r/actions/runs/7/logs", gh.api_url()),
        None,
        &[],
    );
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn attempts_jobs_in_progress_and_expiry() {
    let (api, gh) = (spec(), FakeGitHub::start(FakeConfig::default()));
    gh.add_run(FakeRunSpec::new("o", "r", 8).jobs(&["build", "test"]));
    gh.rerun(8);
    let first = download(&api, &gh, "/repos/o/r/actions/runs/8/attempts/1/logs");
    let second = download(&api, &gh, "/repos/o/r/actions/runs/8/attempts/2/logs");
    let latest = download(&api, &gh, "/repos/o/r/actions/runs/8/logs");
    assert_eq!(second.body, latest.body);
    assert_ne!(first.body, second.body);
    let a3 = get(
        &format!("{}/repos/o/r/actions/runs/8/attempts/3/logs", gh.api_url()),
        Some(TOKEN),
        &[],
    );
    assert_eq!(a3.status, StatusCode::NOT_FOUND);

    // A run in progress: no archive; a finished job's log as plain text.
    gh.add_run(
        FakeRunSpec::new("o", "r", 9)
            .jobs(&["build", "test"])
            .in_progress(),
    );
    let url = |p: &str| format!("{}{p}", gh.api_url());
    let none = get(&url("/repos/o/r/actions/runs/9/logs"), Some(TOKEN), &[]);
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let (build, test) = (FakeGitHub::job_id(9, 1, 0), FakeGitHub::job_id(9, 1, 1));
    let job_path = |id: u64| format!("/repos/o/r/actions/jobs/{id}/logs");
    let not_yet = get(&url(&job_path(build)), Some(TOKEN), &[]);
    assert_eq!(not_yet.status, StatusCode::NOT_FOUND);
    gh.finish_job(9, 0);
    let jobs = get(&url("/repos/o/r/actions/runs/9/jobs"), Some(TOKEN), &[]).json();
    let errs = api.check_answer("GET", "/repos/o/r/actions/runs/9/jobs", &jobs);
    assert!(errs.is_empty(), "{errs:#?}");
    assert_eq!(jobs["jobs"][0]["status"], "completed");
    assert_eq!(jobs["jobs"][1]["status"], "in_progress");
    let text = download(&api, &gh, &job_path(build));
    assert!(
        text.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        text.body,
        gh.run_log_files(9, 1)[0].1,
        "the job file of the archive"
    );
    assert_eq!(
        get(&url(&job_path(test)), Some(TOKEN), &[]).status,
        StatusCode::NOT_FOUND
    );
    gh.complete_run(9, "success");
    download(&api, &gh, "/repos/o/r/actions/runs/9/logs");
    download(&api, &gh, &job_path(test));

    // Past retention: 410 (a documented answer? GitHub's description lists only the 302).
    gh.expire_logs(8);
    let gone = get(&url("/repos/o/r/actions/runs/8/logs"), Some(TOKEN), &[]);
    assert_eq!(gone.status, StatusCode::GONE);
    let gone = get(
        &url(&job_path(FakeGitHub::job_id(8, 2, 0))),
        Some(TOKEN),
        &[],
    );
    assert_eq!(gone.status, StatusCode::GONE);
}
