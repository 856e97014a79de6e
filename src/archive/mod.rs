//! The archive layer: zip central directories, entry readers, tar headers, archives inside
//! an artifact and the tree a user sees, all over one ranged byte-source interface
//! ([`crate::source::ByteSource`]). No HTTP, no files, no FUSE here.

pub mod central_directory;
pub mod entry;
pub mod error;
pub mod inner;
pub mod tar;
pub mod tree;

pub use error::ArchiveError;
