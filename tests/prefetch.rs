//! `artifactfs prefetch` through real mounts: a run fetched whole (the fake's blob bytes are
//! the artifacts' sizes), then read offline with the blob host refusing everything (right
//! bytes, nothing fetched); links and paths inside an artifact resolve to the same artifact;
//! the summary line; a path outside a mount; Ctrl-C (exit 130, what was fetched stays).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use fake_github::zipgen::{EntryOptions, ZipBuilder};
use fake_github::{BlobFlip, Faults};

const REPO: &str = "octo-org/hello";

fn prefetch(args: &[PathBuf]) -> Output {
    Command::new(bin())
        .arg("prefetch")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run artifactfs prefetch")
}

/// Every regular file below `dir` (symlinks not followed), by path.
fn files_below(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                let bytes = std::fs::read(e.path())
                    .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
                out.insert(e.path(), bytes);
            }
        }
    }
    out
}

#[test]
fn a_prefetched_run_reads_back_with_the_blob_host_down() {
    require_fuse();
    let _w = Watchdog::arm("prefetch run", 180);
    let gh = start_fake();
    let log = text(2 << 20);
    let bin = noise(3 << 20, 1);
    let mut z = ZipBuilder::new();
    z.add("logs/app.log", &log); // deflated
    z.add_with("bin/tool", &bin, EntryOptions::stored());
    z.add("small.txt", b"small\n");
    let zip = z.finish();
    let report = noise(1_500_000, 2);
    let logs_id = add_hello(&gh, "logs", 7, zip.clone());
    let report_id = add_hello_raw(&gh, "report", 7, "report.html", report.clone());
    let mut z = ZipBuilder::new();
    z.add_with("elsewhere.bin", &noise(2 << 20, 3), EntryOptions::stored());
    let other_id = add_hello(&gh, "other", 8, z.finish());
    let m = Daemon::new(&gh, REPO).mount();

    let run = m.path("octo-org/hello/runs/7");
    let out = prefetch(std::slice::from_ref(&run));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let sizes = zip.len() + report.len();
    let summary = format!("prefetched 2 artifacts, {sizes} bytes (");
    assert!(
        stdout.lines().last().unwrap().starts_with(&summary),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        3,
        "one line per artifact, a summary"
    );

    // Exactly the two blobs, once each; nothing of the other run.
    settled_blob_bytes(&gh);
    let c = gh.counters();
    assert_eq!(
        c.blob_bytes_by_artifact.get(&logs_id),
        Some(&(zip.len() as u64))
    );
    assert_eq!(
        c.blob_bytes_by_artifact.get(&report_id),
        Some(&(report.len() as u64))
    );
    assert_eq!(c.blob_bytes_by_artifact.get(&other_id), None);
    assert_eq!(c.blob_bytes_total, sizes as u64);

    // Offline: the blob host refuses everything; every file of the run still reads right.
    gh.set_faults(Faults {
        blob_force_403_every: 1,
        ..Default::default()
    });
    let before = gh.counters().blob_bytes_total;
    let all = files_below(&run);
    let want: BTreeMap<PathBuf, String> = [
        ("logs/logs/app.log", sha256(&log)),
        ("logs/bin/tool", sha256(&bin)),
        ("logs/small.txt", sha256(b"small\n")),
        ("logs.zip", sha256(&zip)),
        ("report", sha256(&report)),
    ]
    .into_iter()
    .map(|(p, h)| (run.join(p), h))
    .collect();
    let got: BTreeMap<PathBuf, String> = all.iter().map(|(p, b)| (p.clone(), sha256(b))).collect();
    assert_eq!(got, want);
    assert_eq!(gh.counters().blob_bytes_total, before, "nothing fetched");
}

#[test]
fn links_and_paths_inside_an_artifact_are_the_artifact_once() {
    require_fuse();
    let _w = Watchdog::arm("prefetch links", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("dir/a.txt", &text(300_000));
    let zip = z.finish();
    add_hello(&gh, "logs", 7, zip.clone());
    let raw = noise(200_000, 4);
    add_hello_raw(&gh, "report", 7, "report.html", raw.clone());
    let m = Daemon::new(&gh, REPO).mount();
    let p = |rel: &str| m.path(&format!("octo-org/hello/{rel}"));

    let out = prefetch(&[
        p("latest"),
        p("runs/7/logs"),
        p("runs/7/logs/dir/a.txt"),
        p("runs/7/logs.zip"),
        p("latest/report"),
        p("branches"),
        p("workflows/ci.yml"),
        p(&format!(
            "commits/{}",
            &fake_github::runs::default_sha(7)[..7]
        )),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let sizes = zip.len() + raw.len();
    assert!(
        stdout.contains(&format!("prefetched 2 artifacts, {sizes} bytes")),
        "{stdout}"
    );
    assert!(
        stdout.contains("octo-org/hello/runs/7/logs.zip"),
        "{stdout}"
    );
    assert!(stdout.contains("octo-org/hello/runs/7/report "), "{stdout}");

    // A repository is every run in it: the same two.
    let out = prefetch(&[p("")]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("prefetched 2 artifacts"));
}

#[test]
fn an_artifact_that_fails_its_check_is_reported_and_the_exit_is_non_zero() {
    require_fuse();
    let _w = Watchdog::arm("prefetch corrupt", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add_with("good.bin", &noise(1 << 20, 6), EntryOptions::stored());
    let good = z.finish();
    add_hello(&gh, "good", 7, good.clone());
    let bad = noise(2 << 20, 7);
    let bad_id = add_hello_raw(&gh, "bad", 7, "bad.bin", bad);
    let m = Daemon::new(&gh, REPO).mount();
    // Every body of the bad blob carries one changed byte: its digest never matches.
    gh.set_faults(Faults {
        blob_flip: Some(BlobFlip {
            artifact: Some(bad_id),
            offset: 1000,
            times: 0,
        }),
        ..Default::default()
    });
    let out = prefetch(&[m.path("octo-org/hello/runs/7")]);
    assert!(!out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("octo-org/hello/runs/7/good.zip"),
        "{stdout}"
    );
    assert!(stdout.contains("prefetched 1 of 2 artifacts"), "{stdout}");
    assert!(stdout.contains("; 1 failed"), "{stdout}");
    assert!(
        stderr.contains("octo-org/hello/runs/7/bad: Input/output error"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 artifacts failed"), "{stderr}");
}

#[test]
fn a_path_outside_a_mount_is_refused() {
    let plain = tempfile::tempdir().unwrap();
    let out = prefetch(&[plain.path().to_path_buf()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not inside an artifactfs mount"), "{err}");
}

#[test]
fn ctrl_c_stops_with_130_and_what_was_fetched_stays() {
    require_fuse();
    let _w = Watchdog::arm("prefetch ctrl-c", 120);
    let gh = start_fake();
    let big = noise(16 << 20, 5);
    let id = add_hello_raw(&gh, "big", 7, "big.bin", big.clone());
    let m = Daemon::new(&gh, REPO).mount();
    gh.set_faults(Faults {
        blob_bandwidth: Some(2 << 20),
        ..Default::default()
    });
    let mut child = Command::new(bin())
        .arg("prefetch")
        .arg(m.path("octo-org/hello/runs/7"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let fetched = || {
        let c = gh.counters();
        c.blob_bytes_by_artifact.get(&id).copied().unwrap_or(0)
    };
    while fetched() < 1 << 20 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("prefetch ended before it was interrupted: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted: prefetched 0 of 1 artifacts"),
        "{err}"
    );

    // What was fetched stays: reading it all now costs less than the whole blob.
    gh.set_faults(Faults::default());
    let before = settled_blob_bytes(&gh);
    assert!(before < big.len() as u64, "stopped before the end");
    let got = std::fs::read(m.path("octo-org/hello/runs/7/big")).unwrap();
    assert_eq!(sha256(&got), sha256(&big));
    let after = settled_blob_bytes(&gh);
    assert!(
        after - before < big.len() as u64,
        "fetched {} again of {}",
        after - before,
        big.len()
    );
}
