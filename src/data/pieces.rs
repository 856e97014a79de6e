//! The read that checks an entry's pieces of shared blocks ([`read_vouched`]): the part of
//! a blob block inside the entry's bytes when the block is shared with bytes outside them (a
//! local header, the next entry), so it can't be sealed in the block map. The entry's check
//! records each piece's CRC-32C ([`Piece`], taken by [`super::verify::BlockSums`]); every
//! later read that touches one takes it whole and checks it: a stored entry's bytes
//! (`reader::FileBytes::Range`) and a deflated entry's compressed bytes
//! (`inflate_stream::Input`) alike.

use bytes::Bytes;

use super::DataError;
use super::blob::CachedBlob;
use super::verify::Piece;
use crate::archive::error::corrupt;
use crate::source::ByteSource;

/// Blob bytes `from..to`, widened to take in whole any of `pieces` they touch, each such
/// piece checked against what its check vouched for: a mismatch drops the piece's block and
/// reads once more, then it is a failed check ([`DataError::Integrity`]). A read that comes
/// back short of a piece it touches is a corrupt archive (`what` names the bytes, for both).
/// Without a piece touched, this is the blob's own read (fewer bytes only at its end).
pub async fn read_vouched(
    blob: &CachedBlob,
    (from, to): (u64, u64),
    pieces: &[Piece],
    what: &str,
) -> Result<Bytes, DataError> {
    let touched: Vec<&Piece> = pieces
        .iter()
        .filter(|p| p.at < to && p.at + p.len > from)
        .collect();
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
