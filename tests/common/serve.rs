//! Harness for `artifactfs serve` tests: the binary serving a fake GitHub on a free loopback
//! port ([`Daemon::serve`], stopped with SIGTERM on drop), and a plain HTTP/1.1 client over a TCP socket that
//! sends the request target exactly as written (no normalisation of `..`, `//` or `\`, which
//! every URL library would do) and tells a complete body from a cut-off one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Daemon, terminate};

pub struct Server {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub dir: tempfile::TempDir,
    /// The server's stderr (its log).
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// `artifactfs serve`: starts it and waits for the URL it prints.
    pub fn serve(self) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let mut cmd = self.command("serve", None, &dir.path().join("cache"));
        cmd.arg("--addr")
            .arg(&self.addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("start artifactfs serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve did not print its URL: {line:?}; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        let addr = url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string();
        Server {
            addr,
            dir,
            log,
            child: Some(child),
        }
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    pub fn get(&self, target: &str) -> Resp {
        request(&self.addr, "GET", target, &[])
    }
    pub fn get_with(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
        request(&self.addr, "GET", target, headers)
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Stops the server (SIGTERM) and waits for it; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut child) => terminate(&mut child),
            None => true,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response as received.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body has all the bytes `Content-Length` announced (true when none was).
    pub complete: bool,
    /// Status line, headers and body as text, for "never appears in" checks.
    pub raw: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request (`Connection: close`) and reads the answer until the server closes
/// the connection (or resets it: what was read until then is returned).
pub fn request(addr: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    parse(&buf, method == "HEAD")
}

fn parse(buf: &[u8], head: bool) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head_text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head_text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = buf[end + 4..].to_vec();
    let mut r = Resp {
        status,
        headers,
        body,
        complete: true,
        raw: String::from_utf8_lossy(buf).into_owned(),
    };
    assert!(
        r.header("transfer-encoding").is_none(),
        "this client reads Content-Length bodies only"
    );
    let len: Option<usize> = r.header("content-length").and_then(|v| v.parse().ok());
    r.complete = match len {
        _ if head || status == 304 => r.body.is_empty(),
        Some(n) => r.body.len() == n,
        None => true,
    };
    r
}

/// Sends a request and reads only the head and the first `n` body bytes, then stops
/// reading (keeping the connection open until the returned stream is dropped).
pub fn start_reading(addr: &str, target: &str, n: usize) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 14];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
            && buf.len() >= end + 4 + n
        {
            return (s, buf[end + 4..end + 4 + n].to_vec());
        }
        let got = s.read(&mut chunk).unwrap();
        assert!(got > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// Headless Chromium, or a failure naming the script that installs it: real-browser tests
/// run everywhere the suite runs and never skip.
pub fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => panic!(
            "Chromium is missing (no `chromium` on PATH): run `bash scripts/install-deps.sh` \
             (Debian package chromium); browser tests never skip{}",
            if std::env::var_os("CI").is_some() {
                " (CI is set)"
            } else {
                ""
            }
        ),
    }
}

/// `chromium --headless --dump-dom URL` after the page's scripts ran: the DOM as HTML.
pub fn dump_dom(url: &str, profile: &Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
