//! The real world through a real mount: failing and truncating servers, rate limits, one
//! crawling artifact among fast ones, many readers with a deletion in the middle, and the
//! token kept out of every log and cache file.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use fake_github::zipgen::{EntryOptions, Method, ZipBuilder, log_text, noise};
use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub, Faults};

const REPO: &str = "octo-org/hello";

/// 2000 files (deflated logs, a few stored blobs), over 1 MiB so reads are ranged.
fn many_files() -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
    let mut z = ZipBuilder::new();
    let mut want = BTreeMap::new();
    for i in 0..2000u64 {
        let (name, data, method) = if i % 250 == 0 {
            (
                format!("blobs/b{i}.bin"),
                noise(100_000 + i as usize, i),
                Method::Stored,
            )
        } else {
            (
                format!("logs/{:02}/job-{i}.log", i / 100),
                log_text(500 + (i as usize * 37) % 3000, i),
                Method::Deflated,
            )
        };
        z.add_with(
            &name,
            &data,
            EntryOptions {
                method,
                ..Default::default()
            },
        );
        want.insert(name, data);
    }
    (z.finish(), want)
}

/// These tests measure time and load the machine: one at a time, so that they measure the
/// mount and not each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Panics if the test runs past `secs` (a hang must fail, not stall CI).
fn watchdog(secs: u64) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let t = Instant::now();
        while !d.load(Ordering::SeqCst) {
            if t.elapsed() > Duration::from_secs(secs) {
                eprintln!("watchdog: test still running after {secs} s");
                std::process::exit(101);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    done
}

#[test]
fn every_file_is_right_while_the_api_fails_and_bodies_are_cut() {
    if !fuse_available() {
        return;
    }
    let _serial = serial();
    let done = watchdog(300);
    // Short-lived URLs and listings, so the API is asked again and again while reading.
    let gh = FakeGitHub::start(FakeConfig {
        url_ttl: Duration::from_secs(1),
        ..Default::default()
    });
    let (zip, want) = many_files();
    assert!(zip.len() > 1 << 20);
    for a in 0..3 {
        add_hello(&gh, &format!("many{a}"), 5, zip.clone());
    }
    let m = MountBuilder::new(&gh, REPO)
        .arg("--metadata-ttl")
        .arg("1")
        .mount();
    gh.set_faults(Faults {
        api_fail_every: 3,
        blob_truncate_every: 4,
        ..Default::default()
    });
    let mut verified = 0;
    for (i, (name, data)) in want.iter().enumerate() {
        let p = m.path(&format!("octo-org/hello/runs/5/many{}/{name}", i % 3));
        let got = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(sha256(&got), sha256(data), "{name}");
        verified += 1;
    }
    let c = gh.counters();
    eprintln!(
        "figures: {verified} files verified; {} API requests, {} answered 502 by design; {} blob requests, {} cut short by design",
        c.api_requests,
        c.api_requests / 3,
        c.blob_requests,
        c.blob_requests / 4
    );
    assert_eq!(verified, 2000);
    assert!(c.api_requests >= 6, "the API failures were exercised");
    assert!(c.blob_requests >= 8, "the truncations were exercised");
    assert_eq!(c.blob_auth_headers_seen, 0);
    done.store(true, Ordering::SeqCst);
}

#[test]
fn rate_limits_are_waited_out_within_the_budget() {
    if !fuse_available() {
        return;
    }
    let _serial = serial();
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("f.txt", b"f\n");
    let zip = z.finish();
    add_hello(&gh, "a", 1, zip.clone());
    gh.add_artifact(FakeArtifactSpec::zip(
        "octo-org",
        "other",
        "b",
        2,
        zip.clone(),
    ));
    gh.add_artifact(FakeArtifactSpec::zip("octo-org", "third", "c", 3, zip));
    let m = MountBuilder::new(&gh, REPO)
        .arg("--max-wait")
        .arg("10")
        .mount();
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/1/a/f.txt")).unwrap(),
        b"f\n"
    );
    // Exhausted for 2 s: listing another repository waits, then works.
    gh.set_faults(Faults {
        rate_limit_exhausted_for: Some(Duration::from_secs(2)),
        ..Default::default()
    });
    let t = Instant::now();
    assert_eq!(
        fs::read(m.path("octo-org/other/runs/2/b/f.txt")).unwrap(),
        b"f\n"
    );
    let waited = t.elapsed();
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // Past the budget: EIO at once, not a hang.
    gh.set_faults(Faults {
        rate_limit_exhausted_for: Some(Duration::from_secs(600)),
        ..Default::default()
    });
    let t = Instant::now();
    assert_eq!(
        errno_of(fs::read_dir(m.path("octo-org/third/runs"))),
        libc::EIO
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // What is already listed and read still answers.
    assert_eq!(
        fs::read_dir(m.path("octo-org/hello/runs/1"))
            .unwrap()
            .count(),
        2
    );
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/1/a/f.txt")).unwrap(),
        b"f\n"
    );
}

#[test]
fn one_crawling_artifact_does_not_slow_the_others() {
    if !fuse_available() {
        return;
    }
    let _serial = serial();
    let done = watchdog(120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add_with(
        "slow.bin",
        &noise(4 << 20, 1),
        EntryOptions {
            method: Method::Stored,
            ..Default::default()
        },
    );
    let slow = add_hello(&gh, "slow", 1, z.finish());
    for i in 0..5 {
        let mut z = ZipBuilder::new();
        z.add("f.txt", format!("fast {i}\n").as_bytes());
        add_hello(&gh, &format!("fast{i}"), 2, z.finish());
    }
    let m = MountBuilder::new(&gh, REPO).mount();
    let slow_file = m.path("octo-org/hello/runs/1/slow/slow.bin");
    assert!(
        slow_file.exists(),
        "its central directory came before the throttle"
    );
    gh.set_faults(Faults {
        blob_throttle: Some((slow, 20_000)),
        ..Default::default()
    });
    // A reader stuck on the crawling artifact (left behind; the unmount ends it).
    std::thread::spawn(move || {
        let _ = fs::read(&slow_file);
    });
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..5 {
        let t = Instant::now();
        let names = fs::read_dir(m.path("octo-org/hello/runs/2"))
            .unwrap()
            .count();
        assert_eq!(names, 10);
        assert_eq!(
            fs::read(m.path(&format!("octo-org/hello/runs/2/fast{i}/f.txt"))).unwrap(),
            format!("fast {i}\n").as_bytes()
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "ls + cat took {:?} next to a crawling artifact",
            t.elapsed()
        );
    }
    done.store(true, Ordering::SeqCst);
}

#[test]
fn many_readers_listings_and_a_deletion_at_once() {
    if !fuse_available() {
        return;
    }
    let _serial = serial();
    let done = watchdog(180);
    let gh = start_fake();
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut doomed = 0;
    for a in 0..4u64 {
        let mut z = ZipBuilder::new();
        for f in 0..20u64 {
            let name = format!("d{}/f{f}.txt", f % 3);
            let data = if f % 5 == 0 {
                noise(300_000, a * 100 + f)
            } else {
                log_text(20_000 + f as usize * 100, a * 100 + f)
            };
            z.add(&name, &data);
            want.insert(format!("art{a}/{name}"), data);
        }
        let id = add_hello(&gh, &format!("art{a}"), 9, z.finish());
        if a == 3 {
            doomed = id;
        }
    }
    let m = Arc::new(MountBuilder::new(&gh, REPO).mount());
    let want = Arc::new(want);
    let stop = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..32usize {
        let (m, want, stop, deleted, reads) = (
            m.clone(),
            want.clone(),
            stop.clone(),
            deleted.clone(),
            reads.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let keys: Vec<&String> = want.keys().collect();
            let mut i = t * 7;
            while !stop.load(Ordering::SeqCst) {
                // Half the threads share a few files; the others spread out.
                let k = if t % 2 == 0 {
                    keys[i % 4]
                } else {
                    keys[i % keys.len()]
                };
                let was_deleted = deleted.load(Ordering::SeqCst);
                match fs::read(m.path(&format!("octo-org/hello/runs/9/{k}"))) {
                    Ok(got) => assert!(got == want[k], "{k}: wrong bytes"),
                    Err(e) => {
                        assert!(
                            k.starts_with("art3/") && e.raw_os_error() == Some(libc::ENOENT),
                            "{k}: {e} (deleted: {was_deleted})"
                        );
                    }
                }
                reads.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    let lister = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (ok, _, err) = sh(&format!(
                    "ls -R '{}' > /dev/null",
                    m.path("octo-org/hello").display()
                ));
                // A directory can vanish between readdir and its listing: that is all.
                assert!(ok || err.contains("No such file"), "{err}");
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    fs::remove_file(m.path("octo-org/hello/runs/9/art3.zip")).unwrap();
    deleted.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("a reader failed");
    }
    let listings = lister.join().expect("ls -R failed");
    let c = gh.counters();
    eprintln!(
        "figures: {} reads by 32 threads, {listings} ls -R runs, deleted artifact {doomed}; {} blob requests",
        reads.load(Ordering::SeqCst),
        c.blob_requests
    );
    assert_eq!(c.deleted_ids, vec![doomed]);
    assert!(reads.load(Ordering::SeqCst) > 32);
    assert!(!m.path("octo-org/hello/runs/9/art3").exists());
    done.store(true, Ordering::SeqCst);
}

fn grep_dir(dir: &Path, needle: &[u8], hits: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            grep_dir(&p, needle, hits);
        } else if let Ok(b) = fs::read(&p)
            && b.windows(needle.len()).any(|w| w == needle)
        {
            hits.push(p.display().to_string());
        }
    }
}

#[test]
fn the_token_stays_out_of_logs_cache_and_blob_requests() {
    if !fuse_available() {
        return;
    }
    let _serial = serial();
    let gh = FakeGitHub::start(FakeConfig {
        faults: Faults {
            blob_force_403_every: 3,
            ..Default::default()
        },
        ..Default::default()
    });
    let (zip, want) = many_files();
    add_hello(&gh, "many", 5, zip);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let cache = dir.path().join("cache");
    let m = MountBuilder::new(&gh, REPO)
        .cache_dir(&cache)
        .stderr_to(&log)
        .arg("-vv")
        .arg("--allow-other")
        .mount();
    for (name, data) in want.iter().take(300) {
        let got = fs::read(m.path(&format!("octo-org/hello/runs/5/many/{name}"))).unwrap();
        assert!(got == *data, "{name}");
    }
    // Failures get logged too.
    let _ = fs::read_dir(m.path("octo-org/nope"));
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(m.mountpoint.to_str().unwrap()))
        .unwrap()
        .to_string();
    m.unmount();
    assert!(
        line.contains("default_permissions") && line.contains("allow_other"),
        "--allow-other keeps permission checks: {line}"
    );

    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "-vv logs at debug level");
    assert!(!text.contains(TOKEN), "the token is in the log");
    assert!(!text.contains("sig="), "a signed URL's query is in the log");
    let mut hits = Vec::new();
    grep_dir(&cache, TOKEN.as_bytes(), &mut hits);
    grep_dir(&cache, b"sig=", &mut hits);
    assert!(hits.is_empty(), "secrets in the cache: {hits:?}");
    assert_eq!(
        fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut modes = Vec::new();
    fn collect(d: &Path, out: &mut Vec<(String, u32)>) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                assert_eq!(md.permissions().mode() & 0o777, 0o700, "{:?}", e.path());
                collect(&e.path(), out);
            } else {
                out.push((
                    e.path().display().to_string(),
                    md.permissions().mode() & 0o777,
                ));
            }
        }
    }
    collect(&cache, &mut modes);
    assert!(!modes.is_empty());
    for (p, mode) in modes {
        assert_eq!(mode, 0o600, "{p}");
    }
    let c = gh.counters();
    assert_eq!(c.blob_auth_headers_seen, 0);
    assert!(c.api_auth_headers_seen > 0);
}

#[test]
fn ctrl_c_on_cat_stops_its_download() {
    if !fuse_available() {
        return;
    }
    let _serial = serial();
    let done = watchdog(120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add_with(
        "big.bin",
        &noise(4 << 20, 2),
        EntryOptions {
            method: Method::Stored,
            ..Default::default()
        },
    );
    let id = add_hello(&gh, "big", 1, z.finish());
    let m = MountBuilder::new(&gh, REPO).mount();
    let file = m.path("octo-org/hello/runs/1/big/big.bin");
    assert!(file.exists());
    gh.set_faults(Faults {
        blob_throttle: Some((id, 50_000)),
        ..Default::default()
    });
    let served = || {
        gh.counters()
            .blob_bytes_by_artifact
            .get(&id)
            .copied()
            .unwrap_or(0)
    };
    let before = served();
    let mut cat = std::process::Command::new("cat")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let while_reading = served() - before;
    assert!(while_reading > 0, "the read was under way");
    unsafe {
        libc::kill(cat.id() as i32, libc::SIGINT);
    }
    cat.wait().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let at_stop = served();
    std::thread::sleep(Duration::from_secs(2));
    let after = served() - at_stop;
    eprintln!(
        "figures: {while_reading} bytes in 1.5 s of reading; {after} bytes in the 2 s after Ctrl-C"
    );
    assert!(
        after < 20_000,
        "{after} bytes still downloaded after the reader left"
    );
    done.store(true, Ordering::SeqCst);
}
