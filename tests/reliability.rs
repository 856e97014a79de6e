//! Issue 5, "survive the real world": real mounts against the fake GitHub with its fault
//! switches on. A failing API, bodies cut short, signed URLs expiring mid-read, forced 403s
//! from the blob host, rate limits, persistent failures, a host that ignores Range. (Load:
//! tests/load.rs; the token kept out of the blob host, logs and cache: tests/auth.rs.)
//!
//! Every test prints a `figures:` line (run with `--nocapture`); docs/reliability.md quotes
//! them. The tests here run one at a time (`exclusive()`). Time bounds are generous "no hang" bounds,
//! never performance assertions; what is asserted is counted (requests, bytes, errnos).

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
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
