//! One download of a whole blob, for a host that ignores `Range` (see [`WholeBody`]).

use std::time::Instant;

use bytes::Bytes;
use reqwest::{Response, StatusCode};
use url::Url;

use super::{Attempt, BlobHandle, Retries, check_status, network};
use crate::github::blob_headers::content_range;
use crate::github::body::stall_limit;
use crate::github::client::{error_chain, redact};
use crate::github::error::ApiError;

impl BlobHandle {
    /// The whole blob, piece by piece as it arrives (see [`WholeBody`]).
    pub fn stream_whole(&self) -> WholeBody<'_> {
        WholeBody {
            handle: self,
            resp: None,
            url: None,
            pos: 0,
            skip: 0,
            total: None,
            started: Instant::now(),
            chunks: 0,
            retry: Retries::new(&self.target, &self.blob.retry),
        }
    }
}

/// One download of the whole blob (a host that ignores `Range`), read piece by piece: it
/// starts with the whole answer a ranged request got, if one is waiting, and a transfer that
/// breaks off or stalls is asked for again (403: a fresh URL; network, 5xx: backoff) and
/// read on from where it stopped, the bytes already given skipped.
pub struct WholeBody<'a> {
    handle: &'a BlobHandle,
    resp: Option<Response>,
    url: Option<Url>,
    /// Bytes given so far.
    pos: u64,
    /// Bytes of the current answer to pass over (given before it broke off).
    skip: u64,
    /// The blob's length, from the first answer.
    total: Option<u64>,
    /// Pace of the current answer (for stall detection).
    started: Instant,
    chunks: u32,
    retry: Retries<'a>,
}

impl WholeBody<'_> {
    /// The next piece; `None` after the last.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            if self.total.is_some_and(|t| self.pos >= t) {
                return Ok(None);
            }
            let Some(resp) = self.resp.as_mut() else {
                self.open().await?;
                continue;
            };
            let wait = stall_limit(self.chunks, self.started.elapsed());
            let failure = match tokio::time::timeout(wait, resp.chunk()).await {
                Ok(Ok(Some(mut c))) => {
                    self.chunks += 1;
                    if self.skip > 0 {
                        let n = self.skip.min(c.len() as u64);
                        self.skip -= n;
                        c = c.slice(n as usize..);
                        if c.is_empty() {
                            continue;
                        }
                    }
                    self.pos += c.len() as u64;
                    return Ok(Some(c));
                }
                Ok(Ok(None)) if self.total.is_none() => return Ok(None),
                Ok(Ok(None)) => format!("body ended after {} bytes", self.pos),
                Ok(Err(e)) => error_chain(&e),
                Err(_) => format!("stalled after {} bytes", self.pos),
            };
            let url = self.url.take().expect("an answer has its URL");
            self.resp = None;
            let e = ApiError::Network(format!("{}: {failure}", redact(&url)));
            self.retry
                .after(Attempt::Retry(e), url, "whole download")
                .await?;
        }
    }

    /// The next answer: the one a ranged request parked, else a fresh `GET` (no `Range`:
    /// the host would ignore it).
    async fn open(&mut self) -> Result<(), ApiError> {
        let parked = self.handle.parked.lock().unwrap().take();
        let (url, resp) = match parked {
            Some((_, resp)) => (resp.url().clone(), resp),
            None => loop {
                let url = self.handle.url(self.retry.stale.as_ref()).await?;
                let sent = self.handle.blob.http.get(url.clone()).send().await;
                let r = sent
                    .map_err(|e| Attempt::Retry(network(&url, &e)))
                    .and_then(|resp| check_status(resp, &url));
                match r {
                    Ok(resp) => break (url, resp),
                    Err(a) => self.retry.after(a, url, "whole download").await?,
                }
            },
        };
        let total = match resp.status() {
            StatusCode::PARTIAL_CONTENT => content_range(resp.headers()).map(|(_, _, t)| t),
            StatusCode::RANGE_NOT_SATISFIABLE => Some(0),
            _ => resp.content_length(),
        };
        if self.total.is_none() {
            self.total = total;
        }
        if let (Some(a), Some(b)) = (self.total, total)
            && a != b
        {
            return Err(ApiError::Protocol(format!(
                "{}: the blob was {a} bytes, now {b}",
                redact(&url)
            )));
        }
        // What this answer repeats of what was given (it starts at the range's start when
        // it is a 206, else at 0).
        let start = (resp.status() == StatusCode::PARTIAL_CONTENT)
            .then(|| content_range(resp.headers()).map(|(s, _, _)| s))
            .flatten()
            .unwrap_or(0);
        self.skip = self.pos.saturating_sub(start);
        self.resp = Some(resp);
        self.url = Some(url);
        self.started = Instant::now();
        self.chunks = 0;
        Ok(())
    }
}
