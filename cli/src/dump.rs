//! `migrate dump PID`: asks a process running under the library for a
//! dump and waits for its outcome.
//!
//! The process's status file (see `migrate::status`) names its dump
//! signal; the command leaves a request file (image path, what to do
//! after) and queues the signal with the request's nonce, then follows the
//! status until it shows that very dump finished. It never waits forever:
//! a dump that has not started within [`START_WAIT`] (or `--timeout`) or
//! not finished within `--timeout` is given up, saying why where `/proc`
//! tells (the signal blocked or ignored, the process stopped).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use migrate::status::{After, format_request, request_value};

use crate::status::{self, alive, proc_stat};
use crate::{Failure, human};

/// Exit statuses, as `--help` lists them.
pub mod exit {
    /// The dump failed inside the process (its reason is printed).
    pub const FAILED: i32 = 1;
    /// No such process, or it does not run under libmigrate.so.
    pub const UNREACHABLE: i32 = 3;
    /// The dump did not start or finish in time.
    pub const TIMEOUT: i32 = 4;
    /// The process ended before its dump was complete.
    pub const ENDED: i32 = 5;
}

const EXIT_HELP: &str = "\
Exit status:
  0  the image is complete (with --exit or --kill, the process has ended;
     with --stop, it is stopped)
  1  the dump failed inside the process; its reason is printed
  2  bad arguments
  3  no such process, or it does not run under libmigrate.so
  4  the dump did not start or did not finish in time (--timeout)
  5  the process ended before the image was complete";

/// How long a dump may take to start (the signal delivered, the status
/// saying `dumping`) when `--timeout` is longer; counted again from the
/// last time the process was seen writing another dump.
pub const START_WAIT: Duration = Duration::from_secs(30);
/// When to say why a dump has not started yet.
const EXPLAIN_AFTER: Duration = Duration::from_secs(3);
/// How long `--exit` and `--kill` wait for the process to be gone.
const END_WAIT: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_HELP)]
pub struct Args {
    /// The process (for a restored one, the PID of its `migrate restore`).
    pid: i32,
    /// Exit with status 0 once the image is complete, every thread still stopped.
    #[arg(long, conflicts_with = "kill")]
    exit: bool,
    /// As --exit, but the process ends killed by SIGKILL.
    #[arg(long, conflicts_with = "stop")]
    kill: bool,
    /// Leave the process stopped (SIGSTOP) once the image is complete,
    /// before it does anything more: SIGCONT goes on, SIGKILL ends it.
    #[arg(long, conflicts_with = "exit")]
    stop: bool,
    /// Where this dump goes (%p, %n, %% as in `run --image`)
    /// [default: the process's own pattern].
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Give up after this long: 500ms, 30s, 5m, 1h [default: 10m].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    timeout: Option<Duration>,
}

/// `500ms`, `30s`, `5m`, `1h`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s}: expected a number with ms, s, m or h"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{s}: unknown unit {unit} (ms, s, m or h)")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

/// The process asked for a dump, as the command knows it.
pub struct Target {
    pub pid: i32,
    pub comm: String,
    pub start: u64,
    dir: PathBuf,
    /// Its dump signal.
    signal: i32,
}

impl Target {
    pub fn name(&self) -> String {
        format!("process {} ({})", self.pid, self.comm)
    }

    /// The process `pid`, running under the library with a status.
    pub fn find(pid: i32) -> Result<Target, Failure> {
        let unreachable = |m: String| Failure::new(exit::UNREACHABLE, m);
        let (comm, start, state) =
            proc_stat(pid).ok_or_else(|| unreachable(format!("no process {pid}")))?;
        if state == 'Z' {
            return Err(unreachable(format!("process {pid} ({comm}) has exited")));
        }
        let dir = status::dir();
        // A status file outlives an exec of a program without the library:
        // its dump signal must not be sent then.
        let st = dir
            .as_ref()
            .ok()
            .and_then(|d| status::read(d, pid, start))
            .filter(|_| status::has_library(pid).unwrap_or(false));
        let Some(st) = st else {
            return Err(unreachable(no_status(pid, &comm, &dir)));
        };
        Ok(Target {
            pid,
            comm,
            start,
            dir: dir.expect("a status was read from it"),
            signal: st.signal,
        })
    }

    /// Whether it still runs (the same process, not a reused PID).
    pub fn alive(&self) -> bool {
        alive(self.pid, self.start)
    }

    /// Asks for a dump to `image` (absolute), `after` it as given, and
    /// waits up to `timeout` for its outcome.
    pub fn dump(
        &self,
        image: Option<&str>,
        after: After,
        timeout: Duration,
    ) -> Result<status::Last, Failure> {
        let (nonce, req_path) = request(self, image, after)?;
        let outcome = wait(self, nonce, timeout);
        // Gone once the process read it; left behind when it never did. The
        // outcome file too, when the wait ended another way.
        let _ = std::fs::remove_file(&req_path);
        let _ = std::fs::remove_file(status::done_path(&self.dir, self.pid, nonce));
        outcome
    }
}

pub fn main(a: Args) -> Result<(), Failure> {
    let t = Target::find(a.pid)?;
    let after = match (a.exit, a.kill, a.stop) {
        (true, _, _) => After::Exit,
        (_, true, _) => After::Kill,
        (_, _, true) => After::Stop,
        _ => After::Default,
    };
    let image = a.image.map(absolute).transpose()?;
    let timeout = a.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let last = t.dump(image.as_deref(), after, timeout)?;
    println!(
        "dumped {}: {}, {} pages stored, {} ms",
        last.path,
        human::size(last.size),
        last.pages,
        last.ms
    );
    if matches!(after, After::Exit | After::Kill) {
        wait_gone(&t);
    }
    Ok(())
}

/// Why there is no status for `pid`: the library not loaded, or loaded
/// without a status (a wrapper, a restore under way, no usable directory).
fn no_status(pid: i32, comm: &str, dir: &Result<PathBuf, String>) -> String {
    match status::has_library(pid) {
        Err(e) => return format!("cannot read /proc/{pid}/maps of process {pid} ({comm}): {e}"),
        Ok(false) => return format!("process {pid} ({comm}) is not running under libmigrate.so"),
        Ok(true) => {}
    }
    let dir = match dir {
        Ok(d) => d.display().to_string(),
        Err(why) => why.clone(),
    };
    format!(
        "process {pid} ({comm}) has libmigrate.so loaded but no status in {dir}: \
         a wrapper or a restore still starting has none, and a process whose \
         status directory was unusable says why with MIGRATE_LOG=info"
    )
}

fn absolute(p: PathBuf) -> Result<String, Failure> {
    let p = if p.is_absolute() {
        p
    } else {
        std::env::current_dir()
            .map_err(|e| Failure::new(2, format!("cannot read the working directory: {e}")))?
            .join(p)
    };
    p.into_os_string()
        .into_string()
        .map_err(|p| Failure::new(2, format!("{}: not UTF-8", PathBuf::from(p).display())))
}

/// A nonce no other request of this process uses (a random nonzero number).
pub fn nonce() -> u32 {
    let mut b = [0u8; 4];
    loop {
        // SAFETY: getrandom fills the 4-byte buffer it is given.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        let v = u32::from_ne_bytes(b);
        if n == 4 && v != 0 {
            return v;
        }
    }
}

/// Writes the request file and queues the dump signal; the nonce and the
/// file's path.
fn request(t: &Target, image: Option<&str>, after: After) -> Result<(u32, PathBuf), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = format_request(t.start, image, after);
    let (nonce, path, mut file) = loop {
        let nonce = nonce();
        let path = t.dir.join(format!("{}.req.{nonce}", t.pid));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => break (nonce, path, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Failure::new(
                    exit::UNREACHABLE,
                    format!("cannot write {}: {e}", path.display()),
                ));
            }
        }
    };
    if let Err(e) = file.write_all(text.as_bytes()) {
        let _ = std::fs::remove_file(&path);
        return Err(Failure::new(
            exit::UNREACHABLE,
            format!("cannot write {}: {e}", path.display()),
        ));
    }
    drop(file);
    if let Err(e) = migrate::sys::queue_signal(t.pid, t.signal, request_value(nonce)) {
        let _ = std::fs::remove_file(&path);
        return Err(Failure::new(
            exit::UNREACHABLE,
            format!(
                "cannot send signal {} to {}: errno {}",
                t.signal,
                t.name(),
                e.0
            ),
        ));
    }
    Ok((nonce, path))
}

/// Follows the status until dump `nonce` is finished; its outcome.
fn wait(t: &Target, nonce: u32, timeout: Duration) -> Result<status::Last, Failure> {
    let begun = Instant::now();
    let mut start_by = begun + timeout.min(START_WAIT);
    let deadline = begun + timeout;
    let mut shown = Progress::new();
    let mut started = false;
    let mut explained = false;
    // The snapshot writer finishing our dump, once the status named it: it
    // completes the image even when the program ends first.
    let mut writer: Option<(i32, u64)> = None;
    loop {
        let now = Instant::now();
        // Looked at before the outcome is: one that ended after writing
        // its outcome is not taken for one that ended without.
        let writer_gone = writer.map(|(pid, start)| !alive(pid, start));
        let program_gone = !alive(t.pid, t.start);
        let mut busy = false;
        // Its outcome file, or the status if that file could not be
        // written (the status shows only the latest dump, which is ours
        // if it names our request).
        let finished = status::read_done(&t.dir, t.pid, nonce).or_else(|| {
            let s = status::read(&t.dir, t.pid, t.start)?;
            if s.request != nonce {
                busy = s.dumping;
                return None;
            }
            started = true;
            if s.dumping {
                writer = writer.or(s.writer);
                shown.show(t, s.progress.unwrap_or((0, 0)));
                return None;
            }
            Some(s)
        });
        if let Some(done) = finished {
            let last = done.last.unwrap_or_default();
            shown.finish(t, last.ok);
            if last.ok {
                return Ok(last);
            }
            return Err(Failure::new(
                exit::FAILED,
                format!("the dump of {} failed: {}", t.name(), last.error),
            ));
        }
        // (A writer first named just now is looked at next time.)
        let gone = program_gone && writer.is_none();
        if let (Some(true), Some((pid, _))) = (writer_gone, writer) {
            shown.finish(t, false);
            return Err(Failure::new(
                exit::ENDED,
                format!(
                    "the snapshot writer (pid {pid}) of {} ended before the image was complete",
                    t.name()
                ),
            ));
        }
        if gone {
            shown.finish(t, false);
            let what = if started {
                "ended before its image was complete"
            } else {
                "ended before its dump started"
            };
            return Err(Failure::new(
                exit::ENDED,
                format!("{} {what} (its own error output may say why)", t.name()),
            ));
        }
        if busy && !started {
            // Another dump (periodic, or another request) is being written:
            // ours starts once it ends, however long it takes to write.
            start_by = start_by.max((now + timeout.min(START_WAIT)).min(deadline));
        }
        if !started && !explained && !busy && now >= begun + EXPLAIN_AFTER {
            explained = true;
            if let Some(why) = not_started(t.pid, t.signal) {
                eprintln!("migrate: {} has not started the dump: {why}", t.name());
            }
        }
        if !started && now >= start_by {
            let why = not_started(t.pid, t.signal).map_or(String::new(), |w| format!(": {w}"));
            return Err(Failure::new(
                exit::TIMEOUT,
                format!(
                    "{} did not start the dump within {:?}{why}",
                    t.name(),
                    timeout.min(START_WAIT)
                ),
            ));
        }
        if now >= deadline {
            shown.finish(t, false);
            return Err(Failure::new(
                exit::TIMEOUT,
                format!("{} did not finish its dump within {timeout:?}", t.name()),
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// What `/proc/PID/status` says that keeps a dump from starting.
fn not_started(pid: i32, sig: i32) -> Option<String> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    if !(1..=64).contains(&sig) {
        return None;
    }
    let field = |k: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    let bit = 1u64 << (sig - 1);
    if st
        .lines()
        .any(|l| l.starts_with("State:") && (l.contains("(stopped)") || l.contains("(tracing")))
    {
        return Some("it is stopped (SIGCONT resumes it)".into());
    }
    if field("SigBlk:").is_some_and(|m| m & bit != 0) {
        return Some(format!(
            "it blocks signal {sig} (SigBlk in /proc/{pid}/status); the dump starts when it unblocks it"
        ));
    }
    if field("SigIgn:").is_some_and(|m| m & bit != 0) {
        return Some(format!(
            "it ignores signal {sig} (SigIgn in /proc/{pid}/status)"
        ));
    }
    if field("SigCgt:").is_some_and(|m| m & bit == 0) {
        return Some(format!("it has no handler for signal {sig} any more"));
    }
    None
}

/// After `--exit` or `--kill`: waits a little for the process to be gone.
fn wait_gone(t: &Target) {
    let until = Instant::now() + END_WAIT;
    while alive(t.pid, t.start) {
        if Instant::now() >= until {
            eprintln!(
                "migrate: {} is still there {END_WAIT:?} after its dump",
                t.name()
            );
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// Progress on stderr: a bar redrawn in place on a terminal, a plain line
/// a second otherwise.
struct Progress {
    tty: bool,
    drawn: bool,
    /// When the last plain line went out (the first waits a second too).
    last_line: Option<Instant>,
    last: (u64, u64),
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last_line: Some(Instant::now()),
            last: (0, 0),
        }
    }

    fn show(&mut self, t: &Target, (written, estimate): (u64, u64)) {
        if self.drawn && self.last == (written, estimate) {
            return;
        }
        self.last = (written, estimate);
        if self.tty {
            // Below 100% until the process says the image is complete.
            let pct = percent(written, estimate).min(99);
            self.draw(t, pct, written, estimate);
        } else if self
            .last_line
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.last_line = Some(Instant::now());
            eprintln!(
                "migrate: dump of {}: {} of about {} written",
                t.name(),
                human::size(written),
                human::size(estimate.max(written))
            );
        }
        self.drawn = true;
    }

    fn draw(&self, t: &Target, pct: u64, written: u64, estimate: u64) {
        const WIDTH: u64 = 30;
        let full = (pct * WIDTH / 100) as usize;
        let bar = format!("{}{}", "#".repeat(full), "-".repeat(WIDTH as usize - full));
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Kdump of {} [{bar}] {pct:>3}% {} of ~{}",
            t.name(),
            human::size(written),
            human::size(estimate.max(written))
        );
        let _ = err.flush();
    }

    /// Ends the bar: at 100% when the dump succeeded, left where it was
    /// otherwise.
    fn finish(&mut self, t: &Target, ok: bool) {
        if self.tty && self.drawn {
            if ok {
                let (w, _) = self.last;
                self.draw(t, 100, w, w);
            }
            eprintln!();
        }
        self.drawn = false;
    }
}

fn percent(written: u64, estimate: u64) -> u64 {
    if estimate == 0 {
        return 0;
    }
    (written.saturating_mul(100) / estimate).min(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 min").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(512, 1024), 50);
        assert_eq!(percent(2048, 1024), 100);
    }
}
