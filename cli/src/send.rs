//! `migrate send PID [USER@]HOST[:PATH]`: moves a running process to
//! another host over one ssh connection, losing nothing on any failure.
//!
//! The order is what makes it safe:
//!
//! 1. `ssh HOST` runs `migrate receive` (this command's own path there;
//!    see `receive.rs`), which checks that the library, the program's
//!    executable and a free image path are there and says `ready`. Nothing
//!    has touched the process yet.
//! 2. The process is dumped here with the request's `after stop`: once
//!    the image is complete it stops (SIGSTOP) before any thread leaves
//!    the dump handler, so it does nothing after its snapshot.
//! 3. The image goes down the same connection, compressed with `zstd`
//!    when both ends have it (faster than ssh's own `-C`; `--compress`).
//! 4. The remote side checks the size, verifies the image (the restore's
//!    own checks), restores it detached (`setsid`, its output to a log
//!    file), and says `running` once the restored process has resumed.
//! 5. Only then is the original ended (SIGKILL: it never ran past its
//!    snapshot).
//!
//! A failure up to the remote restore's start continues the original
//! (SIGCONT) as if nothing happened; the remote side removes its partial
//! image. A connection lost after the remote restore began leaves the
//! original stopped (the remote copy may be running) and says so.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use migrate::status::After;

use crate::dump::{self, Target};
use crate::{Failure, LibArg, human, library};

/// Exit statuses, as `--help` lists them.
pub mod exit {
    /// ssh failed, or the remote side is not ready (nothing was done).
    pub const REMOTE: i32 = 6;
    /// The image did not get there whole (the process goes on).
    pub const TRANSFER: i32 = 7;
    /// The remote side refused the image (the process goes on).
    pub const REFUSED: i32 = 8;
    /// The connection ended after the remote restore began: the process
    /// is left stopped.
    pub const UNCERTAIN: i32 = 9;
}

const EXIT_HELP: &str = "\
The remote host needs this migrate command and libmigrate.so at the same
paths as here, and the program's files (its executable, libraries and the
files it has open) at the same paths. PATH is the image's path there
(relative: to the remote home directory; a directory: a name is made up in
it); the restored program's output goes to --log (default: PATH with .log).

Exit status:
  0  the process runs on the remote host; here it has ended
  1  the dump failed inside the process, or the process has children (a
     tree does not move yet); the reason is printed; it goes on
  2  bad arguments
  3  no such process, or it does not run under libmigrate.so
  4  the dump did not start or did not finish in time (--timeout)
  5  the process ended before the image was complete
  6  ssh failed, or the remote host is not ready (migrate, libmigrate.so or
     the program missing there, PATH taken); the process was not touched
  7  the image did not get there whole; the process goes on
  8  the remote host refused the image (verify or restore failed there, its
     reason is printed); the process goes on
  9  the connection ended after the remote restore began: the process is
     left stopped (SIGCONT resumes it if the remote copy does not run)";

/// Prefix of the lines `migrate receive` says on its stdout.
pub const PREFIX: &str = "migrate-receive: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compress {
    /// zstd on both ends (where both have it; else none).
    Zstd,
    /// ssh's own compression (`ssh -C`, zlib).
    Ssh,
    /// None.
    None,
}

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_HELP)]
pub struct Args {
    /// The process (running under libmigrate.so).
    pid: i32,
    /// Where to: [USER@]HOST[:PATH] (ssh's destination, and the image's path there).
    #[arg(value_name = "[USER@]HOST[:PATH]")]
    dest: String,
    /// The restored program's output (stdout and stderr) on the remote host
    /// [default: PATH with .log].
    #[arg(long, value_name = "REMOTE_PATH")]
    log: Option<String>,
    /// ssh port.
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// ssh identity file.
    #[arg(short = 'i', long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// An ssh option (`-o OPTION`), as many times as needed.
    #[arg(short = 'o', long = "ssh-opt", value_name = "OPTION")]
    ssh_opt: Vec<String>,
    /// The ssh command.
    #[arg(long, value_name = "PROGRAM", default_value = "ssh")]
    ssh: OsString,
    /// How the image is compressed on the wire.
    #[arg(long, value_enum, default_value = "zstd")]
    compress: Compress,
    /// Give up the dump after this long: 500ms, 30s, 5m, 1h [default: 10m].
    #[arg(long, value_name = "DUR", value_parser = dump::parse_duration)]
    timeout: Option<Duration>,
    #[command(flatten)]
    lib: LibArg,
}

/// `[USER@]HOST[:PATH]` split into ssh's destination and the path (empty
/// when not given). `[v6addr]` keeps its colons.
pub fn split_dest(dest: &str) -> Result<(String, String), String> {
    // `[` starts an IPv6 host only before the first `:` (after it, it is
    // part of the path).
    let bracket = dest
        .find('[')
        .filter(|&i| dest.find(':').is_none_or(|c| i < c));
    let (host, path) = if let Some(rest) = bracket.map(|i| (i, &dest[i..])) {
        let (at, rest) = rest;
        let close = rest
            .find(']')
            .ok_or_else(|| format!("{dest}: no ] after ["))?;
        let host = format!("{}{}", &dest[..at], &rest[1..close]);
        let tail = &rest[close + 1..];
        let path = match tail.strip_prefix(':') {
            Some(p) => p,
            None if tail.is_empty() => "",
            None => return Err(format!("{dest}: expected :PATH after ]")),
        };
        (host, path.to_string())
    } else {
        match dest.split_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (dest.to_string(), String::new()),
        }
    };
    if host.is_empty() || host.starts_with('-') || host.ends_with('@') {
        return Err(format!("{dest}: no host"));
    }
    Ok((host, path))
}

/// `s` quoted for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A directory of this command's own (the local image), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, Failure> {
        use std::os::unix::fs::DirBuilderExt;
        // Not XDG_RUNTIME_DIR: a tmpfs in memory, where a large image
        // may not fit.
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let p = base.join(format!("migrate-send-{:08x}", dump::nonce()));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(Scratch(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Failure::new(
                        dump::exit::FAILED,
                        format!("cannot make a directory in {}: {e}", base.display()),
                    ));
                }
            }
        }
        Err(Failure::new(
            dump::exit::FAILED,
            format!("cannot make a directory in {}", base.display()),
        ))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The ssh child, with its stdout read line by line and its stderr kept.
struct Remote {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<std::thread::JoinHandle<()>>,
}

/// What the remote side said last.
enum Said {
    /// A line of ours (`PREFIX` removed).
    Line(String),
    /// The connection ended (ssh's last stderr line, if any).
    Ended(String),
}

impl Remote {
    /// The next line of `migrate receive`, skipping anything else a login
    /// shell may print.
    fn next(&mut self) -> Said {
        loop {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) | Err(_) => return Said::Ended(self.finish()),
                Ok(_) => {
                    if let Some(l) = line.trim_end().strip_prefix(PREFIX) {
                        return Said::Line(l.to_string());
                    }
                }
            }
        }
    }

    /// Waits for ssh to end; its last stderr line, or its status.
    fn finish(&mut self) -> String {
        let status = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let err = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        let last = err
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        if !last.is_empty() {
            return last;
        }
        match status {
            Ok(s) => format!("ssh ended ({s})"),
            Err(e) => format!("ssh: {e}"),
        }
    }
}

/// The PID of the running ssh, for the signal thread.
static SSH_PID: AtomicI32 = AtomicI32::new(0);
/// The signal that interrupted the command, if one did.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

/// SIGINT, SIGTERM and SIGHUP end the ssh connection instead of this
/// command, so that it always gets to continue the process it stopped.
fn guard_signals() {
    // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset; the
    // mask is changed for this (still only) thread before any other thread
    // exists, so every thread inherits it and only sigwait takes them.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || {
            loop {
                let mut sig = 0;
                // SAFETY: `set` is a valid signal set; sig is written.
                if libc::sigwait(&set, &mut sig) != 0 {
                    return;
                }
                INTERRUPTED.store(sig, Ordering::SeqCst);
                let pid = SSH_PID.load(Ordering::SeqCst);
                if pid > 0 {
                    // SAFETY: kill(2) takes plain integers; pid is our own
                    // ssh child (not reaped while the main thread waits on it).
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        });
    }
}

/// Makes `cmd`'s process start with the signals [`guard_signals`] blocks
/// unblocked (a child inherits the mask): ssh and zstd end on them as usual.
fn unguarded(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the child between fork and exec; it only fills a
    // sigset on its stack and calls pthread_sigmask, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            Ok(())
        })
    }
}

pub fn main(a: Args) -> Result<(), Failure> {
    let (host, path) = split_dest(&a.dest).map_err(|m| Failure::new(2, m))?;
    let t = Target::find(a.pid)?;
    refuse_a_tree(&t)?;
    let exe = std::fs::read_link(format!("/proc/{}/exe", t.pid)).map_err(|e| {
        Failure::new(
            dump::exit::UNREACHABLE,
            format!("cannot read /proc/{}/exe: {e}", t.pid),
        )
    })?;
    let lib = library::find(a.lib.lib.clone())?;
    let me = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Failure::new(exit::REMOTE, format!("cannot find this command: {e}")))?;
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| Failure::new(2, format!("{}: not UTF-8", p.display())))
    };
    let (me_s, lib_s, exe_s) = (utf8(&me)?, utf8(&lib)?, utf8(&exe)?);
    let local_zstd = a.compress == Compress::Zstd && have("zstd");

    guard_signals();
    let mut remote = connect(&a, &host, &path, &t, [&me_s, &lib_s, &exe_s])?;
    // 1. The remote side is ready (or says why not); the process untouched.
    let remote_zstd = match remote.next() {
        Said::Line(l) if l.starts_with("ready") => l.split(' ').any(|w| w == "zstd"),
        Said::Line(l) => {
            let _ = remote.child.wait();
            return Err(Failure::new(
                exit::REMOTE,
                format!("{host}: {}", l.strip_prefix("error ").unwrap_or(&l)),
            ));
        }
        Said::Ended(why) => {
            return Err(Failure::new(exit::REMOTE, format!("ssh {host}: {why}")));
        }
    };
    let zstd = local_zstd && remote_zstd;

    // 2. The dump; the process stops once its image is complete.
    let scratch = match Scratch::new() {
        Ok(s) => s,
        Err(f) => return Err(abort(&mut remote, f)),
    };
    let image = scratch.0.join(format!("{}.img", t.pid));
    let timeout = a.timeout.unwrap_or(dump::DEFAULT_TIMEOUT);
    let last = match t.dump(Some(&utf8(&image)?), After::Stop, timeout) {
        Ok(l) => l,
        Err(f) => return Err(abort(&mut remote, f)),
    };
    // It stops itself just after saying the dump is done: a SIGCONT
    // before that would be lost.
    wait_stopped(&t);
    if std::io::stderr().is_terminal() {
        eprintln!(
            "migrate: dumped {}: {}; sending it to {host}",
            t.name(),
            human::size(last.size)
        );
    }

    // From here on, every failure before the remote restore starts
    // continues the process.
    let resume = |f: Failure| {
        cont(&t);
        let f = match INTERRUPTED.load(Ordering::SeqCst) {
            0 => f,
            sig => Failure::new(
                f.code.into(),
                format!(
                    "interrupted by signal {sig}: {}; {} goes on",
                    f.msg,
                    t.name()
                ),
            ),
        };
        let _ = std::fs::remove_file(&image);
        f
    };
    // 3. The image, down the same connection.
    if let Err(why) = stream(&mut remote, &image, last.size, zstd) {
        let said = match remote.next() {
            Said::Line(l) => l.strip_prefix("error ").unwrap_or(&l).to_string(),
            Said::Ended(e) => e,
        };
        return Err(resume(Failure::new(
            exit::TRANSFER,
            format!(
                "sending the image of {} to {host} failed ({why}; {host}: {said}); it goes on",
                t.name()
            ),
        )));
    }
    // 4. What the remote side made of it.
    let mut restoring = false;
    loop {
        match remote.next() {
            Said::Line(l) if l == "restoring" => restoring = true,
            Said::Line(l) if l.starts_with("running ") => {
                let mut w = l["running ".len()..].splitn(2, ' ');
                let pid = w.next().unwrap_or("?").to_string();
                let log = w.next().unwrap_or("?").to_string();
                let _ = remote.child.wait();
                // 5. Only now is the original ended.
                end(&t);
                println!(
                    "moved {} to {host}: it runs there as process {pid}, its output in {log}",
                    t.name()
                );
                return Ok(());
            }
            Said::Line(l) if l.starts_with("error ") => {
                let _ = remote.child.wait();
                return Err(resume(Failure::new(
                    exit::REFUSED,
                    format!(
                        "{host} refused the image of {}: {}; it goes on",
                        t.name(),
                        &l[6..]
                    ),
                )));
            }
            Said::Line(_) => {}
            Said::Ended(why) if !restoring => {
                return Err(resume(Failure::new(
                    exit::TRANSFER,
                    format!(
                        "the connection to {host} ended before the restore of {} began ({why}); it goes on",
                        t.name()
                    ),
                )));
            }
            Said::Ended(why) => {
                return Err(Failure::new(
                    exit::UNCERTAIN,
                    format!(
                        "the connection to {host} ended while the restore of {} began there ({why}): \
                         it is left stopped here; SIGCONT resumes it if the copy on {host} does not run",
                        t.name()
                    ),
                ));
            }
        }
    }
}

/// Whether `tool` is on PATH here.
fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Starts ssh running `migrate receive` on `host`.
fn connect(
    a: &Args,
    host: &str,
    path: &str,
    t: &Target,
    [me, lib, exe]: [&str; 3],
) -> Result<Remote, Failure> {
    let missing = format!(
        "{PREFIX}error no {me} there (migrate send needs migrate and libmigrate.so \
         at the same paths there as here)"
    );
    let mut words = vec![
        me.to_string(),
        "receive".into(),
        "--lib".into(),
        lib.into(),
        "--exe".into(),
        exe.into(),
        "--name".into(),
        format!("migrate-{}-{}.img", t.comm.replace('/', "_"), t.pid),
        "--sender-version".into(),
        env!("CARGO_PKG_VERSION").into(),
    ];
    if let Some(log) = &a.log {
        words.extend(["--log".into(), log.clone()]);
    }
    words.extend(["--".into(), path.to_string()]);
    let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    let script = format!(
        "test -x {q} || {{ echo {m}; exit 127; }}; exec {line}",
        q = quote(me),
        m = quote(&missing)
    );
    let mut cmd = Command::new(&a.ssh);
    cmd.arg("-T").arg("-x").arg("-e").arg("none");
    if let Some(p) = a.port {
        cmd.arg("-p").arg(p.to_string());
    }
    if let Some(i) = &a.identity {
        cmd.arg("-i").arg(i);
    }
    for o in &a.ssh_opt {
        cmd.arg("-o").arg(o);
    }
    if a.compress == Compress::Ssh {
        cmd.arg("-C");
    }
    cmd.arg("--").arg(host).arg(script);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("LD_PRELOAD");
    let mut child = unguarded(&mut cmd).spawn().map_err(|e| {
        Failure::new(
            exit::REMOTE,
            format!("cannot run {}: {e}", PathBuf::from(&a.ssh).display()),
        )
    })?;
    SSH_PID.store(child.id() as i32, Ordering::SeqCst);
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let kept = Arc::new(Mutex::new(String::new()));
    let k = Arc::clone(&kept);
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = k.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Only the end matters.
                if s.len() > 64 * 1024 {
                    let cut = s.len() - 16 * 1024;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(0);
                    s.drain(..cut);
                }
            }
        }
    });
    Ok(Remote {
        child,
        lines: BufReader::new(stdout),
        stderr: kept,
        stderr_thread: Some(thread),
    })
}

/// Tells the remote side that no image comes (it removes what it made),
/// and passes `f` on.
fn abort(remote: &mut Remote, f: Failure) -> Failure {
    if let Some(mut stdin) = remote.child.stdin.take() {
        let _ = stdin.write_all(b"abort\n");
    }
    let _ = remote.child.wait();
    f
}

/// Sends the header and the (compressed) image, then closes the stream.
fn stream(remote: &mut Remote, image: &Path, size: u64, zstd: bool) -> Result<(), String> {
    let mut stdin = remote.child.stdin.take().ok_or("no ssh input")?;
    let real = std::fs::metadata(image)
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len();
    if real != size {
        return Err(format!(
            "{} has {real} bytes, the process said {size}",
            image.display()
        ));
    }
    let how = if zstd { "zstd" } else { "raw" };
    stdin
        .write_all(format!("image {size} {how}\n").as_bytes())
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("writing to ssh: {e}"))?;
    if zstd {
        // zstd writes straight into ssh's input.
        let status = unguarded(&mut Command::new("zstd"))
            .args(["-q", "-c", "-1", "-T0", "--"])
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdin))
            .status()
            .map_err(|e| format!("cannot run zstd: {e}"))?;
        if !status.success() {
            return Err(format!("zstd ended ({status})"));
        }
    } else {
        let mut f = std::fs::File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
        std::io::copy(&mut f, &mut stdin).map_err(|e| format!("writing to ssh: {e}"))?;
    }
    Ok(())
}

/// Waits (a little) for the process to be stopped: itself, or for a
/// restored one (`t` its supervisor) the process two generations down.
fn wait_stopped(t: &Target) {
    for _ in 0..250 {
        if !t.alive() || stopped_below(t.pid, 3) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` or one of its descendants `depth` generations down is
/// stopped.
fn stopped_below(pid: i32, depth: u32) -> bool {
    if crate::status::proc_stat(pid).is_some_and(|(_, _, state)| state == 'T') {
        return true;
    }
    depth > 0
        && std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .any(|c| stopped_below(c, depth - 1))
}

/// The children of `pid` (every thread's).
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Refuses a process with children before anything is done: a tree dump
/// stops only its root after the image, so the children would go on here
/// after the snapshot, and live on once the root is ended (two copies of
/// them once the tree runs there). A process restored here is its
/// supervisor's grandchild (the supervisor was started with
/// `MIGRATE_RESTORE`).
fn refuse_a_tree(t: &Target) -> Result<(), Failure> {
    let restored = std::fs::read(format!("/proc/{}/environ", t.pid)).is_ok_and(|e| {
        e.split(|&b| b == 0)
            .any(|v| v.starts_with(b"MIGRATE_RESTORE="))
    });
    let mut dumped = t.pid;
    if restored {
        for _ in 0..2 {
            match children_of(dumped)[..] {
                [only] => dumped = only,
                _ => return Ok(()),
            }
        }
    }
    let kids = children_of(dumped);
    if kids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = kids.iter().map(i32::to_string).collect();
    Err(Failure::new(
        1,
        format!(
            "process {} ({}) has children ({}): migrate send moves a single process for now (its children would go on running here); nothing was done",
            t.pid,
            t.comm,
            list.join(", ")
        ),
    ))
}

/// Continues the stopped process.
fn cont(t: &Target) {
    if t.alive() {
        // SAFETY: kill(2) takes plain integers; the process was just seen
        // alive with its start time (not a reused PID).
        unsafe { libc::kill(t.pid, libc::SIGCONT) };
    }
}

/// Ends the stopped process, which now runs elsewhere.
fn end(t: &Target) {
    if t.alive() {
        // SAFETY: as in `cont`.
        unsafe { libc::kill(t.pid, libc::SIGKILL) };
    }
    for _ in 0..500 {
        if !t.alive() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let ok = |d: &str| split_dest(d).unwrap();
        assert_eq!(ok("box"), ("box".into(), "".into()));
        assert_eq!(
            ok("me@box:/tmp/x.img"),
            ("me@box".into(), "/tmp/x.img".into())
        );
        assert_eq!(ok("box:"), ("box".into(), "".into()));
        assert_eq!(ok("me@[::1]:a.img"), ("me@::1".into(), "a.img".into()));
        assert_eq!(ok("[::1]"), ("::1".into(), "".into()));
        assert!(split_dest(":x").is_err());
        assert!(split_dest("-oProxyCommand=x:y").is_err());
        assert!(split_dest("[::1").is_err());
        // A [ in the path is not an IPv6 host.
        assert_eq!(
            ok("box:/tmp/run[1].img"),
            ("box".into(), "/tmp/run[1].img".into())
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
