//! fstab and `mount -t fuse.artifactfs`: the argv mount(8) and mount.fuse3 run us with,
//! rewritten into an ordinary `artifactfs mount`.

use std::ffi::OsString;

/// `mount -t fuse.artifactfs owner/repo DIR -o ...` runs `mount.fuse3`, which runs
/// `artifactfs owner/repo DIR -o ...`; a `mount.artifactfs` link is run by mount(8) as
/// `mount.artifactfs owner/repo DIR [-sfnv] [-o ...]`. Both become
/// `artifactfs mount DIR --repo owner/repo -o ...`. Anything else is left alone.
pub fn fstab_args(argv: Vec<OsString>) -> Vec<OsString> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
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
}
