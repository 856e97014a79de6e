//! What one running core is doing, at the bottom of the house so that every layer can count
//! into it: the live counters ([`Stats`]), updated with atomics where the work happens (the
//! GitHub client, the blob remote, the block cache; no lock is ever held across I/O), and the
//! [`Status`] snapshot taken of them, the cache and the core's repositories — plain data that
//! the front ends serve: the mount's status socket and `artifactfs status` (`crate::status`),
//! and the HTTP front end as JSON and in Prometheus's text format ([`prometheus`]). The last
//! warnings and errors come from a tracing layer ([`warnings`]).

pub mod prometheus;
pub mod quota;
pub mod warnings;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::DiskCache;
pub use warnings::{RecentWarnings, Warning};

/// "Not seen yet" for the rate-limit atomics.
const UNKNOWN: u64 = u64::MAX;

/// The live numbers of one core (a mount, or `serve`).
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    /// Blocks a read found in the cache.
    cache_hits: AtomicU64,
    /// Blocks fetched from the network (by readers and readahead alike).
    cache_misses: AtomicU64,
    /// Blob bytes received from the blob host.
    blob_bytes: AtomicU64,
    /// Requests sent to the API host (every attempt, redirects included).
    api_requests: AtomicU64,
    /// Of those, speculative ones (readahead: see [`quota`]).
    api_requests_speculative: AtomicU64,
    /// Speculation's spending in the current rate-limit window.
    speculation: std::sync::Mutex<quota::Window>,
    api_in_flight: AtomicU64,
    blob_in_flight: AtomicU64,
    /// Kernel requests handed to the runtime as a task (those answered on the thread that
    /// received them are not counted).
    requests_spawned: AtomicU64,
    /// Inflate streams started over deflated entries' compressed bytes (from the start or
    /// from a seek point): what random reads cost before an entry's inflated copy exists.
    inflate_streams: AtomicU64,
    /// As last seen in an API answer's `x-ratelimit-*` headers.
    rate_remaining: AtomicU64,
    rate_limit: AtomicU64,
    rate_reset: AtomicU64,
    warnings: Arc<RecentWarnings>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::with_warnings(warnings::global())
    }
}

/// Counts one request in flight until dropped (finished, failed or cancelled).
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    /// Counters whose recent warnings come from `warnings` (the process's log: see
    /// [`warnings::global`]).
    pub fn with_warnings(warnings: Arc<RecentWarnings>) -> Stats {
        Stats {
            started: Instant::now(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            blob_bytes: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            api_requests_speculative: AtomicU64::new(0),
            speculation: Default::default(),
            api_in_flight: AtomicU64::new(0),
            blob_in_flight: AtomicU64::new(0),
            requests_spawned: AtomicU64::new(0),
            inflate_streams: AtomicU64::new(0),
            rate_remaining: AtomicU64::new(UNKNOWN),
            rate_limit: AtomicU64::new(UNKNOWN),
            rate_reset: AtomicU64::new(UNKNOWN),
            warnings,
        }
    }

    pub fn cache_hits(&self, blocks: u64) {
        self.cache_hits.fetch_add(blocks, Ordering::Relaxed);
    }

    pub fn cache_misses(&self, blocks: u64) {
        self.cache_misses.fetch_add(blocks, Ordering::Relaxed);
    }

    pub fn blob_bytes(&self, bytes: u64) {
        self.blob_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One request to the API host, in flight until the guard drops.
    pub fn api_request(&self) -> InFlight<'_> {
        self.api_requests.fetch_add(1, Ordering::Relaxed);
        if quota::is_speculative() {
            self.api_requests_speculative
                .fetch_add(1, Ordering::Relaxed);
        }
        self.api_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.api_in_flight)
    }

    /// One read from the blob host, in flight until the guard drops.
    pub fn blob_request(&self) -> InFlight<'_> {
        self.blob_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.blob_in_flight)
    }

    /// One kernel request handed to the runtime as a task.
    pub fn request_spawned(&self) {
        self.requests_spawned.fetch_add(1, Ordering::Relaxed);
    }

    /// One inflate stream started (see [`Status::inflate_streams`]).
    pub fn inflate_stream(&self) {
        self.inflate_streams.fetch_add(1, Ordering::Relaxed);
    }

    /// What an API answer said about the rate limit (`x-ratelimit-remaining`, `-limit`,
    /// `-reset` in Unix seconds).
    pub fn rate_limit_seen(&self, remaining: u64, limit: Option<u64>, reset: Option<u64>) {
        self.rate_remaining.store(remaining, Ordering::Relaxed);
        self.rate_limit
            .store(limit.unwrap_or(UNKNOWN), Ordering::Relaxed);
        self.rate_reset
            .store(reset.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }

    pub fn warnings(&self) -> &Arc<RecentWarnings> {
        &self.warnings
    }

    /// Whether one more speculative request fits the window's budget (see [`quota`]); if
    /// so it is counted against it.
    pub fn speculation_allowed(&self) -> bool {
        let rate = self.rate();
        self.speculation.lock().unwrap().admit(rate.as_ref())
    }

    fn rate(&self) -> Option<RateLimit> {
        let known = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|&v| v != UNKNOWN);
        Some(RateLimit {
            remaining: known(&self.rate_remaining)?,
            limit: known(&self.rate_limit),
            reset_unix: known(&self.rate_reset),
        })
    }
}

/// The GitHub rate limit as last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub remaining: u64,
    pub limit: Option<u64>,
    /// When the window resets, in Unix seconds.
    pub reset_unix: Option<u64>,
}

/// One snapshot of what a core is doing: what `artifactfs status` shows, and what the HTTP
/// front end serves at `/_status` (JSON) and `/_metrics` (Prometheus).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    /// Where the core is mounted (`None` when it is not a mount).
    pub mountpoint: Option<String>,
    pub uptime_seconds: u64,
    /// When the snapshot was taken, in Unix seconds.
    pub now_unix: u64,
    /// The repositories shown (named, or reached by path and found to exist).
    pub repos: Vec<String>,
    pub cache_dir: String,
    pub cache_used_bytes: u64,
    pub cache_limit_bytes: u64,
    /// Block reads served from the disk cache.
    pub cache_hits: u64,
    /// Blocks fetched from the network.
    pub cache_misses: u64,
    pub blob_bytes_fetched: u64,
    pub api_requests: u64,
    /// Of `api_requests`, those nobody asked for (directory readahead), within the quota
    /// budget; the rest are requests people made.
    #[serde(default)]
    pub api_requests_speculative: u64,
    pub api_requests_in_flight: u64,
    pub blob_requests_in_flight: u64,
    /// Kernel requests that had to wait on the runtime (a task each); the others are
    /// answered from memory on the thread that received them.
    #[serde(default)]
    pub requests_spawned: u64,
    /// Inflate streams started over deflated entries' compressed bytes (from the start or
    /// from a seek point); reads served from an entry's inflated copy start none.
    #[serde(default)]
    pub inflate_streams: u64,
    pub rate_limit: Option<RateLimit>,
    /// Warnings and errors logged since the start.
    pub warnings_total: u64,
    /// The last few of them, oldest first.
    pub recent_warnings: Vec<Warning>,
}

impl Status {
    /// The snapshot now of a core counting into `stats`, with `cache` and showing `repos`.
    pub fn of(stats: &Stats, cache: &DiskCache, repos: Vec<String>) -> Status {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            mountpoint: None,
            uptime_seconds: stats.started.elapsed().as_secs(),
            now_unix: unix_now(),
            repos,
            cache_dir: cache.root().display().to_string(),
            cache_used_bytes: cache.used(),
            cache_limit_bytes: cache.limit(),
            cache_hits: load(&stats.cache_hits),
            cache_misses: load(&stats.cache_misses),
            blob_bytes_fetched: load(&stats.blob_bytes),
            api_requests: load(&stats.api_requests),
            api_requests_speculative: load(&stats.api_requests_speculative),
            api_requests_in_flight: load(&stats.api_in_flight),
            blob_requests_in_flight: load(&stats.blob_in_flight),
            requests_spawned: load(&stats.requests_spawned),
            inflate_streams: load(&stats.inflate_streams),
            rate_limit: stats.rate(),
            warnings_total: stats.warnings.total(),
            recent_warnings: stats.warnings.recent(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a status serializes")
    }

    /// The Prometheus text exposition format: see [`prometheus::render`].
    pub fn to_prometheus(&self) -> String {
        prometheus::render(self)
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_until_dropped() {
        let s = Stats::with_warnings(Arc::new(RecentWarnings::new(10)));
        let a = s.api_request();
        let b = s.api_request();
        let c = s.blob_request();
        assert_eq!(s.api_in_flight.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(s.api_in_flight.load(Ordering::Relaxed), 1);
        drop((b, c));
        assert_eq!(s.api_in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(s.blob_in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(s.api_requests.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_rate_limit_is_unknown_until_seen() {
        let s = Stats::with_warnings(Arc::new(RecentWarnings::new(10)));
        assert_eq!(s.rate(), None);
        s.rate_limit_seen(4999, Some(5000), None);
        assert_eq!(
            s.rate(),
            Some(RateLimit {
                remaining: 4999,
                limit: Some(5000),
                reset_unix: None
            })
        );
    }
}
