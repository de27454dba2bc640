//! Restoring children with their parent (issue 9, experimental): the
//! restore side of a tree, step 3 of the design in `crate::tree`, on
//! images that exist today.
//!
//! `MIGRATE_RESTORE_CHILDREN=child1.img:child2.img` names images of the
//! restored process's children, each dumped on its own (the parent with
//! `MIGRATE_CHILDREN=leave`): they are not one snapshot, and what the
//! processes shared (a pipe between them) comes back as if the peer had
//! gone, so this is for testing the mechanism, not for users yet. Every
//! child image is checked with the parent's, before anything is torn
//! down; then, inside the PID namespace, the process that takes the
//! parent's PID forks each child with `clone3` `set_tid` (so the child has
//! its PID and the parent link is real: `waitpid` finds it), and each
//! child restores its own image as a single process is restored.
//!
//! Runs in the constructor, before teardown, with libc.

use std::fs::File;

use super::{Checked, Refusal, exit, refuse};

/// The variable that names the children's images.
pub const VAR: &str = "MIGRATE_RESTORE_CHILDREN";

/// A child's image, checked.
pub struct Child {
    pub path: String,
    pub checked: Checked,
}

/// The children's images named by [`VAR`], each opened and checked as the
/// parent's was; they must be of the parent's program.
pub fn children_from_env(parent: &Checked) -> Result<Vec<Child>, Refusal> {
    let Some(list) = std::env::var(VAR).ok().filter(|v| !v.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut children = Vec::new();
    for path in list.split(':').filter(|p| !p.is_empty()) {
        let with_path = |r: Refusal| refuse(r.code, format!("{VAR}: {path}: {}", r.msg));
        let img = super::open_image(path).map_err(with_path)?;
        if img.image.exe.path != parent.img.image.exe.path {
            return Err(refuse(
                exit::OTHER_PROGRAM,
                format!(
                    "{VAR}: {path} is an image of {}, not of {} (children must run their parent's program for now)",
                    img.image.exe.path, parent.img.image.exe.path
                ),
            ));
        }
        let pid = img.image.pid;
        if pid == parent.img.image.pid || children.iter().any(|c: &Child| c.pid() == pid) {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!("{VAR}: {path} has PID {pid}, which another image of this restore has"),
            ));
        }
        let checked = super::validate(img).map_err(with_path)?;
        children.push(Child {
            path: path.to_string(),
            checked,
        });
    }
    Ok(children)
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.checked.img.image.pid
    }
}

/// What this process restores after [`fork_children`].
pub enum Role {
    /// The parent's image (the children are forked).
    Parent(Checked),
    /// One child's image, at this path.
    Child(Checked, String),
}

/// Forks each child with its PID (`keep_tids`: inside the PID namespace);
/// returns, in each process, what it restores. Images not its own are
/// closed in every process.
pub fn fork_children(
    parent: Checked,
    children: Vec<Child>,
    keep_tids: bool,
) -> Result<Role, Refusal> {
    if children.is_empty() {
        return Ok(Role::Parent(parent));
    }
    if !keep_tids {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!("{VAR} needs the PID namespace (children keep their PIDs)"),
        ));
    }
    let mut children = children.into_iter();
    while let Some(child) = children.next() {
        let pid = child.pid();
        match clone_with_pid(pid) {
            Ok(0) => {
                // The child: its own image only.
                close(parent);
                children.for_each(|c| close(c.checked));
                return Ok(Role::Child(child.checked, child.path));
            }
            Ok(_) => close(child.checked),
            Err(e) => {
                return Err(refuse(
                    exit::UNSUPPORTED,
                    format!("{VAR}: cannot create child {pid} with its PID: {e}"),
                ));
            }
        }
    }
    Ok(Role::Parent(parent))
}

/// Closes an image and the files it holds open.
fn close(c: Checked) {
    let Checked { img, fds } = c;
    drop(img);
    drop::<Vec<File>>(fds);
}

/// `clone3` as a fork that gives the child `pid` (in this PID namespace).
fn clone_with_pid(pid: u32) -> std::io::Result<i32> {
    let set_tid = [pid as libc::pid_t];
    let mut args = [0u64; 10];
    args[4] = libc::SIGCHLD as u64; // exit_signal
    args[8] = set_tid.as_ptr() as u64;
    args[9] = 1; // set_tid_size
    // SAFETY: clone3 without CLONE_VM is a fork; `args` and `set_tid`
    // outlive it; the child goes on single-threaded in the constructor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_ptr(),
            core::mem::size_of_val(&args),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r as i32)
}
