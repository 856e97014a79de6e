//! The GitHub client against the fake GitHub server: endpoints, pagination, headers, the
//! download redirect, Range reads, URL refresh, retries, rate limits and errors.

use std::time::Duration;

use artifactfs::github::blob::{BlobClient, BlobHandle};
use artifactfs::github::client::{ClientConfig, GitHubClient};
use artifactfs::github::retry::RetryPolicy;
use artifactfs::github::{ApiError, ArtifactKind, RepoRef};
use fake_github::zipgen::ZipBuilder;
use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub, Faults, TokenAccess};

const TOKEN: &str = "test-token";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

fn client(gh: &FakeGitHub, token: Option<&str>) -> GitHubClient {
    let mut cfg = ClientConfig::new(
        url::Url::parse(&gh.api_url()).unwrap(),
        token.map(str::to_string),
    );
    cfg.retry = fast_retry();
    GitHubClient::new(cfg).unwrap()
}

fn handle(gh: &FakeGitHub, api: &GitHubClient, id: u64) -> BlobHandle {
    let _ = gh;
    BlobHandle::new(
        api.clone(),
        BlobClient::with_retry(fast_retry()),
        repo(),
        id,
    )
}

fn repo() -> RepoRef {
    RepoRef::new("octo-org", "hello")
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn add_raw(gh: &FakeGitHub, name: &str, data: Vec<u8>) -> u64 {
    gh.add_artifact(FakeArtifactSpec::raw(
        "octo-org", "hello", name, 1, "data.bin", data,
    ))
}

#[test]
fn lists_every_page_with_the_documented_headers() {
    let gh = FakeGitHub::start(FakeConfig::default());
    for i in 0..250u64 {
        gh.add_artifact(FakeArtifactSpec::zip(
            "octo-org",
            "hello",
            &format!("a{i}"),
            100 + i % 3,
            vec![0; 22],
        ));
    }
    let api = client(&gh, Some(TOKEN));
    let rt = rt();
    let all = rt.block_on(api.list_artifacts(&repo(), None)).unwrap();
    assert_eq!(all.len(), 250);
    let mut ids: Vec<u64> = all.iter().map(|a| a.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250);
    let c = gh.counters();
    assert_eq!(c.endpoint("list_repo"), 3, "per_page=100: three pages");
    // The documented headers on every request: the token, Accept, X-GitHub-Api-Version and a
    // User-Agent (without which GitHub answers 403).
    assert_eq!(c.api_auth_headers_seen, 3);
    assert_eq!(c.api_without_documented_headers, 0);
    assert_eq!(
        c.api_user_agents.iter().collect::<Vec<_>>(),
        vec![&format!("artifactfs/{}", env!("CARGO_PKG_VERSION"))]
    );
    assert_eq!(c.refused_no_user_agent, 0);

    // The name filter and the run listing.
    let one = rt
        .block_on(api.list_artifacts(&repo(), Some("a7")))
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].name, "a7");
    let run = rt.block_on(api.list_run_artifacts(&repo(), 101)).unwrap();
    assert_eq!(run.len(), 83);
    assert!(run.iter().all(|a| a.run_id() == 101));
    let got = rt.block_on(api.get_artifact(&repo(), one[0].id)).unwrap();
    assert_eq!(got, one[0]);
    assert!(got.sha256_hex().is_some());

    // Unchanged listings revalidate to 304 and give the same answer: every page, although a
    // 304 carries no Link (the next page's URL is kept with each page's ETag).
    let before = gh.counters().not_modified;
    let again = rt.block_on(api.list_artifacts(&repo(), None)).unwrap();
    assert_eq!(again.len(), all.len(), "pages lost on revalidation");
    assert!(again == all);
    assert_eq!(gh.counters().not_modified - before, 3);
}

#[test]
fn a_renamed_repository_is_followed_on_the_api_origin_only() {
    let gh = FakeGitHub::start(FakeConfig::default());
    for i in 0..150u64 {
        add_raw(&gh, &format!("r{i}"), vec![i as u8; 10]);
    }
    let data = body(5000);
    let id = add_raw(&gh, "big", data.clone());
    let doomed = add_raw(&gh, "doomed", vec![1; 10]);
    gh.rename_repo("octo-org/hello", "new-owner/renamed");
    let api = client(&gh, Some(TOKEN));
    let rt = rt();
    // The old name answers 301 to /repositories/ID/...: followed, with the token; both
    // pages come (the second by its Link under /repositories/ID).
    let all = rt.block_on(api.list_artifacts(&repo(), None)).unwrap();
    assert_eq!(all.len(), 152);
    let c = gh.counters();
    assert_eq!(c.endpoint("list_repo"), 3, "one 301, then two pages");
    assert_eq!(
        c.api_auth_headers_seen, 3,
        "the token is kept on the API origin"
    );
    // The move is remembered: the next listing goes straight to the new place.
    gh.reset_counters();
    assert_eq!(
        rt.block_on(api.list_artifacts(&repo(), None))
            .unwrap()
            .len(),
        152
    );
    assert_eq!(gh.counters().endpoint("list_repo"), 2);
    // Downloads: 301, then the 302 to the blob host; DELETE: 307, method kept.
    let h = handle(&gh, &api, id);
    assert_eq!(
        rt.block_on(h.read_range(100, 1000))
            .unwrap()
            .into_bytes()
            .unwrap(),
        &data[100..1100]
    );
    rt.block_on(api.delete_artifact(&repo(), doomed)).unwrap();
    assert_eq!(gh.counters().deleted_ids, vec![doomed]);

    // A redirect to another origin is not followed: the same path is asked of --api-url
    // (here: hello's 151 artifacts left after the delete), so the other host sees nothing and
    // never the token.
    let other = FakeGitHub::start(FakeConfig::default());
    add_raw(&other, "elsewhere", vec![2; 10]);
    gh.add_repo("octo-org", "moved-away", false);
    gh.redirect_repo_elsewhere(
        "octo-org/moved-away",
        &format!("{}/repos/octo-org/hello", other.api_url()),
    );
    let away = RepoRef::new("octo-org", "moved-away");
    gh.reset_counters();
    let listed = rt.block_on(api.list_artifacts(&away, None)).unwrap();
    assert_eq!(
        listed.len(),
        151,
        "hello's artifacts, asked of the API origin"
    );
    assert_eq!(
        gh.counters().api_auth_headers_seen,
        4,
        "the 301 away, hello's own 301 to /repositories/ID, two pages"
    );
    assert_eq!(other.counters().api_requests, 0);
    assert!(other.counters().api_tokens_seen.is_empty());
}

#[test]
fn reads_ranges_without_ever_sending_the_token_to_the_blob_host() {
    let gh = FakeGitHub::start(FakeConfig::default());
    let data = body(300_000);
    let mut z = ZipBuilder::new();
    z.add("x.txt", b"hello");
    let zip = z.finish();
    let raw = add_raw(&gh, "raw", data.clone());
    let zid = gh.add_artifact(FakeArtifactSpec::zip(
        "octo-org",
        "hello",
        "z",
        1,
        zip.clone(),
    ));
    let api = client(&gh, Some(TOKEN));
    let rt = rt();
    let h = handle(&gh, &api, raw);
    rt.block_on(async {
        let url = api.download_url(&repo(), raw).await.unwrap();
        assert!(!api.on_api_origin(&url), "redirects to the blob host");
        assert_eq!(
            h.read_range(0, 10).await.unwrap().into_bytes().unwrap(),
            &data[..10]
        );
        assert_eq!(
            h.read_range(123_456, 70_000)
                .await
                .unwrap()
                .into_bytes()
                .unwrap(),
            &data[123_456..193_456]
        );
        // Past the end: what there is.
        assert_eq!(
            h.read_range(299_990, 100)
                .await
                .unwrap()
                .into_bytes()
                .unwrap(),
            &data[299_990..]
        );
        assert!(
            h.read_range(400_000, 10)
                .await
                .unwrap()
                .into_bytes()
                .unwrap()
                .is_empty()
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("blob");
        let mut f = tokio::fs::File::create(&p).await.unwrap();
        let (n, sha) = h.download_to(&mut f).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(
            std::fs::read(&p).unwrap() == data,
            "downloaded bytes differ"
        );
        use sha2::Digest;
        assert_eq!(sha, hex::encode(sha2::Sha256::digest(&data)));
        assert_eq!(
            h.kind().await.unwrap(),
            ArtifactKind::Raw {
                file_name: Some("data.bin".into())
            }
        );
        let hz = handle(&gh, &api, zid);
        assert_eq!(hz.kind().await.unwrap(), ArtifactKind::Zip);
    });
    let c = gh.counters();
    assert_eq!(c.blob_auth_headers_seen, 0);
    assert!(c.blob_requests >= 5);
    // The signed URL is reused while young: one redirect per artifact.
    assert_eq!(c.endpoint("download"), 3, "{:?}", c.by_endpoint);
}

#[test]
fn survives_a_blob_host_that_ignores_range() {
    let cfg = FakeConfig {
        faults: Faults {
            no_range: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let gh = FakeGitHub::start(cfg);
    let data = body(200_000);
    let id = add_raw(&gh, "raw", data.clone());
    let api = client(&gh, Some(TOKEN));
    let h = handle(&gh, &api, id);
    let rt = rt();
    // The ranged read learns that Range is ignored; its answer (the whole blob) is kept for
    // the one download, which reads it: one request, the blob's bytes once.
    assert!(
        rt.block_on(h.read_range(150_000, 1000))
            .unwrap()
            .into_bytes()
            .is_none()
    );
    assert!(h.ranges_ignored());
    let got = rt.block_on(async {
        let mut body = h.stream_whole();
        let mut got = Vec::new();
        while let Some(c) = body.next_chunk().await.unwrap() {
            got.extend_from_slice(&c);
        }
        got
    });
    assert!(got == data);
    let c = gh.counters();
    assert_eq!(c.blob_requests, 1, "{c:?}");
    assert_eq!(c.blob_bytes_total, data.len() as u64);
}

#[test]
fn refreshes_an_expired_url_in_the_middle_of_reading() {
    let cfg = FakeConfig {
        url_ttl: Duration::from_secs(1),
        ..Default::default()
    };
    let gh = FakeGitHub::start(cfg);
    let data = body(50_000);
    let id = add_raw(&gh, "raw", data.clone());
    let api = client(&gh, Some(TOKEN));
    let h = handle(&gh, &api, id);
    let rt = rt();
    assert_eq!(
        rt.block_on(h.read_range(0, 100))
            .unwrap()
            .into_bytes()
            .unwrap(),
        &data[..100]
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        rt.block_on(h.read_range(1000, 100))
            .unwrap()
            .into_bytes()
            .unwrap(),
        &data[1000..1100]
    );
    let c = gh.counters();
    assert_eq!(
        c.endpoint("download"),
        2,
        "one fresh redirect after the 403"
    );
}

#[test]
fn retries_server_errors_and_truncated_bodies() {
    let cfg = FakeConfig {
        faults: Faults {
            api_fail_every: 3,
            blob_truncate_every: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let gh = FakeGitHub::start(cfg);
    for i in 0..150 {
        add_raw(&gh, &format!("r{i}"), vec![1; 10]);
    }
    let data = body(1 << 20);
    let id = add_raw(&gh, "big", data.clone());
    let api = client(&gh, Some(TOKEN));
    let rt = rt();
    for _ in 0..3 {
        let all = rt.block_on(api.list_artifacts(&repo(), None)).unwrap();
        assert_eq!(all.len(), 151);
    }
    let h = handle(&gh, &api, id);
    for i in 0..8u64 {
        let off = i * 100_000;
        assert_eq!(
            rt.block_on(h.read_range(off, 50_000))
                .unwrap()
                .into_bytes()
                .unwrap(),
            &data[off as usize..off as usize + 50_000]
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("blob");
    let (n, _) = rt
        .block_on(async {
            let mut f = tokio::fs::File::create(&p).await.unwrap();
            h.download_to(&mut f).await
        })
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(
        std::fs::read(&p).unwrap() == data,
        "downloaded bytes differ"
    );
}

#[test]
fn waits_out_rate_limits() {
    let gh = FakeGitHub::start(FakeConfig::default());
    add_raw(&gh, "r", vec![1; 10]);
    gh.set_faults(Faults {
        api_429_every: 2,
        ..Default::default()
    });
    let api = client(&gh, Some(TOKEN));
    let rt = rt();
    for _ in 0..3 {
        assert_eq!(
            rt.block_on(api.list_artifacts(&repo(), None))
                .unwrap()
                .len(),
            1
        );
    }
    gh.set_faults(Faults {
        rate_limit_exhausted_for: Some(Duration::from_secs(1)),
        ..Default::default()
    });
    let t = std::time::Instant::now();
    assert_eq!(
        rt.block_on(api.list_artifacts(&repo(), None))
            .unwrap()
            .len(),
        1
    );
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    // Past the budget: an error, not a hang.
    gh.set_faults(Faults {
        rate_limit_exhausted_for: Some(Duration::from_secs(600)),
        ..Default::default()
    });
    let t = std::time::Instant::now();
    let r = rt.block_on(api.list_artifacts(&repo(), None));
    assert!(matches!(r, Err(ApiError::RateLimited(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn deletes_once_and_maps_errors() {
    let mut cfg = FakeConfig::default();
    cfg.tokens.insert("reader".into(), TokenAccess::ReadOnly);
    let gh = FakeGitHub::start(cfg);
    let a = add_raw(&gh, "a", vec![1; 10]);
    let b = add_raw(&gh, "b", vec![1; 10]);
    let old = add_raw(&gh, "old", vec![1; 10]);
    gh.expire_artifact(old);
    gh.add_repo("octo-org", "secret", true);
    let api = client(&gh, Some(TOKEN));
    let rt = rt();
    rt.block_on(async {
        api.delete_artifact(&repo(), a).await.unwrap();
        assert!(matches!(
            api.delete_artifact(&repo(), a).await,
            Err(ApiError::NotFound(_))
        ));
        let reader = client(&gh, Some("reader"));
        assert!(matches!(
            reader.delete_artifact(&repo(), b).await,
            Err(ApiError::Forbidden(_))
        ));
        let bad = client(&gh, Some("wrong"));
        assert!(matches!(
            bad.list_artifacts(&repo(), None).await,
            Err(ApiError::Unauthorized(_))
        ));
        let anon = client(&gh, None);
        // b and the expired one: the client returns what the API lists.
        assert_eq!(anon.list_artifacts(&repo(), None).await.unwrap().len(), 2);
        // Without a token no download redirect is asked for (GitHub would answer 401).
        let downloads = gh.counters().endpoint("download");
        assert!(matches!(
            anon.download_url(&repo(), b).await,
            Err(ApiError::NeedsToken(_))
        ));
        assert_eq!(gh.counters().endpoint("download"), downloads);
        assert!(matches!(
            anon.list_artifacts(&RepoRef::new("octo-org", "secret"), None)
                .await,
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            api.download_url(&repo(), old).await,
            Err(ApiError::Gone(_))
        ));
        assert!(matches!(
            api.get_artifact(&RepoRef::new("nobody", "nothing"), 1)
                .await,
            Err(ApiError::NotFound(_))
        ));
    });
    assert_eq!(gh.counters().deleted_ids, vec![a]);

    // A DELETE that fails with 500 after doing its work: the retry's 404 counts as done.
    gh.set_faults(Faults {
        delete_fail_every: 1,
        ..Default::default()
    });
    rt.block_on(api.delete_artifact(&repo(), b)).unwrap();
    assert_eq!(gh.counters().deleted_ids, vec![a, b]);
}
