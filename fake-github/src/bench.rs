//! The benchmark data set (`fake-github --bench`), one piece per line of issue 12's table (the
//! bytes of its log, tarball and database come from [`crate::bench_content`]):
//!
//! - `bench/data`, run 900, artifact `logs`: a 278 MiB CI log (`big.log`) deflated at level 6 to
//!   about 63 MiB, plus a short `summary.txt` (cold `head`, random reads, `grep -c`);
//! - `bench/data`, run 901, artifact `big`: a 257 MiB archive whose first entry is a 1 KB
//!   `result.txt`, then a 256 MiB stored entry (`payload/stored.bin`), then 200 small logs
//!   (cold `cat` of a small file, cold sequential read, warm re-read);
//! - `bench/data`, run 902, artifact `stall`: a 128 MiB stored entry (`payload.bin`), read while
//!   the fake stalls bodies (`--blob-stall-every`);
//! - `bench/find`: 75 runs of 40 small zip artifacts each (3000), each holding `result.txt`
//!   (`find runs -name result.txt`);
//! - `bench/data`, run 904, artifact `dist`: a zip holding `dist.tar.gz`, 10 000 log files
//!   of 6 KiB in 100 folders (issue 21: `ls -lR dist.tar.gz.d/`, `cat` of one file in it).
//! - `bench/tree`: 125 runs of 2 small zip artifacts each (250) (`ls -R runs`), and pull request
//!   42 (from a fork) at the newest run's commit (`readlink pulls/42/report`);
//! - `bench/many`, run 4000, artifact `many`: a zip64 archive of 70 000 small stored files in
//!   70 folders of 1000 (`ls -lR`, `ls -l` of one folder, `getfattr -d`).
//! - `bench/data`, run 905, artifact `db`: a ~33 MiB SQLite database with an index (`app.db`),
//!   deflated (an indexed query, cold and repeated; made with the `sqlite3` command, and
//!   left out when it is not installed).
//! - alone (`fake-github --bench-huge-mib N`), `bench/data`, run 906, artifact `huge`: a zip
//!   whose one stored entry (`huge.bin`) is N MiB (a 1 GiB read from a host without Range).
//! - `bench/data`, run 903: a failed run whose log archive is about 80 MiB (job
//!   `test (ubuntu-latest)` carries 176 MiB of CI output, in its job file and its step file)
//!   (`grep -rc ERROR logs/903/`, `tail -n 50` of the biggest job log).

use serde::Serialize;

use crate::bench_content::{SQLITE_ROWS, ci_log, sqlite_db, sqlite_query, tarball};
use crate::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
use crate::{FakeArtifactSpec, FakeGitHub};

pub const BENCH_OWNER: &str = "bench";
pub const BENCH_REPO: &str = "data";
pub const FIND_REPO: &str = "find";
pub const TREE_REPO: &str = "tree";
pub const MANY_REPO: &str = "many";

/// Where things are, for the harness (printed as JSON by `fake-github --bench`).
#[derive(Clone, Debug, Serialize)]
pub struct BenchInfo {
    pub owner: String,
    pub repo: String,
    /// The deflated log: run, artifact, entry, sizes.
    pub log_run: u64,
    pub log_id: u64,
    pub log_artifact: String,
    pub log_entry: String,
    pub log_size: u64,
    pub log_compressed_size: u64,
    pub log_archive_size: u64,
    /// What `grep -c` looks for in the log, and how many lines hold it.
    pub log_pattern: String,
    pub log_pattern_lines: u64,
    /// The archive with the stored entry and the small file.
    pub big_run: u64,
    pub big_id: u64,
    pub big_artifact: String,
    pub big_size: u64,
    pub small_entry: String,
    pub small_size: u64,
    pub stored_entry: String,
    pub stored_size: u64,
    /// Where the stored entry's bytes start in the archive.
    pub stored_offset: u64,
    /// The archive with a 128 MiB stored entry, for reads under stalls.
    pub stall_run: u64,
    pub stall_id: u64,
    pub stall_artifact: String,
    pub stall_entry: String,
    pub stall_size: u64,
    /// `bench/find`: runs × artifacts per run, and the file each holds.
    pub find_repo: String,
    pub find_runs: u64,
    pub find_per_run: u64,
    pub find_file: String,
    /// `bench/tree`: runs × artifacts per run.
    pub tree_repo: String,
    pub tree_runs: u64,
    pub tree_per_run: u64,
    pub tree_entries_per_artifact: u64,
    /// `bench/tree`: a pull request from a fork whose head is the newest run's commit.
    pub pull_number: u64,
    pub pull_artifact: String,
    /// `bench/many`: the run and artifact of the 70 000-entry archive, its folders and the
    /// files in each.
    pub many_repo: String,
    pub many_run: u64,
    pub many_id: u64,
    pub many_artifact: String,
    pub many_dirs: u64,
    pub many_per_dir: u64,
    /// The run with big logs: its id, its log archive's blob id and length, every file's
    /// `ERROR` lines summed, and its biggest job log (name, length, compressed length).
    pub runlog_run: u64,
    pub runlog_blob: u64,
    pub runlog_archive_size: u64,
    pub runlog_error_lines: u64,
    pub runlog_job_entry: String,
    pub runlog_job_size: u64,
    pub runlog_job_compressed_size: u64,
    /// The tarball inside an artifact: run, artifact, its file, members, one member.
    pub tar_run: u64,
    pub tar_id: u64,
    pub tar_artifact: String,
    pub tar_file: String,
    pub tar_gz_size: u64,
    pub tar_size: u64,
    pub tar_members: u64,
    pub tar_member: String,
    pub tar_member_size: u64,
    /// The deflated SQLite database: run, artifact, entry, sizes (0: `sqlite3` was missing),
    /// and an indexed query that finds one row.
    pub sqlite_run: u64,
    pub sqlite_id: u64,
    pub sqlite_artifact: String,
    pub sqlite_entry: String,
    pub sqlite_size: u64,
    pub sqlite_archive_size: u64,
    pub sqlite_query: String,
}

/// Offset of the first data byte of the entry whose local header names `name`.
fn data_offset(zip: &[u8], name: &str) -> u64 {
    let needle = name.as_bytes();
    let mut from = 0;
    loop {
        let pos = from
            + zip[from..]
                .windows(needle.len())
                .position(|w| w == needle)
                .expect("entry name in the archive");
        // A local header is 30 bytes, then the name, then the extra field.
        if pos >= 30 && zip[pos - 30..pos - 26] == 0x0403_4b50u32.to_le_bytes() {
            let extra = u16::from_le_bytes([zip[pos - 2], zip[pos - 1]]) as usize;
            return (pos + needle.len() + extra) as u64;
        }
        from = pos + 1;
    }
}

/// Fills `gh` with the benchmark data (about 30 s of one core and ~1.5 GiB of memory, most of
/// it deflating the big log, which runs beside the rest).
pub fn populate(gh: &FakeGitHub) -> BenchInfo {
    let (o, r) = (BENCH_OWNER, BENCH_REPO);
    let log_entry = "big.log".to_string();
    let log_size = 278usize << 20;
    let log_pattern = "ERROR".to_string();
    let tar_members = 10_000u64;
    let tar_job = std::thread::spawn(move || tarball(tar_members));
    let sqlite_job = std::thread::spawn(|| sqlite_db(SQLITE_ROWS));
    let log_job = std::thread::spawn(move || {
        let (text, errors) = ci_log(log_size, 12);
        let mut z = ZipBuilder::new();
        z.add("summary.txt", b"278 MiB of build log in big.log\n");
        z.add("big.log", &text);
        drop(text);
        (z.finish(), errors)
    });

    // The 257 MiB archive: the small file first (far from the tail, so reading it costs its
    // own request), the stored entry, then small logs.
    let stored = EntryOptions::stored();
    let small_entry = "result.txt".to_string();
    let small = log_text(1_000, 42);
    let stored_entry = "payload/stored.bin".to_string();
    let stored_size = 256u64 << 20;
    let mut z = ZipBuilder::new();
    z.add(&small_entry, &small);
    z.add_with(
        &stored_entry,
        &noise(stored_size as usize, 7),
        stored.clone(),
    );
    for i in 0..200u64 {
        z.add_with(
            &format!("logs/job-{i:03}.log"),
            &noise(4_000 + (i as usize * 7919) % 3_000, 100 + i),
            stored.clone(),
        );
    }
    let big = z.finish();
    drop(z);
    let stored_offset = data_offset(&big, &stored_entry);
    let big_size = big.len() as u64;
    let big_run = 901;

    // bench/find: 75 runs × 40 artifacts, each with result.txt and a log.
    let (find_runs, find_per_run) = (75u64, 40u64);
    let find_file = "result.txt".to_string();
    for run in 0..find_runs {
        for a in 0..find_per_run {
            let seed = run * 100 + a;
            let mut z = ZipBuilder::new();
            z.add(
                &find_file,
                format!("shard {a} of run {run}: passed\n").as_bytes(),
            );
            z.add("logs/test.log", &log_text(2_000, seed));
            gh.add_artifact(FakeArtifactSpec::zip(
                o,
                FIND_REPO,
                &format!("shard-{a:02}"),
                2000 + run,
                z.finish(),
            ));
        }
    }

    // bench/tree: 125 runs × 2 artifacts, each a small report.
    let (tree_runs, tree_per_run) = (125u64, 2u64);
    let names = ["report", "coverage"];
    for run in 0..tree_runs {
        for (k, name) in names.iter().enumerate() {
            let seed = run * 10 + k as u64;
            let mut z = ZipBuilder::new();
            z.add("index.html", b"<html><body>report</body></html>\n");
            z.add("css/style.css", b"body { font-family: sans-serif }\n");
            z.add("data/results.json", &log_text(1_500, seed));
            z.add("data/log.txt", &log_text(3_000, seed + 1));
            gh.add_artifact(FakeArtifactSpec::zip(
                o,
                TREE_REPO,
                name,
                3000 + run,
                z.finish(),
            ));
        }
    }

    // A pull request from a fork at the newest tree run's commit (`readlink pulls/N/NAME`).
    let pull_number = 42;
    let newest_tree_run = 3000 + tree_runs - 1;
    gh.add_pull(
        crate::FakePullSpec::new(
            o,
            TREE_REPO,
            pull_number,
            "main",
            &crate::runs::default_sha(newest_tree_run),
        )
        .from_fork("forker/tree"),
    );
    // bench/many: 70 folders × 1000 files, more entries than a zip without zip64 can count.
    let (many_dirs, many_per_dir, many_run) = (70u64, 1000u64, 4000);
    let mut z = ZipBuilder::new();
    for i in 0..many_dirs * many_per_dir {
        z.add_with(
            &format!("d{:02}/f{i}.txt", i / many_per_dir),
            format!("entry {i}\n").as_bytes(),
            stored.clone(),
        );
    }
    let many_id = gh.add_artifact(FakeArtifactSpec::zip(
        o,
        MANY_REPO,
        "many",
        many_run,
        z.finish(),
    ));

    let big_id = gh.add_artifact(FakeArtifactSpec::zip(o, r, "big", big_run, big));

    let stall_entry = "payload.bin".to_string();
    let stall_size = 128u64 << 20;
    let mut z = ZipBuilder::new();
    z.add_with(
        &stall_entry,
        &noise(stall_size as usize, 11),
        stored.clone(),
    );
    let stall_run = 902;
    let stall_id = gh.add_artifact(FakeArtifactSpec::zip(o, r, "stall", stall_run, z.finish()));
    drop(z);
    let (logs_zip, log_pattern_lines) = log_job.join().expect("log generator");
    // big.log is the last entry: its data ends where its 16-byte data descriptor starts,
    // just before the central directory (whose offset the end record, the last 22 bytes, has).
    let log_compressed_size = {
        let start = data_offset(&logs_zip, &log_entry);
        let eocd = &logs_zip[logs_zip.len() - 22..];
        let cd_offset = u32::from_le_bytes([eocd[16], eocd[17], eocd[18], eocd[19]]) as u64;
        cd_offset - 16 - start
    };
    let log_archive_size = logs_zip.len() as u64;
    let (tar_gz, tar_size, tar_member, tar_member_size) = tar_job.join().expect("tar generator");
    let tar_gz_size = tar_gz.len() as u64;
    let tar_file = "dist.tar.gz".to_string();
    let tar_run = 904;
    let mut z = ZipBuilder::new();
    z.add(&tar_file, &tar_gz);
    drop(tar_gz);
    let tar_id = gh.add_artifact(FakeArtifactSpec::zip(o, r, "dist", tar_run, z.finish()));
    let (sqlite_run, sqlite_entry) = (905, "app.db".to_string());
    let (sqlite_id, sqlite_size, sqlite_archive_size) =
        match sqlite_job.join().expect("sqlite generator") {
            Some(db) => {
                let mut z = ZipBuilder::new();
                z.add(&sqlite_entry, &db); // deflated
                let zip = z.finish();
                let archive_size = zip.len() as u64;
                let id = gh.add_artifact(FakeArtifactSpec::zip(o, r, "db", sqlite_run, zip));
                (id, db.len() as u64, archive_size)
            }
            None => (0, 0, 0),
        };
    let log_run = 900;
    let log_id = gh.add_artifact(FakeArtifactSpec::zip(o, r, "logs", log_run, logs_zip));
    let runlog_run = 903;
    let big_job = "test (ubuntu-latest)";
    let spec = crate::FakeRunSpec::new(o, r, runlog_run)
        .jobs(&["build", big_job])
        .big_log(big_job, 176 << 20)
        .conclusion("failure");
    gh.add_run(spec.clone());
    let runlog_blob = gh.run_log_blob_id(runlog_run, 1).expect("the run exists");
    let runlog_archive_size = gh.shared.state.lock().unwrap().logs.blobs[&runlog_blob]
        .body
        .len() as u64;
    let files = crate::logs::summary(&spec, 1);
    let runlog_error_lines = files.iter().map(|f| f.2).sum();
    let (runlog_job_entry, runlog_job_size, _, runlog_job_compressed_size) = files
        .into_iter()
        .max_by_key(|f| f.1)
        .expect("the run has logs");
    BenchInfo {
        owner: o.into(),
        repo: r.into(),
        log_run,
        log_id,
        log_artifact: "logs".into(),
        log_entry,
        log_size: log_size as u64,
        log_compressed_size,
        log_archive_size,
        log_pattern,
        log_pattern_lines,
        big_run,
        big_id,
        big_artifact: "big".into(),
        big_size,
        small_entry,
        small_size: small.len() as u64,
        stored_entry,
        stored_size,
        stored_offset,
        stall_run,
        stall_id,
        stall_artifact: "stall".into(),
        stall_entry,
        stall_size,
        find_repo: FIND_REPO.into(),
        find_runs,
        find_per_run,
        find_file,
        tree_repo: TREE_REPO.into(),
        tree_runs,
        tree_per_run,
        tree_entries_per_artifact: 4,
        tar_run,
        tar_id,
        tar_artifact: "dist".into(),
        tar_file,
        tar_gz_size,
        tar_size,
        tar_members,
        tar_member,
        tar_member_size,
        sqlite_run,
        sqlite_id,
        sqlite_artifact: "db".into(),
        sqlite_entry,
        sqlite_size,
        sqlite_archive_size,
        sqlite_query: sqlite_query(),
        pull_number,
        pull_artifact: "report".into(),
        many_repo: MANY_REPO.into(),
        many_run,
        many_id,
        many_artifact: "many".into(),
        many_dirs,
        many_per_dir,
        runlog_run,
        runlog_blob,
        runlog_archive_size,
        runlog_error_lines,
        runlog_job_entry,
        runlog_job_size,
        runlog_job_compressed_size,
    }
}

/// Where the one big artifact of `--bench-huge-mib` is.
#[derive(Clone, Debug, Serialize)]
pub struct HugeInfo {
    pub run: u64,
    pub id: u64,
    pub artifact: String,
    pub entry: String,
    pub entry_size: u64,
    /// The archive's (the blob's) size.
    pub blob_size: u64,
}

/// Adds `bench/data`'s run 906 artifact `huge`: one stored entry of `mib` MiB.
pub fn populate_huge(gh: &FakeGitHub, mib: u64) -> HugeInfo {
    let entry = "huge.bin".to_string();
    let entry_size = mib << 20;
    let mut z = ZipBuilder::new();
    z.add_with(
        &entry,
        &noise(entry_size as usize, 13),
        EntryOptions::stored(),
    );
    let zip = z.finish();
    let blob_size = zip.len() as u64;
    let run = 906;
    let id = gh.add_artifact(FakeArtifactSpec::zip(
        BENCH_OWNER,
        BENCH_REPO,
        "huge",
        run,
        zip,
    ));
    HugeInfo {
        run,
        id,
        artifact: "huge".into(),
        entry,
        entry_size,
        blob_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_offset_finds_the_entry() {
        let mut z = ZipBuilder::new();
        z.add("a.txt", b"hello");
        z.add_with("b.bin", b"stored bytes", EntryOptions::stored());
        let zip = z.finish();
        let off = data_offset(&zip, "b.bin") as usize;
        assert_eq!(&zip[off..off + 12], b"stored bytes");
    }
}
