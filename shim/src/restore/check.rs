//! The fidelity check of a restore (`MIGRATE_RESTORE_CHECK=path`): the
//! restored process takes one dump to `path` as it resumes, before any of
//! the application's code runs, so that the test harness can compare it
//! with the image it was restored from.
//!
//! # Rules
//!
//! Runs in the restored process inside the signal handler (from
//! `resume::after_restore`) and in the dump path: no heap, no locks, no
//! libc, no panics; raw system calls only.
//!
//! How it stays one instant: the last thread to arrive [`arm`]s the check
//! (copies the path out of the handoff block, which is about to go) and,
//! once the restore is finished, [`fire`]s: it sends itself the dump
//! signal, which stays pending while it is in the handler and is taken the
//! moment it returns. The other threads, released meanwhile, [`hold`] in
//! the handler until that dump's park request is pending for them, so they
//! too go from the handler straight into parking without running a single
//! instruction of the application. The check dump goes to the armed path
//! instead of the image pattern, does not count as a dump (the sequence
//! number stays) and never makes the process exit.

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Release};

use crate::config::{Global, PATH_MAX, SETTINGS};
use crate::dump::world::PARK_TIMEOUT_NS;
use crate::sys::line::Line;
use crate::sys::{self, args};

use super::resume::Handoff;

/// The armed path (empty: no check to take).
static PATH: Global<Line<PATH_MAX>> = Global::new(Line::new());
/// 1 while released threads must wait for the check dump's park request
/// (a futex word).
static HOLD: AtomicU32 = AtomicU32::new(0);
/// How long a held thread sleeps between looks at its pending signals.
const HOLD_POLL_NS: u64 = 1_000_000;

/// Copies the check path out of the handoff block, if the relaunch asked
/// for a check. Called by the last thread to arrive, while every other
/// thread waits, before the handoff block is unmapped.
///
/// # Safety
/// `h` is the restorer's handoff block, mapped, with `check_len` bytes of
/// path right after it; no other thread touches the check state.
pub unsafe fn arm(h: *const Handoff) {
    // SAFETY: the caller's promise: the block is mapped and ours alone.
    let len = unsafe { (*h).check_len } as usize;
    // SAFETY: as above; no other thread runs this module's code now.
    let path = unsafe { PATH.get() };
    path.clear();
    // An image taken by a check dump holds HOLD = 1: clear it, or a
    // restore of that image would hold its threads for nothing.
    HOLD.store(0, Release);
    if len == 0 || len >= PATH_MAX {
        return;
    }
    // SAFETY: the relaunch wrote `check_len` bytes right after the block
    // (see `restore::build`), inside the same mapping.
    let bytes = unsafe { core::slice::from_raw_parts(h.add(1).cast::<u8>(), len) };
    path.bytes(bytes);
    HOLD.store(1, Release);
}

/// Sends the calling thread the dump signal if a check is armed. Called
/// once the restore is finished (the dump signal is the final one).
/// `uc` is the signal frame the caller returns through: a thread that
/// blocks the dump signal once back (glibc's `SIGEV_THREAD` timer helper
/// blocks every signal) would never take it; the main thread is sent it
/// instead, and the caller must [`hold`] as the others do, once it has
/// let them go (returns true then).
///
/// # Safety
/// `uc` is null or the context of a live signal frame.
pub unsafe fn fire(uc: *const libc::ucontext_t) -> bool {
    if HOLD.load(Acquire) == 0 {
        return false;
    }
    // SAFETY: reading the signal; the other threads are held in the handler.
    let sig = unsafe { SETTINGS.get() }.signal;
    // SAFETY: the caller's promise; the kernel's mask is the set's first word.
    let blocked = !uc.is_null()
        && unsafe { *(&raw const (*uc).uc_sigmask).cast::<u64>() } & 1 << (sig - 1) != 0;
    let (pid, me) = (sys::getpid(), sys::gettid());
    let to = if blocked && me != pid { pid } else { me };
    // SAFETY: tgkill takes plain integers.
    let sent = unsafe { sys::sys(libc::SYS_tgkill, args!(pid, to, sig)) };
    if sent.is_err() {
        release_held();
        return false;
    }
    to != me
}

/// Called by a released thread before it returns from the handler: while
/// a check is armed, waits until the check dump's park request is pending
/// for this thread (or the check is over, or 5 s passed).
pub fn hold() {
    let started = sys::monotonic_ns();
    // glibc's timer helper takes its park request on SIGSETXID.
    // SAFETY: reading the signal number, which only the last thread wrote,
    // before it released this one.
    let bit = 1u64 << (unsafe { SETTINGS.get() }.signal - 1)
        | 1u64 << (crate::dump::timer_helper::SIGSETXID - 1);
    while HOLD.load(Acquire) != 0 {
        let mut pending = 0u64;
        // SAFETY: rt_sigpending writes 8 bytes to `pending`.
        let _ = unsafe { sys::sys(libc::SYS_rt_sigpending, args!(&mut pending as *mut u64, 8)) };
        if pending & bit != 0 || sys::monotonic_ns() - started > PARK_TIMEOUT_NS {
            return;
        }
        sys::futex_wait(&HOLD, 1, HOLD_POLL_NS);
    }
}

/// If a check is armed, moves its path into `out` and disarms it: this
/// dump is the check. Called by the dump's leader, every signal blocked.
pub fn take(out: &mut Line<PATH_MAX>) -> bool {
    // SAFETY: only the dump's leader runs this; the others are held or parked.
    let path = unsafe { PATH.get() };
    if path.as_bytes().is_empty() {
        return false;
    }
    out.bytes(path.as_bytes());
    path.clear();
    true
}

/// Lets threads held for the check go (the check dump is over, or could
/// not start).
pub fn release_held() {
    if HOLD.swap(0, AcqRel) != 0 {
        sys::futex_wake_all(&HOLD);
    }
}
