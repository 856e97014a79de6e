//! What `df` shows for a mount: the disk cache's limit as the filesystem's size, what the
//! cache holds as used, and the inodes handed out so far.

use super::ArtifactFs;

/// The figures `statfs` reports, in `block_size` units where they are sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFs {
    pub block_size: u32,
    /// `--cache-size`, in blocks.
    pub blocks: u64,
    /// What the cache may still take, in blocks.
    pub free_blocks: u64,
    /// Inodes handed out so far.
    pub files: u64,
    /// Inodes still available: no real limit.
    pub free_files: u64,
    /// The longest name a directory entry can have.
    pub name_max: u32,
}

impl ArtifactFs {
    pub fn statfs(&self) -> StatFs {
        const BLOCK: u64 = 4096;
        let cache = self.cache();
        StatFs {
            block_size: BLOCK as u32,
            blocks: cache.limit() / BLOCK,
            free_blocks: cache.limit().saturating_sub(cache.used()) / BLOCK,
            files: self.inode_count() as u64,
            free_files: u32::MAX as u64,
            name_max: 255,
        }
    }
}
