//! What the fake server saw: requests per endpoint, blob bytes per artifact, Authorization
//! headers reaching each listener, deletions. Tests and benchmarks assert on these.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Requests by endpoint: `list_repo`, `list_run`, `get`, `delete`, `download`, `user`,
    /// `runs`, `run`, `jobs`, `workflows`, `workflow_runs`, `pull`, `blob`.
    pub by_endpoint: BTreeMap<String, u64>,
    pub api_requests: u64,
    pub blob_requests: u64,
    /// Body bytes the blob host sent (GET only; HEAD sends none).
    pub blob_bytes_total: u64,
    pub blob_bytes_by_artifact: BTreeMap<u64, u64>,
    /// Requests to the blob host that carried an `Authorization` header (must stay 0).
    pub blob_auth_headers_seen: u64,
    /// Requests to the API that carried an `Authorization` header.
    pub api_auth_headers_seen: u64,
    /// Every token the API was sent, accepted or not (a test's way to see where a token went).
    pub api_tokens_seen: BTreeSet<String>,
    pub delete_requests: u64,
    /// Artifacts actually deleted, in order.
    pub deleted_ids: Vec<u64>,
    /// `User-Agent`s the API saw.
    pub api_user_agents: BTreeSet<String>,
    /// API requests without `Accept: application/vnd.github+json` or without
    /// `X-GitHub-Api-Version` (both documented as what a client should send).
    pub api_without_documented_headers: u64,
    /// API requests refused for want of a `User-Agent` (403, as GitHub does).
    pub refused_no_user_agent: u64,
    /// API requests refused because the caller's rate-limit budget was spent (403).
    pub rate_limited: u64,
    /// Conditional requests answered 304.
    pub not_modified: u64,
    /// Faults the switches actually injected, by kind: `api_502`, `api_429`, `api_cut`,
    /// `delete_500`, `blob_403`, `blob_cut`.
    pub injected: BTreeMap<String, u64>,
    /// Blob answers that were 206 Partial Content.
    pub ranges_served: u64,
    /// Blob bodies sent with one byte changed (the `blob_flip` fault).
    pub blob_bytes_flipped: u64,
    /// The most blob bodies being sent at the same time.
    pub blob_in_flight_max: u64,
    /// Every API request to a GitHub endpoint, as `METHOD /path?query` (the path without
    /// the GHES prefix): what a test checks against GitHub's description of the endpoints.
    #[serde(skip)]
    pub api_request_log: Vec<String>,
    /// Blob bodies stalled halfway (the `blob_stall_every` fault).
    pub blob_stalls: u64,
    /// Stalled bodies the client gave up on before the fake released them.
    pub blob_stalls_abandoned: u64,
}

impl Counters {
    /// Requests seen for one endpoint (0 when none).
    pub fn endpoint(&self, name: &str) -> u64 {
        self.by_endpoint.get(name).copied().unwrap_or(0)
    }

    /// Faults of one kind injected so far (0 when none).
    pub fn injected(&self, kind: &str) -> u64 {
        self.injected.get(kind).copied().unwrap_or(0)
    }

    pub(crate) fn inject(&mut self, kind: &str) {
        *self.injected.entry(kind.to_string()).or_default() += 1;
    }

    pub(crate) fn hit(&mut self, name: &str) {
        *self.by_endpoint.entry(name.to_string()).or_default() += 1;
    }
}
