//! Core tests of `logs/` against the in-memory remote: the runs listed (and earlier attempts),
//! any run by path, an archive's entries read right and lazily, a run in progress's finished
//! jobs then its archive, expired logs, a byte changed in flight, nothing deletable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use fake_github::zipgen::ZipBuilder;

use super::tests::{core_for, names, read_in_chunks, resolve};
use super::*;
use crate::github::failing_remote::{FailingRemote, Flip};
use crate::github::memory_remote::{MemoryRemote, mem_run};
use crate::github::{ArtifactKind, Download, Job, Run, log_blob_id};

/// A log archive shaped like GitHub's: (archive, its files).
fn log_zip(tag: &str, big: usize) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "1_build.txt".into(),
            [
                format!(
                    "2024-05-01T12:00:00.0000000Z ##[group]Run make\nbuild {tag}\nERROR: one\n"
                )
                .into_bytes(),
                fake_github::zipgen::log_text(big, 3),
            ]
            .concat(),
        ),
        (
            "2_test (ubuntu, 3.12).txt".into(),
            format!("test {tag}\nERROR: two\nERROR: three\n").into_bytes(),
        ),
        (
            "build/1_Set up job.txt".into(),
            format!("set up {tag}\n").into_bytes(),
        ),
        (
            "build/2_Run make.txt".into(),
            format!("make {tag}\n").into_bytes(),
        ),
    ];
    let mut z = ZipBuilder::new();
    for (n, b) in &files {
        z.add(n, b);
    }
    (z.finish(), files)
}

fn job(id: u64, name: &str, done: bool) -> Job {
    Job {
        id,
        name: name.into(),
        status: Some(if done { "completed" } else { "in_progress" }.into()),
        ..Default::default()
    }
}

/// Run 100 (re-run: attempt 2), run 101 in progress (job `build` done, `a/b` and a second
/// `build` too, `test` not).
fn remote() -> Arc<MemoryRemote> {
    let m = Arc::new(MemoryRemote::default());
    m.add(1, "build", 100, "main", 1, b"x".to_vec(), ArtifactKind::Zip);
    m.add_run(Run {
        run_attempt: Some(2),
        ..mem_run(100, "ci.yml", "success", "main", "aaa")
    });
    let mut r101 = mem_run(101, "ci.yml", "success", "main", "bbb");
    r101.status = Some("in_progress".into());
    r101.conclusion = None;
    m.add_run(r101);
    m.logs
        .lock()
        .unwrap()
        .insert((100, 1), log_zip("attempt 1", 0).0.into());
    m.logs
        .lock()
        .unwrap()
        .insert((100, 2), log_zip("attempt 2", 0).0.into());
    m.jobs.lock().unwrap().insert(
        101,
        vec![
            job(1, "build", true),
            job(2, "test", false),
            job(3, "a/b", true),
            job(4, "build", true),
        ],
    );
    for (id, text) in [(1, "build log\n"), (3, "a/b log\n"), (4, "second build\n")] {
        m.job_logs.lock().unwrap().insert(id, Bytes::from(text));
    }
    m
}

async fn read_all(fs: &ArtifactFs, path: &str) -> FsResult<Vec<u8>> {
    read_in_chunks(fs, path, 64 * 1024).await
}

#[tokio::test]
async fn logs_list_runs_and_attempts_and_read_every_file_right() {
    let m = remote();
    let (fs, _dir) = core_for(m.clone(), Duration::from_secs(60), false);
    assert!(names(&fs, "octo/hello").await.contains(&"logs".to_string()));
    assert_eq!(names(&fs, "octo/hello/logs").await, ["101", "100", "100.1"]);
    let mut top = names(&fs, "octo/hello/logs/100").await;
    top.sort();
    assert_eq!(top, ["1_build.txt", "2_test (ubuntu, 3.12).txt", "build"]);
    for (attempt, dir) in [(2, "100"), (1, "100.1"), (2, "100.2")] {
        for (name, bytes) in log_zip(&format!("attempt {attempt}"), 0).1 {
            let got = read_all(&fs, &format!("octo/hello/logs/{dir}/{name}"))
                .await
                .unwrap();
            assert_eq!(got, bytes, "{dir}/{name}");
        }
    }
    // Any run by path; an attempt past the last, or a run GitHub lacks, is ENOENT.
    for bad in ["100.3", "999", "0100", "100.0"] {
        let e = resolve(&fs, &format!("octo/hello/logs/{bad}"))
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::ENOENT, "{bad}");
    }
    // The run's attributes, as on runs/RUN.
    let d = resolve(&fs, "octo/hello/logs/100").await.unwrap();
    let x = fs.xattrs(d.ino).await.unwrap();
    assert!(
        x.contains(&("user.run.attempt".into(), "2".into())),
        "{x:?}"
    );
    assert!(
        x.contains(&("user.run.workflow".into(), "ci.yml".into())),
        "{x:?}"
    );
    let f = resolve(&fs, "octo/hello/logs/100/build/2_Run make.txt")
        .await
        .unwrap();
    let x = fs.xattrs(f.ino).await.unwrap();
    assert!(x.iter().any(|(k, _)| k == "user.zip.crc32"), "{x:?}");
    // Nothing under logs/ can be deleted.
    let logs = resolve(&fs, "octo/hello/logs").await.unwrap();
    assert_eq!(
        fs.rmdir(logs.ino, "100").await.unwrap_err().errno(),
        libc::EROFS
    );
    assert_eq!(
        fs.unlink(d.ino, "1_build.txt").await.unwrap_err().errno(),
        libc::EROFS
    );
    assert_eq!(
        fs.rmdir(d.ino, "build").await.unwrap_err().errno(),
        libc::EROFS
    );
    assert_eq!(m.deletes.load(Ordering::SeqCst), 0);
    // One download per attempt (100 and 100.2 are one), however many files were read.
    assert_eq!(m.log_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn head_of_a_big_log_reads_about_its_start() {
    let m = remote();
    let (zip, files) = log_zip("big", 16 << 20);
    assert!(zip.len() > 2 << 20, "{}", zip.len());
    m.logs.lock().unwrap().insert((100, 2), zip.into());
    let (fs, _dir) = core_for(m.clone(), Duration::from_secs(60), false);
    names(&fs, "octo/hello/logs/100").await;
    let listed = m.blob_bytes.load(Ordering::SeqCst);
    assert!(listed < 600 << 10, "listing read {listed} bytes");
    let a = resolve(&fs, "octo/hello/logs/100/1_build.txt")
        .await
        .unwrap();
    assert_eq!(a.size, files[0].1.len() as u64);
    let fh = fs.open(a.ino).await.unwrap();
    let head = fs.read(fh, 0, 4096).await.unwrap();
    fs.release(fh);
    assert_eq!(head, files[0].1[..4096]);
    let read = m.blob_bytes.load(Ordering::SeqCst) - listed;
    assert!(read <= 2 << 20, "head read {read} bytes");
}

#[tokio::test]
async fn a_run_in_progress_shows_its_finished_jobs_then_its_archive() {
    let m = remote();
    let (fs, _dir) = core_for(m.clone(), Duration::ZERO, false);
    assert_eq!(
        names(&fs, "octo/hello/logs/101").await,
        ["build.txt", "a%2Fb.txt", "build (1).txt"]
    );
    let before = resolve(&fs, "octo/hello/logs/101").await.unwrap();
    assert_eq!(
        read_all(&fs, "octo/hello/logs/101/build.txt")
            .await
            .unwrap(),
        b"build log\n"
    );
    let a = resolve(&fs, "octo/hello/logs/101/build (1).txt")
        .await
        .unwrap();
    assert_eq!(a.size, 13);
    // Open before the run completes: the handle keeps its bytes.
    let fh = fs.open(a.ino).await.unwrap();
    // The run completes: the archive replaces the jobs, and the directory's mtime moves.
    let mut done = mem_run(101, "ci.yml", "success", "main", "bbb");
    done.updated_at = Some("2030-01-01T00:00:00Z".into());
    m.add_run(done);
    m.logs
        .lock()
        .unwrap()
        .insert((101, 1), log_zip("done", 0).0.into());
    let mut now = names(&fs, "octo/hello/logs/101").await;
    now.sort();
    assert_eq!(now, ["1_build.txt", "2_test (ubuntu, 3.12).txt", "build"]);
    let after = resolve(&fs, "octo/hello/logs/101").await.unwrap();
    assert_ne!(before.mtime, after.mtime);
    assert_eq!(fs.read(fh, 0, 100).await.unwrap(), b"second build\n");
    fs.release(fh);
}

#[tokio::test]
async fn expired_logs_are_an_empty_directory() {
    let m = remote();
    m.gone_logs.lock().unwrap().insert(100);
    let (fs, _dir) = core_for(m.clone(), Duration::from_secs(60), false);
    assert!(names(&fs, "octo/hello/logs/100").await.is_empty());
    let e = resolve(&fs, "octo/hello/logs/100/1_build.txt")
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT);
    // Asked once per --metadata-ttl.
    names(&fs, "octo/hello/logs/100").await;
    assert_eq!(m.log_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_log_byte_changed_in_flight_is_eio_never_wrong_bytes() {
    let m = MemoryRemote::default();
    m.add(1, "build", 100, "main", 1, b"x".to_vec(), ArtifactKind::Zip);
    m.add_run(mem_run(100, "ci.yml", "success", "main", "aaa"));
    let (zip, files) = log_zip("flip", 0);
    m.logs.lock().unwrap().insert((100, 1), zip.into());
    let r = Arc::new(FailingRemote::new(m));
    let (fs, _dir) = core_for(r.clone(), Duration::from_secs(60), false);
    r.set(|f| {
        f.flip = Some(Flip {
            artifact: log_blob_id(&Download::RunLogs {
                run: 100,
                attempt: None,
            }),
            offset: 50,
            times: None,
        })
    });
    names(&fs, "octo/hello/logs/100").await;
    let e = read_all(&fs, "octo/hello/logs/100/1_build.txt")
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EIO);
    r.set(|f| f.flip = None);
    // The other files are right.
    let got = read_all(&fs, "octo/hello/logs/100/build/1_Set up job.txt")
        .await
        .unwrap();
    assert_eq!(got, files[2].1);
}

#[tokio::test]
async fn a_remount_reads_a_cached_log_without_asking_for_its_length() {
    let m = remote();
    let dir = tempfile::tempdir().unwrap();
    let read_all_logs = |fs: ArtifactFs| async move {
        for (dir_name, attempt) in [("100.1", "attempt 1"), ("100", "attempt 2")] {
            let (_, files) = log_zip(attempt, 0);
            for (name, bytes) in files {
                let got = read_all(&fs, &format!("octo/hello/logs/{dir_name}/{name}"))
                    .await
                    .unwrap();
                assert_eq!(got, bytes, "{dir_name}/{name}");
            }
        }
        fs
    };
    let fs = super::inner_gib_tests::core_on(m.clone(), dir.path()).await;
    drop(read_all_logs(fs).await);
    assert_eq!(
        m.log_calls.load(Ordering::SeqCst),
        2,
        "one probe per archive"
    );
    // A remount on the same cache: the lengths are kept, every byte is cached.
    m.blob_reads.lock().unwrap().clear();
    let fs = super::inner_gib_tests::core_on(m.clone(), dir.path()).await;
    drop(read_all_logs(fs).await);
    assert_eq!(
        m.log_calls.load(Ordering::SeqCst),
        2,
        "no probe after the remount"
    );
    assert_eq!(
        *m.blob_reads.lock().unwrap(),
        [],
        "no blob read after the remount"
    );
}
