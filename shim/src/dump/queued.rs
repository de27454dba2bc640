//! Queued signals with their full `siginfo` (issue 12): real-time signals
//! queued with `sigqueue` values, several of one number, and standard
//! ones, pending for the process or for one thread.
//!
//! The kernel shows only masks (`SigPnd`, `ShdPnd` in `/proc`), so the dump
//! takes each queued signal with a zero-timeout `rt_sigtimedwait` (every
//! signal is blocked inside the handler), records it, and queues it back
//! at once, in the order taken: the program takes exactly what it would
//! have. The kernel dequeues a thread's own queue before the process's,
//! so each thread (parked or leading) empties its own first, its numbers
//! told by its `SigPnd`; the main thread then empties the process's.
//! Only a thread may queue a signal to itself with the `siginfo` of a
//! `kill` or `tgkill` (`si_code` >= 0 or `SI_TKILL`), and only the main
//! thread to the process: so each queues back what it took, its own
//! queue first, before its slot is complete. Per queue the kernel gives
//! the lowest number first and each number first in first out, the order
//! the restore queues them again (`restore::queued`). One thread takes at
//! a time, so each thread's records are contiguous.
//!
//! A signal for the process that comes while the dump runs (after the
//! takes above, e.g. the `SIGCHLD` of a child exiting mid-dump, or a
//! `kill` from another process) would otherwise be only a bit of
//! `ShdPnd` and come back as the restorer's `kill`: when the main thread
//! leads the dump, it takes its own queue and the process's again at the
//! end of the collection ([`retake`]), in place of what it took at the
//! start. Left open: a signal that comes after that (the image then
//! holds the process as it was before it came), one sent to a parked
//! thread mid-dump, and one for the process while a thread other than
//! the main one leads (only the main thread may queue back the
//! `siginfo` of a `kill`): those are bits of the pending masks.
//!
//! Left in place, as before (only their numbers kept, in
//! `ProcessState::pending`): the dump signal, SIGKILL and SIGSTOP, SIGALRM
//! (taking it re-arms an interval timer) and the signals POSIX timers send
//! (a timer's pending signal is the kernel's own record of that timer: taking
//! it re-arms the timer), except, in the main thread leading the dump, those
//! of the timers `timer_signals` makes fire again (their records are holes:
//! not in the image).
//!
//! The numbers of the process's queued signals are left out of
//! `ProcessState::pending` ([`numbers`]), which a restore raises with
//! `kill`: they come back from these records alone.
//!
//! Runs in the signal handler: the `dump` module's rules hold. Parked
//! threads call [`take`] on their small stacks: it reads `/proc`
//! through a few hundred bytes of stack.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};

use dumpfmt::{MAX_QUEUED, QueuedSignal};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::{self, args};

/// The signals taken so far in this dump ([`MAX_QUEUED`] slots in the
/// leader's arena); null outside a dump.
static TAKEN: AtomicPtr<QueuedSignal> = AtomicPtr::new(core::ptr::null_mut());
/// Slots claimed in [`TAKEN`].
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Signals left in place (bit n-1 for signal n).
static KEEP: AtomicU64 = AtomicU64::new(0);
/// As [`KEEP`], for the main thread: less the signals of the timers
/// `timer_signals` gives back.
static KEEP_MAIN: AtomicU64 = AtomicU64::new(0);
/// More than [`MAX_QUEUED`] were queued.
static FULL: AtomicBool = AtomicBool::new(false);
/// A thread that could not read its pending signals: its TID (0: none).
static BROKEN: AtomicI32 = AtomicI32::new(0);

const SIGKILL: u64 = 9;
const SIGALRM: u64 = 14;
const SIGSTOP: u64 = 19;

const fn bit(sig: u64) -> u64 {
    1 << (sig - 1)
}

/// Before the other threads are asked to park: makes room for the
/// signals and decides which stay in place.
pub fn begin(arena: &Arena, dump_signal: i32) -> Result<(), Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let mut keep = bit(SIGKILL) | bit(SIGSTOP) | bit(SIGALRM);
    if (1..=64).contains(&dump_signal) {
        keep |= bit(dump_signal as u64);
    }
    let (timers, refired) = timer_signals(arena)?;
    keep |= timers;
    KEEP_MAIN.store(keep & !refired, Release);
    let slots = arena.vec::<QueuedSignal>(MAX_QUEUED).ok_or_else(no_mem)?;
    KEEP.store(keep, Release);
    NEXT.store(0, Release);
    FULL.store(false, Release);
    BROKEN.store(0, Release);
    // A child forked while its parent's thread was taking inherits the
    // word held by a thread it does not have.
    TAKER.store(0, Release);
    MAIN_FIRST.store(usize::MAX, Release);
    MAIN_END.store(usize::MAX, Release);
    TAKEN.store(slots.into_raw(), Release);
    Ok(())
}

/// The signals the process's POSIX timers send, and those of them that
/// the main thread, leading, takes (`timer_signals`).
fn timer_signals(arena: &Arena) -> Result<(u64, u64), Fail> {
    super::timer_signals::reset();
    let buf = arena
        .bytes(1 << 20)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    let n = match sys::read_file(b"/proc/self/timers\0", buf) {
        Ok(n) => n,
        // Too many to list: `timers::collect` says so.
        Err(_) => return Ok((0, 0)),
    };
    let mut mask = 0;
    for line in buf[..n].split(|&c| c == b'\n') {
        if let Some(v) = line.strip_prefix(b"signal: ")
            && let Some(sig) = v.split(|&c| c == b'/').next().and_then(sys::parse_dec)
            && (1..=64).contains(&sig)
        {
            mask |= bit(sig);
        }
    }
    let refired = if sys::gettid() == sys::getpid() {
        super::timer_signals::prepare(&buf[..n])
    } else {
        0
    };
    Ok((mask, refired))
}

/// Held (the TID) by the thread taking its signals.
static TAKER: AtomicI32 = AtomicI32::new(0);
/// The main thread's records (its own queue, then the process's):
/// first slot and end; `usize::MAX` until it has taken.
static MAIN_FIRST: AtomicUsize = AtomicUsize::new(usize::MAX);
static MAIN_END: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Takes the calling thread's own queued signals and, in the main
/// thread, the process's, records them and queues them back. Every
/// thread calls it, parked ones before their slot is complete, the
/// leader once every other thread is parked.
pub fn take() {
    if TAKEN.load(Acquire).is_null() {
        return;
    }
    let me = sys::gettid();
    while TAKER.compare_exchange(0, me, AcqRel, Acquire).is_err() {
        // SAFETY: sched_yield takes no arguments.
        let _ = unsafe { sys::sys(libc::SYS_sched_yield, [0; 6]) };
    }
    take_locked(me);
    TAKER.store(0, Release);
}

/// The main thread, leading the dump once the collection is done: takes
/// its own queue and the process's again, in place of its records from
/// the start, so that a signal that came meanwhile keeps its `siginfo`.
/// Does nothing in another thread (see the module's note), or when its
/// records are not the last ones (a thread took after it).
pub fn retake() {
    if TAKEN.load(Acquire).is_null() {
        return;
    }
    let me = sys::gettid();
    if me != sys::getpid() || TAKER.compare_exchange(0, me, AcqRel, Acquire).is_err() {
        return;
    }
    let first = MAIN_FIRST.load(Acquire);
    let end = MAIN_END.load(Acquire);
    // Only when nothing overflowed: then `NEXT` is the end of the
    // records and every slot from `first` on is the main thread's.
    if first <= end && end < MAX_QUEUED && NEXT.load(Acquire) == end && !FULL.load(Acquire) {
        NEXT.store(first, Release);
        take_locked(me);
    }
    TAKER.store(0, Release);
}

/// [`take`] once the calling thread `me` holds [`TAKER`].
fn take_locked(me: i32) {
    let main = me == sys::getpid();
    if main {
        super::timer_signals::taking();
    }
    let first = NEXT.load(Acquire).min(MAX_QUEUED);
    drain(b"SigPnd:", me as u32);
    let own_end = NEXT.load(Acquire).min(MAX_QUEUED);
    if me == sys::getpid() {
        // With its own queue empty, the kernel takes from the process's.
        drain(b"ShdPnd:", 0);
    }
    let end = NEXT.load(Acquire).min(MAX_QUEUED);
    let base = TAKEN.load(Acquire);
    for i in first..end {
        // SAFETY: slots `first..end` were written by this thread just now
        // (one thread takes at a time).
        let q = unsafe { &mut *base.add(i) };
        if q.signo() == 0 {
            continue;
        }
        if main && super::timer_signals::taken(&q.info) {
            // Its timer fires it again; not in the image (a hole).
            super::timer_signals::put_back(&q.info);
            q.info[0] = 0;
        } else {
            queue_back(q, i < own_end, me);
        }
    }
    if main {
        MAIN_FIRST.store(first, Release);
        MAIN_END.store(end, Release);
    }
}

/// Takes every signal of the queue `key` names (the caller's own, or the
/// process's once its own is empty) not left in place, as `tid`'s.
fn drain(key: &[u8], tid: u32) {
    loop {
        let Some(pending) = sys::procfields::read_line_field(THREAD_STATUS, key, 16) else {
            BROKEN.store(sys::gettid(), Release);
            return;
        };
        let keep = if sys::gettid() == sys::getpid() {
            KEEP_MAIN.load(Acquire)
        } else {
            KEEP.load(Acquire)
        };
        let want = pending & !keep;
        if want == 0 || !take_one(want, tid) {
            return;
        }
    }
}

/// Queues `q` again: to the calling thread (`own`) or to the process.
fn queue_back(q: &QueuedSignal, own: bool, me: i32) {
    let pid = sys::getpid();
    let sig = q.signo();
    // SAFETY: `q.info` is a 128-byte siginfo the kernel only reads; a
    // thread queueing to itself (the main thread to its process) may
    // give any `si_code`.
    let r = unsafe {
        if own {
            sys::sys(
                libc::SYS_rt_tgsigqueueinfo,
                args!(pid, me, sig, q.info.as_ptr()),
            )
        } else {
            sys::sys(libc::SYS_rt_sigqueueinfo, args!(pid, sig, q.info.as_ptr()))
        }
    };
    if let Err(e) = r {
        // Cannot happen (queued by the process to itself, with room
        // just freed); said rather than lost silently.
        crate::sys::line::Line::<160>::new()
            .str("migrate: queued signal ")
            .dec(sig as u64)
            .str(" could not be queued again at the dump: ")
            .str(crate::sys::line::errno_name(e))
            .emit();
    }
}

/// Takes one signal of `set` for `tid` (0: the process) into the next
/// slot; false when none is left or there is no room (a slot claimed for
/// nothing stays a hole, `si_signo` 0, that [`collected`] drops).
fn take_one(set: u64, tid: u32) -> bool {
    let base = TAKEN.load(Acquire);
    let i = NEXT.fetch_add(1, AcqRel);
    if i >= MAX_QUEUED {
        FULL.store(true, Release);
        return false;
    }
    let mut info = [0u64; 16];
    let timeout = [0i64; 2];
    // SAFETY: `set` is an 8-byte sigset, `info` 128 writable bytes,
    // `timeout` a zero timespec.
    let r = unsafe {
        sys::sys(
            libc::SYS_rt_sigtimedwait,
            args!(&set as *const u64, info.as_mut_ptr(), timeout.as_ptr(), 8),
        )
    };
    if r.is_err() {
        info = [0; 16];
    }
    // SAFETY: slot `i` < MAX_QUEUED of the array `begin` published; it is
    // this thread's alone (claimed by the fetch_add) and no one else reads
    // it before every thread is parked.
    unsafe { base.add(i).write(QueuedSignal { tid, info }) };
    r.is_ok()
}

/// The signals taken, once every thread has taken its own (holes dropped,
/// in place); forgets the array, which lives in the dump's arena.
pub fn collected<'a>() -> Result<&'a [QueuedSignal], Fail> {
    let base = TAKEN.swap(core::ptr::null_mut(), AcqRel);
    if FULL.load(Acquire) {
        return Err(Fail::new("more than ")
            .dec(MAX_QUEUED as u64)
            .str(" signals are queued"));
    }
    let broken = BROKEN.load(Acquire);
    if broken != 0 {
        return Err(Fail::new("cannot read the pending signals of thread ").dec(broken as u64));
    }
    if base.is_null() {
        return Ok(&[]);
    }
    let n = NEXT.load(Acquire).min(MAX_QUEUED);
    // SAFETY: the first `n` slots were written by `take_one` before their
    // threads parked; nothing else touches them any more. The arena
    // outlives the image being written.
    let all = unsafe { core::slice::from_raw_parts_mut(base, n) };
    let mut kept = 0;
    for i in 0..n {
        if all[i].signo() != 0 {
            all[kept] = all[i];
            kept += 1;
        }
    }
    Ok(&all[..kept])
}

/// The numbers of the signals `queued` holds for the process (bit n-1
/// for signal n).
pub fn numbers(queued: &[QueuedSignal]) -> u64 {
    queued
        .iter()
        .filter(|q| q.tid == 0 && (1..=64).contains(&q.signo()))
        .fold(0, |m, q| m | bit(q.signo() as u64))
}

/// Forgets the array (a dump that failed before [`collected`]).
pub fn end() {
    TAKEN.store(core::ptr::null_mut(), Release);
}

/// Where a thread's pending masks are (`SigPnd:`, `ShdPnd:`, hex): read a
/// little at a time, through a few hundred bytes of stack.
const THREAD_STATUS: &[u8] = b"/proc/thread-self/status\0";
