//! A [`Status`] in Prometheus's text exposition format (version 0.0.4): one family per
//! number, each with its `# HELP` and `# TYPE` lines, names under `artifactfs_`, counters
//! ending in `_total`, label values escaped. What the HTTP front end serves at `/_metrics`.

use std::fmt::Write as _;

use super::Status;

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Renders `s`. The rate-limit families are left out until a rate limit has been seen.
pub fn render(s: &Status) -> String {
    let mut out = Out(String::new());
    let mut labels = vec![("version", s.version.as_str())];
    if let Some(m) = &s.mountpoint {
        labels.push(("mountpoint", m));
    }
    out.family(
        "info",
        Kind::Gauge,
        "Always 1; labels say which artifactfs this is.",
    );
    out.sample("info", &labels, 1);
    out.family("repo", Kind::Gauge, "Always 1 for each repository shown.");
    for r in &s.repos {
        out.sample("repo", &[("repo", r)], 1);
    }
    let numbers = [
        (
            "uptime_seconds",
            Kind::Gauge,
            "Seconds since the core started.",
            s.uptime_seconds,
        ),
        (
            "cache_used_bytes",
            Kind::Gauge,
            "Bytes the disk cache holds.",
            s.cache_used_bytes,
        ),
        (
            "cache_limit_bytes",
            Kind::Gauge,
            "The disk cache's limit (--cache-size).",
            s.cache_limit_bytes,
        ),
        (
            "cache_hits_total",
            Kind::Counter,
            "Block reads served from the disk cache.",
            s.cache_hits,
        ),
        (
            "cache_misses_total",
            Kind::Counter,
            "Blocks fetched from the network.",
            s.cache_misses,
        ),
        (
            "blob_fetched_bytes_total",
            Kind::Counter,
            "Bytes received from the blob host.",
            s.blob_bytes_fetched,
        ),
        (
            "api_requests_total",
            Kind::Counter,
            "Requests sent to the GitHub API.",
            s.api_requests,
        ),
        (
            "api_requests_speculative_total",
            Kind::Counter,
            "Of the requests sent to the GitHub API, those nobody asked for (directory readahead).",
            s.api_requests_speculative,
        ),
        (
            "api_requests_in_flight",
            Kind::Gauge,
            "Requests to the GitHub API in flight.",
            s.api_requests_in_flight,
        ),
        (
            "blob_requests_in_flight",
            Kind::Gauge,
            "Reads from the blob host in flight.",
            s.blob_requests_in_flight,
        ),
        (
            "requests_spawned_total",
            Kind::Counter,
            "Kernel requests that waited on the runtime (a task each).",
            s.requests_spawned,
        ),
        (
            "inflate_streams_total",
            Kind::Counter,
            "Inflate streams started over deflated entries' compressed bytes.",
            s.inflate_streams,
        ),
        (
            "warnings_total",
            Kind::Counter,
            "Warnings and errors logged.",
            s.warnings_total,
        ),
    ];
    for (name, kind, help, value) in numbers {
        out.family(name, kind, help);
        out.sample(name, &[], value);
    }
    if let Some(r) = &s.rate_limit {
        let name = "rate_limit_remaining";
        out.family(name, Kind::Gauge, "GitHub API requests left, as last seen.");
        out.sample(name, &[], r.remaining);
        if let Some(reset) = r.reset_unix {
            let name = "rate_limit_reset_timestamp_seconds";
            out.family(
                name,
                Kind::Gauge,
                "When the rate limit window resets (Unix time).",
            );
            out.sample(name, &[], reset);
        }
    }
    out.0
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.0, "# HELP artifactfs_{name} {help}");
        let _ = writeln!(self.0, "# TYPE artifactfs_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let _ = write!(self.0, "artifactfs_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{RateLimit, Warning};

    fn status() -> Status {
        Status {
            version: "1.2.3".into(),
            pid: 42,
            mountpoint: Some("/mnt/a \"b\"\\c".into()),
            uptime_seconds: 5,
            now_unix: 1_700_000_000,
            repos: vec!["o/r".into(), "o/s".into()],
            cache_dir: "/c".into(),
            cache_used_bytes: 4096,
            cache_limit_bytes: 1 << 30,
            cache_hits: 7,
            cache_misses: 3,
            blob_bytes_fetched: 393_216,
            api_requests: 12,
            api_requests_speculative: 4,
            api_requests_in_flight: 1,
            blob_requests_in_flight: 2,
            requests_spawned: 30,
            inflate_streams: 0,
            rate_limit: Some(RateLimit {
                remaining: 4990,
                limit: Some(5000),
                reset_unix: Some(1_700_003_600),
            }),
            warnings_total: 1,
            recent_warnings: vec![Warning {
                unix_time: 1,
                level: "WARN".into(),
                message: "m".into(),
            }],
        }
    }

    /// Every sample line: (name, labels, value).
    fn samples(text: &str) -> Vec<(String, String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                (name.into(), labels.into(), value.into())
            })
            .collect()
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let text = render(&status());
        assert!(text.ends_with('\n'));
        let mut declared: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(!help.is_empty());
                declared.push((name.into(), String::new()));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let last = declared.last_mut().unwrap();
                assert_eq!(last.0, name, "TYPE follows its HELP");
                assert!(kind == "counter" || kind == "gauge", "{kind}");
                last.1 = kind.into();
            } else {
                let (name, _, value) = &samples(line)[0];
                let (family, kind) = declared.last().unwrap();
                assert_eq!(name, family, "a sample belongs to the family declared last");
                assert!(name.starts_with("artifactfs_"), "{name}");
                assert!(
                    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{name}"
                );
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
                value.parse::<f64>().unwrap();
            }
        }
        let names: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "each family once");
    }

    #[test]
    fn the_numbers_and_labels_are_the_status() {
        let text = render(&status());
        let s = samples(&text);
        let value = |n: &str| {
            s.iter()
                .find(|(name, _, _)| name == n)
                .map(|(_, _, v)| v.clone())
                .unwrap_or_else(|| panic!("{n} missing:\n{text}"))
        };
        assert_eq!(value("artifactfs_blob_fetched_bytes_total"), "393216");
        assert_eq!(value("artifactfs_cache_hits_total"), "7");
        assert_eq!(value("artifactfs_cache_misses_total"), "3");
        assert_eq!(
            value("artifactfs_cache_limit_bytes"),
            (1u64 << 30).to_string()
        );
        assert_eq!(value("artifactfs_rate_limit_remaining"), "4990");
        assert_eq!(
            value("artifactfs_rate_limit_reset_timestamp_seconds"),
            "1700003600"
        );
        assert!(text.contains("artifactfs_repo{repo=\"o/s\"} 1\n"));
        assert!(
            text.contains(r#"artifactfs_info{version="1.2.3",mountpoint="/mnt/a \"b\"\\c"} 1"#),
            "{text}"
        );
        // Before any API answer, no rate-limit family at all (not a misleading 0).
        let mut unseen = status();
        unseen.rate_limit = None;
        assert!(!render(&unseen).contains("rate_limit"));
    }
}
