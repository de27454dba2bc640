//! A signal sent to the whole process group of a restored program reaches
//! each restored process once (issue 9, item 7).
//!
//! The supervisor, the namespace's init and every restored process share
//! the process group the relaunch was started in (the shell's job), so a
//! signal to that group (`kill -TERM -PGID`, Ctrl-C, Ctrl-Z) reaches each
//! of them directly; the supervisor must then not forward its own copy,
//! while a signal sent to the supervisor's PID alone must still reach the
//! restored root. The kernel's `siginfo` does not tell the two apart
//! (`SI_USER` either way; only the terminal's are `SI_KERNEL`), so init
//! serves as the witness:
//!
//! - init keeps every signal blocked and never takes one itself, so a
//!   signal sent to the group stays pending in init (`ShdPnd` in
//!   `/proc/INIT/status`);
//! - the kernel signals a group's members newest first (`kill_pgrp`
//!   walks the group's list, to which `fork` adds at the head), and init
//!   is newer than the supervisor: by the time the supervisor's handler
//!   runs, init already has the signal pending;
//! - the supervisor's handler ([`reached_the_group`]) looks: pending in
//!   init means the group got it, and the supervisor does not forward it;
//!   it then asks init to take that signal ([`drain_loop`], a byte
//!   through a pipe) and waits until init has, so that the next signal
//!   is judged afresh. Otherwise the signal was the supervisor's alone,
//!   and it forwards it to the restored root directly (init no longer
//!   forwards anything).
//!
//! Terminal job control: Ctrl-C and Ctrl-Z reach every member directly
//! and once; the members stay in the terminal's foreground group, so a
//! restored foreground program still reads the terminal. On a stop from
//! the group (`SIGTSTP`, `SIGTTIN`, `SIGTTOU`) the supervisor stops too,
//! with that signal, once the root has stopped ([`follow_stop`]), so that the shell, which
//! waits for the supervisor, sees its job stopped; the shell's `SIGCONT`
//! to the group continues everyone.
//!
//! # Rules
//!
//! [`reached_the_group`], [`root_of`] and [`follow_stop`] run in the
//! supervisor's signal handler: raw system calls only, no heap, no locks.
//! [`drain_loop`] runs in a thread of init.

use core::sync::atomic::{AtomicI32, Ordering::Relaxed};

use crate::sys::{self, args, line::Line};

/// The restored root's PID, as the supervisor sees it (0: not known yet).
static ROOT: AtomicI32 = AtomicI32::new(0);

/// How long the supervisor waits for init to take a signal, or for the
/// root to stop.
const WAIT_NS: u64 = 1_000_000_000;

/// Whether signal `sig` is pending, unblocked by init's choice, in
/// process `init` (its own or its process's set).
fn pending_in(init: i32, sig: i32) -> bool {
    let mut path = Line::<64>::new();
    path.str("/proc/").dec(init as u64).str("/status");
    let Some(p) = path.c_str() else { return false };
    let mut buf = [0u8; 4096];
    let Ok(n) = sys::read_file(p, &mut buf) else {
        return false;
    };
    let bit = 1u64 << ((sig - 1) & 63);
    buf[..n]
        .split(|&c| c == b'\n')
        .filter(|l| l.starts_with(b"SigPnd:") || l.starts_with(b"ShdPnd:"))
        .filter_map(|l| {
            let hex = &l[7..];
            let at = hex.iter().position(|c| !c.is_ascii_whitespace())?;
            sys::parse_hex(&hex[at..])
        })
        .any(|mask| mask & bit != 0)
}

/// In the supervisor's handler: whether `sig` went to the whole process
/// group (init has it pending). If so, has init take it (through `drain`,
/// the pipe's write end) and waits until it has.
pub fn reached_the_group(init: i32, sig: i32, drain: i32) -> bool {
    if init <= 0 || !pending_in(init, sig) {
        return false;
    }
    let byte = [sig as u8];
    // SAFETY: writing one byte from our stack to our pipe.
    let _ = unsafe { sys::sys(libc::SYS_write, args!(drain, byte.as_ptr(), 1)) };
    let deadline = sys::monotonic_ns() + WAIT_NS;
    while pending_in(init, sig) && sys::monotonic_ns() < deadline {
        sleep_ns(100_000);
    }
    true
}

/// The restored root (init's first child), found once.
pub fn root_of(init: i32) -> i32 {
    let known = ROOT.load(Relaxed);
    if known > 0 || init <= 0 {
        return known;
    }
    let mut path = Line::<64>::new();
    path.str("/proc/")
        .dec(init as u64)
        .str("/task/")
        .dec(init as u64)
        .str("/children");
    let Some(p) = path.c_str() else { return 0 };
    let mut buf = [0u8; 256];
    let Ok(n) = sys::read_file(p, &mut buf) else {
        return 0;
    };
    let root = buf[..n]
        .split(|&c| c == b' ' || c == b'\n')
        .find_map(sys::parse_dec)
        .unwrap_or(0) as i32;
    if root > 0 {
        ROOT.store(root, Relaxed);
    }
    root
}

/// After a stop signal that reached the group: once the root has stopped
/// (it may handle the signal and not stop), stops the supervisor too.
pub fn follow_stop(init: i32, sig: i32) {
    if !matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
        return;
    }
    let root = root_of(init);
    if root <= 0 {
        return;
    }
    let deadline = sys::monotonic_ns() + WAIT_NS;
    while sys::monotonic_ns() < deadline {
        if crate::tree::children::state_of(root) == Some(b'T') {
            // With the same signal: the shell tells a Ctrl-Z from a SIGSTOP.
            crate::tree::members::stop_with(sig as u8);
            return;
        }
        sleep_ns(1_000_000);
    }
}

/// In init, on a thread of its own: takes each signal the supervisor
/// names through the pipe `drain` (read end) once it has seen it pending.
/// Init keeps every signal blocked, so taking one is all that happens.
pub fn drain_loop(drain: i32) {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reading one byte into our buffer from our pipe.
        match unsafe { sys::sys(libc::SYS_read, args!(drain, byte.as_mut_ptr(), 1)) } {
            Ok(1) => {}
            Err(sys::Errno(libc::EINTR)) => continue,
            _ => return,
        }
        let sig = i32::from(byte[0]);
        if !(1..=64).contains(&sig) {
            continue;
        }
        let set = 1u64 << (sig - 1);
        let zero = [0i64; 2];
        // SAFETY: a set, no siginfo, a zero timeout: returns at once.
        let _ = unsafe {
            sys::sys(
                libc::SYS_rt_sigtimedwait,
                args!(&set as *const u64, 0u64, zero.as_ptr(), 8),
            )
        };
    }
}

fn sleep_ns(ns: u64) {
    let ts = [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64];
    // SAFETY: nanosleep reads one struct timespec; no remainder.
    let _ = unsafe { sys::sys(libc::SYS_nanosleep, args!(ts.as_ptr(), 0)) };
}
