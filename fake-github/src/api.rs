//! The API listener: GitHub's five artifact endpoints with GitHub's shapes, status codes and
//! headers (pages in `pages`, the rate limit in `quota`), 302 to a signed blob URL, 410 for
//! expired, 204 delete, 401/403/404 by token, `GET /users/{login}`, renamed and transferred
//! repositories (301, or 307 for other methods, to `/repositories/{id}/...`, which answers
//! too), 403 for a request without a `User-Agent` (as GitHub does), plus the API-side fault
//! switches.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::faults::fires;
use crate::quota::{self, EXHAUSTED_MARK};
use crate::routes::{Action, RepoSel, Route, parse_route};
use crate::state::{State, blob_file_name, key, unix_millis, unix_now};
use crate::{Shared, TokenAccess, pages};

const DOCS: &str = "https://docs.github.com/rest/actions/artifacts";

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body.to_string()))
        .expect("valid response")
}

pub(crate) fn message(status: StatusCode, msg: &str) -> Response {
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
pub(crate) fn encode_segment(s: &str) -> String {
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

pub(crate) fn percent_decode(s: &str) -> String {
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
    {
        let mut st = shared.state.lock().unwrap();
        if let Some(t) = &token {
            st.counters.api_tokens_seen.insert(t.clone());
        }
        if let Some(ua) = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            st.counters.api_user_agents.insert(ua.to_string());
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/vnd.github+json"));
        if !accept || !headers.contains_key("x-github-api-version") {
            st.counters.api_without_documented_headers += 1;
        }
    }
    if headers
        .get(header::USER_AGENT)
        .is_none_or(|v| v.as_bytes().trim_ascii().is_empty())
    {
        shared.state.lock().unwrap().counters.refused_no_user_agent += 1;
        return Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from(
                "Request forbidden by administrative rules. Please make sure your request has \
                 a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).\n",
            ))
            .expect("valid response");
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
        quota::add_headers(&mut st, &mut resp, token.as_deref());
        let mut cut = false;
        if resp.status() == StatusCode::OK {
            st.fault_counts.api_ok += 1;
            cut = fires(st.faults.api_truncate_every, st.fault_counts.api_ok);
            if cut {
                st.counters.inject("api_cut");
            }
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
    st.counters.api_request_log.push(if query.is_empty() {
        format!("{method} {rel}")
    } else {
        format!("{method} {rel}?{query}")
    });
    if route.endpoint() == "delete" {
        st.counters.delete_requests += 1;
    }

    // Faults and the rate limit first: they model the service failing before it looks at
    // the request.
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
            h.insert(EXHAUSTED_MARK, HeaderValue::from_static("1"));
            return r;
        }
        st.rate_limited_until = None;
    }
    if let Some(r) = quota::refuse_if_spent(st, token) {
        return r;
    }
    st.fault_counts.api += 1;
    let n = st.fault_counts.api;
    if fires(st.faults.api_429_every, n) {
        st.counters.inject("api_429");
        let mut r = message(
            StatusCode::TOO_MANY_REQUESTS,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    if fires(st.faults.api_fail_every, n) {
        st.counters.inject("api_502");
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
    let (repo, action, rest) = match route {
        Route::User(login) => return user(st, &login),
        Route::Repo { repo, action, rest } => (repo, action, rest),
    };
    let repo_key = match &repo {
        RepoSel::Name(owner, name) => key(owner, name),
        RepoSel::Id(id) => match st.repos.iter().find(|(_, r)| r.id == *id) {
            Some((k, _)) => k.clone(),
            None => return message(StatusCode::NOT_FOUND, "Not Found"),
        },
    };
    let visible = |st: &State, k: &(String, String)| {
        st.repos
            .get(k)
            .is_some_and(|r| !r.private || access.is_some())
    };
    if let Some(elsewhere) = st.moved_elsewhere.get(&repo_key) {
        return moved_to(elsewhere, &rest, query, method);
    }
    if !st.repos.contains_key(&repo_key) {
        // Renamed or transferred: a permanent redirect to the repository by id.
        let moved = st.moved.get(&repo_key).copied();
        let target = moved.and_then(|id| st.repos.iter().find(|(_, r)| r.id == id));
        return match target {
            Some((k, r)) if visible(st, k) => moved_to(
                &format!("{base}/repositories/{}", r.id),
                &rest,
                query,
                method,
            ),
            _ => message(StatusCode::NOT_FOUND, "Not Found"),
        };
    }
    if !visible(st, &repo_key) {
        return message(StatusCode::NOT_FOUND, "Not Found");
    }

    match action {
        Action::ListRepo => pages::list(base, st, &repo_key, None, rel, query, headers),
        Action::ListRun(run) => pages::list(base, st, &repo_key, Some(run), rel, query, headers),
        Action::ListRuns | Action::WorkflowRuns(_) => {
            let wf = match &action {
                Action::WorkflowRuns(w) => Some(w.as_str()),
                _ => None,
            };
            let Some(runs) = st.runs_matching(&repo_key, wf, query) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let items = runs.iter().map(|r| st.run_json(base, r)).collect();
            let keep: String = ["branch", "event", "status", "head_sha"]
                .iter()
                .filter_map(|k| query_param(query, k).map(|v| format!("{k}={v}&")))
                .collect();
            pages::paged(
                st,
                headers,
                base,
                rel,
                query,
                "workflow_runs",
                items,
                Some(keep),
            )
        }
        Action::GetRun(id) => {
            let Some(r) = st.runs.get(&id).filter(|r| r.repo == repo_key) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let body = st.run_json(base, r);
            pages::conditional(st, headers, &body, None)
        }
        Action::RunJobs(id) => {
            let Some(r) = st.runs.get(&id).filter(|r| r.repo == repo_key) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let all = query_param(query, "filter") == Some("all");
            let items = st.jobs_json(base, r, all);
            let keep = all.then(|| "filter=all&".to_string());
            pages::paged(st, headers, base, rel, query, "jobs", items, keep)
        }
        Action::ListWorkflows => {
            let items = st
                .workflows
                .iter()
                .filter(|((r, _), _)| *r == repo_key)
                .map(|((r, path), w)| st.workflow_json(base, r, path, w))
                .collect();
            pages::paged(st, headers, base, rel, query, "workflows", items, None)
        }
        Action::GetWorkflow(w) => {
            let Some((path, wf)) = st.find_workflow(&repo_key, &w) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let body = st.workflow_json(base, &repo_key, path, wf);
            pages::conditional(st, headers, &body, None)
        }
        Action::GetPull(n) => {
            let Some(p) = st.pulls.get(&(repo_key.clone(), n)) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let body = st.pull_json(base, &repo_key, p);
            pages::conditional(st, headers, &body, None)
        }
        Action::RunLogs(run, attempt) => {
            if access.is_none() {
                return message(StatusCode::UNAUTHORIZED, "Requires authentication");
            }
            st.run_logs_download(&shared.blob_origin, &repo_key, run, attempt)
        }
        Action::JobLogs(job) => {
            if access.is_none() {
                return message(StatusCode::UNAUTHORIZED, "Requires authentication");
            }
            st.job_logs_download(&shared.blob_origin, &repo_key, job)
        }
        Action::Get(id) => {
            let Some(a) = st.artifacts.get(&id).filter(|a| a.repo == repo_key) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let body = st.artifact_json(a, base);
            pages::conditional(st, headers, &body, None)
        }
        Action::Delete(id) => {
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
                st.counters.inject("delete_500");
                return message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error");
            }
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .expect("valid response")
        }
        Action::Download { id, format } => {
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

/// GitHub's answer for a renamed or transferred repository: 301 (GET/HEAD) or 307 (anything
/// else, so the method is kept) to the same request under `to` (`{api}/repositories/{id}`).
fn moved_to(to: &str, rest: &str, query: &str, method: &Method) -> Response {
    let mut location = format!("{to}/{rest}");
    if !query.is_empty() {
        location = format!("{location}?{query}");
    }
    let status = if *method == Method::GET || *method == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    let mut r = json_response(
        status,
        &json!({ "message": "Moved Permanently", "url": location, "documentation_url": DOCS }),
    );
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("a URL is a header value"),
    );
    r
}

/// `GET /users/{login}`: users and organisations alike; 404 for anyone unknown.
fn user(st: &State, login: &str) -> Response {
    match st.users.get(&login.to_ascii_lowercase()) {
        Some(u) => json_response(
            StatusCode::OK,
            &json!({
                "login": u.login,
                "id": u.id,
                "type": if u.organization { "Organization" } else { "User" },
            }),
        ),
        None => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
