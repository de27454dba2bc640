//! Failures a user can cause around the image's destination, and settings
//! that a restore changes.

use migrate_tests::small_disk::SmallDisk;
use migrate_tests::*;

/// A dump onto a full disk fails with one line that says so and where;
/// the previous image stays as it was, no temporary file is left, and the
/// program goes on to its normal end. (Needs root for the small tmpfs; CI
/// runs as root.)
#[test]
fn full_disk_keeps_the_previous_image() {
    if !skip::is_root() {
        skip(
            "full_disk_keeps_the_previous_image",
            "root (to mount a small tmpfs)",
        );
        return;
    }
    let dir = TestDir::new("full-disk");
    let (disk, image) = SmallDisk::with_previous_image(dir.join("disk"));
    let program = Program::c();
    let expected = reference(&program);
    let mut p = dir.spawn(
        &program,
        "full",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_step(5);
    p.dump_signal();
    let line = p.wait_for_stderr_line("`migrate: dump failed`", |l| {
        l.starts_with("migrate: dump failed")
    });
    assert!(
        line.contains("ENOSPC") && line.contains(image.to_str().unwrap()),
        "the failure line should say the disk is full and name the image: {line:?}\n{}",
        p.describe()
    );
    let out = p.wait_success();
    assert_eq!(
        out,
        expected,
        "the program did not go on to its normal end\n{}",
        p.describe()
    );
    disk.assert_previous_image_kept(&image);
    assert_eq!(
        p.stderr().lines().count(),
        1,
        "more than the failure line on stderr\n{}",
        p.describe()
    );
}

/// A restore with MIGRATE_SIGNAL and MIGRATE_IMAGE set moves the dump to
/// the new signal and place: the restored process dumps on SIGUSR1 into
/// the new path, and goes on to its normal end.
#[test]
fn restore_changes_dump_signal_and_image() {
    let dir = TestDir::new("new-signal");
    let first = dir.join("first.img");
    let second = dir.join("second.img");
    let program = Program::c();
    let expected = reference(&program);
    let mut original = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", first.to_str().unwrap())],
    );
    original.wait_for_step(5);
    original.dump_signal();
    original.wait_for_image(&first, false);
    original.kill();
    let env = [
        ("MIGRATE_SIGNAL", "USR1"),
        ("MIGRATE_IMAGE", second.to_str().unwrap()),
    ];
    let mut restored = dir.restore(&program, "restored", &first, &env);
    let resumed = step_of(&restored_first_line(&mut restored)).expect("a step line");
    restored.wait_for_step(resumed + 2);
    restored.signal(libc::SIGUSR1);
    restored.wait_for_image(&second, false);
    finish_restored(&mut restored, &original, &expected);
}

fn restored_first_line(p: &mut Proc) -> String {
    p.wait_for_lines(1);
    p.stdout_lines().remove(0)
}

/// The restore check's own dump (see `migrate_tests::fidelity`, which
/// takes one after every restore) is not a dump of the program: a process
/// dumped with `MIGRATE_AFTER_DUMP=exit` and restored takes it and goes
/// on (it does not exit), and its next real dump is numbered 2, as if the
/// check had not happened; the check image keeps the restored sequence.
#[test]
fn restore_check_neither_counts_nor_exits() {
    let dir = TestDir::new("check-dump");
    let program = Program::c();
    let expected = reference(&program);
    let pattern = dir.join("img-%n.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
            ("MIGRATE_AFTER_DUMP", "exit"),
        ],
    );
    original.wait_for_step(5);
    original.dump_signal();
    original.wait_for_image(&numbered_image(&dir, 1), true);
    assert!(original.wait().success(), "{}", original.describe());

    // `restore` has already waited for the check image and compared it.
    let mut restored = dir.restore(&program, "restored", &numbered_image(&dir, 1), &[]);
    let check = fidelity::check_image_path(dir.path(), "restored");
    assert_eq!(
        image_meta(&check).image.sequence,
        1,
        "the check dump counted as a dump\n{}",
        restored.describe()
    );
    let resumed = step_of(&restored_first_line(&mut restored)).expect("a step line");
    restored.wait_for_step(resumed + 1);
    assert!(
        restored.poll_exit().is_none(),
        "the check dump made the restored process exit (MIGRATE_AFTER_DUMP=exit)\n{}",
        restored.describe()
    );
    restored.dump_signal();
    restored.wait_for_image(&numbered_image(&dir, 2), true);
    assert!(restored.wait().success(), "{}", restored.describe());
    assert_eq!(
        list_files(dir.path()),
        ["img-1.img", "img-2.img"],
        "the restored process's next dump should be number 2\n{}",
        restored.describe()
    );
    check_resumed_after_dump(&original, &restored, &restored.describe());
    let out = restored.stdout_lines();
    check_segment(
        &expected,
        &out,
        "the restored process",
        &restored.describe(),
    );
}
