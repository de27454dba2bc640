//! Signals the kernel had queued at the dump, with their full `siginfo`
//! (added in 1.4, the `signals` field of [`crate::Minor4`]): real-time
//! signals queued with `sigqueue` values, several of one number, and
//! standard ones, pending for the whole process or for one thread. The
//! restore queues each again where it was, in the same order, so the
//! program takes exactly what it would have. The same group of issue 12
//! brings back the file locks the process holds ([`FileLock`]).

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
    /// The file locks the process holds, by descriptor, in order of `fd`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub locks: Cow<'a, [FileLock]>,
}

/// A lock the process holds on a file, taken again through descriptor
/// `fd` (a `File` or `Dir` of `Image::fds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileLock {
    pub fd: i32,
    /// [`LOCK_FLOCK`], [`LOCK_POSIX`] or [`LOCK_OFD`].
    pub kind: u8,
    /// A write (exclusive) lock; else a read (shared) one.
    pub write: bool,
    /// First byte (0 for `flock`).
    pub start: u64,
    /// Last byte, [`LOCK_TO_EOF`] for a lock to the end of the file (and
    /// for `flock`).
    pub end: u64,
}

/// `flock(2)`: the open file description's.
pub const LOCK_FLOCK: u8 = 0;
/// A POSIX record lock (`F_SETLK`): the process's.
pub const LOCK_POSIX: u8 = 1;
/// An open file description lock (`F_OFD_SETLK`).
pub const LOCK_OFD: u8 = 2;
/// `FileLock::end` of a lock that reaches the end of the file.
pub const LOCK_TO_EOF: u64 = u64::MAX;

impl crate::bounded::Element for FileLock {
    const WHAT: &'static str = "file locks";
    const MIN_ENCODED_LEN: usize = 5;
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
    /// Why these records are inconsistent with an image whose threads are
    /// `tids` and descriptors `fds`, if they are.
    pub fn check(&self, tids: &[u32], fds: &[crate::Fd<'_>]) -> Result<(), String> {
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
        for (i, l) in self.locks.iter().enumerate() {
            if l.fd < 0 || l.kind > LOCK_OFD || l.start > l.end {
                return Err(format!("file lock {i} (fd {}) is malformed", l.fd));
            }
            if i > 0 && self.locks[i - 1].fd > l.fd {
                return Err(format!("file lock {i} (fd {}) is out of order", l.fd));
            }
            let kind = fds.iter().find(|f| f.fd == l.fd).map(|f| &f.kind);
            if !matches!(
                kind,
                Some(crate::FdKind::File { .. } | crate::FdKind::Dir { .. })
            ) {
                return Err(format!(
                    "file lock {i} is on fd {}, not a file or directory of the image",
                    l.fd
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
    fn file_lock_min_encoded_len_is_a_real_encoding() {
        let len = postcard::to_allocvec(&FileLock::default()).unwrap().len();
        assert_eq!(len, FileLock::MIN_ENCODED_LEN);
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
            ..Signals::default()
        };
        assert!(ok.check(&[5, 7], &[]).is_ok());
        assert!(ok.check(&[5], &[]).is_err());
        q.info[0] = 9;
        let kill = Signals {
            queued: Cow::Owned(alloc::vec![q]),
            ..Signals::default()
        };
        assert!(kill.check(&[5], &[]).is_err());
    }
}
