//! Process trees (issue 9). Until a tree is dumped whole, a dump of a
//! process with children must not lose them silently: it fails with one
//! line naming each child (PID, executable, state) and the program goes on
//! unharmed, its children still its own; `MIGRATE_CHILDREN=leave` dumps the
//! process alone, and the `info` log names the children left out.
//!
//! `MIGRATE_CHILDREN=tree` dumps the whole tree into one image (format
//! 1.3: an index and one section per process), and `MIGRATE_RESTORE`
//! of that image restores every process (see `shim/src/restore/tree.rs`):
//! each restored parent forks its children with their PIDs, and
//! `waitpid` finds them.
//!
//! The program is `programs/cchildren.c`: one child, live, a zombie,
//! stopped or statically linked, and at the end the parent reaps it and
//! prints how it ended.

use std::fs;
use std::path::{Path, PathBuf};

use migrate_tests::*;

/// Starts `cchildren MODE` dumping to `image` with
/// `MIGRATE_CHILDREN=children` (and `extra`), and waits until its child is
/// in its state; returns the process and the child's PID.
fn start(
    dir: &TestDir,
    mode: &str,
    image: &Path,
    children: &str,
    extra: &[(&str, &str)],
) -> (Program, Proc, i32) {
    let program = Program::children(mode);
    let mut env = vec![
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_CHILDREN", children),
    ];
    env.extend_from_slice(extra);
    let mut p = dir.spawn(&program, mode, &env);
    p.wait_for_line("ready", |l| l == "ready");
    let children = children_of(p.pid());
    assert_eq!(children.len(), 1, "{children:?}\n{}", p.describe());
    (program, p, children[0])
}

/// A dump of `cchildren MODE` fails naming the child as `name` in `state`;
/// the program goes on and its child ends as in an uninterrupted run.
fn refused(mode: &str, name: &str, state: &str) {
    let dir = TestDir::new(&format!("tree-refused-{mode}"));
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, mode, &image, "refuse", &[]);
    let expected = reference(&program);
    p.dump_signal();
    let named = format!("{child} {name} ({state})");
    expect_dump_failure(
        &mut p,
        &image,
        &[],
        &["process trees are not supported yet", &named],
        &expected,
    );
}

/// A live child (blocked reading a pipe from its parent).
#[test]
fn dump_with_a_live_child_fails_naming_it() {
    refused("live", env!("MIGRATE_TEST_CCHILDREN"), "running");
}

/// A child that has exited and not been waited for: after the failed dump
/// the parent still reaps it with its status (7).
#[test]
fn dump_with_a_zombie_child_fails_naming_it() {
    refused("zombie", "cchildren", "exited, not waited for");
}

/// A stopped child: after the failed dump the parent continues it and it
/// exits 5.
#[test]
fn dump_with_a_stopped_child_fails_naming_it() {
    refused("stopped", env!("MIGRATE_TEST_CCHILDREN"), "stopped");
}

/// A statically linked child (which no `LD_PRELOAD` reaches): the line
/// also says it could not take part in a tree dump.
#[test]
fn dump_with_a_static_child_fails_naming_it() {
    refused(
        "static",
        env!("MIGRATE_TEST_CSTATIC"),
        "running; no libmigrate.so: statically linked, setuid, or not preloaded",
    );
}

/// `MIGRATE_CHILDREN=leave`: the dump succeeds, the `info` log names the
/// child left out, the program goes on unharmed; its restore has no child
/// (waitpid finds none) and otherwise ends as an uninterrupted run.
#[test]
fn leave_dumps_the_process_alone_naming_its_children() {
    let dir = TestDir::new("tree-leave");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "live", &image, "leave", &[("MIGRATE_LOG", "info")]);
    let expected = reference(&program);
    p.dump_signal();
    p.wait_for_image(&image, false);
    let line = p.wait_for_stderr_line("the children left out", |l| l.contains("alone"));
    let named = format!("{child} {} (running)", env!("MIGRATE_TEST_CCHILDREN"));
    assert!(
        line.contains("MIGRATE_CHILDREN=leave") && line.contains(&named),
        "the log line does not name {named:?}: {line:?}\n{}",
        p.describe()
    );
    let out = p.wait_success();
    assert_eq!(
        out,
        expected,
        "the dump changed the output\n{}",
        p.describe()
    );
    let without_child: Vec<String> = expected
        .iter()
        .map(|l| {
            if l.starts_with("child exited") {
                "child gone: No child processes".to_string()
            } else {
                l.clone()
            }
        })
        .collect();
    let mut restored = dir.restore(&program, "restored", &image, &[("MIGRATE_LOG", "error")]);
    let status = restored.wait();
    let context = describe_all(&[&p, &restored]);
    assert!(status.success(), "{context}");
    let lines = restored.stdout_lines();
    let k = check_segment(&without_child, &lines, "the restored process", &context);
    assert_eq!(k + lines.len(), without_child.len(), "{context}");
    assert_eq!(restored.stderr(), "", "{context}");
}

/// `MIGRATE_CHILDREN` takes `refuse`, `leave` or `tree` only.
#[test]
fn children_setting_is_checked() {
    let dir = TestDir::new("tree-setting");
    let program = Program::children("live");
    let mut p = dir.spawn(&program, "bad", &[("MIGRATE_CHILDREN", "keep")]);
    let status = p.wait();
    assert_eq!(status.code(), Some(64), "{}", p.describe());
    assert!(
        p.stderr()
            .contains("MIGRATE_CHILDREN=keep: expected refuse, leave or tree"),
        "{}",
        p.describe()
    );
}

/// The tree image at `image`, verified whole; its members' pids in order.
fn tree_pids(image: &std::path::Path, context: &Proc) -> Vec<u32> {
    match dumpfmt::TreeFile::verify(image) {
        Ok(s) => s.members.iter().map(|(m, _)| m.pid).collect(),
        Err(e) => panic!("{}: {e}\n{}", image.display(), context.describe()),
    }
}

/// `MIGRATE_CHILDREN=tree`: the dump signal sent to the parent stops the
/// parent and its child together and writes one image, a tree image
/// whose index lists both (the parent first) and nothing beside it; the
/// parent goes on unharmed. Both killed, the image restores both (the
/// parent forks the child with its PID) and they end as an uninterrupted
/// run, the child's exit status included.
#[test]
fn tree_dump_of_a_parent_and_child_restores_both() {
    let dir = TestDir::new("tree-dump");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "live", &image, "tree", &[]);
    let expected = reference(&program);
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&image, false);
    assert_eq!(
        tree_pids(&image, &p),
        [p.pid() as u32, child as u32],
        "{}",
        p.describe()
    );
    assert!(!dir.join(&format!("tree.img.{child}")).exists());
    p.kill();
    // SAFETY: kill(2) with plain integers; the child is an orphan now.
    unsafe { libc::kill(child, libc::SIGKILL) };
    let mut restored = dir.restore(&program, "restored", &image, &[("MIGRATE_LOG", "error")]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// A tree image keeps its processes' PIDs, so it needs the PID
/// namespace: without it the restore is refused before anything runs
/// (status 70), in one line.
#[test]
fn tree_image_needs_the_namespace() {
    let dir = TestDir::new("tree-restore-no-ns");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "live", &image, "tree", &[]);
    p.wait_for_step(3);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();
    send_signal(child, libc::SIGKILL);
    let mut r = dir.restore(&program, "no-ns", &image, &[("MIGRATE_NAMESPACE", "off")]);
    let status = r.wait();
    assert_eq!(status.code(), Some(70), "{}", r.describe());
    assert_eq!(r.stdout_raw(), "", "{}", r.describe());
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "{}", r.describe());
    assert!(
        err.contains("a tree image needs the PID namespace"),
        "{}",
        r.describe()
    );
}

/// `MIGRATE_CHILDREN=tree` with a pipe between the two (parent writes each
/// step's number, child prints the step line): the restore makes the pipe
/// once, with the bytes that were waiting in it, and gives each process
/// its end, so the child prints every step exactly once after the restore
/// and the output is an uninterrupted run's. (Were the pipe to come back
/// as if the other end had gone, the child would stop at once.)
#[test]
fn tree_dump_restores_the_pipe_between_parent_and_child() {
    let dir = TestDir::new("tree-pipe");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "pipe", &image, "tree", &[]);
    let expected = reference(&program);
    p.wait_for_step(10);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();
    // SAFETY: kill(2) with plain integers; the child is an orphan now.
    unsafe { libc::kill(child, libc::SIGKILL) };
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// A tree dump whose child cannot take part (statically linked) fails
/// naming it, before anything is sent to the child; the program goes on
/// unharmed and no image is left. (A zombie child is recorded by its
/// parent: see `tree_members.rs`.)
#[test]
fn tree_dump_fails_naming_a_child_that_cannot_take_part() {
    let dir = TestDir::new("tree-dump-refused-static");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "static", &image, "tree", &[]);
    let expected = reference(&program);
    p.dump_signal();
    let named = format!("child {child} cannot take part in a tree dump: no libmigrate.so");
    expect_dump_failure(&mut p, &image, &[], &[&named], &expected);
    assert!(
        !dir.join(&format!("tree.img.{child}")).exists(),
        "{}",
        p.describe()
    );
}

/// A tree dump whose child runs another program (here `/bin/cat`, with
/// the library preloaded, its stdin the pipe from its parent) takes it
/// (its section records `/bin/cat`); everything killed, the restore
/// brings the child back running `cat` on the pipe (see
/// `shim/src/restore/tree_exec.rs`), and the program ends as an
/// uninterrupted run.
#[test]
fn tree_dump_of_a_child_that_runs_another_program_restores_it() {
    let dir = TestDir::new("tree-dump-other-program");
    let image = dir.join("tree.img");
    let program = Program::children_running(Path::new("/bin/cat"));
    let mut p = dir.spawn(
        &program,
        "other",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_CHILDREN", "tree"),
        ],
    );
    p.wait_for_line("ready", |l| l == "ready");
    let child = children_of(p.pid())[0];
    let expected = reference(&program);
    p.wait_for_step(3);
    p.dump_signal();
    p.wait_for_image(&image, false);
    let tree = dumpfmt::TreeFile::open(&image).expect("a tree image");
    let cat = fs::canonicalize("/bin/cat").unwrap();
    assert_eq!(
        tree.sections[1].image.exe.path,
        cat.to_str().unwrap(),
        "{}",
        p.describe()
    );
    send_signal(p.pid(), libc::SIGSTOP);
    send_signal(child, libc::SIGKILL);
    p.kill();
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// A tree dump whose child never takes the dump signal (it blocks it with
/// the raw system call) fails after 5 s naming it, releases everyone, and
/// the program goes on unharmed, its child still its own.
#[test]
fn tree_dump_fails_naming_a_child_that_does_not_stop() {
    let dir = TestDir::new("tree-dump-blocked");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "blocked", &image, "tree", &[]);
    let expected = reference(&program);
    p.dump_signal();
    let named = format!("child {child} did not stop within 5 s");
    expect_dump_failure(&mut p, &image, &[], &[&named], &expected);
}

/// `MIGRATE_AFTER_DUMP=exit` with a tree: once the image is complete the
/// parent and the child exit; the two restore together to the end.
#[test]
fn tree_dump_with_exit_ends_both_and_restores() {
    let dir = TestDir::new("tree-dump-exit");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(
        &dir,
        "pipe",
        &image,
        "tree",
        &[("MIGRATE_AFTER_DUMP", "exit")],
    );
    let expected = reference(&program);
    p.wait_for_step(8);
    p.dump_signal();
    p.wait_for_image(&image, true);
    let status = p.wait();
    assert!(status.success(), "{}", p.describe());
    // The child exits on its own once its image is in place.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            std::time::Instant::now() < deadline,
            "child {child} did not exit\n{}",
            p.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(tree_pids(&image, &p).len(), 2);
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    finish_restored(&mut restored, &p, &expected);
}

/// Three generations (`cchildren chain`: the parent sends each step to
/// its child, which forwards it through a second pipe to its own child,
/// which prints it): a tree dump stops all three before any writes, lists
/// them in pre-order in the one image's index, and the restore rebuilds the chain (each parent forks its own child,
/// both pipes made once and inherited) to the end of an uninterrupted
/// run: the grandchild exits 3, the child 4.
#[test]
fn tree_dump_of_three_generations_restores_all() {
    let dir = TestDir::new("tree-chain");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "chain", &image, "tree", &[]);
    let expected = reference(&program);
    p.wait_for_step(10);
    let grandchildren = children_of(child);
    assert_eq!(
        grandchildren.len(),
        1,
        "{grandchildren:?}\n{}",
        p.describe()
    );
    let grandchild = grandchildren[0];
    p.dump_signal();
    p.wait_for_image(&image, false);
    // Pre-order: each parent before its children.
    assert_eq!(
        tree_pids(&image, &p),
        [p.pid() as u32, child as u32, grandchild as u32],
        "{}",
        p.describe()
    );
    p.kill();
    for pid in [child, grandchild] {
        // SAFETY: kill(2) with plain integers; orphans of the killed parent.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// Whether a thread of `pid` waits on a shared futex (`futex(addr,
/// FUTEX_WAIT, ...)`, op 0): in a tree dump only the control block's waits
/// are shared ones (parked threads wait on private futexes), so this says
/// the process waits for the other members.
fn waits_on_the_control_block(pid: i32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| {
            let f: Vec<&str> = s.split_whitespace().collect();
            f.len() > 2 && f[0] == "202" && f[2] == "0x0"
        })
    })
}

/// Starts a tree dump of `cchildren held` and holds it where the child
/// is parked and waits for the parent's word, the parent stopped
/// (SIGSTOP) while it waits for the child to park: the child takes the
/// dump signal only once the parent is stopped (SIGUSR1 lets it).
fn hold_a_tree_dump(dir: &TestDir) -> (Program, Proc, i32, PathBuf) {
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(dir, "held", &image, "tree", &[]);
    let pid = p.pid();
    p.dump_signal();
    wait_until("the parent waits for its child to park", &p, || {
        waits_on_the_control_block(pid)
    });
    send_signal(pid, libc::SIGSTOP);
    send_signal(child, libc::SIGUSR1);
    wait_until("the child is parked and waits", &p, || {
        waits_on_the_control_block(child)
    });
    (program, p, child, image)
}

/// A member whose parent is killed mid-dump (and not yet waited for, so
/// it is a zombie that `kill(pid, 0)` still finds) gives the dump up at
/// once and goes on, instead of staying stopped for the 10 minutes a
/// dump may take to write: here its pipe from the dead parent then ends,
/// and it exits. No image of the dump is left.
#[test]
fn tree_member_whose_parent_is_killed_goes_on() {
    let dir = TestDir::new("tree-root-killed");
    let (_program, mut p, child, image) = hold_a_tree_dump(&dir);
    // Not reaped: the parent stays a zombie while the child decides.
    send_signal(p.pid(), libc::SIGKILL);
    wait_until("the child has left its dump and exited", &p, || {
        has_exited(child)
    });
    let line = p.wait_for_stderr_line("the child's dump failure", |l| l.contains("was abandoned"));
    assert!(line.starts_with("migrate: dump failed"), "{line}");
    p.kill();
    assert!(!image.exists(), "{}", p.describe());
    assert!(!dir.join(&format!("tree.img.{child}")).exists());
}

/// A member killed once parked (its parent cannot reap it: every thread of
/// the parent is in the dump) fails the tree dump at once, naming it, and
/// the parent goes on, instead of waiting 10 minutes for its image. No
/// image is left.
#[test]
fn tree_dump_whose_member_is_killed_fails_naming_it() {
    let dir = TestDir::new("tree-member-killed");
    let (_program, mut p, child, image) = hold_a_tree_dump(&dir);
    send_signal(child, libc::SIGKILL);
    wait_until("the child is a zombie", &p, || has_exited(child));
    send_signal(p.pid(), libc::SIGCONT);
    let line = p.wait_for_stderr_line("the parent's dump failure", |l| {
        l.starts_with("migrate: dump failed")
    });
    assert!(
        line.contains(&format!("child {child}")) && line.contains("exited"),
        "{line}\n{}",
        p.describe()
    );
    let status = p.wait();
    assert!(status.success(), "{}", p.describe());
    let out = p.stdout_lines();
    assert!(
        out.iter().any(|l| l == "child ended by signal 9"),
        "{}",
        p.describe()
    );
    assert!(!image.exists(), "{}", p.describe());
    assert!(!dir.join(&format!("tree.img.{child}")).exists());
}

/// A process restored from a tree dump forgets the control block's
/// descriptor of that dump: its number, free again after the restore, is
/// the next file the process opens (here the parent of `cchildren pipe`
/// opens /dev/null at step 20), and a later dump of the restored process
/// (alone) must save that file, not leave it out as the control block.
#[test]
fn restored_tree_root_saves_a_file_opened_where_the_control_block_was() {
    let dir = TestDir::new("tree-stale-control-fd");
    let image = dir.join("tree.img");
    let (program, mut p, child) = start(&dir, "pipe", &image, "tree", &[]);
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();
    send_signal(child, libc::SIGKILL);
    let again = dir.join("again.img");
    let mut restored = dir.restore(
        &program,
        "restored",
        &image,
        &[
            ("MIGRATE_CHILDREN", "leave"),
            ("MIGRATE_IMAGE", again.to_str().unwrap()),
            ("MIGRATE_LOG", "error"),
        ],
    );
    restored.wait_for_step(25);
    restored.dump_signal();
    restored.wait_for_image(&again, false);
    // `target/release/migrate`, beside the library the tests use.
    let inspect = std::process::Command::new(shim_path().with_file_name("migrate"))
        .args(["inspect", "--json"])
        .arg(&again)
        .output()
        .expect("run migrate inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("\"/dev/null\""),
        "the restored parent's /dev/null is not in its image:\n{text}\n{}",
        restored.describe()
    );
    restored.kill();
}

/// Starts `ctree MODE` with `MIGRATE_CHILDREN=tree`, dumps it at step 5
/// and kills every process of it; returns the program, the killed root,
/// the image and what an uninterrupted run prints.
fn dump_ctree(dir: &TestDir, mode: &str) -> (Program, Proc, PathBuf, Vec<String>) {
    let image = dir.join("tree.img");
    let program = Program::tree(mode);
    let mut p = dir.spawn(
        &program,
        mode,
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_CHILDREN", "tree"),
        ],
    );
    p.wait_for_line("ready", |l| l == "ready");
    let kids = children_of(p.pid());
    let expected = reference(&program);
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&image, false);
    // The children first: with the parent gone they would read end of
    // file and print.
    for pid in kids {
        send_signal(pid, libc::SIGKILL);
    }
    p.kill();
    (program, p, image, expected)
}

/// Process groups and sessions (`ctree groups`): one child leads a group
/// of its own, the other a session of its own. The index records them,
/// and after the restore each child finds with getpgid and getsid that it
/// is still what it made itself (the first still in its parent's
/// session): the output of an uninterrupted run. Restored without its
/// group and session, each would be in its parent's and say "no".
#[test]
fn tree_restores_process_groups_and_sessions() {
    let dir = TestDir::new("tree-groups");
    let (program, p, image, expected) = dump_ctree(&dir, "groups");
    let t = dumpfmt::TreeFile::open(&image).expect("a tree image");
    let m = &t.tree.members;
    assert_eq!(m.len(), 3, "{m:?}");
    // The children in the order they took their slots.
    let leads_group = m[1..]
        .iter()
        .filter(|c| c.pgid == c.pid && c.sid == m[0].sid);
    let leads_session = m[1..].iter().filter(|c| c.pgid == c.pid && c.sid == c.pid);
    assert_eq!(
        (leads_group.count(), leads_session.count()),
        (1, 1),
        "{m:?}"
    );
    let mut restored = dir.restore(&program, "restored", &image, &[("MIGRATE_LOG", "error")]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// The restore barrier (`ctree watch`): before every step the parent
/// reads its child's name (`/proc/PID/comm`, set with PR_SET_NAME) and
/// sends it SIGUSR1. Restored, the parent must not run before the child
/// is restored too: it would see the relaunched program's name (the
/// child has thousands of mappings, so its restore takes longer than the
/// parent's), and the last line would say "no". (The signals cannot show
/// it: a restoring process blocks every signal until it resumes, so one
/// sent early waits, and comes to the restored handler.)
#[test]
fn tree_restore_barrier_holds_every_process_until_all_are_restored() {
    let dir = TestDir::new("tree-barrier");
    let (program, p, image, expected) = dump_ctree(&dir, "watch");
    for round in 0..2 {
        let mut restored = dir.restore(
            &program,
            &format!("restored-{round}"),
            &image,
            &[("MIGRATE_LOG", "error")],
        );
        finish_restored(&mut restored, &p, &expected);
    }
}

/// A truncated or corrupted tree image (a byte of a child's section, or
/// of the index) is refused in one line before anything runs, with the
/// status of a corrupt image.
#[test]
fn damaged_tree_image_is_refused_before_teardown() {
    let dir = TestDir::new("tree-damaged");
    let (program, _p, image, _) = dump_ctree(&dir, "groups");
    let t = dumpfmt::TreeFile::open(&image).expect("a tree image");
    let child = t.tree.members[1];
    let index_at = t.header.meta_offset;
    let len = t.header.file_len;
    drop(t);
    // A page of the child's data, its metadata's last byte, the index.
    for (name, offset) in [
        ("child-data", child.offset + 4096),
        ("child-meta", child.offset + child.len - 1),
        ("index", index_at + 1),
    ] {
        let bad = copy_image(&image, &dir, &format!("{name}.img"));
        flip_byte(&bad, offset);
        let line = expect_restore_failure(&dir, &program, name, &bad, 65);
        assert!(line.contains("tree"), "{name}: {line}");
    }
    let cut = copy_image(&image, &dir, "cut.img");
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    expect_restore_failure(&dir, &program, "cut", &cut, 65);
}

/// Numbered tree images (`%n`) with `MIGRATE_KEEP=1`: each dump of the
/// tree writes the next number, the older image goes once the newer is in
/// place, and the newest restores the whole tree.
#[test]
fn tree_dumps_are_numbered_and_kept() {
    let dir = TestDir::new("tree-numbered");
    let pattern = dir.join("t-%n.img");
    let (program, mut p, child) = start(&dir, "pipe", &pattern, "tree", &[("MIGRATE_KEEP", "1")]);
    let expected = reference(&program);
    let (first, second) = (dir.join("t-1.img"), dir.join("t-2.img"));
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&first, false);
    p.wait_for_step(10);
    p.dump_signal();
    p.wait_for_image(&second, false);
    wait_until("the older image is removed", &p, || !first.exists());
    assert_eq!(tree_pids(&second, &p), [p.pid() as u32, child as u32]);
    p.kill();
    send_signal(child, libc::SIGKILL);
    let mut restored = dir.restore(&program, "restored", &second, &[("MIGRATE_LOG", "error")]);
    finish_restored(&mut restored, &p, &expected);
}
