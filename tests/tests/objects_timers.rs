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
