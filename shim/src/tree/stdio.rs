//! A member's standard input, output and error (issue 9).
//!
//! A single process's stdio is never recorded: the restore keeps the
//! relaunch's (the terminal, the new pipes). In a tree that holds for
//! the root, and for every member whose fd 0, 1 or 2 is the very open
//! file description the root's has (inherited: the restore's fork gives
//! it the relaunch's). A member whose stdio is something else (the pipe
//! a bash command substitution reads, the one a process substitution
//! feeds, a child's `dup2` of a pipe) has it recorded like any other
//! descriptor, and so comes back: a pipe to another member as the
//! tree's shared pipe.
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap,
//! no locks, no libc, no panics; raw system calls).

use crate::sys::{self, args};

/// Whether this process's descriptor `fd` (0, 1 or 2) is recorded: in a
/// tree dump, by a member (not the root) whose `fd` is open and is not
/// the root's `fd`'s description.
pub fn recorded(fd: i32) -> bool {
    if !(0..=2).contains(&fd) || !super::shared::in_tree() {
        return false;
    }
    let me = sys::getpid();
    let root = super::shared::root_of(me);
    if root == me {
        return false;
    }
    const KCMP_FILE: u64 = 0;
    // SAFETY: kcmp compares two descriptors of two processes; no memory.
    let same = unsafe { sys::sys(libc::SYS_kcmp, args!(me, root, KCMP_FILE, fd, fd)) };
    !matches!(same, Ok(0))
}
