//! Multi-threaded programs: every thread is stopped and dumped, and a
//! restore brings every one back.
//!
//! Except for [`tids_are_kept`] (and the in-process checks of
//! [`mutexes_held_across_dump`]), nothing here depends on whether a restore
//! keeps the old PID and TIDs (a fresh PID namespace behind a supervisor
//! that forwards signals) or gives new ones: the tests only look at images,
//! output and exit statuses.

use std::time::{Duration, Instant};

use migrate_tests::*;

/// Starts `program` with `MIGRATE_IMAGE=dir/name`, dumps it once it has
/// printed `step N` with N >= `step`, kills it, restores the image, and
/// checks the restored output against an uninterrupted run (as
/// [`dump_kill_restore`], with a fixed image path). Also checks that the
/// image holds `threads` threads.
fn threaded_dump_kill_restore(
    test: &str,
    program: &Program,
    step: u64,
    threads: usize,
) -> (TestDir, DumpRestore) {
    let dir = TestDir::new(test);
    let image = dir.join("threads.img");
    let r = dump_kill_restore(
        &dir,
        program,
        step,
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
        &[],
    );
    assert_eq!(
        r.summary.threads,
        threads,
        "threads in the image of {}\n{}",
        program.name,
        describe_all(&[&r.original, &r.restored])
    );
    assert_eq!(
        r.restored.stderr(),
        "",
        "the restored {} printed on stderr\n{}",
        program.name,
        describe_all(&[&r.original, &r.restored])
    );
    (dir, r)
}

/// 4 workers taking turns under a pthread mutex and condition variable.
#[test]
fn c_four_threads_dump_kill_restore() {
    threaded_dump_kill_restore("c-4-threads", &Program::cthreads(4), 15, 5);
}

/// The fallback where user namespaces are not available: the restore
/// happens in the relaunched process, the threads get new TIDs, and a
/// program that holds no mutex across the dump still ends right.
#[test]
fn c_four_threads_without_namespace() {
    let dir = TestDir::new("c-4-threads-no-ns");
    let image = dir.join("threads.img");
    let r = dump_kill_restore(
        &dir,
        &Program::cthreads(4),
        15,
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
        &[("MIGRATE_NAMESPACE", "off")],
    );
    assert_eq!(
        r.summary.threads,
        5,
        "{}",
        describe_all(&[&r.original, &r.restored])
    );
}

/// The same program with 64 workers.
#[test]
fn c_sixty_four_threads_dump_kill_restore() {
    threaded_dump_kill_restore("c-64-threads", &Program::cthreads(64), 15, 65);
}

/// Rust: std::thread workers fed through mpsc channels, totals in a Mutex.
#[test]
fn rust_threads_dump_kill_restore() {
    threaded_dump_kill_restore("rust-threads", &rust_threads_program!(), 15, 5);
}

/// Debian's python3: a `threading` pool fed through `queue.Queue`.
#[test]
fn python_threads_dump_kill_restore() {
    threaded_dump_kill_restore("python-threads", &Program::python_threads(), 12, 5);
}

/// Runs `programs/cmutex.c` through a dump while its holder thread holds a
/// recursive mutex (locked twice) and an error-checking mutex, with a
/// waiter blocked on the latter; returns the restored output.
fn mutex_scenario(test: &str, program: &Program) -> Vec<String> {
    let (_dir, r) = threaded_dump_kill_restore(test, program, 5, 3);
    let out = r.restored.stdout_lines();
    assert!(
        step_of(&out[0]).is_some(),
        "the dump was meant to land while the mutexes were held (a `step N holding` line), \
         but the restored process resumed at line {} ({:?})\n{}",
        r.k,
        out[0],
        describe_all(&[&r.original, &r.restored])
    );
    out
}

/// Locks held across the dump work after the restore: both unlocks return
/// 0 (glibc checks the owner's TID), relocking the error-checking mutex
/// says EDEADLK, the waiter gets it, and `pthread_kill` from main reaches
/// the holder, whose handler runs in it. Checked through the output, which
/// must equal an uninterrupted run's.
#[test]
fn mutexes_held_across_dump() {
    let out = mutex_scenario("mutexes", &Program::cmutex(false));
    for want in [
        "relocked errorcheck=EDEADLK",
        "unlocked errorcheck=0 recursive=0,0",
        "worker got SIGUSR1: yes",
        "handler ran in worker: tid yes, pthread_self yes",
    ] {
        assert!(out.iter().any(|l| l == want), "no line {want:?}");
    }
}

/// A thread's `gettid()` after the restore is the one it had before the
/// dump (holds only when restores keep TIDs).
#[test]
fn tids_are_kept() {
    let out = mutex_scenario("tids", &Program::cmutex(true));
    assert!(out.iter().any(|l| l == "tid stable: yes"));
}

/// Threads start and exit all the time while 30 dumps are taken in a row:
/// no hang, no crash, the dumped process's output is unchanged, and every
/// image verifies and restores to the right end.
#[test]
fn churn_thirty_dumps() {
    const DUMPS: u64 = 30;
    /// Restores run this many at a time (they mostly sleep).
    const PARALLEL: usize = 15;
    let dir = TestDir::new("churn");
    let program = Program::cchurn();
    let expected = reference(&program);
    let mut original = spawn_numbered(&dir, &program);
    original.wait_for_step(1);
    let started = Instant::now();
    // For each dump: lines printed before the signal, and once the image was there.
    let windows = dump_repeatedly(&dir, &mut original, &expected, DUMPS);
    eprintln!("{DUMPS} dumps in {:?}", started.elapsed());
    let full = original.wait_success();
    assert_eq!(
        full,
        expected,
        "the dumps changed what the process printed\n{}",
        original.describe()
    );
    assert_eq!(
        original.stderr(),
        "",
        "the dumped process printed on stderr\n{}",
        original.describe()
    );
    let paths = check_numbered_images(&dir, DUMPS, &original);
    let started = Instant::now();
    for (batch_no, batch) in paths.chunks(PARALLEL).enumerate() {
        let mut restored: Vec<(usize, Proc)> = batch
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let idx = batch_no * PARALLEL + i;
                (
                    idx,
                    dir.restore(&program, &format!("restored-{}", idx + 1), img, &[]),
                )
            })
            .collect();
        for (idx, p) in &mut restored {
            let out = p.wait_success();
            let (before, at_image) = windows[*idx];
            let context = describe_all(&[&original, p]);
            let k = check_restored(&expected, &full[..at_image], &out, &context);
            assert!(
                k >= before,
                "restore of img-{}.img resumed at line {k}, but {before} lines were out before the signal\n{context}",
                *idx + 1
            );
            assert_eq!(p.stderr(), "", "{context}");
        }
    }
    eprintln!("{DUMPS} restores in {:?}", started.elapsed());
}

/// A 4-thread program dumped, killed and restored, five times in a chain;
/// the pieces together make the uninterrupted output.
#[test]
fn threads_chain_of_five() {
    let dir = TestDir::new("threads-chain");
    chain_of_restores(&dir, &Program::cthreads(4), &[5, 14, 23, 32, 41], Some(5));
}

/// One thread blocks SIGUSR2 with the raw system call (libc calls cannot block
/// the dump signal): the dump fails within about 5 s with one
/// line naming that thread, no image (or temporary file) appears, and the
/// program goes on to the same end as an uninterrupted run.
#[test]
fn blocked_dump_signal_fails_dump() {
    let dir = TestDir::new("blocked");
    let program = Program::cblock();
    let expected = reference(&program);
    let image = dir.join("blocked.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_line("ready", |l| l == "ready");
    p.wait_for_step(3);
    let threads = threads_of(p.pid());
    let blockers: Vec<i32> = threads
        .iter()
        .filter(|(_, name)| name == "blocker")
        .map(|&(tid, _)| tid)
        .collect();
    assert_eq!(
        blockers.len(),
        1,
        "threads of the program: {threads:?}\n{}",
        p.describe()
    );
    let blocker = blockers[0];
    let sent = Instant::now();
    p.dump_signal();
    let line = p.wait_for_stderr_line("`migrate: dump failed`", |l| {
        l.starts_with("migrate: dump failed")
    });
    let took = sent.elapsed();
    eprintln!("dump failed after {took:?}: {line}");
    assert!(
        took <= Duration::from_secs(8),
        "the dump took {took:?} to fail (about 5 s expected)\n{}",
        p.describe()
    );
    assert!(
        line.contains(&format!("thread {blocker} ")),
        "the failure line does not name the blocking thread {blocker}: {line:?}\n{}",
        p.describe()
    );
    expect_went_on_after_failed_dump(&mut p, &image, &expected);
    assert_eq!(
        list_files(dir.path()),
        Vec::<String>::new(),
        "files left in the image directory\n{}",
        p.describe()
    );
}
