//! Tree members running another program than the root (issue 9): a bash
//! script's `sleep`, `sort` and `date`, the compilers `make -j` runs.
//!
//! Such a member is restored like any other: its parent forks it with its
//! PID, it takes its group, session and shared objects, and its restorer
//! replaces the whole address space with its section's. What the fork
//! still has of the root's program is its executable (`/proc/PID/exe`):
//! the restorer gives it the member's with `PR_SET_MM_MAP`'s `exe_fd`
//! (see `super::build_plan`), once the root's program is unmapped (the
//! kernel refuses to replace an executable still mapped), while the
//! restore still holds `CAP_SYS_RESOURCE` in its user namespace. Its
//! arguments, environment and auxiliary vector are its own memory and
//! `PR_SET_MM_MAP` fields, its name is its threads' (`PR_SET_NAME`): the
//! image holds them all.
//!
//! There is no `execve` (the design's first idea): nothing of the tree's
//! restore (the barrier, the shared objects made before the forks) has
//! to cross one, and the member's checks run with every other member's,
//! in the root, before anything is forked or torn down. Its executable is
//! checked there and opened: [`other_program`].
//!
//! Runs in the constructor, before teardown, with libc.

use std::fs::File;

use super::{Checked, Refusal, differs, exit, identity, refuse};

/// For a member whose program is not `root_exe` (the path the root's
/// image records; the root's is this process's, checked by
/// `super::wrapper::role`): its executable, present and unchanged since
/// the dump, held open in `c` for its restorer.
pub fn other_program(root_exe: &str, c: &mut Checked) -> Result<(), Refusal> {
    let image = &c.img.image;
    let path = &*image.exe.path;
    if path == root_exe {
        return Ok(());
    }
    let pid = image.pid;
    let file = File::open(path).map_err(|e| {
        refuse(
            exit::FILE_CHANGED,
            format!("pid {pid} of the tree: its executable {path}: {e}"),
        )
    })?;
    let now = identity(&file, path).map_err(|e| {
        refuse(
            exit::FILE_CHANGED,
            format!("pid {pid} of the tree: its executable {path}: {e}"),
        )
    })?;
    if let Some(why) = differs(&image.exe, &now) {
        return Err(refuse(
            exit::FILE_CHANGED,
            format!("pid {pid} of the tree: its executable {path} changed since the dump: {why}"),
        ));
    }
    c.exe = Some(file);
    Ok(())
}
