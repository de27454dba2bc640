//! Relaunches under a wrapper that gets the shim and the variables itself,
//! the order a user types: `MIGRATE_RESTORE=app.img LD_PRELOAD=...
//! timeout 60 ./app`. The shim is loaded into the wrapper first, which
//! passes the image on to the program it runs (see the shim's
//! `restore::wrapper`). [`Program::wrapped`] is the other order: the
//! wrapper runs without the shim and `env` after it sets the variables.

use std::ffi::{OsStr, OsString};

use crate::{DumpRestore, Program, TestDir, finish_restored, reference};

/// `program` run by `wrapper` (a command line that runs its arguments),
/// the wrapper being the process started: under [`TestDir::restore`] it
/// gets `LD_PRELOAD` and `MIGRATE_RESTORE` in its own environment.
pub fn under(wrapper: &[&str], program: &Program) -> Program {
    let mut argv: Vec<&OsStr> = wrapper.iter().map(OsStr::new).collect();
    argv.extend(program.argv.iter().map(OsString::as_os_str));
    Program::command_of(&format!("{}-{}", wrapper[0], program.name), &argv)
}

/// `program` run by `shell -c 'exec ARGV'` (each argument single-quoted).
pub fn shell_exec(shell: &str, program: &Program) -> Program {
    let quoted: Vec<String> = program
        .argv
        .iter()
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''")))
        .collect();
    let script = format!("exec {}", quoted.join(" "));
    Program::command_of(
        &format!("{shell}-{}", program.name),
        &[OsStr::new(shell), OsStr::new("-c"), OsStr::new(&script)],
    )
}

/// [`crate::dump_kill_restore`] with the relaunch run as `relaunch` (say,
/// [`under`] a wrapper) instead of `program` itself: `program` is dumped
/// once it printed `step N` with N >= `step`, killed, and restored by
/// `relaunch` with `restore_env`, whose output must complete an
/// uninterrupted run's.
pub fn dump_kill_restore_as(
    dir: &TestDir,
    program: &Program,
    step: u64,
    relaunch: &Program,
    restore_env: &[(&str, &str)],
) -> DumpRestore {
    let expected = reference(program);
    let mut original = dir.spawn(program, "original", &[]);
    let image = dir.join(&format!("migrate-{}.img", original.pid()));
    original.wait_for_step(step);
    original.dump_signal();
    let summary = original.wait_for_image(&image, false);
    original.kill();
    let mut restored = dir.restore(relaunch, "restored", &image, restore_env);
    let k = finish_restored(&mut restored, &original, &expected);
    DumpRestore {
        original,
        restored,
        image,
        summary,
        k,
    }
}
