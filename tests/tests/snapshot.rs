//! Low-pause snapshot dumps (issue 11, `MIGRATE_SNAPSHOT`): in continue
//! mode the program is stopped only while a copy-on-write snapshot is
//! taken, and a writer it never sees writes the image while it runs on.
//! The image is of the snapshot's one instant (memory written all through
//! the dump), the program runs while the image is written, the writer is
//! invisible (`wait`, SIGCHLD, `/proc/.../children`, no zombie), shared
//! memory makes the dump a stopped one with a line saying why,
//! `MIGRATE_SNAPSHOT=stop` keeps the program stopped until the image is
//! complete, and a writer that fails leaves the previous image and the
//! program running.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use migrate_tests::procs::{status_text, status_value, wait_until, writers_in};
use migrate_tests::small_disk::SmallDisk;
use migrate_tests::*;

/// `csnap ARGS` (see `programs/csnap.c`), named `csnap-NAME`.
fn csnap(name: &str, args: &[&str]) -> Program {
    let exe = env!("MIGRATE_TEST_CSNAP");
    let mut argv: Vec<&OsStr> = vec![exe.as_ref()];
    argv.extend(args.iter().map(OsStr::new));
    Program::command_of(&format!("csnap-{name}"), &argv)
}

/// The `migrate: dumped` lines a process logged.
fn dumped_lines(p: &Proc) -> Vec<String> {
    p.stderr()
        .lines()
        .filter(|l| l.starts_with("migrate: dumped "))
        .map(str::to_string)
        .collect()
}

/// How the image was captured.
fn capture(image: &Path) -> dumpfmt::Capture {
    image_meta(image).image.minor4.capture
}

/// The step of the first line `step N` a restored process printed.
fn first_step(lines: &[String], context: &str) -> u64 {
    lines
        .iter()
        .find_map(|l| step_of(l))
        .unwrap_or_else(|| panic!("no step line after the restore\n{context}"))
}

/// The step at which the program saw its image (its stderr line).
fn seen_at(p: &mut Proc) -> u64 {
    let line = p.wait_for_stderr_line("`image seen at step N` or `image not seen`", |l| {
        l.starts_with("image seen at step ") || l.starts_with("image not seen by the end")
    });
    match line.strip_prefix("image seen at step ") {
        Some(n) => n.trim().parse().unwrap(),
        // It ran to its end while the writer wrote.
        None => u64::MAX,
    }
}

/// Dumps `program` (which must print `image seen at step N` once its
/// image exists) at step 10 with `env`, kills it once it saw the image,
/// restores and checks the output; returns the step it saw the image
/// at, the step the snapshot was of (the last before the restored
/// process's first) and the image.
fn dump_seen_restore(
    dir: &TestDir,
    program: &Program,
    image: &Path,
    env: &[(&str, &str)],
) -> (u64, u64, PathBuf) {
    let expected = reference(program);
    let mut all = vec![
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_LOG", "info"),
    ];
    all.extend_from_slice(env);
    let mut p = dir.spawn(program, "original", &all);
    p.wait_for_step(10);
    p.dump_signal();
    // A snapshot's writer may finish after the program ended.
    p.wait_for_image(image, true);
    let seen = seen_at(&mut p);
    p.kill();
    let mut r = dir.restore(program, "restored", image, &[]);
    let restored = r.wait_success();
    let context = describe_all(&[&p, &r]);
    check_restored(&expected, &p.stdout_lines(), &restored, &context);
    let snap = first_step(&restored, &context) - 1;
    (seen, snap, image.to_path_buf())
}

/// Runs `program` with its image at `image` and the info log, dumps it at
/// step 20, waits for the image and for its stderr line starting with
/// `start` (`what`), kills it, restores it and checks that it ends as an
/// uninterrupted run; returns the original (ended), that line and the
/// processes' description.
fn dump_line_restore(
    dir: &TestDir,
    program: &Program,
    image: &Path,
    what: &str,
    start: &str,
) -> (Proc, String, String) {
    let expected = reference(program);
    let mut p = dir.spawn(
        program,
        "original",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_LOG", "info"),
        ],
    );
    p.wait_for_step(20);
    p.dump_signal();
    p.wait_for_image(image, false);
    let line = p.wait_for_stderr_line(what, |l| l.starts_with(start));
    p.kill();
    let mut r = dir.restore(program, "restored", image, &[]);
    let restored = r.wait_success();
    let context = describe_all(&[&p, &r]);
    check_restored(&expected, &p.stdout_lines(), &restored, &context);
    (p, line, context)
}

/// The program sweeps 16 MiB of counters without pause, each checked
/// against the previous sweep before it is written, all through the dump:
/// the image is the snapshot's (one instant), so the restored program
/// finds every counter consistent and prints exactly the rest of the
/// uninterrupted run. The image says it came from a snapshot, and the
/// writer's line says how long the program was paused.
#[test]
fn memory_is_of_the_snapshot_instant() {
    let dir = TestDir::new("snapshot-instant");
    let image = dir.join("app.img");
    let program = csnap("sweep", &["sweep", "16", "32", "600"]);
    let (p, line, context) = dump_line_restore(
        &dir,
        &program,
        &image,
        "the writer's `migrate: dumped` line",
        "migrate: dumped ",
    );
    assert!(
        line.contains(", snapshot, paused "),
        "the dump should have been written from a snapshot: {line:?}\n{context}"
    );
    let c = capture(&image);
    assert_eq!(c.mode, dumpfmt::CaptureMode::Snapshot, "{context}");
    assert!(c.pause_ns > 0, "{c:?}\n{context}");
    // One info line per dump, as for a stopped dump.
    assert_eq!(dumped_lines(&p).len(), 1, "{context}");
    assert_eq!(p.stderr().lines().count(), 1, "{context}");
}

/// The program runs on while the image is written: it finds its image
/// only steps after the snapshot was taken (the restored process resumes
/// right after that step). With `MIGRATE_SNAPSHOT=stop` it is stopped
/// until the image is in place, so it sees it in the step of the snapshot
/// or the next. (The ballast, 192 MiB, takes many of the program's 4 MiB
/// steps to write.)
#[test]
fn program_runs_while_the_image_is_written() {
    let dir = TestDir::new("snapshot-runs");
    let image = dir.join("app.img");
    let arg = image.to_str().unwrap();
    let program = csnap("runs", &["sweep", "4", "192", "2000", arg]);
    let (seen, snap, image) = dump_seen_restore(&dir, &program, &image, &[]);
    assert!(
        seen > snap + 1,
        "the program saw its image at step {seen}, right after the snapshot of step {snap}: \
         it did not run while the image was written"
    );
    assert_eq!(capture(&image).mode, dumpfmt::CaptureMode::Snapshot);
}

/// `MIGRATE_SNAPSHOT=stop`: today's dump, the program stopped until the
/// image is complete.
#[test]
fn stop_mode_keeps_the_program_stopped() {
    let dir = TestDir::new("snapshot-stop");
    let image = dir.join("app.img");
    let arg = image.to_str().unwrap();
    let program = csnap("stop", &["sweep", "4", "192", "2000", arg]);
    let (seen, snap, image) =
        dump_seen_restore(&dir, &program, &image, &[("MIGRATE_SNAPSHOT", "stop")]);
    assert!(
        seen == snap || seen == snap + 1,
        "stopped for the dump, the program saw its image at step {seen}, not at step {snap} \
         of the snapshot or the next"
    );
    assert_eq!(capture(&image).mode, dumpfmt::CaptureMode::Stopped);
    assert_eq!(capture(&image).pause_ns, 0);
}

/// A bad `MIGRATE_SNAPSHOT` is one line before the program runs.
#[test]
fn bad_mode_is_refused() {
    let dir = TestDir::new("snapshot-bad");
    let mut p = dir.spawn(
        &csnap("bad", &["wait", "10"]),
        "bad",
        &[("MIGRATE_SNAPSHOT", "later")],
    );
    let status = p.wait_unless_output();
    assert_eq!(status.code(), Some(64), "{}", p.describe());
    assert_eq!(
        p.stderr().trim_end(),
        "migrate: MIGRATE_SNAPSHOT=later: expected snapshot or stop",
        "{}",
        p.describe()
    );
}

/// `(pid, ppid, state, command name)` of every process.
fn processes() -> Vec<(i32, i32, char, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut f = stat[close + 2..].split(' ');
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((pid, ppid, state, comm));
    }
    out
}

/// The writer is invisible: a program that waits for any child in a loop
/// (blocking `waitpid(-1)`), counts SIGCHLD and lists its threads'
/// children at every step sees nothing through twelve dumps; neither it
/// nor its parent (this test) is left with a child or zombie of them.
#[test]
fn writer_is_invisible() {
    let dir = TestDir::new("snapshot-invisible");
    let image = dir.join("app-%n.img");
    let program = csnap("wait", &["wait", "2500"]);
    let mut p = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_LOG", "info"),
        ],
    );
    p.wait_for_step(5);
    let me = std::process::id() as i32;
    for n in 1..=12 {
        p.dump_signal();
        let start = format!(
            "migrate: dumped {}",
            dir.join(&format!("app-{n}.img")).display()
        );
        p.wait_for_stderr_line(&format!("dump {n}'s `migrate: dumped` line"), |l| {
            l.starts_with(&start)
        });
        // (This test's other children come and go: only writers count.)
        let strays: Vec<_> = processes()
            .into_iter()
            .filter(|(_, ppid, _, comm)| {
                *ppid == p.pid() || *ppid == me && comm == "migrate-writer"
            })
            .collect();
        assert!(
            strays.is_empty(),
            "after dump {n}: children of the program, or zombies of its parent: {strays:?}\n{}",
            p.describe()
        );
    }
    let out = p.wait_success();
    let context = p.describe();
    assert_eq!(
        out.last().map(String::as_str),
        Some("done sigchld=0 waited=0 children=0"),
        "{context}"
    );
    let lines = dumped_lines(&p);
    assert_eq!(lines.len(), 12, "{context}");
    assert!(
        lines.iter().all(|l| l.contains(", snapshot, paused ")),
        "every dump should be a snapshot\n{context}"
    );
}

/// Shared memory written during the dump is not frozen by a copy-on-write
/// snapshot: the dump keeps the program stopped and says why, and the
/// restored counters (in `MAP_SHARED` memory) are of the one instant.
#[test]
fn shared_memory_dumps_stopped() {
    let dir = TestDir::new("snapshot-shared");
    let image = dir.join("app.img");
    let program = csnap("shared", &["shared", "16", "0", "600"]);
    // The `dumped` line comes last: once it is out, both are.
    let (p, _, context) = dump_line_restore(
        &dir,
        &program,
        &image,
        "the `migrate: dumped` line",
        "migrate: dumped ",
    );
    let stopped = "migrate: this dump keeps the process stopped: ";
    let why = p
        .stderr()
        .lines()
        .find(|l| l.starts_with(stopped))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        why.contains("shared memory") && why.contains(" rw-s "),
        "the line should name the shared mapping: {why:?}\n{context}"
    );
    assert_eq!(capture(&image).mode, dumpfmt::CaptureMode::Stopped);
    let lines = dumped_lines(&p);
    assert!(
        lines.len() == 1 && lines[0].contains(", stopped"),
        "{context}"
    );
}

/// A writer that fails (its disk full) fails the dump as a stopped dump
/// would: one line naming the image and ENOSPC, the previous image left as
/// it was, no temporary file, and the program goes on to its normal end.
#[test]
fn failed_writer_keeps_the_previous_image() {
    if !skip::is_root() {
        skip(
            "failed_writer_keeps_the_previous_image",
            "root (to mount a small tmpfs)",
        );
        return;
    }
    let dir = TestDir::new("snapshot-full");
    let (disk, image) = SmallDisk::with_previous_image(dir.join("disk"));
    let program = csnap("full", &["sweep", "4", "8", "1500"]);
    let expected = reference(&program);
    let mut p = dir.spawn(
        &program,
        "full",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_LOG", "debug"),
        ],
    );
    p.wait_for_step(10);
    p.dump_signal();
    let line = p.wait_for_stderr_line("`migrate: dump failed`", |l| {
        l.starts_with("migrate: dump failed")
    });
    let out = p.wait_success();
    let context = p.describe();
    assert!(
        line.contains("ENOSPC") && line.contains(image.to_str().unwrap()),
        "the failure line should say the disk is full and name the image: {line:?}\n{context}"
    );
    assert!(
        p.stderr().contains("migrate: snapshot for "),
        "the writer should have written the image\n{context}"
    );
    assert_eq!(
        out, expected,
        "the program did not go on to its end\n{context}"
    );
    disk.assert_previous_image_kept(&image);
}

/// Memory marked `MADV_WIPEONFORK` is zero in a clone: a snapshot cannot
/// hold it, and rather than an image with zeros there the dump fails,
/// naming the advice and the way out, and the program goes on; with
/// `MIGRATE_SNAPSHOT=stop` the same program dumps and restores.
#[test]
fn wipe_on_fork_memory_fails_the_snapshot_loudly() {
    let dir = TestDir::new("snapshot-wipe");
    let image = dir.join("app.img");
    let program = csnap("wipe", &["wipe", "4", "8", "1500"]);
    let expected = reference(&program);
    let env = [
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_LOG", "info"),
    ];
    let mut p = dir.spawn(&program, "snapshot", &env);
    p.wait_for_step(10);
    p.dump_signal();
    let line = p.wait_for_stderr_line("`migrate: dump failed`", |l| {
        l.starts_with("migrate: dump failed")
    });
    assert!(!image.exists(), "an image was written\n{}", p.describe());
    // The program learnt it: its next dump is stopped, and succeeds.
    p.dump_signal();
    p.wait_for_image(&image, false);
    let out = p.wait_success();
    let context = p.describe();
    assert!(
        line.contains("MADV_WIPEONFORK") && line.contains("MIGRATE_SNAPSHOT=stop"),
        "{line:?}\n{context}"
    );
    assert!(
        p.stderr()
            .contains("this dump keeps the process stopped: an earlier snapshot found memory"),
        "{context}"
    );
    assert_eq!(out, expected, "the program did not go on\n{context}");
    std::fs::remove_file(&image).unwrap();

    let mut env = env.to_vec();
    env.push(("MIGRATE_SNAPSHOT", "stop"));
    let mut p = dir.spawn(&program, "stopped", &env);
    p.wait_for_step(10);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();
    let mut r = dir.restore(&program, "restored", &image, &[]);
    let restored = r.wait_success();
    check_restored(
        &expected,
        &p.stdout_lines(),
        &restored,
        &describe_all(&[&p, &r]),
    );
}

/// A restored process (in its PID namespace) that ends while its
/// snapshot's writer still writes: the writer, an orphan of the
/// namespace's init, finishes the image before init ends the namespace
/// (whose end kills everything in it). The program is killed (TERM,
/// forwarded by the supervisor) right after its pause, with 192 MiB
/// still to write: the image must be there, complete, once the
/// supervisor has ended, and restore (the program goes on from there).
#[test]
fn restored_process_ending_keeps_its_writer() {
    let dir = TestDir::new("snapshot-restored-ends");
    let first = dir.join("first.img");
    let second = dir.join("second.img");
    let program = csnap("ends", &["sweep", "4", "192", "1000000"]);
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", first.to_str().unwrap())],
    );
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&first, false);
    p.kill();
    let mut r = dir.restore(
        &program,
        "restored",
        &first,
        &[
            ("MIGRATE_IMAGE", second.to_str().unwrap()),
            ("MIGRATE_LOG", "info"),
        ],
    );
    r.wait_for_lines(3);
    r.dump_signal();
    // The writer exists (or has already finished): the pause is over, so
    // the TERM cannot be pending in the image. (Steps printed after the
    // signal prove nothing: the supervisor forwards it asynchronously.)
    wait_until("the restored process's writer", &r, || {
        !writers_in(dir.path()).is_empty() || second.exists()
    });
    let now = r.stdout_lines().len();
    r.wait_for_lines(now + 2);
    r.signal(libc::SIGTERM);
    let status = r.wait();
    let context = describe_all(&[&p, &r]);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM),
        "the restored process should have ended by TERM\n{context}"
    );
    assert!(
        second.exists(),
        "the restored process's writer was killed with its namespace: no {}\n{context}",
        second.display()
    );
    verify_image(&second, &context);
    assert_eq!(
        capture(&second).mode,
        dumpfmt::CaptureMode::Snapshot,
        "{context}"
    );
    let mut again = dir.restore(&program, "again", &second, &[]);
    again.wait_for_lines(3);
    again.kill();
    let context = describe_all(&[&p, &r, &again]);
    assert!(first_step(&again.stdout_lines(), &context) > 8, "{context}");
}

/// The relaunch's `MIGRATE_SNAPSHOT` and `MIGRATE_COMPRESS` hold for the
/// restored process's dumps, as its other settings do (the restored
/// process's own copies of them come from the image): `stop` is the way
/// out the error about `MADV_WIPEONFORK` memory names, and it must work
/// for a restored process too.
#[test]
fn relaunch_settings_hold_after_restore() {
    let dir = TestDir::new("snapshot-relaunch");
    let first = dir.join("first.img");
    let second = dir.join("second.img");
    let program = csnap("relaunch", &["sweep", "4", "8", "100000"]);
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", first.to_str().unwrap())],
    );
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&first, false);
    p.kill();
    assert_eq!(capture(&first).mode, dumpfmt::CaptureMode::Snapshot);
    assert!(!image_meta(&first).compressed);
    let mut r = dir.restore(
        &program,
        "restored",
        &first,
        &[
            ("MIGRATE_IMAGE", second.to_str().unwrap()),
            ("MIGRATE_SNAPSHOT", "stop"),
            ("MIGRATE_COMPRESS", "zstd"),
        ],
    );
    r.wait_for_lines(3);
    r.dump_signal();
    r.wait_for_image(&second, false);
    r.kill();
    let context = describe_all(&[&p, &r]);
    assert_eq!(
        capture(&second).mode,
        dumpfmt::CaptureMode::Stopped,
        "MIGRATE_SNAPSHOT=stop of the relaunch was ignored\n{context}"
    );
    assert!(
        image_meta(&second).compressed,
        "MIGRATE_COMPRESS=zstd of the relaunch was ignored\n{context}"
    );
}

/// A writer that fails at once (here: memory marked `MADV_WIPEONFORK`,
/// found in its first steps) may be gone before the program tells it its
/// pause; the program's write to the closed socket must not raise
/// SIGPIPE, which, pending under the handler's mask, killed the program as
/// the handler returned. A process learns from that failure to dump
/// stopped, so each of fifteen programs takes one failing dump and must
/// go on.
#[test]
fn writer_failing_at_once_never_kills_the_program() {
    let dir = TestDir::new("snapshot-sigpipe");
    let program = csnap("sigpipe", &["wipe", "1", "1", "100000"]);
    for n in 1..=15 {
        let image = dir.join(&format!("app-{n}.img"));
        let mut p = dir.spawn(
            &program,
            &format!("snapshot-{n}"),
            &[
                ("MIGRATE_IMAGE", image.to_str().unwrap()),
                ("MIGRATE_LOG", "info"),
            ],
        );
        p.wait_for_step(3);
        p.dump_signal();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !p
            .stderr()
            .lines()
            .any(|l| l.starts_with("migrate: dump failed"))
        {
            assert!(
                p.poll_exit().is_none(),
                "the program died in its failed dump ({n})\n{}",
                p.describe()
            );
            assert!(
                std::time::Instant::now() < deadline,
                "dump {n} did not fail\n{}",
                p.describe()
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Its next step: the handler has returned.
        let now = p.stdout_lines().len();
        p.wait_for_lines(now + 1);
        assert!(p.poll_exit().is_none(), "{}", p.describe());
        p.kill();
    }
}

/// The status file `migrate dump PID` users read: once a snapshot's
/// writer is done the state is `idle` with that dump's outcome, and while
/// the next dump runs its `last_*` lines are still the previous dump's
/// (the program's own copy learns the writer's outcome).
#[test]
fn status_follows_the_writer() {
    let dir = TestDir::new("snapshot-status");
    let program = Program::mem(256, 100_000, 20);
    let pattern = dir.join("img-%n.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", pattern.to_str().unwrap())],
    );
    p.wait_for_step(1);
    let first = dir.join("img-1.img");
    p.dump_signal();
    p.wait_for_image(&first, false);
    procs::wait_for_writers(dir.path());
    let text = status_text(p.pid());
    assert_eq!(status_value(&text, "state"), Some("idle"), "{text}");
    assert_eq!(
        status_value(&text, "last_path"),
        first.to_str(),
        "{text}\n{}",
        p.describe()
    );
    let second = dir.join("img-2.img");
    p.dump_signal();
    let mut seen_dumping = false;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !second.exists() {
        let text = status_text(p.pid());
        if status_value(&text, "state") == Some("dumping") {
            seen_dumping = true;
            assert_eq!(
                status_value(&text, "last_path"),
                first.to_str(),
                "the second dump's status lacks the first's outcome\n{text}"
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no second image\n{}",
            p.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    procs::wait_for_writers(dir.path());
    let text = status_text(p.pid());
    assert_eq!(status_value(&text, "state"), Some("idle"), "{text}");
    assert_eq!(status_value(&text, "last_path"), second.to_str(), "{text}");
    assert!(seen_dumping, "the second dump was never seen in the status");
    p.kill();
}
