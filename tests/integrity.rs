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
    // The file is read through by a pass in the background once half of it was served out
    // of order: from the moment that pass finds the mismatch, every read is EIO (it may be
    // before the last one); reads before that give bytes.
    let mut failed_at = None;
    for (k, off) in order.iter().enumerate() {
        let n = (len - off).min(buf.len() as u64) as usize;
        match f.read_exact_at(&mut buf[..n], *off) {
            Ok(()) => assert!(failed_at.is_none(), "read {k} gave bytes after an EIO"),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EIO), "read {k}");
                assert!(k >= order.len() / 2, "read {k}: EIO before half was served");
                failed_at.get_or_insert(k);
            }
        }
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

/// A zip whose one entry is `data`, stored: (zip, where `data` starts).
fn single_stored(data: &[u8]) -> (Vec<u8>, usize) {
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", data, EntryOptions::stored());
    let zip = z.finish();
    let at = find(&zip, &data[..64]);
    (zip, at)
}

/// Waits (up to 30 s) until a blob in the mount's cache has its block checksums sealed (its
/// digest verified in the background): the `.map`'s flags byte (offset 16), bit 0. Only a
/// wait: what a test asserts is what readers get.
fn wait_sealed(cache: &std::path::Path) {
    for _ in 0..600 {
        let sealed = fs::read_dir(cache.join("blocks"))
            .unwrap()
            .flatten()
            .any(|e| {
                e.path().extension().is_some_and(|x| x == "map")
                    && fs::read(e.path()).is_ok_and(|b| b.get(16).is_some_and(|f| f & 1 != 0))
            });
        if sealed {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `dd if=PATH bs=BS skip=SKIP count=COUNT`: Ok(bytes) when it exits 0, Err(stderr).
fn dd(path: &std::path::Path, bs: usize, skip: usize, count: usize) -> Result<Vec<u8>, String> {
    let out = std::process::Command::new("dd")
        .arg(format!("if={}", path.display()))
        .arg(format!("bs={bs}"))
        .arg(format!("skip={skip}"))
        .arg(format!("count={count}"))
        .arg("status=none")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_byte_changed_on_a_refetch_after_verification_never_reaches_a_partial_reader() {
    require_fuse();
    let gh = start_fake();
    let big = noise(48 * MIB, 11);
    let (zip, at) = single_stored(&big);
    let id = add_hello(&gh, "big", 1, zip);
    let m = Daemon::new(&gh, REPO).arg("--cache-size").arg("8M").mount();
    let path = m.path("octo-org/hello/runs/1/big/big.bin");
    // Read once: it verifies, and most of its blocks are evicted since.
    assert_eq!(sha256sum(&path), Ok(sha256(&big)));
    wait_sealed(&m.cache_dir);
    // One byte of the 21st MiB changed once on its next fetch: `dd` gets the right bytes.
    flip(&gh, id, at + 20 * MIB + 17, 1);
    let got = dd(&path, MIB, 20, 2).expect("dd exits 0");
    assert!(got == big[20 * MIB..22 * MIB], "dd got changed bytes");
    assert_eq!(
        gh.counters().blob_bytes_flipped,
        1,
        "the refetch was changed"
    );
    // Changed on every fetch: EIO, never the changed bytes.
    flip(&gh, id, at + 10 * MIB + 5, 0);
    let e = dd(&path, MIB, 10, 1).expect_err("dd fails");
    assert!(e.contains("Input/output error"), "{e}");
    let flipped = gh.counters().blob_bytes_flipped;
    assert!(flipped >= 3);
    // A reader whose first MiB comes from the kernel's page cache (a sealed blob's pages
    // are kept), the rest from a refetch with one byte changed once: right bytes.
    gh.set_faults(Faults::default());
    let (ok, _, err) = sh(&format!("head -c {MIB} '{}' > /dev/null", path.display()));
    assert!(ok, "{err}");
    flip(&gh, id, at + 30 * MIB + 3, 1);
    assert_eq!(sha256sum(&path), Ok(sha256(&big)));
    assert_eq!(gh.counters().blob_bytes_flipped, flipped + 1);
}

#[test]
fn a_block_damaged_in_the_cache_is_fetched_again_never_served() {
    require_fuse();
    let gh = start_fake();
    let big = noise(8 * MIB, 12);
    let (zip, at) = single_stored(&big);
    add_hello(&gh, "big", 1, zip.clone());
    let m = Daemon::new(&gh, REPO).mount();
    assert_eq!(
        sha256sum(&m.path("octo-org/hello/runs/1/big/big.bin")),
        Ok(sha256(&big))
    );
    wait_sealed(&m.cache_dir);
    let data = fs::read_dir(m.cache_dir.join("blocks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "data"))
        .unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(data)
        .unwrap();
    // Between two reads, one block's copy on disk is damaged: zeros over a page, then one
    // flipped bit in another block. Read through `NAME.zip` (no page of it is in the
    // kernel's cache), by `dd`: the right bytes, that block fetched again.
    let zip_path = m.path("octo-org/hello/runs/1/big.zip");
    for (damage, off) in [("zeros", at + 3 * MIB), ("bit", at + 5 * MIB + 3)] {
        if damage == "zeros" {
            f.write_all_at(&[0u8; 4096], (off & !4095) as u64).unwrap();
        } else {
            let mut b = [0u8];
            f.read_exact_at(&mut b, off as u64).unwrap();
            f.write_all_at(&[b[0] ^ 0x08], off as u64).unwrap();
        }
        let before = settled_blob_bytes(&gh);
        let got = dd(&zip_path, 4096, off / 4096, 1).expect("dd exits 0");
        assert!(
            got == zip[off / 4096 * 4096..][..4096],
            "{damage}: dd got the damaged bytes"
        );
        assert_eq!(
            gh.counters().blob_bytes_total - before,
            128 << 10,
            "{damage}: that block fetched again"
        );
    }
}

/// Where the CRC-32 of entry `name` sits in the archive's central directory.
fn cd_crc_offset(zip: &[u8], name: &str) -> usize {
    let u16_at = |p: usize| u16::from_le_bytes([zip[p], zip[p + 1]]) as usize;
    let u32_at = |p: usize| u32::from_le_bytes(zip[p..p + 4].try_into().unwrap()) as usize;
    let end = zip
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .expect("end record");
    let mut at = u32_at(end + 16);
    loop {
        let (n, x, c) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        if &zip[at + 46..at + 46 + n] == name.as_bytes() {
            return at + 16;
        }
        at += 46 + n + x + c;
    }
}

#[test]
fn one_refetch_heals_a_byte_of_the_central_directory_changed_once() {
    let (gh, id, zip, big, _) = fake_with_mixed();
    flip(&gh, id, cd_crc_offset(&zip, "big.bin"), 1);
    let m = Daemon::new(&gh, REPO).mount();
    let path = m.path("octo-org/hello/runs/1/mixed/big.bin");
    assert_eio(sha256sum(&path), "the CRC read is wrong");
    assert_eq!(gh.counters().blob_bytes_flipped, 1);
    assert_eq!(
        sha256sum(&path),
        Ok(sha256(&big)),
        "the next open reads the central directory again"
    );
}

#[test]
fn an_entry_read_through_checks_its_blocks_fetched_again_in_an_archive_read_in_part() {
    let (gh, id, _, big, big_at) = fake_with_mixed();
    // app.log is never read: the archive's digest can't be checked, big.bin's CRC can.
    let m = Daemon::new(&gh, REPO).arg("--cache-size").arg("8M").mount();
    let path = m.path("octo-org/hello/runs/1/mixed/big.bin");
    assert_eq!(sha256sum(&path), Ok(sha256(&big)));
    flip(&gh, id, big_at + 5 * MIB + 9, 1);
    let got = dd(&path, MIB, 5, 1).expect("dd exits 0");
    assert!(got == big[5 * MIB..6 * MIB], "dd got changed bytes");
    assert_eq!(
        gh.counters().blob_bytes_flipped,
        1,
        "the refetch was changed"
    );
}
