//! `serve --webdav`: the same tree as WebDAV collections for Finder, Windows Explorer, davfs2,
//! rclone and cadaver. `OPTIONS` and `PROPFIND` (depth 0 and 1) are answered by the
//! dav-server crate (its multistatus XML, `href` encoding, properties) over [`CoreDav`], a
//! read-only `DavFileSystem` on the core; `GET`/`HEAD` stay with the HTTP front end (ranges,
//! ETags, integrity). WebDAV clients follow neither symlinks nor, reliably, redirects, so a
//! path through `latest/` or `branches/` is walked as what it points to. `Depth: infinity` is
//! 403 (dav-server says 501); every write method is refused by the method set.

use std::sync::Arc;
use std::time::SystemTime;

use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, DavProp, FsError as DavError, FsFuture,
    FsStream, OpenOptions, ReadDirMeta,
};
use dav_server::{DavHandler, DavMethodSet};
use futures::FutureExt;

use crate::filesystem::{ArtifactFs, Attr, FileKind, FsError, FsResult, ROOT_INO};

use super::files::etag_text;
use super::paths::follow;

/// Links followed on one path at most (a view's link leads to `runs/`, which has none).
const MAX_LINKS: usize = 8;

/// The WebDAV handler over `fs`: read-only methods only.
pub fn handler(fs: Arc<ArtifactFs>) -> DavHandler {
    DavHandler::builder()
        .filesystem(Box::new(CoreDav { fs }))
        .methods(DavMethodSet::WEBDAV_RO)
        .build_handler()
}

/// The methods dav-server answers (the others go to the HTTP front end, which refuses every
/// write with 405).
pub fn is_dav_method(m: &axum::http::Method) -> bool {
    m == axum::http::Method::OPTIONS || m.as_str() == "PROPFIND"
}

/// `Depth: infinity` (or no `Depth`, which means the same for PROPFIND: RFC 4918 9.1).
pub fn infinite_depth(req: &axum::http::request::Parts) -> bool {
    if req.method.as_str() != "PROPFIND" {
        return false;
    }
    match req.headers.get("depth").and_then(|v| v.to_str().ok()) {
        Some(d) => d.trim().eq_ignore_ascii_case("infinity"),
        None => true,
    }
}

/// The core as a read-only WebDAV filesystem.
#[derive(Clone)]
pub struct CoreDav {
    fs: Arc<ArtifactFs>,
}

/// Where a walk through links ended: the node, its path in the tree (under `runs/` for a
/// view's target) and the nodes along that path (`trail[i]`: the first `i` segments).
struct Walked {
    attr: Attr,
    segments: Vec<String>,
    trail: Vec<Attr>,
}

/// Walks `segments` from the root, following symlinks as what they point to.
async fn walk_through_links(fs: &ArtifactFs, segments: &[String]) -> FsResult<Walked> {
    let mut segments = segments.to_vec();
    let mut hops = 0;
    'walk: loop {
        let mut attr = fs.getattr(ROOT_INO).await?;
        let mut trail = Vec::with_capacity(segments.len());
        for (i, name) in segments.iter().enumerate() {
            if attr.kind != FileKind::Dir {
                return Err(FsError::NotDir);
            }
            let next = fs.lookup(attr.ino, name).await?;
            trail.push(attr);
            attr = next;
            if attr.kind == FileKind::Symlink {
                hops += 1;
                if hops > MAX_LINKS {
                    return Err(FsError::NotFound);
                }
                let target = fs.readlink(attr.ino).await?;
                let mut to = follow(&segments[..i], &target).ok_or(FsError::NotFound)?;
                to.extend(segments[i + 1..].iter().cloned());
                segments = to;
                continue 'walk;
            }
        }
        return Ok(Walked {
            attr,
            segments,
            trail,
        });
    }
}

impl Walked {
    /// The node's metadata, with the `ETag` a `GET` of a file sends as its `getetag`.
    async fn meta(&self, fs: &ArtifactFs) -> Meta {
        let mut meta = Meta::from(&self.attr);
        if self.attr.kind == FileKind::File {
            meta.etag = etag_text(fs, &self.segments, &self.trail, &self.attr).await;
        }
        meta
    }
}

fn segments_of(path: &DavPath) -> FsResult<Vec<String>> {
    let raw = std::str::from_utf8(path.as_bytes()).map_err(|_| FsError::NotFound)?;
    Ok(raw
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// `<D:displayname>`: the last segment of `path` (empty for the root).
fn display_name(path: &DavPath) -> DavProp {
    let name = segments_of(path)
        .ok()
        .and_then(|s| s.last().cloned())
        .unwrap_or_default();
    DavProp::new(
        "displayname".into(),
        "D".into(),
        "DAV:".into(),
        super::listing::escape(&name),
    )
}

fn dav_error(e: FsError) -> DavError {
    match e.errno() {
        libc::ENOENT | libc::ENOTDIR => DavError::NotFound,
        libc::EACCES | libc::EPERM => DavError::Forbidden,
        _ => DavError::GeneralFailure,
    }
}

#[derive(Clone, Debug)]
struct Meta {
    len: u64,
    modified: SystemTime,
    dir: bool,
    /// A file's `ETag` as `GET` sends it, quotes included (RFC 4918's `getetag`); none for
    /// folders and for files whose bytes have no name (logs).
    etag: Option<String>,
}

impl From<&Attr> for Meta {
    fn from(a: &Attr) -> Meta {
        Meta {
            len: if a.kind == FileKind::Dir { 0 } else { a.size },
            modified: a.mtime,
            dir: a.kind == FileKind::Dir,
            etag: None,
        }
    }
}

impl DavMetaData for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn modified(&self) -> dav_server::fs::FsResult<SystemTime> {
        Ok(self.modified)
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    /// dav-server's default is size and time; a client comparing it with `GET`'s `ETag`
    /// (davfs2 does) would see every file as changed.
    fn etag(&self) -> Option<String> {
        if self.dir {
            // A folder's changes with its listing's time (dav-server's own rule).
            let t = self.modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
            return Some(format!("{:x}", t.as_micros()));
        }
        self.etag.clone()
    }
}

struct Entry {
    name: String,
    meta: Meta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.as_bytes().to_vec()
    }
    fn metadata(&self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let m: Box<dyn DavMetaData> = Box::new(self.meta.clone());
        futures::future::ready(Ok(m)).boxed()
    }
}

impl DavFileSystem for CoreDav {
    /// Never asked: `GET` is the HTTP front end's.
    fn open<'a>(
        &'a self,
        _path: &'a DavPath,
        _options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        futures::future::ready(Err(DavError::NotImplemented)).boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let segments = segments_of(path).map_err(dav_error)?;
            let dir = walk_through_links(&self.fs, &segments)
                .await
                .map_err(dav_error)?;
            let mut out: Vec<dav_server::fs::FsResult<Box<dyn DavDirEntry>>> = Vec::new();
            for (e, a) in self
                .fs
                .readdir_plus(dir.attr.ino)
                .await
                .map_err(dav_error)?
            {
                // A view's link is listed as what it points to; a dangling one is left out.
                let member = if a.kind == FileKind::Symlink {
                    let mut p = segments.clone();
                    p.push(e.name.clone());
                    match walk_through_links(&self.fs, &p).await {
                        Ok(t) => t,
                        Err(_) => continue,
                    }
                } else {
                    let mut trail = dir.trail.clone();
                    trail.push(dir.attr.clone());
                    let mut segments = dir.segments.clone();
                    segments.push(e.name.clone());
                    Walked {
                        attr: a,
                        segments,
                        trail,
                    }
                };
                out.push(Ok(Box::new(Entry {
                    name: e.name,
                    meta: member.meta(&self.fs).await,
                })));
            }
            let stream: FsStream<Box<dyn DavDirEntry>> = Box::pin(futures::stream::iter(out));
            Ok(stream)
        }
        .boxed()
    }

    /// `displayname` is a dead property to dav-server: each node has it, its own name.
    fn have_props<'a>(
        &'a self,
        _path: &'a DavPath,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(futures::future::ready(true))
    }

    fn get_props<'a>(&'a self, path: &'a DavPath, _content: bool) -> FsFuture<'a, Vec<DavProp>> {
        futures::future::ready(Ok(vec![display_name(path)])).boxed()
    }

    fn get_prop<'a>(&'a self, path: &'a DavPath, prop: DavProp) -> FsFuture<'a, Vec<u8>> {
        let answer = match (prop.name.as_str(), prop.namespace.as_deref()) {
            ("displayname", Some("DAV:")) => Ok(display_name(path).xml.unwrap_or_default()),
            _ => Err(DavError::NotFound),
        };
        futures::future::ready(answer).boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            let segments = segments_of(path).map_err(dav_error)?;
            let node = walk_through_links(&self.fs, &segments)
                .await
                .map_err(dav_error)?;
            Ok(Box::new(node.meta(&self.fs).await) as Box<dyn DavMetaData>)
        }
        .boxed()
    }
}
