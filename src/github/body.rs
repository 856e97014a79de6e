//! Reading a blob body: exactly the bytes promised, appended to what earlier attempts at the
//! same range already got, and a transfer that stops making progress noticed in seconds
//! rather than at the 30 s read timeout (like curl's `--speed-limit`/`--speed-time`): the
//! wait for the next chunk is judged against the pace this body has kept so far, so a slow
//! link is not taken for a stalled one.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use reqwest::Response;
use url::Url;

use super::client::{error_chain, redact};
use super::error::ApiError;

/// The shortest wait for a next chunk before the transfer counts as stalled.
pub const MIN_STALL: Duration = Duration::from_secs(1);
/// The longest (the HTTP client's read timeout takes over past it).
pub const MAX_STALL: Duration = Duration::from_secs(30);
/// How many times the body's mean gap between chunks a wait may last.
const PACE_FACTOR: u32 = 20;

/// How long to wait for the next chunk after `chunks` chunks arrived in `elapsed`.
pub fn stall_limit(chunks: u32, elapsed: Duration) -> Duration {
    if chunks == 0 {
        return MIN_STALL * 2; // the first byte also waits for the host to find the blob
    }
    (elapsed / chunks * PACE_FACTOR).clamp(MIN_STALL, MAX_STALL)
}

/// How reading a body failed.
pub enum BodyError {
    /// The connection broke, or stopped making progress: worth another attempt that asks
    /// for the rest.
    Retry(ApiError),
}

/// Appends the body to `buf` until it holds `expect` bytes; fewer (a body that ends early,
/// breaks off or stalls) is an error, with what arrived left in `buf`.
pub async fn read_into(
    mut resp: Response,
    url: &Url,
    expect: u64,
    buf: &mut BytesMut,
) -> Result<(), BodyError> {
    let start = Instant::now();
    let mut chunks = 0u32;
    while (buf.len() as u64) < expect {
        let wait = stall_limit(chunks, start.elapsed());
        match tokio::time::timeout(wait, resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                let room = (expect - buf.len() as u64) as usize;
                buf.extend_from_slice(&c[..c.len().min(room)]);
                chunks += 1;
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                return Err(BodyError::Retry(ApiError::Network(format!(
                    "{}: {}",
                    redact(url),
                    error_chain(&e)
                ))));
            }
            Err(_) => {
                tracing::info!(
                    "{}: no progress for {wait:?} after {} of {expect} bytes: asking again for the rest",
                    redact(url),
                    buf.len()
                );
                return Err(BodyError::Retry(ApiError::Network(format!(
                    "{}: stalled after {} of {expect} bytes",
                    redact(url),
                    buf.len()
                ))));
            }
        }
    }
    if (buf.len() as u64) < expect {
        return Err(BodyError::Retry(ApiError::Network(format!(
            "{}: body ended after {} of {expect} bytes",
            redact(url),
            buf.len()
        ))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_link_is_given_time_a_fast_one_is_not() {
        // 100 chunks in 0.1 s: a fast link, the floor applies.
        assert_eq!(stall_limit(100, Duration::from_millis(100)), MIN_STALL);
        // 10 chunks in 5 s: half a second apart, so 10 s of silence is still normal.
        assert_eq!(
            stall_limit(10, Duration::from_secs(5)),
            Duration::from_secs(10)
        );
        // Never past the read timeout.
        assert_eq!(stall_limit(1, Duration::from_secs(100)), MAX_STALL);
        assert!(stall_limit(0, Duration::ZERO) > MIN_STALL);
    }
}
