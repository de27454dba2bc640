//! Zombie and stopped members on the restore side (issue 9; the image's
//! `Minor3::members`, see `crate::tree::members` for the dump side).
//!
//! - Each restored process forks its zombie children, once its live
//!   children are forked: with `clone3` `set_tid` = the zombie's PID and
//!   `SIGCHLD` as exit signal (so that a plain `wait` finds it), the child
//!   takes the zombie's process group or session where it led one, and
//!   ends at once as the zombie had (`_exit` with its code, or killed by
//!   its signal). Its parent waits until it is a zombie (`WNOWAIT`: it
//!   stays unreaped for the application's own `wait`; no one else can reap
//!   it, being no one else's child) and takes back the `SIGCHLD` its exit
//!   sent (and every other one pending then: the restorer raises the
//!   signals the image had pending, and a `SIGCHLD` the process did not
//!   have pending at the dump must not reach its handler; the restore runs
//!   with every signal blocked, so one sent by a child that stopped or
//!   exited during it waits, pending).
//! - A member that was stopped stops itself (`SIGSTOP`, or the job-control signal that had stopped it) once its own
//!   children and zombies exist, before its teardown, every other signal
//!   blocked: seen from outside it is stopped, as it was; `SIGCONT` lets
//!   it finish the restore and go on where it was; a signal sent while it
//!   is stopped waits, blocked, for the restored program's mask and
//!   handlers. Its parent waits for that stop, and takes the new stop
//!   report when it had taken the old one before the dump (else the
//!   report stays for its `waitpid(WUNTRACED)`), then takes back the
//!   `SIGCHLD` as above.
//!
//! Runs in the constructor, before teardown, with libc.

use std::sync::Mutex;

use super::{Refusal, exit, refuse};

/// The stopped children of every process of the tree: (parent's PID,
/// child's PID, the child's stop), known before the forks (each process
/// keeps only its own images afterwards).
static STOPPED: Mutex<Vec<(u32, u32, dumpfmt::Stop)>> = Mutex::new(Vec::new());

/// Notes that image `child` (a child of the process with PID `parent`)
/// comes back stopped, before the forks.
pub fn note_stopped(parent: u32, child: &dumpfmt::Image<'_>) {
    if let Some(stop) = child.minor3.members.stop {
        STOPPED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((parent, child.pid, stop));
    }
}

/// In each restored process, once its live children are forked: waits for
/// its stopped children to stop, forks its zombies, and stops itself if
/// it was stopped. `keep_tids`: inside the PID namespace.
pub fn settle(image: &dumpfmt::Image<'_>, keep_tids: bool) -> Result<(), Refusal> {
    let members = &image.minor3.members;
    let stopped: Vec<(u32, dumpfmt::Stop)> = STOPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(parent, ..)| *parent == image.pid)
        .map(|&(_, child, stop)| (child, stop))
        .collect();
    if members.zombies.is_empty() && stopped.is_empty() && members.stop.is_none() {
        return Ok(());
    }
    if !keep_tids && !members.zombies.is_empty() {
        return Err(refuse(
            exit::UNSUPPORTED,
            "children that exited and were not waited for need the PID namespace (they keep their PIDs)",
        ));
    }
    let old = block(libc::SIGCHLD);
    let result = stopped
        .iter()
        .try_for_each(|&(pid, stop)| await_stop(pid, stop))
        .and_then(|()| members.zombies.iter().try_for_each(fork_zombie));
    // Every SIGCHLD pending now was made by the restore (the restorer
    // raises the ones the image had pending).
    take_sigchld();
    set_mask(&old);
    result?;
    if let Some(stop) = members.stop {
        stop_here(stop.signal);
    }
    Ok(())
}

/// Forks zombie `z` with its PID and waits until it has ended as it had.
fn fork_zombie(z: &dumpfmt::Zombie) -> Result<(), Refusal> {
    let child = super::tree::clone_with_pid(z.pid).map_err(|e| {
        refuse(
            exit::UNSUPPORTED,
            format!(
                "cannot recreate child {} (exited, not waited for): {e}",
                z.pid
            ),
        )
    })?;
    if child == 0 {
        end_as(z);
    }
    let (code, status) = wait_noreap(z.pid, libc::WEXITED)?;
    let want = if z.killed {
        (libc::CLD_KILLED, i32::from(z.status))
    } else {
        (libc::CLD_EXITED, i32::from(z.status))
    };
    if (code, status) != want {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "recreated child {} (exited, not waited for) ended with code {code} status {status}, not as it had",
                z.pid
            ),
        ));
    }
    Ok(())
}

/// In the forked zombie: takes its group or session, then ends as `z` did.
fn end_as(z: &dumpfmt::Zombie) -> ! {
    // SAFETY: plain system calls in a single-threaded forked child that
    // never returns into the restore.
    unsafe {
        let me = libc::getpid() as u32;
        if z.sid == me {
            libc::setsid();
        } else if z.pgid == me {
            libc::setpgid(0, 0);
        } else if z.pgid != 0 && z.pgid != libc::getpgid(0) as u32 {
            // Another member's group, made before this fork. A group whose
            // leader is outside the tree is not in this PID namespace: the
            // zombie stays in its parent's, as live members do for now.
            libc::setpgid(0, z.pgid as i32);
        }
        if z.killed {
            let sig = i32::from(z.status);
            let mut dfl: libc::sigaction = core::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            crate::interpose::real_sigaction(sig, &dfl, core::ptr::null_mut());
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            crate::interpose::real_sigprocmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            // Not fatal after all: the parent sees another status and refuses.
            libc::_exit(127);
        }
        libc::_exit(i32::from(z.status))
    }
}

/// Waits until stopped child `pid` has stopped, and takes the report when
/// the parent had taken it before the dump.
fn await_stop(pid: u32, stop: dumpfmt::Stop) -> Result<(), Refusal> {
    let (code, _) = wait_noreap(pid, libc::WSTOPPED | libc::WEXITED)?;
    if code != libc::CLD_STOPPED {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!("restored child {pid} ended before it stopped as it was"),
        ));
    }
    if !stop.reported {
        let mut info: libc::siginfo_t = unsafe_zeroed();
        // SAFETY: waiting for our own stopped child; it reports at once.
        unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WSTOPPED) };
    }
    Ok(())
}

/// Blocks every signal and stops this process, with the signal that
/// had stopped it where that was `SIGTSTP`, `SIGTTIN` or `SIGTTOU` (its
/// parent's report says which), else `SIGSTOP`; returns once continued.
fn stop_here(signal: u8) {
    let all = full_set();
    set_mask(&all);
    crate::tree::members::stop_with(signal);
}

/// Waits (`WNOWAIT`) for child `pid` to report one of `flags`; returns
/// `si_code` and `si_status`.
fn wait_noreap(pid: u32, flags: i32) -> Result<(i32, i32), Refusal> {
    loop {
        let mut info: libc::siginfo_t = unsafe_zeroed();
        // SAFETY: `info` is ours to fill; waiting for our own child.
        let r = unsafe { libc::waitid(libc::P_PID, pid, &mut info, flags | libc::WNOWAIT) };
        if r == 0 {
            // SAFETY: the kernel filled a SIGCHLD siginfo.
            return Ok((info.si_code, unsafe { info.si_status() }));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!("cannot wait for restored child {pid}: {e}"),
            ));
        }
    }
}

/// Takes a pending `SIGCHLD` back (it is blocked).
fn take_sigchld() {
    let mut set = empty_set();
    // SAFETY: a valid set and a zero timeout: returns at once.
    unsafe {
        libc::sigaddset(&mut set, libc::SIGCHLD);
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        while libc::sigtimedwait(&set, core::ptr::null_mut(), &zero) == libc::SIGCHLD {}
    }
}

/// Blocks `sig`; returns the mask before.
fn block(sig: i32) -> libc::sigset_t {
    let mut set = empty_set();
    let mut old = empty_set();
    // SAFETY: valid sets.
    unsafe {
        libc::sigaddset(&mut set, sig);
        crate::interpose::real_sigprocmask(libc::SIG_BLOCK, &set, &mut old);
    }
    old
}

fn set_mask(set: &libc::sigset_t) {
    // SAFETY: a valid set.
    unsafe { crate::interpose::real_sigprocmask(libc::SIG_SETMASK, set, core::ptr::null_mut()) };
}

fn empty_set() -> libc::sigset_t {
    let mut s = unsafe_zeroed::<libc::sigset_t>();
    // SAFETY: initialising our own set.
    unsafe { libc::sigemptyset(&mut s) };
    s
}

fn full_set() -> libc::sigset_t {
    let mut s = unsafe_zeroed::<libc::sigset_t>();
    // SAFETY: initialising our own set.
    unsafe { libc::sigfillset(&mut s) };
    s
}

/// A zeroed C struct (sigset_t, siginfo_t: all-zero is valid for both).
fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for plain C structs for which zero bytes are valid.
    unsafe { core::mem::zeroed() }
}
