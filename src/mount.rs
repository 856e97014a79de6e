//! Mounting: preflight checks that fail fast with one clear line, building the layers,
//! the FUSE session, daemonizing only after the mount answers, and unmounting on
//! SIGINT/SIGTERM (we don't rely on `auto_unmount`, which needs `allow_other`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::cache::DiskCache;
use crate::filesystem::{ArtifactFs, FsConfig};
use crate::fuse::{FuseAdapter, Owner};
use crate::github::blob::BlobClient;
use crate::github::client::{ClientConfig, GitHubClient};
use crate::github::{ApiError, RepoRef};
use crate::github_remote::GitHubRemote;

/// Set in the environment of the background child that `mount` (without `-f`) starts.
const DAEMON_ENV: &str = "ARTIFACTFS_DAEMON_CHILD";
const READY_LINE: &str = "artifactfs-ready";

#[derive(Clone, Debug)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    pub repos: Vec<RepoRef>,
    pub api_url: url::Url,
    pub token: Option<String>,
    pub cache_dir: PathBuf,
    pub cache_size: u64,
    /// `--cache-min-free`.
    pub cache_min_free: u64,
    /// Bytes of the cache set aside for the log file (0 in the foreground: stderr).
    pub log_budget: u64,
    pub metadata_ttl: Duration,
    pub read_only: bool,
    pub allow_other: bool,
    pub foreground: bool,
    pub owner: Owner,
    /// `-o` options not handled by artifactfs itself, passed to FUSE as they are.
    pub fuse_options: Vec<String>,
    /// `--daemon-timeout`: answer EIO to a request still running after this long.
    pub request_timeout: Option<Duration>,
    /// `--max-wait`: the longest a request waits for a rate limit to reset before EIO.
    pub max_rate_limit_wait: Duration,
}

pub fn is_daemon_child() -> bool {
    std::env::var_os(DAEMON_ENV).is_some()
}

pub fn log_file(cache_dir: &Path) -> PathBuf {
    cache_dir.join("artifactfs.log")
}

/// Checks what can be checked before anything is mounted.
pub fn preflight(mountpoint: &Path) -> anyhow::Result<()> {
    let md = std::fs::metadata(mountpoint)
        .map_err(|e| anyhow!("mountpoint {}: {e}", mountpoint.display()))?;
    if !md.is_dir() {
        bail!("mountpoint {} is not a directory", mountpoint.display());
    }
    if std::fs::read_dir(mountpoint)?.next().is_some() {
        bail!("mountpoint {} is not empty", mountpoint.display());
    }
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse is missing: FUSE is not available here (load the fuse module)");
    }
    if which("fusermount3").is_none() && which("fusermount").is_none() {
        bail!(
            "fuse3 is not installed (no fusermount3): install it, e.g. `sudo apt-get install fuse3`"
        );
    }
    Ok(())
}

pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// `mount` without `-f`: start ourselves again in the background and wait until that
/// child says the filesystem answers (exit 0) or fails (its one-line reason, exit 1).
pub fn daemonize_and_wait(cache_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir)
        .with_context(|| format!("cache dir {}", cache_dir.display()))?;
    std::fs::set_permissions(cache_dir, std::fs::Permissions::from_mode(0o700))?;
    let log_path = log_file(cache_dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .with_context(|| format!("opening log file {}", log_path.display()))?;
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(DAEMON_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the background process")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut last = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if line == READY_LINE {
            eprintln!("artifactfs: log file {}", log_path.display());
            return Ok(());
        }
        last = line;
    }
    let status = child.wait()?;
    if last.is_empty() {
        last = format!(
            "background process exited with {status}; see {}",
            log_path.display()
        );
    }
    bail!("{last}")
}

fn cache_limits(opts: &MountOptions) -> crate::cache::Limits {
    crate::cache::Limits {
        size: opts.cache_size,
        min_free: opts.cache_min_free,
        reserved: opts.log_budget,
    }
}

fn describe_api_error(repo: &RepoRef, api_url: &url::Url, e: &ApiError) -> String {
    match e {
        ApiError::Unauthorized(_) => {
            "token rejected by GitHub (401 Bad credentials): check GH_TOKEN / GITHUB_TOKEN / `gh auth login`".to_string()
        }
        ApiError::NotFound(_) => format!("repository {repo} not found (or not visible to this token)"),
        ApiError::Forbidden(m) => format!("access to {repo} forbidden (403): {m}"),
        ApiError::Network(m) => format!("GitHub API at {api_url} unreachable: {m}"),
        other => format!("listing artifacts of {repo} failed: {other}"),
    }
}

/// The kernel offers FUSE a 128 KiB readahead at INIT, so page-cache reads reach us 128 KiB
/// at a time. Where allowed (root), raise the mount's readahead to 1 MiB afterwards through
/// its BDI, so sequential reads come in 1 MiB requests (the most FUSE takes): fewer round
/// trips per byte. Best effort; nothing depends on it.
fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = md.dev();
    let path = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    match std::fs::write(&path, "1024") {
        Ok(()) => tracing::debug!("readahead raised to 1 MiB ({path})"),
        Err(e) => tracing::debug!("readahead left at the kernel's default ({path}: {e})"),
    }
}

/// A `-o` option for FUSE: the kernel's mount flags by name, anything else as given.
fn fuse_option(o: &str) -> fuser::MountOption {
    use fuser::MountOption as M;
    match o {
        "default_permissions" => M::DefaultPermissions,
        "dev" => M::Dev,
        "nodev" => M::NoDev,
        "suid" => M::Suid,
        "nosuid" => M::NoSuid,
        "exec" => M::Exec,
        "noexec" => M::NoExec,
        "atime" => M::Atime,
        "noatime" => M::NoAtime,
        "dirsync" => M::DirSync,
        "sync" => M::Sync,
        "async" => M::Async,
        x if x.starts_with("fsname=") => M::FSName(x[7..].into()),
        x if x.starts_with("subtype=") => M::Subtype(x[8..].into()),
        x => M::CUSTOM(x.into()),
    }
}

/// Each artifact touched keeps its block files open (two descriptors): let a big repository
/// use as many as the hard limit allows rather than fail at the default soft 1024.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::debug!("could not raise the open-files limit");
            }
        }
    }
}

/// Mounts and serves until unmounted or signalled. `on_ready` runs once the mount answers.
pub fn run_mount(opts: MountOptions, on_ready: impl FnOnce()) -> anyhow::Result<()> {
    raise_open_files_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("artifactfs-io")
        .build()?;

    let mut cfg = ClientConfig::new(opts.api_url.clone(), opts.token.clone());
    cfg.user_agent = format!("artifactfs/{}", env!("CARGO_PKG_VERSION"));
    cfg.retry.max_rate_limit_wait = opts.max_rate_limit_wait;
    let api = GitHubClient::new(cfg).map_err(|e| anyhow!("GitHub client: {e}"))?;

    // Fail fast: every repository named on the command line must be listable.
    let listings = rt.block_on(async {
        let mut listings = Vec::new();
        for repo in &opts.repos {
            let all = api
                .list_artifacts(repo, None)
                .await
                .map_err(|e| anyhow!(describe_api_error(repo, &opts.api_url, &e)))?;
            listings.push((repo.clone(), all));
        }
        Ok::<_, anyhow::Error>(listings)
    })?;

    let cache = Arc::new(
        DiskCache::open_with(&opts.cache_dir, cache_limits(&opts))
            .with_context(|| format!("cache dir {}", opts.cache_dir.display()))?,
    );
    let remote = Arc::new(GitHubRemote::new(api, BlobClient::new()));
    let fs = Arc::new(ArtifactFs::new(
        remote,
        cache,
        FsConfig {
            repos: opts.repos.clone(),
            metadata_ttl: opts.metadata_ttl,
            read_only: opts.read_only,
        },
    ));
    for (repo, all) in listings {
        fs.prime_listing(&repo, all);
    }
    let notifier = Arc::new(OnceLock::new());
    let adapter = FuseAdapter::new(
        fs,
        rt.handle().clone(),
        opts.owner,
        notifier.clone(),
        opts.request_timeout,
    );

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("artifactfs".into()),
        fuser::MountOption::Subtype("artifactfs".into()),
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
    ];
    if opts.read_only {
        // The kernel then refuses every write itself: nothing reaches us, nothing is sent.
        config.mount_options.push(fuser::MountOption::RO);
    }
    if opts.allow_other {
        config.acl = fuser::SessionACL::All;
        config
            .mount_options
            .push(fuser::MountOption::DefaultPermissions);
    }
    for o in &opts.fuse_options {
        config.mount_options.push(fuse_option(o));
    }
    config.n_threads = Some(2);

    let session = fuser::Session::new(adapter, &opts.mountpoint, &config)
        .map_err(|e| anyhow!("mounting {}: {e}", opts.mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    let bg = session.spawn()?;

    // The mount answers once a stat of its root comes back through FUSE.
    std::fs::metadata(&opts.mountpoint).map_err(|e| {
        anyhow!(
            "mounted {} but it does not answer: {e}",
            opts.mountpoint.display()
        )
    })?;
    tracing::info!(mountpoint = %opts.mountpoint.display(), "mounted");
    raise_readahead(&opts.mountpoint);
    if is_daemon_child() {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{READY_LINE}");
        let _ = out.flush();
        // Detach from the parent's pipe.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd;
            // SAFETY: dup2 onto stdout with a valid descriptor.
            unsafe { libc::dup2(null.as_raw_fd(), 1) };
        }
    }
    on_ready();

    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut interval = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = interval.tick() => if bg.guard.is_finished() { break },
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    tracing::info!("unmounting {}", opts.mountpoint.display());
    if bg.guard.is_finished() {
        let _ = bg.join();
    } else if let Err(e) = bg.umount_and_join() {
        // Busy (a file still open, a shell inside): wait a little, then detach lazily. We
        // don't wait for the session to end: exiting closes /dev/fuse, and whoever is still
        // inside gets ENOTCONN rather than a hung Ctrl-C.
        if is_mounted(&opts.mountpoint) {
            tracing::info!("unmount: {e}; retrying");
            unmount_patiently(&opts.mountpoint)?;
        }
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Unmounts once: `umount2` as root, `fusermount3 -u` otherwise (`lazy`: detach now and let
/// the kernel finish when the last user lets go).
fn unmount_once(mountpoint: &Path, lazy: bool) -> std::io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
            .map_err(std::io::Error::other)?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        return Err(std::io::Error::last_os_error());
    }
    let prog = if which("fusermount3").is_some() {
        "fusermount3"
    } else {
        "fusermount"
    };
    let mut cmd = Command::new(prog);
    cmd.arg("-u").arg("-q");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd.arg(mountpoint).stderr(Stdio::piped()).output()?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    if msg.contains("busy") {
        return Err(std::io::Error::from_raw_os_error(libc::EBUSY));
    }
    Err(std::io::Error::other(format!("{prog}: {}", msg.trim())))
}

/// Unmounts, waiting up to 3 s while the mount is busy (files still being released, a shell
/// whose working directory is inside), then detaches it lazily rather than leave it behind.
fn unmount_patiently(mountpoint: &Path) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match unmount_once(mountpoint, false) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if std::time::Instant::now() >= deadline {
                    tracing::warn!(
                        "{} is busy: detaching it lazily (it disappears when the last user leaves)",
                        mountpoint.display()
                    );
                    return unmount_once(mountpoint, true)
                        .map_err(|e| anyhow!("unmount {}: {e}", mountpoint.display()));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(anyhow!("unmount {}: {e}", mountpoint.display())),
        }
    }
}

/// Whether `mountpoint` is a mount point of ours right now (per /proc/self/mounts).
pub fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let want = mountpoint.to_string_lossy();
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (Some(_src), Some(dir), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            return false;
        };
        // /proc/self/mounts escapes spaces as \040.
        dir.replace("\\040", " ") == want && fstype.starts_with("fuse")
    })
}

/// `artifactfs unmount MOUNTPOINT` (works for non-root users via fusermount3).
pub fn unmount(mountpoint: &Path) -> anyhow::Result<()> {
    unmount_once(mountpoint, false).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) => anyhow!(
            "{} is busy (a process has a file open or its working directory inside)",
            mountpoint.display()
        ),
        _ => anyhow!("could not unmount {}: {e}", mountpoint.display()),
    })
}
