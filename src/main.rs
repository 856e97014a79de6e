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
    /// Keep at least this much free on the cache's filesystem (K, M, G, T suffixes)
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    cache_min_free: u64,
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
    /// Owner of every file and directory [default: the mounting user]
    #[arg(long, value_name = "UID")]
    uid: Option<u32>,
    /// Group of every file and directory [default: the mounting user's group]
    #[arg(long, value_name = "GID")]
    gid: Option<u32>,
    /// Longest wait for a GitHub rate limit to reset before a request fails with EIO
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    max_wait: u64,
    /// Answer EIO to a request still waiting on the network after SECS (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    daemon_timeout: u64,
    /// Mount options, comma-separated, fstab style: artifactfs's own (ro, allow_other,
    /// uid=, gid=, cache_dir=, cache_size=, metadata_ttl=, dir_cache_time=, api_url=,
    /// daemon_timeout=, max_wait=, repo=, foreground) or FUSE/kernel ones (default_permissions,
    /// nosuid, nodev, noexec, noatime, ...), which are passed through
    #[arg(short = 'o', value_name = "OPT[,OPT...]", value_delimiter = ',')]
    options: Vec<String>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// What `-o` options turn into.
#[derive(Debug, Default, PartialEq)]
struct OOptions {
    fuse: Vec<String>,
    repos: Vec<RepoRef>,
    api_url: Option<url::Url>,
    foreground: bool,
}

/// Applies `-o` options to the flags they stand for; returns what is left for FUSE.
fn apply_o_options(common: &mut CommonArgs) -> Result<OOptions, String> {
    let mut out = OOptions::default();
    for raw in std::mem::take(&mut common.options) {
        let o = raw.trim();
        let (key, value) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o, None),
        };
        let val = || value.ok_or_else(|| format!("-o {key} needs a value ({key}=...)"));
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("-o {key}: not a number: {v:?}"))
        };
        match key {
            "" | "rw" | "defaults" | "auto" | "noauto" | "user" | "users" | "nouser" | "owner"
            | "_netdev" | "nofail" => {}
            k if k.starts_with("x-") || k == "comment" => {}
            "ro" | "read_only" => common.read_only = true,
            "allow_other" => common.allow_other = true,
            "uid" => common.uid = Some(num(val()?)? as u32),
            "gid" => common.gid = Some(num(val()?)? as u32),
            "cache_dir" => common.cache_dir = Some(PathBuf::from(val()?)),
            "cache_size" => common.cache_size = parse_size(val()?)?,
            "cache_min_free" => common.cache_min_free = parse_size(val()?)?,
            "metadata_ttl" | "dir_cache_time" => common.metadata_ttl = num(val()?)?,
            "daemon_timeout" => common.daemon_timeout = num(val()?)?,
            "max_wait" => common.max_wait = num(val()?)?,
            "api_url" => {
                out.api_url = Some(url::Url::parse(val()?).map_err(|e| format!("-o api_url: {e}"))?)
            }
            "repo" => out.repos.push(parse_repo(val()?)?),
            "foreground" => out.foreground = true,
            "verbose" => common.verbose += 1,
            _ => out.fuse.push(o.to_string()),
        }
    }
    Ok(out)
}

/// `mount -t fuse.artifactfs owner/repo DIR -o ...` runs `mount.fuse3`, which runs
/// `artifactfs owner/repo DIR -o ...`; a `mount.artifactfs` link is run by mount(8) as
/// `mount.artifactfs owner/repo DIR [-sfnv] [-o ...]`. Both become
/// `artifactfs mount DIR --repo owner/repo -o ...`. Anything else is left alone.
fn fstab_args(argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use std::ffi::OsString;
    let prog = argv.first().cloned().unwrap_or_else(|| "artifactfs".into());
    let called_as_helper = std::path::Path::new(&prog)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("mount."));
    let first = argv.get(1).map(|a| a.to_string_lossy().into_owned());
    let looks_like_source = first
        .as_deref()
        .is_some_and(|f| !f.starts_with('-') && f.contains('/') && argv.len() >= 3);
    if !(called_as_helper || looks_like_source) || argv.len() < 3 {
        return argv;
    }
    let source = argv[1].to_string_lossy().into_owned();
    let source = source
        .strip_prefix("artifactfs#")
        .unwrap_or(&source)
        .to_string();
    let mut out: Vec<OsString> = vec![prog, "mount".into(), argv[2].clone()];
    for repo in source.split(':').filter(|r| !r.is_empty()) {
        out.push("--repo".into());
        out.push(repo.into());
    }
    let mut rest = argv[3..].iter();
    while let Some(a) = rest.next() {
        match a.to_string_lossy().as_ref() {
            "-o" => {
                if let Some(v) = rest.next() {
                    out.push("-o".into());
                    out.push(v.clone());
                }
            }
            // mount(8) helper flags: sloppy, fake, no-mtab; -t/-N take a value.
            "-s" | "-f" | "-n" => {}
            "-t" | "-N" => {
                rest.next();
            }
            "-v" => out.push("-v".into()),
            _ => out.push(a.clone()),
        }
    }
    out
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Mount the artifacts of one or more repositories
    Mount {
        /// Where to mount (an existing empty directory)
        mountpoint: PathBuf,
        /// Repository to show, as OWNER/REPO (repeatable)
        #[arg(long = "repo", value_name = "OWNER/REPO", value_parser = parse_repo)]
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
    #[command(mut_arg("cache_dir", |a| a.help(
        "Disk cache directory [default: a new temporary directory, removed when the demo ends]"
    )))]
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

/// Logs to stderr; a background mount logs to its capped file in the cache directory.
fn init_logging(verbose: u8, log: Option<artifactfs::logfile::CappedLog>) {
    let default = match verbose {
        0 => "warn",
        1 => "info,artifactfs=info",
        _ => "debug,hyper=info,reqwest=info,h2=info,rustls=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match log {
        Some(file) => fmt.with_writer(file).with_ansi(false).try_init(),
        None => fmt.with_writer(std::io::stderr).try_init(),
    };
}

fn owner(common: &CommonArgs) -> Owner {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Owner {
        uid: common.uid.unwrap_or(uid),
        gid: common.gid.unwrap_or(gid),
    }
}

fn request_timeout(common: &CommonArgs) -> Option<Duration> {
    (common.daemon_timeout > 0).then(|| Duration::from_secs(common.daemon_timeout))
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(fstab_args(std::env::args_os().collect()));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artifactfs: {e:#}");
            if mount::is_daemon_child() {
                // The waiting parent prints our last stdout line (with its own prefix).
                println!("{e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Mount {
            mountpoint,
            mut repos,
            mut api_url,
            mut foreground,
            mut common,
        } => {
            let o = apply_o_options(&mut common).map_err(anyhow::Error::msg)?;
            repos.extend(o.repos);
            if let Some(u) = o.api_url {
                api_url = u;
            }
            foreground |= o.foreground;
            if repos.is_empty() {
                anyhow::bail!("name at least one repository with --repo OWNER/REPO");
            }
            let cache_dir = common.cache_dir.clone().unwrap_or_else(default_cache_dir);
            let daemon = mount::is_daemon_child();
            let log_budget = if daemon || !foreground {
                artifactfs::logfile::budget(common.cache_size)
            } else {
                0
            };
            let log = daemon
                .then(|| {
                    artifactfs::logfile::CappedLog::open(&mount::log_file(&cache_dir), log_budget)
                        .ok()
                })
                .flatten();
            init_logging(common.verbose, log);
            mount::preflight(&mountpoint)?;
            if !foreground && !mount::is_daemon_child() {
                return mount::daemonize_and_wait(&cache_dir);
            }
            let token = artifactfs::github::auth::discover_token(&api_url);
            let mountpoint = std::fs::canonicalize(&mountpoint)?;
            let opts = MountOptions {
                mountpoint,
                repos,
                api_url,
                token,
                cache_dir,
                cache_size: common.cache_size,
                cache_min_free: common.cache_min_free,
                log_budget,
                metadata_ttl: Duration::from_secs(common.metadata_ttl),
                read_only: common.read_only,
                allow_other: common.allow_other,
                foreground: true,
                owner: owner(&common),
                fuse_options: o.fuse,
                request_timeout: request_timeout(&common),
                max_rate_limit_wait: Duration::from_secs(common.max_wait),
            };
            mount::run_mount(opts, || {})
        }
        Cmd::Unmount { mountpoint } => mount::unmount(&mountpoint),
        Cmd::Demo {
            mountpoint,
            mut common,
        } => {
            let o = apply_o_options(&mut common).map_err(anyhow::Error::msg)?;
            init_logging(common.verbose, None);
            demo::run(demo::DemoArgs {
                mountpoint,
                cache_dir: common.cache_dir.clone(),
                cache_size: common.cache_size,
                cache_min_free: common.cache_min_free,
                metadata_ttl: Duration::from_secs(common.metadata_ttl),
                read_only: common.read_only,
                allow_other: common.allow_other,
                owner: owner(&common),
                fuse_options: o.fuse,
                request_timeout: request_timeout(&common),
                max_rate_limit_wait: Duration::from_secs(common.max_wait),
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

    fn args(v: &[&str]) -> Vec<std::ffi::OsString> {
        v.iter().map(|s| (*s).into()).collect()
    }

    #[test]
    fn fstab_invocations_become_mount() {
        assert_eq!(
            fstab_args(args(&[
                "artifactfs",
                "o/r",
                "/mnt/a",
                "-o",
                "ro,cache_size=1G"
            ])),
            args(&[
                "artifactfs",
                "mount",
                "/mnt/a",
                "--repo",
                "o/r",
                "-o",
                "ro,cache_size=1G"
            ])
        );
        assert_eq!(
            fstab_args(args(&[
                "/sbin/mount.artifactfs",
                "artifactfs#o/r:o/s",
                "/mnt/a",
                "-n",
                "-o",
                "rw"
            ])),
            args(&[
                "/sbin/mount.artifactfs",
                "mount",
                "/mnt/a",
                "--repo",
                "o/r",
                "--repo",
                "o/s",
                "-o",
                "rw"
            ])
        );
        let normal = args(&["artifactfs", "mount", "/mnt/a", "--repo", "o/r"]);
        assert_eq!(fstab_args(normal.clone()), normal);
        let unmount = args(&["artifactfs", "unmount", "/mnt/a"]);
        assert_eq!(fstab_args(unmount.clone()), unmount);
    }

    #[test]
    fn o_options_map_to_flags() {
        let cli = Cli::parse_from(fstab_args(args(&[
            "artifactfs",
            "o/r",
            "/mnt/a",
            "-o",
            "rw,noauto,ro,allow_other,uid=1000,gid=100,cache_size=1G,dir_cache_time=5,nosuid,default_permissions,repo=o/s,foreground,x-systemd.automount",
        ])));
        let Cmd::Mount {
            repos, mut common, ..
        } = cli.command
        else {
            panic!("not a mount");
        };
        assert_eq!(repos, vec![RepoRef::new("o", "r")]);
        let o = apply_o_options(&mut common).unwrap();
        assert!(common.read_only && common.allow_other);
        assert_eq!((common.uid, common.gid), (Some(1000), Some(100)));
        assert_eq!(common.cache_size, 1 << 30);
        assert_eq!(common.metadata_ttl, 5);
        assert_eq!(o.fuse, vec!["nosuid", "default_permissions"]);
        assert_eq!(o.repos, vec![RepoRef::new("o", "s")]);
        assert!(o.foreground);
        let mut bad = common.clone();
        bad.options = vec!["uid=x".into()];
        assert!(apply_o_options(&mut bad).is_err());
    }

    #[test]
    fn demo_help_shows_the_cache_default_demo_uses() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let demo = cmd.find_subcommand_mut("demo").unwrap();
        let help = demo.render_help().to_string();
        assert!(help.contains("temporary directory"), "{help}");
        assert!(!help.contains("XDG_CACHE_HOME"), "{help}");
        let mut cmd = Cli::command();
        let mount = cmd.find_subcommand_mut("mount").unwrap();
        assert!(mount.render_help().to_string().contains("XDG_CACHE_HOME"));
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
