//! `artifactfs serve`: the same tree as the mount, over HTTP, from the same core (listings,
//! cache, verification, token rules). This module owns the command's arguments, the
//! listener and the one handler that dispatches a request: [`paths`] turns the URL into a
//! node, [`files`] answers for a file, [`listing`] for a directory, [`respond`] holds the
//! shared answers (errors, redirects). Read-only: GET and HEAD, nothing else, but for
//! `OPTIONS` and `PROPFIND` with `--webdav` ([`webdav`]). `/_status` and `/_metrics` give
//! the core's numbers (see [`crate::status`]).

pub mod files;
pub mod listing;
pub mod log_view;
pub mod paths;
pub mod respond;
pub mod webdav;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use crate::config::{self, CoreArgs, CoreConfig, RemoteArgs};
use crate::filesystem::{ArtifactFs, FileKind, FsError};

use paths::{Resolved, UrlPath};

/// `artifactfs serve`'s arguments: the repositories and core options every front end
/// takes, and where to listen.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Where to listen; anything but loopback lets whoever reaches it read what the token can
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub addr: String,
    #[command(flatten)]
    pub core: CoreArgs,
    /// Also answer WebDAV (OPTIONS, PROPFIND), read-only, so Finder, Windows Explorer, davfs2,
    /// rclone and cadaver can mount or browse the tree; views answer as what they point to
    #[arg(long)]
    pub webdav: bool,
}

/// `artifactfs serve`: opens the core, listens, serves until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.remote.repos.is_empty() {
        bail!("name at least one repository with --repo OWNER/REPO");
    }
    let addr = resolve_addr(&args.addr)?;
    let first = args.remote.repos[0].clone();
    // Nothing is ever deleted over HTTP: the core is read-only.
    let mut core = args
        .core
        .core_config(args.remote, true, config::default_cache_dir);
    core.token = crate::github::auth::discover_token(&core.api_url);
    let start = paths::url_of(&[first.owner, first.name], true);
    run_core(&core, addr, &start, args.webdav)
}

/// Opens the core of `core` and serves it on `addr` until Ctrl-C or SIGTERM; `start` is the
/// path whose URL is printed.
pub fn run_core(
    core: &CoreConfig,
    addr: SocketAddr,
    start: &str,
    webdav: bool,
) -> anyhow::Result<()> {
    let rt = crate::startup::runtime()?;
    let fs = crate::startup::open_core(core, &rt)?;
    let served = fs.clone();
    rt.block_on(async move {
        let listener = bind(addr).await?;
        serve(served, listener, start, webdav, shutdown_signal()).await
    })?;
    fs.persist_metadata();
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// `HOST:PORT` (a name is looked up; the first address is used).
pub fn resolve_addr(addr: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .with_context(|| format!("--addr {addr}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("--addr {addr}: no address"))
}

/// Binds, warning when the address is not loopback.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "listening on {addr}, not loopback: whoever can reach it reads every artifact the token can read"
        );
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Serves on `listener` until `stop` resolves; prints the URL of `start` (a path) first.
/// Open downloads get a moment to finish, then are cut.
pub async fn serve(
    fs: Arc<ArtifactFs>,
    listener: tokio::net::TcpListener,
    start: &str,
    webdav: bool,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let app = router(fs, local.ip().is_loopback(), webdav);
    println!("artifactfs serve: http://{local}{start} (Ctrl-C stops)");
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        let _ = stopping_tx.send(());
    });
    let task = tokio::spawn(async move { server.await });
    tokio::pin!(task);
    tokio::select! {
        r = &mut task => r??,
        _ = stopping_rx => {
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(2), &mut task).await {
                r??;
            } else {
                task.abort();
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    crate::startup::stop_requested().await;
    tracing::info!("stopping");
}

struct App {
    fs: Arc<ArtifactFs>,
    /// Bound to loopback: only requests naming a loopback host are answered (a web page
    /// cannot reach the token's artifacts through DNS rebinding).
    loopback: bool,
    /// `--webdav`: OPTIONS and PROPFIND, and views answered as what they point to.
    dav: Option<dav_server::DavHandler>,
}

/// The HTTP application over a core: every path goes to one handler; a panic in it is
/// answered 500 and the server stays up.
pub fn router(fs: Arc<ArtifactFs>, loopback: bool, webdav: bool) -> Router {
    let dav = webdav.then(|| webdav::handler(fs.clone()));
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(App { fs, loopback, dav }))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let resp = match &app.dav {
        Some(dav) if webdav::is_dav_method(&method) => dav_answer(&app, dav, req).await,
        _ => {
            let (req, _body) = req.into_parts();
            answer(&app, &req).await
        }
    };
    let status = resp.status();
    if status.is_server_error() {
        tracing::warn!("{method} {raw_path}: {}", status.as_u16());
    } else {
        tracing::info!("{method} {raw_path}: {}", status.as_u16());
    }
    resp
}

/// What the query string asks for.
#[derive(Default, Debug)]
struct Query {
    list: bool,
    json: bool,
    /// A file as an HTML page (logs: numbered lines, colours).
    view: bool,
}

impl Query {
    fn parse(q: Option<&str>) -> Query {
        let mut out = Query::default();
        for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
            match (&*k, &*v) {
                ("list", _) => out.list = true,
                ("format", "json") => out.json = true,
                ("view", _) => out.view = true,
                _ => {}
            }
        }
        out
    }
}

/// OPTIONS and PROPFIND, after the same checks as every request.
async fn dav_answer(app: &App, dav: &dav_server::DavHandler, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if app.loopback && !loopback_host(&parts) {
        return respond::text(StatusCode::MISDIRECTED_REQUEST, "unknown host name");
    }
    if let Err(e) = UrlPath::parse(parts.uri.path()) {
        return respond::text(StatusCode::BAD_REQUEST, format!("bad request: {}", e.0));
    }
    if webdav::infinite_depth(&parts) {
        return respond::text(StatusCode::FORBIDDEN, "Depth: infinity is not served");
    }
    dav.handle(Request::from_parts(parts, body))
        .await
        .map(Body::new)
}

async fn answer(app: &App, req: &Parts) -> Response {
    let head = match req.method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return respond::method_not_allowed(),
    };
    if app.loopback && !loopback_host(req) {
        return respond::text(StatusCode::MISDIRECTED_REQUEST, "unknown host name");
    }
    // Owner names can't start with '_' on GitHub: these never hide a part of the tree.
    match req.uri.path() {
        "/_status" => return respond::status(&app.fs.status(), false),
        "/_metrics" => return respond::status(&app.fs.status(), true),
        _ => {}
    }
    let path = match UrlPath::parse(req.uri.path()) {
        Ok(p) => p,
        Err(e) => return respond::text(StatusCode::BAD_REQUEST, format!("bad request: {}", e.0)),
    };
    let raw_query = req.uri.query();
    let query = Query::parse(raw_query);
    let with_query = |url: String| match raw_query {
        Some(q) => format!("{url}?{q}"),
        None => url,
    };
    let what = path.to_url(path.trailing_slash);
    // `real`: where the node is (under `runs/`), `path` where it was asked for.
    let (attr, trail, real) = match paths::resolve(&app.fs, &path).await {
        Ok(Resolved::Node { attr, trail }) => (attr, trail, path.clone()),
        // WebDAV clients don't follow redirects reliably: a view answers as its target.
        Ok(Resolved::Redirect(to)) if app.dav.is_some() => {
            let target = match UrlPath::parse(&to) {
                Ok(t) => t,
                Err(_) => return respond::fs_error(&what, &FsError::NotFound),
            };
            match paths::resolve(&app.fs, &target).await {
                Ok(Resolved::Node { attr, trail }) => (attr, trail, target),
                Ok(Resolved::Redirect(_)) => {
                    return respond::fs_error(&what, &FsError::NotFound);
                }
                Err(e) => return respond::fs_error(&what, &e),
            }
        }
        Ok(Resolved::Redirect(to)) => return respond::redirect(StatusCode::FOUND, &with_query(to)),
        Err(e) => return respond::fs_error(&what, &e),
    };
    let fs = &app.fs;
    match attr.kind {
        FileKind::Dir if !path.trailing_slash => respond::redirect(
            StatusCode::MOVED_PERMANENTLY,
            &with_query(path.to_url(true)),
        ),
        FileKind::Dir => {
            if !query.list
                && !query.json
                && let Ok(index) = fs.lookup(attr.ino, "index.html").await
                && index.kind == FileKind::File
            {
                let mut ipath = real.clone();
                ipath.segments.push("index.html".into());
                let mut itrail = trail;
                itrail.push(attr);
                let etag = files::etag_for(fs, &ipath, &itrail, &index).await;
                let what = format!("{what}index.html");
                return files::serve_file(
                    fs,
                    &what,
                    "index.html",
                    &index,
                    etag,
                    &req.headers,
                    head,
                )
                .await;
            }
            match listing::list(fs, &path, &attr).await {
                Ok(l) if query.json => page(
                    "application/json",
                    serde_json::to_string_pretty(&l).unwrap_or_default(),
                    head,
                ),
                Ok(l) => page("text/html; charset=utf-8", listing::html(&l), head),
                Err(e) => respond::fs_error(&what, &e),
            }
        }
        FileKind::File if path.trailing_slash => {
            respond::text(StatusCode::NOT_FOUND, "not found (a file, not a directory)")
        }
        FileKind::File if query.view => {
            let name = path.segments.last().map(String::as_str).unwrap_or("");
            match log_view::read_for_view(fs, &attr).await {
                Ok(bytes) => page(
                    "text/html; charset=utf-8",
                    log_view::render(name, &bytes, attr.size),
                    head,
                ),
                Err(e) => respond::fs_error(&what, &e),
            }
        }
        FileKind::File => {
            let name = path.segments.last().map(String::as_str).unwrap_or("");
            let etag = files::etag_for(fs, &real, &trail, &attr).await;
            files::serve_file(fs, &what, name, &attr, etag, &req.headers, head).await
        }
        // `resolve` answers every symlink with a redirect.
        FileKind::Symlink => respond::text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// A listing page (its length known; HEAD gets the headers only).
fn page(content_type: &'static str, body: String, head: bool) -> Response {
    let len = body.len();
    let mut r = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(respond::CACHE_CONTROL),
    );
    // Listings load nothing from anywhere (inline CSS only).
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    r
}

/// Whether the request's `Host` is a loopback name or address (any port), or absent
/// (HTTP/1.0).
fn loopback_host(req: &Parts) -> bool {
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri.host().map(str::to_string));
    let Some(host) = host else {
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(&host),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(h: &str) -> Parts {
        Request::builder()
            .uri("/")
            .header(header::HOST, h)
            .body(Body::empty())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn only_loopback_host_names_are_answered_on_loopback() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:80",
            "a.localhost:1",
            "127.0.0.2",
        ] {
            assert!(loopback_host(&with_host(ok)), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "example.com",
            "10.0.0.1:8080",
            "[2001:db8::1]:80",
        ] {
            assert!(!loopback_host(&with_host(bad)), "{bad}");
        }
    }

    #[test]
    fn queries_parse() {
        let q = Query::parse(Some("list"));
        assert!(q.list && !q.json);
        let q = Query::parse(Some("format=json&x=1"));
        assert!(!q.list && q.json);
        let q = Query::parse(None);
        assert!(!q.list && !q.json && !q.view);
        assert!(Query::parse(Some("view")).view);
    }
}
