//! The built-in sample repository `octo-demo/hello-artifacts` that `artifactfs demo` and the
//! standalone server's `--demo` serve: several runs on two branches, upload-artifact-style zips
//! (data descriptors, no directory entries, nested paths, an executable), an unzipped artifact,
//! an expired one, and a 120-artifact matrix run so listings page. About 1 MB in all.

use crate::zipgen::{EntryOptions, Method, ZipBuilder, log_text, noise};
use crate::{FakeArtifactSpec, FakeGitHub};

pub const DEMO_OWNER: &str = "octo-demo";
pub const DEMO_REPO: &str = "hello-artifacts";

/// What [`populate`] created.
#[derive(Clone, Debug)]
pub struct DemoInfo {
    pub owner: String,
    pub repo: String,
    pub run_ids: Vec<u64>,
    pub artifact_ids: Vec<u64>,
    /// Paths relative to the mountpoint that are worth a `cat` (each is a readable file).
    pub interesting_paths: Vec<String>,
}

fn test_results(run: u64, failures: u32) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    for i in 1..=4u64 {
        z.add(
            &format!("logs/unit/test-{i}.log"),
            &log_text(20_000 + i as usize * 3_000, run ^ i),
        );
    }
    z.add("logs/integration/api.log", &log_text(60_000, run));
    z.add(
        "junit.xml",
        format!(
            "<?xml version=\"1.0\"?>\n<testsuite name=\"hello\" tests=\"42\" failures=\"{failures}\"/>\n"
        )
        .as_bytes(),
    );
    z.add(
        "summary.txt",
        format!("run {run}: 42 tests, {failures} failed\n").as_bytes(),
    );
    z.add(
        "coverage/index.html",
        b"<html><body><h1>Coverage: 87%</h1></body></html>\n",
    );
    z.finish()
}

fn build_output(run: u64) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add_with(
        "bin/hello",
        format!("#!/bin/sh\necho \"hello from run {run}\"\n").as_bytes(),
        EntryOptions {
            method: Method::Stored,
            unix_mode: Some(0o100755),
            ..Default::default()
        },
    );
    z.add_with(
        "lib/libhello.so",
        &noise(200_000, run),
        EntryOptions {
            method: Method::Stored,
            unix_mode: Some(0o100644),
            ..Default::default()
        },
    );
    z.add("README.md", b"# hello\n\nBuilt by the demo workflow.\n");
    z.finish()
}

/// Fills `gh` with the sample repository.
pub fn populate(gh: &FakeGitHub) -> DemoInfo {
    let (o, r) = (DEMO_OWNER, DEMO_REPO);
    let runs = [
        (7_100_000_101u64, "main", 0u32),
        (7_100_000_102, "feature/login", 2),
        (7_100_000_103, "main", 0),
    ];
    let mut ids = Vec::new();

    // An old artifact that has expired: listed by the API, hidden by artifactfs.
    let old = gh.add_artifact(FakeArtifactSpec::zip(
        o,
        r,
        "old-logs",
        7_100_000_001,
        test_results(1, 0),
    ));
    gh.expire_artifact(old);
    ids.push(old);

    for &(run, branch, failures) in &runs {
        ids.push(
            gh.add_artifact(
                FakeArtifactSpec::zip(o, r, "test-results", run, test_results(run, failures))
                    .branch(branch),
            ),
        );
        ids.push(gh.add_artifact(
            FakeArtifactSpec::zip(o, r, "build-linux", run, build_output(run)).branch(branch),
        ));
    }
    let (last_run, _, _) = runs[runs.len() - 1];
    ids.push(gh.add_artifact(FakeArtifactSpec::raw(
        o,
        r,
        "changelog",
        last_run,
        "CHANGELOG.md",
        b"# Changelog\n\n## 1.2.0\n- lazy reads\n- disk cache\n".to_vec(),
    )));

    // A matrix run with more artifacts than one page of the API holds.
    let matrix_run = 7_100_000_200u64;
    for i in 0..120u32 {
        let mut z = ZipBuilder::new();
        z.add("result.txt", format!("matrix job {i:03}: ok\n").as_bytes());
        ids.push(gh.add_artifact(FakeArtifactSpec::zip(
            o,
            r,
            &format!("matrix-{i:03}"),
            matrix_run,
            z.finish(),
        )));
    }

    let base = format!("{o}/{r}");
    DemoInfo {
        owner: o.to_string(),
        repo: r.to_string(),
        run_ids: runs.iter().map(|r| r.0).chain([matrix_run]).collect(),
        artifact_ids: ids,
        interesting_paths: vec![
            format!("{base}/runs/{}/test-results/summary.txt", runs[1].0),
            format!(
                "{base}/runs/{}/test-results/logs/unit/test-1.log",
                runs[0].0
            ),
            format!("{base}/runs/{last_run}/changelog"),
            format!("{base}/latest/build-linux/bin/hello"),
            format!("{base}/runs/{matrix_run}/matrix-042/result.txt"),
        ],
    }
}
