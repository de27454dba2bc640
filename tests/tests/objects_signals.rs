//! Signals the kernel holds for a program (issue 12, signals group):
//! queued signals with their full `siginfo` (sigqueue values, several of
//! one number, per process and per thread) come back where they were, in
//! the same order, and the dumped process, going on, takes them too.
//!
//! The program is `programs/csignals.c`, one mode per kind; it prints a
//! verdict line per signal it takes after its steps, compared exactly
//! with an uninterrupted run.

use migrate_tests::*;

/// The lines `csignals queued` ends with, in the kernel's order: main's
/// own queue, then the process's, then the worker's own.
const QUEUED_TAIL: &[&str] = &[
    "main sig=RTMIN+0 code=queue value=13 self=yes",
    "main sig=RTMIN+3 code=queue value=31 self=yes",
    "main sig=RTMIN+3 code=queue value=32 self=yes",
    "main sig=10 code=user value=-1 self=yes",
    "main sig=RTMIN+0 code=queue value=11 self=yes",
    "main sig=RTMIN+0 code=queue value=12 self=yes",
    "main sig=RTMIN+1 code=queue value=21 self=yes",
    "main sig=RTMIN+1 code=queue value=22 self=yes",
    "worker sig=10 code=user value=-1 self=yes",
    "worker sig=RTMIN+2 code=queue value=201 self=yes",
    "worker sig=RTMIN+2 code=queue value=202 self=yes",
    "done 11",
];

fn check_tail(lines: &[String], context: &str) {
    let tail: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("main "))
        .collect();
    assert_eq!(tail, QUEUED_TAIL, "{context}");
}

/// Queued signals, for the process and for each of two threads, with
/// sigqueue values, come back with their values, codes and senders, in
/// the same order, after a dump, kill and restore.
#[test]
fn queued_signals_come_back_with_their_values() {
    let dir = TestDir::new("sig-queued");
    let program = Program::signals("queued", None);
    let expected = reference(&program);
    check_tail(&expected, "the reference run");
    let r = dump_kill_restore(&dir, &program, 5, &[], &[]);
    let context = describe_all(&[&r.original, &r.restored]);
    assert_eq!(r.summary.threads, 2, "{context}");
    check_tail(&r.restored.stdout_lines(), &context);
    assert_eq!(r.restored.stderr(), "", "{context}");
}

/// The dump takes the queued signals to read them: the process that goes
/// on after its dump must still take every one, as it would have.
#[test]
fn dumped_process_still_takes_its_queued_signals() {
    let dir = TestDir::new("sig-queued-on");
    let program = Program::signals("queued", None);
    let expected = reference(&program);
    let image = dir.join("queued.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    original.wait_for_step(5);
    original.dump_signal();
    original.wait_for_image(&image, false);
    let out = original.wait_success();
    let context = original.describe();
    assert_eq!(out, expected, "{context}");
    check_tail(&out, &context);
}

/// A `SIGCHLD` that comes while the dump runs (the child exits once the
/// image is being written, during the second `slow-dump` adds) comes back
/// with its `siginfo` (CLD_EXITED, the child's pid and status), not as the
/// restorer's `kill`.
#[test]
fn signal_arriving_mid_dump_keeps_its_siginfo() {
    let dir = TestDir::new("sig-midchld");
    let program = Program::signals("midchld", Some(dir.path()));
    let expected = reference(&program);
    let tail = ["chld code=exited child=yes status=7", "done midchld"];
    assert_eq!(expected[expected.len() - 2..], tail, "the reference run");
    let r = dump_kill_restore_with(
        &dir,
        &program,
        &DumpPlan {
            expected: &expected,
            step: 5,
            env: &[
                ("MIGRATE_FAULT", "slow-dump"),
                ("MIGRATE_CHILDREN", "leave"),
            ],
            restore_env: &[],
            lines_after: 0,
        },
    );
    let context = describe_all(&[&r.original, &r.restored]);
    let lines = r.restored.stdout_lines();
    assert_eq!(lines[lines.len() - 2..], tail, "{context}");
}
