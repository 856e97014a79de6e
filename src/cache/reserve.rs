//! Writing under the cap: every write under the cache directory first sets its bytes aside
//! (a [`Reservation`]), evicting least recently used files and blocks until they fit (never
//! a pinned block, never one of the request being stored), then writes, then turns the
//! reservation into accounted files (or gives it back). So the bytes on disk never exceed
//! `--cache-size`, not even while a store is under way. When the bytes can't fit (all that
//! is left is pinned by reads in flight), nothing is written: the caller serves them without
//! caching them, and one debug line says so.

use std::io;
use std::sync::atomic::Ordering;

use super::accounting::{LruState, Pin};
use super::{
    BlobKey, BlockFile, DIR_GROWTH, DiskCache, Piece, blob_overhead, block_rel, map_rel, on_disk,
};
use crate::cache::blocks::{bad_block, checksum};

/// Space set aside under the cap for a write about to happen: counted as used from the
/// moment it is granted, given back when dropped, or turned into accounted files by
/// [`Reservation::commit`]. It keeps what it pins (the blocks being stored, their blob's map)
/// from eviction while it lives.
pub(super) struct Reservation<'a> {
    cache: &'a DiskCache,
    bytes: u64,
    _pin: Option<Pin<'a>>,
}

impl Reservation<'_> {
    /// Accounts what was written (`account`, under the same lock) in place of the
    /// reservation.
    pub(super) fn commit(mut self, account: impl FnOnce(&mut LruState)) {
        let mut st = self.cache.state.lock().unwrap();
        st.reserved -= std::mem::take(&mut self.bytes);
        #[cfg(test)]
        super::lock::UNDER_STATE_LOCK.set(true);
        account(&mut st);
        #[cfg(test)]
        super::lock::UNDER_STATE_LOCK.set(false);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.cache.state.lock().unwrap().reserved -= self.bytes;
        }
    }
}

/// What a store of blocks came to.
pub enum BlocksStored {
    /// Written and accounted, but for `bad`: blocks that differ from their sealed checksums
    /// (not written).
    Written { bad: Vec<u64> },
    /// No room under the cap beside what is pinned: nothing written.
    NoRoom,
}

/// What `file`'s map costs now, as its file is (with its data file's allocation unit, see
/// [`blob_overhead`]); `None` when it has no map file (retired, deleted, never created).
/// Takes no lock (it may be taken under the state lock): the one place that says what a
/// map costs, read when it is accounted ([`account_map`]), so the accounting follows the
/// file whatever retired or rewrote it meanwhile.
pub(super) fn map_cost(file: &BlockFile) -> Option<u64> {
    (file.map_size())
        .filter(|_| !file.is_deleted())
        .map(blob_overhead)
}

/// Accounts `stem`'s map at `cost` (from [`map_cost`]), or not at all when it has no file.
pub(super) fn account_map(st: &mut LruState, stem: &str, cost: Option<u64>) {
    match cost {
        Some(size) => st.put(map_rel(stem), size),
        None => {
            st.remove(&map_rel(stem));
        }
    }
}

impl DiskCache {
    /// Accounts `key`'s map as its file is now (after a retirement or a rewrite that was not
    /// a store: see [`map_cost`]).
    pub fn account_map_of(&self, key: &BlobKey, file: &BlockFile) {
        let mut st = self.state.lock().unwrap();
        account_map(&mut st, &key.stem(), map_cost(file));
    }

    /// Sets `bytes` aside under the cap before they are written, evicting (least recently
    /// used first, never what is pinned, `pin` included) until everything counted fits;
    /// `None` when it can't (what is left is pinned).
    pub(super) fn reserve<'a>(
        &'a self,
        bytes: u64,
        pin: Option<Pin<'a>>,
    ) -> Option<Reservation<'a>> {
        let mut reservation = Reservation {
            cache: self,
            bytes: 0,
            _pin: pin,
        };
        if bytes == 0 {
            return Some(reservation);
        }
        {
            let mut st = self.state.lock().unwrap();
            let budget = self.budget(st.accounted());
            if st.used() - st.evictable() + bytes > budget {
                drop(st);
                self.no_room(bytes);
                return None; // nothing evicted for it
            }
            st.reserved += bytes;
            reservation.bytes = bytes;
        }
        if !self.make_room() {
            self.no_room(bytes);
            return None; // dropped: given back
        }
        self.short_of_room.store(false, Ordering::Relaxed);
        Some(reservation)
    }

    /// Seals `pieces` in `file`'s map (see [`BlockFile::seal_pieces`]): the room the map may
    /// grow by reserved first, the map accounted at its new size after. With no room they are
    /// sealed in memory only (checked all the same while this process runs).
    pub fn seal_pieces(&self, key: &BlobKey, file: &BlockFile, pieces: &[Piece]) -> io::Result<()> {
        let stem = key.stem();
        let map_len = file.map_len();
        let now = blob_overhead(map_len);
        let most = blob_overhead(map_len + (pieces.len() * Piece::ENCODED) as u64);
        let Some(r) = self.reserve(most - now, Some(self.pin_range(&stem, 0..0))) else {
            file.seal_pieces_unwritten(pieces);
            return Ok(());
        };
        if file.seal_pieces(pieces)? {
            self.written();
            // As the file is when accounted: an eviction may have retired it since.
            r.commit(|st| account_map(st, &stem, map_cost(file)));
        }
        Ok(())
    }

    /// Evicts until everything counted fits in the budget; false when what is left is
    /// pinned. The state lock is held only to choose each victim, never while it is freed.
    pub(super) fn make_room(&self) -> bool {
        // Bounded: a map put back (a block stored meanwhile) must not spin forever.
        let mut left = self.state.lock().unwrap().files.len() + 1;
        loop {
            let (victim, size) = {
                let mut st = self.state.lock().unwrap();
                if st.used() <= self.budget(st.accounted()) {
                    return true;
                }
                if left == 0 {
                    return false;
                }
                left -= 1;
                let Some(v) = st.pop_victim() else {
                    return false; // only pinned files left: they go when unpinned
                };
                st.evicting += v.1;
                v
            };
            self.evict(&victim);
            self.state.lock().unwrap().evicting -= size;
        }
    }

    /// A write found no room: logged once (until a reservation succeeds again).
    fn no_room(&self, bytes: u64) {
        if !self.short_of_room.swap(true, Ordering::Relaxed) {
            tracing::debug!(
                bytes,
                limit = self.limit(),
                "cache: no room under --cache-size beside what reads in flight hold; \
                 serving without caching until there is"
            );
        }
    }

    /// Stores consecutive blocks of `key`'s blob from block `first` (`bytes`: whole blocks,
    /// the last of the blob may be short), each with its checksum: sets their space aside
    /// first (their blob's map too when it is not on disk), writes them, then accounts them,
    /// most recently used, with their blob's map. A block that differs from its sealed
    /// checksum is not written (`bad`). On a failed write what was written is accounted and
    /// the error returned (the caller reports it: [`DiskCache::write_failed`]).
    pub fn store_blocks(
        &self,
        key: &BlobKey,
        file: &BlockFile,
        first: u64,
        bytes: &[u8],
    ) -> io::Result<BlocksStored> {
        let mut end = first;
        let mut len = 0;
        while len < bytes.len() as u64 && end < file.block_count() {
            len += file.block_len(end);
            end += 1;
        }
        if end == first || len != bytes.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} bytes are not whole blocks from {first}", bytes.len()),
            ));
        }
        let stem = key.stem();
        // Pinned first: then neither these blocks nor the map can go while they are written.
        let pin = self.pin_range(&stem, first..end);
        let map = {
            let st = self.state.lock().unwrap();
            let accounted = st.files.contains(&map_rel(&stem));
            // A map that comes back is a file created in `blocks/` again: it may grow.
            (!accounted).then(|| blob_overhead(file.map_len()) + DIR_GROWTH)
        };
        let size = map.unwrap_or(0)
            + (first..end)
                .map(|i| on_disk(file.block_len(i)))
                .sum::<u64>();
        let Some(reservation) = self.reserve(size, Some(pin)) else {
            return Ok(BlocksStored::NoRoom);
        };
        let mut done = Vec::new();
        let mut bad = Vec::new();
        let mut at = 0usize;
        let mut result = Ok(());
        for i in first..end {
            let block = &bytes[at..at + file.block_len(i) as usize];
            at += block.len();
            let sum = checksum(block);
            if !file.matches(i, sum) {
                bad.push(i);
                continue;
            }
            match file.write_block(i, block, sum) {
                Ok(()) => done.push(i),
                Err(e) if bad_block(&e).is_some() => bad.push(i),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.written();
        let dir = map.map(|_| self.dir_size("blocks"));
        reservation.commit(|st| {
            if let Some((dir, size)) = dir {
                st.set_fixed(dir, size);
            }
            if file.is_deleted() {
                return; // a late write after `rm`: nothing of it stays
            }
            for &i in &done {
                st.put(block_rel(&stem, i), on_disk(file.block_len(i)));
            }
            // Whenever the map is on disk after the writes (one may have brought it back
            // and failed after).
            account_map(st, &stem, map_cost(file));
        });
        result.map(|()| BlocksStored::Written { bad })
    }
}
