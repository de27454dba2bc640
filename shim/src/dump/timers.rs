//! POSIX timers (`timer_create`): their ids, clocks and targets from
//! `/proc/self/timers`, their time left from `timer_gettime`.
//! Runs in the signal handler: the `dump` module's rules hold.

use dumpfmt::{PosixTimer, QueuedSignal};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::{self, args};

/// `prctl` that makes `timer_create` take the id it is given (6.16+).
pub const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;
pub const RESTORE_IDS_OFF: u64 = 0;
pub const RESTORE_IDS_ON: u64 = 1;

/// `struct sigevent` (64 bytes) with the fields a timer uses.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct SigEvent {
    pub value: u64,
    pub signo: i32,
    pub notify: i32,
    pub tid: i32,
    pub pad: [i32; 11],
}

const _: () = assert!(size_of::<SigEvent>() == 64);

/// Room for `/proc/self/timers` (about 80 bytes a timer).
const TEXT_MAX: usize = 1 << 20;
/// Most timers a dump saves.
const TIMERS_MAX: usize = 8192;

/// A CPU-time clock (`clock_getcpuclockid`, `CLOCK_*_CPUTIME_ID`): the
/// pid or tid it measures (0: the caller) and whether it is a thread's.
pub fn cpu_clock(clock: i32) -> Option<(i32, bool)> {
    (clock < 0).then_some((!(clock >> 3), clock & 4 != 0))
}

/// The POSIX timers of this process, which has `threads` threads.
pub fn collect(arena: &Arena, threads: usize) -> Result<&[PosixTimer], Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let buf = arena.bytes(TEXT_MAX).ok_or_else(no_mem)?;
    let n = match sys::read_file(b"/proc/self/timers\0", buf) {
        Ok(n) => n,
        Err(sys::Errno(libc::EFBIG)) => return Err(Fail::new("too many POSIX timers")),
        Err(e) => return Err(Fail::new("cannot read /proc/self/timers").errno(e)),
    };
    let text: &[u8] = &buf[..n];
    let mut timers = arena.vec::<PosixTimer>(TIMERS_MAX).ok_or_else(no_mem)?;
    let mut t: Option<PosixTimer> = None;
    for line in text.split(|&c| c == b'\n') {
        if let Some(v) = line.strip_prefix(b"ID: ") {
            if let Some(done) = t.take() {
                push(&mut timers, done)?;
            }
            t = Some(PosixTimer {
                id: sys::parse_dec(v).ok_or_else(|| bad(line))? as i32,
                ..PosixTimer::default()
            });
            continue;
        }
        let Some(cur) = t.as_mut() else { continue };
        if let Some(v) = line.strip_prefix(b"signal: ") {
            // "26/00007f6f0e9ae200": the signal, then sigev_value in hex.
            let mut parts = v.splitn(2, |&c| c == b'/');
            cur.signal = parts
                .next()
                .and_then(sys::parse_dec)
                .ok_or_else(|| bad(line))? as i32;
            cur.value = parts
                .next()
                .and_then(sys::parse_hex)
                .ok_or_else(|| bad(line))?;
        } else if let Some(v) = line.strip_prefix(b"notify: ") {
            // "signal/pid.123", "none/pid.123" or "signal/tid.456".
            let (kind, target) = match v.iter().position(|&c| c == b'/') {
                Some(i) => (&v[..i], &v[i + 1..]),
                None => return Err(bad(line)),
            };
            cur.notify = match kind {
                b"signal" => libc::SIGEV_SIGNAL,
                b"none" => libc::SIGEV_NONE,
                _ => {
                    return Err(Fail::new("POSIX timer ")
                        .dec(cur.id as u64)
                        .str(" notifies by a thread of its own (SIGEV_THREAD): not supported"));
                }
            };
            if let Some(tid) = target.strip_prefix(b"tid.") {
                cur.notify |= libc::SIGEV_THREAD_ID;
                cur.tid = sys::parse_dec(tid).ok_or_else(|| bad(line))? as i32;
            }
        } else if let Some(v) = line.strip_prefix(b"ClockID: ") {
            cur.clock = signed(v).ok_or_else(|| bad(line))? as i32;
        }
    }
    if let Some(done) = t.take() {
        push(&mut timers, done)?;
    }
    for t in timers.as_slice() {
        match cpu_clock(t.clock) {
            // Which thread created it, /proc does not say: with one
            // thread it is that one, with more the timer would come back
            // counting the wrong thread's time.
            Some((0, true)) if threads > 1 => {
                return Err(Fail::new("POSIX timer ")
                    .dec(t.id as u64)
                    .str(" counts the CPU time of the thread that made it, which cannot be told among ")
                    .dec(threads as u64)
                    .str(" threads"));
            }
            Some((pid, false)) if pid != 0 && pid != sys::getpid() => {
                return Err(Fail::new("POSIX timer ")
                    .dec(t.id as u64)
                    .str(" counts the CPU time of another process (")
                    .dec(pid as u64)
                    .str(")"));
            }
            _ => {}
        }
    }
    for t in timers.as_mut_slice() {
        // struct itimerspec: interval {sec, nsec}, value {sec, nsec}
        let mut v = [0i64; 4];
        // SAFETY: timer_gettime writes one struct itimerspec.
        unsafe { sys::sys(libc::SYS_timer_gettime, args!(t.id, v.as_mut_ptr())) }.map_err(|e| {
            Fail::new("cannot read POSIX timer ")
                .dec(t.id as u64)
                .errno(e)
        })?;
        let ns = |s: i64, n: i64| {
            (s as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(n as u64)
        };
        t.interval_ns = ns(v[0], v[1]);
        t.value_ns = ns(v[2], v[3]);
    }
    // The kernel lists timers newest first.
    timers.as_mut_slice().sort_unstable_by_key(|t| t.id);
    Ok(timers.into_slice())
}

fn push(v: &mut crate::dump::arena::ArenaVec<'_, PosixTimer>, t: PosixTimer) -> Result<(), Fail> {
    v.push(t).map_err(|_| Fail::new("too many POSIX timers"))
}

fn bad(line: &[u8]) -> Fail {
    Fail::new("cannot parse /proc/self/timers line: ").bytes(line)
}

fn signed(s: &[u8]) -> Option<i64> {
    match s.strip_prefix(b"-") {
        Some(rest) => sys::parse_dec(rest).map(|v| -(v as i64)),
        None => sys::parse_dec(s).map(|v| v as i64),
    }
}

/// `si_code` of a timer's signal.
const SI_TIMER: i32 = -2;

/// The queued signals with, first, the signal each process-directed
/// timer has pending (left in place by `queued`, only its number in
/// `pending`): it comes back with the `siginfo` the program would take
/// (`SI_TIMER`, the timer's id and value; the overrun the kernel counts
/// only as the signal is taken, so 0), not as a bare `kill`; its number
/// leaves `pending`. A signal that several such timers send stays a
/// number: which of them fired cannot be told.
pub fn pending_signals<'a>(
    arena: &'a Arena,
    timers: &[PosixTimer],
    pending: &mut u64,
    queued: &'a [QueuedSignal],
) -> Result<&'a [QueuedSignal], Fail> {
    let process_wide = |t: &&PosixTimer| {
        t.notify == libc::SIGEV_SIGNAL
            && (1..=64).contains(&t.signal)
            && t.value != crate::dump::periodic::TICK_MAGIC
    };
    let mut out = arena
        .vec::<QueuedSignal>(queued.len() + timers.len())
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    let mut taken = 0u64;
    for t in timers.iter().filter(process_wide) {
        let bit = 1u64 << (t.signal - 1);
        let shared = timers
            .iter()
            .filter(process_wide)
            .filter(|u| u.signal == t.signal)
            .count();
        if *pending & bit == 0 || shared != 1 {
            continue;
        }
        let mut info = [0u64; 16];
        info[0] = t.signal as u32 as u64;
        info[1] = SI_TIMER as u32 as u64;
        info[2] = t.id as u32 as u64;
        info[3] = t.value;
        let _ = out.push(QueuedSignal { tid: 0, info });
        taken |= bit;
    }
    if taken == 0 {
        return Ok(queued);
    }
    for q in queued {
        let _ = out.push(*q);
    }
    *pending &= !taken;
    Ok(out.into_slice())
}
