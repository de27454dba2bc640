//! Signals the kernel had queued at the dump, with their full `siginfo`
//! (added in 1.4, the `signals` field of [`crate::Minor4`]): real-time
//! signals queued with `sigqueue` values, several of one number, and
//! standard ones, pending for the whole process or for one thread. The
//! restore queues each again where it was, in the same order, so the
//! program takes exactly what it would have.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use serde::{Deserialize, Serialize};

/// The queued signals of a process.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Signals<'a> {
    /// Every queued signal the dump took, per queue in the order the
    /// kernel gave them (lowest number first, each number first in first
    /// out): the process's queue, then each thread's.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub queued: Cow<'a, [QueuedSignal]>,
}

/// One queued signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueuedSignal {
    /// 0: pending for the process; else the TID of the thread it waits
    /// for (a `ThreadState::tid`).
    pub tid: u32,
    /// The kernel's 128-byte `siginfo_t` as `rt_sigtimedwait` returned
    /// it, as 16 native-endian words (`si_signo` is the low half of the
    /// first).
    pub info: [u64; 16],
}

/// The most queued signals an image holds (the dump stops at this many).
pub const MAX_QUEUED: usize = 8192;

impl crate::bounded::Element for QueuedSignal {
    const WHAT: &'static str = "queued signals";
    const MIN_ENCODED_LEN: usize = 17;
    const MAX_COUNT: usize = MAX_QUEUED;
}

impl QueuedSignal {
    /// Its signal number (`si_signo`).
    pub fn signo(&self) -> i32 {
        self.info[0] as u32 as i32
    }
}

impl Signals<'_> {
    /// Why these records are inconsistent with an image of the process
    /// `pid` whose threads are `tids`, if they are.
    pub fn check(&self, tids: &[u32]) -> Result<(), String> {
        for (i, q) in self.queued.iter().enumerate() {
            let sig = q.signo();
            // SIGKILL and SIGSTOP are never queued for a program to take.
            if !(1..=64).contains(&sig) || sig == 9 || sig == 19 {
                return Err(format!("queued signal {i} has number {sig}"));
            }
            if q.tid != 0 && !tids.contains(&q.tid) {
                return Err(format!(
                    "queued signal {i} waits for thread {}, not one of the image's",
                    q.tid
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounded::Element;

    #[test]
    fn min_encoded_len_is_a_real_encoding() {
        let q = QueuedSignal::default();
        let len = postcard::to_allocvec(&q).unwrap().len();
        assert_eq!(len, QueuedSignal::MIN_ENCODED_LEN);
    }

    #[test]
    fn check_refuses_bad_numbers_and_unknown_threads() {
        let mut q = QueuedSignal {
            tid: 0,
            ..QueuedSignal::default()
        };
        q.info[0] = 34;
        let ok = Signals {
            queued: Cow::Owned(alloc::vec![q, QueuedSignal { tid: 7, ..q }]),
        };
        assert!(ok.check(&[5, 7]).is_ok());
        assert!(ok.check(&[5]).is_err());
        q.info[0] = 9;
        let kill = Signals {
            queued: Cow::Owned(alloc::vec![q]),
        };
        assert!(kill.check(&[5]).is_err());
    }
}
