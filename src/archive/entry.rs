//! Reading one zip entry: its local header (only for where the data starts; sizes and CRC
//! come from the central directory, since upload-artifact writes data descriptors), then its
//! compressed bytes in bounded chunks, inflated as they stream, CRC-32 checked at the end.
//!
//! Untrusted input rules: never write more than the declared uncompressed size (a zip bomb
//! that lies about its size stops there with an error), refuse declared ratios deflate cannot
//! produce, and treat encryption and unknown methods as unsupported.

use std::io::Write;

use flate2::{Decompress, FlushDecompress, Status};

use super::central_directory::ZipEntry;
use super::error::{ArchiveError, corrupt};
use crate::source::ByteSource;

const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;
/// Compressed bytes fetched per read.
pub const READ_CHUNK: usize = 1 << 20;
const OUT_CHUNK: usize = 256 << 10;
/// Deflate's best possible ratio is about 1032:1; anything declaring more is lying.
const MAX_RATIO: u64 = 1100;

pub const METHOD_STORED: u16 = 0;
pub const METHOD_DEFLATED: u16 = 8;

/// Offset of the entry's data in the archive.
pub async fn data_offset(src: &dyn ByteSource, entry: &ZipEntry) -> Result<u64, ArchiveError> {
    let h = src.read_at(entry.local_header_offset, LOCAL_LEN).await?;
    if h.len() < LOCAL_LEN || h[0..4] != LOCAL_SIG.to_le_bytes() {
        return Err(corrupt(format!(
            "{}: no local header at offset {}",
            entry.name, entry.local_header_offset
        )));
    }
    let name_len = u16::from_le_bytes([h[26], h[27]]) as u64;
    let extra_len = u16::from_le_bytes([h[28], h[29]]) as u64;
    let start = entry.local_header_offset + LOCAL_LEN as u64 + name_len + extra_len;
    let end = start
        .checked_add(entry.compressed_size)
        .ok_or_else(|| corrupt(format!("{}: size overflows", entry.name)))?;
    if end > src.len() {
        return Err(corrupt(format!(
            "{}: data {start}..{end} runs past the end of the archive ({})",
            entry.name,
            src.len()
        )));
    }
    Ok(start)
}

/// Checks what can be checked before reading any data.
pub fn check_readable(entry: &ZipEntry) -> Result<(), ArchiveError> {
    if entry.is_encrypted() {
        return Err(ArchiveError::Unsupported(format!(
            "{}: encrypted entry",
            entry.name
        )));
    }
    match entry.method {
        METHOD_STORED => {
            if entry.compressed_size != entry.uncompressed_size {
                return Err(corrupt(format!(
                    "{}: stored entry with compressed size {} != size {}",
                    entry.name, entry.compressed_size, entry.uncompressed_size
                )));
            }
        }
        METHOD_DEFLATED => {
            let limit = entry
                .compressed_size
                .saturating_mul(MAX_RATIO)
                .saturating_add(64 << 10);
            if entry.uncompressed_size > limit {
                return Err(corrupt(format!(
                    "{}: declared size {} impossible from {} deflated bytes",
                    entry.name, entry.uncompressed_size, entry.compressed_size
                )));
            }
        }
        m => {
            return Err(ArchiveError::Unsupported(format!(
                "{}: compression method {m}",
                entry.name
            )));
        }
    }
    Ok(())
}

/// Passes inflated bytes on: never past the declared size, CRC updated, count kept.
fn emit<W: Write>(
    entry: &ZipEntry,
    out: &mut W,
    crc: &mut crc32fast::Hasher,
    written: &mut u64,
    bytes: &[u8],
) -> Result<(), ArchiveError> {
    if *written + bytes.len() as u64 > entry.uncompressed_size {
        return Err(corrupt(format!(
            "{}: inflates past its declared size {}",
            entry.name, entry.uncompressed_size
        )));
    }
    crc.update(bytes);
    out.write_all(bytes)?;
    *written += bytes.len() as u64;
    Ok(())
}

/// Writes the entry's uncompressed bytes to `out`, exactly `uncompressed_size` of them, CRC
/// checked. Memory stays bounded (one read chunk plus one output chunk).
pub async fn extract_entry_to<W: Write + Send>(
    src: &dyn ByteSource,
    entry: &ZipEntry,
    out: &mut W,
) -> Result<u64, ArchiveError> {
    check_readable(entry)?;
    let start = data_offset(src, entry).await?;
    let mut crc = crc32fast::Hasher::new();
    let mut inflater = (entry.method == METHOD_DEFLATED).then(|| Decompress::new(false));
    let mut outbuf = vec![0u8; OUT_CHUNK];
    let mut read = 0u64;
    let mut written = 0u64;
    let mut finished = false;
    while read < entry.compressed_size && !finished {
        let n = (entry.compressed_size - read).min(READ_CHUNK as u64) as usize;
        let chunk = src.read_at(start + read, n).await?;
        if chunk.len() < n {
            return Err(corrupt(format!(
                "{}: compressed data cut short at {}",
                entry.name,
                read + chunk.len() as u64
            )));
        }
        read += n as u64;
        match inflater.as_mut() {
            None => {
                crc.update(&chunk);
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
            }
            Some(z) => {
                let mut input: &[u8] = &chunk;
                loop {
                    let before_in = z.total_in();
                    let before_out = z.total_out();
                    let status = z
                        .decompress(input, &mut outbuf, FlushDecompress::None)
                        .map_err(|e| corrupt(format!("{}: inflate: {e}", entry.name)))?;
                    let used = (z.total_in() - before_in) as usize;
                    let made = (z.total_out() - before_out) as usize;
                    input = &input[used..];
                    emit(entry, out, &mut crc, &mut written, &outbuf[..made])?;
                    if status == Status::StreamEnd {
                        finished = true;
                        break;
                    }
                    if used == 0 && made == 0 {
                        if input.is_empty() {
                            break; // needs the next chunk
                        }
                        return Err(corrupt(format!("{}: inflate made no progress", entry.name)));
                    }
                    if input.is_empty() && made < outbuf.len() {
                        break;
                    }
                }
            }
        }
    }
    // A deflate stream may still hold output after the last input byte.
    if let Some(z) = inflater.as_mut() {
        while !finished {
            let before_out = z.total_out();
            let status = z
                .decompress(&[], &mut outbuf, FlushDecompress::Finish)
                .map_err(|e| corrupt(format!("{}: inflate: {e}", entry.name)))?;
            let made = (z.total_out() - before_out) as usize;
            emit(entry, out, &mut crc, &mut written, &outbuf[..made])?;
            if status == Status::StreamEnd {
                finished = true;
            } else if made == 0 {
                if entry.compressed_size == 0 && entry.uncompressed_size == 0 {
                    break; // an empty entry with no deflate stream at all
                }
                return Err(corrupt(format!(
                    "{}: deflate stream ends early",
                    entry.name
                )));
            }
        }
    }
    if written != entry.uncompressed_size {
        return Err(corrupt(format!(
            "{}: {written} bytes, central directory says {}",
            entry.name, entry.uncompressed_size
        )));
    }
    let got = crc.finalize();
    if got != entry.crc32 {
        return Err(corrupt(format!(
            "{}: CRC-32 {got:08x}, central directory says {:08x}",
            entry.name, entry.crc32
        )));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::central_directory::read_central_directory;
    use crate::source::MemorySource;
    use bytes::Bytes;
    use futures::executor::block_on;

    fn zip_one(name: &str, data: &[u8], method: zip::CompressionMethod) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file(name, opts).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().into_inner()
    }

    fn extract(z: &[u8], patch: impl FnOnce(&mut ZipEntry)) -> Result<Vec<u8>, ArchiveError> {
        let src = MemorySource(Bytes::from(z.to_vec()));
        let cd = block_on(read_central_directory(&src)).unwrap();
        let mut e = cd.entries[0].clone();
        patch(&mut e);
        let mut out = Vec::new();
        block_on(extract_entry_to(&src, &e, &mut out)).map(|_| out)
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"lazy zip reading\n"[i % 17]).collect()
    }

    #[test]
    fn extracts_stored_and_deflated_across_chunks() {
        let data = text(3 * READ_CHUNK + 123);
        for m in [
            zip::CompressionMethod::Stored,
            zip::CompressionMethod::Deflated,
        ] {
            let z = zip_one("a.txt", &data, m);
            assert_eq!(extract(&z, |_| {}).unwrap(), data, "{m:?}");
        }
        let z = zip_one("e", b"", zip::CompressionMethod::Deflated);
        assert_eq!(extract(&z, |_| {}).unwrap(), b"");
    }

    #[test]
    fn a_lying_size_stops_at_the_declared_size() {
        let z = zip_one(
            "bomb",
            &vec![0u8; 1 << 20],
            zip::CompressionMethod::Deflated,
        );
        let r = extract(&z, |e| e.uncompressed_size = 1000);
        assert!(matches!(r, Err(ArchiveError::Corrupt(_))), "{r:?}");
        let r = extract(&z, |e| e.uncompressed_size = 1 << 40);
        assert!(matches!(r, Err(ArchiveError::Corrupt(_))), "{r:?}");
    }

    #[test]
    fn bad_crc_encryption_and_unknown_methods_are_refused() {
        let z = zip_one("a", b"hello", zip::CompressionMethod::Deflated);
        assert!(matches!(
            extract(&z, |e| e.crc32 ^= 1),
            Err(ArchiveError::Corrupt(_))
        ));
        assert!(matches!(
            extract(&z, |e| e.flags |= 1),
            Err(ArchiveError::Unsupported(_))
        ));
        assert!(matches!(
            extract(&z, |e| e.method = 99),
            Err(ArchiveError::Unsupported(_))
        ));
        assert!(matches!(
            extract(&z, |e| e.local_header_offset = 3),
            Err(ArchiveError::Corrupt(_))
        ));
        assert!(matches!(
            extract(&z, |e| e.compressed_size = 1 << 40),
            Err(ArchiveError::Corrupt(_))
        ));
        assert_eq!(
            crate::error::ToErrno::errno(&ArchiveError::Unsupported("x".into())),
            libc::ENOTSUP
        );
    }
}
