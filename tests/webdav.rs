//! `artifactfs serve --webdav` (shared/contract.md, the WebDAV paragraph of "Serving over
//! HTTP"): OPTIONS, PROPFIND depth 0 and 1 parsed as RFC 4918 multistatus XML by a real XML
//! parser (names with spaces, `%`, `#` and non-ASCII in their hrefs), `Depth: infinity`
//! refused, views answered as their targets, every write refused with nothing sent to
//! GitHub. Requests are made with curl (PROPFIND answers are streamed, chunked).

mod common;

use std::collections::BTreeMap;

use common::serve::Server;
use common::*;

const REPO: &str = "octo-org/hello";
const SITE: &str = "/octo-org/hello/runs/42/site/";

const FILES: [(&str, &[u8]); 5] = [
    ("index.txt", b"home\n"),
    ("a b.txt", b"space\n"),
    ("100%.txt", b"percent\n"),
    ("c#1.txt", b"hash\n"),
    ("\u{e9}t\u{e9}.txt", b"accents\n"),
];

fn server() -> (fake_github::FakeGitHub, Server) {
    let gh = start_fake();
    let mut z = fake_github::zipgen::ZipBuilder::new();
    for (name, data) in FILES {
        z.add(name, data);
    }
    z.add("sub/deep.txt", b"deep\n");
    add_hello(&gh, "site", 42, z.finish());
    let s = Daemon::new(&gh, REPO).arg("--webdav").serve();
    (gh, s)
}

/// `curl -X METHOD` with headers: (status, headers lower-cased, body).
fn curl(s: &Server, method: &str, path: &str, headers: &[&str]) -> (u16, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let mut cmd = format!(
        "curl -s -g -X {method} -D '{}' -o '{}' -w '%{{http_code}}'",
        h.display(),
        b.display()
    );
    for x in headers {
        cmd.push_str(&format!(" -H '{x}'"));
    }
    cmd.push_str(&format!(" 'http://{}{path}'", s.addr));
    let (ok, out, err) = sh(&cmd);
    assert!(ok, "{cmd}: {err}");
    (
        out.trim().parse().unwrap(),
        std::fs::read_to_string(&h).unwrap().to_ascii_lowercase(),
        std::fs::read_to_string(&b).unwrap_or_default(),
    )
}

/// A multistatus answer: href → (is a collection, getcontentlength, every property name).
fn multistatus(xml: &str) -> BTreeMap<String, (bool, Option<u64>, Vec<String>)> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    const DAV: &str = "DAV:";
    let root = doc.root_element();
    assert!(root.has_tag_name((DAV, "multistatus")), "{xml}");
    let mut out = BTreeMap::new();
    for r in root
        .children()
        .filter(|n| n.has_tag_name((DAV, "response")))
    {
        let href = r
            .children()
            .find(|n| n.has_tag_name((DAV, "href")))
            .and_then(|n| n.text())
            .expect("href")
            .to_string();
        let mut names = Vec::new();
        let (mut collection, mut len) = (false, None);
        for p in r.descendants().filter(|n| n.has_tag_name((DAV, "prop"))) {
            for prop in p.children().filter(|n| n.is_element()) {
                names.push(prop.tag_name().name().to_string());
                if prop.has_tag_name((DAV, "resourcetype")) {
                    collection |= prop.children().any(|c| c.has_tag_name((DAV, "collection")));
                }
                if prop.has_tag_name((DAV, "getcontentlength")) {
                    len = prop.text().and_then(|t| t.trim().parse().ok());
                }
            }
        }
        out.insert(href, (collection, len, names));
    }
    out
}

#[test]
fn options_and_propfind_describe_the_tree() {
    let _w = Watchdog::arm("webdav propfind", 120);
    let (_gh, s) = server();
    let (status, headers, _) = curl(&s, "OPTIONS", SITE, &[]);
    assert_eq!(status, 200);
    assert!(headers.contains("\ndav: 1"), "{headers}");
    let allow = headers
        .lines()
        .find(|l| l.starts_with("allow:"))
        .unwrap_or_else(|| panic!("no Allow: {headers}"));
    assert!(
        allow.contains("propfind") && !allow.contains("put"),
        "{allow}"
    );

    // Depth 0: the folder itself.
    let (status, _, body) = curl(&s, "PROPFIND", SITE, &["Depth: 0"]);
    assert_eq!(status, 207, "{body}");
    let ms = multistatus(&body);
    assert_eq!(ms.keys().collect::<Vec<_>>(), vec![SITE]);
    assert!(ms[SITE].0, "a collection");

    // Depth 1: every member, names encoded in their hrefs, with the contract's properties.
    let (status, _, body) = curl(&s, "PROPFIND", SITE, &["Depth: 1"]);
    assert_eq!(status, 207, "{body}");
    let ms = multistatus(&body);
    for (name, data) in FILES {
        let href = format!("{SITE}{}", artifactfs_encode(name));
        let (collection, len, props) = ms
            .get(&href)
            .unwrap_or_else(|| panic!("{href} not in {:?}", ms.keys()));
        assert!(!collection);
        assert_eq!(*len, Some(data.len() as u64), "{href}");
        for p in [
            "resourcetype",
            "getcontentlength",
            "getlastmodified",
            "getetag",
            "getcontenttype",
            "displayname",
        ] {
            assert!(props.iter().any(|n| n == p), "{href}: no {p} in {props:?}");
        }
    }
    assert!(ms[&format!("{SITE}sub/")].0, "{:?}", ms.keys());
    assert_eq!(ms.len(), FILES.len() + 2, "{:?}", ms.keys());

    // Depth: infinity (and no Depth, which means it) is refused.
    assert_eq!(curl(&s, "PROPFIND", SITE, &["Depth: infinity"]).0, 403);
    assert_eq!(curl(&s, "PROPFIND", SITE, &[]).0, 403);
    // A path that is not there.
    assert_eq!(
        curl(
            &s,
            "PROPFIND",
            "/octo-org/hello/runs/42/nope/",
            &["Depth: 0"]
        )
        .0,
        404
    );
}

/// A multistatus answer's `getetag` of each href that has one.
fn getetags(xml: &str) -> BTreeMap<String, String> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let mut out = BTreeMap::new();
    for r in doc
        .descendants()
        .filter(|n| n.has_tag_name(("DAV:", "response")))
    {
        let text = |tag: &str| {
            r.descendants()
                .find(|n| n.has_tag_name(("DAV:", tag)))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        if let (Some(href), Some(tag)) = (text("href"), text("getetag")) {
            out.insert(href, tag);
        }
    }
    out
}

/// A client that caches by `getetag` (davfs2 compares it with the `ETag` of its last `GET`)
/// sees a file unchanged: PROPFIND's `getetag` is the `ETag` a `GET` of the same path sends,
/// in the artifact's folder and through a view.
#[test]
fn getetag_is_the_etag_a_get_sends() {
    let _w = Watchdog::arm("webdav getetag", 120);
    let (_gh, s) = server();
    for dir in [SITE, "/octo-org/hello/latest/site/"] {
        let (status, _, body) = curl(&s, "PROPFIND", dir, &["Depth: 1"]);
        assert_eq!(status, 207, "{body}");
        let tags = getetags(&body);
        for (name, _) in FILES {
            let href = format!("{dir}{}", artifactfs_encode(name));
            let tag = tags
                .get(&href)
                .unwrap_or_else(|| panic!("no getetag for {href}: {tags:?}"));
            let (status, headers, _) = curl(&s, "GET", &href, &[]);
            assert_eq!(status, 200, "{href}");
            let etag = headers
                .lines()
                .find_map(|l| l.strip_prefix("etag: "))
                .unwrap_or_else(|| panic!("no ETag for {href}: {headers}"))
                .trim();
            assert_eq!(tag, etag, "{href}");
        }
        // Depth 0 on one file says the same.
        let one = format!("{dir}{}", artifactfs_encode(FILES[1].0));
        let (_, _, body) = curl(&s, "PROPFIND", &one, &["Depth: 0"]);
        assert_eq!(getetags(&body).get(&one), tags.get(&one), "{body}");
    }
}

/// How a name appears in an href: percent-encoded but for unreserved characters.
fn artifactfs_encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn views_answer_as_their_targets_and_writes_are_refused() {
    let _w = Watchdog::arm("webdav views", 120);
    let (gh, s) = server();
    let latest = "/octo-org/hello/latest/site/";
    let (status, _, body) = curl(&s, "PROPFIND", latest, &["Depth: 1"]);
    assert_eq!(status, 207, "{body}");
    let ms = multistatus(&body);
    assert!(ms[latest].0, "the view's link is a collection here");
    assert!(
        ms.contains_key(&format!("{latest}index.txt")),
        "members under the view's path: {:?}",
        ms.keys()
    );
    // The view's folder from its parent: a collection, not a link.
    let (status, _, body) = curl(&s, "PROPFIND", "/octo-org/hello/latest/", &["Depth: 1"]);
    assert_eq!(status, 207);
    assert!(multistatus(&body)[latest].0);
    // GET through the view: 200 with the bytes (no redirect).
    let (status, _, body) = curl(&s, "GET", &format!("{latest}index.txt"), &[]);
    assert_eq!((status, body.as_str()), (200, "home\n"));

    for method in [
        "PUT",
        "DELETE",
        "MKCOL",
        "MOVE",
        "COPY",
        "PROPPATCH",
        "LOCK",
    ] {
        for path in [SITE, "/octo-org/hello/runs/42/site.zip", latest] {
            let (status, _, _) = curl(&s, method, path, &["Destination: /x"]);
            assert!((400..500).contains(&status), "{method} {path}: {status}");
        }
    }
    assert_eq!(gh.counters().delete_requests, 0, "nothing sent to GitHub");
    assert_eq!(
        curl(&s, "GET", "/octo-org/hello/runs/42/site/index.txt", &[]).0,
        200
    );
}

/// The files of the `site` artifact written to a local folder (what `rclone check` compares).
fn originals(dir: &std::path::Path) {
    for (name, data) in FILES {
        std::fs::write(dir.join(name), data).unwrap();
    }
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/deep.txt"), b"deep\n").unwrap();
}

/// rclone's webdav backend (an on-the-fly remote, no config file).
fn rclone(s: &Server, path: &str, args: &str) -> (bool, String, String) {
    sh(&format!(
        "RCLONE_CONFIG=/dev/null rclone --webdav-url 'http://{}{path}' {args}",
        s.addr
    ))
}

#[test]
fn rclone_lists_checks_and_reads_the_tree() {
    let _w = Watchdog::arm("webdav rclone", 120);
    require_command("rclone");
    let (gh, s) = server();
    let (ok, out, err) = rclone(&s, SITE, "lsf -R :webdav:");
    assert!(ok, "{err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
    want.extend(["sub/".to_string(), "sub/deep.txt".to_string()]);
    want.sort();
    assert_eq!(got, want);
    // Every file's bytes against the originals.
    let local = tempfile::tempdir().unwrap();
    originals(local.path());
    let (ok, out, err) = rclone(
        &s,
        SITE,
        &format!("check --download '{}' :webdav:", local.path().display()),
    );
    assert!(ok, "{out}{err}");
    // Through a view, as its target.
    let (ok, out, err) = rclone(&s, "/octo-org/hello/latest/site/", "cat ':webdav:c#1.txt'");
    assert!(ok, "{err}");
    assert_eq!(out, "hash\n");
    // A write is refused and nothing is sent to GitHub.
    let (ok, _, _) = rclone(&s, SITE, "delete ':webdav:index.txt'");
    assert!(!ok, "rclone delete succeeded");
    assert_eq!(gh.counters().delete_requests, 0);
}

#[test]
fn cadaver_lists_gets_and_reads_properties() {
    let _w = Watchdog::arm("webdav cadaver", 120);
    require_command("cadaver");
    let (_gh, s) = server();
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got.txt");
    let script = dir.path().join("script");
    std::fs::write(
        &script,
        format!(
            "ls\nget 'a b.txt' {}\npropget index.txt\nquit\n",
            got.display()
        ),
    )
    .unwrap();
    let (_, out, err) = sh(&format!(
        "cadaver 'http://{}{SITE}' < '{}'",
        s.addr,
        script.display()
    ));
    for (name, _) in FILES {
        assert!(out.contains(name), "ls lists {name}: {out}{err}");
    }
    assert!(out.contains("Coll:") && out.contains("sub"), "{out}");
    assert_eq!(std::fs::read(&got).unwrap(), b"space\n", "{out}{err}");
    assert!(out.contains("getcontentlength = 5"), "{out}");
    assert!(out.contains("displayname = index.txt"), "{out}");
}

/// A davfs2 mount of `serve --webdav`, unmounted (umount.davfs waits for the daemon) when
/// dropped.
struct Davfs {
    dir: tempfile::TempDir,
}

impl Davfs {
    /// `mount.davfs URL MNT` with a davfs2.conf of its own: the cache in the test's temporary
    /// directory, and `buf_size 256`. davfs2 1.6.1's default buffer for the FUSE device
    /// (16 KiB + a page) is smaller than the readdir requests Linux 6.18 sends (the caller's
    /// getdents buffer, 32 KiB from glibc), and davfs2 answers those with EINVAL: every
    /// listing fails without it. No username or password (two empty answers on stdin).
    fn mount(url: &str) -> Davfs {
        let dir = tempfile::tempdir().unwrap();
        let (mnt, cache, conf) = (
            dir.path().join("mnt"),
            dir.path().join("cache"),
            dir.path().join("davfs2.conf"),
        );
        std::fs::create_dir(&mnt).unwrap();
        // mount.davfs run by root serves as its dav_user (davfs2): the cache must be
        // reachable and writable for it, and goes away with the temporary directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir(&cache).unwrap();
        for (p, mode) in [(dir.path(), 0o755), (cache.as_path(), 0o777)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::write(
            &conf,
            format!(
                "buf_size 256\ncache_dir {}\ncache_size 512\nuse_locks 0\nread_timeout 300\n",
                cache.display()
            ),
        )
        .unwrap();
        let cmd = format!(
            "printf '\\n\\n' | mount.davfs -o conf='{}' '{url}' '{}'",
            conf.display(),
            mnt.display()
        );
        let (ok, out, err) = sh(&cmd);
        assert!(ok, "{cmd}: {out}{err} (mount.davfs needs root here)");
        Davfs { dir }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join("mnt").join(rel)
    }
}

impl Drop for Davfs {
    fn drop(&mut self) {
        let _ = sh(&format!("umount '{}'", self.path("").display()));
    }
}

#[test]
fn davfs2_mounts_lists_and_reads_every_file() {
    let _w = Watchdog::arm("webdav davfs2", 600);
    require_command("mount.davfs");
    let gh = start_fake();
    let mut z = fake_github::zipgen::ZipBuilder::new();
    for (name, data) in FILES {
        z.add(name, data);
    }
    z.add("sub/deep.txt", b"deep\n");
    add_hello(&gh, "site", 42, z.finish());
    let big = noise(128 << 20, 22);
    let mut z = fake_github::zipgen::ZipBuilder::new();
    z.add_with("big.bin", &big, fake_github::zipgen::EntryOptions::stored());
    add_hello(&gh, "big", 43, z.finish());
    let s = Daemon::new(&gh, REPO).arg("--webdav").serve();
    let m = Davfs::mount(&format!("http://{}/octo-org/hello/", s.addr));

    // find: every file and folder of the artifact, names as they are.
    let site = m.path("runs/42/site");
    let (ok, out, err) = sh(&format!("cd '{}' && find . | sort", site.display()));
    assert!(ok, "find: {err}");
    let mut want: Vec<String> = FILES.iter().map(|(n, _)| format!("./{n}")).collect();
    want.extend([".", "./sub", "./sub/deep.txt"].map(String::from));
    want.sort();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    // A view, as its target.
    let (ok, out, err) = sh(&format!("ls '{}'", m.path("latest/site/sub").display()));
    assert!(ok, "{err}");
    assert_eq!(out, "deep.txt\n");

    // sha256sum of every file, against the originals.
    let (ok, out, err) = sh(&format!(
        "cd '{}' && find . -type f -print0 | xargs -0 sha256sum",
        site.display()
    ));
    assert!(ok, "sha256sum: {err}");
    let got: BTreeMap<&str, &str> = out
        .lines()
        .map(|l| {
            let (sum, name) = l.split_once("  ").unwrap();
            (name.trim_start_matches("./"), sum)
        })
        .collect();
    let mut want: BTreeMap<&str, String> = FILES.iter().map(|(n, d)| (*n, sha256(d))).collect();
    want.insert("sub/deep.txt", sha256(b"deep\n"));
    assert_eq!(got, want.iter().map(|(n, s)| (*n, s.as_str())).collect());

    // cat of the 128 MiB entry.
    let (ok, out, err) = sh(&format!(
        "bash -o pipefail -c \"cat '{}' | sha256sum\"",
        m.path("runs/43/big/big.bin").display()
    ));
    assert!(ok, "cat: {err}");
    assert_eq!(out.split_whitespace().next(), Some(sha256(&big).as_str()));

    // Writes are refused: what davfs2 sends the server gets 405 (mkdir, rmdir, mv fail).
    // davfs2 1.6.1 writes a new file to its cache and uploads it later (its PUT is refused
    // then, after `echo` returned 0), and takes a 405 to DELETE as "already gone" (`rm`
    // returns 0 and hides the file in that mount until it lists the folder again): the
    // server has no new file, deleted nothing, and GitHub got no request.
    for cmd in [
        format!("mkdir '{}'", site.join("new").display()),
        format!("rmdir '{}'", site.join("sub").display()),
        format!(
            "mv '{}' '{}'",
            site.join("a b.txt").display(),
            site.join("b.txt").display()
        ),
    ] {
        let (ok, _, _) = sh(&cmd);
        assert!(!ok, "{cmd} succeeded");
    }
    let _ = sh(&format!("echo x > '{}'", site.join("new.txt").display()));
    let _ = sh(&format!("rm '{}'", site.join("index.txt").display()));
    assert_eq!(gh.counters().delete_requests, 0, "nothing sent to GitHub");
    assert_eq!(std::fs::read(site.join("a b.txt")).unwrap(), b"space\n");
    let (status, _, body) = curl(&s, "GET", "/octo-org/hello/runs/42/site/index.txt", &[]);
    assert_eq!((status, body.as_str()), (200, "home\n"));
    let (status, _, _) = curl(&s, "GET", "/octo-org/hello/runs/42/site/new.txt", &[]);
    assert_eq!(status, 404);
}

/// Fails (never skips) when a client the tests need is missing: scripts/install-deps.sh
/// installs it.
fn require_command(name: &str) {
    let (ok, _, _) = sh(&format!("command -v {name}"));
    assert!(ok, "{name} is missing: run scripts/install-deps.sh");
}
