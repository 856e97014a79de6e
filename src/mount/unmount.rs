//! Unmounting: `artifactfs unmount`, and the mount's own unmount when it is stopped —
//! patiently while the mount is busy, then lazily rather than leave a dead mount behind.

use std::path::{Path, PathBuf};
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

/// Whether `mountpoint` is a mount point of ours right now (per /proc/self/mounts).
pub fn is_mounted(mountpoint: &Path) -> bool {
    mount_table()
        .iter()
        .any(|(_, dir, fstype)| dir == mountpoint && fstype.starts_with("fuse"))
}

/// Every artifactfs mount point in this mount namespace: type `fuse.artifactfs`, or `fuse`
/// with the source `artifactfs` (where the subtype is not recorded).
pub fn artifactfs_mounts() -> Vec<PathBuf> {
    mount_table()
        .into_iter()
        .filter(|(src, _, fstype)| {
            fstype == "fuse.artifactfs" || (src == "artifactfs" && fstype.starts_with("fuse"))
        })
        .map(|(_, dir, _)| dir)
        .collect()
}

/// /proc/self/mounts as (source, mount point, file system type).
fn mount_table() -> Vec<(String, PathBuf, String)> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (src, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            let dir = PathBuf::from(unescape_octal(dir));
            Some((src.to_string(), dir, fstype.to_string()))
        })
        .collect()
}

/// /proc/self/mounts writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_octal(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) if b[i] == b'\\' => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
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

#[cfg(test)]
mod tests {
    #[test]
    fn mount_table_escapes_are_undone() {
        assert_eq!(super::unescape_octal(r"/tmp/a\040b\134c"), "/tmp/a b\\c");
        assert_eq!(super::unescape_octal(r"/x\0"), r"/x\0");
    }
}
