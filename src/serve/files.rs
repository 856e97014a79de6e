//! A file's answer: its validators (`ETag` from what the bytes are, `Last-Modified` from the
//! entry's time), `If-None-Match`/`If-Modified-Since` → 304, one `Range` → 206 (416 when
//! unsatisfiable), `HEAD`, and the body streamed from the core through open/read/release
//! in 1 MiB reads, as the FUSE adapter reads, so a big file starts at once and never sits in
//! memory. A read failing mid-body ends the stream with an error, which makes hyper abort the
//! connection: a client never sees a complete-looking body with the wrong bytes.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use headers::{ETag, HeaderMapExt, IfModifiedSince, IfNoneMatch, IfRange, LastModified};
use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};
use sha2::{Digest, Sha256};

use crate::filesystem::{ArtifactFs, Attr};

use super::paths::UrlPath;
use super::respond::{self, CACHE_CONTROL};

/// Bytes asked of the core per read.
pub const CHUNK: u32 = 1 << 20;

/// What a request asks of a file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangePlan {
    /// All of it (no `Range`, a malformed one, several ranges, or `If-Range` failed).
    Full,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// No byte of the file is in the range: 416.
    Unsatisfiable,
}

/// The plan for a `Range` header value and a file of `len` bytes. Only single byte ranges
/// are served as 206; a malformed header is ignored and several ranges get the whole file
/// (both as RFC 9110 allows).
pub fn plan_range(value: Option<&str>, len: u64) -> RangePlan {
    let Some(value) = value else {
        return RangePlan::Full;
    };
    let ranges = match http_range_header::parse_range_header(value) {
        Ok(r) => r.ranges,
        Err(RangeUnsatisfiableError::ZeroSuffix) => return RangePlan::Unsatisfiable,
        Err(_) => return RangePlan::Full,
    };
    let [r] = ranges.as_slice() else {
        return RangePlan::Full;
    };
    if len == 0 {
        return RangePlan::Unsatisfiable;
    }
    let last = len - 1;
    let (start, end) = match (r.start, r.end) {
        (StartPosition::Index(s), EndPosition::Index(e)) if s > e => return RangePlan::Full,
        (StartPosition::Index(s), EndPosition::Index(e)) => (s, e.min(last)),
        (StartPosition::Index(s), EndPosition::LastByte) => (s, last),
        (StartPosition::FromLast(n), _) => (len.saturating_sub(n), last),
    };
    if start > last {
        return RangePlan::Unsatisfiable;
    }
    RangePlan::Part(start, end)
}

/// What names one version of a file's bytes: the artifact (its digest, else its id, size and
/// creation time, as the cache names it), the path inside it and the entry's CRC-32 and
/// size. Read from the core's extended attributes; nothing is fetched for it but the
/// central directory the walk to the file already needed.
pub async fn etag_for(
    fs: &ArtifactFs,
    path: &UrlPath,
    trail: &[Attr],
    file: &Attr,
) -> Option<ETag> {
    etag_text(fs, &path.segments, trail, file)
        .await?
        .parse()
        .ok()
}

/// [`etag_for`] as the quoted text of the header (and of WebDAV's `getetag`), for the file at
/// `segments` (under `runs/`; `trail[i]` is the node of the first `i` segments).
pub async fn etag_text(
    fs: &ArtifactFs,
    segments: &[String],
    trail: &[Attr],
    file: &Attr,
) -> Option<String> {
    let artifact = UrlPath::artifact_of(segments)?;
    let artifact_ino = if segments.len() == 5 {
        file.ino
    } else {
        trail.get(5)?.ino
    };
    let mut h = Sha256::new();
    let facts = fs.xattrs(artifact_ino).await.ok()?;
    let fact = |k: &str| facts.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match fact("user.artifact.digest") {
        Some(d) => h.update(d),
        None => {
            for k in ["id", "size", "created_at"] {
                h.update(fact(&format!("user.artifact.{k}"))?);
                h.update([0]);
            }
        }
    }
    h.update([0]);
    h.update(artifact[4].as_bytes());
    for seg in &segments[5..] {
        h.update([b'/']);
        h.update(seg.as_bytes());
    }
    if segments.len() > 5 {
        let entry = fs.xattrs(file.ino).await.ok()?;
        for (k, v) in entry.iter().filter(|(k, _)| k == "user.zip.crc32") {
            h.update(k);
            h.update(v);
        }
    }
    h.update(file.size.to_le_bytes());
    Some(format!("\"{}\"", hex::encode(&h.finalize()[..16])))
}

/// A file's answer to GET (`head`: false) or HEAD.
pub async fn serve_file(
    fs: &Arc<ArtifactFs>,
    what: &str,
    name: &str,
    attr: &Attr,
    etag: Option<ETag>,
    req: &HeaderMap,
    head: bool,
) -> Response {
    let modified = LastModified::from(attr.mtime.max(SystemTime::UNIX_EPOCH));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.typed_insert(modified);
    if let Some(tag) = &etag {
        headers.typed_insert(tag.clone());
    }
    if not_modified(req, etag.as_ref(), attr.mtime) {
        return with(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(respond::content_type(name)),
    );
    let len = attr.size;
    let range_header = req.get(header::RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok = match req.typed_get::<IfRange>() {
        Some(ir) => !ir.is_modified(etag.as_ref(), Some(&modified)),
        None => true,
    };
    let plan = if if_range_ok {
        plan_range(range_header, len)
    } else {
        RangePlan::Full
    };
    let (status, start, end) = match plan {
        RangePlan::Full => (StatusCode::OK, 0, len),
        RangePlan::Part(s, e) => {
            let cr = format!("bytes {s}-{e}/{len}");
            headers.insert(header::CONTENT_RANGE, value(&cr));
            (StatusCode::PARTIAL_CONTENT, s, e + 1)
        }
        RangePlan::Unsatisfiable => {
            let mut r = respond::text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            r.headers_mut()
                .insert(header::CONTENT_RANGE, value(&format!("bytes */{len}")));
            return r;
        }
    };
    headers.insert(header::CONTENT_LENGTH, value(&(end - start).to_string()));
    if head || start == end {
        return with(status, headers, Body::empty());
    }
    match open_stream(fs.clone(), attr, start, end, what.to_string()).await {
        Ok(stream) => with(status, headers, Body::from_stream(stream)),
        Err(resp) => resp,
    }
}

/// Whether the client's copy is current: `If-None-Match` when sent, else `If-Modified-Since`.
fn not_modified(req: &HeaderMap, etag: Option<&ETag>, mtime: SystemTime) -> bool {
    if let Some(inm) = req.typed_get::<IfNoneMatch>() {
        return etag.is_some_and(|t| !inm.precondition_passes(t));
    }
    match req.typed_get::<IfModifiedSince>() {
        Some(ims) => !ims.is_modified(mtime),
        None => false,
    }
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn with(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// An open file handle of the core, released when the body is done or dropped (a client
/// that goes away stops the reads).
struct Handle {
    fs: Arc<ArtifactFs>,
    fh: u64,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.fs.release(self.fh);
    }
}

/// Opens the file and reads its first chunk before answering, so a file that cannot be
/// read at all (no token, gone, failed before) gets its status instead of a cut-off 200.
async fn open_stream(
    fs: Arc<ArtifactFs>,
    attr: &Attr,
    start: u64,
    end: u64,
    what: String,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, Response> {
    let fh = fs
        .open(attr.ino)
        .await
        .map_err(|e| respond::fs_error(&what, &e))?;
    let h = Handle { fs, fh };
    let first = read_chunk(&h, start, end)
        .await
        .map_err(|e| respond::fs_error(&what, &e))?;
    let pos = start + first.len() as u64;
    let rest = futures::stream::try_unfold((h, pos), move |(h, pos)| {
        let what = what.clone();
        async move {
            if pos >= end {
                return Ok(None);
            }
            match read_chunk(&h, pos, end).await {
                Ok(data) => {
                    let next = pos + data.len() as u64;
                    Ok(Some((data, (h, next))))
                }
                Err(e) => {
                    tracing::warn!("{what}: read at {pos} failed, connection aborted: {e}");
                    Err(std::io::Error::other(e.to_string()))
                }
            }
        }
    });
    Ok(futures::stream::once(async move { Ok(first) }).chain(rest))
}

/// The next chunk at `pos` (never past `end`); a file ending early is an error.
async fn read_chunk(h: &Handle, pos: u64, end: u64) -> crate::filesystem::FsResult<Bytes> {
    let want = (end - pos).min(CHUNK as u64) as u32;
    let mut data = h.fs.read(h.fh, pos, want).await?;
    if data.is_empty() {
        return Err(crate::filesystem::FsError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file ended before its size",
        )));
    }
    data.truncate(want as usize);
    Ok(Bytes::from(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_plan_as_rfc_9110_says() {
        use RangePlan::*;
        let p = |v: &str, len| plan_range(Some(v), len);
        assert_eq!(plan_range(None, 10), Full);
        assert_eq!(p("bytes=0-4", 10), Part(0, 4));
        assert_eq!(p("bytes=5-", 10), Part(5, 9));
        assert_eq!(p("bytes=5-100", 10), Part(5, 9));
        assert_eq!(p("bytes=-3", 10), Part(7, 9));
        assert_eq!(p("bytes=-30", 10), Part(0, 9));
        assert_eq!(p("bytes=9-9", 10), Part(9, 9));
        assert_eq!(p("bytes=10-", 10), Unsatisfiable);
        assert_eq!(p("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(p("bytes=-0", 10), Unsatisfiable);
        assert_eq!(p("bytes=0-0", 0), Unsatisfiable);
        // Malformed: ignored. Several ranges: the whole file.
        assert_eq!(p("bytes=4-2", 10), Full);
        assert_eq!(p("items=0-4", 10), Full);
        assert_eq!(p("bytes=x-4", 10), Full);
        assert_eq!(p("bytes=0-1,4-5", 10), Full);
    }
}
