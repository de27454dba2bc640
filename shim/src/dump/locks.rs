//! File locks the process holds (issue 12): `flock`, POSIX record locks
//! and open file description locks, read from each descriptor's
//! `/proc/self/fdinfo/N` (`lock:` lines: the locks taken through that open
//! file, POSIX ones only the process's own). A restore takes each again
//! through the same descriptor (`restore::locks`). A lock on a descriptor
//! the restore does not reopen by path (a deleted file, a memfd), or a
//! lease, fails the dump naming the descriptor.
//!
//! Runs in the signal handler: the `dump` module's rules hold.

use dumpfmt::{Fd, FdKind, FileLock, LOCK_FLOCK, LOCK_OFD, LOCK_POSIX, LOCK_TO_EOF};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::{self, line::Line};

/// Room for one `fdinfo` file (an epoll's lists every watch).
const FDINFO_MAX: usize = 1 << 20;
/// Most locks a dump saves.
const LOCKS_MAX: usize = 4096;

/// The locks held through `fds` (the image's descriptors, in order).
pub fn collect<'a>(arena: &'a Arena, fds: &[Fd<'_>]) -> Result<&'a [FileLock], Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let buf = arena.bytes(FDINFO_MAX).ok_or_else(no_mem)?;
    let mut locks = arena.vec::<FileLock>(LOCKS_MAX).ok_or_else(no_mem)?;
    for fd in fds {
        // A duplicate shows its original's locks: taken once, there.
        if matches!(fd.kind, FdKind::Dup { .. }) {
            continue;
        }
        let mut path = Line::<64>::new();
        path.str("/proc/self/fdinfo/").dec(fd.fd as u64);
        let Some(p) = path.c_str() else { continue };
        let n = sys::read_file(p, buf).map_err(|e| {
            Fail::new("cannot read the fdinfo of fd ")
                .dec(fd.fd as u64)
                .errno(e)
        })?;
        for line in buf[..n].split(|&c| c == b'\n') {
            let Some(rest) = line.strip_prefix(b"lock:") else {
                continue;
            };
            let lock = parse(fd.fd, rest)?;
            if !matches!(fd.kind, FdKind::File { .. } | FdKind::Dir { .. }) {
                return Err(Fail::new("fd ")
                    .dec(fd.fd as u64)
                    .str(" holds a file lock on a file the restore does not reopen by path (deleted, or a memfd): it cannot be taken again"));
            }
            locks.push(lock).map_err(|_| {
                Fail::new("more than ")
                    .dec(LOCKS_MAX as u64)
                    .str(" file locks")
            })?;
        }
    }
    Ok(locks.into_slice())
}

/// One `lock:` line: "1: POSIX  ADVISORY  WRITE 123 00:1b:456 0 EOF".
fn parse(fd: i32, rest: &[u8]) -> Result<FileLock, Fail> {
    let bad = || {
        Fail::new("cannot parse a lock of fd ")
            .dec(fd as u64)
            .str(": ")
            .bytes(rest)
    };
    let mut words = rest
        .split(|c| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let _id = words.next().ok_or_else(bad)?;
    let kind = match words.next().ok_or_else(bad)? {
        b"FLOCK" => LOCK_FLOCK,
        b"POSIX" => LOCK_POSIX,
        b"OFDLCK" => LOCK_OFD,
        other => {
            return Err(Fail::new("fd ")
                .dec(fd as u64)
                .str(" holds a ")
                .bytes(other)
                .str(" lock (a lease?), which cannot be saved"));
        }
    };
    let _advisory = words.next().ok_or_else(bad)?;
    let write = match words.next().ok_or_else(bad)? {
        b"WRITE" => true,
        b"READ" => false,
        _ => return Err(bad()),
    };
    let _pid = words.next().ok_or_else(bad)?;
    let _dev_ino = words.next().ok_or_else(bad)?;
    let start = words.next().and_then(sys::parse_dec).ok_or_else(bad)?;
    let end = match words.next().ok_or_else(bad)? {
        b"EOF" => LOCK_TO_EOF,
        v => sys::parse_dec(v).ok_or_else(bad)?,
    };
    Ok(FileLock {
        fd,
        kind,
        write,
        start,
        end,
    })
}
