//! Core tests of archives inside an artifact (`FILE.d/`) against the in-memory remote: what
//! is shown (names, modes, links, times, bytes), what is never shown (the `.d` names in
//! listings, paths outside `FILE.d/`), errnos, and what reading costs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use fake_github::zipgen::{EntryOptions, ZipBuilder, noise};
use sha2::{Digest, Sha256};

use super::tests::{core_for, names, read_in_chunks, resolve};
use super::*;
use crate::github::ArtifactKind;
use crate::github::memory_remote::MemoryRemote;

/// A tar member written with a raw name (the `tar` crate refuses hostile ones).
fn raw(b: &mut tar::Builder<Vec<u8>>, name: &[u8], ty: tar::EntryType, mode: u32, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(ty);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn member(b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, mtime: u64, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_mtime(mtime);
    b.append_data(&mut h, name, data).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, ty: tar::EntryType, name: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(0o777);
    h.set_mtime(1_650_000_000);
    b.append_link(&mut h, name, target).unwrap();
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(super) fn tool() -> Vec<u8> {
    b"#!/bin/sh\necho tool 1.0\n".to_vec()
}

/// A tar with what users meet: an executable, a set-uid file, a tree, links of each kind, a
/// device, and hostile names.
pub(super) fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_mtime(1_500_000_000);
    b.append_data(&mut h, "bin/", &[][..]).unwrap();
    member(&mut b, "bin/tool", 0o755, 1_700_000_000, &tool());
    member(&mut b, "bin/suid", 0o4777, 1_700_000_001, b"s");
    member(&mut b, "lib/data.txt", 0o644, 1_700_000_002, b"data\n");
    member(
        &mut b,
        "lib/big.bin",
        0o644,
        1_700_000_003,
        &noise(300_000, 5),
    );
    link(&mut b, tar::EntryType::Symlink, "bin/run", "tool");
    link(&mut b, tar::EntryType::Symlink, "lib/up", "../bin/tool");
    link(
        &mut b,
        tar::EntryType::Symlink,
        "escape",
        "../../../etc/passwd",
    );
    link(&mut b, tar::EntryType::Symlink, "abs", "/etc/passwd");
    link(&mut b, tar::EntryType::Symlink, "sneaky", "lib/../..");
    link(&mut b, tar::EntryType::Link, "hard", "lib/data.txt");
    link(&mut b, tar::EntryType::Link, "dangling", "no/such");
    let long = format!("deep/{}/x.txt", "n".repeat(300));
    member(&mut b, &long, 0o644, 1_700_000_004, b"long\n");
    raw(
        &mut b,
        b"../../evil",
        tar::EntryType::Regular,
        0o644,
        b"evil",
    );
    raw(&mut b, b"/abs.txt", tar::EntryType::Regular, 0o644, b"abs");
    raw(
        &mut b,
        b"lib/data.txt",
        tar::EntryType::Regular,
        0o644,
        b"dup",
    );
    raw(&mut b, b"nul\x01name", tar::EntryType::Regular, 0o644, b"n");
    raw(&mut b, b"dev", tar::EntryType::Char, 0o666, b"");
    b.into_inner().unwrap()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The zip artifact: the tar stored (and deflated, as upload-artifact writes it), a file
/// named like an archive that is not one, and a real entry named like a contents directory.
fn artifact() -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add_with("dist.tar", &sample_tar(), EntryOptions::stored());
    z.add_with("dist.tar.gz", &gzip(&sample_tar()), EntryOptions::stored());
    z.add("dist.tgz", &gzip(&sample_tar()));
    z.add("deflated/dist.tar", &sample_tar());
    z.add(
        "garbage.tar",
        b"this is not a tar archive, whatever its name says\n",
    );
    z.add("notes.txt", b"notes\n");
    z.add("real.tar", &sample_tar());
    z.add("real.tar.d/file", b"a real entry wins\n");
    z.finish()
}

fn fixture() -> (ArtifactFs, Arc<MemoryRemote>, tempfile::TempDir) {
    let remote = Arc::new(MemoryRemote::default());
    remote.add(1, "dist", 100, "main", 1, artifact(), ArtifactKind::Zip);
    let (fs, dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    (fs, remote, dir)
}

async fn read(fs: &ArtifactFs, path: &str) -> FsResult<Vec<u8>> {
    read_in_chunks(fs, path, 64 << 10).await
}

/// Every path below `path`, depth first (directories with a trailing `/`).
async fn walk(fs: &ArtifactFs, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![path.to_string()];
    while let Some(dir) = todo.pop() {
        for e in fs
            .readdir(resolve(fs, &dir).await.unwrap().ino)
            .await
            .unwrap()
        {
            let p = format!("{dir}/{}", e.name);
            if e.kind == FileKind::Dir {
                out.push(format!("{p}/"));
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

const A: &str = "octo/hello/runs/100/dist";

/// The fixtures' three links that would leave `root` (`escape`, `abs`, `sneaky`): empty
/// files, not links, each saying its target in `user.archive.symlink`.
async fn assert_links_leaving_are_empty_files(fs: &ArtifactFs, root: &str) {
    for (name, target) in [
        ("escape", "../../../etc/passwd"),
        ("abs", "/etc/passwd"),
        ("sneaky", "lib/../.."),
    ] {
        let l = resolve(fs, &format!("{root}/{name}")).await.unwrap();
        assert_eq!((l.kind, l.size), (FileKind::File, 0), "{name}");
        assert!(fs.readlink(l.ino).await.is_err());
        let x = fs.xattrs(l.ino).await.unwrap();
        assert!(
            x.contains(&("user.archive.symlink".into(), target.into())),
            "{name}: {x:?}"
        );
        assert_eq!(read(fs, &format!("{root}/{name}")).await.unwrap(), b"");
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[tokio::test]
async fn a_tar_opens_at_its_contents_directory_with_modes_links_times_and_bytes() {
    let (fs, _remote, _dir) = fixture();
    for d in [
        "dist.tar.d",
        "deflated/dist.tar.d",
        "dist.tar.gz.d",
        "dist.tgz.d",
    ] {
        let root = format!("{A}/{d}");
        let attr = resolve(&fs, &root).await.unwrap();
        assert_eq!(attr.kind, FileKind::Dir);
        let tool_at = resolve(&fs, &format!("{root}/bin/tool")).await.unwrap();
        assert_eq!((tool_at.perm, tool_at.size), (0o555, tool().len() as u64));
        assert_eq!(tool_at.mtime, at(1_700_000_000));
        assert_eq!(
            read(&fs, &format!("{root}/bin/tool")).await.unwrap(),
            tool()
        );
        let suid = resolve(&fs, &format!("{root}/bin/suid")).await.unwrap();
        assert_eq!(suid.perm, 0o555, "set-id, sticky and write bits cleared");
        let bin = resolve(&fs, &format!("{root}/bin")).await.unwrap();
        assert_eq!(
            (bin.perm, bin.mtime),
            (0o555, at(1_500_000_000)),
            "its record's time"
        );
        let data = resolve(&fs, &format!("{root}/lib/data.txt")).await.unwrap();
        assert_eq!((data.perm, data.mtime), (0o444, at(1_700_000_002)));
        let big = read(&fs, &format!("{root}/lib/big.bin")).await.unwrap();
        assert_eq!(sha(&big), sha(&noise(300_000, 5)));
        // Links that stay inside are links; the others are empty files saying where to.
        for (name, target) in [("bin/run", "tool"), ("lib/up", "../bin/tool")] {
            let l = resolve(&fs, &format!("{root}/{name}")).await.unwrap();
            assert_eq!(l.kind, FileKind::Symlink, "{name}");
            assert_eq!(fs.readlink(l.ino).await.unwrap(), target);
        }
        assert_links_leaving_are_empty_files(&fs, &root).await;
        // A hard link has its target's bytes; one to nothing, a device: empty files.
        assert_eq!(read(&fs, &format!("{root}/hard")).await.unwrap(), b"data\n");
        assert_eq!(read(&fs, &format!("{root}/dangling")).await.unwrap(), b"");
        let dev = resolve(&fs, &format!("{root}/dev")).await.unwrap();
        assert_eq!((dev.kind, dev.size, dev.perm), (FileKind::File, 0, 0o444));
        // Hostile names stay inside; duplicates are both kept.
        let all = walk(&fs, &root).await;
        let rel: Vec<&str> = all.iter().map(|p| &p[root.len() + 1..]).collect();
        for want in ["evil", "abs.txt", "lib/data.txt (1)", "nul_name", "deep/"] {
            assert!(rel.contains(&want), "{want} in {rel:?}");
        }
        assert!(rel.iter().all(|p| !p.contains("..") && !p.contains('\0')));
        let long = rel.iter().find(|p| p.starts_with("deep/n")).unwrap();
        assert!(long.len() < 260, "a long name is cut: {long}");
        assert_eq!(
            read(&fs, &format!("{root}/lib/data.txt (1)"))
                .await
                .unwrap(),
            b"dup"
        );
    }
}

#[tokio::test]
async fn contents_are_never_listed_and_the_file_says_where_they_are() {
    let (fs, _remote, _dir) = fixture();
    let listed = walk(&fs, A).await;
    assert!(
        listed
            .iter()
            .all(|p| !p.contains("tar.d") || p.contains("real.tar.d")),
        "{listed:?}"
    );
    assert_eq!(
        names(&fs, A).await,
        [
            "deflated",
            "dist.tar",
            "dist.tar.gz",
            "dist.tgz",
            "garbage.tar",
            "notes.txt",
            "real.tar",
            "real.tar.d"
        ]
    );
    let file = resolve(&fs, &format!("{A}/dist.tar")).await.unwrap();
    let x = fs.xattrs(file.ino).await.unwrap();
    assert!(
        x.contains(&("user.archive.contents".into(), "dist.tar.d".into())),
        "{x:?}"
    );
    // A real entry named like the contents directory wins (and the file then says nothing).
    assert_eq!(names(&fs, &format!("{A}/real.tar.d")).await, ["file"]);
    let real = resolve(&fs, &format!("{A}/real.tar")).await.unwrap();
    let x = fs.xattrs(real.ino).await.unwrap();
    assert!(!x.iter().any(|(k, _)| k == "user.archive.contents"));
}

#[tokio::test]
async fn names_that_are_not_archives_are_enoent_and_corrupt_ones_eio() {
    let (fs, _remote, _dir) = fixture();
    let errno = |r: FsResult<Attr>| r.map(|_| 0).unwrap_or_else(|e| e.errno());
    assert_eq!(
        errno(resolve(&fs, &format!("{A}/notes.txt.d")).await),
        libc::ENOENT
    );
    assert_eq!(
        errno(resolve(&fs, &format!("{A}/nothing.tar.d")).await),
        libc::ENOENT
    );
    assert_eq!(
        errno(resolve(&fs, &format!("{A}/deflated.d")).await),
        libc::ENOENT
    );
    assert_eq!(
        errno(resolve(&fs, &format!("{A}/garbage.tar.d")).await),
        libc::EIO
    );
    // Still EIO when asked again (a failure is not remembered as an answer).
    assert_eq!(
        errno(resolve(&fs, &format!("{A}/garbage.tar.d")).await),
        libc::EIO
    );
    // A corrupt header in the middle: EIO for the directory, nothing else affected.
    let mut t = sample_tar();
    t[512 * 3 + 10] ^= 0x55;
    let mut z = ZipBuilder::new();
    z.add("broken.tar", &t);
    let remote = Arc::new(MemoryRemote::default());
    remote.add(1, "dist", 100, "main", 1, z.finish(), ArtifactKind::Zip);
    let (fs, _dir) = core_for(remote, Duration::from_secs(60), false);
    assert_eq!(
        errno(resolve(&fs, &format!("{A}/broken.tar.d")).await),
        libc::EIO
    );
    assert_eq!(read(&fs, &format!("{A}/broken.tar")).await.unwrap(), t);
}

#[tokio::test]
async fn reading_one_member_of_a_big_stored_tar_fetches_its_headers_and_that_member() {
    // 48 files of 1 MiB: listing the tar reads its headers (a cache block each), and a
    // member's sequential read its own bytes plus at most the readahead window ahead.
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..48 {
        let data = if i == 7 {
            noise(1 << 20, 7)
        } else {
            vec![i as u8; 1 << 20]
        };
        member(&mut b, &format!("f{i:02}.bin"), 0o644, 1, &data);
    }
    let tar = b.into_inner().unwrap();
    let mut z = ZipBuilder::new();
    z.add_with("big.tar", &tar, EntryOptions::stored());
    let remote = Arc::new(MemoryRemote::default());
    remote.add(1, "dist", 100, "main", 1, z.finish(), ArtifactKind::Zip);
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    let listed = names(&fs, &format!("{A}/big.tar.d")).await;
    assert_eq!(listed.len(), 48);
    let after_index = remote.blob_bytes.load(Ordering::SeqCst);
    // The tail and central directory, then per header the cache blocks of one small read
    // (two when it straddles a block boundary).
    assert!(
        after_index <= (2 * 48 + 8) * crate::cache::BLOCK_SIZE,
        "the index cost {after_index} bytes of a {} byte archive",
        tar.len()
    );
    let got = read(&fs, &format!("{A}/big.tar.d/f07.bin")).await.unwrap();
    assert_eq!(sha(&got), sha(&noise(1 << 20, 7)));
    let member_bytes = remote.blob_bytes.load(Ordering::SeqCst) - after_index;
    let bound = (1 << 20) + crate::data::readahead::MAX_AHEAD + crate::data::readahead::CHUNK;
    assert!(
        member_bytes <= bound,
        "one 1 MiB member cost {member_bytes} bytes (bound {bound}, archive {})",
        tar.len()
    );
}

#[tokio::test]
async fn zips_inside_open_too_and_archives_nest_to_level_four() {
    // Level 4: a jar (deflated and stored entries, a Unix mode) holding a zip, which would
    // be level 5.
    let mut deep = ZipBuilder::new();
    deep.add("x.txt", b"too deep\n");
    let mut jar = ZipBuilder::new();
    jar.add("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n");
    let exec = EntryOptions {
        unix_mode: Some(0o100755),
        ..Default::default()
    };
    jar.add_with("bin/run.sh", b"#!/bin/sh\necho run\n", exec);
    jar.add_with("stored.bin", &noise(100_000, 9), EntryOptions::stored());
    jar.add("deep.zip", &deep.finish());
    let mut b = tar::Builder::new(Vec::new());
    member(&mut b, "lib.jar", 0o644, 1, &jar.finish());
    let level3 = b.into_inner().unwrap();
    let mut whl = ZipBuilder::new();
    whl.add("pkg/__init__.py", b"");
    whl.add("pkg/inner.tar", &level3);
    let mut b = tar::Builder::new(Vec::new());
    member(&mut b, "app.whl", 0o644, 1, &whl.finish());
    let level1 = gzip(&b.into_inner().unwrap());
    // A zip whose central directory has a wrong CRC-32 for its one entry.
    let mut bad = ZipBuilder::new();
    bad.add("a.txt", b"some text that will not match\n");
    let mut bad = bad.finish();
    let cd = bad.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bad[cd + 16] ^= 1;
    let mut z = ZipBuilder::new();
    z.add("outer.tar.gz", &level1);
    z.add("bad.zip", &bad);
    let remote = Arc::new(MemoryRemote::default());
    remote.add(1, "dist", 100, "main", 1, z.finish(), ArtifactKind::Zip);
    let (fs, _dir) = core_for(remote, Duration::from_secs(60), false);

    let jar = format!("{A}/outer.tar.gz.d/app.whl.d/pkg/inner.tar.d/lib.jar.d");
    assert_eq!(
        names(&fs, &jar).await,
        ["META-INF", "bin", "deep.zip", "stored.bin"]
    );
    let manifest = format!("{jar}/META-INF/MANIFEST.MF");
    assert_eq!(
        read(&fs, &manifest).await.unwrap(),
        b"Manifest-Version: 1.0\n"
    );
    assert_eq!(resolve(&fs, &manifest).await.unwrap().perm, 0o444);
    let run = resolve(&fs, &format!("{jar}/bin/run.sh")).await.unwrap();
    assert_eq!((run.perm, run.size), (0o555, 19));
    let stored = read(&fs, &format!("{jar}/stored.bin")).await.unwrap();
    assert_eq!(sha(&stored), sha(&noise(100_000, 9)));
    // Level 5 does not open.
    let errno = |r: FsResult<Attr>| r.map(|_| 0).unwrap_or_else(|e| e.errno());
    assert_eq!(
        errno(resolve(&fs, &format!("{jar}/deep.zip.d")).await),
        libc::ENOENT
    );
    // An inner zip member whose CRC-32 does not match: EIO once read through.
    let r = read(&fs, &format!("{A}/bad.zip.d/a.txt")).await;
    assert_eq!(r.map(|_| 0).unwrap_or_else(|e| e.errno()), libc::EIO);
}

#[tokio::test]
async fn an_inner_zips_symlinks_are_links_contained_like_a_tars() {
    // Entries with Unix mode S_IFLNK (as `zip -y` writes them): the data is the target.
    let link = |stored: bool| EntryOptions {
        unix_mode: Some(0o120777),
        ..if stored {
            EntryOptions::stored()
        } else {
            EntryOptions::default()
        }
    };
    let mut z = ZipBuilder::new();
    z.add_with(
        "bin/tool",
        &tool(),
        EntryOptions {
            unix_mode: Some(0o100755),
            ..Default::default()
        },
    );
    z.add_with("bin/run", b"tool", link(true));
    z.add_with("lib/up", b"../bin/tool", link(false));
    z.add_with("escape", b"../../../etc/passwd", link(true));
    z.add_with("abs", b"/etc/passwd", link(false));
    z.add_with("sneaky", b"lib/../..", link(true));
    // Marked as a link but longer than any target can be: the file it is.
    z.add_with("long", &[b'a'; 5000], link(false));
    let mut outer = ZipBuilder::new();
    outer.add("app.zip", &z.finish());
    let remote = Arc::new(MemoryRemote::default());
    remote.add(1, "dist", 100, "main", 1, outer.finish(), ArtifactKind::Zip);
    let (fs, _dir) = core_for(remote, Duration::from_secs(60), false);
    let root = format!("{A}/app.zip.d");
    for (name, target) in [("bin/run", "tool"), ("lib/up", "../bin/tool")] {
        let l = resolve(&fs, &format!("{root}/{name}")).await.unwrap();
        assert_eq!(
            (l.kind, l.size),
            (FileKind::Symlink, target.len() as u64),
            "{name}"
        );
        assert_eq!(fs.readlink(l.ino).await.unwrap(), target);
    }
    // Through the link, the tool.
    assert_eq!(
        read(&fs, &format!("{root}/bin/tool")).await.unwrap(),
        tool()
    );
    assert_links_leaving_are_empty_files(&fs, &root).await;
    let long = resolve(&fs, &format!("{root}/long")).await.unwrap();
    assert_eq!((long.kind, long.size), (FileKind::File, 5000));
    assert_eq!(
        read(&fs, &format!("{root}/long")).await.unwrap(),
        [b'a'; 5000]
    );
    let listed = fs
        .readdir(resolve(&fs, &format!("{root}/bin")).await.unwrap().ino)
        .await
        .unwrap();
    let run = listed.iter().find(|e| e.name == "run").unwrap();
    assert_eq!(run.kind, FileKind::Symlink, "listed as a link too");
}
