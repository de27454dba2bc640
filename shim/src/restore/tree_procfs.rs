//! Whose procfs file a descriptor is, at the restore (issue 12): the
//! process's own, or, in a tree, another member's (an ancestor's, as
//! `tree::procfs` allows at the dump). A tree keeps its PIDs (inside the
//! restore's PID namespace), so another member's file is
//! `/proc/<its pid>/...` again, that process now restored; the process's
//! own is `/proc/<getpid()>/...` (a single image restored without the
//! namespace has another PID).
//!
//! Runs in the constructor, before teardown, with libc.

use dumpfmt::{Fd, FdKind, Image};

/// The PID in the path of `fd` (a procfs record), as the dump saw it.
pub fn recorded(fd: &Fd<'_>) -> Option<u32> {
    let path = match &fd.kind {
        FdKind::File { path, .. } | FdKind::Dir { path, .. } => path.as_ref(),
        _ => "",
    };
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|n| n.parse::<u32>().ok())
}

/// The PID whose procfs file `fd` (a procfs record) is, as it is now.
pub fn whose(image: &Image<'_>, fd: &Fd<'_>) -> i32 {
    match recorded(fd) {
        Some(pid) if pid != image.pid => pid as i32,
        // SAFETY: no arguments.
        _ => unsafe { libc::getpid() },
    }
}
