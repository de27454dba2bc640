//! procfs files of other processes at the dump (issue 12): in a tree
//! dump, a member may hold the procfs file of another member (a child
//! inherits its parent's `/proc/self/status`, or opens
//! `/proc/<parent>/...`). The restore keeps PIDs inside its namespace,
//! so such a file is reopened as the restored process's own
//! (`restore::tree_procfs`), provided that process exists when this one
//! opens it: its ancestors do (they fork it), its children and siblings
//! do not yet. A procfs file of a process outside the tree is refused.
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls).

use crate::sys;
use crate::tree::{children, shared};

/// Most generations looked up.
const MAX_DEPTH: usize = 64;

/// Whether the procfs file of process `pid` (from its path), held by
/// this process, can be saved: `Ok` for an ancestor of this process in
/// the tree being dumped, else why not.
pub fn of_ancestor(pid: Option<u64>) -> Result<(), &'static str> {
    if !shared::in_tree() {
        return Err("a procfs file of another process cannot be saved");
    }
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return Err("a procfs file of a process outside the tree cannot be saved");
    };
    let me = sys::getpid();
    let root = shared::root_of(me);
    let mut at = me;
    for _ in 0..MAX_DEPTH {
        if at == root {
            break;
        }
        match children::parent_and_state(at) {
            Some((parent, _)) if parent == pid => return Ok(()),
            Some((parent, _)) => at = parent,
            None => break,
        }
    }
    if shared::is_member(root, pid) {
        Err(
            "a procfs file of a member of the tree other than an ancestor cannot be saved (that process is restored after this one)",
        )
    } else {
        Err("a procfs file of a process outside the tree cannot be saved")
    }
}
