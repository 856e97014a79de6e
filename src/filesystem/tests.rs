//! Core tests against an in-memory remote: the tree, reading and deleting of
//! docs/semantics.md, with no FUSE and no HTTP.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use fake_github::zipgen::{EntryOptions, Method, ZipBuilder};

use super::*;
use crate::github::failing_remote::{FailingRemote, Flip};
use crate::github::memory_remote::MemoryRemote;
use crate::github::{ApiError, ArtifactKind};

pub(super) fn sample_zip() -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add("logs/unit/a.log", b"unit test log\n");
    z.add_with(
        "bin/tool.sh",
        b"#!/bin/sh\necho hi\n",
        EntryOptions {
            unix_mode: Some(0o100755),
            method: Method::Stored,
            ..Default::default()
        },
    );
    z.add("report.txt", b"all good\n");
    z.add("empty.txt", b"");
    z.finish()
}

fn big_zip() -> Vec<u8> {
    // > 1 MiB, so the central directory is read by ranged reads, not a whole download.
    let mut z = ZipBuilder::new();
    let mut seed = 7u64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        })
        .collect();
    z.add_with("noise.bin", &noise, EntryOptions::stored());
    z.add("small.txt", b"small file\n");
    z.finish()
}

struct Fixture {
    fs: ArtifactFs,
    /// The in-memory GitHub (its counters through `Deref`) inside a failing wrapper.
    remote: Arc<FailingRemote<MemoryRemote>>,
    _dir: tempfile::TempDir,
}

fn fixture(read_only: bool) -> Fixture {
    let remote = Arc::new(FailingRemote::new(MemoryRemote::default()));
    remote.add(1, "logs", 100, "main", 1, sample_zip(), ArtifactKind::Zip);
    remote.add(
        2,
        "logs",
        101,
        "feature/x",
        2,
        sample_zip(),
        ArtifactKind::Zip,
    );
    remote.add(
        3,
        "notes",
        101,
        "feature/x",
        3,
        b"raw notes\n".to_vec(),
        ArtifactKind::Raw {
            file_name: Some("notes.txt".into()),
        },
    );
    remote.add(4, "big", 102, "main", 4, big_zip(), ArtifactKind::Zip);
    remote.users.lock().unwrap().push("someone".into());
    let (fs, dir) = core_for(remote.clone(), Duration::from_secs(60), read_only);
    Fixture {
        fs,
        remote,
        _dir: dir,
    }
}

/// A core over `remote` for `octo/hello`, its cache in a new temporary directory.
pub(super) fn core_for(
    remote: Arc<dyn Remote>,
    ttl: Duration,
    read_only: bool,
) -> (ArtifactFs, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(DiskCache::open(&dir.path().join("cache"), 1 << 30).unwrap());
    let fs = ArtifactFs::new(
        remote,
        cache,
        FsConfig {
            repos: vec![RepoRef::new("octo", "hello")],
            metadata_ttl: ttl,
            read_only,
        },
        Default::default(),
    );
    (fs, dir)
}

pub(super) async fn resolve(fs: &ArtifactFs, path: &str) -> FsResult<Attr> {
    let mut attr = fs.getattr(ROOT_INO).await?;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        attr = fs.lookup(attr.ino, part).await?;
    }
    Ok(attr)
}

pub(super) async fn names(fs: &ArtifactFs, path: &str) -> Vec<String> {
    let a = resolve(fs, path).await.unwrap();
    fs.readdir(a.ino)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

async fn read_all(fs: &ArtifactFs, path: &str) -> FsResult<Vec<u8>> {
    read_in_chunks(fs, path, 4096).await
}

/// The whole file at `path`, read front to back in reads of `chunk` bytes as `cat` would;
/// the handle is released on an error too.
pub(super) async fn read_in_chunks(fs: &ArtifactFs, path: &str, chunk: u32) -> FsResult<Vec<u8>> {
    let a = resolve(fs, path).await?;
    let fh = fs.open(a.ino).await?;
    let mut out = Vec::new();
    let result = loop {
        match fs.read(fh, out.len() as u64, chunk).await {
            Ok(c) if c.is_empty() => break Ok(out),
            Ok(c) => out.extend_from_slice(&c),
            Err(e) => break Err(e),
        }
    };
    fs.release(fh);
    result
}

#[tokio::test]
async fn tree_has_runs_latest_and_branches() {
    let f = fixture(false);
    assert_eq!(names(&f.fs, "").await, vec!["octo"]);
    assert_eq!(names(&f.fs, "octo").await, vec!["hello"]);
    assert_eq!(
        names(&f.fs, "octo/hello").await,
        vec![
            "branches",
            "commits",
            "latest",
            "logs",
            "pulls",
            "runs",
            "workflows"
        ]
    );
    assert_eq!(
        names(&f.fs, "octo/hello/runs").await,
        vec!["100", "101", "102"]
    );
    assert_eq!(
        names(&f.fs, "octo/hello/runs/101").await,
        vec!["logs.zip", "notes", "logs"],
        "files first, then the artifact directories"
    );
    assert_eq!(
        names(&f.fs, "octo/hello/runs/100/logs").await,
        vec!["bin", "empty.txt", "logs", "report.txt"]
    );
    assert_eq!(
        names(&f.fs, "octo/hello/latest").await,
        vec!["big", "logs", "notes"]
    );
    let link = resolve(&f.fs, "octo/hello/latest/logs").await.unwrap();
    assert_eq!(link.kind, FileKind::Symlink);
    assert_eq!(f.fs.readlink(link.ino).await.unwrap(), "../runs/101/logs");
    assert_eq!(
        names(&f.fs, "octo/hello/branches").await,
        vec!["feature%2Fx", "main"]
    );
    let b = resolve(&f.fs, "octo/hello/branches/main/logs")
        .await
        .unwrap();
    assert_eq!(f.fs.readlink(b.ino).await.unwrap(), "../../runs/100/logs");
    // Case-insensitive owner/repo, same inode.
    let a1 = resolve(&f.fs, "octo/hello/runs").await.unwrap();
    let a2 = resolve(&f.fs, "OCTO/Hello/runs").await.unwrap();
    assert_eq!(a1.ino, a2.ino);
    // Listing was fetched once; no blob bytes were needed for any of this except the small
    // archives' central directories.
    assert_eq!(f.remote.list_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn attributes_are_real() {
    let f = fixture(false);
    let zip = resolve(&f.fs, "octo/hello/runs/100/logs.zip")
        .await
        .unwrap();
    assert_eq!(zip.size, sample_zip().len() as u64);
    assert_eq!(zip.perm, 0o444);
    let tool = resolve(&f.fs, "octo/hello/runs/100/logs/bin/tool.sh")
        .await
        .unwrap();
    assert_eq!(tool.perm, 0o555);
    assert_eq!(tool.size, 18);
    let run = resolve(&f.fs, "octo/hello/runs/101").await.unwrap();
    assert_eq!(
        run.mtime,
        listing::parse_time(Some("2024-01-03T00:00:00Z")).unwrap()
    );
    let xattrs = f.fs.xattrs(zip.ino).await.unwrap();
    assert!(xattrs.contains(&("user.artifact.id".into(), "1".into())));
    assert!(xattrs.contains(&("user.artifact.head_branch".into(), "main".into())));
}

#[tokio::test]
async fn reads_return_the_bytes() {
    let f = fixture(false);
    assert_eq!(
        read_all(&f.fs, "octo/hello/runs/100/logs/logs/unit/a.log")
            .await
            .unwrap(),
        b"unit test log\n"
    );
    assert_eq!(
        read_all(&f.fs, "octo/hello/runs/100/logs/empty.txt")
            .await
            .unwrap(),
        b""
    );
    assert_eq!(
        read_all(&f.fs, "octo/hello/runs/100/logs.zip")
            .await
            .unwrap(),
        sample_zip()
    );
    assert_eq!(
        read_all(&f.fs, "octo/hello/runs/101/notes").await.unwrap(),
        b"raw notes\n"
    );
}

#[tokio::test]
async fn listing_a_big_archive_reads_only_its_central_directory() {
    let f = fixture(false);
    assert_eq!(
        names(&f.fs, "octo/hello/runs/102/big").await,
        vec!["noise.bin", "small.txt"]
    );
    // The blocks (128 KiB) holding the tail and the central directory: at most two of the
    // 3 MiB archive.
    let served = f.remote.blob_bytes.load(Ordering::SeqCst);
    assert!(served <= 256 * 1024, "served {served} bytes for ls");
    assert_eq!(
        read_all(&f.fs, "octo/hello/runs/102/big/small.txt")
            .await
            .unwrap(),
        b"small file\n"
    );
    let served = f.remote.blob_bytes.load(Ordering::SeqCst);
    // Plus the block holding the small entry's local header and data.
    assert!(
        served <= 384 * 1024,
        "served {served} bytes for one small file"
    );
}

#[tokio::test]
async fn delete_paths() {
    let f = fixture(false);
    let run = resolve(&f.fs, "octo/hello/runs/101").await.unwrap();
    let logs = resolve(&f.fs, "octo/hello/runs/101/logs").await.unwrap();
    // A file inside an artifact can't be removed alone.
    assert_eq!(
        f.fs.unlink(logs.ino, "report.txt")
            .await
            .unwrap_err()
            .errno(),
        libc::EROFS
    );
    assert_eq!(f.remote.deletes.load(Ordering::SeqCst), 0);
    // rmdir of a run with artifacts.
    let runs = resolve(&f.fs, "octo/hello/runs").await.unwrap();
    assert_eq!(
        f.fs.rmdir(runs.ino, "101").await.unwrap_err().errno(),
        libc::ENOTEMPTY
    );
    // rm NAME.zip deletes the artifact, once.
    let stale = f.fs.unlink(run.ino, "logs.zip").await.unwrap();
    assert_eq!(f.remote.deletes.load(Ordering::SeqCst), 1);
    assert!(stale.iter().any(|i| i.name == "logs"));
    assert_eq!(names(&f.fs, "octo/hello/runs/101").await, vec!["notes"]);
    assert_eq!(
        resolve(&f.fs, "octo/hello/runs/101/logs")
            .await
            .unwrap_err()
            .errno(),
        libc::ENOENT
    );
    // latest/logs now points at the older one.
    let link = resolve(&f.fs, "octo/hello/latest/logs").await.unwrap();
    assert_eq!(f.fs.readlink(link.ino).await.unwrap(), "../runs/100/logs");
    // rmdir NAME deletes too; rm of an unzipped artifact.
    let run100 = resolve(&f.fs, "octo/hello/runs/100").await.unwrap();
    f.fs.rmdir(run100.ino, "logs").await.unwrap();
    f.fs.unlink(run.ino, "notes").await.unwrap();
    assert_eq!(f.remote.deletes.load(Ordering::SeqCst), 3);
    assert_eq!(names(&f.fs, "octo/hello/runs").await, vec!["102"]);
}

#[tokio::test]
async fn refused_deletes_send_nothing_or_keep_the_artifact() {
    let f = fixture(true);
    let run = resolve(&f.fs, "octo/hello/runs/101").await.unwrap();
    assert_eq!(
        f.fs.unlink(run.ino, "logs.zip").await.unwrap_err().errno(),
        libc::EROFS
    );
    assert_eq!(
        f.fs.rmdir(run.ino, "logs").await.unwrap_err().errno(),
        libc::EROFS
    );
    assert_eq!(f.remote.deletes.load(Ordering::SeqCst), 0);

    let f = fixture(false);
    f.remote
        .set(|x| x.delete_error = Some(ApiError::Forbidden("no".into())));
    let run = resolve(&f.fs, "octo/hello/runs/101").await.unwrap();
    assert_eq!(
        f.fs.unlink(run.ino, "logs.zip").await.unwrap_err().errno(),
        libc::EACCES
    );
    assert_eq!(
        names(&f.fs, "octo/hello/runs/101").await,
        vec!["logs.zip", "notes", "logs"]
    );
}

#[tokio::test]
async fn corrupt_download_is_eio_and_not_cached() {
    let f = fixture(false);
    f.remote.replace_body(3, Bytes::from_static(b"tampered!\n"));
    let err = read_all(&f.fs, "octo/hello/runs/101/notes")
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    f.fs.persist_metadata();
    assert_eq!(
        f.fs.cache().used_by_files(),
        3 * 4096,
        "bad bytes are not kept: only the blob's overhead (map, extent tree) and kinds.json"
    );
}

#[tokio::test]
async fn repos_by_path() {
    let f = fixture(false);
    let root = f.fs.getattr(ROOT_INO).await.unwrap();
    let other = f.fs.lookup(root.ino, "someone").await.unwrap();
    assert_eq!(
        f.fs.lookup(other.ino, "missing").await.unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!(
        f.fs.lookup(root.ino, ".git").await.unwrap_err().errno(),
        libc::ENOENT
    );
}

#[tokio::test]
async fn a_byte_changed_in_flight_is_eio_for_a_full_read_and_refused_reads_are_eacces() {
    let f = fixture(false);
    // The big archive's stored entry, one byte changed by the blob host.
    f.remote
        .add(9, "big", 109, "main", 9, big_zip(), ArtifactKind::Zip);
    f.remote.add(
        10,
        "other",
        110,
        "main",
        10,
        sample_zip(),
        ArtifactKind::Zip,
    );
    f.remote.set(|x| {
        x.flip = Some(Flip {
            artifact: 9,
            offset: 2_000_000,
            times: None,
        })
    });
    let err = read_all(&f.fs, "octo/hello/runs/109/big/noise.bin")
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EIO);
    assert_eq!(
        read_all(&f.fs, "octo/hello/runs/109/big.zip")
            .await
            .unwrap_err()
            .errno(),
        libc::EIO
    );
    // A blob host that refuses (an expired URL that stays refused): EACCES, not EIO.
    f.remote.set(|x| {
        x.flip = None;
        x.blob_error = Some(ApiError::Forbidden("in-memory blob host: refused".into()));
    });
    assert_eq!(
        read_all(&f.fs, "octo/hello/runs/110/other.zip")
            .await
            .unwrap_err()
            .errno(),
        libc::EACCES
    );
}

#[tokio::test]
async fn a_slow_remote_does_not_hold_up_a_listing_already_known() {
    let f = fixture(false);
    assert!(resolve(&f.fs, "octo/hello/runs/100").await.is_ok());
    // What runs hold is known once their artifacts' kinds are (listing runs/ learns them).
    names(&f.fs, "octo/hello/runs/101").await;
    f.remote
        .set(|x| x.latency = Some(Duration::from_secs(3600)));
    // Served from the listing in memory (fresh within --metadata-ttl): no wait.
    let attr = tokio::time::timeout(
        Duration::from_secs(5),
        resolve(&f.fs, "octo/hello/runs/101/notes"),
    )
    .await
    .expect("no wait on the network")
    .unwrap();
    assert_eq!(attr.kind, FileKind::File);
}
