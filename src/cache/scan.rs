//! What a cache directory holds at startup, for accounting: inflated entries and metadata
//! files as they are, and the blocks each `.map` says are present (plus the blob's overhead).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{BLOCK_SIZE, BlockFile, blob_overhead, block_rel, map_rel, on_disk};

/// Accounts the blocks recorded in `blocks/*.map`, as of each map's last write, each map
/// after its blocks (it is evicted after them). A map of another format is removed with its
/// data: nothing it says can be checked.
pub(super) fn collect_blocks(
    dir: &Path,
    out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>,
) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".data")
            && !dir.join(format!("{stem}.map")).exists()
        {
            let _ = fs::remove_file(e.path()); // a data file without its map: nothing to trust
            continue;
        }
        let Some(stem) = name.strip_suffix(".map") else {
            continue;
        };
        if !dir.join(format!("{stem}.data")).exists() {
            let _ = fs::remove_file(e.path()); // an orphan map claims nothing
            continue;
        }
        let Some(len) = BlockFile::recorded_len(&e.path()) else {
            let _ = fs::remove_file(e.path());
            let _ = fs::remove_file(dir.join(format!("{stem}.data")));
            continue;
        };
        let t = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let map_size = blob_overhead(e.metadata().map(|m| m.len()).unwrap_or(0));
        for i in BlockFile::recorded_blocks(&e.path()) {
            let size = BLOCK_SIZE.min(len.saturating_sub(i * BLOCK_SIZE));
            out.push((block_rel(stem, i), on_disk(size), t));
        }
        out.push((map_rel(stem), map_size, t));
    }
    Ok(())
}

pub(super) fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>,
) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let md = e.metadata()?;
        if md.is_dir() {
            collect_files(root, &e.path(), out)?;
        } else if md.is_file() {
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            let t = md
                .accessed()
                .or_else(|_| md.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            out.push((rel, on_disk(md.len()), t));
        }
    }
    Ok(())
}
