//! Core tests of the views that pick "the newest artifact": forks never reach the shared
//! views, and a re-run's newest attempt takes the plain name and `latest/`.

use std::sync::Arc;
use std::time::Duration;

use super::memory_remote::MemoryRemote;
use super::tests::{core_for, names, resolve, sample_zip};
use super::*;
use crate::github::ArtifactKind;

/// A directory's names, sorted.
async fn sorted(fs: &ArtifactFs, path: &str) -> Vec<String> {
    let mut v = names(fs, path).await;
    v.sort();
    v
}

async fn link(fs: &ArtifactFs, path: &str) -> FsResult<String> {
    let a = resolve(fs, path).await?;
    fs.readlink(a.ino).await
}

#[tokio::test]
async fn a_forks_build_on_a_branch_called_main_never_reaches_latest_or_branches_main() {
    let remote = Arc::new(MemoryRemote::default());
    remote.add(1, "build", 100, "main", 1, sample_zip(), ArtifactKind::Zip);
    // A pull request from a fork whose branch is also called main: newer, its own run.
    remote.add(2, "build", 200, "main", 2, sample_zip(), ArtifactKind::Zip);
    remote.from_fork(2, 777);
    remote.add(
        3,
        "fork-only",
        200,
        "main",
        2,
        sample_zip(),
        ArtifactKind::Zip,
    );
    remote.from_fork(3, 777);
    let (fs, _dir) = core_for(remote, Duration::from_secs(60), false);

    assert_eq!(
        link(&fs, "octo/hello/branches/main/build").await.unwrap(),
        "../../runs/100/build"
    );
    assert_eq!(
        link(&fs, "octo/hello/latest/build").await.unwrap(),
        "../runs/100/build"
    );
    assert_eq!(names(&fs, "octo/hello/latest").await, vec!["build"]);
    assert_eq!(names(&fs, "octo/hello/branches/main").await, vec!["build"]);
    let e = resolve(&fs, "octo/hello/latest/fork-only")
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::ENOENT);
    // The fork's build is still there under runs/, where the path says which run it is.
    assert_eq!(
        sorted(&fs, "octo/hello/runs/200").await,
        vec!["build", "build.zip", "fork-only", "fork-only.zip"]
    );
}

#[tokio::test]
async fn a_re_runs_newest_attempt_has_the_plain_name_and_is_latest() {
    let remote = Arc::new(MemoryRemote::default());
    // Run 300, attempt 1 then attempt 2 (a re-run), each uploading `build`; an older run too.
    remote.add(1, "build", 299, "main", 1, sample_zip(), ArtifactKind::Zip);
    remote.add(2, "build", 300, "main", 2, sample_zip(), ArtifactKind::Zip);
    remote.add(
        3,
        "build",
        300,
        "main",
        3,
        b"attempt 2\n".to_vec(),
        ArtifactKind::Raw { file_name: None },
    );
    let (fs, _dir) = core_for(remote, Duration::from_secs(60), false);
    assert_eq!(
        sorted(&fs, "octo/hello/runs/300").await,
        vec!["build", "build (1)", "build (1).zip"]
    );
    let a = resolve(&fs, "octo/hello/runs/300/build").await.unwrap();
    assert_eq!(
        a.kind,
        FileKind::File,
        "the plain name is attempt 2's raw file"
    );
    assert_eq!(
        link(&fs, "octo/hello/latest/build").await.unwrap(),
        "../runs/300/build"
    );
    assert_eq!(names(&fs, "octo/hello/latest").await, vec!["build"]);
    assert_eq!(
        link(&fs, "octo/hello/branches/main/build").await.unwrap(),
        "../../runs/300/build"
    );
}
