//! The typed REST client for the artifact endpoints of the API host: list (repo, run), get,
//! delete, and the download redirect. Owns the token (sent only to the API origin), the
//! headers GitHub asks for, pagination (`per_page=100`, `Link: rel="next"` followed only on
//! the API origin), conditional requests (`If-None-Match` → 304 reuses the last body and does
//! not count against the rate limit), retries with backoff, and rate-limit waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

use super::error::ApiError;
use super::link;
use super::retry::{RateLimit, RetryPolicy, rate_limit};
use super::types::{Artifact, ArtifactList, RepoRef};

pub const DEFAULT_API_URL: &str = "https://api.github.com";
pub const API_VERSION: &str = "2022-11-28";
/// GitHub's maximum page size.
pub const PER_PAGE: u32 = 100;

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
    /// Last ETag and body per listing URL, for `If-None-Match`.
    etags: Mutex<HashMap<String, (HeaderValue, bytes::Bytes)>>,
}

/// A URL without its query string, for logs (signed URLs carry their secret in the query).
pub fn redact(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        match url.port() {
            Some(p) => format!(":{p}{}", url.path()),
            None => url.path().to_string(),
        }
    )
}

enum Body {
    Fresh(bytes::Bytes),
    NotModified(bytes::Bytes),
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
                etags: Mutex::new(HashMap::new()),
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

    async fn list_all(&self, mut url: Url) -> Result<Vec<Artifact>, ApiError> {
        url.query_pairs_mut()
            .append_pair("per_page", &PER_PAGE.to_string());
        let first = url.clone();
        let mut out: Vec<Artifact> = Vec::new();
        let mut page = 1u64;
        let mut total: Option<u64> = None;
        loop {
            let (body, headers) = self.get_json(&url, true).await?;
            let list: ArtifactList = serde_json::from_slice(&body).map_err(|e| {
                ApiError::Protocol(format!("artifact list from {}: {e}", redact(&url)))
            })?;
            let got = list.artifacts.len();
            total.get_or_insert(list.total_count);
            out.extend(list.artifacts);
            let next = headers
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|h| link::find_rel(h, "next"));
            let Some(next) = next else { break };
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
        // Pages can shift while we walk them (an artifact created meanwhile): no duplicates.
        let mut seen = std::collections::HashSet::new();
        out.retain(|a| seen.insert(a.id));
        Ok(out)
    }

    pub async fn get_artifact(&self, repo: &RepoRef, id: u64) -> Result<Artifact, ApiError> {
        let url = self.repo_url(repo, &format!("artifacts/{id}"));
        let (body, _) = self.get_json(&url, true).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::Protocol(format!("artifact from {}: {e}", redact(&url))))
    }

    /// `DELETE .../artifacts/{id}`: 204. A retry that answers 404 means an earlier attempt
    /// did delete it, so it counts as done.
    pub async fn delete_artifact(&self, repo: &RepoRef, id: u64) -> Result<(), ApiError> {
        let url = self.repo_url(repo, &format!("artifacts/{id}"));
        let mut retried = false;
        let result = self
            .send(Method::DELETE, &url, None, |_| {
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
    pub async fn download_url(&self, repo: &RepoRef, id: u64) -> Result<Url, ApiError> {
        let url = self.repo_url(repo, &format!("artifacts/{id}/zip"));
        let resp = self.send(Method::GET, &url, None, |_| {}).await?;
        let status = resp.status();
        if !status.is_redirection() {
            return Err(ApiError::Protocol(format!(
                "download of artifact {id}: expected a redirect, got {status}"
            )));
        }
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Protocol(format!(
                    "download of artifact {id}: redirect without Location"
                ))
            })?;
        let target = url.join(loc).map_err(|e| {
            ApiError::Protocol(format!("download of artifact {id}: bad Location: {e}"))
        })?;
        if !matches!(target.scheme(), "http" | "https") {
            return Err(ApiError::Protocol(format!(
                "download of artifact {id}: Location is not http(s)"
            )));
        }
        Ok(target)
    }

    /// GET a JSON resource; with `conditional`, revalidates with `If-None-Match`.
    async fn get_json(
        &self,
        url: &Url,
        conditional: bool,
    ) -> Result<(bytes::Bytes, HeaderMap), ApiError> {
        let key = url.as_str().to_string();
        let etag = if conditional {
            self.inner.etags.lock().unwrap().get(&key).cloned()
        } else {
            None
        };
        // A body cut short (the connection dropped mid-answer) is retried like a failed
        // request: `send` only sees the status line and headers.
        let mut attempt = 0u32;
        let (body, headers) = loop {
            attempt += 1;
            let resp = self
                .send(
                    Method::GET,
                    url,
                    etag.as_ref().map(|(e, _)| e.clone()),
                    |_| {},
                )
                .await?;
            let headers = resp.headers().clone();
            if resp.status() == StatusCode::NOT_MODIFIED {
                match &etag {
                    Some((_, body)) => break (Body::NotModified(body.clone()), headers),
                    None => {
                        return Err(ApiError::Protocol(format!(
                            "304 for {} without a cached body",
                            redact(url)
                        )));
                    }
                }
            }
            match read_body(resp, url).await {
                Ok(b) => break (Body::Fresh(b), headers),
                Err(e) if attempt < self.inner.retry.max_attempts => {
                    let delay = self.inner.retry.backoff(attempt);
                    tracing::info!(error = %e, retry_in = ?delay, attempt, "retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempts = attempt, "giving up");
                    return Err(e);
                }
            }
        };
        let body = match body {
            Body::NotModified(b) => {
                tracing::debug!(url = %redact(url), "304 Not Modified: listing unchanged");
                b
            }
            Body::Fresh(b) => {
                if conditional && let Some(tag) = headers.get(header::ETAG) {
                    self.inner
                        .etags
                        .lock()
                        .unwrap()
                        .insert(key, (tag.clone(), b.clone()));
                }
                b
            }
        };
        Ok((body, headers))
    }

    /// Sends one request to the API host with retries: connection errors, timeouts and 5xx
    /// back off and retry; rate limits wait (within the budget). Returns the first response
    /// that is a success, a redirect or a 304; anything else becomes its typed error.
    /// `on_retry` is called before each retry.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        if_none_match: Option<HeaderValue>,
        mut on_retry: impl FnMut(u32),
    ) -> Result<Response, ApiError> {
        debug_assert!(self.on_api_origin(url));
        let policy = &self.inner.retry;
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            let mut req = self.inner.http.request(method.clone(), url.clone());
            if let Some(t) = &self.inner.token {
                req = req.header(header::AUTHORIZATION, t.clone());
            }
            if let Some(tag) = &if_none_match {
                req = req.header(header::IF_NONE_MATCH, tag.clone());
            }
            let result = {
                let _permit = self.inner.in_flight.acquire().await;
                req.send().await
            };
            let what = format!("{method} {}", redact(url));
            let (retry_after, err) = match result {
                Err(e) => (
                    None,
                    ApiError::Network(format!("{what}: {}", error_chain(&e))),
                ),
                Ok(resp) => {
                    let status = resp.status();
                    log_quota(&resp);
                    if status.is_success()
                        || status.is_redirection()
                        || status == StatusCode::NOT_MODIFIED
                    {
                        return Ok(resp);
                    }
                    let headers = resp.headers().clone();
                    let text = resp.text().await.unwrap_or_default();
                    let msg = format!("{what}: {status} {}", api_message(&text));
                    match status.as_u16() {
                        401 => return Err(ApiError::Unauthorized(msg)),
                        404 => return Err(ApiError::NotFound(msg)),
                        410 => return Err(ApiError::Gone(msg)),
                        403 | 429 => match rate_limit(status.as_u16(), &headers, &text) {
                            RateLimit::None => return Err(ApiError::Forbidden(msg)),
                            RateLimit::Primary(d) => (Some(d), ApiError::RateLimited(msg)),
                            // GitHub: without retry-after, wait at least a minute.
                            RateLimit::Secondary(d) => (
                                Some(d.unwrap_or(SECONDARY_LIMIT_WAIT)),
                                ApiError::RateLimited(msg),
                            ),
                        },
                        500..=599 => (
                            None,
                            ApiError::Server {
                                status: status.as_u16(),
                                what: msg,
                            },
                        ),
                        _ => return Err(ApiError::Protocol(msg)),
                    }
                }
            };
            let delay = match (&err, retry_after) {
                (ApiError::RateLimited(_), Some(d)) => {
                    if waited + d > policy.max_rate_limit_wait {
                        tracing::warn!(error = %err, wait = ?d, "rate limited past the wait budget");
                        return Err(err);
                    }
                    d
                }
                _ => {
                    if attempt >= policy.max_attempts {
                        tracing::warn!(error = %err, attempts = attempt, "giving up");
                        return Err(err);
                    }
                    policy.backoff(attempt)
                }
            };
            tracing::info!(error = %err, retry_in = ?delay, attempt, "retrying");
            waited += delay;
            on_retry(attempt);
            tokio::time::sleep(delay).await;
        }
    }
}

/// Reads a whole (small, API) body; a body cut short is a network error.
async fn read_body(resp: Response, url: &Url) -> Result<bytes::Bytes, ApiError> {
    resp.bytes()
        .await
        .map_err(|e| ApiError::Network(format!("reading {}: {}", redact(url), error_chain(&e))))
}

/// The `message` of a GitHub error body, or the start of the body.
fn api_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// How long to back off from a secondary rate limit that gave no `retry-after`.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// reqwest errors hide their cause (connection refused, ...) in `source()`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    scrub_queries(&s)
}

/// Drops the query string of every URL in `text`: reqwest's messages quote the URL, and a
/// signed blob URL's query is a credential.
pub fn scrub_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("http") {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        if !(from.starts_with("http://") || from.starts_with("https://")) {
            out.push_str("http");
            rest = &from[4..];
            continue;
        }
        let end = from
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>'))
            .unwrap_or(from.len());
        let url = &from[..end];
        out.push_str(url.split('?').next().unwrap_or(url));
        rest = &from[end..];
    }
    out.push_str(rest);
    out
}

fn log_quota(resp: &Response) {
    let h = resp.headers();
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("?");
    if h.contains_key("x-ratelimit-remaining") {
        tracing::info!(
            status = resp.status().as_u16(),
            remaining = get("x-ratelimit-remaining"),
            limit = get("x-ratelimit-limit"),
            reset = get("x-ratelimit-reset"),
            "API quota"
        );
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
    fn origin_check_and_redaction() {
        let c = client("https://api.github.com");
        assert!(c.on_api_origin(&Url::parse("https://api.github.com/x?page=2").unwrap()));
        assert!(!c.on_api_origin(&Url::parse("https://evil.example/x").unwrap()));
        assert!(!c.on_api_origin(&Url::parse("http://api.github.com/x").unwrap()));
        assert!(!c.on_api_origin(&Url::parse("https://api.github.com:444/x").unwrap()));
        let u = Url::parse("https://blob.example:8443/c/a.zip?sig=SECRET&se=1").unwrap();
        assert_eq!(redact(&u), "https://blob.example:8443/c/a.zip");
    }

    #[test]
    fn error_text_never_carries_a_signature() {
        assert_eq!(
            scrub_queries(
                "error sending request for url (https://blob.example/b/1.zip?sig=SECRET&se=1): refused"
            ),
            "error sending request for url (https://blob.example/b/1.zip): refused"
        );
        assert_eq!(
            scrub_queries("no urls, http is a word"),
            "no urls, http is a word"
        );
        assert_eq!(scrub_queries("x http://a/b?c"), "x http://a/b");
    }

    #[test]
    fn api_messages() {
        assert_eq!(
            api_message(r#"{"message":"Bad credentials"}"#),
            "Bad credentials"
        );
        assert_eq!(api_message("<html>"), "<html>");
    }
}
