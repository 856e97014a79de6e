//! Archives inside an artifact through a real mount (shared/contract.md, "Tree"): a zip
//! artifact holding `dist.tar` (the advice upload-artifact gives for keeping modes and
//! symlinks) opens at `dist.tar.d/` with the tarball's bytes, modes, links and times; the
//! executable runs from the mount; `ls` and `cp -r` see the artifact exactly as uploaded.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;
use fake_github::zipgen::ZipBuilder;

/// The tree a build produces: an executable, a library file, a link to the executable, a
/// nested directory. Returns the source directory.
fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("share/doc/deep")).unwrap();
    fs::write(root.join("bin/tool"), "#!/bin/sh\necho \"tool 1.0 $1\"\n").unwrap();
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("share/doc/README"), "read me\n").unwrap();
    fs::write(root.join("share/doc/deep/noise.bin"), noise(200_000, 3)).unwrap();
    std::os::unix::fs::symlink("tool", root.join("bin/run")).unwrap();
    std::os::unix::fs::symlink("../../bin/tool", root.join("share/doc/tool")).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn tar_of(root: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", root).unwrap();
    b.into_inner().unwrap()
}

/// Relative paths of every file and link below `root` (no directories).
fn files_below(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                todo.push(e.path());
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_owned();
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn a_tarball_in_an_artifact_is_browsable_runnable_and_copies_as_uploaded() {
    require_fuse();
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("tree");
    build_tree(&tree);
    let tar = tar_of(&tree);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("dist.tar", &tar);
    z.add("dist.tgz", &gzip(&tar));
    z.add("notes.txt", b"notes\n");
    add_hello(&gh, "dist", 1, z.finish());
    let m = Daemon::new(&gh, "octo-org/hello").mount();
    let art = m.path("octo-org/hello/runs/1/dist");

    // Listings show the artifact as uploaded; the contents are there by path.
    let listed: BTreeSet<String> = fs::read_dir(&art)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed,
        ["dist.tar", "dist.tgz", "notes.txt"]
            .map(String::from)
            .into()
    );
    for d in ["dist.tar.d", "dist.tgz.d"] {
        check_contents(&art.join(d), &tree);
    }

    // The file says where its contents are.
    let (ok, out, err) = sh(&format!(
        "getfattr --only-values -n user.archive.contents '{}'",
        art.join("dist.tar").display()
    ));
    assert!(ok, "{err}");
    assert_eq!(out, "dist.tar.d");

    // cp -r copies exactly what was uploaded, no contents directories.
    let out = src.path().join("out");
    let (ok, _, err) = sh(&format!("cp -r '{}/' '{}'", art.display(), out.display()));
    assert!(ok, "{err}");
    assert_eq!(
        files_below(&out),
        ["dist.tar", "dist.tgz", "notes.txt"]
            .map(String::from)
            .into()
    );
    assert_eq!(fs::read(out.join("dist.tar")).unwrap(), tar);
    // And the contents copy like any directory.
    let inner = src.path().join("inner");
    let d = art.join("dist.tgz.d");
    let (ok, _, err) = sh(&format!("cp -a '{}' '{}'", d.display(), inner.display()));
    assert!(ok, "{err}");
    assert_eq!(files_below(&inner), files_below(&tree));
    m.unmount();
}

/// The contents directory `d` shows `tree`: bytes, modes and times, links, a runnable tool.
fn check_contents(d: &Path, tree: &Path) {
    assert!(fs::metadata(d).unwrap().is_dir());
    // Bytes, modes and times as in the tree that was tarred.
    for rel in ["bin/tool", "share/doc/README", "share/doc/deep/noise.bin"] {
        let (orig, shown) = (tree.join(rel), d.join(rel));
        assert_eq!(
            sha256(&fs::read(&shown).unwrap()),
            sha256(&fs::read(&orig).unwrap()),
            "{rel}"
        );
        let (om, sm) = (fs::metadata(&orig).unwrap(), fs::metadata(&shown).unwrap());
        assert_eq!(
            sm.mode() & 0o7777,
            om.mode() & 0o555,
            "{rel}: write bits cleared"
        );
        assert_eq!(sm.mtime(), om.mtime(), "{rel}");
        assert_eq!(sm.len(), om.len(), "{rel}");
    }
    // Links as links, with their targets, followed by the kernel.
    assert_eq!(fs::read_link(d.join("bin/run")).unwrap(), Path::new("tool"));
    assert_eq!(
        fs::read_link(d.join("share/doc/tool")).unwrap(),
        Path::new("../../bin/tool")
    );
    assert_eq!(
        fs::read(d.join("share/doc/tool")).unwrap(),
        fs::read(tree.join("bin/tool")).unwrap()
    );
    // The executable runs from the mount, directly and through its link.
    for exe in ["bin/tool", "bin/run"] {
        let out = Command::new(d.join(exe)).arg("--version").output().unwrap();
        assert!(out.status.success(), "{exe}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "tool 1.0 --version\n");
    }
}

#[test]
fn serve_links_an_archive_to_its_contents_and_pages_them_like_any_folder() {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (
            "report/index.html",
            &b"<html><body>coverage 93%</body></html>\n"[..],
        ),
        ("report/style.css", &b"body { color: black }\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, data).unwrap();
    }
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("report.tar.gz", &gzip(&b.into_inner().unwrap()));
    add_hello(&gh, "site", 1, z.finish());
    let mut s = Daemon::new(&gh, "octo-org/hello").serve();
    let base = "/octo-org/hello/runs/1/site";
    let r = s.get(&format!("{base}/"));
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(
        r.text().contains("href=\"report.tar.gz.d/\""),
        "{}",
        r.text()
    );
    let r = s.get(&format!("{base}/?format=json"));
    assert!(
        r.text().contains("\"contents\": \"report.tar.gz.d/\""),
        "{}",
        r.text()
    );
    // The folder inside: a report opens at its folder, its listing on request.
    let r = s.get(&format!("{base}/report.tar.gz.d/report/"));
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.text(), "<html><body>coverage 93%</body></html>\n");
    let r = s.get(&format!("{base}/report.tar.gz.d/report/?list"));
    assert!(r.text().contains("href=\"style.css\""), "{}", r.text());
    let r = s.get(&format!("{base}/report.tar.gz.d/report/style.css"));
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.body, b"body { color: black }\n");
    // Paths never leave the contents folder.
    let r = s.get(&format!("{base}/report.tar.gz.d/%2e%2e/%2e%2e/x"));
    assert!(r.status == 404 || r.status == 400, "{}", r.raw);
    assert!(s.stop());
}
