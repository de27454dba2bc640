//! Regression tests for the defects issue 7 reproduced, one test (or a
//! pair) each: a thread on glibc's smallest stack restored, nothing run
//! between the snapshot and the exit in `MIGRATE_AFTER_DUMP=exit` mode,
//! the capability sets a restored process comes back with, a log line to
//! a full stderr pipe, a mapped file replaced by a FIFO, a page that
//! cannot be read, and a panic on the dump path.

use migrate_tests::*;

/// (1) A worker on a 16 KiB stack (glibc's `PTHREAD_STACK_MIN`), parked
/// while the main thread takes the dump: after the restore its share of
/// the work (counting itself in, fixing its TID, its credentials) must fit
/// in the little stack it has left.
#[test]
fn thread_on_16k_stack_restores() {
    let dir = TestDir::new("stack-16k");
    let program = Program::small_stack(false).with_args(&["16"]);
    let expected = reference(&program);
    assert_eq!(
        expected.get(1).map(String::as_str),
        Some("worker stack 16384")
    );
    let done = dump_kill_restore(&dir, &program, 5, &[], &[]);
    assert_eq!(done.summary.threads, 2, "{}", done.original.describe());
}

/// (1) The same worker takes the dump signal itself (`raise`), so it is
/// the thread that leads the dump and finishes the restore.
#[test]
fn thread_on_16k_stack_leads_and_restores() {
    let dir = TestDir::new("stack-16k-raise");
    let program = Program::small_stack(true).with_args(&["16"]);
    let expected = reference(&Program::small_stack(false).with_args(&["16"]));
    let mut original = spawn_numbered(&dir, &program);
    let image = numbered_image(&dir, 1);
    original.wait_for_image(&image, false);
    original.wait_for_step(12);
    original.kill();
    let restored = restore_and_check(&dir, &program, "restored", &image, &original, &expected);
    let out = restored.stdout_lines();
    assert!(
        out[0].starts_with("step 11 "),
        "the image raised after step 10 should resume at step 11, not at {:?}\n{}",
        out[0],
        describe_all(&[&original, &restored])
    );
}

/// (2) With `MIGRATE_AFTER_DUMP=exit`, nothing runs between the snapshot
/// and the exit: a worker printing as fast as it can prints no line that
/// the restored process prints again. Three rounds (the race showed in 5
/// of 5 runs before the fix).
#[test]
fn exit_after_dump_runs_nothing_past_the_snapshot() {
    let program = Program::defects("fastprint", None);
    for round in 1..=3 {
        let dir = TestDir::new(&format!("exit-fastprint-{round}"));
        let image = dir.join("fast.img");
        let original = dump_then_exit(&dir, &program, "original", &image, 1000);
        let before = original.stdout_lines();
        let last = before.last().and_then(|l| step_of(l));
        let mut restored = dir.restore(&program, "restored", &image, &[]);
        let status = restored.wait();
        let context = describe_all(&[&original, &restored]);
        assert!(status.success(), "restore failed\n{context}");
        let after = restored.stdout_lines();
        let first = after.first().and_then(|l| step_of(l));
        assert_eq!(
            first,
            last.map(|n| n + 1),
            "the restored run must start right after the original's last line \
             (lines printed after the snapshot would be printed twice)\n{context}"
        );
        assert!(
            after.last().is_some_and(|l| l.starts_with("done ")),
            "{context}"
        );
    }
}
