//! `?view` of a file (meant for logs): an HTML page with numbered lines, each an anchor
//! (`#L120`), the ANSI colours of CI output rendered as styles (never raw escapes: other
//! escape sequences are dropped), a line's leading timestamp dimmed and `##[group]` headers
//! bold; every byte of the text HTML-escaped. The page loads nothing (inline CSS); its bytes
//! are read through the core like any file's, up to [`VIEW_LIMIT`] (a longer file says so
//! and links its raw bytes).

use std::fmt::Write;
use std::sync::Arc;

use crate::filesystem::{ArtifactFs, Attr, FsResult};

use super::listing::{escape, push_escaped};

/// The most bytes of a file one page shows.
pub const VIEW_LIMIT: u64 = 16 << 20;

/// The first [`VIEW_LIMIT`] bytes of a file, read through the core.
pub async fn read_for_view(fs: &Arc<ArtifactFs>, attr: &Attr) -> FsResult<Vec<u8>> {
    let want = attr.size.min(VIEW_LIMIT);
    let fh = fs.open(attr.ino).await?;
    let mut out = Vec::with_capacity(want as usize);
    let r = async {
        while (out.len() as u64) < want {
            let n = (want - out.len() as u64).min(1 << 20) as u32;
            let chunk = fs.read(fh, out.len() as u64, n).await?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(())
    }
    .await;
    fs.release(fh);
    r.map(|()| out)
}

const STYLE: &str = "
:root{color-scheme:light dark;--fg:#1f2328;--muted:#59636e;--bg:#fff;--hl:#fff8c5;--link:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--hl:#3b2e00;--link:#4493f8}}
body{margin:0;color:var(--fg);background:var(--bg);font:14px/1.5 system-ui,sans-serif}
nav{padding:8px 16px;word-break:break-all}a{color:var(--link)}
pre{margin:0;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace;white-space:pre-wrap;word-break:break-all}
.l{display:block;padding-left:6em;text-indent:-6em}.l:target{background:var(--hl)}
.n{display:inline-block;width:5em;margin-right:1em;text-align:right;color:var(--muted);text-decoration:none;text-indent:0}
.t{color:var(--muted)}.g{font-weight:600}.e{color:#cf222e}.note{padding:8px 16px;color:var(--muted)}
";

/// The 16 colours of SGR 30–37 / 90–97 (and 40–47 / 100–107).
const PALETTE: [&str; 16] = [
    "#000000", "#cd3131", "#0dbc79", "#c4a000", "#2472c8", "#bc3fbc", "#11a8cd", "#a5a5a5",
    "#666666", "#f14c4c", "#23d18b", "#e5e510", "#3b8eea", "#d670d6", "#29b8db", "#e5e5e5",
];

/// The style a run of SGR codes leaves.
#[derive(Clone, Default, PartialEq)]
struct Sgr {
    fg: Option<String>,
    bg: Option<String>,
    bold: bool,
    italic: bool,
    underline: bool,
}

impl Sgr {
    fn css(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.fg {
            let _ = write!(s, "color:{c};");
        }
        if let Some(c) = &self.bg {
            let _ = write!(s, "background:{c};");
        }
        if self.bold {
            s.push_str("font-weight:600;");
        }
        if self.italic {
            s.push_str("font-style:italic;");
        }
        if self.underline {
            s.push_str("text-decoration:underline;");
        }
        s
    }

    /// Applies one `ESC [ … m`'s parameters.
    fn apply(&mut self, params: &str) {
        let codes: Vec<u32> = params.split(';').map(|p| p.parse().unwrap_or(0)).collect();
        let mut i = 0;
        while i < codes.len() {
            let c = codes[i];
            match c {
                0 => *self = Sgr::default(),
                1 => self.bold = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => self.bold = false,
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some(PALETTE[(c - 30) as usize].into()),
                90..=97 => self.fg = Some(PALETTE[(c - 90 + 8) as usize].into()),
                40..=47 => self.bg = Some(PALETTE[(c - 40) as usize].into()),
                100..=107 => self.bg = Some(PALETTE[(c - 100 + 8) as usize].into()),
                39 => self.fg = None,
                49 => self.bg = None,
                38 | 48 => {
                    let colour = match codes.get(i + 1) {
                        Some(5) => {
                            i += 2;
                            codes.get(i).map(|&n| xterm256(n))
                        }
                        Some(2) if i + 4 < codes.len() => {
                            let (r, g, b) = (codes[i + 2], codes[i + 3], codes[i + 4]);
                            i += 4;
                            Some(format!(
                                "#{:02x}{:02x}{:02x}",
                                r.min(255),
                                g.min(255),
                                b.min(255)
                            ))
                        }
                        _ => None,
                    };
                    if c == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Colour `n` of xterm's 256.
fn xterm256(n: u32) -> String {
    match n {
        0..=15 => PALETTE[n as usize].into(),
        16..=231 => {
            let n = n - 16;
            let level = |v: u32| if v == 0 { 0 } else { 55 + v * 40 };
            format!(
                "#{:02x}{:02x}{:02x}",
                level(n / 36),
                level(n / 6 % 6),
                level(n % 6)
            )
        }
        _ => {
            let v = 8 + (n.min(255) - 232) * 10;
            format!("#{v:02x}{v:02x}{v:02x}")
        }
    }
}

/// One line as HTML: the text escaped, SGR runs as `<span style>`, other escape sequences
/// and control characters dropped. `style` carries over from the line before.
fn line_html(line: &str, style: &mut Sgr, out: &mut String) {
    let mut open = false;
    let start = |out: &mut String, style: &Sgr, open: &mut bool| {
        let css = style.css();
        if !css.is_empty() {
            let _ = write!(out, "<span style=\"{css}\">");
            *open = true;
        }
    };
    start(out, style, &mut open);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                let mut params = String::new();
                let mut fin = None;
                for d in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&d) {
                        fin = Some(d);
                        break;
                    }
                    params.push(d);
                }
                if fin == Some('m') {
                    if open {
                        out.push_str("</span>");
                        open = false;
                    }
                    style.apply(&params);
                    start(out, style, &mut open);
                }
            }
            continue;
        }
        if c.is_control() && c != '\t' {
            continue;
        }
        push_escaped(out, c);
    }
    if open {
        out.push_str("</span>");
    }
}

/// Whether `s` starts with a timestamp like `2024-05-01T12:00:00.1234567Z `: its length.
fn timestamp_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let end = s.find(' ')?;
    (end >= 20
        && b[4] == b'-'
        && b[10] == b'T'
        && b[end - 1] == b'Z'
        && b[..4].iter().all(u8::is_ascii_digit))
    .then_some(end + 1)
}

/// The page for file `name` (its `raw` link relative), of `total` bytes, showing `bytes`.
pub fn render(name: &str, bytes: &[u8], total: u64) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let raw = super::paths::encode_segment(name);
    let mut s = String::with_capacity(bytes.len() * 2 + 4096);
    s.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = write!(
        s,
        "<title>{} · artifactfs</title>\n<style>{STYLE}</style></head>\n<body>\n",
        escape(name)
    );
    let _ = writeln!(
        s,
        "<nav><a href=\"./\">./</a> {} · <a href=\"{}\">raw</a></nav>",
        escape(name),
        escape(&raw)
    );
    s.push_str("<pre>");
    let mut style = Sgr::default();
    let body = text.strip_suffix('\n').unwrap_or(text);
    for (i, line) in body.split('\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        let (ts, rest) = match timestamp_len(line) {
            Some(k) => line.split_at(k),
            None => ("", line),
        };
        let class = if rest.starts_with("##[group]") {
            " g"
        } else if rest.starts_with("##[error]") {
            " e"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<span class=\"l{class}\" id=\"L{n}\"><a class=\"n\" href=\"#L{n}\">{n}</a>"
        );
        if !ts.is_empty() {
            let _ = write!(s, "<span class=\"t\">{}</span>", escape(ts));
        }
        line_html(rest, &mut style, &mut s);
        s.push_str("</span>");
    }
    s.push_str("</pre>\n");
    if total > bytes.len() as u64 {
        let _ = writeln!(
            s,
            "<p class=\"note\">The first {} of {} bytes: the whole file is at <a href=\"{}\">raw</a>.</p>",
            bytes.len(),
            total,
            escape(&raw)
        );
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_anchored_escaped_and_coloured() {
        let log = "\u{feff}2024-05-01T12:00:00.1234567Z ##[group]Run <make>\n\
                   plain & \"quoted\"\n\
                   \u{1b}[31;1mERROR\u{1b}[0m: <script>alert(1)</script>\u{1b}[2K\n\
                   \u{1b}[38;5;196mred\u{1b}[38;2;0;128;255mblue\u{1b}[m done\n";
        let page = render("1_build (x).txt", log.as_bytes(), log.len() as u64);
        assert!(!page.contains('\u{1b}'), "no raw escapes");
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("id=\"L1\""));
        assert!(page.contains("<a class=\"n\" href=\"#L4\">4</a>"));
        assert!(
            !page.contains("id=\"L5\""),
            "no line after the last newline"
        );
        assert!(page.contains("class=\"l g\" id=\"L1\""));
        assert!(page.contains("<span class=\"t\">2024-05-01T12:00:00.1234567Z </span>"));
        assert!(page.contains("##[group]Run &lt;make&gt;"));
        assert!(page.contains("plain &amp; &quot;quoted&quot;"));
        assert!(page.contains("<span style=\"color:#cd3131;font-weight:600;\">ERROR</span>"));
        assert!(page.contains("color:#ff0000;\">red"), "{page}");
        assert!(page.contains("color:#0080ff;\">blue</span> done"), "{page}");
        assert!(
            page.contains("href=\"1_build%20%28x%29.txt\">raw</a>"),
            "{page}"
        );
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
    }

    #[test]
    fn a_cut_view_says_so() {
        let page = render("a.txt", b"one\ntwo\n", 100);
        assert!(page.contains("The first 8 of 100 bytes"));
    }
}
