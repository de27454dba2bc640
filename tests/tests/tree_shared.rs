//! The objects a tree's processes share (issue 9): a tree dump
//! (`MIGRATE_CHILDREN=tree`) records what each member shares with the
//! others, and the restore of the tree image makes each object
//! once, in the root before it forks, so that after the restore the
//! processes share it again: `MAP_SHARED` anonymous memory, unlinked POSIX
//! semaphores, socket pairs with the bytes queued in each direction, and
//! open file descriptions with their one offset.
//!
//! The program is `programs/cshared.c`: a parent that steps and a child
//! (and in `memory3` a grandchild) that answers through the shared object;
//! every line is deterministic, so each restore must end exactly as an
//! uninterrupted run. Without the shared objects each of these ends in an
//! error line or a wrong answer: the processes would each hold a copy.

use std::fs;
use std::path::Path;

use migrate_tests::*;

/// Variables for a run.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Runs `program` as a tree (`env` added), dumps it at step 10 and kills
/// it (or, with `exit`, lets the dump end it); restores the tree and
/// checks that it ends as an uninterrupted run (`expected`).
fn dump_and_restore(
    dir: &TestDir,
    program: &Program,
    expected: &[String],
    members: usize,
    exit: bool,
    (extra, restore_env): (Env, Env),
) -> (Proc, Proc, dumpfmt::TreeFile) {
    let image = dir.join("tree.img");
    let mut env = vec![
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_CHILDREN", "tree"),
    ];
    env.extend_from_slice(extra);
    if exit {
        env.push(("MIGRATE_AFTER_DUMP", "exit"));
    }
    let mut p = dir.spawn(program, "original", &env);
    p.wait_for_line("ready", |l| l == "ready");
    p.wait_for_step(10);
    let below = descendants(p.pid());
    assert_eq!(below.len(), members - 1, "{below:?}\n{}", p.describe());
    p.dump_signal();
    p.wait_for_image(&image, exit);
    if exit {
        let status = p.wait();
        assert!(status.success(), "{}", p.describe());
        // Every member exits once the tree image is in place.
        let deadline = std::time::Instant::now() + TIMEOUT;
        for &pid in &below {
            while fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
            {
                assert!(std::time::Instant::now() < deadline, "{pid} did not exit");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    } else {
        // All stopped first: none may print what the others' end makes
        // it say (a child seeing its parent gone).
        for &pid in std::iter::once(&p.pid()).chain(&below) {
            // SAFETY: kill(2) with plain integers; our program's processes.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
        }
        for &pid in &below {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        p.kill();
    }
    let tree = dumpfmt::TreeFile::open(&image)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", image.display(), p.describe()));
    assert_eq!(tree.sections.len(), members, "{}", p.describe());
    let mut restored = dir.restore(program, "restored", &image, restore_env);
    finish_restored(&mut restored, &p, expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
    (p, restored, tree)
}

fn shared(mode: &str, members: usize) {
    let dir = TestDir::new(&format!("tree-shared-{mode}"));
    let program = Program::shared(mode, None);
    let expected = reference(&program);
    dump_and_restore(&dir, &program, &expected, members, false, (&[], &[]));
}

/// Issue 9, Done-when 5: a parent and child sharing `MAP_SHARED`
/// anonymous memory and a pipe see each other's writes after the
/// restore (the parent's value reaches the child, the child's answer the
/// parent, every step). The memory's pages are stored once, in the
/// parent's section: the child's names the parent.
#[test]
fn shared_anonymous_memory_and_a_pipe_come_back_shared() {
    let dir = TestDir::new("tree-shared-memory");
    let program = Program::shared("memory", None);
    let expected = reference(&program);
    let (original, _, tree) = dump_and_restore(&dir, &program, &expected, 2, false, (&[], &[]));
    let (parent, child) = (&tree.sections[0], &tree.sections[1]);
    let pages_in = |img: &dumpfmt::ImageFile| -> Vec<(u32, u64)> {
        let image = &img.image;
        image
            .minor3
            .shared
            .memory
            .iter()
            .map(|s| {
                let m = image.mappings.iter().find(|m| m.start == s.start).unwrap();
                let pages = image
                    .runs
                    .iter()
                    .filter(|r| r.addr >= m.start && r.addr < m.end)
                    .map(|r| r.pages)
                    .sum();
                (s.pages_in, pages)
            })
            .collect()
    };
    let (in_parent, in_child) = (pages_in(parent), pages_in(child));
    assert!(
        in_parent.len() == 1 && in_parent[0].0 == 0 && in_parent[0].1 > 0,
        "the parent's section holds the shared pages: {in_parent:?}"
    );
    assert_eq!(
        in_child,
        vec![(original.pid() as u32, 0)],
        "the child's section names the parent's for them"
    );
}

/// The same memory shared by three generations: the grandchild answers
/// through it, the child only forwards the steps.
#[test]
fn shared_anonymous_memory_comes_back_shared_by_three_generations() {
    shared("memory3", 3);
}

/// A memfd both processes map and keep open: made once, each holds a
/// duplicate of it at its number and maps it from there.
#[test]
fn a_memfd_shared_by_descriptor_and_mapping_comes_back_shared() {
    shared("memfd", 2);
}

/// As above, the memfd 64 MiB long with data far past its mapping (its
/// contents stored with the page data, issue 12): made once and filled
/// from the image, size and data as they were.
#[test]
fn a_large_shared_memfd_comes_back_filled() {
    shared("bigmemfd", 2);
}

/// Two named semaphores, unlinked from `/dev/shm` before the fork (only
/// their mappings hold them): after the restore the parent's post still
/// wakes the child and the child's the parent.
#[test]
fn unlinked_semaphores_still_synchronize_parent_and_child() {
    shared("sem", 2);
}

/// Python's `multiprocessing` (fork start method): its `Semaphore`s and
/// `Lock` are unlinked POSIX semaphores, its `Value` lives in its shared
/// heap (an unlinked `/dev/shm` file kept open); after the restore parent
/// and child still take turns and count in the one `Value`.
#[test]
fn python_multiprocessing_semaphores_and_value_come_back_shared() {
    let dir = TestDir::new("tree-shared-python");
    let program = Program::python_shared();
    let expected = reference(&program);
    dump_and_restore(&dir, &program, &expected, 2, false, (&[], &[]));
}

/// A stream and a datagram socket pair between parent and child, with
/// messages queued both ways at the dump: each is delivered exactly once
/// after the restore, and both pairs go on carrying messages both ways.
#[test]
fn socket_pairs_between_parent_and_child_carry_queued_messages_once() {
    shared("socketpair", 2);
}

/// Parent and child write in turn to two inherited descriptions, one
/// `O_APPEND`: dumped with `MIGRATE_AFTER_DUMP=exit` (so the files stay as
/// at the dump) and restored, both files end as in an uninterrupted run,
/// which only one shared offset gives for the one without `O_APPEND`.
#[test]
fn an_inherited_file_description_keeps_one_offset() {
    let dir = TestDir::new("tree-shared-append");
    let reference_dir = dir.join("reference");
    fs::create_dir(&reference_dir).unwrap();
    let expected = reference(&Program::shared("append", Some(&reference_dir)));
    let program = Program::shared("append", Some(Path::new(dir.path())));
    dump_and_restore(&dir, &program, &expected, 2, true, (&[], &[]));
    let reference_log = fs::read(reference_dir.join("offset.dat")).unwrap();
    assert_eq!(
        fs::read(dir.join("offset.dat")).unwrap(),
        reference_log,
        "offset.dat differs from an uninterrupted run's"
    );
}

/// Two children share a file description their parent opened and then
/// closed (no ancestor holds it any more); each writes a line in turn.
/// Dumped with `MIGRATE_AFTER_DUMP=exit` and restored, the file ends as
/// in an uninterrupted run: the two come back with one description, one
/// offset (they came back with one each, and overwrote each other's
/// lines: a member looked for the description only up its own line of
/// ancestors).
#[test]
fn a_description_only_siblings_hold_keeps_one_offset() {
    let dir = TestDir::new("tree-shared-siblings");
    let reference_dir = dir.join("reference");
    fs::create_dir(&reference_dir).unwrap();
    let expected = reference(&Program::shared("siblings", Some(&reference_dir)));
    let program = Program::shared("siblings", Some(Path::new(dir.path())));
    dump_and_restore(&dir, &program, &expected, 3, true, (&[], &[]));
    assert_eq!(
        fs::read(dir.join("siblings.dat")).unwrap(),
        fs::read(reference_dir.join("siblings.dat")).unwrap(),
        "siblings.dat differs from an uninterrupted run's"
    );
}

/// A pipe and socket pairs whose ends are all in the tree are not
/// "connected to another process": `MIGRATE_EXTERNAL=refuse` (which
/// refuses such a descriptor) lets the dump go ahead, and the `info` log
/// says nothing about them; the tree comes back whole.
#[test]
fn objects_inside_the_tree_are_not_connected_to_another_process() {
    let dir = TestDir::new("tree-shared-inside");
    let program = Program::shared("socketpair", None);
    let expected = reference(&program);
    let (original, ..) = dump_and_restore(
        &dir,
        &program,
        &expected,
        2,
        false,
        (
            &[("MIGRATE_EXTERNAL", "refuse"), ("MIGRATE_LOG", "info")],
            // The restore check dumps the restored root alone: its peers
            // are outside that dump.
            &[("MIGRATE_EXTERNAL", "gone"), ("MIGRATE_LOG", "error")],
        ),
    );
    let stderr = original.stderr();
    assert!(
        !stderr.contains("another process"),
        "{}",
        original.describe()
    );
}
