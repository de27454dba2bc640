//! Language runtimes from Debian's packages (issue 13): Ruby, whose
//! interpreter keeps a POSIX timer and deletes it at exit, and the JVM,
//! which maps its performance counters from a file it writes all the time
//! (`/tmp/hsperfdata_<user>/<pid>`). `.ci/run` installs both.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use migrate_tests::*;

/// The path of `tool`, or None (after saying the test is skipped).
fn needs(tool: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(tool))
        .find(|p| p.is_file());
    if found.is_none() {
        skip(test, tool);
    }
    found
}

fn ruby_program(ruby: &Path) -> Program {
    let script = crate_dir().join("programs/rbsteps.rb");
    Program::command_of("rbsteps", &[ruby.as_os_str(), script.as_os_str()])
}

/// (1) A Ruby script dumped mid-run and restored finishes with exact
/// output and status 0, in the PID namespace and in place (the namespace
/// restore kept the PID, so Ruby deleted its POSIX timer at exit, which
/// did not exist any more: a crash).
#[test]
fn ruby_restores_and_exits_cleanly() {
    let Some(ruby) = needs("ruby", "ruby_restores_and_exits_cleanly") else {
        return;
    };
    let program = ruby_program(&ruby);
    for namespace in ["on", "off"] {
        let dir = TestDir::new(&format!("ruby-{namespace}"));
        let env = [("MIGRATE_NAMESPACE", namespace)];
        let done = dump_kill_restore(&dir, &program, 10, &env, &env);
        assert_eq!(
            done.restored.stderr(),
            "",
            "{}",
            describe_all(&[&done.original, &done.restored])
        );
    }
}

/// `Steps.class` compiled with javac into `dir`.
fn compile_java(dir: &TestDir, javac: &Path) -> PathBuf {
    let classes = dir.subdir("classes");
    let src = crate_dir().join("programs/java/Steps.java");
    let out = Command::new(javac)
        .arg("-d")
        .arg(&classes)
        .arg(&src)
        .output()
        .expect("run javac");
    assert!(
        out.status.success(),
        "javac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    classes
}

/// The JVM's performance-counter file of process `pid`.
fn hsperfdata(pid: i32) -> PathBuf {
    // The JVM names the directory after the user (USER here, else root).
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    PathBuf::from(format!("/tmp/hsperfdata_{user}/{pid}"))
}

/// (2) A Java program with the JVM's defaults (perf data on) dumped with
/// `RTMIN+4` restores and finishes with exact output and status 0; and
/// again after its `/tmp/hsperfdata_*` file was removed, as on another box.
#[test]
fn jvm_restores_with_its_perf_data_file() {
    let test = "jvm_restores_with_its_perf_data_file";
    let (Some(java), Some(javac)) = (needs("java", test), needs("javac", test)) else {
        return;
    };
    for remove in [false, true] {
        let dir = TestDir::new(if remove { "jvm-removed" } else { "jvm" });
        let classes = compile_java(&dir, &javac);
        let program = Program::command_of(
            "jsteps",
            &[
                java.as_os_str(),
                OsStr::new("-cp"),
                classes.as_os_str(),
                OsStr::new("Steps"),
            ],
        );
        let expected = reference(&program);
        let env = [("MIGRATE_SIGNAL", "RTMIN+4")];
        let mut original = dir.spawn(&program, "original", &env);
        let image = dir.join(&format!("migrate-{}.img", original.pid()));
        original.wait_for_step(10);
        let perf = hsperfdata(original.pid());
        assert!(
            perf.exists(),
            "no {}\n{}",
            perf.display(),
            original.describe()
        );
        original.signal(libc::SIGRTMIN() + 4);
        original.wait_for_image(&image, false);
        original.kill();
        if remove {
            std::fs::remove_file(&perf).unwrap();
            // A restore refused after the file was made again (here: the
            // relaunch runs with no_new_privs, the JVM did not) leaves no
            // trace of it.
            let nnp = program.wrapped(&["setpriv", "--no-new-privs", "--"]);
            let msg = expect_restore_failure(&dir, &nnp, "refused", &image, exit::CANNOT_RESTORE);
            assert!(msg.contains("no_new_privs"), "{msg}");
            assert!(!perf.exists(), "a refused restore left {}", perf.display());
        }
        let restored = restore_and_check(&dir, &program, "restored", &image, &original, &expected);
        assert_eq!(
            restored.stderr(),
            "",
            "{}",
            describe_all(&[&original, &restored])
        );
    }
}

/// POSIX timers come back with their ids (a deleted one leaves a gap),
/// signals, periods and targets: one signals the process, one a worker
/// thread (SIGEV_THREAD_ID), one is never armed; all tick again after the
/// restore, and every `timer_delete` at the end succeeds.
#[test]
fn posix_timers_come_back() {
    let dir = TestDir::new("posix-timers");
    let program = Program::defects("timers", None);
    let done = dump_kill_restore(&dir, &program, 5, &[], &[]);
    let last = done.restored.stdout_lines();
    assert_eq!(last.last().map(String::as_str), Some("done deleted=3"));

    // Without the PID namespace the worker's TID is new: refused, not
    // restored with a timer signalling nobody.
    let dir = TestDir::new("posix-timers-inplace");
    let image = dir.join("t.img");
    dump_then_exit(&dir, &program, "original", &image, 3);
    let relaunch = program.wrapped(&["env", "MIGRATE_NAMESPACE=off"]);
    let msg = expect_restore_failure(&dir, &relaunch, "restored", &image, exit::CANNOT_RESTORE);
    assert!(
        msg.contains("POSIX timer") && msg.contains("signals thread"),
        "{msg}"
    );
}
