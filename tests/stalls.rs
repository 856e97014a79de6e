//! Real-mount test of stalled transfers: a blob body that stops halfway with its connection
//! left open is noticed within seconds, judged against the pace the link has kept, and asked
//! for again from where it stopped, while the other ranges go on.

mod common;

use common::*;
use fake_github::Faults;
use fake_github::zipgen::{EntryOptions, ZipBuilder, noise};

#[test]
fn stalled_bodies_are_abandoned_and_the_rest_asked_for_again() {
    require_fuse();
    let gh = start_fake();
    let big = noise(48 << 20, 31);
    let mut z = ZipBuilder::new();
    z.add_with("big.bin", &big, EntryOptions::stored());
    let zip = z.finish();
    add_hello(&gh, "big", 1, zip.clone());
    let m = Daemon::new(&gh, "octo-org/hello").mount();
    gh.set_faults(Faults {
        blob_stall_every: 5,
        ..Default::default()
    });
    let got = std::fs::read(m.path("octo-org/hello/runs/1/big/big.bin")).unwrap();
    assert_eq!(sha256(&got), sha256(&big));
    let c = gh.counters();
    assert!(c.blob_stalls >= 3, "{} stalls", c.blob_stalls);
    // Each stalled body was given up on by artifactfs, not released by the fake after its
    // 20 s (which a client waiting for its 30 s read timeout would have needed).
    assert_eq!(c.blob_stalls_abandoned, c.blob_stalls, "{c:?}");
    // What arrived before a stall is kept: the retries ask only for the rest.
    assert!(
        c.blob_bytes_total <= zip.len() as u64 + (4 << 20),
        "{} bytes for a {} byte archive",
        c.blob_bytes_total,
        zip.len()
    );
}
