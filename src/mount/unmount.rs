//! Unmounting: `artifactfs unmount`, and the mount's own unmount when it is stopped —
//! patiently while the mount is busy, then lazily rather than leave a dead mount behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::anyhow;

use super::preflight::which;

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
pub(super) fn unmount_patiently(mountpoint: &Path) -> anyhow::Result<()> {
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
