//! Keeping the image's PID and TIDs: a fresh user and PID namespace.
//!
//! glibc keeps TIDs in places the restore cannot find (the owner of every
//! recursive or error-checking mutex, ld.so's lock, the thread descriptor);
//! a restore that changed TIDs would leave those pointing at nobody. So,
//! where the kernel lets an unprivileged user create namespaces, the
//! relaunched process (the *supervisor*) creates a user namespace mapping
//! only its own uid and gid, and a PID namespace. Its first child is that
//! namespace's init; init mounts a `/proc` of the new namespace (in a mount
//! namespace of its own) and creates, with `clone3` and `set_tid`, the
//! process that becomes the image: it has the image's PID, and the restorer
//! gives every thread its old TID the same way.
//!
//! The supervisor keeps the PID the user started: it forwards signals sent
//! to it (a dump signal, TERM, …) to the restored process, but not those
//! sent to the whole process group, which reach the restored process
//! directly (see `group_signals`), and ends as that process ends (same
//! exit status, or killed by the same signal). If the
//! supervisor is killed, init dies with it (`PR_SET_PDEATHSIG`) and the
//! kernel kills everything in the namespace.
//!
//! Seen from inside, `getpid()` and `gettid()` return what they returned
//! before the dump and `getppid()` returns 1; from outside, the process
//! has a new PID (its supervisor's child's child).
//!
//! Runs in the constructor, before teardown, with libc.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;

/// The namespace's init, as the supervisor sees it (0: none yet).
static INIT: AtomicI32 = AtomicI32::new(0);
/// The supervisor's end of the pipe through which it has init take a
/// signal that reached the whole group (see `group_signals`).
static DRAIN: AtomicI32 = AtomicI32::new(-1);
/// The supervisor's PID and start time (`/proc/<pid>/stat` field 22), set
/// before the namespaces are entered: the restored process writes its
/// status under them (see `crate::status`).
static SUPERVISOR: AtomicI32 = AtomicI32::new(0);
static SUPERVISOR_START: AtomicU64 = AtomicU64::new(0);

/// The supervisor's PID and start time (0, 0 before [`enter`]).
pub fn supervisor() -> (i64, u64) {
    (
        i64::from(SUPERVISOR.load(Relaxed)),
        SUPERVISOR_START.load(Relaxed),
    )
}

extern "C" fn forward(sig: i32, info: *mut libc::siginfo_t, _uc: *mut libc::c_void) {
    let init = INIT.load(Relaxed);
    // A signal sent to the whole process group (`kill -TERM -PGID`, the
    // terminal's) reached every restored process directly: forwarding it
    // would deliver it twice (see `group_signals`).
    if super::group_signals::reached_the_group(init, sig, DRAIN.load(Relaxed)) {
        super::group_signals::follow_stop(init, sig);
        return;
    }
    // The terminal's signals go to the group: never forwarded.
    // SAFETY: the kernel passes a valid siginfo.
    if unsafe { (*info).si_code } == libc::SI_KERNEL {
        return;
    }
    let to = super::group_signals::root_of(init);
    if to <= 0 {
        return;
    }
    // A queued signal keeps its value (`migrate dump`'s request, see
    // `crate::status`); the kernel clears si_pid across the namespace.
    // SAFETY: the kernel passes a valid siginfo.
    let queued = unsafe { (*info).si_code } == libc::SI_QUEUE;
    // SAFETY: rt_sigqueueinfo reads the 128-byte siginfo the kernel gave us;
    // kill takes integers. Both are async-signal-safe.
    unsafe {
        if !queued || libc::syscall(libc::SYS_rt_sigqueueinfo, to, sig, info) != 0 {
            libc::kill(to, sig);
        }
    }
}

/// Installs `forward` for every signal that can be caught and is not about
/// the process's own children or faults.
fn forward_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if matches!(
            sig,
            libc::SIGKILL
                | libc::SIGSTOP
                | libc::SIGCHLD
                | libc::SIGSEGV
                | libc::SIGBUS
                | libc::SIGILL
                | libc::SIGFPE
        ) {
            continue;
        }
        // SAFETY: installing a handler that only calls kill.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigfillset(&mut sa.sa_mask);
            crate::interpose::real_sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

fn set_mask(how: libc::c_int, set: &libc::sigset_t) {
    // SAFETY: a valid sigset.
    unsafe { crate::interpose::real_sigprocmask(how, set, core::ptr::null_mut()) };
}

fn full_set() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the set.
    unsafe {
        let mut s: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut s);
        s
    }
}

fn empty_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set.
    unsafe {
        let mut s: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut s);
        s
    }
}

/// Moves the restore into a namespace where `pid` is free. Returns `true`
/// in the process that is to become the image (PID and TIDs kept);
/// `false` when namespaces are not available (restore here, new TIDs).
/// The supervisor never returns.
pub fn enter(image: &dumpfmt::Image<'_>) -> bool {
    if std::env::var("MIGRATE_NAMESPACE").is_ok_and(|v| v == "off") {
        return false;
    }
    // SAFETY: plain system calls on values we own.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let stat = std::fs::read("/proc/self/stat").unwrap_or_default();
    SUPERVISOR.store(crate::sys::getpid(), Relaxed);
    SUPERVISOR_START.store(crate::status::stat_starttime(&stat).unwrap_or(0), Relaxed);
    let mut fds = [0; 2];
    let mut drain = [0; 2];
    // SAFETY: `fds` and `drain` have room for two descriptors each.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return false;
        }
        if libc::pipe2(drain.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            libc::close(fds[0]);
            libc::close(fds[1]);
            return false;
        }
    }
    set_mask(libc::SIG_SETMASK, &full_set());
    // SAFETY: unshare affects only this (single-threaded) process.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID) } != 0 {
        // SAFETY: closing our own pipes.
        unsafe {
            for fd in fds.into_iter().chain(drain) {
                libc::close(fd);
            }
        }
        set_mask(libc::SIG_SETMASK, &empty_set());
        return false;
    }
    let maps = std::fs::write("/proc/self/setgroups", "deny")
        .and_then(|_| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")))
        .and_then(|_| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")));
    // A refusal here leaves no trace, as every other one (the data files
    // the checks made again are removed).
    let refuse = |msg: String| -> ! {
        super::shared_files::undo();
        eprintln!("migrate: restore: {msg}");
        std::process::exit(super::exit::UNSUPPORTED);
    };
    if let Err(e) = maps {
        refuse(format!(
            "cannot map uid {uid} and gid {gid} into a user namespace: {e}"
        ));
    }
    // Clocks that would go back continue in a time namespace (see `clocks`).
    if let Err(e) = super::clocks::enter(image) {
        refuse(e);
    }
    // SAFETY: single-threaded; the child only calls async-signal-safe code
    // and this module's functions before it continues the restore.
    match unsafe { libc::fork() } {
        -1 => refuse(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            // SAFETY: closing the ends the supervisor uses.
            unsafe {
                libc::close(fds[0]);
                libc::close(drain[1]);
            }
            init(image.pid, fds[1], drain[0])
        }
        init_pid => {
            // SAFETY: closing the ends init uses.
            unsafe {
                libc::close(fds[1]);
                libc::close(drain[0]);
            }
            DRAIN.store(drain[1], Relaxed);
            supervise(init_pid, fds[0])
        }
    }
}

/// The namespace's init: returns `true` in the child that becomes the
/// image; otherwise waits for it and reports its status to the supervisor.
/// It keeps every signal blocked, and takes one only when the supervisor
/// asks through `drain` (see `group_signals`).
fn init(pid: u32, report: i32, drain: i32) -> bool {
    // SAFETY: `report` is our pipe's write end.
    let mut report = unsafe { std::fs::File::from_raw_fd(report) };
    let fail = |report: &mut std::fs::File, msg: String| -> ! {
        let _ = report.write_all(format!("F{msg}").as_bytes());
        std::process::exit(0);
    };
    // (Its parent lies outside the namespace, so getppid() says 0 and
    // cannot tell whether the supervisor died before this call; the
    // window is a few instructions long.)
    // SAFETY: a plain prctl call.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // A /proc of the new PID namespace, in a mount namespace of init's own
    // (the supervisor's /proc stays as it was).
    // SAFETY: unshare and mount with valid NUL-terminated strings.
    let mounted = unsafe {
        libc::unshare(libc::CLONE_NEWNS) == 0
            && libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                core::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                core::ptr::null(),
            ) == 0
            && libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                core::ptr::null(),
            ) == 0
    };
    if !mounted {
        fail(
            &mut report,
            format!(
                "cannot mount /proc in the new namespaces: {}",
                std::io::Error::last_os_error()
            ),
        );
    }
    let set_tid = [pid as libc::pid_t];
    let mut args = [0u64; 10];
    args[4] = libc::SIGCHLD as u64; // exit_signal
    args[8] = set_tid.as_ptr() as u64;
    args[9] = 1;
    // SAFETY: clone3 without CLONE_VM is a fork; `args` and `set_tid` outlive it.
    let child = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_ptr(),
            core::mem::size_of_val(&args),
        )
    };
    if child < 0 {
        fail(
            &mut report,
            format!("cannot take PID {pid}: {}", std::io::Error::last_os_error()),
        );
    }
    if child == 0 {
        drop(report);
        // SAFETY: closing init's end of the drain pipe, ours.
        unsafe { libc::close(drain) };
        return true;
    }
    let child = child as i32;
    // Signals stay blocked (since `enter`): one that reached the whole
    // group waits here, pending, for the supervisor to see.
    std::thread::spawn(move || super::group_signals::drain_loop(drain));
    loop {
        let mut status = 0;
        // SAFETY: waiting for any child (init also reaps orphans).
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == child {
            let _ = report
                .write_all(b"S")
                .and_then(|_| report.write_all(&status.to_ne_bytes()));
            // Init's end kills everything in the namespace: a snapshot's
            // writer, orphaned to init, finishes its image first.
            wait_for_writers();
            std::process::exit(0);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            std::process::exit(0);
        }
    }
}

/// In init, once the restored process has ended: reaps children until no
/// snapshot writer (`dump::snapshot`, named `migrate-writer` before it is
/// cloned) is left among them. Other orphans (daemons the program left)
/// end with the namespace, as before.
fn wait_for_writers() {
    while writer_left() {
        let mut status = 0;
        // SAFETY: waiting for any child of init.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Whether a child of init (PID 1 here) is a snapshot writer still
/// running (a zombie one is reaped by the next wait).
fn writer_left() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok).any(|e| {
        let name = e.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|c| c.is_ascii_digit()))
        {
            return false;
        }
        let Ok(stat) = std::fs::read(e.path().join("stat")) else {
            return false;
        };
        let (Some(open), Some(close)) = (
            stat.iter().position(|&c| c == b'('),
            stat.iter().rposition(|&c| c == b')'),
        ) else {
            return false;
        };
        let mut rest = stat[close + 1..]
            .split(|&c| c == b' ')
            .filter(|f| !f.is_empty());
        let (state, ppid) = (rest.next(), rest.next());
        &stat[open + 1..close] == b"migrate-writer" && ppid == Some(b"1") && state != Some(b"Z")
    })
}

/// Waits for init's report and ends as the restored process ended.
fn supervise(init_pid: i32, report: i32) -> ! {
    INIT.store(init_pid, Relaxed);
    forward_signals();
    set_mask(libc::SIG_SETMASK, &empty_set());
    super::lazy::check_in_supervisor(init_pid);
    // SAFETY: `report` is our pipe's read end.
    let mut report = unsafe { std::fs::File::from_raw_fd(report) };
    let mut msg = Vec::new();
    loop {
        let mut buf = [0u8; 512];
        match report.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(init_pid, &mut status, 0) } < 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    {}
    let status = match msg.first() {
        Some(b'S') if msg.len() >= 5 => i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]),
        // Init could not take the PID (no /proc of its own, set_tid
        // refused). This process already entered the namespaces, whose init
        // is gone, so it could not fork any more: stop here and say how to
        // restore without them.
        Some(b'F') => {
            // Nothing was restored: what the checks made goes again.
            super::shared_files::undo();
            eprintln!(
                "migrate: restore: cannot keep PIDs ({}); MIGRATE_NAMESPACE=off restores with new PIDs",
                String::from_utf8_lossy(&msg[1..])
            );
            std::process::exit(super::exit::UNSUPPORTED);
        }
        // Init died without a word (killed): end the way it ended.
        _ => status,
    };
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: restoring the default action and raising the signal.
        unsafe {
            let mut dfl: libc::sigaction = core::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            crate::interpose::real_sigaction(sig, &dfl, core::ptr::null_mut());
            set_mask(libc::SIG_SETMASK, &empty_set());
            libc::raise(sig);
        }
        std::process::exit(128 + sig);
    }
    std::process::exit(libc::WEXITSTATUS(status));
}
