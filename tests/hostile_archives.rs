//! Hostile and broken archives through a real mount: names that try to escape, collide or
//! carry control bytes; bad CRCs, truncation, lying sizes, encryption, unknown methods. Each
//! gives a clean errno for that file only, nothing escapes the artifact's directory, and the
//! mount stays up.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use fake_github::zipgen::{EntryOptions, Method, ZipBuilder};

const REPO: &str = "octo-org/hello";

fn stored() -> EntryOptions {
    EntryOptions {
        method: Method::Stored,
        ..Default::default()
    }
}

/// Every file under `dir`, relative path → contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            assert!(
                p.starts_with(root),
                "{} escaped {}",
                p.display(),
                root.display()
            );
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Offsets of the central-directory headers in `zip`, in order.
fn cd_headers(zip: &[u8]) -> Vec<usize> {
    let eocd = zip
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .expect("end record");
    let cd = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    let n = u16::from_le_bytes(zip[eocd + 10..eocd + 12].try_into().unwrap()) as usize;
    let mut at = cd;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(at);
        let nl = u16::from_le_bytes(zip[at + 28..at + 30].try_into().unwrap()) as usize;
        let el = u16::from_le_bytes(zip[at + 30..at + 32].try_into().unwrap()) as usize;
        let cl = u16::from_le_bytes(zip[at + 32..at + 34].try_into().unwrap()) as usize;
        at += 46 + nl + el + cl;
    }
    out
}

fn put_u16(z: &mut [u8], at: usize, v: u16) {
    z[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(z: &mut [u8], at: usize, v: u32) {
    z[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn hostile_names_stay_inside_and_collisions_are_kept() {
    if !fuse_available() {
        return;
    }
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    let long = "x".repeat(300);
    let entries: Vec<(Vec<u8>, &[u8])> = vec![
        (b"/etc/passwd".to_vec(), b"abs\n"),
        (b"../../escape.txt".to_vec(), b"dotdot\n"),
        (b"a\\b\\win.txt".to_vec(), b"backslash\n"),
        (b"nul\0name.txt".to_vec(), b"nul\n"),
        (b"ctl\x01\x1b.txt".to_vec(), b"control\n"),
        (format!("{long}.txt").into_bytes(), b"long\n"),
        (b"dup.txt".to_vec(), b"first\n"),
        (b"dup.txt".to_vec(), b"second\n"),
        (b"clash".to_vec(), b"file\n"),
        (b"clash/inner.txt".to_vec(), b"inner\n"),
        (b"./x/../../../y/./z.txt".to_vec(), b"mixed\n"),
        (b"C:\\Windows\\drive.txt".to_vec(), b"drive\n"),
    ];
    for (name, data) in &entries {
        z.add_raw_name(name, data, EntryOptions::default());
    }
    add_hello(&gh, "evil", 1, z.finish());
    let m = MountBuilder::new(&gh, REPO).mount();
    let dir = m.path("octo-org/hello/runs/1/evil");
    let got = files(&dir);
    let want: BTreeMap<String, Vec<u8>> = [
        ("etc/passwd", "abs\n"),
        ("escape.txt", "dotdot\n"),
        ("a/b/win.txt", "backslash\n"),
        ("nul_name.txt", "nul\n"),
        ("ctl__.txt", "control\n"),
        ("dup.txt", "first\n"),
        ("dup.txt (1)", "second\n"),
        ("clash/inner.txt", "inner\n"),
        ("clash (1)", "file\n"),
        // `..` and `.` are dropped, not resolved: nothing can climb out.
        ("x/y/z.txt", "mixed\n"),
        ("Windows/drive.txt", "drive\n"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    for (k, v) in &want {
        assert_eq!(
            got.get(k),
            Some(v),
            "{k}: {:?}",
            got.keys().collect::<Vec<_>>()
        );
    }
    // The 300-byte name is cut to a length every filesystem takes.
    let long_one: Vec<&String> = got.keys().filter(|k| k.starts_with("xxxx")).collect();
    assert_eq!(long_one.len(), 1);
    assert!(long_one[0].len() <= 255);
    assert_eq!(got[long_one[0]], b"long\n");
    assert_eq!(
        got.len(),
        want.len() + 1,
        "{:?}",
        got.keys().collect::<Vec<_>>()
    );
    // Nothing appeared outside the artifact.
    assert!(!Path::new("/etc/passwd (1)").exists());
    let root: Vec<PathBuf> = fs::read_dir(&m.mountpoint)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(root, vec![m.path("octo-org")]);
}

#[test]
fn broken_archives_fail_cleanly_one_file_at_a_time() {
    if !fuse_available() {
        return;
    }
    let gh = start_fake();

    // One archive, several bad entries, good ones between them.
    let mut z = ZipBuilder::new().data_descriptors(false);
    z.add("good-1.txt", b"good one\n");
    z.add_with("bad-crc-stored.bin", &[7u8; 5000], stored());
    z.add("bad-crc-deflated.txt", &b"deflated text\n".repeat(100));
    z.add("bomb.bin", &vec![0u8; 4 << 20]);
    z.add("encrypted.txt", b"secret\n");
    z.add("method-99.txt", b"odd\n");
    z.add("good-2.txt", b"good two\n");
    let mut zip = z.finish();
    let h = cd_headers(&zip);
    // bad-crc-stored.bin: flip a data byte (local header 30 + name, then data).
    let local = u32::from_le_bytes(zip[h[1] + 42..h[1] + 46].try_into().unwrap()) as usize;
    zip[local + 30 + "bad-crc-stored.bin".len() + 100] ^= 0xff;
    // bad-crc-deflated.txt: a wrong CRC in the central directory.
    let crc = u32::from_le_bytes(zip[h[2] + 16..h[2] + 20].try_into().unwrap());
    put_u32(&mut zip, h[2] + 16, crc ^ 1);
    // bomb.bin: says it inflates to 1000 bytes; it inflates to 4 MiB.
    put_u32(&mut zip, h[3] + 24, 1000);
    // encrypted.txt: the encryption flag.
    let flags = u16::from_le_bytes(zip[h[4] + 8..h[4] + 10].try_into().unwrap());
    put_u16(&mut zip, h[4] + 8, flags | 1);
    // method-99.txt: a compression method nobody knows.
    put_u16(&mut zip, h[5] + 10, 99);
    add_hello(&gh, "broken", 2, zip);

    // Archives that can't be indexed at all.
    let mut z = ZipBuilder::new();
    z.add("a.txt", b"a\n");
    let whole = z.finish();
    let truncated = whole[..whole.len() - 30].to_vec();
    add_hello(&gh, "truncated", 2, truncated.clone());
    let mut past_end = whole.clone();
    let eocd = past_end.len() - 22;
    put_u32(&mut past_end, eocd + 16, 1 << 30);
    add_hello(&gh, "past-end", 2, past_end);
    add_hello(&gh, "garbage", 2, b"this is not a zip file at all".to_vec());

    let m = MountBuilder::new(&gh, REPO).mount();
    let dir = m.path("octo-org/hello/runs/2/broken");
    let read = |n: &str| fs::read(dir.join(n));
    assert_eq!(read("good-1.txt").unwrap(), b"good one\n");
    assert_eq!(errno_of(read("bad-crc-stored.bin")), libc::EIO);
    assert_eq!(errno_of(read("bad-crc-deflated.txt")), libc::EIO);
    assert_eq!(errno_of(read("bomb.bin")), libc::EIO);
    assert_eq!(errno_of(read("encrypted.txt")), libc::EOPNOTSUPP);
    assert_eq!(errno_of(read("method-99.txt")), libc::EOPNOTSUPP);
    assert_eq!(read("good-2.txt").unwrap(), b"good two\n");
    // Still EIO the second time: bad bytes were not kept.
    assert_eq!(errno_of(read("bad-crc-deflated.txt")), libc::EIO);
    assert_eq!(errno_of(read("bad-crc-stored.bin")), libc::EIO);

    let run = m.path("octo-org/hello/runs/2");
    for bad in ["truncated", "past-end", "garbage"] {
        assert_eq!(
            errno_of(fs::read_dir(run.join(bad))),
            libc::EIO,
            "{bad}/ cannot be listed"
        );
    }
    // The archive itself is still there, byte for byte.
    assert_eq!(fs::read(run.join("truncated.zip")).unwrap(), truncated);
    // And the mount is fine.
    assert_eq!(
        fs::read_dir(&m.mountpoint).unwrap().count(),
        1,
        "the mount still answers"
    );
    assert_eq!(read("good-1.txt").unwrap(), b"good one\n");
}

#[test]
fn a_corrupt_stored_entry_read_out_of_order_is_still_caught() {
    if !fuse_available() {
        return;
    }
    let gh = start_fake();
    let data = fake_github::zipgen::noise(3 << 20, 11);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &data, stored());
    let mut zip = z.finish();
    let h = cd_headers(&zip);
    let local = u32::from_le_bytes(zip[h[0] + 42..h[0] + 46].try_into().unwrap()) as usize;
    zip[local + 30 + "big.bin".len() + 2_000_000] ^= 0x55;
    add_hello(&gh, "bad", 3, zip);
    let m = MountBuilder::new(&gh, REPO).mount();
    let f = fs::File::open(m.path("octo-org/hello/runs/3/bad/big.bin")).unwrap();
    use std::os::unix::fs::FileExt;
    let len = data.len() as u64;
    const CHUNK: u64 = 64 * 1024;
    let mut buf = vec![0u8; CHUNK as usize];
    // The end first, then everything from the start: never one sequential pass.
    let mut results = vec![f.read_exact_at(&mut buf, len - CHUNK)];
    let mut off = 0;
    while off < len - CHUNK {
        let n = (len - CHUNK - off).min(CHUNK) as usize;
        results.push(f.read_exact_at(&mut buf[..n], off));
        off += n as u64;
    }
    // Once read through, the CRC is checked: some read fails with EIO, and so does a re-read.
    assert!(
        results
            .iter()
            .any(|r| r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EIO)),
        "a corrupt entry read out of order was served without an error"
    );
    drop(f);
    assert_eq!(
        errno_of(fs::read(m.path("octo-org/hello/runs/3/bad/big.bin"))),
        libc::EIO
    );
}
