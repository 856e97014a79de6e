//! From a URL path to a node of the core: the path is split and percent-decoded segment by
//! segment and refused (400) before anything is looked up when a segment could leave the
//! tree or name something other than one entry (`.`, `..`, an encoded `/`, a backslash, a
//! NUL, an empty segment); then it is walked with the core's `lookup` from the root, as the
//! kernel walks a path. A symlink met on the way (`latest/NAME`, `branches/B/NAME`) ends the
//! walk with the `runs/` URL it points to. Also: building URLs back from names.

use std::sync::Arc;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::filesystem::{ArtifactFs, Attr, FileKind, FsError, FsResult, ROOT_INO};

/// Everything but RFC 3986's unreserved characters is encoded in a segment we build.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request path, decoded and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPath {
    /// The decoded names, root first (empty for `/`).
    pub segments: Vec<String>,
    /// Whether the path ended in `/` (always true for `/`).
    pub trailing_slash: bool,
}

/// Why a path was refused before any lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPath(pub &'static str);

impl UrlPath {
    /// Splits and decodes a raw (still percent-encoded) request path.
    pub fn parse(raw: &str) -> Result<UrlPath, BadPath> {
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(BadPath("the path must start with /"));
        };
        if rest.is_empty() {
            return Ok(UrlPath {
                segments: Vec::new(),
                trailing_slash: true,
            });
        }
        let trailing_slash = rest.ends_with('/');
        let body = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        for raw_seg in body.split('/') {
            segments.push(decode_segment(raw_seg)?);
        }
        Ok(UrlPath {
            segments,
            trailing_slash,
        })
    }

    /// The path as a URL (each segment encoded), with the trailing slash if `dir`.
    pub fn to_url(&self, dir: bool) -> String {
        url_of(&self.segments, dir)
    }

    /// `/OWNER/REPO/runs/RUN_ID/NAME`: the artifact this path is inside (or is), if any.
    pub fn artifact(&self) -> Option<&[String]> {
        Self::artifact_of(&self.segments)
    }

    /// [`UrlPath::artifact`] of any path's segments.
    pub fn artifact_of(segments: &[String]) -> Option<&[String]> {
        (segments.len() >= 5 && segments[2] == "runs").then(|| &segments[..5])
    }
}

fn decode_segment(raw: &str) -> Result<String, BadPath> {
    if raw.is_empty() {
        return Err(BadPath("empty path segment (//)"));
    }
    if raw.contains('\\') {
        return Err(BadPath("backslash in the path"));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| BadPath("path is not UTF-8"))?;
    match &*decoded {
        "." | ".." => Err(BadPath("dot segment in the path")),
        s if s.contains('/') => Err(BadPath("encoded / in a path segment")),
        s if s.contains('\\') => Err(BadPath("encoded backslash in the path")),
        s if s.contains('\0') => Err(BadPath("NUL in the path")),
        s => Ok(s.to_string()),
    }
}

/// A URL path from names: `/` + each name encoded + `/` between (and at the end if `dir`).
pub fn url_of(segments: &[String], dir: bool) -> String {
    let mut url = String::from("/");
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            url.push('/');
        }
        url.push_str(&encode_segment(s));
    }
    if dir && !segments.is_empty() {
        url.push('/');
    }
    url
}

/// One name, encoded for use as a URL path segment.
pub fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// Where a path leads.
#[derive(Debug)]
pub enum Resolved {
    /// A file or directory: its attributes, and those of every directory on the way (root
    /// first, one per segment before the last).
    Node { attr: Attr, trail: Vec<Attr> },
    /// Through a symlink: the URL path (encoded, without query) it points to.
    Redirect(String),
}

/// Walks `path` from the root with the core's lookups.
pub async fn resolve(fs: &Arc<ArtifactFs>, path: &UrlPath) -> FsResult<Resolved> {
    let mut attr = fs.getattr(ROOT_INO).await?;
    let mut trail = Vec::with_capacity(path.segments.len());
    for (i, name) in path.segments.iter().enumerate() {
        if attr.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        let child = fs.lookup(attr.ino, name).await?;
        trail.push(attr);
        attr = child;
        if attr.kind == FileKind::Symlink {
            let target = fs.readlink(attr.ino).await?;
            let mut to = follow(&path.segments[..i], &target).ok_or(FsError::NotFound)?;
            to.extend(path.segments[i + 1..].iter().cloned());
            let dir = path.trailing_slash && !to.is_empty();
            return Ok(Resolved::Redirect(url_of(&to, dir)));
        }
    }
    Ok(Resolved::Node { attr, trail })
}

/// The names a relative symlink `target` leads to from the directory `base`; `None` if it
/// would climb above the root.
pub(super) fn follow(base: &[String], target: &str) -> Option<Vec<String>> {
    let mut out = base.to_vec();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            name => out.push(name.to_string()),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        UrlPath::parse(p).unwrap().segments
    }

    #[test]
    fn paths_decode_per_segment() {
        assert_eq!(segs("/"), Vec::<String>::new());
        assert_eq!(
            segs("/o/r/runs/1/a%20b/c.txt"),
            ["o", "r", "runs", "1", "a b", "c.txt"]
        );
        assert_eq!(
            segs("/o/r/branches/feature%252Flogin/"),
            ["o", "r", "branches", "feature%2Flogin"]
        );
        assert!(UrlPath::parse("/o/r/").unwrap().trailing_slash);
        assert!(!UrlPath::parse("/o/r").unwrap().trailing_slash);
        assert_eq!(segs("/%E2%9C%93"), ["✓"]);
    }

    #[test]
    fn paths_that_could_leave_the_tree_are_refused() {
        for bad in [
            "/o/../r",
            "/o/./r",
            "/..",
            "/o/%2e%2e/r",
            "/o/%2E%2e",
            "/o/.%2e/x",
            "/o/%2e/x",
            "/o/a%2fb",
            "/o/a%2Fb",
            "//etc/passwd",
            "/o//r",
            "/o/a\\b",
            "/o/a%5cb",
            "/o/a%5C..%5Cb",
            "/o/a%00b",
            "/o/%ff",
            "o/r",
            "",
        ] {
            assert!(UrlPath::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn urls_round_trip() {
        for names in [
            vec!["o", "r", "runs", "1", "a b#c?d%e", "ü.txt"],
            vec!["o", "r", "branches", "feature%2Flogin"],
        ] {
            let names: Vec<String> = names.into_iter().map(String::from).collect();
            let url = url_of(&names, true);
            assert!(!url.contains(' ') && !url.contains('#') && !url.contains('?'));
            let back = UrlPath::parse(&url).unwrap();
            assert_eq!(back.segments, names);
            assert!(back.trailing_slash);
        }
        assert_eq!(url_of(&[], true), "/");
    }

    #[test]
    fn symlinks_are_followed_within_the_tree() {
        let base: Vec<String> = ["o", "r", "latest"].map(String::from).to_vec();
        assert_eq!(
            follow(&base, "../runs/7/report").unwrap(),
            ["o", "r", "runs", "7", "report"]
        );
        let base: Vec<String> = ["o", "r", "branches", "b"].map(String::from).to_vec();
        assert_eq!(
            follow(&base, "../../runs/7/report").unwrap(),
            ["o", "r", "runs", "7", "report"]
        );
        assert!(follow(&["o".to_string()], "../../x").is_none());
    }
}
