//! Real-mount tests of `logs/` against the fake's run logs: every file of a run's logs byte
//! for byte against the fake's originals, `head -c 4096` of a 50 MiB job log fetching at most
//! 2 MiB, `grep -rc ERROR` counting what the originals hold, a run in progress (finished jobs,
//! then the archive), an earlier attempt, a byte changed in flight (EIO, never wrong bytes),
//! expired logs (an empty directory, ENOENT inside, one log line), a remount reading a cached
//! log with no blob request.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use common::*;
use fake_github::{FakeGitHub, FakeRunSpec};

const REPO: &str = "octo-org/hello";
const MIB: u64 = 1 << 20;

fn fake() -> FakeGitHub {
    require_fuse();
    let gh = start_fake();
    add_hello_files(&gh, "build", 1, &[("a.txt", b"a")]);
    gh
}

/// Lines with `ERROR` per file, as `grep -c` counts them.
fn error_lines(b: &[u8]) -> usize {
    b.split(|&c| c == b'\n')
        .filter(|l| l.windows(5).any(|w| w == b"ERROR"))
        .count()
}

/// `a b/c` as `a%20b/c`.
fn url_path(name: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    (name.split('/'))
        .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Waits (up to 20 s) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_runs_logs_read_right_lazily_and_grep_counts_them() {
    let _x = exclusive("logs", 300);
    let gh = fake();
    gh.add_run(
        FakeRunSpec::new("octo-org", "hello", 7)
            .jobs(&["build", "test (ubuntu-latest, 3.12)", "lint"])
            .without_step_files("lint")
            .big_log("build", 50 << 20)
            .conclusion("failure"),
    );
    let m = Daemon::new(&gh, REPO).mount();
    let dir = m.path(&format!("{REPO}/logs/7"));
    let mut top = names_in(&dir);
    top.sort();
    assert_eq!(
        top,
        [
            "1_build.txt",
            "2_test (ubuntu-latest, 3.12).txt",
            "3_lint.txt",
            "build",
            "test (ubuntu-latest, 3.12)"
        ]
    );
    let blob = gh.run_log_blob_id(7, 1).unwrap();
    let fetched = || {
        let _ = settled_blob_bytes(&gh);
        gh.counters()
            .blob_bytes_by_artifact
            .get(&blob)
            .copied()
            .unwrap_or(0)
    };
    let listed = fetched();
    let originals = gh.run_log_files(7, 1);
    let big = &originals[0].1;
    assert!(big.len() as u64 > 50 * MIB);

    // head of the 50 MiB job log: about its first compressed bytes.
    let (ok, out, err) = sh(&format!(
        "head -c 4096 '{}/1_build.txt' | sha256sum",
        dir.display()
    ));
    assert!(ok, "{err}");
    assert!(out.starts_with(&sha256(&big[..4096])), "{out}");
    let head = fetched() - listed;
    assert!(head <= 2 * MIB, "head -c 4096 fetched {head} bytes");
    eprintln!("logs: listing fetched {listed} bytes, head -c 4096 {head}");

    // Every file, byte for byte.
    for (name, bytes) in &originals {
        let got = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got.len() == bytes.len() && got == *bytes, "{name}");
    }
    // grep -rc ERROR counts what the originals hold.
    let (_, out, err) = sh(&format!("cd '{}' && grep -rc ERROR .", dir.display()));
    let counts: BTreeMap<String, usize> = out
        .lines()
        .filter_map(|l| l.rsplit_once(':'))
        .map(|(f, n)| (f.trim_start_matches("./").to_string(), n.parse().unwrap()))
        .collect();
    let want: BTreeMap<String, usize> = (originals.iter())
        .map(|(n, b)| (n.clone(), error_lines(b)))
        .collect();
    assert_eq!(counts, want, "{err}");
    assert!(want.values().sum::<usize>() > 10);

    // The run's attributes; nothing to delete.
    let (ok, out, _) = sh(&format!(
        "getfattr -n user.run.conclusion --only-values '{}'",
        dir.display()
    ));
    assert!(ok && out == "failure", "{out}");
    assert_eq!(
        errno_of(fs::remove_file(dir.join("3_lint.txt"))),
        libc::EROFS
    );
    assert_eq!(errno_of(fs::remove_dir_all(&dir)), libc::EROFS);
    let c = gh.counters();
    assert_eq!(c.delete_requests, 0);
    assert_eq!(c.blob_auth_headers_seen, 0);
    assert_eq!(c.endpoint("run_logs"), 1, "one redirect for the whole test");
    let api = fake_github::openapi::OpenApi::load_above(env!("CARGO_MANIFEST_DIR").as_ref());
    for line in &c.api_request_log {
        assert!(api.check_request(line).is_empty(), "{line}");
    }
}

#[test]
fn in_progress_attempts_expiry_and_a_changed_byte() {
    let _x = exclusive("logs", 300);
    let gh = fake();
    gh.add_run(
        FakeRunSpec::new("octo-org", "hello", 8)
            .jobs(&["build", "a/b"])
            .in_progress(),
    );
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 9).jobs(&["build"]));
    gh.rerun(9);
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 10));
    gh.add_run(FakeRunSpec::new("octo-org", "hello", 11));
    gh.expire_logs(10);
    let log = tempfile::NamedTempFile::new().unwrap();
    let m = Daemon::new(&gh, REPO)
        .arg("--metadata-ttl=1")
        .stderr_to(log.path())
        .mount();
    let logs = m.path(&format!("{REPO}/logs"));
    let mut runs = names_in(&logs);
    runs.sort();
    assert_eq!(runs, ["1", "10", "11", "8", "9", "9.1"]);

    // A run in progress: nothing finished yet, then one job, then the archive.
    let run8 = logs.join("8");
    assert!(names_in(&run8).is_empty());
    gh.finish_job(8, 1);
    eventually("a%2Fb.txt appears", || names_in(&run8) == ["a%2Fb.txt"]);
    let a_b = fs::read(run8.join("a%2Fb.txt")).unwrap();
    assert_eq!(a_b, gh.run_log_files(8, 1)[1].1);
    let before = fs::metadata(&run8).unwrap().modified().unwrap();
    gh.complete_run(8, "success");
    eventually("the archive replaces the jobs", || {
        names_in(&run8).contains(&"1_build.txt".to_string())
    });
    assert_ne!(fs::metadata(&run8).unwrap().modified().unwrap(), before);
    for (name, bytes) in gh.run_log_files(8, 1) {
        assert_eq!(fs::read(run8.join(&name)).unwrap(), bytes, "{name}");
    }

    // An earlier attempt, and the latest.
    for (dir, attempt) in [("9.1", 1), ("9", 2), ("9.2", 2)] {
        for (name, bytes) in gh.run_log_files(9, attempt) {
            assert_eq!(
                fs::read(logs.join(dir).join(&name)).unwrap(),
                bytes,
                "{dir}/{name}"
            );
        }
    }
    assert_ne!(gh.run_log_files(9, 1), gh.run_log_files(9, 2));
    assert_eq!(errno_of(fs::metadata(logs.join("9.3"))), libc::ENOENT);

    // Expired: an empty directory, ENOENT inside, one log line.
    assert!(names_in(&logs.join("10")).is_empty());
    assert_eq!(
        errno_of(fs::metadata(logs.join("10/1_build.txt"))),
        libc::ENOENT
    );
    let text = fs::read_to_string(log.path()).unwrap();
    assert_eq!(text.matches("expired (410)").count(), 1, "{text}");

    // A byte changed in flight: EIO, never wrong bytes.
    let blob = gh.run_log_blob_id(11, 1).unwrap();
    flip(&gh, blob, 60, 0);
    let (ok, _, err) = sh(&format!(
        "cat '{}' > /dev/null",
        logs.join("11/1_build.txt").display()
    ));
    assert!(!ok && err.contains("Input/output error"), "{err}");
}

#[test]
fn a_remount_reads_a_cached_log_with_no_blob_request() {
    let _x = exclusive("logs", 300);
    let gh = fake();
    gh.add_run(
        FakeRunSpec::new("octo-org", "hello", 13)
            .jobs(&["build", "test"])
            .big_log("build", 3 << 20),
    );
    let files = gh.run_log_files(13, 1);
    let cache = tempfile::tempdir().unwrap();
    let read_all = |m: &Mount| {
        for (name, bytes) in &files {
            let got = fs::read(m.path(&format!("{REPO}/logs/13/{name}"))).unwrap();
            assert!(got == *bytes, "{name}");
        }
    };
    let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
    read_all(&m);
    m.unmount();
    let first = gh.counters();
    assert_eq!(first.endpoint("run_logs"), 1);
    assert!(
        first.blob_requests >= 2,
        "the length's probe, then the bytes"
    );
    // The same cache, mounted again: the length and ETag are kept, every byte is cached.
    gh.reset_counters();
    let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
    read_all(&m);
    let c = gh.counters();
    assert_eq!(c.blob_requests, 0, "{c:?}");
    assert_eq!(c.endpoint("run_logs"), 0, "no redirect either");
}

#[test]
fn serve_gives_raw_logs_and_a_view_with_numbered_coloured_lines() {
    let gh = start_fake();
    add_hello_files(&gh, "build", 7, &[("a.txt", b"a")]);
    gh.add_run(
        FakeRunSpec::new("octo-org", "hello", 7)
            .jobs(&["build", "test <x> & (y)"])
            .conclusion("failure"),
    );
    let srv = Daemon::new(&gh, REPO).serve();
    let originals = gh.run_log_files(7, 1);
    // Raw bytes, as a script or a WebDAV client wants them.
    for (name, bytes) in &originals {
        let url = format!("/{REPO}/logs/7/{}", url_path(name));
        let r = srv.get(&url);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(r.body == *bytes, "{name}");
    }
    // The view: numbered, anchored, coloured, escaped.
    let r = srv.get(&format!(
        "/{REPO}/logs/7/2_test%20%3Cx%3E%20%26%20%28y%29.txt?view"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(
        page.contains("<a class=\"n\" href=\"#L12\">12</a>"),
        "{page}"
    );
    assert!(!page.contains('\u{1b}'), "no raw escapes");
    assert!(page.contains("test &lt;x&gt; &amp; (y)"), "{page}");
    assert!(!page.contains("test <x>"));
    assert!(
        page.contains("<span style=\"color:#cd3131;\">ERROR"),
        "{page}"
    );
    // Listings link the views, and a run's artifacts link its logs.
    let l = srv.get(&format!("/{REPO}/logs/7/")).text();
    assert!(l.contains("href=\"1_build.txt?view\">view</a>"), "{l}");
    let l = srv.get(&format!("/{REPO}/runs/7/")).text();
    assert!(
        l.contains(&format!("href=\"/{REPO}/logs/7/\">logs/</a>")),
        "{l}"
    );
    let j = srv.get(&format!("/{REPO}/logs/7/?format=json")).text();
    assert!(j.contains("\"view\": \"1_build.txt?view\""), "{j}");
}

#[test]
fn a_blob_host_without_range_gives_the_logs_in_one_download() {
    let _x = exclusive("logs", 300);
    let gh = fake();
    gh.add_run(
        FakeRunSpec::new("octo-org", "hello", 12)
            .jobs(&["build", "test"])
            .big_log("test", 4 << 20),
    );
    let blob = gh.run_log_blob_id(12, 1).unwrap();
    gh.set_faults(fake_github::Faults {
        no_range: true,
        ..Default::default()
    });
    let m = Daemon::new(&gh, REPO).mount();
    let dir = m.path(&format!("{REPO}/logs/12"));
    gh.reset_counters();
    for (name, bytes) in gh.run_log_files(12, 1) {
        assert_eq!(fs::read(dir.join(&name)).unwrap(), bytes, "{name}");
    }
    let c = gh.counters();
    let whole = c.blob_bytes_by_artifact[&blob];
    eprintln!(
        "logs without Range: {} blob requests, {whole} bytes",
        c.blob_requests
    );
    // The first byte's request is answered whole: that answer is the one download, read
    // once into the cache (bytes fetched = the archive's size).
    assert_eq!(c.blob_requests, 1, "{c:?}");
    assert_eq!(Some(whole), gh.log_blob_len(blob), "{c:?}");
    assert_eq!(c.endpoint("run_logs"), 1);
}
