//! Real-mount integration tests: the `artifactfs` binary mounted over FUSE against the fake
//! GitHub server, used through `std::fs` and ordinary commands.

mod common;

use std::collections::BTreeSet;
use std::fs;

use artifactfs::archive::central_directory::tail_len_for;
use common::*;
use fake_github::zipgen::{EntryOptions, Method, ZipBuilder};
use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub, TokenAccess};

const REPO: &str = "octo-org/hello";

#[test]
fn listing_pages_through_250_artifacts() {
    require_fuse();
    let gh = start_fake();
    let mut want = BTreeSet::new();
    let mut sizes = std::collections::HashMap::new();
    for i in 0..250u64 {
        let run = 9000 + i % 5;
        let name = format!("matrix-{i:03}");
        let mut z = ZipBuilder::new();
        z.add("out.txt", format!("artifact {i}\n").as_bytes());
        let zip = z.finish();
        let len = zip.len() as u64;
        let id = gh.add_artifact(FakeArtifactSpec::zip("octo-org", "hello", &name, run, zip));
        sizes.insert(id, len);
        want.insert(format!("{run}/{name}"));
    }
    let m = Daemon::new(&gh, REPO).mount();
    let runs: BTreeSet<String> = fs::read_dir(m.path("octo-org/hello/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(runs.len(), 5);
    let mut seen = BTreeSet::new();
    for run in &runs {
        for e in fs::read_dir(m.path(&format!("octo-org/hello/runs/{run}"))).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if e.file_type().unwrap().is_dir() {
                seen.insert(format!("{run}/{name}"));
            } else {
                assert!(name.ends_with(".zip"), "{name}");
            }
        }
    }
    assert_eq!(seen, want);
    let c = gh.counters();
    // 250 artifacts at per_page=100: three pages for the (single) listing.
    assert_eq!(c.by_endpoint.get("list_repo").copied(), Some(3));
    // Listing runs/ reads each zip's central directory ahead (`ls` may make that read, because
    // that is what the directory is: docs/semantics.md) and nothing else: one tail read each.
    // (These archives are smaller than a tail read, so theirs is the whole archive.)
    let blob_requests = || gh.counters().by_endpoint.get("blob").copied().unwrap_or(0);
    let waited = std::time::Instant::now();
    while blob_requests() < 250 {
        assert!(
            waited.elapsed().as_secs() < 60,
            "{} of 250 central directories read ahead after a minute",
            blob_requests()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    settled_blob_bytes(&gh);
    let c = gh.counters();
    assert_eq!(c.by_endpoint.get("blob").copied(), Some(250));
    for (id, bytes) in &c.blob_bytes_by_artifact {
        let len = sizes[id];
        assert_eq!(
            *bytes,
            tail_len_for(len),
            "artifact {id} of {len} bytes: its tail only"
        );
    }
    assert_eq!(c.blob_bytes_by_artifact.len(), 250);
    assert_eq!(
        fs::read_to_string(m.path("octo-org/hello/runs/9003/matrix-003/out.txt")).unwrap(),
        "artifact 3\n"
    );
    assert_eq!(gh.counters().blob_auth_headers_seen, 0);
}

#[test]
fn every_kind_of_archive_reads_back_exactly() {
    require_fuse();
    let gh = start_fake();
    let big_text = text(3 << 20);
    let rand = noise(700_000, 1);
    let mut files: Vec<(&str, String, Vec<u8>)> = Vec::new();

    let mut z = ZipBuilder::new(); // upload-artifact style: data descriptors, no dirs
    z.add("logs/unit/test-1.log", &big_text);
    z.add_with(
        "bin/tool",
        &rand,
        EntryOptions {
            method: Method::Stored,
            unix_mode: Some(0o100755),
            ..Default::default()
        },
    );
    z.add("deep/a/b/c/d/e/f.txt", b"deep\n");
    z.add("r\u{e9}sum\u{e9} \u{1f600}.txt", "unicode ✓\n".as_bytes());
    z.add("empty.txt", b"");
    let blob = z.finish();
    for (n, d) in [
        ("logs/unit/test-1.log", big_text.clone()),
        ("bin/tool", rand.clone()),
        ("deep/a/b/c/d/e/f.txt", b"deep\n".to_vec()),
        (
            "r\u{e9}sum\u{e9} \u{1f600}.txt",
            "unicode ✓\n".as_bytes().to_vec(),
        ),
        ("empty.txt", Vec::new()),
    ] {
        files.push(("upload", n.to_string(), d));
    }
    add_hello(&gh, "upload", 1, blob.clone());

    let mut z = ZipBuilder::new().data_descriptors(false).force_zip64(true);
    z.add_with("stored.bin", &rand, EntryOptions::stored());
    z.add("deflated.txt", &big_text);
    z.add_dir("explicit-dir");
    let zip64 = z.finish();
    files.push(("zip64", "stored.bin".into(), rand.clone()));
    files.push(("zip64", "deflated.txt".into(), big_text.clone()));
    add_hello(&gh, "zip64", 1, zip64);

    gh.add_artifact(FakeArtifactSpec::raw(
        "octo-org",
        "hello",
        "notes",
        1,
        "notes.md",
        b"# raw artifact\n".to_vec(),
    ));

    let m = Daemon::new(&gh, REPO).mount();
    for (art, name, data) in &files {
        let p = m.path(&format!("octo-org/hello/runs/1/{art}/{name}"));
        let got = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(sha256(&got), sha256(data), "{art}/{name}");
        assert_eq!(fs::metadata(&p).unwrap().len(), data.len() as u64);
    }
    // The archive, byte for byte (also through cat).
    let zip_path = m.path("octo-org/hello/runs/1/upload.zip");
    assert_eq!(sha256(&fs::read(&zip_path).unwrap()), sha256(&blob));
    let (ok, out, _) = sh(&format!("unzip -l '{}'", zip_path.display()));
    assert!(ok && out.contains("logs/unit/test-1.log"));
    // The unzipped artifact is one plain file.
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/1/notes")).unwrap(),
        b"# raw artifact\n"
    );
    assert!(
        fs::metadata(m.path("octo-org/hello/runs/1/notes"))
            .unwrap()
            .is_file()
    );
    // Modes: read-only bits only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| fs::metadata(m.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("octo-org/hello/runs/1/upload/bin/tool"), 0o555);
    assert_eq!(mode("octo-org/hello/runs/1/upload/empty.txt"), 0o444);
    assert_eq!(mode("octo-org/hello/runs/1/upload.zip"), 0o444);
    // Random access inside a deflated entry.
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(m.path("octo-org/hello/runs/1/upload/logs/unit/test-1.log")).unwrap();
    let mut buf = vec![0u8; 1000];
    f.read_exact_at(&mut buf, 2_000_001).unwrap();
    assert_eq!(&buf[..], &big_text[2_000_001..2_001_001]);
    // latest/ is a symlink into runs/.
    assert_eq!(
        fs::read_link(m.path("octo-org/hello/latest/upload"))
            .unwrap()
            .to_string_lossy(),
        "../runs/1/upload"
    );
    assert_eq!(
        fs::read(m.path("octo-org/hello/latest/upload/deep/a/b/c/d/e/f.txt")).unwrap(),
        b"deep\n"
    );
    assert_eq!(gh.counters().blob_auth_headers_seen, 0);
}

#[test]
fn expired_artifacts_are_hidden_and_writes_are_refused() {
    require_fuse();
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("a.txt", b"a\n");
    let live = add_hello(&gh, "live", 5, z.finish());
    let mut z = ZipBuilder::new();
    z.add("b.txt", b"b\n");
    let old = add_hello(&gh, "old", 5, z.finish());
    gh.expire_artifact(old);
    let m = Daemon::new(&gh, REPO).mount();
    let names: BTreeSet<String> = fs::read_dir(m.path("octo-org/hello/runs/5"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["live", "live.zip"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        errno_of(fs::metadata(m.path("octo-org/hello/runs/5/old"))),
        libc::ENOENT
    );
    // No write of any kind.
    let run = m.path("octo-org/hello/runs/5");
    assert_eq!(errno_of(fs::write(run.join("new.txt"), b"x")), libc::EROFS);
    assert_eq!(errno_of(fs::create_dir(run.join("d"))), libc::EROFS);
    assert_eq!(
        errno_of(fs::rename(run.join("live.zip"), run.join("x.zip"))),
        libc::EROFS
    );
    assert_eq!(
        errno_of(
            fs::OpenOptions::new()
                .write(true)
                .open(run.join("live/a.txt"))
        ),
        libc::EROFS
    );
    let _ = live;
    // Unknown repositories by path: ENOENT; a repo not on the command line but existing: works.
    let mut z = ZipBuilder::new();
    z.add("c.txt", b"c\n");
    gh.add_artifact(FakeArtifactSpec::zip(
        "someone",
        "other",
        "x",
        7,
        z.finish(),
    ));
    assert_eq!(
        errno_of(fs::read_dir(m.path("someone/missing"))),
        libc::ENOENT
    );
    assert_eq!(
        fs::read(m.path("Someone/Other/runs/7/x/c.txt")).unwrap(),
        b"c\n"
    );
    // Case-insensitive owner/repo.
    assert_eq!(
        fs::read(m.path("OCTO-ORG/Hello/runs/5/live/a.txt")).unwrap(),
        b"a\n"
    );
}

fn zip_with(name: &str) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add(name, b"content\n");
    z.add("dir/inner.txt", b"inner\n");
    z.finish()
}

#[test]
fn deleting_follows_the_contract() {
    require_fuse();
    let gh = start_fake();
    let a = add_hello(&gh, "alpha", 10, zip_with("a.txt"));
    let b = add_hello(&gh, "beta", 10, zip_with("b.txt"));
    let c = gh.add_artifact(FakeArtifactSpec::raw(
        "octo-org",
        "hello",
        "gamma",
        10,
        "g.txt",
        b"g\n".to_vec(),
    ));
    add_hello(&gh, "delta", 11, zip_with("d.txt"));
    let m = Daemon::new(&gh, REPO).mount();
    let run = m.path("octo-org/hello/runs/10");
    assert_eq!(fs::read(run.join("alpha/a.txt")).unwrap(), b"content\n");
    gh.reset_counters();

    // rm NAME/file: EROFS, nothing sent. rm -r stops there too.
    assert_eq!(
        errno_of(fs::remove_file(run.join("alpha/a.txt"))),
        libc::EROFS
    );
    assert_eq!(errno_of(fs::remove_dir(run.join("alpha/dir"))), libc::EROFS);
    assert_eq!(gh.counters().delete_requests, 0);
    // rmdir runs/RUN_ID: ENOTEMPTY.
    assert_eq!(errno_of(fs::remove_dir(&run)), libc::ENOTEMPTY);
    assert_eq!(gh.counters().delete_requests, 0);

    // rm NAME.zip: one DELETE; gone from NAME/, NAME.zip and latest/.
    fs::remove_file(run.join("alpha.zip")).unwrap();
    assert_eq!(gh.counters().deleted_ids, vec![a]);
    assert_eq!(errno_of(fs::metadata(run.join("alpha"))), libc::ENOENT);
    assert_eq!(errno_of(fs::metadata(run.join("alpha.zip"))), libc::ENOENT);
    assert_eq!(
        errno_of(fs::symlink_metadata(m.path("octo-org/hello/latest/alpha"))),
        libc::ENOENT
    );

    // rmdir NAME (not empty): one DELETE.
    fs::remove_dir(run.join("beta")).unwrap();
    // rm NAME of an unzipped artifact: one DELETE.
    fs::remove_file(run.join("gamma")).unwrap();
    let cnt = gh.counters();
    assert_eq!(cnt.deleted_ids, vec![a, b, c]);
    assert_eq!(cnt.delete_requests, 3);
    assert_eq!(count_entries(&run), 0, "run 10 has no artifacts left");
    let runs: Vec<String> = fs::read_dir(m.path("octo-org/hello/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(runs, vec!["11"]);
    assert_eq!(gh.counters().blob_auth_headers_seen, 0);
}

#[test]
fn read_only_and_forbidden_deletes() {
    require_fuse();
    let mut cfg = FakeConfig::default();
    cfg.tokens.insert("reader".into(), TokenAccess::ReadOnly);
    let gh = FakeGitHub::start(cfg);
    add_hello(&gh, "alpha", 10, zip_with("a.txt"));

    let m = Daemon::new(&gh, REPO).arg("--read-only").mount();
    let run = m.path("octo-org/hello/runs/10");
    assert_eq!(
        errno_of(fs::remove_file(run.join("alpha.zip"))),
        libc::EROFS
    );
    assert_eq!(errno_of(fs::remove_dir(run.join("alpha"))), libc::EROFS);
    assert_eq!(gh.counters().delete_requests, 0);
    m.unmount();

    let m = Daemon::new(&gh, REPO).token(Some("reader")).mount();
    let run = m.path("octo-org/hello/runs/10");
    assert_eq!(
        errno_of(fs::remove_file(run.join("alpha.zip"))),
        libc::EACCES
    );
    assert_eq!(gh.counters().delete_requests, 1);
    assert!(
        fs::metadata(run.join("alpha.zip")).is_ok(),
        "still listed after 403"
    );
    assert_eq!(fs::read(run.join("alpha/a.txt")).unwrap(), b"content\n");
}

#[test]
fn auth_errors_become_errnos() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "alpha", 10, zip_with("a.txt"));
    gh.add_repo("octo-org", "secret", true);

    // Bad token: mount refuses with one line, leaves nothing mounted.
    let (_d, mp, out) = Daemon::new(&gh, REPO)
        .token(Some("wrong"))
        .mount_background();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token rejected"), "{err}");
    assert!(!is_mounted(&mp));

    // No token: the public listing works, downloads need a token (401 → EACCES).
    let m = Daemon::new(&gh, REPO).token(None).mount();
    let names: Vec<String> = fs::read_dir(m.path("octo-org/hello/runs/10"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains(&"alpha.zip".to_string()), "{names:?}");
    let r = fs::read(m.path("octo-org/hello/runs/10/alpha.zip"));
    assert_eq!(errno_of(r), libc::EACCES);
    // A private repo is invisible without a token (404 → ENOENT).
    assert_eq!(
        errno_of(fs::read_dir(m.path("octo-org/secret"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(fs::read_dir(m.path("nobody/nothing"))),
        libc::ENOENT
    );
    assert_eq!(gh.counters().blob_auth_headers_seen, 0);
}

#[test]
fn background_mount_returns_once_ready_and_unmounts() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "alpha", 10, zip_with("a.txt"));
    let (_d, mp, out) = Daemon::new(&gh, REPO).mount_background();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&mp));
    assert_eq!(
        fs::read(mp.join("octo-org/hello/runs/10/alpha/a.txt")).unwrap(),
        b"content\n"
    );
    let st = std::process::Command::new(bin())
        .arg("unmount")
        .arg(&mp)
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while is_mounted(&mp) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!is_mounted(&mp));
}

/// `grep` and `cp` ask where a file's holes are (`SEEK_HOLE`/`SEEK_DATA`): the answer is "none,
/// the whole file is data", and asking leaves no "Not Implemented" warning in the log.
#[test]
fn seek_hole_finds_no_holes_and_logs_nothing() {
    use std::os::fd::AsRawFd;
    require_fuse();
    let gh = start_fake();
    let data = noise(300_000, 7);
    add_hello_files(&gh, "holes", 1, &[("f.bin", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let m = Daemon::new(&gh, "octo-org/hello").stderr_to(&log).mount();
    let f = fs::File::open(m.path("octo-org/hello/runs/1/holes/f.bin")).unwrap();
    let fd = f.as_raw_fd();
    // SAFETY: lseek on a descriptor this test owns; no memory is passed.
    let (hole, data_at, past_end) = unsafe {
        (
            libc::lseek(fd, 0, libc::SEEK_HOLE),
            libc::lseek(fd, 1000, libc::SEEK_DATA),
            libc::lseek(fd, data.len() as i64, libc::SEEK_DATA),
        )
    };
    let past_end_errno = std::io::Error::last_os_error().raw_os_error();
    assert_eq!(
        hole,
        data.len() as i64,
        "the only hole is the end of the file"
    );
    assert_eq!(data_at, 1000, "data everywhere before the end");
    assert_eq!((past_end, past_end_errno), (-1, Some(libc::ENXIO)));
    drop(f);
    drop(m);
    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains("Not Implemented"), "{text}");
}
