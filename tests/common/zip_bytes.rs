//! Reading and patching a zip's bytes by hand, for tests that build hostile archives: the
//! little-endian fields, the end record, the central-directory headers by name, and where an
//! entry's data starts.

use std::collections::BTreeMap;

pub fn u16_at(z: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(z[at..at + 2].try_into().unwrap())
}

pub fn u32_at(z: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(z[at..at + 4].try_into().unwrap())
}

pub fn put_u16(z: &mut [u8], at: usize, v: u16) {
    z[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(z: &mut [u8], at: usize, v: u32) {
    z[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Offset of the end-of-central-directory record (archives here have no comment).
pub fn eocd(zip: &[u8]) -> usize {
    let p = zip.len() - 22;
    assert_eq!(u32_at(zip, p), 0x0605_4b50, "end record");
    p
}

/// The central-directory headers of `zip`: name → offset of its header.
pub fn cd_headers(zip: &[u8]) -> BTreeMap<String, usize> {
    let e = eocd(zip);
    let mut at = u32_at(zip, e + 16) as usize;
    let n = u16_at(zip, e + 10) as usize;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        assert_eq!(u32_at(zip, at), 0x0201_4b50);
        let nl = u16_at(zip, at + 28) as usize;
        let el = u16_at(zip, at + 30) as usize;
        let cl = u16_at(zip, at + 32) as usize;
        let name = String::from_utf8_lossy(&zip[at + 46..at + 46 + nl]).into_owned();
        out.insert(name, at);
        at += 46 + nl + el + cl;
    }
    out
}

/// Where an entry's data starts, from its central-directory header.
pub fn data_start(zip: &[u8], cd: usize) -> usize {
    let local = u32_at(zip, cd + 42) as usize;
    assert_eq!(u32_at(zip, local), 0x0403_4b50);
    local + 30 + u16_at(zip, local + 26) as usize + u16_at(zip, local + 28) as usize
}
