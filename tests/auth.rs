//! Real mounts and the token: where it comes from (`gh auth token --hostname` for the
//! `--api-url` host, never another host's), and what a mount without one does (lists, never
//! asks for a download, EACCES on reads with one log line, well inside the anonymous quota),
//! and where it never goes: the blob host, a log, the cache (with refreshes and retries forced).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use fake_github::zipgen::ZipBuilder;
use fake_github::{FakeConfig, FakeGitHub, Faults, TokenAccess};

const REPO: &str = "octo-org/hello";

/// A stand-in `gh` in `dir` that, like the real one, holds one token per host: `ghes-token`
/// for 127.0.0.1 (the fake GHES) and `github-com-token` for github.com (also its answer
/// when no `--hostname` is given). Every call is appended to `dir/calls`.
fn stand_in_gh(dir: &Path) {
    let script = format!(
        "#!/bin/sh\n\
         echo \"$*\" >> '{calls}'\n\
         [ \"$1 $2\" = 'auth token' ] || exit 1\n\
         case \"$*\" in\n\
         *'--hostname 127.0.0.1'*) echo ghes-token ;;\n\
         *'--hostname '*) [ \"$4\" = github.com ] && echo github-com-token || exit 1 ;;\n\
         *) echo github-com-token ;;\n\
         esac\n",
        calls = dir.join("calls").display()
    );
    let p = dir.join("gh");
    fs::write(&p, script).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_ghes_mount_asks_gh_for_that_host_s_token_only() {
    require_fuse();
    let gh = FakeGitHub::start(FakeConfig {
        path_prefix: Some("api/v3".into()),
        tokens: [
            ("ghes-token".to_string(), TokenAccess::ReadWrite),
            ("github-com-token".to_string(), TokenAccess::ReadWrite),
        ]
        .into(),
        ..Default::default()
    });
    gh.add_repo("octo-org", "hello", true);
    add_hello_files(&gh, "logs", 1, &[("a.txt", b"from ghes\n")]);
    let bin_dir = tempfile::tempdir().unwrap();
    stand_in_gh(bin_dir.path());

    let m = Daemon::new(&gh, "octo-org/hello")
        .token(None)
        .path_first(bin_dir.path())
        .mount();
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/1/logs/a.txt")).unwrap(),
        b"from ghes\n"
    );
    let calls = fs::read_to_string(bin_dir.path().join("calls")).unwrap();
    assert_eq!(calls.trim(), "auth token --hostname 127.0.0.1", "{calls}");
    let seen = gh.counters().api_tokens_seen;
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["ghes-token".to_string()],
        "only the token gh holds for the --api-url host reaches it"
    );
}

#[test]
fn without_a_token_listings_are_cheap_and_reads_are_eacces_with_one_log_line() {
    require_fuse();
    let gh = FakeGitHub::start(FakeConfig::default());
    // A public repository with 6 artifacts in 3 runs, one of them unzipped.
    for i in 0..5u64 {
        let mut z = ZipBuilder::new();
        z.add("f.txt", format!("{i}\n").as_bytes());
        add_hello(&gh, &format!("a{i}"), 1 + i % 3, z.finish());
    }
    gh.add_artifact(fake_github::FakeArtifactSpec::raw(
        "octo-org",
        "hello",
        "notes",
        3,
        "notes.md",
        b"n\n".to_vec(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let m = Daemon::new(&gh, "octo-org/hello")
        .token(None)
        .stderr_to(&log)
        .mount();
    let runs = m.path("octo-org/hello/runs");
    for _ in 0..3 {
        let (ok, out, err) = sh(&format!("cd '{}' && ls -l 1 2 3", runs.display()));
        assert!(ok, "{err}");
        assert!(out.contains("notes.zip"), "shown as a zip artifact: {out}");
    }
    let c = gh.counters();
    eprintln!(
        "figures: no token, 6 artifacts in 3 runs, mount + three `ls -l` of every run: {} API \
         requests ({} download redirects)",
        c.api_requests,
        c.endpoint("download")
    );
    assert!(c.api_requests <= 10, "{} API requests", c.api_requests);
    assert_eq!(c.endpoint("download"), 0);
    assert_eq!(c.rate_limited, 0);
    // Reading needs a download: EACCES, no request, one log line however many reads.
    for p in ["1/a0/f.txt", "1/a0.zip", "3/notes.zip", "2/a1/f.txt"] {
        assert_eq!(errno_of(fs::read(runs.join(p))), libc::EACCES, "{p}");
    }
    assert_eq!(gh.counters().endpoint("download"), 0);
    assert_eq!(gh.counters().blob_requests, 0);
    drop(m);
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("GH_TOKEN")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("WARN")).count(),
        1,
        "{text}"
    );
}

/// Every file under `dir`; every directory on the way must be private (0700).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", e.path().display());
            files_under(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
fn the_token_never_reaches_the_blob_host_a_log_or_the_cache() {
    let _alone = exclusive("token", 120);
    // Refreshes and retries are where a token could slip out: force both.
    let gh = start_fake_with(Faults {
        blob_force_403_every: 3,
        api_fail_every: 4,
        ..Default::default()
    });
    let (zip, want) = two_thousand_files();
    add_hello(&gh, "many", 5, zip);
    add_hello_files(&gh, "small", 5, &[("small.txt", b"small\n")]);
    add_hello_raw(&gh, "notes", 5, "notes.md", b"# notes\n".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let log = dir.path().join("daemon.log");
    let m = Daemon::new(&gh, REPO)
        .cache_dir(&cache)
        .stderr_to(&log)
        .arg("-vv")
        .arg("--allow-other")
        .mount();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(m.mountpoint.to_str().unwrap()))
        .unwrap()
        .to_string();
    assert!(
        line.contains("default_permissions") && line.contains("allow_other"),
        "--allow-other keeps permission checks: {line}"
    );
    let mut verified = 0;
    for (name, data) in want.iter().step_by(7) {
        let got = fs::read(m.path(&format!("octo-org/hello/runs/5/many/{name}"))).unwrap();
        assert!(got == *data, "{name}");
        verified += 1;
    }
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/5/small/small.txt")).unwrap(),
        b"small\n"
    );
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/5/notes")).unwrap(),
        b"# notes\n"
    );
    m.unmount();
    let c = gh.counters();
    assert_eq!(
        c.blob_auth_headers_seen, 0,
        "Authorization sent to the blob host"
    );
    assert!(c.api_auth_headers_seen > 0, "the API did get the token");
    let mut files = Vec::new();
    files_under(&cache, &mut files);
    assert!(!files.is_empty(), "the cache holds something");
    let mut scanned = 0u64;
    for f in &files {
        let b = fs::read(f).unwrap();
        scanned += b.len() as u64;
        for secret in [TOKEN.as_bytes(), b"sig="] {
            assert!(
                !b.windows(secret.len()).any(|w| w == secret),
                "{} is in {}",
                String::from_utf8_lossy(secret),
                f.display()
            );
        }
        let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    assert_eq!(
        fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700,
        "cache dir mode"
    );
    // The -vv log: detailed, and still no token, no signed URL.
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "-vv logs at debug level");
    assert!(!text.contains(TOKEN), "the token is in the log");
    assert!(!text.contains("sig="), "a signed URL's query is in the log");
    eprintln!(
        "figures: {verified} files read with 403 on every 3rd blob request and 502 on every 4th \
         API request; blob host saw {} requests, 0 with Authorization; API saw {} with it; \
         {} cache files ({scanned} bytes) scanned: no token; cache dir 0700",
        c.blob_requests,
        c.api_auth_headers_seen,
        files.len()
    );
}
