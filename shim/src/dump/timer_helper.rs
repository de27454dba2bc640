//! glibc's helper thread of `SIGEV_THREAD` POSIX timers, told apart from
//! a thread that is merely slow to park.
//!
//! For a `SIGEV_THREAD` timer glibc (2.34 and later,
//! `timer_routines.c`) starts one helper thread that blocks every signal
//! and waits in `sigwaitinfo` for `SIGTIMER` (signal 32); the kernel timer
//! is a `SIGEV_SIGNAL | SIGEV_THREAD_ID` timer aimed at that thread, with
//! glibc's `struct timer` as its value. The helper never takes the park
//! request, and nothing outside a ptracer can read its registers, so such
//! a process cannot be dumped yet: rather than wait [`super::world`]'s
//! five seconds and blame a blocked signal, the dump fails at once with
//! a line naming the thread and the timer.
//!
//! Runs in the signal handler: the `dump` module's rules hold.

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys;

/// glibc's `SIGTIMER` (`SIGRTMIN` as the kernel numbers it).
const SIGTIMER: u64 = 32;
/// Most helper candidates remembered (glibc has one per process).
const MAX: usize = 16;

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
            && signal == SIGTIMER
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
    /// Fails if thread `tid` is glibc's helper: a `SIGTIMER` timer aims
    /// at it and it blocks the dump signal `sig`.
    pub fn check(&self, tid: i32, sig: i32) -> Result<(), Fail> {
        let Some(&(_, timer)) = self.found[..self.n].iter().find(|f| f.0 == tid) else {
            return Ok(());
        };
        if !blocks(tid, sig) {
            return Ok(());
        }
        Err(Fail::new("thread ")
            .dec(tid as u64)
            .str(" is glibc's helper of POSIX timer ")
            .dec(timer as u64)
            .str(" (SIGEV_THREAD) and blocks every signal: SIGEV_THREAD timers are not supported"))
    }
}

/// Whether thread `tid` of this process blocks signal `sig`.
fn blocks(tid: i32, sig: i32) -> bool {
    if !(1..=64).contains(&sig) {
        return false;
    }
    let mut path = sys::line::Line::<64>::new();
    path.str("/proc/self/task/").dec(tid as u64).str("/status");
    let mut buf = [0u8; 4096];
    let Some(Ok(n)) = path.c_str().map(|p| sys::read_file(p, &mut buf)) else {
        return false;
    };
    let Some(line) = buf[..n]
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"SigBlk:"))
    else {
        return false;
    };
    let mask = line
        .iter()
        .filter(|c| !c.is_ascii_whitespace())
        .fold(0u64, |m, &d| {
            (m << 4) | u64::from((d as char).to_digit(16).unwrap_or(0))
        });
    mask & 1 << (sig - 1) != 0
}
