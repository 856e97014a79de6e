//! A tar archive's index, read header by header over any ranged byte source: ranged reads of
//! the headers only (in small batches, so a run of small files costs one read), never the
//! members' data. Header fields are decoded by the `tar` crate (`tar::Header`: old-style,
//! ustar and GNU headers, base-256 sizes; `tar::PaxExtensions` for pax records); this module
//! only walks from header to header and applies the records that change the next member:
//! pax `path`, `linkpath`, `size` and `mtime`, GNU long names and long link names.
//!
//! What a member becomes ([`Member`]): a regular file with the offset of its bytes; a
//! directory; a symlink with its target as recorded (whether it may be shown as a link is
//! the tree's business, [`super::inner`]); a hard link is a file with its target's bytes (the
//! last member of that name before it), or an empty file when there is none; devices, fifos
//! and sparse files are empty files. Untrusted input: every header's checksum is checked,
//! offsets are checked against the source's length, extension records are bounded, and the
//! member count is bounded; anything wrong is [`ArchiveError::Corrupt`].

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;

use super::error::{ArchiveError, corrupt};
use super::tree::sanitize_components;
use crate::source::ByteSource;

const BLOCK: u64 = 512;
/// Bytes read at a time while walking headers (a run of small members comes in one read).
const BATCH: u64 = 16 << 10;
/// The longest pax record or GNU long name we accept.
const MAX_EXTENSION: u64 = 1 << 20;
/// The most members an index holds.
pub const MAX_MEMBERS: usize = 4 << 20;

/// What a member is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberKind {
    /// Bytes `offset..offset + size` of the archive.
    File,
    Dir,
    /// A symbolic link and its target, as recorded.
    Symlink(String),
    /// A device, a fifo, a sparse file or a dangling hard link: shown as an empty file.
    Empty,
}

/// One member of an inner archive, as the tree and the reader need it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The name as recorded (lossy UTF-8).
    pub name: String,
    pub kind: MemberKind,
    /// Permission bits as recorded (type bits removed).
    pub mode: u32,
    /// Unix seconds.
    pub mtime: i64,
    /// Uncompressed size (0 but for files).
    pub size: u64,
    /// Where the bytes start in the archive (files).
    pub offset: u64,
}

/// The extension records that apply to the next member.
#[derive(Default)]
struct Pending {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
    mtime: Option<i64>,
}

/// Bytes of an archive read front to back: `at` never decreases from one call to the next.
/// A tar inside a gzip stream is indexed through one (the stream's length is known only at
/// its end); a stored one through [`Batches`].
#[async_trait]
pub trait ForwardInput: Send {
    /// The length, when known before the end is reached.
    fn known_len(&self) -> Option<u64>;
    /// `len` bytes at `at`; fewer only at the end.
    async fn read(&mut self, at: u64, len: u64) -> Result<Bytes, ArchiveError>;
}

/// Reads a ranged source in batches: a request a batch already holds costs nothing.
pub struct Batches<'a> {
    src: &'a dyn ByteSource,
    at: u64,
    buf: Bytes,
}

impl<'a> Batches<'a> {
    pub fn new(src: &'a dyn ByteSource) -> Batches<'a> {
        Batches {
            src,
            at: 0,
            buf: Bytes::new(),
        }
    }
}

#[async_trait]
impl ForwardInput for Batches<'_> {
    fn known_len(&self) -> Option<u64> {
        Some(self.src.len())
    }

    async fn read(&mut self, at: u64, len: u64) -> Result<Bytes, ArchiveError> {
        let end = at
            .checked_add(len)
            .ok_or_else(|| corrupt("tar offset overflows"))?
            .min(self.src.len());
        if at >= end {
            return Ok(Bytes::new());
        }
        if at < self.at || end > self.at + self.buf.len() as u64 {
            let want = (end - at).max(BATCH).min(self.src.len() - at);
            self.buf = self.src.read_at(at, want as usize).await?;
            self.at = at;
        }
        let from = (at - self.at) as usize;
        let to = ((end - self.at) as usize).min(self.buf.len());
        Ok(self.buf.slice(from.min(to)..to))
    }
}

/// Exactly `len` bytes at `at`, or a corrupt archive.
async fn exactly(input: &mut dyn ForwardInput, at: u64, len: u64) -> Result<Bytes, ArchiveError> {
    let b = input.read(at, len).await?;
    if (b.len() as u64) < len {
        return Err(corrupt(format!(
            "tar: cut short at {}",
            at + b.len() as u64
        )));
    }
    Ok(b)
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Whether these 512 bytes are a tar header whose checksum holds (old-style headers have no
/// magic: the checksum is the only test). Used to tell a tar from other bytes.
pub fn is_tar_header(block: &[u8]) -> bool {
    block.len() >= BLOCK as usize
        && block[..BLOCK as usize].iter().any(|&b| b != 0)
        && checksum_ok(tar::Header::from_byte_slice(&block[..BLOCK as usize]))
}

fn checksum_ok(h: &tar::Header) -> bool {
    let Ok(want) = h.cksum() else {
        return false;
    };
    let b = h.as_bytes();
    // The checksum field (bytes 148..156) counts as spaces; old tars summed signed bytes.
    let unsigned: u32 = b
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                x as u32
            }
        })
        .sum();
    let signed: i32 = b
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                x as i8 as i32
            }
        })
        .sum();
    want == unsigned || want as i32 == signed
}

fn pax(pending: &mut Pending, data: &[u8]) -> Result<(), ArchiveError> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.map_err(|e| corrupt(format!("tar: pax record: {e}")))?;
        let value = || String::from_utf8_lossy(ext.value_bytes()).into_owned();
        match ext.key_bytes() {
            b"path" => pending.path = Some(value()),
            b"linkpath" => pending.link = Some(value()),
            b"size" => {
                let v = value();
                let size = v
                    .trim()
                    .parse()
                    .map_err(|_| corrupt(format!("tar: pax size {v:?}")))?;
                pending.size = Some(size);
            }
            b"mtime" => {
                let v = value();
                // Seconds with an optional fraction (and sign).
                let whole = v.trim().split('.').next().unwrap_or("");
                pending.mtime = whole.parse().ok();
            }
            _ => {}
        }
    }
    Ok(())
}

/// The members of the tar archive in `src`, in archive order.
pub async fn read_tar(src: &dyn ByteSource) -> Result<Vec<Member>, ArchiveError> {
    read_tar_from(&mut Batches::new(src)).await
}

/// The members of the tar archive read front to back from `input`, in archive order.
pub async fn read_tar_from(input: &mut dyn ForwardInput) -> Result<Vec<Member>, ArchiveError> {
    let mut members: Vec<Member> = Vec::new();
    // Sanitized path → the last regular file of that path (for hard links).
    let mut files: HashMap<Vec<String>, usize> = HashMap::new();
    let mut pending = Pending::default();
    let mut pos = 0u64;
    loop {
        let block = input.read(pos, BLOCK).await?;
        if block.is_empty() && !members.is_empty() {
            break; // no end-of-archive blocks: tolerated
        }
        if (block.len() as u64) < BLOCK {
            return Err(corrupt(format!("tar: archive cut short at {pos}")));
        }
        if block.iter().all(|&b| b == 0) {
            break; // the end-of-archive marker
        }
        let h = tar::Header::from_byte_slice(&block);
        if !checksum_ok(h) {
            return Err(corrupt(format!("tar: bad header checksum at offset {pos}")));
        }
        let blank = h.as_old().size.iter().all(|&b| b == 0 || b == b' ');
        let recorded = match h.entry_size() {
            Ok(s) => s,
            Err(_) if blank => 0, // an empty size field: nothing follows
            Err(e) => return Err(corrupt(format!("tar: size at offset {pos}: {e}"))),
        };
        let ty = h.entry_type();
        let is_extension = ty.is_pax_local_extensions()
            || ty.is_pax_global_extensions()
            || ty.is_gnu_longname()
            || ty.is_gnu_longlink();
        let size = match pending.size {
            Some(s) if !is_extension => s,
            _ => recorded,
        };
        let data = pos + BLOCK;
        let next = size
            .checked_add(BLOCK - 1)
            .map(|s| s / BLOCK * BLOCK)
            .and_then(|s| data.checked_add(s))
            .ok_or_else(|| corrupt(format!("tar: size overflows at offset {pos}")))?;
        // Sparse members' stored size is not their size; their data is not read anyway.
        if let Some(len) = input.known_len()
            && next > len
            && !ty.is_gnu_sparse()
        {
            return Err(corrupt(format!(
                "tar: member at {pos} ({size} bytes) runs past the end ({len})"
            )));
        }
        if is_extension {
            if size > MAX_EXTENSION {
                return Err(corrupt(format!("tar: extension record of {size} bytes")));
            }
            let bytes = exactly(input, data, size).await?;
            if ty.is_pax_local_extensions() {
                pax(&mut pending, &bytes)?;
            } else if ty.is_gnu_longname() {
                pending.path = Some(text(&bytes));
            } else if ty.is_gnu_longlink() {
                pending.link = Some(text(&bytes));
            }
            pos = next;
            continue;
        }
        if members.len() >= MAX_MEMBERS {
            return Err(corrupt(format!("tar: more than {MAX_MEMBERS} members")));
        }
        let p = std::mem::take(&mut pending);
        let name = p
            .path
            .unwrap_or_else(|| String::from_utf8_lossy(&h.path_bytes()).into_owned());
        let link = p.link.or_else(|| {
            h.link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
        });
        let mtime = p
            .mtime
            .or_else(|| h.mtime().ok().map(|t| t.min(i64::MAX as u64) as i64))
            .unwrap_or(0);
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mut m = Member {
            name,
            kind: MemberKind::Empty,
            mode,
            mtime,
            size: 0,
            offset: data,
        };
        match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous if m.name.ends_with('/') => {
                m.kind = MemberKind::Dir;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                m.kind = MemberKind::File;
                m.size = size;
            }
            tar::EntryType::Directory => m.kind = MemberKind::Dir,
            tar::EntryType::Symlink => m.kind = MemberKind::Symlink(link.unwrap_or_default()),
            tar::EntryType::Link => {
                let target = link.as_deref().map(sanitize_components);
                if let Some(&t) = target.as_ref().and_then(|t| files.get(t)) {
                    let t: &Member = &members[t];
                    m.kind = MemberKind::File;
                    m.size = t.size;
                    m.offset = t.offset;
                }
            }
            _ => {}
        }
        if m.kind == MemberKind::File {
            files.insert(sanitize_components(&m.name), members.len());
        }
        members.push(m);
        pos = next;
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemorySource;
    use futures::executor::block_on;

    fn header(ty: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(ty);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h
    }

    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Directory, 0, 0o755, 100);
        b.append_data(&mut h, "bin/", &[][..]).unwrap();
        let mut h = header(tar::EntryType::Regular, 5, 0o4755, 200);
        b.append_data(&mut h, "bin/tool", &b"hello"[..]).unwrap();
        let mut h = header(tar::EntryType::Symlink, 0, 0o777, 300);
        b.append_link(&mut h, "bin/link", "tool").unwrap();
        let mut h = header(tar::EntryType::Link, 0, 0o644, 400);
        b.append_link(&mut h, "hard", "bin/tool").unwrap();
        let long = format!("{}/file", "d".repeat(150));
        let mut h = header(tar::EntryType::Regular, 3, 0o600, 500);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let mut h = header(tar::EntryType::Fifo, 0, 0o644, 600);
        b.append_data(&mut h, "fifo", &[][..]).unwrap();
        b.into_inner().unwrap()
    }

    fn read(bytes: Vec<u8>) -> Result<Vec<Member>, ArchiveError> {
        block_on(read_tar(&MemorySource(Bytes::from(bytes))))
    }

    #[test]
    fn reads_kinds_modes_times_links_and_long_names() {
        let t = sample();
        let m = read(t.clone()).unwrap();
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names[..4], ["bin/", "bin/tool", "bin/link", "hard"]);
        assert_eq!(names[4], format!("{}/file", "d".repeat(150)));
        assert_eq!(m[0].kind, MemberKind::Dir);
        assert_eq!((m[0].mode, m[0].mtime), (0o755, 100));
        assert_eq!(
            (m[1].kind.clone(), m[1].mode, m[1].size),
            (MemberKind::File, 0o4755, 5)
        );
        let at = m[1].offset as usize;
        assert_eq!(&t[at..at + 5], b"hello");
        assert_eq!(m[2].kind, MemberKind::Symlink("tool".into()));
        assert_eq!(
            (m[3].kind.clone(), m[3].offset, m[3].size),
            (MemberKind::File, m[1].offset, 5)
        );
        assert_eq!(m[4].size, 3);
        assert_eq!(m[5].kind, MemberKind::Empty);
    }

    #[test]
    fn pax_records_give_names_sizes_and_times() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("path", &b"pax/\xc3\xa9t\xc3\xa9.txt"[..]),
            ("mtime", &b"1700000000.25"[..]),
        ])
        .unwrap();
        let mut h = header(tar::EntryType::Regular, 2, 0o644, 5);
        h.set_path("short").unwrap();
        h.set_cksum();
        b.append(&h, &b"hi"[..]).unwrap();
        let m = read(b.into_inner().unwrap()).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "pax/été.txt");
        assert_eq!(m[0].mtime, 1_700_000_000);
    }

    #[test]
    fn corrupt_and_cut_archives_are_errors() {
        let mut t = sample();
        t[600] ^= 0xff; // a byte of the second header
        assert!(matches!(read(t), Err(ArchiveError::Corrupt(_))));
        let t = sample();
        assert!(matches!(
            read(t[..700].to_vec()),
            Err(ArchiveError::Corrupt(_))
        ));
        assert!(matches!(
            read(vec![7u8; 4096]),
            Err(ArchiveError::Corrupt(_))
        ));
        assert!(matches!(read(Vec::new()), Err(ArchiveError::Corrupt(_))));
        assert!(is_tar_header(&sample()[..512]));
        assert!(!is_tar_header(&[0u8; 512]));
    }

    #[test]
    fn changed_bytes_anywhere_are_an_error_or_an_index_never_a_panic() {
        let t = sample();
        for i in (0..t.len()).step_by(7) {
            for x in [0x01, 0x80, 0xff] {
                let mut m = t.clone();
                m[i] ^= x;
                if let Ok(members) = read(m.clone()) {
                    for mb in members.iter().filter(|mb| mb.kind == MemberKind::File) {
                        assert!(mb.offset + mb.size <= m.len() as u64, "byte {i}");
                    }
                }
            }
        }
    }
}
