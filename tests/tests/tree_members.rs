//! Zombie and stopped members of a tree, and signals sent to a whole
//! restored tree (issue 9, Done-when 4 and 7).
//!
//! The program is `programs/cmembers.c`: `states` has two zombie
//! children (one exited 7, one killed by SIGUSR1) and two stopped ones
//! (one whose stop report its parent took, one whose report waits), and
//! after its steps prints what `/proc` and `waitpid` say of each, then
//! ends them; `signals N` has N children and every process counts the
//! SIGTERMs it gets.

use std::path::{Path, PathBuf};

use migrate_tests::*;

/// `program` started with a tree dump (`MIGRATE_CHILDREN=tree`) to
/// `tree.img` in `dir` (with `MIGRATE_LOG=info` if `info`), once it says
/// `ready`: the process and its image's path.
fn start_tree(dir: &TestDir, program: &Program, label: &str, info: bool) -> (Proc, PathBuf) {
    let image = dir.join("tree.img");
    let mut env = vec![
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_CHILDREN", "tree"),
    ];
    if info {
        env.push(("MIGRATE_LOG", "info"));
    }
    let mut p = dir.spawn(program, label, &env);
    p.wait_for_line("ready", |l| l == "ready");
    (p, image)
}

/// Dumps `p` once it prints step 5; waits for the image.
fn dump_at_step_5(p: &mut Proc, image: &Path) {
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(image, false);
}

/// The original `p` ends as an uninterrupted run (`expected`), and so
/// does its restore from `image`, which says nothing on stderr.
fn original_and_restore_finish(
    dir: &TestDir,
    program: &Program,
    p: &mut Proc,
    image: &Path,
    expected: &[String],
) {
    let status = p.wait();
    assert!(status.success(), "{}", p.describe());
    assert_eq!(p.stdout_lines(), expected, "{}", p.describe());
    let mut restored = dir.restore(program, "restored", image, &[("MIGRATE_LOG", "error")]);
    finish_restored(&mut restored, p, expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// The last step `p` printed (0: none).
fn last_step(p: &Proc) -> u64 {
    p.stdout_lines()
        .iter()
        .rev()
        .find_map(|l| {
            l.strip_prefix("step ")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0)
}

/// A tree dump of `cmembers states` records the two zombies in the
/// parent's image and dumps the two stopped children (continued for the
/// dump, stopped again after it, their reports as they were: the
/// original goes on to print exactly an uninterrupted run's lines, no
/// SIGCHLD among them). Everything killed, the restore brings the
/// zombies back as zombies with their statuses, the stopped children
/// stopped, one report waiting and one not, and the program ends exactly
/// as an uninterrupted run.
#[test]
fn zombie_and_stopped_children_come_back_as_such() {
    let dir = TestDir::new("members-states");
    let program = Program::members("states", None);
    let (mut p, image) = start_tree(&dir, &program, "states", true);
    let expected = reference(&program);
    let kids = children_of(p.pid());
    assert_eq!(kids.len(), 4, "{kids:?}\n{}", p.describe());
    dump_at_step_5(&mut p, &image);
    // Zombies have no section of their own: the root and the two stopped
    // (siblings in the order they claimed their slots, which is theirs).
    let tree = dumpfmt::TreeFile::open(&image).expect("a tree image");
    let mut pids: Vec<u32> = tree.tree.members.iter().map(|m| m.pid).collect();
    // The root first; its children in the order they took part.
    pids[1..].sort_unstable();
    let mut stopped = [kids[2] as u32, kids[3] as u32];
    stopped.sort_unstable();
    assert_eq!(
        pids,
        [p.pid() as u32, stopped[0], stopped[1]],
        "{}",
        p.describe()
    );
    // `migrate inspect` shows what each image records.
    let inspect = |img: &std::path::Path| {
        let out = std::process::Command::new(shim_path().with_file_name("migrate"))
            .arg("inspect")
            .arg(img)
            .output()
            .expect("run migrate inspect");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = inspect(&image);
    for want in [
        format!("zombie child {}: exited 7", kids[0]),
        format!("zombie child {}: killed by signal 10", kids[1]),
    ] {
        assert!(text.contains(&want), "no {want:?} in:\n{text}");
    }
    for want in [
        "stopped by signal 0 (its parent had taken the report)",
        "stopped by signal 19 (its parent had not taken the report)",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    // The stopped children are stopped again once the dump is over.
    for &k in &kids[2..] {
        wait_until("the stopped child is stopped again", &p, || {
            state_of(k) == Some('T')
        });
    }
    // The original goes on as if nothing had happened.
    original_and_restore_finish(&dir, &program, &mut p, &image, &expected);
}

/// A child stopped by SIGTSTP (as Ctrl-Z stops a job), whose stop report
/// its parent has not taken (`cmembers tstp`), stays stopped by SIGTSTP:
/// after a tree dump the original's `waitpid(WUNTRACED)` says signal 20,
/// and so does the restored one's (both once said 19: the member stopped
/// again with SIGSTOP whatever had stopped it).
#[test]
fn a_child_stopped_by_sigtstp_stays_stopped_by_sigtstp() {
    let dir = TestDir::new("members-tstp");
    let program = Program::members("tstp", None);
    let (mut p, image) = start_tree(&dir, &program, "tstp", false);
    let expected = reference(&program);
    assert!(
        expected
            .iter()
            .any(|l| l == "child waitpid stopped by signal 20"),
        "{expected:?}"
    );
    let kids = children_of(p.pid());
    assert_eq!(kids.len(), 1, "{kids:?}\n{}", p.describe());
    dump_at_step_5(&mut p, &image);
    original_and_restore_finish(&dir, &program, &mut p, &image, &expected);
}

/// A zombie child whose PID is still the process group of a live child
/// (`cmembers leader`) fails the tree dump with a line naming it: the
/// restore could not give that group its leader back. The program goes
/// on unharmed.
#[test]
fn zombie_leading_a_live_group_fails_the_dump_naming_it() {
    let dir = TestDir::new("members-leader");
    let program = Program::members("leader", None);
    let (mut p, image) = start_tree(&dir, &program, "leader", false);
    let expected = reference(&program);
    let kids = children_of(p.pid());
    assert_eq!(kids.len(), 2, "{kids:?}\n{}", p.describe());
    p.dump_signal();
    let named = format!(
        "child {} (exited, not waited for) still leads the process group or session of 1 live processes",
        kids[0]
    );
    expect_dump_failure(&mut p, &image, &[], &[&named], &expected);
}

/// What each process of a restored `cmembers signals N` printed about
/// SIGTERM, sorted, and the restored process's whole output.
fn sigterm_lines(restored: &Proc) -> Vec<String> {
    let mut got: Vec<String> = restored
        .stdout_lines()
        .into_iter()
        .filter(|l| l.contains(" got "))
        .collect();
    got.sort();
    got
}

/// Dumps `cmembers signals N` as a tree (N > 0) or alone, kills it, and
/// restores it (in a session of its own, so that its process group is the
/// supervisor's and the restored processes', and no one else's); returns
/// the restored process once it steps.
fn restored_signals(dir: &TestDir, n: u32) -> Proc {
    let program = Program::members("signals", Some(n));
    let (mut p, image) = start_tree(dir, &program, "signals", true);
    let kids = children_of(p.pid());
    assert_eq!(kids.len(), n as usize, "{kids:?}\n{}", p.describe());
    dump_at_step_5(&mut p, &image);
    let env = [("MIGRATE_LOG", "error".to_string())];
    p.kill();
    for k in kids {
        send_signal(k, libc::SIGKILL);
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut restored = dir.restore(&program.wrapped(&["setsid"]), "restored", &image, &env);
    // A step the original never printed: the restored program runs.
    restored.wait_for_step(last_step(&p) + 2);
    restored
}

/// `kill -TERM -PGID` of a restored tree (a parent and two children, in
/// the supervisor's process group) delivers one SIGTERM to each process:
/// not a second one to the parent through the supervisor's forwarding.
#[test]
fn group_sigterm_reaches_each_restored_process_once() {
    let dir = TestDir::new("members-group-term");
    let mut restored = restored_signals(&dir, 2);
    send_signal(-restored.pid(), libc::SIGTERM);
    let status = restored.wait();
    assert!(status.success(), "{}", restored.describe());
    assert_eq!(
        sigterm_lines(&restored),
        [
            "child 1 got 1 SIGTERM",
            "child 2 got 1 SIGTERM",
            "parent got 1 SIGTERM"
        ],
        "{}",
        restored.describe()
    );
}

/// A SIGTERM sent to the supervisor's PID alone reaches the restored
/// parent once, through the supervisor, and none of its children.
#[test]
fn sigterm_to_the_supervisor_reaches_the_restored_root_once() {
    let dir = TestDir::new("members-pid-term");
    let mut restored = restored_signals(&dir, 2);
    send_signal(restored.pid(), libc::SIGTERM);
    let status = restored.wait();
    assert!(status.success(), "{}", restored.describe());
    assert_eq!(
        sigterm_lines(&restored),
        [
            "child 1 got 0 SIGTERM",
            "child 2 got 0 SIGTERM",
            "parent got 1 SIGTERM"
        ],
        "{}",
        restored.describe()
    );
}

/// A restored single process (no children): a group SIGTERM arrives once,
/// and so does one sent to the supervisor's PID.
#[test]
fn group_sigterm_reaches_a_restored_single_process_once() {
    for (label, group) in [("group", true), ("pid", false)] {
        let dir = TestDir::new(&format!("members-single-term-{label}"));
        let mut restored = restored_signals(&dir, 0);
        let pid = restored.pid();
        send_signal(if group { -pid } else { pid }, libc::SIGTERM);
        let status = restored.wait();
        assert!(status.success(), "{label}: {}", restored.describe());
        assert_eq!(
            sigterm_lines(&restored),
            ["parent got 1 SIGTERM"],
            "{label}: {}",
            restored.describe()
        );
    }
}

/// Whether every one of `pids` is in state `want` (`T`: stopped) or,
/// with `!stopped`, none of them is.
fn all_stopped(pids: &[i32], stopped: bool) -> bool {
    pids.iter().all(|&p| (state_of(p) == Some('T')) == stopped)
}

/// Writes `bytes` to the terminal's master side, as typed keys.
fn type_keys(master: &std::fs::File, bytes: &[u8]) {
    use std::io::Write;
    let mut m = master;
    m.write_all(bytes).expect("write to the pty master");
}

/// Terminal job control of a restored tree (a parent and two children),
/// run as the foreground job of a real terminal (`programs/cjobctl.c`, a
/// small shell, holds the pty as its controlling terminal): Ctrl-Z stops
/// every restored process and the supervisor (so the shell sees its job
/// stopped), SIGCONT to the job's group continues them all, Ctrl-C then
/// reaches each process once, and the restored parent, still in the
/// foreground group, reads a line from the terminal.
#[test]
fn terminal_job_control_reaches_each_restored_process_once() {
    use std::os::fd::FromRawFd;
    let dir = TestDir::new("members-tty");
    let program = Program::members("tty", Some(2));
    let (mut p, image) = start_tree(&dir, &program, "tty", true);
    let kids = children_of(p.pid());
    dump_at_step_5(&mut p, &image);
    p.kill();
    for &k in &kids {
        send_signal(k, libc::SIGKILL);
    }

    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills two descriptors; no name, termios or size.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are ours alone.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::process::Stdio::from(std::os::fd::OwnedFd::from_raw_fd(slave)),
        )
    };
    let shell = program.wrapped(&[Program::jobctl_path()]);
    let mut restored = dir.restore_with_stdin(
        &shell,
        "restored",
        &image,
        &[("MIGRATE_LOG", "error")],
        slave,
    );
    restored.wait_for_step(last_step(&p) + 2);
    // The shell's job: the supervisor, its init, the restored parent and
    // its two children.
    let supervisor = children_of(restored.pid())[0];
    let init = children_of(supervisor)[0];
    let root = children_of(init)[0];
    let mut job = vec![supervisor, root];
    job.extend(children_of(root));
    assert_eq!(job.len(), 4, "{job:?}\n{}", restored.describe());

    type_keys(&master, b"\x1a");
    wait_until("Ctrl-Z stops the whole job", &restored, || {
        all_stopped(&job, true)
    });
    restored.wait_for_stderr_line("the shell sees its job stopped", |l| {
        l == "job stopped by signal 20"
    });
    // `fg`: the shell continues the job's group.
    send_signal(-supervisor, libc::SIGCONT);
    wait_until("SIGCONT continues the whole job", &restored, || {
        all_stopped(&job, false)
    });
    // Ctrl-C, then a line the parent reads once it took the signal.
    type_keys(&master, b"\x03hello\n");
    let status = restored.wait();
    assert!(status.success(), "{}", restored.describe());
    let out = restored.stdout_lines();
    let mut got: Vec<&str> = out
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains(" got ") || l.starts_with("read: "))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "child 1 got 1 SIGINT",
            "child 2 got 1 SIGINT",
            "parent got 1 SIGINT",
            "read: hello"
        ],
        "{}",
        restored.describe()
    );
}

/// A tree dump of a parent whose only child is a zombie (`cchildren
/// zombie`: the child exited 7, the parent reaps it at its end) writes one
/// image, the zombie in it; the restore brings the zombie back by itself
/// (no children's images to name) and the parent reaps it with its
/// status. Zombies keep their PIDs, so without the PID namespace the
/// restore is refused before anything runs.
#[test]
fn a_zombie_only_child_comes_back_with_its_parent_alone() {
    let dir = TestDir::new("members-zombie-only");
    let program = Program::children("zombie");
    let (mut p, image) = start_tree(&dir, &program, "zombie", false);
    let expected = reference(&program);
    dump_at_step_5(&mut p, &image);
    p.kill();
    let mut off = dir.restore(&program, "no-ns", &image, &[("MIGRATE_NAMESPACE", "off")]);
    let status = off.wait();
    assert_eq!(status.code(), Some(70), "{}", off.describe());
    assert_eq!(off.stdout_raw(), "", "{}", off.describe());
    assert!(
        off.stderr()
            .contains("children that exited and were not waited for need the PID namespace"),
        "{}",
        off.describe()
    );
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// A stopped child with a signal pending that continuing it for the dump
/// would deliver at once (SIGUSR1, numbered below the dump signal, so
/// taken before it) fails the tree dump with a line naming it, instead of
/// letting the program see the signal early; the parent goes on, and no
/// image is left.
#[test]
fn stopped_child_with_a_signal_pending_fails_the_dump_naming_it() {
    let dir = TestDir::new("members-stopped-pending");
    let program = Program::children("stopped");
    let (mut p, image) = start_tree(&dir, &program, "stopped", false);
    let child = children_of(p.pid())[0];
    send_signal(child, libc::SIGUSR1);
    p.dump_signal();
    let line = p.wait_for_stderr_line("the dump failure", |l| l.starts_with(DUMP_FAILED));
    let named = format!("child {child} is stopped with signal 10 pending");
    assert!(line.contains(&named), "{line}\n{}", p.describe());
    p.wait_for_step(10);
    assert_eq!(state_of(child), Some('T'), "{}", p.describe());
    p.kill();
    send_signal(child, libc::SIGKILL);
    assert!(!image.exists(), "{}", p.describe());
}
