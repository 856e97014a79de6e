//! One process per cache directory: an exclusive lock (flock) on the directory itself, held
//! for as long as the cache is open. Two processes on one directory would each count the
//! whole budget as theirs, delete each other's partial files when they start, and punch
//! holes under each other's block maps (the other would then serve zeros it thinks are
//! cached bytes). Locking the directory writes nothing, so nothing more counts against
//! `--cache-size`.
//! Tests also check here the order of the cache's in-process locks: no blob's lock is taken
//! under the state lock (see `assert_not_under_state_lock`).

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long opening waits for the lock: a daemon just unmounted may still be exiting.
const WAIT: Duration = Duration::from_secs(5);

/// Held while the cache is open; released when dropped (or when the process ends).
pub struct DirLock {
    _dir: fs::File,
}

impl DirLock {
    /// Takes the lock on `root`, waiting up to [`WAIT`] for a holder to go away.
    pub fn take(root: &Path) -> io::Result<DirLock> {
        Self::take_within(root, WAIT)
    }

    fn take_within(root: &Path, wait: Duration) -> io::Result<DirLock> {
        let dir = fs::File::open(root)?;
        let deadline = Instant::now() + wait;
        loop {
            match dir.try_lock() {
                Ok(()) => return Ok(DirLock { _dir: dir }),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!(
                            "cache directory {} is in use by another artifactfs process: give \
                             this one its own --cache-dir",
                            root.display()
                        ),
                    ));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let first = DirLock::take(d.path()).unwrap();
        let e = DirLock::take_within(d.path(), Duration::ZERO)
            .err()
            .expect("a second lock on the same directory");
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let msg = e.to_string();
        assert!(msg.contains("in use by another artifactfs") && msg.contains("--cache-dir"));
        drop(first);
        DirLock::take_within(d.path(), Duration::ZERO).expect("free again");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }
}

#[cfg(test)]
thread_local! {
    /// Tests only: this thread runs a commit's accounting, under the cache's state lock.
    pub(super) static UNDER_STATE_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tests only: panics when a blob's lock is taken under the cache's state lock (in a
/// commit's accounting), where it would make every cache operation wait on that blob's disk
/// writes.
#[cfg(test)]
pub(super) fn assert_not_under_state_lock() {
    assert!(
        !UNDER_STATE_LOCK.get(),
        "a blob's lock taken under the cache's state lock"
    );
}
