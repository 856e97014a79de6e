//! `artifactfs mount`: its arguments, and mounting as a sequence of small steps — the
//! preflight checks that fail fast with one clear line ([`mod@preflight`]), daemonizing only
//! after the mount answers ([`daemon`]), the core (`crate::startup`), the FUSE session
//! ([`session`]) and unmounting on SIGINT/SIGTERM ([`mod@unmount`]; we don't rely on
//! `auto_unmount`, which needs `allow_other`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::config::{self, CoreArgs, CoreConfig, FuseArgs, FuseConfig, RemoteArgs};
use crate::status::socket::StatusSocket;

pub mod daemon;
pub mod preflight;
pub mod session;
pub mod unmount;

pub use daemon::{background_log, is_daemon_child};
pub use preflight::preflight;
pub use unmount::unmount;

/// `artifactfs mount`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct MountArgs {
    /// Where to mount (an existing empty directory)
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Stay in the foreground
    #[arg(short, long)]
    pub foreground: bool,
    #[command(flatten)]
    pub core: CoreArgs,
    #[command(flatten)]
    pub fuse: FuseArgs,
}

/// A mount as its arguments and `-o` options resolve.
#[derive(Clone, Debug)]
pub struct MountConfig {
    pub core: CoreConfig,
    pub fuse: FuseConfig,
    pub foreground: bool,
    pub verbose: u8,
}

impl MountArgs {
    /// Folds `-o` into the flags and checks that a repository is named.
    pub fn into_config(mut self) -> anyhow::Result<MountConfig> {
        let o =
            config::apply_o_options(&mut self.core, &mut self.fuse).map_err(anyhow::Error::msg)?;
        self.remote.repos.extend(o.repos);
        if let Some(u) = o.api_url {
            self.remote.api_url = u;
        }
        if self.remote.repos.is_empty() {
            bail!("name at least one repository with --repo OWNER/REPO");
        }
        Ok(MountConfig {
            core: self.core.core_config(
                self.remote,
                self.fuse.read_only,
                config::default_cache_dir,
            ),
            fuse: self.fuse.fuse_config(self.mountpoint),
            foreground: self.foreground || o.foreground,
            verbose: self.core.verbose,
        })
    }
}

/// `artifactfs mount`: checks, then either starts the background child and waits for it,
/// or (in that child, or with `-f`) mounts and serves until unmounted.
pub fn mount(mut cfg: MountConfig) -> anyhow::Result<()> {
    preflight(&cfg.fuse.mountpoint)?;
    if !cfg.foreground && !is_daemon_child() {
        return daemon::daemonize_and_wait(&cfg.core.cache_dir);
    }
    cfg.core.token = crate::github::auth::discover_token(&cfg.core.api_url);
    cfg.fuse.mountpoint = std::fs::canonicalize(&cfg.fuse.mountpoint)?;
    run_mount(&cfg.core, &cfg.fuse, || {})
}

/// Mounts and serves until unmounted or signalled, with a status socket while mounted.
/// `on_ready` runs once the mount answers.
pub fn run_mount(
    core: &CoreConfig,
    fuse: &FuseConfig,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let rt = crate::startup::runtime()?;
    let fs = crate::startup::open_core(core, &rt)?;
    let bg = session::start(fs.clone(), &rt, fuse, core.read_only)?;
    session::wait_until_answering(&fuse.mountpoint)?;
    // For `artifactfs status`; removed when dropped (after the unmount, or on a failure).
    let status = StatusSocket::start(rt.handle(), &fuse.mountpoint, fs.clone());
    daemon::signal_ready();
    on_ready();
    rt.block_on(session::until_stopped(&bg))?;
    session::stop(bg, &fuse.mountpoint)?;
    drop(status);
    fs.persist_metadata();
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
