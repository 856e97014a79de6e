//! Property tests of the archive layer against the `zip` crate as the reference reader:
//! random archives read back identically in at most two ranged reads; mutated and truncated
//! archives never panic and never yield bytes that differ from the reference; the name
//! sanitizer and tree keep their invariants.

use std::collections::HashSet;
use std::io::{Cursor, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use artifactfs::archive::central_directory::read_central_directory;
use artifactfs::archive::entry::extract_entry_to;
use artifactfs::archive::tree::{ArchiveTree, MAX_COMPONENT, NodeKind, sanitize_components};
use artifactfs::error::SourceError;
use artifactfs::source::{ByteSource, MemorySource};
use async_trait::async_trait;
use bytes::Bytes;
use futures::executor::block_on;
use proptest::prelude::*;

/// Counts `read_at` calls.
struct Counting {
    inner: MemorySource,
    reads: AtomicUsize,
}

#[async_trait]
impl ByteSource for Counting {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read_at(offset, len).await
    }
}

#[derive(Debug, Clone)]
struct File {
    name: String,
    data: Vec<u8>,
    stored: bool,
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9é_ ]{1,8}", 1..4).prop_map(|parts| parts.join("/"))
}

fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096),
        (0usize..65536, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        (0usize..20000).prop_map(|n| (0..n).map(|i| (i % 7) as u8 + b'a').collect()),
    ]
}

fn files_strategy() -> impl Strategy<Value = Vec<File>> {
    prop::collection::vec(
        (name_strategy(), data_strategy(), any::<bool>()).prop_map(|(name, data, stored)| File {
            name,
            data,
            stored,
        }),
        1..12,
    )
}

fn write_zip(files: &[File], zip64: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let mut seen = HashSet::new();
    for f in files {
        if !seen.insert(f.name.clone()) {
            continue; // the zip crate refuses duplicate names
        }
        let method = if f.stored {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(zip64);
        w.start_file(f.name.as_str(), opts).unwrap();
        w.write_all(&f.data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// (name, size, crc, bytes) of every entry, as the zip crate reads them; `None` for an
/// entry the zip crate cannot read.
type RefEntry = (String, u64, u32, Option<Vec<u8>>);

fn reference(bytes: &[u8]) -> Option<Vec<RefEntry>> {
    let mut a = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let mut out = Vec::new();
    for i in 0..a.len() {
        let mut f = match a.by_index(i) {
            Ok(f) => f,
            Err(_) => {
                out.push((String::new(), 0, 0, None));
                continue;
            }
        };
        let (name, size, crc) = (f.name().to_string(), f.size(), f.crc32());
        let mut data = Vec::new();
        let ok = f.read_to_end(&mut data).is_ok();
        out.push((name, size, crc, ok.then_some(data)));
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn reads_what_the_zip_crate_reads(files in files_strategy(), zip64 in any::<bool>()) {
        let z = write_zip(&files, zip64);
        let src = Counting { inner: MemorySource(Bytes::from(z.clone())), reads: AtomicUsize::new(0) };
        let cd = block_on(read_central_directory(&src)).unwrap();
        prop_assert!(src.reads.load(Ordering::Relaxed) <= 2);
        let want = reference(&z).unwrap();
        prop_assert_eq!(cd.entries.len(), want.len());
        for (e, (name, size, crc, data)) in cd.entries.iter().zip(want) {
            prop_assert_eq!(&e.name, &name);
            prop_assert_eq!(e.uncompressed_size, size);
            prop_assert_eq!(e.crc32, crc);
            let mut out = Vec::new();
            block_on(extract_entry_to(&src, e, &mut out)).unwrap();
            prop_assert_eq!(Some(out), data);
        }
    }

    #[test]
    fn mutated_archives_never_panic_nor_lie(
        files in files_strategy(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut z = write_zip(&files, false);
        for (i, b) in &flips {
            let i = i.index(z.len());
            z[i] ^= b | 1;
        }
        if let Some(c) = cut {
            z.truncate(c.index(z.len()));
        }
        let src = MemorySource(Bytes::from(z.clone()));
        let Ok(cd) = block_on(read_central_directory(&src)) else { return Ok(()) };
        let reference = reference(&z);
        let tree = ArchiveTree::build(&cd.entries);
        prop_assert!(!tree.nodes.is_empty());
        for (i, e) in cd.entries.iter().enumerate() {
            let mut out = Vec::new();
            let Ok(n) = block_on(extract_entry_to(&src, e, &mut out)) else { continue };
            // Whatever we return is exactly what the entry declares, CRC included.
            prop_assert_eq!(n, e.uncompressed_size);
            prop_assert_eq!(crc32fast::hash(&out), e.crc32);
            // And when the reference reads the same entry, it reads the same bytes.
            if let Some(Some((name, _, crc, Some(data)))) = reference.as_ref().map(|r| r.get(i).cloned())
                && name == e.name && crc == e.crc32 {
                    prop_assert_eq!(&out, &data);
                }
        }
    }

    #[test]
    fn sanitized_names_stay_inside(name in any::<String>(), raw in ".*") {
        for n in [&name, &raw] {
            let comps = sanitize_components(n);
            prop_assert_eq!(&comps, &sanitize_components(n), "deterministic");
            for c in &comps {
                prop_assert!(!c.is_empty());
                prop_assert!(c != "." && c != "..");
                prop_assert!(!c.contains('/') && !c.contains('\\') && !c.contains('\0'));
                prop_assert!(!c.chars().any(char::is_control));
                prop_assert!(c.len() <= MAX_COMPONENT);
            }
        }
    }

    #[test]
    fn trees_have_unique_names_and_every_file(names in prop::collection::vec(
        prop_oneof![
            "[ab./\\\\]{0,6}",
            "(x|y|\\.\\.)(/(x|y|z|\\.)){0,3}/?",
        ], 1..40)) {
        let entries: Vec<_> = names.iter().map(|n| artifactfs_entry(n)).collect();
        let tree = ArchiveTree::build(&entries);
        let mut files = Vec::new();
        for (id, node) in tree.nodes.iter().enumerate() {
            if let NodeKind::Dir { children } = &node.kind {
                let mut seen = HashSet::new();
                for &c in children {
                    prop_assert!(seen.insert(tree.nodes[c].name.clone()), "duplicate in {}", tree.path(id));
                    prop_assert_eq!(tree.nodes[c].parent, id);
                    prop_assert_eq!(tree.lookup(id, &tree.nodes[c].name), Some(c));
                }
            } else if let NodeKind::File { entry } = node.kind {
                files.push(entry);
            }
        }
        files.sort();
        let want: Vec<usize> = (0..entries.len()).filter(|&i| !entries[i].is_dir).collect();
        prop_assert_eq!(files, want);
    }
}

fn artifactfs_entry(name: &str) -> artifactfs::archive::central_directory::ZipEntry {
    artifactfs::archive::central_directory::ZipEntry::named(name)
}
