//! The blob host (Azure Blob Storage on github.com): ranged reads and whole downloads of one
//! artifact's blob through its signed, short-lived URL.
//!
//! A [`BlobHandle`] owns one artifact's URL: it gets it from the API's download redirect,
//! reuses it while it is young, and fetches a fresh one when the blob host answers 403 (an
//! expired or bad signature) — also in the middle of a long read. The blob client never
//! sends `Authorization` (it has no token to send). Ranges are always `bytes=N-M`, never a
//! suffix. A host that ignores `Range` (200 with the whole body) still gives right bytes.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header;
use reqwest::{Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use url::Url;

use super::blob_headers::{content_range, kind_from_headers, percent_decode};
use super::body::{BodyError, read_into};
use super::client::{GitHubClient, error_chain, redact};
use super::error::ApiError;
use super::retry::RetryPolicy;
use super::runs::Download;
use super::types::{ArtifactKind, RepoRef};

mod whole_body;
pub use whole_body::WholeBody;

/// GitHub documents download URLs as valid for one minute; reuse one for less than that.
pub const URL_REUSE: Duration = Duration::from_secs(50);

/// HTTP client for the blob host: no token, no default auth, bounded redirects.
#[derive(Clone)]
pub struct BlobClient {
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl Default for BlobClient {
    fn default() -> Self {
        Self::new()
    }
}

impl BlobClient {
    pub fn new() -> BlobClient {
        Self::with_retry(RetryPolicy::default())
    }

    pub fn with_retry(retry: RetryPolicy) -> BlobClient {
        let http = reqwest::Client::builder()
            .user_agent(concat!("artifactfs/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            .build()
            .expect("a default reqwest client builds");
        BlobClient { http, retry }
    }
}

/// One blob (an artifact's, a run's log archive, a job's log), addressed by repository and
/// what its download redirect is for.
pub struct BlobHandle {
    api: GitHubClient,
    blob: BlobClient,
    repo: RepoRef,
    target: Download,
    url: Mutex<Option<(Url, Instant)>>,
    /// Serializes redirect fetches so concurrent readers share one.
    refresh: tokio::sync::Mutex<()>,
    kind: Mutex<Option<ArtifactKind>>,
    /// Set once the host answered a ranged request with the whole blob (200).
    range_ignored: std::sync::atomic::AtomicBool,
    /// Such an answer, its body not read yet: the whole download starts with it (see
    /// [`BlobHandle::stream_whole`]) instead of asking again; dropped after [`PARK_FOR`].
    parked: Arc<Mutex<Option<(u64, Response)>>>,
}

/// How long a whole answer to a ranged request waits for its download to take it.
const PARK_FOR: Duration = Duration::from_secs(30);

/// What a ranged read got.
pub enum Ranged {
    /// The bytes asked for (fewer only past the end of the blob).
    Bytes(Bytes),
    /// The host ignored `Range` and answered with the whole blob: read it with
    /// [`BlobHandle::stream_whole`] (which starts with that answer).
    Whole,
}

impl Ranged {
    /// The bytes, unless the host answered whole.
    pub fn into_bytes(self) -> Option<Bytes> {
        match self {
            Ranged::Bytes(b) => Some(b),
            Ranged::Whole => None,
        }
    }
}

/// Why one attempt failed, and whether trying again can help.
enum Attempt {
    /// Get a fresh URL, then retry (403 from the blob host).
    Refresh(ApiError),
    /// Back off and retry (network, 5xx, truncated body).
    Retry(ApiError),
    Fatal(ApiError),
}

impl BlobHandle {
    pub fn new(api: GitHubClient, blob: BlobClient, repo: RepoRef, id: u64) -> BlobHandle {
        Self::of(api, blob, repo, Download::Artifact(id))
    }

    /// The handle of any download's blob.
    pub fn of(api: GitHubClient, blob: BlobClient, repo: RepoRef, target: Download) -> BlobHandle {
        BlobHandle {
            api,
            blob,
            repo,
            target,
            url: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            kind: Mutex::new(None),
            range_ignored: Default::default(),
            parked: Arc::default(),
        }
    }

    /// The current signed URL; a fresh one when `stale` (the one that just failed) is what we
    /// hold or when ours is too old.
    async fn url(&self, stale: Option<&Url>) -> Result<Url, ApiError> {
        let usable = |cur: &Option<(Url, Instant)>| match cur {
            Some((u, at)) if at.elapsed() < URL_REUSE && Some(u) != stale => Some(u.clone()),
            _ => None,
        };
        if let Some(u) = usable(&self.url.lock().unwrap()) {
            return Ok(u);
        }
        let _guard = self.refresh.lock().await;
        if let Some(u) = usable(&self.url.lock().unwrap()) {
            return Ok(u);
        }
        let u = self.api.download_url_of(&self.repo, &self.target).await?;
        if self.api.on_api_origin(&u) {
            tracing::debug!(
                blob = %self.target,
                "download redirects to the API host itself"
            );
        }
        *self.url.lock().unwrap() = Some((u.clone(), Instant::now()));
        Ok(u)
    }

    /// Zip archive or a single raw file. Costs the download redirect (and, when the URL path
    /// doesn't end in `.zip`, one `HEAD` for the file name): no blob bytes. The answer is
    /// remembered (also on disk, by the caller), so it is only given when the blob host
    /// answered: a probe that fails (403 after a fresh URL, 5xx, network) is an error, never
    /// a guess.
    pub async fn kind(&self) -> Result<ArtifactKind, ApiError> {
        if let Some(k) = self.kind.lock().unwrap().clone() {
            return Ok(k);
        }
        let url = self.url(None).await?;
        let kind = if url.path().to_ascii_lowercase().ends_with(".zip") {
            ArtifactKind::Zip
        } else {
            self.with_retries(|url| async move { self.probe_kind(&url).await })
                .await?
        };
        *self.kind.lock().unwrap() = Some(kind.clone());
        Ok(kind)
    }

    /// One probe of the blob's headers: `HEAD`, else (a host that refuses `HEAD`) the first
    /// byte. A host that answers without telling is taken as a raw file named by the URL.
    async fn probe_kind(&self, url: &Url) -> Result<ArtifactKind, Attempt> {
        if let Ok(resp) = self.blob.http.head(url.clone()).send().await
            && resp.status().is_success()
            && let Some(k) = kind_from_headers(resp.headers())
        {
            return Ok(k);
        }
        let resp = self.first_byte(url).await?;
        let last = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .map(percent_decode)
            .filter(|s| !s.is_empty());
        Ok(kind_from_headers(resp.headers()).unwrap_or(ArtifactKind::Raw { file_name: last }))
    }

    /// One request for the blob's first byte (`bytes=0-0`, never a suffix range), its status
    /// checked: what the kind and length probes read their headers from.
    async fn first_byte(&self, url: &Url) -> Result<Response, Attempt> {
        let resp = self
            .blob
            .http
            .get(url.clone())
            .header(header::RANGE, "bytes=0-0")
            .send()
            .await
            .map_err(|e| Attempt::Retry(network(url, &e)))?;
        check_status(resp, url)
    }

    /// The blob's length and `ETag`, learnt from one request for its first byte (never a
    /// suffix range): the total of the 206's `Content-Range`, or the length of a 200 (a host
    /// that refuses Range: remembered, its body not read); 416 is an empty blob. For blobs
    /// whose length the API does not give (logs).
    pub async fn probe_len(&self) -> Result<(u64, Option<String>), ApiError> {
        self.with_retries(|url| async move {
            let resp = self.first_byte(&url).await?;
            let etag = (resp.headers().get(header::ETAG))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let len = match resp.status() {
                StatusCode::PARTIAL_CONTENT => content_range(resp.headers()).map(|(_, _, t)| t),
                StatusCode::RANGE_NOT_SATISFIABLE => Some(0),
                _ => {
                    let len = resp.content_length();
                    self.range_was_ignored(resp);
                    len
                }
            };
            let len = len.ok_or_else(|| {
                Attempt::Fatal(ApiError::Protocol(format!(
                    "{}: no length in the answer from {}",
                    self.target,
                    redact(&url)
                )))
            })?;
            Ok((len, etag))
        })
        .await
    }

    /// Whether the blob host has been seen ignoring `Range` (answering 200 with everything).
    pub fn ranges_ignored(&self) -> bool {
        self.range_ignored
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The host answered a ranged request with the whole blob (`whole`, its body unread):
    /// says so once, and keeps the answer for the whole download to start with.
    fn range_was_ignored(&self, whole: Response) {
        if !self
            .range_ignored
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                blob = %self.target,
                "blob host ignored Range (200): the blob is read whole, one download at a time, into the cache"
            );
        }
        static PARKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PARKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.parked.lock().unwrap() = Some((n, whole));
        // Not taken in time (nobody reads the blob): the connection is let go.
        let slot = Arc::downgrade(&self.parked);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(PARK_FOR).await;
                if let Some(slot) = slot.upgrade() {
                    let mut p = slot.lock().unwrap();
                    if p.as_ref().is_some_and(|(m, _)| *m == n) {
                        *p = None;
                    }
                }
            });
        }
    }

    /// Exactly `len` bytes at `offset` (fewer only past the end of the blob), or word that
    /// the host ignores `Range`.
    pub async fn read_range(&self, offset: u64, len: u64) -> Result<Ranged, ApiError> {
        if len == 0 {
            return Ok(Ranged::Bytes(Bytes::new()));
        }
        let end = offset
            .checked_add(len - 1)
            .ok_or_else(|| ApiError::Protocol(format!("range {offset}+{len} overflows")))?;
        // What earlier attempts got stays: a retry asks only for the rest.
        let partial = Mutex::new(BytesMut::new());
        let partial = &partial;
        self.with_retries(|url| async move { self.try_range(&url, offset, end, partial).await })
            .await
    }

    async fn try_range(
        &self,
        url: &Url,
        offset: u64,
        end: u64,
        partial: &Mutex<BytesMut>,
    ) -> Result<Ranged, Attempt> {
        let have = partial.lock().unwrap().len() as u64;
        let from = offset + have;
        let resp = self
            .blob
            .http
            .get(url.clone())
            .header(header::RANGE, format!("bytes={from}-{end}"))
            .send()
            .await
            .map_err(|e| Attempt::Retry(network(url, &e)))?;
        let resp = check_status(resp, url)?;
        let want = end - offset + 1;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let (start, _, total) = content_range(resp.headers()).ok_or_else(|| {
                    Attempt::Fatal(ApiError::Protocol(format!(
                        "206 without a usable Content-Range from {}",
                        redact(url)
                    )))
                })?;
                if start != from {
                    return Err(Attempt::Fatal(ApiError::Protocol(format!(
                        "asked for bytes from {from}, got from {start}"
                    ))));
                }
                let expect = want.min(total.saturating_sub(offset));
                let mut buf = std::mem::take(&mut *partial.lock().unwrap());
                buf.reserve((expect - have) as usize);
                match read_into(resp, url, expect, &mut buf).await {
                    Ok(()) => Ok(Ranged::Bytes(buf.freeze())),
                    Err(BodyError::Retry(e)) => {
                        *partial.lock().unwrap() = buf;
                        Err(Attempt::Retry(e))
                    }
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Ranged::Bytes(Bytes::new())),
            _ => {
                // 200: the host ignored Range. The body is the whole blob: kept, unread,
                // for the one download that reads it into the cache.
                self.range_was_ignored(resp);
                Ok(Ranged::Whole)
            }
        }
    }

    /// Streams the whole blob into `out`; returns (bytes, sha256 hex). A transfer that breaks
    /// off resumes where it stopped (Range from the bytes already written). The mount itself
    /// reads through the block cache and never calls this.
    pub async fn download_to(&self, out: &mut tokio::fs::File) -> Result<(u64, String), ApiError> {
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut retry = Retries::new(&self.target, &self.blob.retry);
        loop {
            let url = self.url(retry.stale.as_ref()).await?;
            let r = self
                .try_download(&url, out, &mut hasher, &mut written)
                .await;
            match r {
                Ok(()) => {
                    // tokio's File writes in the background: done only once flushed.
                    use tokio::io::AsyncWriteExt;
                    out.flush()
                        .await
                        .map_err(|e| ApiError::Network(e.to_string()))?;
                    return Ok((written, hex::encode(hasher.finalize())));
                }
                Err(a) => retry.after(a, url, "download").await?,
            }
        }
    }

    async fn try_download(
        &self,
        url: &Url,
        out: &mut tokio::fs::File,
        hasher: &mut Sha256,
        written: &mut u64,
    ) -> Result<(), Attempt> {
        let mut req = self.blob.http.get(url.clone());
        if *written > 0 {
            req = req.header(header::RANGE, format!("bytes={}-", *written));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Attempt::Retry(network(url, &e)))?;
        let resp = check_status(resp, url)?;
        // The blob's total length, so that a short body is caught whether or not we resumed.
        let mut total = resp.content_length();
        if *written > 0 {
            match resp.status() {
                StatusCode::PARTIAL_CONTENT => match content_range(resp.headers()) {
                    Some((start, _, t)) if start == *written => total = Some(t),
                    _ => {
                        return Err(Attempt::Fatal(ApiError::Protocol(
                            "resumed download answered a different range".into(),
                        )));
                    }
                },
                StatusCode::RANGE_NOT_SATISFIABLE => return Ok(()),
                _ => {
                    // No Range support: start over.
                    out.set_len(0).await.map_err(io_fatal)?;
                    use tokio::io::AsyncSeekExt;
                    out.seek(io::SeekFrom::Start(0)).await.map_err(io_fatal)?;
                    *hasher = Sha256::new();
                    *written = 0;
                }
            }
        } else if resp.status() == StatusCode::PARTIAL_CONTENT {
            total = content_range(resp.headers()).map(|(_, _, t)| t);
        }
        let mut resp = resp;
        let mut got = 0u64;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    out.write_all(&c).await.map_err(io_fatal)?;
                    hasher.update(&c);
                    *written += c.len() as u64;
                    got += c.len() as u64;
                }
                Ok(None) => break,
                Err(e) => return Err(Attempt::Retry(network(url, &e))),
            }
        }
        if let Some(n) = total
            && *written < n
        {
            return Err(Attempt::Retry(ApiError::Network(format!(
                "{}: body ended after {got} of {n} bytes",
                redact(url)
            ))));
        }
        Ok(())
    }

    /// Runs `op` with the current URL: 403 → one fresh URL; network/5xx/truncation → backoff.
    async fn with_retries<T, F, Fut>(&self, op: F) -> Result<T, ApiError>
    where
        F: Fn(Url) -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let mut retry = Retries::new(&self.target, &self.blob.retry);
        loop {
            let url = self.url(retry.stale.as_ref()).await?;
            match op(url.clone()).await {
                Ok(v) => return Ok(v),
                Err(a) => retry.after(a, url, "blob read").await?,
            }
        }
    }
}

/// The retry decisions shared by every blob operation: a 403 gets one fresh URL, network
/// errors, 5xx and short bodies back off until the attempts run out, anything else is final.
struct Retries<'a> {
    target: &'a Download,
    policy: &'a RetryPolicy,
    attempt: u32,
    refreshed: bool,
    /// The URL the blob host refused, so that the next one is fetched fresh.
    stale: Option<Url>,
}

impl<'a> Retries<'a> {
    fn new(target: &'a Download, policy: &'a RetryPolicy) -> Self {
        Retries {
            target,
            policy,
            attempt: 0,
            refreshed: false,
            stale: None,
        }
    }

    /// After a failed attempt with `url`: `Ok` to try again (having waited if need be),
    /// `Err` to give up.
    async fn after(&mut self, failure: Attempt, url: Url, what: &str) -> Result<(), ApiError> {
        self.attempt += 1;
        let err = match failure {
            Attempt::Fatal(e) => return Err(e),
            Attempt::Refresh(e) => {
                if self.refreshed {
                    tracing::warn!(blob = %self.target, error = %e, "blob host still refuses a fresh URL");
                    return Err(e);
                }
                self.refreshed = true;
                self.stale = Some(url);
                tracing::info!(
                    blob = %self.target,
                    "blob URL rejected (403): getting a fresh one"
                );
                return Ok(());
            }
            Attempt::Retry(e) => e,
        };
        if self.attempt >= self.policy.max_attempts {
            tracing::warn!(blob = %self.target, error = %err, attempts = self.attempt, "{what} failed");
            return Err(err);
        }
        let d = self.policy.backoff(self.attempt);
        tracing::info!(blob = %self.target, error = %err, retry_in = ?d, "{what} failed, retrying");
        tokio::time::sleep(d).await;
        Ok(())
    }
}

fn io_fatal(e: io::Error) -> Attempt {
    Attempt::Fatal(ApiError::Protocol(format!("writing the cache: {e}")))
}

fn network(url: &Url, e: &reqwest::Error) -> ApiError {
    ApiError::Network(format!("{}: {}", redact(url), error_chain(e)))
}

/// Sorts a blob-host status into success or what to do next.
fn check_status(resp: Response, url: &Url) -> Result<Response, Attempt> {
    let s = resp.status();
    if s.is_success() || s == StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(resp);
    }
    let msg = format!("blob host {}: {s}", redact(url));
    Err(match s.as_u16() {
        403 => Attempt::Refresh(ApiError::Forbidden(msg)),
        404 => Attempt::Fatal(ApiError::NotFound(msg)),
        410 => Attempt::Fatal(ApiError::Gone(msg)),
        408 | 429 | 500..=599 => Attempt::Retry(ApiError::Server {
            status: s.as_u16(),
            what: msg,
        }),
        _ => Attempt::Fatal(ApiError::Protocol(msg)),
    })
}
