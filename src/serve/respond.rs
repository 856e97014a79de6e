//! The small answers every handler shares: errors (a core error's errno → status, a short
//! text body and one log line), redirects, 405, and the content type a file name gets.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::filesystem::FsError;

/// Every answer may be revalidated (with `If-None-Match`) but not reused unchecked: an
/// artifact can be deleted and uploaded again under the same name in the same run.
pub const CACHE_CONTROL: &str = "no-cache";

/// A plain-text answer with `status`.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut body: String = body.into();
    body.push('\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .body(Body::from(body))
        .unwrap_or_else(|_| fallback())
}

/// The running core's numbers (`artifactfs status`'s): `/_status` as JSON, `/_metrics` in
/// Prometheus' text format. Never cached.
pub fn status(s: &crate::stats::Status, prometheus: bool) -> Response {
    let (body, kind) = if prometheus {
        (
            s.to_prometheus(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    } else {
        (s.to_json(), "application/json")
    };
    Response::builder()
        .header(header::CONTENT_TYPE, kind)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from(body))
        .unwrap_or_else(|_| fallback())
}

/// What a failed core call answers: ENOENT 404, EACCES 403, anything else (EIO: GitHub or
/// the blob host failed, a check failed) 502. Logged with what it was about (never a URL
/// of GitHub's: the core's messages carry none).
pub fn fs_error(what: &str, e: &FsError) -> Response {
    let (status, msg) = match e.errno() {
        libc::ENOENT | libc::ENOTDIR => (StatusCode::NOT_FOUND, "not found"),
        libc::EACCES | libc::EPERM if e.needs_token() => (
            StatusCode::FORBIDDEN,
            "forbidden: downloads need a token (GH_TOKEN)",
        ),
        libc::EACCES | libc::EPERM => (StatusCode::FORBIDDEN, "forbidden"),
        libc::EIO if matches!(e, FsError::Integrity(_)) => (
            StatusCode::BAD_GATEWAY,
            "bad gateway: the bytes received failed their integrity check",
        ),
        _ => (
            StatusCode::BAD_GATEWAY,
            "bad gateway: GitHub could not be read",
        ),
    };
    if e.is_ordinary() {
        tracing::info!("{what}: {e} ({})", status.as_u16());
    } else {
        tracing::warn!("{what}: {e} ({})", status.as_u16());
    }
    text(status, msg)
}

/// A redirect to `location` (an encoded path on this server).
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let Ok(loc) = HeaderValue::from_str(location) else {
        return text(StatusCode::BAD_REQUEST, "bad request");
    };
    Response::builder()
        .status(status)
        .header(header::LOCATION, loc)
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(format!("see {location}\n")))
        .unwrap_or_else(|_| fallback())
}

/// Any method but GET and HEAD.
pub fn method_not_allowed() -> Response {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: read-only",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

/// Only reached if a response could not be built from valid parts.
fn fallback() -> Response {
    let mut r = Response::new(Body::from("internal error\n"));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// The content type for a file name, from its extension; text as UTF-8.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "txt" | "log" | "md" | "csv" | "out" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("A.HTM"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("data.json"), "application/json");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("a.jpg"), "image/jpeg");
        assert_eq!(content_type("a.gif"), "image/gif");
        assert_eq!(content_type("r.pdf"), "application/pdf");
        assert_eq!(content_type("build.log"), "text/plain; charset=utf-8");
        assert_eq!(content_type("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("report.zip"), "application/zip");
        assert_eq!(content_type("hello"), "application/octet-stream");
        assert_eq!(content_type(".bashrc"), "application/octet-stream");
    }

    #[test]
    fn errors_map_to_statuses() {
        let st = |e: FsError| fs_error("t", &e).status();
        assert_eq!(st(FsError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(st(FsError::NotDir), StatusCode::NOT_FOUND);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(st(FsError::Io(denied)), StatusCode::FORBIDDEN);
        assert_eq!(
            st(FsError::Integrity("crc".into())),
            StatusCode::BAD_GATEWAY
        );
        let eio = std::io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(st(FsError::Io(eio)), StatusCode::BAD_GATEWAY);
    }
}
