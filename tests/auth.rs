//! Real mounts and the token: where it comes from (`gh auth token --hostname` for the
//! `--api-url` host, never another host's), and what a mount without one does (lists, never
//! asks for a download, EACCES on reads with one log line, well inside the anonymous quota).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use fake_github::zipgen::ZipBuilder;
use fake_github::{FakeConfig, FakeGitHub, TokenAccess};

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
