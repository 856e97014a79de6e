//! The API listener: GitHub's five artifact endpoints with GitHub's shapes, status codes and
//! headers (pagination and `Link`, `per_page` clamp, `name` filter, 302 to a signed blob URL,
//! 410 for expired, 204 delete, 401/403/404 by token, ETag/304, rate-limit headers), plus the
//! API-side fault switches.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::faults::fires;
use crate::state::{State, blob_file_name, key, unix_millis, unix_now};
use crate::{Shared, TokenAccess};

const DOCS: &str = "https://docs.github.com/rest/actions/artifacts";
const QUOTA_AUTHENTICATED: u64 = 5000;
const QUOTA_ANONYMOUS: u64 = 60;

enum Route {
    ListRepo {
        owner: String,
        repo: String,
    },
    ListRun {
        owner: String,
        repo: String,
        run: u64,
    },
    Get {
        owner: String,
        repo: String,
        id: u64,
    },
    Delete {
        owner: String,
        repo: String,
        id: u64,
    },
    Download {
        owner: String,
        repo: String,
        id: u64,
        format: String,
    },
}

impl Route {
    fn endpoint(&self) -> &'static str {
        match self {
            Route::ListRepo { .. } => "list_repo",
            Route::ListRun { .. } => "list_run",
            Route::Get { .. } => "get",
            Route::Delete { .. } => "delete",
            Route::Download { .. } => "download",
        }
    }

    fn repo(&self) -> (&str, &str) {
        match self {
            Route::ListRepo { owner, repo }
            | Route::ListRun { owner, repo, .. }
            | Route::Get { owner, repo, .. }
            | Route::Delete { owner, repo, .. }
            | Route::Download { owner, repo, .. } => (owner, repo),
        }
    }
}

fn parse_route(method: &Method, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let s = |i: usize| segs.get(i).copied().unwrap_or("");
    if s(0) != "repos" || s(3) != "actions" {
        return None;
    }
    let owner = s(1).to_string();
    let repo = s(2).to_string();
    let get = *method == Method::GET || *method == Method::HEAD;
    match (segs.len(), s(4)) {
        (5, "artifacts") if get => Some(Route::ListRepo { owner, repo }),
        (7, "runs") if get && s(6) == "artifacts" => Some(Route::ListRun {
            owner,
            repo,
            run: s(5).parse().ok()?,
        }),
        (6, "artifacts") => {
            let id = s(5).parse().ok()?;
            if get {
                Some(Route::Get { owner, repo, id })
            } else if *method == Method::DELETE {
                Some(Route::Delete { owner, repo, id })
            } else {
                None
            }
        }
        (7, "artifacts") if get => Some(Route::Download {
            owner,
            repo,
            id: s(5).parse().ok()?,
            format: s(6).to_string(),
        }),
        _ => None,
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

fn message(status: StatusCode, msg: &str) -> Response {
    json_response(
        status,
        &json!({ "message": msg, "documentation_url": DOCS, "status": status.as_u16().to_string() }),
    )
}

/// The token a request carries: `Authorization: Bearer T` or `token T`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .or_else(|| v.strip_prefix("token "))
        .unwrap_or(v);
    Some(t.trim().to_string())
}

/// Minimal percent-encoding for a URL path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The raw value of query parameter `name` (empty when it has no `=`).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request<Body>) -> Response {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let delay = {
        let mut st = shared.state.lock().unwrap();
        st.counters.api_requests += 1;
        if headers.contains_key(header::AUTHORIZATION) {
            st.counters.api_auth_headers_seen += 1;
        }
        st.faults.api_delay
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some(r) = control(&shared, &method, &path) {
        return r;
    }
    let token = bearer(&headers);
    if let Some(t) = &token {
        let mut st = shared.state.lock().unwrap();
        st.counters.api_tokens_seen.insert(t.clone());
    }
    let base = base_url(&shared, &headers);
    let (resp, cut) = {
        let mut st = shared.state.lock().unwrap();
        let mut resp = respond(
            &shared,
            &base,
            &mut st,
            &method,
            &path,
            &query,
            &headers,
            token.as_deref(),
        );
        add_rate_limit_headers(&mut st, &mut resp, token.as_deref());
        let mut cut = false;
        if resp.status() == StatusCode::OK {
            st.fault_counts.api_ok += 1;
            cut = fires(st.faults.api_truncate_every, st.fault_counts.api_ok);
        }
        (resp, cut)
    };
    if cut {
        return truncated(resp).await;
    }
    resp
}

/// The same answer with `Content-Length` of the whole body but only its first half sent,
/// then the connection dropped (a proxy or front end giving up mid-answer).
async fn truncated(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let half = bytes.slice(..bytes.len() / 2);
    let stream = futures_util::stream::unfold(Some(half), |state| async move {
        match state {
            Some(half) => Some((Ok(half), None)),
            None => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let e = std::io::Error::other("fake-github: truncated API body");
                Some((Err(e), None))
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// `/_fake/counters` (GET: the counters as JSON) and `/_fake/reset` (POST): for benchmarks
/// driving the standalone server. Not GitHub endpoints; not counted.
fn control(shared: &Shared, method: &Method, path: &str) -> Option<Response> {
    let mut st = shared.state.lock().unwrap();
    match (method.as_str(), path) {
        ("GET", "/_fake/counters") => {
            st.counters.api_requests -= 1;
            let v = serde_json::to_value(&st.counters).unwrap_or(Value::Null);
            Some(json_response(StatusCode::OK, &v))
        }
        ("POST", "/_fake/reset") => {
            st.counters = Default::default();
            Some(json_response(StatusCode::OK, &json!({"reset": true})))
        }
        _ => None,
    }
}

/// The base URL for links in answers: the API's own address, or the host a client reached
/// it by (`gh` through `HTTP_PROXY` asks for `api.github.localhost`), as GitHub's answers
/// always point at the host that was asked.
fn base_url(shared: &Shared, headers: &HeaderMap) -> String {
    let own = shared
        .api_url
        .strip_prefix("http://")
        .unwrap_or(&shared.api_url)
        .trim_end_matches(shared.prefix.as_str());
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if host != own && !host.is_empty() => format!("http://{host}{}", shared.prefix),
        _ => shared.api_url.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
fn respond(
    shared: &Shared,
    base: &str,
    st: &mut State,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Response {
    let Some(rel) = path.strip_prefix(shared.prefix.as_str()) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let Some(route) = parse_route(method, rel) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    st.counters.hit(route.endpoint());
    if matches!(route, Route::Delete { .. }) {
        st.counters.delete_requests += 1;
    }

    // Faults first: they model the service failing before it looks at the request.
    if let Some(until) = st.rate_limited_until {
        if std::time::Instant::now() < until {
            let left = until - std::time::Instant::now();
            let reset = unix_now() + left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let mut r = message(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
            );
            let h = r.headers_mut();
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            h.insert("x-ratelimit-reset", HeaderValue::from(reset));
            h.insert("x-fake-exhausted", HeaderValue::from_static("1"));
            return r;
        }
        st.rate_limited_until = None;
    }
    st.fault_counts.api += 1;
    let n = st.fault_counts.api;
    if fires(st.faults.api_429_every, n) {
        let mut r = message(
            StatusCode::TOO_MANY_REQUESTS,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    if fires(st.faults.api_fail_every, n) {
        return message(StatusCode::BAD_GATEWAY, "Server Error");
    }

    // Who is asking.
    let access = match token {
        None => None,
        Some(t) => match st.tokens.get(t) {
            Some(a) => Some(*a),
            None => return message(StatusCode::UNAUTHORIZED, "Bad credentials"),
        },
    };
    if access == Some(TokenAccess::Denied) {
        return message(
            StatusCode::FORBIDDEN,
            "Resource not accessible by personal access token",
        );
    }
    let (owner, repo) = route.repo();
    let repo_key = key(owner, repo);
    match st.repos.get(&repo_key) {
        Some(r) if !r.private || access.is_some() => {}
        _ => return message(StatusCode::NOT_FOUND, "Not Found"),
    }

    match route {
        Route::ListRepo { .. } | Route::ListRun { .. } => {
            let run = match route {
                Route::ListRun { run, .. } => Some(run),
                _ => None,
            };
            list(base, st, &repo_key, run, rel, query, headers)
        }
        Route::Get { id, .. } => {
            let Some(a) = st.artifacts.get(&id).filter(|a| a.repo == repo_key) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let body = st.artifact_json(a, base);
            conditional(st, headers, &body, None)
        }
        Route::Delete { id, .. } => {
            if access.is_none() {
                return message(StatusCode::UNAUTHORIZED, "Requires authentication");
            }
            if access == Some(TokenAccess::ReadOnly) {
                return message(
                    StatusCode::FORBIDDEN,
                    "Resource not accessible by personal access token",
                );
            }
            if st.artifacts.get(&id).is_none_or(|a| a.repo != repo_key) {
                return message(StatusCode::NOT_FOUND, "Not Found");
            }
            st.artifacts.remove(&id);
            st.counters.deleted_ids.push(id);
            st.fault_counts.delete += 1;
            if fires(st.faults.delete_fail_every, st.fault_counts.delete) {
                return message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error");
            }
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .expect("valid response")
        }
        Route::Download { id, format, .. } => {
            if access.is_none() {
                return message(StatusCode::UNAUTHORIZED, "Requires authentication");
            }
            let Some(a) = st.artifacts.get(&id).filter(|a| a.repo == repo_key) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            if format != "zip" {
                return message(StatusCode::NOT_FOUND, "Not Found");
            }
            if a.expired {
                return message(StatusCode::GONE, "Artifact has expired");
            }
            let expires = unix_millis() + st.url_ttl.as_millis() as u64;
            let sig = st.sign(id, expires);
            let segment = if st.faults.blob_url_opaque {
                "content".to_string()
            } else {
                encode_segment(&blob_file_name(a))
            };
            let location = format!(
                "{}/blob/{id}/{segment}?sv=2023-11-03&se={expires}&sp=r&sig={sig}",
                shared.blob_origin,
            );
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, location)
                .body(Body::empty())
                .expect("valid response")
        }
    }
}

fn list(
    base: &str,
    st: &mut State,
    repo_key: &(String, String),
    run: Option<u64>,
    rel_path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Response {
    let name = query_param(query, "name").map(percent_decode);
    let per_page = query_param(query, "per_page")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(30)
        .clamp(1, 100) as usize;
    let page = query_param(query, "page")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1)
        .max(1) as usize;
    let mut matching: Vec<_> = st
        .artifacts
        .values()
        .filter(|a| &a.repo == repo_key)
        .filter(|a| run.is_none_or(|r| a.run_id == r))
        .filter(|a| name.as_deref().is_none_or(|n| a.name == n))
        .collect();
    matching.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let total = matching.len();
    let items: Vec<Value> = matching
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|a| st.artifact_json(a, base))
        .collect();
    let body = json!({ "total_count": total, "artifacts": items });

    let last = total.div_ceil(per_page).max(1);
    let mut links = Vec::new();
    let link = |p: usize, rel: &str| {
        let mut q = format!("per_page={per_page}&page={p}");
        if let Some(n) = &name {
            q = format!("name={}&{q}", encode_segment(n));
        }
        format!(
            "<{}{}?{q}>; rel=\"{rel}\"",
            base,
            rel_path.trim_end_matches('/')
        )
    };
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let link_header = (!links.is_empty()).then(|| links.join(", "));
    conditional(st, headers, &body, link_header)
}

/// A JSON answer with a weak ETag; 304 when the client already holds it.
fn conditional(
    st: &mut State,
    headers: &HeaderMap,
    body: &Value,
    link: Option<String>,
) -> Response {
    let text = body.to_string();
    let etag = format!(
        "W/\"{}\"",
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut b = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "private, max-age=60, s-maxage=60")
        .header(header::VARY, "Accept, Authorization, Cookie, X-GitHub-OTP");
    if let Some(l) = link {
        b = b.header(header::LINK, l);
    }
    if matches {
        st.counters.not_modified += 1;
        b.status(StatusCode::NOT_MODIFIED)
            .header("x-fake-not-modified", "1")
            .body(Body::empty())
            .expect("valid response")
    } else {
        b.status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Body::from(text))
            .expect("valid response")
    }
}

/// `x-ratelimit-*` on every answer; 304s and the fault answers that set their own are free.
fn add_rate_limit_headers(st: &mut State, resp: &mut Response, token: Option<&str>) {
    let h = resp.headers_mut();
    let free = h.remove("x-fake-not-modified").is_some();
    if h.remove("x-fake-exhausted").is_some() {
        h.insert("x-ratelimit-limit", HeaderValue::from(QUOTA_AUTHENTICATED));
        h.insert("x-ratelimit-used", HeaderValue::from(QUOTA_AUTHENTICATED));
        h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
        return;
    }
    let limit = if token.is_some() {
        QUOTA_AUTHENTICATED
    } else {
        QUOTA_ANONYMOUS
    };
    if unix_now() >= st.quota_reset {
        st.quota_used.clear();
        st.quota_reset = unix_now() + 3600;
    }
    let used = st
        .quota_used
        .entry(token.unwrap_or("").to_string())
        .or_default();
    if !free {
        *used += 1;
    }
    // The fake never enforces the quota by itself (tests use the fault switch for that).
    let used = (*used).min(limit);
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(limit - used));
    h.insert("x-ratelimit-used", HeaderValue::from(used));
    h.insert("x-ratelimit-reset", HeaderValue::from(st.quota_reset));
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    h.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(
            parse_route(&Method::GET, "/repos/o/r/actions/artifacts"),
            Some(Route::ListRepo { .. })
        ));
        assert!(matches!(
            parse_route(&Method::GET, "/repos/o/r/actions/runs/5/artifacts"),
            Some(Route::ListRun { run: 5, .. })
        ));
        assert!(matches!(
            parse_route(&Method::DELETE, "/repos/o/r/actions/artifacts/7"),
            Some(Route::Delete { id: 7, .. })
        ));
        assert!(matches!(
            parse_route(&Method::GET, "/repos/o/r/actions/artifacts/7/zip"),
            Some(Route::Download { id: 7, .. })
        ));
        assert!(parse_route(&Method::POST, "/repos/o/r/actions/artifacts/7").is_none());
        assert!(parse_route(&Method::GET, "/repos/o/r/actions/artifacts/x").is_none());
        assert!(parse_route(&Method::GET, "/user").is_none());
    }

    #[test]
    fn query_and_encoding() {
        assert_eq!(
            query_param("a=1&name=x%20y&per_page=5", "name"),
            Some("x%20y")
        );
        assert_eq!(percent_decode("x%20y+z%2F"), "x y z/");
        assert_eq!(encode_segment("a b/é.zip"), "a%20b%2F%C3%A9.zip");
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
    }
}
