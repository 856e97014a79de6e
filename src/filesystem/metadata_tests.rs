//! Core tests of what is remembered about GitHub (`metadata`): unknown owners and missing
//! repositories (negative answers kept for the TTL), stale listings served while one refresh
//! runs, and zip-or-raw probes (none without a token; a failed one not repeated within the
//! TTL). Counts of remote calls, never wall time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use super::probes::{INDEX_READAHEAD_BUDGET, READ_AHEAD_REQUESTS};
use super::tests::{core_for, names, resolve, sample_zip};
use super::*;
use crate::archive::central_directory::{TAIL_LEN, tail_len_for};
use crate::github::memory_remote::MemoryRemote;
use crate::github::{ApiError, ArtifactKind};
use crate::source::ByteSource;

/// The in-memory remote, with a gate on listings, a token switch and failing probes.
struct Gated {
    inner: MemoryRemote,
    /// While set, listings wait for a permit.
    gated: AtomicBool,
    permits: tokio::sync::Semaphore,
    token: bool,
    probes_fail: AtomicBool,
    list_calls: AtomicU64,
}

#[async_trait]
impl Remote for Gated {
    async fn list_artifacts(&self, repo: &RepoRef) -> Result<Vec<Artifact>, ApiError> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        if self.gated.load(Ordering::SeqCst) {
            self.permits.acquire().await.unwrap().forget();
        }
        self.inner.list_artifacts(repo).await
    }
    async fn delete_artifact(&self, repo: &RepoRef, id: u64) -> Result<(), ApiError> {
        self.inner.delete_artifact(repo, id).await
    }
    async fn owner_exists(&self, owner: &str) -> Result<bool, ApiError> {
        self.inner.owner_exists(owner).await
    }
    fn can_download(&self) -> bool {
        self.token
    }
    async fn artifact_kind(&self, repo: &RepoRef, id: u64) -> Result<ArtifactKind, ApiError> {
        if self.probes_fail.load(Ordering::SeqCst) {
            self.inner.kind_calls.fetch_add(1, Ordering::SeqCst);
            return Err(ApiError::Server {
                status: 502,
                what: "probe".into(),
            });
        }
        self.inner.artifact_kind(repo, id).await
    }
    async fn runs_page(
        &self,
        repo: &RepoRef,
        filter: &crate::github::RunFilter,
        page: u32,
    ) -> Result<crate::github::RunsPage, ApiError> {
        self.inner.runs_page(repo, filter, page).await
    }
    async fn get_run(&self, repo: &RepoRef, id: u64) -> Result<crate::github::Run, ApiError> {
        self.inner.get_run(repo, id).await
    }
    async fn list_workflows(
        &self,
        repo: &RepoRef,
    ) -> Result<Vec<crate::github::Workflow>, ApiError> {
        self.inner.list_workflows(repo).await
    }
    async fn get_pull(
        &self,
        repo: &RepoRef,
        number: u64,
    ) -> Result<crate::github::PullRequest, ApiError> {
        self.inner.get_pull(repo, number).await
    }
    async fn run_jobs(
        &self,
        repo: &RepoRef,
        run: u64,
    ) -> Result<Vec<crate::github::Job>, ApiError> {
        self.inner.run_jobs(repo, run).await
    }
    async fn log_blob(
        &self,
        repo: &RepoRef,
        target: &crate::github::Download,
    ) -> Result<crate::github::LogBlob, ApiError> {
        self.inner.log_blob(repo, target).await
    }
    fn blob(&self, repo: &RepoRef, artifact: &Artifact) -> Arc<dyn ByteSource> {
        self.inner.blob(repo, artifact)
    }
}

struct Setup {
    fs: ArtifactFs,
    remote: Arc<Gated>,
    _dir: tempfile::TempDir,
}

fn setup(token: bool, ttl: Duration) -> Setup {
    let inner = MemoryRemote::default();
    inner.add(1, "logs", 100, "main", 1, sample_zip(), ArtifactKind::Zip);
    inner.add(2, "logs", 101, "main", 2, sample_zip(), ArtifactKind::Zip);
    let raw = ArtifactKind::Raw {
        file_name: Some("notes.txt".into()),
    };
    inner.add(3, "notes", 101, "main", 3, b"raw notes\n".to_vec(), raw);
    inner.users.lock().unwrap().push("someone".into());
    let remote = Arc::new(Gated {
        inner,
        gated: AtomicBool::new(false),
        permits: tokio::sync::Semaphore::new(0),
        token,
        probes_fail: AtomicBool::new(false),
        list_calls: AtomicU64::new(0),
    });
    let (fs, dir) = core_for(remote.clone(), ttl, false);
    Setup {
        fs,
        remote,
        _dir: dir,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

async fn errno(fs: &ArtifactFs, path: &str) -> i32 {
    match resolve(fs, path).await {
        Ok(_) => 0,
        Err(e) => e.errno(),
    }
}

#[tokio::test]
async fn unknown_owners_exist_only_if_github_says_so_and_answers_are_kept() {
    let s = setup(true, HOUR);
    let calls = || s.remote.inner.owner_calls.load(Ordering::SeqCst);
    assert_eq!(errno(&s.fs, "no-such-owner").await, libc::ENOENT);
    assert_eq!(errno(&s.fs, "No-Such-Owner").await, libc::ENOENT);
    assert_eq!(calls(), 1, "the negative answer is kept");
    assert_eq!(errno(&s.fs, "someone").await, 0);
    assert_eq!(errno(&s.fs, "someone").await, 0);
    assert_eq!(calls(), 2, "the positive answer is kept");
    // An owner named on the command line is not asked about.
    assert_eq!(errno(&s.fs, "OCTO").await, 0);
    assert_eq!(calls(), 2);
    assert_eq!(
        names(&s.fs, "").await,
        vec!["octo"],
        "only named owners are listed"
    );
}

#[tokio::test]
async fn a_missing_repository_is_remembered_for_the_ttl() {
    let s = setup(true, HOUR);
    let before = s.remote.list_calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(errno(&s.fs, "someone/missing").await, libc::ENOENT);
    }
    assert_eq!(s.remote.list_calls.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn a_stale_listing_is_served_while_one_refresh_runs() {
    // TTL zero: every listing is stale as soon as it is made.
    let s = setup(true, Duration::ZERO);
    let guard = Duration::from_secs(30);
    assert_eq!(names(&s.fs, "octo/hello/runs").await, vec!["100", "101"]);
    let first = s.remote.list_calls.load(Ordering::SeqCst);
    // The API hangs from now on: callers are answered from the stale listing at once, and
    // only one refresh is started however many callers come.
    s.remote.gated.store(true, Ordering::SeqCst);
    s.remote
        .inner
        .add(9, "new", 102, "main", 9, sample_zip(), ArtifactKind::Zip);
    for _ in 0..5 {
        let got = tokio::time::timeout(guard, names(&s.fs, "octo/hello/runs"))
            .await
            .expect("a caller waited on a refresh although a listing existed");
        assert_eq!(got, vec!["100", "101"]);
    }
    tokio::task::yield_now().await;
    assert_eq!(s.remote.list_calls.load(Ordering::SeqCst) - first, 1);
    // The API answers again: the refresh lands, and the next caller sees the new run.
    s.remote.permits.add_permits(1);
    let mut seen = Vec::new();
    for _ in 0..1000 {
        seen = names(&s.fs, "octo/hello/runs").await;
        if seen.len() == 3 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, vec!["100", "101", "102"]);
}

#[tokio::test]
async fn without_a_token_no_zip_or_raw_probe_is_made() {
    let s = setup(false, HOUR);
    for _ in 0..3 {
        for run in ["100", "101"] {
            names(&s.fs, &format!("octo/hello/runs/{run}")).await;
        }
    }
    assert_eq!(s.remote.inner.kind_calls.load(Ordering::SeqCst), 0);
    // Every artifact shows as a zip artifact.
    assert_eq!(
        names(&s.fs, "octo/hello/runs/101").await,
        vec!["logs.zip", "notes.zip", "logs", "notes"]
    );
}

#[tokio::test]
async fn a_failed_probe_is_not_repeated_within_the_ttl() {
    let s = setup(true, HOUR);
    s.remote.probes_fail.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        names(&s.fs, "octo/hello/runs/101").await;
    }
    assert_eq!(
        s.remote.inner.kind_calls.load(Ordering::SeqCst),
        2,
        "one probe per artifact of the run, not one per listing"
    );
}

/// `n` artifacts `a0`, `a1`, ... (ids from 100), two per run (runs from 1); every fourth one
/// (`a0`, `a4`, ...) unzipped, the others [`sample_zip`].
fn two_per_run(n: u64) -> Arc<MemoryRemote> {
    let remote = Arc::new(MemoryRemote::default());
    for i in 0..n {
        let kind = if i % 4 == 0 {
            ArtifactKind::Raw { file_name: None }
        } else {
            ArtifactKind::Zip
        };
        let name = format!("a{i}");
        remote.add(100 + i, &name, 1 + i / 2, "main", 1, sample_zip(), kind);
    }
    remote
}

#[tokio::test]
async fn listing_runs_probes_every_artifact_a_few_at_a_time_in_the_background() {
    let remote = two_per_run(40);
    *remote.latency.lock().unwrap() = Some(Duration::from_millis(20));
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    assert_eq!(names(&fs, "octo/hello/runs").await.len(), 20);
    // No run directory was listed: the probes were started by listing runs/.
    tokio::time::timeout(Duration::from_secs(30), async {
        while remote.kind_calls.load(Ordering::SeqCst) < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every artifact probed in the background");
    let most = remote.kind_in_flight_max.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} probes at once");
    // Listing every run now costs no probe, and each artifact was probed once.
    for run in 1..=20u64 {
        let n = names(&fs, &format!("octo/hello/runs/{run}")).await;
        assert_eq!(
            n.len(),
            if run % 2 == 1 { 3 } else { 4 },
            "run {run}: {n:?}"
        );
    }
    assert_eq!(remote.kind_calls.load(Ordering::SeqCst), 40);
}

/// The blob reads `remote` answered for artifact `id`: (start, end).
fn reads_of(remote: &MemoryRemote, id: u64) -> Vec<(u64, u64)> {
    let reads = remote.blob_reads.lock().unwrap();
    reads
        .iter()
        .filter(|r| r.0 == id)
        .map(|r| (r.1, r.2))
        .collect()
}

#[tokio::test]
async fn listing_runs_reads_every_zip_central_directory_ahead_and_nothing_else() {
    let remote = two_per_run(12);
    let zip = sample_zip();
    *remote.latency.lock().unwrap() = Some(Duration::from_millis(5));
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    assert_eq!(names(&fs, "octo/hello/runs").await.len(), 6);
    let zips: Vec<u64> = (0..12u64).filter(|i| i % 4 != 0).map(|i| 100 + i).collect();
    tokio::time::timeout(Duration::from_secs(30), async {
        while zips.iter().any(|id| reads_of(&remote, *id).is_empty()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every zip's central directory read after listing runs/ alone");
    // Each zip: one read, of its tail (here the whole small archive: its tail is all of it).
    let len = zip.len() as u64;
    let tail = (len - tail_len_for(len), len);
    for id in &zips {
        assert_eq!(reads_of(&remote, *id), vec![tail], "artifact {id}");
    }
    for raw in [100, 104, 108] {
        assert_eq!(
            reads_of(&remote, raw),
            vec![],
            "raw artifact {raw} is not read"
        );
    }
    // Every artifact has been taken on: listing runs/ again starts nothing.
    assert!(fs.probes.claim_for_read_ahead(100..112).is_empty());
    // Listing the artifacts' directories now costs no blob read.
    let before = remote.blob_reads.lock().unwrap().len();
    for i in (0..12u64).filter(|i| i % 4 != 0) {
        let run = 1 + i / 2;
        let n = names(&fs, &format!("octo/hello/runs/{run}/a{i}")).await;
        assert_eq!(n, vec!["bin", "empty.txt", "logs", "report.txt"], "a{i}");
    }
    assert_eq!(remote.blob_reads.lock().unwrap().len(), before);
}

#[tokio::test]
async fn central_directories_are_read_ahead_newest_first_within_the_budget() {
    // Archives just over TAIL_LEN: each read ahead costs one full tail.
    let mut z = fake_github::zipgen::ZipBuilder::new();
    z.add_with(
        "blob.bin",
        &vec![7u8; TAIL_LEN as usize],
        fake_github::zipgen::EntryOptions {
            method: fake_github::zipgen::Method::Stored,
            ..Default::default()
        },
    );
    let zip = z.finish();
    assert_eq!(tail_len_for(zip.len() as u64), TAIL_LEN);
    let per_artifact = super::probes::read_ahead_cost(zip.len() as u64);
    let fit = (INDEX_READAHEAD_BUDGET / per_artifact) as usize;
    let total = fit + 20;
    let remote = Arc::new(MemoryRemote::default());
    for i in 0..total as u64 {
        remote.add(
            1000 + i,
            "a",
            1 + i,
            "main",
            1,
            zip.clone(),
            ArtifactKind::Zip,
        );
    }
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    let listing = fs.listing(0).await.unwrap();
    let repo = RepoRef::new("octo", "hello");
    let blobs = (listing.artifacts.iter())
        .map(|a| (a.id, fs.blob_ref(&repo, a)))
        .collect();
    fs.probes.read_ahead(&repo, blobs, &fs.data).await;
    // One pass probes at most the newest READ_AHEAD_REQUESTS artifacts (the cap itself:
    // read_ahead_spends_its_cap_per_listing_...).
    let probed = READ_AHEAD_REQUESTS.min(total as u64);
    assert_eq!(remote.kind_calls.load(Ordering::SeqCst), probed);
    let read: Vec<u64> = (0..total as u64)
        .filter(|i| !reads_of(&remote, 1000 + i).is_empty())
        .collect();
    let newest: Vec<u64> = (20..total as u64).collect();
    assert_eq!(
        read, newest,
        "the newest {fit} artifacts, not the 20 oldest"
    );
    let bytes = remote.blob_bytes.load(Ordering::SeqCst);
    assert!(bytes <= INDEX_READAHEAD_BUDGET, "{bytes} bytes read ahead");
}

/// Waits until the background read-ahead passes have ended; the probes made so far.
async fn settle(fs: &ArtifactFs, remote: &MemoryRemote) -> u64 {
    while fs.probes.passes_running() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    remote.kind_calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn read_ahead_spends_its_cap_per_listing_and_a_tenth_of_the_quota_and_none_below_a_fifth() {
    let remote = Arc::new(MemoryRemote::default());
    for i in 0..600u64 {
        let day = 1 + (i / 30) as u32;
        remote.add(
            1 + i,
            "a",
            1 + i / 2,
            "main",
            day,
            sample_zip(),
            ArtifactKind::Zip,
        );
    }
    // 3000 left of 5000: a tenth is 300 for this window.
    remote.quota.rate_limit_seen(3000, Some(5000), Some(1));
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(60), false);
    names(&fs, "octo/hello/runs").await;
    let first = settle(&fs, &remote).await;
    assert_eq!(
        first, READ_AHEAD_REQUESTS,
        "one listing: its cap, newest first"
    );
    assert!(fs.probes.known(600).is_some() && fs.probes.known(1).is_none());
    // Listing again takes on the rest, until the window's tenth (300) is spent.
    names(&fs, "octo/hello/runs").await;
    assert_eq!(
        settle(&fs, &remote).await,
        300,
        "a tenth of the remaining quota"
    );
    names(&fs, "octo/hello/runs").await;
    assert_eq!(settle(&fs, &remote).await, 300);
    // People's requests still go: listing an unprobed run probes its artifacts.
    let n = names(&fs, "octo/hello/runs/1").await;
    assert!(n.contains(&"a.zip".to_string()), "{n:?}");
    assert_eq!(remote.kind_calls.load(Ordering::SeqCst), 302);

    // A new window with less than a fifth of the limit left: no speculation at all.
    remote.quota.rate_limit_seen(999, Some(5000), Some(2));
    names(&fs, "octo/hello/runs").await;
    assert_eq!(settle(&fs, &remote).await, 302);
    let n = names(&fs, "octo/hello/runs/2").await;
    assert!(n.contains(&"a.zip".to_string()), "{n:?}");
    assert_eq!(
        remote.kind_calls.load(Ordering::SeqCst),
        304,
        "a user's listing still probes"
    );
}
