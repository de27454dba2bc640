//! Issue 12, `O_PATH` and procfs descriptors in a process tree
//! (`MIGRATE_CHILDREN=tree`): a parent opens an `O_PATH` file, an `O_PATH`
//! directory and its own `/proc/self/status`, forks, and both hold the same
//! open file descriptions. After the restore of the tree each comes back
//! exactly: the `O_PATH` descriptors name the same file and directory, the
//! status file is the restored parent's in both (for the child it is the
//! procfs file of another member of the tree: its parent's), and the two
//! share one offset. A procfs file of a process outside the tree fails
//! the dump naming the descriptor, and the program goes on. The program
//! is `programs/ctreefds.c`; the restore check compares a second dump of
//! the restored tree with the first.

use migrate_tests::*;

/// Dumps the tree of `ctreefds shared` at step 10, kills it, restores it:
/// every line must equal an uninterrupted run's.
#[test]
fn o_path_and_procfs_descriptors_shared_by_parent_and_child() {
    let dir = TestDir::new("treefds-shared");
    let program = Program::tree_fds("shared");
    let expected = reference(&program);
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
    p.wait_for_step(10);
    let below = descendants(p.pid());
    assert_eq!(below.len(), 1, "{below:?}\n{}", p.describe());
    p.dump_signal();
    p.wait_for_image(&image, false);
    // All stopped first: none may print what the others' end makes it say.
    for &pid in std::iter::once(&p.pid()).chain(&below) {
        // SAFETY: kill(2) with plain integers; our program's processes.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    }
    for &pid in &below {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    p.kill();
    let tree = dumpfmt::TreeFile::open(&image)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", image.display(), p.describe()));
    assert_eq!(tree.sections.len(), 2, "{}", p.describe());
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// A procfs file of a process outside the tree (the program's own
/// parent's status, held by the parent and inherited by its child) fails
/// the tree dump with a line naming fd 23 (and the other member's line
/// that its dump failed too); the program goes on, no image is left.
#[test]
fn procfs_file_of_a_process_outside_the_tree_fails_the_dump() {
    let dir = TestDir::new("treefds-outside");
    let program = Program::tree_fds("outside");
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
    p.wait_for_step(10);
    p.dump_signal();
    // The uninterrupted run's lines: its parent differs, not its output.
    let expected: Vec<String> = ["start", "ready"]
        .into_iter()
        .map(String::from)
        .chain((1..=40).map(|s| format!("step {s}")))
        .chain(["done outside".to_string()])
        .collect();
    // Each member that holds it says so (the child, or that the root's
    // failure abandoned its dump): every line a failure, one names fd 23.
    let line = p.wait_for_stderr_line("the failure naming fd 23", |l| names_fd(l, 23));
    assert!(
        line.starts_with(DUMP_FAILED)
            && line.contains("a procfs file of a process outside the tree cannot be saved"),
        "{line}\n{}",
        p.describe()
    );
    let out = p.wait_success();
    assert_eq!(out, expected, "{}", p.describe());
    let stderr = p.stderr();
    assert!(
        stderr.lines().all(|l| l.starts_with(DUMP_FAILED)),
        "{}",
        p.describe()
    );
    assert!(
        !image.exists() && temp_files_of(&image).is_empty(),
        "{}",
        p.describe()
    );
}

/// A procfs file shared by two members other than the root (`ctreefds
/// nested`: a middle process's own `/proc/self/status`, inherited by its
/// child) cannot be made where the tree's shared descriptions are made,
/// in the root, before that process exists: the restore refuses it with
/// one line naming fd 22 and the process, before anything runs (it made
/// the root's status file instead, so both showed another process's).
#[test]
fn procfs_file_shared_below_the_root_is_refused_not_swapped() {
    let dir = TestDir::new("treefds-nested");
    let program = Program::tree_fds("nested");
    let expected = reference(&program);
    assert_eq!(
        expected[2], "step 1 middle: status=own grandchild: status=parent's",
        "the reference run"
    );
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
    p.wait_for_step(10);
    let below = descendants(p.pid());
    assert_eq!(below.len(), 2, "{below:?}\n{}", p.describe());
    p.dump_signal();
    p.wait_for_image(&image, false);
    for &pid in std::iter::once(&p.pid()).chain(&below) {
        // SAFETY: kill(2) with plain integers; our program's processes.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    }
    for &pid in &below {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    p.kill();
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    let status = restored.wait();
    assert_eq!(
        status.code(),
        Some(exit::CANNOT_RESTORE),
        "{}",
        restored.describe()
    );
    assert!(
        restored.stdout_raw().is_empty(),
        "the program ran\n{}",
        restored.describe()
    );
    let stderr = restored.stderr();
    assert!(
        stderr.lines().count() == 1
            && names_fd(&stderr, 22)
            && stderr.contains("procfs file of process"),
        "{}",
        restored.describe()
    );
}
