//! The dump signal belongs to the shim: a program that installs its own
//! handler for it and blocks it in every thread can still be dumped (its
//! handler never runs). With `MIGRATE_SIGNAL` set to another signal,
//! SIGUSR2 is the program's own again: its handler runs as written, before
//! and after a restore, and the other signal dumps.
//!
//! The program is `programs/csigown.c`: SIGUSR2 blocked in main and in a
//! worker, let in by main between steps, where the handler's run shows as a
//! `got SIGUSR2` line.

use migrate_tests::*;

const GOT: &str = "got SIGUSR2";

/// `lines` without the `got SIGUSR2` lines, and how many there were.
fn without_got(lines: &[String]) -> (Vec<String>, usize) {
    let kept: Vec<String> = lines.iter().filter(|l| *l != GOT).cloned().collect();
    let n = lines.len() - kept.len();
    (kept, n)
}

/// 5a. Default settings: the program's `signal`, `sigaction` (which reads
/// back its own handler), `sigprocmask` and `pthread_sigmask` calls for
/// SIGUSR2 do not keep SIGUSR2 from dumping it; its handler never runs; the
/// image restores to the right end.
#[test]
fn own_handler_and_mask_do_not_stop_dumps() {
    let dir = TestDir::new("sig-default");
    let program = Program::sigown();
    let expected = reference(&program);
    let image = dir.join("sig.img");
    let r = dump_kill_restore_with(
        &dir,
        &program,
        &DumpPlan {
            expected: &expected,
            step: 5,
            env: &[("MIGRATE_IMAGE", image.to_str().unwrap())],
            restore_env: &[],
            lines_after: 2,
        },
    );
    let context = describe_all(&[&r.original, &r.restored]);
    assert_eq!(r.summary.threads, 2, "{context}");
    assert_eq!(r.restored.stderr(), "", "{context}");
}

/// 5b. `MIGRATE_SIGNAL=RTMIN+4`: a SIGUSR2 is the program's (its handler
/// runs, once main lets it in); SIGRTMIN+4 dumps it; the restored process
/// (SIGUSR2 sent to the supervisor, which forwards it) runs the handler
/// again, and ends as an uninterrupted run would.
#[test]
fn app_owns_sigusr2_when_dump_signal_is_rtmin4() {
    let dir = TestDir::new("sig-rtmin4");
    let program = Program::sigown();
    let expected = reference(&program);
    let image = dir.join("sig.img");
    let rtmin4 = libc::SIGRTMIN() + 4;
    let mut original = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_SIGNAL", "RTMIN+4"),
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ],
    );
    original.wait_for_step(3);
    original.signal(libc::SIGUSR2);
    original.wait_for_line(&format!("`{GOT}`"), |l| l == GOT);
    assert!(
        !image.exists(),
        "SIGUSR2 dumped the process although MIGRATE_SIGNAL=RTMIN+4\n{}",
        original.describe()
    );
    original.dump_with(rtmin4);
    let summary = original.wait_for_image(&image, false);
    let at_image = original.stdout_lines().len();
    original.wait_for_lines(at_image + 1);
    original.kill();

    let mut restored = dir.restore(&program, "restored", &image, &[]);
    restored.wait_for_line("a `step N` line", |l| step_of(l).is_some());
    restored.signal(libc::SIGUSR2);
    restored.wait_for_line(&format!("`{GOT}`"), |l| l == GOT);
    let out = restored.wait_success();

    let context = describe_all(&[&original, &restored]);
    assert_eq!(summary.threads, 2, "{context}");
    let (before, got_before) = without_got(&original.stdout_lines());
    let (after, got_after) = without_got(&out);
    assert_eq!(
        got_before, 1,
        "the program's handler should have run once before the dump\n{context}"
    );
    assert_eq!(
        got_after, 1,
        "the restored program's handler should have run once\n{context}"
    );
    check_restored(&expected, &before, &after, &context);
    assert_eq!(restored.stderr(), "", "{context}");
}

/// An interval timer caught just after it expired, its SIGALRM blocked
/// and pending (so it reads 0 with its interval): it was restored as
/// disarmed, and the program, once it unblocked SIGALRM, got one signal
/// and then none. It must repeat as before the dump.
#[test]
fn expired_interval_timer_with_its_signal_pending_repeats() {
    let dir = TestDir::new("itimer-pending");
    let program = Program::command_of(
        "pyitimer",
        &[
            PYTHON.as_ref(),
            crate_dir().join("programs/pyitimer.py").as_os_str(),
        ],
    );
    assert_eq!(
        reference(&program).last().map(String::as_str),
        Some("done repeats")
    );
    dump_kill_restore(&dir, &program, 3, &[], &[]);
}
