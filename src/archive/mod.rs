//! The archive layer: zip central directory, entry readers and the entry tree, over any
//! [`source::ByteSource`].

pub mod source;

pub use source::{ByteSource, MemorySource};
