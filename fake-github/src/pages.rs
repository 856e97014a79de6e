//! The list endpoints' answers: pages (`per_page` clamped to 1..=100, default 30; `page`),
//! newest first, the `name` filter, `Link` (`prev`/`next`/`last`/`first`) on a 200, and the
//! weak `ETag` that makes a repeated request a free 304. A 304 carries only what RFC 9110
//! §15.4.5 asks a server to repeat (ETag, Cache-Control, Date, Vary; and the rate-limit
//! headers): no `Link`, so a client must remember each page's next link itself.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::{encode_segment, percent_decode, query_param};
use crate::quota::FREE_MARK;
use crate::state::State;

pub(crate) fn list(
    base: &str,
    st: &mut State,
    repo_key: &(String, String),
    run: Option<u64>,
    rel_path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Response {
    let name = query_param(query, "name").map(percent_decode);
    let mut matching: Vec<_> = st
        .artifacts
        .values()
        .filter(|a| &a.repo == repo_key)
        .filter(|a| run.is_none_or(|r| a.run_id == r))
        .filter(|a| name.as_deref().is_none_or(|n| a.name == n))
        .collect();
    matching.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let items: Vec<Value> = matching.iter().map(|a| st.artifact_json(a, base)).collect();
    let keep = name.map(|n| format!("name={}&", encode_segment(&n)));
    paged(st, headers, base, rel_path, query, "artifacts", items, keep)
}

/// One page of `items` as `{"total_count": N, key: [...]}` (`per_page` clamped to 1..=100,
/// default 30; `page`), with `Link` to the other pages (their query starts with `keep`: the
/// list's filters) and a weak ETag.
#[allow(clippy::too_many_arguments)]
pub(crate) fn paged(
    st: &mut State,
    headers: &HeaderMap,
    base: &str,
    rel_path: &str,
    query: &str,
    key: &str,
    items: Vec<Value>,
    keep: Option<String>,
) -> Response {
    let per_page = query_param(query, "per_page")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(30)
        .clamp(1, 100) as usize;
    let page = query_param(query, "page")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(1)
        .max(1) as usize;
    let total = items.len();
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let body = json!({ "total_count": total, key: items });

    let last = total.div_ceil(per_page).max(1);
    let mut links = Vec::new();
    let keep = keep.unwrap_or_default();
    let link = |p: usize, rel: &str| {
        format!(
            "<{}{}?{keep}per_page={per_page}&page={p}>; rel=\"{rel}\"",
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
pub(crate) fn conditional(
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
    let b = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "private, max-age=60, s-maxage=60")
        .header(header::VARY, "Accept, Authorization, Cookie, X-GitHub-OTP");
    if matches {
        st.counters.not_modified += 1;
        return b
            .status(StatusCode::NOT_MODIFIED)
            .header(FREE_MARK, "1")
            .body(Body::empty())
            .expect("valid response");
    }
    let mut b = b
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("x-github-api-version-selected", "2022-11-28");
    if let Some(l) = link {
        b = b.header(header::LINK, l);
    }
    b.body(Body::from(text)).expect("valid response")
}
