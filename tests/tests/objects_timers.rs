//! Issue 12, POSIX timers (`programs/ctimers.c`).
//!
//! A `SIGEV_THREAD` timer is served by a glibc helper thread that blocks
//! every signal but `SIGSETXID`: the dump parks it through that signal
//! and the restore brings it back under its TID, so the timers glibc aims
//! at it fire their callbacks after the restore.

use migrate_tests::*;

/// A SIGEV_THREAD timer ticking every 5 ms still ticks, with its value,
/// after the restore.
#[test]
fn sigev_thread_timer_comes_back() {
    roundtrip(
        "timers-thread",
        "thread",
        &["thread timer ticks=yes value=77", "done 1"],
    );
}

const SEVTHREAD_TAIL: &[&str] = &[
    "periodic interval=0.010000000 ticks=yes value=77",
    "oneshot fired=1 value=88",
    "new fired=1 value=99 deleted=yes",
    "periodic deleted=yes stopped=yes",
    "callbacks context=ok",
    "setuid ok",
    "fork child timer=yes",
    "done 1",
];

/// SIGEV_THREAD timers after a restore: a periodic one keeps its interval
/// and value (callbacks, each in a detached thread with glibc's signal
/// mask, are running at the dump), a one-shot armed for after the restore
/// fires once, a new one can be made, fires and is deleted, the periodic
/// one is deleted and stops, and a forked child gets a helper of its own.
#[test]
fn sigev_thread_timers_come_back() {
    roundtrip("timers-sevthread", "sevthread", SEVTHREAD_TAIL);
}

/// The same from a dump that keeps the program stopped until the image
/// is written (the default is a copy-on-write snapshot).
#[test]
fn sigev_thread_timers_come_back_from_a_stopped_dump() {
    let dir = TestDir::new("timers-sevthread-stop");
    let program = Program::timers("sevthread");
    let expected = reference(&program);
    let r = dump_kill_restore_with(
        &dir,
        &program,
        &DumpPlan {
            expected: &expected,
            step: 5,
            env: &[("MIGRATE_SNAPSHOT", "stop")],
            restore_env: &[],
            lines_after: 0,
        },
    );
    let context = describe_all(&[&r.original, &r.restored]);
    let lines = r.restored.stdout_lines();
    let tail = SEVTHREAD_TAIL;
    assert_eq!(&lines[lines.len() - tail.len()..], tail, "{context}");
    assert_eq!(r.restored.stderr(), "", "{context}");
}

/// The program that goes on after a dump (its helper parked and let go,
/// glibc's SIGSETXID handler lent and given back) is undisturbed: it ends
/// as an uninterrupted run does, and `setuid` to itself (a SIGSETXID to
/// every thread, the helper too) still works afterwards.
#[test]
fn sigev_thread_timers_go_on_after_a_dump() {
    let dir = TestDir::new("timers-sevthread-on");
    let program = Program::timers("sevthread");
    let expected = reference(&program);
    let image = dir.join("on.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&image, false);
    let status = p.wait();
    let context = describe_all(&[&p]);
    assert!(status.success(), "{context}");
    assert_eq!(p.stdout_lines(), expected, "{context}");
}

/// glibc's helper takes its pending timer signals as it parks and queues
/// them again; those copies count against RLIMIT_SIGPENDING, so with no
/// room for them the dump fails at once naming the helper (rather than
/// lose a tick of the program that goes on), and the program ends as an
/// uninterrupted run does.
#[test]
fn sigev_thread_helper_without_signal_queue_room_fails_the_dump() {
    let dir = TestDir::new("timers-sevthread-sigq");
    let program = Program::timers("sevthread").wrapped(&["prlimit", "--sigpending=40", "--"]);
    let expected = reference(&program);
    let image = dir.join("full.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_step(5);
    p.dump_signal();
    let line = p.wait_for_stderr_line("the failed dump's line", |l| l.contains("dump failed"));
    let status = p.wait();
    let context = describe_all(&[&p]);
    assert!(
        line.contains("(SIGEV_THREAD)") && line.contains("RLIMIT_SIGPENDING"),
        "{line:?}\n{context}"
    );
    assert!(!image.exists(), "{context}");
    assert!(status.success(), "{context}");
    assert_eq!(p.stdout_lines(), expected, "{context}");
    assert_eq!(p.stderr().lines().count(), 1, "{context}");
}

/// Dumps `ctimers MODE` at step 5, kills it, restores it: the restored
/// process ends with `tail`, as an uninterrupted run does.
fn roundtrip(test: &str, mode: &str, tail: &[&str]) {
    let dir = TestDir::new(test);
    let program = Program::timers(mode);
    let expected = reference(&program);
    assert_eq!(
        &expected[expected.len() - tail.len()..],
        tail,
        "the reference run"
    );
    let r = dump_kill_restore(&dir, &program, 5, &[], &[]);
    let context = describe_all(&[&r.original, &r.restored]);
    let lines = r.restored.stdout_lines();
    assert_eq!(&lines[lines.len() - tail.len()..], tail, "{context}");
    assert_eq!(r.restored.stderr(), "", "{context}");
}

const SIGNAL_TAIL: &[&str] = &[
    "interval=3.000000000 left=ok",
    "fired code=timer timerid=same value=66",
    "overrun many=yes agrees=yes",
    "done 1",
];

/// A process-directed SIGEV_SIGNAL timer comes back with its interval and
/// time left, fires with its id and value, and counts overruns that
/// `timer_getoverrun` reports as the siginfo does.
#[test]
fn sigev_signal_timer_comes_back() {
    roundtrip("timers-signal", "signal", SIGNAL_TAIL);
}

/// The same with SIGEV_THREAD_ID to the main thread.
#[test]
fn sigev_thread_id_timer_comes_back() {
    roundtrip("timers-tid", "tid", SIGNAL_TAIL);
}

/// A timer's signal pending (blocked) at the dump comes back with its
/// siginfo: SI_TIMER, the timer's id and value (not as a bare kill).
#[test]
fn pending_timer_signal_keeps_its_siginfo() {
    roundtrip(
        "timers-pending",
        "pending",
        &["pending code=timer timerid=same value=55", "done 1"],
    );
}

/// Pending timer signals and overruns (`ctimers overrun`): a pending
/// signal comes back with its overrun (50) and `timer_getoverrun` after
/// it; a timer's `timer_getoverrun` (7) comes back without one pending;
/// two timers sharing a number both come back with SI_TIMER, in order; a
/// SIGEV_THREAD_ID timer's signal once; a periodic timer's pending signal
/// once, not again from the timer armed anew.
#[test]
fn pending_timer_signals_come_back_once_with_their_overruns() {
    roundtrip(
        "timers-overrun",
        "overrun",
        &[
            "A last before=0",
            "A code=timer timer=same value=41 overrun=50",
            "A last after=50 again=no",
            "B last=7",
            "shared first=C second=D code=timer,timer values=51,52 again=no",
            "E code=timer timer=same value=61 overrun=0",
            "E again=no",
            "F code=timer value=71 again=no",
            "done overrun",
        ],
    );
}

/// The dump takes the timers' pending signals to read them: the process
/// that goes on after its dump still takes each once, from its timer,
/// with its overrun.
#[test]
fn dumped_process_still_takes_its_timer_signals() {
    let dir = TestDir::new("timers-overrun-on");
    let program = Program::timers("overrun");
    let expected = reference(&program);
    let image = dir.join("overrun.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    original.wait_for_step(5);
    original.dump_signal();
    original.wait_for_image(&image, false);
    let out = original.wait_success();
    let context = original.describe();
    assert_eq!(out, expected, "{context}");
}
