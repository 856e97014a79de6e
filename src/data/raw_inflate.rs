//! A raw-deflate inflater that can stop at block boundaries and start again in the middle of
//! a stream: what seek points need (zlib's examples/zran.c). flate2's API has neither
//! `inflatePrime` nor `Z_BLOCK`, so this wraps zlib's C API as implemented in pure Rust by
//! zlib-rs (`libz-rs-sys`); every `unsafe` of the inflater is in this file.

use std::ffi::c_int;

use libz_rs_sys as z;

/// Bytes of history a deflate stream may refer back to.
pub const WINDOW: usize = 32 * 1024;

/// What one call did.
pub struct Step {
    /// Input bytes consumed.
    pub used: usize,
    /// Output bytes produced.
    pub made: usize,
    /// The stream's final block ended.
    pub ended: bool,
    /// Stopped at the end of a block that is not the last: a place to resume from, with
    /// this many bits of the last input byte not yet used.
    pub boundary: Option<u8>,
}

pub struct RawInflate {
    /// Boxed: zlib's state points back at its stream, which must not move.
    strm: Box<z::z_stream>,
}

// SAFETY: the stream owns its state exclusively and holds no thread-bound data; the input
// and output pointers are only set for the duration of one `inflate` call.
unsafe impl Send for RawInflate {}

fn check(rc: c_int, what: &str) -> Result<(), String> {
    if rc == z::Z_OK {
        Ok(())
    } else {
        Err(format!("{what}: zlib error {rc}"))
    }
}

impl RawInflate {
    /// A raw inflater at the start of a stream.
    pub fn new() -> Result<RawInflate, String> {
        let mut strm = Box::new(z::z_stream::default());
        // SAFETY: a default (zeroed, default allocator) stream; version and size are zlib's.
        let rc = unsafe {
            z::inflateInit2_(
                &mut *strm,
                -15,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        check(rc, "inflateInit2")?;
        Ok(RawInflate { strm })
    }

    /// A raw inflater resuming at a block boundary: `bits` bits of `byte` (its high ones)
    /// not yet used, and the 32 KiB of output before the boundary.
    pub fn resume(bits: u8, byte: u8, window: &[u8]) -> Result<RawInflate, String> {
        let mut r = RawInflate::new()?;
        if bits > 0 {
            // SAFETY: an initialised raw stream before its first inflate.
            let rc = unsafe {
                z::inflatePrime(&mut *r.strm, bits as c_int, (byte >> (8 - bits)) as c_int)
            };
            check(rc, "inflatePrime")?;
        }
        // SAFETY: `window` is valid for its length during the call, which copies it.
        let rc = unsafe {
            z::inflateSetDictionary(&mut *r.strm, window.as_ptr(), window.len() as z::uInt)
        };
        check(rc, "inflateSetDictionary")?;
        Ok(r)
    }

    /// Inflates from `input` into `out`, stopping at the end of a block.
    pub fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<Step, String> {
        let s = &mut *self.strm;
        s.next_in = input.as_ptr();
        s.avail_in = input.len().min(u32::MAX as usize) as z::uInt;
        s.next_out = out.as_mut_ptr();
        s.avail_out = out.len().min(u32::MAX as usize) as z::uInt;
        let (in0, out0) = (s.avail_in, s.avail_out);
        // SAFETY: next_in/next_out point into `input`/`out` for the lengths given, and both
        // outlive the call; the pointers are cleared before returning.
        let rc = unsafe { z::inflate(s, z::Z_BLOCK) };
        let step = Step {
            used: (in0 - s.avail_in) as usize,
            made: (out0 - s.avail_out) as usize,
            ended: rc == z::Z_STREAM_END,
            boundary: (s.data_type & 128 != 0 && s.data_type & 64 == 0)
                .then_some((s.data_type & 7) as u8),
        };
        s.next_in = std::ptr::null();
        s.next_out = std::ptr::null_mut();
        s.avail_in = 0;
        s.avail_out = 0;
        match rc {
            z::Z_OK | z::Z_STREAM_END | z::Z_BUF_ERROR => Ok(step),
            rc => Err(format!("corrupt deflate data (zlib error {rc})")),
        }
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by inflateInit2_ and is ended once.
        unsafe {
            z::inflateEnd(&mut *self.strm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Inflates all of `input` from `r`, noting (output offset, input offset, bits, window)
    /// at every block boundary.
    type Point = (usize, usize, u8, Vec<u8>);
    fn inflate_all(r: &mut RawInflate, input: &[u8], out: &mut Vec<u8>, points: &mut Vec<Point>) {
        let mut buf = vec![0u8; 64 << 10];
        let mut at = 0;
        loop {
            let s = r.inflate(&input[at..], &mut buf).unwrap();
            at += s.used;
            out.extend_from_slice(&buf[..s.made]);
            if let Some(bits) = s.boundary {
                let w = out.len().saturating_sub(WINDOW);
                points.push((out.len(), at, bits, out[w..].to_vec()));
            }
            if s.ended {
                return;
            }
            assert!(s.used > 0 || s.made > 0 || s.boundary.is_some(), "progress");
        }
    }

    #[test]
    fn resumes_from_any_block_boundary() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| format!("{} line {}\n", i % 977, i * 7 % 13).into_bytes())
            .take(3 << 20)
            .collect();
        let z = deflate(&data);
        let mut out = Vec::new();
        let mut points = Vec::new();
        inflate_all(&mut RawInflate::new().unwrap(), &z, &mut out, &mut points);
        assert!(out == data);
        assert!(points.len() > 3, "{} boundaries", points.len());
        for (o, i, bits, window) in points.iter().step_by(points.len() / 3) {
            let byte = if *bits > 0 { z[i - 1] } else { 0 };
            let mut r = RawInflate::resume(*bits, byte, window).unwrap();
            let mut rest = Vec::new();
            inflate_all(&mut r, &z[*i..], &mut rest, &mut Vec::new());
            assert!(rest == data[*o..], "resumed at output {o}");
        }
    }
}
