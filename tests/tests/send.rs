//! `migrate send PID USER@HOST:PATH` against a real sshd (Debian's
//! openssh-server) started privately on a loopback port with its own host
//! key and a generated client key (`migrate_tests::sshd`).
//!
//! A C program and Debian's python3 move to the loopback host and finish
//! there with the output of an uninterrupted run (what the original
//! printed, then the remote log); the original is still there, stopped,
//! when the remote copy already runs, and ends by SIGKILL only then. A
//! remote side that cannot take the process (its copy of the program
//! differs, or it has no migrate at this path: a server in a private
//! mount namespace with a file bind-mounted over the one here) leaves the
//! original running unharmed, no file there, and one line saying why.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use migrate_tests::command::{migrate, under_run};
use migrate_tests::sshd::{self, Sshd};
use migrate_tests::*;

/// Says why the test cannot run, if it cannot.
fn rig(test: &str) -> bool {
    match sshd::missing() {
        Some(needs) => {
            skip(test, &needs);
            false
        }
        None => true,
    }
}

/// `migrate send [--ssh SSH] SSH-OPTIONS PID DEST`: (status, stdout, stderr).
fn send(sshd: &Sshd, pid: i32, dest: &str, ssh: Option<&Path>) -> (i32, String, String) {
    let mut cmd = Command::new(migrate());
    cmd.arg("send").args(sshd.keys.send_args(sshd.port));
    if let Some(s) = ssh {
        cmd.arg("--ssh").arg(s);
    }
    let out = cmd
        .arg(pid.to_string())
        .arg(dest)
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .output()
        .expect("run migrate send");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The process `migrate send` says runs remotely, SIGKILLed when dropped
/// (a failed test leaves nothing running).
struct Moved(i32);

impl Moved {
    fn from_output(out: &str) -> Moved {
        let pid = out
            .split("as process ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no remote pid in {out:?}"));
        Moved(pid)
    }

    fn running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.0))
            .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| !r.starts_with(" Z")))
    }
}

impl Drop for Moved {
    fn drop(&mut self) {
        if self.running() {
            // SAFETY: kill(2) takes plain integers; the pid is the remote
            // restore's, started by this test (still running: checked).
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// Waits until `log` holds a `done ` line; its lines.
fn wait_done(log: &Path, moved: &Moved) -> Vec<String> {
    let deadline = Instant::now() + 2 * TIMEOUT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("done ")) {
            return text.lines().map(str::to_string).collect();
        }
        assert!(
            moved.running() || text.lines().any(|l| l.starts_with("done ")),
            "the moved process {} ended without `done`; its log:\n{text}",
            moved.0
        );
        assert!(
            Instant::now() < deadline,
            "the moved process did not finish; its log:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// An ssh that notes, as the connection ends (the remote copy running),
/// the state of process `pid` here in `mark`.
fn noting_ssh(dir: &TestDir, pid: i32) -> std::path::PathBuf {
    let path = dir.join("ssh-noting");
    let mark = dir.join("original-when-remote-ran");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nssh \"$@\"\nrc=$?\n\
             sed 's/.*) \\(.\\).*/\\1/' /proc/{pid}/stat > '{}' 2>/dev/null || echo gone > '{}'\n\
             exit $rc\n",
            mark.display(),
            mark.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs `program` under `migrate run`, sends it to the loopback sshd at
/// step `step`, and checks that it finishes there with the output of an
/// uninterrupted run, the original stopped (not gone) while the remote
/// copy already ran and killed after.
fn move_to_loopback(test: &str, program: &Program, step: u64) {
    if !rig(test) {
        return;
    }
    let dir = TestDir::new(test);
    let sshd = Sshd::start(&dir.join("ssh"), &[]);
    let expected = reference(program);
    let run = under_run(&migrate(), program, &dir.join("own-%p.img"), &[]);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_step(step);
    original.note_dump();
    let remote = dir.subdir("remote").join("app.img");
    let ssh = noting_ssh(&dir, original.pid());
    let (code, out, err) = send(&sshd, original.pid(), &sshd.keys.dest(&remote), Some(&ssh));
    assert_eq!(
        code,
        0,
        "migrate send failed: {err}\nstdout {out:?}\n{}\nsshd:\n{}",
        original.describe(),
        sshd.log()
    );
    let moved = Moved::from_output(&out);
    let log = remote.with_extension("log");
    assert!(
        out.contains(&format!("its output in {}", log.display())),
        "{out:?}"
    );
    assert!(err.is_empty(), "stderr of a move that worked: {err:?}");
    // The remote copy ran while the original was still here, stopped.
    let mark = std::fs::read_to_string(dir.join("original-when-remote-ran")).unwrap();
    assert_eq!(mark.trim(), "T", "the original when the remote copy ran");
    let status = original.wait();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the original after the move: {}\n{}",
        describe_status(status),
        original.describe()
    );
    assert!(remote.is_file(), "the image stays there");
    let tail = wait_done(&log, &moved);
    let here = original.stdout_lines();
    let mut all = here.clone();
    all.extend(tail);
    assert_eq!(
        all,
        expected,
        "output here ({} lines) then there differs from an uninterrupted run",
        here.len()
    );
    // Nothing else left there.
    let mut left = list_files(remote.parent().unwrap());
    left.sort();
    assert_eq!(left, ["app.img", "app.log"], "files there");
}

#[test]
fn send_moves_a_c_program_to_loopback_sshd() {
    move_to_loopback("send-c", &Program::c(), 10);
}

#[test]
fn send_moves_python_to_loopback_sshd() {
    move_to_loopback("send-python", &Program::python(), 12);
}

/// A remote host that cannot take the process: the send fails with one
/// line naming why, nothing is left there, and the original goes on to
/// the output of an uninterrupted run.
fn refused(test: &str, binds: impl Fn(&TestDir, &Path) -> Vec<(OsString, OsString)>) -> String {
    let dir = TestDir::new(test);
    // A copy of the C program the remote side may see differently.
    let prog = dir.join("cprog");
    std::fs::copy(Program::c().argv[0].clone(), &prog).unwrap();
    let binds = binds(&dir, &prog);
    let binds: Vec<(&Path, &Path)> = binds
        .iter()
        .map(|(a, b)| (Path::new(a), Path::new(b)))
        .collect();
    let sshd = Sshd::start(&dir.join("ssh"), &binds);
    let program = Program::command_of("cprog", &[prog.as_os_str()]);
    let expected = reference(&program);
    let run = under_run(&migrate(), &program, &dir.join("own-%p.img"), &[]);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_step(5);
    let remote_dir = dir.subdir("remote");
    let remote = remote_dir.join("app.img");
    let (code, out, err) = send(&sshd, original.pid(), &sshd.keys.dest(&remote), None);
    assert!(out.is_empty(), "stdout of a failed send: {out:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got {err:?}");
    assert!(lines[0].starts_with("migrate: "), "{err:?}");
    assert!(
        list_files(&remote_dir).is_empty(),
        "left there: {:?} (send said {err:?})",
        list_files(&remote_dir)
    );
    let got = original.wait_success();
    assert_eq!(got, expected, "the original's output after a failed send");
    assert_ne!(code, 0);
    eprintln!("{test}: migrate send exited {code}: {}", lines[0]);
    format!("{code} {}", lines[0])
}

fn needs_root(test: &str) -> bool {
    if !rig(test) {
        return false;
    }
    if !skip::is_root() {
        skip(test, "root (a private mount namespace for the remote side)");
        return false;
    }
    true
}

#[test]
fn send_refused_when_the_remote_program_differs() {
    let test = "send_refused_when_the_remote_program_differs";
    if !needs_root(test) {
        return;
    }
    let said = refused("send-differs", |dir, prog| {
        let other = dir.join("cprog-other");
        let mut bytes = std::fs::read(prog).unwrap();
        bytes.extend_from_slice(b"another build");
        std::fs::write(&other, bytes).unwrap();
        vec![(other.into(), prog.into())]
    });
    // Refused by the remote's verify, which names the program.
    assert!(said.starts_with("8 "), "{said}");
    assert!(
        said.contains("refused the image") && said.contains("verify") && said.contains("cprog"),
        "{said}"
    );
}

#[test]
fn send_says_when_the_remote_has_no_migrate() {
    let test = "send_says_when_the_remote_has_no_migrate";
    if !needs_root(test) {
        return;
    }
    let said = refused("send-nomigrate", |dir, _| {
        let empty = dir.join("not-migrate");
        std::fs::write(&empty, b"").unwrap();
        vec![(empty.into(), migrate().into())]
    });
    assert!(said.starts_with("6 "), "{said}");
    assert!(
        said.contains(&format!("no {} there", migrate().display())),
        "{said}"
    );
}
