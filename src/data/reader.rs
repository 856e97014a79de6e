//! An open file's reads: where its bytes come from ([`FileBytes`]: a blob range through the
//! block cache with readahead, or a deflated entry's inflater) and the one place the integrity
//! invariant is enforced for every byte path.
//!
//! Each read: refuse if this handle has seen a failure, or if the file failed a check since
//! the handle was opened; if the file failed before it was opened, run the one refetch
//! allowed (drop what is cached, read the whole file again, check it); serve the bytes and
//! feed them to the handle's [`ServedCheck`]. The read that completes a failed check is EIO
//! and the bad bytes are dropped; the file is no longer verified, so its later opens do not
//! let the kernel keep its pages.
//!
//! A handle served out of an order its running hash can follow has the file read through
//! by a pass in the background, started once half the file has been served; the read that
//! completes the file takes that pass's verdict (waiting for the rest of it if the reader
//! outran it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::DataError;
use super::blob::CachedBlob;
use super::inflate::InflatedEntry;
use super::pieces::read_vouched;
use super::readahead::Readahead;
use super::verify::{BlockSums, Expected, Integrity, Outcome, ServedCheck, Verdict};
use crate::archive::ArchiveError;
use crate::error::SourceError;
use crate::source::ByteSource;

/// How many bytes a check that reads a file through asks for at a time.
const PASS_CHUNK: usize = 1 << 20;

/// Where an open file's bytes come from.
pub enum FileBytes {
    /// `len` bytes of a blob from `base` (`NAME.zip`, an unzipped artifact, a stored entry).
    Range {
        blob: Arc<CachedBlob>,
        base: u64,
        len: u64,
        readahead: Readahead,
        /// A stored entry's verdict: its check, when it passes, seals the blocks inside it
        /// and its pieces of the two it shares with its neighbours in the blob's map, which
        /// every read touching them checks (any read of the blob's bytes: `NAME.zip` too).
        entry: Option<Arc<Integrity>>,
    },
    /// A deflated entry.
    Inflated(Arc<InflatedEntry>),
    /// `len` bytes from `base` of another source: a member of an archive inside an artifact,
    /// read through the file that holds it (whose own reader fetches and checks).
    Source {
        src: Arc<dyn ByteSource>,
        base: u64,
        len: u64,
    },
}

impl FileBytes {
    pub fn range(blob: Arc<CachedBlob>, base: u64, len: u64) -> FileBytes {
        FileBytes::Range {
            readahead: Readahead::new(blob.clone(), base, len),
            blob,
            base,
            len,
            entry: None,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            FileBytes::Range { len, .. } => *len,
            FileBytes::Inflated(e) => e.size(),
            FileBytes::Source { len, .. } => *len,
        }
    }

    async fn read(&self, offset: u64, size: usize) -> Result<Vec<u8>, DataError> {
        match self {
            FileBytes::Range {
                blob,
                base,
                len,
                readahead,
                entry,
            } => {
                if offset >= *len {
                    return Ok(Vec::new());
                }
                let n = (size as u64).min(len - offset);
                let what = entry.as_ref().map_or("file", |i| i.what.as_str());
                let at = base + offset;
                let read = read_vouched(blob, (at, at + n), what);
                // Reuses the buffer read from the cache (no copy when it is the only owner).
                Ok(Vec::from(readahead.around_read(offset, n, read).await?))
            }
            FileBytes::Inflated(e) => e.read(offset, size).await,
            FileBytes::Source { src, base, len } => {
                if offset >= *len {
                    return Ok(Vec::new());
                }
                let n = (size as u64).min(len - offset);
                match src.read_at(base + offset, n as usize).await {
                    Ok(b) => Ok(Vec::from(b)),
                    // Bytes of the holding file that fail a check, do not inflate or do not
                    // parse: this file's failure (its bytes are dropped, a refetch may heal).
                    Err(SourceError::Integrity(m)) => Err(DataError::Integrity(m)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Whether the file's bytes are vouched for however they are served: its blob sealed
    /// (every byte served is checked against its sealed block), or its verdict good on the
    /// cached bytes as they are now. Then no pass needs to read it through.
    fn vouched(&self, i: &Integrity) -> bool {
        let sealed = match self {
            FileBytes::Range { blob, .. } => blob.sealed(),
            FileBytes::Inflated(e) => e.blob().sealed(),
            FileBytes::Source { .. } => false,
        };
        sealed || i.good_at(self.generation())
    }

    /// The generation of the cached bytes (see [`CachedBlob::generation`]).
    fn generation(&self) -> Option<u64> {
        match self {
            FileBytes::Range { blob, .. } => blob.generation(),
            FileBytes::Inflated(e) => e.blob().generation(),
            FileBytes::Source { .. } => None,
        }
    }

    /// The same bytes with readahead of their own (for a pass beside the handle's reads).
    fn fresh(&self) -> FileBytes {
        match self {
            FileBytes::Range {
                blob,
                base,
                len,
                entry,
                ..
            } => FileBytes::Range {
                readahead: Readahead::new(blob.clone(), *base, *len),
                blob: blob.clone(),
                base: *base,
                len: *len,
                entry: entry.clone(),
            },
            FileBytes::Inflated(e) => FileBytes::Inflated(e.clone()),
            FileBytes::Source { src, base, len } => FileBytes::Source {
                src: src.clone(),
                base: *base,
                len: *len,
            },
        }
    }

    /// Forgets every cached copy of these bytes.
    async fn drop_cached(&self) {
        self.drop_range(0, self.len()).await;
    }

    /// Forgets the cached copies of bytes `offset..offset + n` of the file (a deflated
    /// entry's: all of them, its inflater's state with them; a member of an archive inside
    /// an artifact's: what its source kept of them, down to the holding file's blocks).
    async fn drop_range(&self, offset: u64, n: u64) {
        let (offset, n) = (
            offset.min(self.len()),
            n.min(self.len() - offset.min(self.len())),
        );
        match self {
            FileBytes::Range { blob, base, .. } => blob.drop_range(base + offset, n),
            FileBytes::Inflated(e) => e.drop_cached().await,
            FileBytes::Source { src, base, .. } => src.forget(base + offset, n).await,
        }
    }

    /// The checksums a check of a stored entry takes of the blob blocks under it, to seal
    /// them and vouch for its pieces of the two it shares when it passes (see [`BlockSums`]).
    fn block_sums(&self) -> Option<BlockSums> {
        match self {
            FileBytes::Range {
                base,
                len,
                entry: Some(_),
                ..
            } => Some(BlockSums::new(*base, *len)),
            _ => None,
        }
    }

    /// What a passed check of a stored entry vouches for: the blob blocks whole inside it
    /// are sealed, and its pieces of the two at its edges, in the blob's map.
    fn vouch(&self, sums: &BlockSums) {
        if let FileBytes::Range {
            blob,
            entry: Some(_),
            ..
        } = self
        {
            blob.seal_verified(sums);
        }
    }

    /// Reads the whole file through (fetching what is not cached) and checks it.
    async fn check_through(&self, integrity: &Integrity) -> Result<Result<(), String>, DataError> {
        let mut h = integrity.expected.hasher();
        let mut sums = self.block_sums();
        let mut off = 0;
        while off < self.len() {
            match self.read(off, PASS_CHUNK).await {
                Ok(b) if b.is_empty() => break,
                Ok(b) => {
                    h.update(&b);
                    if let Some(s) = sums.as_mut() {
                        s.absorb(off, &b);
                    }
                    off += b.len() as u64;
                }
                Err(DataError::Integrity(m) | DataError::Archive(ArchiveError::Corrupt(m))) => {
                    return Ok(Err(m));
                }
                Err(e) => return Err(e),
            }
        }
        let verdict = h.check(&integrity.expected);
        if let (Ok(()), Some(s)) = (&verdict, &sums) {
            self.vouch(s);
        }
        Ok(verdict)
    }
}

/// Drops what a file's bytes were read through beyond the bytes themselves (an entry's local
/// header, the central directory, the parsed index), after a failed check.
pub type Heal = Box<dyn Fn() + Send + Sync>;

/// Drops the bytes of a failed check and everything they were read through.
async fn drop_all(bytes: &FileBytes, heal: Option<&(dyn Fn() + Send + Sync)>) {
    bytes.drop_cached().await;
    if let Some(h) = heal {
        h();
    }
}

/// One open file.
pub struct FileReader {
    bytes: FileBytes,
    /// `None`: nothing to check against (a blob without a digest).
    integrity: Option<Arc<Integrity>>,
    /// Failed checks of the file when this handle was opened.
    failures_at_open: u32,
    check: Mutex<Option<ServedCheck>>,
    /// This handle served bytes of a file that failed a check: every read is EIO.
    poisoned: AtomicBool,
    heal: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl FileReader {
    pub fn new(mut bytes: FileBytes, integrity: Option<Arc<Integrity>>) -> FileReader {
        let check = integrity.as_ref().map(|i| {
            let c = ServedCheck::new(bytes.len(), i.expected.clone());
            match (&mut bytes, &i.expected) {
                // A stored entry: the blocks inside it are sealed when its CRC passes, and its
                // pieces of the two at its edges too (checked from then on, across remounts).
                (FileBytes::Range { base, entry, .. }, Expected::Crc32(_)) => {
                    *entry = Some(i.clone());
                    c.with_blocks(*base)
                }
                _ => c,
            }
        });
        FileReader {
            failures_at_open: integrity.as_ref().map_or(0, |i| i.failures()),
            bytes,
            integrity,
            check: Mutex::new(check),
            poisoned: AtomicBool::new(false),
            heal: None,
        }
    }

    /// What else a failed check drops (see [`Heal`]).
    pub fn healed_by(mut self, heal: Heal) -> FileReader {
        self.heal = Some(Arc::from(heal));
        self
    }

    /// Drops the bytes of a failed check and everything they were read through.
    async fn drop_all(&self) {
        drop_all(&self.bytes, self.heal.as_deref()).await;
    }

    /// Starts the pass that reads the file through in the background and records its
    /// verdict, unless one is running (the verdict is the file's, shared by every handle).
    fn kick_pass(&self, i: &Arc<Integrity>) {
        let Some(running) = i.start_pass() else {
            return;
        };
        let (bytes, i, heal) = (self.bytes.fresh(), i.clone(), self.heal.clone());
        tokio::spawn(async move {
            let _running = running;
            if bytes.vouched(&i) || matches!(i.verdict(), Verdict::Failed { .. }) {
                return;
            }
            match bytes.check_through(&i).await {
                Ok(Ok(())) => i.pass(bytes.generation()),
                Ok(Err(got)) => {
                    if !matches!(i.verdict(), Verdict::Failed { .. }) {
                        i.fail(&got);
                    }
                    drop_all(&bytes, heal.as_deref()).await;
                }
                // No verdict (the network): the read that completes the file runs it.
                Err(e) => tracing::debug!("{}: background pass: {e}", i.what),
            }
        });
    }

    /// Forgets what this file's bytes `offset..offset + len` were read through, after a check
    /// over them failed (see [`ByteSource::forget`]); the file's own verdict is untouched.
    pub async fn forget(&self, offset: u64, len: u64) {
        self.bytes.drop_range(offset, len).await;
    }

    /// Whether this handle refuses every read (it served bytes of a file that failed a
    /// check); a new handle of the same file is allowed the one refetch.
    pub fn refuses(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// `len` bytes from `base` of `src`, with nothing of their own to check against (a tar
    /// member: the file holding it is checked by its own reader).
    pub fn over(src: Arc<dyn ByteSource>, base: u64, len: u64) -> FileReader {
        FileReader::new(FileBytes::Source { src, base, len }, None)
    }

    /// Turns readahead of the file's bytes on or off (see [`Readahead::set_enabled`]; a
    /// deflated entry's inflater keeps its own).
    pub fn set_readahead(&self, on: bool) {
        if let FileBytes::Range { readahead, .. } = &self.bytes {
            readahead.set_enabled(on);
        }
    }

    /// `len` bytes from `base` of `src` that must hash as `integrity` says when read
    /// through (a member of a zip inside an artifact: its CRC-32).
    pub fn checked(
        src: Arc<dyn ByteSource>,
        base: u64,
        len: u64,
        integrity: Arc<Integrity>,
    ) -> FileReader {
        FileReader::new(FileBytes::Source { src, base, len }, Some(integrity))
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.bytes.len()
    }

    fn what(&self) -> &str {
        self.integrity.as_ref().map_or("file", |i| i.what.as_str())
    }

    fn refused(&self) -> DataError {
        DataError::Integrity(format!("{}: failed its check", self.what()))
    }

    /// Up to `size` bytes at `offset` (fewer only at the end of the file).
    pub async fn read(&self, offset: u64, size: u32) -> Result<Vec<u8>, DataError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.refused());
        }
        if let Some(i) = &self.integrity {
            self.admit(i).await?;
        }
        let data = match self.bytes.read(offset, size as usize).await {
            // Bytes that do not inflate are changed bytes too (or a corrupt archive, which
            // its refetch shows): the same failure as a wrong CRC.
            Err(DataError::Integrity(m) | DataError::Archive(ArchiveError::Corrupt(m))) => {
                return Err(self.failed(&m).await);
            }
            other => other?,
        };
        let (outcome, sealed) = match self.check.lock().unwrap().as_mut() {
            Some(c) => {
                let o = c.feed(offset, &data);
                let sums = (o == Outcome::Matched)
                    .then(|| c.take_block_sums())
                    .flatten();
                (o, sums)
            }
            None => (Outcome::Pending, None),
        };
        if let Some(sums) = sealed {
            self.bytes.vouch(&sums);
        }
        let i = self.integrity.as_ref();
        match (outcome, i) {
            (Outcome::Matched, Some(i)) => i.pass(self.bytes.generation()),
            (Outcome::Mismatch(got), _) => return Err(self.failed(&got).await),
            (Outcome::PassAsked, Some(i)) if !self.bytes.vouched(i) => {
                self.kick_pass(i);
            }
            (Outcome::NeedsPass, Some(i)) if !self.bytes.vouched(i) => {
                // The background pass (started when half was served) has mostly run.
                self.kick_pass(i);
                i.pass_done().await;
                if i.failures() > self.failures_at_open {
                    return Err(self.failed("(the background pass failed)").await);
                }
                if !self.bytes.vouched(i) {
                    // It had no verdict (the network), or bytes changed since: here, once.
                    match self.bytes.check_through(i).await? {
                        Ok(()) => i.pass(self.bytes.generation()),
                        Err(got) => return Err(self.failed(&got).await),
                    }
                }
            }
            _ => {}
        }
        Ok(data)
    }

    /// Lets a read go on, or not, by the file's verdict.
    async fn admit(&self, i: &Integrity) -> Result<(), DataError> {
        if i.failures() > self.failures_at_open {
            // It failed while this handle was serving it.
            self.poisoned.store(true, Ordering::Release);
            return Err(self.refused());
        }
        if !matches!(i.verdict(), Verdict::Failed { .. }) {
            return Ok(());
        }
        // It had failed before this handle was opened: one refetch may clear it.
        let _one_at_a_time = i.refetching.lock().await;
        if i.verdict() == (Verdict::Failed { refetched: false }) {
            self.bytes.drop_cached().await;
            let ok = self.bytes.check_through(i).await?;
            if ok.is_err() {
                // The one refetch failed too: EIO stays, nothing more is fetched for it.
                self.bytes.drop_cached().await;
            }
            i.refetched(ok.is_ok(), self.bytes.generation());
        }
        match i.verdict() {
            Verdict::Failed { .. } => Err(self.refused()),
            _ => Ok(()),
        }
    }

    /// Records a failed check seen by this handle: the file's verdict, the bad bytes
    /// dropped, this handle refused from now on.
    async fn failed(&self, got: &str) -> DataError {
        self.poisoned.store(true, Ordering::Release);
        // Only the first to see this failure records it (another handle, or the check of a
        // completed blob, may have); the bytes this handle was served go either way.
        if let Some(i) = &self.integrity
            && i.failures() == self.failures_at_open
        {
            i.fail(got);
        }
        self.drop_all().await;
        self.refused()
    }
}
