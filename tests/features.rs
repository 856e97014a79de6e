//! Real-mount tests of what users expect beyond ls/cat/rm: extended attributes, the
//! `latest/` and `branches/` views as artifacts come and go, GitHub Enterprise Server paths,
//! statfs/du, ownership and `-o` options, the fstab invocation form, and the one-line
//! failures of `mount`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use fake_github::zipgen::ZipBuilder;
use fake_github::{FakeArtifactSpec, FakeConfig, FakeGitHub};

const REPO: &str = "octo-org/hello";

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut z = ZipBuilder::new();
    for (n, d) in files {
        z.add(n, d);
    }
    z.finish()
}

fn names(p: &std::path::Path) -> BTreeSet<String> {
    fs::read_dir(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `getfattr -d -m - PATH` as a map.
fn xattrs(p: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let (ok, out, err) = sh(&format!(
        "getfattr -d -m - --absolute-names '{}'",
        p.display()
    ));
    assert!(ok, "getfattr: {err}");
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn extended_attributes_describe_artifacts_and_entries() {
    require_fuse();
    let gh = start_fake();
    // 6 MiB, most of it one stored entry: read by ranges, so what xattrs fetch can be told
    // apart from the archive.
    let mut z = ZipBuilder::new();
    z.add("logs/a.log", b"hello hello hello hello\n");
    z.add_with(
        "big.bin",
        &fake_github::zipgen::noise(6 << 20, 3),
        fake_github::zipgen::EntryOptions::stored(),
    );
    let zip = z.finish();
    let id = gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "logs", 42, zip.clone()).branch("dev"),
    );
    let m = Daemon::new(&gh, REPO).mount();
    let want_digest = format!("sha256:{}", sha256(&zip));
    for p in [
        "octo-org/hello/runs/42/logs",
        "octo-org/hello/runs/42/logs.zip",
    ] {
        let x = xattrs(&m.path(p));
        assert_eq!(x["user.artifact.id"], id.to_string(), "{p}");
        assert_eq!(x["user.artifact.digest"], want_digest);
        assert_eq!(x["user.artifact.run_id"], "42");
        assert_eq!(x["user.artifact.head_branch"], "dev");
        assert_eq!(x["user.artifact.head_sha"].len(), 40);
        assert_eq!(x["user.artifact.size"], zip.len().to_string());
        assert!(x["user.artifact.created_at"].ends_with('Z'));
        assert!(x["user.artifact.expires_at"].ends_with('Z'));
    }
    let x = xattrs(&m.path("octo-org/hello/runs/42/logs/logs/a.log"));
    let crc = crc32fast::hash(b"hello hello hello hello\n");
    assert_eq!(x["user.zip.crc32"], format!("{crc:08x}"));
    assert_eq!(x["user.zip.method"], "deflated");
    assert!(x["user.zip.compressed_size"].parse::<u64>().unwrap() > 0);
    // Unknown names: ENODATA.
    let (ok, _, err) = sh(&format!(
        "getfattr -n user.nope '{}'",
        m.path("octo-org/hello/runs/42/logs.zip").display()
    ));
    assert!(!ok && err.contains("No such attribute"), "{err}");
    // Reading xattrs fetches the archive's tail with the central directory (a ranged read,
    // a block or two), not the archive: none of the 6 MiB entry beyond that.
    let c = gh.counters();
    assert!(
        c.blob_bytes_total <= 1 << 20,
        "{} of {} bytes fetched for xattrs",
        c.blob_bytes_total,
        zip.len()
    );
    assert!(c.ranges_served >= 1 && c.blob_requests <= 4, "{c:?}");
}

#[test]
fn views_follow_artifacts_as_they_come_and_go() {
    require_fuse();
    let gh = start_fake();
    let t = |s: i64| time::OffsetDateTime::from_unix_timestamp(1_750_000_000 + s).unwrap();
    let z = || zip_of(&[("r.txt", b"r\n")]);
    let old_main = gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "report", 1, z()).created_at(t(0)),
    );
    let login = gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "report", 2, z())
            .branch("feature/login")
            .created_at(t(10)),
    );
    gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "coverage", 2, z())
            .branch("feature/login")
            .created_at(t(20)),
    );
    gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "odd", 3, z())
            .branch("100%/x")
            .created_at(t(5)),
    );
    let m = Daemon::new(&gh, REPO)
        .arg("--metadata-ttl")
        .arg("1")
        .mount();
    let repo = m.path("octo-org/hello");
    assert_eq!(
        names(&repo.join("branches")),
        set(&["main", "feature%2Flogin", "100%25%2Fx"])
    );
    assert_eq!(
        fs::read_link(repo.join("branches/feature%2Flogin/report"))
            .unwrap()
            .to_string_lossy(),
        "../../runs/2/report"
    );
    assert_eq!(
        fs::read(repo.join("branches/100%25%2Fx/odd/r.txt")).unwrap(),
        b"r\n"
    );
    // latest/ is the newest of each name, whatever the branch.
    assert_eq!(
        fs::read_link(repo.join("latest/report"))
            .unwrap()
            .to_string_lossy(),
        "../runs/2/report"
    );
    // A run directory's mtime is its newest artifact's created_at.
    let mtime = fs::metadata(repo.join("runs/2"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, SystemTime::from(t(20)));

    // A new artifact appears after --metadata-ttl, and takes over latest/ and its branch.
    let newer = gh.add_artifact(
        FakeArtifactSpec::zip("octo-org", "hello", "report", 4, z()).created_at(t(30)),
    );
    eventually("run 4 appears", || repo.join("runs/4/report.zip").exists());
    assert_eq!(
        fs::read_link(repo.join("latest/report"))
            .unwrap()
            .to_string_lossy(),
        "../runs/4/report"
    );
    assert_eq!(
        fs::read_link(repo.join("branches/main/report"))
            .unwrap()
            .to_string_lossy(),
        "../../runs/4/report"
    );
    // Expired or deleted elsewhere: gone from every view.
    gh.expire_artifact(newer);
    gh.remove_artifact(login);
    // The run is no longer listed; by path it is an empty directory (a run without live
    // artifacts).
    eventually("run 4 disappears from runs/", || {
        !names(&repo.join("runs")).contains("4")
    });
    assert!(names(&repo.join("runs/4")).is_empty());
    assert!(!repo.join("runs/2/report").exists());
    assert_eq!(
        fs::read_link(repo.join("latest/report"))
            .unwrap()
            .to_string_lossy(),
        "../runs/1/report"
    );
    assert_eq!(
        names(&repo.join("branches/feature%2Flogin")),
        set(&["coverage"])
    );
    let _ = old_main;
}

#[test]
fn github_enterprise_server_paths_without_digests() {
    require_fuse();
    let gh = FakeGitHub::start(FakeConfig {
        path_prefix: Some("/api/v3".into()),
        ..Default::default()
    });
    let zip = zip_of(&[("dir/f.txt", b"ghes\n")]);
    gh.add_artifact(FakeArtifactSpec::zip("octo-org", "hello", "a", 9, zip.clone()).no_digest());
    assert!(gh.api_url().ends_with("/api/v3"));
    let m = Daemon::new(&gh, REPO).mount();
    assert_eq!(
        fs::read(m.path("octo-org/hello/runs/9/a/dir/f.txt")).unwrap(),
        b"ghes\n"
    );
    assert_eq!(
        sha256(&fs::read(m.path("octo-org/hello/runs/9/a.zip")).unwrap()),
        sha256(&zip)
    );
    let x = xattrs(&m.path("octo-org/hello/runs/9/a.zip"));
    assert!(!x.contains_key("user.artifact.digest"), "{x:?}");
    let c = gh.counters();
    assert!(c.endpoint("list_repo") >= 1 && c.endpoint("download") >= 1);
    assert_eq!(c.blob_auth_headers_seen, 0);
}

#[test]
fn statfs_reports_the_cache_and_du_real_sizes() {
    require_fuse();
    let gh = start_fake();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    add_hello(&gh, "big", 1, zip_of(&[("big.bin", &big)]));
    let m = Daemon::new(&gh, REPO)
        .arg("--cache-size")
        .arg("64M")
        .mount();
    let statvfs = |p: &std::path::Path| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
        s
    };
    let s = statvfs(&m.mountpoint);
    assert_eq!(s.f_blocks * s.f_frsize, 64 << 20, "size = --cache-size");
    let used0 = (s.f_blocks - s.f_bfree) * s.f_frsize;
    let file = m.path("octo-org/hello/runs/1/big/big.bin");
    assert_eq!(sha256(&fs::read(&file).unwrap()), sha256(&big));
    let s = statvfs(&m.mountpoint);
    let used1 = (s.f_blocks - s.f_bfree) * s.f_frsize;
    assert!(
        used1 >= used0 + 3_000_000,
        "df shows the cache filling: {used0} -> {used1}"
    );
    let (ok, out, err) = sh(&format!("du -sb '{}'", file.display()));
    assert!(ok, "{err}");
    assert_eq!(out.split_whitespace().next(), Some("3000000"));
    let md = fs::metadata(&file).unwrap();
    assert_eq!(md.blocks(), 3_000_000u64.div_ceil(512));
}

#[test]
fn ownership_and_o_options() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "a", 1, zip_of(&[("f", b"f\n")]));
    let m = Daemon::new(&gh, REPO)
        .arg("--uid")
        .arg("1234")
        .arg("-o")
        .arg("gid=5678,noexec,nosuid")
        .mount();
    let md = fs::metadata(m.path("octo-org/hello/runs/1/a/f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let line = mounts
        .lines()
        .find(|l| l.contains(m.mountpoint.to_str().unwrap()))
        .unwrap();
    assert!(line.contains("noexec") && line.contains("nosuid"), "{line}");
}

#[test]
fn mounts_the_way_fstab_does() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "a", 1, zip_of(&[("f", b"fstab\n")]));
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).unwrap();
    // What mount.fuse3 runs for `octo-org/hello /mnt fuse.artifactfs ro,cache_dir=... 0 0`.
    let out = Command::new(bin())
        .arg("octo-org/hello")
        .arg(&mp)
        .arg("-o")
        .arg(format!(
            "rw,noauto,ro,api_url={},cache_dir={}",
            gh.api_url(),
            dir.path().join("cache").display()
        ))
        .env("GH_TOKEN", TOKEN)
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mp = fs::canonicalize(&mp).unwrap();
    assert!(is_mounted(&mp));
    assert_eq!(
        fs::read(mp.join("octo-org/hello/runs/1/a/f")).unwrap(),
        b"fstab\n"
    );
    // ro: nothing can be deleted.
    assert_eq!(
        errno_of(fs::remove_file(mp.join("octo-org/hello/runs/1/a.zip"))),
        libc::EROFS
    );
    let st = Command::new(bin())
        .arg("unmount")
        .arg(&mp)
        .status()
        .unwrap();
    assert!(st.success());
    eventually("unmounted", || !is_mounted(&mp));
}

/// Runs `artifactfs mount` in the background and returns (success, stderr).
fn mount_fails(args: &[&str], mountpoint: &std::path::Path, path_env: &str) -> (bool, String) {
    let out = Command::new(bin())
        .arg("mount")
        .arg(mountpoint)
        .args(args)
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .env("GH_TOKEN", TOKEN)
        .env("PATH", path_env)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), err)
}

#[test]
fn mount_fails_fast_with_one_clear_line() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "a", 1, zip_of(&[("f", b"f\n")]));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let api = gh.api_url();
    let path = "/usr/bin:/bin:/usr/sbin:/sbin";
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).unwrap();
    let base = [
        "--repo",
        REPO,
        "--cache-dir",
        cache,
        "--api-url",
        api.as_str(),
    ];

    let check = |what: &str, ok: bool, err: &str, want: &str| {
        assert!(!ok, "{what}: mount succeeded");
        assert!(err.contains(want), "{what}: {err:?} lacks {want:?}");
        assert!(
            err.trim().lines().count() <= 2,
            "{what}: one clear line (plus the log path), got {err:?}"
        );
        assert!(!is_mounted(&mp), "{what}: left a mount behind");
    };

    let (ok, err) = mount_fails(&base, &dir.path().join("missing"), path);
    check("missing mountpoint", ok, &err, "No such file");

    let full = dir.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("x"), b"x").unwrap();
    let (ok, err) = mount_fails(&base, &full, path);
    check("non-empty mountpoint", ok, &err, "not empty");

    let empty_path = dir.path().join("nobin");
    fs::create_dir(&empty_path).unwrap();
    let (ok, err) = mount_fails(&base, &mp, empty_path.to_str().unwrap());
    check("fuse3 missing", ok, &err, "fuse3");

    let out = Command::new(bin())
        .arg("mount")
        .arg(&mp)
        .args(base)
        .env("GH_TOKEN", "wrong")
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    check(
        "bad token",
        out.status.success(),
        &String::from_utf8_lossy(&out.stderr),
        "token rejected",
    );

    let mut nf = base.to_vec();
    nf[1] = "octo-org/missing";
    let (ok, err) = mount_fails(&nf, &mp, path);
    check("repo not found", ok, &err, "not found");

    // A cache directory another artifactfs uses (after waiting for it to go away).
    let first = Daemon::new(&gh, REPO)
        .cache_dir(std::path::Path::new(cache))
        .mount();
    let (ok, err) = mount_fails(&base, &mp, path);
    check(
        "cache directory in use",
        ok,
        &err,
        "in use by another artifactfs",
    );
    assert_eq!(
        fs::read(first.path("octo-org/hello/runs/1/a/f")).unwrap(),
        b"f\n",
        "the first mount goes on"
    );
    drop(first);

    let mut down = base.to_vec();
    down[5] = "http://127.0.0.1:9";
    let t = Instant::now();
    let (ok, err) = mount_fails(&down, &mp, path);
    check("API unreachable", ok, &err, "unreachable");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

#[test]
fn daemon_timeout_turns_a_stuck_read_into_eio() {
    require_fuse();
    let gh = start_fake();
    add_hello(&gh, "a", 1, zip_of(&[("f", b"slow\n")]));
    let m = Daemon::new(&gh, REPO)
        .arg("--daemon-timeout")
        .arg("1")
        .mount();
    assert!(m.path("octo-org/hello/runs/1/a.zip").exists());
    gh.set_faults(fake_github::Faults {
        blob_delay: Some(Duration::from_secs(20)),
        ..Default::default()
    });
    let t = Instant::now();
    let r = fs::read(m.path("octo-org/hello/runs/1/a/f"));
    assert_eq!(errno_of(r), libc::EIO);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The mount is still fine for what needs no network.
    assert!(m.path("octo-org/hello/runs/1/a.zip").exists());
}

#[test]
fn version_and_help_show_every_flag_with_its_default() {
    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("artifactfs "));
    let out = Command::new(bin())
        .args(["mount", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--repo",
        "--api-url",
        "--cache-dir",
        "--cache-size",
        "--metadata-ttl",
        "--read-only",
        "--allow-other",
        "--uid",
        "--gid",
        "--daemon-timeout",
        "--max-wait",
        "-o ",
        "--foreground",
        "--verbose",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for default in [
        "[default: https://api.github.com]",
        "[default: 10G]",
        "[default: 60]",
        "[default: 0]",
        "~/.cache/artifactfs",
    ] {
        assert!(help.contains(default), "--help lacks {default}");
    }
}
