//! Zombie and stopped members of a tree dump (issue 9; design steps 4 and
//! the zombie parts in the module above): what this process's image
//! records in `Minor3::members`.
//!
//! A *zombie* child (exited, not waited for) runs no handler: this
//! process, its parent, records it (PID, how it ended as `waitid` with
//! `WNOWAIT` reads it, so it stays unreaped, its process group and
//! session) instead of asking it to take part. A zombie that dumped core
//! fails the dump (a restore cannot make the kernel set the core flag),
//! and so does one whose PID still names a process group or session that
//! live processes are in (the restore could not give that group its
//! leader back before they join it).
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls, the arena for memory). The
//! record is a static the leading thread alone touches during a dump.

use std::borrow::Cow;

use crate::config::Global;
use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::{self, args, line::Line};
use crate::tree::children::{self, MAX_CHILDREN};

/// Most zombie children one image records.
pub const MAX_ZOMBIES: usize = 4096;

/// What this dump records; cleared as each dump begins.
struct Record {
    zombies: [dumpfmt::Zombie; MAX_ZOMBIES],
    n: usize,
    stop: Option<dumpfmt::Stop>,
}

static RECORD: Global<Record> = Global::new(Record {
    zombies: [dumpfmt::Zombie {
        pid: 0,
        killed: false,
        status: 0,
        pgid: 0,
        sid: 0,
    }; MAX_ZOMBIES],
    n: 0,
    stop: None,
});

/// Forgets the zombies an earlier dump recorded (the static is part of
/// every image, and so of a restored process's memory). Its stop is set
/// by the tree request, and forgotten by [`stop_again`].
pub fn clear_zombies() {
    // SAFETY: the leading thread alone touches the record during a dump.
    let r = unsafe { RECORD.get() };
    r.n = 0;
}

/// Forgets a stop recorded by a tree request the dump could not act on,
/// and one a restored process's memory holds.
pub fn forget_stop() {
    // SAFETY: as in `clear_zombies`.
    unsafe { RECORD.get() }.stop = None;
}

/// What this dump recorded, for the image.
pub fn members() -> dumpfmt::Members<'static> {
    // SAFETY: as in `clear_zombies`; the image is written before the next dump
    // can clear it.
    let r = unsafe { RECORD.get() };
    dumpfmt::Members {
        zombies: Cow::Borrowed(&r.zombies[..r.n]),
        stop: r.stop,
    }
}

/// Records that this process was stopped at the dump (see `tree::dump`).
pub fn set_stop(stop: dumpfmt::Stop) {
    // SAFETY: as in `clear_zombies`.
    unsafe { RECORD.get() }.stop = Some(stop);
}

/// Records the zombies among `kids` (this process's children) and returns
/// the others, in order. `check`: a restore's check dump, which records
/// the zombies as they are and refuses nothing.
pub fn take_zombies<'a>(arena: &'a Arena, kids: &[i32], check: bool) -> Result<&'a [i32], Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let mut live = arena.vec::<i32>(MAX_CHILDREN).ok_or_else(no_mem)?;
    // SAFETY: as in `clear_zombies`.
    let r = unsafe { RECORD.get() };
    for &pid in kids {
        let Some(ended) = zombie_status(pid) else {
            let _ = live.push(pid);
            continue;
        };
        let (killed, status, core) = ended;
        let (pgid, sid) = groups_of(pid).unwrap_or((0, 0));
        if !check {
            refuse_zombie(pid, killed, status, core, pgid, sid)?;
        }
        if r.n == MAX_ZOMBIES {
            return Err(Fail::new("more than ")
                .dec(MAX_ZOMBIES as u64)
                .str(" children exited and were not waited for"));
        }
        r.zombies[r.n] = dumpfmt::Zombie {
            pid: pid as u32,
            killed,
            status,
            pgid: pgid as u32,
            sid: sid as u32,
        };
        r.n += 1;
    }
    // The kernel lists children in no particular order; the image keeps
    // them sorted by PID.
    r.zombies[..r.n].sort_unstable_by_key(|z| z.pid);
    Ok(live.into_slice())
}

/// Fails the dump for a zombie a restore could not bring back exactly.
fn refuse_zombie(
    pid: i32,
    killed: bool,
    status: u8,
    core: bool,
    pgid: i32,
    sid: i32,
) -> Result<(), Fail> {
    let child = || {
        Fail::new("child ")
            .dec(pid as u64)
            .str(" (exited, not waited for) ")
    };
    if killed && core {
        return Err(child()
            .str("was killed by signal ")
            .dec(u64::from(status))
            .str(
                " and dumped core: a restore cannot set the core flag its parent's wait would see",
            ));
    }
    if pgid == pid || sid == pid {
        let mut others = 0u32;
        let _ = sys::for_each_dir_entry(b"/proc\0", |name| {
            let Some(other) = sys::parse_dec(name) else {
                return;
            };
            if other as i32 != pid
                && groups_of(other as i32).is_some_and(|(g, s)| g == pid || s == pid)
            {
                others += 1;
            }
        });
        if others > 0 {
            return Err(child()
                .str("still leads the process group or session of ")
                .dec(u64::from(others))
                .str(" live processes (not supported)"));
        }
    }
    Ok(())
}

/// How child `pid` ended, if it is a zombie: (killed, exit code or
/// signal, core dumped). Read with `WNOWAIT`: it stays a zombie.
fn zombie_status(pid: i32) -> Option<(bool, u8, bool)> {
    if children::state_of(pid) != Some(b'Z') {
        return None;
    }
    let mut info = [0u8; 128];
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is a siginfo-sized buffer the kernel writes; no rusage.
    let r = unsafe {
        sys::sys(
            libc::SYS_waitid,
            args!(libc::P_PID, pid, info.as_mut_ptr(), flags, 0),
        )
    };
    if r.is_err() {
        return None;
    }
    // siginfo for SIGCHLD: si_code at 8, si_pid at 16, si_status at 24.
    let code = i32::from_ne_bytes([info[8], info[9], info[10], info[11]]);
    let who = i32::from_ne_bytes([info[16], info[17], info[18], info[19]]);
    let status = i32::from_ne_bytes([info[24], info[25], info[26], info[27]]);
    if who != pid {
        return None;
    }
    match code {
        libc::CLD_EXITED => Some((false, status as u8, false)),
        libc::CLD_KILLED => Some((true, status as u8, false)),
        libc::CLD_DUMPED => Some((true, status as u8, true)),
        _ => None,
    }
}

/// The process group and session of `pid` (fields 5 and 6 of
/// `/proc/PID/stat`), if it exists.
pub fn groups_of(pid: i32) -> Option<(i32, i32)> {
    let mut path = Line::<64>::new();
    path.str("/proc/").dec(pid as u64).str("/stat");
    let mut buf = [0u8; 1024];
    let n = sys::read_file(path.c_str()?, &mut buf).ok()?;
    let text = &buf[..n];
    let close = text.iter().rposition(|&c| c == b')')?;
    let mut rest = text
        .get(close + 1..)?
        .split(|&c| c == b' ')
        .filter(|f| !f.is_empty());
    // state, ppid, pgrp, session
    let _ = rest.next()?;
    let _ = rest.next()?;
    let pgid = sys::parse_dec(rest.next()?)? as i32;
    let sid = sys::parse_dec(rest.next()?)? as i32;
    Some((pgid, sid))
}

// ---------------------------------------------------------------------
// Stopped members (design step 4).
//
// A stopped child cannot run a handler: its parent (the process whose
// dump leads it) notes whether the child's stop report is still waiting
// for its `waitpid(WUNTRACED)` (`waitid` with `WNOWAIT`), sends the tree
// request with the stop in it ([`request_value`]), then `SIGCONT`. The
// child parks as any member, with its stop recorded in its image
// ([`set_stop`]), and stops itself again once released ([`stop_again`]).
// The parent takes the `CLD_CONTINUED` report the `SIGCONT` made before
// its own image is written ([`after_parked`]), and after the release waits
// for the child's new stop and takes that report too when the old one had
// been taken ([`after_release`]); a `SIGCHLD` either sent is taken back
// unless one was pending before the dump.

/// Most stopped children one process leads in a dump.
pub const MAX_STOPPED: usize = 1024;

/// High 16 bits of the high word of a tree request to a stopped child
/// (the low 16: its stop signal, and bit 8 when its report was waiting);
/// see `tree::dump::REQUEST_MAGIC` for the others.
pub const STOPPED_REQUEST: u64 = 0x5354;

struct Stopped {
    /// Each child, its stop, and whether it was asked and continued.
    kids: [(i32, dumpfmt::Stop, bool); MAX_STOPPED],
    n: usize,
    /// A SIGCHLD was pending before any was continued.
    chld_pending: bool,
}

static STOPPED: Global<Stopped> = Global::new(Stopped {
    kids: [(
        0,
        dumpfmt::Stop {
            signal: 0,
            reported: false,
        },
        false,
    ); MAX_STOPPED],
    n: 0,
    chld_pending: false,
});

/// Signals pending for stopped child `pid` that it would take as soon as
/// it is continued (pending and not blocked: a thread's own against its
/// mask, the process's against the mask of some thread); bit n-1 for
/// signal n.
pub fn deliverable_pending(pid: i32) -> u64 {
    let mut shared = 0u64;
    let mut blocked_by_all = u64::MAX;
    let mut own = 0u64;
    let mut dir = Line::<64>::new();
    dir.str("/proc/").dec(pid as u64).str("/task");
    let Some(d) = dir.c_str() else { return 0 };
    let _ = sys::for_each_dir_entry(d, |name| {
        let Some(tid) = sys::parse_dec(name) else {
            return;
        };
        let mut path = Line::<96>::new();
        path.str("/proc/")
            .dec(pid as u64)
            .str("/task/")
            .dec(tid)
            .str("/status");
        let Some(p) = path.c_str() else { return };
        let mut buf = [0u8; 4096];
        let Ok(n) = sys::read_file(p, &mut buf) else {
            return;
        };
        let field = |key: &[u8]| sys::procfields::line_field(&buf[..n], key, 16).unwrap_or(0);
        let blocked = field(b"SigBlk:");
        own |= field(b"SigPnd:") & !blocked;
        shared |= field(b"ShdPnd:");
        blocked_by_all &= blocked;
    });
    own | shared & !blocked_by_all
}

/// If child `pid` is stopped (state `T`), its stop as its parent sees it.
pub fn stopped_child(pid: i32) -> Option<dumpfmt::Stop> {
    if children::state_of(pid) != Some(b'T') {
        return None;
    }
    let (code, status) =
        wait_info(pid, libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT).unwrap_or((0, 0));
    Some(if code == libc::CLD_STOPPED {
        dumpfmt::Stop {
            signal: status as u8,
            reported: true,
        }
    } else {
        dumpfmt::Stop {
            signal: 0,
            reported: false,
        }
    })
}

/// The `si_value` of a tree request to a stopped child, whose control
/// block is the parent's descriptor `fd`.
pub fn request_value(stop: dumpfmt::Stop, fd: i32) -> u64 {
    let word = STOPPED_REQUEST << 16 | u64::from(stop.reported) << 8 | u64::from(stop.signal);
    word << 32 | u64::from(fd as u32)
}

/// The stop a tree request's high word carries, if it is one to a
/// stopped child.
pub fn stop_of_request(high: u64) -> Option<dumpfmt::Stop> {
    (high >> 16 == STOPPED_REQUEST).then_some(dumpfmt::Stop {
        signal: high as u8,
        reported: high & 0x100 != 0,
    })
}

/// The `si_value` of the tree request to child `pid` if it is a stopped
/// child noted by [`note_stopped`].
pub fn stopped_request(pid: i32, fd: i32) -> Option<u64> {
    // SAFETY: as in `clear_stopped`.
    let s = unsafe { STOPPED.get() };
    s.kids[..s.n]
        .iter()
        .find(|k| k.0 == pid)
        .map(|k| request_value(k.1, fd))
}

/// Forgets the stopped children of an earlier dump (called as the
/// children are listed).
pub fn clear_stopped() {
    // SAFETY: the leading thread alone touches this during a dump.
    let s = unsafe { STOPPED.get() };
    s.n = 0;
    s.chld_pending = pending_here(libc::SIGCHLD);
}

/// Notes that stopped child `pid` was asked to take part, to continue it
/// ([`continue_stopped`]) and stop it again at the end.
pub fn note_stopped(pid: i32, stop: dumpfmt::Stop) -> Result<(), Fail> {
    // SAFETY: as in `clear_stopped`.
    let s = unsafe { STOPPED.get() };
    if s.n == MAX_STOPPED {
        return Err(Fail::new("more than ")
            .dec(MAX_STOPPED as u64)
            .str(" stopped children"));
    }
    s.kids[s.n] = (pid, stop, false);
    s.n += 1;
    Ok(())
}

/// Continues stopped child `pid`, just sent its tree request (which waits,
/// pending, for it), if it is one; only a continued child is waited for
/// at the end.
pub fn continue_stopped(pid: i32) -> Result<(), Fail> {
    // SAFETY: as in `clear_stopped`.
    let s = unsafe { STOPPED.get() };
    let Some(kid) = s.kids[..s.n].iter_mut().find(|k| k.0 == pid) else {
        return Ok(());
    };
    sys::kill(pid, libc::SIGCONT).map_err(|e| {
        Fail::new("cannot continue stopped child ")
            .dec(pid as u64)
            .errno(e)
    })?;
    kid.2 = true;
    Ok(())
}

/// Once every child is parked: takes the `CLD_CONTINUED` reports the
/// `SIGCONT`s made, and the `SIGCHLD`, so that neither is in the image.
pub fn after_parked() {
    // SAFETY: as in `clear_stopped`.
    let s = unsafe { STOPPED.get() };
    if s.n == 0 {
        return;
    }
    for &(pid, ..) in s.kids[..s.n].iter().filter(|k| k.2) {
        let _ = wait_info(pid, libc::WCONTINUED | libc::WNOHANG);
    }
    if !s.chld_pending {
        take_pending(libc::SIGCHLD);
    }
}

/// How long the parent waits for a released child to stop again.
const RESTOP_TIMEOUT_NS: u64 = 10_000_000_000;

/// Once the children are released (or the dump given up): waits until each
/// stopped child has stopped again (or exited, as `MIGRATE_AFTER_DUMP=exit`
/// makes it), takes the new stop report where the old one had been taken,
/// and the `SIGCHLD`.
pub fn after_release() {
    // SAFETY: as in `clear_stopped`.
    let s = unsafe { STOPPED.get() };
    if s.n == 0 {
        return;
    }
    let deadline = sys::monotonic_ns() + RESTOP_TIMEOUT_NS;
    for &(pid, stop, _) in s.kids[..s.n].iter().filter(|k| k.2) {
        let flags = libc::WSTOPPED | libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        loop {
            match wait_info(pid, flags) {
                Some((libc::CLD_STOPPED, _)) => {
                    if !stop.reported {
                        let _ = wait_info(pid, libc::WSTOPPED | libc::WNOHANG);
                    }
                    break;
                }
                Some((libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED, _)) => break,
                _ if sys::monotonic_ns() >= deadline => break,
                _ => sleep_ns(1_000_000),
            }
        }
    }
    if !s.chld_pending {
        take_pending(libc::SIGCHLD);
    }
    s.n = 0;
}

/// In a member that was stopped, once its threads are released: stops
/// the process again, as it was before the dump, and forgets the stop.
/// The `SIGCONT` that continued it for the dump is taken back first (an
/// application handler of `SIGCONT` must not run for it).
pub fn stop_again() {
    // SAFETY: as in `clear_zombies`.
    let r = unsafe { RECORD.get() };
    let Some(stop) = r.stop.take() else {
        return;
    };
    take_pending(libc::SIGCONT);
    stop_with(stop.signal);
}

/// Stops this process with `signal` where that is a job-control stop
/// signal (`SIGTSTP`, `SIGTTIN`, `SIGTTOU`: its parent's `waitpid` then
/// reports it, as it reported the stop before the dump, where a shell
/// tells Ctrl-Z from a `SIGSTOP`), else with `SIGSTOP`; returns once
/// continued. The calling thread has every signal blocked: the stop
/// signal is taken with its default action, unblocked for this thread
/// alone for the time of the stop, the program's action and the mask
/// then put back. In an orphaned process group the kernel discards those
/// signals instead of stopping: `SIGSTOP` then.
///
/// Signal-safe (raw system calls, no memory but the stack): the dump's
/// handler calls it, and so does a restore.
pub fn stop_with(signal: u8) {
    let sig = i32::from(signal);
    if matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) && !pgrp_orphaned() {
        // The kernel's struct sigaction: handler, flags, restorer, mask.
        let dfl = [0u64; 4];
        let mut old = [0u64; 4];
        let only = 1u64 << (sig - 1);
        let mut mask = 0u64;
        // SAFETY: rt_sigaction and rt_sigprocmask read and write the
        // 32-byte actions and 8-byte sets on this stack; tgkill signals
        // this thread, which alone takes `sig` (unblocked only here), and
        // stops (its default action) before the syscall returns.
        unsafe {
            if sys::sys(
                libc::SYS_rt_sigaction,
                args!(sig, dfl.as_ptr(), old.as_mut_ptr(), 8),
            )
            .is_ok()
            {
                let unblocked = sys::sys(
                    libc::SYS_rt_sigprocmask,
                    args!(
                        libc::SIG_UNBLOCK,
                        &only as *const u64,
                        &mut mask as *mut u64,
                        8
                    ),
                )
                .is_ok();
                let sent = unblocked
                    && sys::sys(libc::SYS_tgkill, args!(sys::getpid(), sys::gettid(), sig)).is_ok();
                if unblocked {
                    let _ = sys::sys(
                        libc::SYS_rt_sigprocmask,
                        args!(libc::SIG_SETMASK, &mask as *const u64, 0u64, 8),
                    );
                }
                let _ = sys::sys(libc::SYS_rt_sigaction, args!(sig, old.as_ptr(), 0u64, 8));
                if sent {
                    return;
                }
            }
        }
    }
    let _ = sys::kill(sys::getpid(), libc::SIGSTOP);
}

/// Whether this process's group is orphaned (no member has a parent in
/// another group of the same session), as the kernel decides before it
/// acts on `SIGTSTP`, `SIGTTIN` or `SIGTTOU`; read from `/proc`.
fn pgrp_orphaned() -> bool {
    let Some((pgid, _)) = groups_of(sys::getpid()) else {
        return true;
    };
    let mut orphaned = true;
    let _ = sys::for_each_dir_entry(b"/proc\0", |name| {
        if !orphaned {
            return;
        }
        let Some(pid) = sys::parse_dec(name) else {
            return;
        };
        let pid = pid as i32;
        let Some((g, s)) = groups_of(pid) else { return };
        if g != pgid {
            return;
        }
        let Some((ppid, st)) = children::parent_and_state(pid) else {
            return;
        };
        if st == b'Z' || ppid <= 0 {
            return;
        }
        if groups_of(ppid).is_some_and(|(pg, ps)| pg != pgid && ps == s) {
            orphaned = false;
        }
    });
    orphaned
}

/// `waitid(P_PID, pid, ...)`: `si_code` and `si_status` when it reported.
fn wait_info(pid: i32, flags: i32) -> Option<(i32, i32)> {
    let mut info = [0u8; 128];
    // SAFETY: `info` is a siginfo-sized buffer the kernel writes; no rusage.
    let r = unsafe {
        sys::sys(
            libc::SYS_waitid,
            args!(libc::P_PID, pid, info.as_mut_ptr(), flags, 0),
        )
    };
    r.ok()?;
    let code = i32::from_ne_bytes([info[8], info[9], info[10], info[11]]);
    let who = i32::from_ne_bytes([info[16], info[17], info[18], info[19]]);
    let status = i32::from_ne_bytes([info[24], info[25], info[26], info[27]]);
    (who == pid).then_some((code, status))
}

/// Whether `sig` is pending for this thread or the process.
fn pending_here(sig: i32) -> bool {
    let mut set = 0u64;
    // SAFETY: an 8-byte set the kernel fills.
    let r = unsafe { sys::sys(libc::SYS_rt_sigpending, args!(&mut set as *mut u64, 8)) };
    r.is_ok() && set & (1u64 << (sig - 1)) != 0
}

/// Takes `sig` if it is pending (it is blocked: the handler runs with
/// every signal blocked).
fn take_pending(sig: i32) {
    let set = 1u64 << (sig - 1);
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    for _ in 0..4 {
        // SAFETY: a set, no siginfo wanted, a zero timeout: returns at once.
        let r = unsafe {
            sys::sys(
                libc::SYS_rt_sigtimedwait,
                args!(&set as *const u64, 0u64, &zero as *const libc::timespec, 8),
            )
        };
        if r.is_err() {
            break;
        }
    }
}

fn sleep_ns(ns: u64) {
    let ts = [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64];
    // SAFETY: nanosleep reads one struct timespec; no remainder.
    let _ = unsafe { sys::sys(libc::SYS_nanosleep, args!(ts.as_ptr(), 0)) };
}
