//! A gzip file (`dist.tar.gz` inside an artifact) read without inflating it over and over
//! (and a deflated member of a zip inside an artifact, [`InflatingSource::deflated`]):
//! [`GzipScan`] is the one pass from the start, which hands the tar reader its bytes front to
//! back, records seek points with the deflated entries' [`SeekRecorder`] (zlib's zran idea:
//! every span of output at the next block boundary; the same [`SeekIndex`] and
//! [`RawInflate`]) and checks the gzip trailer (CRC-32 and length); [`InflatingSource`] then serves any
//! range of the uncompressed bytes as a ranged [`ByteSource`] by inflating from the nearest
//! point before it: at most one span per cold read, a few streams kept for readers that go
//! on in order. Only the compressed bytes read are fetched, through the source given (the
//! holding file's reader, with its cache and checks). Single-member gzip files only.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::raw_inflate::RawInflate;
use super::seek_index::{SeekIndex, SeekRecorder};
use crate::archive::ArchiveError;
use crate::archive::error::corrupt;
use crate::archive::tar::ForwardInput;
use crate::error::SourceError;
use crate::source::ByteSource;

/// Compressed bytes read at a time by the scan.
pub const READ_CHUNK: u64 = 1 << 20;
/// Compressed bytes read at a time by a read from a seek point (what a cold read may fetch
/// past the spans it needs).
pub const SEEK_READ_CHUNK: u64 = 256 << 10;
/// Most output per inflate call.
const OUT_CHUNK: usize = 256 << 10;
/// Streams kept for readers going on in order.
const STREAMS_KEPT: usize = 4;

/// Where the deflate stream starts: the gzip header's length (RFC 1952).
pub async fn deflate_start(src: &dyn ByteSource) -> Result<u64, ArchiveError> {
    let head = src.read_at(0, 64 << 10).await?;
    let bad = |m: &str| corrupt(format!("gzip header: {m}"));
    if head.len() < 10 || head[0] != 0x1f || head[1] != 0x8b || head[2] != 8 {
        return Err(bad("not a deflate gzip file"));
    }
    let flags = head[3];
    if flags & 0xe0 != 0 {
        return Err(bad("reserved flags"));
    }
    let mut at = 10usize;
    if flags & 4 != 0 {
        let x = head.get(at..at + 2).ok_or_else(|| bad("cut short"))?;
        at += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for flag in [8, 16] {
        if flags & flag != 0 {
            let rest = head.get(at..).ok_or_else(|| bad("cut short"))?;
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| bad("long name"))?;
            at += nul + 1;
        }
    }
    if flags & 2 != 0 {
        at += 2;
    }
    if at >= head.len() {
        return Err(bad("cut short"));
    }
    Ok(at as u64)
}

/// One inflate stream over the compressed bytes from `start`.
struct Stream {
    z: RawInflate,
    /// Compressed bytes consumed, from the deflate stream's start.
    in_pos: u64,
    out_pos: u64,
    input: Bytes,
    input_at: usize,
    ended: bool,
    /// Compressed bytes asked for at a time.
    chunk: u64,
    /// The CRC-32 and seek points of a stream from the start (the scan).
    crc: Option<crc32fast::Hasher>,
    points: Option<SeekRecorder>,
}

impl Stream {
    fn new(z: RawInflate, in_pos: u64, out_pos: u64, scan: bool) -> Stream {
        Stream {
            z,
            in_pos,
            out_pos,
            input: Bytes::new(),
            input_at: 0,
            ended: false,
            chunk: if scan { READ_CHUNK } else { SEEK_READ_CHUNK },
            crc: scan.then(crc32fast::Hasher::new),
            points: scan.then(SeekRecorder::default),
        }
    }

    /// Inflates until `upto` bytes have been produced (or the stream ends), handing each
    /// piece of output to `keep` with its offset.
    async fn advance(
        &mut self,
        src: &dyn ByteSource,
        (start, end): (u64, u64),
        upto: u64,
        buf: &mut [u8],
        keep: &mut (dyn FnMut(u64, &[u8]) + Send),
    ) -> Result<(), ArchiveError> {
        let mut idle = 0;
        while self.out_pos < upto && !self.ended {
            if self.input_at >= self.input.len() {
                let at = start + self.in_pos;
                let n = end.saturating_sub(at).min(self.chunk);
                self.input = if n == 0 {
                    Bytes::new()
                } else {
                    src.read_at(at, n as usize).await?
                };
                self.input_at = 0;
                if self.input.is_empty() {
                    return Err(corrupt("gzip: the deflate stream is cut short"));
                }
            }
            let cap = ((upto - self.out_pos).min(buf.len() as u64)) as usize;
            let step = self
                .z
                .inflate(&self.input[self.input_at..], &mut buf[..cap])
                .map_err(|m| corrupt(format!("gzip: {m}")))?;
            self.input_at += step.used;
            self.in_pos += step.used as u64;
            let from = self.out_pos;
            let produced = &buf[..step.made];
            self.out_pos += step.made as u64;
            if let Some(crc) = self.crc.as_mut() {
                crc.update(produced);
            }
            if let Some(points) = self.points.as_mut() {
                points.output(produced);
            }
            keep(from, produced);
            if let Some(bits) = step.boundary
                && self.input_at > 0
            {
                let byte = self.input[self.input_at - 1];
                if let Some(points) = self.points.as_mut() {
                    points.boundary(self.out_pos, self.in_pos, bits, byte);
                }
            }
            if step.ended {
                self.ended = true;
            }
            let stuck = step.used == 0 && step.made == 0 && self.input_at < self.input.len();
            idle = if stuck { idle + 1 } else { 0 };
            if idle > 1 {
                return Err(corrupt("gzip: the deflate stream stalled"));
            }
        }
        Ok(())
    }
}

/// The one pass over a gzip file from its start: its bytes front to back for the tar
/// reader, then [`GzipScan::finish`] for the seek points and the trailer's check.
pub struct GzipScan<'a> {
    src: &'a dyn ByteSource,
    start: u64,
    stream: Stream,
    /// Bytes `kept_at..stream.out_pos` (what the last request asked for, and after).
    kept: Vec<u8>,
    kept_at: u64,
    buf: Vec<u8>,
}

impl<'a> GzipScan<'a> {
    pub async fn new(src: &'a dyn ByteSource) -> Result<GzipScan<'a>, ArchiveError> {
        let start = deflate_start(src).await?;
        let z = RawInflate::new().map_err(|m| corrupt(format!("gzip: {m}")))?;
        Ok(GzipScan {
            src,
            start,
            stream: Stream::new(z, 0, 0, true),
            kept: Vec::new(),
            kept_at: 0,
            buf: vec![0; OUT_CHUNK],
        })
    }

    /// Inflates the rest, checks the trailer, and gives the seek points (with the size and
    /// CRC-32 of the whole) and where the deflate stream starts.
    pub async fn finish(mut self) -> Result<(u64, SeekIndex), ArchiveError> {
        let s = &mut self.stream;
        s.advance(
            self.src,
            (self.start, self.src.len()),
            u64::MAX,
            &mut self.buf,
            &mut |_, _| {},
        )
        .await?;
        let at = self.start + s.in_pos;
        let trailer = self.src.read_at(at, 8).await?;
        if trailer.len() < 8 {
            return Err(corrupt("gzip: no trailer"));
        }
        let crc = s.crc.take().expect("a scan").finalize();
        let want_crc = u32::from_le_bytes(trailer[0..4].try_into().expect("4 bytes"));
        let want_len = u32::from_le_bytes(trailer[4..8].try_into().expect("4 bytes"));
        if crc != want_crc || s.out_pos as u32 != want_len {
            return Err(corrupt(format!(
                "gzip: CRC-32 {crc:08x} and length {} where the trailer says {want_crc:08x} and {want_len}",
                s.out_pos
            )));
        }
        let next = self.src.read_at(at + 8, 2).await?;
        if next.starts_with(&[0x1f, 0x8b]) {
            return Err(ArchiveError::Unsupported(
                "gzip files of several members".into(),
            ));
        }
        let index = SeekIndex {
            size: s.out_pos,
            crc,
            points: s
                .points
                .take()
                .map(SeekRecorder::into_points)
                .unwrap_or_default(),
        };
        Ok((self.start, index))
    }
}

#[async_trait]
impl ForwardInput for GzipScan<'_> {
    fn known_len(&self) -> Option<u64> {
        None
    }

    async fn read(&mut self, at: u64, len: u64) -> Result<Bytes, ArchiveError> {
        if at < self.kept_at {
            return Err(corrupt("gzip: read backwards during the scan"));
        }
        let drop = ((at - self.kept_at) as usize).min(self.kept.len());
        self.kept.drain(..drop);
        self.kept_at = at;
        let end = at.saturating_add(len);
        let (kept, kept_at) = (&mut self.kept, at);
        let s = &mut self.stream;
        s.advance(
            self.src,
            (self.start, self.src.len()),
            end,
            &mut self.buf,
            &mut |from, b| {
                let to = from + b.len() as u64;
                let lo = from.max(kept_at + kept.len() as u64);
                if to > lo {
                    kept.extend_from_slice(&b[(lo - from) as usize..]);
                }
            },
        )
        .await?;
        Ok(Bytes::copy_from_slice(
            &self.kept[..(len as usize).min(self.kept.len())],
        ))
    }
}

/// The uncompressed bytes of a deflate stream, as a ranged source: a scanned gzip file (with
/// its seek points), or a deflated member of a zip inside an artifact (no points: a reader
/// going on in order continues its stream, a jump back starts over).
pub struct InflatingSource {
    src: std::sync::Arc<dyn ByteSource>,
    start: u64,
    /// Where the compressed bytes end in `src`.
    end: u64,
    index: SeekIndex,
    streams: Mutex<Vec<Stream>>,
    inflated: AtomicU64,
}

impl InflatingSource {
    /// A scanned gzip file's bytes, its deflate stream starting at `start`.
    pub fn new(
        src: std::sync::Arc<dyn ByteSource>,
        start: u64,
        index: SeekIndex,
    ) -> InflatingSource {
        InflatingSource {
            end: src.len(),
            src,
            start,
            index,
            streams: Mutex::new(Vec::new()),
            inflated: AtomicU64::new(0),
        }
    }

    /// The `size` bytes the deflate stream at `start..end` of `src` inflates to.
    pub fn deflated(
        src: std::sync::Arc<dyn ByteSource>,
        start: u64,
        end: u64,
        size: u64,
    ) -> InflatingSource {
        let index = SeekIndex {
            size,
            ..Default::default()
        };
        InflatingSource {
            end: end.min(src.len()),
            ..InflatingSource::new(src, start, index)
        }
    }

    /// Bytes inflated by reads so far (what seek points save shows here).
    #[cfg(test)]
    pub fn inflated(&self) -> u64 {
        self.inflated.load(Ordering::Relaxed)
    }

    /// A stream that can reach `off` without passing a seek point it could start from.
    fn stream_for(&self, off: u64) -> Result<Stream, ArchiveError> {
        let point = self.index.before(off);
        let mut streams = self.streams.lock().unwrap();
        let usable = |s: &Stream| s.out_pos <= off && point.is_none_or(|p| p.out <= s.out_pos);
        if let Some(i) = streams.iter().position(usable) {
            return Ok(streams.swap_remove(i));
        }
        drop(streams);
        let fail = |m: String| corrupt(format!("gzip: {m}"));
        Ok(match point {
            Some(p) => Stream::new(p.inflater().map_err(fail)?, p.input, p.out, false),
            None => Stream::new(RawInflate::new().map_err(fail)?, 0, 0, false),
        })
    }

    async fn read(&self, off: u64, len: usize) -> Result<Bytes, ArchiveError> {
        let end = off.saturating_add(len as u64).min(self.index.size);
        if off >= end {
            return Ok(Bytes::new());
        }
        let mut s = self.stream_for(off)?;
        let before = s.out_pos;
        let mut buf = vec![0; OUT_CHUNK];
        let mut out = Vec::with_capacity((end - off) as usize);
        s.advance(
            self.src.as_ref(),
            (self.start, self.end),
            end,
            &mut buf,
            &mut |from, b| {
                let to = from + b.len() as u64;
                let (lo, hi) = (from.max(off), to.min(end));
                if hi > lo {
                    out.extend_from_slice(&b[(lo - from) as usize..(hi - from) as usize]);
                }
            },
        )
        .await?;
        self.inflated
            .fetch_add(s.out_pos - before, Ordering::Relaxed);
        if (out.len() as u64) < end - off {
            return Err(corrupt("gzip: shorter than when it was indexed"));
        }
        if !s.ended {
            let mut streams = self.streams.lock().unwrap();
            if streams.len() >= STREAMS_KEPT {
                streams.remove(0);
            }
            streams.push(s);
        }
        Ok(Bytes::from(out))
    }
}

#[async_trait]
impl ByteSource for InflatingSource {
    fn len(&self) -> u64 {
        self.index.size
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        self.read(offset, len).await.map_err(|e| match e {
            ArchiveError::Source(e) => e,
            e => SourceError::Integrity(e.to_string()),
        })
    }

    /// Drops the kept streams (one may have inflated the bad bytes) and the compressed bytes
    /// that output `offset..offset + len` is inflated from: from the seek point before it
    /// (the byte its block starts in) to the next point after it, or the stream's end.
    async fn forget(&self, offset: u64, len: u64) {
        self.streams.lock().unwrap().clear();
        let from = self
            .index
            .before(offset)
            .map_or(0, |p| p.input.saturating_sub(1));
        let upto = offset.saturating_add(len);
        let to = (self.index.points.iter())
            .find(|p| p.out >= upto)
            .map_or(self.end, |p| self.start + p.input);
        let from = self.start + from;
        self.src.forget(from, to.saturating_sub(from)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tar::read_tar_from;
    use crate::data::seek_index::SPAN;
    use crate::source::MemorySource;
    use std::io::Write;
    use std::sync::Arc;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, n, &d[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[tokio::test]
    async fn one_pass_indexes_and_a_read_inflates_at_most_a_span() {
        let files: Vec<(String, Vec<u8>)> = (0..24)
            .map(|i| {
                let text = fake_github::zipgen::log_text(1 << 20, i);
                (format!("f{i:02}.log"), text)
            })
            .collect();
        let tar = tar_of(&files);
        let gz = Arc::new(MemorySource(Bytes::from(gzip(&tar))));
        let mut scan = GzipScan::new(gz.as_ref()).await.unwrap();
        let members = read_tar_from(&mut scan).await.unwrap();
        assert_eq!(members.len(), 24);
        let (start, index) = scan.finish().await.unwrap();
        assert_eq!(index.size, tar.len() as u64);
        assert!(index.points.len() >= 4, "{} points", index.points.len());
        let src = InflatingSource::new(gz.clone(), start, index);
        for i in [17, 3, 23] {
            let m = &members[i];
            let before = src.inflated();
            let got = src.read_at(m.offset, m.size as usize).await.unwrap();
            assert!(got == files[i].1, "member {i}");
            let cost = src.inflated() - before;
            assert!(
                cost <= SPAN + m.size + OUT_CHUNK as u64,
                "member {i}: {cost} inflated"
            );
        }
        // A changed trailer is a corrupt archive.
        let mut bad = gzip(&tar);
        let n = bad.len();
        bad[n - 6] ^= 1;
        let bad = MemorySource(Bytes::from(bad));
        let mut scan = GzipScan::new(&bad).await.unwrap();
        read_tar_from(&mut scan).await.unwrap();
        assert!(matches!(scan.finish().await, Err(ArchiveError::Corrupt(_))));
    }

    #[tokio::test]
    async fn headers_with_names_and_extras_are_skipped() {
        let mut b = flate2::GzBuilder::new()
            .filename("x.tar")
            .comment("c")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), flate2::Compression::fast());
        b.write_all(b"hello").unwrap();
        let gz = MemorySource(Bytes::from(b.finish().unwrap()));
        let mut scan = GzipScan::new(&gz).await.unwrap();
        assert_eq!(&scan.read(0, 5).await.unwrap()[..], b"hello");
        assert_eq!(scan.finish().await.unwrap().1.size, 5);
        let not = MemorySource(Bytes::from_static(b"PK\x03\x04 not gzip"));
        assert!(GzipScan::new(&not).await.is_err());
    }
}
