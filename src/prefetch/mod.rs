//! `artifactfs prefetch PATH...`: fills the cache of a running mount for offline use by
//! reading whole artifacts through the mount, so the mount's own data layer fetches, stores
//! and verifies every byte (a failed check is an error for that artifact). Not to be confused
//! with `crate::data::readahead`, the readahead inside the mount.
//!
//! The PATHs become blob files ([`resolve`]), read to their end two at a time; progress is
//! shown as [`progress`] says. Ctrl-C stops at once (exit 130): what was fetched stays in the
//! cache. Any artifact that failed makes the exit status non-zero, after the others are done.

pub mod progress;
pub mod resolve;

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::HumanBytes;

use progress::Progress;
use resolve::Target;

/// Files read at once: enough to overlap two fetches, modest for the API and the link.
const CONCURRENCY: usize = 2;
const CHUNK: usize = 1 << 20;

/// `artifactfs prefetch`'s arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct PrefetchArgs {
    /// What to fetch, inside a mounted artifactfs: an artifact (runs/RUN/NAME, NAME.zip), a
    /// run (runs/RUN), latest/, branches/BRANCH, or a repository
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Set by SIGINT.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// What was done so far.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
}

pub fn run(args: PrefetchArgs) -> anyhow::Result<()> {
    let targets = resolve::resolve(&args.paths)?;
    let total: u64 = targets.iter().map(|t| t.len).sum();
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let started = Instant::now();
    let read = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel();
    let queue = Arc::new(Mutex::new(targets.iter().cloned().collect::<VecDeque<_>>()));
    for _ in 0..CONCURRENCY.min(targets.len()) {
        let (queue, read, tx) = (queue.clone(), read.clone(), tx.clone());
        std::thread::spawn(move || {
            loop {
                let Some(t) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let result = read_through(&t, &read);
                if tx.send((t, result)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let progress = Progress::new(total);
    let mut tally = Tally::default();
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            progress.finish();
            let line = summary(&tally, targets.len(), read.load(Ordering::SeqCst), started);
            eprintln!("interrupted: {line}");
            std::process::exit(130);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((t, result)) => {
                match &result {
                    Ok(_) => tally.ok += 1,
                    Err(_) => tally.failed += 1,
                }
                progress.done(&t.label, &result);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        progress.set(read.load(Ordering::SeqCst));
    }
    progress.finish();
    println!(
        "{}",
        summary(&tally, targets.len(), read.load(Ordering::SeqCst), started)
    );
    if tally.failed > 0 {
        bail!("{} of {} artifacts failed", tally.failed, targets.len());
    }
    Ok(())
}

/// Reads `t` to its end, adding what it reads to `read`; its length, or why it failed.
fn read_through(t: &Target, read: &AtomicU64) -> Result<u64, String> {
    let mut f = std::fs::File::open(&t.path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                n += k as u64;
                read.fetch_add(k as u64, Ordering::SeqCst);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if n != t.len {
        return Err(format!("read {n} of {} bytes", t.len));
    }
    Ok(n)
}

/// `prefetched 3 artifacts, 1048576 bytes (1.00 MiB) in 0.4 s`.
fn summary(tally: &Tally, count: usize, bytes: u64, started: Instant) -> String {
    let done = if tally.ok == count {
        format!("{count} artifacts")
    } else {
        format!("{} of {count} artifacts", tally.ok)
    };
    let mut s = format!(
        "prefetched {done}, {bytes} bytes ({}) in {:.1} s",
        HumanBytes(bytes),
        started.elapsed().as_secs_f64()
    );
    if tally.failed > 0 {
        s.push_str(&format!("; {} failed", tally.failed));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_artifacts_bytes_and_seconds() {
        let t = Instant::now();
        let all = Tally { ok: 3, failed: 0 };
        let s = summary(&all, 3, 2 << 20, t);
        assert!(
            s.starts_with("prefetched 3 artifacts, 2097152 bytes (2.00 MiB) in "),
            "{s}"
        );
        assert!(s.ends_with(" s"), "{s}");
        let some = Tally { ok: 1, failed: 1 };
        let s = summary(&some, 3, 10, t);
        assert!(
            s.starts_with("prefetched 1 of 3 artifacts, 10 bytes"),
            "{s}"
        );
        assert!(s.ends_with("; 1 failed"), "{s}");
    }

    #[test]
    fn a_short_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        let read = AtomicU64::new(0);
        let t = |len| Target {
            path: p.clone(),
            len,
            label: "f".into(),
        };
        assert_eq!(read_through(&t(5), &read), Ok(5));
        assert_eq!(read.load(Ordering::SeqCst), 5);
        assert!(read_through(&t(9), &read).unwrap_err().contains("5 of 9"));
    }
}
