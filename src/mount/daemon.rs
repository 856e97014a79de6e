//! `mount` without `-f`: the command starts itself again in the background and waits until
//! that child says the filesystem answers (exit 0) or why it failed (one line, exit 1). The
//! child logs to a capped file in the cache directory, whose budget the cache sets aside.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::config::CoreConfig;
use crate::logfile::{self, CappedLog};

/// Set in the environment of the background child that `mount` (without `-f`) starts.
const DAEMON_ENV: &str = "ARTIFACTFS_DAEMON_CHILD";
/// What the child prints on stdout once the mount answers.
const READY_LINE: &str = "artifactfs-ready";

/// Whether this process is the background child of a `mount` without `-f`.
pub fn is_daemon_child() -> bool {
    std::env::var_os(DAEMON_ENV).is_some()
}

pub fn log_file(cache_dir: &Path) -> PathBuf {
    cache_dir.join("artifactfs.log")
}

/// In the background child: the log file, its budget reserved in `core`'s cache limits.
/// Elsewhere `None` (logs go to stderr).
pub fn background_log(core: &mut CoreConfig) -> Option<CappedLog> {
    if !is_daemon_child() {
        return None;
    }
    core.cache_limits.reserved = logfile::budget(core.cache_limits.size);
    CappedLog::open(&log_file(&core.cache_dir), core.cache_limits.reserved).ok()
}

/// Starts this command again in the background and waits for its word: Ok once the mount
/// answers, else the child's last line as the error.
pub fn daemonize_and_wait(cache_dir: &Path) -> anyhow::Result<()> {
    let log_path = log_file(cache_dir);
    let log = open_log(cache_dir, &log_path)?;
    let mut child = spawn_child(log)?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut last = String::new();
    for line in BufReader::new(stdout).lines() {
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

/// The cache directory (0700) and the log file (0600) the child's stderr goes to.
fn open_log(cache_dir: &Path, log_path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir)
        .with_context(|| format!("cache dir {}", cache_dir.display()))?;
    std::fs::set_permissions(cache_dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_path)
        .with_context(|| format!("opening log file {}", log_path.display()))
}

/// This executable with the same arguments, in its own session, stdout piped to us.
fn spawn_child(log: std::fs::File) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
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
    cmd.spawn().context("starting the background process")
}

/// In the background child, once the mount answers: tell the waiting parent, then let go
/// of its pipe. Elsewhere nothing.
pub fn signal_ready() {
    if !is_daemon_child() {
        return;
    }
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
