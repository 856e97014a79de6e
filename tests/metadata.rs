//! Real mounts and what GitHub says exists: a renamed repository keeps working under its old
//! name, a listing of many pages stays whole when revalidated with 304s after
//! `--metadata-ttl`, an owner exists only if GitHub knows it (and nothing can be created at the
//! root), and `rm -rf runs/RUN` deletes the run's artifacts quietly.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;
use fake_github::FakeArtifactSpec;
use fake_github::zipgen::ZipBuilder;

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add(name, data);
    z.finish()
}

#[test]
fn a_renamed_repository_keeps_working_under_its_old_name() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "logs", 7, zip_of("a.txt", b"still here\n"));
    add_hello(&gh, "more", 8, zip_of("b.txt", b"b\n"));
    gh.rename_repo("octo-org/hello", "octo-org/hello-renamed");
    let m = Daemon::new(&gh, "octo-org/hello").mount();
    let mut runs: Vec<String> = fs::read_dir(m.path("octo-org/hello/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    runs.sort();
    assert_eq!(runs, ["7", "8"], "the old name lists the moved repository");
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/7/logs/a.txt")).unwrap(),
        b"still here\n"
    );
    fs::remove_file(m.path("octo-org/hello/runs/8/more.zip")).unwrap();
    assert_eq!(gh.counters().deleted_ids.len(), 1);
}

#[test]
fn a_listing_of_many_pages_stays_whole_when_revalidated() {
    require_fuse();
    let gh = start_fake();
    // 450 artifacts, one per run: five pages of 100.
    for i in 0..450u64 {
        gh.add_artifact(FakeArtifactSpec::zip(
            "octo-org",
            "hello",
            "a",
            1000 + i,
            Vec::new(),
        ));
    }
    let m = Daemon::new(&gh, "octo-org/hello")
        .arg("--metadata-ttl")
        .arg("1")
        .mount();
    let runs = m.path("octo-org/hello/runs");
    assert_eq!(count_entries(&runs), 450);
    // After the TTL every page is revalidated (304s, which carry no Link): still 450 runs,
    // every time, while the revalidations come in.
    let start = gh.counters().not_modified;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut listings = 0;
    while gh.counters().not_modified < start + 10 {
        assert!(Instant::now() < deadline, "no revalidation happened");
        assert_eq!(count_entries(&runs), 450, "runs vanished");
        assert!(m.path("octo-org/hello/runs/1449").is_dir());
        listings += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count_entries(&runs), 450);
    eprintln!(
        "figures: 450 artifacts (5 pages): {listings} listings while {} pages were revalidated \
         with 304s; every one complete",
        gh.counters().not_modified - start
    );
}

#[test]
fn owners_exist_only_if_github_knows_them_and_the_root_takes_no_writes() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "logs", 7, zip_of("a.txt", b"a\n"));
    gh.add_user("someone", false);
    gh.add_artifact(FakeArtifactSpec::zip(
        "other-org",
        "tools",
        "bin",
        3,
        zip_of("t", b"t\n"),
    ));
    let m = Daemon::new(&gh, "octo-org/hello").mount();
    let users = || gh.counters().endpoint("user");
    assert_eq!(
        errno_of(fs::metadata(m.path("no-such-owner"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(fs::metadata(m.path("no-such-owner"))),
        libc::ENOENT
    );
    assert_eq!(users(), 1, "the negative answer is remembered");
    assert!(m.path("someone").is_dir());
    assert!(m.path("other-org/tools/runs/3/bin").is_dir());
    assert_eq!(
        errno_of(fs::metadata(m.path("someone/nothing"))),
        libc::ENOENT
    );
    assert_eq!(errno_of(fs::create_dir(m.path("newdir"))), libc::EROFS);
    assert_eq!(errno_of(fs::write(m.path("newfile"), b"x")), libc::EROFS);
    let (ok, _, err) = sh(&format!("touch '{}'", m.path("touched").display()));
    assert!(!ok && err.contains("Read-only file system"), "{err}");
    let (ok, _, err) = sh(&format!("mkdir '{}'", m.path("made").display()));
    assert!(!ok && err.contains("Read-only file system"), "{err}");
}

#[test]
fn rm_rf_of_a_run_deletes_its_artifacts_quietly() {
    require_fuse();
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    for f in ["a.txt", "d/b.txt", "d/e/c.txt"] {
        z.add(f, f.as_bytes());
    }
    let zip = z.finish();
    let a = add_hello(&gh, "first", 5, zip.clone());
    let b = add_hello(&gh, "second", 5, zip.clone());
    let c = gh.add_artifact(FakeArtifactSpec::raw(
        "octo-org",
        "hello",
        "notes",
        5,
        "notes.md",
        b"n\n".to_vec(),
    ));
    add_hello(&gh, "kept", 6, zip);
    let m = Daemon::new(&gh, "octo-org/hello").mount();
    // One file inside an artifact: EROFS, nothing deleted.
    let one = m.path("octo-org/hello/runs/6/kept/a.txt");
    assert_eq!(errno_of(fs::remove_file(&one)), libc::EROFS);
    assert_eq!(gh.counters().delete_requests, 0);
    let (ok, out, err) = sh(&format!(
        "rm -rf '{}'",
        m.path("octo-org/hello/runs/5").display()
    ));
    assert!(ok, "rm -rf failed: {err}");
    assert_eq!((out.as_str(), err.as_str()), ("", ""), "rm -rf is quiet");
    let mut deleted = gh.counters().deleted_ids;
    deleted.sort();
    assert_eq!(deleted, vec![a, b, c]);
    assert_eq!(gh.counters().delete_requests, 3, "one DELETE per artifact");
    // Gone from runs/; by path a run without live artifacts is an empty directory.
    assert!(!names_in(&m.path("octo-org/hello/runs")).contains(&"5".to_string()));
    assert_eq!(count_entries(&m.path("octo-org/hello/runs/5")), 0);
    assert!(one.is_file(), "other runs untouched");
}
