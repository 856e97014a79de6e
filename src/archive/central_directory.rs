//! The zip central directory: finding it at the end of a blob and parsing it into entries.
//!
//! Why our own parser and not the `zip` crate: `zip::ZipArchive` wants `Read + Seek`, scans
//! backwards for the end record with no bound and reads the central directory in many tiny
//! reads (zip2 issue 266). Over HTTP every read is a request, so we do exactly this instead:
//! one ranged read of the blob's tail (the end record, a zip64 locator and record, and for
//! most artifacts the whole central directory), then at most one more ranged read of
//! exactly the central directory. Everything is parsed from memory, every offset from the
//! file is checked before use, and nothing is allocated from an untrusted count without a
//! bound from the bytes actually present. upload-artifact writes data descriptors (local
//! headers with zero sizes and CRC), so the central directory is the only truth we use.

use super::error::{ArchiveError, corrupt};
use crate::source::ByteSource;

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_LEN: usize = 46;
/// Largest end record (with a 65 535-byte comment) plus the zip64 locator and record.
pub const TAIL_LEN: u64 = (EOCD_LEN + 65_535 + ZIP64_LOCATOR_LEN + ZIP64_EOCD_LEN) as u64;
/// The most bytes a speculative tail read asks for.
pub const MAX_SPECULATIVE_TAIL: u64 = 512 << 10;

/// How much of a blob's end to read first: the end record's worst case, or more for bigger
/// archives (1/512 of the blob, at most [`MAX_SPECULATIVE_TAIL`]), so that the central
/// directory usually comes in the same request: one round trip instead of two, for at most
/// 0.2% of the archive's bytes.
pub fn tail_len_for(len: u64) -> u64 {
    len.min(TAIL_LEN.max((len / 512).min(MAX_SPECULATIVE_TAIL)))
}

/// A central directory bigger than this is refused (70 000 entries take about 7 MiB).
pub const MAX_CD_SIZE: u64 = 512 << 20;

/// One file or directory record of the central directory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZipEntry {
    /// Decoded name: UTF-8 when flagged or valid, else CP437.
    pub name: String,
    pub raw_name: Vec<u8>,
    pub version_made_by: u16,
    pub flags: u16,
    pub method: u16,
    pub dos_time: u16,
    pub dos_date: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub local_header_offset: u64,
    pub external_attributes: u32,
    /// From the extended-timestamp extra field (0x5455) when present.
    pub unix_mtime: Option<i64>,
    pub is_dir: bool,
}

impl ZipEntry {
    /// An entry named `name` (a directory when it ends in `/`), stored, made on Unix, with
    /// zero sizes, offsets and times: the start of one built by hand (trees in tests).
    pub fn named(name: &str) -> ZipEntry {
        ZipEntry {
            name: name.to_string(),
            raw_name: name.as_bytes().to_vec(),
            version_made_by: 3 << 8,
            flags: 0,
            method: 0,
            dos_time: 0,
            dos_date: 0,
            crc32: 0,
            compressed_size: 0,
            uncompressed_size: 0,
            local_header_offset: 0,
            external_attributes: 0,
            unix_mtime: None,
            is_dir: name.ends_with('/'),
        }
    }

    /// The Unix mode bits (type and permissions), when the archive was made on Unix.
    pub fn unix_mode(&self) -> Option<u32> {
        let mode = self.external_attributes >> 16;
        (self.version_made_by >> 8 == 3 && mode != 0).then_some(mode)
    }

    /// Whether the entry is a symlink (Unix mode `S_IFLNK`): its data is the link's target.
    pub fn is_symlink(&self) -> bool {
        self.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000)
    }

    /// Modification time in Unix seconds: the extended timestamp, else the DOS date and
    /// time read as UTC; 0 when neither is valid.
    pub fn mtime_unix(&self) -> i64 {
        self.unix_mtime
            .unwrap_or_else(|| dos_to_unix(self.dos_date, self.dos_time))
    }

    pub fn is_encrypted(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// Where the central directory is and what it holds.
#[derive(Clone, Debug)]
pub struct CentralDirectory {
    pub entries: Vec<ZipEntry>,
    pub cd_offset: u64,
    pub cd_size: u64,
    pub zip64: bool,
}

/// Little-endian reads that fail instead of panicking.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], pos: usize) -> Self {
        Reader { b, pos }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|s| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        })
    }
}

struct EndRecord {
    /// Position of the record in the blob.
    pos: u64,
    entries: u64,
    cd_size: u64,
    cd_offset: u64,
}

/// Reads and parses the central directory with one or two `read_at` calls (three for a
/// zip64 record outside the tail, which no normal writer produces).
pub async fn read_central_directory(
    src: &dyn ByteSource,
) -> Result<CentralDirectory, ArchiveError> {
    let len = src.len();
    if len < EOCD_LEN as u64 {
        return Err(corrupt(format!("{len} bytes is too short for a zip")));
    }
    let tail_len = tail_len_for(len);
    let tail_start = len - tail_len;
    let tail = src.read_at(tail_start, tail_len as usize).await?;
    if (tail.len() as u64) < tail_len {
        return Err(corrupt("archive shorter than its advertised size"));
    }
    let p = find_eocd(&tail).ok_or_else(|| corrupt("no end of central directory record"))?;
    let mut r = Reader::new(&tail, p + 4);
    let eocd = (|| {
        let _disk = r.u16()?;
        let _cd_disk = r.u16()?;
        let _here = r.u16()?;
        let entries = r.u16()?;
        let cd_size = r.u32()?;
        let cd_offset = r.u32()?;
        Some(EndRecord {
            pos: tail_start + p as u64,
            entries: entries as u64,
            cd_size: cd_size as u64,
            cd_offset: cd_offset as u64,
        })
    })()
    .ok_or_else(|| corrupt("truncated end record"))?;

    // A zip64 locator sits right before the end record.
    let mut zip64 = false;
    let mut end = eocd;
    if p >= ZIP64_LOCATOR_LEN {
        let mut l = Reader::new(&tail, p - ZIP64_LOCATOR_LEN);
        if l.u32() == Some(ZIP64_LOCATOR_SIG) {
            let _disk = l.u32();
            let rec_pos = l.u64().ok_or_else(|| corrupt("truncated zip64 locator"))?;
            let rec = if rec_pos >= tail_start
                && rec_pos - tail_start + ZIP64_EOCD_LEN as u64 <= tail_len
            {
                let s = (rec_pos - tail_start) as usize;
                tail.slice(s..s + ZIP64_EOCD_LEN)
            } else {
                if rec_pos
                    .checked_add(ZIP64_EOCD_LEN as u64)
                    .is_none_or(|e| e > len)
                {
                    return Err(corrupt(format!(
                        "zip64 record offset {rec_pos} past the end"
                    )));
                }
                src.read_at(rec_pos, ZIP64_EOCD_LEN).await?
            };
            let mut z = Reader::new(&rec, 0);
            if z.u32() != Some(ZIP64_EOCD_SIG) {
                return Err(corrupt(format!("no zip64 end record at {rec_pos}")));
            }
            let parsed = (|| {
                let _size = z.u64()?;
                let _made = z.u16()?;
                let _needed = z.u16()?;
                let _disk = z.u32()?;
                let _cd_disk = z.u32()?;
                let _here = z.u64()?;
                let entries = z.u64()?;
                let cd_size = z.u64()?;
                let cd_offset = z.u64()?;
                Some((entries, cd_size, cd_offset))
            })()
            .ok_or_else(|| corrupt("truncated zip64 end record"))?;
            end = EndRecord {
                pos: rec_pos,
                entries: parsed.0,
                cd_size: parsed.1,
                cd_offset: parsed.2,
            };
            zip64 = true;
        }
    }

    let cd_end = end
        .cd_offset
        .checked_add(end.cd_size)
        .ok_or_else(|| corrupt("central directory size overflows"))?;
    if cd_end > end.pos {
        return Err(corrupt(format!(
            "central directory {}..{cd_end} runs past its end record at {}",
            end.cd_offset, end.pos
        )));
    }
    if end.cd_size > MAX_CD_SIZE {
        return Err(ArchiveError::Unsupported(format!(
            "central directory of {} bytes",
            end.cd_size
        )));
    }
    let cd = if end.cd_offset >= tail_start {
        let s = (end.cd_offset - tail_start) as usize;
        tail.slice(s..s + end.cd_size as usize)
    } else {
        let b = src.read_at(end.cd_offset, end.cd_size as usize).await?;
        if (b.len() as u64) < end.cd_size {
            return Err(corrupt("central directory cut short"));
        }
        b
    };
    let entries = parse_central_directory(&cd, end.entries)?;
    // Entry offsets are checked when an entry is read, so one bad entry fails alone.
    Ok(CentralDirectory {
        entries,
        cd_offset: end.cd_offset,
        cd_size: end.cd_size,
        zip64,
    })
}

/// Position of the end record in `tail`: the last signature whose comment length reaches
/// exactly the end, else the last one whose comment fits.
fn find_eocd(tail: &[u8]) -> Option<usize> {
    if tail.len() < EOCD_LEN {
        return None;
    }
    let mut fallback = None;
    for p in (0..=tail.len() - EOCD_LEN).rev() {
        if tail[p..p + 4] != EOCD_SIG.to_le_bytes() {
            continue;
        }
        let clen = u16::from_le_bytes([tail[p + 20], tail[p + 21]]) as usize;
        let end = p + EOCD_LEN + clen;
        if end == tail.len() {
            return Some(p);
        }
        if end < tail.len() && fallback.is_none() {
            fallback = Some(p);
        }
    }
    fallback
}

/// Parses central directory records. `expected_entries` is the end record's count; a
/// directory that holds a different number of records is corrupt (writers that wrap the
/// 16-bit count past 65 535 are tolerated).
pub fn parse_central_directory(
    cd: &[u8],
    expected_entries: u64,
) -> Result<Vec<ZipEntry>, ArchiveError> {
    let bound = (cd.len() / CENTRAL_LEN) as u64;
    let mut out = Vec::with_capacity(expected_entries.min(bound) as usize);
    let mut r = Reader::new(cd, 0);
    while r.pos < cd.len() {
        if out.len() as u64 == expected_entries && cd.len() - r.pos < CENTRAL_LEN {
            break; // trailing padding
        }
        let at = r.pos;
        let e = parse_record(&mut r)
            .ok_or_else(|| corrupt(format!("bad central directory record at +{at}")))?;
        out.push(e?);
    }
    let n = out.len() as u64;
    if n != expected_entries && (n & 0xffff) != (expected_entries & 0xffff) {
        return Err(corrupt(format!(
            "central directory holds {n} entries, end record says {expected_entries}"
        )));
    }
    Ok(out)
}

fn parse_record(r: &mut Reader<'_>) -> Option<Result<ZipEntry, ArchiveError>> {
    if r.u32()? != CENTRAL_SIG {
        return None;
    }
    let version_made_by = r.u16()?;
    let _needed = r.u16()?;
    let flags = r.u16()?;
    let method = r.u16()?;
    let dos_time = r.u16()?;
    let dos_date = r.u16()?;
    let crc32 = r.u32()?;
    let csize32 = r.u32()?;
    let usize32 = r.u32()?;
    let name_len = r.u16()? as usize;
    let extra_len = r.u16()? as usize;
    let comment_len = r.u16()? as usize;
    let _disk = r.u16()?;
    let _internal = r.u16()?;
    let external_attributes = r.u32()?;
    let offset32 = r.u32()?;
    let raw_name = r.take(name_len)?.to_vec();
    let extra = r.take(extra_len)?;
    let _comment = r.take(comment_len)?;

    let mut compressed_size = csize32 as u64;
    let mut uncompressed_size = usize32 as u64;
    let mut local_header_offset = offset32 as u64;
    let mut unix_mtime = None;
    let mut x = Reader::new(extra, 0);
    while x.pos + 4 <= extra.len() {
        let (Some(id), Some(size)) = (x.u16(), x.u16()) else {
            break;
        };
        let Some(data) = x.take(size as usize) else {
            break; // a cut-off extra field: ignore the rest, as other readers do
        };
        let mut d = Reader::new(data, 0);
        match id {
            0x0001 => {
                if usize32 == u32::MAX {
                    match d.u64() {
                        Some(v) => uncompressed_size = v,
                        None => return Some(Err(corrupt("zip64 extra field too short"))),
                    }
                }
                if csize32 == u32::MAX {
                    match d.u64() {
                        Some(v) => compressed_size = v,
                        None => return Some(Err(corrupt("zip64 extra field too short"))),
                    }
                }
                if offset32 == u32::MAX {
                    match d.u64() {
                        Some(v) => local_header_offset = v,
                        None => return Some(Err(corrupt("zip64 extra field too short"))),
                    }
                }
            }
            0x5455 => {
                if let (Some(f), Some(t)) = (d.take(1), d.u32())
                    && f[0] & 1 != 0
                {
                    unix_mtime = Some(t as i32 as i64);
                }
            }
            _ => {}
        }
    }
    let name = decode_name(&raw_name, flags & (1 << 11) != 0);
    let mode = external_attributes >> 16;
    let is_dir = name.ends_with('/')
        || (uncompressed_size == 0
            && (name.ends_with('\\')
                || (external_attributes & 0x10 != 0 && version_made_by >> 8 == 0)
                || (version_made_by >> 8 == 3 && mode & 0o170000 == 0o040000)));
    Some(Ok(ZipEntry {
        name,
        raw_name,
        version_made_by,
        flags,
        method,
        dos_time,
        dos_date,
        crc32,
        compressed_size,
        uncompressed_size,
        local_header_offset,
        external_attributes,
        unix_mtime,
        is_dir,
    }))
}

/// UTF-8 when the flag says so or the bytes are valid UTF-8, else CP437 (the zip default).
pub fn decode_name(raw: &[u8], utf8_flag: bool) -> String {
    if utf8_flag {
        return String::from_utf8_lossy(raw).into_owned();
    }
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => raw.iter().map(|&b| cp437(b)).collect(),
    }
}

fn cp437(b: u8) -> char {
    const HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";
    if b < 0x80 {
        b as char
    } else {
        HIGH.chars().nth((b - 0x80) as usize).unwrap_or('?')
    }
}

/// DOS date and time (local time, taken as UTC) to Unix seconds; 0 when invalid.
pub fn dos_to_unix(date: u16, time: u16) -> i64 {
    let year = 1980 + (date >> 9) as i64;
    let month = ((date >> 5) & 0xf) as i64;
    let day = (date & 0x1f) as i64;
    let hour = (time >> 11) as i64;
    let min = ((time >> 5) & 0x3f) as i64;
    let sec = ((time & 0x1f) * 2) as i64;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 59 {
        return 0;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + min * 60 + sec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;
    use bytes::Bytes;
    use std::io::Write;

    fn zip_of(files: &[(&str, &[u8])], comment: &[u8], zip64: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(zip64)
            .unix_permissions(0o755);
        for (n, d) in files {
            w.start_file(*n, opts).unwrap();
            w.write_all(d).unwrap();
        }
        w.set_raw_comment(comment.to_vec().into());
        w.finish().unwrap().into_inner()
    }

    fn read(b: Vec<u8>) -> Result<CentralDirectory, ArchiveError> {
        let src = MemorySource(Bytes::from(b));
        futures::executor::block_on(read_central_directory(&src))
    }

    #[test]
    fn finds_the_end_record_behind_a_comment() {
        let z = zip_of(
            &[("a.txt", b"hello"), ("d/b.txt", b"")],
            b"PK\x05\x06 in comment",
            false,
        );
        let cd = read(z).unwrap();
        assert_eq!(cd.entries.len(), 2);
        assert_eq!(cd.entries[0].name, "a.txt");
        assert_eq!(cd.entries[0].uncompressed_size, 5);
        assert_eq!(cd.entries[0].crc32, crc32fast::hash(b"hello"));
        assert_eq!(cd.entries[1].unix_mode().map(|m| m & 0o777), Some(0o755));
        assert!(!cd.zip64);
    }

    #[test]
    fn reads_zip64_archives() {
        let z = zip_of(&[("big.bin", &[7u8; 1000])], b"", true);
        let cd = read(z).unwrap();
        assert_eq!(cd.entries[0].uncompressed_size, 1000);
    }

    #[test]
    fn rejects_garbage_and_bad_offsets() {
        assert!(read(vec![0; 10]).is_err());
        assert!(read(vec![0; 1000]).is_err());
        let mut z = zip_of(&[("a", b"x")], b"", false);
        let n = z.len();
        // Central directory offset past the end.
        z[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read(z), Err(ArchiveError::Corrupt(_))));
    }

    #[test]
    fn decodes_cp437_and_utf8_names() {
        assert_eq!(decode_name(b"caf\x82", false), "café");
        assert_eq!(decode_name("café".as_bytes(), false), "café");
        assert_eq!(decode_name("é".as_bytes(), true), "é");
    }

    #[test]
    fn converts_dos_times() {
        // 2024-02-29 13:37:42
        let date = ((2024 - 1980) << 9) | (2 << 5) | 29;
        let time = (13 << 11) | (37 << 5) | 21;
        assert_eq!(dos_to_unix(date, time), 1_709_213_862);
        assert_eq!(dos_to_unix(0, 0), 0);
    }
}
