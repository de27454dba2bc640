//! The `migrate` command as the tests run it: where it is, and programs
//! started through `migrate run` and `migrate restore`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::{Program, shim_path};

/// `target/release/migrate`, beside the library the tests use.
pub fn migrate() -> PathBuf {
    let path = shim_path().with_file_name("migrate");
    assert!(
        path.is_file(),
        "{} does not exist: build first (`make`, or `cargo build --release`)",
        path.display()
    );
    path
}

/// `migrate run --image IMAGE ARGS -- PROGRAM` as a program to spawn.
pub fn under_run(migrate: &Path, program: &Program, image: &Path, args: &[&str]) -> Program {
    let mut argv: Vec<&OsStr> = vec![migrate.as_os_str(), "run".as_ref(), "--image".as_ref()];
    argv.push(image.as_os_str());
    argv.extend(args.iter().map(OsStr::new));
    argv.push("--".as_ref());
    argv.extend(program.argv.iter().map(OsString::as_os_str));
    Program::command_of(&format!("migrate-run-{}", program.name), &argv)
}

/// `WRAPPER... migrate restore IMAGE` as a program to spawn.
pub fn under_restore(migrate: &Path, wrapper: &[&str], image: &Path) -> Program {
    let mut argv: Vec<&OsStr> = wrapper.iter().map(OsStr::new).collect();
    argv.extend([migrate.as_os_str(), "restore".as_ref(), image.as_os_str()]);
    Program::command_of("migrate-restore", &argv)
}

/// `err` without the progress lines `migrate dump`/`send` print once a
/// second when stderr is not a terminal (how many depends on the
/// machine's speed: tests that count lines skip them).
pub fn without_progress(err: &str) -> String {
    err.lines()
        .filter(|l| !(l.starts_with("migrate: dump of ") && l.ends_with(" written")))
        .map(|l| format!("{l}\n"))
        .collect()
}
