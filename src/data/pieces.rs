//! The read that checks the pieces of shared blocks a check vouched for ([`read_vouched`]):
//! the part of a blob block inside an entry's bytes when the block is shared with bytes
//! outside them (a local header, the next entry), so it can't be sealed whole. The entry's
//! check records each piece's CRC-32C ([`Piece`], taken by [`super::verify::BlockSums`]) in
//! the blob's block map, which keeps it across evictions and remounts (see
//! `cache::blocks`); every later read that touches one takes it whole and checks it: a
//! stored entry's bytes (`reader::FileBytes::Range`, `NAME.zip` too) and a deflated entry's
//! compressed bytes (`inflate_stream::Input`) alike. A piece that the bytes fetched again
//! still contradict stays: every read that touches it is `EIO` (one refetch, then `EIO`
//! stays, as for any failed check); a record torn by a crash is never loaded as a piece
//! (see `cache::sealed_pieces`).

use bytes::Bytes;

use super::DataError;
use super::blob::CachedBlob;
use crate::archive::error::corrupt;
use crate::cache::Piece;
use crate::source::ByteSource;

/// Blob bytes `from..to`, widened to take in whole any piece sealed in the blob's map that
/// they touch, each such piece checked against what its check vouched for: a mismatch drops
/// the piece's block and reads once more, then it is a failed check
/// ([`DataError::Integrity`]). A read
/// that comes back short of a piece it touches is a
/// corrupt archive (`what` names the bytes, for both). Without a piece touched, this is the
/// blob's own read (fewer bytes only at its end).
pub async fn read_vouched(
    blob: &CachedBlob,
    (from, to): (u64, u64),
    what: &str,
) -> Result<Bytes, DataError> {
    let touched: Vec<Piece> = blob.pieces_in(from, to);
    if touched.is_empty() {
        return Ok(blob.read_at(from, (to - from) as usize).await?);
    }
    let lo = touched.iter().map(|p| p.at).fold(from, u64::min);
    let hi = touched.iter().map(|p| p.at + p.len).fold(to, u64::max);
    let mut again = false;
    loop {
        let bytes = blob.read_at(lo, (hi - lo) as usize).await?;
        if (bytes.len() as u64) < hi - lo {
            return Err(
                corrupt(format!("{what}: cut short at {}", lo + bytes.len() as u64)).into(),
            );
        }
        match touched
            .iter()
            .find(|p| p.matches(lo, &bytes) == Some(false))
        {
            None => return Ok(bytes.slice((from - lo) as usize..(to - lo) as usize)),
            Some(p) if !again => {
                tracing::warn!(
                    "{what}: bytes at {} differ from what its CRC-32 verified; fetching them once more",
                    p.at
                );
                blob.drop_range(p.at, p.len);
                again = true;
            }
            Some(p) => {
                return Err(DataError::Integrity(format!(
                    "{what}: bytes at {} fetched twice, neither is what its CRC-32 verified",
                    p.at
                )));
            }
        }
    }
}
