//! File locks (issue 12, signals group): `flock` (exclusive and shared),
//! POSIX record locks (write and read ranges, one to the end of the file)
//! and OFD locks held at the dump are held again after the restore: a
//! child of the restored process, another lock owner, finds each range
//! taken (and the ranges between free) exactly as in an uninterrupted run.
//!
//! The program is `programs/csignals.c`, mode `locks`, on files in its
//! work directory.

use migrate_tests::*;

/// What the child finds, in the restored run as in an uninterrupted one.
const VERDICTS: &[&str] = &[
    "a.txt flock: exclusive held, shared held",
    "b.txt flock: exclusive held, shared free",
    "c.txt posix 0+10: write held by parent",
    "c.txt posix 10+10: free",
    "c.txt posix 20+10: read held by parent",
    "c.txt posix 30+10: free",
    "c.txt posix 1000000+1: write held by parent",
    "d.txt ofd 100+100: write held (OFD)",
    "d.txt ofd 200+100: free",
    "d.txt ofd 300+100: read held (OFD)",
    "d.txt ofd 400+0: free",
    "done locks",
];

fn tail(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("a.txt"))
        .collect()
}

/// The three kinds of lock, read and write, held again after a dump,
/// kill and restore (and compared by the restore's check dump).
#[test]
fn flock_posix_and_ofd_locks_are_held_again() {
    let (_dir, _work, r) = mode_roundtrip("locks", Program::signals, "locks", Some("."), 5);
    let context = describe_all(&[&r.original, &r.restored]);
    assert_eq!(tail(&r.restored.stdout_lines()), VERDICTS, "{context}");
}
