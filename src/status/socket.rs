//! The status socket of a running mount: where it lives, the daemon's side (a unix socket
//! that answers every connection with one JSON [`Status`] and closes) and the reader's.
//!
//! `$XDG_RUNTIME_DIR/artifactfs/NAME.sock`, else `/tmp/artifactfs-UID/NAME.sock`; the
//! directory is 0700 and must be ours, the socket 0600. `NAME` is the canonical mountpoint
//! escaped the way `systemd-escape --path` does it (`/home/me/a` → `home-me-a`), so
//! `artifactfs status MOUNTPOINT` finds it; a long one is cut and a hash of the whole path
//! appended (a socket path has at most 107 bytes). The socket is removed on unmount.

use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::filesystem::ArtifactFs;
use crate::stats::Status;

/// Escaped names longer than this are cut and get a hash of the whole path.
const MAX_NAME: usize = 60;

/// How long a reader waits for a daemon's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The directory the sockets live in (not created).
pub fn socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("artifactfs"),
        // SAFETY: getuid cannot fail.
        None => PathBuf::from(format!("/tmp/artifactfs-{}", unsafe { libc::getuid() })),
    }
}

/// The socket of the mount at `mountpoint` (canonical).
pub fn socket_path(mountpoint: &Path) -> PathBuf {
    socket_dir().join(format!("{}.sock", socket_name(mountpoint)))
}

/// `systemd-escape --path`: slashes at either end dropped, the others `-`, every byte other
/// than ASCII letters, digits, `:`, `_` and `.` (and a leading `.`) as `\xNN`; `/` is `-`.
/// Cut to `MAX_NAME` plus a hash when longer.
pub fn socket_name(mountpoint: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = mountpoint.as_os_str().as_bytes();
    let trimmed = {
        let s = bytes.iter().position(|&b| b != b'/').unwrap_or(bytes.len());
        let e = bytes.iter().rposition(|&b| b != b'/').map_or(s, |e| e + 1);
        &bytes[s..e.max(s)]
    };
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut name = String::new();
    let mut prev_slash = false;
    for (i, &b) in trimmed.iter().enumerate() {
        match b {
            b'/' if prev_slash => continue, // `a//b` is `a/b`
            b'/' => name.push('-'),
            b'.' if i == 0 => name.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b":_.".contains(&b) => name.push(b as char),
            b => name.push_str(&format!("\\x{b:02x}")),
        }
        prev_slash = b == b'/';
    }
    if name.len() <= MAX_NAME {
        return name;
    }
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(bytes));
    format!("{}-{}", &name[..MAX_NAME - 17], &hash[..16])
}

/// Creates the socket directory (0700), or checks that the one there is a directory of ours
/// and makes it 0700.
fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let md = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid cannot fail.
    if !md.is_dir() || md.uid() != unsafe { libc::geteuid() } {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a directory of ours", dir.display()),
        ));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A mount's status socket, answering while it lives; dropping it removes the socket.
pub struct StatusSocket {
    path: PathBuf,
    /// The socket file's inode, so that only our own file is removed.
    ino: u64,
    task: tokio::task::JoinHandle<()>,
}

impl StatusSocket {
    /// Listens for `fs` mounted at `mountpoint` (canonical), answering on `rt`. A failure is
    /// a warning: the mount works without its status.
    pub fn start(
        rt: &tokio::runtime::Handle,
        mountpoint: &Path,
        fs: Arc<ArtifactFs>,
    ) -> Option<StatusSocket> {
        let path = socket_path(mountpoint);
        match Self::bind(rt, &path, mountpoint, fs) {
            Ok(s) => {
                tracing::info!(socket = %path.display(), "status socket");
                Some(s)
            }
            Err(e) => {
                tracing::warn!(socket = %path.display(), error = %e, "no status socket: `artifactfs status` will not see this mount");
                None
            }
        }
    }

    fn bind(
        rt: &tokio::runtime::Handle,
        path: &Path,
        mountpoint: &Path,
        fs: Arc<ArtifactFs>,
    ) -> io::Result<StatusSocket> {
        private_dir(path.parent().expect("a socket path has a directory"))?;
        // Left behind by a mount that crashed (this mountpoint was checked to be free).
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let _enter = rt.enter();
        let listener = tokio::net::UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let ino = std::fs::symlink_metadata(path)?.ino();
        let mountpoint = mountpoint.display().to_string();
        let task = rt.spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    // Out of descriptors, say: don't spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let mut status = fs.status();
                status.mountpoint = Some(mountpoint.clone());
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = conn.write_all(status.to_json().as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(StatusSocket {
            path: path.to_path_buf(),
            ino,
            task,
        })
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        self.task.abort();
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why a socket gave no status.
#[derive(Debug)]
pub enum QueryError {
    /// Nobody listens (no such socket, or one left behind by a mount that is gone).
    NoDaemon,
    Failed(String),
}

/// The status the daemon behind `socket` answers with.
pub fn query(socket: &Path) -> Result<Status, QueryError> {
    let mut conn = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => QueryError::NoDaemon,
        _ => QueryError::Failed(e.to_string()),
    })?;
    let fail = |e: io::Error| QueryError::Failed(e.to_string());
    conn.set_read_timeout(Some(READ_TIMEOUT)).map_err(fail)?;
    let mut body = Vec::new();
    conn.read_to_end(&mut body).map_err(fail)?;
    serde_json::from_slice(&body).map_err(|e| QueryError::Failed(format!("bad answer: {e}")))
}

/// Every socket in the socket directory, sorted.
pub fn sockets() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(socket_dir()) else {
        return Vec::new();
    };
    let mut all: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_systemd_escaped_paths() {
        let n = |p: &str| socket_name(Path::new(p));
        assert_eq!(n("/home/me/artifacts"), "home-me-artifacts");
        assert_eq!(n("/"), "-");
        assert_eq!(n("/mnt/my-repo/"), "mnt-my\\x2drepo");
        assert_eq!(n("/a//b"), "a-b");
        assert_eq!(n("/.hidden/x y"), "\\x2ehidden-x\\x20y");
        assert_eq!(n("/srv/a.b:c_d"), "srv-a.b:c_d");
        assert_eq!(n("/tmp/é"), "tmp-\\xc3\\xa9");
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_stay_distinct() {
        let a = format!("/{}/one", "x".repeat(100));
        let b = format!("/{}/two", "x".repeat(100));
        let (na, nb) = (socket_name(Path::new(&a)), socket_name(Path::new(&b)));
        assert_eq!(na.len(), MAX_NAME);
        assert_ne!(na, nb);
        assert_eq!(na, socket_name(Path::new(&a)), "deterministic");
    }
}
