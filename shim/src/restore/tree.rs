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
//! A pipe between them (each end recorded as going to another process,
//! `FdKind::Gone`, named `pipe:[inode]`) is made once, by the parent
//! before it forks, holding the bytes its read end had waiting, and each
//! process takes its ends from it ([`shared_pipe_end`]) and closes the
//! rest ([`close_shared_pipes`]) before teardown.
//!
//! Runs in the constructor, before teardown, with libc.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use dumpfmt::FdKind;

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

/// Forks each child with its PID (`keep_tids`: inside the PID namespace),
/// and each child its own children; returns, in each process, what it
/// restores. Images not its own are closed in every process. `root` is
/// the path of the parent's image: a child's image named `<X>.<pid>`,
/// where X is the root's or another child's image, is X's child (as the
/// tree dump names them); any other is the root's.
pub fn fork_children(
    parent: Checked,
    root: &str,
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
    make_shared_pipes(&parent, &children)?;
    let root = canonical(root);
    let names: Vec<String> = children.iter().map(|c| canonical(&c.path)).collect();
    let mut parents = Vec::with_capacity(children.len());
    for name in &names {
        let p = match name.rsplit_once('.') {
            Some((stem, pid)) if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) => {
                if stem == root {
                    None
                } else {
                    names.iter().position(|n| n == stem)
                }
            }
            _ => None,
        };
        parents.push(p);
    }
    for (c, p) in children.iter().zip(&parents) {
        let ppid = p.map_or(parent.img.image.pid, |p| children[p].pid());
        super::tree_members::note_stopped(ppid, &c.checked.img.image);
    }
    descend(
        parent,
        None,
        children.into_iter().map(Some).collect(),
        &parents,
    )
}

/// Forks the children of `me` (`None`: the root) among `all` (indexed as
/// `parents`), in this process, recursively in each child.
fn descend(
    me: Checked,
    me_index: Option<usize>,
    mut all: Vec<Option<Child>>,
    parents: &[Option<usize>],
) -> Result<Role, Refusal> {
    for i in 0..all.len() {
        if parents[i] != me_index || all[i].is_none() {
            continue;
        }
        let pid = all[i].as_ref().map_or(0, Child::pid);
        match clone_with_pid(pid) {
            Ok(0) => {
                // The child: its own image and its descendants' only.
                close(me);
                let Some(child) = all[i].take() else {
                    return Err(refuse(exit::UNSUPPORTED, "internal: child image gone"));
                };
                for (j, slot) in all.iter_mut().enumerate() {
                    if !below(j, i, parents)
                        && let Some(c) = slot.take()
                    {
                        close(c.checked);
                    }
                }
                return match descend(child.checked, Some(i), all, parents)? {
                    Role::Parent(c) => Ok(Role::Child(c, child.path)),
                    other => Ok(other),
                };
            }
            Ok(_) => {
                // Its image and its descendants' are the child's now.
                for (j, slot) in all.iter_mut().enumerate() {
                    if (j == i || below(j, i, parents))
                        && let Some(c) = slot.take()
                    {
                        close(c.checked);
                    }
                }
            }
            Err(e) => {
                return Err(refuse(
                    exit::UNSUPPORTED,
                    format!("{VAR}: cannot create child {pid} with its PID: {e}"),
                ));
            }
        }
    }
    Ok(Role::Parent(me))
}

/// Whether image `j` is a descendant of image `i`.
fn below(j: usize, i: usize, parents: &[Option<usize>]) -> bool {
    let mut at = parents[j];
    for _ in 0..parents.len() {
        match at {
            Some(p) if p == i => return true,
            Some(p) => at = parents[p],
            None => return false,
        }
    }
    false
}

/// A path made absolute and free of symlinks where possible.
fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_string())
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

/// Pipes between the tree's processes, by their `pipe:[inode]` name:
/// (read end, write end), until each process has taken its own.
static SHARED_PIPES: Mutex<Option<HashMap<String, (OwnedFd, OwnedFd)>>> = Mutex::new(None);

/// Makes every pipe whose ends the images show in two or more of the
/// processes, holding the bytes its read ends had waiting (a tree dump
/// is one snapshot: every read end saw the same bytes).
fn make_shared_pipes(parent: &Checked, children: &[Child]) -> Result<(), Refusal> {
    let images =
        std::iter::once(&parent.img.image).chain(children.iter().map(|c| &c.checked.img.image));
    // name -> (processes holding it, bytes waiting)
    let mut seen: HashMap<&str, (usize, &[u8])> = HashMap::new();
    for (i, image) in images.enumerate() {
        for fd in image.fds.iter() {
            if let FdKind::Gone {
                what,
                sock_type: 0,
                write,
                data,
            } = &fd.kind
                && what.starts_with("pipe:[")
            {
                let e = seen.entry(what.as_ref()).or_insert((0, &[]));
                e.0 |= 1 << i.min(63);
                if !*write && !data.is_empty() {
                    e.1 = data;
                }
            }
        }
    }
    let mut pipes = HashMap::new();
    for (name, (holders, data)) in seen {
        if holders.count_ones() < 2 {
            continue;
        }
        let mut p = [0; 2];
        // SAFETY: `p` has room for two descriptors.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!("{name}: pipe: {}", std::io::Error::last_os_error()),
            ));
        }
        // SAFETY: both descriptors were just created and are ours.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        fill(&w, data).map_err(|e| refuse(exit::UNSUPPORTED, format!("{name}: refilling: {e}")))?;
        // Each end gets the image's flags when it is taken (`fds::make`).
        for end in [&r, &w] {
            // SAFETY: F_SETFL on our own descriptor.
            unsafe { libc::fcntl(end.as_raw_fd(), libc::F_SETFL, 0) };
        }
        pipes.insert(name.to_string(), (r, w));
    }
    *SHARED_PIPES.lock().unwrap_or_else(|e| e.into_inner()) = Some(pipes);
    Ok(())
}

/// Writes `data` into a non-blocking pipe (made large enough first).
fn fill(w: &OwnedFd, data: &[u8]) -> std::io::Result<()> {
    // SAFETY: F_GETPIPE_SZ and F_SETPIPE_SZ on our pipe.
    unsafe {
        if data.len() as libc::c_int > libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) {
            libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, data.len() as libc::c_int);
        }
    }
    let mut left = data;
    while !left.is_empty() {
        // SAFETY: writing from a live buffer to our descriptor.
        let n = unsafe { libc::write(w.as_raw_fd(), left.as_ptr().cast(), left.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        left = &left[n as usize..];
    }
    Ok(())
}

/// A new descriptor for one end of the shared pipe `name`, if the tree
/// shares it.
pub fn shared_pipe_end(name: &str, write: bool) -> Option<std::io::Result<OwnedFd>> {
    let guard = SHARED_PIPES.lock().unwrap_or_else(|e| e.into_inner());
    let (r, w) = guard.as_ref()?.get(name)?;
    Some(if write { w.try_clone() } else { r.try_clone() })
}

/// Closes this process's copies of the shared pipes (its own ends are
/// separate descriptors by now).
pub fn close_shared_pipes() {
    SHARED_PIPES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
}
