//! The real `sqlite3` over a real mount: an indexed query on a database deflated in an
//! artifact, twice. Both answers right; the first query makes the mount inflate the database
//! to its copy in the cache (in the background), so the second fetches no blob byte and
//! starts no inflate stream, nor does a third after a remount on the same cache.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use fake_github::zipgen::ZipBuilder;

const REPO: &str = "octo-org/hello";
/// Row 12345's key (keys are `i * 7919 mod 1000003`: one row each).
const ROW: u64 = 12345;

/// An indexed query for row [`ROW`].
fn query() -> String {
    format!(
        "SELECT id, v FROM t WHERE k = 'key-{:07}';",
        ROW * 7919 % 1_000_003
    )
}

/// `sqlite3 DB SQL`'s output (fails the test when sqlite3 is missing or the query fails).
fn sqlite(db: &str, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 (Debian package sqlite3: scripts/install-deps.sh)");
    assert!(out.status.success(), "sqlite3 {db}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A database of `rows` rows (~300 bytes each) with an index on `k`.
fn database(dir: &Path, rows: u32) -> Vec<u8> {
    let path = dir.join("app.db");
    sqlite(
        path.to_str().unwrap(),
        &format!(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO t SELECT i, printf('key-%07d', (i * 7919) % 1000003), i || ':' || hex(randomblob(140)) FROM n;
             CREATE INDEX t_k ON t(k);"
        ),
    );
    std::fs::read(path).unwrap()
}

#[test]
fn an_indexed_query_on_a_deflated_database_again_fetches_nothing_and_inflates_nothing() {
    require_fuse();
    let _w = Watchdog::arm("sqlite", 180);
    let local = tempfile::tempdir().unwrap();
    let db = database(local.path(), 40_000);
    assert!(db.len() > 8 << 20, "{} bytes", db.len());
    let want = sqlite(local.path().join("app.db").to_str().unwrap(), &query());
    assert!(want.starts_with(&format!("{ROW}|{ROW}:")), "{want}");
    let mut z = ZipBuilder::new();
    z.add("app.db", &db); // deflated
    let zip = z.finish();
    let gh = start_fake();
    add_hello(&gh, "db", 7, zip.clone());
    let runtime = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mount = || {
        Daemon::new(&gh, REPO)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .cache_dir(cache.path())
            .mount()
    };
    let m = mount();
    let uri = |m: &Mount| {
        format!(
            "file:{}?immutable=1",
            m.path("octo-org/hello/runs/7/db/app.db").display()
        )
    };

    assert_eq!(sqlite(&uri(&m), &query()), want, "the first query");
    // The copy pass fetches the compressed bytes once, in the background.
    let fetched = settled_blob_bytes(&gh);
    assert!(fetched <= zip.len() as u64 + (1 << 20), "{fetched} bytes");
    let streams = status_json(runtime.path(), &m.mountpoint).inflate_streams;

    assert_eq!(sqlite(&uri(&m), &query()), want, "the second query");
    assert_eq!(
        gh.counters().blob_bytes_total,
        fetched,
        "the second query fetched blob bytes"
    );
    let s = status_json(runtime.path(), &m.mountpoint);
    assert_eq!(s.inflate_streams, streams, "the second query inflated");
    // A remount on the same cache: the copy is still there.
    m.unmount();
    let m = mount();
    assert_eq!(sqlite(&uri(&m), &query()), want, "after a remount");
    assert_eq!(gh.counters().blob_bytes_total, fetched, "after a remount");
    let s = status_json(runtime.path(), &m.mountpoint);
    assert_eq!(s.inflate_streams, 0, "after a remount");
    eprintln!(
        "figures: db {} bytes, zip {} bytes, fetched {fetched}, inflate streams {streams}",
        db.len(),
        zip.len()
    );
}
