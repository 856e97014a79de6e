//! artifactfs: GitHub Actions artifacts as a lazy, cached FUSE filesystem.
//!
//! Layers, each testable alone (see `docs/design.md`):
//! - [`github`]: typed GitHub REST client (pagination, auth, redirects, retries) and blob reads.
//! - [`archive`]: zip central directory and entry readers over any ranged byte source.
//! - `cache`: the disk cache (blocks, inflated entries, metadata), keyed by opaque blob keys.
//! - `data`: the data layer: fetching through the cache, readahead, inflating, verification.
//! - `filesystem`: the tree and its semantics (docs/semantics.md) as plain async Rust (no FUSE
//!   types).
//! - `fuse`: the thin fuser adapter.
//! - [`serve`]: the same tree over HTTP (`artifactfs serve`), a second front end of the core.

pub mod archive;
mod cache;
pub mod config;
mod data;
pub mod demo;
pub mod error;
mod filesystem;
pub mod fstab;
mod fuse;
pub mod github;
pub mod logfile;
pub mod mount;
pub mod mount_table;
pub mod prefetch;
pub mod serve;
mod single_flight;
pub mod source;
mod startup;
pub mod stats;
pub mod status;
