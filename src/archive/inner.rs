//! Archives inside an artifact (shared/contract.md, "Tree"): which file names open at
//! `FILE.d/`, what their bytes are (by magic), and the index `FILE.d/` shows: the members, the
//! sanitized tree over them (the same rules as a zip artifact's names, `tree.rs`), and which
//! symlinks may be shown as links.
//!
//! A symlink is shown as a link only when it can never lead out of `FILE.d/`: its target is
//! relative, not empty, and any `..` components come first and climb no higher than the
//! link's own directory (`../../lib/x` from two levels down). Every link shown obeys this, so
//! a path through any number of them stays inside too; anything else (`/etc/passwd`,
//! `../../..` from the top, `a/../..`, where a link inside could make `..` leave) is shown as
//! an empty file carrying the target in `user.archive.symlink`.

use super::ArchiveError;
use super::central_directory::ZipEntry;
use super::entry::extract_entry_to;
use super::tar::{Member, MemberKind, is_tar_header};
use super::tree::{ArchiveTree, NodeKind, PathEntry};
use crate::source::ByteSource;

/// The deepest level an archive inside an archive opens at (the artifact is level 0, its
/// `FILE.d/` level 1).
pub const MAX_DEPTH: usize = 4;

/// Whether a file called `name` opens at `name.d/` (by name; the bytes decide the format).
pub fn opens_as_archive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [".tar", ".tar.gz", ".tgz", ".zip", ".whl", ".jar"]
        .iter()
        .any(|ext| n.len() > ext.len() && n.ends_with(ext))
}

/// The name of the directory an archive file opens at.
pub fn contents_name(name: &str) -> String {
    format!("{name}.d")
}

/// The file a `FILE.d` name stands for, if it is one.
pub fn archive_of_contents(name: &str) -> Option<&str> {
    name.strip_suffix(".d").filter(|f| opens_as_archive(f))
}

/// What an inner archive's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Format {
    Tar,
    Gzip,
    Zip,
}

/// The format of bytes starting with `head` (the first 512 bytes, or all of a shorter file).
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::Gzip)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if is_tar_header(head) {
        Some(Format::Tar)
    } else {
        None
    }
}

/// The members of an inner zip (`.zip`, `.whl`, `.jar`): modes from the external attributes
/// when the zip was made on Unix (0644, 0755 for directories, otherwise).
fn zip_members(entries: &[ZipEntry]) -> Vec<Member> {
    entries
        .iter()
        .map(|e| Member {
            name: e.name.clone(),
            kind: if e.is_dir {
                MemberKind::Dir
            } else {
                MemberKind::File
            },
            mode: e
                .unix_mode()
                .map_or(if e.is_dir { 0o755 } else { 0o644 }, |m| m & 0o7777),
            mtime: e.mtime_unix(),
            size: if e.is_dir { 0 } else { e.uncompressed_size },
            offset: e.local_header_offset,
        })
        .collect()
}

/// The longest symlink target read from an inner zip (`PATH_MAX` less its NUL); an entry
/// marked as a link whose data is longer is no link: it is shown as the file it is.
pub const MAX_LINK_TARGET: u64 = 4095;

/// The members of an inner zip with its symlinks (entries whose Unix mode is `S_IFLNK`) as
/// links: each one's target is its data, read from `src` (CRC-checked).
pub async fn read_zip_members(
    src: &dyn ByteSource,
    entries: &[ZipEntry],
) -> Result<Vec<Member>, ArchiveError> {
    let mut members = zip_members(entries);
    for (m, e) in members.iter_mut().zip(entries) {
        if e.is_symlink() && !e.is_dir && e.uncompressed_size <= MAX_LINK_TARGET {
            let mut target = Vec::new();
            extract_entry_to(src, e, &mut target).await?;
            m.kind = MemberKind::Symlink(String::from_utf8_lossy(&target).into_owned());
        }
    }
    Ok(members)
}

/// An inner archive's members and the tree `FILE.d/` shows.
#[derive(Debug)]
pub struct InnerIndex {
    pub format: Format,
    pub members: Vec<Member>,
    pub tree: ArchiveTree,
}

impl InnerIndex {
    pub fn new(format: Format, members: Vec<Member>) -> InnerIndex {
        let tree = ArchiveTree::from_entries(
            members.iter().map(|m| PathEntry {
                name: &m.name,
                is_dir: m.kind == MemberKind::Dir,
                mtime: m.mtime,
            }),
            true,
        );
        InnerIndex {
            format,
            members,
            tree,
        }
    }

    /// The member a tree node stands for (files, links and directories with a record).
    pub fn member(&self, node: usize) -> Option<&Member> {
        self.members.get(self.tree.nodes.get(node)?.record?)
    }

    /// The target of tree node `node` when it is shown as a symlink (see the module comment).
    pub fn link_target(&self, node: usize) -> Option<&str> {
        let t = self.tree.nodes.get(node)?;
        if !matches!(t.kind, NodeKind::File { .. }) {
            return None;
        }
        match &self.member(node)?.kind {
            MemberKind::Symlink(target) if stays_inside(target, self.depth(t.parent)) => {
                Some(target)
            }
            _ => None,
        }
    }

    /// The target of a symlink shown as an empty file (it would leave `FILE.d/`).
    pub fn escaping_target(&self, node: usize) -> Option<&str> {
        match &self.member(node)?.kind {
            MemberKind::Symlink(t) if self.link_target(node).is_none() => Some(t),
            _ => None,
        }
    }

    /// How many directories below the root `node` is (the root: 0).
    fn depth(&self, mut node: usize) -> usize {
        let mut d = 0;
        while node != 0 && d <= self.tree.nodes.len() {
            node = self.tree.nodes[node].parent;
            d += 1;
        }
        d
    }
}

/// Whether a link in a directory `depth` levels below the root, pointing at `target`, stays
/// inside the root whatever the other links inside are (see the module comment).
pub fn stays_inside(target: &str, depth: usize) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut ups = 0;
    let mut down = false;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." if down => return false,
            ".." => ups += 1,
            _ => down = true,
        }
    }
    ups <= depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_open() {
        for n in ["a.tar", "A.TGZ", "x.tar.gz", "w.whl", "j.jar", "z.zip"] {
            assert!(opens_as_archive(n), "{n}");
        }
        for n in ["a.tar.xz", "a.tar.bz2", "a.tar.zst", ".tar", "tar", "a.gz"] {
            assert!(!opens_as_archive(n), "{n}");
        }
        assert_eq!(archive_of_contents("dist.tar.gz.d"), Some("dist.tar.gz"));
        assert_eq!(archive_of_contents("dist.d"), None);
        assert_eq!(contents_name("a.zip"), "a.zip.d");
    }

    #[test]
    fn links_that_stay_inside() {
        assert!(stays_inside("tool", 0));
        assert!(stays_inside("./a/b", 0));
        assert!(stays_inside("../lib/x", 1));
        assert!(stays_inside("../../x", 2));
        assert!(!stays_inside("../../x", 1));
        assert!(!stays_inside("..", 0));
        assert!(!stays_inside("/etc/passwd", 5));
        assert!(!stays_inside("a/../b", 3), "no .. after a name");
        assert!(!stays_inside("", 0));
    }
}
