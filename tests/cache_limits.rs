//! Real-mount tests that the cache never breaks a read (docs/semantics.md, "Reading"): a
//! file bigger than `--cache-size` reads right, twice, fetching each byte once each time; a
//! cache on a filesystem too small for what is read still gives the right bytes;
//! `--cache-min-free` keeps the filesystem free; `--cache-size` bounds everything under the
//! cache directory, the log included; and a remount after `kill -9` in the middle of writing
//! blocks or inflating reads right.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use fake_github::Faults;
use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};

const REPO: &str = "octo-org/hello";
const MIB: usize = 1 << 20;

/// A 24 MiB log (deflated) and a 16 MiB stored file: (zip, log, big).
fn archive() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let log = log_text(24 * MIB, 1);
    let big = noise(16 * MIB, 2);
    let mut z = ZipBuilder::new();
    z.add("app.log", &log);
    z.add_with("big.bin", &big, EntryOptions::stored());
    (z.finish(), log, big)
}

/// A fake serving [`archive`] as run 1's `big`: (fake, zip, log, big).
fn fake_with_archive() -> (fake_github::FakeGitHub, Vec<u8>, Vec<u8>, Vec<u8>) {
    let gh = start_fake();
    let (zip, log, big) = archive();
    add_hello(&gh, "big", 1, zip.clone());
    (gh, zip, log, big)
}

/// A mount whose cache lives on `fs`, with a cap far beyond its size.
fn on_tmpfs(gh: &fake_github::FakeGitHub, fs: &Tmpfs, extra: &[&str]) -> Daemon {
    let mut b = Daemon::new(gh, REPO)
        .cache_dir(&fs.path())
        .arg("--cache-size")
        .arg("1G");
    for a in extra {
        b = b.arg(a);
    }
    b
}

fn sha_of(path: &Path) -> String {
    let (ok, out, err) = sh(&format!("sha256sum '{}'", path.display()));
    assert!(ok, "sha256sum {}: {err}", path.display());
    out.split_whitespace().next().unwrap().to_string()
}

/// Runs `f` while a thread samples [`disk_usage`] of `dir` over and over: what `f` gave,
/// the most seen, and how many samples were taken. A walk reads one file after another, so
/// it can count a block in one file before its eviction and a file written in its room after
/// (never on disk together); a sample is the less of two walks in a row, which would both
/// have to fall across such a pair to count it.
fn peak_usage_while<T>(dir: &Path, f: impl FnOnce() -> T) -> (T, u64, u64) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (dir, done) = (dir.to_path_buf(), done.clone());
        std::thread::spawn(move || {
            let (mut peak, mut samples) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(disk_usage(&dir).min(disk_usage(&dir)));
                samples += 1;
            }
            (peak, samples)
        })
    };
    let out = f();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (peak, samples) = sampler.join().unwrap();
    (out, peak, samples)
}

/// A small tmpfs mounted for the test (needs root, as CI runs).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a tmpfs: run the suite as root (CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn free(&self) -> u64 {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn files_bigger_than_the_cache_read_right_twice_each_byte_fetched_once() {
    require_fuse();
    let gh = start_fake();
    let (zip, log, big) = archive();
    add_hello(&gh, "big", 1, zip.clone());
    let m = Daemon::new(&gh, REPO).arg("--cache-size").arg("4M").mount();
    let art = m.path("octo-org/hello/runs/1/big");
    for round in 0..2 {
        gh.reset_counters();
        // Sampled all along the reads, not only at the end: never past the cap.
        let ((log_sha, big_sha), peak, samples) = peak_usage_while(&m.cache_dir, || {
            (sha_of(&art.join("app.log")), sha_of(&art.join("big.bin")))
        });
        assert_eq!(log_sha, sha256(&log), "round {round}");
        assert_eq!(big_sha, sha256(&big), "round {round}");
        let sent = gh.counters().blob_bytes_total;
        eprintln!(
            "figures: round {round}: at most {peak} bytes under the cache dir in {samples} \
             samples; {sent} blob bytes sent for a {} byte archive",
            zip.len()
        );
        assert!(samples > 0);
        assert!(
            peak <= 4 << 20,
            "round {round}: {peak} bytes under the cache dir during the reads"
        );
        // Each byte once (the two files are the whole archive but its headers and central
        // directory). Slack: two blocks, those the files share with the directory and a
        // local header, read before them and evicted by the time the reads reach them.
        assert!(
            sent <= zip.len() as u64 + (256 << 10),
            "round {round}: {sent} blob bytes sent for a {} byte archive",
            zip.len()
        );
        let (ok, out, err) = sh(&format!("head -c 100 '{}'", art.join("app.log").display()));
        assert!(ok, "{err}");
        assert_eq!(out.as_bytes(), &log[..100]);
        assert!(disk_usage(&m.cache_dir) <= 4 << 20, "round {round}");
    }
    assert_eq!(
        sha_of(&m.path("octo-org/hello/runs/1/big.zip")),
        sha256(&zip)
    );
}

#[test]
fn a_cache_on_a_full_filesystem_costs_speed_not_reads() {
    require_fuse();
    let fs = Tmpfs::new("6m");
    let (gh, zip, log, big) = fake_with_archive();
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let m = on_tmpfs(&gh, &fs, &[]).stderr_to(stderr.path()).mount();
    let art = m.path("octo-org/hello/runs/1/big");
    assert_eq!(sha_of(&art.join("big.bin")), sha256(&big));
    assert_eq!(sha_of(&art.join("app.log")), sha256(&log));
    assert_eq!(
        sha_of(&m.path("octo-org/hello/runs/1/big.zip")),
        sha256(&zip)
    );
    drop(m);
    let log = std::fs::read_to_string(stderr.path()).unwrap();
    assert!(
        log.contains("reading from the network without caching"),
        "one warning says why: {log}"
    );
}

#[test]
fn cache_min_free_keeps_the_filesystem_free() {
    require_fuse();
    let fs = Tmpfs::new("40m");
    let (gh, zip, _, big) = fake_with_archive();
    let m = on_tmpfs(&gh, &fs, &["--cache-min-free", "30M"]).mount();
    assert_eq!(
        sha_of(&m.path("octo-org/hello/runs/1/big/big.bin")),
        sha256(&big)
    );
    assert_eq!(
        sha_of(&m.path("octo-org/hello/runs/1/big.zip")),
        sha256(&zip)
    );
    assert!(fs.free() >= 30 << 20, "free: {}", fs.free());
}

#[test]
fn the_cap_counts_every_file_under_the_cache_directory_the_log_included() {
    require_fuse();
    let gh = start_fake();
    let mut ids = Vec::new();
    for i in 0..30u64 {
        let mut z = ZipBuilder::new();
        z.add("a.txt", &log_text(200_000, i));
        z.add_with("b.bin", &noise(300_000, i), EntryOptions::stored());
        ids.push(add_hello(&gh, &format!("art{i}"), 100 + i, z.finish()));
    }
    // A background mount logs (at debug level) into its cache directory.
    let (dir, mountpoint, out) = Daemon::new(&gh, REPO)
        .arg("--cache-size")
        .arg("2M")
        .arg("-vv")
        .mount_background();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cache_dir = dir.path().join("cache");
    for round in 0..3 {
        for i in 0..30u64 {
            let art = mountpoint.join(format!("octo-org/hello/runs/{}/art{i}", 100 + i));
            assert!(std::fs::read(art.join("a.txt")).unwrap().len() == 200_000);
            assert!(std::fs::read(art.join("b.bin")).unwrap().len() == 300_000);
        }
        let used = disk_usage(&cache_dir);
        if used > 2 << 20 {
            let (_, du, _) = sh(&format!(
                "du -a --block-size=1 '{}' | sort -n | tail -40",
                cache_dir.display()
            ));
            panic!("round {round}: {used} bytes under the cache dir:\n{du}");
        }
    }
    assert!(
        cache_dir.join("artifactfs.log.1").exists(),
        "the log rotated"
    );
    unmount(&mountpoint);
    let _ = ids;
}

/// Waits until the fake has sent at least `bytes` blob bytes.
fn wait_for_bytes(gh: &fake_github::FakeGitHub, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while gh.counters().blob_bytes_total < bytes {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_remount_after_kill_9_mid_write_reads_right() {
    require_fuse();
    let gh = start_fake();
    let (zip, log, big) = archive();
    add_hello(&gh, "big", 1, zip);
    let cache = tempfile::tempdir().unwrap();
    for (file, want) in [("big.bin", &big), ("app.log", &log)] {
        gh.set_faults(Faults {
            blob_bandwidth: Some(4 << 20),
            ..Default::default()
        });
        gh.reset_counters();
        let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
        let p = m.path(&format!("octo-org/hello/runs/1/big/{file}"));
        let reader = std::thread::spawn(move || std::fs::read(p));
        // Blocks are being written (and for the log, an inflated copy too) when it dies.
        wait_for_bytes(&gh, 3 << 20);
        m.crash();
        let _ = reader.join();
        gh.set_faults(Faults::default());
        let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
        let p = m.path(&format!("octo-org/hello/runs/1/big/{file}"));
        assert_eq!(sha_of(&p), sha256(want), "{file} after kill -9");
        m.unmount();
    }
}

#[test]
fn a_find_over_3000_small_artifacts_under_a_2m_cache_reads_each_directory_about_once() {
    require_fuse();
    let gh = start_fake();
    const N: u64 = 3000;
    for i in 0..N {
        let mut z = ZipBuilder::new();
        z.add("out/result.txt", &log_text(123, i));
        add_hello(&gh, &format!("art{i}"), 1 + i / 10, z.finish());
    }
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("log");
    let m = Daemon::new(&gh, REPO)
        .arg("--cache-size")
        .arg("2M")
        .stderr_to(&log)
        .mount();
    let runs = m.path("octo-org/hello/runs");
    let (_, out, err) = sh(&format!(
        "timeout 150 find '{}' -name result.txt | wc -l",
        runs.display()
    ));
    assert_eq!(out.trim(), N.to_string(), "every artifact found: {err}");
    let requests = gh.counters().blob_requests;
    assert!(
        requests <= 2 * N,
        "{requests} blob requests for {N} artifacts"
    );
    let used = disk_usage(&m.cache_dir);
    assert!(used <= 2 << 20, "{used} bytes under the cache directory");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("expected, got") && !text.contains("not the digest"),
        "a digest check failed on valid data:\n{text}"
    );
}

#[test]
fn a_full_cache_filesystem_reads_in_large_ranges() {
    require_fuse();
    let fs = Tmpfs::new("6m");
    let gh = start_fake();
    let big = noise(128 * MIB, 21);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &big, EntryOptions::stored());
    add_hello(&gh, "big", 1, z.finish());
    let m = on_tmpfs(&gh, &fs, &[]).mount();
    let path = m.path("octo-org/hello/runs/1/big/big.bin");
    let before = gh.counters().blob_requests;
    assert_eq!(sha_of(&path), sha256(&big));
    let requests = gh.counters().blob_requests - before;
    // A working cache reads 128 MiB in 2 MiB requests (64); a paused one in chunks at least
    // as large, never one request per kernel read (1024 of 128 KiB).
    assert!(requests <= 80, "{requests} blob requests for 128 MiB");
}

#[test]
fn a_full_cache_filesystem_reads_ahead_like_a_working_cache() {
    require_fuse();
    let _alone = exclusive("full cache readahead (requests in flight counted)", 300);
    // A link of 256 MiB/s per connection: a 2 MiB body takes 8 ms, so requests made side by
    // side overlap at the blob host (on loopback each would be gone before the next).
    let gh = start_fake_with(Faults {
        blob_bandwidth: Some(256 << 20),
        ..Default::default()
    });
    let big = noise(128 * MIB, 22);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &big, EntryOptions::stored());
    add_hello(&gh, "big", 1, z.finish());
    let entry = "octo-org/hello/runs/1/big/big.bin";
    // A working cache: what its readahead asks for.
    let working = {
        let m = Daemon::new(&gh, REPO).mount();
        gh.reset_counters();
        assert_eq!(sha_of(&m.path(entry)), sha256(&big));
        gh.counters()
    };
    // The cache's filesystem full: the same ranges, side by side.
    let fs = Tmpfs::new("6m");
    let m = on_tmpfs(&gh, &fs, &[]).mount();
    gh.reset_counters();
    assert_eq!(sha_of(&m.path(entry)), sha256(&big));
    let full = gh.counters();
    eprintln!(
        "figures: 128 MiB with the cache filesystem full: {} blob requests ({} bytes, at most \
         {} at once); a working cache: {} ({} bytes, at most {} at once)",
        full.blob_requests,
        full.blob_bytes_total,
        full.blob_in_flight_max,
        working.blob_requests,
        working.blob_bytes_total,
        working.blob_in_flight_max
    );
    // The same ranges: what was in flight when the disk filled up is kept (in memory, or
    // read back from the blocks written before), never fetched again; two chunks of slack.
    assert!(
        full.blob_requests <= working.blob_requests + 4,
        "{} requests with a full cache filesystem, {} with a working cache",
        full.blob_requests,
        working.blob_requests
    );
    assert!(
        full.blob_bytes_total <= working.blob_bytes_total + (4 << 20),
        "bytes: {} full, {} working",
        full.blob_bytes_total,
        working.blob_bytes_total
    );
    assert!(
        full.blob_in_flight_max >= 2,
        "readahead runs requests side by side with a full cache filesystem too"
    );
}
