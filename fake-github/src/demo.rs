//! The built-in sample repository `octo-demo/hello-artifacts` that `artifactfs demo` and the
//! standalone server's `--demo` serve: several runs on two branches, upload-artifact-style zips
//! (data descriptors, no directory entries, nested paths, an executable), an unzipped artifact,
//! an expired one, an HTML report that loads its data with `fetch()`, a 120-artifact matrix
//! run so listings page, and a zip holding `dist.tar.gz` (the way to keep modes and symlinks
//! through upload-artifact: an executable, a symlink to it and a 5000-file tree, browsable at
//! `dist.tar.gz.d/`). Runs of two workflows (`ci.yml`, `nightly.yml`), a failed run, a
//! re-run (two attempts' `test-results`), and two pull requests: one from a branch of the
//! repository, one from a fork whose branch is called `main` (so `workflows/`, `commits/`,
//! `pulls/` and `branches/main/` all have something to show). About 1.5 MB in all.

use crate::runs::default_sha;
use crate::zipgen::{EntryOptions, Method, ZipBuilder, log_text, noise};
use crate::{FakeArtifactSpec, FakeGitHub, FakePullSpec, FakeRunSpec};

pub const DEMO_OWNER: &str = "octo-demo";
pub const DEMO_REPO: &str = "hello-artifacts";

/// What [`populate`] created.
#[derive(Clone, Debug)]
pub struct DemoInfo {
    pub owner: String,
    pub repo: String,
    pub run_ids: Vec<u64>,
    pub artifact_ids: Vec<u64>,
    /// The pull requests: one from a branch, one from a fork.
    pub pulls: Vec<u64>,
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

/// The names of the tests in [`html_report`]; the first `failures` of them fail.
const REPORT_TESTS: [&str; 8] = [
    "login rejects a wrong password",
    "login works",
    "logout clears the session",
    "profile page shows the avatar",
    "search finds an artifact by name",
    "settings are saved",
    "the API answers 304 to a fresh ETag",
    "uploads resume after a reset",
];

/// An HTML test report as test tools upload them (upload-artifact of a report folder):
/// `index.html` with a stylesheet and a script that `fetch()`es `data/results.json` and
/// writes the results into the page (so it stays empty when opened from `file://`). Once
/// loaded, `#summary` reads `N passed, M failed (run RUN)` and each test is a table row.
pub fn html_report(run: u64, failures: u32) -> Vec<u8> {
    let tests: Vec<String> = REPORT_TESTS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ok = i as u32 >= failures;
            format!(
                "    {{\"name\": \"{name}\", \"status\": \"{}\", \"ms\": {}}}",
                if ok { "passed" } else { "failed" },
                37 + (i as u64 * 53 + run) % 400
            )
        })
        .collect();
    let json = format!(
        "{{\n  \"run\": {run},\n  \"tests\": [\n{}\n  ]\n}}\n",
        tests.join(",\n")
    );
    let mut z = ZipBuilder::new();
    z.add("index.html", REPORT_HTML.as_bytes());
    z.add("assets/report.css", REPORT_CSS.as_bytes());
    z.add("assets/report.js", REPORT_JS.as_bytes());
    z.add("data/results.json", json.as_bytes());
    z.finish()
}

const REPORT_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test report</title>
<link rel="stylesheet" href="assets/report.css">
</head>
<body>
<header><h1>Test report</h1><p id="summary">Loading results…</p></header>
<main>
<div class="bar"><div id="passed"></div></div>
<table id="tests"><thead><tr><th>Test</th><th>Status</th><th>Time</th></tr></thead><tbody></tbody></table>
</main>
<script src="assets/report.js"></script>
</body>
</html>
"#;

const REPORT_CSS: &str = "body{margin:0;font:15px/1.5 system-ui,sans-serif;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:20px 32px}h1{margin:0;font-size:24px}
#summary{margin:4px 0 0;font-size:17px;color:#d1d9e0}main{max-width:860px;margin:24px auto;padding:0 16px}
.bar{height:10px;border-radius:5px;background:#cf222e;overflow:hidden;margin-bottom:16px}
#passed{height:100%;background:#1a7f37;width:0}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d1d9e0}
th,td{text-align:left;padding:8px 12px;border-top:1px solid #d1d9e0}th{background:#f6f8fa;font-size:13px}
td.passed{color:#1a7f37;font-weight:600}td.failed{color:#cf222e;font-weight:600}td.ms{color:#59636e}
";

const REPORT_JS: &str = "fetch('data/results.json')
  .then(function (r) { return r.json(); })
  .then(function (d) {
    var passed = d.tests.filter(function (t) { return t.status === 'passed'; }).length;
    var failed = d.tests.length - passed;
    document.getElementById('summary').textContent =
      passed + ' passed, ' + failed + ' failed (run ' + d.run + ')';
    document.getElementById('passed').style.width = (100 * passed / d.tests.length) + '%';
    var body = document.querySelector('#tests tbody');
    d.tests.forEach(function (t) {
      var tr = document.createElement('tr');
      [[t.name, 'name'], [t.status, t.status], [t.ms + ' ms', 'ms']].forEach(function (c) {
        var td = document.createElement('td');
        td.textContent = c[0];
        td.className = c[1];
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  })
  .catch(function (e) {
    document.getElementById('summary').textContent = 'could not load the results: ' + e;
  });
";

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

/// A zip holding `dist.tar.gz`: `bin/hello` (0755), `bin/hi -> hello`, a README and
/// `share/data/` with 5000 small files in 50 folders.
pub fn tarball(run: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_714_564_800 + run % 1000);
        b.append_data(&mut h, name, data).expect("in memory");
    };
    let hello = format!(
        "#!/bin/sh
echo \"hello from the tarball of run {run}\"\n"
    );
    add("dist/bin/hello", 0o755, hello.as_bytes());
    add(
        "dist/README.md",
        0o644,
        b"# dist\n\nModes and links kept by tar.\n",
    );
    for i in 0..5000u32 {
        let data = format!("item {i}: {}\n", i.wrapping_mul(2_654_435_761));
        add(
            &format!("dist/share/data/{:02}/item-{i:04}.txt", i / 100),
            0o644,
            data.as_bytes(),
        );
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_mtime(1_714_564_800);
    b.append_link(&mut h, "dist/bin/hi", "hello")
        .expect("in memory");
    let tar = b.into_inner().expect("in memory");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &tar).expect("in memory");
    let mut z = ZipBuilder::new();
    z.add("dist.tar.gz", &gz.finish().expect("in memory"));
    z.add("checksums.txt", b"see dist.tar.gz.d/ for the contents\n");
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

    // The runs: ci.yml on main (103 re-run once), the pull request from feature/login
    // (failed), nightly.yml for the matrix; and a fork's pull request from its own main.
    let matrix_run = 7_100_000_200u64;
    let fork_run = 7_100_000_104u64;
    let (own_pr, fork_pr) = (7u64, 8u64);
    for &(run, branch, failures) in &runs {
        let mut spec = FakeRunSpec::new(o, r, run).branch(branch);
        if failures > 0 {
            spec = spec
                .event("pull_request")
                .conclusion("failure")
                .pull_requests(&[own_pr]);
        }
        gh.add_run(spec.jobs(&["build", "test"]));
    }
    gh.add_run(
        FakeRunSpec::new(o, r, matrix_run)
            .workflow("nightly.yml", "Nightly")
            .event("schedule"),
    );
    gh.add_run(FakeRunSpec::new(o, r, fork_run).from_fork("octo-fan/hello-artifacts"));
    gh.add_pull(FakePullSpec::new(
        o,
        r,
        own_pr,
        "feature/login",
        &default_sha(runs[1].0),
    ));
    gh.add_pull(
        FakePullSpec::new(o, r, fork_pr, "main", &default_sha(fork_run))
            .from_fork("octo-fan/hello-artifacts"),
    );

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
        ids.push(
            gh.add_artifact(
                FakeArtifactSpec::zip(o, r, "html-report", run, html_report(run, failures))
                    .branch(branch),
            ),
        );
    }
    let (last_run, _, _) = runs[runs.len() - 1];
    // The last main run was re-run: its second attempt uploaded test-results again.
    gh.rerun(last_run);
    ids.push(gh.add_artifact(FakeArtifactSpec::zip(
        o,
        r,
        "test-results",
        last_run,
        test_results(last_run + 1, 0),
    )));
    // The fork's pull request built too: under runs/, commits/ and pulls/8/, never latest/.
    ids.push(gh.add_artifact(FakeArtifactSpec::zip(
        o,
        r,
        "build-linux",
        fork_run,
        build_output(fork_run),
    )));
    ids.push(gh.add_artifact(FakeArtifactSpec::raw(
        o,
        r,
        "changelog",
        last_run,
        "CHANGELOG.md",
        b"# Changelog\n\n## 1.2.0\n- lazy reads\n- disk cache\n".to_vec(),
    )));
    ids.push(gh.add_artifact(FakeArtifactSpec::zip(
        o,
        r,
        "dist",
        last_run,
        tarball(last_run),
    )));

    // A matrix run with more artifacts than one page of the API holds.
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
        run_ids: runs
            .iter()
            .map(|r| r.0)
            .chain([fork_run, matrix_run])
            .collect(),
        artifact_ids: ids,
        pulls: vec![own_pr, fork_pr],
        interesting_paths: vec![
            format!("{base}/runs/{}/test-results/summary.txt", runs[1].0),
            format!(
                "{base}/runs/{}/test-results/logs/unit/test-1.log",
                runs[0].0
            ),
            format!("{base}/runs/{last_run}/changelog"),
            format!("{base}/latest/build-linux/bin/hello"),
            format!("{base}/latest/dist/dist.tar.gz.d/dist/bin/hello"),
            format!("{base}/runs/{matrix_run}/matrix-042/result.txt"),
            format!("{base}/workflows/ci.yml/branches/main/test-results/summary.txt"),
            format!("{base}/pulls/{own_pr}/test-results/summary.txt"),
            format!("{base}/pulls/{fork_pr}/build-linux/README.md"),
            format!("{base}/commits/{}/changelog", &default_sha(last_run)[..7]),
        ],
    }
}
