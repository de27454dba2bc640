//! Restoring a tree image (issue 9): the restore side of a tree, steps
//! 1, 3 and 4 of the design in `crate::tree`.
//!
//! `MIGRATE_RESTORE=tree.img` names a tree image (format 1.3, see
//! `dumpfmt::TreeFile`): its index lists every process, root first, with
//! its parent, process group and session, and its section, a complete
//! image. Every section is checked as the root's is ([`members`]), and
//! the groups and sessions planned (`crate::tree::groups`), before
//! anything is torn down; a tree needs the PID namespace (each process
//! keeps its PID, and its parent link is real: `waitpid` finds it).
//! Then, inside the namespace, the process that takes the root's PID forks
//! each child with `clone3` `set_tid`, each child takes its group and
//! session and forks its own ([`fork_children`]), and each restores its
//! own section as a single process is restored.
//!
//! A pipe between them (each end recorded as going to another process,
//! `FdKind::Gone`, named `pipe:[inode]`, or, in a process that holds both
//! ends, as its own `FdKind::Pipe` with that inode as its id) is made
//! once, by the root
//! before it forks, holding the bytes its read end had waiting, and each
//! process takes its ends from it ([`shared_pipe_end`]) and closes the
//! rest ([`close_shared_pipes`]) before teardown.
//! The other objects they share (shared memory, socket pairs, open file
//! descriptions) are made the same way by `super::tree_shared`.
//!
//! The restore barrier: no process runs its program before every one is
//! restored (a parent that signals or waits for a child finds it whole).
//! Two pipes made by the root before its first fork: each other process,
//! its restore done, writes a byte to the first, closes it, and waits for
//! a byte from the second; the root, its own restore done, reads one byte
//! per other process from the first, then writes theirs to the second
//! ([`barrier_ops`], the restorer's last steps before the threads are
//! made). A process that dies before its byte closes its end: the root
//! reads end of file and fails, and so the others.
//!
//! Runs in the constructor, before teardown, with libc; [`barrier_ops`]
//! only plans what the restorer does.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use dumpfmt::{FdKind, Member, TreeFile};

use super::plan::{Arg, Plan};
use super::{Checked, Refusal, exit, refuse};
use crate::tree::groups::{self, Step};

/// The other processes of a tree image, checked; in the index's order
/// (the root, `members[0]`, is restored as a single image is).
pub struct Members {
    pub index: Vec<Member>,
    /// What each member does to take its group and session.
    pub steps: Vec<Step>,
    /// One per member but the root.
    pub checked: Vec<Option<Checked>>,
}

/// Splits a tree image into its root's section and the rest.
pub fn split(t: TreeFile) -> (dumpfmt::ImageFile, Vec<Member>, Vec<dumpfmt::ImageFile>) {
    let TreeFile { tree, sections, .. } = t;
    let mut sections = sections.into_iter();
    let root = sections.next();
    let index = tree.members.into_owned();
    // `TreeFile` holds one section per member, at least the root's.
    (
        root.expect("a tree image has a root"),
        index,
        sections.collect(),
    )
}

/// Checks every other member's section as the root's was (pages, CPU,
/// mapped files; the executable of one running another program, see
/// `super::tree_exec`), and that the tree's
/// groups and sessions can be made again.
pub fn members(
    root: &Checked,
    index: Vec<Member>,
    sections: Vec<dumpfmt::ImageFile>,
) -> Result<Members, Refusal> {
    let steps = groups::steps(&index).map_err(|(pid, why)| {
        refuse(
            exit::UNSUPPORTED,
            format!("pid {pid}: its process group or session cannot be restored: {why}"),
        )
    })?;
    let mut checked = Vec::with_capacity(sections.len());
    for img in sections {
        let pid = img.image.pid;
        let mut c = super::validate(img, true)
            .map_err(|r| refuse(r.code, format!("pid {pid} of the tree: {}", r.msg)))?;
        super::tree_exec::other_program(&root.img.image.exe.path, &mut c)?;
        checked.push(Some(c));
    }
    Ok(Members {
        index,
        steps,
        checked,
    })
}

/// What this process restores after [`fork_children`].
pub enum Role {
    /// The root's image (the children are forked).
    Root(Checked),
    /// Another member's image.
    Member(Checked),
}

/// Forks each child with its PID (`keep_tids`: inside the PID namespace),
/// and each child its own children; returns, in each process, what it
/// restores. Images not its own are closed in every process.
pub fn fork_children(
    root: Checked,
    members: Option<Members>,
    keep_tids: bool,
) -> Result<Role, Refusal> {
    let Some(Members {
        index,
        steps,
        checked,
    }) = members.filter(|m| m.index.len() > 1)
    else {
        return Ok(Role::Root(root));
    };
    if !keep_tids {
        return Err(refuse(
            exit::UNSUPPORTED,
            "a tree image needs the PID namespace (its processes keep their PIDs); MIGRATE_NAMESPACE=off restores single images only",
        ));
    }
    let images: Vec<&Checked> = std::iter::once(&root)
        .chain(checked.iter().flatten())
        .collect();
    make_shared_pipes(&images)?;
    let sections: Vec<_> = images
        .iter()
        .map(|c| (&c.img.image, &c.img.file, c.img.base))
        .collect();
    super::tree_shared::make(&sections)?;
    // A member that comes back stopped stops before its teardown and
    // waits for a SIGCONT, not at the barrier: it could not arrive there
    // before it is continued (and, stopped, runs nothing of its program
    // until then).
    let stopped = checked.iter().flatten().filter(|c| is_stopped(c)).count();
    make_barrier(index.len() - stopped)?;
    let mut all: Vec<Option<Checked>> = std::iter::once(None).chain(checked).collect();
    let parents: Vec<Option<usize>> = index
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (i > 0)
                .then(|| index[..i].iter().position(|p| p.pid == m.ppid))
                .flatten()
        })
        .collect();
    for (i, m) in index.iter().enumerate().skip(1) {
        if let Some(c) = &all[i] {
            super::tree_members::note_stopped(m.ppid, &c.img.image);
        }
    }
    let role = descend(root, 0, (&index, &steps), &mut all, &parents)?;
    match &role {
        Role::Root(_) => keep_barrier_end(true),
        Role::Member(c) if is_stopped(c) => drop_barrier(),
        Role::Member(_) => keep_barrier_end(false),
    }
    Ok(role)
}

/// Forks the children of member `me` (restoring `mine`) in this process,
/// recursively in each child.
fn descend(
    mine: Checked,
    me: usize,
    (index, steps): (&[Member], &[Step]),
    all: &mut [Option<Checked>],
    parents: &[Option<usize>],
) -> Result<Role, Refusal> {
    let role = |c| {
        if me == 0 {
            Role::Root(c)
        } else {
            Role::Member(c)
        }
    };
    for i in 0..all.len() {
        if parents[i] != Some(me) || all[i].is_none() {
            continue;
        }
        let pid = index[i].pid;
        let step = steps[i];
        match clone_with_pid(pid) {
            Ok(0) => {
                // The child: its own image and its descendants' only.
                close(mine);
                let Some(child) = all[i].take() else {
                    return Err(refuse(exit::UNSUPPORTED, "internal: child image gone"));
                };
                for (j, slot) in all.iter_mut().enumerate() {
                    if !below(j, i, parents)
                        && let Some(c) = slot.take()
                    {
                        close(c);
                    }
                }
                take_step(step, pid)?;
                return descend(child, i, (index, steps), all, parents);
            }
            Ok(child) => {
                // Its group before the next sibling may need it (the
                // child does the same: whichever comes first).
                let _ = match step {
                    // SAFETY: setpgid on our own new child.
                    Step::Lead => unsafe { libc::setpgid(child, child) },
                    // SAFETY: as above.
                    Step::Join(g) => unsafe { libc::setpgid(child, g as i32) },
                    _ => 0,
                };
                // Its image and its descendants' are the child's now.
                for (j, slot) in all.iter_mut().enumerate() {
                    if (j == i || below(j, i, parents))
                        && let Some(c) = slot.take()
                    {
                        close(c);
                    }
                }
            }
            Err(e) => {
                return Err(refuse(
                    exit::UNSUPPORTED,
                    format!("cannot create process {pid} of the tree with its PID: {e}"),
                ));
            }
        }
    }
    Ok(role(mine))
}

/// Takes the group and session `step` says (a child, before it forks).
fn take_step(step: Step, pid: u32) -> Result<(), Refusal> {
    // SAFETY: plain system calls about this process.
    let r = unsafe {
        match step {
            Step::Keep => 0,
            Step::Setsid => libc::setsid().min(0),
            Step::Lead => libc::setpgid(0, 0),
            Step::Join(g) => libc::setpgid(0, g as i32),
        }
    };
    if r < 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "process {pid} of the tree cannot take its process group or session ({step:?}): {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    Ok(())
}

/// Whether member `j` is a descendant of member `i`.
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

/// Closes an image and the files it holds open.
fn close(c: Checked) {
    let Checked { img, fds, exe } = c;
    drop(img);
    drop::<Vec<File>>(fds);
    drop(exe);
}

/// `clone3` as a fork that gives the child `pid` (in this PID namespace);
/// also how a zombie member is made again (`super::tree_members`).
pub(super) fn clone_with_pid(pid: u32) -> std::io::Result<i32> {
    let set_tid = [pid as libc::pid_t];
    let mut args = [0u64; 10];
    args[4] = libc::SIGCHLD as u64; // exit_signal
    args[8] = set_tid.as_ptr() as u64;
    args[9] = 1; // set_tid_size
    // SAFETY: clone3 without CLONE_VM is a fork; `args` and `set_tid`
    // outlive it; the child goes on single-threaded in the constructor
    // (or, a zombie's, only ends itself).
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

/// The barrier's pipes, made by the root: (arrive, go), each (read,
/// write); then, in each process, the two ends it keeps.
struct Barrier {
    arrive: Option<(OwnedFd, OwnedFd)>,
    go: Option<(OwnedFd, OwnedFd)>,
    members: usize,
}

/// The ends one process keeps: `read` and `write`, and whether it is the
/// root (which waits for the others and lets them go).
pub struct BarrierEnds {
    pub root: bool,
    pub members: usize,
    pub read: OwnedFd,
    pub write: OwnedFd,
}

static BARRIER: Mutex<Option<Barrier>> = Mutex::new(None);
static BARRIER_ENDS: Mutex<Option<BarrierEnds>> = Mutex::new(None);

fn pipe() -> Result<(OwnedFd, OwnedFd), Refusal> {
    let mut p = [0; 2];
    // SAFETY: `p` has room for two descriptors.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "the tree's barrier: pipe: {}",
                std::io::Error::last_os_error()
            ),
        ));
    }
    // SAFETY: both descriptors were just created and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

fn make_barrier(members: usize) -> Result<(), Refusal> {
    let b = Barrier {
        arrive: Some(pipe()?),
        go: Some(pipe()?),
        members,
    };
    *BARRIER.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    Ok(())
}

/// Whether member `c` comes back stopped (see `super::tree_members`).
fn is_stopped(c: &Checked) -> bool {
    c.img.image.minor3.members.stop.is_some()
}

/// Closes every end of the barrier: this process does not wait at it.
fn drop_barrier() {
    BARRIER.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// Keeps this process's two ends of the barrier, closing the others (a
/// process's children have inherited theirs by now).
fn keep_barrier_end(root: bool) {
    let Some(mut b) = BARRIER.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let (Some((ar, aw)), Some((gr, gw))) = (b.arrive.take(), b.go.take()) else {
        return;
    };
    let ends = if root {
        BarrierEnds {
            root,
            members: b.members,
            read: ar,
            write: gw,
        }
    } else {
        BarrierEnds {
            root,
            members: b.members,
            read: gr,
            write: aw,
        }
    };
    *BARRIER_ENDS.lock().unwrap_or_else(|e| e.into_inner()) = Some(ends);
}

/// This process's ends of the barrier, for the restorer (None: not a tree).
pub fn take_barrier() -> Option<BarrierEnds> {
    BARRIER_ENDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

/// A process's ends of the barrier, lifted above the restore's base and
/// left open for the restorer.
pub struct LiftedBarrier {
    pub root: bool,
    pub members: usize,
    pub read: u64,
    pub write: u64,
}

/// The restorer's barrier steps (see the module's documentation).
pub fn barrier_ops(plan: &mut Plan, b: &LiftedBarrier) {
    let v = Arg::V;
    let (root, members, read, write) = (b.root, b.members, b.read, b.write);
    let byte = plan.bytes(&[0u8; 8]);
    if root {
        for _ in 1..members {
            plan.call(
                libc::SYS_read,
                &[v(read), Arg::Data(byte), v(1)],
                v(1),
                "restore: another process of the tree failed its restore",
            );
        }
        let n = members as u64 - 1;
        let go = plan.bytes(&vec![0u8; n as usize]);
        plan.call(
            libc::SYS_write,
            &[v(write), Arg::Data(go), v(n)],
            v(n),
            "restore: cannot let the tree's processes go",
        );
    } else {
        plan.call(
            libc::SYS_write,
            &[v(write), Arg::Data(byte), v(1)],
            v(1),
            "restore: cannot tell the tree's root this process is restored",
        );
        plan.call(
            libc::SYS_close,
            &[v(write)],
            v(0),
            "restore: cannot close the tree's barrier",
        );
        plan.call(
            libc::SYS_read,
            &[v(read), Arg::Data(byte), v(1)],
            v(1),
            "restore: the tree's root failed its restore",
        );
    }
}

/// Pipes between the tree's processes, by their `pipe:[inode]` name:
/// (read end, write end), until each process has taken its own.
static SHARED_PIPES: Mutex<Option<HashMap<String, (OwnedFd, OwnedFd)>>> = Mutex::new(None);

/// Makes every pipe whose ends the images show in two or more of the
/// processes, holding the bytes its read ends had waiting (a tree dump
/// is one snapshot: every read end saw the same bytes).
fn make_shared_pipes(checked: &[&Checked]) -> Result<(), Refusal> {
    let fds: Vec<&[dumpfmt::Fd<'_>]> = checked.iter().map(|c| &c.img.image.fds[..]).collect();
    let mut pipes = HashMap::new();
    for (name, Between { data, size, large }) in pipes_between(&fds) {
        let mut p = [0; 2];
        // SAFETY: `p` has room for two descriptors.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!("{name}: pipe: {}", std::io::Error::last_os_error()),
            ));
        }
        // SAFETY: both descriptors were just created and are ours.
        let (mut r, mut w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        // An end opened through `/proc/PID/fd/N` (bash's process
        // substitution: `exec 3> >(...)`) has O_LARGEFILE, which
        // `F_SETFL` cannot set: that end is opened the same way.
        let (lr, lw) = large;
        if lr {
            r = reopen(&r, libc::O_RDONLY)
                .map_err(|e| refuse(exit::UNSUPPORTED, format!("{name}: reopening: {e}")))?;
        }
        if lw {
            w = reopen(&w, libc::O_WRONLY)
                .map_err(|e| refuse(exit::UNSUPPORTED, format!("{name}: reopening: {e}")))?;
        }
        if size > 0 {
            // SAFETY: F_SETPIPE_SZ on our pipe (a size it had before).
            unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
        }
        fill(&w, data).map_err(|e| refuse(exit::UNSUPPORTED, format!("{name}: refilling: {e}")))?;
        // Each end gets the image's flags when it is taken (`fds::make`).
        for end in [&r, &w] {
            // SAFETY: F_SETFL on our own descriptor.
            unsafe { libc::fcntl(end.as_raw_fd(), libc::F_SETFL, 0) };
        }
        pipes.insert(name, (r, w));
    }
    *SHARED_PIPES.lock().unwrap_or_else(|e| e.into_inner()) = Some(pipes);
    Ok(())
}

/// The name a pipe's ends have in `/proc/PID/fd` (`pipe:[inode]`), for a
/// `FdKind::Pipe` record's id (its inode).
pub fn pipe_name(id: u64) -> String {
    format!("pipe:[{id}]")
}

/// The kernel's O_LARGEFILE (`F_GETFL` shows it; the libc crate's is 0
/// on x86-64, where `open` sets it always).
const KERNEL_O_LARGEFILE: i32 = 0o100000;

/// A new open file description of pipe end `fd`'s pipe, through
/// `/proc/self/fd` (as `open` makes it: with O_LARGEFILE), non-blocking.
fn reopen(fd: &OwnedFd, mode: i32) -> std::io::Result<OwnedFd> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(std::io::Error::other)?;
    // SAFETY: a NUL-terminated path; the new descriptor is ours.
    let n = unsafe { libc::open(path.as_ptr(), mode | libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just opened, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// A pipe two or more processes hold ends of: the bytes its read ends had
/// waiting (taken once: every read end saw the same), the size a `Pipe`
/// record gave it (a `Gone` end does not know it: 0), and which of its
/// ends, (read, write), were opened with O_LARGEFILE.
#[derive(Debug, PartialEq)]
struct Between<'i> {
    data: &'i [u8],
    size: u32,
    large: (bool, bool),
}

/// The pipes (by name) whose ends two or more of the processes (`fds`,
/// each one's descriptors) hold. A process holding both ends records them
/// as its own pipe (`Pipe`, its inode the id); another holding an end too
/// makes it the tree's.
fn pipes_between<'i>(fds: &[&'i [dumpfmt::Fd<'i>]]) -> Vec<(String, Between<'i>)> {
    // name -> (the first process holding it, held by another too, what it is)
    let mut seen: HashMap<String, (usize, bool, Between<'i>)> = HashMap::new();
    for (i, list) in fds.iter().enumerate() {
        for fd in list.iter() {
            let (name, write, data, size) = match &fd.kind {
                FdKind::Gone {
                    what,
                    sock_type: 0,
                    write,
                    data,
                } if what.starts_with("pipe:[") => (what.to_string(), *write, &data[..], 0),
                FdKind::Pipe {
                    id,
                    path,
                    write,
                    data,
                    size,
                } if path.is_empty() => (pipe_name(*id), *write, &data[..], *size),
                _ => continue,
            };
            let e = seen.entry(name).or_insert((
                i,
                false,
                Between {
                    data: &[],
                    size: 0,
                    large: (false, false),
                },
            ));
            e.1 |= e.0 != i;
            e.2.size = e.2.size.max(size);
            if fd.flags & KERNEL_O_LARGEFILE != 0 {
                if write {
                    e.2.large.1 = true;
                } else {
                    e.2.large.0 = true;
                }
            }
            if !write && !data.is_empty() {
                e.2.data = data;
            }
        }
    }
    seen.into_iter()
        .filter(|(_, (_, shared, _))| *shared)
        .map(|(name, (_, _, b))| (name, b))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn end(name: &str, write: bool, data: &'static [u8]) -> dumpfmt::Fd<'static> {
        dumpfmt::Fd {
            fd: 3,
            flags: 0,
            cloexec: false,
            kind: FdKind::Gone {
                what: Cow::Owned(name.into()),
                sock_type: 0,
                write,
                data: Cow::Borrowed(data),
            },
        }
    }

    /// A pipe between two processes past the 64th of a tree is shared
    /// (a 64-bit set of holders once counted every process from the
    /// 64th on as one, and such a pipe came back as two unconnected
    /// ends); one held by a single process is not.
    #[test]
    fn pipes_between_processes_past_the_64th_are_shared() {
        let mut procs: Vec<Vec<dumpfmt::Fd<'static>>> = vec![Vec::new(); 100];
        procs[70].push(end("pipe:[7]", true, b""));
        procs[90].push(end("pipe:[7]", false, b"queued"));
        procs[80].push(end("pipe:[8]", true, b""));
        procs[80].push(end("pipe:[8]", false, b""));
        let lists: Vec<&[dumpfmt::Fd<'_>]> = procs.iter().map(|v| &v[..]).collect();
        let got = pipes_between(&lists);
        assert_eq!(
            got,
            [(
                "pipe:[7]".to_string(),
                Between {
                    data: &b"queued"[..],
                    size: 0,
                    large: (false, false)
                }
            )]
        );
    }
}
