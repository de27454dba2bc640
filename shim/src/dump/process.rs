//! Process-wide state besides memory and descriptors: working directory,
//! umask, personality, resource limits, interval timers, pending signals.
//! Runs in the signal handler: the `dump` module's rules hold.

use std::borrow::Cow;

use dumpfmt::ProcessState;

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::procfields::line_field;
use crate::sys::{self, args};

pub fn collect(arena: &Arena) -> Result<ProcessState<'_>, Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let cwd_buf = arena.bytes(4096).ok_or_else(no_mem)?;
    let n = sys::readlink(b"/proc/self/cwd\0", cwd_buf)
        .map_err(|e| Fail::new("cannot read /proc/self/cwd").errno(e))?;
    let cwd_buf: &[u8] = cwd_buf;
    let cwd = core::str::from_utf8(&cwd_buf[..n])
        .map_err(|_| Fail::new("the working directory's name is not UTF-8"))?;

    let mut status = [0u8; 4096];
    let n = sys::read_file(b"/proc/self/status\0", &mut status)
        .map_err(|e| Fail::new("cannot read /proc/self/status").errno(e))?;
    let status = &status[..n];
    let umask = line_field(status, b"Umask:", 8).unwrap_or(0o022) as u32;
    let pending = line_field(status, b"ShdPnd:", 16).unwrap_or(0);

    // SAFETY: personality(0xffffffff) only reports the current value.
    let personality = unsafe { sys::syscall6(libc::SYS_personality, args!(0xffff_ffffu32)) } as u64;

    let mut rlimits = arena.vec::<(u32, u64, u64)>(16).ok_or_else(no_mem)?;
    for res in 0..16u32 {
        let mut lim = [0u64; 2];
        // SAFETY: prlimit64 with a null new limit writes the old one into `lim`.
        if unsafe { sys::sys(libc::SYS_prlimit64, args!(0, res, 0, lim.as_mut_ptr())) }.is_ok() {
            let _ = rlimits.push((res, lim[0], lim[1]));
        }
    }

    let mut itimers = [(0u64, 0u64); 3];
    for (which, slot) in itimers.iter_mut().enumerate() {
        // struct itimerval: interval {sec, usec}, value {sec, usec}
        let mut v = [0i64; 4];
        // SAFETY: getitimer writes a struct itimerval.
        if unsafe { sys::sys(libc::SYS_getitimer, args!(which, v.as_mut_ptr())) }.is_ok() {
            let us = |s: i64, u: i64| {
                (s as u64)
                    .saturating_mul(1_000_000)
                    .saturating_add(u as u64)
            };
            *slot = (us(v[2], v[3]), us(v[0], v[1]));
        }
    }
    Ok(ProcessState {
        cwd: Cow::Borrowed(cwd),
        umask,
        personality,
        rlimits: Cow::Borrowed(rlimits.into_slice()),
        itimers,
        pending,
    })
}
