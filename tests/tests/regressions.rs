//! Regression tests for bugs a code review found in the shim, one test
//! each: the dump on a thread with a small stack, children forked during
//! dumps, `sigtimedwait`/signalfd and the dump signal, an epoll set watching
//! stdin restored with another stdin, duplicated descriptors, bytes spread
//! over two pipe buffers, a memfd sealed against writes but mapped
//! writable, an AIO ring, and 600 eventfds.
//!
//! The programs are `programs/csmallstack.c`, `cforker.c`, `csigwait.c`,
//! `cstdinpoll.c` and `cfdregress.c` (one descriptor case per mode).

use std::collections::HashSet;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use migrate_tests::*;

/// [`restore_and_check`], and the restored process must print nothing on
/// stderr. Returns the restored process.
fn restore_quietly(
    dir: &TestDir,
    program: &Program,
    label: &str,
    image: &Path,
    original: &Proc,
    expected: &[String],
) -> Proc {
    let restored = restore_and_check(dir, program, label, image, original, expected);
    expect_quiet(&restored, original);
    restored
}

/// [`finish_restored`], and the restored process must have printed nothing
/// on stderr.
fn finish_quietly(restored: &mut Proc, original: &Proc, expected: &[String]) {
    finish_restored(restored, original, expected);
    expect_quiet(restored, original);
}

/// Checks that the restored process (of an image of `original`) printed
/// nothing on stderr.
fn expect_quiet(restored: &Proc, original: &Proc) {
    assert_eq!(
        restored.stderr(),
        "",
        "{} printed on stderr\n{}",
        restored.label,
        describe_all(&[original, restored])
    );
}

/// Checks that one of `lines` is `want` (`context` goes into the message).
fn expect_line(lines: &[String], want: &str, context: &str) {
    assert!(
        lines.iter().any(|l| l == want),
        "no line {want:?} in the output\n{context}"
    );
}

/// (1) A worker thread with a 32 KiB stack takes the dump signal, once
/// raised by itself and once sent to it alone (tgkill from the test):
/// the dump runs on a stack of its own, so the process does not crash,
/// both images appear, and each restores to the right end (the first
/// resumes right after the `raise`).
#[test]
fn small_stack_thread_takes_the_dump() {
    let dir = TestDir::new("small-stack");
    let expected = reference(&Program::small_stack(false));
    assert_eq!(
        expected.get(1).map(String::as_str),
        Some("worker stack 32768")
    );
    let program = Program::small_stack(true);
    let mut original = spawn_numbered(&dir, &program);
    // The worker raises SIGUSR2 itself after printing step 10.
    let raised = numbered_image(&dir, 1);
    let first = original.wait_for_image(&raised, false);
    original.wait_for_step(20);
    let small: Vec<i32> = threads_of(original.pid())
        .into_iter()
        .filter(|(_, name)| name == "small")
        .map(|(tid, _)| tid)
        .collect();
    assert_eq!(small.len(), 1, "{}", original.describe());
    // SAFETY: tgkill(2) takes plain integers; the pid is our unreaped child
    // (it printed step 20 and has not exited: it runs until step 80).
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, original.pid(), small[0], libc::SIGUSR2) };
    assert_eq!(rc, 0, "tgkill: {}", std::io::Error::last_os_error());
    let sent = numbered_image(&dir, 2);
    let second = original.wait_for_image(&sent, false);
    let at_image = original.stdout_lines().len();
    original.wait_for_lines(at_image + 2);
    assert!(
        original.poll_exit().is_none(),
        "the process exited after its dumps\n{}",
        original.describe()
    );
    original.kill();
    assert_eq!(
        original.stderr(),
        "",
        "the dumped process printed on stderr\n{}",
        original.describe()
    );
    assert_eq!(first.threads, 2, "{}", original.describe());
    assert_eq!(second.threads, 2, "{}", original.describe());

    let r1 = restore_quietly(
        &dir,
        &program,
        "restored-raised",
        &raised,
        &original,
        &expected,
    );
    let out = r1.stdout_lines();
    assert!(
        out[0].starts_with("step 11 "),
        "the image the worker raised after step 10 should resume at step 11, not at {:?}\n{}",
        out[0],
        describe_all(&[&original, &r1])
    );
    restore_quietly(
        &dir,
        &program,
        "restored-tgkill",
        &sent,
        &original,
        &expected,
    );
}

/// The PIDs of the live children of `ppid` (scanning `/proc`: the kernel
/// here may lack `/proc/PID/task/TID/children`), by PID.
fn children_of(ppid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| parent_of(pid) == Some(ppid))
        .collect();
    out.sort_unstable();
    out
}

/// The parent PID of a process that has not exited (None if it is gone or
/// a zombie).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    rest.next()?.parse().ok()
}

/// A child of the forking program that the test sent the dump signal.
struct Signalled {
    pid: i32,
    pidfd: OwnedFd,
    /// After which dump of the parent.
    round: u64,
    sent: Instant,
    /// Its name when last seen alive (`waiter`, `sleeper`, or the forker's
    /// before it got its verdict).
    name: String,
}

/// The name (`comm`) of a process, if it can still be read.
fn name_of(pid: i32) -> Option<String> {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_string())
}

/// Opens a pidfd for `pid` if it is still a live child of `ppid` (checked
/// after opening, so the pidfd is that child's), and sends it SIGUSR2
/// through the pidfd. None if it had exited already.
fn signal_child(pid: i32, ppid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes plain integers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the fd was just returned by pidfd_open and is ours alone.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if parent_of(pid) != Some(ppid) {
        return None;
    }
    send_through(&pidfd, libc::SIGUSR2).then_some(pidfd)
}

/// pidfd_send_signal(2); whether it was sent.
fn send_through(pidfd: &OwnedFd, sig: i32) -> bool {
    // SAFETY: pidfd_send_signal(2) with a live pidfd, no siginfo (NULL)
    // and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

/// Waits until the process of `c` has exited, or `deadline`, noting its
/// name while it lives.
fn exits_by(c: &mut Signalled, deadline: Instant) -> bool {
    loop {
        let mut pfd = libc::pollfd {
            fd: c.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 5) };
        if n > 0 {
            return true;
        }
        if let Some(name) = name_of(c.pid) {
            c.name = name;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// What the kernel says about a (hung) process, for the failure message.
fn proc_state(pid: i32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let pick: Vec<&str> = status
        .lines()
        .filter(|l| {
            [
                "Name:", "State:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .collect();
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    format!("{} wchan={wchan}", pick.join(" "))
}

/// (2) A thread forks children back to back while the parent is dumped ten
/// times. A child whose fork() blocked the forker (a dump parked it then:
/// the child may have been forked while the dump was starting, and have
/// inherited its state) is told to live on for half a second as a
/// `waiter`; every 100th lives 300 ms as a `sleeper`; the rest exit at once.
/// Right after each dump, the children that appeared around it and two
/// older ones are sent the dump signal: each must write an image of its own
/// or exit on its own within 5 s (a waiter, signalled long before its half
/// second is up, must write one), none may hang. The parent's output is
/// unchanged (every child exited with status 0), a child's image restores,
/// and the parent's last image restores to the right end.
#[test]
fn fork_during_dumps() {
    const DUMPS: u64 = 10;
    const EVERY: u64 = 9;
    /// At most this many new children are signalled per dump.
    const NEW: usize = 6;
    let dir = TestDir::new("fork-dumps");
    let program = Program::forker();
    let expected = reference(&program);
    let pattern = dir.join("img-%p-%n.img");
    // The parent is dumped alone on purpose: this is about the children
    // forked around its dumps, which its restore does not bring back.
    let mut parent = dir.spawn(
        &program,
        "parent",
        &[
            ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
            ("MIGRATE_CHILDREN", "leave"),
        ],
    );
    let ppid = parent.pid();
    let mut signalled: Vec<Signalled> = Vec::new();
    let mut last_image = PathBuf::new();
    for n in 1..=DUMPS {
        parent.wait_for_step(n * EVERY);
        let before: HashSet<i32> = children_of(ppid).into_iter().collect();
        parent.dump_signal();
        last_image = dir.join(&format!("img-{ppid}-{n}.img"));
        parent.wait_for_image(&last_image, false);
        let after = children_of(ppid);
        let new = after.iter().filter(|p| !before.contains(p)).take(NEW);
        let old = after.iter().filter(|p| before.contains(p)).rev().take(2);
        for &pid in new.chain(old) {
            let name = name_of(pid).unwrap_or_default();
            if let Some(pidfd) = signal_child(pid, ppid) {
                signalled.push(Signalled {
                    pid,
                    pidfd,
                    round: n,
                    sent: Instant::now(),
                    name,
                });
            }
        }
    }
    let mut hung = Vec::new();
    let mut lost = Vec::new();
    let mut imaged = Vec::new();
    for c in &mut signalled {
        let deadline = c.sent + Duration::from_secs(5);
        if !exits_by(c, deadline) {
            hung.push(format!(
                "child {} (signalled after dump {}): {}",
                c.pid,
                c.round,
                proc_state(c.pid)
            ));
            send_through(&c.pidfd, libc::SIGKILL);
            continue;
        }
        // Its snapshot's writer may outlive it (the dump signal cuts a
        // waiter's sleep short) and completes its image.
        migrate_tests::procs::wait_for_writers(dir.path());
        let prefix = format!("img-{}-", c.pid);
        let images: Vec<String> = list_files(dir.path())
            .into_iter()
            .filter(|f| f.starts_with(&prefix))
            .collect();
        assert!(
            images.len() <= 1 && images.iter().all(|f| f.ends_with(".img")),
            "child {}: {images:?}\n{}",
            c.pid,
            parent.describe()
        );
        match images.first() {
            Some(f) => imaged.push(dir.join(f)),
            None if c.name == "waiter" => lost.push(format!(
                "waiter {} (signalled after dump {}) exited without an image",
                c.pid, c.round
            )),
            None => {}
        }
    }
    let waiters = signalled.iter().filter(|c| c.name == "waiter").count();
    eprintln!(
        "{} children signalled ({waiters} waiters): {} wrote an image, {} exited on their own, {} hung",
        signalled.len(),
        imaged.len(),
        signalled.len() - imaged.len() - hung.len(),
        hung.len()
    );
    assert!(
        hung.is_empty() && lost.is_empty(),
        "children that got the dump signal hung or lost it:\n{}\n{}\n{}",
        hung.join("\n"),
        lost.join("\n"),
        parent.describe()
    );
    assert!(
        !imaged.is_empty(),
        "none of the {} children signalled wrote an image (the test did not exercise them)\n{}",
        signalled.len(),
        parent.describe()
    );
    for img in &imaged {
        verify_image(img, &parent.describe());
    }
    let full = parent.wait_success();
    assert_eq!(
        full,
        expected,
        "the dumps changed what the parent printed\n{}",
        parent.describe()
    );
    assert_eq!(
        parent.stderr(),
        "",
        "the parent or a child printed on stderr\n{}",
        parent.describe()
    );
    // A child's image is a process of its own: restored, it finishes its
    // sleep and exits 0, printing nothing.
    let mut child = dir.restore(&program, "restored-child", &imaged[0], &[]);
    let status = child.wait();
    let context = format!("restoring {}\n{}", imaged[0].display(), child.describe());
    assert!(status.success(), "{context}");
    assert_eq!(child.stdout_raw(), "", "{context}");
    assert_eq!(child.stderr(), "", "{context}");
    restore_quietly(&dir, &program, "restored", &last_image, &parent, &expected);
}

/// Waits for `p` to write `image`, failing as soon as it prints that it
/// took a signal (the dump's, which then never comes).
fn wait_for_image_no_signal_taken(p: &mut Proc, image: &Path) {
    let deadline = Instant::now() + TIMEOUT;
    while !image.exists() && p.poll_exit().is_none() && Instant::now() < deadline {
        expect_no_signal_taken(p);
        std::thread::sleep(Duration::from_millis(5));
    }
    expect_no_signal_taken(p);
    p.wait_for_image(image, false);
}

/// Fails if any line says the program took a signal.
fn expect_no_signal_taken(p: &Proc) {
    assert!(
        !p.stdout_lines().iter().any(|l| l.contains("GOT SIGNAL")),
        "{} took a signal through sigtimedwait or its signalfd\n{}",
        p.label,
        p.describe()
    );
}

/// (3) Every signal blocked and waited for with `sigtimedwait` on the full
/// set and a signalfd of the full set: neither takes the dump signal.
/// Two dumps land in the running program, which never sees SIGUSR2 and
/// ends as an uninterrupted run; both images restore to the right end, and
/// the restored process (still waiting on the full set) can be dumped
/// again.
#[test]
fn sigtimedwait_cannot_take_the_dump_signal() {
    let dir = TestDir::new("sigtimedwait");
    let program = Program::sigwait();
    let expected = reference(&program);
    let mut original = spawn_numbered(&dir, &program);
    let images = [numbered_image(&dir, 1), numbered_image(&dir, 2)];
    for (img, step) in images.iter().zip([5, 15]) {
        original.wait_for_step(step);
        original.dump_signal();
        wait_for_image_no_signal_taken(&mut original, img);
    }
    let out = original.wait_success();
    expect_no_signal_taken(&original);
    assert_eq!(
        out,
        expected,
        "the dumps changed what the program printed\n{}",
        original.describe()
    );
    assert_eq!(original.stderr(), "", "{}", original.describe());

    let mut first = dir.restore(&program, "restored-1", &images[0], &[]);
    let mut again = dir.restore(&program, "restored-2", &images[1], &[]);
    again.wait_for_line("a `step N` line", |l| step_of(l).is_some());
    again.dump_signal();
    wait_for_image_no_signal_taken(&mut again, &numbered_image(&dir, 3));
    finish_quietly(&mut first, &original, &expected);
    finish_quietly(&mut again, &original, &expected);
    expect_no_signal_taken(&again);
}

/// The fds an epoll instance of process `pid` watches (`tfd:` lines of
/// its fdinfo).
fn epoll_watches(pid: i32, epfd: i32) -> Vec<i32> {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{epfd}"))
        .unwrap_or_else(|e| panic!("read fdinfo of epoll fd {epfd}: {e}"));
    info.lines()
        .filter_map(|l| l.strip_prefix("tfd:"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// (4) An epoll set watching fd 0 (a pipe the test holds open) and a
/// timerfd, dumped and killed; the image is restored with stdin from
/// `/dev/null` and from a regular file (neither can be watched by epoll:
/// EPERM) and, as a control, from a pipe. Every restore succeeds and ends
/// as an uninterrupted run.
#[test]
fn epoll_watching_stdin_restored_with_dev_null() {
    let dir = TestDir::new("epoll-stdin");
    let program = Program::stdin_poll();
    let expected = reference(&program);
    let image = dir.join("stdin.img");
    let (stdin_rd, stdin_wr) = pipe();
    let mut original = dir.spawn_with_stdin(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
        Stdio::from(stdin_rd),
    );
    let i = original.wait_for_line("`epoll fd=N`", |l| l.starts_with("epoll fd="));
    let epfd: i32 = original.stdout_lines()[i]["epoll fd=".len()..]
        .parse()
        .expect("epoll fd number");
    original.wait_for_step(10);
    let watched = epoll_watches(original.pid(), epfd);
    assert!(
        watched.contains(&0),
        "the epoll set should watch stdin (a pipe): it watches {watched:?}\n{}",
        original.describe()
    );
    original.dump_signal();
    original.wait_for_image(&image, false);
    original.kill();
    drop(stdin_wr);

    let file = dir.join("stdin.txt");
    fs::write(&file, "a regular file as stdin\n").unwrap();
    let (pipe_rd, pipe_wr) = pipe();
    let stdins: [(&str, Stdio); 3] = [
        ("restored-dev-null", Stdio::null()),
        (
            "restored-regular-file",
            Stdio::from(fs::File::open(&file).unwrap()),
        ),
        ("restored-pipe", Stdio::from(pipe_rd)),
    ];
    let mut restored: Vec<Proc> = stdins
        .into_iter()
        .map(|(label, stdin)| dir.restore_with_stdin(&program, label, &image, &[], stdin))
        .collect();
    for r in &mut restored {
        finish_quietly(r, &original, &expected);
    }
    drop(pipe_wr);
}

/// (5) Two descriptors of one socket (the reading end and its dup, with 5
/// bytes queued) and of one file (opened O_RDWR and dup'ed, written through
/// both in turn) come back as one each: the queued bytes are read once
/// through the dup (the original end then has nothing), bytes sent later
/// arrive through the dup, both file offsets stay equal, and the file ends
/// as in an uninterrupted run.
#[test]
fn dup_descriptors_share() {
    let (dir, work, r) = mode_roundtrip("dup", Program::fd_regress, "dup", Some("dup.txt"), 10);
    let context = describe_all(&[&r.original, &r.restored]);
    let out = r.restored.stdout_lines();
    assert!(
        out.iter().any(|l| l.starts_with("step 12 ")),
        "the dump was meant to land before step 12\n{context}"
    );
    expect_line(
        &out,
        "step 30 offsets 270 270 dup-read 5 'HELLO' then EAGAIN",
        &context,
    );
    let got = fs::read(work.join("dup.txt")).unwrap();
    let want = fs::read(dir.join("ref/dup.txt")).unwrap();
    assert!(
        got == want,
        "the file written through both descriptors differs from the uninterrupted run's ({} and {} bytes)\n{context}",
        got.len(),
        want.len()
    );
}

/// (6) A pipe holding 101 bytes in two buffers (1 left of a 4096-byte write,
/// then 100): the dump copies all of them, and the restored process reads
/// exactly 101 bytes with the same checksum as an uninterrupted run.
#[test]
fn pipe_partial_buffer() {
    let (_dir, _work, r) = mode_roundtrip("pipe101", Program::fd_regress, "pipe101", None, 10);
    let out = r.restored.stdout_lines();
    let context = describe_all(&[&r.original, &r.restored]);
    assert!(
        out.iter()
            .all(|l| step_of(l).is_none() || l.ends_with(" pipe holds 101")),
        "{context}"
    );
    assert!(
        out.last().is_some_and(|l| l.starts_with("done bytes=101 ")),
        "{context}"
    );
}

/// (7) A memfd mapped MAP_SHARED read-write and then sealed with
/// F_SEAL_FUTURE_WRITE: the restore succeeds (the mapping comes back
/// writable, the seal after it), writes through the mapping go on and show
/// through the fd, and write() through the fd and a new writable mapping
/// still fail with EPERM.
#[test]
fn memfd_future_write_seal_with_shared_mapping() {
    let (_dir, _work, r) = mode_roundtrip("memfd-seal", Program::fd_regress, "memfdseal", None, 10);
    let out = r.restored.stdout_lines();
    let context = describe_all(&[&r.original, &r.restored]);
    assert!(
        out.iter()
            .filter(|l| step_of(l).is_some())
            .all(|l| l.contains(" fd-sees-mapping=yes write=EPERM seals=0x10 ")),
        "{context}"
    );
    assert!(
        out.last()
            .is_some_and(|l| l.starts_with("done new-writable-mapping=EPERM ")),
        "{context}"
    );
}

/// (8) An AIO context (io_setup maps its ring) cannot be saved: the dump
/// fails with one line saying AIO, no image is left, and the program goes
/// on to its normal end.
#[test]
fn aio_ring_fails_dump() {
    let dir = TestDir::new("aio");
    let program = Program::fd_regress("aio", None);
    let expected = reference(&program);
    let image = dir.join("aio.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_line("`aio context ready`", |l| l == "aio context ready");
    p.wait_for_step(5);
    p.dump_signal();
    expect_dump_failure(&mut p, &image, &[], &["AIO"], &expected);
    assert_eq!(list_files(dir.path()), Vec::<String>::new());
}

/// (9) 600 eventfds, each with its own counter, dumped and restored: every
/// counter reads back right.
#[test]
fn many_eventfds() {
    let (_dir, _work, r) = mode_roundtrip("eventfds", Program::fd_regress, "eventfds", None, 10);
    let out = r.restored.stdout_lines();
    assert!(
        out.last().is_some_and(|l| l.starts_with("done right=600 ")),
        "{}",
        describe_all(&[&r.original, &r.restored])
    );
}
