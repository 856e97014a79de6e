//! The bytes of the benchmark's artifacts that are made, not random: text that deflates like a
//! CI log ([`ci_log`], also the filler of the fake's run logs), a `.tar.gz` of many small logs
//! ([`tarball`]) and an indexed SQLite database ([`sqlite_db`], with the query the bench runs).

use crate::zipgen::log_text;

/// Rows of the bench's SQLite database (about 300 bytes each, with the index: ~33 MiB).
pub const SQLITE_ROWS: u64 = 110_000;

/// An indexed query that finds row 54321 of [`sqlite_db`]'s table (keys are
/// `i * 7919 mod 1000003`: one row each).
pub fn sqlite_query() -> String {
    format!(
        "SELECT id, v FROM t WHERE k = 'key-{:07}';",
        54_321 * 7919 % 1_000_003
    )
}

/// A SQLite database of `rows` rows with an index on `k`, made by the `sqlite3` command;
/// `None` when it is not installed or fails.
pub fn sqlite_db(rows: u64) -> Option<Vec<u8>> {
    let path = std::env::temp_dir().join(format!("fake-github-bench-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let sql = format!(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO t SELECT i, printf('key-%07d', (i * 7919) % 1000003),
           i || ':' || hex(randomblob(120)) FROM n;
         CREATE INDEX t_k ON t(k);"
    );
    let ok = std::process::Command::new("sqlite3")
        .arg(&path)
        .arg(sql)
        .output()
        .is_ok_and(|o| o.status.success());
    let db = ok.then(|| std::fs::read(&path).ok()).flatten();
    let _ = std::fs::remove_file(&path);
    db
}

/// A `.tar.gz` of `n` log files of about 6 KiB in 100 folders: (bytes, tar size, the last
/// file's name and size).
pub fn tarball(n: u64) -> (Vec<u8>, u64, String, u64) {
    let mut b = tar::Builder::new(Vec::new());
    let mut last = (String::new(), 0);
    for i in 0..n {
        let data = log_text(6_000 + (i as usize * 7919) % 500, 5_000 + i);
        let name = format!("dist/logs/{:02}/job-{i:05}.log", i % 100);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_714_564_800 + i);
        b.append_data(&mut h, &name, &data[..]).expect("in memory");
        last = (name, data.len() as u64);
    }
    let tar = b.into_inner().expect("in memory");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &tar).expect("in memory");
    (
        gz.finish().expect("in memory"),
        tar.len() as u64,
        last.0,
        last.1,
    )
}

const LOG_COMPONENTS: [&str; 10] = [
    "checkout",
    "cargo",
    "rustc",
    "linker",
    "test-runner",
    "cache",
    "upload",
    "docker",
    "npm",
    "pytest",
];
const LOG_WORDS: [&str; 16] = [
    "serde", "tokio", "hyper", "fuser", "libz", "axum", "clap", "rand", "bytes", "regex", "memchr",
    "futures", "tracing", "anyhow", "zip", "sha2",
];

/// Text that deflates like a CI log (about 4.4× at level 6): timestamped lines from eight
/// templates with words, numbers and partial hashes. Returns the text and how many of its
/// lines hold `ERROR`.
pub fn ci_log(len: usize, seed: u64) -> (Vec<u8>, u64) {
    use std::io::Write;
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::with_capacity(len + 200);
    let (mut ms, mut errors) = (0u64, 0u64);
    while out.len() < len {
        let x = next();
        let (h1, h2) = (next(), next());
        ms += x % 50;
        let w = LOG_WORDS[((x >> 12) % 16) as usize];
        let (a, b, c) = ((x >> 20) % 1000, (x >> 30) % 100, (x >> 40) % 10_000);
        let hash = format!("{h1:016x}{h2:016x}");
        write!(
            out,
            "2024-05-01T{:02}:{:02}:{:02}.{:03}Z [{}] ",
            (ms / 3_600_000) % 24,
            (ms / 60_000) % 60,
            (ms / 1000) % 60,
            ms % 1000,
            LOG_COMPONENTS[((x >> 50) % 10) as usize]
        )
        .expect("write to a Vec");
        let r = match (x >> 8) % 8 {
            0 => writeln!(out, "Compiling {w} v0.{a}.{b}"),
            1 => writeln!(out, "test {w}::case_{a} ... ok"),
            2 => writeln!(out, "Downloaded {w} ({a} KiB) sha256:{hash}"),
            3 => writeln!(out, "warning: unused variable `{w}_{a}`"),
            4 => {
                errors += 1;
                writeln!(out, "ERROR {w}: exit code {a}")
            }
            5 => writeln!(out, "Fetching {w} from https://example.com/{hash}"),
            6 => writeln!(out, "Step {a}/{b}: {w} took {c} ms"),
            _ => writeln!(out, "PASS {w}/test_{a}.py::test_{b} [{c}%]"),
        };
        r.expect("write to a Vec");
    }
    // Cut at the end of the last whole line, then pad to the exact length with a line of dots
    // (no ERROR in it), so the count stays exact.
    let cut = out[..len.min(out.len())]
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(0, |p| p + 1);
    if out[cut..].windows(5).any(|w| w == b"ERROR") {
        errors -= 1;
    }
    out.truncate(cut);
    if out.len() < len {
        out.resize(len - 1, b'.');
        out.push(b'\n');
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tarball_holds_what_its_info_says() {
        let (gz, tar_size, last, last_size) = tarball(150);
        let tar = {
            let mut d = flate2::read::GzDecoder::new(&gz[..]);
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut v).unwrap();
            v
        };
        assert_eq!(tar.len() as u64, tar_size);
        let mut a = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u64)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.size())
            })
            .collect();
        assert_eq!(entries.len(), 150);
        assert_eq!(entries.last().unwrap(), &(last.clone(), last_size));
        assert_eq!(last, "dist/logs/49/job-00149.log");
    }

    #[test]
    fn ci_log_is_exact_and_counts_its_errors() {
        let (t, errors) = ci_log(100_000, 3);
        assert_eq!(t.len(), 100_000);
        assert_eq!(*t.last().unwrap(), b'\n');
        let counted = t
            .split(|&c| c == b'\n')
            .filter(|l| l.windows(5).any(|w| w == b"ERROR"))
            .count() as u64;
        assert_eq!(errors, counted);
    }
}
