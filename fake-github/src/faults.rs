//! Fault switches: the ordinary ways GitHub's API and blob storage fail, on demand.
//!
//! Every switch is off by default. "every N" switches count requests of their kind since the
//! faults were set and fire on every Nth (N = 1: always).

use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every Nth API request answers 502 (before doing anything).
    pub api_fail_every: u64,
    /// Added latency on every API request.
    pub api_delay: Option<Duration>,
    /// Added latency before every blob response.
    pub blob_delay: Option<Duration>,
    /// Every Nth blob body is cut off halfway (the connection drops after half the bytes
    /// promised by `Content-Length`).
    pub blob_truncate_every: u64,
    /// Every Nth blob body stops halfway with the connection left open, as a stalled
    /// transfer does; the fake gives up on it (drops the connection) after
    /// [`STALL_RELEASE`], so a client that never notices still ends.
    pub blob_stall_every: u64,
    /// Every Nth successful (200) API answer has its body cut off halfway (the connection
    /// drops after half the bytes promised by `Content-Length`).
    pub api_truncate_every: u64,
    /// Every Nth API request answers 429 with `Retry-After: 1` (a secondary rate limit).
    pub api_429_every: u64,
    /// The primary rate limit is exhausted for this long from when the faults are set:
    /// 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` at the end of the window.
    pub rate_limit_exhausted_for: Option<Duration>,
    /// Every Nth blob request answers 403, as for an expired signature: that URL stays
    /// refused; a URL issued after such an expiry is spared for 5 s (a fresh URL is good for a
    /// minute), so each reader gets one refresh that works. N = 1 refuses everything.
    pub blob_force_403_every: u64,
    /// Download redirects point at opaque blob paths (`/blob/ID/content`, no file name, no
    /// `.zip`), as other storage back ends give: zip or not must come from the blob's headers.
    pub blob_url_opaque: bool,
    /// The blob host ignores `Range` and always sends the whole blob (200).
    pub no_range: bool,
    /// Throttle blob bodies of one artifact to this many bytes per second.
    pub blob_throttle: Option<(u64, u64)>,
    /// Every blob body at most this many bytes per second (per connection), like a real link.
    pub blob_bandwidth: Option<u64>,
    /// Every Nth DELETE deletes the artifact and then answers 500 anyway.
    pub delete_fail_every: u64,
    /// Changes one byte of a blob in flight, as a bad link or proxy does (the `digest` the
    /// API lists stays the true one).
    pub blob_flip: Option<BlobFlip>,
}

/// Which byte [`Faults::blob_flip`] changes, and how often.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlobFlip {
    /// The artifact whose blob is changed (`None`: every artifact).
    pub artifact: Option<u64>,
    /// Offset of the byte in the blob; a body that covers it carries it XOR 0xFF.
    pub offset: u64,
    /// How many bodies are changed before the link heals (0: every one, forever).
    pub times: u64,
}

/// How long a stalled blob body is held open before the fake drops it.
pub const STALL_RELEASE: Duration = Duration::from_secs(20);

/// True on every `every`th call (counting from 1); never when `every` is 0.
pub(crate) fn fires(every: u64, count: u64) -> bool {
    every != 0 && count.is_multiple_of(every)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_nth() {
        let hits: Vec<u64> = (1..=9).filter(|&c| super::fires(3, c)).collect();
        assert_eq!(hits, vec![3, 6, 9]);
        assert!(!(1..100).any(|c| super::fires(0, c)));
        assert!((1..5).all(|c| super::fires(1, c)));
    }
}
