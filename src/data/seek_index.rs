//! Seek points of a deflated entry (zlib's zran.c idea): while an entry is inflated from the
//! start, every [`SPAN`] of output at the next deflate block boundary, note where that block
//! starts in the compressed bytes (to the bit) and the 32 KiB of output before it. A read
//! anywhere then inflates from the nearest point before it, at most one span, never from the
//! start. Points are kept only from a stream that ended with the right CRC-32, and are
//! stored in the cache beside the entry (a 32 KiB window per 4 MiB of output: under 1%).

use super::raw_inflate::{RawInflate, WINDOW};

/// Output between seek points.
pub const SPAN: u64 = 4 << 20;

const MAGIC: &[u8; 8] = b"AFSEEK1\n";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeekPoint {
    /// Uncompressed offset of the block.
    pub out: u64,
    /// Compressed bytes before it (the block starts `bits` bits before this offset).
    pub input: u64,
    pub bits: u8,
    /// The compressed byte at `input - 1` (whose high `bits` bits start the block).
    pub byte: u8,
    /// The output just before `out` (up to 32 KiB).
    pub window: Vec<u8>,
}

impl SeekPoint {
    /// An inflater positioned at this point.
    pub fn inflater(&self) -> Result<RawInflate, String> {
        RawInflate::resume(self.bits, self.byte, &self.window)
    }
}

/// An entry's seek points, in output order, for an entry of `size` bytes with `crc`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeekIndex {
    pub size: u64,
    pub crc: u32,
    pub points: Vec<SeekPoint>,
}

impl SeekIndex {
    /// The last point at or before `off` (none: start from the beginning).
    pub fn before(&self, off: u64) -> Option<&SeekPoint> {
        let i = self.points.partition_point(|p| p.out <= off);
        i.checked_sub(1).map(|i| &self.points[i])
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(24 + self.points.len() * (WINDOW + 24));
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.size.to_le_bytes());
        b.extend_from_slice(&self.crc.to_le_bytes());
        b.extend_from_slice(&(self.points.len() as u32).to_le_bytes());
        for p in &self.points {
            b.extend_from_slice(&p.out.to_le_bytes());
            b.extend_from_slice(&p.input.to_le_bytes());
            b.push(p.bits);
            b.push(p.byte);
            b.extend_from_slice(&(p.window.len() as u32).to_le_bytes());
            b.extend_from_slice(&p.window);
        }
        b
    }

    /// Reads what [`SeekIndex::encode`] wrote; `None` for anything else (a torn or foreign
    /// file is simply not used).
    pub fn decode(b: &[u8]) -> Option<SeekIndex> {
        let mut r = Reader(b);
        if r.take(8)? != MAGIC {
            return None;
        }
        let size = r.u64()?;
        let crc = r.u32()?;
        let n = r.u32()? as usize;
        let mut points = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let out = r.u64()?;
            let input = r.u64()?;
            let bits = r.take(1)?[0];
            let byte = r.take(1)?[0];
            let len = r.u32()? as usize;
            if len > WINDOW || bits > 7 {
                return None;
            }
            let window = r.take(len)?.to_vec();
            points.push(SeekPoint {
                out,
                input,
                bits,
                byte,
                window,
            });
        }
        (r.0.is_empty() && points.windows(2).all(|w| w[0].out < w[1].out)).then_some(SeekIndex {
            size,
            crc,
            points,
        })
    }
}

/// Records seek points while a stream inflates from the start: it is shown every piece of
/// output ([`SeekRecorder::output`]) and every block boundary ([`SeekRecorder::boundary`]),
/// and keeps a point every [`SPAN`] of output with the [`WINDOW`] of output before it. The one
/// recorder of deflated zip entries and gzip files alike.
#[derive(Default)]
pub struct SeekRecorder {
    points: Vec<SeekPoint>,
    /// The last output (at least [`WINDOW`] of it once there is that much).
    history: Vec<u8>,
}

impl SeekRecorder {
    /// Takes output the stream just produced.
    pub fn output(&mut self, produced: &[u8]) {
        self.history.extend_from_slice(produced);
        if self.history.len() > 4 * WINDOW {
            self.history.drain(..self.history.len() - WINDOW);
        }
    }

    /// At a deflate block boundary, after `out` bytes of output and `input` compressed bytes
    /// (the block starts `bits` bits before `input`, in the compressed byte `byte`): a seek
    /// point if a span has passed since the last one.
    pub fn boundary(&mut self, out: u64, input: u64, bits: u8, byte: u8) {
        if out < self.points.last().map_or(0, |p| p.out) + SPAN {
            return;
        }
        let w = self.history.len().saturating_sub(WINDOW);
        self.points.push(SeekPoint {
            out,
            input,
            bits,
            byte,
            window: self.history[w..].to_vec(),
        });
    }

    /// The points recorded.
    pub fn into_points(self) -> Vec<SeekPoint> {
        self.points
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_finds_the_point_before() {
        let p = |out| SeekPoint {
            out,
            input: out / 4,
            bits: 3,
            byte: 0xA5,
            window: vec![out as u8; 100],
        };
        let idx = SeekIndex {
            size: 20 << 20,
            crc: 7,
            points: vec![p(4 << 20), p(8 << 20)],
        };
        let b = idx.encode();
        assert_eq!(SeekIndex::decode(&b), Some(idx.clone()));
        assert_eq!(SeekIndex::decode(&b[..b.len() - 1]), None, "torn");
        assert!(idx.before(100).is_none());
        assert_eq!(idx.before(4 << 20).unwrap().out, 4 << 20);
        assert_eq!(idx.before((8 << 20) + 5).unwrap().out, 8 << 20);
    }
}
