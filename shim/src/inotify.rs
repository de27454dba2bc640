//! The paths of inotify watches: the kernel shows a watch's inode
//! (`/proc/self/fdinfo`) but not the path it was added by, and finding a
//! path from an inode needs `CAP_DAC_READ_SEARCH` (`open_by_handle_at`).
//! So `inotify_add_watch` is interposed (the library is preloaded): each
//! watch added is recorded here, with the absolute path of what it
//! watches, for the dump to find (`dump::inotify`).
//!
//! The table is fixed (no heap): a slot is claimed with an atomic, filled,
//! then published; the dump's signal handler reads only published slots
//! (a slot a stopped thread was filling is not one, and the watch is then
//! unknown: the dump fails naming its descriptor). A slot is found again
//! by (descriptor, watch number), so a watch added again (a new mask) or a
//! number used again by a new instance on the same descriptor takes its
//! slot back; stale slots are harmless, as the dump checks each against
//! the inode the kernel shows.
//!
//! # Safety
//!
//! `inotify_add_watch` is a C entry point: it trusts its path argument as
//! libc would.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::sys::{self, args, line::Line};

const SLOTS: usize = 1024;
/// The longest path recorded (longer ones are not: their watch cannot be
/// saved).
pub const PATH_MAX: usize = 512;

const FREE: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

/// One recorded watch.
#[derive(Clone, Copy)]
pub struct Recorded {
    pub fd: i32,
    pub wd: i32,
    pub dont_follow: bool,
    pub dev: u64,
    pub ino: u64,
    pub len: usize,
    pub path: [u8; PATH_MAX],
}

struct Slot {
    state: AtomicU8,
    data: UnsafeCell<Recorded>,
}

struct Table([Slot; SLOTS]);

// SAFETY: a slot's data is written only by the thread that moved its state
// to BUSY, and read only while READY (see the module note).
unsafe impl Sync for Table {}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    state: AtomicU8::new(FREE),
    data: UnsafeCell::new(Recorded {
        fd: -1,
        wd: 0,
        dont_follow: false,
        dev: 0,
        ino: 0,
        len: 0,
        path: [0; PATH_MAX],
    }),
};

static TABLE: Table = Table([EMPTY; SLOTS]);
/// Slots ever claimed (the used prefix of the table).
static USED: AtomicUsize = AtomicUsize::new(0);

/// Records watch `wd` of instance `fd`; a full table, or a slot busy in
/// another thread, records nothing.
pub fn record(r: &Recorded) {
    let used = USED.load(Ordering::Acquire).min(SLOTS);
    let again = TABLE.0[..used].iter().find(|s| {
        s.state.load(Ordering::Acquire) == READY && {
            // SAFETY: a READY slot's data is not being written.
            let d = unsafe { &*s.data.get() };
            (d.fd, d.wd) == (r.fd, r.wd)
        }
    });
    let slot = match again {
        Some(s)
            if s.state
                .compare_exchange(READY, BUSY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok() =>
        {
            s
        }
        Some(_) => return,
        None => {
            let at = USED.fetch_add(1, Ordering::AcqRel);
            if at >= SLOTS {
                USED.store(SLOTS, Ordering::Release);
                return;
            }
            let s = &TABLE.0[at];
            if s.state
                .compare_exchange(FREE, BUSY, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return;
            }
            s
        }
    };
    // SAFETY: this thread moved the slot to BUSY: the data is its alone.
    unsafe { *slot.data.get() = *r };
    slot.state.store(READY, Ordering::Release);
}

/// The recorded watch `wd` of instance `fd` on inode (`dev`, `ino`).
pub fn find(fd: i32, wd: i32, dev: u64, ino: u64) -> Option<&'static Recorded> {
    let used = USED.load(Ordering::Acquire).min(SLOTS);
    TABLE.0[..used].iter().rev().find_map(|s| {
        if s.state.load(Ordering::Acquire) != READY {
            return None;
        }
        // SAFETY: a READY slot's data is not being written (the dump reads
        // with every other thread stopped, so none starts).
        let d = unsafe { &*s.data.get() };
        ((d.fd, d.wd, d.dev, d.ino) == (fd, wd, dev, ino)).then_some(d)
    })
}

/// What `path` names now, as an absolute path and inode, into `out`.
fn resolve(path: *const libc::c_char, dont_follow: bool, out: &mut Recorded) -> bool {
    let flags = libc::O_PATH | libc::O_CLOEXEC | if dont_follow { libc::O_NOFOLLOW } else { 0 };
    // SAFETY: `path` is the caller's NUL-terminated path (as for libc).
    let Ok(f) = (unsafe { sys::sys(libc::SYS_openat, args!(sys::AT_FDCWD, path, flags, 0)) })
    else {
        return false;
    };
    let f = f as i32;
    let mut link = Line::<64>::new();
    link.str("/proc/self/fd/").dec(f as u64);
    let ok = match (link.c_str(), sys::fstat(f)) {
        (Some(p), Ok(st)) => match sys::readlink(p, &mut out.path) {
            Ok(n) if n < PATH_MAX && out.path[0] == b'/' => {
                out.len = n;
                out.dev = st.st_dev;
                out.ino = st.st_ino;
                true
            }
            _ => false,
        },
        _ => false,
    };
    sys::close(f);
    ok
}

/// `inotify_add_watch(2)`, with the watch recorded.
///
/// # Safety
/// As `inotify_add_watch(2)`: `path` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn inotify_add_watch(fd: i32, path: *const libc::c_char, mask: u32) -> i32 {
    // SAFETY: the caller's arguments, passed on as the system call takes them.
    let wd = unsafe { sys::sys(libc::SYS_inotify_add_watch, args!(fd, path, mask)) };
    match wd {
        Ok(wd) => {
            let mut r = Recorded {
                fd,
                wd: wd as i32,
                dont_follow: mask & libc::IN_DONT_FOLLOW != 0,
                dev: 0,
                ino: 0,
                len: 0,
                path: [0; PATH_MAX],
            };
            if resolve(path, r.dont_follow, &mut r) {
                record(&r);
            }
            wd as i32
        }
        Err(e) => {
            // SAFETY: errno of the calling thread.
            unsafe { *libc::__errno_location() = e.0 };
            -1
        }
    }
}
