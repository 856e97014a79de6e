//! How the adapter answers: the core's errors as errnos (logged once, quietly when ordinary),
//! attributes in fuser's shape, and the macros that write the repetitive parts of the
//! `Filesystem` impl — `fail!` for the error arm of every request, `refuse!` for the writes
//! a read-only tree answers with a fixed errno.

use fuser::{Errno, FileAttr, FileType, INodeNo, ReplyXattr};

use crate::config::Owner;
use crate::filesystem::held::Xattrs;
use crate::filesystem::{Attr, FileKind, FsError, FsResult};

/// Answers `$reply` with the errno of `$err` (an [`FsError`]), after logging it as the
/// failure of `$op` on `$what` (anything `Display`).
macro_rules! fail {
    ($reply:expr, $op:expr, $what:expr, $err:expr) => {{
        let err: &$crate::filesystem::FsError = &$err;
        $crate::fuse::reply::log_error($op, &$what, err);
        $reply.error($crate::fuse::reply::errno(err))
    }};
}

/// Writes `Filesystem` methods that refuse their request with a fixed errno, arguments
/// unread: `refuse! { fn mkdir(INodeNo, &OsStr, u32, u32) -> ReplyEntry = EROFS; }`
/// lists the arguments after `&self, &Request` by type, then the reply type and the errno.
macro_rules! refuse {
    ($(fn $name:ident($($arg:ty),* $(,)?) -> $reply:ty = $errno:ident;)*) => {
        $(
            fn $name(&self, _: &::fuser::Request, $(_: $arg,)* reply: $reply) {
                reply.error(::fuser::Errno::$errno);
            }
        )*
    };
}

pub(crate) use {fail, refuse};

pub(crate) fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno())
}

pub(crate) fn log_error(op: &str, what: &dyn std::fmt::Display, e: &FsError) {
    if e.is_ordinary() {
        tracing::debug!("{op} {what}: {e} (errno {})", e.errno());
    } else {
        tracing::warn!("{op} {what}: {e} (errno {})", e.errno());
    }
}

pub(crate) fn file_attr(owner: Owner, a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: if a.kind == FileKind::Dir { 2 } else { 1 },
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

pub(crate) fn file_type(k: FileKind) -> FileType {
    match k {
        FileKind::Dir => FileType::Directory,
        FileKind::File => FileType::RegularFile,
        FileKind::Symlink => FileType::Symlink,
    }
}

/// An extended attribute's value, or its size when the caller asks for that (`size` 0).
fn reply_xattr(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(value);
    }
}

/// Answers getxattr of `name` from the node's attributes.
pub(crate) fn reply_getxattr(
    reply: ReplyXattr,
    ino: u64,
    name: &str,
    size: u32,
    attrs: FsResult<Xattrs>,
) {
    match attrs {
        Ok(attrs) => match attrs.iter().find(|(k, _)| k == name) {
            Some((_, v)) => reply_xattr(reply, size, v.as_bytes()),
            None => reply.error(Errno::from_i32(libc::ENODATA)),
        },
        Err(e) => fail!(reply, "getxattr", ino, e),
    }
}

/// Answers listxattr with the names of the node's attributes.
pub(crate) fn reply_listxattr(reply: ReplyXattr, ino: u64, size: u32, attrs: FsResult<Xattrs>) {
    match attrs {
        Ok(attrs) => {
            let mut buf = Vec::new();
            for (k, _) in attrs.iter() {
                buf.extend_from_slice(k.as_bytes());
                buf.push(0);
            }
            reply_xattr(reply, size, &buf)
        }
        Err(e) => fail!(reply, "listxattr", ino, e),
    }
}
