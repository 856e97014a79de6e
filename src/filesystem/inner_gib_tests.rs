//! Issue 21's test at its size, on the core with the in-memory remote: a 1 GiB `.tar.gz` of
//! 10 000 files (pseudo-random text, gzip level 1) stored in an artifact. Listing it builds
//! the index in one pass; after a remount with the blob's blocks gone, the kept index lists
//! it again without reading the gzip file, and a cold read of one file fetches no more than
//! the one seek span it lies in, its bytes checked by sha256.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fake_github::zipgen::{EntryOptions, ZipBuilder};
use sha2::{Digest, Sha256};

use super::tests::{names, read_in_chunks};
use super::*;
use crate::cache::BLOCK_SIZE;
use crate::github::ArtifactKind;
use crate::github::memory_remote::MemoryRemote;

const FILES: usize = 10_000;
const DIRS: usize = 100;
/// Where the files' bytes are cut from (see [`text_pool`]).
const POOL: usize = 16 << 20;

/// Pseudo-random log-like text: numbered lines of words from a small vocabulary, numbers and
/// hex ids drawn by an xorshift generator. Deflate level 1 takes it to about a third (no
/// long repeats to find), far from the few percent of a repeated line.
fn text_pool(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 32] = [
        "build", "test", "cache", "restore", "upload", "artifact", "error", "warning", "step",
        "job", "runner", "checkout", "compile", "link", "module", "crate", "deps", "target",
        "release", "debug", "fetch", "index", "token", "retry", "timeout", "done", "failed",
        "passed", "skipped", "writing", "reading", "ok",
    ];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len + 256);
    let mut line = 0u64;
    while out.len() < len {
        line += 1;
        out.extend_from_slice(line.to_string().as_bytes());
        let r = next();
        out.extend_from_slice(
            [" INFO ", " WARN ", " DEBUG ", " ERROR "][(r & 3) as usize].as_bytes(),
        );
        for k in 0..(4 + (r >> 2) % 9) {
            let w = next();
            out.extend_from_slice(WORDS[(w % 32) as usize].as_bytes());
            out.push(if k % 3 == 2 { b'=' } else { b' ' });
            if k % 3 == 2 {
                for s in 0..(2 + (w >> 8) % 7) {
                    out.push(HEX[((w >> (12 + 4 * s)) & 15) as usize]);
                }
                out.push(b' ');
            }
        }
        out.push(b'\n');
    }
    out.truncate(len);
    out
}

/// File `i`: its path in the tar and the slice of the pool it holds (sizes 106 600..107 000
/// bytes, 209 tar blocks each with its header: the tar is just over 1 GiB).
fn file(pool: &[u8], i: usize) -> (String, &[u8]) {
    let size = 106_600 + i % 400;
    let at = (i as u64).wrapping_mul(2_654_435_761) as usize % (pool.len() - size);
    (
        format!("logs/{:02}/file-{i:04}.log", i / DIRS),
        &pool[at..at + size],
    )
}

/// The tar of every file, gzip'd at level 1 as it is written (the tar is never held whole):
/// the gzip bytes and the tar's length.
fn tar_gz(pool: &[u8]) -> (Vec<u8>, u64) {
    struct Counting<W>(W, u64);
    impl<W: Write> Write for Counting<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(b)?;
            self.1 += n as u64;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let gz =
        flate2::write::GzEncoder::new(Vec::with_capacity(400 << 20), flate2::Compression::fast());
    let mut b = tar::Builder::new(Counting(gz, 0));
    for i in 0..FILES {
        let (path, data) = file(pool, i);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &path, data).unwrap();
    }
    let Counting(gz, tar_len) = b.into_inner().unwrap();
    (gz.finish().unwrap(), tar_len)
}

/// A core over the cache directory `dir` (the same cache after a remount: waits for the
/// background fetches of the last core to let go of it).
pub(super) async fn core_on(
    remote: Arc<dyn crate::github::Remote>,
    dir: &std::path::Path,
) -> ArtifactFs {
    core_capped_on(remote, dir, 2 << 30).await
}

/// [`core_on`] with a cache of `cap` bytes.
pub(super) async fn core_capped_on(
    remote: Arc<dyn crate::github::Remote>,
    dir: &std::path::Path,
    cap: u64,
) -> ArtifactFs {
    let mut tries = 0;
    let cache = loop {
        match crate::cache::DiskCache::open(&dir.join("cache"), cap) {
            Ok(c) => break Arc::new(c),
            Err(e) if tries < 100 => {
                tries += 1;
                tracing::debug!("cache still held: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let cfg = FsConfig {
        repos: vec![crate::github::RepoRef::new("octo", "hello")],
        metadata_ttl: Duration::from_secs(60),
        read_only: false,
    };
    ArtifactFs::new(remote, cache, cfg, Default::default())
}

#[tokio::test]
async fn a_1_gib_tar_gz_of_10000_files_reads_one_file_by_one_seek_span_and_keeps_its_index() {
    use crate::data::gzip::GzipScan;
    let t0 = Instant::now();
    let pool = text_pool(POOL, 0x5eed);
    let (gz, tar_len) = tar_gz(&pool);
    assert!(tar_len >= 1 << 30, "the tar is {tar_len} bytes");
    let mut z = ZipBuilder::new();
    z.add_with("logs.tar.gz", &gz, EntryOptions::stored());
    let gz_len = gz.len() as u64;
    drop(gz);
    let zip = bytes::Bytes::from(z.finish());
    drop(z);
    let zip_len = zip.len() as u64;
    // Where the gzip file lies in the blob (after its local header).
    let gz_start = {
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(&zip[..])).unwrap();
        a.by_index(0).unwrap().data_start()
    };
    let gz_end = gz_start + gz_len;
    let made = t0.elapsed();

    // The seek points, by the same scan in the test: pick a file in the middle that lies
    // between two consecutive points (within one span).
    let src = crate::source::MemorySource(zip.slice(gz_start as usize..gz_end as usize));
    let mut scan = GzipScan::new(&src).await.unwrap();
    let members = crate::archive::tar::read_tar_from(&mut scan).await.unwrap();
    let (_, points) = scan.finish().await.unwrap();
    assert_eq!(members.len(), FILES);
    let (k, from, to) = (FILES / 2..FILES)
        .find_map(|k| {
            let m = &members[k];
            let i = points.points.partition_point(|p| p.out <= m.offset);
            let next = points.points.get(i)?;
            let from = i.checked_sub(1).map_or(0, |i| points.points[i].input);
            (next.out >= m.offset + m.size).then_some((k, from, next.input))
        })
        .expect("a file within one span");
    let longest_span = (points.points.windows(2))
        .map(|w| w[1].input - w[0].input)
        .max()
        .unwrap();
    let scanned = t0.elapsed();

    let remote = Arc::new(MemoryRemote::default());
    remote.add(1, "dist", 100, "main", 1, zip, ArtifactKind::Zip);
    let dir = tempfile::tempdir().unwrap();
    let fs = core_on(remote.clone(), dir.path()).await;
    let contents = "octo/hello/runs/100/dist/logs.tar.gz.d/logs";
    assert_eq!(names(&fs, contents).await.len(), DIRS);
    let indexed = remote.blob_bytes.load(Ordering::SeqCst);
    assert!(indexed >= gz_len, "the index pass reads the gzip file once");
    let listed = t0.elapsed();

    // A remount on the same cache with the blob's blocks gone: the kept index lists the
    // contents from the zip's tail and the file's first block, none of the gzip file's body.
    drop(fs);
    std::fs::remove_dir_all(dir.path().join("cache/blocks")).unwrap();
    let fs = core_on(remote.clone(), dir.path()).await;
    remote.blob_reads.lock().unwrap().clear();
    let before = remote.blob_bytes.load(Ordering::SeqCst);
    assert_eq!(names(&fs, contents).await.len(), DIRS);
    let relist = remote.blob_bytes.load(Ordering::SeqCst) - before;
    let tail_from = zip_len_tail_start(remote.blob_reads.lock().unwrap().as_slice());
    for &(_, start, end) in remote.blob_reads.lock().unwrap().iter() {
        assert!(
            end <= gz_start + BLOCK_SIZE || start >= tail_from,
            "relisting read {start}..{end} of the gzip file ({gz_start}..{gz_end})"
        );
    }
    let tail = crate::archive::central_directory::tail_len_for(zip_len);
    assert!(
        relist <= tail + 2 * BLOCK_SIZE,
        "relisting cost {relist} bytes (tail {tail})"
    );

    // A cold read of file k: the compressed bytes of its span, and only those.
    let (path, original) = file(&pool, k);
    let at = format!("octo/hello/runs/100/dist/logs.tar.gz.d/{path}");
    let got = read_in_chunks(&fs, &at, 128 << 10).await.unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(&got)),
        hex::encode(Sha256::digest(original)),
        "{path}"
    );
    let cost = remote.blob_bytes.load(Ordering::SeqCst) - before - relist;
    let slack = crate::data::gzip::SEEK_READ_CHUNK + 2 * BLOCK_SIZE;
    eprintln!(
        "tar of {tar_len} bytes, tar.gz {gz_len} ({} points, longest span {longest_span}): \
         index pass {indexed}, relist after remount {relist}, file {k} {cost} (its span {}); \
         made in {:.1?}, scanned {:.1?}, listed {:.1?}, all {:.1?}",
        points.points.len(),
        to - from,
        made,
        scanned - made,
        listed - scanned,
        t0.elapsed()
    );
    assert!(
        cost <= (to - from) + slack,
        "one file cost {cost} compressed bytes, its span is {} of {gz_len}",
        to - from
    );
}

/// Where the blob's tail read started: the read that reaches the blob's end.
fn zip_len_tail_start(reads: &[(u64, u64, u64)]) -> u64 {
    let end = reads.iter().map(|r| r.2).max().unwrap_or(0);
    reads
        .iter()
        .filter(|r| r.2 == end)
        .map(|r| r.1)
        .min()
        .unwrap_or(end)
}
