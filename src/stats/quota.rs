//! The quota budget of speculative API requests: requests nobody asked for (directory
//! readahead's zip-or-raw probes and the download redirects of its central-directory reads)
//! run inside [`speculatively`], and the client asks [`admit`] before sending each one. Per
//! rate-limit window (a new `x-ratelimit-reset`), speculation spends at most a tenth of the
//! `x-ratelimit-remaining` seen when the window began, and nothing once remaining is below a
//! fifth of `x-ratelimit-limit`; each pass (one listing of `runs/`) at most its own cap.
//! Requests people make are never refused here. What speculation spent is counted apart
//! ([`super::Stats`]), so `artifactfs status` shows both.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Stats;

tokio::task_local! {
    /// The pass a speculative request belongs to: how many it may still send.
    static PASS: Arc<AtomicU64>;
}

/// Runs `f` as speculation: each API request it sends is admitted only within the window's
/// budget and `cap` requests for this pass.
pub async fn speculatively<F: Future>(cap: Arc<AtomicU64>, f: F) -> F::Output {
    PASS.scope(cap, f).await
}

/// Whether the current task is speculating.
pub fn is_speculative() -> bool {
    PASS.try_with(|_| ()).is_ok()
}

/// Whether the request about to be sent may go: always for a request someone asked for; for
/// a speculative one, while its pass and the window's budget have room (then it is counted).
pub fn admit(stats: &Stats) -> bool {
    let Ok(pass) = PASS.try_with(Arc::clone) else {
        return true;
    };
    let taken = pass.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if taken.is_err() {
        return false;
    }
    if !stats.speculation_allowed() {
        pass.fetch_add(1, Ordering::SeqCst);
        return false;
    }
    true
}

/// The window speculation is spending in.
#[derive(Debug, Default)]
pub(super) struct Window {
    /// `x-ratelimit-reset` of the window (`None` before any was seen).
    reset: Option<u64>,
    /// `x-ratelimit-remaining` when the window began.
    start_remaining: u64,
    /// Speculative requests admitted in the window.
    spent: u64,
}

impl Window {
    /// Admits one speculative request given the rate limit as last seen (`None`: none seen,
    /// as on a GHES without rate limits: no quota to protect).
    pub(super) fn admit(&mut self, rate: Option<&super::RateLimit>) -> bool {
        let Some(r) = rate else {
            return true;
        };
        let reset = r.reset_unix.unwrap_or(0);
        if self.reset != Some(reset) {
            *self = Window {
                reset: Some(reset),
                start_remaining: r.remaining,
                spent: 0,
            };
        }
        if let Some(limit) = r.limit
            && r.remaining.saturating_mul(5) < limit
        {
            return false;
        }
        if self.spent >= self.start_remaining / 10 {
            return false;
        }
        self.spent += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::RateLimit;
    use super::*;

    fn rate(remaining: u64, reset: u64) -> RateLimit {
        RateLimit {
            remaining,
            limit: Some(5000),
            reset_unix: Some(reset),
        }
    }

    #[test]
    fn a_tenth_of_the_window_and_nothing_below_a_fifth() {
        let mut w = Window::default();
        let admitted = (0..1000).filter(|_| w.admit(Some(&rate(4000, 1)))).count();
        assert_eq!(admitted, 400, "a tenth of 4000");
        // A new window starts a new budget.
        assert!(w.admit(Some(&rate(4999, 2))));
        // Below a fifth of the limit: nothing.
        let mut w = Window::default();
        assert!(!w.admit(Some(&rate(999, 3))));
        assert!(w.admit(Some(&rate(1000, 4))));
        // No rate limit seen: nothing to protect.
        assert!(Window::default().admit(None));
    }

    #[tokio::test]
    async fn only_speculation_is_limited_and_each_pass_has_its_cap() {
        let stats = Stats::with_warnings(Arc::new(super::super::RecentWarnings::new(4)));
        stats.rate_limit_seen(4000, Some(5000), Some(9));
        assert!(!is_speculative());
        assert!(
            (0..1000).all(|_| admit(&stats)),
            "people's requests always go"
        );
        let cap = Arc::new(AtomicU64::new(3));
        let n = speculatively(cap.clone(), async {
            assert!(is_speculative());
            (0..10).filter(|_| admit(&stats)).count()
        })
        .await;
        assert_eq!(n, 3);
        stats.rate_limit_seen(900, Some(5000), Some(9));
        let cap = Arc::new(AtomicU64::new(3));
        let n = speculatively(cap.clone(), async {
            (0..10).filter(|_| admit(&stats)).count()
        })
        .await;
        assert_eq!(n, 0, "below a fifth");
        assert_eq!(
            cap.load(Ordering::SeqCst),
            3,
            "a refusal does not use the pass's cap"
        );
    }
}
