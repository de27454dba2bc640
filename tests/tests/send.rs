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
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use migrate_tests::command::{migrate, under_run, without_progress};
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
    send_with(&sshd.keys, sshd.port, pid, dest, ssh)
}

fn send_with(
    keys: &sshd::Keys,
    port: u16,
    pid: i32,
    dest: &str,
    ssh: Option<&Path>,
) -> (i32, String, String) {
    let out = send_command(&keys.send_args(port), ssh, pid, dest)
        .output()
        .expect("run migrate send");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        without_progress(&String::from_utf8_lossy(&out.stderr)),
    )
}

/// `migrate send SSH-OPTIONS [--ssh SSH] PID DEST`, outside the preload,
/// with no input.
fn send_command(options: &[String], ssh: Option<&Path>, pid: i32, dest: &str) -> Command {
    let mut cmd = Command::new(migrate());
    cmd.arg("send").args(options);
    if let Some(s) = ssh {
        cmd.arg("--ssh").arg(s);
    }
    cmd.arg(pid.to_string())
        .arg(dest)
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null());
    cmd
}

/// `migrate send --ssh SSH PID DEST` (a stand-in ssh), run to its end.
fn send_via(ssh: &Path, pid: i32, dest: &str) -> Output {
    send_command(&[], Some(ssh), pid, dest)
        .output()
        .expect("run migrate send")
}

/// Writes the executable shell script `name` (a stand-in ssh) in `dir`.
fn script(dir: &TestDir, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `program` started under `migrate run` (with `run_args`), its own dumps
/// in `dir`, once it has printed step `step`: an uninterrupted run's
/// output and the original.
fn start_original(
    dir: &TestDir,
    program: &Program,
    run_args: &[&str],
    step: u64,
) -> (Vec<String>, Proc) {
    let expected = reference(program);
    let run = under_run(&migrate(), program, &dir.join("own-%p.img"), run_args);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_step(step);
    (expected, original)
}

/// Checks that `p` (the process sent) was ended by SIGKILL once its copy
/// ran there.
fn assert_killed(p: &mut Proc, what: &str) {
    let status = p.wait();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{what} after the move: {}\n{}",
        describe_status(status),
        p.describe()
    );
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
fn noting_ssh(dir: &TestDir, pid: i32) -> PathBuf {
    let mark = dir.join("original-when-remote-ran");
    script(
        dir,
        "ssh-noting",
        &format!(
            "#!/bin/sh\nssh \"$@\"\nrc=$?\n\
             sed 's/.*) \\(.\\).*/\\1/' /proc/{pid}/stat > '{}' 2>/dev/null || echo gone > '{}'\n\
             exit $rc\n",
            mark.display(),
            mark.display()
        ),
    )
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
    let (expected, mut original) = start_original(&dir, program, &[], step);
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
    assert_killed(&mut original, "the original");
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
    let (expected, mut original) = start_original(&dir, &program, &[], 5);
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

/// The same command moves a program into the 6.1 guest (another kernel,
/// another CPU: the program runs for a baseline both meet), reached over
/// ssh through a QEMU port forwarded from this machine's loopback to the
/// guest's own sshd; it finishes there with exact output.
#[test]
fn send_moves_a_program_into_the_6_1_guest() {
    use migrate_tests::guest::Guest;
    let test = "send_moves_a_program_into_the_6_1_guest";
    if !rig(test) {
        return;
    }
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("send-guest");
    let port = sshd::free_port();
    let keys = sshd::Keys::make(&dir.join("ssh"), port);
    let config = keys.config("0.0.0.0:22");
    let stop = dir.join("stop-guest");
    let sshd_log = dir.join("sshd-guest.log");
    // In the guest's own overlay (this machine's file is untouched): a
    // root .bashrc that starts pyenv takes 20 s of emulated time at every
    // ssh login (bash reads it for commands run by sshd).
    let cmd = format!(
        "ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || echo 'guest: no eth0' >&2\n\
         : > /root/.bashrc\n\
         mkdir -p /run/sshd\n\
         /usr/sbin/sshd -D -e -f '{config}' 2> '{log}' &\n\
         i=0; while [ ! -e '{stop}' ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done\n",
        config = config.display(),
        log = sshd_log.display(),
        stop = stop.display(),
    );
    let mut started = guest.start_with_ssh(dir.path(), &cmd, port);
    let deadline = Instant::now() + 4 * TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&sshd_log).unwrap_or_default();
        if text.contains("Server listening on") {
            break;
        }
        if started.ended() || Instant::now() >= deadline {
            let run = started.finish();
            panic!(
                "the guest's sshd did not start: {text}\nguest: {run:?}\nconsole: {}",
                std::fs::read_to_string(dir.join("guest-console")).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Paced to outlast the ssh handshake with the (emulated, slow) guest.
    let program = Program::mem(8, 300, 100);
    let (expected, mut original) = start_original(&dir, &program, &["--cpu", "x86-64-v3"], 5);
    original.note_dump();
    let remote = dir.subdir("remote").join("app.img");
    let sent = Instant::now();
    let (code, out, err) = send_with(&keys, port, original.pid(), &keys.dest(&remote), None);
    eprintln!("{test}: migrate send took {:?}", sent.elapsed());
    if code != 0 {
        let _ = std::fs::write(&stop, b"");
        let run = started.finish();
        panic!(
            "migrate send into the guest failed ({code}): {err}\nstdout {out:?}\n{}\nguest sshd: {}\nguest: {run:?}",
            original.describe(),
            std::fs::read_to_string(&sshd_log).unwrap_or_default()
        );
    }
    assert!(err.is_empty(), "stderr of a move that worked: {err:?}");
    assert_killed(&mut original, "the original");
    // The restored process runs in the guest: its pid is the guest's.
    let log = remote.with_extension("log");
    let deadline = Instant::now() + 4 * TIMEOUT;
    let tail = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().any(|l| l.starts_with("done ")) {
            break text.lines().map(str::to_string).collect::<Vec<_>>();
        }
        if started.ended() || Instant::now() >= deadline {
            let _ = std::fs::write(&stop, b"");
            let run = started.finish();
            panic!(
                "the moved process did not finish in the guest; its log:\n{text}\nguest: {run:?}"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::fs::write(&stop, b"").unwrap();
    let run = started.finish();
    assert_eq!(run.status, 0, "guest: {run:?}");
    let mut all = original.stdout_lines();
    all.extend(tail);
    assert_eq!(all, expected, "output here then in the guest");
}

/// A process restored here (the PID the user holds is its supervisor's,
/// in front of a PID namespace) moves the same way: its output here, then
/// after the restore, then there, is an uninterrupted run's.
#[test]
fn send_moves_a_restored_process() {
    let test = "send_moves_a_restored_process";
    if !rig(test) {
        return;
    }
    let dir = TestDir::new("send-restored");
    let sshd = Sshd::start(&dir.join("ssh"), &[]);
    let program = Program::c();
    let expected = reference(&program);
    let m = migrate();
    let first = dir.join("first.img");
    let run = under_run(&m, &program, &first, &["--after-dump", "exit"]);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_step(5);
    original.dump_signal();
    original.wait_for_image(&first, true);
    assert!(original.wait().success(), "{}", original.describe());
    let mut restored = dir.spawn_plain(
        &migrate_tests::command::under_restore(&m, &[], &first),
        "restored",
        &[],
    );
    restored.wait_for_lines(0);
    let remote = dir.subdir("remote").join("app.img");
    let (code, out, err) = send(&sshd, restored.pid(), &sshd.keys.dest(&remote), None);
    assert_eq!(code, 0, "migrate send: {err}\n{}", restored.describe());
    let moved = Moved::from_output(&out);
    assert_killed(&mut restored, "the restored process");
    let tail = wait_done(&remote.with_extension("log"), &moved);
    let mut all = original.stdout_lines();
    all.extend(restored.stdout_lines());
    all.extend(tail);
    assert_eq!(all, expected, "output of the three pieces");
}

/// `migrate send` interrupted (SIGTERM) while the image is on its way to
/// a remote side that has stopped reading: the connection ends, not the
/// command, which continues the stopped original and says so in one
/// line; the original's output is an uninterrupted run's. No sshd needed:
/// the "ssh" is a stand-in that says ready and then only sleeps.
#[test]
fn interrupted_send_continues_the_original() {
    let dir = TestDir::new("send-interrupted");
    let fake = script(
        &dir,
        "ssh-stalls",
        "#!/bin/sh\necho 'migrate-receive: ready'\nexec sleep 1000\n",
    );
    let (expected, mut original) = start_original(&dir, &Program::c(), &[], 5);
    let err_path = dir.join("send.err");
    let mut sender = send_command(&[], Some(&fake), original.pid(), "nowhere:/x.img")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run migrate send");
    // Stopped once its image is complete; the image then stalls on its way.
    let deadline = Instant::now() + TIMEOUT;
    let state = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().and_then(|r| r.chars().nth(1)))
    };
    while state(original.pid()) != Some('T') {
        assert!(
            Instant::now() < deadline && sender.try_wait().unwrap().is_none(),
            "the original was not stopped by the send: {}\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default(),
            original.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: kill(2) takes plain integers; the pid is our child's, not reaped.
    unsafe { libc::kill(sender.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = sender.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = sender.kill();
            let _ = sender.wait();
            panic!(
                "migrate send did not end on SIGTERM: {}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let err = without_progress(&std::fs::read_to_string(&err_path).unwrap());
    assert_eq!(status.code(), Some(7), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err:?}");
    assert!(
        lines[0].starts_with("migrate: interrupted by signal 15: ")
            && lines[0].ends_with("goes on"),
        "{err:?}"
    );
    let got = original.wait_success();
    assert_eq!(
        got, expected,
        "the original's output after an interrupted send"
    );
}

/// A process whose restored copy ends at once (here: as soon as its parent
/// is another process, which a restore's is) is moved, not run twice: the
/// remote restore ended, but only after the copy ran, so the original must
/// end, not go on. The "ssh" is a stand-in that runs the remote command
/// here (no sshd needed).
#[test]
fn send_of_a_process_that_ends_at_once_there_runs_it_once() {
    let dir = TestDir::new("send-ends-at-once");
    let fake = script(
        &dir,
        "ssh-local",
        "#!/bin/sh\nfor a; do s=$a; done\nexec sh -c \"$s\"\n",
    );
    let script = "import os, time\n\
                  p = os.getppid()\n\
                  print('ready', flush=True)\n\
                  while os.getppid() == p:\n    time.sleep(0.001)\n\
                  print('done', flush=True)\n\
                  os._exit(0)\n";
    let program = Program::command_of(
        "py-ends-at-once",
        &[PYTHON.as_ref(), "-c".as_ref(), script.as_ref()],
    );
    let run = under_run(&migrate(), &program, &dir.join("own-%p.img"), &[]);
    let mut original = dir.spawn_plain(&run, "original", &[]);
    original.wait_for_lines(0);
    let remote = dir.subdir("remote").join("app.img");
    let out = send_via(
        &fake,
        original.pid(),
        &format!("local:{}", remote.display()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(remote.with_extension("log")).unwrap_or_default();
    // (On a failure the original, left running, is killed with the test.)
    assert_eq!(
        out.status.code(),
        Some(0),
        "migrate send: {err}\nthe original: {}\nthe remote log: {log:?}",
        original.describe()
    );
    assert_killed(&mut original, "the original");
    assert_eq!(original.stdout_lines(), ["ready"], "the original's output");
    assert_eq!(log, "done\n", "the remote copy's output");
}

/// The connection lost while the remote side verifies the image (a
/// Ctrl-C here ends ssh; sshd then closes the remote command's output):
/// the sender, which never hears `restoring`, continues the original, so
/// the remote side must not restore it. The "ssh" runs the remote command
/// here and stops passing its output on after `ready`.
#[test]
fn send_whose_connection_is_lost_before_restoring_runs_one_copy() {
    let dir = TestDir::new("send-lost-before-restoring");
    let fake = script(
        &dir,
        "ssh-lost",
        "#!/bin/sh\nfor a; do s=$a; done\n\
         sh -c \"$s\" | { IFS= read -r l; printf '%s\\n' \"$l\"; }\n",
    );
    let (expected, mut original) = start_original(&dir, &Program::c(), &[], 5);
    let remote = dir.subdir("remote").join("app.img");
    let out = send_via(
        &fake,
        original.pid(),
        &format!("local:{}", remote.display()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let left = list_files(remote.parent().unwrap());
    assert!(
        left.is_empty(),
        "files there (a copy restored?): {left:?}\n{err}"
    );
    assert_eq!(out.status.code(), Some(7), "{err}");
    let got = original.wait_success();
    assert_eq!(got, expected, "the original's output after a lost send");
}

/// A process with children is refused before anything is done (a tree
/// dump stops only its root after the image: the children would go on
/// here after the snapshot and outlive the root, two copies of them once
/// the tree ran there): one line names the children, the command exits 1
/// without starting ssh, and the program and its child go on unharmed.
#[test]
fn send_of_a_process_with_children_is_refused_naming_them() {
    let dir = TestDir::new("send-tree");
    let program = Program::children("live");
    let expected = reference(&program);
    let mut p = dir.spawn(&program, "original", &[]);
    p.wait_for_line("ready", |l| l == "ready");
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", p.pid())).unwrap();
    let child = kids.trim().to_string();
    assert!(!child.is_empty(), "{}", p.describe());
    // An ssh that must never run.
    let ssh = script(&dir, "no-ssh", "#!/bin/sh\ntouch \"$0.ran\"\nexit 255\n");
    let out = send_via(&ssh, p.pid(), "localhost:/tmp/never.img");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}\n{}", p.describe());
    assert!(
        err.contains(&format!("has children ({child})")),
        "{err}\n{}",
        p.describe()
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.join("no-ssh.ran").exists(), "ssh was started");
    let status = p.wait();
    assert!(status.success(), "{}", p.describe());
    assert_eq!(p.stdout_lines(), expected, "{}", p.describe());
}
