//! Real-mount tests of lazy reading: only the bytes read cross the network, once; the block
//! cache survives a remount and keeps to `--cache-size`; a blob host without Range support,
//! signed URLs expiring mid-read and a 70 000-entry zip64 archive all read correctly.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
use fake_github::{FakeConfig, FakeGitHub, Faults};

const REPO: &str = "octo-org/hello";
const MIB: u64 = 1 << 20;

/// ~6.5 MiB: 2000 small deflated logs and a 6 MiB stored entry.
fn big_archive() -> (Vec<u8>, Vec<u8>) {
    let mut z = ZipBuilder::new();
    for i in 0..2000u64 {
        z.add(
            &format!("logs/{:02}/job-{i}.log", i / 100),
            &log_text(2_000 + (i as usize % 7) * 100, i),
        );
    }
    let big = noise(6 << 20, 3);
    z.add_with("payload/big.bin", &big, EntryOptions::stored());
    (z.finish(), big)
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
fn reads_only_what_is_read_once_and_again_after_remount() {
    require_fuse();
    let gh = start_fake();
    let (zip, big) = big_archive();
    assert!(zip.len() as u64 > 6 * MIB);
    let id = add_hello(&gh, "logs", 7, zip.clone());
    let cache = tempfile::tempdir().unwrap();
    let art = "octo-org/hello/runs/7/logs";

    let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
    // ls -R of the artifact: its central directory, nothing else.
    let mut files = Vec::new();
    walk(&m.path(art), &mut files);
    assert_eq!(files.len(), 2001);
    let c = gh.counters();
    let ls_bytes = c.blob_bytes_total;
    assert!(ls_bytes < MIB, "ls -R fetched {ls_bytes} bytes");
    assert!(
        c.endpoint("blob") <= 3,
        "ls -R: {} blob requests",
        c.endpoint("blob")
    );

    // A cold cat of one small file: under 1 MiB in all.
    let small = m.path(&format!("{art}/logs/19/job-1999.log"));
    assert_eq!(
        fs::read(&small).unwrap(),
        log_text(2_000 + (1999 % 7) * 100, 1999)
    );
    let cold = gh.counters().blob_bytes_total;
    assert!(cold < MIB, "ls + cold cat fetched {cold} bytes");
    eprintln!(
        "figures: archive {} bytes; ls -R fetched {ls_bytes} bytes in {} requests; ls + cold cat {cold} bytes",
        zip.len(),
        c.endpoint("blob")
    );
    // Again: nothing.
    assert_eq!(fs::read(&small).unwrap().len(), 2_000 + (1999 % 7) * 100);
    assert_eq!(gh.counters().blob_bytes_total, cold);

    // Random reads inside the stored entry fetch around them only.
    let f = fs::File::open(m.path(&format!("{art}/payload/big.bin"))).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 5_000_000).unwrap();
    assert!(buf[..] == big[5_000_000..5_004_096]);
    let after_random = gh.counters().blob_bytes_total;
    assert!(
        after_random - cold <= 2 * 128 * 1024,
        "{}",
        after_random - cold
    );
    drop(f);
    m.unmount();

    // Remount on the same cache: everything already read costs nothing.
    gh.reset_counters();
    let m = Daemon::new(&gh, REPO).cache_dir(cache.path()).mount();
    let mut again = Vec::new();
    walk(&m.path(art), &mut again);
    assert_eq!(again.len(), 2001);
    let small = m.path(&format!("{art}/logs/19/job-1999.log"));
    assert_eq!(fs::read(&small).unwrap().len(), 2_000 + (1999 % 7) * 100);
    let f = fs::File::open(m.path(&format!("{art}/payload/big.bin"))).unwrap();
    f.read_exact_at(&mut buf, 5_000_000).unwrap();
    assert!(buf[..] == big[5_000_000..5_004_096]);
    let c = gh.counters();
    assert_eq!(c.blob_bytes_total, 0, "remount: no blob bytes");
    assert_eq!(c.endpoint("blob"), 0);
    assert_eq!(c.endpoint("download"), 0, "not even a redirect");

    // The whole archive, byte for byte, and the big entry streamed in full.
    assert_eq!(
        sha256(&fs::read(m.path("octo-org/hello/runs/7/logs.zip")).unwrap()),
        sha256(&zip)
    );
    assert_eq!(
        sha256(&fs::read(m.path(&format!("{art}/payload/big.bin"))).unwrap()),
        sha256(&big)
    );
    let c = gh.counters();
    assert!(
        c.blob_bytes_total <= zip.len() as u64,
        "each byte at most once: {} of {}",
        c.blob_bytes_total,
        zip.len()
    );
    assert_eq!(
        c.blob_bytes_by_artifact.get(&id).copied(),
        Some(c.blob_bytes_total)
    );
    assert_eq!(c.blob_auth_headers_seen, 0);
}

#[test]
fn the_cache_size_is_a_hard_cap() {
    require_fuse();
    let gh = start_fake();
    let (zip, big) = big_archive();
    add_hello(&gh, "logs", 7, zip.clone());
    let cache = tempfile::tempdir().unwrap();
    let cap = 2 * MIB;
    let m = Daemon::new(&gh, REPO)
        .cache_dir(cache.path())
        .arg("--cache-size")
        .arg("2M")
        .mount();
    let art = "octo-org/hello/runs/7/logs";
    // Far more than the cap: the 6 MiB entry, the whole archive, many logs.
    assert_eq!(
        sha256(&fs::read(m.path(&format!("{art}/payload/big.bin"))).unwrap()),
        sha256(&big)
    );
    assert_eq!(
        sha256(&fs::read(m.path("octo-org/hello/runs/7/logs.zip")).unwrap()),
        sha256(&zip)
    );
    for i in (0..2000).step_by(37) {
        let p = m.path(&format!("{art}/logs/{:02}/job-{i}.log", i / 100));
        assert_eq!(
            fs::read(&p).unwrap(),
            log_text(2_000 + (i as usize % 7) * 100, i as u64)
        );
    }
    let used = disk_usage(cache.path());
    // The cap, plus the bookkeeping files (block bitmaps, kinds, the log).
    assert!(
        used <= cap + 64 * 1024,
        "cache holds {used} bytes, cap {cap}"
    );
    let s = {
        let c = std::ffi::CString::new(m.mountpoint.to_str().unwrap()).unwrap();
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
        s
    };
    assert!((s.f_blocks - s.f_bfree) * s.f_frsize <= cap);
}

#[test]
fn a_blob_host_without_range_support_still_reads_right() {
    require_fuse();
    let gh = start_fake_with(Faults {
        no_range: true,
        ..Default::default()
    });
    let (zip, big) = big_archive();
    add_hello(&gh, "logs", 7, zip.clone());
    let m = Daemon::new(&gh, REPO).mount();
    let art = "octo-org/hello/runs/7/logs";
    assert_eq!(
        fs::read(m.path(&format!("{art}/logs/03/job-345.log"))).unwrap(),
        log_text(2_000 + (345 % 7) * 100, 345)
    );
    assert_eq!(
        sha256(&fs::read(m.path(&format!("{art}/payload/big.bin"))).unwrap()),
        sha256(&big)
    );
    let c = gh.counters();
    // The first ranged read learns that Range is ignored; its answer is the blob, whole,
    // read once into the cache.
    assert_eq!(c.endpoint("blob"), 1, "blob requests without Range");
    assert_eq!(c.blob_bytes_total, zip.len() as u64);
}

#[test]
fn a_signed_url_expiring_mid_read_is_renewed() {
    require_fuse();
    let gh = FakeGitHub::start(FakeConfig {
        url_ttl: Duration::from_secs(1),
        ..Default::default()
    });
    let (zip, big) = big_archive();
    add_hello(&gh, "logs", 7, zip);
    let m = Daemon::new(&gh, REPO).mount();
    let f = fs::File::open(m.path("octo-org/hello/runs/7/logs/payload/big.bin")).unwrap();
    // A little, then a pause longer than the URL's life, then the rest.
    let half = 256 * 1024;
    let mut first = vec![0u8; half];
    f.read_exact_at(&mut first, 0).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = vec![0u8; big.len() - half];
    f.read_exact_at(&mut second, half as u64).unwrap();
    first.extend_from_slice(&second);
    assert_eq!(sha256(&first), sha256(&big));
    assert!(gh.counters().endpoint("download") >= 2, "a fresh redirect");
}

#[test]
fn a_zip64_archive_with_70000_entries() {
    require_fuse();
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    for i in 0..70_000u32 {
        z.add_with(
            &format!("d{:02}/f{i}.txt", i / 1000),
            format!("entry {i}\n").as_bytes(),
            EntryOptions::stored(),
        );
    }
    let zip = z.finish();
    add_hello(&gh, "many", 3, zip.clone());
    let m = Daemon::new(&gh, REPO).mount();
    let art = m.path("octo-org/hello/runs/3/many");
    let dirs = count_entries(&art);
    assert_eq!(dirs, 70);
    let n: usize = (0..70)
        .map(|d| fs::read_dir(art.join(format!("d{d:02}"))).unwrap().count())
        .sum();
    assert_eq!(n, 70_000);
    assert_eq!(
        fs::read(art.join("d69/f69999.txt")).unwrap(),
        b"entry 69999\n"
    );
    assert_eq!(fs::read(art.join("d00/f0.txt")).unwrap(), b"entry 0\n");
    let c = gh.counters();
    assert!(
        c.blob_bytes_total < zip.len() as u64,
        "listing and two reads: {} of {} bytes",
        c.blob_bytes_total,
        zip.len()
    );
}

#[test]
fn a_small_archive_is_listed_by_range_and_read_whole_in_one_request() {
    require_fuse();
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add_with("data.bin", &noise(900_000, 5), EntryOptions::stored());
    z.add("notes.txt", b"small archive\n");
    let zip = z.finish();
    assert!(zip.len() < 1 << 20);
    add_hello(&gh, "small", 4, zip.clone());
    let m = Daemon::new(&gh, REPO).mount();
    let dir = m.path("octo-org/hello/runs/4/small");
    assert_eq!(count_entries(&dir), 2);
    let listed = gh.counters().blob_bytes_total;
    assert!(
        listed <= 2 * 128 * 1024,
        "ls fetched {listed} of {} bytes",
        zip.len()
    );
    assert_eq!(fs::read(dir.join("notes.txt")).unwrap(), b"small archive\n");
    let c = gh.counters();
    assert!(c.blob_bytes_total <= zip.len() as u64, "no byte twice");
    assert_eq!(
        c.endpoint("blob"),
        2,
        "one ranged read to list, one request for the rest"
    );
}

#[test]
fn a_big_sequential_read_keeps_several_ranges_in_flight() {
    require_fuse();
    let gh = start_fake();
    let big = noise(40 << 20, 21);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &big, EntryOptions::stored());
    add_hello(&gh, "big", 2, z.finish());
    // Each connection at most 20 MiB/s, as a blob host serves one.
    gh.set_faults(Faults {
        blob_bandwidth: Some(20 << 20),
        ..Default::default()
    });
    let m = Daemon::new(&gh, REPO).mount();
    let p = m.path("octo-org/hello/runs/2/big/big.bin");
    gh.reset_counters();
    assert_eq!(sha256(&fs::read(&p).unwrap()), sha256(&big));
    let c = gh.counters();
    assert!(
        c.blob_in_flight_max >= 3,
        "at most {} ranges in flight",
        c.blob_in_flight_max
    );
    assert!(
        c.blob_bytes_total <= big.len() as u64 + (1 << 20),
        "no byte fetched twice: {}",
        c.blob_bytes_total
    );
}

#[test]
fn a_cold_cat_of_a_small_file_in_a_big_archive_costs_three_round_trips() {
    require_fuse();
    let gh = start_fake();
    let (zip, _) = many_logs_archive();
    add_hello(&gh, "many", 3, zip);
    let m = Daemon::new(&gh, REPO).mount();
    let p = m.path("octo-org/hello/runs/3/many/logs/job-1234.log");
    gh.reset_counters();
    assert_eq!(fs::read(&p).unwrap(), many_logs_job(1234));
    let c = gh.counters();
    // The redirect, the tail with the central directory in it, the entry's block.
    assert_eq!(c.endpoint("download"), 1, "{c:?}");
    assert_eq!(c.endpoint("blob"), 2, "{c:?}");
    assert!(c.blob_bytes_total < 1 << 20, "{} bytes", c.blob_bytes_total);
}
