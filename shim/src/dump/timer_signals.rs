//! Pending signals of POSIX timers and their overruns (issue 12), given
//! back by the kernel itself rather than queued as look-alikes.
//!
//! A timer's pending signal is the kernel's own record of that timer: it
//! carries `SI_TIMER`, the timer's id and value, and its overrun is
//! counted only as it is taken (a periodic timer with its signal pending
//! does not fire again; taking it re-arms the timer). Queued again with
//! `rt_sigqueueinfo` it would be a look-alike: taken, it re-arms nothing,
//! and the timer, armed again, fires a second one. So when the main
//! thread leads the dump, the signals of the timers that signal the
//! process or the main thread (and no other thread) are taken like the
//! other queued ones (`queued`), which tells, per signal, its timer and
//! its overrun (`si_overrun`), even for several timers of one number; then
//! each timer is made to fire again at once ([`arm_pending`]: armed at an
//! absolute time in the past, `overrun + 1` intervals before its next
//! expiry), which queues the same signal, with the same overrun counted
//! from the same expiry, in the order taken. The records of [`TABLE`] are
//! part of the process's memory: the restored process, coming back
//! through the dump's frames, does the same with the timers the restore
//! made ([`after_restore`]) before any other thread goes on. They are not
//! in the image's queued signals, and their numbers leave its pending
//! mask ([`numbers`]).
//!
//! `timer_getoverrun` (the overrun of the last signal taken) is read per
//! timer at the start of the dump. After a restore, a periodic timer
//! without a pending signal gets it back from a signal taken here at once
//! ([`give_back_overrun`]): armed `overrun + 1` intervals before its next
//! expiry, its signal taken then counts exactly `overrun`, and the timer
//! goes on toward that same expiry.
//!
//! Not kept (said here, not in a log line at every dump):
//! - `timer_getoverrun` of a timer whose signal is pending, until the
//!   program takes that signal: 0 (arming a timer resets it), in the
//!   process that goes on and in the restored one; once it is taken, the
//!   signal's overrun, as without a dump;
//! - the order between a timer's signal and `sigqueue` signals of the
//!   same number: the timer's comes after them after a restore;
//! - a timer that signals another thread, a signal number shared with
//!   such a timer, a dump led by another thread than the main one, more
//!   than [`MAX`] timers: the old way (the signal comes back as a
//!   look-alike with overrun 0, `timer_getoverrun` 0).
//!
//! Runs in the signal handler, and after a restore in the handler's
//! frames, with every signal blocked: the `dump` module's rules hold.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering::*};

use crate::sys::line::Line;
use crate::sys::{self, args};

/// Most timers handled this way.
pub const MAX: usize = 64;
/// `si_code` of a timer's signal.
pub const SI_TIMER: i32 = -2;
const TIMER_ABSTIME: u64 = 1;
const NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Default)]
struct Entry {
    id: i32,
    signo: i32,
    clock: i32,
    /// `timer_getoverrun` at the start of the dump.
    last: i32,
    /// Its signal was taken (the `seq`-th) with overrun `overrun`.
    pending: bool,
    seq: u32,
    overrun: i32,
    interval_ns: u64,
    /// After the signal was taken: its next expiry on its clock.
    next_abs: u64,
}

struct Table(UnsafeCell<[Entry; MAX]>);
// SAFETY: only the main thread, leading a dump (one at a time) or coming
// back from one, touches it.
unsafe impl Sync for Table {}

static TABLE: Table = Table(UnsafeCell::new(
    [Entry {
        id: 0,
        signo: 0,
        clock: 0,
        last: 0,
        pending: false,
        seq: 0,
        overrun: 0,
        interval_ns: 0,
        next_abs: 0,
    }; MAX],
));
static COUNT: AtomicUsize = AtomicUsize::new(0);
static SEQ: AtomicUsize = AtomicUsize::new(0);

fn entries() -> &'static mut [Entry] {
    let n = COUNT.load(Acquire).min(MAX);
    // SAFETY: see `Table`: the caller is the main thread, alone here.
    unsafe { &mut (&mut *TABLE.0.get())[..n] }
}

/// Forgets the last dump's timers (every dump, whichever thread leads).
pub fn reset() {
    COUNT.store(0, Release);
}

/// The main thread leading a dump: reads the timers from `text` (the
/// contents of `/proc/self/timers`) and returns the signal numbers whose
/// timers all signal the process or this thread: those are taken.
pub fn prepare(text: &[u8]) -> u64 {
    let main = sys::getpid() as u64;
    let mut eligible = 0u64;
    let mut other = 0u64;
    let mut n = 0usize;
    // SAFETY: see `Table`.
    let table = unsafe { &mut *TABLE.0.get() };
    let mut cur = Entry::default();
    let mut ok = false;
    let mut have = false;
    let mut finish = |cur: &Entry, ok: bool, n: &mut usize| -> bool {
        if !(1..=64).contains(&cur.signo) {
            return true;
        }
        let bit = 1u64 << (cur.signo - 1);
        if !ok {
            other |= bit;
            return true;
        }
        if *n == MAX {
            return false;
        }
        table[*n] = *cur;
        *n += 1;
        eligible |= bit;
        true
    };
    for line in text.split(|&c| c == b'\n') {
        if let Some(v) = line.strip_prefix(b"ID: ") {
            if have && !finish(&cur, ok, &mut n) {
                return 0;
            }
            cur = Entry {
                id: sys::parse_dec(v).unwrap_or(0) as i32,
                ..Entry::default()
            };
            ok = sys::parse_dec(v).is_some();
            have = true;
        } else if let Some(v) = line.strip_prefix(b"signal: ") {
            let mut parts = v.splitn(2, |&c| c == b'/');
            cur.signo = parts.next().and_then(sys::parse_dec).unwrap_or(0) as i32;
            if parts.next().and_then(sys::parse_hex) == Some(crate::dump::periodic::TICK_MAGIC) {
                ok = false;
            }
        } else if let Some(v) = line.strip_prefix(b"notify: ") {
            let mine = v.strip_prefix(b"signal/tid.").and_then(sys::parse_dec) == Some(main);
            if !(v.starts_with(b"signal/pid.") || mine) {
                ok = false;
            }
        } else if let Some(v) = line.strip_prefix(b"ClockID: ") {
            match v.strip_prefix(b"-") {
                Some(r) => cur.clock = -(sys::parse_dec(r).unwrap_or(0) as i64) as i32,
                None => cur.clock = sys::parse_dec(v).unwrap_or(0) as i32,
            }
        }
    }
    if have && !finish(&cur, ok, &mut n) {
        return 0;
    }
    for e in table[..n].iter_mut() {
        // SAFETY: timer_getoverrun takes a timer id.
        e.last = unsafe { sys::sys(libc::SYS_timer_getoverrun, args!(e.id)) }.unwrap_or(0) as i32;
    }
    COUNT.store(n, Release);
    eligible & !other
}

/// The signal numbers of the timers whose signal was taken: they come
/// back from [`TABLE`], not from the image's pending mask.
pub fn numbers() -> u64 {
    entries()
        .iter()
        .filter(|e| e.pending)
        .fold(0, |m, e| m | 1u64 << (e.signo - 1))
}

/// The main thread starts taking its signals (again).
pub fn taking() {
    for e in entries() {
        e.pending = false;
    }
    SEQ.store(0, Release);
}

/// A signal the main thread took (`info`, a 128-byte siginfo): whether
/// it is one of [`TABLE`]'s timers', now recorded.
pub fn taken(info: &[u64; 16]) -> bool {
    if info[1] as u32 as i32 != SI_TIMER {
        return false;
    }
    let id = info[2] as u32 as i32;
    let signo = info[0] as u32 as i32;
    let Some(e) = entries()
        .iter_mut()
        .find(|e| e.id == id && e.signo == signo)
    else {
        return false;
    };
    let (interval, left) = gettime(id);
    e.pending = true;
    e.seq = SEQ.fetch_add(1, AcqRel) as u32;
    e.overrun = (info[2] >> 32) as u32 as i32;
    e.interval_ns = interval;
    e.next_abs = clock_ns(e.clock).saturating_add(left);
    true
}

/// Queues again the signal of the timer `info` names (taken, [`taken`]).
pub fn put_back(info: &[u64; 16]) {
    let id = info[2] as u32 as i32;
    if let Some(e) = entries().iter().find(|e| e.id == id && e.pending) {
        arm_pending(e, e.next_abs);
    }
}

/// The restored process, in its main thread, before any other thread
/// goes on: gives back each timer's `timer_getoverrun`, then its pending
/// signal, in the order they were taken.
pub fn after_restore() {
    if sys::gettid() != sys::getpid() {
        return;
    }
    for e in entries().iter().filter(|e| !e.pending) {
        give_back_overrun(e);
    }
    let mut pending = [0usize; MAX];
    let mut k = 0;
    for (i, e) in entries().iter().enumerate() {
        if e.pending {
            pending[k] = i;
            k += 1;
        }
    }
    let all = entries();
    pending[..k].sort_unstable_by_key(|&i| all[i].seq);
    for &i in &pending[..k] {
        let e = all[i];
        // Its next expiry as the restore armed it (the time left at the
        // dump), on this machine's clock.
        let (_, left) = gettime(e.id);
        arm_pending(&e, clock_ns(e.clock).saturating_add(left));
    }
    COUNT.store(0, Release);
}

/// Arms `e` so that it fires at once with the signal it had pending: a
/// one-shot timer in 1 ns; a periodic one at an absolute time
/// `overrun + 1` intervals before `next_abs`, so that its signal, taken,
/// counts the same overrun and the timer goes on toward `next_abs`. Waits
/// until it has fired.
fn arm_pending(e: &Entry, next_abs: u64) {
    let i = e.interval_ns;
    let (flags, at) = if i == 0 {
        (0, 1)
    } else {
        let back = (e.overrun.max(0) as u64 + 1).saturating_mul(i);
        match next_abs.checked_sub(back) {
            Some(at) if at > 0 => (TIMER_ABSTIME, at),
            _ => {
                say(
                    e,
                    "'s pending signal comes back with a smaller overrun (its clock is too young)",
                );
                (TIMER_ABSTIME, 1)
            }
        }
    };
    if settime(e.id, flags, i, at).is_err() {
        say(e, "'s pending signal could not be given back");
        return;
    }
    // Fired: a one-shot timer is disarmed; a periodic one no longer
    // reports the 1 ns of an expired timer whose signal is not queued.
    for _ in 0..4000 {
        let (_, left) = gettime(e.id);
        if (i == 0 && left == 0) || (i != 0 && left != 1) {
            return;
        }
        let ts: [i64; 2] = [0, 50_000];
        // SAFETY: nanosleep reads one struct timespec; no remainder.
        let _ = unsafe { sys::sys(libc::SYS_nanosleep, args!(ts.as_ptr(), 0)) };
    }
    say(e, "'s pending signal did not come back in 200 ms");
}

/// Makes the kernel's `timer_getoverrun` of periodic timer `e` (without a
/// pending signal) what it was: its signal, fired now as if armed
/// `last + 1` intervals before its next expiry, is taken here with
/// overrun `last`, and the timer goes on toward that expiry. Signals of
/// its number taken on the way (queued by the restore) are queued again,
/// in order.
fn give_back_overrun(e: &Entry) {
    let (interval, left) = gettime(e.id);
    if e.last <= 0 || interval == 0 || left == 0 {
        return;
    }
    let next_abs = clock_ns(e.clock).saturating_add(left);
    let back = (e.last as u64 + 1).saturating_mul(interval);
    let Some(at) = next_abs.checked_sub(back).filter(|&a| a > 0) else {
        say(
            e,
            ": timer_getoverrun comes back as 0 (its clock is too young)",
        );
        return;
    };
    if settime(e.id, TIMER_ABSTIME, interval, at).is_err() {
        say(e, ": timer_getoverrun comes back as 0");
        return;
    }
    let mut others = [[0u64; 16]; 8];
    let mut n = 0;
    let set = 1u64 << (e.signo - 1);
    let got = loop {
        let mut info = [0u64; 16];
        let timeout: [i64; 2] = [1, 0];
        // SAFETY: `set` is an 8-byte sigset, `info` 128 writable bytes,
        // `timeout` a timespec.
        let r = unsafe {
            sys::sys(
                libc::SYS_rt_sigtimedwait,
                args!(&set as *const u64, info.as_mut_ptr(), timeout.as_ptr(), 8),
            )
        };
        if r.is_err() {
            break None;
        }
        if info[1] as u32 as i32 == SI_TIMER && info[2] as u32 as i32 == e.id {
            break Some((info[2] >> 32) as u32 as i32);
        }
        if n == others.len() {
            say(
                e,
                ": too many signals of its number to give timer_getoverrun back",
            );
            break None;
        }
        others[n] = info;
        n += 1;
    };
    let pid = sys::getpid();
    for info in &others[..n] {
        // SAFETY: a 128-byte siginfo the kernel only reads; the main
        // thread queues to its own process (or itself).
        let _ = unsafe {
            sys::sys(
                libc::SYS_rt_sigqueueinfo,
                args!(pid, e.signo, info.as_ptr()),
            )
        };
    }
    if got != Some(e.last) {
        say(e, ": timer_getoverrun does not come back as it was");
    }
}

fn say(e: &Entry, what: &str) {
    Line::<200>::new()
        .str("migrate: POSIX timer ")
        .dec(e.id as u64)
        .str(what)
        .emit();
}

/// Interval and time left of timer `id`, in ns.
fn gettime(id: i32) -> (u64, u64) {
    let mut v = [0i64; 4];
    // SAFETY: timer_gettime writes one struct itimerspec.
    if unsafe { sys::sys(libc::SYS_timer_gettime, args!(id, v.as_mut_ptr())) }.is_err() {
        return (0, 0);
    }
    let ns = |s: i64, n: i64| (s as u64).saturating_mul(NS).saturating_add(n as u64);
    (ns(v[0], v[1]), ns(v[2], v[3]))
}

fn settime(id: i32, flags: u64, interval: u64, value: u64) -> sys::SysResult<u64> {
    let spec = [
        (interval / NS) as i64,
        (interval % NS) as i64,
        (value / NS) as i64,
        (value % NS) as i64,
    ];
    // SAFETY: timer_settime reads one struct itimerspec; no old value.
    unsafe { sys::sys(libc::SYS_timer_settime, args!(id, flags, spec.as_ptr(), 0)) }
}

fn clock_ns(clock: i32) -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: clock_gettime writes one struct timespec.
    match unsafe { sys::sys(libc::SYS_clock_gettime, args!(clock, ts.as_mut_ptr())) } {
        Ok(_) => (ts[0] as u64)
            .saturating_mul(NS)
            .saturating_add(ts[1] as u64),
        Err(_) => 0,
    }
}
