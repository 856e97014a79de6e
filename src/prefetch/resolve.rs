//! From the PATHs given to `artifactfs prefetch` to the artifacts' blob files in the mount:
//! an artifact (`runs/R/NAME/` or anything in it, `runs/R/NAME.zip`, an unzipped
//! `runs/R/NAME`) is its blob file (`NAME.zip`, or the unzipped file); a run is every file of
//! its directory (each is one artifact's blob); `latest/`, `branches/`, `branches/B/`,
//! `workflows/W/` (and `workflows/W/branches/B/`), `commits/SHA/` and `pulls/N/`
//! are the artifacts their links point to; a repository, an owner or the mount's root is
//! every run below. Symlinks are followed by the kernel (`canonicalize`), and the same blob
//! reached twice (a link and its run, `Owner/Repo` and `owner/repo`) is kept once.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, anyhow, bail};

/// One artifact's blob file, to be read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub len: u64,
    /// The path below the mount's root, for the user.
    pub label: String,
}

/// The blob files behind `paths`, each once, in the order first reached.
pub fn resolve(paths: &[PathBuf]) -> anyhow::Result<Vec<Target>> {
    let mounts = crate::mount_table::artifactfs_mounts();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        let canonical = std::fs::canonicalize(p).with_context(|| format!("{}", p.display()))?;
        let root = mounts
            .iter()
            .filter(|m| canonical.starts_with(m))
            .max_by_key(|m| m.as_os_str().len())
            .ok_or_else(|| anyhow!("{} is not inside an artifactfs mount", p.display()))?;
        let mut blobs = Vec::new();
        blobs_of(root, &canonical, &mut blobs).with_context(|| format!("{}", p.display()))?;
        for b in blobs {
            let md = std::fs::metadata(&b).with_context(|| format!("{}", b.display()))?;
            if seen.insert((md.dev(), md.ino())) {
                let label = b.strip_prefix(root).unwrap_or(&b).display().to_string();
                out.push(Target {
                    path: b,
                    len: md.len(),
                    label,
                });
            }
        }
    }
    Ok(out)
}

/// The blob files at or below `path` (canonical, inside the mount at `root`).
fn blobs_of(root: &Path, path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let rel: Vec<String> = path
        .strip_prefix(root)?
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let rel: Vec<&str> = rel.iter().map(String::as_str).collect();
    match rel.as_slice() {
        // The root, an owner: every repository below.
        [] | [_] => {
            for d in children(path)? {
                if d.is_dir() {
                    blobs_of(root, &d, out)?;
                }
            }
        }
        [_, _] => blobs_of(root, &path.join("runs"), out)?,
        // Runs, links, branches: what each entry is (links followed).
        [_, _, "runs" | "latest" | "branches"] | [_, _, "branches", _] => {
            for child in children(path)? {
                let target = std::fs::canonicalize(&child)
                    .with_context(|| format!("{}", child.display()))?;
                blobs_of(root, &target, out)?;
            }
        }
        // The views by workflow, commit and pull request: the artifacts their links lead to.
        [_, _, "workflows", _]
        | [_, _, "workflows", _, "branches", _]
        | [_, _, "commits", _]
        | [_, _, "pulls", _] => {
            for child in children(path)? {
                if std::fs::symlink_metadata(&child)?.is_symlink() {
                    let target = std::fs::canonicalize(&child)
                        .with_context(|| format!("{}", child.display()))?;
                    blobs_of(root, &target, out)?;
                }
            }
        }
        // A run: each file is one artifact's blob.
        [_, _, "runs", _] => {
            for child in children(path)? {
                if std::fs::symlink_metadata(&child)?.is_file() {
                    out.push(child);
                }
            }
        }
        [_, _, "runs", _, _] if !path.is_dir() => out.push(path.to_path_buf()),
        // A zip artifact's directory, or anything in it: its archive.
        [_, _, "runs", _, name, ..] => {
            let run = root.join(rel[..4].join("/"));
            out.push(run.join(format!("{name}.zip")));
        }
        _ => bail!(
            "not an artifact, a run, latest/, branches/, workflows/W/, commits/SHA/, pulls/N/ \
             or a repository"
        ),
    }
    Ok(())
}

/// A directory's entries, sorted (so the order is stable).
fn children(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut all = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    all.sort();
    Ok(all)
}
