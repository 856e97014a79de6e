//! Keeping secrets out of text: URLs without their query string (a signed blob URL's query is
//! a credential) for logs and error messages.

use url::Url;

/// A URL without its query string, for logs (signed URLs carry their secret in the query).
pub fn redact(url: &Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        match url.port() {
            Some(p) => format!(":{p}{}", url.path()),
            None => url.path().to_string(),
        }
    )
}

/// reqwest errors hide their cause (connection refused, ...) in `source()`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    scrub_queries(&s)
}

/// Drops the query string of every URL in `text`: reqwest's messages quote the URL, and a
/// signed blob URL's query is a credential.
pub fn scrub_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("http") {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        if !(from.starts_with("http://") || from.starts_with("https://")) {
            out.push_str("http");
            rest = &from[4..];
            continue;
        }
        let end = from
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>'))
            .unwrap_or(from.len());
        let url = &from[..end];
        out.push_str(url.split('?').next().unwrap_or(url));
        rest = &from[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        let u = Url::parse("https://blob.example:8443/c/a.zip?sig=SECRET&se=1").unwrap();
        assert_eq!(redact(&u), "https://blob.example:8443/c/a.zip");
    }

    #[test]
    fn error_text_never_carries_a_signature() {
        assert_eq!(
            scrub_queries(
                "error sending request for url (https://blob.example/b/1.zip?sig=SECRET&se=1): refused"
            ),
            "error sending request for url (https://blob.example/b/1.zip): refused"
        );
        assert_eq!(
            scrub_queries("no urls, http is a word"),
            "no urls, http is a word"
        );
        assert_eq!(scrub_queries("x http://a/b?c"), "x http://a/b");
    }
}
