//! `Link` response headers (RFC 8288) as GitHub sends them for pagination:
//! `<https://api.github.com/...&page=2>; rel="next", <...&page=5>; rel="last"`.

/// The URL of the link with relation `rel`, if the header has one.
pub fn find_rel(header: &str, rel: &str) -> Option<String> {
    for part in split_links(header) {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some(end) = rest.find('>') else {
            continue;
        };
        let url = &rest[..end];
        let params = &rest[end + 1..];
        let matches = params.split(';').any(|p| {
            let Some((k, v)) = p.trim().split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case(rel))
        });
        if matches {
            return Some(url.to_string());
        }
    }
    None
}

/// Splits on the commas between links, not the ones inside `<...>`.
fn split_links(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in header.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&header[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_next_and_last() {
        let h = r#"<https://api.github.com/repositories/1/actions/artifacts?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/actions/artifacts?per_page=100&page=3>; rel="last""#;
        assert_eq!(
            find_rel(h, "next").unwrap(),
            "https://api.github.com/repositories/1/actions/artifacts?per_page=100&page=2"
        );
        assert!(find_rel(h, "last").unwrap().ends_with("page=3"));
        assert_eq!(find_rel(h, "prev"), None);
    }

    #[test]
    fn tolerates_odd_spacing_commas_in_urls_and_multiple_rels() {
        let h = r#"<http://x/a?q=1,2>;rel=next ,<http://x/b>; rel="prev first""#;
        assert_eq!(find_rel(h, "next").unwrap(), "http://x/a?q=1,2");
        assert_eq!(find_rel(h, "first").unwrap(), "http://x/b");
        assert_eq!(find_rel("", "next"), None);
        assert_eq!(find_rel("garbage", "next"), None);
    }
}
