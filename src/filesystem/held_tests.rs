//! Core tests of what listings hold ([`super::held`]): `ls -l` of a folder (and `serve`'s
//! page of it) costs its listing and its archive's central directory once, and nothing
//! after; extended attributes follow a refreshed listing. Counts of remote calls and of
//! what was built, never wall time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fake_github::zipgen::ZipBuilder;

use super::tests::{core_for, resolve};
use super::*;
use crate::github::ArtifactKind;
use crate::github::memory_remote::MemoryRemote;

const FILES: usize = 1000;

fn thousand_files() -> Vec<u8> {
    let mut z = ZipBuilder::new();
    for i in 0..FILES {
        z.add(
            &format!("many/f{i:04}.txt"),
            format!("file {i}\n").as_bytes(),
        );
    }
    z.finish()
}

/// What GNU `ls -l DIR` asks of the core: the listing, then each entry's lookup, its
/// attributes, and the two extended attributes it asks of every file (names that never
/// exist, answered without the node) plus what `getfattr -d` asks (listxattr). Returns how
/// many of the entries' xattrs were answered from memory without waiting.
async fn ls_l(fs: &ArtifactFs, dir: Ino) -> usize {
    let mut from_memory = 0;
    let entries = fs.readdir(dir).await.unwrap();
    assert_eq!(entries.len(), FILES);
    for e in entries {
        let a = fs.lookup(dir, &e.name).await.unwrap();
        assert_eq!(fs.getattr(a.ino).await.unwrap().size, a.size);
        for name in ["security.selinux", "system.posix_acl_access"] {
            assert!(!xattrs::may_exist(name));
        }
        if let Some(held) = fs.xattrs_now(a.ino) {
            let held = held.unwrap();
            assert!(held.iter().any(|(k, _)| k == "user.zip.crc32"), "{held:?}");
            from_memory += 1;
        }
        assert_eq!(fs.xattrs(a.ino).await.unwrap().len(), 3);
    }
    from_memory
}

/// A repository of one artifact (`runs/100/many/`) of a thousand files.
fn thousand_file_remote() -> Arc<MemoryRemote> {
    let remote = Arc::new(MemoryRemote::default());
    remote.add(
        1,
        "many",
        100,
        "main",
        1,
        thousand_files(),
        ArtifactKind::Zip,
    );
    remote
}

#[tokio::test]
async fn ls_l_of_a_thousand_files_costs_no_listing_or_api_work_after_the_first() {
    let remote = thousand_file_remote();
    let (fs, _dir) = core_for(remote.clone(), Duration::from_secs(3600), false);
    let dir = resolve(&fs, "octo/hello/runs/100/many/many").await.unwrap();
    ls_l(&fs, dir.ino).await;

    let work = || {
        (
            remote.list_calls.load(Ordering::SeqCst),
            remote.kind_calls.load(Ordering::SeqCst),
            remote.owner_calls.load(Ordering::SeqCst),
            remote.blob_bytes.load(Ordering::SeqCst),
            fs.held_builds(),
        )
    };
    let first = work();
    assert_eq!(first.0, 1, "one listing");
    assert_eq!(
        first.4, 2,
        "the artifact's xattrs built and its index asked for once, for all 1000 files"
    );
    for _ in 0..3 {
        assert_eq!(
            ls_l(&fs, dir.ino).await,
            FILES,
            "xattrs answered from memory"
        );
        assert_eq!(
            work(),
            first,
            "(list, probe, owner calls, blob bytes, builds)"
        );
    }
    // The artifact's own attributes, too.
    let artifact = resolve(&fs, "octo/hello/runs/100/many").await.unwrap();
    let held = fs.xattrs_now(artifact.ino).expect("held").unwrap();
    assert!(held.contains(&("user.artifact.id".into(), "1".into())));
    assert_eq!(work(), first);
}

#[tokio::test]
async fn held_xattrs_follow_a_refreshed_listing() {
    let remote = thousand_file_remote();
    // TTL zero: every listing is due for a refresh as soon as it is made.
    let (fs, _dir) = core_for(remote.clone(), Duration::ZERO, false);
    let artifact = resolve(&fs, "octo/hello/runs/100/many").await.unwrap();
    let expires = |x: &held::Xattrs| {
        x.iter()
            .find(|(k, _)| k == "user.artifact.expires_at")
            .map(|(_, v)| v.clone())
    };
    let before = fs.xattrs(artifact.ino).await.unwrap();
    assert_eq!(expires(&before).as_deref(), Some("2024-04-01T00:00:00Z"));
    assert!(
        fs.xattrs_now(artifact.ino).is_none(),
        "a listing due for a refresh is not answered from without the runtime"
    );
    remote.edit(1, |a| a.expires_at = Some("2024-05-01T00:00:00Z".into()));
    let mut seen = None;
    for _ in 0..1000 {
        seen = expires(&fs.xattrs(artifact.ino).await.unwrap());
        if seen.as_deref() == Some("2024-05-01T00:00:00Z") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen.as_deref(), Some("2024-05-01T00:00:00Z"));
}
