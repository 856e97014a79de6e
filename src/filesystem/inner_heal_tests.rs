//! Issue 18's rule inside archives inside artifacts: one refetch heals everything a failed
//! check touched. A byte changed once in flight within an inner archive is EIO for the read
//! that met it, never wrong bytes, and the next read is right: the bytes it was read through
//! are dropped (the holding file's cached blocks, an inflater's kept streams) and a holding
//! file's reader that saw the failure is replaced by a fresh one.

use std::sync::Arc;
use std::time::Duration;

use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
use sha2::{Digest, Sha256};

use super::inner_gib_tests::core_on;
use super::tests::{core_for, names, read_in_chunks, resolve};
use super::*;
use crate::github::ArtifactKind;
use crate::github::failing_remote::{FailingRemote, Flip};
use crate::github::memory_remote::MemoryRemote;

const A: &str = "octo/hello/runs/100/dist";

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Where entry `name`'s data starts in zip `z`.
fn data_start(z: &[u8], name: &str) -> u64 {
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
    a.by_name(name).unwrap().data_start()
}

/// The errno of a read, 0 when it succeeded (whatever its bytes).
fn errno(r: &FsResult<Vec<u8>>) -> i32 {
    r.as_ref().map_or_else(|e| e.errno(), |_| 0)
}

async fn read(fs: &ArtifactFs, path: &str) -> FsResult<Vec<u8>> {
    read_in_chunks(fs, path, 128 << 10).await
}

/// The artifact holding `name` (stored or deflated as `opts` says) with a 4 MiB stored
/// entry after it, so that reading `name` never completes the blob (whose digest would then
/// catch a changed byte on its own).
fn artifact(name: &str, data: &[u8], opts: EntryOptions) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add_with(name, data, opts);
    z.add_with("pad.bin", &noise(4 << 20, 3), EntryOptions::stored());
    z.finish()
}

/// An offset past `from` in the deflate stream `deflated` (of `original`) whose byte,
/// changed, the inflater refuses before it has put out a single wrong byte: the change the
/// holding file's own reader sees (a change that inflates to other bytes is seen only by a
/// check over the whole file).
fn refused_change(deflated: &[u8], original: &[u8], from: usize) -> usize {
    use std::io::Read;
    (from..deflated.len())
        .step_by(101)
        .find(|&k| {
            let mut d = deflated.to_vec();
            d[k] ^= 0xFF;
            let mut out = Vec::new();
            let r = flate2::read::DeflateDecoder::new(&d[..]).read_to_end(&mut out);
            r.is_err() && original.starts_with(&out)
        })
        .expect("a change the inflater refuses")
}

/// The files below `dir`.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A tar of `files` as `f0.EXT`, `f1.EXT`...
pub(super) fn tar_of(files: &[Vec<u8>], ext: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, d) in files.iter().enumerate() {
        let mut h = tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("f{i}.{ext}"), &d[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn remote_with(body: Vec<u8>) -> Arc<FailingRemote<MemoryRemote>> {
    let remote = Arc::new(FailingRemote::new(MemoryRemote::default()));
    remote.add(1, "dist", 100, "main", 1, body, ArtifactKind::Zip);
    remote
}

fn flip_once(remote: &FailingRemote<MemoryRemote>, offset: u64) {
    remote.set(|f| {
        f.flip = Some(Flip {
            artifact: 1,
            offset,
            times: Some(1),
        })
    });
}

#[tokio::test]
async fn a_byte_changed_once_in_an_inner_zip_member_is_eio_then_right() {
    // A deflated member of a zip stored in the artifact: its CRC-32 catches the change; the
    // refetch must not read the changed block back from the cache. (The flip is past the
    // first cache block, which listing reads: it sniffs the archive's first bytes.)
    let log = log_text(3 << 20, 11);
    let mut inner = ZipBuilder::new();
    inner.add("build.log", &log);
    inner.add_with("noise.bin", &noise(1 << 20, 4), EntryOptions::stored());
    let inner = inner.finish();
    let body = artifact("inner.zip", &inner, EntryOptions::stored());
    let at = data_start(&body, "inner.zip") + data_start(&inner, "build.log") + 400_000;
    let remote = remote_with(body);
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    assert_eq!(names(&fs, &format!("{A}/inner.zip.d")).await.len(), 2);
    flip_once(&remote, at);
    let path = format!("{A}/inner.zip.d/build.log");
    assert_eq!(errno(&read(&fs, &path).await), libc::EIO);
    let again = read(&fs, &path).await;
    assert_eq!(errno(&again), 0, "read again");
    assert_eq!(sha(&again.unwrap()), sha(&log));
}

#[tokio::test]
async fn a_byte_changed_once_while_a_tar_gz_is_indexed_is_eio_then_right() {
    // A .tar.gz stored in the artifact, the byte changed in the one pass that indexes it: the
    // inflater's error (or the gzip trailer's CRC-32) makes the listing EIO; the next listing
    // must not read the changed block back from the cache.
    let files: Vec<Vec<u8>> = (0..6).map(|i| log_text(1 << 20, 20 + i)).collect();
    let gz = super::inner_tests::gzip(&tar_of(&files, "log"));
    let body = artifact("logs.tar.gz", &gz, EntryOptions::stored());
    let at = data_start(&body, "logs.tar.gz") + gz.len() as u64 / 2;
    let remote = remote_with(body);
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    flip_once(&remote, at);
    let contents = format!("{A}/logs.tar.gz.d");
    assert_eq!(
        resolve(&fs, &contents)
            .await
            .map(|_| 0)
            .unwrap_or_else(|e| e.errno()),
        libc::EIO
    );
    assert_eq!(names(&fs, &contents).await.len(), 6);
    for (i, d) in files.iter().enumerate() {
        let got = read(&fs, &format!("{contents}/f{i}.log")).await;
        assert_eq!(errno(&got), 0, "f{i}.log");
        assert_eq!(sha(&got.unwrap()), sha(d), "f{i}.log");
    }
}

#[tokio::test]
async fn a_byte_changed_once_in_a_deflated_holding_file_is_eio_then_right() {
    // A tar deflated in the artifact (as upload-artifact stores it), indexed, read cold
    // after a remount: the holding file's own check fails, its reader refuses from then on;
    // the next read must get a fresh one.
    let files: Vec<Vec<u8>> = (0..4).map(|i| log_text(1 << 20, 40 + i)).collect();
    let tar = tar_of(&files, "log");
    let body = artifact("dist.tar", &tar, EntryOptions::default());
    let start = data_start(&body, "dist.tar");
    let compressed = {
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(&body[..])).unwrap();
        a.by_name("dist.tar").unwrap().compressed_size()
    };
    let deflated = &body[start as usize..(start + compressed) as usize];
    let at = start + refused_change(deflated, &tar, deflated.len() / 2) as u64;
    let remote = remote_with(body);
    let dir = tempfile::tempdir().unwrap();
    let fs = core_on(remote.clone(), dir.path()).await;
    assert_eq!(names(&fs, &format!("{A}/dist.tar.d")).await.len(), 4);
    drop(fs);
    // Gone from the cache: the blob's blocks and the entry's inflated copy and seek points;
    // kept: the tar's index.
    std::fs::remove_dir_all(dir.path().join("cache/blocks")).unwrap();
    for e in walkdir(&dir.path().join("cache/entries")) {
        if e.extension().is_none_or(|x| x != "inner") {
            std::fs::remove_file(e).unwrap();
        }
    }
    let fs = core_on(remote.clone(), dir.path()).await;
    assert_eq!(names(&fs, &format!("{A}/dist.tar.d")).await.len(), 4);
    flip_once(&remote, at);
    // `cp -r dist.tar.d`: the members in order. The one whose bytes lie past the change is
    // EIO (the inflater fails, and with it the holding file's reader).
    let mut failed = 0;
    for (i, d) in files.iter().enumerate() {
        let got = read(&fs, &format!("{A}/dist.tar.d/f{i}.log")).await;
        if errno(&got) == libc::EIO {
            failed += 1;
            continue;
        }
        assert_eq!(errno(&got), 0, "f{i}.log");
        assert_eq!(sha(&got.unwrap()), sha(d), "f{i}.log");
    }
    assert!(failed > 0, "the changed byte was never met");
    // The next reads are right.
    for (i, d) in files.iter().enumerate() {
        let got = read(&fs, &format!("{A}/dist.tar.d/f{i}.log")).await;
        assert_eq!(errno(&got), 0, "f{i}.log, read again");
        assert_eq!(sha(&got.unwrap()), sha(d), "f{i}.log, read again");
    }
}
