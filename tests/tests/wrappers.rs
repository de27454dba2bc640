//! Restores through a wrapper placed after the variables:
//! `MIGRATE_RESTORE=app.img LD_PRELOAD=libmigrate.so timeout 60 ./app`.
//! The shim is loaded into the wrapper first; a wrapper whose arguments
//! name the image's program passes the image on and the program restores
//! itself (as the wrapper's child, with its supervisor). A wrapper or a
//! program that is not the image's is refused with 68, pointing to
//! `migrate restore`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migrate_tests::outer::{dump_kill_restore_as, shell_exec, under};
use migrate_tests::*;

/// The C test program dumped at step 40 (inside its deep recursion),
/// killed and restored under `wrapper`.
fn cprog_under(test: &str, wrapper: &[&str]) {
    let dir = TestDir::new(test);
    let program = Program::c();
    dump_kill_restore_as(&dir, &program, 40, &under(wrapper, &program), &[]);
}

#[test]
fn timeout() {
    cprog_under("wrap-timeout", &["timeout", "60"]);
}

#[test]
fn nice() {
    cprog_under("wrap-nice", &["nice", "-n", "5"]);
}

#[test]
fn setarch() {
    cprog_under("wrap-setarch", &["setarch", "-R"]);
}

#[test]
fn env() {
    cprog_under("wrap-env", &["env"]);
}

/// A chain of wrappers, each exec'ing the next: every link passes the
/// image on.
#[test]
fn chain_of_wrappers() {
    cprog_under("wrap-chain", &["env", "nice", "-n", "3", "timeout", "60"]);
}

/// `bash -c 'exec PROG ARGS'`: the program is a word of an argument.
#[test]
fn bash_exec() {
    let dir = TestDir::new("wrap-bash");
    let program = Program::c();
    dump_kill_restore_as(&dir, &program, 40, &shell_exec("bash", &program), &[]);
}

/// Python relaunched as `timeout 60 python3 pydict.py`: `python3` is found
/// through `PATH` and is a symlink to the image's executable
/// (`/usr/bin/python3.11`). `PATH` is Debian's, so that `python3` is
/// Debian's, not one a version manager put first.
#[test]
fn python_through_path() {
    let dir = TestDir::new("wrap-python");
    let program = Program::python();
    let script = program.argv[1].clone();
    let by_name = Program::command_of("pydict", &[OsStr::new("python3"), &script]);
    let relaunch = under(&["timeout", "60"], &by_name);
    let path = [("PATH", "/usr/bin:/bin")];
    let dumped = dump_kill_restore_as(&dir, &program, 5, &relaunch, &path);
    let exe = image_meta(&dumped.image).image.exe.path.to_string();
    assert_ne!(
        exe, "/usr/bin/python3",
        "the image's executable is resolved"
    );
}

/// Python relaunched through a script, `timeout 60 ./relaunch.py`, whose
/// `#!/usr/bin/env python3` line runs the image's executable: `timeout`
/// follows the `#!` line (as `./relaunch.py` alone restores, the kernel
/// running python3 through env).
#[test]
fn python_script_with_a_shebang() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("wrap-shebang");
    let program = Program::python();
    let script = dir.join("relaunch.py");
    std::fs::write(&script, "#!/usr/bin/env python3\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let by_script = Program::command_of("pydict", &[script.as_os_str()]);
    let relaunch = under(&["timeout", "60"], &by_script);
    let path = [("PATH", "/usr/bin:/bin")];
    dump_kill_restore_as(&dir, &program, 5, &relaunch, &path);
}

/// An image of the C test program, dumped with exit at step 5.
fn cprog_image(dir: &TestDir) -> PathBuf {
    let image = dir.join("cprog.img");
    dump_then_exit(dir, &Program::c(), "dumped", &image, 5);
    image
}

/// A refusal (68) that names the image's program and suggests `migrate restore`.
fn expect_other_program(dir: &TestDir, relaunch: &Program, label: &str, image: &Path) {
    let stderr = expect_restore_failure(dir, relaunch, label, image, exit::OTHER_PROGRAM);
    let image_exe = Program::c().argv[0].to_string_lossy().into_owned();
    assert!(
        stderr.contains(&image_exe) && stderr.contains("migrate restore"),
        "the refusal must name {image_exe} and suggest `migrate restore`: {stderr:?}"
    );
}

/// Another program under the variables, alone or behind wrappers that name
/// it (not the image's program), is refused in the first process.
#[test]
fn another_program_is_refused() {
    let dir = TestDir::new("wrap-other");
    let image = cprog_image(&dir);
    let other = Program::cloop();
    expect_other_program(&dir, &other, "plain", &image);
    expect_other_program(&dir, &under(&["timeout", "60"], &other), "timeout", &image);
    expect_other_program(&dir, &shell_exec("bash", &other), "bash", &image);
}

/// The dynamic loader run as a command (`ld.so ./cprog`) is no wrapper:
/// the program it loads runs in its own process, after the shim's
/// constructor, and would run from its beginning (no restore, no dump
/// handler) had the loader been taken for one. It is refused.
#[test]
fn the_loader_run_as_a_command_is_refused() {
    let dir = TestDir::new("wrap-ldso");
    let image = cprog_image(&dir);
    let ld_so = OsStr::new("/lib64/ld-linux-x86-64.so.2");
    let by_loader = Program::command_of("ldso-cprog", &[ld_so, &Program::c().argv[0]]);
    expect_other_program(&dir, &by_loader, "ld.so", &image);
}

/// A restored program that runs longer than `timeout 1` allows is ended by
/// timeout's SIGTERM, and timeout exits 124. Plain `timeout` signals its
/// child (the supervisor, which forwards it) and its process group (the
/// restored process too).
#[test]
fn timeout_ends_a_restored_program() {
    timeout_ends("wrap-timeout-1", &["timeout", "1"]);
}

/// As [`timeout_ends_a_restored_program`] with `--foreground`, where
/// timeout signals only its child: the SIGTERM reaches the restored
/// process through the supervisor alone.
#[test]
fn timeout_foreground_ends_a_restored_program() {
    timeout_ends("wrap-timeout-fg", &["timeout", "--foreground", "1"]);
}

/// The malloc loop dumped at step 50 (with about 6 s to go) and restored
/// under `wrapper`, a `timeout` of 1 s.
fn timeout_ends(test: &str, wrapper: &[&str]) {
    let dir = TestDir::new(test);
    let program = Program::cloop();
    let expected = reference(&program);
    let image = dir.join("cloop.img");
    let original = dump_then_exit(&dir, &program, "dumped", &image, 50);
    let started = Instant::now();
    let mut restored = dir.restore(&under(wrapper, &program), "restored", &image, &[]);
    let status = restored.wait();
    let took = started.elapsed();
    let context = describe_all(&[&original, &restored]);
    assert_eq!(
        status.code(),
        Some(124),
        "timeout must end the restored program and exit 124 ({})\n{context}",
        describe_status(status)
    );
    assert!(
        took < Duration::from_secs(10),
        "timeout 1 took {took:?}\n{context}"
    );
    let lines = restored.stdout_lines();
    let k = check_segment(&expected, &lines, "the restored process", &context);
    assert!(k >= 50, "the restored process started over\n{context}");
    assert!(
        k + lines.len() < expected.len(),
        "the restored program ran to its end: timeout's SIGTERM did not reach it\n{context}"
    );
}
