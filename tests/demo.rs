//! `artifactfs demo MOUNTPOINT`: mounts the built-in sample repository with no token and no
//! network, prints what to try (every printed `cat` works), and unmounts on Ctrl-C.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn demo_mounts_lists_reads_and_unmounts_on_ctrl_c() {
    require_fuse();
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().join("demo");
    let mut child = Command::new(bin())
        .arg("demo")
        .arg(&mp)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !printed.iter().any(|l: &String| l.contains("Ctrl-C")) {
        assert!(
            Instant::now() < deadline,
            "demo did not come up: {printed:?}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            printed.push(l);
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("demo exited early with {st}: {printed:?}");
        }
    }
    let mp = std::fs::canonicalize(&mp).unwrap();
    assert!(is_mounted(&mp));

    // ls -R of the whole repository: the runs, latest/ and branches/ views.
    let (ok, out, err) = sh(&format!("ls -R '{}' | wc -l", mp.display()));
    assert!(ok, "{err}");
    let lines: usize = out.trim().parse().unwrap();
    assert!(lines > 150, "ls -R printed {lines} lines");
    // Names only: a DirEntry keeps its directory open, which would keep the mount busy.
    let runs: Vec<_> = std::fs::read_dir(mp.join("octo-demo/hello-artifacts/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(runs.len() >= 3, "{runs:?}");

    // Every `cat` the demo suggests works.
    let cats: Vec<String> = printed
        .iter()
        .filter_map(|l| l.trim().strip_prefix("cat ").map(str::to_string))
        .collect();
    assert!(!cats.is_empty(), "{printed:?}");
    for p in &cats {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("cat {p}: {e}"));
        assert!(!data.is_empty(), "{p} is empty");
    }

    // Ctrl-C unmounts and exits.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(!is_mounted(&mp));
}
