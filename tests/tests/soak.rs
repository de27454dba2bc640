//! `make soak` (not part of `make test`): many dump → kill → restore cycles
//! of a threaded Python program and of a file-copying C program, each
//! dumped at another step. Every cycle runs to its end; the report gives
//! the failures (which must be none, with the kept directories of the
//! failed cycles) and the slowest cycle. `MIGRATE_SOAK_CYCLES` sets the
//! number of cycles per program (200).

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use migrate_tests::*;

fn cycles() -> u64 {
    std::env::var("MIGRATE_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Runs `cycle(n, dir)` `cycles()` times in fresh directories, each under
/// `catch_unwind`; prints the failures and the slowest cycle, and fails if
/// any cycle failed.
fn soak(what: &str, cycle: impl Fn(u64, &TestDir)) {
    let total = cycles();
    let mut failures: Vec<(u64, String, PathBuf)> = Vec::new();
    let mut slowest = (Duration::ZERO, 0);
    let started = Instant::now();
    for n in 0..total {
        let dir = TestDir::new(&format!("soak-{what}-{n}"));
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| cycle(n, &dir)));
        let took = t.elapsed();
        match result {
            Ok(()) => {
                if took > slowest.0 {
                    slowest = (took, n);
                }
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let first = msg.lines().next().unwrap_or_default().to_string();
                failures.push((n, first, dir.keep()));
            }
        }
    }
    eprintln!(
        "soak {what}: {total} cycles in {:.0?}, {} failures, slowest cycle {} ({:.2?})",
        started.elapsed(),
        failures.len(),
        slowest.1,
        slowest.0
    );
    for (n, msg, dir) in &failures {
        eprintln!("  cycle {n}: {msg} (kept {})", dir.display());
    }
    assert!(
        failures.is_empty(),
        "soak {what}: {} failures",
        failures.len()
    );
}

/// `pythreads.py` (a `threading` pool fed through `queue.Queue`, 50
/// steps), dumped at steps 2 to 46 in turn.
#[test]
#[ignore = "long: run by `make soak`"]
fn soak_python_threads() {
    let program = Program::python_threads();
    let expected = reference(&program);
    soak("pythreads", |n, dir| {
        let image = dir.join("threads.img");
        let r = dump_kill_restore_with(
            dir,
            &program,
            &DumpPlan {
                expected: &expected,
                step: 2 + n % 45,
                env: &[("MIGRATE_IMAGE", image.to_str().unwrap())],
                restore_env: &[],
                lines_after: 0,
            },
        );
        assert_eq!(
            r.restored.stderr(),
            "",
            "the restored process printed on stderr\n{}",
            describe_all(&[&r.original, &r.restored])
        );
    });
}

/// `cfilecopy.c` (250 lines through stdio, flushed and not, and raw fds),
/// dumped at steps 1 to 240 in turn, killed 3 lines after its image is
/// complete: every output file equals the input after the restore.
#[test]
#[ignore = "long: run by `make soak`"]
fn soak_file_copy() {
    let input = numbered_text(250);
    let names = ["flushed.txt", "buffered.txt", "raw.txt"];
    let copy = |d: &std::path::Path| {
        Program::filecopy(
            &d.join("in.txt"),
            &d.join(names[0]),
            &d.join(names[1]),
            &d.join(names[2]),
        )
    };
    soak("filecopy", |n, dir| {
        let (work, refdir) = (dir.subdir("work"), dir.subdir("ref"));
        for d in [&work, &refdir] {
            fs::write(d.join("in.txt"), &input).unwrap();
        }
        let expected = reference(&copy(&refdir));
        let image = dir.join("filecopy.img");
        let r = dump_kill_restore_with(
            dir,
            &copy(&work),
            &DumpPlan {
                expected: &expected,
                step: 1 + n * 37 % 240,
                env: &[("MIGRATE_IMAGE", image.to_str().unwrap())],
                restore_env: &[],
                lines_after: 3,
            },
        );
        for name in names {
            let got = fs::read(work.join(name)).unwrap();
            assert!(
                got == input,
                "{name} differs from the input after the restore: {}\n{}",
                first_difference(&got, &input),
                describe_all(&[&r.original, &r.restored])
            );
        }
    });
}
