//! inotify (issue 12): an instance's watches come back with their
//! numbers (a removed watch's number stays skipped), their masks (so the
//! same events arrive), a watch added by a relative path without
//! following a symlink, and each instance's flags (`IN_NONBLOCK`,
//! `IN_CLOEXEC`); a watch added after the restore gets the number it
//! would have had.
//!
//! The program is `programs/cinotify.c`, mode `watches`, in its work
//! directory.

use migrate_tests::*;

/// What the program sees after the steps, in the restored run as in an
/// uninterrupted one.
const VERDICTS: &[&str] = &[
    "a flags: nonblock=1 cloexec=1",
    "b flags: nonblock=0 cloexec=0",
    "a read: EAGAIN",
    "a event: wd=1 mask=0x100 name=new",
    "a event: wd=3 mask=0x2 name=-",
    "a event: wd=3 mask=0x8 name=-",
    "a event: wd=4 mask=0x4 name=-",
    "a read: EAGAIN",
    "b event: wd=1 mask=0x100 name=x",
    "b read: EAGAIN",
    "new watch: 5",
    "done inotify",
];

fn tail(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(String::as_str)
        .skip_while(|l| !l.starts_with("a flags"))
        .collect()
}

/// Two instances with their watches, a gap in the numbers and a symlink
/// watched itself, after a dump, kill and restore (and compared by the
/// restore's check dump).
#[test]
fn inotify_watches_come_back_with_their_numbers() {
    let (_dir, _work, r) = mode_roundtrip("inotify", Program::inotify, "watches", Some("w"), 5);
    let context = describe_all(&[&r.original, &r.restored]);
    assert_eq!(tail(&r.restored.stdout_lines()), VERDICTS, "{context}");
}

/// A watched file renamed after its watch was added: the path the watch
/// was added by names nothing now, so the dump fails with one line naming
/// the inotify descriptor and the watch, and the program goes on.
#[test]
fn a_watch_whose_path_is_gone_fails_the_dump() {
    let dir = TestDir::new("inotify-moved");
    let refdir = dir.subdir("ref");
    let work = dir.subdir("work");
    let expected = reference(&Program::inotify("moved", Some(&refdir.join("w"))));
    let image = dir.join("moved.img");
    let mut p = dir.spawn(
        &Program::inotify("moved", Some(&work.join("w"))),
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_step(3);
    p.dump_signal();
    expect_dump_failure(
        &mut p,
        &image,
        &[],
        &["(inotify)", "watch 1", "f.txt", "gone"],
        &expected,
    );
}

/// An event waiting unread at the dump is not kept (reading it would take
/// it from the running program): the dump says so at `info`, naming the
/// descriptor, and still succeeds.
#[test]
fn events_waiting_at_the_dump_are_reported_lost() {
    let dir = TestDir::new("inotify-pending");
    let work = dir.subdir("work");
    let image = dir.join("pending.img");
    let mut p = dir.spawn(
        &Program::inotify("pending", Some(&work.join("w"))),
        "original",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_LOG", "info"),
        ],
    );
    p.wait_for_step(3);
    p.dump_signal();
    let line = p.wait_for_stderr_line("the inotify info line", |l| l.contains("(inotify)"));
    assert!(
        line.contains("events waiting at the dump") && line.contains("lost"),
        "{line:?}\n{}",
        p.describe()
    );
    p.wait_for_image(&image, false);
    p.kill();
}
