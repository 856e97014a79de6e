//! The mount table as this process sees it (`/proc/self/mounts`): which paths are mounted,
//! and which of them are artifactfs mounts. Read by `mount`/`unmount` and by `artifactfs
//! status` alike, so it sits below both.

use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    #[test]
    fn mount_table_escapes_are_undone() {
        assert_eq!(super::unescape_octal(r"/tmp/a\040b\134c"), "/tmp/a b\\c");
        assert_eq!(super::unescape_octal(r"/x\0"), r"/x\0");
    }
}
