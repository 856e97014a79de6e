//! `artifactfs status` through real mounts: what a mount reports after reading (the fake's
//! own counters are the reference), the socket's place and modes, no token anywhere, a
//! directory that is not a mount, and the listing of every live mount.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use artifactfs::stats::Status;
use common::*;
use fake_github::Faults;
use fake_github::zipgen::{EntryOptions, ZipBuilder};

const REPO: &str = "octo-org/hello";

/// `artifactfs status ARGS...` with `runtime` as its XDG_RUNTIME_DIR.
fn status(runtime: &Path, args: &[&Path]) -> Output {
    Command::new(bin())
        .arg("status")
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .expect("run artifactfs status")
}

fn json_of(runtime: &Path, mountpoint: &Path) -> Status {
    let out = status(runtime, &[mountpoint, Path::new("--json")]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(TOKEN), "a token in the status:\n{text}");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_mount_reports_what_it_fetched_and_keeps_no_token_in_sight() {
    require_fuse();
    let _w = Watchdog::arm("status", 120);
    let gh = start_fake();
    let data = noise(3 << 20, 1);
    let mut z = ZipBuilder::new();
    z.add_with("data.bin", &data, EntryOptions::stored());
    add_hello(&gh, "bin", 7, z.finish());
    // Bigger than its tail, so nothing reads it ahead.
    let mut z = ZipBuilder::new();
    z.add_with("other.bin", &noise(2 << 20, 2), EntryOptions::stored());
    add_hello(&gh, "other", 8, z.finish());
    let runtime = tempfile::tempdir().unwrap();
    let m = Daemon::new(&gh, REPO)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .mount();

    assert_eq!(
        std::fs::read(m.path("octo-org/hello/runs/7/bin/data.bin")).unwrap(),
        data
    );
    let fetched = settled_blob_bytes(&gh);
    assert!(fetched >= data.len() as u64);
    let s = json_of(runtime.path(), &m.mountpoint);
    assert_eq!(s.blob_bytes_fetched, fetched, "the fake's own count");
    assert_eq!(
        s.mountpoint.as_deref(),
        Some(m.mountpoint.to_str().unwrap())
    );
    assert_eq!(s.repos, vec![REPO.to_string()]);
    assert!(s.cache_used_bytes >= data.len() as u64, "{s:?}");
    assert_eq!(s.cache_limit_bytes, 10 << 30);
    assert!(s.cache_misses >= 24, "3 MiB is 24 blocks fetched: {s:?}");
    let rate = s.rate_limit.clone().expect("a rate limit figure");
    assert!(
        rate.remaining > 0 && rate.remaining < rate.limit.unwrap(),
        "{rate:?}"
    );
    assert!(rate.reset_unix.is_some());
    assert!(s.api_requests > 0);
    assert_eq!(
        (s.api_requests_in_flight, s.blob_requests_in_flight),
        (0, 0)
    );

    // Read again: hits now, not one byte more.
    let before = s.cache_hits;
    std::fs::read(m.path("octo-org/hello/runs/7/bin/data.bin")).unwrap();
    let s = json_of(runtime.path(), &m.mountpoint);
    assert!(s.cache_hits > before, "{s:?}");
    assert_eq!(s.blob_bytes_fetched, fetched);

    // The socket: where `status` looks, 0600 in a directory of ours at 0700.
    let dir = runtime.path().join("artifactfs");
    let name = artifactfs::status::socket::socket_name(&m.mountpoint);
    let sock = dir.join(format!("{name}.sock"));
    assert!(sock.exists(), "{} missing", sock.display());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&sock), 0o600);

    // The blob host refuses everything: the failure shows as a last error, without the token.
    gh.set_faults(Faults {
        blob_force_403_every: 1,
        ..Default::default()
    });
    assert!(std::fs::read(m.path("octo-org/hello/runs/8/other/other.bin")).is_err());
    let s = json_of(runtime.path(), &m.mountpoint);
    assert!(s.warnings_total > 0, "{s:?}");
    assert!(!s.recent_warnings.is_empty());
    let out = status(runtime.path(), &[&m.mountpoint]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    for want in [
        m.mountpoint.to_str().unwrap(),
        REPO,
        "cache",
        "rate limit",
        "left, resets",
        "last errors",
        "WARN",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }

    // Unmounted: the socket is gone, and the mountpoint is no mount any more.
    let mountpoint = m.mountpoint.clone();
    m.unmount();
    assert!(!sock.exists(), "the socket outlives its mount");
    let out = status(runtime.path(), &[&mountpoint]);
    assert!(!out.status.success());
}

#[test]
fn a_directory_that_is_no_mount_is_a_one_line_failure() {
    let runtime = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    let out = status(runtime.path(), &[plain.path()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not an artifactfs mount"), "{err}");
    let out = status(runtime.path(), &[&plain.path().join("missing")]);
    assert!(!out.status.success());
}

#[test]
fn without_an_argument_every_live_mount_is_listed_and_stale_sockets_go() {
    require_fuse();
    let _w = Watchdog::arm("status list", 60);
    let gh = start_fake();
    add_hello_files(&gh, "a", 1, &[("a.txt", b"a\n")]);
    let runtime = tempfile::tempdir().unwrap();
    let m = Daemon::new(&gh, REPO)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .mount();
    // A socket left behind by a mount that crashed: nobody listens on it.
    let stale = runtime.path().join("artifactfs/gone.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());

    let out = status(runtime.path(), &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains(m.mountpoint.to_str().unwrap()), "{text}");
    assert!(text.contains(REPO), "{text}");
    assert!(!stale.exists(), "a stale socket is removed");

    let out = status(runtime.path(), &[Path::new("--json")]);
    let all: Vec<Status> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.len(), 1);
    m.unmount();
    let out = status(runtime.path(), &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no artifactfs mounts"));
}

/// `fgetxattr(fd, name)`: the value, or the errno.
fn fgetxattr(f: &std::fs::File, name: &str) -> Result<Vec<u8>, i32> {
    use std::os::fd::AsRawFd;
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    let n = unsafe {
        libc::fgetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

#[test]
fn extended_attributes_held_in_memory_are_answered_without_a_task() {
    require_fuse();
    let _w = Watchdog::arm("xattrs without a task", 120);
    let gh = start_fake();
    let mut z = ZipBuilder::new();
    z.add("a.txt", b"hello\n");
    add_hello(&gh, "bin", 7, z.finish());
    let runtime = tempfile::tempdir().unwrap();
    let m = Daemon::new(&gh, REPO)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .arg("--metadata-ttl=3600")
        .mount();
    // Every live mount's status: no path of the mount is looked at (`status MOUNTPOINT`
    // would stat its root, a request of its own).
    let spawned = || {
        let out = status(runtime.path(), &[Path::new("--json")]);
        assert!(out.status.success(), "{out:?}");
        let all: Vec<Status> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(all.len(), 1);
        all[0].requests_spawned
    };
    // Opening reads the central directory: what the file's attributes come from.
    let f = std::fs::File::open(m.path("octo-org/hello/runs/7/bin/a.txt")).unwrap();
    let before = spawned();
    assert!(before > 0, "the open went to the runtime");
    const ROUNDS: usize = 200;
    for _ in 0..ROUNDS {
        // What `ls -l` asks of every file, and names no file here has.
        for name in [
            "security.selinux",
            "system.posix_acl_access",
            "trusted.overlay.opaque",
            "user.no.such",
        ] {
            assert_eq!(fgetxattr(&f, name), Err(libc::ENODATA), "{name}");
        }
        assert_eq!(fgetxattr(&f, "user.zip.method").unwrap(), b"deflated");
    }
    assert_eq!(
        spawned(),
        before,
        "{} getxattr requests, none handed to the runtime",
        5 * ROUNDS
    );
}
