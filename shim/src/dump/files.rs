//! Files beyond what `fds` records (issue 12, files group): `O_PATH`
//! descriptors, procfs files of the process itself, the attributes and
//! holes of a file the restore makes from its contents, deleted FIFOs.
//! Each becomes an entry of `Minor4::files` completing the descriptor's
//! record (see `dumpfmt::files`).
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no std I/O, no panics; raw syscalls, arena buffers).

use std::borrow::Cow;

use dumpfmt::FdKind;
use dumpfmt::files::{How, PathKind};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::{self, line::Line};

/// One descriptor as `fds::collect` sees it.
pub struct Seen<'a> {
    pub fd: i32,
    /// `st_mode & S_IFMT`.
    pub mode: u32,
    pub flags: i32,
    /// The `/proc/self/fd/N` link.
    pub target: &'a [u8],
}

fn fail(seen: &Seen<'_>, why: &str) -> Fail {
    Fail::new("fd ")
        .dec(seen.fd as u64)
        .str(" (")
        .bytes(seen.target)
        .str("): ")
        .str(why)
}

fn text<'a>(seen: &Seen<'a>) -> Result<&'a str, Fail> {
    core::str::from_utf8(seen.target).map_err(|_| fail(seen, "the name is not UTF-8"))
}

/// A descriptor this module makes entirely: a procfs file or an `O_PATH`
/// descriptor, as its record and its entry. `None`: not one of these.
pub fn special<'a>(seen: &Seen<'a>) -> Option<Result<(FdKind<'a>, How<'a>), Fail>> {
    if let Some(rest) = seen.target.strip_prefix(b"/proc/")
        && rest.first().is_some_and(u8::is_ascii_digit)
    {
        return Some(procfs(seen, rest));
    }
    if seen.flags & libc::O_PATH != 0 {
        return Some(o_path(seen));
    }
    None
}

/// `/proc/<pid>/<rel>`: the process's own (the main thread's), or refused.
fn procfs<'a>(seen: &Seen<'a>, rest: &'a [u8]) -> Result<(FdKind<'a>, How<'a>), Fail> {
    let slash = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    let pid = sys::parse_dec(&rest[..slash]);
    if pid != Some(sys::getpid() as u64) {
        crate::tree::procfs::of_ancestor(pid).map_err(|why| fail(seen, why))?;
    }
    let rel = rest.get(slash + 1..).unwrap_or(&[]);
    if let Some(task) = rel.strip_prefix(b"task/") {
        let end = task.iter().position(|&c| c == b'/').unwrap_or(task.len());
        if !task.is_empty() && sys::parse_dec(&task[..end]) != pid {
            return Err(fail(
                seen,
                "a procfs file of a thread other than the main one cannot be saved",
            ));
        }
    }
    if rel.ends_with(b" (deleted)") {
        return Err(fail(seen, "its procfs file is gone"));
    }
    let path = text(seen)?;
    let rel = &path[path.len() - rel.len()..];
    let dir = seen.mode == libc::S_IFDIR;
    let offset = if seen.flags & libc::O_PATH != 0 {
        0
    } else {
        sys::lseek(seen.fd, 0, libc::SEEK_CUR).unwrap_or(0)
    };
    let kind = if dir {
        FdKind::Dir {
            path: Cow::Borrowed(path),
            offset,
        }
    } else {
        // Size and mtime of a procfs file say nothing stable.
        FdKind::File {
            path: Cow::Borrowed(path),
            offset,
            size: 0,
            mtime_sec: 0,
            mtime_nsec: 0,
        }
    };
    Ok((
        kind,
        How::Proc {
            rel: Cow::Borrowed(rel),
            dir,
            offset,
        },
    ))
}

/// An `O_PATH` descriptor: its path and inode.
fn o_path<'a>(seen: &Seen<'a>) -> Result<(FdKind<'a>, How<'a>), Fail> {
    if seen.target.first() != Some(&b'/') || seen.target.ends_with(b" (deleted)") {
        return Err(fail(
            seen,
            "an O_PATH descriptor of a file without a path cannot be saved",
        ));
    }
    let st = sys::fstat(seen.fd).map_err(|e| fail(seen, "fstat").errno(e))?;
    let path = text(seen)?;
    let kind = match seen.mode {
        libc::S_IFDIR => PathKind::Dir,
        libc::S_IFREG => PathKind::File,
        libc::S_IFLNK => PathKind::Symlink,
        _ => PathKind::Other,
    };
    let record = if kind == PathKind::Dir {
        FdKind::Dir {
            path: Cow::Borrowed(path),
            offset: 0,
        }
    } else {
        FdKind::File {
            path: Cow::Borrowed(path),
            offset: 0,
            size: st.st_size as u64,
            mtime_sec: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec,
        }
    };
    Ok((
        record,
        How::Path {
            path: Cow::Borrowed(path),
            kind,
            dev: st.st_dev,
            ino: st.st_ino,
        },
    ))
}

/// What a record `fds` classified needs besides: a file made from its
/// contents keeps its attributes and holes; a deleted FIFO becomes a pipe
/// record without a path and an entry that makes it a FIFO again.
pub fn after<'a>(
    seen: &Seen<'a>,
    kind: &mut FdKind<'a>,
    arena: &'a Arena,
) -> Result<Option<How<'a>>, Fail> {
    match kind {
        FdKind::Contents { data, .. } => {
            // Too large to read into the metadata (`fds::contents`): its
            // data goes with the page data (`super::bigfiles`).
            let size = sys::fstat(seen.fd)
                .map_err(|e| fail(seen, "fstat").errno(e))?
                .st_size as u64;
            if data.is_empty() && super::bigfiles::stored(size) {
                let How::Attrs {
                    mode,
                    uid,
                    gid,
                    atime,
                    mtime,
                    data,
                } = attrs(seen, size, super::bigfiles::MAX_RUNS, arena)?
                else {
                    return Err(fail(seen, "no attributes"));
                };
                let runs = super::bigfiles::runs(&data, arena)
                    .ok_or_else(|| fail(seen, "the dump arena is too small"))?;
                return Ok(Some(How::Stored {
                    mode,
                    uid,
                    gid,
                    atime,
                    mtime,
                    size,
                    runs: Cow::Borrowed(runs),
                }));
            }
            attrs(seen, data.len() as u64, 512, arena).map(Some)
        }
        FdKind::Pipe { path, .. } if path.ends_with(" (deleted)") => {
            let name: &'a str = match path {
                Cow::Borrowed(p) => {
                    let p: &'a str = p;
                    let full = p.strip_suffix(" (deleted)").unwrap_or(p);
                    full.rsplit('/').next().unwrap_or("fifo")
                }
                Cow::Owned(_) => "fifo",
            };
            *path = Cow::Borrowed("");
            Ok(Some(How::DeletedFifo {
                name: Cow::Borrowed(name),
            }))
        }
        FdKind::Socket {
            family: libc::AF_UNIX,
            addr,
            ..
        } if addr.len() > 2 && addr[2] != 0 => Ok(socket_file(&addr[2..])),
        _ => Ok(None),
    }
}

/// The mode of the file a Unix socket is bound to (`sun_path`), if it is
/// there and a socket.
fn socket_file<'a>(sun_path: &[u8]) -> Option<How<'a>> {
    let len = sun_path
        .iter()
        .position(|&c| c == 0)
        .unwrap_or(sun_path.len());
    let mut path = [0u8; 128];
    path.get_mut(..len)?.copy_from_slice(&sun_path[..len]);
    let st = sys::stat_path(&path[..len + 1], false).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(How::SocketFile {
        mode: st.st_mode & 0o7777,
    })
}

/// Mode, owner, times and data ranges of a file the restore makes again.
/// At most `most` data ranges are listed: a file more fragmented is all
/// data.
fn attrs<'a>(seen: &Seen<'a>, len: u64, most: usize, arena: &'a Arena) -> Result<How<'a>, Fail> {
    let st = sys::fstat(seen.fd).map_err(|e| fail(seen, "fstat").errno(e))?;
    let mut ranges = arena
        .vec::<(u64, u64)>(most)
        .ok_or_else(|| fail(seen, "the dump arena is too small"))?;
    // SEEK_DATA/SEEK_HOLE on a description of its own: the program's
    // offset stays where it is.
    let own = reopen(seen.fd);
    let fd = own.unwrap_or(seen.fd);
    let kept = sys::lseek(seen.fd, 0, libc::SEEK_CUR);
    let mut at = 0u64;
    let mut full = false;
    while at < len {
        let Ok(start) = sys::lseek(fd, at as i64, libc::SEEK_DATA) else {
            break; // ENXIO: only a hole is left
        };
        let end = sys::lseek(fd, start as i64, libc::SEEK_HOLE)
            .unwrap_or(len)
            .min(len);
        if start >= end {
            break;
        }
        if ranges.push((start, end)).is_err() {
            full = true;
            break;
        }
        at = end;
    }
    match own {
        Some(own) => sys::close(own),
        None => {
            if let Ok(k) = kept {
                let _ = sys::lseek(seen.fd, k as i64, libc::SEEK_SET);
            }
        }
    }
    let ranges: &'a [(u64, u64)] = if full {
        // Too fragmented to list: all data (a restore that fills holes with
        // zeros loses nothing but sparseness).
        let one = arena
            .vec::<(u64, u64)>(1)
            .ok_or_else(|| fail(seen, "the dump arena is too small"))?;
        let mut one = one;
        if len > 0 {
            let _ = one.push((0, len));
        }
        one.into_slice()
    } else {
        ranges.into_slice()
    };
    Ok(How::Attrs {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        atime: (st.st_atime, st.st_atime_nsec),
        mtime: (st.st_mtime, st.st_mtime_nsec),
        data: Cow::Borrowed(ranges),
    })
}

/// A new read-only open file description of the file of `fd`, through
/// `/proc/self/fd/N` (so a descriptor open only for writing can be read,
/// and reading moves no offset of the program's), without updating its
/// access time where the kernel lets us.
pub fn reopen(fd: i32) -> Option<i32> {
    let mut path = Line::<64>::new();
    path.str("/proc/self/fd/").dec(fd as u64);
    let p = path.c_str()?;
    let base = libc::O_RDONLY | libc::O_CLOEXEC;
    sys::open(p, base | libc::O_NOATIME, 0)
        .or_else(|_| sys::open(p, base, 0))
        .ok()
}

/// Reads the whole contents of the file of `fd` into `buf` (its size),
/// through a read-only reopening (see [`reopen`]) or, where that is
/// refused (a mode that forbids reading), through `fd` itself. Returns how
/// many bytes were read.
pub fn read_contents(fd: i32, buf: &mut [u8]) -> Result<usize, sys::Errno> {
    let own = reopen(fd);
    let from = own.unwrap_or(fd);
    let mut done = 0usize;
    let result = loop {
        if done >= buf.len() {
            break Ok(done);
        }
        match sys::pread(from, &mut buf[done..], done as u64) {
            Ok(0) => break Ok(done),
            Ok(n) => done += n,
            Err(sys::Errno(libc::EINTR)) => {}
            Err(e) => break Err(e),
        }
    };
    if let Some(own) = own {
        sys::close(own);
    }
    result
}
