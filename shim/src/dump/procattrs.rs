//! `prctl` state, `oom_score_adj` and `mlockall`'s future flags (see
//! `dumpfmt::procattrs`, `dump::mlockall`).
//! Runs in the signal handler: the `dump` module's rules hold (raw
//! system calls, no heap, no panics).
//!
//! Per-mapping state (`madvise`, `mlock`) is read from the `VmFlags` of
//! `/proc/self/smaps`, for the parts of each area that the image's own
//! mappings cover (the kernel's keep theirs, the dump's own are left out).
//!
//! A process that made itself not dumpable (`PR_SET_DUMPABLE` 0) has its
//! `/proc/self/pagemap` and `mem` owned by root: the dump reads them with
//! the flag set to 1 for its own duration ([`Dumpable`]), after recording
//! the program's value.

use dumpfmt::{Backing, Mapping, MappingAttrs, ProcessAttrs, ThreadAttrs};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::dump::maps;
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
        mlockall: crate::dump::mlockall::future()?,
    })
}

/// Most bytes of `/proc/self/smaps` read (address space of the arena,
/// touched only as far as the file goes).
const SMAPS_BUF: usize = 128 << 20;

/// The `madvise`/`mlock` state of the image's `mappings` (sorted), from
/// `/proc/self/smaps`: ranges with any flag, sorted, neighbours with the
/// same flags merged.
pub fn mappings<'a>(arena: &'a Arena, image: &[Mapping<'_>]) -> Result<&'a [MappingAttrs], Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let buf = arena.bytes(SMAPS_BUF).ok_or_else(no_mem)?;
    let n = sys::read_file(b"/proc/self/smaps\0", buf)
        .map_err(|e| Fail::new("cannot read /proc/self/smaps").errno(e))?;
    let buf: &[u8] = buf;
    let mut out = arena
        .vec::<MappingAttrs>(image.len() + 1)
        .ok_or_else(no_mem)?;
    let mut area = None;
    for line in maps::lines(buf.get(..n).unwrap_or(&[])) {
        if let Some(m) = maps::parse_line(line) {
            area = Some((m.start, m.end));
            continue;
        }
        let (Some((start, end)), Some(words)) = (area, line.strip_prefix(b"VmFlags:")) else {
            continue;
        };
        let flags = vm_flags(words);
        if flags == 0 {
            continue;
        }
        let first = image.partition_point(|m| m.end <= start);
        for m in image.get(first..).unwrap_or(&[]) {
            if m.start >= end {
                break;
            }
            if m.backing == Backing::Kernel {
                continue;
            }
            let (from, to) = (m.start.max(start), m.end.min(end));
            match out.last_mut() {
                Some(last) if last.end == from && last.flags == flags => last.end = to,
                _ => {
                    out.push(MappingAttrs {
                        start: from,
                        end: to,
                        flags,
                    })
                    .map_err(|_| no_mem())?;
                }
            }
        }
    }
    Ok(out.into_slice())
}

/// The `MAP_*` bits of a `VmFlags` line's words.
fn vm_flags(words: &[u8]) -> u8 {
    let mut flags = 0;
    for w in words.split(|&c| c == b' ').filter(|w| w.len() == 2) {
        for (bit, name) in dumpfmt::procattrs::MAP_FLAG_NAMES.iter().enumerate() {
            if w == *name {
                flags |= 1 << bit;
            }
        }
    }
    flags
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
    fn reads_vm_flags() {
        use dumpfmt::procattrs::*;
        assert_eq!(super::vm_flags(b" rd wr mr mw me ac sd "), 0);
        assert_eq!(
            super::vm_flags(b" rd wr mr mw me dc ac sd wf dd lo lf nh mg"),
            MAP_DONTFORK
                | MAP_WIPEONFORK
                | MAP_DONTDUMP
                | MAP_LOCKED
                | MAP_LOCKONFAULT
                | MAP_NOHUGEPAGE
                | MAP_MERGEABLE
        );
        assert_eq!(super::vm_flags(b" hg"), MAP_HUGEPAGE);
    }

    #[test]
    fn parses_oom_score_adj() {
        assert_eq!(parse_signed(b"0\n"), Some(0));
        assert_eq!(parse_signed(b"-1000\n"), Some(-1000));
        assert_eq!(parse_signed(b"500\n"), Some(500));
        assert_eq!(parse_signed(b"x\n"), None);
    }
}
