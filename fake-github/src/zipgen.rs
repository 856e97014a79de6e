//! Builds zip archives the way `actions/upload-artifact` writes them: local headers with bit 3
//! (data descriptor) set and zero CRC/sizes, no directory entries, zip64 records only when a
//! size, an offset or the entry count needs them, the UTF-8 flag only on non-ASCII names.
//!
//! Switches produce the other shapes tests need (no data descriptors, forced zip64, explicit
//! directory entries, raw name bytes). Written here rather than with the `zip` crate's writer
//! because that writer cannot produce upload-artifact's exact layout (data descriptors on
//! seekable output, zip64 only when needed) and tests need byte-level control.

use std::io::Write;

use flate2::Compression;
use flate2::write::DeflateEncoder;

/// How an entry's bytes are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    Stored,
    #[default]
    Deflated,
}

/// Per-entry options.
#[derive(Clone, Debug, Default)]
pub struct EntryOptions {
    pub method: Method,
    /// Full `st_mode` (e.g. `0o100755`); written as Unix external attributes when set.
    pub unix_mode: Option<u32>,
    /// MS-DOS (time, date); default 2024-05-01 12:00:00.
    pub mtime: Option<(u16, u16)>,
}

impl EntryOptions {
    /// Stored (no compression), otherwise the defaults.
    pub fn stored() -> Self {
        EntryOptions {
            method: Method::Stored,
            ..Default::default()
        }
    }
}

struct Entry {
    name: Vec<u8>,
    method: Method,
    unix_mode: Option<u32>,
    dos_time: u16,
    dos_date: u16,
    crc: u32,
    compressed: Vec<u8>,
    uncompressed_size: u64,
    dir: bool,
}

impl Entry {
    fn method_code(&self) -> u16 {
        match self.method {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// An archive under construction; [`ZipBuilder::finish`] lays it out.
pub struct ZipBuilder {
    entries: Vec<Entry>,
    data_descriptors: bool,
    force_zip64: bool,
}

impl Default for ZipBuilder {
    fn default() -> Self {
        ZipBuilder::new()
    }
}

const DEFAULT_DOS_TIME: u16 = 12 << 11; // 12:00:00
const DEFAULT_DOS_DATE: u16 = ((2024 - 1980) << 9) | (5 << 5) | 1; // 2024-05-01

impl ZipBuilder {
    pub fn new() -> Self {
        ZipBuilder {
            entries: Vec::new(),
            data_descriptors: true,
            force_zip64: false,
        }
    }

    /// Whether local headers defer CRC and sizes to a data descriptor (upload-artifact: yes).
    pub fn data_descriptors(mut self, on: bool) -> Self {
        self.data_descriptors = on;
        self
    }

    /// Writes zip64 extra fields and end records even when nothing needs them.
    pub fn force_zip64(mut self, on: bool) -> Self {
        self.force_zip64 = on;
        self
    }

    /// Adds a deflated file.
    pub fn add(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add_with(name, data, EntryOptions::default())
    }

    pub fn add_with(&mut self, name: &str, data: &[u8], opts: EntryOptions) -> &mut Self {
        self.add_raw_name(name.as_bytes(), data, opts)
    }

    /// Adds a file whose name is written as these exact bytes (hostile-name tests).
    pub fn add_raw_name(&mut self, name: &[u8], data: &[u8], opts: EntryOptions) -> &mut Self {
        let compressed = match opts.method {
            Method::Stored => data.to_vec(),
            Method::Deflated => {
                let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
                enc.write_all(data).expect("deflate into memory");
                enc.finish().expect("deflate into memory")
            }
        };
        let (dos_time, dos_date) = opts.mtime.unwrap_or((DEFAULT_DOS_TIME, DEFAULT_DOS_DATE));
        self.entries.push(Entry {
            name: name.to_vec(),
            method: opts.method,
            unix_mode: opts.unix_mode,
            dos_time,
            dos_date,
            crc: crc32fast::hash(data),
            compressed,
            uncompressed_size: data.len() as u64,
            dir: false,
        });
        self
    }

    /// Adds a deflated file whose deflate stream is already made (`compressed`), with the
    /// CRC-32 and length of what it inflates to: big entries made cheaply (see
    /// [`deflate_repeated`]).
    pub fn add_deflated(
        &mut self,
        name: &str,
        compressed: Vec<u8>,
        crc: u32,
        size: u64,
    ) -> &mut Self {
        self.entries.push(Entry {
            name: name.as_bytes().to_vec(),
            method: Method::Deflated,
            unix_mode: None,
            dos_time: DEFAULT_DOS_TIME,
            dos_date: DEFAULT_DOS_DATE,
            crc,
            compressed,
            uncompressed_size: size,
            dir: false,
        });
        self
    }

    /// Adds an explicit directory entry (`name/`), which upload-artifact never writes.
    pub fn add_dir(&mut self, name: &str) -> &mut Self {
        let mut n = name.trim_end_matches('/').as_bytes().to_vec();
        n.push(b'/');
        self.entries.push(Entry {
            name: n,
            method: Method::Stored,
            unix_mode: Some(0o040755),
            dos_time: DEFAULT_DOS_TIME,
            dos_date: DEFAULT_DOS_DATE,
            crc: 0,
            compressed: Vec::new(),
            uncompressed_size: 0,
            dir: true,
        });
        self
    }

    /// General-purpose flags: bit 3 (data descriptor) as configured, bit 11 (UTF-8) only
    /// for non-ASCII names.
    fn flags(&self, e: &Entry) -> u16 {
        let mut flags = 0u16;
        if self.data_descriptors && !e.dir {
            flags |= 1 << 3;
        }
        if !e.name.is_ascii() {
            flags |= 1 << 11;
        }
        flags
    }

    /// Lays the archive out: local headers and data (and descriptors), central directory,
    /// zip64 end records when needed, end of central directory.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offsets = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let offset = out.len() as u64;
            offsets.push(offset);
            let big =
                e.uncompressed_size >= 0xFFFF_FFFF || e.compressed.len() as u64 >= 0xFFFF_FFFF;
            let zip64 = self.force_zip64 || big;
            let flags = self.flags(e);
            let method = e.method_code();
            let version_needed: u16 = if zip64 { 45 } else { 20 };
            let (crc, csize, usize_) = if flags & (1 << 3) != 0 {
                (0, 0, 0)
            } else if zip64 {
                (e.crc, 0xFFFF_FFFF, 0xFFFF_FFFF)
            } else {
                (e.crc, e.compressed.len() as u32, e.uncompressed_size as u32)
            };
            let mut extra = Vec::new();
            if zip64 {
                // Local zip64 extra: both sizes (zero when a descriptor follows).
                extra.extend_from_slice(&1u16.to_le_bytes());
                extra.extend_from_slice(&16u16.to_le_bytes());
                let (u, c) = if flags & (1 << 3) != 0 {
                    (0, 0)
                } else {
                    (e.uncompressed_size, e.compressed.len() as u64)
                };
                extra.extend_from_slice(&u.to_le_bytes());
                extra.extend_from_slice(&c.to_le_bytes());
            }
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&version_needed.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&e.dos_time.to_le_bytes());
            out.extend_from_slice(&e.dos_date.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&csize.to_le_bytes());
            out.extend_from_slice(&usize_.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&extra);
            out.extend_from_slice(&e.compressed);
            if flags & (1 << 3) != 0 {
                out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
                out.extend_from_slice(&e.crc.to_le_bytes());
                if zip64 {
                    out.extend_from_slice(&(e.compressed.len() as u64).to_le_bytes());
                    out.extend_from_slice(&e.uncompressed_size.to_le_bytes());
                } else {
                    out.extend_from_slice(&(e.compressed.len() as u32).to_le_bytes());
                    out.extend_from_slice(&(e.uncompressed_size as u32).to_le_bytes());
                }
            }
        }

        let cd_offset = out.len() as u64;
        for (e, &offset) in self.entries.iter().zip(&offsets) {
            let csize = e.compressed.len() as u64;
            let mut z64 = Vec::new();
            let field = |v: u64, z64: &mut Vec<u8>| -> u32 {
                if self.force_zip64 || v >= 0xFFFF_FFFF {
                    z64.extend_from_slice(&v.to_le_bytes());
                    0xFFFF_FFFF
                } else {
                    v as u32
                }
            };
            // Order in the zip64 extra is fixed: uncompressed, compressed, offset.
            let u32_usize = field(e.uncompressed_size, &mut z64);
            let u32_csize = field(csize, &mut z64);
            let u32_offset = field(offset, &mut z64);
            let mut extra = Vec::new();
            if !z64.is_empty() {
                extra.extend_from_slice(&1u16.to_le_bytes());
                extra.extend_from_slice(&(z64.len() as u16).to_le_bytes());
                extra.extend_from_slice(&z64);
            }
            let flags = self.flags(e);
            let method = e.method_code();
            let version_needed: u16 = if z64.is_empty() { 20 } else { 45 };
            let (made_by, external) = match e.unix_mode {
                Some(mode) => (
                    (3u16 << 8) | 45,
                    (mode << 16) | if e.dir { 0x10 } else { 0 },
                ),
                None => (45u16, if e.dir { 0x10 } else { 0 }),
            };
            out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            out.extend_from_slice(&made_by.to_le_bytes());
            out.extend_from_slice(&version_needed.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&e.dos_time.to_le_bytes());
            out.extend_from_slice(&e.dos_date.to_le_bytes());
            out.extend_from_slice(&e.crc.to_le_bytes());
            out.extend_from_slice(&u32_csize.to_le_bytes());
            out.extend_from_slice(&u32_usize.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // comment
            out.extend_from_slice(&0u16.to_le_bytes()); // disk
            out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            out.extend_from_slice(&external.to_le_bytes());
            out.extend_from_slice(&u32_offset.to_le_bytes());
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&extra);
        }
        let cd_size = out.len() as u64 - cd_offset;
        let count = self.entries.len() as u64;
        let need64 = self.force_zip64
            || count >= 0xFFFF
            || cd_offset >= 0xFFFF_FFFF
            || cd_size >= 0xFFFF_FFFF;
        if need64 {
            let record = out.len() as u64;
            out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&cd_size.to_le_bytes());
            out.extend_from_slice(&cd_offset.to_le_bytes());
            out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&record.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        let clamp16 = |v: u64| if need64 { 0xFFFF } else { v as u16 };
        let clamp32 = |v: u64| if need64 { 0xFFFF_FFFF } else { v as u32 };
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&clamp16(count).to_le_bytes());
        out.extend_from_slice(&clamp16(count).to_le_bytes());
        out.extend_from_slice(&clamp32(cd_size).to_le_bytes());
        out.extend_from_slice(&clamp32(cd_offset).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

/// A deflate stream of `pieces` (each `(bytes, times)`: those bytes repeated), its CRC-32
/// and length, made cheaply: each piece is compressed once, on its own (a full flush: no
/// reference reaches before it), so its compressed bytes can simply be repeated. Tens of
/// MiB of log cost the compression of one piece.
pub fn deflate_repeated(pieces: &[(&[u8], usize)]) -> (Vec<u8>, u32, u64) {
    use flate2::{Compress, FlushCompress};
    let mut out = Vec::new();
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for (data, times) in pieces.iter().filter(|(d, t)| !d.is_empty() && *t > 0) {
        let mut c = Compress::new(Compression::default(), false);
        let mut piece = Vec::with_capacity(data.len() / 2 + 64);
        loop {
            let at = c.total_in() as usize;
            piece.reserve(64 * 1024);
            c.compress_vec(&data[at..], &mut piece, FlushCompress::Full)
                .expect("deflate into memory");
            if c.total_in() as usize == data.len() && piece.len() < piece.capacity() {
                break;
            }
        }
        let mut one = crc32fast::Hasher::new();
        one.update(data);
        for _ in 0..*times {
            out.extend_from_slice(&piece);
            crc.combine(&one);
        }
        len += data.len() as u64 * *times as u64;
    }
    out.extend_from_slice(&[0x03, 0x00]); // an empty final block (fixed Huffman)
    (out, crc.finalize(), len)
}

/// Deterministic pseudo-random bytes (xorshift), for generated content.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text that compresses like a log file: numbered lines with some variety.
pub fn log_text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 80);
    let mut i = 0u64;
    while out.len() < len {
        let r = seed.wrapping_add(i).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        out.extend_from_slice(
            format!(
                "{i:08} [{}] step {} took {} ms\n",
                ["INFO", "DEBUG", "WARN"][(r % 3) as usize],
                r % 97,
                r % 1000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// A generated upload-artifact-style archive for benchmarks: `files` deflated log files of
/// `file_size` bytes under `logs/NNNN/`, plus optionally one stored entry of pseudo-random bytes
/// (`big.bin`) of the given size.
pub fn generated_zip(
    files: usize,
    file_size: usize,
    big_stored_entry: Option<usize>,
    seed: u64,
) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    for i in 0..files {
        z.add(
            &format!("logs/{:04}/file-{i}.log", i / 100),
            &log_text(file_size, seed ^ i as u64),
        );
    }
    if let Some(n) = big_stored_entry {
        z.add_with("big.bin", &noise(n, seed), EntryOptions::stored());
    }
    z.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    fn read_all(zip: &[u8]) -> Vec<(String, Vec<u8>, Option<u32>)> {
        let mut a = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        (0..a.len())
            .map(|i| {
                let mut f = a.by_index(i).unwrap();
                let mut v = Vec::new();
                f.read_to_end(&mut v).unwrap();
                (f.name().to_string(), v, f.unix_mode())
            })
            .collect()
    }

    #[test]
    fn the_zip_crate_reads_every_shape_back() {
        let text = log_text(100_000, 1);
        let bin = noise(5000, 2);
        for (dd, z64) in [(true, false), (false, false), (true, true), (false, true)] {
            let mut z = ZipBuilder::new().data_descriptors(dd).force_zip64(z64);
            z.add("a/log.txt", &text);
            z.add_with(
                "bin/tool",
                &bin,
                EntryOptions {
                    method: Method::Stored,
                    unix_mode: Some(0o100755),
                    ..Default::default()
                },
            );
            z.add("empty", b"");
            z.add("r\u{e9}sum\u{e9}.txt", b"u");
            z.add_dir("d");
            let got = read_all(&z.finish());
            assert_eq!(got.len(), 5, "dd={dd} z64={z64}");
            assert_eq!(got[0].1, text);
            assert_eq!(got[1].1, bin);
            assert_eq!(got[1].2, Some(0o100755));
            assert!(got[2].1.is_empty());
            assert_eq!(got[3].0, "r\u{e9}sum\u{e9}.txt");
            assert_eq!(got[4].0, "d/");
        }
    }

    #[test]
    fn upload_artifact_layout() {
        let mut z = ZipBuilder::new();
        z.add("x.txt", b"hello");
        let b = z.finish();
        // Local header: bit 3 set, CRC and sizes zero.
        assert_eq!(&b[..4], &[0x50, 0x4b, 0x03, 0x04]);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]) & 8, 8);
        assert_eq!(&b[14..26], &[0; 12]);
        // No zip64 end records when nothing needs them.
        assert!(!b.windows(4).any(|w| w == [0x50, 0x4b, 0x06, 0x06]));
    }

    #[test]
    fn generated_archives_are_deterministic() {
        assert_eq!(
            generated_zip(3, 100, Some(1000), 9),
            generated_zip(3, 100, Some(1000), 9)
        );
        assert_eq!(read_all(&generated_zip(3, 100, Some(1000), 9)).len(), 4);
    }
}
