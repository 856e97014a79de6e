//! The kernel's dentry epoch (`FUSE_NOTIFY_INC_EPOCH`, protocol 7.44, Linux 6.16): one
//! notification, which takes no lock in the kernel, makes every name the kernel has cached
//! for this mount stale, so that the next path walk asks again. A delete sends it before
//! replying, which is what lets the names one `rm` removes (a run, an artifact's `NAME/`,
//! `NAME.zip`...) be cached at all: without it they get no kernel TTL, and every path walk
//! through them (`ls -l` stats each file by its full path) costs a lookup per component.
//! fuser has no call for it, so the header is written to a duplicate of the session's
//! `/dev/fuse` descriptor.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `fuse_notify_code::FUSE_NOTIFY_INC_EPOCH`.
const FUSE_NOTIFY_INC_EPOCH: i32 = 8;
/// The first protocol minor version with it.
const MINOR: u32 = 44;

/// How long the kernel may keep a name the core gives no cache lifetime (`VOLATILE_TTL`)
/// when a delete can take it back: as long as the listing directories (`LISTING_TTL`), so
/// an artifact that disappears upstream leaves every view as fast as before.
const VOLATILE_TTL_WITH_EPOCH: Duration = crate::filesystem::LISTING_TTL;

#[derive(Default)]
pub struct Epoch {
    fd: OnceLock<OwnedFd>,
    /// The kernel speaks protocol 7.44 or later (set at init).
    supported: AtomicBool,
}

impl Epoch {
    /// The session's device, where notifications go (set once the session exists).
    pub fn set_device(&self, fd: OwnedFd) {
        let _ = self.fd.set(fd);
    }

    /// What init learned of the kernel's protocol version.
    pub fn kernel_speaks(&self, major: u32, minor: u32) {
        let ok = major > 7 || (major == 7 && minor >= MINOR);
        self.supported.store(ok, Ordering::Relaxed);
    }

    fn usable(&self) -> bool {
        self.supported.load(Ordering::Relaxed) && self.fd.get().is_some()
    }

    /// The kernel cache lifetime to reply with for `ttl`: a zero lifetime becomes
    /// [`VOLATILE_TTL_WITH_EPOCH`] when deletes can take names back.
    pub fn ttl(&self, ttl: Duration) -> Duration {
        if ttl.is_zero() && self.usable() {
            VOLATILE_TTL_WITH_EPOCH
        } else {
            ttl
        }
    }

    /// Makes every cached name stale. Safe to call while the kernel holds a directory
    /// lock (from an unlink's handler, before its reply).
    pub fn bump(&self) -> io::Result<()> {
        let Some(fd) = self.fd.get().filter(|_| self.usable()) else {
            return Ok(());
        };
        // struct fuse_out_header { u32 len; i32 error (the notify code); u64 unique (0) }
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&16u32.to_ne_bytes());
        header[4..8].copy_from_slice(&FUSE_NOTIFY_INC_EPOCH.to_ne_bytes());
        let n = unsafe { libc::write(fd.as_raw_fd(), header.as_ptr().cast(), header.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
