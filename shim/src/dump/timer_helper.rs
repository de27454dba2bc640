//! glibc's helper thread of `SIGEV_THREAD` POSIX timers: parked through
//! `SIGSETXID`, the one signal it leaves unblocked.
//!
//! For a `SIGEV_THREAD` timer glibc (2.34 and later, `timer_routines.c`)
//! starts one helper thread that blocks every signal but `SIGSETXID`
//! (signal 33, glibc's own: `setuid` in a threaded process sends it to
//! every thread) and loops in `sigwaitinfo` for `SIGTIMER` (signal 32); the
//! kernel timer is a `SIGEV_SIGNAL | SIGEV_THREAD_ID` timer aimed at that
//! thread, with glibc's `struct timer` as its value. On each `SI_TIMER` it
//! starts the callback in a new detached thread.
//!
//! The helper never takes the dump signal, so while the world stops the
//! leader lends the shim's handler to `SIGSETXID` ([`borrow`]) and sends
//! the helper its park request on that signal: the helper parks like any
//! other thread (registers, mask, robust list, rseq, its pending
//! signals), and the restore brings it back under its TID, inside the
//! handler, as the others. Returning, its `sigwaitinfo` fails with
//! `EINTR`, which glibc's loop retries: it is glibc's own helper again,
//! whose TID glibc's `__timer_helper_tid` holds and at which the restored
//! timers aim. Any other `SIGSETXID` goes on to glibc's handler, and
//! glibc's handler is back ([`give_back`]) once every thread is parked:
//! the image holds glibc's, and the program never sees the loan.
//!
//! A `SIGTIMER` pending for the helper at the dump (it fired while the
//! helper was parked, or before it woke) is the kernel's record of that
//! timer: the helper takes it as it parks and queues it back (only so can
//! its `siginfo` be known), and [`pending_signals`] records it as a queued
//! signal with the `siginfo` glibc reads (`SI_TIMER`, the timer's id,
//! overrun and `struct timer`), which the restored helper takes first.
//!
//! Runs in the signal handler: the `dump` module's rules hold.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::*};

use dumpfmt::QueuedSignal;

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys;

/// glibc's `SIGTIMER` (`SIGRTMIN` as the kernel numbers it).
const SIGTIMER: i32 = 32;
/// glibc's `SIGSETXID`.
pub const SIGSETXID: i32 = 33;
/// Most helper candidates remembered (glibc has one per process).
const MAX: usize = 16;
/// `SA_SIGINFO`.
const SA_SIGINFO: u64 = 4;

/// Threads that POSIX timers signal with `SIGTIMER`: (TID, timer id).
pub struct Candidates {
    found: [(i32, i32); MAX],
    n: usize,
}

/// The threads some timer aims `SIGTIMER` at, from `/proc/self/timers`
/// (none if it cannot be read: the dump's own reading says why later).
pub fn candidates(arena: &Arena) -> Candidates {
    let mut c = Candidates {
        found: [(0, 0); MAX],
        n: 0,
    };
    let Some(buf) = arena.bytes(1 << 20) else {
        return c;
    };
    let Ok(n) = sys::read_file(b"/proc/self/timers\0", buf) else {
        return c;
    };
    let (mut id, mut signal) = (0i32, 0u64);
    for line in buf[..n].split(|&b| b == b'\n') {
        if let Some(v) = line.strip_prefix(b"ID: ") {
            id = sys::parse_dec(v).unwrap_or(0) as i32;
            signal = 0;
        } else if let Some(v) = line.strip_prefix(b"signal: ") {
            signal = v
                .split(|&b| b == b'/')
                .next()
                .and_then(sys::parse_dec)
                .unwrap_or(0);
        } else if let Some(v) = line.strip_prefix(b"notify: signal/tid.")
            && signal == SIGTIMER as u64
            && let Some(tid) = sys::parse_dec(v)
            && c.n < MAX
        {
            c.found[c.n] = (tid as i32, id);
            c.n += 1;
        }
    }
    c
}

impl Candidates {
    /// The signal that carries thread `tid`'s park request: the dump
    /// signal `sig`, or `SIGSETXID` for glibc's helper (a `SIGTIMER`
    /// timer aims at it and it blocks `sig`), whose handler this
    /// borrows. Fails if that handler cannot be lent.
    pub fn park_signal(&self, tid: i32, sig: i32) -> Result<i32, Fail> {
        let Some(&(_, timer)) = self.found[..self.n].iter().find(|f| f.0 == tid) else {
            return Ok(sig);
        };
        let Some(blocked) = blocked(tid) else {
            return Ok(sig);
        };
        if !has(blocked, sig) {
            return Ok(sig);
        }
        // As it parks it takes its pending timer signals and queues them
        // again: the copies count against RLIMIT_SIGPENDING (the timer's
        // own did not), so without room for them they would be lost.
        if !queue_room() {
            return Err(Fail::new("thread ")
                .dec(tid as u64)
                .str(" is glibc's helper of POSIX timer ")
                .dec(timer as u64)
                .str(" (SIGEV_THREAD), and the signal queue (RLIMIT_SIGPENDING) has no room for the ")
                .dec(TAKEN_MAX as u64)
                .str(" timer signals it may have to put back"));
        }
        // It may block SIGSETXID too for now: inside a handler (held there
        // after a restore, for the restore check); it takes the request
        // as it returns. (glibc's `sigprocmask` never blocks SIGSETXID.)
        borrow().map_err(|why| {
            Fail::new("thread ")
                .dec(tid as u64)
                .str(" is glibc's helper of POSIX timer ")
                .dec(timer as u64)
                .str(" (SIGEV_THREAD) and blocks the dump signal, but ")
                .str(why)
        })?;
        Ok(SIGSETXID)
    }
}

fn has(mask: u64, sig: i32) -> bool {
    (1..=64).contains(&sig) && mask & 1 << (sig - 1) != 0
}

/// Thread `tid`'s blocked signals, from its status. While it waits in
/// `sigwaitinfo` the kernel shows the signals waited for as not blocked.
fn blocked(tid: i32) -> Option<u64> {
    let mut path = sys::line::Line::<64>::new();
    path.str("/proc/self/task/").dec(tid as u64).str("/status");
    sys::procfields::read_line_field(path.c_str()?, b"SigBlk:", 16)
}

/// Whether the signal queue has room for [`TAKEN_MAX`] more signals:
/// `SigQ:` (signals queued by this user / RLIMIT_SIGPENDING) of the
/// process's status.
fn queue_room() -> bool {
    let Some(used) = sys::procfields::read_line_field(b"/proc/self/status\0", b"SigQ:", 10) else {
        return false;
    };
    let mut lim = [0u64; 2];
    // SAFETY: prlimit64 of this process, reading only: writes `lim`.
    let got = unsafe {
        sys::sys(
            libc::SYS_prlimit64,
            sys::args!(0, libc::RLIMIT_SIGPENDING, 0, lim.as_mut_ptr()),
        )
    };
    got.is_ok() && lim[0].saturating_sub(used) > TAKEN_MAX as u64
}

/// glibc's `SIGSETXID` action while the shim's is lent: handler, flags,
/// restorer, mask.
static GLIBC: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// Whether the shim's handler is on `SIGSETXID`.
static LENT: AtomicBool = AtomicBool::new(false);

/// Puts the shim's handler on `SIGSETXID`, keeping glibc's (once per dump).
fn borrow() -> Result<(), &'static str> {
    if LENT.load(Acquire) {
        return Ok(());
    }
    let glibc = sys::sigaction_get(SIGSETXID).map_err(|_| "cannot read SIGSETXID's handler")?;
    if glibc.handler <= 1 || glibc.flags & SA_SIGINFO == 0 || glibc.flags & sys::SA_RESTORER == 0 {
        return Err("glibc's SIGSETXID handler is not installed");
    }
    for (slot, v) in GLIBC
        .iter()
        .zip([glibc.handler, glibc.flags, glibc.restorer, glibc.mask])
    {
        slot.store(v, Release);
    }
    let ours = sys::KernelSigaction {
        handler: on_setxid as *const () as usize as u64,
        flags: SA_SIGINFO | sys::SA_RESTORER | glibc.flags & libc::SA_RESTART as u64,
        restorer: glibc.restorer,
        mask: !0,
    };
    // SAFETY: `on_setxid` is a handler of the SA_SIGINFO kind; the
    // restorer is glibc's own trampoline for this very signal.
    unsafe { sys::sigaction_set(SIGSETXID, &ours) }
        .map_err(|_| "cannot lend SIGSETXID's handler")?;
    LENT.store(true, Release);
    Ok(())
}

/// Gives glibc's `SIGSETXID` handler back, if the shim's was lent. Called
/// by the leader once every thread is parked (a helper parked is already
/// inside the handler), or once stopping them failed.
pub fn give_back() {
    if !LENT.swap(false, AcqRel) {
        return;
    }
    let glibc = sys::KernelSigaction {
        handler: GLIBC[0].load(Acquire),
        flags: GLIBC[1].load(Acquire),
        restorer: GLIBC[2].load(Acquire),
        mask: GLIBC[3].load(Acquire),
    };
    // SAFETY: the action glibc itself installed.
    let _ = unsafe { sys::sigaction_set(SIGSETXID, &glibc) };
}

/// The shim's `SIGSETXID` handler while lent: a park request parks,
/// anything else (glibc's own `setxid` broadcast) goes to glibc's handler.
extern "C" fn on_setxid(sig: i32, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let uc = uc.cast::<libc::ucontext_t>();
    crate::dump::world::forget_inherited();
    // SAFETY: the kernel's siginfo for this handler.
    if unsafe { crate::dump::world::is_park_request(info) } {
        take_own();
        // SAFETY: `uc` is the context the kernel passed to this handler.
        unsafe { crate::dump::world::park(uc) };
        return;
    }
    let handler = GLIBC[0].load(Acquire);
    if handler > 1 {
        // SAFETY: glibc's SA_SIGINFO handler of this signal (checked when
        // lent), called as the kernel would have.
        unsafe {
            let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
                core::mem::transmute(handler as usize);
            f(sig, info, uc.cast());
        }
    }
}

/// Most `SIGTIMER` signals a dump takes from helpers.
const TAKEN_MAX: usize = 64;
/// The `SIGTIMER` signals helpers took this dump: TID, `siginfo`.
static TAKEN_TID: [AtomicI32; TAKEN_MAX] = [const { AtomicI32::new(0) }; TAKEN_MAX];
static TAKEN_INFO: [[AtomicU64; 16]; TAKEN_MAX] =
    [const { [const { AtomicU64::new(0) }; 16] }; TAKEN_MAX];
/// Slots claimed in the above; more than [`TAKEN_MAX`]: too many.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// Before the threads are asked to park: forgets the last dump's signals.
pub fn begin() {
    TAKEN.store(0, Release);
}

/// Called by a helper about to park, every signal blocked: takes the
/// `SIGTIMER` signals pending for it (only it can, and only so can their
/// `siginfo` be known: which timer fired, its value and overrun), records
/// them and queues them back at once, in the order taken. Taking a timer's
/// signal re-arms it as the helper's own taking would; the helper then
/// takes the copy, with the same `siginfo`.
fn take_own() {
    let me = sys::gettid();
    let first = TAKEN.load(Acquire);
    let set = 1u64 << (SIGTIMER - 1);
    loop {
        let mut pending = 0u64;
        // SAFETY: rt_sigpending writes 8 bytes.
        let _ = unsafe {
            sys::sys(
                libc::SYS_rt_sigpending,
                sys::args!(&mut pending as *mut u64, 8),
            )
        };
        if pending & set == 0 {
            break;
        }
        // A slot first: past the last one, the signal stays where it is
        // (the dump fails, the program loses nothing).
        let i = TAKEN.fetch_add(1, AcqRel);
        if i >= TAKEN_MAX {
            break;
        }
        let mut info = [0u64; 16];
        let zero = [0i64; 2];
        // SAFETY: rt_sigtimedwait reads the set and the zero timeout and
        // writes one 128-byte siginfo.
        let got = unsafe {
            sys::sys(
                libc::SYS_rt_sigtimedwait,
                sys::args!(&set as *const u64, info.as_mut_ptr(), zero.as_ptr(), 8),
            )
        };
        for (w, v) in TAKEN_INFO[i].iter().zip(info) {
            w.store(v, Release);
        }
        // 0: an empty slot (it was taken meanwhile), skipped.
        TAKEN_TID[i].store(if got.is_ok() { me } else { 0 }, Release);
        if got.is_err() {
            break;
        }
    }
    // This thread's slots, in the order taken.
    let end = TAKEN.load(Acquire).min(TAKEN_MAX);
    for (tid, slot) in TAKEN_TID.iter().zip(&TAKEN_INFO).take(end).skip(first) {
        if tid.load(Acquire) != me {
            continue;
        }
        let mut info = [0u64; 16];
        for (v, w) in info.iter_mut().zip(slot) {
            *v = w.load(Acquire);
        }
        // SAFETY: a 128-byte siginfo the kernel only reads, queued by this
        // thread to itself.
        let _ = unsafe {
            sys::sys(
                libc::SYS_rt_tgsigqueueinfo,
                sys::args!(sys::getpid(), me, SIGTIMER, info.as_ptr()),
            )
        };
    }
}

/// The queued signals with, added, the `SIGTIMER` signals the helpers
/// took as they parked, with the `siginfo` glibc's helper reads.
pub fn pending_signals<'a>(
    arena: &'a Arena,
    queued: &'a [QueuedSignal],
) -> Result<&'a [QueuedSignal], Fail> {
    let n = TAKEN.load(Acquire);
    if n > TAKEN_MAX {
        return Err(Fail::new("more than ")
            .dec(TAKEN_MAX as u64)
            .str(" SIGEV_THREAD timer signals pending"));
    }
    if n == 0 {
        return Ok(queued);
    }
    let mut out = arena
        .vec::<QueuedSignal>(queued.len() + n)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    for q in queued {
        let _ = out.push(*q);
    }
    for (tid, slot) in TAKEN_TID.iter().zip(&TAKEN_INFO).take(n) {
        let tid = tid.load(Acquire);
        if tid == 0 {
            continue;
        }
        let mut info = [0u64; 16];
        for (v, w) in info.iter_mut().zip(slot) {
            *v = w.load(Acquire);
        }
        let _ = out.push(QueuedSignal {
            tid: tid as u32,
            info,
        });
    }
    Ok(out.into_slice())
}
