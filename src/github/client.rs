//! The typed REST client for the API host: the artifact endpoints (list by repo and by run,
//! get, delete, the download redirect) and `GET /users/{owner}`. Owns the token (sent only to
//! the API origin; without one no download redirect is ever asked for), the headers GitHub
//! asks for, redirects (301/302/307/308 followed on the API origin only, a few hops, token
//! kept: a renamed repository keeps working; a redirect elsewhere is asked of the API origin
//! instead, same path), pagination
//! (`per_page=100`, `Link: rel="next"` followed only on the API origin), conditional requests
//! (`If-None-Match` → 304 reuses the page's body *and its next link*, and does not count
//! against the rate limit), retries with backoff, and rate-limit waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use super::error::ApiError;
use super::link;
pub use super::redact::{error_chain, redact, scrub_queries};
use super::retry::{RateLimit, RetryPolicy, note_quota, rate_limit};
use super::runs::{
    Download, Job, JobList, PullRequest, Run, RunFilter, RunList, RunsPage, Workflow, WorkflowList,
};
use super::types::{Artifact, ArtifactList, RepoRef};
use crate::stats::Stats;

mod transport;

use transport::{Cached, Redirects, location};

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const API_VERSION: &str = "2022-11-28";
/// GitHub's maximum page size.
pub const PER_PAGE: u32 = 100;
/// Redirects followed for one request, at most.
pub const MAX_REDIRECTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub api_url: Url,
    pub token: Option<String>,
    pub user_agent: String,
    /// `X-GitHub-Api-Version`; `None` sends none (old GHES releases reject unknown versions).
    pub api_version: Option<String>,
    pub connect_timeout: Duration,
    /// Per-request timeout for API calls (not blob transfers).
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests to the API host in flight at once.
    pub max_in_flight: usize,
    /// Where requests and the rate limit are counted.
    pub stats: Arc<Stats>,
}

impl ClientConfig {
    pub fn new(api_url: Url, token: Option<String>) -> Self {
        ClientConfig {
            api_url,
            token,
            user_agent: format!("artifactfs/{}", env!("CARGO_PKG_VERSION")),
            api_version: Some(API_VERSION.to_string()),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_in_flight: 16,
            stats: Default::default(),
        }
    }
}

/// A cheap-to-clone handle on one API host.
#[derive(Clone)]
pub struct GitHubClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `api_url` with a trailing slash, so relative paths join under a GHES `/api/v3` prefix.
    base: Url,
    token: Option<HeaderValue>,
    retry: RetryPolicy,
    in_flight: Semaphore,
    stats: Arc<Stats>,
    /// The last answer per GET URL, for `If-None-Match`.
    pages: Mutex<HashMap<String, Cached>>,
    /// Permanent redirects seen (301/308 on the API origin): asked URL → where it moved.
    moved: Mutex<HashMap<String, Url>>,
    /// Whether "downloads need a token" has been logged (it is logged once).
    warned_no_token: AtomicBool,
}

impl GitHubClient {
    pub fn new(cfg: ClientConfig) -> Result<GitHubClient, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        if let Some(v) = &cfg.api_version {
            headers.insert(
                "x-github-api-version",
                HeaderValue::from_str(v).map_err(|e| ApiError::Protocol(e.to_string()))?,
            );
        }
        let http = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .default_headers(headers)
            // The download redirect is taken by hand: the token must never follow it.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            .build()
            .map_err(|e| ApiError::Protocol(format!("building HTTP client: {e}")))?;
        let mut base = cfg.api_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.set_query(None);
        let token = match &cfg.token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| ApiError::Protocol("token has invalid characters".into()))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(GitHubClient {
            inner: Arc::new(Inner {
                http,
                base,
                token,
                retry: cfg.retry.clone(),
                in_flight: Semaphore::new(cfg.max_in_flight.max(1)),
                stats: cfg.stats.clone(),
                pages: Mutex::new(HashMap::new()),
                moved: Mutex::new(HashMap::new()),
                warned_no_token: AtomicBool::new(false),
            }),
        })
    }

    pub fn has_token(&self) -> bool {
        self.inner.token.is_some()
    }

    /// `{api_url}/repos/{owner}/{repo}/actions/{rest}`.
    fn repo_url(&self, repo: &RepoRef, rest: &str) -> Url {
        let mut url = self.inner.base.clone();
        {
            let mut segs = url.path_segments_mut().expect("http(s) URL has a path");
            segs.pop_if_empty()
                .extend(["repos", &repo.owner, &repo.name, "actions"]);
            segs.extend(rest.split('/'));
        }
        url
    }

    /// `url`'s path and query on the API origin (under `--api-url`'s path prefix, e.g. GHES's
    /// `/api/v3`, unless the path already starts with it): how a URL another host gave is
    /// asked instead of followed.
    pub fn on_api(&self, url: &Url) -> Url {
        let base = &self.inner.base;
        let prefix = base.path().trim_end_matches('/');
        let path = url.path();
        let under = path == prefix || path.starts_with(&format!("{prefix}/"));
        let mut out = base.clone();
        out.set_path(&if under {
            path.to_string()
        } else {
            format!("{prefix}{path}")
        });
        out.set_query(url.query());
        out
    }

    /// Is `url` on the API origin (scheme, host, port)? Only then may it carry the token.
    pub fn on_api_origin(&self, url: &Url) -> bool {
        url.origin() == self.inner.base.origin()
    }

    /// Every artifact of the repository, all pages (`name` filters by exact name).
    pub async fn list_artifacts(
        &self,
        repo: &RepoRef,
        name: Option<&str>,
    ) -> Result<Vec<Artifact>, ApiError> {
        let mut url = self.repo_url(repo, "artifacts");
        if let Some(n) = name {
            url.query_pairs_mut().append_pair("name", n);
        }
        self.list_all(url).await
    }

    /// Every artifact of one workflow run, all pages.
    pub async fn list_run_artifacts(
        &self,
        repo: &RepoRef,
        run_id: u64,
    ) -> Result<Vec<Artifact>, ApiError> {
        self.list_all(self.repo_url(repo, &format!("runs/{run_id}/artifacts")))
            .await
    }

    async fn list_all(&self, url: Url) -> Result<Vec<Artifact>, ApiError> {
        let mut out: Vec<Artifact> = self
            .list_pages(url, |body| {
                let l: ArtifactList = serde_json::from_slice(body)?;
                Ok((l.total_count, l.artifacts))
            })
            .await?;
        // Pages can shift while we walk them (an artifact created meanwhile): no duplicates.
        let mut seen = std::collections::HashSet::new();
        out.retain(|a| seen.insert(a.id));
        Ok(out)
    }

    /// Every item of a paged list (`per_page=100`, `Link: rel="next"` followed on the API
    /// origin), each page parsed by `parse` into (total_count, items).
    async fn list_pages<T>(
        &self,
        mut url: Url,
        parse: impl Fn(&[u8]) -> Result<(u64, Vec<T>), serde_json::Error>,
    ) -> Result<Vec<T>, ApiError> {
        url.query_pairs_mut()
            .append_pair("per_page", &PER_PAGE.to_string());
        let first = url.clone();
        let mut out: Vec<T> = Vec::new();
        let mut page = 1u64;
        let mut total: Option<u64> = None;
        loop {
            let answer = self.get_json(&url).await?;
            let (count, items) = parse(&answer.body)
                .map_err(|e| ApiError::Protocol(format!("list from {}: {e}", redact(&url))))?;
            let got = items.len();
            total.get_or_insert(count);
            out.extend(items);
            let Some(next) = answer.next else { break };
            // Stop on an empty page or once past what total_count promised (no endless loop
            // on a server whose Link never ends).
            if got == 0 || page > total.unwrap_or(0) / u64::from(PER_PAGE) + 1 {
                break;
            }
            page += 1;
            url = match Url::parse(&next).or_else(|_| url.join(&next)) {
                Ok(u) if self.on_api_origin(&u) => u,
                _ => {
                    // A Link elsewhere is not followed: build the next page from --api-url.
                    tracing::warn!("Link rel=next is not on the API origin; paging by number");
                    let mut u = first.clone();
                    u.query_pairs_mut().append_pair("page", &page.to_string());
                    u
                }
            };
        }
        Ok(out)
    }

    /// Page `page` (from 1) of the repository's runs, newest first, 100 a page, filtered by
    /// `filter`; revalidated with `If-None-Match` (a 304 costs no quota).
    pub async fn runs_page(
        &self,
        repo: &RepoRef,
        filter: &RunFilter,
        page: u32,
    ) -> Result<RunsPage, ApiError> {
        let mut url = self.repo_url(repo, "runs");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in filter.pairs() {
                q.append_pair(k, v);
            }
            q.append_pair("per_page", &PER_PAGE.to_string());
            if page > 1 {
                q.append_pair("page", &page.to_string());
            }
        }
        let answer = self.get_json(&url).await?;
        let list: RunList = serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Protocol(format!("run list from {}: {e}", redact(&url))))?;
        let seen = u64::from(page.saturating_sub(1)) * u64::from(PER_PAGE)
            + list.workflow_runs.len() as u64;
        Ok(RunsPage {
            more: answer.next.is_some()
                && !list.workflow_runs.is_empty()
                && seen < list.total_count,
            runs: list.workflow_runs,
        })
    }

    /// One run (`GET .../actions/runs/{id}`), revalidated with `If-None-Match`.
    pub async fn get_run(&self, repo: &RepoRef, id: u64) -> Result<Run, ApiError> {
        let url = self.repo_url(repo, &format!("runs/{id}"));
        let answer = self.get_json(&url).await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Protocol(format!("run from {}: {e}", redact(&url))))
    }

    /// Every workflow of the repository (`GET .../actions/workflows`, all pages).
    pub async fn list_workflows(&self, repo: &RepoRef) -> Result<Vec<Workflow>, ApiError> {
        self.list_pages(self.repo_url(repo, "workflows"), |body| {
            let l: WorkflowList = serde_json::from_slice(body)?;
            Ok((l.total_count, l.workflows))
        })
        .await
    }

    /// A pull request (`GET /repos/{o}/{r}/pulls/{n}`), revalidated with `If-None-Match`.
    pub async fn get_pull(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, ApiError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("http(s) URL has a path")
            .pop_if_empty()
            .extend([
                "repos",
                &repo.owner,
                &repo.name,
                "pulls",
                &number.to_string(),
            ]);
        let answer = self.get_json(&url).await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Protocol(format!("pull request from {}: {e}", redact(&url))))
    }

    pub async fn get_artifact(&self, repo: &RepoRef, id: u64) -> Result<Artifact, ApiError> {
        let url = self.repo_url(repo, &format!("artifacts/{id}"));
        let answer = self.get_json(&url).await?;
        serde_json::from_slice(&answer.body)
            .map_err(|e| ApiError::Protocol(format!("artifact from {}: {e}", redact(&url))))
    }

    /// Whether a user or organisation called `login` exists (`GET /users/{login}`: 200 or
    /// 404).
    pub async fn owner_exists(&self, login: &str) -> Result<bool, ApiError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("http(s) URL has a path")
            .pop_if_empty()
            .extend(["users", login]);
        match self.get_json(&url).await {
            Ok(_) => Ok(true),
            Err(ApiError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE .../artifacts/{id}`: 204. A retry that answers 404 means an earlier attempt
    /// did delete it, so it counts as done.
    pub async fn delete_artifact(&self, repo: &RepoRef, id: u64) -> Result<(), ApiError> {
        let url = self.repo_url(repo, &format!("artifacts/{id}"));
        let mut retried = false;
        let result = self
            .send(Method::DELETE, &url, None, Redirects::Follow, |_| {
                retried = true;
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(ApiError::NotFound(_)) if retried => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The signed, short-lived blob URL the download endpoint redirects to (no blob bytes).
    /// Without a token nothing is asked (GitHub answers 401 even for public repositories):
    /// [`ApiError::NeedsToken`], logged once.
    pub async fn download_url(&self, repo: &RepoRef, id: u64) -> Result<Url, ApiError> {
        self.download_url_of(repo, &Download::Artifact(id)).await
    }

    /// The jobs of run `run`'s latest attempt (`GET .../runs/{id}/jobs`, every page).
    pub async fn run_jobs(&self, repo: &RepoRef, run: u64) -> Result<Vec<Job>, ApiError> {
        self.list_pages(self.repo_url(repo, &format!("runs/{run}/jobs")), |body| {
            let l: JobList = serde_json::from_slice(body)?;
            Ok((l.total_count, l.jobs))
        })
        .await
    }

    /// The blob URL a download redirect (an artifact's, a run's logs, a job's log) gives;
    /// see [`GitHubClient::download_url`].
    pub async fn download_url_of(
        &self,
        repo: &RepoRef,
        target: &Download,
    ) -> Result<Url, ApiError> {
        if !self.has_token() {
            if !self.inner.warned_no_token.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "downloads need a token: set GH_TOKEN (or GITHUB_TOKEN, or run `gh auth \
                     login`); without one artifacts can be listed but not read"
                );
            }
            return Err(ApiError::NeedsToken(target.to_string()));
        }
        let url = self.repo_url(repo, &target.path());
        let resp = self
            .send(Method::GET, &url, None, Redirects::Download, |_| {})
            .await?;
        let status = resp.status();
        if !status.is_redirection() {
            return Err(ApiError::Protocol(format!(
                "download of {target}: expected a redirect, got {status}"
            )));
        }
        let target = location(&resp, resp.url())
            .map_err(|e| ApiError::Protocol(format!("download of {target}: {e}")))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(api: &str) -> GitHubClient {
        GitHubClient::new(ClientConfig::new(
            Url::parse(api).unwrap(),
            Some("t".into()),
        ))
        .unwrap()
    }

    #[test]
    fn builds_repo_urls_under_a_ghes_prefix() {
        let r = RepoRef::new("o", "r");
        let c = client("https://ghe.example/api/v3");
        assert_eq!(
            c.repo_url(&r, "artifacts/5/zip").as_str(),
            "https://ghe.example/api/v3/repos/o/r/actions/artifacts/5/zip"
        );
        let c = client("https://api.github.com");
        assert_eq!(
            c.repo_url(&r, "runs/7/artifacts").as_str(),
            "https://api.github.com/repos/o/r/actions/runs/7/artifacts"
        );
    }

    #[test]
    fn urls_from_another_host_are_asked_of_the_api_origin() {
        let c = GitHubClient::new(ClientConfig::new(
            Url::parse("https://ghes.example/api/v3").unwrap(),
            None,
        ))
        .unwrap();
        let asked = |u: &str| c.on_api(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            asked("https://evil.example/repositories/7/actions/artifacts?page=2"),
            "https://ghes.example/api/v3/repositories/7/actions/artifacts?page=2"
        );
        assert_eq!(
            asked("http://other.example/api/v3/repos/o/r"),
            "https://ghes.example/api/v3/repos/o/r"
        );
    }

    #[test]
    fn origin_check() {
        let c = client("https://api.github.com");
        assert!(c.on_api_origin(&Url::parse("https://api.github.com/x?page=2").unwrap()));
        assert!(!c.on_api_origin(&Url::parse("https://evil.example/x").unwrap()));
        assert!(!c.on_api_origin(&Url::parse("http://api.github.com/x").unwrap()));
        assert!(!c.on_api_origin(&Url::parse("https://api.github.com:444/x").unwrap()));
    }
}
