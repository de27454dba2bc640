//! Descriptors made as `Minor4::files` says (issue 12, files group):
//! `O_PATH` descriptors (the same inode again), procfs files of the
//! process itself (its own again), deleted FIFOs (a FIFO again), and the
//! attributes and holes of files made from their contents.
//!
//! Runs in the constructor before teardown (libc available), in the
//! process that becomes the image's (its PID is the image's when the
//! restore keeps PIDs): a failure refuses the restore while nothing has
//! been torn down.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use dumpfmt::files::{How, PathKind};
use dumpfmt::{Fd, FdKind, Image};

use super::{Refusal, exit, refuse};

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn fstat(fd: &OwnedFd) -> Option<libc::stat> {
    // SAFETY: all-zero is a valid `struct stat`.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat of our descriptor into a live struct.
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0).then_some(st)
}

fn open(path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let c = CString::new(path).map_err(std::io::Error::other)?;
    // SAFETY: opening a NUL-terminated path.
    let n = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if n < 0 {
        return Err(last_error());
    }
    // SAFETY: `n` was just returned by the kernel and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The descriptor of `fd` when its entry says how to make it; `None`
/// when `fds` makes it as its record says.
pub fn make(image: &Image<'_>, fd: &Fd<'_>) -> Option<Result<OwnedFd, Refusal>> {
    match image.minor4.files.of(fd.fd)? {
        How::Path {
            path,
            kind,
            dev,
            ino,
        } => Some(o_path(fd, path, *kind, (*dev, *ino))),
        How::Proc { rel, dir, offset } => Some(procfs(image, fd, rel, *dir, *offset)),
        How::DeletedFifo { name } => match &fd.kind {
            FdKind::Pipe { id, write, .. } => Some(deleted_fifo(image, fd, *id, *write, name)),
            _ => None,
        },
        How::Inotify { watches } => Some(super::inotify::make(fd, watches)),
        How::Attrs { .. } | How::Stored { .. } | How::SocketFile { .. } => None,
    }
}

fn o_path(fd: &Fd<'_>, path: &str, kind: PathKind, id: (u64, u64)) -> Result<OwnedFd, Refusal> {
    let mut flags = libc::O_PATH;
    match kind {
        PathKind::Symlink => flags |= libc::O_NOFOLLOW,
        PathKind::Dir => flags |= libc::O_DIRECTORY,
        _ => {}
    }
    let n = fd.fd;
    let f = open(path, flags).map_err(|e| {
        refuse(
            exit::FILE_CHANGED,
            format!("O_PATH file {path} (fd {n}): {e}"),
        )
    })?;
    if fstat(&f).map(|st| (st.st_dev, st.st_ino)) != Some(id) {
        return Err(refuse(
            exit::FILE_CHANGED,
            format!("O_PATH file {path} (fd {n}) is no longer the same file"),
        ));
    }
    Ok(f)
}

fn procfs(
    image: &Image<'_>,
    fd: &Fd<'_>,
    rel: &str,
    dir: bool,
    offset: u64,
) -> Result<OwnedFd, Refusal> {
    let pid = super::tree_procfs::whose(image, fd);
    let path = format!("/proc/{pid}/{rel}");
    let mut flags = fd.flags & (libc::O_ACCMODE | libc::O_PATH | libc::O_NONBLOCK | libc::O_APPEND)
        | libc::O_NOCTTY;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    let f = open(&path, flags).map_err(|e| {
        refuse(
            exit::FILE_CHANGED,
            format!("procfs file {path} (fd {}): {e}", fd.fd),
        )
    })?;
    if offset > 0 {
        // SAFETY: lseek on our descriptor (a seq file seeks by reading).
        unsafe { libc::lseek(f.as_raw_fd(), offset as i64, libc::SEEK_SET) };
    }
    Ok(f)
}

/// The (read end, write end) of each deleted FIFO made so far, by id: both
/// ends of one FIFO are one FIFO again.
static FIFOS: Mutex<Option<HashMap<u64, (OwnedFd, OwnedFd)>>> = Mutex::new(None);

fn deleted_fifo(
    image: &Image<'_>,
    fd: &Fd<'_>,
    id: u64,
    write: bool,
    name: &str,
) -> Result<OwnedFd, Refusal> {
    let n = fd.fd;
    let fail = |what: &str, e: std::io::Error| {
        refuse(
            exit::UNSUPPORTED,
            format!("fd {n} (deleted FIFO {name}): {what}: {e}"),
        )
    };
    let mut fifos = FIFOS.lock().unwrap_or_else(|e| e.into_inner());
    let fifos = fifos.get_or_insert_with(HashMap::new);
    let (r, w) = match fifos.entry(id) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(slot) => {
            slot.insert(filled_fifo(image, fd, id, name)?)
        }
    };
    let end = if fd.flags & libc::O_ACCMODE == libc::O_RDWR {
        // A FIFO open for both: a description of its own, reading and writing.
        open(
            &format!("/proc/self/fd/{}", r.as_raw_fd()),
            libc::O_RDWR | libc::O_NONBLOCK,
        )
    } else if write {
        w.try_clone()
    } else {
        r.try_clone()
    };
    end.map_err(|e| fail("opening its end", e))
}

/// A new FIFO for deleted FIFO `id`, holding what its read end had waiting.
fn filled_fifo(
    image: &Image<'_>,
    fd: &Fd<'_>,
    id: u64,
    name: &str,
) -> Result<(OwnedFd, OwnedFd), Refusal> {
    let n = fd.fd;
    let fail = |what: &str, e: std::io::Error| {
        refuse(
            exit::UNSUPPORTED,
            format!("fd {n} (deleted FIFO {name}): {what}: {e}"),
        )
    };
    let (r, w) = new_fifo(name).map_err(|e| fail("cannot make it again", e))?;
    // It holds what its (first) read end had waiting.
    let data = image
        .fds
        .iter()
        .find_map(|o| match &o.kind {
            FdKind::Pipe {
                id: i,
                write: false,
                data,
                ..
            } if *i == id => Some(&data[..]),
            _ => None,
        })
        .unwrap_or(&[]);
    let size = match fd.kind {
        FdKind::Pipe { size, .. } => size,
        _ => 0,
    };
    // SAFETY: F_SETPIPE_SZ on our FIFO (a refusal shows as a short write).
    unsafe {
        libc::fcntl(
            w.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            size.max(data.len() as u32) as i32,
        )
    };
    let mut rest = data;
    while !rest.is_empty() {
        // SAFETY: writing from a live buffer into our non-blocking FIFO.
        let k = unsafe { libc::write(w.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
        if k <= 0 {
            return Err(fail("refilling it", last_error()));
        }
        rest = &rest[k as usize..];
    }
    Ok((r, w))
}

/// A FIFO named `name` made in a private directory, opened at both ends
/// (non-blocking, read end first), then removed with its directory.
fn new_fifo(name: &str) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let base = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|d| std::path::Path::new(d).is_dir())
        .unwrap_or_else(|| std::env::temp_dir().to_string_lossy().into_owned());
    let mut template = format!("{base}/migrate-fifo-XXXXXX\0").into_bytes();
    // SAFETY: mkdtemp rewrites the NUL-terminated template in place.
    if unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) }.is_null() {
        return Err(last_error());
    }
    template.pop();
    let dir = String::from_utf8_lossy(&template).into_owned();
    let name = if name.is_empty() || name.contains('/') {
        "fifo"
    } else {
        name
    };
    let path = format!("{dir}/{name}");
    let made = (|| {
        let c = CString::new(path.as_str()).map_err(std::io::Error::other)?;
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(last_error());
        }
        let r = open(&path, libc::O_RDONLY | libc::O_NONBLOCK)?;
        let w = open(&path, libc::O_WRONLY | libc::O_NONBLOCK)?;
        Ok((r, w))
    })();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
    made
}

/// Gives a file made from its contents its holes back (before it may be
/// reopened read-only: punching needs a writable descriptor), or, for one
/// whose data the image stores with its page data (`data`: the image's
/// file and where the image starts in it), its data, unless `filled`
/// (an object the tree's processes share, filled when it was made:
/// `super::tree_shared`).
pub fn shape(
    image: &Image<'_>,
    data: (&std::fs::File, u64),
    fd: &Fd<'_>,
    made: &OwnedFd,
    filled: bool,
) -> Result<(), Refusal> {
    if let Some(how @ How::Stored { .. }) = image.minor4.files.of(fd.fd) {
        if filled {
            return Ok(());
        }
        let target = std::fs::File::from(
            made.try_clone()
                .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))?,
        );
        return super::bigfiles::fill(data.0, data.1, fd.fd, how, &target);
    }
    let Some(How::Attrs { data, .. }) = image.minor4.files.of(fd.fd) else {
        return Ok(());
    };
    let FdKind::Contents { data: bytes, .. } = &fd.kind else {
        return Ok(());
    };
    let len = bytes.len() as u64;
    let mut at = 0u64;
    let ends = data.iter().copied().chain(core::iter::once((len, len)));
    for (start, end) in ends {
        if start > at {
            // SAFETY: fallocate on our descriptor; no memory involved.
            let punched = unsafe {
                libc::fallocate(
                    made.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    at as i64,
                    (start - at) as i64,
                )
            };
            if punched != 0 {
                return Err(refuse(
                    exit::UNSUPPORTED,
                    format!(
                        "fd {}: cannot make its hole at {at} again: {}",
                        fd.fd,
                        last_error()
                    ),
                ));
            }
        }
        at = at.max(end);
    }
    Ok(())
}

/// Gives a file made from its contents its mode, owner and times (last:
/// writing its contents changed them).
pub fn attrs(image: &Image<'_>, fd: &Fd<'_>, made: &OwnedFd) -> Result<(), Refusal> {
    if let (Some(How::SocketFile { mode }), FdKind::Socket { addr, .. }) =
        (image.minor4.files.of(fd.fd), &fd.kind)
    {
        return socket_file(fd.fd, addr, *mode);
    }
    let (mode, uid, gid, atime, mtime) = match image.minor4.files.of(fd.fd) {
        Some(
            How::Attrs {
                mode,
                uid,
                gid,
                atime,
                mtime,
                ..
            }
            | How::Stored {
                mode,
                uid,
                gid,
                atime,
                mtime,
                ..
            },
        ) => (mode, uid, gid, atime, mtime),
        _ => return Ok(()),
    };
    let n = fd.fd;
    let fail = |what: String| {
        refuse(
            exit::UNSUPPORTED,
            format!("fd {n}: {what}: {}", last_error()),
        )
    };
    let raw = made.as_raw_fd();
    if let Some(st) = fstat(made)
        && (st.st_uid, st.st_gid) != (*uid, *gid)
        // SAFETY: fchown of our descriptor.
        && unsafe { libc::fchown(raw, *uid, *gid) } != 0
    {
        return Err(fail(format!("cannot give it owner {uid}:{gid} again")));
    }
    // SAFETY: fchmod of our descriptor.
    if unsafe { libc::fchmod(raw, *mode) } != 0 {
        return Err(fail(format!("cannot give it mode {mode:o} again")));
    }
    let ts = |(sec, nsec): (i64, i64)| libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    let times = [ts(*atime), ts(*mtime)];
    // SAFETY: futimens of our descriptor from two live timespecs.
    if unsafe { libc::futimens(raw, times.as_ptr()) } != 0 {
        return Err(fail("cannot give it its times again".into()));
    }
    Ok(())
}

/// Gives the file a Unix socket was bound to again its mode.
fn socket_file(n: i32, addr: &[u8], mode: u32) -> Result<(), Refusal> {
    let path = addr.get(2..).unwrap_or(&[]);
    let path = &path[..path.iter().position(|&c| c == 0).unwrap_or(path.len())];
    let c = CString::new(path).map_err(|e| refuse(exit::CORRUPT, format!("fd {n}: {e}")))?;
    // SAFETY: chmod of a NUL-terminated path.
    if unsafe { libc::chmod(c.as_ptr(), mode) } != 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "fd {n}: cannot give its socket file {} mode {mode:o} again: {}",
                String::from_utf8_lossy(path),
                last_error()
            ),
        ));
    }
    Ok(())
}

/// Closes what [`make`] kept to make the ends of deleted FIFOs: every end
/// the image holds has its own duplicate by now.
pub fn close() {
    let mut fifos = FIFOS.lock().unwrap_or_else(|e| e.into_inner());
    *fifos = None;
}
