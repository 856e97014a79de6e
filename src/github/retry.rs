//! When and how long to retry: exponential backoff with full jitter, bounded by a number of
//! attempts and a total time budget, and the waits GitHub's rate-limit headers ask for; what
//! those headers say is logged and kept for the mount's status ([`note_quota`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

use crate::stats::Stats;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest we wait for a rate limit to reset before giving up with EIO.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1` (attempt counts from 1): a random time in
    /// `[d/2, d]` where `d = base * 2^(attempt-1)`, capped at `max_delay`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let d = exp.min(self.max_delay);
        let half = d / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in [0, 1) that differs between calls (no RNG crate for this).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// What a 403/429 response says about rate limiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateLimit {
    /// Not a rate limit (a plain 403).
    None,
    /// Primary limit exhausted: wait this long (until `x-ratelimit-reset`).
    Primary(Duration),
    /// Secondary limit: `retry-after` when given, else `None` (back off ≥ 60 s, GitHub says).
    Secondary(Option<Duration>),
}

/// Classifies a 403 or 429 answer by its headers (and body text for secondary limits).
pub fn rate_limit(status: u16, headers: &HeaderMap, body: &str) -> RateLimit {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return RateLimit::Secondary(Some(Duration::from_secs(secs)));
    }
    if header("x-ratelimit-remaining").map(str::trim) == Some("0") {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(now + 60);
        return RateLimit::Primary(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    if status == 429 || body.to_ascii_lowercase().contains("rate limit") {
        return RateLimit::Secondary(None);
    }
    RateLimit::None
}

/// Logs the `x-ratelimit-*` headers of an API answer (when it has them) and records them in
/// `stats`.
pub fn note_quota(status: u16, headers: &HeaderMap, stats: &Stats) {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let Some(remaining) = get("x-ratelimit-remaining") else {
        return;
    };
    tracing::info!(
        status,
        remaining,
        limit = get("x-ratelimit-limit").unwrap_or("?"),
        reset = get("x-ratelimit-reset").unwrap_or("?"),
        "API quota"
    );
    let num = |n: &str| get(n).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(left) = num("x-ratelimit-remaining") {
        stats.rate_limit_seen(left, num("x-ratelimit-limit"), num("x-ratelimit-reset"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..10 {
            let d = p.backoff(attempt);
            let full = (p.base_delay * (1 << (attempt - 1))).min(p.max_delay);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        let a: Vec<_> = (0..8).map(|_| p.backoff(4)).collect();
        assert!(a.iter().any(|d| *d != a[0]), "jitter varies: {a:?}");
    }

    #[test]
    fn classifies_rate_limits() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &(now + 10).to_string()),
        ]);
        match rate_limit(403, &h, "") {
            RateLimit::Primary(d) => {
                assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(12))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rate_limit(429, &headers(&[("retry-after", "3")]), ""),
            RateLimit::Secondary(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            rate_limit(
                403,
                &headers(&[]),
                "You have exceeded a secondary rate limit"
            ),
            RateLimit::Secondary(None)
        );
        assert_eq!(
            rate_limit(
                403,
                &headers(&[("x-ratelimit-remaining", "4999")]),
                "Resource not accessible"
            ),
            RateLimit::None
        );
    }
}
