//! `migrate receive`: the remote end of `migrate send` (see `send.rs`),
//! run by ssh; not for people (hidden from `--help`).
//!
//! It speaks in lines on stdout starting with [`PREFIX`]: `ready [zstd]`
//! once the checks pass (the library, the program's executable, a free
//! image path and log path), `restoring` just before the restore starts,
//! `running PID LOG` once the restored process has resumed, or `error
//! WHAT` (one line) and a non-zero exit. Its stdin carries `image SIZE
//! zstd|raw` and the image, or `abort`.
//!
//! Nothing is left behind on a failure: the image is received into a
//! temporary file beside PATH, removed unless the restore started; an
//! image the restore refused is removed with its log.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Failure;
use crate::send::PREFIX;

/// How long the restored process may take to resume, at least, and a
/// second more for each this many bytes of image.
const RESUME_WAIT: Duration = Duration::from_secs(120);
const RESUME_BYTES_PER_S: u64 = 50 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the image goes (relative: to the working directory; a
    /// directory: `--name` in it).
    path: PathBuf,
    /// The library the restore preloads.
    #[arg(long)]
    lib: PathBuf,
    /// The program's executable, which must be here.
    #[arg(long)]
    exe: PathBuf,
    /// The image's file name when PATH is empty or a directory.
    #[arg(long)]
    name: String,
    /// The restored program's output [default: the image path with .log].
    #[arg(long)]
    log: Option<PathBuf>,
    /// The sender's version, which must be this one's.
    #[arg(long)]
    sender_version: String,
}

fn say(what: &str) {
    let _ = try_say(what);
}

/// As [`say`]; whether the line got out (an ssh that ended has closed
/// our output: the write fails, SIGPIPE being ignored).
fn try_say(what: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PREFIX}{what}")?;
    out.flush()
}

/// Says `error WHAT` and fails with `code`.
fn refuse(code: i32, what: String) -> Failure {
    say(&format!("error {}", what.replace('\n', " ")));
    Failure::new(code, "")
}

/// A file removed when dropped, unless kept.
struct Temp(Option<PathBuf>);

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub fn main(a: Args) -> Result<(), Failure> {
    use crate::send::exit::{REFUSED, REMOTE, TRANSFER};
    let mine = env!("CARGO_PKG_VERSION");
    if a.sender_version != mine {
        return Err(refuse(
            REMOTE,
            format!("migrate {mine} there, {} here", a.sender_version),
        ));
    }
    if !a.lib.is_file() {
        return Err(refuse(
            REMOTE,
            format!(
                "no {} there (migrate send needs migrate and libmigrate.so at the same paths there as here)",
                a.lib.display()
            ),
        ));
    }
    if !a.exe.is_file() {
        return Err(refuse(
            REMOTE,
            format!("no {} there (the program's executable)", a.exe.display()),
        ));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| refuse(REMOTE, format!("cannot read the working directory: {e}")))?;
    let mut path = cwd.join(&a.path);
    if a.path.as_os_str().is_empty() || path.is_dir() {
        path = path.join(&a.name);
    }
    let log = match &a.log {
        Some(l) => cwd.join(l),
        None => path.with_extension("log"),
    };
    for p in [&path, &log] {
        if p.symlink_metadata().is_ok() {
            return Err(refuse(REMOTE, format!("{} exists there", p.display())));
        }
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let part = dir.join(format!(
        ".{}.part-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)
        .map_err(|e| refuse(REMOTE, format!("cannot write in {}: {e}", dir.display())))?;
    let mut temp = Temp(Some(part.clone()));
    let zstd = have_zstd();
    say(if zstd { "ready zstd" } else { "ready" });

    // The header, then the image.
    let stdin = std::io::stdin().lock();
    let mut input = BufReader::new(stdin);
    let mut header = String::new();
    let _ = input.read_line(&mut header);
    let words: Vec<&str> = header.split_whitespace().collect();
    let (size, how) = match words.as_slice() {
        ["image", size, how] => (
            size.parse::<u64>()
                .map_err(|_| refuse(TRANSFER, format!("bad header {header:?}")))?,
            *how,
        ),
        // The sender gave up (its dump failed): nothing to do.
        _ => return Err(Failure::new(TRANSFER, "")),
    };
    let received = match how {
        "zstd" if zstd => unzstd(&mut input, file),
        "raw" => copy_raw(&mut input, file),
        _ => return Err(refuse(TRANSFER, format!("cannot read a {how} stream"))),
    }
    .map_err(|e| refuse(TRANSFER, format!("receiving: {e}")))?;
    if received != size {
        return Err(refuse(
            TRANSFER,
            format!("received {received} of {size} bytes"),
        ));
    }

    // Verified with the restore's own checks.
    let part_s = part.to_string_lossy().into_owned();
    let problems = migrate::restore::precheck::all(&part_s);
    if let Some(first) = problems.first() {
        let more = match problems.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(refuse(REFUSED, format!("verify: {}{more}", first.msg)));
    }
    // Into place, never over another file (a link; where the filesystem
    // has none, a rename once the name is seen free).
    if let Err(e) = std::fs::hard_link(&part, &path) {
        if e.kind() == std::io::ErrorKind::AlreadyExists || path.symlink_metadata().is_ok() {
            return Err(refuse(REMOTE, format!("{} exists there", path.display())));
        }
        std::fs::rename(&part, &path)
            .map_err(|e| refuse(REMOTE, format!("cannot make {}: {e}", path.display())))?;
    }
    drop(temp);
    temp = Temp(Some(path.clone()));
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&log)
        .map_err(|e| refuse(REMOTE, format!("cannot make {}: {e}", log.display())))?;
    let log_temp = Temp(Some(log.clone()));
    let err = out
        .try_clone()
        .map_err(|e| refuse(REMOTE, format!("{}: {e}", log.display())))?;

    // The sender continues the original unless it hears this: a line
    // that cannot get out (the connection is gone, e.g. a Ctrl-C there
    // while this verified) must not start a second copy. (One lost on
    // the way after this write is not seen here: see send.rs.)
    if let Err(e) = try_say("restoring") {
        return Err(Failure::new(
            TRANSFER,
            format!("the sender is gone ({e}); not restoring"),
        ));
    }
    let me = std::env::current_exe()
        .map_err(|e| refuse(REMOTE, format!("cannot find this command: {e}")))?;
    let mut cmd = Command::new(me);
    cmd.arg("restore")
        .arg("--lib")
        .arg(&a.lib)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env_remove("LD_PRELOAD");
    // SAFETY: runs in the child between fork and exec; setsid(2) is
    // async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| refuse(REFUSED, format!("cannot start the restore: {e}")))?;
    let pid = child.id() as i32;
    let dir = crate::status::dir();
    // Its start time, read while it cannot be reaped yet (not even a
    // zombie is gone before try_wait): a copy that resumed and ended
    // between two looks still left its status file, and must count as
    // moved, or the original would go on and the program run twice.
    let start = crate::status::proc_stat(pid).map(|(_, start, _)| start);
    let resumed = || {
        start.is_some_and(|start| {
            dir.as_ref()
                .is_ok_and(|d| crate::status::read(d, pid, start).is_some())
        })
    };
    let wait = RESUME_WAIT + Duration::from_secs(size / RESUME_BYTES_PER_S);
    let until = Instant::now() + wait;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            if resumed() {
                break;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let why = text
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map_or_else(|| format!("the restore ended ({status})"), str::to_string);
            return Err(refuse(REFUSED, format!("restore: {why}")));
        }
        if resumed() {
            break;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(refuse(
                REFUSED,
                format!("the restore did not resume within {wait:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // It runs: the image and its log stay.
    std::mem::forget(temp);
    std::mem::forget(log_temp);
    say(&format!("running {pid} {}", log.display()));
    Ok(())
}

/// Decompresses `input` into `file` with `zstd -d`; the bytes written.
fn unzstd(input: &mut impl Read, file: File) -> Result<u64, String> {
    let out = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new("zstd")
        .args(["-d", "-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run zstd: {e}"))?;
    let mut to = child.stdin.take().expect("piped");
    let copied = std::io::copy(input, &mut to);
    drop(to);
    let done = child.wait_with_output().map_err(|e| e.to_string())?;
    if !done.status.success() {
        let err = String::from_utf8_lossy(&done.stderr);
        return Err(format!(
            "zstd -d: {}",
            err.lines().next().unwrap_or("failed").trim()
        ));
    }
    copied.map_err(|e| format!("reading the image: {e}"))?;
    file.sync_all().map_err(|e| e.to_string())?;
    file.metadata().map(|m| m.len()).map_err(|e| e.to_string())
}

fn copy_raw(input: &mut impl Read, mut file: File) -> Result<u64, String> {
    let n = std::io::copy(input, &mut file).map_err(|e| e.to_string())?;
    file.sync_all().map_err(|e| e.to_string())?;
    Ok(n)
}

fn have_zstd() -> bool {
    Command::new("zstd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
