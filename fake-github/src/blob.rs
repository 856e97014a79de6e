//! The blob listener: a stand-in for Azure Blob Storage behind the signed download URLs.
//! Checks the signature and its expiry (403 with an XML error, as Azure does), serves
//! `Range: bytes=N-M` / `bytes=N-` as 206, 416 past the end, 500 for suffix ranges (as Azure's
//! emulator), the whole blob for multi-range requests; and applies the blob-side faults
//! (latency, truncated bodies, forced 403s, ignoring Range, throttling one artifact).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::api::query_param;
use crate::faults::fires;
use crate::state::unix_millis;
use crate::{BlobKind, Shared};

/// How long a URL issued after a forced expiry is spared by the forced-403 fault.
const FRESH_URL_MS: u64 = 5_000;

fn azure_error(status: StatusCode, code: &str, msg: &str) -> Response {
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{msg}</Message></Error>"
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml")
        .header("x-ms-error-code", code)
        .body(Body::from(body))
        .expect("valid response")
}

/// What a `Range` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    Whole,
    /// Inclusive start, optional inclusive end.
    From(u64, Option<u64>),
    Suffix,
    Invalid,
}

pub(crate) fn parse_range(h: Option<&str>) -> RangeRequest {
    let Some(v) = h else {
        return RangeRequest::Whole;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeRequest::Invalid;
    };
    if spec.contains(',') {
        return RangeRequest::Whole; // multi-range: Azure sends the whole blob
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeRequest::Invalid;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        return RangeRequest::Suffix;
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeRequest::Invalid;
    };
    if b.is_empty() {
        return RangeRequest::From(start, None);
    }
    match b.parse::<u64>() {
        Ok(end) if end >= start => RangeRequest::From(start, Some(end)),
        _ => RangeRequest::Invalid,
    }
}

struct Plan {
    body: Bytes,
    content_type: String,
    file_name: String,
    truncate: bool,
    stall: bool,
    throttle: Option<u64>,
    delay: Option<Duration>,
    no_range: bool,
    /// The range asked for (`Whole` when the host ignores Range).
    range: RangeRequest,
    /// Offset in the blob of a byte to change in flight.
    flip: Option<u64>,
}

pub(crate) async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request<Body>) -> Response {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let mut plan = match plan(&shared, &method, &headers, &path, &query) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Some(d) = plan.delay {
        tokio::time::sleep(d).await;
    }
    let total = plan.body.len() as u64;
    let range = std::mem::replace(&mut plan.range, RangeRequest::Whole);
    let (status, mut slice, bounds) = match range {
        RangeRequest::Whole | RangeRequest::Invalid => (StatusCode::OK, plan.body.clone(), None),
        RangeRequest::Suffix => {
            return azure_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "suffix ranges are not supported",
            );
        }
        RangeRequest::From(start, end) => {
            if start >= total {
                let mut r = azure_error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "InvalidRange",
                    "The range specified is invalid for the current size of the resource.",
                );
                r.headers_mut().insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{total}")).expect("ascii"),
                );
                return r;
            }
            let end = end.unwrap_or(total - 1).min(total - 1);
            (
                StatusCode::PARTIAL_CONTENT,
                plan.body.slice(start as usize..=end as usize),
                Some((start, end)),
            )
        }
    };
    if let Some(at) = plan.flip {
        let start = bounds.map_or(0, |(s, _)| s);
        if at >= start && at < start + slice.len() as u64 {
            let mut changed = slice.to_vec();
            changed[(at - start) as usize] ^= 0xFF;
            slice = Bytes::from(changed);
        }
    }
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, &plan.content_type)
        .header(
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}\"",
                plan.file_name.replace('"', "")
            ),
        )
        .header(header::CONTENT_LENGTH, slice.len())
        .header(header::ETAG, "\"0x8DCFAKEBLOB\"")
        .header("x-ms-blob-type", "BlockBlob");
    if !plan.no_range {
        b = b.header(header::ACCEPT_RANGES, "bytes");
    }
    if let Some((start, end)) = bounds {
        b = b.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{end}/{total}"),
        );
    }
    if method == Method::HEAD {
        return b.body(Body::empty()).expect("valid response");
    }
    // Throttled bodies are counted as they trickle out (a client that gives up stops the
    // count); the others when the answer is made.
    let sent = if plan.throttle.is_some() {
        0
    } else if plan.truncate || plan.stall {
        slice.len() as u64 / 2
    } else {
        slice.len() as u64
    };
    let id = blob_id(&path).unwrap_or(0);
    {
        let mut st = shared.state.lock().unwrap();
        st.counters.blob_bytes_total += sent;
        *st.counters.blob_bytes_by_artifact.entry(id).or_default() += sent;
        if status == StatusCode::PARTIAL_CONTENT {
            st.counters.ranges_served += 1;
        }
    }
    let in_flight = InFlight::start(shared.clone());
    let body = if plan.stall {
        stalled(slice, shared.clone())
    } else if plan.truncate {
        // Headers and half the body go out; then the connection drops, as when a proxy or
        // the storage front end gives up mid-transfer.
        let half = slice.slice(..slice.len() / 2);
        let stream = futures_util::stream::unfold(Some(half), |state| async move {
            match state {
                Some(half) => Some((Ok(half), None)),
                None => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let e = std::io::Error::other("fake-github: truncated body");
                    Some((Err(e), None))
                }
            }
        });
        Body::from_stream(stream)
    } else if let Some(bps) = plan.throttle {
        Body::from_stream(throttled(slice, bps, shared.clone(), id))
    } else {
        Body::from(slice)
    };
    b.body(Body::from_stream(tracked(body, in_flight)))
        .expect("valid response")
}

/// Half of `data`, then nothing with the connection open, until the client goes away
/// (counted as abandoned) or [`STALL_RELEASE`] passes (then the connection drops).
fn stalled(data: Bytes, shared: Arc<Shared>) -> Body {
    struct Abandoned(Arc<Shared>, bool);
    impl Drop for Abandoned {
        fn drop(&mut self) {
            if !self.1 {
                self.0.state.lock().unwrap().counters.blob_stalls_abandoned += 1;
            }
        }
    }
    let half = data.slice(..data.len() / 2);
    let guard = Abandoned(shared, false);
    let stream =
        futures_util::stream::unfold((Some(half), guard), |(half, mut guard)| async move {
            match half {
                Some(h) => Some((Ok(h), (None, guard))),
                None => {
                    tokio::time::sleep(crate::faults::STALL_RELEASE).await;
                    guard.1 = true; // released by us, not abandoned
                    let e = std::io::Error::other("fake-github: stalled body released");
                    Some((Err(e), (None, guard)))
                }
            }
        });
    Body::from_stream(stream)
}

/// Counts a blob body as in flight from its headers until it is sent or dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn start(shared: Arc<Shared>) -> InFlight {
        {
            let mut st = shared.state.lock().unwrap();
            st.blob_in_flight += 1;
            st.counters.blob_in_flight_max = st.counters.blob_in_flight_max.max(st.blob_in_flight);
        }
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().blob_in_flight -= 1;
    }
}

/// `body`'s frames, holding `guard` until the last one is sent (or the body is dropped).
fn tracked(
    body: Body,
    guard: InFlight,
) -> impl futures_util::Stream<Item = Result<Bytes, axum::Error>> + Send {
    use futures_util::StreamExt;
    body.into_data_stream().map(move |frame| {
        let _keep = &guard;
        frame
    })
}

/// Sends `data` in 16 KiB chunks at about `bps` bytes per second.
fn throttled(
    data: Bytes,
    bps: u64,
    shared: Arc<Shared>,
    id: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    // About 10 ms of data per chunk, at least 4 KiB.
    let chunk = ((bps / 100) as usize).max(4 * 1024);
    futures_util::stream::unfold(0usize, move |off| {
        let data = data.clone();
        let shared = shared.clone();
        async move {
            if off >= data.len() {
                return None;
            }
            let end = (off + chunk).min(data.len());
            let secs = (end - off) as f64 / bps.max(1) as f64;
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            let n = (end - off) as u64;
            {
                let mut st = shared.state.lock().unwrap();
                st.counters.blob_bytes_total += n;
                *st.counters.blob_bytes_by_artifact.entry(id).or_default() += n;
            }
            Some((Ok(data.slice(off..end)), end))
        }
    })
}

/// The offset to change in this body, if the flip fault covers it (and counts the flip).
fn flip_at(
    st: &mut crate::state::State,
    id: u64,
    is_get: bool,
    range: &RangeRequest,
    total: u64,
) -> Option<u64> {
    let f = st.faults.blob_flip?;
    if !is_get || f.artifact.is_some_and(|a| a != id) || f.offset >= total {
        return None;
    }
    let (start, end) = match *range {
        RangeRequest::From(s, e) => (s, e.unwrap_or(total - 1)),
        _ => (0, total - 1),
    };
    if f.offset < start || f.offset > end {
        return None;
    }
    if f.times != 0 && st.fault_counts.blob_flips >= f.times {
        return None;
    }
    st.fault_counts.blob_flips += 1;
    st.counters.blob_bytes_flipped += 1;
    Some(f.offset)
}

fn blob_id(path: &str) -> Option<u64> {
    path.strip_prefix("/blob/")?.split('/').next()?.parse().ok()
}

/// Checks the request under the lock and decides what to send; `Err` is a finished answer.
fn plan(
    shared: &Shared,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    query: &str,
) -> Result<Plan, Box<Response>> {
    let mut st = shared.state.lock().unwrap();
    st.counters.blob_requests += 1;
    st.counters.hit("blob");
    if headers.contains_key(header::AUTHORIZATION) {
        st.counters.blob_auth_headers_seen += 1;
    }
    if *method != Method::GET && *method != Method::HEAD {
        return Err(Box::new(azure_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnsupportedHttpVerb",
            "The resource doesn't support the specified HTTP verb.",
        )));
    }
    let Some(id) = blob_id(path) else {
        return Err(Box::new(azure_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The specified resource does not exist.",
        )));
    };
    let expires: u64 = query_param(query, "se")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sig = query_param(query, "sig").unwrap_or("");
    if sig != st.sign(id, expires) || expires <= unix_millis() {
        return Err(Box::new(azure_error(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Signed expiry time has passed or the signature is wrong.",
        )));
    }
    // A forced 403 stands for a signature that expired: that URL stays refused, as an
    // expired one does, for everyone holding it. A URL issued after an expiry of its
    // artifact's URL is fresh (a real one is good for a minute): spared for a few seconds,
    // so the readers that shared the expired URL each get one refresh that works. N = 1
    // refuses everything.
    let now = unix_millis();
    let issued = expires.saturating_sub(st.url_ttl.as_millis() as u64);
    let refused = || {
        Err(Box::new(azure_error(
            StatusCode::FORBIDDEN,
            "AuthorizationFailure",
            "This request is not authorized to perform this operation.",
        )))
    };
    if st.expired_signatures.contains(sig) {
        return refused();
    }
    let fresh = st
        .forced_expiry_at
        .get(&id)
        .is_some_and(|&t| issued >= t && now < issued + FRESH_URL_MS);
    st.fault_counts.blob_403 += 1;
    let every = st.faults.blob_force_403_every;
    if fires(every, st.fault_counts.blob_403) && (every == 1 || !fresh) {
        st.counters.inject("blob_403");
        st.expired_signatures.insert(sig.to_string());
        st.forced_expiry_at.insert(id, now);
        return refused();
    }
    let found = match (st.artifacts.get(&id), st.logs.blobs.get(&id)) {
        (Some(a), _) => Some(match &a.kind {
            BlobKind::Zip => (
                "application/zip".to_string(),
                format!("{}.zip", a.name),
                a.body.clone(),
            ),
            BlobKind::Raw {
                file_name,
                content_type,
            } => (content_type.clone(), file_name.clone(), a.body.clone()),
        }),
        (None, Some(l)) => Some((
            l.content_type.to_string(),
            l.file_name.clone(),
            l.body.clone(),
        )),
        (None, None) => None,
    };
    let Some((content_type, file_name, body)) = found else {
        return Err(Box::new(azure_error(
            StatusCode::NOT_FOUND,
            "BlobNotFound",
            "The specified blob does not exist.",
        )));
    };
    let is_get = *method == Method::GET;
    if is_get {
        st.fault_counts.blob += 1;
    }
    let truncate =
        is_get && fires(st.faults.blob_truncate_every, st.fault_counts.blob) && body.len() > 1;
    if truncate {
        st.counters.inject("blob_cut");
    }
    let stall = is_get
        && !truncate
        && fires(st.faults.blob_stall_every, st.fault_counts.blob)
        && body.len() > 1;
    if stall {
        st.counters.blob_stalls += 1;
    }
    let throttle = st
        .faults
        .blob_throttle
        .and_then(|(tid, bps)| (tid == id).then_some(bps))
        .or(st.faults.blob_bandwidth);
    // What the answer covers: the whole blob when the host ignores Range.
    let range = if st.faults.no_range {
        RangeRequest::Whole
    } else {
        parse_range(headers.get(header::RANGE).and_then(|v| v.to_str().ok()))
    };
    let flip = flip_at(&mut st, id, is_get, &range, body.len() as u64);
    Ok(Plan {
        range,
        flip,
        body,
        content_type,
        file_name,
        truncate,
        stall,
        throttle,
        delay: st.faults.blob_delay,
        no_range: st.faults.no_range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None), RangeRequest::Whole);
        assert_eq!(
            parse_range(Some("bytes=0-9")),
            RangeRequest::From(0, Some(9))
        );
        assert_eq!(parse_range(Some("bytes=10-")), RangeRequest::From(10, None));
        assert_eq!(parse_range(Some("bytes=-10")), RangeRequest::Suffix);
        assert_eq!(parse_range(Some("bytes=0-1,5-6")), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=9-3")), RangeRequest::Invalid);
        assert_eq!(parse_range(Some("items=1-2")), RangeRequest::Invalid);
        assert_eq!(blob_id("/blob/1001/x.zip"), Some(1001));
    }
}
