//! File locks (issue 12; the dump side is `crate::dump::locks`): each is
//! taken again through its descriptor, without waiting, once every
//! descriptor is in place and no other descriptor of the process will be
//! closed (closing any descriptor of a file drops the process's POSIX
//! locks on it). A lock another process took meanwhile fails the restore
//! with a line naming the descriptor and the lock; the image stays.
//!
//! Runs in the constructor, before teardown: it only adds calls to the
//! plan.

use dumpfmt::{FileLock, Image, LOCK_FLOCK, LOCK_OFD, LOCK_TO_EOF};

use super::plan::{Arg, Plan};

const F_OFD_SETLK: u64 = 37;

/// The kernel's `struct flock` on x86-64.
#[repr(C)]
#[derive(Clone, Copy)]
struct Flock {
    l_type: i16,
    l_whence: i16,
    pad: i32,
    l_start: i64,
    l_len: i64,
    l_pid: i32,
    pad2: i32,
}

const _: () = assert!(size_of::<Flock>() == 32);

/// Appends the calls that take every lock again.
pub fn ops(plan: &mut Plan, image: &Image<'_>) {
    let v = Arg::V;
    for l in image.minor4.signals.locks.iter() {
        let what = describe(l);
        if l.kind == LOCK_FLOCK {
            let op = if l.write {
                libc::LOCK_EX
            } else {
                libc::LOCK_SH
            };
            plan.call(
                libc::SYS_flock,
                &[v(l.fd as u64), v((op | libc::LOCK_NB) as u64)],
                v(0),
                &what,
            );
            continue;
        }
        let len = if l.end == LOCK_TO_EOF {
            0
        } else {
            (l.end - l.start + 1) as i64
        };
        let fl = plan.data(&Flock {
            l_type: if l.write {
                libc::F_WRLCK
            } else {
                libc::F_RDLCK
            } as i16,
            l_whence: libc::SEEK_SET as i16,
            pad: 0,
            l_start: l.start as i64,
            l_len: len,
            l_pid: 0,
            pad2: 0,
        });
        let cmd = if l.kind == LOCK_OFD {
            F_OFD_SETLK
        } else {
            libc::F_SETLK as u64
        };
        plan.call(
            libc::SYS_fcntl,
            &[v(l.fd as u64), v(cmd), Arg::Data(fl)],
            v(0),
            &what,
        );
    }
}

/// The failure line of a lock that cannot be taken again.
fn describe(l: &FileLock) -> String {
    let kind = match l.kind {
        LOCK_FLOCK => "flock",
        LOCK_OFD => "OFD",
        _ => "POSIX",
    };
    let mode = if l.write { "write" } else { "read" };
    let range = match (l.kind, l.end) {
        (LOCK_FLOCK, _) => String::new(),
        (_, LOCK_TO_EOF) => format!(" on bytes {} to the end", l.start),
        (_, end) => format!(" on bytes {} to {end}", l.start),
    };
    format!(
        "restore: cannot take the {kind} {mode} lock{range} of fd {} again (another process holds a conflicting lock?)",
        l.fd
    )
}
