//! The `site` artifact of the `serve` tests (run 42, branch `feature/x`): a small web report
//! with a file of every content type `serve` names, a stored binary, and nested folders.

use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
use fake_github::{FakeArtifactSpec, FakeGitHub};

use super::serve::Server;
use super::{Daemon, start_fake};

pub const REPO: &str = "octo-org/hello";
pub const SITE: &str = "/octo-org/hello/runs/42/site";

/// The files of the `site` artifact (run 42, branch `feature/x`) with their content types.
pub fn site_files() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        (
            "index.html",
            b"<!doctype html><p>site home</p>\n".to_vec(),
            "text/html; charset=utf-8",
        ),
        (
            "style.css",
            b"p{color:red}\n".to_vec(),
            "text/css; charset=utf-8",
        ),
        (
            "app.js",
            b"console.log(1);\n".to_vec(),
            "text/javascript; charset=utf-8",
        ),
        ("data.json", b"{\"ok\":true}\n".to_vec(), "application/json"),
        (
            "logo.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n".to_vec(),
            "image/svg+xml",
        ),
        ("img.png", noise(3000, 1), "image/png"),
        ("photo.jpg", noise(3001, 2), "image/jpeg"),
        ("anim.gif", noise(3002, 3), "image/gif"),
        ("doc.pdf", noise(3003, 4), "application/pdf"),
        (
            "notes.txt",
            b"some notes\n".to_vec(),
            "text/plain; charset=utf-8",
        ),
        (
            "build.log",
            log_text(50_000, 5),
            "text/plain; charset=utf-8",
        ),
        ("blob.bin", noise(100_000, 6), "application/octet-stream"),
        (
            "docs/aaa.txt",
            b"first by name\n".to_vec(),
            "text/plain; charset=utf-8",
        ),
        (
            "docs/guide.txt",
            b"the guide\n".to_vec(),
            "text/plain; charset=utf-8",
        ),
        (
            "docs/sub/deep.txt",
            b"deep\n".to_vec(),
            "text/plain; charset=utf-8",
        ),
    ]
}

pub fn site_zip() -> Vec<u8> {
    let mut z = ZipBuilder::new();
    for (name, data, _) in site_files() {
        if name == "blob.bin" {
            z.add_with(name, &data, EntryOptions::stored());
        } else {
            z.add(name, &data);
        }
    }
    z.finish()
}

pub fn file(name: &str) -> Vec<u8> {
    site_files()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .unwrap()
        .1
}

/// Adds `site` (run 42, branch `feature/x`); returns its id.
pub fn add_site(gh: &FakeGitHub) -> u64 {
    gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "site", 42, site_zip()).branch("feature/x"),
    )
}

/// The fake with `site` and a server in front of it.
pub fn site_server() -> (FakeGitHub, Server, u64) {
    let gh = start_fake();
    let id = add_site(&gh);
    let s = Daemon::new(&gh, REPO).serve();
    (gh, s, id)
}
