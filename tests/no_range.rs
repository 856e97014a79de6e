//! Real-mount tests of a blob host that ignores `Range` (as some GHES storage does): a
//! 128 MiB entry reads right in one download of the blob, never more than one at a time,
//! with the daemon's memory bounded whatever the size: streamed into the block cache when it
//! takes the blob, into an unlinked spool file in the cache directory when it does not.

mod common;

use common::*;
use fake_github::Faults;
use fake_github::zipgen::{EntryOptions, ZipBuilder, noise};

const REPO: &str = "octo-org/hello";
const MIB: u64 = 1 << 20;

/// How much the daemon's peak resident memory may grow over its idle size while it reads
/// the 128 MiB entry. The download holds one 1 MiB batch (plus the HTTP client's and the
/// kernel's buffers, and readahead's tasks); before this bound was kept, the same read
/// peaked at 157 MiB (the blob held whole in memory, twice downloaded). 64 MiB is the
/// benchmark's goal for a 1 GiB read, so a read of any size must stay under it; it is half
/// the entry, so holding the entry (or a large part of it) fails the test.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;

/// A fake whose blob host ignores Range, serving run 1's `big` (a 128 MiB stored entry and a
/// small text): (fake, artifact id, zip, entry).
fn no_range_fake() -> (fake_github::FakeGitHub, u64, Vec<u8>, Vec<u8>) {
    let gh = start_fake_with(Faults {
        no_range: true,
        ..Default::default()
    });
    let big = noise(128 * MIB as usize, 41);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &big, EntryOptions::stored());
    z.add("small.txt", b"small\n");
    let zip = z.finish();
    let id = add_hello(&gh, "big", 1, zip.clone());
    (gh, id, zip, big)
}

fn sha_of(path: &std::path::Path) -> String {
    let (ok, out, err) = sh(&format!("sha256sum '{}'", path.display()));
    assert!(ok, "sha256sum {}: {err}", path.display());
    out.split_whitespace().next().unwrap().to_string()
}

/// `sha256sum` of the entry through a mount made with `args`: right, one download of exactly
/// the blob's bytes, never two at once, and the peak memory bounded.
fn reads_in_one_download(args: &[&str], what: &str) {
    let _alone = exclusive("no_range (memory measured)", 300);
    let (gh, id, zip, big) = no_range_fake();
    let mut d = Daemon::new(&gh, REPO);
    for a in args {
        d = d.arg(a);
    }
    let m = d.mount();
    let art = m.path("octo-org/hello/runs/1/big");
    assert!(names_in(&m.path("octo-org/hello/runs/1")).contains(&"big".to_string()));
    let idle = m.status_kib("VmRSS");
    gh.reset_counters();
    assert_eq!(sha_of(&art.join("big.bin")), sha256(&big), "{what}");
    // The central directory came with the same download (cached, or spooled and kept).
    assert_eq!(std::fs::read(art.join("small.txt")).unwrap(), b"small\n");
    let peak = m.status_kib("VmHWM");
    let c = gh.counters();
    let fetched = c.blob_bytes_by_artifact.get(&id).copied().unwrap_or(0);
    eprintln!(
        "figures: no Range, {what}: {} blob requests, {fetched} bytes for a {} byte blob, \
         at most {} at once; RSS idle {idle} KiB, peak {peak} KiB",
        c.blob_requests,
        zip.len(),
        c.blob_in_flight_max
    );
    assert_eq!(
        fetched,
        zip.len() as u64,
        "{what}: bytes fetched = blob size"
    );
    assert_eq!(c.blob_in_flight_max, 1, "{what}: one download at a time");
    assert!(
        peak <= idle + RSS_GROWTH_LIMIT_KIB,
        "{what}: peak RSS {peak} KiB, idle {idle} KiB"
    );
}

#[test]
fn a_host_without_range_streams_a_blob_into_the_cache_once_with_bounded_memory() {
    require_fuse();
    reads_in_one_download(&[], "into the cache");
}

#[test]
fn a_host_without_range_spools_a_blob_the_cache_cannot_take_once_with_bounded_memory() {
    require_fuse();
    // A 64 MiB cache takes blobs of up to 32 MiB: this one goes to a spool file.
    reads_in_one_download(&["--cache-size", "64M"], "spooled");
}
