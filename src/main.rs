//! The `artifactfs` command line: `mount`, `unmount`, `demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use artifactfs::demo;
use artifactfs::fuse::Owner;
use artifactfs::github::RepoRef;
use artifactfs::mount::{self, MountOptions};

#[derive(Parser, Debug)]
#[command(
    name = "artifactfs",
    version,
    about = "Mount GitHub Actions artifacts: browse with ls, read with cat, delete with rm"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Debug, Clone)]
struct CommonArgs {
    /// Disk cache directory [default: $XDG_CACHE_HOME/artifactfs, else ~/.cache/artifactfs]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Disk cache limit (K, M, G, T suffixes); least recently used goes first
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_size)]
    cache_size: u64,
    /// Seconds a listing is trusted before it is fetched again
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        visible_alias = "dir-cache-time"
    )]
    metadata_ttl: u64,
    /// Never delete anything (rm gives EROFS)
    #[arg(long)]
    read_only: bool,
    /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf for non-root)
    #[arg(long)]
    allow_other: bool,
    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Mount the artifacts of one or more repositories
    Mount {
        /// Where to mount (an existing empty directory)
        mountpoint: PathBuf,
        /// Repository to show, as OWNER/REPO (repeatable)
        #[arg(long = "repo", value_name = "OWNER/REPO", required = true, value_parser = parse_repo)]
        repos: Vec<RepoRef>,
        /// GitHub API URL (GitHub Enterprise Server: https://HOST/api/v3)
        #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
        api_url: url::Url,
        /// Stay in the foreground
        #[arg(short, long)]
        foreground: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Unmount a mounted artifactfs
    Unmount { mountpoint: PathBuf },
    /// Mount a built-in sample repository served by an in-process fake GitHub (no token, no network)
    Demo {
        /// Where to mount [default: a new directory under /tmp]
        mountpoint: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

fn parse_repo(s: &str) -> Result<RepoRef, String> {
    RepoRef::parse(s).ok_or_else(|| format!("expected OWNER/REPO, got {s:?}"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let mult: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(format!("unknown size unit in {s:?}")),
            };
            (&s[..i], mult)
        }
        None => (s, 1),
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("bad size {s:?}"))?;
    if n.is_nan() || n < 0.0 {
        return Err(format!("bad size {s:?}"));
    }
    Ok((n * mult as f64) as u64)
}

fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("artifactfs");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("artifactfs")
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,artifactfs=info",
        _ => "debug,hyper=info,reqwest=info,h2=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!mount::is_daemon_child())
        .try_init();
}

fn current_owner() -> Owner {
    // SAFETY: getuid/getgid cannot fail.
    unsafe {
        Owner {
            uid: libc::getuid(),
            gid: libc::getgid(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artifactfs: {e:#}");
            if mount::is_daemon_child() {
                // The waiting parent prints our last stdout line.
                println!("artifactfs: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Mount {
            mountpoint,
            repos,
            api_url,
            foreground,
            common,
        } => {
            init_logging(common.verbose);
            mount::preflight(&mountpoint)?;
            let cache_dir = common.cache_dir.clone().unwrap_or_else(default_cache_dir);
            if !foreground && !mount::is_daemon_child() {
                return mount::daemonize_and_wait(&cache_dir);
            }
            let token = artifactfs::github::auth::discover_token();
            let mountpoint = std::fs::canonicalize(&mountpoint)?;
            let opts = MountOptions {
                mountpoint,
                repos,
                api_url,
                token,
                cache_dir,
                cache_size: common.cache_size,
                metadata_ttl: Duration::from_secs(common.metadata_ttl),
                read_only: common.read_only,
                allow_other: common.allow_other,
                foreground: true,
                owner: current_owner(),
            };
            mount::run_mount(opts, || {})
        }
        Cmd::Unmount { mountpoint } => mount::unmount(&mountpoint),
        Cmd::Demo { mountpoint, common } => {
            init_logging(common.verbose);
            demo::run(demo::DemoArgs {
                mountpoint,
                cache_dir: common.cache_dir,
                cache_size: common.cache_size,
                metadata_ttl: Duration::from_secs(common.metadata_ttl),
                read_only: common.read_only,
                allow_other: common.allow_other,
                owner: current_owner(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
