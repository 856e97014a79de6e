//! What the blob host's headers say: the range a 206 carries (`Content-Range`), and whether a
//! blob is a zip or an unzipped file (`Content-Type`, `Content-Disposition`'s file name).

use reqwest::header::{self, HeaderMap};

use super::types::ArtifactKind;

/// `Content-Range: bytes START-END/TOTAL` → (start, end inclusive, total).
pub fn content_range(h: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = h.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (s, e) = range.split_once('-')?;
    let (s, e) = (s.trim().parse().ok()?, e.trim().parse().ok()?);
    let total = total.trim().parse().ok()?;
    (s <= e && e < total).then_some((s, e, total))
}

/// Zip or raw, from `Content-Type` / `Content-Disposition`.
pub fn kind_from_headers(h: &HeaderMap) -> Option<ArtifactKind> {
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let file_name = h
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(disposition_file_name);
    if ct.starts_with("application/zip") || ct.starts_with("application/x-zip") {
        return Some(ArtifactKind::Zip);
    }
    if ct.is_empty() && file_name.is_none() {
        return None;
    }
    Some(ArtifactKind::Raw { file_name })
}

/// `attachment; filename="a b.txt"` or `filename*=UTF-8''a%20b.txt` → the name.
pub fn disposition_file_name(v: &str) -> Option<String> {
    let mut plain = None;
    for part in v.split(';') {
        let (k, val) = match part.trim().split_once('=') {
            Some(kv) => kv,
            None => continue,
        };
        let k = k.trim().to_ascii_lowercase();
        let val = val.trim();
        if k == "filename*" {
            let enc = val.splitn(3, '\'').nth(2).unwrap_or(val);
            return Some(percent_decode(enc)).filter(|s| !s.is_empty());
        }
        if k == "filename" {
            plain = Some(val.trim_matches('"').to_string()).filter(|s| !s.is_empty());
        }
    }
    plain
}

pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn parses_content_range() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-19/100"),
        );
        assert_eq!(content_range(&h), Some((10, 19, 100)));
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes */100"),
        );
        assert_eq!(content_range(&h), None);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-100/100"),
        );
        assert_eq!(content_range(&h), None);
    }

    #[test]
    fn reads_file_names_from_content_disposition() {
        assert_eq!(
            disposition_file_name("attachment; filename=notes.md").as_deref(),
            Some("notes.md")
        );
        assert_eq!(
            disposition_file_name(r#"attachment; filename="a b.txt""#).as_deref(),
            Some("a b.txt")
        );
        assert_eq!(
            disposition_file_name("attachment; filename=x; filename*=UTF-8''r%C3%A9sum%C3%A9.txt")
                .as_deref(),
            Some("résumé.txt")
        );
        assert_eq!(disposition_file_name("inline"), None);
    }

    #[test]
    fn tells_zip_from_raw_by_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/zip"),
        );
        assert_eq!(kind_from_headers(&h), Some(ArtifactKind::Zip));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=log.txt"),
        );
        assert_eq!(
            kind_from_headers(&h),
            Some(ArtifactKind::Raw {
                file_name: Some("log.txt".into())
            })
        );
    }

    #[test]
    fn percent_decoding_tolerates_bad_escapes() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
    }
}
