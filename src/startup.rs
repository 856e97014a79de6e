//! Opening the core from a [`CoreConfig`]: the GitHub client, the check that every
//! repository named lists (so a bad token or a missing repository fails before anything is
//! served, with one clear line), the disk cache and the [`ArtifactFs`] primed with those
//! listings. What a mount, the demo and `serve` all start with.

use std::sync::Arc;

use anyhow::{Context, anyhow};

use crate::cache::DiskCache;
use crate::config::CoreConfig;
use crate::filesystem::ArtifactFs;
use crate::github::blob::BlobClient;
use crate::github::client::{ClientConfig, GitHubClient};
use crate::github::{ApiError, Artifact, GitHubRemote, RepoRef};
use crate::stats::Stats;

/// The multi-threaded runtime every request is answered on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("artifactfs-io")
        .build()
}

/// Returns when the process is asked to stop: SIGINT (Ctrl-C) or SIGTERM. A signal that
/// can't be listened for is simply never heard; the other still stops.
pub async fn stop_requested() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let int = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = int => {}
        () = term => {}
    }
}

/// Builds the core, failing fast when a named repository cannot be listed.
pub fn open_core(
    cfg: &CoreConfig,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Arc<ArtifactFs>> {
    raise_open_files_limit();
    let stats = Arc::new(Stats::default());
    if let Some(t) = &cfg.token {
        stats.warnings().hide(t);
    }
    let api = client(cfg, stats.clone())?;
    let listings = rt.block_on(list_named_repos(&api, cfg))?;
    let cache = Arc::new(
        DiskCache::open_with(&cfg.cache_dir, cfg.cache_limits)
            .with_context(|| format!("cache dir {}", cfg.cache_dir.display()))?,
    );
    let remote = Arc::new(GitHubRemote::new(api, BlobClient::new(), stats.clone()));
    let fs = Arc::new(ArtifactFs::new(remote, cache, cfg.fs_config(), stats));
    for (repo, all) in listings {
        fs.prime_listing(&repo, all);
    }
    Ok(fs)
}

fn client(cfg: &CoreConfig, stats: Arc<Stats>) -> anyhow::Result<GitHubClient> {
    let mut c = ClientConfig::new(cfg.api_url.clone(), cfg.token.clone());
    c.stats = stats;
    c.user_agent = format!("artifactfs/{}", env!("CARGO_PKG_VERSION"));
    c.retry.max_rate_limit_wait = cfg.max_rate_limit_wait;
    GitHubClient::new(c).map_err(|e| anyhow!("GitHub client: {e}"))
}

/// Every repository named on the command line must be listable.
async fn list_named_repos(
    api: &GitHubClient,
    cfg: &CoreConfig,
) -> anyhow::Result<Vec<(RepoRef, Vec<Artifact>)>> {
    let mut listings = Vec::new();
    for repo in &cfg.repos {
        let all = api
            .list_artifacts(repo, None)
            .await
            .map_err(|e| anyhow!(describe_api_error(repo, &cfg.api_url, &e)))?;
        listings.push((repo.clone(), all));
    }
    Ok(listings)
}

fn describe_api_error(repo: &RepoRef, api_url: &url::Url, e: &ApiError) -> String {
    match e {
        ApiError::Unauthorized(_) => {
            "token rejected by GitHub (401 Bad credentials): check GH_TOKEN / GITHUB_TOKEN / `gh auth login`".to_string()
        }
        ApiError::NotFound(_) => format!("repository {repo} not found (or not visible to this token)"),
        ApiError::Forbidden(m) => format!("access to {repo} forbidden (403): {m}"),
        ApiError::Network(m) => format!("GitHub API at {api_url} unreachable: {m}"),
        other => format!("listing artifacts of {repo} failed: {other}"),
    }
}

/// Each artifact touched keeps its block files open (two descriptors): let a big repository
/// use as many as the hard limit allows rather than fail at the default soft 1024.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::debug!("could not raise the open-files limit");
            }
        }
    }
}
