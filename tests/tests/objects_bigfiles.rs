//! Issue 12, deleted files and memfds of any size: contents too large for
//! the metadata go with the page data, holes left out, each run
//! checksummed (see `programs/cbigfiles.c`). Each test dumps mid-run,
//! kills, restores (checked against a second dump, see `fidelity`) and
//! compares the whole output, verdicts included, with an uninterrupted
//! run; the image holds the data only, not the holes.

use std::process::Command;

use migrate_tests::*;

/// The image is far smaller than the files' sizes: only their data.
fn assert_small(r: &DumpRestore, most: u64) {
    let len = std::fs::metadata(&r.image).unwrap().len();
    assert!(
        len < most,
        "the image is {len} bytes, more than {most}: holes were stored\n{}",
        r.restored.describe()
    );
}

/// `migrate inspect IMAGE` (its stdout).
fn inspect(image: &std::path::Path) -> String {
    let out = Command::new(command::migrate())
        .arg("inspect")
        .arg(image)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run migrate inspect");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A deleted file of 1.5 GiB written sparse (data at start, middle and
/// end) and a dense one of 20 MiB open read-only come back with the same
/// size, holes, data and offset; the image holds their data, not 1.5 GiB,
/// and `inspect` shows each file's size and what is stored of it.
#[test]
fn large_deleted_files() {
    let (_dir, _work, r) = mode_roundtrip(
        "bigfiles-deleted",
        Program::big_files,
        "deleted",
        Some("."),
        10,
    );
    assert_small(&r, 64 << 20);
    let text = inspect(&r.image);
    assert!(
        text.contains("sparse (1.5 GiB, 6.0 MiB stored with the page data)")
            && text.contains("dense (20.0 MiB, 20.0 MiB stored with the page data)"),
        "inspect should show the stored sizes:\n{text}"
    );
}

/// A memfd of 1.2 GiB, sparse and mapped shared whole, comes back with
/// its size, holes, data (some written through the mapping) and offset,
/// the mapping and the descriptor still one object.
#[test]
fn large_memfd_mapped_shared() {
    let (_dir, _work, r) =
        mode_roundtrip("bigfiles-memfd", Program::big_files, "memfd", Some("."), 10);
    assert_small(&r, 64 << 20);
}

/// Compressed (`MIGRATE_COMPRESS=zstd`), the files' data goes through the
/// same chunks as the pages and comes back exactly.
#[test]
fn large_deleted_files_compressed() {
    let dir = TestDir::new("bigfiles-zstd");
    let work = dir.subdir("work");
    let refdir = dir.subdir("ref");
    let expected = reference(&Program::big_files("deleted", Some(&refdir)));
    let image = dir.join("z.img");
    let r = dump_kill_restore_with(
        &dir,
        &Program::big_files("deleted", Some(&work)),
        &DumpPlan {
            expected: &expected,
            step: 10,
            env: &[
                ("MIGRATE_IMAGE", image.to_str().unwrap()),
                ("MIGRATE_COMPRESS", "zstd"),
            ],
            restore_env: &[],
            lines_after: 3,
        },
    );
    assert!(image_meta(&r.image).compressed, "not compressed");
    assert_small(&r, 64 << 20);
}

/// A continue-mode dump would take a copy-on-write snapshot, which does
/// not freeze a file: the process is dumped stopped, with a line saying
/// why, and the image says so.
#[test]
fn large_deleted_files_dump_stopped() {
    let dir = TestDir::new("bigfiles-snap");
    let work = dir.subdir("work");
    let refdir = dir.subdir("ref");
    let expected = reference(&Program::big_files("deleted", Some(&refdir)));
    let image = dir.join("s.img");
    let program = Program::big_files("deleted", Some(&work));
    let mut p = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_LOG", "info"),
        ],
    );
    p.wait_for_step(10);
    p.dump_signal();
    p.wait_for_image(&image, false);
    let why = p.wait_for_stderr_line("the line saying the dump keeps it stopped", |l| {
        l.starts_with("migrate: this dump keeps the process stopped: ")
    });
    assert!(why.contains("larger than 1 MiB"), "{why}");
    assert_eq!(
        image_meta(&image).image.minor4.capture.mode,
        dumpfmt::CaptureMode::Stopped
    );
    p.kill();
    let mut r = dir.restore(&program, "restored", &image, &[]);
    let restored = r.wait_success();
    check_restored(
        &expected,
        &p.stdout_lines(),
        &restored,
        &describe_all(&[&p, &r]),
    );
}

/// A corrupted byte in a file's stored data: `verify` and the restore
/// refuse the image in one line naming the descriptor (status 65).
#[test]
fn corrupt_stored_contents_refused() {
    let dir = TestDir::new("bigfiles-corrupt");
    let work = dir.subdir("work");
    let program = Program::big_files("deleted", Some(&work));
    let image = dir.join("c.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    let i = p.wait_for_line("fd dense=", |l| l.starts_with("fd dense="));
    let fd: i32 = p.stdout_lines()[i]["fd dense=".len()..].parse().unwrap();
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();
    let img = image_meta(&image);
    let (_, run) = img
        .image
        .minor4
        .files
        .stored_runs()
        .find(|(n, _)| *n == fd)
        .expect("the dense file's data is stored with the page data");
    let at = img.base + run.file_offset + run.len / 2;
    drop(img);
    let bad = copy_image(&image, &dir, "bad.img");
    flip_byte(&bad, at);
    let line = expect_restore_failure(&dir, &program, "restore-bad", &bad, exit::CORRUPT);
    assert!(line.contains(&format!("fd {fd}")), "{line}");
    let out = Command::new(command::migrate())
        .arg("verify")
        .arg(&bad)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run migrate verify");
    assert!(!out.status.success(), "verify passed a corrupt image");
}

/// Incremental dumps (`MIGRATE_INCREMENTAL`) store each file's data in
/// every image (a file is not tracked page by page): the second image
/// restores, and so does its chain merged into one standalone image
/// (`migrate merge` carries the data over).
#[test]
fn large_deleted_files_incremental_and_merged() {
    let dir = TestDir::new("bigfiles-incr");
    let work = dir.subdir("work");
    let refdir = dir.subdir("ref");
    let expected = reference(&Program::big_files("deleted", Some(&refdir)));
    let program = Program::big_files("deleted", Some(&work));
    let pattern = dir.join("img-%n.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
            ("MIGRATE_INCREMENTAL", "8"),
        ],
    );
    for (n, step) in [(1, 5), (2, 12)] {
        p.wait_for_step(step);
        p.dump_signal();
        p.wait_for_image(&dir.join(&format!("img-{n}.img")), false);
    }
    p.kill();
    let second = dir.join("img-2.img");
    assert_eq!(
        image_meta(&second).image.minor4.incremental.ancestors.len(),
        1,
        "the second image is incremental"
    );
    let merged = dir.join("merged.img");
    let out = Command::new(command::migrate())
        .arg("merge")
        .arg(&second)
        .arg("--output")
        .arg(&merged)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run migrate merge");
    assert!(out.status.success(), "{out:?}");
    for (label, img) in [("restored-2", &second), ("restored-merged", &merged)] {
        let mut r = dir.restore(&program, label, img, &[]);
        let lines = r.wait_success();
        check_restored(
            &expected,
            &p.stdout_lines(),
            &lines,
            &describe_all(&[&p, &r]),
        );
    }
}
