//! A file the dumped process had mapped (a dlopen'd library, an mmap'd data
//! file) that is missing or changed at restore time makes the restore fail
//! with 69, before anything of the program runs.

use std::fs;
use std::path::PathBuf;

use migrate_tests::*;

struct Setup {
    dir: TestDir,
    lib: PathBuf,
    data: PathBuf,
    program: Program,
    image: PathBuf,
    /// The dumped process (exited).
    dumped: Proc,
}

/// Builds the library, writes the data file, runs dlprog on them and dumps
/// it at step 5 with MIGRATE_AFTER_DUMP=exit.
fn setup(test: &str) -> Setup {
    let dir = TestDir::new(test);
    let lib = dir.join("libchg.so");
    let data = dir.join("data.bin");
    build_libchg(&lib, 1);
    fs::write(&data, noise(1, 100_000)).unwrap();
    let program = Program::dlprog(&lib, &data);
    let image = dir.join("dl.img");
    let dumped = dump_then_exit(&dir, &program, "dumped", &image, 5);
    Setup {
        dir,
        lib,
        data,
        program,
        image,
        dumped,
    }
}

impl Setup {
    /// Restores the image as `label`, which must fail with 69 before the
    /// program runs.
    fn expect_refused(&self, label: &str) {
        expect_restore_failure(
            &self.dir,
            &self.program,
            label,
            &self.image,
            exit::MAPPED_FILE_CHANGED,
        );
    }
}

/// With the files unchanged the image restores (the positive control for
/// the tests below), and then a rebuilt library makes it fail.
#[test]
fn library_changed() {
    let s = setup("lib-changed");
    let expected = reference(&s.program);
    restore_and_check(
        &s.dir, &s.program, "restored", &s.image, &s.dumped, &expected,
    );

    build_libchg(&s.lib, 2);
    s.expect_refused("restore-after-rebuild");
}

#[test]
fn library_missing() {
    let s = setup("lib-missing");
    fs::remove_file(&s.lib).unwrap();
    s.expect_refused("restore");
}

#[test]
fn data_file_changed() {
    let s = setup("data-changed");
    // Same size, same inode, other contents.
    fs::write(&s.data, noise(2, 100_000)).unwrap();
    s.expect_refused("restore");
}

#[test]
fn data_file_missing() {
    let s = setup("data-missing");
    fs::remove_file(&s.data).unwrap();
    s.expect_refused("restore");
}
