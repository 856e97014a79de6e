//! The one harness of the integration tests: a fake GitHub in this process, the `artifactfs`
//! binary started against it by one builder ([`Daemon`]: `.mount()` in the foreground with an
//! unmount on drop, `.serve()` in `serve`), FUSE required (never a silent skip:
//! [`require_fuse`]), and for tests that must run alone, [`exclusive`] (a process-wide lock
//! plus a [`Watchdog`]).

#![allow(dead_code)]

mod disk_usage;
pub mod serve;
pub mod site;
pub mod zip_bytes;

#[allow(unused_imports)] // not every test binary measures the cache
pub use disk_usage::disk_usage;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_github::{FakeConfig, FakeGitHub};

pub const TOKEN: &str = "test-token";
/// The daemon's PATH: system tools, no `gh`.
pub const SYSTEM_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

/// Real-mount tests need FUSE: without it they fail, naming what is missing and what
/// installs it (the suite never skips a mount test, in CI or anywhere else).
pub fn require_fuse() {
    let ok = Path::new("/dev/fuse").exists()
        && std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").is_file()))
            .unwrap_or(false);
    assert!(
        ok,
        "FUSE is unavailable (/dev/fuse or fusermount3 missing): real-mount tests cannot run; \
         `bash scripts/install-deps.sh` installs fuse3"
    );
}

/// A test that runs alone among those that ask for it (some load the machine, others
/// measure what happens meanwhile), with FUSE and a [`Watchdog`] of `secs`.
pub struct Exclusive {
    _watchdog: Watchdog,
    _lock: std::sync::MutexGuard<'static, ()>,
}

pub fn exclusive(name: &'static str, secs: u64) -> Exclusive {
    require_fuse();
    static SERIAL: Mutex<()> = Mutex::new(());
    let lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Exclusive {
        _watchdog: Watchdog::arm(name, secs),
        _lock: lock,
    }
}

/// Daemons this test binary has running, with their mountpoints (for the watchdog).
static LIVE: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

/// Fails a hung test without leaving mounts or daemons behind (and without ending the test
/// binary): still armed after `secs`, it kills every daemon this binary has running and
/// detaches their mounts, so the test's blocked calls fail (ENOTCONN) and it ends by its own
/// panic, its guards cleaning up as usual. Meant for tests that run one at a time. Dropping
/// it disarms it.
pub struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    pub fn arm(name: &'static str, secs: u64) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while !d.load(Ordering::SeqCst) {
                if t.elapsed() > Duration::from_secs(secs) {
                    eprintln!("watchdog: {name} still running after {secs} s: ending its mounts");
                    let live = LIVE.lock().unwrap().clone();
                    for (pid, mountpoint) in live {
                        // SAFETY: kill(2) on a child this binary started.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                        let _ = Command::new("fusermount3")
                            .arg("-u")
                            .arg("-z")
                            .arg(&mountpoint)
                            .stderr(Stdio::null())
                            .status();
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_artifactfs")
}

pub struct Mount {
    pub dir: tempfile::TempDir,
    pub mountpoint: PathBuf,
    pub cache_dir: PathBuf,
    child: Option<Child>,
}

/// `artifactfs mount` or `artifactfs serve` against a fake GitHub: the repositories, the
/// token (the test's, never one from the environment), extra arguments, the daemon's
/// environment (no `gh` on PATH unless a test puts one first). Finished by `.mount()`,
/// `.mount_background()` or `.serve()` (`common::serve`).
pub struct Daemon {
    api_url: String,
    repos: Vec<String>,
    token: Option<String>,
    extra: Vec<String>,
    cache_dir: Option<PathBuf>,
    stderr: Option<PathBuf>,
    path_first: Option<PathBuf>,
    envs: Vec<(String, String)>,
    /// `serve --addr`.
    pub(crate) addr: String,
}

impl Daemon {
    pub fn new(gh: &FakeGitHub, repo: &str) -> Self {
        Daemon {
            api_url: gh.api_url(),
            repos: vec![repo.to_string()],
            token: Some(TOKEN.to_string()),
            extra: Vec::new(),
            cache_dir: None,
            stderr: None,
            path_first: None,
            envs: Vec::new(),
            addr: "127.0.0.1:0".into(),
        }
    }
    /// `serve --addr` (default `127.0.0.1:0`, a free port).
    pub fn addr(mut self, a: &str) -> Self {
        self.addr = a.to_string();
        self
    }
    /// Sets an environment variable of the daemon (`XDG_RUNTIME_DIR`, say).
    pub fn env(mut self, key: &str, value: &Path) -> Self {
        self.envs
            .push((key.to_string(), value.display().to_string()));
        self
    }
    /// Puts `dir` first on the daemon's PATH (a stand-in `gh`, say).
    pub fn path_first(mut self, dir: &Path) -> Self {
        self.path_first = Some(dir.to_path_buf());
        self
    }
    /// A different `--api-url` (the fake's origin with another prefix, a redirect...).
    pub fn api_url(mut self, url: &str) -> Self {
        self.api_url = url.to_string();
        self
    }
    pub fn token(mut self, t: Option<&str>) -> Self {
        self.token = t.map(str::to_string);
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }
    /// Sends the daemon's stderr (its log in the foreground) to a file.
    pub fn stderr_to(mut self, p: &Path) -> Self {
        self.stderr = Some(p.to_path_buf());
        self
    }

    pub fn cache_dir(mut self, p: &Path) -> Self {
        self.cache_dir = Some(p.to_path_buf());
        self
    }

    /// `artifactfs SUBCOMMAND [TARGET]` with everything this builder holds.
    pub(crate) fn command(&self, sub: &str, target: Option<&Path>, cache_dir: &Path) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg(sub);
        if let Some(t) = target {
            cmd.arg(t);
        }
        for r in &self.repos {
            cmd.arg("--repo").arg(r);
        }
        cmd.arg("--api-url")
            .arg(&self.api_url)
            .arg("--cache-dir")
            .arg(cache_dir)
            .args(&self.extra)
            .env_remove("GH_TOKEN")
            .env_remove("GITHUB_TOKEN")
            .env_remove("RUST_LOG")
            // No `gh` token discovery unless a test puts a stand-in first.
            .env("PATH", SYSTEM_PATH);
        if let Some(d) = &self.path_first {
            cmd.env("PATH", format!("{}:{SYSTEM_PATH}", d.display()));
        }
        if let Some(t) = &self.token {
            cmd.env("GH_TOKEN", t);
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Mounts in the foreground (`-f`) and waits until the mount answers.
    pub fn mount(self) -> Mount {
        require_fuse();
        let dir = tempfile::tempdir().unwrap();
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        let cache_dir = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("cache"));
        let mut cmd = self.command("mount", Some(&mountpoint), &cache_dir);
        cmd.arg("-f").stdin(Stdio::null());
        if let Some(p) = &self.stderr {
            cmd.stderr(std::fs::File::create(p).unwrap());
        }
        let mut child = cmd.spawn().expect("start artifactfs");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mounted(&mountpoint) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("artifactfs exited before mounting: {status}");
            }
            assert!(Instant::now() < deadline, "mount did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        LIVE.lock().unwrap().push((child.id(), mountpoint.clone()));
        Mount {
            dir,
            mountpoint,
            cache_dir,
            child: Some(child),
        }
    }

    /// Runs `mount` without `-f` and returns its exit status and stderr.
    pub fn mount_background(self) -> (tempfile::TempDir, PathBuf, std::process::Output) {
        require_fuse();
        let dir = tempfile::tempdir().unwrap();
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        let cache_dir = dir.path().join("cache");
        let out = self
            .command("mount", Some(&mountpoint), &cache_dir)
            .stdin(Stdio::null())
            .output()
            .expect("run artifactfs mount");
        (dir, mountpoint, out)
    }
}

pub fn is_mounted(mountpoint: &Path) -> bool {
    artifactfs::mount_table::is_mounted(mountpoint)
}

pub fn unmount(mountpoint: &Path) {
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg(mountpoint)
        .stderr(Stdio::null())
        .status();
}

impl Mount {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mountpoint.join(rel)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a live daemon").id()
    }

    /// A `/proc/PID/status` figure of the daemon in KiB (`VmRSS`, `VmHWM`: the peak).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in the daemon's status"))
    }

    /// Unmounts and waits for the daemon to exit.
    pub fn unmount(mut self) {
        self.stop();
    }

    /// Kills the daemon with SIGKILL (a crash: nothing runs after it), then detaches the dead
    /// mount so the mountpoint can be reused.
    pub fn crash(mut self) {
        if let Some(mut child) = self.child.take() {
            LIVE.lock().unwrap().retain(|(pid, _)| *pid != child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mountpoint)
            .stderr(Stdio::null())
            .status();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            LIVE.lock().unwrap().retain(|(pid, _)| *pid != child.id());
            // SIGTERM: the daemon unmounts itself.
            terminate(&mut child);
            if is_mounted(&self.mountpoint) {
                unmount(&self.mountpoint);
            }
        }
    }
}

/// Stops a daemon with SIGTERM and waits for it (10 s, then SIGKILL); whether it exited 0.
pub fn terminate(child: &mut Child) -> bool {
    // SAFETY: kill(2) on a child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Adds a zip artifact to `octo-org/hello`, the repository most tests mount.
pub fn add_hello(gh: &FakeGitHub, name: &str, run: u64, zip: Vec<u8>) -> u64 {
    gh.add_artifact(fake_github::FakeArtifactSpec::zip(
        "octo-org", "hello", name, run, zip,
    ))
}

/// Adds a zip of small deflated `files` (name, bytes) to `octo-org/hello`.
pub fn add_hello_files(gh: &FakeGitHub, name: &str, run: u64, files: &[(&str, &[u8])]) -> u64 {
    let mut z = fake_github::zipgen::ZipBuilder::new();
    for (n, data) in files {
        z.add(n, data);
    }
    add_hello(gh, name, run, z.finish())
}

/// Adds an unzipped (upload-artifact v7) artifact to `octo-org/hello`.
pub fn add_hello_raw(gh: &FakeGitHub, name: &str, run: u64, file: &str, data: Vec<u8>) -> u64 {
    gh.add_artifact(fake_github::FakeArtifactSpec::raw(
        "octo-org", "hello", name, run, file, data,
    ))
}

/// Where the data of the zip entry whose local header is at `header` starts.
pub fn entry_data_start(zip: &[u8], header: usize) -> usize {
    let u16_at = |at: usize| u16::from_le_bytes([zip[at], zip[at + 1]]) as usize;
    header + 30 + u16_at(header + 26) + u16_at(header + 28)
}

pub fn start_fake() -> FakeGitHub {
    FakeGitHub::start(FakeConfig::default())
}

/// A fake GitHub with these fault switches on from the start.
pub fn start_fake_with(faults: fake_github::Faults) -> FakeGitHub {
    FakeGitHub::start(FakeConfig {
        faults,
        ..Default::default()
    })
}

pub fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// How many entries the directory `p` lists (panics if it can't be read).
pub fn count_entries(p: &Path) -> usize {
    std::fs::read_dir(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .count()
}

/// The names the directory `p` lists.
pub fn names_in(p: &Path) -> Vec<String> {
    std::fs::read_dir(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Runs a shell command, returns (success, stdout, stderr).
pub fn sh(cmd: &str) -> (bool, String, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn errno_of<T>(r: std::io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in haystack")
}

/// A 20 MiB stored entry after a deflated 8 MiB log: (zip, log, big, offset of big's data).
pub fn mixed_archive() -> (Vec<u8>, Vec<u8>, Vec<u8>, usize) {
    use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
    const MIB: usize = 1 << 20;
    let log = log_text(8 * MIB, 5);
    let big = noise(20 * MIB, 6);
    let mut z = ZipBuilder::new();
    z.add("app.log", &log);
    z.add_with("big.bin", &big, EntryOptions::stored());
    let zip = z.finish();
    let at = find(&zip, &big[..64]);
    (zip, log, big, at)
}

/// The fake's blob byte count once it has not moved for half a second.
pub fn settled_blob_bytes(gh: &FakeGitHub) -> u64 {
    let mut last = gh.counters().blob_bytes_total;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = gh.counters().blob_bytes_total;
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The blob host changes the byte at `offset` of `artifact`'s blob in flight, `times` times
/// (0: every time).
pub fn flip(gh: &FakeGitHub, artifact: u64, offset: usize, times: u64) {
    gh.set_faults(fake_github::Faults {
        blob_flip: Some(fake_github::BlobFlip {
            artifact: Some(artifact),
            offset: offset as u64,
            times,
        }),
        ..Default::default()
    });
}

/// 3000 small deflated logs (`logs/job-I.log`, see [`many_logs_job`]) and a 64 MiB stored
/// `payload.bin`: (zip, payload).
pub fn many_logs_archive() -> (Vec<u8>, Vec<u8>) {
    use fake_github::zipgen::{EntryOptions, ZipBuilder, noise};
    let mut z = ZipBuilder::new();
    for i in 0..3000u64 {
        z.add(&format!("logs/job-{i}.log"), &many_logs_job(i));
    }
    let payload = noise(64 << 20, 9);
    z.add_with("payload.bin", &payload, EntryOptions::stored());
    (z.finish(), payload)
}

/// `logs/job-I.log` of [`many_logs_archive`].
pub fn many_logs_job(i: u64) -> Vec<u8> {
    fake_github::zipgen::log_text(1_000 + (i as usize % 5) * 10, i)
}

/// `n` pseudo-random bytes (incompressible), the same for the same seed (fake-github's, as
/// the core's tests use; not every test binary needs it).
#[allow(unused_imports)]
pub use fake_github::zipgen::noise;

/// `n` bytes of repeated text (deflates well).
pub fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"artifactfs lazy reads\n"[i % 22]).collect()
}

/// `artifactfs status MOUNTPOINT --json` with its socket under `runtime` (the daemon's
/// `XDG_RUNTIME_DIR`), parsed.
pub fn status_json(runtime: &Path, mountpoint: &Path) -> artifactfs::stats::Status {
    let out = Command::new(bin())
        .arg("status")
        .arg(mountpoint)
        .arg("--json")
        .env("XDG_RUNTIME_DIR", runtime)
        .output()
        .expect("run artifactfs status");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// 2000 files: 1990 small deflated logs and 10 entries over 100 KiB (stored and deflated
/// noise), so the archive is over 1 MiB and is read by ranges, never whole.
pub fn two_thousand_files() -> (Vec<u8>, std::collections::BTreeMap<String, Vec<u8>>) {
    use fake_github::zipgen::{EntryOptions, ZipBuilder, log_text, noise};
    let mut z = ZipBuilder::new();
    let mut want = std::collections::BTreeMap::new();
    for i in 0..2000u64 {
        let (name, data, opts) = if i % 200 == 7 {
            let big = noise(100_000 + (i as usize * 311) % 120_000, i);
            let opts = if i % 400 == 7 {
                EntryOptions::stored()
            } else {
                EntryOptions::default()
            };
            (format!("big/b{i:04}.bin"), big, opts)
        } else {
            (
                format!("logs/{:02}/job-{i:04}.log", i / 100),
                log_text(200 + (i as usize * 53) % 2500, i),
                EntryOptions::default(),
            )
        };
        z.add_with(&name, &data, opts);
        want.insert(name, data);
    }
    (z.finish(), want)
}
