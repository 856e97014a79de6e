//! A deflated entry's compressed blocks sealed by its CRC-32 (issue 18): once a stream from the
//! start verified the entry, a block of its compressed bytes fetched again after eviction is
//! checked against its sealed checksum, so a byte changed in flight that still inflates (a
//! stored deflate block: incompressible data) is never served, neither from the entry nor
//! from a tar member inside a `.tar.gz` the entry is, whatever the blob's digest says or
//! whether it has one. The two blocks an entry shares with its neighbours are checked by its
//! pieces of them, deflated and stored entries alike, sealed in the blob's map: after a
//! remount too.

use std::io::Read;
use std::sync::Arc;

use fake_github::zipgen::{EntryOptions, ZipBuilder, noise};
use sha2::{Digest, Sha256};

use super::tests::{names, read_in_chunks, resolve};
use super::*;
use crate::cache::BLOCK_SIZE;
use crate::github::ArtifactKind;
use crate::github::failing_remote::{FailingRemote, Flip};
use crate::github::memory_remote::MemoryRemote;

const A: &str = "octo/hello/runs/100/dist";
/// The cache's cap: the entry, its inflated copy and their neighbours fit; the padding file
/// read after them does not, so it evicts them all.
const CAP: u64 = 12 << 20;
/// The stored entry after the one under test, read to evict it.
const PAD: usize = 16 << 20;
/// The last entry, never read: the blob is never complete, so its digest never vouches for
/// anything.
const UNREAD: usize = 1 << 20;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The entry `name` deflated (as upload-artifact stores every file), the padding after it
/// and a last entry nobody reads.
fn artifact(name: &str, data: &[u8]) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add_with(name, data, EntryOptions::default());
    z.add_with("pad.bin", &noise(PAD, 3), EntryOptions::stored());
    z.add_with("unread.bin", &noise(UNREAD, 4), EntryOptions::stored());
    z.finish()
}

/// Whether `offset` lies in a block whole inside `start..start + len`, with whole blocks
/// on both sides of it.
fn well_inside(offset: u64, (start, len): (u64, u64)) -> bool {
    let block = offset / BLOCK_SIZE;
    block > start.div_ceil(BLOCK_SIZE) && block + 1 < (start + len) / BLOCK_SIZE
}

/// Checks that the blob was never fetched whole (the middle of `unread.bin` never was).
fn never_complete(remote: &MemoryRemote, body: &[u8]) {
    let (start, len) = compressed_range(body, "unread.bin");
    assert_eq!(
        reads_covering(remote, 0, start + len / 2),
        0,
        "unread.bin was read"
    );
}

/// Where entry `name`'s compressed bytes are in zip `z`: (start, length).
fn compressed_range(z: &[u8], name: &str) -> (u64, u64) {
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
    let e = a.by_name(name).unwrap();
    (e.data_start(), e.compressed_size())
}

/// Raw deflate `d` inflated, or `None` when the inflater refuses it.
fn inflate(d: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(d)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Offsets at or after `from` in the deflate stream `deflated` (of `original`) whose byte,
/// changed (XOR 0xFF), still inflates without a complaint to `original` with one byte changed:
/// (offset in `deflated`, offset of the changed byte in `original`). Inside a stored deflate
/// block, which is what incompressible data gets.
fn silent_changes<'a>(
    deflated: &'a [u8],
    original: &'a [u8],
    from: usize,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    (from..deflated.len()).step_by(997).filter_map(move |k| {
        let mut d = deflated.to_vec();
        d[k] ^= 0xFF;
        let out = inflate(&d)?;
        if out.len() != original.len() {
            return None;
        }
        let mut diff = out
            .iter()
            .zip(original)
            .enumerate()
            .filter(|(_, (a, b))| a != b);
        let (m, _) = diff.next()?;
        diff.next().is_none().then_some((k, m))
    })
}

/// A core over `remote` with a cache of [`CAP`] bytes in `dir` (the same cache after a
/// remount).
async fn core_capped(
    remote: Arc<FailingRemote<MemoryRemote>>,
    dir: &std::path::Path,
) -> ArtifactFs {
    super::inner_gib_tests::core_capped_on(remote, dir, CAP).await
}

fn remote_with(body: Vec<u8>, digest: bool) -> Arc<FailingRemote<MemoryRemote>> {
    let remote = Arc::new(FailingRemote::new(MemoryRemote::default()));
    remote.add(1, "dist", 100, "main", 1, body, ArtifactKind::Zip);
    if !digest {
        remote.edit(1, |a| a.digest = None);
    }
    remote
}

fn flip_once(remote: &FailingRemote<MemoryRemote>, offset: u64) {
    remote.set(|f| {
        f.flip = Some(Flip {
            artifact: 1,
            offset,
            times: Some(1),
        })
    });
}

/// `n` bytes at `offset` of `path`, through one handle.
async fn read_at(fs: &ArtifactFs, path: &str, offset: u64, n: u32) -> FsResult<Vec<u8>> {
    let fh = fs.open(resolve(fs, path).await?.ino).await?;
    let r = fs.read(fh, offset, n).await;
    fs.release(fh);
    r
}

/// Reads `pad.bin`, which evicts everything read before it.
async fn evict_by_padding(fs: &ArtifactFs) {
    let pad = read_in_chunks(fs, &format!("{A}/pad.bin"), 128 << 10).await;
    assert_eq!(pad.unwrap().len(), PAD);
    assert!(fs.cache().used() <= CAP);
}

/// Blob reads (since `since` of them) whose bytes cover `offset`.
fn reads_covering(remote: &MemoryRemote, since: usize, offset: u64) -> usize {
    remote.blob_reads.lock().unwrap()[since..]
        .iter()
        .filter(|(_, s, e)| (*s..*e).contains(&offset))
        .count()
}

fn reads_so_far(remote: &MemoryRemote) -> usize {
    remote.blob_reads.lock().unwrap().len()
}

#[tokio::test]
async fn a_verified_deflated_entry_read_at_random_after_eviction_never_serves_a_changed_byte() {
    let data = noise(3 << 20, 21);
    let body = artifact("data.bin", &data);
    let (start, len) = compressed_range(&body, "data.bin");
    let deflated = &body[start as usize..(start + len) as usize];
    // A byte well inside the compressed bytes (whole blocks around it), in a stored block.
    let (k, m) = silent_changes(deflated, &data, deflated.len() / 2)
        .find(|&(k, _)| well_inside(start + k as u64, (start, len)))
        .expect("a change that still inflates");
    let at = start + k as u64;
    for digest in [true, false] {
        let remote = remote_with(body.clone(), digest);
        let dir = tempfile::tempdir().unwrap();
        let fs = core_capped(remote.clone(), dir.path()).await;
        let path = format!("{A}/data.bin");
        // Read whole: the stream from the start verifies the CRC-32.
        let whole = read_in_chunks(&fs, &path, 128 << 10).await.unwrap();
        assert_eq!(sha(&whole), sha(&data), "digest {digest}");
        // Its compressed blocks and its inflated copy evicted.
        evict_by_padding(&fs).await;
        let before = reads_so_far(&remote);
        flip_once(&remote, at);
        // A random read around the byte that comes back changed.
        let from = m.saturating_sub(2000) as u64;
        let got = read_at(&fs, &path, from, 4096).await;
        let got = got.unwrap_or_else(|e| panic!("digest {digest}: {e}"));
        assert_eq!(
            sha(&got),
            sha(&data[from as usize..from as usize + 4096]),
            "digest {digest}: the changed byte was served"
        );
        assert_eq!(
            reads_covering(&remote, before, at),
            2,
            "digest {digest}: the changed block fetched, found wrong, fetched once more"
        );
        never_complete(&remote, &body);
        let fetched: u64 = remote.blob_reads.lock().unwrap()[before..]
            .iter()
            .map(|(_, s, e)| e - s)
            .sum();
        assert!(
            fetched <= len + 2 * BLOCK_SIZE + (8 << 20),
            "digest {digest}: {fetched} bytes fetched for one 4 KiB read"
        );
    }
}

/// A `.tar.gz` of three incompressible members, deflated as the artifact's `logs.tar.gz`:
/// the gzip stream and the artifact's deflate stream over it are both stored blocks, so a
/// byte changed in flight reaches a member as a changed byte.
struct TarGz {
    body: Vec<u8>,
    files: Vec<Vec<u8>>,
    tar: Vec<u8>,
    gz: Vec<u8>,
    /// Where `logs.tar.gz`'s compressed bytes are in `body`: (start, length).
    range: (u64, u64),
}

impl TarGz {
    /// Members of `member_len` bytes each.
    fn new(member_len: usize) -> TarGz {
        let files: Vec<Vec<u8>> = (0..3).map(|i| noise(member_len, 30 + i)).collect();
        let tar = super::inner_heal_tests::tar_of(&files, "bin");
        let gz = super::inner_tests::gzip(&tar);
        let body = artifact("logs.tar.gz", &gz);
        let range = compressed_range(&body, "logs.tar.gz");
        TarGz {
            body,
            files,
            tar,
            gz,
            range,
        }
    }

    /// A blob offset in the compressed bytes, at or after `from` in them and accepted by
    /// `keep`, whose byte changed is a changed byte of the gzip stream, which is a changed
    /// byte of member `member`.
    fn change_reaching(&self, member: usize, from: usize, keep: impl Fn(u64) -> bool) -> u64 {
        let (start, len) = self.range;
        let deflated = &self.body[start as usize..(start + len) as usize];
        // flate2's gzip header is 10 bytes, its trailer 8.
        let gz_body = &self.gz[10..self.gz.len() - 8];
        let file = &self.files[member];
        let member_at = self.tar.windows(64).position(|w| w == &file[..64]);
        let member_at = member_at.unwrap();
        let member_range = member_at..member_at + file.len();
        let k = silent_changes(deflated, &self.gz, from)
            .filter(|&(k, _)| keep(start + k as u64))
            .find_map(|(k, j)| {
                let mut d = gz_body.to_vec();
                d[j.checked_sub(10)?] ^= 0xFF;
                let out = inflate(&d)?;
                let t = out.iter().zip(&self.tar).position(|(a, b)| a != b)?;
                (out.len() == self.tar.len() && member_range.contains(&t)).then_some(k)
            })
            .expect("a change that reaches the member");
        start + k as u64
    }
}

/// With and without a digest: the tar's index built (which reads the holding entry through:
/// its CRC-32 verifies), the core dropped and built again on the same cache when `remount`,
/// the blocks evicted, the byte at blob offset `at` changed once in flight, then member
/// `member` read whole: the right bytes, from exactly two reads covering `at` (fetched,
/// found wrong, fetched once more), and the artifact's last entry never fetched.
async fn member_after_eviction_is_fetched_again(t: &TarGz, member: usize, at: u64, remount: bool) {
    for digest in [true, false] {
        let remote = remote_with(t.body.clone(), digest);
        let dir = tempfile::tempdir().unwrap();
        let mut fs = core_capped(remote.clone(), dir.path()).await;
        let contents = format!("{A}/logs.tar.gz.d");
        assert_eq!(names(&fs, &contents).await.len(), t.files.len());
        if remount {
            drop(fs);
            fs = core_capped(remote.clone(), dir.path()).await;
            // The kept index lists it without reading the holding entry again.
            assert_eq!(names(&fs, &contents).await.len(), t.files.len());
        }
        evict_by_padding(&fs).await;
        let before = reads_so_far(&remote);
        flip_once(&remote, at);
        let path = format!("{contents}/f{member}.bin");
        let got = read_in_chunks(&fs, &path, 128 << 10).await;
        let got = got.unwrap_or_else(|e| panic!("digest {digest}: {e}"));
        assert_eq!(
            sha(&got),
            sha(&t.files[member]),
            "digest {digest}: the changed byte was served"
        );
        assert_eq!(
            reads_covering(&remote, before, at),
            2,
            "digest {digest}: the changed block fetched, found wrong, fetched once more"
        );
        never_complete(&remote, &t.body);
    }
}

#[tokio::test]
async fn a_tar_member_in_a_deflated_tar_gz_read_after_eviction_never_serves_a_changed_byte() {
    let t = TarGz::new(1 << 20);
    let (start, len) = t.range;
    let at = t.change_reaching(1, len as usize / 3, |at| well_inside(at, (start, len)));
    member_after_eviction_is_fetched_again(&t, 1, at, false).await;
}

#[tokio::test]
async fn the_edge_of_a_verified_tar_gz_is_checked_for_its_members_after_a_remount() {
    // The first block of the holding entry's compressed bytes is shared with its local
    // header: its piece, kept in the blob's map, still checks it after a remount. Under
    // 1 MiB, the holding entry gets no inflated copy, whose seal would catch the changed
    // byte too (as EIO, not healed): the piece alone is what stands in its way.
    let t = TarGz::new(256 << 10);
    let (start, _) = t.range;
    let at = t.change_reaching(0, 0, |at| at / BLOCK_SIZE == start / BLOCK_SIZE);
    member_after_eviction_is_fetched_again(&t, 0, at, true).await;
}

/// With and without a digest: `name` (whose bytes are `data`) read whole, the core dropped
/// and built again on the same cache when `remount`, its blocks evicted, the byte at blob
/// offset `at` (entry offset `k`) changed once in flight, then 4 KiB around it read: the
/// right bytes, from exactly two reads covering `at` (fetched, found wrong, fetched once
/// more), and the artifact's last entry never fetched (no digest vouches).
async fn flipped_edge_after_eviction_is_fetched_again(
    (body, name, data): (&[u8], &str, &[u8]),
    (what, at, k): Edge,
    remount: bool,
) {
    for digest in [true, false] {
        let what = format!("{what}, digest {digest}, remount {remount}");
        let remote = remote_with(body.to_vec(), digest);
        let dir = tempfile::tempdir().unwrap();
        let mut fs = core_capped(remote.clone(), dir.path()).await;
        let path = format!("{A}/{name}");
        let whole = read_in_chunks(&fs, &path, 128 << 10).await.unwrap();
        assert_eq!(sha(&whole), sha(data), "{what}");
        if remount {
            drop(fs);
            fs = core_capped(remote.clone(), dir.path()).await;
        }
        evict_by_padding(&fs).await;
        let before = reads_so_far(&remote);
        flip_once(&remote, at);
        let from = k.saturating_sub(2000);
        let got = read_at(&fs, &path, from, 4096).await;
        let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
        let want = &data[from as usize..(from as usize + 4096).min(data.len())];
        assert_eq!(sha(&got), sha(want), "{what}: the changed byte was served");
        assert_eq!(
            reads_covering(&remote, before, at),
            2,
            "{what}: fetched, found wrong, fetched once more"
        );
        never_complete(&remote, body);
    }
}

/// A byte of an entry in a block it shares with its neighbours: (which end, its blob offset,
/// its offset in the entry's data).
type Edge = (&'static str, u64, u64);

/// A deflated entry small enough to get no inflated copy (every read inflates the compressed
/// bytes), and a byte of its compressed bytes in each of the two blocks it shares with its
/// neighbours whose change still inflates: (zip, data, [(which, blob offset, entry offset)]).
fn deflated_edges() -> (Vec<u8>, Vec<u8>, [Edge; 2]) {
    let data = noise(600 << 10, 22);
    let body = artifact("small.bin", &data);
    let (start, len) = compressed_range(&body, "small.bin");
    let deflated = &body[start as usize..(start + len) as usize];
    let end = start + len;
    let head = silent_changes(deflated, &data, 100).next().unwrap();
    let tail_from = (end / BLOCK_SIZE * BLOCK_SIZE - start) as usize + 100;
    let tail = silent_changes(deflated, &data, tail_from).next().unwrap();
    let edges = [("head", head), ("tail", tail)].map(|(what, (k, m))| {
        let at = start + k as u64;
        assert!(
            at / BLOCK_SIZE == start / BLOCK_SIZE || at / BLOCK_SIZE == end / BLOCK_SIZE,
            "{what}: in a shared block"
        );
        (what, at, m as u64)
    });
    (body, data, edges)
}

/// A stored entry that neither starts nor ends on a block boundary, and a byte of each of
/// the two blocks it shares with its local header and the next entry: (zip, data,
/// [(which, blob offset, entry offset)]).
fn stored_edges() -> (Vec<u8>, Vec<u8>, [Edge; 2]) {
    let data = noise(600 << 10, 23);
    let body = stored_artifact(&data);
    let (start, len) = compressed_range(&body, "stored.bin");
    assert_eq!(len, data.len() as u64, "stored");
    let end = start + len;
    assert!(start % BLOCK_SIZE != 0 && end % BLOCK_SIZE != 0);
    let head = 100;
    let tail = end / BLOCK_SIZE * BLOCK_SIZE + 100 - start;
    let edges = [("head", head), ("tail", tail)].map(|(what, k)| (what, start + k, k));
    (body, data, edges)
}

/// `stored.bin` (`data`, stored), the padding after it and a last entry nobody reads.
fn stored_artifact(data: &[u8]) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    z.add_with("stored.bin", data, EntryOptions::stored());
    z.add_with("pad.bin", &noise(PAD, 3), EntryOptions::stored());
    z.add_with("unread.bin", &noise(UNREAD, 4), EntryOptions::stored());
    z.finish()
}

#[tokio::test]
async fn the_edges_of_a_verified_deflated_entry_are_checked_too() {
    // The blob blocks at the two ends of the compressed bytes are shared with the local
    // header and the next entry, so they are not sealed: the entry checks its own pieces of
    // them.
    let (body, data, edges) = deflated_edges();
    for edge in edges {
        flipped_edge_after_eviction_is_fetched_again((&body, "small.bin", &data), edge, false)
            .await;
    }
}

#[tokio::test]
async fn the_edges_of_a_verified_deflated_entry_are_checked_after_a_remount() {
    // The pieces are in the blob's map: a partial read after a remount, before anything
    // verified the entry again, is checked by them.
    let (body, data, edges) = deflated_edges();
    for edge in edges {
        flipped_edge_after_eviction_is_fetched_again((&body, "small.bin", &data), edge, true).await;
    }
}

#[tokio::test]
async fn the_edges_of_a_verified_stored_entry_are_checked_too() {
    // The blocks whole inside the entry are sealed when its CRC-32 passes, and its pieces of
    // the two blocks it shares with its local header and the next entry are checked by every
    // read that touches them.
    let (body, data, edges) = stored_edges();
    for edge in edges {
        flipped_edge_after_eviction_is_fetched_again((&body, "stored.bin", &data), edge, false)
            .await;
    }
}

#[tokio::test]
async fn the_edges_of_a_verified_stored_entry_are_checked_after_a_remount() {
    // A blob with no digest (and one whose digest never vouches: it is never complete): a
    // partial read (`dd`) of an edge after a remount is checked by the piece in the map.
    let (body, data, edges) = stored_edges();
    for edge in edges {
        flipped_edge_after_eviction_is_fetched_again((&body, "stored.bin", &data), edge, true)
            .await;
    }
}

#[tokio::test]
async fn the_refetch_that_verifies_a_stored_entry_vouches_for_its_edges() {
    // A byte changed in flight in the middle of the first read: EIO, and the next read's one
    // refetch reads the entry through and verifies it. That read-through, not a handle's
    // in-order check, is what vouches for the edges here.
    let data = noise(600 << 10, 25);
    let body = stored_artifact(&data);
    let (start, _) = compressed_range(&body, "stored.bin");
    let path = format!("{A}/stored.bin");
    for digest in [true, false] {
        let remote = remote_with(body.clone(), digest);
        let dir = tempfile::tempdir().unwrap();
        let fs = core_capped(remote.clone(), dir.path()).await;
        flip_once(&remote, start + data.len() as u64 / 2);
        let first = read_in_chunks(&fs, &path, 128 << 10).await;
        assert!(
            first.is_err(),
            "digest {digest}: the changed byte was served"
        );
        let head = read_at(&fs, &path, 0, 4096).await;
        let head = head.unwrap_or_else(|e| panic!("digest {digest}: the refetch: {e}"));
        assert_eq!(sha(&head), sha(&data[..4096]), "digest {digest}");
        evict_by_padding(&fs).await;
        let before = reads_so_far(&remote);
        let at = start + 100;
        flip_once(&remote, at);
        let got = read_at(&fs, &path, 0, 4096).await;
        let got = got.unwrap_or_else(|e| panic!("digest {digest}: {e}"));
        assert_eq!(
            sha(&got),
            sha(&data[..4096]),
            "digest {digest}: the changed byte was served"
        );
        assert_eq!(
            reads_covering(&remote, before, at),
            2,
            "digest {digest}: fetched, found wrong, fetched once more"
        );
        never_complete(&remote, &body);
    }
}

#[tokio::test]
async fn the_archive_itself_is_checked_by_an_entrys_pieces_after_a_remount() {
    // `NAME.zip` read in part, where a verified entry's piece lies: the same check as the
    // entry's own reads.
    let (body, data, edges) = stored_edges();
    let path = format!("{A}/stored.bin");
    for digest in [true, false] {
        for (what, at, _) in edges {
            let what = format!("{what}, digest {digest}");
            let remote = remote_with(body.clone(), digest);
            let dir = tempfile::tempdir().unwrap();
            let fs = core_capped(remote.clone(), dir.path()).await;
            let whole = read_in_chunks(&fs, &path, 128 << 10).await.unwrap();
            assert_eq!(sha(&whole), sha(&data), "{what}");
            drop(fs);
            let fs = core_capped(remote.clone(), dir.path()).await;
            evict_by_padding(&fs).await;
            let before = reads_so_far(&remote);
            flip_once(&remote, at);
            let from = at.saturating_sub(2000);
            let got = read_at(&fs, &format!("{A}.zip"), from, 4096).await;
            let got = got.unwrap_or_else(|e| panic!("{what}: {e}"));
            let want = &body[from as usize..from as usize + 4096];
            assert_eq!(sha(&got), sha(want), "{what}: the changed byte was served");
            assert_eq!(
                reads_covering(&remote, before, at),
                2,
                "{what}: fetched, found wrong, fetched once more"
            );
        }
    }
}

/// The block map of the artifact's blob (not an inflated copy's) in the cache under `dir`
/// (see [`core_capped`]), opened.
fn blob_map(dir: &std::path::Path) -> crate::cache::BlockFile {
    let blocks = dir.join("cache").join("blocks");
    let map = std::fs::read_dir(&blocks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "map") && !p.to_string_lossy().contains("-e"))
        .expect("the blob's map");
    let len = crate::cache::BlockFile::recorded_len(&map).unwrap();
    let stem = map.file_stem().unwrap().to_str().unwrap();
    crate::cache::BlockFile::open(&blocks, stem, len).unwrap()
}

#[tokio::test]
async fn a_piece_no_refetch_matches_stays_eio_across_a_remount() {
    // A piece that no fetch matches (planted here: what a host sending a changed byte on
    // every fetch looks like to it) fails the read that meets it after one refetch, and
    // every later read: one refetch, then EIO stays. The piece is kept, in the map too.
    let (body, data, _) = stored_edges();
    let path = format!("{A}/stored.bin");
    let remote = remote_with(body.clone(), false);
    let dir = tempfile::tempdir().unwrap();
    let fs = core_capped(remote.clone(), dir.path()).await;
    let whole = read_in_chunks(&fs, &path, 128 << 10).await.unwrap();
    assert_eq!(sha(&whole), sha(&data));
    drop(fs);
    let planted = {
        let map = blob_map(dir.path());
        let right = map.pieces_in(0, map.len());
        assert_eq!(right.len(), 2, "the entry's two edges");
        let wrong = crate::cache::Piece {
            crc: right[0].crc ^ 1,
            ..right[0]
        };
        map.seal_pieces(&[wrong]).unwrap();
        map.pieces_in(0, map.len())
    };
    let fs = core_capped(remote.clone(), dir.path()).await;
    let before = reads_so_far(&remote);
    let first = read_in_chunks(&fs, &path, 128 << 10).await;
    assert_eq!(
        first.map(|_| ()).unwrap_err().errno(),
        libc::EIO,
        "the piece fails the first read"
    );
    assert_eq!(
        reads_covering(&remote, before, planted[0].at),
        1,
        "refetched once"
    );
    let again = read_in_chunks(&fs, &path, 128 << 10).await;
    assert_eq!(
        again.map(|_| ()).unwrap_err().errno(),
        libc::EIO,
        "EIO stays: the next read-through too"
    );
    drop(fs);
    let map = blob_map(dir.path());
    assert_eq!(map.pieces_in(0, map.len()), planted, "the piece is kept");
}
