//! Periodic checkpoints (`MIGRATE_INTERVAL`, `migrate run --interval`) and
//! keeping the newest images (`MIGRATE_KEEP`, `--keep`): the images left
//! are exactly the newest complete ones and restore; a SIGKILL while a
//! periodic dump is written leaves nothing partial under any name; a
//! restored process goes on dumping and removing old images, even under a
//! new pid; the shim's timer leaves the program's timer ids alone; and
//! neither setting reaches a program the process runs.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migrate_tests::*;

/// `target/release/migrate`, beside the library the tests use.
fn migrate() -> PathBuf {
    let path = shim_path().with_file_name("migrate");
    assert!(
        path.is_file(),
        "{} does not exist: build first (`make`, or `cargo build --release`)",
        path.display()
    );
    path
}

/// `migrate run ARGS -- PROGRAM` as a program to spawn.
fn under_run(program: &Program, args: &[&str]) -> Program {
    let migrate = migrate();
    let mut argv: Vec<&OsStr> = vec![migrate.as_os_str(), "run".as_ref()];
    argv.extend(args.iter().map(OsStr::new));
    argv.push("--".as_ref());
    argv.extend(program.argv.iter().map(OsString::as_os_str));
    Program::command_of(&format!("migrate-run-{}", program.name), &argv)
}

/// The files in the test directory (not its `logs/` and `checks/`), by name.
fn files(dir: &TestDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list the test directory")
        .map(|e| e.expect("directory entry").file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "logs" && n != "checks")
        .collect();
    names.sort();
    names
}

/// `(pid, n)` of an image named `{prefix}{pid}-{n}.img`.
fn numbered(name: &str, prefix: &str) -> Option<(i32, u64)> {
    let rest = name.strip_prefix(prefix)?.strip_suffix(".img")?;
    let (pid, n) = rest.split_once('-')?;
    Some((pid.parse().ok()?, n.parse().ok()?))
}

/// The paths of the `migrate: dumped PATH (...)` lines a process logged.
fn dumped(p: &Proc) -> Vec<PathBuf> {
    p.stderr()
        .lines()
        .filter_map(|l| l.strip_prefix("migrate: dumped "))
        .filter_map(|l| l.rsplit_once(" (").map(|(path, _)| PathBuf::from(path)))
        .collect()
}

/// Restores `image` (in a PID namespace unless `env` says otherwise)
/// and checks that it prints exactly what the uninterrupted run prints
/// after the dump. The newest image of a program that ended may have
/// been taken after its last line: then the restored process must print
/// nothing and end well.
fn restore_exactly(
    dir: &TestDir,
    program: &Program,
    image: &Path,
    original: &[String],
    env: &[(&str, &str)],
) -> Proc {
    let expected = reference(program);
    let mut restored = dir.restore(program, "restored", image, env);
    let lines = restored.wait_success();
    let context = describe_all(&[&restored]);
    if lines.is_empty() {
        assert_eq!(original, expected, "{context}");
    } else {
        check_restored(&expected, original, &lines, &context);
    }
    restored
}

/// Runs `program` (8 MiB, about 6 s) until it ends with periodic dumps
/// every second and two images kept, then checks that exactly the two
/// newest images are left, complete, and that the newest restores.
fn keeps_the_two_newest(dir: &TestDir, mut original: Proc, prefix: &str) {
    let program = Program::mem(8, 300, 20);
    let expected = reference(&program);
    let lines = original.wait_success();
    assert_eq!(lines, expected, "{}", original.describe());
    let made = dumped(&original);
    assert!(
        made.len() >= 3,
        "expected at least 3 periodic dumps in 6 s (so that one was removed)\n{}",
        original.describe()
    );
    assert!(
        original.stderr().contains(", periodic)"),
        "the dumps are not logged as periodic\n{}",
        original.describe()
    );
    let newest: Vec<String> = made[made.len() - 2..]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let left = files(dir);
    assert_eq!(
        left,
        newest,
        "not exactly the two newest images are left\n{}",
        original.describe()
    );
    for name in &left {
        let (pid, _) = numbered(name, prefix).unwrap_or_else(|| panic!("unexpected file {name}"));
        assert_eq!(pid, original.pid());
        verify_image(&dir.join(name), &original.describe());
    }
    let image = dir.join(&newest[1]);
    let inspect = std::process::Command::new(migrate())
        .arg("inspect")
        .arg(&image)
        .output()
        .expect("run migrate inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("every 1000000000 ns (the library's periodic dumps)"),
        "migrate inspect does not show the periodic timer:\n{text}"
    );
    restore_exactly(dir, &program, &image, &lines, &[]);
}

/// `migrate run --interval 1s --keep 2 -- prog`: exactly the two newest
/// images (named by the default numbered pattern) are left, and the
/// newest restores with exact output.
#[test]
fn run_interval_keep_two() {
    let dir = TestDir::new("periodic-run");
    let program = Program::mem(8, 300, 20);
    let run = under_run(
        &program,
        &["--interval", "1s", "--keep", "2", "--log", "info"],
    );
    let original = dir.spawn_plain(&run, "original", &[]);
    keeps_the_two_newest(&dir, original, "migrate-");
}

/// The same through the environment variables.
#[test]
fn environment_interval_keep_two() {
    let dir = TestDir::new("periodic-env");
    let program = Program::mem(8, 300, 20);
    let pattern = dir.join("img-%p-%n.img");
    let env = [
        ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "1s"),
        ("MIGRATE_KEEP", "2"),
        ("MIGRATE_LOG", "info"),
    ];
    let original = dir.spawn(&program, "original", &env);
    keeps_the_two_newest(&dir, original, "img-");
}

/// A small xorshift generator; the seed goes into failure messages.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Whether `pid`, or a snapshot writer of a program in `dir`, writes an
/// image there.
fn being_written(pid: i32, dir: &Path) -> bool {
    writing_image(pid, dir)
        || migrate_tests::procs::writers_in(dir)
            .into_iter()
            .any(|w| writing_image(w, dir))
}

/// Whether `pid` has an unnamed file in `dir` open: an image being
/// written (`O_TMPFILE` shows as `DIR/#INODE (deleted)`).
fn writing_image(pid: i32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let prefix = format!("{}/#", dir.display());
    fds.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|t| t.to_string_lossy().starts_with(&prefix))
}

/// SIGKILL at random moments while periodic dumps of a 128 MiB program
/// (each a good part of the interval) are written: every file left under
/// any name is a complete image of a final name that verifies, and no
/// temporary file is left.
/// In both modes: a snapshot's writer that outlives its killed program
/// completes its image (and removes no old one).
#[test]
fn kill_during_periodic_dumps_leaves_no_partial_image() {
    kill_during_periodic_dumps("periodic-kill", "snapshot");
}

#[test]
fn kill_during_stopped_periodic_dumps_leaves_no_partial_image() {
    kill_during_periodic_dumps("periodic-kill-stop", "stop");
}

fn kill_during_periodic_dumps(name: &str, mode: &str) {
    let dir = TestDir::new(name);
    let program = Program::mem(128, 100_000, 10);
    let pattern = dir.join("img-%p-%n.img");
    // Stopped dumps: the program itself writes its images, and a kill
    // ends the write (a snapshot's writer, a process of its own, would
    // finish the image after the kill).
    let env = [
        ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "1s"),
        ("MIGRATE_KEEP", "2"),
        ("MIGRATE_SNAPSHOT", mode),
    ];
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut images = 0;
    let mut mid_write = 0;
    for round in 0..4 {
        let mut p = dir.spawn(&program, &format!("round{round}"), &env);
        p.wait_for_step(1);
        if round % 2 == 1 {
            // An image is complete before the kill, however slow the
            // disk: `images > 0` below does not depend on timing, and
            // the kill must leave that image as it is.
            let first = dir.join(&format!("img-{}-1.img", p.pid()));
            p.wait_for_image(&first, false);
        }
        // Wait until an image is being written, then kill at a random
        // moment of it (or of what follows: the link, the removal of the
        // oldest image, the next steps).
        let deadline = Instant::now() + TIMEOUT;
        while !being_written(p.pid(), dir.path()) {
            assert!(
                p.poll_exit().is_none() && Instant::now() < deadline,
                "round {round}: no dump was seen being written\n{}",
                p.describe()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Half the rounds kill within 50 ms of the start of the write
        // (a 128 MiB image takes far longer), half anywhere in 600 ms.
        let range = if round % 2 == 0 { 50 } else { 600 };
        std::thread::sleep(Duration::from_millis(rng.below(range)));
        mid_write += usize::from(being_written(p.pid(), dir.path()));
        p.kill();
        // A writer still at work completes its image.
        migrate_tests::procs::wait_for_writers(dir.path());
        let context = format!("round {round}, seed {seed}\n{}", p.describe());
        for name in files(&dir) {
            assert!(
                numbered(&name, "img-").is_some(),
                "{name} is left, not an image's final name\n{context}"
            );
            verify_image(&dir.join(&name), &context);
            images += 1;
        }
    }
    assert!(images > 0, "no image was ever completed (seed {seed})");
    assert!(
        mid_write > 0,
        "no kill landed while an image was written (seed {seed})"
    );
}

/// A restored process goes on dumping periodically, and KEEP goes on
/// removing old images across the restore, also those of the old pid
/// (restored without a PID namespace, `%p` names a new pid).
#[test]
fn restored_process_goes_on_dumping_and_keeping() {
    let dir = TestDir::new("periodic-restore");
    let program = Program::mem(8, 400, 20);
    let pattern = dir.join("img-%p-%n.img");
    let env = [
        ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "1s"),
        ("MIGRATE_KEEP", "2"),
        ("MIGRATE_LOG", "info"),
    ];
    let mut original = dir.spawn(&program, "original", &env);
    let old = original.pid();
    original.wait_for_image(&dir.join(&format!("img-{old}-3.img")), false);
    original.kill();
    let lines = original.stdout_lines();
    let before: Vec<(i32, u64)> = files(&dir)
        .iter()
        .filter_map(|n| numbered(n, "img-"))
        .collect();
    let newest = before.iter().map(|&(_, n)| n).max().unwrap();
    assert!(
        before.iter().all(|&(pid, _)| pid == old) && before.len() <= 3,
        "{before:?}\n{}",
        original.describe()
    );
    let image = dir.join(&format!("img-{old}-{newest}.img"));
    let relaunch = [("MIGRATE_NAMESPACE", "off"), ("MIGRATE_LOG", "info")];
    let restored = restore_exactly(&dir, &program, &image, &lines, &relaunch);
    let new = restored.pid();
    assert_ne!(new, old, "without a namespace the restored pid is new");
    let context = describe_all(&[&original, &restored]);
    let made = dumped(&restored);
    assert!(
        made.len() >= 2,
        "the restored process made {} periodic dumps, expected at least 2\n{context}",
        made.len()
    );
    let expected: Vec<String> = made[made.len() - 2..]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    // `files` sorts by name, where `-10` comes before `-9`.
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(
        files(&dir),
        sorted,
        "after the restored process ended, not exactly its two newest images are left\n{context}"
    );
    for (i, name) in expected.iter().enumerate() {
        assert_eq!(
            numbered(name, "img-"),
            Some((new, newest + made.len() as u64 - 1 + i as u64)),
            "the restored process numbers its images after the image's\n{context}"
        );
    }
}

/// The shim's periodic timer does not change the ids the program's own
/// timers get: a program's first two timers are 0 and 1 with and without
/// `MIGRATE_INTERVAL`, and the shim's timer is there, with its high id.
#[test]
fn program_timer_ids_unchanged() {
    // SAFETY: a prctl that only reports a flag.
    if unsafe { libc::prctl(77, 2, 0, 0, 0) } < 0 {
        skip(
            "program_timer_ids_unchanged",
            "PR_TIMER_CREATE_RESTORE_IDS (Linux 6.16 or later)",
        );
        return;
    }
    let dir = TestDir::new("periodic-timer-ids");
    let program = Program::timer_ids();
    let plain = dir.spawn_plain(&program, "plain", &[]).wait_success();
    let mut p = dir.spawn(&program, "shim", &[("MIGRATE_INTERVAL", "1h")]);
    let shim = p.wait_success();
    assert_eq!(plain[1], "mine 0 1", "{plain:?}");
    assert_eq!(shim[1], plain[1], "{}", p.describe());
    assert_eq!(plain[2], "all 0 1");
    assert_eq!(shim[2], "all 0 1 2147483647", "{}", p.describe());
}

/// Neither setting reaches a program the process runs: the shell's own
/// environment no longer has them, and a program it runs (with the shim
/// still preloaded) has no timer.
#[test]
fn children_do_not_inherit_periodic_dumps() {
    let dir = TestDir::new("periodic-children");
    let shell = Program::command_of(
        "sh-env",
        &[
            OsStr::new("/bin/sh"),
            OsStr::new("-c"),
            OsStr::new(
                "echo \"[$MIGRATE_INTERVAL][$MIGRATE_KEEP]\"; env | grep -c -e '^MIGRATE_INTERVAL=' -e '^MIGRATE_KEEP='; cat /proc/self/timers; echo end",
            ),
        ],
    );
    let image = dir.join("img-%n.img");
    let env = [
        ("MIGRATE_INTERVAL", "1h"),
        ("MIGRATE_KEEP", "2"),
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
    ];
    let mut p = dir.spawn(&shell, "shell", &env);
    p.wait();
    assert_eq!(p.stdout_lines(), ["[][]", "0", "end"], "{}", p.describe());
}

/// A relaunch that moves the dump signal makes the periodic timer again
/// with the new signal (a tick of the old one would now reach the
/// program's own disposition, the default that ends it), and one that
/// sets `MIGRATE_INTERVAL`, `MIGRATE_KEEP` and `MIGRATE_IMAGE` changes the
/// periodic dumps of the restored process accordingly.
#[test]
fn restore_changes_signal_and_interval() {
    let dir = TestDir::new("periodic-relaunch");
    let program = Program::mem(8, 300, 20);
    let pattern = dir.join("a-%n.img");
    let env = [
        ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "1s"),
        ("MIGRATE_KEEP", "2"),
    ];
    let mut original = dir.spawn(&program, "original", &env);
    let image = dir.join("a-2.img");
    original.wait_for_image(&image, false);
    original.kill();
    let lines = original.stdout_lines();
    let copy = copy_image(&image, &dir, "copy.img");

    let moved = [("MIGRATE_SIGNAL", "USR1"), ("MIGRATE_LOG", "info")];
    let a = restore_exactly(&dir, &program, &image, &lines, &moved);
    assert!(
        !dumped(&a).is_empty(),
        "no periodic dump after the signal moved\n{}",
        a.describe()
    );

    let next = dir.join("b-%n.img");
    let relaunch = [
        ("MIGRATE_IMAGE", next.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "2s"),
        ("MIGRATE_KEEP", "1"),
        ("MIGRATE_LOG", "info"),
    ];
    let expected = reference(&program);
    let mut b = dir.restore(&program, "restored-b", &copy, &relaunch);
    let b_lines = b.wait_success();
    check_restored(&expected, &lines, &b_lines, &b.describe());
    let made = dumped(&b);
    assert!(!made.is_empty(), "no periodic dump\n{}", b.describe());
    assert!(
        made.iter()
            .all(|p| p.file_name().unwrap().to_string_lossy().starts_with("b-")),
        "{}",
        b.describe()
    );
    let left: Vec<String> = files(&dir)
        .into_iter()
        .filter(|n| n.starts_with("b-"))
        .collect();
    assert_eq!(
        left.len(),
        1,
        "MIGRATE_KEEP=1 keeps one: {left:?}\n{}",
        b.describe()
    );
    assert!(
        copy.exists(),
        "an image not written by the process was removed"
    );
}

/// A tick that comes while a dump is written stays pending (the handler
/// blocks every signal) and would start a second dump right after the
/// first: it is skipped instead. Each dump here takes 1.2 s (an injected
/// fault) with a 1 s interval, so every dump has a tick waiting at its end.
#[test]
fn tick_during_a_dump_is_skipped() {
    let dir = TestDir::new("periodic-skip");
    let program = Program::mem(8, 300, 20);
    let expected = reference(&program);
    let pattern = dir.join("img-%n.img");
    let env = [
        ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "1s"),
        ("MIGRATE_FAULT", "slow-dump"),
        ("MIGRATE_LOG", "debug"),
    ];
    let mut p = dir.spawn(&program, "original", &env);
    let lines = p.wait_success();
    assert_eq!(lines, expected, "{}", p.describe());
    let err = p.stderr();
    let made = dumped(&p).len();
    let skipped = err
        .lines()
        .filter(|l| l.starts_with("migrate: periodic dump skipped (a dump ended "))
        .count();
    assert!(
        made >= 2 && skipped >= 1,
        "{made} dumps, {skipped} skipped\n{}",
        p.describe()
    );
    // Every dump but the last had a tick pending at its end.
    assert!(
        skipped + 1 >= made,
        "{made} dumps, {skipped} skipped\n{}",
        p.describe()
    );
}

/// A numbered image never replaces a file that is already at its name,
/// and `MIGRATE_KEEP` never removes one: a file there was written by
/// someone else (another process with the same pattern, the original of
/// a restored process, an earlier process with the same pid). The dump
/// takes the next free number instead. Here `img-1.img` is there before
/// the process starts: its first dump must go to `img-2.img`, and the
/// file must be untouched after KEEP=1 removed the process's own older
/// image.
#[test]
fn numbered_dump_never_replaces_or_removes_a_stranger() {
    let dir = TestDir::new("periodic-stranger");
    let program = Program::mem(1, 1000, 20);
    let stranger = dir.join("img-1.img");
    std::fs::write(&stranger, b"another process's image").unwrap();
    let pattern = dir.join("img-%n.img");
    let env = [
        ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
        ("MIGRATE_KEEP", "1"),
        ("MIGRATE_LOG", "info"),
    ];
    let mut p = dir.spawn(&program, "original", &env);
    p.wait_for_step(1);
    p.dump_signal();
    let first = p.wait_for_stderr_line("a dump", |l| l.starts_with("migrate: dumped "));
    p.dump_signal();
    let second = p.wait_for_stderr_line("a second dump", |l| {
        l.starts_with("migrate: dumped ") && l != first
    });
    p.wait_for_step(2);
    p.kill();
    let context = p.describe();
    assert_eq!(
        std::fs::read(&stranger).ok().as_deref(),
        Some(&b"another process's image"[..]),
        "a file the process did not write was replaced or removed\n{context}"
    );
    let path = |n: u32| dir.join(&format!("img-{n}.img"));
    assert!(
        first.contains(path(2).to_str().unwrap()) && second.contains(path(3).to_str().unwrap()),
        "the dumps did not skip the number taken\n{context}"
    );
    assert_eq!(files(&dir), ["img-1.img", "img-3.img"], "{context}");
    verify_image(&path(3), &context);
}

/// An image with the periodic timer (id `INT_MAX` where the kernel lets
/// the shim choose) restores on a kernel that cannot make a timer with a
/// chosen id (before 6.16; here a seccomp filter makes the prctl fail):
/// the shim's timer is not the program's, so it is made again with any
/// id, and the restored process goes on dumping periodically.
#[test]
fn restore_where_timer_ids_cannot_be_chosen() {
    // SAFETY: a prctl that only reports a flag.
    if unsafe { libc::prctl(77, 2, 0, 0, 0) } < 0 {
        skip(
            "restore_where_timer_ids_cannot_be_chosen",
            "PR_TIMER_CREATE_RESTORE_IDS (Linux 6.16 or later) for the original",
        );
        return;
    }
    let dir = TestDir::new("periodic-noids");
    let program = Program::mem(8, 300, 20);
    let pattern = dir.join("img-%n.img");
    let env = [
        ("MIGRATE_IMAGE", pattern.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "1s"),
    ];
    // With no_new_privs, which the filter needs and a restore requires
    // the image's process to have had.
    let nnp = program.wrapped(&[env!("MIGRATE_TEST_CNOIDS"), "--nnp-only"]);
    let mut original = dir.spawn(&nnp, "original", &env);
    let image = dir.join("img-1.img");
    original.wait_for_image(&image, false);
    original.kill();
    let lines = original.stdout_lines();
    let meta = image_meta(&image).image;
    assert!(
        meta.minor1
            .posix_timers
            .iter()
            .any(|t| t.id == i32::MAX && t.interval_ns == 1_000_000_000),
        "the image has no periodic timer with id INT_MAX"
    );
    let noids = program.wrapped(&[env!("MIGRATE_TEST_CNOIDS")]);
    let relaunch = [("MIGRATE_LOG", "info")];
    let restored = restore_exactly(&dir, &noids, &image, &lines, &relaunch);
    assert!(
        dumped(&restored)
            .iter()
            .any(|p| p.starts_with(dir.path()) && p != &image),
        "the restored process made no periodic dump\n{}",
        restored.describe()
    );
}

/// A forked child has no periodic timer, only its parent's timer id in
/// memory, which on a kernel that hands out ids in order (before 6.16;
/// here a seccomp filter) is 0, the id of the child's own first timer. A
/// relaunch of the child's image that changes the periodic dumps
/// (`MIGRATE_INTERVAL`) must make a new timer without deleting the
/// program's.
#[test]
fn restored_forked_child_keeps_its_own_timer() {
    let dir = TestDir::new("periodic-forked-timer");
    let program = Program::fork_timer();
    let noids = program.wrapped(&[env!("MIGRATE_TEST_CNOIDS")]);
    let image = dir.join("child.img");
    let env = [
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_INTERVAL", "1h"),
        ("MIGRATE_LOG", "info"),
    ];
    let mut parent = dir.spawn(&noids, "parent", &env);
    let line = parent.wait_for_stderr_line("the child's pid", |l| l.starts_with("child "));
    let child: i32 = line["child ".len()..].trim().parse().unwrap();
    parent.wait_for_step(2);
    // SAFETY: kill(2) with plain integers; the child is alive (the parent
    // waits for it and has not exited).
    assert_eq!(unsafe { libc::kill(child, libc::SIGUSR2) }, 0);
    parent.wait_for_image(&image, false);
    parent.kill();
    // SAFETY: as above; the child of a killed parent is reparented.
    unsafe { libc::kill(child, libc::SIGKILL) };
    let lines = parent.stdout_lines();
    let relaunch = [("MIGRATE_INTERVAL", "1h"), ("MIGRATE_LOG", "info")];
    let restored = restore_exactly(&dir, &noids, &image, &lines, &relaunch);
    let out = restored.stdout_lines();
    assert!(
        out.iter().all(|l| !l.contains("gone")),
        "the restored child's own timer was deleted\n{}",
        restored.describe()
    );
}
