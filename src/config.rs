//! The command line's options, declared once: the clap groups every front end shares
//! ([`RemoteArgs`]: which repositories where; [`CoreArgs`]: cache, listings, rate limits,
//! logging; [`FuseArgs`]: what only a FUSE mount takes), fstab-style `-o` options folded into
//! them, and the resolved configs the layers are built from ([`CoreConfig`] for the core,
//! which `mount`, `demo` and `serve` share; [`FuseConfig`] for the mount).

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::Limits;
use crate::filesystem::FsConfig;
use crate::github::RepoRef;

/// Which repositories, on which GitHub.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Repository to show, as OWNER/REPO (repeatable; the environment variable takes a
    /// comma-separated list)
    #[arg(
        long = "repo",
        value_name = "OWNER/REPO",
        value_parser = parse_repo,
        env = "ARTIFACTFS_REPO",
        value_delimiter = ','
    )]
    pub repos: Vec<RepoRef>,
    /// GitHub API URL (GitHub Enterprise Server: https://HOST/api/v3)
    #[arg(long, env = "GITHUB_API_URL", default_value = "https://api.github.com")]
    pub api_url: url::Url,
}

/// The options of the core: the cache, how long listings are trusted, rate limits, logging.
#[derive(clap::Args, Debug, Clone)]
pub struct CoreArgs {
    /// Disk cache directory [default: $XDG_CACHE_HOME/artifactfs, else ~/.cache/artifactfs]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Disk cache limit (K, M, G, T suffixes); least recently used goes first
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_size)]
    pub cache_size: u64,
    /// Keep at least this much free on the cache's filesystem (K, M, G, T suffixes)
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = parse_size)]
    pub cache_min_free: u64,
    /// Seconds a listing is trusted before it is fetched again
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        visible_alias = "dir-cache-time"
    )]
    pub metadata_ttl: u64,
    /// Longest wait for a GitHub rate limit to reset before a request fails with EIO
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub max_wait: u64,
    /// More log output (-v info, -vv debug); RUST_LOG overrides
    // Listed last in --help, after the FUSE group that follows this one, but before -h
    // (clap lists an argument without a display order, such as -h, at 999).
    #[arg(short, long, action = clap::ArgAction::Count, display_order = 998)]
    pub verbose: u8,
}

/// The options of a FUSE mount (`mount` and `demo`).
#[derive(clap::Args, Debug, Clone)]
pub struct FuseArgs {
    /// Never delete anything (rm gives EROFS)
    #[arg(long)]
    pub read_only: bool,
    /// Let other users see the mount (needs user_allow_other in /etc/fuse.conf for non-root)
    #[arg(long)]
    pub allow_other: bool,
    /// Owner of every file and directory [default: the mounting user]
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// Group of every file and directory [default: the mounting user's group]
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,
    /// Answer EIO to a request still waiting on the network after SECS (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub daemon_timeout: u64,
    /// Mount options, comma-separated, fstab style: artifactfs's own (ro, allow_other,
    /// uid=, gid=, cache_dir=, cache_size=, cache_min_free=, metadata_ttl=, dir_cache_time=,
    /// api_url=, daemon_timeout=, max_wait=, repo=, foreground) or FUSE/kernel ones
    /// (default_permissions, nosuid, nodev, noexec, noatime, ...), which are passed through
    #[arg(short = 'o', value_name = "OPT[,OPT...]", value_delimiter = ',')]
    pub options: Vec<String>,
}

/// What `-o` says that only `mount` takes (`demo` ignores it).
#[derive(Debug, Default, PartialEq)]
pub struct MountOnly {
    pub repos: Vec<RepoRef>,
    pub api_url: Option<url::Url>,
    pub foreground: bool,
}

/// Folds `-o` options into the flags they stand for. Afterwards `fuse.options` holds only
/// what is passed to FUSE as it is; what only `mount` takes is returned.
pub fn apply_o_options(core: &mut CoreArgs, fuse: &mut FuseArgs) -> Result<MountOnly, String> {
    let mut out = MountOnly::default();
    let mut pass = Vec::new();
    for raw in std::mem::take(&mut fuse.options) {
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
            "ro" | "read_only" => fuse.read_only = true,
            "allow_other" => fuse.allow_other = true,
            "uid" => fuse.uid = Some(num(val()?)? as u32),
            "gid" => fuse.gid = Some(num(val()?)? as u32),
            "cache_dir" => core.cache_dir = Some(PathBuf::from(val()?)),
            "cache_size" => core.cache_size = parse_size(val()?)?,
            "cache_min_free" => core.cache_min_free = parse_size(val()?)?,
            "metadata_ttl" | "dir_cache_time" => core.metadata_ttl = num(val()?)?,
            "daemon_timeout" => fuse.daemon_timeout = num(val()?)?,
            "max_wait" => core.max_wait = num(val()?)?,
            "api_url" => {
                out.api_url = Some(url::Url::parse(val()?).map_err(|e| format!("-o api_url: {e}"))?)
            }
            "repo" => out.repos.push(parse_repo(val()?)?),
            "foreground" => out.foreground = true,
            "verbose" => core.verbose += 1,
            _ => pass.push(o.to_string()),
        }
    }
    fuse.options = pass;
    Ok(out)
}

/// What the core is built from: the same for a mount, the demo and `serve`.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub repos: Vec<RepoRef>,
    pub api_url: url::Url,
    /// Sent to the API origin only; `None`: public repositories, listings only.
    pub token: Option<String>,
    pub cache_dir: PathBuf,
    /// `--cache-size` and `--cache-min-free`; `reserved` is the log file's budget (0 when
    /// logging to stderr).
    pub cache_limits: Limits,
    pub metadata_ttl: Duration,
    pub read_only: bool,
    /// `--max-wait`: the longest a request waits for a rate limit to reset before EIO.
    pub max_rate_limit_wait: Duration,
}

impl CoreArgs {
    /// The core's config for `remote`, without a token yet (see [`CoreConfig::token`]); the
    /// cache directory is `--cache-dir`, else `default_dir()`.
    pub fn core_config(
        &self,
        remote: RemoteArgs,
        read_only: bool,
        default_dir: impl FnOnce() -> PathBuf,
    ) -> CoreConfig {
        CoreConfig {
            repos: remote.repos,
            api_url: remote.api_url,
            token: None,
            cache_dir: self.cache_dir.clone().unwrap_or_else(default_dir),
            cache_limits: Limits {
                size: self.cache_size,
                min_free: self.cache_min_free,
                reserved: 0,
            },
            metadata_ttl: Duration::from_secs(self.metadata_ttl),
            read_only,
            max_rate_limit_wait: Duration::from_secs(self.max_wait),
        }
    }
}

impl CoreConfig {
    pub fn fs_config(&self) -> FsConfig {
        FsConfig {
            repos: self.repos.clone(),
            metadata_ttl: self.metadata_ttl,
            read_only: self.read_only,
        }
    }
}

/// Who owns every file (the mounting user unless `--uid/--gid` say otherwise).
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// What the FUSE session is set up with.
#[derive(Clone, Debug)]
pub struct FuseConfig {
    pub mountpoint: PathBuf,
    pub owner: Owner,
    pub allow_other: bool,
    /// `-o` options not handled by artifactfs itself, passed to FUSE as they are.
    pub options: Vec<String>,
    /// `--daemon-timeout`: answer EIO to a request still running after this long.
    pub request_timeout: Option<Duration>,
}

impl FuseArgs {
    /// The session's config (after [`apply_o_options`]); files belong to the mounting user
    /// unless `--uid`/`--gid` say otherwise.
    pub fn fuse_config(&self, mountpoint: PathBuf) -> FuseConfig {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        FuseConfig {
            mountpoint,
            owner: Owner {
                uid: self.uid.unwrap_or(uid),
                gid: self.gid.unwrap_or(gid),
            },
            allow_other: self.allow_other,
            options: self.options.clone(),
            request_timeout: (self.daemon_timeout > 0)
                .then(|| Duration::from_secs(self.daemon_timeout)),
        }
    }
}

pub fn parse_repo(s: &str) -> Result<RepoRef, String> {
    RepoRef::parse(s).ok_or_else(|| format!("expected OWNER/REPO, got {s:?}"))
}

/// `10G`, `512M`, `1.5K`, `2GiB`, `100`: bytes, binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
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

/// `$XDG_CACHE_HOME/artifactfs`, else `~/.cache/artifactfs`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("artifactfs");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("artifactfs")
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
}
