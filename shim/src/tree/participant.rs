//! Whether a descendant can take part in a tree dump: it must carry this
//! very `libmigrate.so` (not a statically linked or setuid program, nor one
//! started without `LD_PRELOAD`), readable by us (same user), and catch the
//! dump signal. Checked from outside, before anything is sent to it: a
//! stray dump signal kills a process that does not handle it.
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls, buffers from the caller).

use crate::dump::maps;
use crate::sys::{self, Errno, line::Line};

/// The device and inode of the `libmigrate.so` file this code runs from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ShimFile {
    pub dev: u64,
    pub ino: u64,
}

/// What keeps a process from taking part, if anything.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Part {
    /// It maps our library and catches the signal.
    Ready,
    /// Its maps hold no mapping of our library.
    NoShim,
    /// Its maps cannot be read: another user's, or setuid.
    Unreadable(i32),
    /// It maps our library but does not catch the dump signal (another
    /// `MIGRATE_SIGNAL`, or not yet past the library's constructor).
    SignalNotCaught,
    /// It no longer exists, or has exited.
    Gone,
    /// No mapping of our library, and the dump signal blocked: a program
    /// that was started by a process carrying the library, either still
    /// in `execve` or ld.so (see `crate::exec`) or one without the library.
    Starting,
}

impl Part {
    /// Why it cannot take part, for a message ("" when it can).
    pub fn why(self) -> &'static str {
        match self {
            Part::Ready => "",
            Part::NoShim => "no libmigrate.so: statically linked, setuid, or not preloaded",
            Part::Unreadable(_) => "cannot be read: another user's, or setuid",
            Part::SignalNotCaught => "does not catch the dump signal",
            Part::Gone => "exited",
            Part::Starting => {
                "no libmigrate.so yet: it is starting another program (try the dump again), or runs one without the library"
            }
        }
    }
}

/// Our library's file, found in `/proc/self/maps` (read into `buf`) as
/// the mapping that holds this function's code.
pub fn our_shim(buf: &mut [u8]) -> Result<ShimFile, Errno> {
    let here = our_shim as *const () as u64;
    let n = sys::read_file(b"/proc/self/maps\0", buf)?;
    maps::lines(&buf[..n])
        .filter_map(maps::parse_line)
        .find(|m| m.start <= here && here < m.end && m.inode != 0)
        .map(|m| ShimFile {
            dev: m.dev,
            ino: m.inode,
        })
        .ok_or(Errno(libc::ENOENT))
}

/// Whether process `pid` can take part in a dump led with signal `sig`;
/// `buf` holds its maps while they are read.
pub fn check(pid: i32, shim: ShimFile, sig: i32, buf: &mut [u8]) -> Part {
    let mut path = Line::<64>::new();
    path.str("/proc/").dec(pid as u64).str("/maps");
    let Some(p) = path.c_str() else {
        return Part::Gone;
    };
    let n = match sys::read_file(p, buf) {
        Ok(n) => n,
        Err(Errno(libc::ENOENT | libc::ESRCH)) => return Part::Gone,
        Err(e) => return Part::Unreadable(e.0),
    };
    if n == 0 {
        // A zombie has no memory left.
        return Part::Gone;
    }
    let mapped = maps::lines(&buf[..n])
        .filter_map(maps::parse_line)
        .any(|m| m.dev == shim.dev && m.inode == shim.ino);
    let bit = 1u64 << ((sig - 1) & 63);
    // Blocked by `crate::exec` across an `execve`: the request waits,
    // pending, for the new program's constructor (which installs the
    // handler, then unblocks it). The library not mapped yet: too early.
    let blocked = status_mask(pid, b"SigBlk:").is_some_and(|m| m & bit != 0);
    if !mapped {
        return if blocked {
            Part::Starting
        } else {
            Part::NoShim
        };
    }
    match status_mask(pid, b"SigCgt:") {
        Some(mask) if mask & bit != 0 => Part::Ready,
        Some(_) if blocked => Part::Ready,
        Some(_) => Part::SignalNotCaught,
        None => Part::Gone,
    }
}

/// A mask of `/proc/PID/status` (`SigCgt:`, `SigBlk:`; bit n-1 for
/// signal n).
fn status_mask(pid: i32, key: &[u8]) -> Option<u64> {
    let mut path = Line::<64>::new();
    path.str("/proc/").dec(pid as u64).str("/status");
    sys::procfields::read_line_field(path.c_str()?, key, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary links the shim as an rlib: no mapping of a separate
    /// library holds this code, but the test binary's own file does, and a
    /// child forked from it maps that same file.
    #[test]
    fn finds_a_file_shared_with_a_child() {
        let mut buf = vec![0u8; 16 << 20];
        let Ok(ours) = our_shim(&mut buf) else {
            panic!("no mapping holds this code");
        };
        // SAFETY: the child only sleeps in pause(2) until it is killed.
        let child = unsafe { libc::fork() };
        if child == 0 {
            loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            }
        }
        assert!(child > 0);
        // SIGUSR2 is not caught in the child (the test binary has no
        // handler): it maps our file, but could not take part.
        let part = check(child, ours, libc::SIGUSR2, &mut buf);
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, core::ptr::null_mut(), 0);
        }
        assert_eq!(part, Part::SignalNotCaught);
        let other = ShimFile {
            dev: ours.dev,
            ino: ours.ino + 1,
        };
        assert_ne!(check(1, other, libc::SIGUSR2, &mut buf), Part::Ready);
        assert_eq!(check(i32::MAX, ours, libc::SIGUSR2, &mut buf), Part::Gone);
    }
}
