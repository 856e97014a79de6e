//! A background mount's log file, capped: when `artifactfs.log` reaches half the budget it
//! becomes `artifactfs.log.1` (replacing the previous one) and a new file starts, so the two
//! never hold more than the budget the cache sets aside for them (`--cache-size` counts
//! everything under the cache directory).
//!
//! Why not tracing-appender: its rolling appender rotates by time (minutely to daily), not
//! by size, so a chatty hour could still fill a disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log budget for a cache of `cache_size` bytes: a sixteenth, between 64 KiB and 16 MiB.
pub fn budget(cache_size: u64) -> u64 {
    (cache_size / 16).clamp(64 << 10, 16 << 20)
}

pub struct CappedLog {
    path: PathBuf,
    max_file: u64,
    file: Mutex<(File, u64)>,
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let len = f.metadata()?.len();
    Ok((f, len))
}

impl CappedLog {
    /// Appends to `path`, keeping it and its `.1` within `budget` bytes together.
    pub fn open(path: &Path, budget: u64) -> io::Result<CappedLog> {
        Ok(CappedLog {
            path: path.to_path_buf(),
            max_file: (budget / 2).max(4096),
            file: Mutex::new(open_append(path)?),
        })
    }

    fn rotated(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        PathBuf::from(p)
    }
}

impl Write for &CappedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self.file.lock().unwrap();
        if g.1 + buf.len() as u64 > self.max_file {
            std::fs::rename(&self.path, self.rotated())?;
            *g = open_append(&self.path)?;
        }
        // A line longer than a whole file is cut rather than let through.
        let n = buf.len().min(self.max_file as usize);
        g.0.write_all(&buf[..n])?;
        g.1 += n as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.lock().unwrap().0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CappedLog {
    type Writer = &'a CappedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_files_never_exceed_the_budget() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("artifactfs.log");
        let log = CappedLog::open(&p, 64 << 10).unwrap();
        let line = [b'x'; 100];
        for _ in 0..10_000 {
            (&log).write_all(&line).unwrap();
        }
        let a = std::fs::metadata(&p).unwrap().len();
        let b = std::fs::metadata(d.path().join("artifactfs.log.1"))
            .unwrap()
            .len();
        assert!(a + b <= 64 << 10, "{a} + {b}");
        assert!(b > 30 << 10, "rotated once full: {b}");
    }
}
