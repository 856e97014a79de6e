//! Issue 5, "survive the real world": real mounts against the fake GitHub with its fault
//! switches on. A failing API, bodies cut short, signed URLs expiring mid-read, forced 403s
//! from the blob host, rate limits, one crawling artifact among fast ones, many readers with
//! a deletion in the middle, and the token kept out of the blob host and the cache.
//!
//! Every test prints a `figures:` line (run with `--nocapture`); docs/reliability.md quotes
//! them. The tests here run one at a time (`exclusive()`): some load the machine (32 readers)
//! and others measure what happens meanwhile. Time bounds are generous "no hang" bounds,
//! never performance assertions; what is asserted is counted (requests, bytes, errnos).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub, Faults};

const OWNER: &str = "octo-org";
const REPO: &str = "octo-org/hello";

/// Lines of the daemon's log (`-v`) that contain `needle`.
fn log_count(log: &Path, needle: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// 2000 files: 1990 small deflated logs and 10 entries over 100 KiB (stored and deflated
/// noise), so the archive is over 1 MiB and is read by ranges, never whole.
fn two_thousand_files() -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
    let mut z = ZipBuilder::new();
    let mut want = BTreeMap::new();
    for i in 0..2000u64 {
        let (name, data, opts) = if i % 200 == 7 {
            let big = noise(100_000 + (i as usize * 311) % 120_000, i);
            let opts = if i % 400 == 7 {
                EntryOptions::stored()
            } else {
                EntryOptions::default()
            };
            (format!("big/b{i:04}.bin"), big, opts)
        } else {
            (
                format!("logs/{:02}/job-{i:04}.log", i / 100),
                log_text(200 + (i as usize * 53) % 2500, i),
                EntryOptions::default(),
            )
        };
        z.add_with(&name, &data, opts);
        want.insert(name, data);
    }
    (z.finish(), want)
}

#[test]
fn every_file_right_while_the_api_fails_and_blob_bodies_are_cut() {
    let _alone = exclusive("api-fail/truncate", 300);
    let gh = start_fake_with(Faults {
        api_fail_every: 3,
        blob_truncate_every: 4,
        ..Default::default()
    });
    let (zip, want) = two_thousand_files();
    assert!(
        zip.len() > 1 << 20,
        "{} bytes: must be read by ranges",
        zip.len()
    );
    assert_eq!(want.len(), 2000);
    add_hello(&gh, "many", 5, zip.clone());
    add_hello(&gh, "copy", 5, zip.clone());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let started = Instant::now();
    // Listings go stale every second, so the failing API keeps being asked while reading.
    let m = Daemon::new(&gh, REPO)
        .arg("--metadata-ttl")
        .arg("1")
        .arg("-v")
        .stderr_to(&log)
        .mount();
    let mut verified = 0usize;
    let mut bytes = 0usize;
    for (name, data) in &want {
        let p = m.path(&format!("octo-org/hello/runs/5/many/{name}"));
        let got = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(got.len(), data.len(), "{name}: length");
        assert_eq!(sha256(&got), sha256(data), "{name}: sha256");
        verified += 1;
        bytes += got.len();
    }
    // The other copy's archive as a whole, by ranged readahead through the same faults.
    let whole = fs::read(m.path("octo-org/hello/runs/5/copy.zip")).unwrap();
    assert_eq!(sha256(&whole), sha256(&zip), "copy.zip");
    let elapsed = started.elapsed();
    let c = gh.counters();
    m.unmount();
    let retries = log_count(&log, "retrying");
    eprintln!(
        "figures: {verified} files ({bytes} bytes) + copy.zip ({} bytes) verified by sha256 in {:.1} s; \
         API: {} requests, {} answered 502 by the fault switch; blob host: {} requests ({} ranged), \
         {} bodies cut short by the fault switch; {retries} retries logged; 0 wrong bytes",
        zip.len(),
        elapsed.as_secs_f64(),
        c.api_requests,
        c.injected("api_502"),
        c.blob_requests,
        c.ranges_served,
        c.injected("blob_cut"),
    );
    assert_eq!(verified, 2000);
    assert!(c.injected("api_502") >= 1, "API failures were injected");
    assert!(c.injected("blob_cut") >= 1, "truncations were injected");
    assert!(c.ranges_served > 0, "ranged reads were used");
    assert!(retries > 0, "the daemon logged its retries");
    assert_eq!(c.blob_auth_headers_seen, 0);
}

/// Reads `len` bytes at `offset` of an open file.
fn read_at(f: &mut fs::File, offset: u64, len: usize) -> Vec<u8> {
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn signed_urls_expire_mid_read_and_forced_403s_get_fresh_ones() {
    let _alone = exclusive("url expiry", 180);
    let gh = FakeGitHub::start(FakeConfig {
        url_ttl: Duration::from_secs(1),
        ..Default::default()
    });
    let big = noise(8 << 20, 42);
    let mut z = ZipBuilder::new();
    z.add("small.txt", b"small\n");
    z.add_with("big.bin", &big, EntryOptions::stored());
    let zip = z.finish();
    add_hello(&gh, "expiring", 3, zip.clone());
    add_hello(&gh, "forced", 3, zip.clone());
    add_hello(&gh, "refused", 4, zip.clone());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let m = Daemon::new(&gh, REPO).arg("-v").stderr_to(&log).mount();

    // Part of the entry, then past the URL's expiry, then the rest on the same handle.
    let p = m.path("octo-org/hello/runs/3/expiring/big.bin");
    let mut f = fs::File::open(&p).unwrap();
    let head = read_at(&mut f, 0, 256 << 10);
    assert!(head == big[..256 << 10], "first part");
    let redirects_before = gh.counters().endpoint("download");
    std::thread::sleep(Duration::from_millis(2500));
    let mut rest = Vec::new();
    f.read_to_end(&mut rest).unwrap();
    drop(f);
    let mut got = head;
    got.extend_from_slice(&rest);
    assert_eq!(got.len(), big.len());
    assert!(got == big, "bytes after the URL expired");
    let redirects_after = gh.counters().endpoint("download");
    let refreshed = log_count(&log, "blob URL rejected (403)");
    assert!(
        redirects_after > redirects_before,
        "a fresh URL was fetched after expiry"
    );
    assert!(refreshed > 0, "the expired URL was refused and replaced");

    // Every other blob request refused with 403: each gets one fresh URL and succeeds.
    gh.set_faults(Faults {
        blob_force_403_every: 2,
        ..Default::default()
    });
    let before = gh.counters();
    let got = fs::read(m.path("octo-org/hello/runs/3/forced/big.bin")).unwrap();
    assert!(got == big, "forced/big.bin under forced 403s");
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/3/forced/small.txt")).unwrap(),
        b"small\n"
    );
    let forced = gh.counters();
    let forced_requests = forced.blob_requests - before.blob_requests;
    assert!(
        forced.injected("blob_403") > before.injected("blob_403"),
        "the URL in use was refused at least once"
    );

    // Every blob request refused: one fresh URL, then a clean error, no hang, no wrong bytes.
    gh.set_faults(Faults {
        blob_force_403_every: 1,
        ..Default::default()
    });
    let t = Instant::now();
    let e = errno_of(fs::read(m.path("octo-org/hello/runs/4/refused/big.bin")));
    assert!(
        e == libc::EACCES || e == libc::EIO,
        "a blob host that always refuses: errno {e}"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    // The failure is not remembered: once the host answers again, the same file reads.
    gh.set_faults(Faults::default());
    let got = fs::read(m.path("octo-org/hello/runs/4/refused/big.bin")).unwrap();
    assert!(got == big, "refused/big.bin after the host recovered");
    let c = gh.counters();
    m.unmount();
    eprintln!(
        "figures: URL TTL 1 s, 2.5 s pause mid-read of an 8 MiB stored entry: right bytes, \
         {} fresh URL(s) after the pause, {refreshed} 403 refresh(es) logged in that part; \
         forced 403 on every 2nd blob request: 8 MiB right in {forced_requests} blob requests; \
         403 on every request: errno {e} (EACCES={}); {} redirects and {} blob requests in all",
        redirects_after - redirects_before,
        libc::EACCES,
        c.endpoint("download"),
        c.blob_requests,
    );
}

#[test]
fn a_rate_limit_is_waited_out_then_the_listing_works() {
    let _alone = exclusive("rate limit", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("f.txt", b"f\n");
    let zip = z.finish();
    add_hello(&gh, "a", 1, zip.clone());
    gh.add_artifact(FakeArtifactSpec::zip(OWNER, "other", "b", 2, zip.clone()));
    gh.add_artifact(FakeArtifactSpec::zip(OWNER, "third", "c", 3, zip.clone()));
    // The mount's own budget (--max-wait, default 60 s) is what is tested: no flag given.
    let m = Daemon::new(&gh, REPO).mount();
    assert_eq!(count_entries(&m.path("octo-org/hello/runs/1")), 2);

    // Primary limit exhausted for 2 s: `ls` of a repository not listed yet waits, then works.
    gh.set_faults(Faults {
        rate_limit_exhausted_for: Some(Duration::from_secs(2)),
        ..Default::default()
    });
    let before = gh.counters().api_requests;
    let t = Instant::now();
    let (ok, out, err) = sh(&format!("ls '{}'", m.path("octo-org/other/runs").display()));
    let primary = t.elapsed();
    assert!(ok, "ls under an exhausted rate limit: {err}");
    assert_eq!(out.trim(), "2");
    // Refused first (403, remaining 0), asked again once the window had passed.
    let asked = gh.counters().api_requests - before;
    assert!(asked >= 2, "{asked} API requests");
    assert!(primary < Duration::from_secs(30), "no hang: {primary:?}");
    assert_eq!(
        fs::read(m.path("octo-org/other/runs/2/b/f.txt")).unwrap(),
        b"f\n"
    );

    // Secondary limit: every 2nd request 429 with Retry-After: 1.
    gh.set_faults(Faults {
        api_429_every: 2,
        ..Default::default()
    });
    // `ls` is request 1; the download redirect `cat` needs is request 2: 429, then 3.
    let before = gh.counters().api_requests;
    let t = Instant::now();
    let (ok, out, err) = sh(&format!("ls '{}'", m.path("octo-org/third/runs").display()));
    assert!(ok, "ls under a secondary rate limit: {err}");
    assert_eq!(out.trim(), "3");
    assert_eq!(
        fs::read(m.path("octo-org/third/runs/3/c/f.txt")).unwrap(),
        b"f\n"
    );
    let secondary = t.elapsed();
    let asked = gh.counters().api_requests - before;
    assert!(
        asked >= 3,
        "a 429 was met and waited out: {asked} API requests"
    );
    assert!(
        secondary < Duration::from_secs(30),
        "no hang: {secondary:?}"
    );
    gh.set_faults(Faults::default());
    assert_eq!(count_entries(&m.mountpoint), 1);
    eprintln!(
        "figures: primary limit exhausted for 2 s: ls waited {:.1} s then listed; \
         secondary limit (429, Retry-After: 1, every 2nd request): ls + cat done in {:.1} s",
        primary.as_secs_f64(),
        secondary.as_secs_f64()
    );
}

#[test]
fn a_throttled_artifact_does_not_stall_the_others() {
    let _alone = exclusive("throttle", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    // Deflated but incompressible, and first: none of it comes with the directory's blocks.
    z.add("slow.txt", &noise(400_000, 8));
    z.add_with("slow.bin", &noise(3 << 20, 9), EntryOptions::stored());
    let slow = add_hello(&gh, "slow", 1, z.finish());
    let n = 6;
    for i in 0..n {
        let mut z = ZipBuilder::new();
        z.add("f.txt", format!("fast {i}\n").as_bytes());
        z.add_with(
            "big.bin",
            &noise(1500 << 10, 100 + i),
            EntryOptions::stored(),
        );
        add_hello(&gh, &format!("fast{i}"), 2, z.finish());
    }
    let m = Daemon::new(&gh, REPO).mount();
    // Its central directory comes at full speed; then its blob crawls at 10 KB/s.
    assert_eq!(count_entries(&m.path("octo-org/hello/runs/1/slow")), 2);
    gh.set_faults(Faults {
        blob_throttle: Some((slow, 10_000)),
        ..Default::default()
    });
    let slow_started = Arc::new(AtomicU64::new(0));
    let slow_result: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    for f in ["slow.bin", "slow.txt"] {
        let (started, result) = (slow_started.clone(), slow_result.clone());
        let p = m.path(&format!("octo-org/hello/runs/1/slow/{f}"));
        // Left running: the unmount at the end ends them. They hold a path, not the
        // mount, so that a failing assertion still unmounts.
        std::thread::spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let r = fs::read(&p);
            result
                .lock()
                .unwrap()
                .push(format!("{f}: {:?}", r.map(|b| b.len())));
        });
    }
    while slow_started.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The slow reads need 40 s and more: an ls or cat that waited on them would take that
    // long. The bound is generous (a loaded machine, a shell spawned per command).
    let bound = Duration::from_secs(10);
    let mut worst = Duration::ZERO;
    // The slow artifact's run directory lists too (no blob bytes needed for that).
    let t = Instant::now();
    let names = count_entries(&m.path("octo-org/hello/runs/1"));
    assert_eq!(names, 2);
    worst = worst.max(t.elapsed());
    for i in 0..n {
        let t = Instant::now();
        let (ok, out, err) = sh(&format!(
            "ls '{}'",
            m.path(&format!("octo-org/hello/runs/2/fast{i}")).display()
        ));
        assert!(ok, "{err}");
        assert_eq!(out.split_whitespace().count(), 2);
        let ls = t.elapsed();
        let t = Instant::now();
        let (ok, out, err) = sh(&format!(
            "cat '{}'",
            m.path(&format!("octo-org/hello/runs/2/fast{i}/f.txt"))
                .display()
        ));
        assert!(ok, "{err}");
        assert_eq!(out, format!("fast {i}\n"));
        let cat = t.elapsed();
        assert!(
            ls < bound,
            "ls of fast{i} took {ls:?} next to a crawling artifact"
        );
        assert!(
            cat < bound,
            "cat of fast{i} took {cat:?} next to a crawling artifact"
        );
        worst = worst.max(ls).max(cat);
    }
    // A 1.5 MiB stored entry of another artifact also streams at full speed meanwhile.
    let t = Instant::now();
    let got = fs::read(m.path("octo-org/hello/runs/2/fast0/big.bin")).unwrap();
    assert!(got == noise(1500 << 10, 100));
    let big = t.elapsed();
    assert!(big < Duration::from_secs(10), "{big:?}");
    let finished = slow_result.lock().unwrap().clone();
    assert!(
        finished.is_empty(),
        "the slow reads were still in flight the whole time: {finished:?}"
    );
    let served = gh
        .counters()
        .blob_bytes_by_artifact
        .get(&slow)
        .copied()
        .unwrap_or(0);
    eprintln!(
        "figures: one artifact throttled to 10 KB/s ({served} bytes of it served so far); \
         meanwhile ls and cat of {n} other artifacts: slowest {} ms; a 1.5 MiB entry of another: {} ms",
        worst.as_millis(),
        big.as_millis()
    );
}

#[test]
fn thirty_two_readers_ls_r_and_a_deletion_at_once() {
    let _alone = exclusive("load", 120);
    // The ordinary failures stay on throughout: retries and URL refreshes under load.
    let gh = start_fake_with(Faults {
        api_fail_every: 5,
        blob_truncate_every: 7,
        blob_force_403_every: 11,
        ..Default::default()
    });
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut zips = Vec::new();
    let mut doomed = 0;
    let arts = 5u64;
    for a in 0..arts {
        let mut z = ZipBuilder::new();
        for f in 0..24u64 {
            let name = format!("d{}/f{f:02}.txt", f % 4);
            let (data, opts) = match f % 6 {
                0 => (noise(250_000, a * 100 + f), EntryOptions::stored()),
                3 => (noise(120_000, a * 100 + f), EntryOptions::default()),
                _ => (
                    log_text(5_000 + f as usize * 1_500, a * 100 + f),
                    EntryOptions::default(),
                ),
            };
            z.add_with(&name, &data, opts);
            want.insert(format!("art{a}/{name}"), data);
        }
        let zip = z.finish();
        let id = add_hello(&gh, &format!("art{a}"), 9, zip.clone());
        if a == arts - 1 {
            doomed = id;
        }
        zips.push(zip);
    }
    let doomed_prefix = format!("art{}/", arts - 1);
    let m = Daemon::new(&gh, REPO).mount();
    // Threads hold the path, not the mount, so that a failure still unmounts.
    let run = m.path("octo-org/hello/runs/9");
    let want = Arc::new(want);
    let stop = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let enoents = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for t in 0..32usize {
        let (run, want, stop, reads, enoents, doomed_prefix) = (
            run.clone(),
            want.clone(),
            stop.clone(),
            reads.clone(),
            enoents.clone(),
            doomed_prefix.clone(),
        );
        let zip0 = zips[0].clone();
        threads.push(std::thread::spawn(move || {
            let keys: Vec<&String> = want.keys().collect();
            let mut i = t * 13;
            while !stop.load(Ordering::SeqCst) {
                // A third of the threads share a few hot files (one per artifact), the rest
                // spread over everything; thread 31 also reads an archive whole.
                let k: &String = if t % 3 == 0 {
                    keys[(i % arts as usize) * 24]
                } else {
                    keys[(i * 7 + t) % keys.len()]
                };
                let path = if t == 31 && i % 5 == 0 {
                    "art0.zip".to_string()
                } else {
                    k.clone()
                };
                match fs::read(run.join(&path)) {
                    Ok(got) => {
                        let expect: &[u8] = if path == "art0.zip" { &zip0 } else { &want[k] };
                        assert!(got == expect, "{path}: wrong bytes");
                    }
                    Err(e) => {
                        assert!(
                            path.starts_with(&doomed_prefix)
                                && e.raw_os_error() == Some(libc::ENOENT),
                            "{path}: {e}"
                        );
                        enoents.fetch_add(1, Ordering::SeqCst);
                    }
                }
                reads.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    let lister = {
        let (repo, stop, deleted) = (m.path("octo-org/hello"), stop.clone(), deleted.clone());
        std::thread::spawn(move || {
            // Listings completed before and after the deletion.
            let mut runs = [0u32; 2];
            while !stop.load(Ordering::SeqCst) {
                let was_deleted = deleted.load(Ordering::SeqCst);
                let (ok, out, err) = sh(&format!("ls -R '{}'", repo.display()));
                // A directory can vanish between its parent's listing and its own: only
                // the deleted artifact may do that.
                if !ok {
                    for l in err.lines() {
                        assert!(
                            l.contains("No such file") && l.contains("art4"),
                            "ls -R: {err}"
                        );
                    }
                }
                if was_deleted {
                    assert!(!out.contains("art4"), "deleted artifact listed: {out}");
                }
                // A whole listing: every artifact there (art4 until it is deleted).
                for a in 0..arts - 1 {
                    assert!(
                        out.contains(&format!("art{a}.zip")),
                        "ls -R lacks art{a}: {out}"
                    );
                }
                runs[usize::from(was_deleted)] += 1;
            }
            runs
        })
    };
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    fs::remove_file(m.path("octo-org/hello/runs/9/art4.zip")).unwrap();
    deleted.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let mut failed = 0;
    for t in threads {
        if t.join().is_err() {
            failed += 1;
        }
    }
    let listings = lister.join().expect("ls -R saw an error it should not");
    assert_eq!(failed, 0, "{failed} reader threads failed");
    assert!(
        listings[0] >= 1 && listings[1] >= 1,
        "ls -R completed while the readers ran, before and after the deletion: {listings:?}"
    );
    let c = gh.counters();
    eprintln!(
        "figures: 32 readers + ls -R loop for {:.1} s with 1 in 5 API requests 502, 1 in 7 blob \
         bodies cut, 1 in 11 blob requests 403, artifact {doomed} deleted after 2 s: \
         {} reads verified, {} ENOENT (all on the deleted artifact), {listings:?} ls -R runs \
         (before, after the delete), {} blob requests, {} DELETE; injected: {:?}",
        t0.elapsed().as_secs_f64(),
        reads.load(Ordering::SeqCst),
        enoents.load(Ordering::SeqCst),
        c.blob_requests,
        c.delete_requests,
        c.injected,
    );
    assert_eq!(c.deleted_ids, vec![doomed]);
    assert!(reads.load(Ordering::SeqCst) > 100);
    assert!(!m.path("octo-org/hello/runs/9/art4").exists());
    assert!(!m.path("octo-org/hello/runs/9/art4.zip").exists());
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/9/art0/d1/f01.txt")).unwrap(),
        want["art0/d1/f01.txt"]
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

#[test]
fn persistent_failures_are_eio_in_bounded_time_and_not_remembered() {
    let _alone = exclusive("persistent failures", 180);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("f.txt", b"small f\n");
    z.add("g.txt", &log_text(50_000, 1));
    let small = z.finish();
    assert!(small.len() < 1 << 20, "fetched whole, in one request");
    add_hello(&gh, "small", 1, small.clone());
    add_hello(&gh, "small2", 1, small.clone());
    let big = noise(2 << 20, 5);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &big, EntryOptions::stored());
    add_hello(&gh, "big", 1, z.finish());
    add_hello_raw(&gh, "notes", 1, "notes.md", b"# notes\n".to_vec());
    gh.add_artifact(FakeArtifactSpec::zip(OWNER, "other", "o", 7, small.clone()));
    // Zip-or-raw probes that fail while the API is down are not retried for --metadata-ttl:
    // a short one, so that `notes` is known to be a raw file again before it is deleted.
    let m = Daemon::new(&gh, REPO)
        .arg("--metadata-ttl")
        .arg("1")
        .mount();
    let run = m.path("octo-org/hello/runs/1");
    let mut figures = Vec::new();

    // The API answers 502 to everything: what needs it is EIO after the retries, quickly.
    gh.set_faults(Faults {
        api_fail_every: 1,
        ..Default::default()
    });
    let t = Instant::now();
    let e = errno_of(fs::read_dir(m.path("octo-org/other/runs")));
    assert_eq!(e, libc::EIO, "listing with the API down");
    let e2 = errno_of(fs::read(run.join("small/f.txt")));
    assert_eq!(
        e2,
        libc::EIO,
        "first read with the API down (needs a download URL)"
    );
    let api_down = t.elapsed();
    assert!(api_down < Duration::from_secs(30), "{api_down:?}");
    assert_eq!(count_entries(&m.mountpoint), 1, "mount up");
    figures.push(format!(
        "API down: ls and cat EIO after {:.1} s",
        api_down.as_secs_f64()
    ));

    // Every blob body cut short: EIO after the retries, not wrong or short bytes.
    gh.set_faults(Faults {
        blob_truncate_every: 1,
        ..Default::default()
    });
    let t = Instant::now();
    assert_eq!(errno_of(fs::read(run.join("small/f.txt"))), libc::EIO);
    assert_eq!(errno_of(fs::read(run.join("big/big.bin"))), libc::EIO);
    let cut = t.elapsed();
    assert!(cut < Duration::from_secs(60), "{cut:?}");
    figures.push(format!(
        "every blob body cut: 2 reads EIO after {:.1} s",
        cut.as_secs_f64()
    ));

    // Healthy again: nothing of those failures was kept.
    gh.set_faults(Faults::default());
    assert_eq!(fs::read(run.join("small/f.txt")).unwrap(), b"small f\n");
    assert!(fs::read(run.join("big/big.bin")).unwrap() == big);
    assert_eq!(
        fs::read(m.path("octo-org/other/runs/7/o/f.txt")).unwrap(),
        b"small f\n"
    );

    // A small archive fetched whole while every 2nd API request and blob body fails.
    gh.set_faults(Faults {
        api_fail_every: 2,
        blob_truncate_every: 2,
        ..Default::default()
    });
    assert!(fs::read(run.join("small2/g.txt")).unwrap() == log_text(50_000, 1));
    assert!(fs::read(run.join("small2.zip")).unwrap() == small);

    // A DELETE that does its work and then answers 500: the retry's 404 counts as done.
    gh.set_faults(Faults {
        delete_fail_every: 1,
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run.join("notes").is_file() {
        assert!(
            Instant::now() < deadline,
            "notes never shown as a raw file again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    fs::remove_file(run.join("notes")).expect("rm with a DELETE that fails after working");
    assert!(!run.join("notes").exists());
    let c = gh.counters();
    assert_eq!(c.deleted_ids.len(), 1);
    assert!(c.delete_requests >= 2, "the DELETE was retried");
    figures.push(format!(
        "DELETE answered 500 after deleting: rm succeeded with {} DELETE requests",
        c.delete_requests
    ));
    eprintln!("figures: {}", figures.join("; "));
}

#[test]
fn api_answers_cut_short_are_retried() {
    let _alone = exclusive("api truncation", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("f.txt", b"f\n");
    let zip = z.finish();
    add_hello(&gh, "a", 1, zip.clone());
    let repos = ["r1", "r2", "r3", "r4"];
    for (i, r) in repos.iter().enumerate() {
        // Enough artifacts that a listing is a body worth cutting.
        for k in 0..30u64 {
            gh.add_artifact(FakeArtifactSpec::zip(
                OWNER,
                r,
                &format!("art{k}"),
                100 + i as u64,
                zip.clone(),
            ));
        }
    }
    let m = Daemon::new(&gh, REPO).mount();
    // Every 2nd 200 answer of the API loses its second half.
    gh.set_faults(Faults {
        api_truncate_every: 2,
        ..Default::default()
    });
    let t = Instant::now();
    for (i, r) in repos.iter().enumerate() {
        let runs = m.path(&format!("octo-org/{r}/runs/{}", 100 + i));
        let n = fs::read_dir(&runs)
            .unwrap_or_else(|e| panic!("ls {r}: {e}"))
            .count();
        assert_eq!(n, 60, "{r}");
        assert_eq!(fs::read(runs.join("art7/f.txt")).unwrap(), b"f\n");
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
    let c = gh.counters();
    eprintln!(
        "figures: every 2nd API answer cut in half: {} repositories listed and read in {:.1} s \
         ({} API requests)",
        repos.len(),
        took.as_secs_f64(),
        c.api_requests
    );
}

#[test]
fn a_failed_zip_or_raw_probe_is_not_asked_again_within_the_ttl_nor_persisted() {
    let _alone = exclusive("kind probe", 120);
    // Blob URLs without a file name: zip or raw is learnt from the blob host's headers.
    let opaque = Faults {
        blob_url_opaque: true,
        ..Default::default()
    };
    let gh = start_fake_with(opaque.clone());
    add_hello_files(&gh, "z", 1, &[("f.txt", b"f\n")]);
    add_hello_raw(&gh, "notes", 1, "notes.md", b"# notes\n".to_vec());
    add_hello_files(&gh, "y", 2, &[("g.txt", b"g\n")]);
    let cache = tempfile::tempdir().unwrap();
    let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
    // Learnt while the blob host is healthy.
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/2/y/g.txt")).unwrap(),
        b"g\n"
    );
    // While the blob host refuses everything, the answer can't be learnt: an error, no guess.
    gh.set_faults(Faults {
        blob_force_403_every: 1,
        ..opaque.clone()
    });
    let run = m.path("octo-org/hello/runs/1");
    let during: Vec<String> = match fs::read_dir(&run) {
        Ok(d) => d
            .map(|e| match e {
                Ok(e) => e.file_name().to_string_lossy().into_owned(),
                Err(e) => format!("error: {e}"),
            })
            .collect(),
        Err(e) => vec![format!("error: {e}")],
    };
    // Within --metadata-ttl the failed probes are not asked again (no download redirect
    // per `ls`).
    let downloads = gh.counters().endpoint("download");
    for _ in 0..3 {
        let _ = fs::read_dir(&run).map(|d| d.count());
    }
    let again = gh.counters().endpoint("download") - downloads;
    // Healthy again, and mounted again on the same cache: no guess was kept, so the zip is a
    // directory (and NAME.zip), the raw file is a file.
    gh.set_faults(opaque);
    m.unmount();
    let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
    let run = m.path("octo-org/hello/runs/1");
    let mut names: Vec<String> = fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["notes", "z", "z.zip"], "listing after the outage");
    assert!(
        again <= 2,
        "{again} probes for 3 listings within the TTL (2 artifacts: one round at most)"
    );
    assert!(run.join("z").is_dir());
    assert_eq!(fs::read(run.join("z/f.txt")).unwrap(), b"f\n");
    assert_eq!(fs::read(run.join("notes")).unwrap(), b"# notes\n");
    eprintln!(
        "figures: zip-or-raw probe during a blob-host outage: listing gave {during:?}; \
         right kinds once it recovered"
    );
}

#[test]
fn a_host_that_ignores_range_and_cuts_bodies_still_gives_right_bytes() {
    let _alone = exclusive("no range", 120);
    let gh = start_fake();
    let big = noise(3 << 20, 11);
    let text = log_text(400_000, 12);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &big, EntryOptions::stored());
    z.add("text.log", &text);
    let zip = z.finish();
    add_hello(&gh, "whole", 1, zip.clone());
    let m = Daemon::new(&gh, REPO).mount();
    // No Range support at all, and every 2nd body cut in half.
    gh.set_faults(Faults {
        no_range: true,
        blob_truncate_every: 2,
        ..Default::default()
    });
    let run = m.path("octo-org/hello/runs/1");
    assert!(fs::read(run.join("whole/text.log")).unwrap() == text);
    assert!(fs::read(run.join("whole/big.bin")).unwrap() == big);
    assert!(fs::read(run.join("whole.zip")).unwrap() == zip);
    let c = gh.counters();
    eprintln!(
        "figures: host ignoring Range with every 2nd body cut: 3 files right ({} blob requests, \
         {} bytes sent for a {} byte archive)",
        c.blob_requests,
        c.blob_bytes_total,
        zip.len()
    );
}

#[test]
fn ctrl_c_on_cat_stops_its_download() {
    let _alone = exclusive("ctrl_c_on_cat_stops_its_download", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &noise(4 << 20, 2), EntryOptions::stored());
    let id = add_hello(&gh, "big", 1, z.finish());
    let m = Daemon::new(&gh, REPO).mount();
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
    // The mount notices the reader is gone within a moment (it watches /proc): wait until the
    // transfer stops (no bytes over half a second), however long that takes here, then check
    // that it stays stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stopped_after = loop {
        let s1 = served();
        std::thread::sleep(Duration::from_millis(500));
        if served() == s1 {
            break s1 - before - while_reading;
        }
        assert!(
            Instant::now() < deadline,
            "the download went on for 30 s after Ctrl-C"
        );
    };
    let at_stop = served();
    std::thread::sleep(Duration::from_secs(2));
    let after = served() - at_stop;
    eprintln!(
        "figures: {while_reading} bytes in 1.5 s of reading; {stopped_after} more until it \
         stopped; {after} bytes in the 2 s after that"
    );
    assert!(
        after < 20_000,
        "{after} bytes still downloaded after the reader left"
    );
}
