//! How one request travels to the API host: `send` (retries with backoff, rate-limit waits,
//! redirects on the API origin only, the token only there), `get_json` (conditional GETs:
//! `If-None-Match`, a 304 answered from the kept body and its next link), and the small
//! readers of an answer (a redirect's `Location`, a whole body, an error's `message`).

use super::*;

/// A GET answer kept for revalidation: a 304 carries no `Link` (RFC 9110 does not ask a
/// server to repeat it), so the next page's URL is kept with the body.
#[derive(Clone)]
pub(super) struct Cached {
    etag: HeaderValue,
    body: bytes::Bytes,
    next: Option<String>,
}

/// A JSON answer: its body and, for a list page, the next page's URL.
pub(super) struct Page {
    pub(super) body: bytes::Bytes,
    pub(super) next: Option<String>,
}

/// Which redirects `send` follows by itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Redirects {
    /// Every 301/302/307/308 on the API origin; one elsewhere is an error.
    Follow,
    /// The download endpoint: 301/307/308 on the API origin are followed (a moved
    /// repository); the 302 (or a redirect off the API origin) is the answer.
    Download,
}

impl GitHubClient {
    /// GET a JSON resource, revalidating what was fetched before with `If-None-Match`.
    pub(super) async fn get_json(&self, url: &Url) -> Result<Page, ApiError> {
        let key = url.as_str().to_string();
        let cached = self.inner.pages.lock().unwrap().get(&key).cloned();
        // A body cut short (the connection dropped mid-answer) is retried like a failed
        // request: `send` only sees the status line and headers.
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let resp = self
                .send(
                    Method::GET,
                    url,
                    cached.as_ref().map(|c| c.etag.clone()),
                    Redirects::Follow,
                    |_| {},
                )
                .await?;
            if resp.status() == StatusCode::NOT_MODIFIED {
                let Some(c) = cached else {
                    return Err(ApiError::Protocol(format!(
                        "304 for {} without a cached body",
                        redact(url)
                    )));
                };
                tracing::debug!(url = %redact(url), "304 Not Modified: unchanged");
                return Ok(Page {
                    body: c.body,
                    next: c.next,
                });
            }
            let headers = resp.headers().clone();
            match read_body(resp, url).await {
                Ok(body) => {
                    let next = headers
                        .get(header::LINK)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|h| link::find_rel(h, "next"));
                    if let Some(etag) = headers.get(header::ETAG) {
                        let c = Cached {
                            etag: etag.clone(),
                            body: body.clone(),
                            next: next.clone(),
                        };
                        self.inner.pages.lock().unwrap().insert(key, c);
                    }
                    return Ok(Page { body, next });
                }
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
        }
    }

    /// Sends one request to the API host with retries: connection errors, timeouts and 5xx
    /// back off and retry; rate limits wait (within the budget); redirects are followed as
    /// `redirects` says. Returns the first response that is a success, a 304 or (downloads)
    /// the download redirect; anything else becomes its typed error. `on_retry` is called
    /// before each retry.
    pub(super) async fn send(
        &self,
        method: Method,
        asked: &Url,
        if_none_match: Option<HeaderValue>,
        redirects: Redirects,
        mut on_retry: impl FnMut(u32),
    ) -> Result<Response, ApiError> {
        debug_assert!(self.on_api_origin(asked));
        let policy = &self.inner.retry;
        let mut url = self
            .inner
            .moved
            .lock()
            .unwrap()
            .get(asked.as_str())
            .cloned()
            .unwrap_or_else(|| asked.clone());
        let mut hops = 0u32;
        let mut attempt = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            // Speculation (readahead) spends only its budget; people's requests always go.
            if !crate::stats::quota::admit(&self.inner.stats) {
                return Err(ApiError::Budget(format!("{method} {}", redact(&url))));
            }
            let mut req = self.inner.http.request(method.clone(), url.clone());
            if let Some(t) = &self.inner.token {
                req = req.header(header::AUTHORIZATION, t.clone());
            }
            if let Some(tag) = &if_none_match {
                req = req.header(header::IF_NONE_MATCH, tag.clone());
            }
            let result = {
                let _permit = self.inner.in_flight.acquire().await;
                let _counted = self.inner.stats.api_request();
                req.send().await
            };
            let what = format!("{method} {}", redact(&url));
            let (retry_after, err) = match result {
                Err(e) => (
                    None,
                    ApiError::Network(format!("{what}: {}", error_chain(&e))),
                ),
                Ok(resp) => {
                    let status = resp.status();
                    note_quota(status.as_u16(), resp.headers(), &self.inner.stats);
                    if status.is_success() || status == StatusCode::NOT_MODIFIED {
                        return Ok(resp);
                    }
                    if status.is_redirection() {
                        let mut target = location(&resp, &url)
                            .map_err(|e| ApiError::Protocol(format!("{what}: {status}: {e}")))?;
                        let on_origin = self.on_api_origin(&target);
                        if redirects == Redirects::Download
                            && (status == StatusCode::FOUND || !on_origin)
                        {
                            return Ok(resp);
                        }
                        if !on_origin {
                            // Never followed where it points: the same path, asked of
                            // --api-url (the token stays on its origin).
                            let rebuilt = self.on_api(&target);
                            tracing::warn!(
                                "{what}: {status} to another host ({}): asking {} instead",
                                redact(&target),
                                redact(&rebuilt)
                            );
                            target = rebuilt;
                        }
                        hops += 1;
                        if hops > MAX_REDIRECTS {
                            return Err(ApiError::Protocol(format!(
                                "{what}: more than {MAX_REDIRECTS} redirects"
                            )));
                        }
                        tracing::debug!(from = %redact(&url), to = %redact(&target), "{status}: following");
                        if matches!(
                            status,
                            StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
                        ) {
                            self.inner
                                .moved
                                .lock()
                                .unwrap()
                                .insert(asked.to_string(), target.clone());
                        }
                        url = target;
                        attempt -= 1;
                        continue;
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

/// A redirect's `Location`, resolved against the URL asked; only http(s).
pub(super) fn location(resp: &Response, asked: &Url) -> Result<Url, String> {
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or("redirect without Location")?;
    let target = asked.join(loc).map_err(|e| format!("bad Location: {e}"))?;
    if !matches!(target.scheme(), "http" | "https") {
        return Err("Location is not http(s)".into());
    }
    Ok(target)
}

/// Reads a whole (small, API) body; a body cut short is a network error.
pub(super) async fn read_body(resp: Response, url: &Url) -> Result<bytes::Bytes, ApiError> {
    resp.bytes()
        .await
        .map_err(|e| ApiError::Network(format!("reading {}: {}", redact(url), error_chain(&e))))
}

/// The `message` of a GitHub error body, or the start of the body.
pub(super) fn api_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

/// How long to back off from a secondary rate limit that gave no `retry-after`.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_messages() {
        assert_eq!(
            api_message(r#"{"message":"Bad credentials"}"#),
            "Bad credentials"
        );
        assert_eq!(api_message("<html>"), "<html>");
    }
}
