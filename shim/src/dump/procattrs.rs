//! `prctl` state and `oom_score_adj` (see `dumpfmt::procattrs`).
//! Runs in the signal handler: the `dump` module's rules hold (raw
//! system calls, no heap, no panics).
//!
//! A process that made itself not dumpable (`PR_SET_DUMPABLE` 0) has its
//! `/proc/self/pagemap` and `mem` owned by root: the dump reads them with
//! the flag set to 1 for its own duration ([`Dumpable`]), after recording
//! the program's value.

use dumpfmt::{ProcessAttrs, ThreadAttrs};

use crate::dump::Fail;
use crate::sys::{self, args};

pub const PR_SET_PDEATHSIG: u64 = 1;
const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
pub const PR_SET_DUMPABLE: u64 = 4;
const PR_GET_TIMERSLACK: u64 = 30;
const PR_GET_CHILD_SUBREAPER: u64 = 37;
const PR_GET_THP_DISABLE: u64 = 42;

fn prctl(op: u64) -> Result<u64, sys::Errno> {
    // SAFETY: the operations used here take or return integers only.
    unsafe { sys::sys(sys::SYS_prctl, args!(op, 0, 0, 0, 0)) }
}

fn prctl_into(op: u64) -> Result<u64, sys::Errno> {
    let mut v: i32 = 0;
    // SAFETY: these operations write one int to the address given.
    unsafe { sys::sys(sys::SYS_prctl, args!(op, &mut v as *mut i32, 0, 0, 0)) }?;
    Ok(v as u32 as u64)
}

/// The calling thread's attributes.
pub fn thread() -> ThreadAttrs {
    ThreadAttrs {
        timer_slack_ns: prctl(PR_GET_TIMERSLACK).unwrap_or(50_000).max(1),
        pdeath_signal: prctl_into(PR_GET_PDEATHSIG).unwrap_or(0) as u8,
    }
}

/// The process's attributes.
pub fn process() -> Result<ProcessAttrs, Fail> {
    let fail = |what: &'static str| move |e| Fail::new(what).errno(e);
    let dumpable = prctl(PR_GET_DUMPABLE).map_err(fail("cannot read PR_GET_DUMPABLE"))?;
    if dumpable > 1 {
        return Err(Fail::new(
            "the process is dumpable only as root (PR_GET_DUMPABLE 2, set by suid_dumpable): a restore could not set that back",
        ));
    }
    let mut buf = [0u8; 32];
    let n = sys::read_file(b"/proc/self/oom_score_adj\0", &mut buf)
        .map_err(fail("cannot read /proc/self/oom_score_adj"))?;
    let oom_score_adj = parse_signed(buf.get(..n).unwrap_or(&[]))
        .filter(|v| (-1000..=1000).contains(v))
        .ok_or_else(|| Fail::new("cannot parse /proc/self/oom_score_adj"))?;
    Ok(ProcessAttrs {
        thp_disable: prctl(PR_GET_THP_DISABLE).map_err(fail("cannot read PR_GET_THP_DISABLE"))?
            != 0,
        dumpable: dumpable as u8,
        child_subreaper: prctl_into(PR_GET_CHILD_SUBREAPER)
            .map_err(fail("cannot read PR_GET_CHILD_SUBREAPER"))?
            != 0,
        oom_score_adj: oom_score_adj as i16,
    })
}

fn parse_signed(text: &[u8]) -> Option<i64> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    match text.strip_prefix(b"-") {
        Some(digits) => sys::parse_dec(digits).map(|v| -(v as i64)),
        None => sys::parse_dec(text).map(|v| v as i64),
    }
}

/// Keeps the process dumpable while the dump reads its own procfs files;
/// puts the program's 0 back when dropped.
pub struct Dumpable {
    was_off: bool,
}

impl Dumpable {
    pub fn on(attrs: &ProcessAttrs) -> Dumpable {
        let was_off = attrs.dumpable == 0;
        if was_off {
            // SAFETY: PR_SET_DUMPABLE takes an integer.
            let _ = unsafe { sys::sys(sys::SYS_prctl, args!(PR_SET_DUMPABLE, 1, 0, 0, 0)) };
        }
        Dumpable { was_off }
    }
}

impl Drop for Dumpable {
    fn drop(&mut self) {
        if self.was_off {
            // SAFETY: PR_SET_DUMPABLE takes an integer.
            let _ = unsafe { sys::sys(sys::SYS_prctl, args!(PR_SET_DUMPABLE, 0, 0, 0, 0)) };
        }
    }
}

/// `prctl` operations the restore uses too.
pub mod ops {
    pub use super::{PR_SET_DUMPABLE, PR_SET_PDEATHSIG};
    pub const PR_SET_TIMERSLACK: u64 = 29;
    pub const PR_SET_CHILD_SUBREAPER: u64 = 36;
    pub const PR_SET_THP_DISABLE: u64 = 41;
}

#[cfg(test)]
mod tests {
    use super::parse_signed;

    #[test]
    fn parses_oom_score_adj() {
        assert_eq!(parse_signed(b"0\n"), Some(0));
        assert_eq!(parse_signed(b"-1000\n"), Some(-1000));
        assert_eq!(parse_signed(b"500\n"), Some(500));
        assert_eq!(parse_signed(b"x\n"), None);
    }
}
