//! The FUSE session: fuser's config from a [`FuseConfig`], the adapter over the core
//! mounted in the background, the wait until the mount answers, and its end — a signal
//! (SIGINT, SIGTERM) or an unmount from outside — and the unmount that follows.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::anyhow;
use fuser::{BackgroundSession, MountOption};

use super::unmount::unmount_patiently;
use crate::config::FuseConfig;
use crate::filesystem::ArtifactFs;
use crate::fuse::{Epoch, FuseAdapter};
use crate::mount_table::is_mounted;

/// Mounts the adapter over `fs` (answering on `rt`) and serves it from a background thread.
pub fn start(
    fs: Arc<ArtifactFs>,
    rt: &tokio::runtime::Runtime,
    cfg: &FuseConfig,
    read_only: bool,
) -> anyhow::Result<BackgroundSession> {
    let notifier = Arc::new(OnceLock::new());
    let epoch = Arc::new(Epoch::default());
    let adapter = FuseAdapter::new(
        fs,
        rt.handle().clone(),
        cfg.owner,
        notifier.clone(),
        epoch.clone(),
        cfg.request_timeout,
    );
    let session = fuser::Session::new(adapter, &cfg.mountpoint, &fuser_config(cfg, read_only))
        .map_err(|e| anyhow!("mounting {}: {e}", cfg.mountpoint.display()))?;
    let _ = notifier.set(session.notifier());
    match session.as_fd().try_clone_to_owned() {
        Ok(fd) => epoch.set_device(fd),
        Err(e) => tracing::warn!(
            "no duplicate of the FUSE device ({e}): deleted names get no cache lifetime"
        ),
    }
    Ok(session.spawn()?)
}

fn fuser_config(cfg: &FuseConfig, read_only: bool) -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("artifactfs".into()),
        MountOption::Subtype("artifactfs".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    if read_only {
        // The kernel then refuses every write itself: nothing reaches us, nothing is sent.
        config.mount_options.push(MountOption::RO);
    }
    if cfg.allow_other {
        config.acl = fuser::SessionACL::All;
        config.mount_options.push(MountOption::DefaultPermissions);
    }
    for o in &cfg.options {
        // A flag given overrides the default it contradicts (mount(8) spells out `dev,suid`
        // for an fstab line, which fuser would otherwise refuse as conflicting).
        let o = fuse_option(o);
        if let Some(opposite) = opposite(&o) {
            config.mount_options.retain(|m| *m != opposite);
        }
        config.mount_options.push(o);
    }
    config.n_threads = Some(2);
    config
}

/// The flag `o` contradicts, if it is one of a pair.
fn opposite(o: &MountOption) -> Option<MountOption> {
    use MountOption as M;
    Some(match o {
        M::Dev => M::NoDev,
        M::NoDev => M::Dev,
        M::Suid => M::NoSuid,
        M::NoSuid => M::Suid,
        M::Exec => M::NoExec,
        M::NoExec => M::Exec,
        M::Atime => M::NoAtime,
        M::NoAtime => M::Atime,
        _ => return None,
    })
}

/// A `-o` option for FUSE: the kernel's mount flags by name, anything else as given.
fn fuse_option(o: &str) -> MountOption {
    use MountOption as M;
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

/// Returns once a stat of the mount's root has come back through FUSE.
pub fn wait_until_answering(mountpoint: &Path) -> anyhow::Result<()> {
    std::fs::metadata(mountpoint).map_err(|e| {
        anyhow!(
            "mounted {} but it does not answer: {e}",
            mountpoint.display()
        )
    })?;
    tracing::info!(mountpoint = %mountpoint.display(), "mounted");
    raise_readahead(mountpoint);
    Ok(())
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

/// Waits for SIGINT or SIGTERM, or for the session to end (unmounted from outside).
pub async fn until_stopped(bg: &BackgroundSession) -> anyhow::Result<()> {
    let stop = crate::startup::stop_requested();
    tokio::pin!(stop);
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = interval.tick() => if bg.guard.is_finished() { break },
        }
    }
    Ok(())
}

/// Ends the session, unmounting unless that already happened.
pub fn stop(bg: BackgroundSession, mountpoint: &Path) -> anyhow::Result<()> {
    tracing::info!("unmounting {}", mountpoint.display());
    if bg.guard.is_finished() {
        let _ = bg.join();
    } else if let Err(e) = bg.umount_and_join() {
        // Busy (a file still open, a shell inside): wait a little, then detach lazily. We
        // don't wait for the session to end: exiting closes /dev/fuse, and whoever is still
        // inside gets ENOTCONN rather than a hung Ctrl-C.
        if is_mounted(mountpoint) {
            tracing::info!("unmount: {e}; retrying");
            unmount_patiently(mountpoint)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_given_override_the_defaults_they_contradict() {
        let cfg = FuseConfig {
            mountpoint: "/mnt".into(),
            owner: crate::config::Owner { uid: 0, gid: 0 },
            allow_other: false,
            // What mount(8) passes for an fstab line, plus one of ours.
            options: vec!["dev".into(), "suid".into(), "noexec".into()],
            request_timeout: None,
        };
        let o = fuser_config(&cfg, true).mount_options;
        for want in [MountOption::Dev, MountOption::Suid, MountOption::NoExec] {
            assert!(o.contains(&want), "{want:?} missing from {o:?}");
        }
        for gone in [MountOption::NoDev, MountOption::NoSuid] {
            assert!(!o.contains(&gone), "{gone:?} still in {o:?}");
        }
        assert!(o.contains(&MountOption::NoAtime) && o.contains(&MountOption::RO));
    }
}
