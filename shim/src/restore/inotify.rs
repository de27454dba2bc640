//! inotify descriptors made again (issue 12): a new instance, each watch
//! added by its path in number order. The kernel numbers an instance's
//! watches in increasing order from 1, so a gap (watches removed before
//! the dump) is made again by adding a watch and removing it; the
//! `IN_IGNORED` events those removals queue are read away before the
//! program runs. Each watch must get its number and its inode back, or the
//! restore is refused naming the descriptor. Status flags (`IN_NONBLOCK`)
//! are set by `fds` as for every descriptor.
//!
//! Runs in the constructor before teardown (libc available): a failure
//! refuses the restore while nothing has been torn down.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use dumpfmt::Fd;
use dumpfmt::files::Watch;

use super::{Refusal, exit, refuse};

/// The most watch numbers skipped to reach the next watch's.
const MAX_GAP: i32 = 1 << 20;

/// The mask bits a watch keeps that `inotify_add_watch` takes back.
const KEPT: u32 = libc::IN_ALL_EVENTS | libc::IN_ONESHOT | libc::IN_EXCL_UNLINK;

/// The inotify instance of `fd` with `watches`.
pub fn make(fd: &Fd<'_>, watches: &[Watch<'_>]) -> Result<OwnedFd, Refusal> {
    let n = fd.fd;
    let fail = |code: i32, why: String| refuse(code, format!("fd {n} (inotify): {why}"));
    // SAFETY: plain inotify creation.
    let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if raw < 0 {
        return Err(fail(
            exit::UNSUPPORTED,
            format!("inotify_init1: {}", std::io::Error::last_os_error()),
        ));
    }
    // SAFETY: `raw` was just returned by the kernel and is ours.
    let f = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut next = 1;
    let mut skipped = false;
    for w in watches {
        let path = CString::new(w.path.as_bytes())
            .map_err(|_| fail(exit::CORRUPT, format!("watch {} has a bad path", w.wd)))?;
        let follow = if w.dont_follow {
            libc::IN_DONT_FOLLOW
        } else {
            0
        };
        let add = |mask: u32| {
            // SAFETY: a NUL-terminated path and our instance.
            let wd = unsafe { libc::inotify_add_watch(f.as_raw_fd(), path.as_ptr(), mask) };
            if wd < 0 {
                return Err(fail(
                    exit::FILE_CHANGED,
                    format!(
                        "watch {} of {}: {}",
                        w.wd,
                        w.path,
                        std::io::Error::last_os_error()
                    ),
                ));
            }
            Ok(wd)
        };
        if w.wd < next || w.wd - next > MAX_GAP {
            return Err(fail(
                exit::UNSUPPORTED,
                format!("watch {} cannot get its number back", w.wd),
            ));
        }
        // Numbers the program's instance had used up: taken and given back.
        while next < w.wd {
            let wd = add(libc::IN_ATTRIB | follow)?;
            // SAFETY: removing the watch just added to our instance.
            unsafe { libc::inotify_rm_watch(f.as_raw_fd(), wd) };
            skipped = true;
            next = wd + 1;
        }
        let wd = add((w.mask & KEPT) | follow)?;
        if wd != w.wd {
            return Err(fail(
                exit::UNSUPPORTED,
                format!("watch {} of {} came back as {wd}", w.wd, w.path),
            ));
        }
        next = wd + 1;
        let now = if w.dont_follow {
            std::fs::symlink_metadata(&*w.path)
        } else {
            std::fs::metadata(&*w.path)
        };
        use std::os::unix::fs::MetadataExt;
        if now.map(|m| (m.dev(), m.ino())).ok() != Some((w.dev, w.ino)) {
            return Err(fail(
                exit::FILE_CHANGED,
                format!("watch {} of {} is no longer the same file", w.wd, w.path),
            ));
        }
        record(n, w);
    }
    if skipped {
        drain(&f);
    }
    Ok(f)
}

/// Reads away the events queued on the new instance (the `IN_IGNORED`
/// of the watches added to skip numbers).
fn drain(f: &OwnedFd) {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a live buffer from our nonblocking instance.
        let got = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            break;
        }
    }
}

/// Records the watch as `crate::inotify` would have, so a dump of the
/// restored process finds its path.
fn record(fd: i32, w: &Watch<'_>) {
    let bytes = w.path.as_bytes();
    if bytes.len() >= crate::inotify::PATH_MAX {
        return;
    }
    let mut r = crate::inotify::Recorded {
        fd,
        wd: w.wd,
        dont_follow: w.dont_follow,
        dev: w.dev,
        ino: w.ino,
        len: bytes.len(),
        path: [0; crate::inotify::PATH_MAX],
    };
    r.path[..bytes.len()].copy_from_slice(bytes);
    crate::inotify::record(&r);
}
