//! Keeping the newest images (`MIGRATE_KEEP=N`).
//!
//! The paths this process (and the processes it was restored from)
//! actually wrote are remembered in a small ring in static memory, oldest
//! first. A dump puts its path in the ring as *pending* before it saves
//! any memory, so the image holds its own path: a process restored from
//! it knows that image as its newest ([`restored`]), even when `%p` now
//! expands to another pid. Once the image is complete (renamed into
//! place), [`commit`] removes the oldest paths beyond N; a failed dump
//! takes its path out again ([`abort`]). Only paths the ring holds are
//! ever removed, and a path written again moves to the newest place
//! instead of being removed. A forked child starts with an empty ring
//! (its parent's images are not its own).
//!
//! # Rules
//!
//! Signal-handler code, run only by a dump's leader or by a restored
//! process as it resumes (every other thread waiting): no heap, no locks,
//! no libc, no panics; raw system calls only.

use core::sync::atomic::Ordering::Acquire;

use crate::config::{Global, KEEP_MAX, LogLevel, PATH_MAX, SETTINGS};
use crate::sys::line::{Line, emit_parts, errno_name};
use crate::sys::{self, Errno};

/// Room for N complete images and the one being written.
const CAP: usize = KEEP_MAX as usize + 1;

struct Ring {
    /// The process the paths belong to (0: none yet).
    pid: i32,
    len: usize,
    /// The newest path's image is being written.
    pending: bool,
    paths: [Line<PATH_MAX>; CAP],
}

static RING: Global<Ring> = Global::new(Ring {
    pid: 0,
    len: 0,
    pending: false,
    paths: [const { Line::new() }; CAP],
});

fn ring() -> &'static mut Ring {
    // SAFETY: only a dump's leader (one thread, by `World::leader`) or a
    // restored process's last thread (the others waiting) calls in here,
    // one call at a time.
    unsafe { RING.get() }
}

fn keep() -> usize {
    super::periodic::KEEP.load(Acquire) as usize
}

impl Ring {
    fn remove(&mut self, i: usize) {
        self.paths[i..self.len].rotate_left(1);
        self.len -= 1;
        self.paths[self.len].clear();
    }
}

/// A dump to `path` (no NUL) starts.
pub fn begin(path: &[u8]) {
    if keep() == 0 {
        return;
    }
    let r = ring();
    let pid = sys::getpid();
    if r.pid != pid {
        // A forked child's copy of its parent's ring.
        r.len = 0;
        r.pending = false;
        r.pid = pid;
    }
    // A dump that never finished (a panic inside it).
    abort();
    if let Some(i) = r.paths[..r.len].iter().position(|p| p.as_bytes() == path) {
        r.remove(i);
    }
    if r.len == CAP {
        // Cannot happen (commit keeps at most KEEP_MAX): forget, never remove.
        r.remove(0);
    }
    let slot = &mut r.paths[r.len];
    slot.clear();
    slot.bytes(path);
    r.len += 1;
    r.pending = true;
}

/// The dump that `begin` announced failed: its image was not written.
pub fn abort() {
    let r = ring();
    if r.pending {
        r.pending = false;
        r.len -= 1;
        r.paths[r.len].clear();
    }
}

/// The dump that `begin` announced is complete: remove the oldest images
/// beyond the newest `MIGRATE_KEEP`.
pub fn commit() {
    let r = ring();
    if !r.pending {
        return;
    }
    r.pending = false;
    let keep = keep().max(1);
    while r.len > keep {
        let mut path = Line::<{ PATH_MAX + 1 }>::new();
        path.bytes(r.paths[0].as_bytes());
        r.remove(0);
        let shown = path.as_bytes().len();
        if let Some(c) = path.c_str() {
            report(&c[..shown], sys::unlink(c));
        }
    }
}

/// The dump that `begin` announced was handed to a snapshot's writer
/// (`super::snapshot`), which removes the old images as [`commit`] would,
/// in its own copy of the ring: this copy forgets the same paths, and
/// removes nothing. (Should the writer fail, its path stays here; a later
/// removal finds nothing there.)
pub fn handed_over() {
    let r = ring();
    if !r.pending {
        return;
    }
    r.pending = false;
    let keep = keep().max(1);
    while r.len > keep {
        r.remove(0);
    }
}

fn report(path: &[u8], result: Result<(), Errno>) {
    // SAFETY: reading the log level; writers run with every thread stopped.
    let log = unsafe { SETTINGS.get() }.log;
    match result {
        Ok(()) if log >= LogLevel::Info => {
            emit_parts(&[b"migrate: removed the old image ", path]);
        }
        // Already gone (removed or moved by someone else): nothing lost.
        Ok(()) | Err(Errno(libc::ENOENT)) => {}
        Err(e) => emit_parts(&[
            b"migrate: cannot remove the old image ",
            path,
            b": ",
            errno_name(e).as_bytes(),
        ]),
    }
}

/// In a restored process: the pending path is the image it came from,
/// which is complete; the paths are now this process's.
pub fn restored() {
    let r = ring();
    r.pending = false;
    if r.len > 0 {
        r.pid = sys::getpid();
    }
}

/// The paths held, oldest first (for tests).
#[cfg(test)]
fn held() -> Vec<Vec<u8>> {
    let r = ring();
    r.paths[..r.len]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering::Release;

    /// The whole life of a ring: one test, since the ring is a static.
    #[test]
    fn keeps_the_newest_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: u32| format!("{}/img-{n}", dir.path().display());
        let stranger = dir.path().join("not-ours");
        std::fs::write(&stranger, b"x").unwrap();
        super::super::periodic::KEEP.store(2, Release);
        let dump = |n: u32, ok: bool| {
            begin(path(n).as_bytes());
            if ok {
                std::fs::write(path(n), b"img").unwrap();
                commit();
            } else {
                abort();
            }
        };
        dump(1, true);
        dump(2, true);
        assert_eq!(held().len(), 2);
        dump(3, true);
        assert!(!std::path::Path::new(&path(1)).exists());
        assert!(std::path::Path::new(&path(2)).exists());
        // A failed dump forgets its path and removes nothing.
        dump(4, false);
        assert_eq!(held(), [path(2).into_bytes(), path(3).into_bytes()]);
        // The same path again moves to the newest place, is not removed.
        dump(2, true);
        assert_eq!(held(), [path(3).into_bytes(), path(2).into_bytes()]);
        assert!(std::path::Path::new(&path(2)).exists());
        // A restored process: the pending path is its newest image.
        begin(path(5).as_bytes());
        std::fs::write(path(5), b"img").unwrap();
        restored();
        dump(6, true);
        assert_eq!(held(), [path(5).into_bytes(), path(6).into_bytes()]);
        assert!(!std::path::Path::new(&path(3)).exists());
        assert!(!std::path::Path::new(&path(2)).exists());
        assert!(stranger.exists());
        super::super::periodic::KEEP.store(0, Release);
    }
}
