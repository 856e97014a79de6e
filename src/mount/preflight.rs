//! What can be checked before anything is mounted, each failure one clear line: the
//! mountpoint (exists, a directory, empty) and FUSE (`/dev/fuse`, fusermount3).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

/// Checks the mountpoint and that FUSE is there to mount with.
pub fn preflight(mountpoint: &Path) -> anyhow::Result<()> {
    check_mountpoint(mountpoint)?;
    check_fuse()
}

fn check_mountpoint(mountpoint: &Path) -> anyhow::Result<()> {
    let md = std::fs::metadata(mountpoint)
        .map_err(|e| anyhow!("mountpoint {}: {e}", mountpoint.display()))?;
    if !md.is_dir() {
        bail!("mountpoint {} is not a directory", mountpoint.display());
    }
    if std::fs::read_dir(mountpoint)?.next().is_some() {
        bail!("mountpoint {} is not empty", mountpoint.display());
    }
    Ok(())
}

fn check_fuse() -> anyhow::Result<()> {
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

/// Where programs are looked for when `PATH` is unset: mount(8) runs `mount.fuse3` and
/// `mount.artifactfs` (fstab, `mount -t fuse.artifactfs`) with no `PATH` at all.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `prog`'s path on `$PATH` (or `DEFAULT_PATH` when it is unset), if it is there.
pub fn which(prog: &str) -> Option<PathBuf> {
    which_in(std::env::var_os("PATH").as_deref(), prog)
}

fn which_in(path: Option<&std::ffi::OsStr>, prog: &str) -> Option<PathBuf> {
    let path = path.unwrap_or(DEFAULT_PATH.as_ref());
    std::env::split_paths(path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_path_programs_are_found_where_debian_puts_them() {
        // `sh` is in /bin or /usr/bin on every system this runs on.
        assert!(which_in(None, "sh").is_some());
        assert!(which_in(Some("/nonexistent".as_ref()), "sh").is_none());
    }
}
