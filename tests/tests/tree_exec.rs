//! Tree members running another program than the root (issue 9): a C
//! parent whose child execs another test program, and Done-when 1, a
//! bash script whose children are `date`, `sleep` and a long-lived
//! subshell fed through process substitution. See
//! `shim/src/restore/tree_exec.rs` and `shim/src/exec.rs`.

use migrate_tests::*;

/// Stops `p` and all its descendants, then kills them all: the whole
/// session, none left to print what the others' end makes it say.
fn kill_tree(p: &mut Proc) {
    let pid = p.pid();
    // SAFETY: kill(2) with plain integers; our program's process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    kill_all(&descendants(pid));
    p.kill();
}

/// Sends the dump signal until the tree image is there: a dump that
/// lands while a child is starting another program (in `execve`, its
/// library not loaded yet) or exiting fails naming it, and the tree goes
/// on; any other failure fails the test. Returns the number of signals
/// sent.
fn dump_until_image(p: &mut Proc, image: &std::path::Path) -> usize {
    const RETRY: [&str; 4] = [
        "was abandoned",
        "it is starting another program (try the dump again)",
        "cannot take part in a tree dump: exited",
        "exited during the tree dump",
    ];
    for tries in 1..=20 {
        let failed_before = p.stderr().matches("dump failed").count();
        p.dump_signal();
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            if image.exists() {
                p.wait_for_image(image, false);
                return tries;
            }
            let err = p.stderr();
            if err.matches("dump failed").count() > failed_before {
                assert!(
                    err.lines()
                        .filter(|l| l.contains("dump failed"))
                        .all(|l| RETRY.iter().any(|r| l.contains(r))),
                    "a dump failed for another reason\n{}",
                    p.describe()
                );
                // The line may be a member's while the leader still
                // dumps: a signal sent now would be pending in its image.
                let pid = p.pid();
                migrate_tests::procs::wait_until("the leader's dump to end", p, || {
                    migrate_tests::procs::status_value(
                        &migrate_tests::procs::status_text(pid),
                        "state",
                    ) != Some("dumping")
                });
                if image.exists() {
                    p.wait_for_image(image, false);
                    return tries;
                }
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no image and no failure\n{}",
                p.describe()
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    panic!("20 dumps failed\n{}", p.describe());
}

/// `cexec`: a parent and its child running another program, `cexecee`,
/// stepping in turn through two pipes. Dumped as a tree at step 10 (the
/// child's section records its own program), everything killed, the
/// restore brings the child back running `cexecee` (`/proc/PID/exe`, its
/// accumulator), and both end exactly as an uninterrupted run.
#[test]
fn child_running_another_program_comes_back_running_it() {
    let dir = TestDir::new("tree-exec-child");
    let image = dir.join("tree.img");
    let program = Program::exec_child();
    let expected = reference(&program);
    let mut p = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_CHILDREN", "tree"),
        ],
    );
    p.wait_for_line("ready", |l| l == "ready");
    p.wait_for_step(10);
    let kids = descendants(p.pid());
    assert_eq!(kids.len(), 1, "{kids:?}\n{}", p.describe());
    let child_exe = exe_of(kids[0]);
    assert!(child_exe.ends_with("/cexecee"), "{child_exe}");
    p.dump_signal();
    p.wait_for_image(&image, false);
    kill_tree(&mut p);
    let tree = dumpfmt::TreeFile::open(&image)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", image.display(), p.describe()));
    let exes: Vec<String> = tree
        .sections
        .iter()
        .map(|s| s.image.exe.path.to_string())
        .collect();
    assert_eq!(exes.len(), 2, "{exes:?}");
    assert!(
        exes[0].ends_with("/cexec") && exes[1] == child_exe,
        "{exes:?}"
    );
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    // The restored child runs its own program again.
    let k = kids[0];
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut seen = String::new();
    while std::time::Instant::now() < deadline {
        // Its PID is the namespace's: find it below the supervisor.
        if let Some(c) = descendants(restored.pid())
            .into_iter()
            .find(|&c| exe_of(c).ends_with("/cexecee"))
        {
            seen = exe_of(c);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
    assert_eq!(seen, child_exe, "restored child {k} runs {seen:?}");
}

/// Issue 9, Done-when 1: `/bin/bash` running `programs/bashtree.sh`,
/// which every step runs `date` in a command substitution and `sleep`,
/// and feeds a long-lived subshell through process substitution. Dumped
/// mid-run as a tree (wherever the dump lands: in a fork, in `sleep`,
/// between fork and exec), the whole session killed; the restored script
/// and its child end exactly as an uninterrupted run. Five times, as
/// where the dump lands changes from run to run.
#[test]
fn bash_script_with_children_and_process_substitution() {
    let program = Program::bash_tree();
    let expected = reference(&program);
    for round in 0..5 {
        let dir = TestDir::new(&format!("tree-exec-bash-{round}"));
        let image = dir.join("tree.img");
        let mut p = dir.spawn(
            &program,
            "original",
            &[
                ("MIGRATE_IMAGE", image.to_str().unwrap()),
                ("MIGRATE_CHILDREN", "tree"),
            ],
        );
        p.wait_for_line("ready", |l| l == "ready");
        p.wait_for_step(5 + 3 * round);
        dump_until_image(&mut p, &image);
        kill_tree(&mut p);
        let tree = dumpfmt::TreeFile::open(&image)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", image.display(), p.describe()));
        assert!(tree.sections.len() >= 2, "{}", p.describe());
        let mut restored = dir.restore(&program, "restored", &image, &[]);
        finish_restored(&mut restored, &p, &expected);
        assert_eq!(restored.stderr(), "", "{}", restored.describe());
    }
}
