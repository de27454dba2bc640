//! Issue 12, POSIX timers (`programs/ctimers.c`).
//!
//! A `SIGEV_THREAD` timer is served by a glibc helper thread that blocks
//! every signal and so never parks: the dump fails at once naming that
//! thread and the timer (rather than after waiting five seconds, blaming
//! a blocked dump signal), and the program goes on with its timer ticking.

use std::time::{Duration, Instant};

use migrate_tests::*;

#[test]
fn sigev_thread_timer_fails_the_dump_at_once() {
    let dir = TestDir::new("timers-thread");
    let program = Program::timers("thread");
    let expected = reference(&program);
    assert_eq!(
        &expected[expected.len() - 2..],
        ["thread timer ticks=yes value=77", "done 1"]
    );
    let image = dir.join("thread.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_step(3);
    let asked = Instant::now();
    p.dump_signal();
    let line = expect_dump_failure(
        &mut p,
        &image,
        &[],
        &["SIGEV_THREAD", "helper", "POSIX timer"],
        &expected,
    );
    // The park timeout is 5 s: the helper is told apart well before.
    assert!(asked.elapsed() < Duration::from_secs(4), "{line}");
    assert!(!image.exists(), "{line}");
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
