//! The benchmark data set (`fake-github --bench`): one archive over 256 MiB of about 2000
//! files (small logs, 32 one-MiB logs for concurrent readers, a 200 MiB stored entry), one
//! archive of 70 000 entries, and a 1 GiB unzipped artifact for streaming.

use serde::Serialize;

use crate::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
use crate::{FakeArtifactSpec, FakeGitHub};

pub const BENCH_OWNER: &str = "bench";
pub const BENCH_REPO: &str = "data";

#[derive(Clone, Debug, Serialize)]
pub struct BenchInfo {
    pub owner: String,
    pub repo: String,
    pub big_run: u64,
    pub big_id: u64,
    pub big_size: u64,
    /// A 10 KB log inside the big archive.
    pub small_entry: String,
    pub small_size: u64,
    /// The 200 MiB stored entry, and where its bytes start in the archive.
    pub stored_entry: String,
    pub stored_size: u64,
    pub stored_offset: u64,
    /// 32 one-MiB entries for concurrent readers.
    pub parallel_entries: Vec<String>,
    pub many_run: u64,
    pub many_id: u64,
    pub many_entries: u64,
    pub stream_run: u64,
    pub stream_id: u64,
    pub stream_size: u64,
}

/// Fills `gh` with the benchmark data (takes a few seconds and ~1.6 GiB of memory).
pub fn populate(gh: &FakeGitHub, stream_bytes: usize) -> BenchInfo {
    let (o, r) = (BENCH_OWNER, BENCH_REPO);
    let mut z = ZipBuilder::new();
    for i in 0..1966u64 {
        z.add(
            &format!("logs/{:02}/job-{i}.log", i / 100),
            &log_text(8_000 + (i as usize * 7919) % 22_000, i),
        );
    }
    let small_entry = "logs/small/target.log".to_string();
    let small = log_text(10_000, 42);
    z.add(&small_entry, &small);
    let parallel_entries: Vec<String> = (0..32).map(|i| format!("parallel/f{i:02}.log")).collect();
    for (i, n) in parallel_entries.iter().enumerate() {
        z.add(n, &log_text(1 << 20, 1000 + i as u64));
    }
    let stored = EntryOptions::stored();
    let stored_entry = "payload/big.bin".to_string();
    let stored_size = 200u64 << 20;
    z.add_with(
        &stored_entry,
        &noise(stored_size as usize, 7),
        stored.clone(),
    );
    z.add_with("payload/filler.bin", &noise(60 << 20, 8), stored.clone());
    let big = z.finish();
    // Local header of the stored entry: find it by name (data follows header + name).
    let needle = stored_entry.as_bytes();
    let pos = big
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("entry name in the archive") as u64;
    let stored_offset = pos + needle.len() as u64;
    let big_size = big.len() as u64;
    let big_run = 900;
    let big_id = gh.add_artifact(FakeArtifactSpec::zip(o, r, "big", big_run, big));

    let mut z = ZipBuilder::new();
    for i in 0..70_000u32 {
        z.add_with(
            &format!("d{:02}/f{i}.txt", i / 1000),
            format!("entry {i}\n").as_bytes(),
            stored.clone(),
        );
    }
    let many_run = 901;
    let many_id = gh.add_artifact(FakeArtifactSpec::zip(o, r, "many", many_run, z.finish()));

    let stream_run = 902;
    let stream_id = gh.add_artifact(FakeArtifactSpec::raw(
        o,
        r,
        "stream",
        stream_run,
        "stream.bin",
        noise(stream_bytes, 9),
    ));
    BenchInfo {
        owner: o.into(),
        repo: r.into(),
        big_run,
        big_id,
        big_size,
        small_entry,
        small_size: small.len() as u64,
        stored_entry,
        stored_size,
        stored_offset,
        parallel_entries,
        many_run,
        many_id,
        many_entries: 70_000,
        stream_run,
        stream_id,
        stream_size: stream_bytes as u64,
    }
}
