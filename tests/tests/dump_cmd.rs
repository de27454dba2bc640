//! `migrate dump PID` and `migrate ps`, over the status files the library
//! writes: `migrate run` → `migrate dump --exit` → `migrate restore`
//! round-trips programs; a dump that fails inside the process is reported
//! with the process's own reason while the program goes on; a process
//! without the library is named as such at once; a large dump shows
//! progress on a terminal; a process restored in a PID namespace (the PID
//! the user holds is its supervisor's) is dumped twice and listed by `ps`;
//! concurrent requests are all served; `--kill` ends the process by SIGKILL.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use migrate_tests::command::{migrate, under_restore, under_run};
use migrate_tests::*;

/// Runs `migrate ARGS` to its end: (status, stdout, stderr).
fn command(args: &[&OsStr]) -> (i32, String, String) {
    let out = Command::new(migrate())
        .args(args)
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .output()
        .expect("run migrate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `migrate dump PID EXTRA...`, which must succeed with its one line on
/// stdout naming `image`.
fn dump_ok(p: &mut Proc, extra: &[&str], image: &Path) {
    p.note_dump();
    let pid = p.pid().to_string();
    let mut args: Vec<&OsStr> = vec!["dump".as_ref(), pid.as_ref()];
    args.extend(extra.iter().map(OsStr::new));
    args.extend(["--image".as_ref(), image.as_os_str()]);
    let (code, out, err) = command(&args);
    assert_eq!(
        code,
        0,
        "migrate dump {pid} {extra:?} failed: {err}\n{}",
        p.describe()
    );
    let want = format!("dumped {}: ", image.display());
    assert!(
        out.starts_with(&want) && out.lines().count() == 1 && out.contains(" pages stored, "),
        "migrate dump printed {out:?}, expected one line starting {want:?}"
    );
    assert!(image.is_file(), "{} is not there", image.display());
}

/// `migrate run` → `migrate dump --exit PID` → `migrate restore IMAGE`,
/// output compared with an uninterrupted run.
fn round_trip(test: &str, program: &Program, step: u64) {
    let dir = TestDir::new(test);
    let m = migrate();
    let expected = reference(program);
    let image = dir.join("app.img");
    // The process's own pattern is not the one the request names.
    let run = under_run(&m, program, &dir.join("own-%p.img"), &[]);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_step(step);
    dump_ok(&mut original, &["--exit"], &image);
    let status = original.wait();
    assert!(
        status.success(),
        "after `migrate dump --exit`: {}\n{}",
        describe_status(status),
        original.describe()
    );
    assert!(
        !dir.path()
            .join(format!("own-{}.img", original.pid()))
            .exists()
    );
    let mut restored = dir.spawn_plain(&under_restore(&m, &[], &image), "restored", &[]);
    finish_restored(&mut restored, &original, &expected);
}

#[test]
fn dump_exit_restore_c_program() {
    round_trip("dumpcmd-c", &Program::c(), 10);
}

#[test]
fn dump_exit_restore_python() {
    round_trip("dumpcmd-python", &Program::python(), 12);
}

#[test]
fn dump_exit_restore_threads() {
    round_trip("dumpcmd-threads", &Program::cthreads(4), 8);
}

/// A dump that fails inside the process (an io_uring fd): the command
/// prints the process's reason and exits 1; the program goes on to its
/// normal end with the output of an uninterrupted run.
#[test]
fn failed_dump_prints_the_process_reason() {
    let dir = TestDir::new("dumpcmd-fail");
    let program = Program::io_uring();
    let expected = reference(&program);
    let image = dir.join("uring.img");
    let run = under_run(&migrate(), &program, &image, &[]);
    let mut p = dir.spawn_plain(&run, "original", &[]);
    p.wait_for_step(5);
    let pid = p.pid().to_string();
    let (code, out, err) = command(&["dump".as_ref(), pid.as_ref()]);
    assert_eq!(code, 1, "stdout {out:?} stderr {err:?}\n{}", p.describe());
    let want = format!("migrate: the dump of process {pid} (curing) failed: ");
    assert!(
        err.starts_with(&want) && err.contains("io_uring") && err.lines().count() == 1,
        "expected one line starting {want:?} naming io_uring, got {err:?}"
    );
    // The reason is the very line the process logged.
    let reason = err.trim_end().strip_prefix(&want).unwrap();
    let logged = p.wait_for_stderr_line("the dump failure", |l| l.contains("dump failed"));
    assert!(
        logged.ends_with(reason),
        "the process logged {logged:?}, the command said {reason:?}"
    );
    let status = p.wait();
    assert!(status.success(), "{}", p.describe());
    assert_eq!(p.stdout_lines(), expected, "{}", p.describe());
    assert!(!image.exists());
}

/// A process without the library is named as such, at once.
#[test]
fn process_without_the_shim_named_at_once() {
    let dir = TestDir::new("dumpcmd-noshim");
    let mut p = dir.spawn_plain(&Program::cloop(), "plain", &[]);
    p.wait_for_step(1);
    let pid = p.pid().to_string();
    let began = Instant::now();
    let (code, _, err) = command(&["dump".as_ref(), pid.as_ref()]);
    let took = began.elapsed();
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        err,
        format!("migrate: process {pid} (cloop) is not running under libmigrate.so\n")
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(
        p.poll_exit().is_none(),
        "the program was disturbed\n{}",
        p.describe()
    );
}

/// Opens a pseudo-terminal: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the other arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            core::ptr::null_mut(),
            core::ptr::null(),
            core::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// On a terminal, a 1 GiB dump shows a progress bar: at least one frame
/// strictly between 0% and 100%, then the final line.
#[test]
fn progress_bar_on_a_terminal() {
    let dir = TestDir::new("dumpcmd-progress");
    let program = Program::mem(1024, 2000, 20);
    let run = under_run(&migrate(), &program, &dir.join("mem.img"), &[]);
    let mut p = dir.spawn_plain(&run, "original", &[]);
    p.wait_for_step(1);
    let image = dir.join("big.img");
    let (master, slave) = pty();
    let mut child = Command::new(migrate())
        .arg("dump")
        .arg(p.pid().to_string())
        .arg("--image")
        .arg(&image)
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().expect("dup pty")))
        .stderr(Stdio::from(slave))
        .spawn()
        .expect("run migrate dump");
    // The master reads until the last copy of the slave closes (EIO).
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let status = child.wait().expect("wait for migrate dump");
    let shown = reader.join().expect("pty reader");
    assert!(
        status.success(),
        "migrate dump: {status}; terminal showed {shown:?}"
    );
    let percents: Vec<u64> = shown
        .split(['\r', '\n'])
        .filter_map(|frame| {
            let at = frame.find('%')?;
            frame[..at].rsplit(' ').next()?.trim().parse().ok()
        })
        .collect();
    assert!(
        percents.iter().any(|&p| p > 0 && p < 100),
        "no frame between 0% and 100% in {shown:?}"
    );
    assert_eq!(percents.last(), Some(&100), "{shown:?}");
    let last = shown.lines().map(str::trim).rfind(|l| !l.is_empty());
    let want = format!("dumped {}: 1.0 GiB", image.display());
    assert!(
        last.is_some_and(|l| l.starts_with(&want)),
        "the last line is {last:?}, expected {want:?}..."
    );
}

/// The PID the user holds of a process restored in a PID namespace is its
/// supervisor's: `migrate dump` of that PID works twice in a row, and
/// `migrate ps` lists the process with its last dump. The process then
/// goes on to the end of an uninterrupted run's output.
#[test]
fn namespace_restored_process_dumped_twice_and_listed() {
    let dir = TestDir::new("dumpcmd-namespace");
    let m = migrate();
    let program = Program::cloop();
    let expected = reference(&program);
    let image = dir.join("first.img");
    let run = under_run(&m, &program, &dir.join("own-%p.img"), &[]);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_step(5);
    dump_ok(&mut original, &["--exit"], &image);
    assert!(original.wait().success(), "{}", original.describe());
    let mut restored = dir.spawn_plain(&under_restore(&m, &[], &image), "restored", &[]);
    // Its first line comes after the status is written.
    restored.wait_for_lines(0);
    let pid = restored.pid();
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    assert!(
        !children.trim().is_empty(),
        "process {pid} is not a namespace supervisor (no children)\n{}",
        restored.describe()
    );
    let second = dir.join("second.img");
    let third = dir.join("third.img");
    dump_ok(&mut restored, &[], &second);
    dump_ok(&mut restored, &[], &third);

    let (code, out, err) = command(&["ps".as_ref()]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&pid.to_string()))
        .unwrap_or_else(|| panic!("migrate ps does not list {pid}:\n{out}"));
    assert!(
        row.contains(" cloop ") && row.contains(" USR2 ") && row.contains(" ok "),
        "{row}"
    );
    assert!(row.ends_with(&third.display().to_string()), "{row}");
    let (code, out, err) = command(&["ps".as_ref(), "--json".as_ref()]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).expect("ps --json parses");
    let me = list
        .as_array()
        .expect("an array")
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("{pid} not in {out}"));
    assert_eq!(me["signal"], libc::SIGUSR2);
    assert_eq!(me["last_dump"]["outcome"], "ok");
    assert_eq!(me["last_dump"]["path"], third.to_str().unwrap());
    let size = std::fs::metadata(&third).unwrap().len();
    assert_eq!(me["last_dump"]["size"], size);

    finish_restored(&mut restored, &original, &expected);
}

/// Requests at once, with a plain dump signal among them, to a program
/// whose threads come and go: a signal of one number does not queue, yet
/// every request is served (each image is there, each command exits 0),
/// and the program ends with the output of an uninterrupted run.
#[test]
fn concurrent_requests_all_served() {
    let dir = TestDir::new("dumpcmd-concurrent");
    let program = Program::cchurn();
    let expected = reference(&program);
    let run = under_run(&migrate(), &program, &dir.join("own-%p.img"), &[]);
    let mut p = dir.spawn_plain(&run, "original", &[]);
    p.wait_for_step(1);
    let pid = p.pid().to_string();
    for round in 0..3 {
        let images: Vec<_> = (0..3)
            .map(|i| dir.join(&format!("r{round}-{i}.img")))
            .collect();
        let children: Vec<_> = images
            .iter()
            .map(|image| {
                Command::new(migrate())
                    .args([
                        "dump".as_ref(),
                        pid.as_ref(),
                        "--image".as_ref(),
                        image.as_os_str(),
                    ])
                    .env_remove("LD_PRELOAD")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run migrate dump")
            })
            .collect();
        p.signal(libc::SIGUSR2);
        for (child, image) in children.into_iter().zip(&images) {
            let out = child.wait_with_output().expect("wait for migrate dump");
            assert!(
                out.status.success() && image.is_file(),
                "round {round}, {}: {}; stderr {}\n{}",
                image.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                p.describe()
            );
        }
    }
    let status = p.wait();
    assert!(status.success(), "{}", p.describe());
    assert_eq!(p.stdout_lines(), expected, "{}", p.describe());
}

/// `--kill`: the image is complete and the process ends killed by SIGKILL
/// (its parent sees the kill), with every thread still stopped.
#[test]
fn dump_kill_ends_by_sigkill() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TestDir::new("dumpcmd-kill");
    let program = Program::cthreads(3);
    let run = under_run(&migrate(), &program, &dir.join("own-%p.img"), &[]);
    let mut p = dir.spawn_plain(&run, "original", &[]);
    p.wait_for_step(2);
    let image = dir.join("killed.img");
    dump_ok(&mut p, &["--kill"], &image);
    let status = p.wait();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{}\n{}",
        describe_status(status),
        p.describe()
    );
    dumpfmt::verify(&image).expect("a complete image");
}

/// `--image` names a one-off file of the requester's: with `--keep 1`
/// the process's own numbered images rotate as before, but the one-off
/// image is not one of them and is never removed (it was, as the oldest
/// image in the rotation, by the next dump).
#[test]
fn requested_image_is_not_rotated_by_keep() {
    let dir = TestDir::new("dumpcmd-keep");
    let program = Program::cloop();
    let own = |n: u64| dir.join(&format!("own-{n}.img"));
    let run = under_run(
        &migrate(),
        &program,
        &dir.join("own-%n.img"),
        &["--keep", "1"],
    );
    let mut p = dir.spawn_plain(&run, "original", &[]);
    p.wait_for_step(1);
    let one_off = dir.join("one-off.img");
    dump_ok(&mut p, &[], &one_off);
    // Dumps 2, 3 and 4 go to the process's own pattern; once the fourth
    // is there, the third's rotation is over.
    for n in 2..=4 {
        p.dump_with(libc::SIGUSR2);
        p.wait_for_image(&own(n), false);
    }
    assert!(
        one_off.is_file(),
        "MIGRATE_KEEP removed the image a request named\n{}",
        p.describe()
    );
    assert!(
        !own(2).exists(),
        "--keep 1 no longer rotates the process's own images\n{}",
        p.describe()
    );
    p.kill();
}

/// `migrate ps` removes what a process that is gone left in the status
/// directory: its status file, a request or an outcome nobody took, and
/// the temporary file of a status write it was killed in the middle of.
#[test]
fn ps_removes_what_gone_processes_left() {
    // The library's status directory (see `migrate::status::dir_path`);
    // a process under the library creates it.
    let dir = TestDir::new("dumpcmd-stale");
    let mut p = dir.spawn_plain(
        &under_run(&migrate(), &Program::cloop(), &dir.join("x.img"), &[]),
        "original",
        &[],
    );
    p.wait_for_step(1);
    p.kill();
    // SAFETY: getuid takes no arguments.
    let uid = unsafe { libc::getuid() };
    let run = std::path::PathBuf::from(format!("/run/user/{uid}"));
    let status_dir = if run.is_dir() {
        run.join("migrate")
    } else {
        std::path::PathBuf::from(format!("/tmp/migrate-{uid}"))
    };
    // A PID that names no process: one of ours, reaped.
    let mut gone = Command::new("true").spawn().expect("run true");
    let pid = gone.id();
    gone.wait().expect("wait for true");
    let left = [
        format!("{pid}"),
        format!("{pid}.req.7"),
        format!("{pid}.done.7"),
        format!(".{pid}.tmp"),
    ];
    for name in &left {
        std::fs::write(status_dir.join(name), "pid 1\n").expect("write a leftover");
    }
    let (code, _, err) = command(&["ps".as_ref()]);
    assert_eq!(code, 0, "{err}");
    for name in &left {
        assert!(
            !status_dir.join(name).exists(),
            "migrate ps left {}",
            status_dir.join(name).display()
        );
    }
}

/// A request file left by a `migrate dump` that was interrupted (Ctrl-C)
/// for an earlier process with the same PID is not served by this one:
/// after its next dump the process finds the file, but the request was
/// not written for it (it asked this process to exit after a dump).
#[test]
fn request_left_for_an_earlier_process_is_not_served() {
    let dir = TestDir::new("dumpcmd-stale-request");
    let program = Program::cloop();
    let expected = reference(&program);
    let own = dir.join("own-%n.img");
    let mut p = dir.spawn_plain(&under_run(&migrate(), &program, &own, &[]), "original", &[]);
    p.wait_for_step(1);
    // SAFETY: getuid takes no arguments.
    let uid = unsafe { libc::getuid() };
    let run = std::path::PathBuf::from(format!("/run/user/{uid}"));
    let status_dir = if run.is_dir() {
        run.join("migrate")
    } else {
        std::path::PathBuf::from(format!("/tmp/migrate-{uid}"))
    };
    let stale_image = dir.join("stale.img");
    let stale = status_dir.join(format!("{}.req.77", p.pid()));
    std::fs::write(
        &stale,
        format!("image {}\nafter exit\n", stale_image.display()),
    )
    .expect("write the stale request");
    // The first plain dump rings the request waiting in its file; the
    // second comes after it was taken (or refused).
    p.dump_with(libc::SIGUSR2);
    p.wait_for_image(&dir.join("own-1.img"), false);
    assert!(
        p.poll_exit().is_none(),
        "the process exited: a request left for an earlier process was served\n{}",
        p.describe()
    );
    p.dump_with(libc::SIGUSR2);
    p.wait_for_image(&dir.join("own-2.img"), false);
    assert!(
        p.poll_exit().is_none() && !stale_image.exists(),
        "a request left for an earlier process was served\n{}",
        p.describe()
    );
    assert!(!stale.exists(), "the stale request file is still there");
    let _ = std::fs::remove_file(status_dir.join(format!("{}.done.77", p.pid())));
    let status = p.wait();
    assert!(status.success(), "{}", p.describe());
    assert_eq!(p.stdout_lines(), expected, "{}", p.describe());
}

/// `migrate dump PID` of a program that ends while its snapshot's writer
/// still writes the image: the image is completed by the writer, so the
/// command waits for it and succeeds (it said the process "ended before
/// its image was complete", although the image came a moment later).
#[test]
fn dump_succeeds_when_the_program_ends_while_its_writer_writes() {
    let dir = TestDir::new("dumpcmd-writer-outlives");
    let exe = env!("MIGRATE_TEST_CSNAP");
    let program = Program::command_of(
        "csnap-outlives",
        &[
            exe.as_ref(),
            "sweep".as_ref(),
            "4".as_ref(),
            "256".as_ref(),
            "100000".as_ref(),
        ],
    );
    let own = dir.join("own.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", own.to_str().unwrap())],
    );
    p.wait_for_step(5);
    let image = dir.join("requested.img");
    let cmd = Command::new(migrate())
        .args([
            "dump".as_ref(),
            p.pid().to_string().as_ref(),
            "--image".as_ref(),
            image.as_os_str(),
        ])
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run migrate dump");
    // A writer holds the image's file (it is split off) and the program
    // printed a line since (it went on): the program is killed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while writer_in(dir.path()).is_none() {
        assert!(
            !image.exists(),
            "the image was complete first\n{}",
            p.describe()
        );
        assert!(Instant::now() < deadline, "no writer\n{}", p.describe());
        std::thread::sleep(Duration::from_millis(1));
    }
    let now = p.stdout_lines().len();
    p.wait_for_lines(now + 1);
    p.kill();
    assert!(
        temp_files_of(&image).is_empty() && !image.exists() || writer_in(dir.path()).is_some(),
        "the writer finished before the program was killed: nothing tested\n{}",
        p.describe()
    );
    let out = cmd.wait_with_output().expect("wait for migrate dump");
    let context = format!(
        "migrate dump: {:?}\nstdout: {}\nstderr: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        p.describe()
    );
    assert!(out.status.success(), "{context}");
    dumpfmt::verify(&image).expect("a complete image");
    assert_eq!(
        image_meta(&image).image.minor4.capture.mode,
        dumpfmt::CaptureMode::Snapshot,
        "{context}"
    );
}

/// A snapshot writer (`migrate-writer`) holding a file in `dir` open (the
/// image being written, an unnamed file there).
fn writer_in(dir: &Path) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            if comm.trim_end() != "migrate-writer" {
                return None;
            }
            let fds = std::fs::read_dir(e.path().join("fd")).ok()?;
            fds.filter_map(Result::ok)
                .any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l.starts_with(dir)))
                .then_some(pid)
        })
}
