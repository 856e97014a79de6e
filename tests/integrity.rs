//! Real-mount tests of the integrity promise (docs/semantics.md, "Integrity"): a byte changed
//! in flight by the blob host never reaches a program that reads a file through with exit 0,
//! on every byte path (stored entry, deflated entry, `NAME.zip`, an unzipped artifact, a small
//! archive fetched whole); the check fails the read that completes it and every later read
//! until one refetch verifies; two readers at once and readers out of order both end in EIO.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use common::*;
use fake_github::Faults;
use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};

const REPO: &str = "octo-org/hello";
const MIB: usize = 1 << 20;

/// A fake serving [`mixed_archive`] as run 1's `mixed`: (fake, its id, zip, big, big's data
/// offset).
fn fake_with_mixed() -> (fake_github::FakeGitHub, u64, Vec<u8>, Vec<u8>, usize) {
    require_fuse();
    let gh = start_fake();
    let (zip, _, big, big_at) = mixed_archive();
    let id = add_hello(&gh, "mixed", 1, zip.clone());
    (gh, id, zip, big, big_at)
}

/// `sha256sum FILE`: Ok(hex) when it exits 0, Err(stderr) otherwise.
fn sha256sum(path: &std::path::Path) -> Result<String, String> {
    let (ok, out, err) = sh(&format!("sha256sum '{}'", path.display()));
    if ok {
        Ok(out.split_whitespace().next().unwrap_or("").to_string())
    } else {
        Err(err)
    }
}

fn assert_eio(r: Result<String, String>, what: &str) {
    match r {
        Ok(h) => panic!("{what}: sha256sum exited 0 with {h} on changed bytes"),
        Err(e) => assert!(e.contains("Input/output error"), "{what}: {e}"),
    }
}

#[test]
fn a_changed_byte_never_reaches_a_full_read_on_any_path() {
    require_fuse();
    let gh = start_fake();
    let (zip, log, _, big_at) = mixed_archive();
    let zip_id = add_hello(&gh, "mixed", 1, zip.clone());
    let raw = noise(20 * MIB, 7);
    let raw_id = add_hello_raw(&gh, "raw", 2, "raw.bin", raw.clone());
    let small_log = log_text(600 << 10, 8);
    let mut z = ZipBuilder::new();
    z.add_with("small.txt", &small_log, EntryOptions::stored());
    let small = z.finish();
    assert!(small.len() < MIB, "fetched whole");
    let small_at = find(&small, &small_log[..64]);
    let small_id = add_hello(&gh, "small", 3, small);
    // The deflated log's compressed bytes start right after the first local header.
    let log_at = entry_data_start(&zip, 0) + 100_000;

    let m = Daemon::new(&gh, REPO).mount();
    let runs = m.path("octo-org/hello/runs");
    // Stored entry and NAME.zip: one byte in the middle of big.bin, every time.
    flip(&gh, zip_id, big_at + 9 * MIB + 17, 0);
    assert_eio(sha256sum(&runs.join("1/mixed/big.bin")), "stored entry");
    assert_eio(
        sha256sum(&runs.join("1/mixed/big.bin")),
        "stored entry again",
    );
    assert_eio(sha256sum(&runs.join("1/mixed.zip")), "NAME.zip");
    // The other entry of that archive is untouched by the change and reads right.
    assert_eq!(sha256sum(&runs.join("1/mixed/app.log")), Ok(sha256(&log)));
    // Deflated entry.
    flip(&gh, zip_id, log_at, 0);
    let m2 = Daemon::new(&gh, REPO).mount();
    assert_eio(
        sha256sum(&m2.path("octo-org/hello/runs/1/mixed/app.log")),
        "deflated entry",
    );
    drop(m2);
    // Unzipped artifact.
    flip(&gh, raw_id, 15 * MIB + 3, 0);
    assert_eio(sha256sum(&runs.join("2/raw")), "unzipped artifact");
    // Small archive fetched whole on first read.
    flip(&gh, small_id, small_at + 1000, 0);
    assert_eio(sha256sum(&runs.join("3/small/small.txt")), "small archive");
    assert!(gh.counters().blob_bytes_flipped >= 5);
    // Untouched bytes still read right.
    gh.set_faults(Faults::default());
    assert_eq!(sha256sum(&runs.join("2/raw")).unwrap(), sha256(&raw));
}

#[test]
fn one_refetch_heals_a_transient_change_and_a_second_failure_stays() {
    let (gh, id, _, big, big_at) = fake_with_mixed();
    let m = Daemon::new(&gh, REPO).mount();
    let big_path = m.path("octo-org/hello/runs/1/mixed/big.bin");

    // The link changes one byte once: the first read fails, the next open refetches once,
    // verifies, and reads right.
    flip(&gh, id, big_at + 3 * MIB, 1);
    assert_eio(sha256sum(&big_path), "first read");
    assert_eq!(sha256sum(&big_path), Ok(sha256(&big)), "after one refetch");
    assert_eq!(gh.counters().blob_bytes_flipped, 1);

    // Twice: the refetch is changed too, so EIO stays, even once the link has healed.
    // (A fresh mount and cache: the good bytes above are cached and would be served.)
    drop(m);
    let m = Daemon::new(&gh, REPO).mount();
    let zip_path = m.path("octo-org/hello/runs/1/mixed.zip");
    flip(&gh, id, big_at + 5 * MIB, 2);
    assert_eio(sha256sum(&zip_path), "NAME.zip, first read");
    assert_eio(sha256sum(&zip_path), "NAME.zip, the refetch fails too");
    assert_eq!(gh.counters().blob_bytes_flipped, 1 + 2);
    gh.set_faults(Faults::default());
    // Readahead of the reads above may still have requests on the wire: counted once the
    // blob traffic has stopped, what follows is the next read's alone.
    let bytes_before = settled_blob_bytes(&gh);
    assert_eio(sha256sum(&zip_path), "NAME.zip, EIO stays");
    assert_eq!(
        gh.counters().blob_bytes_total,
        bytes_before,
        "no more fetches once the refetch failed"
    );
}

#[test]
fn two_readers_of_a_changed_file_both_end_in_eio() {
    let (gh, id, _, _, big_at) = fake_with_mixed();
    flip(&gh, id, big_at + 11 * MIB, 0);
    let m = Daemon::new(&gh, REPO).mount();
    for path in [
        "octo-org/hello/runs/1/mixed/big.bin",
        "octo-org/hello/runs/1/mixed.zip",
    ] {
        let p = m.path(path);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || sha256sum(&p))
            })
            .collect();
        for r in readers {
            assert_eio(r.join().unwrap(), path);
        }
    }
}

#[test]
fn a_changed_file_read_out_of_order_fails_the_read_that_completes_it() {
    let (gh, id, _, big, big_at) = fake_with_mixed();
    flip(&gh, id, big_at + 2 * MIB + 5, 0);
    let m = Daemon::new(&gh, REPO).mount();
    let f = fs::File::open(m.path("octo-org/hello/runs/1/mixed/big.bin")).unwrap();
    let len = big.len() as u64;
    let half = len / 2;
    let mut buf = vec![0u8; 1 << 20];
    // The second half, then the first: every byte is read once, never in one pass.
    let mut order: Vec<u64> = (half..len).step_by(buf.len()).collect();
    order.extend((0..half).step_by(buf.len()));
    let last = order.pop().unwrap();
    for off in order {
        let n = (len - off).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], off).unwrap();
    }
    let n = (len - last).min(buf.len() as u64) as usize;
    assert_eq!(
        errno_of(f.read_exact_at(&mut buf[..n], last)),
        libc::EIO,
        "the read that completes the file"
    );
    assert_eq!(errno_of(f.read_exact_at(&mut buf[..10], 0)), libc::EIO);
    drop(f);
    assert_eq!(
        errno_of(fs::read(m.path("octo-org/hello/runs/1/mixed/big.bin"))),
        libc::EIO
    );
}

#[test]
fn a_file_not_verified_yet_can_still_be_mmapped() {
    use std::os::fd::AsRawFd;
    let (gh, _, _, big, _) = fake_with_mixed();
    let m = Daemon::new(&gh, REPO).mount();
    // Opened before any check: direct I/O, with mmap allowed.
    let f = fs::File::open(m.path("octo-org/hello/runs/1/mixed/big.bin")).unwrap();
    let len = big.len();
    // SAFETY: a read-only private mapping of an open file, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
    // SAFETY: `p` maps `len` readable bytes.
    let mapped = unsafe { std::slice::from_raw_parts(p as *const u8, len) };
    assert_eq!(sha256(mapped), sha256(&big));
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(p, len) };
}
