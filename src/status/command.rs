//! `artifactfs status [MOUNTPOINT] [--json]`: asks each running mount's daemon over its
//! status socket ([`super::socket`]) and prints a few aligned lines per mount, or the JSON
//! snapshots. Without MOUNTPOINT: every live mount; sockets nobody answers any more (a mount
//! that crashed) are skipped and removed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use indicatif::HumanBytes;

use super::socket::{self, QueryError};
use crate::stats::{RateLimit, Status};

/// `artifactfs status`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// A mounted artifactfs [default: every running mount]
    pub mountpoint: Option<PathBuf>,
    /// Print the snapshot as JSON (an array when no MOUNTPOINT is given)
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let all = match &args.mountpoint {
        Some(m) => vec![one(m)?],
        None => every_live_mount(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let text = match (&args.mountpoint, all.as_slice()) {
            (Some(_), [s]) => serde_json::to_string_pretty(s)?,
            _ => serde_json::to_string_pretty(&all)?,
        };
        writeln!(out, "{text}")?;
    } else if all.is_empty() {
        writeln!(out, "no artifactfs mounts are running")?;
    } else {
        for (i, s) in all.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write!(out, "{}", human(s))?;
        }
    }
    Ok(())
}

/// The status of the mount at `mountpoint`, or why there is none (one line).
fn one(mountpoint: &Path) -> anyhow::Result<Status> {
    let canonical =
        std::fs::canonicalize(mountpoint).map_err(|e| anyhow!("{}: {e}", mountpoint.display()))?;
    let sock = socket::socket_path(&canonical);
    match socket::query(&sock) {
        Ok(s) => Ok(s),
        Err(QueryError::NoDaemon) => {
            if crate::mount_table::artifactfs_mounts().contains(&canonical) {
                bail!(
                    "{} is an artifactfs mount, but it answers on no status socket at {} \
                     (started by an older artifactfs, or with another XDG_RUNTIME_DIR)",
                    mountpoint.display(),
                    sock.display()
                )
            }
            bail!("{} is not an artifactfs mount", mountpoint.display())
        }
        Err(QueryError::Failed(e)) => bail!("{}: status socket: {e}", mountpoint.display()),
    }
}

/// Every mount that answers; sockets left behind by mounts that are gone are removed.
fn every_live_mount() -> Vec<Status> {
    let mut all = Vec::new();
    for sock in socket::sockets() {
        match socket::query(&sock) {
            Ok(s) => all.push(s),
            Err(QueryError::NoDaemon) => {
                let _ = std::fs::remove_file(&sock);
            }
            Err(QueryError::Failed(e)) => {
                eprintln!("artifactfs: {}: {e}", sock.display());
            }
        }
    }
    all
}

/// A few aligned lines for one mount.
pub fn human(s: &Status) -> String {
    let mut lines = vec![format!(
        "{}  (pid {}, up {})",
        s.mountpoint.as_deref().unwrap_or("(not mounted)"),
        s.pid,
        duration(s.uptime_seconds)
    )];
    let mut row = |k: &str, v: String| lines.push(format!("  {k:<12} {v}"));
    row("repos", s.repos.join(", "));
    row(
        "cache",
        format!(
            "{} used of {}  ({})",
            HumanBytes(s.cache_used_bytes),
            HumanBytes(s.cache_limit_bytes),
            s.cache_dir
        ),
    );
    row(
        "blocks",
        format!(
            "{} hits (from cache), {} misses (fetched)",
            s.cache_hits, s.cache_misses
        ),
    );
    row(
        "fetched",
        format!("{} from the blob host", HumanBytes(s.blob_bytes_fetched)),
    );
    row(
        "API",
        format!(
            "{} requests: {} asked for, {} speculative (readahead)",
            s.api_requests,
            s.api_requests.saturating_sub(s.api_requests_speculative),
            s.api_requests_speculative
        ),
    );
    row(
        "in flight",
        format!(
            "{} API, {} blob requests",
            s.api_requests_in_flight, s.blob_requests_in_flight
        ),
    );
    row("rate limit", rate_limit(s.rate_limit.as_ref(), s.now_unix));
    if s.recent_warnings.is_empty() {
        row("last errors", "none".into());
    }
    for (i, w) in s.recent_warnings.iter().enumerate() {
        let k = if i == 0 { "last errors" } else { "" };
        row(
            k,
            format!("{} {:<5} {}", clock(w.unix_time), w.level, w.message),
        );
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn rate_limit(r: Option<&RateLimit>, now: u64) -> String {
    let Some(r) = r else {
        return "not seen yet (no API answer so far)".into();
    };
    let mut s = match r.limit {
        Some(l) => format!("{} of {l} left", r.remaining),
        None => format!("{} left", r.remaining),
    };
    if let Some(reset) = r.reset_unix {
        s.push_str(&format!(
            ", resets {} UTC (in {})",
            clock(reset),
            duration(reset.saturating_sub(now))
        ));
    }
    s
}

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(unix: u64) -> String {
    let day = unix % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

/// `2h 5m`, `3m 12s`, `40s`.
fn duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lines_are_aligned_and_complete() {
        let s = Status {
            version: "0".into(),
            pid: 7,
            mountpoint: Some("/m".into()),
            uptime_seconds: 75,
            now_unix: 3600,
            repos: vec!["o/r".into()],
            cache_dir: "/c".into(),
            cache_used_bytes: 3 << 20,
            cache_limit_bytes: 1 << 30,
            cache_hits: 5,
            cache_misses: 2,
            blob_bytes_fetched: 1 << 20,
            api_requests: 9,
            api_requests_speculative: 4,
            api_requests_in_flight: 0,
            blob_requests_in_flight: 1,
            requests_spawned: 0,
            inflate_streams: 0,
            rate_limit: Some(RateLimit {
                remaining: 4990,
                limit: Some(5000),
                reset_unix: Some(7200),
            }),
            warnings_total: 0,
            recent_warnings: vec![],
        };
        let text = human(&s);
        assert!(text.starts_with("/m  (pid 7, up 1m 15s)\n"), "{text}");
        assert!(
            text.contains("  cache        3.00 MiB used of 1.00 GiB"),
            "{text}"
        );
        assert!(
            text.contains("  rate limit   4990 of 5000 left, resets 02:00:00 UTC (in 1h 0m)"),
            "{text}"
        );
        assert!(text.contains("  last errors  none\n"), "{text}");
        assert!(
            text.contains("  API          9 requests: 5 asked for, 4 speculative (readahead)\n"),
            "{text}"
        );
    }
}
