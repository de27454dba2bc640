//! Issue 12, rseq registered by the program itself: with glibc's
//! registration dropped (or never made, `GLIBC_TUNABLES=glibc.pthread.rseq=0`)
//! each of two threads registers an area of its own with
//! `syscall(SYS_rseq)`. After the restore each thread's area is registered
//! again, exactly: the kernel rewrites its `cpu_id` after a signal, and
//! registering the same area again fails with `EBUSY` (see
//! `programs/crseq.c`). The restore check compares a second dump with the
//! first, whose threads' rseq records must match.

use migrate_tests::*;

const TAIL: &[&str] = &[
    "main rseq updated=yes busy=yes",
    "worker rseq updated=yes busy=yes",
    "done 2",
];

fn roundtrip(test: &str, env: &[(&str, &str)]) {
    let dir = TestDir::new(test);
    let program = Program::rseq();
    let expected = reference(&program);
    assert_eq!(&expected[expected.len() - 3..], TAIL, "the reference run");
    let r = dump_kill_restore(&dir, &program, 5, env, env);
    let context = describe_all(&[&r.original, &r.restored]);
    assert_eq!(r.summary.threads, 2, "{context}");
    let lines = r.restored.stdout_lines();
    assert_eq!(&lines[lines.len() - 3..], TAIL, "{context}");
    assert_eq!(r.restored.stderr(), "", "{context}");
}

/// The program drops glibc's registration in each thread and registers
/// its own: both come back.
#[test]
fn own_rseq_areas_come_back() {
    roundtrip("rseq-own", &[]);
}

/// With glibc told not to register any, the program's own areas come
/// back the same.
#[test]
fn own_rseq_areas_come_back_without_glibc_rseq() {
    roundtrip(
        "rseq-tunable",
        &[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")],
    );
}

/// Areas registered by a `syscall` instruction of the program's own are
/// out of the library's sight: the dump fails naming a thread instead of
/// restoring a process whose rseq is silently gone; the program goes on.
#[test]
fn raw_rseq_registration_fails_the_dump() {
    let dir = TestDir::new("rseq-raw");
    let program = Program::rseq_raw();
    let expected = reference(&program);
    let image = dir.join("raw.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_step(5);
    p.dump_signal();
    let line = expect_dump_failure(&mut p, &image, &[], &["rseq", "thread"], &expected);
    assert!(!image.exists(), "{line}");
}
