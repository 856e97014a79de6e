//! Issue 5: archives written by an attacker, through a real mount. Names that try to leave
//! the artifact's directory, collide, or carry bytes a filesystem can't show; entries with
//! bad CRCs, lying sizes (zip bombs), encryption, unknown methods, offsets past the end;
//! archives that are truncated or point their directory past the end. Every listed path
//! stays inside the artifact, a bad entry is EIO (or ENOTSUP) for that entry only, good
//! entries next to it read fine, and the mount stays up.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::zip_bytes::*;
use common::*;
use fake_github::zipgen::{EntryOptions, ZipBuilder, noise};

const REPO: &str = "octo-org/hello";

/// Every path under `root` (not following symlinks), checked to stay inside it.
fn walk(root: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            assert!(
                p.starts_with(root),
                "{} left {}",
                p.display(),
                root.display()
            );
            let canon = fs::canonicalize(&p).unwrap();
            assert!(
                canon.starts_with(fs::canonicalize(root).unwrap()),
                "{} resolves to {}",
                p.display(),
                canon.display()
            );
            let name = e.file_name();
            let bytes = name.as_encoded_bytes();
            assert!(bytes.len() <= 255, "{} bytes: {name:?}", bytes.len());
            assert!(
                !bytes.iter().any(|b| *b < 0x20 || *b == 0x7f),
                "control byte in {name:?}"
            );
            assert!(name != "." && name != "..", "{name:?}");
            assert!(
                md.is_file() || md.is_dir(),
                "{}: neither file nor directory (symlink?)",
                p.display()
            );
            if md.is_dir() {
                go(root, &p, out);
            }
            out.push((p, md));
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out
}

#[test]
fn hostile_names_stay_inside_the_artifact() {
    require_fuse();
    let gh = start_fake();
    let long = "L".repeat(300);
    let long_utf8 = "é".repeat(200); // 400 bytes: cut on a character boundary
    let deep = vec!["d"; 300].join("/");
    let names: Vec<Vec<u8>> = vec![
        b"/etc/passwd".to_vec(),
        b"//double/abs".to_vec(),
        b"../../../../tmp/escape".to_vec(),
        b"..".to_vec(),
        b"../".to_vec(),
        b"a/../../b/../../c".to_vec(),
        b"..\\..\\win\\escape.txt".to_vec(),
        b"C:\\Windows\\system32\\drive.txt".to_vec(),
        b"\\\\server\\share\\unc.txt".to_vec(),
        b"nul\0byte.txt".to_vec(),
        b"ctl\x01\x07\x1b[31m\x7f.txt".to_vec(),
        b"new\nline.txt".to_vec(),
        b"./././dot.txt".to_vec(),
        b"".to_vec(),
        b"/".to_vec(),
        format!("{long}.txt").into_bytes(),
        format!("dir{long}/inner.txt").into_bytes(),
        long_utf8.clone().into_bytes(),
        format!("{deep}/deep.txt").into_bytes(),
        b"bad-utf8-\xff\xfe.txt".to_vec(),
        b"dup.txt".to_vec(),
        b"dup.txt".to_vec(),
        b"dup.txt (1)".to_vec(), // a name the renaming would pick
        b"dup.txt".to_vec(),
        b"clash".to_vec(), // a file, then a directory of the same name
        b"clash/inner.txt".to_vec(),
        b"other/inner.txt".to_vec(), // a directory, then a file of the same name
        b"other".to_vec(),
        b"link".to_vec(), // written with a symlink mode below
    ];
    let mut z = ZipBuilder::new();
    let mut contents = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let data = format!("entry {i}\n").into_bytes();
        let opts = if n == b"link" {
            EntryOptions {
                unix_mode: Some(0o120777),
                ..Default::default()
            }
        } else {
            EntryOptions::default()
        };
        let data = if n == b"link" {
            b"/etc/passwd".to_vec()
        } else {
            data
        };
        z.add_raw_name(n, &data, opts);
        contents.push(data);
    }
    z.add_dir("clash2");
    z.add_raw_name(b"clash2", b"clash2 file\n", EntryOptions::default());
    contents.push(b"clash2 file\n".to_vec());
    add_hello(&gh, "evil", 1, z.finish());
    // Outside-looking targets must not be touched: make sure they don't exist beforehand.
    assert!(!Path::new("/tmp/escape").exists());
    let m = Daemon::new(&gh, REPO).mount();
    let dir = m.path("octo-org/hello/runs/1/evil");
    let all = walk(&dir);
    let mut found: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for (p, md) in &all {
        if md.is_file() {
            let rel = p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
            found.entry(fs::read(p).unwrap()).or_default().push(rel);
        }
    }
    // Every file entry is there exactly once: nothing lost, nothing doubled. (A name ending
    // in `/` is a directory entry: `../` and `/` are directories that sanitize to nothing.)
    let is_dir_entry = |i: usize| names.get(i).is_some_and(|n| n.ends_with(b"/"));
    for (i, c) in contents.iter().enumerate() {
        if is_dir_entry(i) {
            assert!(
                !found.contains_key(c),
                "directory entry {i} shown as a file"
            );
            continue;
        }
        let at = found.get(c).map(Vec::len).unwrap_or(0);
        assert_eq!(
            at,
            1,
            "entry {i} ({:?}) found {at} times; tree: {:?}",
            String::from_utf8_lossy(&names.get(i).cloned().unwrap_or_default()),
            found.values().collect::<Vec<_>>()
        );
    }
    assert_eq!(
        found.values().map(Vec::len).sum::<usize>(),
        (0..contents.len()).filter(|i| !is_dir_entry(*i)).count()
    );
    let at = |data: &[u8]| found[data][0].clone();
    assert_eq!(at(b"entry 0\n"), "etc/passwd");
    assert_eq!(at(b"entry 2\n"), "tmp/escape");
    assert_eq!(at(b"entry 6\n"), "win/escape.txt");
    assert_eq!(at(b"entry 7\n"), "Windows/system32/drive.txt");
    assert_eq!(at(b"entry 9\n"), "nul_byte.txt");
    assert_eq!(at(b"entry 11\n"), "new_line.txt");
    assert_eq!(at(b"entry 12\n"), "dot.txt");
    // Duplicates: first keeps the name, the others get free " (N)" names, deterministically.
    assert_eq!(at(b"entry 20\n"), "dup.txt");
    assert_eq!(at(b"entry 21\n"), "dup.txt (1)");
    assert_eq!(at(b"entry 22\n"), "dup.txt (1) (1)");
    assert_eq!(at(b"entry 23\n"), "dup.txt (2)");
    // File/directory clashes: the directory keeps the name, in either order.
    assert_eq!(at(b"entry 24\n"), "clash (1)");
    assert_eq!(at(b"entry 25\n"), "clash/inner.txt");
    assert_eq!(at(b"entry 26\n"), "other/inner.txt");
    assert_eq!(at(b"entry 27\n"), "other (1)");
    assert_eq!(at(b"clash2 file\n"), "clash2 (1)");
    assert!(m.path("octo-org/hello/runs/1/evil/clash2").is_dir());
    // A symlink entry is a plain file holding its target, not a link out of the mount.
    assert_eq!(at(b"/etc/passwd"), "link");
    assert!(
        fs::symlink_metadata(dir.join("link"))
            .unwrap()
            .file_type()
            .is_file()
    );
    // Long names are cut to something every filesystem takes, UTF-8 intact.
    let long_one = at(b"entry 15\n");
    assert!(
        long_one.starts_with("LLLL") && long_one.len() <= 255,
        "{long_one}"
    );
    let utf8_one = at(b"entry 17\n");
    assert!(utf8_one.starts_with("éé") && utf8_one.len() <= 255);
    assert!(at(b"entry 18\n").ends_with("d/d/d/deep.txt"));
    // Nothing appeared outside the artifact, the repository or the mount.
    assert!(!Path::new("/tmp/escape").exists());
    let root: Vec<PathBuf> = fs::read_dir(&m.mountpoint)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(root, vec![m.path("octo-org")]);
    let run: Vec<String> = fs::read_dir(m.path("octo-org/hello/runs/1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(run.len(), 2, "{run:?}");
    eprintln!(
        "figures: {} hostile entries (+1 directory entry) → {} paths, all inside the artifact; \
         every entry present once",
        names.len() + 1,
        all.len()
    );
}

#[test]
fn thousands_of_duplicate_names_list_quickly() {
    require_fuse();
    // One name 30 000 times: naming the copies must not cost a scan per copy per copy
    // (it did: 20 000 copies took 72 s to list).
    let gh = start_fake();
    let n = 30_000;
    let mut z = ZipBuilder::new();
    for i in 0..n {
        z.add_raw_name(
            b"same.txt",
            format!("{i}\n").as_bytes(),
            EntryOptions::stored(),
        );
    }
    add_hello(&gh, "dups", 1, z.finish());
    add_hello_files(&gh, "fine", 2, &[("ok.txt", b"ok\n")]);
    let m = Daemon::new(&gh, REPO).mount();
    let t = Instant::now();
    let dir = m.path("octo-org/hello/runs/1/dups");
    let count = count_entries(&dir);
    let took = t.elapsed();
    assert_eq!(count, n);
    assert_eq!(fs::read(dir.join("same.txt")).unwrap(), b"0\n");
    assert_eq!(fs::read(dir.join("same.txt (1)")).unwrap(), b"1\n");
    assert_eq!(
        fs::read(dir.join(format!("same.txt ({})", n - 1))).unwrap(),
        format!("{}\n", n - 1).as_bytes()
    );
    assert!(took < Duration::from_secs(30), "listing took {took:?}");
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/2/fine/ok.txt")).unwrap(),
        b"ok\n"
    );
    eprintln!(
        "figures: {n} entries of one name listed in {} ms",
        took.as_millis()
    );
}

/// One raw deflate stream of `n` zero bytes.
fn deflate_zeros(n: usize) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let block = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        e.write_all(&block[..k]).unwrap();
        left -= k;
    }
    e.finish().unwrap()
}

#[test]
fn bad_entries_fail_alone_and_good_ones_still_read() {
    require_fuse();
    let gh = start_fake();
    let big_good = noise(1_500_000, 1);
    let big_bad = noise(1_200_000, 2);
    let text: Vec<u8> = b"deflated text, deflated text\n".repeat(2000);
    // No data descriptors: the local headers carry CRC and sizes too, to be patched alike.
    let mut z = ZipBuilder::new().data_descriptors(false);
    z.add("good/first.txt", b"good first\n");
    z.add_with("bad/crc-stored.bin", &[7u8; 5000], EntryOptions::stored());
    z.add_with("bad/crc-stored-big.bin", &big_bad, EntryOptions::stored());
    z.add("bad/crc-deflated.txt", &text);
    z.add("bad/corrupt-deflate.txt", &text);
    z.add("bad/bomb.bin", b"placeholder, replaced below");
    z.add("bad/huge-declared.bin", &[0u8; 1000]);
    z.add_with("bad/stored-lies.bin", &[1u8; 3000], EntryOptions::stored());
    z.add("bad/encrypted.txt", b"secret\n");
    z.add_with(
        "bad/encrypted-stored.txt",
        b"secret stored\n",
        EntryOptions::stored(),
    );
    z.add("bad/method-99.txt", b"odd\n");
    z.add("bad/method-12-bzip2.txt", b"bzip2\n");
    z.add("bad/offset-past-end.txt", b"gone\n");
    z.add("bad/offset-garbage.txt", b"misplaced\n");
    z.add("bad/size-past-end.txt", b"long\n");
    z.add_with("good/big.bin", &big_good, EntryOptions::stored());
    z.add("good/last.txt", b"good last\n");
    let mut zip = z.finish();

    // The bomb: 64 MiB of zeros, declared as 100 bytes (with the CRC of 100 zeros), in both
    // headers. Spliced in by hand: the builder only writes honest entries.
    let bomb = deflate_zeros(64 << 20);
    {
        let h = cd_headers(&zip);
        let cd = h["bad/bomb.bin"];
        let start = data_start(&zip, cd);
        let local = u32_at(&zip, cd + 42) as usize;
        let old_len = u32_at(&zip, cd + 20) as usize;
        let grow = bomb.len() - old_len;
        let mut out = zip[..start].to_vec();
        out.extend_from_slice(&bomb);
        out.extend_from_slice(&zip[start + old_len..]);
        zip = out;
        // The directory comes after all data: it moved by `grow` too.
        let cd = cd + grow;
        let crc = crc32fast::hash(&[0u8; 100]);
        for at in [local + 14, cd + 16] {
            put_u32(&mut zip, at, crc);
            put_u32(&mut zip, at + 4, bomb.len() as u32);
            put_u32(&mut zip, at + 8, 100);
        }
        // Everything after the bomb moved: fix the later local offsets and the directory's.
        let e = eocd(&zip);
        let cd_off = u32_at(&zip, e + 16) as usize + grow;
        put_u32(&mut zip, e + 16, cd_off as u32);
        let mut at = cd_off;
        for _ in 0..u16_at(&zip, e + 10) {
            let off = u32_at(&zip, at + 42) as usize;
            if off > local {
                put_u32(&mut zip, at + 42, (off + grow) as u32);
            }
            at += 46
                + u16_at(&zip, at + 28) as usize
                + u16_at(&zip, at + 30) as usize
                + u16_at(&zip, at + 32) as usize;
        }
    }
    let h = cd_headers(&zip);
    // Wrong CRCs: a flipped byte of compressed (stored) data, small and over 1 MiB.
    for name in ["bad/crc-stored.bin", "bad/crc-stored-big.bin"] {
        let at = data_start(&zip, h[name]) + 1234;
        zip[at] ^= 0x55;
    }
    // A deflated entry whose directory CRC is off by one bit.
    let at = h["bad/crc-deflated.txt"] + 16;
    let crc = u32_at(&zip, at);
    put_u32(&mut zip, at, crc ^ 1);
    // A deflate stream with garbage in the middle.
    let s = data_start(&zip, h["bad/corrupt-deflate.txt"]);
    let clen = u32_at(&zip, h["bad/corrupt-deflate.txt"] + 20) as usize;
    for b in &mut zip[s + clen / 3..s + clen / 3 + 8] {
        *b = 0xff;
    }
    // Declares almost 4 GiB from a few deflated bytes: a ratio deflate cannot reach.
    put_u32(&mut zip, h["bad/huge-declared.bin"] + 24, u32::MAX - 1);
    // A stored entry whose sizes disagree.
    put_u32(&mut zip, h["bad/stored-lies.bin"] + 24, 1 << 30);
    // The encryption flag.
    for name in ["bad/encrypted.txt", "bad/encrypted-stored.txt"] {
        let f = u16_at(&zip, h[name] + 8);
        put_u16(&mut zip, h[name] + 8, f | 1);
    }
    // Unknown and unsupported methods.
    put_u16(&mut zip, h["bad/method-99.txt"] + 10, 99);
    put_u16(&mut zip, h["bad/method-12-bzip2.txt"] + 10, 12);
    // Local header offsets past the end and into the middle of other data.
    put_u32(&mut zip, h["bad/offset-past-end.txt"] + 42, u32::MAX - 10);
    let mid = data_start(&zip, h["good/big.bin"]) + 1000;
    put_u32(&mut zip, h["bad/offset-garbage.txt"] + 42, mid as u32);
    // A compressed size that runs past the end of the archive.
    let len = zip.len() as u32;
    put_u32(&mut zip, h["bad/size-past-end.txt"] + 20, len);
    assert!(zip.len() > 1 << 20, "ranged reads, not one whole fetch");
    add_hello(&gh, "broken", 2, zip.clone());

    let m = Daemon::new(&gh, REPO).mount();
    let dir = m.path("octo-org/hello/runs/2/broken");
    walk(&dir);
    let read = |n: &str| fs::read(dir.join(n));
    assert_eq!(read("good/first.txt").unwrap(), b"good first\n");
    let expect: [(&str, i32); 14] = [
        ("bad/crc-stored.bin", libc::EIO),
        ("bad/crc-stored-big.bin", libc::EIO),
        ("bad/crc-deflated.txt", libc::EIO),
        ("bad/corrupt-deflate.txt", libc::EIO),
        ("bad/bomb.bin", libc::EIO),
        ("bad/huge-declared.bin", libc::EIO),
        ("bad/stored-lies.bin", libc::EIO),
        ("bad/encrypted.txt", libc::ENOTSUP),
        ("bad/encrypted-stored.txt", libc::ENOTSUP),
        ("bad/method-99.txt", libc::ENOTSUP),
        ("bad/method-12-bzip2.txt", libc::ENOTSUP),
        ("bad/offset-past-end.txt", libc::EIO),
        ("bad/offset-garbage.txt", libc::EIO),
        ("bad/size-past-end.txt", libc::EIO),
    ];
    let mut seen = Vec::new();
    for round in 0..2 {
        for (name, errno) in expect {
            let t = Instant::now();
            let got = errno_of(read(name));
            assert_eq!(
                got, errno,
                "{name} (round {round}): errno {got}, want {errno}"
            );
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{name}: {:?}",
                t.elapsed()
            );
            if round == 0 {
                seen.push(format!(
                    "{name}: {}",
                    std::io::Error::from_raw_os_error(got)
                ));
            }
        }
        // Good entries next to them, before and after, still read.
        assert_eq!(read("good/first.txt").unwrap(), b"good first\n");
        assert!(read("good/big.bin").unwrap() == big_good, "good/big.bin");
        assert_eq!(read("good/last.txt").unwrap(), b"good last\n");
    }
    // The bomb was not inflated into the cache past its declared size.
    let mut biggest = 0u64;
    fn sizes(d: &Path, biggest: &mut u64) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                sizes(&e.path(), biggest);
            } else {
                *biggest = (*biggest).max(std::os::unix::fs::MetadataExt::blocks(&md) * 512);
            }
        }
    }
    sizes(&m.cache_dir, &mut biggest);
    assert!(biggest < 8 << 20, "a cache file of {biggest} bytes");
    // The archive itself is still served byte for byte, and the mount answers.
    assert!(
        fs::read(m.path("octo-org/hello/runs/2/broken.zip")).unwrap() == zip,
        "broken.zip"
    );
    assert_eq!(count_entries(&m.mountpoint), 1);
    eprintln!(
        "figures: {} bad entries, each its own errno twice over, good entries intact: {}",
        expect.len(),
        seen.join("; ")
    );
}

#[test]
fn archives_that_cannot_be_indexed_fail_cleanly() {
    require_fuse();
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("a.txt", b"a\n");
    z.add_with("b.bin", &noise(300_000, 3), EntryOptions::stored());
    let whole = z.finish();
    let mut big = ZipBuilder::new();
    big.add_with("big.bin", &noise(1_500_000, 4), EntryOptions::stored());
    big.add("small.txt", b"small\n");
    let big_whole = big.finish();

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("truncated-end", whole[..whole.len() - 10].to_vec()));
    cases.push(("truncated-half", whole[..whole.len() / 2].to_vec()));
    cases.push(("truncated-big", big_whole[..big_whole.len() - 40].to_vec()));
    let mut past = whole.clone();
    let e = eocd(&past);
    put_u32(&mut past, e + 16, 0x7fff_ffff);
    cases.push(("cd-offset-past-end", past));
    let mut past = big_whole.clone();
    let e = eocd(&past);
    put_u32(&mut past, e + 16, big_whole.len() as u32 + 100);
    cases.push(("cd-offset-past-end-big", past));
    let mut lying = whole.clone();
    let e = eocd(&lying);
    put_u32(&mut lying, e + 12, 0xffff_fff0);
    cases.push(("cd-size-huge", lying));
    let mut count = whole.clone();
    let e = eocd(&count);
    put_u16(&mut count, e + 8, 60_000);
    put_u16(&mut count, e + 10, 60_000);
    cases.push(("entry-count-lies", count));
    let mut z64 = whole.clone();
    let e = eocd(&z64);
    // A zip64 locator in front of the end record, pointing far past the end.
    let mut loc = Vec::new();
    loc.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    loc.extend_from_slice(&0u32.to_le_bytes());
    loc.extend_from_slice(&(1u64 << 50).to_le_bytes());
    loc.extend_from_slice(&1u32.to_le_bytes());
    z64.splice(e..e, loc);
    cases.push(("zip64-locator-past-end", z64));
    cases.push((
        "not-a-zip",
        b"PK\x05\x06 but not really a zip at all".to_vec(),
    ));
    cases.push(("tiny", b"PK".to_vec()));
    for (name, body) in &cases {
        add_hello(&gh, name, 3, body.clone());
    }
    add_hello(&gh, "fine", 3, whole.clone());

    let m = Daemon::new(&gh, REPO).mount();
    let run = m.path("octo-org/hello/runs/3");
    let mut names: Vec<String> = fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2 * (cases.len() + 1), "{names:?}");
    for (name, body) in &cases {
        let t = Instant::now();
        let got = errno_of(fs::read_dir(run.join(name)));
        assert_eq!(got, libc::EIO, "{name}/ cannot be listed: errno {got}");
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{name}: {:?}",
            t.elapsed()
        );
        // Asking again is EIO again (not a hang, not a panic).
        assert_eq!(errno_of(fs::read_dir(run.join(name))), libc::EIO, "{name}");
        assert_eq!(errno_of(fs::read(run.join(name).join("a.txt"))), libc::EIO);
        // The archive itself is still there, byte for byte.
        assert!(
            fs::read(run.join(format!("{name}.zip"))).unwrap() == *body,
            "{name}.zip"
        );
    }
    assert_eq!(fs::read(run.join("fine/a.txt")).unwrap(), b"a\n");
    assert_eq!(count_entries(&m.mountpoint), 1);
    eprintln!(
        "figures: {} unindexable archives: each EIO for NAME/ (twice), NAME.zip intact, mount up",
        cases.len()
    );
}

#[test]
fn a_corrupt_stored_entry_read_out_of_order_is_still_caught() {
    require_fuse();
    let gh = start_fake();
    let data = fake_github::zipgen::noise(3 << 20, 11);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &data, EntryOptions::stored());
    let mut zip = z.finish();
    let at = data_start(&zip, cd_headers(&zip)["big.bin"]);
    zip[at + 2_000_000] ^= 0x55;
    add_hello(&gh, "bad", 3, zip);
    let m = Daemon::new(&gh, REPO).mount();
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
