//! Process and thread attributes the kernel keeps besides memory,
//! descriptors and credentials (issue 12): `prctl` state and
//! `oom_score_adj`, added in format 1.4 as `Minor4::procattrs`.
//!
//! Process-wide: THP disable, dumpable, child subreaper, `oom_score_adj`,
//! `mlockall(MCL_FUTURE)` (with or without `MCL_ONFAULT`).
//! Per thread (the kernel keeps them per task): timer slack and the
//! parent-death signal. (`no_new_privs` is in `Credentials`, the thread
//! name in `ThreadState`.) Per mapping: the `madvise` and `mlock` state
//! `/proc/self/smaps` shows in `VmFlags`.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use serde::{Deserialize, Serialize};

/// `Minor4::procattrs`: empty (`process` `None`) in an image whose dump
/// did not record them; its restore leaves them as the relaunch has them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcAttrs<'a> {
    pub process: Option<ProcessAttrs>,
    /// One per thread, in the order of `Image::threads` (or none).
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub threads: Cow<'a, [ThreadAttrs]>,
    /// Ranges of the image's mappings (not the kernel's) with any of the
    /// `MAP_*` flags below, sorted by address, not overlapping.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub mappings: Cow<'a, [MappingAttrs]>,
}

/// `MADV_DONTFORK` (`dc` in `VmFlags`).
pub const MAP_DONTFORK: u8 = 1;
/// `MADV_DONTDUMP` (`dd`).
pub const MAP_DONTDUMP: u8 = 2;
/// `MADV_WIPEONFORK` (`wf`).
pub const MAP_WIPEONFORK: u8 = 4;
/// `MADV_HUGEPAGE` (`hg`).
pub const MAP_HUGEPAGE: u8 = 8;
/// `MADV_NOHUGEPAGE` (`nh`).
pub const MAP_NOHUGEPAGE: u8 = 16;
/// `MADV_MERGEABLE` (`mg`).
pub const MAP_MERGEABLE: u8 = 32;
/// `mlock` (`lo`).
pub const MAP_LOCKED: u8 = 64;
/// `mlock2(MLOCK_ONFAULT)` (`lf`, with `lo`).
pub const MAP_LOCKONFAULT: u8 = 128;

/// The `VmFlags` two-letter names of the `MAP_*` flags, in bit order.
pub const MAP_FLAG_NAMES: [&[u8; 2]; 8] = [b"dc", b"dd", b"wf", b"hg", b"nh", b"mg", b"lo", b"lf"];

/// Per-mapping state of one address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MappingAttrs {
    pub start: u64,
    pub end: u64,
    /// `MAP_*` bits, never 0.
    pub flags: u8,
}

/// What `prctl` and `/proc/self/oom_score_adj` report for the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessAttrs {
    /// `PR_GET_THP_DISABLE`.
    pub thp_disable: bool,
    /// `PR_GET_DUMPABLE`: 0 or 1 (2, `suid_dumpable`, cannot be set back
    /// with `prctl` and fails the dump).
    pub dumpable: u8,
    /// `PR_GET_CHILD_SUBREAPER`.
    pub child_subreaper: bool,
    /// `/proc/self/oom_score_adj`, -1000 to 1000.
    pub oom_score_adj: i16,
    /// What `mlockall` left for mappings to come: 0, [`MCL_FUTURE`], or
    /// `MCL_FUTURE | MCL_ONFAULT` (`MCL_CURRENT` is no lasting state: the
    /// mappings it locked carry [`MAP_LOCKED`]).
    pub mlockall: u8,
}

/// `mlockall(MCL_FUTURE)`: every mapping made later is locked.
pub const MCL_FUTURE: u8 = 2;
/// `MCL_ONFAULT` with `MCL_FUTURE`: locked as its pages are touched.
pub const MCL_ONFAULT: u8 = 4;

/// What `prctl` reports for one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ThreadAttrs {
    /// `PR_GET_TIMERSLACK`, nanoseconds.
    pub timer_slack_ns: u64,
    /// `PR_GET_PDEATHSIG`: 0 or a signal number.
    pub pdeath_signal: u8,
}

impl ProcAttrs<'_> {
    /// Why these records are inconsistent with an image of `threads`
    /// threads and these `mappings`, if they are.
    pub fn check(&self, threads: usize, mappings: &[crate::Mapping<'_>]) -> Result<(), String> {
        if let Some(p) = &self.process {
            if p.dumpable > 1 {
                return Err(format!("dumpable is {}", p.dumpable));
            }
            if !(-1000..=1000).contains(&p.oom_score_adj) {
                return Err(format!("oom_score_adj is {}", p.oom_score_adj));
            }
            if ![0, MCL_FUTURE, MCL_FUTURE | MCL_ONFAULT].contains(&p.mlockall) {
                return Err(format!("mlockall flags are {:#x}", p.mlockall));
            }
        } else if !self.threads.is_empty() {
            return Err("thread attributes without process attributes".into());
        }
        if !self.threads.is_empty() && self.threads.len() != threads {
            return Err(format!(
                "{} thread attribute records for {threads} threads",
                self.threads.len()
            ));
        }
        let mut prev_end = 0u64;
        for (i, m) in self.mappings.iter().enumerate() {
            if m.start % crate::PAGE_SIZE != 0
                || m.end % crate::PAGE_SIZE != 0
                || m.start >= m.end
                || m.start < prev_end
            {
                return Err(format!(
                    "mapping attributes {i} at {:#x}-{:#x} are unaligned, empty or out of order",
                    m.start, m.end
                ));
            }
            prev_end = m.end;
            if !covered(m.start, m.end, mappings) {
                return Err(format!(
                    "mapping attributes {i} at {:#x}-{:#x} are not all in the image's own mappings",
                    m.start, m.end
                ));
            }
            let both_huge = MAP_HUGEPAGE | MAP_NOHUGEPAGE;
            if m.flags == 0
                || m.flags & both_huge == both_huge
                || m.flags & MAP_LOCKONFAULT != 0 && m.flags & MAP_LOCKED == 0
            {
                return Err(format!(
                    "mapping attributes {i} at {:#x} have flags {:#x}",
                    m.start, m.flags
                ));
            }
        }
        for (i, t) in self.threads.iter().enumerate() {
            if t.pdeath_signal > 64 {
                return Err(format!(
                    "thread {i} has parent-death signal {}",
                    t.pdeath_signal
                ));
            }
            if t.timer_slack_ns == 0 {
                return Err(format!("thread {i} has a timer slack of 0"));
            }
        }
        Ok(())
    }
}

/// Whether `start..end` lies within `mappings` (sorted, not
/// overlapping) that are not the kernel's, without a gap.
fn covered(start: u64, end: u64, mappings: &[crate::Mapping<'_>]) -> bool {
    let first = mappings.partition_point(|m| m.end <= start);
    let mut at = start;
    for m in &mappings[first..] {
        if at >= end {
            break;
        }
        if m.start > at || m.backing == crate::Backing::Kernel {
            return false;
        }
        at = m.end;
    }
    at >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(threads: &[ThreadAttrs]) -> ProcAttrs<'static> {
        ProcAttrs {
            process: Some(ProcessAttrs {
                dumpable: 1,
                ..Default::default()
            }),
            threads: Cow::Owned(threads.to_vec()),
            mappings: Cow::Borrowed(&[]),
        }
    }

    fn anon(start: u64, end: u64) -> crate::Mapping<'static> {
        crate::Mapping {
            start,
            end,
            prot: crate::PROT_READ,
            shared: false,
            offset: 0,
            backing: crate::Backing::Anonymous,
            name: Cow::Borrowed(""),
        }
    }

    fn ranges(m: &[MappingAttrs]) -> ProcAttrs<'static> {
        ProcAttrs {
            mappings: Cow::Owned(m.to_vec()),
            ..attrs(&[])
        }
    }

    #[test]
    fn mapping_ranges_are_checked() {
        let r = |start: u64, end: u64, flags: u8| MappingAttrs { start, end, flags };
        let ok = [
            r(0x1000, 0x3000, MAP_DONTFORK),
            r(0x3000, 0x4000, MAP_LOCKED | MAP_LOCKONFAULT),
        ];
        assert!(
            ranges(&ok)
                .check(0, &[anon(0x1000, 0x2000), anon(0x2000, 0x5000)])
                .is_ok()
        );
        // Not in a mapping, or across a gap.
        assert!(ranges(&ok).check(0, &[anon(0x1000, 0x3000)]).is_err());
        assert!(
            ranges(&ok)
                .check(0, &[anon(0x1000, 0x2000), anon(0x2800, 0x4000)])
                .is_err()
        );
        for bad in [
            [
                r(0x1000, 0x3000, MAP_DONTFORK),
                r(0x2000, 0x4000, MAP_DONTDUMP),
            ],
            [
                r(0x1000, 0x1000, MAP_DONTFORK),
                r(0x2000, 0x4000, MAP_DONTDUMP),
            ],
            [
                r(0x1001, 0x2000, MAP_DONTFORK),
                r(0x2000, 0x4000, MAP_DONTDUMP),
            ],
            [r(0x1000, 0x2000, 0), r(0x2000, 0x4000, MAP_DONTDUMP)],
            [
                r(0x1000, 0x2000, MAP_HUGEPAGE | MAP_NOHUGEPAGE),
                r(0x2000, 0x4000, MAP_DONTDUMP),
            ],
            [
                r(0x1000, 0x2000, MAP_LOCKONFAULT),
                r(0x2000, 0x4000, MAP_DONTDUMP),
            ],
        ] {
            assert!(
                ranges(&bad).check(0, &[anon(0, 0x10000)]).is_err(),
                "{bad:?}"
            );
        }
    }

    const ONE: ThreadAttrs = ThreadAttrs {
        timer_slack_ns: 50_000,
        pdeath_signal: 0,
    };

    #[test]
    fn consistent_records_pass() {
        assert!(ProcAttrs::default().check(3, &[]).is_ok());
        assert!(attrs(&[ONE, ONE]).check(2, &[]).is_ok());
        assert!(attrs(&[]).check(2, &[]).is_ok());
    }

    #[test]
    fn each_inconsistency_is_named() {
        let mut a = attrs(&[ONE]);
        a.process.as_mut().unwrap().dumpable = 2;
        assert_eq!(a.check(1, &[]).unwrap_err(), "dumpable is 2");
        let mut a = attrs(&[ONE]);
        a.process.as_mut().unwrap().oom_score_adj = -1001;
        assert_eq!(a.check(1, &[]).unwrap_err(), "oom_score_adj is -1001");
        for bad in [1, MCL_ONFAULT, MCL_FUTURE | 1, 8] {
            let mut a = attrs(&[ONE]);
            a.process.as_mut().unwrap().mlockall = bad;
            assert_eq!(
                a.check(1, &[]).unwrap_err(),
                format!("mlockall flags are {bad:#x}")
            );
        }
        assert_eq!(
            attrs(&[ONE]).check(2, &[]).unwrap_err(),
            "1 thread attribute records for 2 threads"
        );
        let bad = ThreadAttrs {
            pdeath_signal: 65,
            ..ONE
        };
        assert_eq!(
            attrs(&[bad]).check(1, &[]).unwrap_err(),
            "thread 0 has parent-death signal 65"
        );
        let bad = ThreadAttrs {
            timer_slack_ns: 0,
            ..ONE
        };
        assert!(attrs(&[bad]).check(1, &[]).is_err());
        let a = ProcAttrs {
            process: None,
            threads: Cow::Owned(alloc::vec![ONE]),
            mappings: Cow::Borrowed(&[]),
        };
        assert!(a.check(1, &[]).is_err());
    }
}
