//! Issue 12, files group: files the restore makes again come back with
//! their attributes and holes, deleted files whatever their open mode and
//! deleted FIFOs come back, `O_PATH` descriptors reopen the same inode, and
//! procfs files of the process itself show the restored process's own
//! live data (see `programs/cfileattrs.c`). Each test dumps mid-run,
//! kills, restores (checked against a second dump, see `fidelity`) and
//! compares the whole output, verdicts included, with an uninterrupted run.

use migrate_tests::*;

/// [`mode_roundtrip`] of a `cfileattrs` mode in `work/` (`ref/` for the
/// reference run), dumped at step 10 of 30.
fn files_mode(test: &str, mode: &str) {
    mode_roundtrip(test, Program::file_attrs, mode, Some("."), 10);
}

/// A sparse file deleted while open keeps its mode, times, size, offset
/// and holes; a memfd its mode and seals; a Unix socket's file its mode.
#[test]
fn attributes_of_remade_files() {
    files_mode("files-attrs", "attrs");
}

/// A deleted file open only for writing, and deleted FIFOs (both ends
/// open; one open for reading and writing) with bytes queued.
#[test]
fn deleted_write_only_file_and_fifos() {
    files_mode("files-deleted", "deleted");
}

/// `O_PATH` descriptors to a file, a directory and a symlink reopen the
/// same inodes, usable with fstatat, openat and readlinkat.
#[test]
fn o_path_descriptors() {
    files_mode("files-opath", "opath");
}

/// procfs files and directories the process opened about itself read its
/// own live data after the restore.
#[test]
fn own_procfs_files() {
    files_mode("files-procfs", "procfs");
}

/// A procfs file of another process fails the dump with one line naming
/// the descriptor; the program goes on.
#[test]
fn procfs_of_another_process_refused() {
    let dir = TestDir::new("files-procother");
    let program = Program::file_attrs("procother", None);
    let expected = reference(&program);
    let image = dir.join("other.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    let i = p.wait_for_line("other fd=", |l| l.starts_with("other fd="));
    let fd: i32 = p.stdout_lines()[i]["other fd=".len()..].parse().unwrap();
    p.wait_for_step(3);
    p.dump_signal();
    expect_dump_failure(&mut p, &image, &[fd], &["another process"], &expected);
}
