//! Workflow run logs as GitHub gives them. `GET .../actions/runs/{id}/logs` and
//! `.../runs/{id}/attempts/{n}/logs` answer 302 to a zip on the blob host (like an artifact
//! download: no digest, no size anywhere in the API), 404 while the run (attempt) is not
//! completed, 410 once the logs' retention has passed; `.../actions/jobs/{job_id}/logs` answers
//! 302 to one finished job's log as plain text (404 before it finishes).
//!
//! The archive is shaped like GitHub's: `N_JOB.txt` per job (the whole job log) and
//! `JOB/N_STEP.txt` per step (missing for a job made [`FakeRunSpec::without_step_files`]),
//! names with spaces and parentheses kept, `/` dropped from step names; lines start with a
//! timestamp (`2024-05-01T12:00:01.0000000Z `), the file with a BOM; `##[group]`/`##[endgroup]`
//! markers, ANSI colours and a few `ERROR:` lines. One job can carry tens of MiB
//! ([`FakeRunSpec::big_log`]), made cheaply: its filler is one piece of text compressed once
//! and repeated ([`crate::zipgen::deflate_repeated`]).

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::api::{encode_segment, message};
use crate::runs::{FakeRunSpec, StoredRun};
use crate::state::{State, unix_millis};
use crate::zipgen::{ZipBuilder, deflate_repeated};

/// Blob ids of logs start here (artifacts count from 1001): the blob host tells them apart.
pub const LOG_BLOB_BASE: u64 = 1 << 40;

/// The steps of every fake job.
pub const STEPS: [&str; 6] = [
    "Set up job",
    "Run actions/checkout@v4",
    "Build (release)",
    "Run tests",
    "Post Run actions/checkout@v4",
    "Complete job",
];

/// The piece a big log's filler repeats (1 MiB of log lines).
const FILLER_PIECE: usize = 1 << 20;

/// A log's bytes as pieces: (bytes, how many times in a row).
type Pieces = Vec<(Vec<u8>, usize)>;

/// Which logs a blob holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LogKey {
    /// A run attempt's archive.
    Run(u64, u32),
    /// One job's log.
    Job(u64),
}

/// A log blob the blob host serves.
pub(crate) struct LogBlob {
    pub body: Bytes,
    pub content_type: &'static str,
    pub file_name: String,
}

/// The logs the fake made so far (made on first download, kept: they never change).
#[derive(Default)]
pub(crate) struct Logs {
    pub ids: HashMap<LogKey, u64>,
    pub blobs: HashMap<u64, LogBlob>,
    /// Runs whose logs are past retention (410).
    pub expired: std::collections::HashSet<u64>,
}

/// A step's file name in the archive: GitHub drops `/` (and keeps spaces, parentheses).
pub fn step_file_name(number: usize, step: &str) -> String {
    format!("{number}_{}.txt", step.replace('/', ""))
}

/// The text of one step of job `job` (index `j`) of attempt `attempt` of run `run`: what the
/// step's file holds, and what the job's file holds in a row.
fn step_text(spec: &FakeRunSpec, attempt: u32, j: usize, s: usize) -> Pieces {
    let job = &spec.jobs[j];
    let seed = spec.id * 31 + u64::from(attempt) * 7 + j as u64 * 3 + s as u64;
    let ts = |n: u64| {
        format!(
            "2024-05-01T12:{:02}:{:02}.{:07}Z ",
            (n / 60) % 60,
            n % 60,
            seed * 1013 % 10_000_000
        )
    };
    let mut t = String::new();
    let mut n = s as u64 * 10;
    let mut line = |t: &mut String, text: &str| {
        t.push_str(&ts(n));
        t.push_str(text);
        t.push('\n');
        n += 1;
    };
    let step = STEPS[s];
    line(&mut t, &format!("##[group]{step}"));
    line(&mut t, &format!("\u{1b}[36;1m{step} of {job}\u{1b}[0m"));
    line(&mut t, "shell: /usr/bin/bash -e {0}");
    line(&mut t, "##[endgroup]");
    for i in 0..(3 + seed % 5) {
        line(&mut t, &format!("{job}: {step}: line {i} <ok> & done"));
    }
    // Earlier attempts failed; later ones warn.
    if step == "Run tests" {
        let errors = if attempt < spec.attempt {
            3
        } else {
            1 + seed % 2
        };
        for i in 0..errors {
            line(
                &mut t,
                &format!("\u{1b}[31mERROR: test_{i} failed in {job}\u{1b}[0m"),
            );
        }
    }
    let mut pieces = vec![(t.into_bytes(), 1)];
    if step == "Run tests"
        && let Some((big, bytes)) = &spec.big_log
        && big == job
        && attempt == spec.attempt
    {
        let piece = filler(seed);
        let times = (*bytes).div_ceil(FILLER_PIECE).max(1);
        pieces.push((piece, times));
        let mut tail = String::new();
        line(&mut tail, "ERROR: the big step ends with an error");
        pieces.push((tail.into_bytes(), 1));
    }
    pieces
}

/// 1 MiB of test output that deflates like a CI log (about 4.4×, with `ERROR` lines):
/// [`crate::bench_content::ci_log`], whole lines only.
fn filler(seed: u64) -> Vec<u8> {
    let (mut out, _) = crate::bench_content::ci_log(FILLER_PIECE, seed);
    let cut = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    out.truncate(cut);
    out
}

/// A job's log as pieces (bytes, times repeated): a BOM, then its steps in a row.
fn job_pieces(spec: &FakeRunSpec, attempt: u32, j: usize) -> Pieces {
    let mut v = vec![("\u{feff}".as_bytes().to_vec(), 1)];
    for s in 0..STEPS.len() {
        v.extend(step_text(spec, attempt, j, s));
    }
    v
}

fn expand(pieces: &Pieces) -> Vec<u8> {
    let mut out = Vec::new();
    for (b, n) in pieces {
        for _ in 0..*n {
            out.extend_from_slice(b);
        }
    }
    out
}

/// The files of a run attempt's log archive, in archive order, as (name, pieces).
fn archive_files(spec: &FakeRunSpec, attempt: u32) -> Vec<(String, Pieces)> {
    let mut files = Vec::new();
    for (j, job) in spec.jobs.iter().enumerate() {
        files.push((format!("{}_{job}.txt", j + 1), job_pieces(spec, attempt, j)));
    }
    for (j, job) in spec.jobs.iter().enumerate() {
        if spec.no_step_files.contains(job) {
            continue;
        }
        for (s, step) in STEPS.iter().enumerate() {
            let mut p = step_text(spec, attempt, j, s);
            if s == 0 {
                p.insert(0, ("\u{feff}".as_bytes().to_vec(), 1));
            }
            files.push((format!("{job}/{}", step_file_name(s + 1, step)), p));
        }
    }
    files
}

/// Every file of a run attempt's log archive with its bytes (what a test compares with).
pub(crate) fn originals(spec: &FakeRunSpec, attempt: u32) -> Vec<(String, Vec<u8>)> {
    (archive_files(spec, attempt).into_iter())
        .map(|(n, p)| (n, expand(&p)))
        .collect()
}

/// What each file of a run attempt's log archive is, without making it: (name, length,
/// lines holding `ERROR`, compressed length in the archive).
pub(crate) fn summary(spec: &FakeRunSpec, attempt: u32) -> Vec<(String, u64, u64, u64)> {
    let errors = |b: &[u8]| {
        (b.split(|&c| c == b'\n'))
            .filter(|l| l.windows(5).any(|w| w == b"ERROR"))
            .count() as u64
    };
    (archive_files(spec, attempt).into_iter())
        .map(|(name, pieces)| {
            let refs: Vec<(&[u8], usize)> =
                pieces.iter().map(|(b, n)| (b.as_slice(), *n)).collect();
            let (deflated, _, len) = deflate_repeated(&refs);
            let e = pieces.iter().map(|(b, n)| errors(b) * *n as u64).sum();
            (name, len, e, deflated.len() as u64)
        })
        .collect()
}

/// The log archive of a run attempt.
fn archive(spec: &FakeRunSpec, attempt: u32) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    for (name, pieces) in archive_files(spec, attempt) {
        let refs: Vec<(&[u8], usize)> = pieces.iter().map(|(b, n)| (b.as_slice(), *n)).collect();
        let (deflated, crc, len) = deflate_repeated(&refs);
        z.add_deflated(&name, deflated, crc, len);
    }
    z.finish()
}

/// A job's log by id: (run, attempt, job index), if the run has such a job.
pub(crate) fn job_by_id(st: &State, job_id: u64) -> Option<(&StoredRun, u32, usize)> {
    let run = st.runs.get(&(job_id / 1000))?;
    let attempt = ((job_id % 1000) / 100) as u32;
    let j = (job_id % 100) as usize;
    (attempt >= 1 && attempt <= run.spec.attempt && j < run.spec.jobs.len())
        .then_some((run, attempt, j))
}

/// Whether job `j` of attempt `attempt` has finished.
pub(crate) fn job_finished(run: &StoredRun, attempt: u32, j: usize) -> bool {
    attempt < run.spec.attempt || run.spec.status == "completed" || run.jobs_done.contains(&j)
}

impl State {
    /// The blob id of `key`'s logs, making them the first time.
    pub(crate) fn log_blob(&mut self, key: LogKey) -> Option<u64> {
        if let Some(id) = self.logs.ids.get(&key) {
            return Some(*id);
        }
        let blob = match &key {
            LogKey::Run(run, attempt) => {
                let spec = &self.runs.get(run)?.spec;
                LogBlob {
                    body: Bytes::from(archive(spec, *attempt)),
                    content_type: "application/zip",
                    file_name: format!("logs_{run}.zip"),
                }
            }
            LogKey::Job(job) => {
                let (run, attempt, j) = job_by_id(self, *job)?;
                LogBlob {
                    body: Bytes::from(expand(&job_pieces(&run.spec, attempt, j))),
                    content_type: "text/plain; charset=utf-8",
                    file_name: format!("job-logs-{job}.txt"),
                }
            }
        };
        let id = LOG_BLOB_BASE + self.logs.ids.len() as u64;
        self.logs.ids.insert(key, id);
        self.logs.blobs.insert(id, blob);
        Some(id)
    }

    /// A run (or attempt) log download: 302, or 404 (no such run or attempt, not completed),
    /// or 410 (expired).
    pub(crate) fn run_logs_download(
        &mut self,
        blob_origin: &str,
        repo: &(String, String),
        run: u64,
        attempt: Option<u32>,
    ) -> Response {
        let Some(r) = self.runs.get(&run).filter(|r| &r.repo == repo) else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        let latest = r.spec.attempt;
        let attempt = attempt.unwrap_or(latest);
        if attempt == 0 || attempt > latest {
            return message(StatusCode::NOT_FOUND, "Not Found");
        }
        if attempt == latest && r.spec.status != "completed" {
            return message(StatusCode::NOT_FOUND, "Not Found");
        }
        if self.logs.expired.contains(&run) {
            return message(StatusCode::GONE, "Logs have expired");
        }
        match self.log_blob(LogKey::Run(run, attempt)) {
            Some(id) => self.log_redirect(blob_origin, id),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    /// A job's log download: 302 once the job finished, 404 before, 410 expired.
    pub(crate) fn job_logs_download(
        &mut self,
        blob_origin: &str,
        repo: &(String, String),
        job: u64,
    ) -> Response {
        let Some((run, attempt, j)) = job_by_id(self, job).filter(|(r, _, _)| &r.repo == repo)
        else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        if !job_finished(run, attempt, j) {
            return message(StatusCode::NOT_FOUND, "Not Found");
        }
        if self.logs.expired.contains(&run.spec.id) {
            return message(StatusCode::GONE, "Logs have expired");
        }
        match self.log_blob(LogKey::Job(job)) {
            Some(id) => self.log_redirect(blob_origin, id),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn log_redirect(&self, blob_origin: &str, id: u64) -> Response {
        let expires = unix_millis() + self.url_ttl.as_millis() as u64;
        let sig = self.sign(id, expires);
        let name = &self.logs.blobs[&id].file_name;
        let location = format!(
            "{blob_origin}/blob/{id}/{}?sv=2023-11-03&se={expires}&sp=r&sig={sig}",
            encode_segment(name)
        );
        Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .body(Body::empty())
            .expect("valid response")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_logs_are_cheap_and_right() {
        let spec = FakeRunSpec::new("o", "r", 5)
            .jobs(&["build", "test (ubuntu-latest, 3.12)"])
            .big_log("build", 3 << 20);
        let files = originals(&spec, 1);
        let zip = archive(&spec, 1);
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(&zip)).unwrap();
        assert_eq!(a.len(), files.len());
        for (name, bytes) in &files {
            let mut f = a.by_name(name).unwrap();
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut got).unwrap();
            assert!(got == *bytes, "{name}");
        }
        assert!(files[0].1.len() > 3 << 20);
        assert!(zip.len() < files[0].1.len(), "compressed");
        let sum = summary(&spec, 1);
        for ((n, b), (sn, len, errors, _)) in files.iter().zip(&sum) {
            assert_eq!((n, b.len() as u64), (sn, *len));
            let want = b
                .split(|&c| c == b'\n')
                .filter(|l| l.windows(5).any(|w| w == b"ERROR"));
            assert_eq!(want.count() as u64, *errors, "{n}");
        }
        assert!(
            files
                .iter()
                .any(|(n, _)| n == "build/2_Run actionscheckout@v4.txt")
        );
    }
}
