//! Process and thread attributes the kernel keeps besides memory,
//! descriptors and credentials (issue 12): `prctl` state and
//! `oom_score_adj`, added in format 1.4 as `Minor4::procattrs`.
//!
//! Process-wide: THP disable, dumpable, child subreaper, `oom_score_adj`.
//! Per thread (the kernel keeps them per task): timer slack and the
//! parent-death signal. (`no_new_privs` is in `Credentials`, the thread
//! name in `ThreadState`.)

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
}

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
    /// threads, if they are.
    pub fn check(&self, threads: usize) -> Result<(), String> {
        if let Some(p) = &self.process {
            if p.dumpable > 1 {
                return Err(format!("dumpable is {}", p.dumpable));
            }
            if !(-1000..=1000).contains(&p.oom_score_adj) {
                return Err(format!("oom_score_adj is {}", p.oom_score_adj));
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
        }
    }

    const ONE: ThreadAttrs = ThreadAttrs {
        timer_slack_ns: 50_000,
        pdeath_signal: 0,
    };

    #[test]
    fn consistent_records_pass() {
        assert!(ProcAttrs::default().check(3).is_ok());
        assert!(attrs(&[ONE, ONE]).check(2).is_ok());
        assert!(attrs(&[]).check(2).is_ok());
    }

    #[test]
    fn each_inconsistency_is_named() {
        let mut a = attrs(&[ONE]);
        a.process.as_mut().unwrap().dumpable = 2;
        assert_eq!(a.check(1).unwrap_err(), "dumpable is 2");
        let mut a = attrs(&[ONE]);
        a.process.as_mut().unwrap().oom_score_adj = -1001;
        assert_eq!(a.check(1).unwrap_err(), "oom_score_adj is -1001");
        assert_eq!(
            attrs(&[ONE]).check(2).unwrap_err(),
            "1 thread attribute records for 2 threads"
        );
        let bad = ThreadAttrs {
            pdeath_signal: 65,
            ..ONE
        };
        assert_eq!(
            attrs(&[bad]).check(1).unwrap_err(),
            "thread 0 has parent-death signal 65"
        );
        let bad = ThreadAttrs {
            timer_slack_ns: 0,
            ..ONE
        };
        assert!(attrs(&[bad]).check(1).is_err());
        let a = ProcAttrs {
            process: None,
            threads: Cow::Owned(alloc::vec![ONE]),
        };
        assert!(a.check(1).is_err());
    }
}
