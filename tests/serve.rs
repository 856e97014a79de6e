//! `artifactfs serve` over HTTP against the fake GitHub (docs/serve.md): listings (HTML and
//! JSON), content types, validators and 304, ranges, HEAD, redirects, 405, paths that try to
//! leave the tree, the token never shown, a changed byte aborting the connection, and the same
//! blob bytes as `cat` through the mount.

mod common;

use common::serve::{Resp, request, start_reading};
use common::site::*;
use common::*;
use fake_github::{FakeConfig, FakeGitHub, Faults, TokenAccess};

const MIB: usize = 1 << 20;

fn ok(r: &Resp, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.raw);
    assert!(r.complete, "{what}: body cut short");
}

#[test]
fn listings_show_folders_first_sizes_breadcrumbs_and_the_zip() {
    let (_gh, s, _) = site_server();
    let r = s.get(&format!("{SITE}/docs/"));
    ok(&r, "listing");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    // Folders first, though `aaa.txt` sorts before `sub`.
    let sub = page.find("href=\"sub/\"").expect("sub/ listed");
    let aaa = page.find("href=\"aaa.txt\"").expect("aaa.txt listed");
    let guide = page.find("href=\"guide.txt\"").expect("guide.txt listed");
    assert!(sub < aaa && aaa < guide, "{page}");
    // Sizes (exact in the title, readable in the cell) and times.
    assert!(page.contains("title=\"14 bytes\">14 B<"), "{page}");
    assert!(page.contains("2024-") || page.contains("20"), "{page}");
    // Breadcrumbs to every level, and the artifact's archive.
    for crumb in [
        "/",
        "/octo-org/",
        "/octo-org/hello/",
        "/octo-org/hello/runs/",
        "/octo-org/hello/runs/42/",
        "/octo-org/hello/runs/42/site/",
    ] {
        assert!(
            page.contains(&format!("href=\"{crumb}\"")),
            "{crumb}: {page}"
        );
    }
    assert!(
        page.contains("href=\"/octo-org/hello/runs/42/site.zip\""),
        "{page}"
    );
    // Plain: a viewport for phones, nothing loaded from elsewhere.
    assert!(page.contains("<meta name=\"viewport\""));
    for external in ["http://", "https://", "src=", "<link", "<script", "@import"] {
        assert!(!page.contains(external), "{external} in {page}");
    }
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );

    // The run lists the artifact's folder with a link to its zip, and the zip itself.
    let run = s.get("/octo-org/hello/runs/42/").text();
    assert!(run.contains("href=\"site/\""), "{run}");
    assert!(run.contains("href=\"site.zip\""), "{run}");

    // JSON: the same entries.
    let r = s.get(&format!("{SITE}/docs/?format=json"));
    ok(&r, "json");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["path"], format!("{SITE}/docs/"));
    assert_eq!(v["zip"], "/octo-org/hello/runs/42/site.zip");
    let entries = v["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sub", "aaa.txt", "guide.txt"]);
    assert_eq!(entries[0]["type"], "dir");
    assert_eq!(entries[0]["href"], "sub/");
    assert_eq!(entries[1]["type"], "file");
    assert_eq!(entries[1]["size"], 14);
    assert!(entries[1]["modified"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn files_have_types_lengths_validators_ranges_and_head() {
    let (_gh, s, _) = site_server();
    for (name, data, ctype) in site_files() {
        let r = s.get(&format!("{SITE}/{name}"));
        ok(&r, name);
        assert_eq!(r.header("content-type"), Some(ctype), "{name}");
        assert_eq!(
            r.header("content-length"),
            Some(&*data.len().to_string()),
            "{name}"
        );
        assert_eq!(sha256(&r.body), sha256(&data), "{name}");
        assert!(r.header("last-modified").is_some(), "{name}");
        let etag = r.header("etag").expect("etag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        // The same bytes, the same tag; a client holding it gets 304 and no body.
        let again = s.get(&format!("{SITE}/{name}"));
        assert_eq!(again.header("etag"), Some(&*etag));
        let r = s.get_with(&format!("{SITE}/{name}"), &[("If-None-Match", &etag)]);
        assert_eq!(r.status, 304, "{name}: {}", r.raw);
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(&*etag));
        let r = s.get_with(&format!("{SITE}/{name}"), &[("If-None-Match", "\"other\"")]);
        assert_eq!(r.status, 200, "{name}");
    }
    // Different files, different tags; the archive has its own.
    let tags: std::collections::HashSet<String> = ["notes.txt", "build.log", "docs/aaa.txt"]
        .iter()
        .map(|n| {
            s.get(&format!("{SITE}/{n}"))
                .header("etag")
                .unwrap()
                .to_string()
        })
        .chain([s
            .get(&format!("{SITE}.zip"))
            .header("etag")
            .unwrap()
            .to_string()])
        .collect();
    assert_eq!(tags.len(), 4);
    // If-Modified-Since with the file's own time: 304.
    let r = s.get(&format!("{SITE}/notes.txt"));
    let lm = r.header("last-modified").unwrap().to_string();
    let r = s.get_with(&format!("{SITE}/notes.txt"), &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304);

    // Ranges, in a stored and in a deflated entry.
    for name in ["blob.bin", "build.log"] {
        let data = file(name);
        let len = data.len();
        let url = format!("{SITE}/{name}");
        for (range, from, to) in [
            ("bytes=10-19", 10, 19),
            ("bytes=40000-", 40000, len - 1),
            ("bytes=-5", len - 5, len - 1),
            ("bytes=0-0", 0, 0),
            ("bytes=45000-999999999", 45000, len - 1),
        ] {
            let r = s.get_with(&url, &[("Range", range)]);
            assert_eq!(r.status, 206, "{name} {range}: {}", r.raw);
            assert!(r.complete);
            assert_eq!(
                r.header("content-range"),
                Some(&*format!("bytes {from}-{to}/{len}")),
                "{name} {range}"
            );
            assert_eq!(r.body, data[from..=to], "{name} {range}");
        }
        let r = s.get_with(&url, &[("Range", &format!("bytes={len}-"))]);
        assert_eq!(r.status, 416, "{name}");
        assert_eq!(r.header("content-range"), Some(&*format!("bytes */{len}")));
        // A range with a stale If-Range: the whole file.
        let r = s.get_with(&url, &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), len);
    }

    // HEAD: the headers of GET, no body.
    let r = request(&s.addr, "HEAD", &format!("{SITE}/blob.bin"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.header("etag").is_some());
    assert!(r.body.is_empty() && r.complete);
    let r = request(&s.addr, "HEAD", &format!("{SITE}/docs/"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 100
    );
}

#[test]
fn directories_redirect_serve_index_html_and_list_on_request() {
    let (_gh, s, _) = site_server();
    // Without the trailing slash: 301 to it (query kept).
    let r = s.get(&format!("{SITE}/docs"));
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(&*format!("{SITE}/docs/")));
    let r = s.get(&format!("{SITE}?list"));
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some(&*format!("{SITE}/?list")));
    // A directory with index.html serves it...
    let r = s.get(&format!("{SITE}/"));
    ok(&r, "index");
    assert_eq!(r.body, file("index.html"));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    // ...unless a listing is asked for.
    for q in ["?list", "?format=json"] {
        let r = s.get(&format!("{SITE}/{q}"));
        ok(&r, q);
        assert!(r.text().contains("index.html"), "{q}");
        assert!(!r.text().contains("site home"), "{q}");
    }
    // A file with a trailing slash is not a directory.
    assert_eq!(s.get(&format!("{SITE}/notes.txt/")).status, 404);
    // latest/ and branches/ answer 302 to the runs/ URL, path and query kept.
    for (from, to) in [
        ("/octo-org/hello/latest/site", SITE.to_string()),
        ("/octo-org/hello/latest/site/", format!("{SITE}/")),
        (
            "/octo-org/hello/latest/site/docs/guide.txt",
            format!("{SITE}/docs/guide.txt"),
        ),
        ("/octo-org/hello/latest/site/?list", format!("{SITE}/?list")),
        (
            "/octo-org/hello/branches/feature%252Fx/site/",
            format!("{SITE}/"),
        ),
        (
            "/Octo-Org/Hello/latest/site",
            "/Octo-Org/Hello/runs/42/site".to_string(),
        ),
    ] {
        let r = s.get(from);
        assert_eq!(r.status, 302, "{from}: {}", r.raw);
        assert_eq!(r.header("location"), Some(&*to), "{from}");
    }
    // The branch listing links to the branch (its name encoded once more, '%' as %25).
    let r = s.get("/octo-org/hello/branches/");
    assert!(r.text().contains("href=\"feature%252Fx/\""), "{}", r.text());
    // Unknown names: 404.
    for p in [
        "/nobody/",
        "/octo-org/hello/runs/43/",
        &format!("{SITE}/missing.txt"),
    ] {
        assert_eq!(s.get(p).status, 404, "{p}");
    }
}

#[test]
fn only_get_and_head_and_nothing_is_ever_deleted() {
    let (gh, s, _) = site_server();
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in [
            &format!("{SITE}.zip"),
            &format!("{SITE}/"),
            "/octo-org/hello/runs/42/",
        ] {
            let r = request(&s.addr, method, path, &[("Content-Length", "0")]);
            assert_eq!(r.status, 405, "{method} {path}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
    }
    assert_eq!(gh.counters().delete_requests, 0);
    ok(&s.get(&format!("{SITE}.zip")), "still there");
}

#[test]
fn paths_never_leave_the_tree() {
    let (_gh, s, _) = site_server();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let marker = passwd.lines().next().unwrap_or("root:x:0:0").to_string();
    for target in [
        "/../../../../etc/passwd",
        "/octo-org/hello/runs/42/site/../../../../../../etc/passwd",
        "/octo-org/hello/runs/42/site/docs/../index.html",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/octo-org/hello/runs/42/site/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/octo-org/hello/runs/42/site/.%2e/x",
        "/octo-org/hello/runs/42/site/./index.html",
        "/octo-org%2fhello/runs/42/",
        "/octo-org/hello/runs/42/site/docs%2Fguide.txt",
        "/octo-org/hello/runs/42/site/..%2f..%2f..%2fetc%2fpasswd",
        "//etc/passwd",
        "/octo-org//hello/runs/42/",
        "/octo-org/hello/runs/42/site//index.html",
        "/octo-org/hello/runs/42/site/..\\..\\..\\etc\\passwd",
        "/octo-org/hello/runs/42/site/docs\\guide.txt",
        "/octo-org/hello/runs/42/site/%5c..%5c..%5cetc%5cpasswd",
        "/octo-org/hello/runs/42/site/index.html%00.txt",
        "/etc/passwd",
        "/octo-org/hello/runs/42/site/%ff",
    ] {
        let r = s.get(target);
        assert!(r.status == 400 || r.status == 404, "{target}: {}", r.raw);
        assert!(!r.text().contains(&marker), "{target}");
        assert!(!r.text().contains("site home"), "{target}");
    }
}

#[test]
fn the_token_never_appears_in_a_page_a_header_or_the_log() {
    const SECRET: &str = "ghs_Sup3rS3cretT0kenValue42";
    let gh = FakeGitHub::start(FakeConfig {
        tokens: [(SECRET.to_string(), TokenAccess::ReadWrite)].into(),
        ..Default::default()
    });
    add_site(&gh);
    let mut s = Daemon::new(&gh, REPO)
        .token(Some(SECRET))
        .arg("-vv")
        .serve();
    let mut seen = String::new();
    for p in [
        "/",
        "/octo-org/hello/",
        "/octo-org/hello/runs/42/",
        "/octo-org/hello/runs/42/?format=json",
        &format!("{SITE}/"),
        &format!("{SITE}/?list"),
        &format!("{SITE}/build.log"),
        &format!("{SITE}.zip"),
        "/octo-org/hello/latest/site",
        "/octo-org/hello/runs/42/nothing",
        "/octo-org/other/",
        "/../x",
    ] {
        let r = s.get(p);
        assert!(r.status < 500, "{p}: {}", r.raw);
        seen.push_str(&r.raw);
    }
    // A download really happened (the token was used), yet appears nowhere.
    assert!(gh.counters().endpoint("download") >= 1);
    assert!(gh.counters().api_tokens_seen.contains(SECRET));
    assert!(s.stop(), "serve exits 0 on SIGTERM");
    let log = s.log_text();
    assert!(
        log.contains("GET /octo-org/hello/runs/42/site.zip"),
        "-vv logs requests: {log}"
    );
    for (what, text) in [("responses", &seen), ("log", &log)] {
        assert!(!text.contains(SECRET), "token in the {what}");
        assert!(!text.contains("sig="), "a signed blob URL in the {what}");
        if what == "responses" {
            assert!(
                !text.contains(&gh.blob_origin()),
                "the blob host in the {what}"
            );
            assert!(!text.contains(&gh.api_origin()), "the API in the {what}");
        }
    }
}

#[test]
fn without_a_token_listings_work_and_files_are_403() {
    let gh = start_fake();
    add_site(&gh);
    let s = Daemon::new(&gh, REPO).token(None).serve();
    ok(&s.get("/octo-org/hello/runs/42/"), "listing");
    let r = s.get(&format!("{SITE}.zip"));
    assert_eq!(r.status, 403, "{}", r.raw);
    assert!(r.text().contains("GH_TOKEN"), "{}", r.text());
    assert_eq!(gh.counters().endpoint("download"), 0);
}

#[test]
fn loopback_by_default_a_warning_otherwise() {
    let (_gh, s, _) = site_server();
    // Bound to loopback: a page on another host name (DNS rebinding) gets nothing.
    let r = request(
        &s.addr,
        "GET",
        "/octo-org/hello/runs/42/",
        &[("Host", "evil.example")],
    );
    assert_eq!(r.status, 421);
    let r = request(
        &s.addr,
        "GET",
        "/octo-org/hello/runs/42/",
        &[("Host", "localhost")],
    );
    assert_eq!(r.status, 200);
    assert!(!s.log_text().contains("not loopback"));
    let gh = start_fake();
    add_site(&gh);
    let wide = Daemon::new(&gh, REPO).addr("0.0.0.0:0").serve();
    assert!(
        wide.log_text().contains("not loopback"),
        "{}",
        wide.log_text()
    );
    let port = wide.addr.rsplit(':').next().unwrap();
    let r = request(
        &format!("127.0.0.1:{port}"),
        "GET",
        "/octo-org/hello/runs/42/",
        &[("Host", "buildbox:8080")],
    );
    assert_eq!(r.status, 200);
}

/// Never a 200 with every announced byte when the bytes are wrong.
fn assert_never_complete(r: &Resp, what: &str) {
    assert!(
        !(r.status == 200 && r.complete),
        "{what}: a complete-looking body ({} bytes) on changed bytes",
        r.body.len()
    );
    assert!(r.status == 200 || r.status == 502, "{what}: {}", r.status);
}

#[test]
fn a_changed_byte_aborts_the_connection() {
    let gh = start_fake();
    let (zip, log, big, big_at) = mixed_archive();
    let id = add_hello(&gh, "mixed", 1, zip.clone());
    let log_at = entry_data_start(&zip, 0) + 100_000;
    let s = Daemon::new(&gh, REPO).serve();
    let base = "/octo-org/hello/runs/1";
    flip(&gh, id, big_at + 9 * MIB + 17, 0);
    let r = s.get(&format!("{base}/mixed/big.bin"));
    assert_eq!(
        r.status, 200,
        "the check fails at the end, after the headers"
    );
    assert!(!r.complete, "the connection was aborted");
    assert!(r.body.len() < big.len());
    // Every later read: 502 at once (or aborted again).
    let r = s.get(&format!("{base}/mixed/big.bin"));
    assert_never_complete(&r, "again");
    assert_never_complete(&s.get(&format!("{base}/mixed.zip")), "NAME.zip");
    // Deflated entry, on another server (fresh cache).
    let s2 = Daemon::new(&gh, REPO).serve();
    flip(&gh, id, log_at, 0);
    assert_never_complete(&s2.get(&format!("{base}/mixed/app.log")), "deflated entry");
    drop(s2);
    // Untouched once the link is healthy again, on a fresh cache.
    gh.set_faults(Faults::default());
    let s3 = Daemon::new(&gh, REPO).serve();
    let r = s3.get(&format!("{base}/mixed/app.log"));
    ok(&r, "healed");
    assert_eq!(sha256(&r.body), sha256(&log));
    assert!(gh.counters().blob_bytes_flipped >= 2);
}

#[test]
fn a_small_file_of_a_big_archive_costs_what_cat_costs_and_big_files_stream() {
    let gh = start_fake();
    let (zip, payload) = many_logs_archive();
    add_hello(&gh, "many", 3, zip);
    let s = Daemon::new(&gh, REPO).serve();
    let base = "/octo-org/hello/runs/3/many";
    // The listing walk the mount's lookup needs, then the cold read of one small file: the
    // same requests as `cat` through the mount (tests/lazy.rs): the download redirect, the
    // tail with the central directory, the entry's block.
    gh.reset_counters();
    let r = s.get(&format!("{base}/logs/job-1234.log"));
    ok(&r, "small file");
    assert_eq!(r.body, many_logs_job(1234));
    let c = gh.counters();
    assert_eq!(c.endpoint("download"), 1, "{c:?}");
    assert_eq!(c.endpoint("blob"), 2, "{c:?}");
    assert!(
        c.blob_bytes_total < MIB as u64,
        "{} bytes",
        c.blob_bytes_total
    );
    // Again: from the cache, nothing fetched.
    ok(&s.get(&format!("{base}/logs/job-1234.log")), "again");
    assert_eq!(gh.counters().blob_bytes_total, c.blob_bytes_total);

    // A big file starts before it has been fetched, and a reader that stops reading stops
    // the fetching (the body is streamed, not collected).
    gh.reset_counters();
    let (conn, first) = start_reading(&s.addr, &format!("{base}/payload.bin"), MIB);
    assert_eq!(first, payload[..MIB]);
    let fetched = settled_blob_bytes(&gh);
    assert!(
        fetched < payload.len() as u64 / 2,
        "{fetched} of {} bytes fetched for a reader that took 1 MiB",
        payload.len()
    );
    drop(conn);
    // Read whole: the right bytes.
    let r = s.get(&format!("{base}/payload.bin"));
    ok(&r, "payload");
    assert_eq!(sha256(&r.body), sha256(&payload));
}

#[test]
fn status_and_metrics_count_what_the_server_fetched() {
    let (gh, s, _) = site_server();
    gh.reset_counters();
    ok(&s.get("/octo-org/hello/runs/42/site/data.json"), "a file");
    let fetched = settled_blob_bytes(&gh);
    assert!(fetched > 0);

    let r = s.get("/_status");
    ok(&r, "/_status");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let st: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(st["blob_bytes_fetched"], fetched, "{st}");
    assert_eq!(st["repos"], serde_json::json!(["octo-org/hello"]), "{st}");
    assert!(st["cache_used_bytes"].as_u64().unwrap() >= fetched, "{st}");
    assert!(st["api_requests"].as_u64().unwrap() > 0, "{st}");

    let m = s.get("/_metrics");
    ok(&m, "/_metrics");
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(m.body.clone()).unwrap();
    let line = format!("artifactfs_blob_fetched_bytes_total {fetched}\n");
    assert!(text.contains(&line), "no {line:?} in\n{text}");
    assert!(
        text.contains("artifactfs_repo{repo=\"octo-org/hello\"} 1\n"),
        "{text}"
    );
    for page in [&r.raw, &m.raw] {
        assert!(!page.contains(TOKEN), "the token in {page}");
    }
    // Read-only like the rest.
    let post = request(&s.addr, "POST", "/_status", &[]);
    assert_eq!(post.status, 405);
}
