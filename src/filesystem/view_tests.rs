//! Core tests of the views that pick "the newest artifact": forks never reach the shared
//! views, and a re-run's newest attempt takes the plain name and `latest/`.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{core_for, names, resolve, sample_zip};
use super::*;
use crate::github::ArtifactKind;
use crate::github::memory_remote::MemoryRemote;

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

const SHA_A: &str = "aaaaaaa1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_A2: &str = "aaaaaaa2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SHA_C: &str = "cccccccccccccccccccccccccccccccccccccccc";
const SHA_D: &str = "dddddddddddddddddddddddddddddddddddddddd";
const SHA_FORK: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const SHA_NONE: &str = "ffffffffffffffffffffffffffffffffffffffff";

/// Runs of `octo/hello`, oldest first:
/// - 100 ci.yml success main (SHA_A), 101 ci.yml *failure* main (SHA_B, newer),
/// - 102 nightly.yml success main (SHA_C), 103 ci.yml success feature/x (SHA_D, re-run: two
///   `build`s), 104 a fork's pull request (ci.yml success, its branch called main, SHA_FORK),
/// - 105 ci.yml success main (SHA_A2: shares 7 digits with SHA_A).
///
/// Pull requests: 7 (the fork's, head SHA_FORK), 8 (head SHA_NONE: no runs yet).
fn ci_world() -> Arc<MemoryRemote> {
    use crate::github::memory_remote::mem_run;
    use crate::github::runs::{PullHead, RepoId};
    use crate::github::{PullRequest, Workflow};
    let remote = Arc::new(MemoryRemote::default());
    let zip = || sample_zip();
    remote.add_run(mem_run(100, "ci.yml", "success", "main", SHA_A));
    remote.add(1, "build", 100, "main", 1, zip(), ArtifactKind::Zip);
    remote.add_run(mem_run(101, "ci.yml", "failure", "main", SHA_B));
    remote.add(2, "build", 101, "main", 2, zip(), ArtifactKind::Zip);
    remote.add_run(mem_run(102, "nightly.yml", "success", "main", SHA_C));
    remote.add(3, "build", 102, "main", 3, zip(), ArtifactKind::Zip);
    remote.add(4, "nightly-only", 102, "main", 3, zip(), ArtifactKind::Zip);
    let mut rerun = mem_run(103, "ci.yml", "success", "feature/x", SHA_D);
    rerun.run_attempt = Some(2);
    remote.add_run(rerun);
    remote.add(5, "build", 103, "feature/x", 4, zip(), ArtifactKind::Zip);
    remote.add(6, "build", 103, "feature/x", 5, zip(), ArtifactKind::Zip);
    let mut fork = mem_run(104, "ci.yml", "success", "main", SHA_FORK);
    fork.head_repository = Some(RepoId { id: 777 });
    fork.event = Some("pull_request".into());
    remote.add_run(fork);
    remote.add(7, "build", 104, "main", 6, zip(), ArtifactKind::Zip);
    remote.add_run(mem_run(105, "ci.yml", "success", "main", SHA_A2));
    remote.add(8, "other", 105, "main", 1, zip(), ArtifactKind::Zip);
    *remote.workflows.lock().unwrap() = ["ci.yml", "nightly.yml"]
        .iter()
        .enumerate()
        .map(|(i, f)| Workflow {
            id: i as u64 + 1,
            name: f.to_string(),
            path: format!(".github/workflows/{f}"),
            state: Some("active".into()),
        })
        .collect();
    let pull = |number, sha: &str| PullRequest {
        number,
        state: Some("open".into()),
        head: PullHead {
            sha: sha.into(),
            git_ref: Some("main".into()),
            repo: Some(RepoId { id: 777 }),
        },
    };
    *remote.pulls.lock().unwrap() = vec![pull(7, SHA_FORK), pull(8, SHA_NONE)];
    remote
}

fn errno(r: FsResult<Attr>) -> i32 {
    r.unwrap_err().errno()
}

#[tokio::test]
async fn workflows_show_the_newest_artifact_of_successful_runs_of_the_repository_itself() {
    let remote = ci_world();
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    let r = "octo/hello";
    assert_eq!(
        sorted(&fs, &format!("{r}/workflows")).await,
        ["ci.yml", "nightly.yml"]
    );
    // The newest successful ci.yml run with `build` is 103 (its re-run's newest attempt);
    // 101 failed, 104 is a fork's.
    assert_eq!(
        link(&fs, &format!("{r}/workflows/ci.yml/build"))
            .await
            .unwrap(),
        "../../runs/103/build"
    );
    assert_eq!(
        sorted(&fs, &format!("{r}/workflows/ci.yml")).await,
        ["branches", "build", "other"]
    );
    assert_eq!(
        sorted(&fs, &format!("{r}/workflows/ci.yml/branches")).await,
        ["feature%2Fx", "main"]
    );
    // On main: 105 has no `build`, 101 failed, so 100's.
    assert_eq!(
        link(&fs, &format!("{r}/workflows/ci.yml/branches/main/build"))
            .await
            .unwrap(),
        "../../../../runs/100/build"
    );
    assert_eq!(
        link(&fs, &format!("{r}/workflows/nightly.yml/nightly-only"))
            .await
            .unwrap(),
        "../../runs/102/nightly-only"
    );
    // Unknown workflow, unknown name, a branch only the fork has.
    for p in [
        "workflows/release.yml",
        "workflows/ci.yml/nightly-only",
        "workflows/nightly.yml/branches/feature%2Fx",
    ] {
        assert_eq!(
            errno(resolve(&fs, &format!("{r}/{p}")).await),
            libc::ENOENT,
            "{p}"
        );
    }
    // The fork's run is still in runs/, with its attributes.
    let run = resolve(&fs, &format!("{r}/runs/104")).await.unwrap();
    let x: std::collections::BTreeMap<_, _> =
        fs.xattrs(run.ino).await.unwrap().iter().cloned().collect();
    assert_eq!(x["user.run.workflow"], "ci.yml");
    assert_eq!(x["user.run.event"], "pull_request");
    assert_eq!(x["user.run.head_sha"], SHA_FORK);
    assert_eq!(x["user.run.pull_requests"], "");
    let run = resolve(&fs, &format!("{r}/runs/103")).await.unwrap();
    let x: std::collections::BTreeMap<_, _> =
        fs.xattrs(run.ino).await.unwrap().iter().cloned().collect();
    assert_eq!(x["user.run.attempt"], "2");
    assert_eq!(x["user.run.conclusion"], "success");
    assert_eq!(
        x["user.run.url"],
        "https://github.com/octo/hello/actions/runs/103"
    );
}

#[tokio::test]
async fn commits_by_full_sha_or_unique_prefix() {
    let remote = ci_world();
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    let r = "octo/hello";
    assert_eq!(
        link(&fs, &format!("{r}/commits/{SHA_B}/build"))
            .await
            .unwrap(),
        "../../runs/101/build",
        "a commit's build, failed or not"
    );
    assert_eq!(
        link(&fs, &format!("{r}/commits/bbbbbbb/build"))
            .await
            .unwrap(),
        "../../runs/101/build"
    );
    assert_eq!(
        link(&fs, &format!("{r}/commits/{}/build", &SHA_FORK[..12]))
            .await
            .unwrap(),
        "../../runs/104/build",
        "forks' builds are under commits/"
    );
    // Too short, ambiguous (SHA_A and SHA_A2), not hex: ENOENT, nothing asked.
    let before = remote
        .runs_page_calls
        .load(std::sync::atomic::Ordering::SeqCst);
    for p in [
        "bbbbbb",
        "aaaaaaa",
        "ggggggg",
        "aaaaaaa1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa0",
    ] {
        assert_eq!(
            errno(resolve(&fs, &format!("{r}/commits/{p}")).await),
            libc::ENOENT,
            "{p}"
        );
    }
    assert_eq!(
        remote
            .runs_page_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    assert_eq!(
        link(&fs, &format!("{r}/commits/aaaaaaa1/build"))
            .await
            .unwrap(),
        "../../runs/100/build"
    );
    // A full sha no artifact is at always resolves: an empty directory, and no request.
    assert!(
        names(&fs, &format!("{r}/commits/{SHA_NONE}"))
            .await
            .is_empty()
    );
    assert!(
        names(
            &fs,
            &format!("{r}/commits/{}", SHA_NONE.to_ascii_uppercase())
        )
        .await
        .is_empty()
    );
    assert_eq!(
        remote
            .runs_page_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    // Not listed.
    assert!(names(&fs, &format!("{r}/commits")).await.is_empty());
}

#[tokio::test]
async fn pulls_match_runs_by_the_head_sha_and_cost_at_most_three_requests_cold_none_warm() {
    use std::sync::atomic::Ordering::SeqCst;
    let remote = ci_world();
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    let calls = |m: &MemoryRemote| {
        m.list_calls.load(SeqCst)
            + m.runs_page_calls.load(SeqCst)
            + m.run_calls.load(SeqCst)
            + m.pull_calls.load(SeqCst)
            + m.workflow_calls.load(SeqCst)
    };
    let a = resolve(&fs, "octo/hello/pulls/7/build").await.unwrap();
    assert_eq!(fs.readlink(a.ino).await.unwrap(), "../../runs/104/build");
    let cold = calls(&remote);
    assert!(cold <= 3, "a cold pulls/N/NAME cost {cold} requests");
    let a = resolve(&fs, "octo/hello/pulls/7/build").await.unwrap();
    fs.readlink(a.ino).await.unwrap();
    assert_eq!(calls(&remote), cold, "warm within the TTL: nothing asked");
    // A pull request whose head has no runs yet: an empty directory, never a stale build.
    assert!(names(&fs, "octo/hello/pulls/8").await.is_empty());
    // Unknown: ENOENT, remembered.
    assert_eq!(
        errno(resolve(&fs, "octo/hello/pulls/9").await),
        libc::ENOENT
    );
    let n = remote.pull_calls.load(SeqCst);
    assert_eq!(
        errno(resolve(&fs, "octo/hello/pulls/9").await),
        libc::ENOENT
    );
    assert_eq!(
        errno(resolve(&fs, "octo/hello/pulls/07").await),
        libc::ENOENT
    );
    assert_eq!(remote.pull_calls.load(SeqCst), n);
}

#[tokio::test]
async fn any_run_resolves_by_path_and_an_empty_one_can_be_removed_quietly() {
    use crate::github::memory_remote::mem_run;
    use std::sync::atomic::Ordering::SeqCst;
    let remote = ci_world();
    remote.add_run(mem_run(150, "ci.yml", "success", "main", SHA_C));
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    assert!(
        !names(&fs, "octo/hello/runs")
            .await
            .contains(&"150".to_string())
    );
    let run = resolve(&fs, "octo/hello/runs/150").await.unwrap();
    assert_eq!(run.kind, FileKind::Dir);
    assert!(names(&fs, "octo/hello/runs/150").await.is_empty());
    let runs = resolve(&fs, "octo/hello/runs").await.unwrap();
    let deletes = remote.deletes.load(SeqCst);
    fs.rmdir(runs.ino, "150").await.unwrap();
    assert_eq!(remote.deletes.load(SeqCst), deletes, "nothing sent");
    assert_eq!(
        fs.rmdir(runs.ino, "100").await.unwrap_err().errno(),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(resolve(&fs, "octo/hello/runs/999").await),
        libc::ENOENT
    );
}
