//! The thin FUSE adapter: each kernel request that may wait is handed to the tokio runtime
//! and answered from the task (fuser's `Reply*` objects are `Send + 'static`), so no FUSE
//! thread ever waits on the network; what memory can answer (extended attributes held for
//! the node, names that never exist, statfs, access, flush) is answered on the FUSE thread
//! that received it, which costs a tenth of a task's round trip. Everything else lives in [`crate::filesystem`]. A task that fails
//! answers with the error's errno and logs it; a task that panics drops its reply, which
//! fuser turns into EIO, and the mount stays up.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use fuser::{
    AccessFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, Notifier, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyXattr,
    Request,
};

use crate::config::Owner;
use crate::filesystem::{ArtifactFs, DirEntry, FileKind, Invalidation, xattrs};

mod epoch;
mod reply;
pub use epoch::Epoch;
use reply::{fail, file_attr, file_type, refuse, reply_getxattr, reply_listxattr};

pub struct FuseAdapter {
    fs: Arc<ArtifactFs>,
    rt: tokio::runtime::Handle,
    owner: Owner,
    dirs: Arc<Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>>,
    next_dir: AtomicU64,
    notifier: Arc<OnceLock<Notifier>>,
    /// Lets deletes take cached names back, so that they may be cached at all.
    epoch: Arc<Epoch>,
    /// `--daemon-timeout`: a request not answered by then is dropped, which fuser answers
    /// with EIO, so no caller waits on the network forever.
    request_timeout: Option<std::time::Duration>,
}

impl FuseAdapter {
    pub fn new(
        fs: Arc<ArtifactFs>,
        rt: tokio::runtime::Handle,
        owner: Owner,
        notifier: Arc<OnceLock<Notifier>>,
        epoch: Arc<Epoch>,
        request_timeout: Option<std::time::Duration>,
    ) -> Self {
        FuseAdapter {
            fs,
            rt,
            owner,
            dirs: Arc::new(Mutex::new(HashMap::new())),
            next_dir: AtomicU64::new(1),
            notifier,
            epoch,
            request_timeout,
        }
    }

    /// Hands a request that may wait (on the network, or on a lock held across a load) to
    /// the runtime; counted in the core's stats (`requests_spawned`).
    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.fs.stats().request_spawned();
        match self.request_timeout {
            None => {
                self.rt.spawn(fut);
            }
            Some(limit) => {
                self.rt.spawn(async move {
                    if tokio::time::timeout(limit, fut).await.is_err() {
                        // The reply went down with the future: fuser answers EIO.
                        tracing::warn!(
                            "a request took longer than --daemon-timeout ({limit:?}): EIO"
                        );
                    }
                });
            }
        }
    }
}

/// After a delete: tell the kernel the names that went with it (after the reply, since
/// the kernel holds the parent directory's lock until then). Blocks until it can take that
/// lock: never call it on a runtime worker.
fn invalidate(notifier: &OnceLock<Notifier>, stale: Vec<Invalidation>) {
    let Some(n) = notifier.get() else {
        return;
    };
    for inv in stale {
        if let Err(e) = n.inval_entry(INodeNo(inv.parent), OsStr::new(&inv.name)) {
            tracing::debug!("inval_entry {}: {e}", inv.name);
        }
    }
}

/// Resolves once process (thread) `pid` has exited or is a zombie; never for pid 0 (a
/// request the kernel made on nobody's behalf).
async fn caller_gone(pid: u32) {
    if pid == 0 {
        return std::future::pending().await;
    }
    let stat = format!("/proc/{pid}/stat");
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let alive = match std::fs::read_to_string(&stat) {
            // The state follows the parenthesized command name: `123 (cat) R ...`.
            Ok(s) => s
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) => false,
        };
        if !alive {
            return;
        }
    }
}

fn name_str(name: &OsStr) -> Option<String> {
    name.to_str().map(str::to_string)
}

impl Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let abi = config.kernel_abi();
        self.epoch.kernel_speaks(abi.0, abi.1);
        let _ = config.set_max_readahead(1 << 20);
        // Background (readahead) requests the kernel keeps in flight: enough that a slow
        // artifact's readahead cannot hold up everyone else's.
        let _ = config.set_max_background(64);
        // Files not verified yet are opened with direct I/O; programs may still mmap them.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        // Entries with their attributes when the kernel thinks they will be wanted (the first
        // batch of a listing, and after lookups of its entries: `ls -l`), so that `ls -l`
        // makes no lookup per file.
        let _ = config.add_capabilities(
            fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        let fs = self.fs.clone();
        let owner = self.owner;
        let epoch = self.epoch.clone();
        self.spawn(async move {
            match fs.lookup(parent.0, &name).await {
                Ok(a) => reply.entry(&epoch.ttl(a.ttl), &file_attr(owner, &a), Generation(0)),
                Err(e) => fail!(reply, "lookup", name, e),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let fs = self.fs.clone();
        let owner = self.owner;
        let epoch = self.epoch.clone();
        self.spawn(async move {
            match fs.getattr(ino.0).await {
                Ok(a) => reply.attr(&epoch.ttl(a.ttl), &file_attr(owner, &a)),
                Err(e) => fail!(reply, "getattr", ino.0, e),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.readlink(ino.0).await {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => fail!(reply, "readlink", ino.0, e),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let fs = self.fs.clone();
        self.spawn(async move {
            match fs.open(ino.0).await {
                // Artifact bytes never change under one inode: once verified, the page cache
                // keeps them. Until then (and after a failed check) every read comes to us,
                // so that each reader's check sees every byte it is given.
                Ok(fh) if fs.page_cache_allowed(ino.0).await => {
                    reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE)
                }
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                Err(e) => fail!(reply, "open", ino.0, e),
            }
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        let pid = req.pid();
        self.spawn(async move {
            let work = async move {
                match fs.read(fh.0, offset, size).await {
                    Ok(data) => reply.data(&data),
                    Err(e) => fail!(reply, "read", ino.0, e),
                }
            };
            // fuser answers FUSE_INTERRUPT with ENOSYS, so a Ctrl-C'd reader is noticed by
            // watching its process: once it is gone, its read (and the downloads only it
            // was waiting for) are dropped.
            tokio::select! {
                () = work => {}
                () = caller_gone(pid) => {
                    tracing::debug!(pid, "reader gone: read of inode {} cancelled", ino.0);
                }
            }
        });
    }

    /// Nothing is ever buffered for writing: a close has nothing to flush.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        reply.ok();
    }

    /// `SEEK_DATA`/`SEEK_HOLE` (`grep`, `cp` ask): our files have no holes, and on ENOSYS the
    /// kernel stops asking and answers them itself that way (the whole file is data). The same
    /// answer as fuser's default, without its "Not Implemented" warning in the log.
    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let dirs = self.dirs.clone();
        let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
        self.spawn(async move {
            match fs.readdir(ino.0).await {
                Ok(mut entries) => {
                    // Snapshot the listing: the kernel repeats offsets, so index into it.
                    let parent = fs.parent_of(ino.0);
                    entries.insert(
                        0,
                        DirEntry {
                            ino: parent,
                            name: "..".into(),
                            kind: FileKind::Dir,
                        },
                    );
                    entries.insert(
                        0,
                        DirEntry {
                            ino: ino.0,
                            name: ".".into(),
                            kind: FileKind::Dir,
                        },
                    );
                    dirs.lock().unwrap().insert(fh, Arc::new(entries));
                    reply.opened(FileHandle(fh), FopenFlags::empty())
                }
                Err(e) => fail!(reply, "opendir", ino.0, e),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(entries) = self.dirs.lock().unwrap().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            // The offset given is that of the *next* entry.
            if reply.add(INodeNo(e.ino), i as u64 + 1, file_type(e.kind), &e.name) {
                break;
            }
        }
        reply.ok();
    }

    /// The listing snapshot's entries with their attributes, from `offset` until the
    /// kernel's buffer is full: one task per batch. An entry whose attributes fail (gone
    /// since the listing) is left out.
    fn readdirplus(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(entries) = self.dirs.lock().unwrap().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let fs = self.fs.clone();
        let owner = self.owner;
        self.spawn(async move {
            for (i, e) in entries.iter().enumerate().skip(offset as usize) {
                let Ok(a) = fs.getattr(e.ino).await else {
                    continue;
                };
                let attr = file_attr(owner, &a);
                // The offset given is that of the *next* entry.
                if reply.add(
                    INodeNo(e.ino),
                    i as u64 + 1,
                    &e.name,
                    &a.ttl,
                    &attr,
                    Generation(0),
                ) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, false);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, true);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        let (blocks, free, bsize) = (s.blocks, s.free_blocks, s.block_size);
        reply.statfs(
            blocks,
            free,
            free,
            s.files,
            s.free_files,
            bsize,
            s.name_max,
            bsize,
        );
    }

    /// A name outside `user.` never exists: answered here, with nothing looked at (`ls -l`
    /// asks every file for `security.selinux` and `system.posix_acl_access`). The others are
    /// answered here too when memory has the node's attributes; a task loads them otherwise.
    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(name) = name.to_str().filter(|n| xattrs::may_exist(n)) else {
            return reply.error(Errno::from_i32(libc::ENODATA));
        };
        if let Some(attrs) = self.fs.xattrs_now(ino.0) {
            return reply_getxattr(reply, ino.0, name, size, attrs);
        }
        let fs = self.fs.clone();
        let name = name.to_string();
        self.spawn(async move {
            let attrs = fs.xattrs(ino.0).await;
            reply_getxattr(reply, ino.0, &name, size, attrs)
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if let Some(attrs) = self.fs.xattrs_now(ino.0) {
            return reply_listxattr(reply, ino.0, size, attrs);
        }
        let fs = self.fs.clone();
        self.spawn(async move { reply_listxattr(reply, ino.0, size, fs.xattrs(ino.0).await) });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS)
        } else {
            reply.ok()
        }
    }

    // Every other write is refused.
    refuse! {
        fn setattr(
            INodeNo, Option<u32>, Option<u32>, Option<u32>, Option<u64>,
            Option<fuser::TimeOrNow>, Option<fuser::TimeOrNow>, Option<SystemTime>,
            Option<FileHandle>, Option<SystemTime>, Option<SystemTime>, Option<SystemTime>,
            Option<fuser::BsdFileFlags>,
        ) -> ReplyAttr = EROFS;
        fn mknod(INodeNo, &OsStr, u32, u32, u32) -> ReplyEntry = EROFS;
        fn mkdir(INodeNo, &OsStr, u32, u32) -> ReplyEntry = EROFS;
        fn symlink(INodeNo, &OsStr, &Path) -> ReplyEntry = EROFS;
        fn rename(INodeNo, &OsStr, INodeNo, &OsStr, fuser::RenameFlags) -> ReplyEmpty = EROFS;
        fn link(INodeNo, INodeNo, &OsStr) -> ReplyEntry = EROFS;
        fn create(INodeNo, &OsStr, u32, u32, i32) -> fuser::ReplyCreate = EROFS;
        fn setxattr(INodeNo, &OsStr, &[u8], i32, u32) -> ReplyEmpty = EROFS;
        fn removexattr(INodeNo, &OsStr) -> ReplyEmpty = EROFS;
    }
}

impl FuseAdapter {
    fn remove(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty, dir: bool) {
        let Some(name) = name_str(name) else {
            return reply.error(Errno::ENOENT);
        };
        let fs = self.fs.clone();
        let notifier = self.notifier.clone();
        let epoch = self.epoch.clone();
        self.spawn(async move {
            let r = if dir {
                fs.rmdir(parent.0, &name).await
            } else {
                fs.unlink(parent.0, &name).await
            };
            match r {
                Ok(stale) => {
                    // Before the reply: the caller's next path walk asks again everywhere,
                    // so the artifact is gone from every view when `rm` returns.
                    if let Err(e) = epoch.bump() {
                        tracing::warn!("FUSE_NOTIFY_INC_EPOCH after a delete: {e}");
                    }
                    reply.ok();
                    // Off the runtime's workers: the kernel's invalidation waits for the
                    // parent directory's lock, which the caller's next `unlink` (`rm -rf`)
                    // holds while it waits for a lookup that needs a worker to answer.
                    tokio::task::spawn_blocking(move || invalidate(&notifier, stale));
                }
                Err(e) => fail!(reply, if dir { "rmdir" } else { "unlink" }, name, e),
            }
        });
    }
}
