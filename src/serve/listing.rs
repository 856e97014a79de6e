//! Directory listings: the core's `readdir` with each entry's attributes, folders first, as
//! a small self-contained HTML page (breadcrumbs, name, size, time, a link to the
//! artifact's `NAME.zip`, from an archive inside an artifact to its `FILE.d/` contents; inline
//! CSS only, a viewport for phones, nothing fetched from
//! elsewhere) or, with `?format=json`, the same as JSON.

use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use serde::Serialize;

use crate::archive::inner::{contents_name, opens_as_archive};
use crate::filesystem::{ArtifactFs, Attr, FileKind, FsResult};

use super::paths::{UrlPath, encode_segment, url_of};

/// One row of a listing.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    /// `dir`, `file` or `symlink`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// RFC 3339, UTC.
    pub modified: String,
    /// Relative to the listing's URL.
    pub href: String,
    /// A symlink's target, as `readlink` gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For an artifact's folder in a run: its archive (`NAME.zip`), relative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// For a file under `logs/`: its HTML view (`NAME?view`), relative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// For an archive file inside an artifact: its contents folder (`dist.tar.gz.d/`),
    /// relative.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    /// For a run's folder: its attributes (`user.run.*` without the prefix: workflow, name,
    /// event, status, conclusion, head_branch, head_sha, attempt, pull_requests, url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<std::collections::BTreeMap<String, String>>,
}

/// A directory's listing.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// This directory's URL path.
    pub path: String,
    /// Inside an artifact: the URL path of its archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// In a run's folder (`runs/RUN/`): the URL path of its logs (`logs/RUN/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    pub entries: Vec<Row>,
}

/// Lists directory `dir` at `path`: the entries and their attributes come from memory in
/// one pass ([`ArtifactFs::readdir_plus`]); only symlinks (in `latest/` and `branches/`)
/// are each asked for their target.
pub async fn list(fs: &Arc<ArtifactFs>, path: &UrlPath, dir: &Attr) -> FsResult<Listing> {
    let entries = fs.readdir_plus(dir.ino).await?;
    // Only links (in `latest/` and `branches/`) and run folders need more than the listing:
    // a link's target, a run's metadata (which may have to be fetched, a few at a time).
    type Run = Option<std::collections::BTreeMap<String, String>>;
    let keys: Vec<_> = entries.iter().map(|(_, a)| (a.ino, a.kind)).collect();
    let extras: Vec<(Option<String>, Run)> = futures::stream::iter(keys)
        .map(|(ino, kind)| {
            let fs = fs.clone();
            async move {
                let target = match kind {
                    FileKind::Symlink => fs.readlink(ino).await.ok(),
                    _ => None,
                };
                if kind != FileKind::Dir {
                    return (target, None);
                }
                // A run's metadata failing to come is not the listing's failure.
                let run = match fs.run_attributes(ino).await {
                    Ok(Some(attrs)) => Some(
                        (attrs.into_iter())
                            .map(|(k, v)| (k.trim_start_matches("user.run.").to_string(), v))
                            .collect(),
                    ),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!("run metadata: {e}");
                        None
                    }
                };
                (target, run)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut rows = Vec::with_capacity(entries.len());
    for ((e, a), (target, run)) in entries.into_iter().zip(extras) {
        let enc = encode_segment(&e.name);
        let contents =
            (a.kind == FileKind::File && path.artifact().is_some() && opens_as_archive(&e.name))
                .then(|| format!("{}/", encode_segment(&contents_name(&e.name))));
        rows.push(Row {
            name: e.name,
            kind: match a.kind {
                FileKind::Dir => "dir",
                FileKind::File => "file",
                FileKind::Symlink => "symlink",
            },
            size: a.size,
            modified: rfc3339(a.mtime),
            href: if a.kind == FileKind::Dir {
                format!("{enc}/")
            } else {
                enc.clone()
            },
            view: (a.kind == FileKind::File && path.segments.get(2).is_some_and(|s| s == "logs"))
                .then(|| format!("{enc}?view")),
            contents,
            target,
            zip: None,
            run,
        });
    }
    // Folders (and links, which lead to artifacts) first; each group in the core's order.
    rows.sort_by_key(|r| r.kind == "file");
    // In a run: each artifact folder links to its archive.
    let names: std::collections::HashSet<String> = rows.iter().map(|r| r.name.clone()).collect();
    for r in rows.iter_mut().filter(|r| r.kind == "dir") {
        let zip = format!("{}.zip", r.name);
        if path.segments.len() == 4 && path.segments[2] == "runs" && names.contains(&zip) {
            r.zip = Some(encode_segment(&zip));
        }
    }
    let zip = path.artifact().map(|a| {
        let mut z = a.to_vec();
        z[4] = format!("{}.zip", a[4]);
        url_of(&z, false)
    });
    let logs = (path.segments.len() == 4 && path.segments[2] == "runs").then(|| {
        let mut l = path.segments.clone();
        l[2] = "logs".into();
        url_of(&l, true)
    });
    Ok(Listing {
        path: path.to_url(true),
        zip,
        logs,
        entries: rows,
    })
}

/// What a runs listing shows beside a run: `CI · main · 0123abc · success` (workflow name,
/// branch, short sha, conclusion or status).
pub fn run_summary(run: &std::collections::BTreeMap<String, String>) -> String {
    let get = |k: &str| run.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let sha = get("head_sha").map(|s| &s[..s.len().min(7)]);
    [
        get("name").or(get("workflow")),
        get("head_branch"),
        sha,
        get("conclusion").or(get("status")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ")
}

fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t.max(SystemTime::UNIX_EPOCH));
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `2024-05-01 12:34` from RFC 3339.
fn short_time(rfc: &str) -> String {
    rfc.get(..16).unwrap_or(rfc).replacen('T', " ", 1)
}

/// `1.4 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// Appends `c` to `out`, escaped for HTML text and attribute values.
pub fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

const STYLE: &str = "
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--link:#0969da;--bg:#fff;--head:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--link:#4493f8;--bg:#0d1117;--head:#151b23}}
body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:960px;margin:0 auto;padding:16px}
nav{font-size:17px;word-break:break-all;margin-bottom:12px}
nav a{font-weight:600}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
.zip{margin:0 0 12px;padding:8px 12px;border:1px solid var(--line);border-radius:6px;background:var(--head)}
table{width:100%;border-collapse:collapse;border:1px solid var(--line);border-radius:6px}
th,td{padding:6px 12px;text-align:left;border-top:1px solid var(--line);vertical-align:top}
th{background:var(--head);font-weight:600;font-size:13px;color:var(--muted)}
td.name{word-break:break-all}
td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.time{white-space:nowrap;color:var(--muted);font-variant-numeric:tabular-nums}
.note{color:var(--muted);font-size:13px}
.tag{font-size:12px;margin-left:8px}
footer{margin-top:12px;color:var(--muted);font-size:13px}
@media (max-width:600px){th.time,td.time{display:none}th,td{padding:6px 8px}}
";

/// The listing as an HTML page.
pub fn html(l: &Listing) -> String {
    let segments = UrlPath::parse(&l.path)
        .map(|p| p.segments)
        .unwrap_or_default();
    let title = if segments.is_empty() {
        "/".to_string()
    } else {
        format!("/{}/", segments.join("/"))
    };
    let mut s = String::with_capacity(4096 + l.entries.len() * 200);
    s.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    s.push_str(&format!("<title>{} · artifactfs</title>\n", escape(&title)));
    s.push_str(&format!(
        "<style>{STYLE}</style></head>\n<body><main>\n<nav>"
    ));
    s.push_str("<a href=\"/\">artifactfs</a>");
    for i in 0..segments.len() {
        let href = url_of(&segments[..=i], true);
        s.push_str(&format!(
            " / <a href=\"{}\">{}</a>",
            escape(&href),
            escape(&segments[i])
        ));
    }
    s.push_str(" /</nav>\n");
    if let Some(zip) = &l.zip {
        let name = zip.rsplit('/').next().unwrap_or(zip);
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        s.push_str(&format!(
            "<p class=\"zip\">Whole artifact: <a href=\"{}\" download>{}</a></p>\n",
            escape(zip),
            escape(&name)
        ));
    }
    if let Some(logs) = &l.logs {
        s.push_str(&format!(
            "<p class=\"zip\">This run's logs: <a href=\"{}\">logs/</a></p>\n",
            escape(logs)
        ));
    }
    s.push_str("<table>\n<thead><tr><th>Name</th><th class=\"num\">Size</th><th class=\"time\">Modified (UTC)</th></tr></thead>\n<tbody>\n");
    if !segments.is_empty() {
        s.push_str("<tr><td class=\"name\"><a href=\"../\">../</a></td><td class=\"num\"></td><td class=\"time\"></td></tr>\n");
    }
    for r in &l.entries {
        let (label, size) = match r.kind {
            "dir" => (format!("{}/", r.name), String::new()),
            "symlink" => (r.name.clone(), String::new()),
            _ => (r.name.clone(), human_size(r.size)),
        };
        s.push_str(&format!(
            "<tr><td class=\"name\"><a href=\"{}\">{}</a>",
            escape(&r.href),
            escape(&label)
        ));
        if let Some(t) = &r.target {
            s.push_str(&format!(" <span class=\"note\">→ {}</span>", escape(t)));
        }
        if let Some(z) = &r.zip {
            s.push_str(&format!(
                "<a class=\"tag\" href=\"{}\" download>.zip</a>",
                escape(z)
            ));
        }
        if let Some(v) = &r.view {
            s.push_str(&format!("<a class=\"tag\" href=\"{}\">view</a>", escape(v)));
        }
        if let Some(c) = &r.contents {
            s.push_str(&format!(
                "<a class=\"tag\" href=\"{}\" title=\"browse the archive\">contents</a>",
                escape(c)
            ));
        }
        if let Some(run) = &r.run {
            s.push_str(&format!(
                " <span class=\"note run\">{}</span>",
                escape(&run_summary(run))
            ));
        }
        s.push_str(&format!(
            "</td><td class=\"num\" title=\"{} bytes\">{}</td><td class=\"time\">{}</td></tr>\n",
            r.size,
            size,
            escape(&short_time(&r.modified))
        ));
    }
    s.push_str("</tbody></table>\n");
    let dirs = l.entries.iter().filter(|r| r.kind != "file").count();
    let files = l.entries.len() - dirs;
    s.push_str(&format!(
        "<footer>{dirs} folder{}, {files} file{} · <a href=\"?format=json\">JSON</a></footer>\n",
        if dirs == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" },
    ));
    s.push_str("</main></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, kind: &'static str, size: u64) -> Row {
        Row {
            name: name.into(),
            kind,
            size,
            modified: "2024-05-01T12:34:56Z".into(),
            href: encode_segment(name),
            target: None,
            zip: None,
            view: None,
            contents: None,
            run: None,
        }
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(200_000), "195 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn the_page_escapes_names_and_has_breadcrumbs_and_no_external_assets() {
        let l = Listing {
            path: "/o/r/runs/1/rep/".into(),
            zip: Some("/o/r/runs/1/rep.zip".into()),
            logs: None,
            entries: vec![row("<script>x</script>", "file", 5), row("sub", "dir", 0)],
        };
        let page = html(&l);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("<a href=\"/o/r/runs/\">runs</a>"));
        assert!(page.contains("href=\"/o/r/runs/1/rep.zip\" download>rep.zip</a>"));
        assert!(page.contains("name=\"viewport\""));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
    }
}
