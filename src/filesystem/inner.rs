//! Archives inside an artifact, as the core keeps them: each archive file that has been
//! opened at `FILE.d/` gets a number (its [`Container`]: the file it is, a zip artifact's
//! entry or a member of another inner archive) and, once read, its index and the byte source
//! it reads through (the holding file's own reader, so fetching, inflating and checks are
//! the data layer's as for any `cat`). The index is read once per mount, shared by every
//! caller (a failure is not remembered: the next lookup tries again). One refetch heals what
//! a failed check touched, here too: an index pass that fails a check forgets the holding
//! file's bytes (once per mount), a member's failed check forgets what it was read through,
//! and a holding file's reader that saw a failure is replaced by a fresh one at the next
//! use. Parsing lives in `archive::inner`; the nodes in `views::inner`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use crate::archive::ArchiveError;
use crate::archive::central_directory::{ZipEntry, read_central_directory};
use crate::archive::entry::{METHOD_STORED, check_readable, data_offset};
use crate::archive::inner::{
    Format, InnerIndex, MAX_DEPTH, archive_of_contents, detect, read_zip_members,
};
use crate::archive::tar::{Member, MemberKind, read_tar};
use crate::archive::tree::{ArchiveTree, NodeKind};
use crate::cache::BlobKey;
use crate::data::FileReader;
use crate::data::file_source::FileSource;
use crate::data::gzip::{GzipScan, InflatingSource};
use crate::data::seek_index::SeekIndex;
use crate::data::verify::{Expected, Integrity, Verdict};
use crate::source::ByteSource;

use super::{ArtifactFs, FsError, FsResult, Node, RepoIdx};

/// The file an inner archive is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Container {
    /// A file of a zip artifact: (repo, artifact id, tree node).
    Entry(RepoIdx, u64, usize),
    /// A member of another inner archive: (its number, tree node).
    Inner(u32, usize),
}

impl Container {
    /// The file's node.
    pub fn node(&self) -> Node {
        match *self {
            Container::Entry(r, id, n) => Node::Entry(r, id, n),
            Container::Inner(a, n) => Node::Inner(a, n),
        }
    }
}

/// An inner archive once read: its index and its bytes.
pub struct InnerArchive {
    pub index: InnerIndex,
    pub source: Arc<dyn ByteSource>,
    /// The holding file as read (what `source` reads through).
    holding: Arc<FileSource>,
    /// An inner zip's central directory (members are its entries, in order).
    zip: Vec<ZipEntry>,
    /// The verdict on each inner zip member that has been opened (its CRC-32).
    checks: Mutex<HashMap<usize, Arc<Integrity>>>,
}

impl InnerArchive {
    /// Whether the kernel may keep a member's pages: a tar member has no check of its own
    /// (its handles check nothing the page cache could hide; the file holding it is checked
    /// by its reader); a zip member once its CRC-32 has passed.
    pub fn page_cache_allowed(&self, node: usize) -> bool {
        if self.index.format != Format::Zip {
            return true;
        }
        let Some(m) = self.index.tree.nodes.get(node).and_then(|t| t.record) else {
            return false;
        };
        self.checks
            .lock()
            .unwrap()
            .get(&m)
            .is_some_and(|i| i.verdict() == Verdict::Good)
    }
}

#[derive(Clone)]
struct Slot {
    container: Container,
    /// The level its `FILE.d/` is at (the artifact is 0).
    depth: usize,
    cell: Arc<OnceCell<Arc<InnerArchive>>>,
    /// An index pass failed a check and the holding file's bytes were forgotten (the one
    /// refetch: a later failure leaves the cache alone).
    refetched: Arc<AtomicBool>,
}

/// Every inner archive named so far, numbered in order.
#[derive(Default)]
pub struct InnerArchives {
    table: Mutex<(HashMap<Container, u32>, Vec<Slot>)>,
}

impl InnerArchives {
    fn number(&self, container: Container, depth: usize) -> u32 {
        let mut t = self.table.lock().unwrap();
        if let Some(&n) = t.0.get(&container) {
            return n;
        }
        let n = t.1.len() as u32;
        t.1.push(Slot {
            container: container.clone(),
            depth,
            cell: Arc::default(),
            refetched: Arc::default(),
        });
        t.0.insert(container, n);
        n
    }

    fn slot(&self, n: u32) -> Option<Slot> {
        self.table.lock().unwrap().1.get(n as usize).cloned()
    }

    /// The file inner archive `n` is.
    pub fn container(&self, n: u32) -> Option<Container> {
        self.slot(n).map(|s| s.container)
    }

    /// Inner archive `n` if it has been read.
    pub fn loaded(&self, n: u32) -> Option<Arc<InnerArchive>> {
        self.slot(n)?.cell.get().cloned()
    }
}

impl ArtifactFs {
    /// Inner archive `n`, read on first use.
    /// (Boxed: the holding file may itself be a member of an inner archive.)
    pub(super) fn inner(&self, n: u32) -> BoxFuture<'_, FsResult<Arc<InnerArchive>>> {
        Box::pin(self.read_inner(n))
    }

    async fn read_inner(&self, n: u32) -> FsResult<Arc<InnerArchive>> {
        let slot = self.inner.slot(n).ok_or(FsError::NotFound)?;
        let archive = slot
            .cell
            .get_or_try_init(|| self.open_inner(n, &slot))
            .await?
            .clone();
        if archive.holding.refuses() {
            // Its reader saw a failed check: a fresh one (the one refetch is its to make).
            let fresh = self.make_reader(&slot.container.node()).await?;
            if archive.index.format == Format::Gzip {
                fresh.set_readahead(false); // as the first one (see below)
            }
            archive.holding.replace(Arc::new(fresh));
            tracing::debug!(archive = n, "the holding file's reader replaced");
        }
        Ok(archive)
    }

    /// Reads inner archive `n`'s index (from the cache when kept there).
    async fn open_inner(&self, n: u32, slot: &Slot) -> FsResult<Arc<InnerArchive>> {
        let reader = Arc::new(self.make_reader(&slot.container.node()).await?);
        let holding = Arc::new(FileSource::new(reader.clone()));
        let file: Arc<dyn ByteSource> = holding.clone();
        let (key, name) = self.inner_cache_name(&slot.container).await?;
        let cache = self.cache();
        let saved = cache
            .inner_index(&key, &name)
            .and_then(|b| Saved::decode(&b));
        let fresh = saved.is_none();
        let saved = match saved {
            Some(s) => s,
            None => match Saved::read(file.as_ref()).await {
                Ok(s) => s,
                Err(e) => {
                    if fails_a_check(&e) && !slot.refetched.swap(true, Ordering::AcqRel) {
                        // Bytes that do not parse or inflate may have changed in flight:
                        // the next lookup reads them again.
                        file.forget(0, file.len()).await;
                    }
                    return Err(e.into());
                }
            },
        };
        if fresh {
            cache.store_inner_index(&key, &name, &saved.encode());
        }
        tracing::debug!(
            archive = n,
            members = saved.members.len(),
            fresh,
            "an archive inside an artifact"
        );
        let source: Arc<dyn ByteSource> = match saved.gzip {
            Some((start, points)) => {
                // From here on reads start at seek points: each fetches what its span
                // needs, nothing ahead.
                reader.set_readahead(false);
                Arc::new(InflatingSource::new(file, start, points))
            }
            None => file,
        };
        let index = InnerIndex::new(saved.format, saved.members);
        Ok(Arc::new(InnerArchive {
            index,
            source,
            holding,
            zip: saved.zip.unwrap_or_default(),
            checks: Mutex::default(),
        }))
    }

    /// The blob an inner archive lives in and its name in the cache: the tree nodes from the
    /// artifact's entry down (`inner-7-12`).
    async fn inner_cache_name(&self, c: &Container) -> FsResult<(BlobKey, String)> {
        let mut path = Vec::new();
        let mut at = c.clone();
        loop {
            match at {
                Container::Entry(r, id, node) => {
                    path.push(node);
                    let a = self.artifact(r, id).await?;
                    let parts: Vec<String> = path.iter().rev().map(|p| p.to_string()).collect();
                    return Ok((
                        super::reading::blob_key(&a),
                        format!("inner-{}", parts.join("-")),
                    ));
                }
                Container::Inner(b, node) => {
                    path.push(node);
                    at = self.inner.container(b).ok_or(FsError::NotFound)?;
                }
            }
        }
    }

    /// `NAME.d` in a directory whose tree is `tree` (node `dir`), when `NAME` is an archive
    /// file there and no real entry is called `NAME.d`: the root of its contents, read now
    /// (a corrupt archive is EIO here, a file that is no archive by name ENOENT).
    pub(super) async fn contents_node(
        &self,
        tree: &ArchiveTree,
        dir: usize,
        name: &str,
        file: impl Fn(usize) -> Container,
        depth: usize,
    ) -> FsResult<Node> {
        let archive = archive_of_contents(name).ok_or(FsError::NotFound)?;
        let n = tree.lookup(dir, archive).ok_or(FsError::NotFound)?;
        if !matches!(tree.nodes[n].kind, NodeKind::File { .. }) || depth + 1 > MAX_DEPTH {
            return Err(FsError::NotFound);
        }
        let number = self.inner.number(file(n), depth + 1);
        self.inner(number).await?;
        Ok(Node::Inner(number, 0))
    }

    /// The level inner archive `n`'s contents are at.
    pub(super) fn inner_depth(&self, n: u32) -> usize {
        self.inner.slot(n).map_or(MAX_DEPTH, |s| s.depth)
    }

    /// A reader of member node `node` of inner archive `n`: its bytes within the archive's
    /// (an empty file for devices, fifos and links shown as files).
    pub(super) async fn inner_reader(&self, n: u32, node: usize) -> FsResult<FileReader> {
        let a = self.inner(n).await?;
        let t = a.index.tree.nodes.get(node).ok_or(FsError::NotFound)?;
        if matches!(t.kind, NodeKind::Dir { .. }) {
            return Err(FsError::IsDir);
        }
        let m = a.index.member(node).ok_or(FsError::NotFound)?;
        if a.index.format == Format::Zip && m.kind == MemberKind::File {
            return self
                .zip_member_reader(&a, t.record.unwrap_or_default())
                .await;
        }
        Ok(match m.kind {
            MemberKind::File => FileReader::over(a.source.clone(), m.offset, m.size),
            _ => FileReader::over(a.source.clone(), 0, 0),
        })
    }

    /// A reader of entry `i` of an inner zip: its local header read for where the data
    /// starts, stored bytes as a range, deflated ones inflated as they are read; CRC-32
    /// checked by the reader like an artifact's entries.
    async fn zip_member_reader(&self, a: &InnerArchive, i: usize) -> FsResult<FileReader> {
        let e = a.zip.get(i).ok_or(FsError::NotFound)?;
        check_readable(e)?;
        let start = data_offset(a.source.as_ref(), e).await?;
        let integrity = a
            .checks
            .lock()
            .unwrap()
            .entry(i)
            .or_insert_with(|| Arc::new(Integrity::new(e.name.clone(), Expected::Crc32(e.crc32))))
            .clone();
        if e.method == METHOD_STORED {
            return Ok(FileReader::checked(
                a.source.clone(),
                start,
                e.uncompressed_size,
                integrity,
            ));
        }
        let end = start + e.compressed_size;
        let inflating =
            InflatingSource::deflated(a.source.clone(), start, end, e.uncompressed_size);
        Ok(FileReader::checked(
            Arc::new(inflating),
            0,
            e.uncompressed_size,
            integrity,
        ))
    }
}

/// Whether reading an index failed for bytes that may have changed in flight (they do not
/// parse, inflate or match a check), rather than for a source that could not answer.
fn fails_a_check(e: &ArchiveError) -> bool {
    matches!(
        e,
        ArchiveError::Corrupt(_) | ArchiveError::Source(crate::error::SourceError::Integrity(_))
    )
}

/// An inner archive's index as kept in the cache: the members, and for a gzip file where its
/// deflate stream starts and its seek points. Read back only when it decodes whole.
struct Saved {
    format: Format,
    members: Vec<Member>,
    gzip: Option<(u64, SeekIndex)>,
    /// An inner zip's central directory.
    zip: Option<Vec<ZipEntry>>,
}

/// Version 2: an inner zip's symlinks are links (version 1 kept them as files).
const MAGIC: &[u8; 8] = b"AFINNER2";

impl Saved {
    /// Reads the archive in `file`: a tar header by header, a gzip one in one inflate pass.
    async fn read(file: &dyn ByteSource) -> Result<Saved, ArchiveError> {
        let head = file.read_at(0, 512.min(file.len() as usize)).await?;
        match detect(&head) {
            Some(Format::Tar) => Ok(Saved {
                format: Format::Tar,
                members: read_tar(file).await?,
                gzip: None,
                zip: None,
            }),
            Some(Format::Gzip) => {
                let mut scan = GzipScan::new(file).await?;
                let members = crate::archive::tar::read_tar_from(&mut scan).await?;
                let (start, points) = scan.finish().await?;
                // The scan could not check members against a length it did not know yet.
                if members
                    .iter()
                    .any(|m| m.offset.saturating_add(m.size) > points.size)
                {
                    return Err(crate::archive::error::corrupt(
                        "tar: a member runs past the end of the gzip stream",
                    ));
                }
                Ok(Saved {
                    format: Format::Gzip,
                    members,
                    gzip: Some((start, points)),
                    zip: None,
                })
            }
            Some(Format::Zip) => {
                let cd = read_central_directory(file).await?;
                Ok(Saved {
                    format: Format::Zip,
                    members: read_zip_members(file, &cd.entries).await?,
                    gzip: None,
                    zip: Some(cd.entries),
                })
            }
            None => Err(crate::archive::error::corrupt(
                "not a tar, gzip or zip archive",
            )),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let gzip_start = self.gzip.as_ref().map(|g| g.0);
        let meta = serde_json::to_vec(&(self.format, &self.members, gzip_start, &self.zip))
            .unwrap_or_default();
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        b.extend_from_slice(&meta);
        if let Some((_, points)) = &self.gzip {
            b.extend_from_slice(&points.encode());
        }
        b
    }

    fn decode(b: &[u8]) -> Option<Saved> {
        let rest = b.strip_prefix(MAGIC)?;
        let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
        let meta = rest.get(8..8usize.checked_add(len)?)?;
        type Meta = (Format, Vec<Member>, Option<u64>, Option<Vec<ZipEntry>>);
        let (format, members, start, zip): Meta = serde_json::from_slice(meta).ok()?;
        let tail = &rest[8 + len..];
        let gzip = match start {
            Some(start) => Some((start, SeekIndex::decode(tail)?)),
            None if tail.is_empty() => None,
            None => return None,
        };
        Some(Saved {
            format,
            members,
            gzip,
            zip,
        })
    }
}
