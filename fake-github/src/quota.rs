//! GitHub's primary rate limit, enforced: 60 requests an hour without a token (one budget for
//! every anonymous caller, as for one IP address), 5000 per token. Every answer carries the
//! `x-ratelimit-*` headers; a 304 costs nothing; once a budget is spent every request of that
//! caller is 403 with `x-ratelimit-remaining: 0` until `x-ratelimit-reset`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use crate::api::message;
use crate::state::{State, unix_now};

pub const QUOTA_AUTHENTICATED: u64 = 5000;
pub const QUOTA_ANONYMOUS: u64 = 60;

/// Marks an answer that must not count (a 304); removed before it is sent.
pub(crate) const FREE_MARK: &str = "x-fake-not-modified";
/// Marks the fault switch's "exhausted" answer, which sets its own headers.
pub(crate) const EXHAUSTED_MARK: &str = "x-fake-exhausted";

fn limit(token: Option<&str>) -> u64 {
    if token.is_some() {
        QUOTA_AUTHENTICATED
    } else {
        QUOTA_ANONYMOUS
    }
}

fn roll_window(st: &mut State) {
    if unix_now() >= st.quota_reset {
        st.quota_used.clear();
        st.quota_reset = unix_now() + 3600;
    }
}

fn used(st: &State, token: Option<&str>) -> u64 {
    st.quota_used.get(token.unwrap_or("")).copied().unwrap_or(0)
}

/// The 403 GitHub gives once the caller's budget is spent, or `None` while some is left.
pub(crate) fn refuse_if_spent(st: &mut State, token: Option<&str>) -> Option<Response> {
    roll_window(st);
    if used(st, token) < limit(token) {
        return None;
    }
    st.counters.rate_limited += 1;
    let text = match token {
        Some(_) => "API rate limit exceeded for user ID 1.",
        None => {
            "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated \
             requests get a higher rate limit. Check out the documentation for more details.)"
        }
    };
    Some(message(StatusCode::FORBIDDEN, text))
}

/// Counts the answer against the caller's budget (unless free) and adds the headers.
pub(crate) fn add_headers(st: &mut State, resp: &mut Response, token: Option<&str>) {
    let h = resp.headers_mut();
    let free = h.remove(FREE_MARK).is_some();
    if h.remove(EXHAUSTED_MARK).is_some() {
        h.insert("x-ratelimit-limit", HeaderValue::from(QUOTA_AUTHENTICATED));
        h.insert("x-ratelimit-used", HeaderValue::from(QUOTA_AUTHENTICATED));
        h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
        return;
    }
    roll_window(st);
    let limit = limit(token);
    let refused = resp.status() == StatusCode::FORBIDDEN && used(st, token) >= limit;
    let used = st
        .quota_used
        .entry(token.unwrap_or("").to_string())
        .or_default();
    if !free && !refused {
        *used += 1;
    }
    let used = (*used).min(limit);
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(limit - used));
    h.insert("x-ratelimit-used", HeaderValue::from(used));
    h.insert("x-ratelimit-reset", HeaderValue::from(st.quota_reset));
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
}
