//! Tree members the kernel keeps more than memory for (issue 9): children
//! that exited and were not waited for (zombies), and a process that was
//! stopped (state `T`) at the dump.
//!
//! A zombie has no section of its own: its parent records it
//! ([`Members::zombies`]), and the restore forks it with its PID and lets
//! it end at once the way it ended, so that the parent's `wait` returns
//! its status. A stopped member records its own stop ([`Members::stop`]);
//! its restore comes back stopped, and its parent sees the stop report
//! again only if it had not taken it before the dump.

use alloc::borrow::Cow;
use serde::{Deserialize, Serialize};

/// This process's part of `Minor3` (format 1.3): what the kernel holds
/// about its children's and its own run state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Members<'a> {
    /// Its children that had exited and were not waited for, sorted by
    /// PID without repeats.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub zombies: Cow<'a, [Zombie]>,
    /// Whether it was stopped at the dump, and how.
    pub stop: Option<Stop>,
}

/// How a zombie child ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Zombie {
    pub pid: u32,
    /// `true`: killed by signal `status`; `false`: exited with code
    /// `status` (0 to 255).
    pub killed: bool,
    pub status: u8,
    /// Its process group and session (a zombie keeps them).
    pub pgid: u32,
    pub sid: u32,
}

/// A stopped process (state `T`, not by a tracer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stop {
    /// The signal that stopped it (`SIGSTOP`, `SIGTSTP`, `SIGTTIN`,
    /// `SIGTTOU`), when its parent could still read the stop report; 0
    /// when unknown (the report was taken).
    pub signal: u8,
    /// The parent had not yet taken the stop report (`waitpid` with
    /// `WUNTRACED` would have returned it): the restored parent gets it.
    pub reported: bool,
}

impl Members<'_> {
    /// Why these records are inconsistent, if they are.
    pub fn check(&self, pid: u32) -> Result<(), alloc::string::String> {
        let mut prev = 0u32;
        for z in self.zombies.iter() {
            if z.pid == 0 || z.pid <= prev || z.pid == pid {
                return Err(alloc::format!(
                    "zombie child {} is out of order, repeated or this process",
                    z.pid
                ));
            }
            if z.killed && (z.status == 0 || z.status > 64) {
                return Err(alloc::format!(
                    "zombie child {} was killed by signal {}",
                    z.pid,
                    z.status
                ));
            }
            prev = z.pid;
        }
        if let Some(s) = self.stop
            && s.signal > 64
        {
            return Err(alloc::format!("stopped by signal {}", s.signal));
        }
        Ok(())
    }
}
