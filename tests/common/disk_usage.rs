//! What a directory tree takes on disk, as `du` counts it: every file's and every
//! directory's allocated blocks (`st_blocks`), the root's included. Shared by the
//! integration tests and the cache's unit tests (`src/cache/tests.rs` includes this file).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes `root` and everything under it occupy on disk (a file removed while it is counted
/// counts nothing).
pub fn disk_usage(root: &Path) -> u64 {
    let mut total = std::fs::metadata(root).map_or(0, |md| md.blocks() * 512);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            }
            total += md.blocks() * 512;
        }
    }
    total
}
