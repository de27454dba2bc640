//! Images under pressure: who may have written the image a restore reads,
//! dumpers sharing a target, dumps killed part-way, many dumps at once.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use migrate_tests::*;

/// A small program that runs about a second: 4 MiB, 40 steps of 20 ms.
fn small() -> Program {
    Program::mem(4, 40, 20)
}

/// Dumps [`small`] at step 3 with MIGRATE_AFTER_DUMP=exit to `dir/name`;
/// returns the exited process and the (verified) image.
fn small_image(dir: &TestDir, label: &str, program: &Program) -> (Proc, PathBuf) {
    let img = dir.join(&format!("{label}.img"));
    let p = dump_then_exit(dir, program, label, &img, 3);
    (p, img)
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// An image that the group or others may write is refused with 70, and the
/// message says how to fix it; one they may only read restores.
#[test]
fn writable_image_is_refused() {
    let dir = TestDir::new("writable");
    let program = small();
    let expected = reference(&program);
    let (dumped, good) = small_image(&dir, "good", &program);
    for mode in [0o620, 0o602, 0o666, 0o622] {
        let copy = copy_image(&good, &dir, &format!("mode-{mode:o}.img"));
        chmod(&copy, mode);
        let line = expect_restore_failure(
            &dir,
            &program,
            &format!("restore-{mode:o}"),
            &copy,
            exit::CANNOT_RESTORE,
        );
        assert!(
            line.contains("writable by group or others") && line.contains("chmod go-w"),
            "the refusal does not say what is wrong and how to fix it: {line:?}"
        );
    }
    let readable = copy_image(&good, &dir, "mode-644.img");
    chmod(&readable, 0o644);
    restore_and_check(&dir, &program, "restore-644", &readable, &dumped, &expected);
}

/// A symlink may lead to an image (`latest.img -> img-5.img`); the file it
/// leads to is the one checked: a group-writable target is refused.
#[test]
fn symlink_leads_to_the_checked_image() {
    let dir = TestDir::new("symlink");
    let program = small();
    let expected = reference(&program);
    let (dumped, good) = small_image(&dir, "good", &program);
    let link = dir.join("latest.img");
    std::os::unix::fs::symlink("good.img", &link).unwrap();
    restore_and_check(&dir, &program, "via-link", &link, &dumped, &expected);

    let writable = copy_image(&good, &dir, "writable.img");
    chmod(&writable, 0o664);
    let bad_link = dir.join("bad-link.img");
    std::os::unix::fs::symlink("writable.img", &bad_link).unwrap();
    let line = expect_restore_failure(
        &dir,
        &program,
        "via-bad-link",
        &bad_link,
        exit::CANNOT_RESTORE,
    );
    assert!(line.contains("writable by group or others"), "{line:?}");
}

/// Swaps the two names atomically (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let (a, b) = (c(a), c(b));
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
}

/// A symlink that flips, as fast as it can, between the restoring user's
/// own image and root's (readable by everyone): whichever file the restore
/// opens is the one checked, so root's image is refused (70) every time it
/// is read and never restored, even when the user's own was there a moment
/// before. Needs root (to make images of two users). The race is not
/// deterministic: the path reaches the link through a thousand `./`, which
/// makes every lookup of it slow, so that the link flips between the two
/// lookups of a stat-then-open (the old code's) in most tries.
#[test]
fn image_swapped_during_open_is_never_trusted() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("image_swapped_during_open_is_never_trusted: not root, nothing to check");
        return;
    }
    let dir = TestDir::new("swap");
    let program = Program::mem(4, 60, 20);
    let nobody = as_nobody(&dir, &program);
    // Nobody's own image, dumped early; root's, dumped late.
    let own = dir.join("own.img");
    dump_then_exit(&dir, &nobody, "own", &own, 3);
    let foreign = dir.join("foreign.img");
    dump_then_exit(&dir, &program, "foreign", &foreign, 40);
    chmod(&foreign, 0o644);
    let link = dir.join("link.img");
    let other = dir.join("other.lnk");
    std::os::unix::fs::symlink("own.img", &link).unwrap();
    std::os::unix::fs::symlink("foreign.img", &other).unwrap();

    let stop = AtomicBool::new(false);
    let (mut own_restored, mut foreign_refused) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                exchange(&link, &other);
            }
        });
        let stopper = StopOnDrop(&stop);
        let slow = PathBuf::from(format!(
            "{}/{}link.img",
            dir.path().display(),
            "./".repeat(1000)
        ));
        for i in 0..40 {
            // No restore check: the link flips, so which image a check
            // would compare with is a guess (an empty value turns it off).
            let no_check = [("MIGRATE_RESTORE_CHECK", "")];
            let mut p = dir.restore(&nobody, &format!("try-{i}"), &slow, &no_check);
            let first = wait_first_line_or_exit(&mut p);
            p.kill();
            match first {
                Ok(line) => {
                    let step = step_of(&line).unwrap_or(u64::MAX);
                    assert!(
                        step < 20,
                        "try {i} restored root's image (it resumed at {line:?})\n{}",
                        p.describe()
                    );
                    own_restored += 1;
                }
                Err(code) => {
                    assert!(
                        code == Some(exit::CANNOT_RESTORE) && p.stderr().contains("owned by uid 0"),
                        "try {i} failed otherwise than refusing root's image\n{}",
                        p.describe()
                    );
                    foreign_refused += 1;
                }
            }
        }
        drop(stopper);
    });
    eprintln!("own image restored {own_restored} times, root's refused {foreign_refused} times");
    // Both images were met (about half of the tries each): otherwise the
    // link never flipped and nothing was checked.
    assert!(
        own_restored > 0 && foreign_refused > 0,
        "the restores met only one of the two images"
    );
}

/// Sets the flag when dropped (also when a try panics, so the scope ends).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits until `p` prints a line (Ok with it) or exits (Err with its code).
fn wait_first_line_or_exit(p: &mut Proc) -> Result<String, Option<i32>> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let exited = p.poll_exit();
        if let Some(line) = p.stdout_lines().into_iter().next() {
            return Ok(line);
        }
        if let Some(status) = exited {
            return Err(status.code());
        }
        assert!(
            Instant::now() < deadline,
            "{} neither printed nor exited\n{}",
            p.label,
            p.describe()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for `p`'s line about its dump (`MIGRATE_LOG=info`): the dump
/// must have succeeded.
fn expect_dumped(p: &mut Proc) {
    let line = p.wait_for_stderr_line("the dump's outcome", |l| {
        l.starts_with("migrate: dumped") || l.starts_with(DUMP_FAILED)
    });
    assert!(
        line.starts_with("migrate: dumped"),
        "{}'s dump failed: {line}\n{}",
        p.label,
        p.describe()
    );
}

/// Starts `n` processes of `program` (labels `LABEL-0`...) with `env`,
/// waits until each has printed step 1, then sends every one the dump
/// signal, back to back.
fn dump_all_at_once(
    dir: &TestDir,
    program: &Program,
    label: &str,
    n: usize,
    env: &[(&str, &str)],
) -> Vec<Proc> {
    let mut procs: Vec<Proc> = (0..n)
        .map(|i| dir.spawn(program, &format!("{label}-{i}"), env))
        .collect();
    for p in &mut procs {
        p.wait_for_step(1);
    }
    for p in &mut procs {
        p.dump_signal();
    }
    procs
}

/// Three processes dump to one fixed path at the same moment: every dump
/// succeeds (none removes or renames another's temporary file), the path
/// holds one complete image of one of them, no temporary file is left,
/// and that image restores.
#[test]
fn dumps_to_one_path_at_once() {
    let dir = TestDir::new("one-path");
    let program = Program::mem(64, 150, 20);
    let expected = reference(&program);
    let image = dir.join("shared.img");
    let env = [
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_LOG", "info"),
    ];
    let mut procs = dump_all_at_once(&dir, &program, "dumper", 3, &env);
    for p in &mut procs {
        expect_dumped(p);
    }
    let context = describe_all(&procs.iter().collect::<Vec<_>>());
    let temps = temp_files_of(&image);
    assert!(
        temps.is_empty(),
        "temporary files left: {temps:?}\n{context}"
    );
    verify_image(&image, &context);
    let pid = image_meta(&image).image.pid as i32;
    for p in &mut procs {
        p.kill();
    }
    let original = procs
        .iter()
        .find(|p| p.pid() == pid)
        .unwrap_or_else(|| panic!("the image is of pid {pid}, none of the dumpers\n{context}"));
    restore_and_check(&dir, &program, "restored", &image, original, &expected);
}

/// A small xorshift generator (seeded from the clock; the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Polls until `path` exists (`p` must not exit first); returns how long it took.
fn time_until_exists(p: &mut Proc, path: &Path) -> Duration {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            p.poll_exit().is_none() && start.elapsed() < TIMEOUT,
            "{} did not write {}\n{}",
            p.label,
            path.display(),
            p.describe()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

/// (device, inode) of a file.
fn file_id(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.dev(), m.ino())
}

/// A 256 MiB process is SIGKILLed at 20 random moments of its dump (spread
/// over the measured dump time and a bit past it), half of the time with a
/// previous image at the path: the path never holds anything but a
/// complete image (the previous one untouched, or a new one that
/// verifies), and no incomplete temporary file is left behind. The
/// previous image then restores.
///
/// In both modes. A snapshot's writer that outlives its killed program
/// completes its image (of an instant before the kill): then the kills
/// must have found writers at work, rather than left the old image.
#[test]
fn killed_dumps_leave_no_partial_image() {
    killed_dumps("killed-dumps", "snapshot");
}

#[test]
fn killed_stopped_dumps_leave_no_partial_image() {
    killed_dumps("killed-dumps-stop", "stop");
}

fn killed_dumps(name: &str, mode: &str) {
    let dir = TestDir::new(name);
    let program = Program::mem(256, 60, 20);
    let expected = reference(&program);
    let image = dir.join("big.img");
    let env = [
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_SNAPSHOT", mode),
    ];

    let mut first = dir.spawn(&program, "first", &env);
    first.wait_for_step(1);
    first.dump_signal();
    let took = time_until_exists(&mut first, &image);
    first.kill();
    migrate_tests::procs::wait_for_writers(dir.path());
    verify_image(&image, &first.describe());
    let previous = dir.join("previous.img");
    fs::copy(&image, &previous).unwrap();
    let span = took.as_micros() as u64 * 13 / 10;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("a dump takes {took:?}; kills within {span} us; seed {seed:#x}");
    let mut rng = Rng(seed);
    let (mut untouched, mut replaced, mut absent, mut complete_temps) = (0, 0, 0, 0);
    let mut outlived = 0;
    for i in 0..20 {
        let with_previous = i % 2 == 0;
        if with_previous {
            fs::copy(&previous, &image).unwrap();
        } else if image.exists() {
            fs::remove_file(&image).unwrap();
        }
        let before = with_previous.then(|| file_id(&image));
        let mut p = dir.spawn(&program, &format!("try-{i}"), &env);
        p.wait_for_step(1);
        let delay = Duration::from_micros(rng.below(span));
        p.dump_signal();
        std::thread::sleep(delay);
        p.kill();
        // A writer still at work completes its image.
        outlived += usize::from(!migrate_tests::procs::writers_in(dir.path()).is_empty());
        migrate_tests::procs::wait_for_writers(dir.path());
        let context = format!(
            "try {i}: killed {delay:?} after the dump signal\n{}",
            p.describe()
        );
        for temp in temp_files_of(&image) {
            // Killed between naming its complete file and the rename.
            verify_image(&temp, &context);
            fs::remove_file(&temp).unwrap();
            complete_temps += 1;
        }
        match (image.exists(), before) {
            (false, None) => absent += 1,
            (false, Some(_)) => panic!("the previous image is gone\n{context}"),
            (true, Some(id)) if file_id(&image) == id => {
                untouched += 1;
                assert_eq!(
                    fs::metadata(&image).unwrap().len(),
                    fs::metadata(&previous).unwrap().len(),
                    "the previous image changed in place\n{context}"
                );
            }
            (true, _) => {
                verify_image(&image, &context);
                replaced += 1;
            }
        }
    }
    eprintln!(
        "20 kills: {untouched} left the previous image, {absent} left none, \
         {replaced} completed ({outlived} by a writer), {complete_temps} left a complete temporary file"
    );
    assert!(
        untouched + absent > 0 || (mode == "snapshot" && outlived > 0),
        "every kill came after the dump had finished: the test checked nothing"
    );
    restore_and_check(&dir, &program, "restored", &previous, &first, &expected);
}

/// Twenty processes under the shim take the dump signal at the same
/// moment, each dumping to its own image (`%p`); every image restores (five
/// at a time) and finishes as an uninterrupted run.
#[test]
fn twenty_dumps_at_once() {
    let dir = TestDir::new("twenty");
    let program = Program::mem(2, 300, 10);
    let expected = reference(&program);
    let pattern = dir.join("many-%p.img");
    let env = [("MIGRATE_IMAGE", pattern.to_str().unwrap())];
    let mut procs = dump_all_at_once(&dir, &program, "original", 20, &env);
    let images: Vec<PathBuf> = procs
        .iter_mut()
        .map(|p| {
            let img = dir.join(&format!("many-{}.img", p.pid()));
            p.wait_for_image(&img, false);
            img
        })
        .collect();
    for p in &mut procs {
        p.kill();
    }
    for (batch, (originals, imgs)) in procs.chunks(5).zip(images.chunks(5)).enumerate() {
        let mut restored: Vec<Proc> = imgs
            .iter()
            .enumerate()
            .map(|(j, img)| dir.restore(&program, &format!("restored-{}", batch * 5 + j), img, &[]))
            .collect();
        for (r, original) in restored.iter_mut().zip(originals) {
            finish_restored(r, original, &expected);
        }
    }
}

/// The fds of `pid` and what they lead to.
fn fd_links(pid: i32) -> Vec<(i32, String)> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let fd = e.file_name().to_str()?.parse().ok()?;
            let to = fs::read_link(e.path()).ok()?;
            Some((fd, to.to_string_lossy().into_owned()))
        })
        .collect()
}

/// A dump that runs out of descriptors part-way (here the soft
/// RLIMIT_NOFILE leaves two free: one for the image, one for
/// /proc/self/pagemap, none for /proc/self/mem) fails, and leaves the
/// process no descriptor of its own making: a leaked one would be saved
/// into the next image as the process's own file.
#[test]
fn a_dump_out_of_descriptors_leaks_none() {
    let dir = TestDir::new("emfile");
    let program = small();
    let expected = reference(&program);
    let image = dir.join("emfile.img");
    let env = [("MIGRATE_IMAGE", image.to_str().unwrap())];
    let mut p = dir.spawn(&program, "original", &env);
    p.wait_for_step(1);
    let before = fd_links(p.pid());
    let open: Vec<i32> = before.iter().map(|&(fd, _)| fd).collect();
    // The lowest limit under which exactly two descriptors are free.
    let (mut limit, mut free) = (0i32, 0);
    while free < 2 {
        if !open.contains(&limit) {
            free += 1;
        }
        limit += 1;
    }
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit writes one `rlimit` to `now`, then reads one from
    // `new`; both outlive the calls.
    let rc = unsafe {
        libc::prlimit(p.pid(), libc::RLIMIT_NOFILE, std::ptr::null(), &mut now);
        let new = libc::rlimit {
            rlim_cur: limit as u64,
            rlim_max: now.rlim_max,
        };
        libc::prlimit(p.pid(), libc::RLIMIT_NOFILE, &new, std::ptr::null_mut())
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    p.dump_signal();
    let line = p.wait_for_stderr_line("the dump's failure", |l| l.starts_with(DUMP_FAILED));
    eprintln!("{line}");
    let after = fd_links(p.pid());
    assert_eq!(
        after,
        before,
        "the failed dump left descriptors behind\n{}",
        p.describe()
    );
    expect_went_on_after_failed_dump(&mut p, &image, &expected);
}
