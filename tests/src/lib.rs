//! Harness for the end-to-end tests of `libmigrate.so`.
//!
//! A test makes a [`TestDir`], starts a [`Program`] in it under the shim
//! ([`TestDir::spawn`]), waits for its output ([`Proc::wait_for_step`]),
//! sends the dump signal ([`Proc::signal`]), waits for the image
//! ([`Proc::wait_for_image`], which also runs `dumpfmt::verify` on it), kills
//! the process and restores the image ([`TestDir::restore`], which also
//! checks that the restored process is the one in the image: [`fidelity`]). The output of
//! the pieces is then compared with the output of an uninterrupted run
//! ([`reference`]) by [`check_restored`] and [`check_segment`].
//!
//! Synchronisation is always by polling for a condition under a deadline,
//! never by a fixed sleep. Every panic message names the stderr of the
//! processes involved, so a failure says what the shim printed.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use std::os::unix::process::ExitStatusExt;

pub mod command;
pub mod dump_point;
pub mod fidelity;
pub mod guest;
pub mod outer;
pub mod procs;
pub mod skip;
pub mod small_disk;
pub mod sshd;

pub use dump_point::check_resumed_after_dump;
pub use procs::{
    children_of, descendants, exe_of, has_exited, kill_all, send_signal, state_of, wait_until,
};
pub use skip::skip;

/// How long any single wait (a line, an image, an exit) may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// How often waits poll.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Debian's python, not the pyenv one on `PATH`.
pub const PYTHON: &str = "/usr/bin/python3";

/// Exit statuses of a failed restore (see the shim's documentation).
pub mod exit {
    pub const CORRUPT: i32 = 65;
    pub const MISSING: i32 = 66;
    pub const VERSION: i32 = 67;
    pub const OTHER_PROGRAM: i32 = 68;
    pub const MAPPED_FILE_CHANGED: i32 = 69;
    pub const CANNOT_RESTORE: i32 = 70;
    pub const FAILED_AFTER_TEARDOWN: i32 = 71;
}

/// The directory of this crate's sources (`tests/`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of `libmigrate.so`; panics with a hint when it has not been built.
/// `MIGRATE_TEST_SHIM` overrides the path (e.g. to test a debug build).
pub fn shim_path() -> PathBuf {
    let path = match std::env::var_os("MIGRATE_TEST_SHIM") {
        Some(p) => PathBuf::from(p),
        None => crate_dir().join("../target/release/libmigrate.so"),
    };
    assert!(
        path.is_file(),
        "{} does not exist: build the shim first (run `make`, or `cargo build --release`)",
        path.display()
    );
    path.canonicalize().expect("canonicalize libmigrate.so")
}

/// Test program 2 (`src/bin/rustprog.rs`) as a [`Program`]. A macro, since
/// Cargo tells only integration tests (not this library) where the binary is.
#[macro_export]
macro_rules! rust_program {
    () => {
        $crate::Program::rust_at(env!("CARGO_BIN_EXE_rustprog"))
    };
}

/// The threaded Rust test program (`src/bin/rustthreads.rs`: `std::thread`,
/// `mpsc`, `Mutex`) as a [`Program`]; see [`rust_program!`].
#[macro_export]
macro_rules! rust_threads_program {
    () => {
        $crate::Program::rust_threads_at(env!("CARGO_BIN_EXE_rustthreads"))
    };
}

/// A program to run: its command line, possibly behind a wrapper such as
/// `setarch` or `setpriv` that execs it (so the pid stays the program's).
///
/// The wrapper runs without the shim: `LD_PRELOAD` and the `MIGRATE_*`
/// settings are handed to the program through `/usr/bin/env` after the
/// wrapper (`setpriv ... env LD_PRELOAD=... ./app`), the order that also
/// keeps a wrapper from being dumpable itself. The other order, the shim
/// and the variables on the wrapper, is [`outer::under`].
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub wrapper: Vec<OsString>,
    pub argv: Vec<OsString>,
}

impl Program {
    fn new(name: &str, argv: Vec<OsString>) -> Program {
        Program {
            name: name.to_string(),
            wrapper: Vec::new(),
            argv,
        }
    }

    /// `exe` named `base`, or with `flag` as its argument and named
    /// `base-flag` if `on`.
    fn flagged(base: &str, exe: &str, flag: &str, on: bool) -> Program {
        let mut argv: Vec<OsString> = vec![exe.into()];
        if on {
            argv.push(flag.into());
            Program::new(&format!("{base}-{flag}"), argv)
        } else {
            Program::new(base, argv)
        }
    }

    /// `exe` running `mode`, with its argument if it takes one, named
    /// `base-mode`.
    fn with_mode(base: &str, exe: &str, mode: &str, arg: Option<&Path>) -> Program {
        let mut argv: Vec<OsString> = vec![exe.into(), mode.into()];
        argv.extend(arg.map(OsString::from));
        Program::new(&format!("{base}-{mode}"), argv)
    }

    /// Test program 1: globals, TLS, brk heap, 256 MiB mmap, deep recursion, vDSO clock.
    pub fn c() -> Program {
        Program::new("cprog", vec![env!("MIGRATE_TEST_CPROG").into()])
    }

    /// A vector register (`ymm15` for `avx`, `zmm16` for `avx512`) live in
    /// every step's sleep, checked after it (see `programs/cvector.c`).
    pub fn vector(mode: &str) -> Program {
        Program::with_mode("cvector", env!("MIGRATE_TEST_CVECTOR"), mode, None)
    }

    /// Test program 4: tight malloc/free/print loop, 6000 steps of ~1 ms.
    pub fn cloop() -> Program {
        Program::new("cloop", vec![env!("MIGRATE_TEST_CLOOP").into()])
    }

    /// `mib` MiB of memory, every page different, then `steps` steps
    /// `pace_ms` ms apart (see `programs/cmem.c`): dumps of any size.
    pub fn mem(mib: u32, steps: u32, pace_ms: u32) -> Program {
        Program::new(
            &format!("cmem-{mib}m-{steps}x{pace_ms}"),
            vec![
                env!("MIGRATE_TEST_CMEM").into(),
                mib.to_string().into(),
                steps.to_string().into(),
                pace_ms.to_string().into(),
            ],
        )
    }

    /// `mib` MiB of anonymous memory, every third page zero, checked by
    /// the program itself, a file and a second thread (see
    /// `programs/cbigheap.c`): the restore modes.
    pub fn big_heap(mib: u32, steps: u32, pace_ms: u32) -> Program {
        Program::new(
            &format!("cbigheap-{mib}m-{steps}x{pace_ms}"),
            vec![
                env!("MIGRATE_TEST_CBIGHEAP").into(),
                mib.to_string().into(),
                steps.to_string().into(),
                pace_ms.to_string().into(),
            ],
        )
    }

    /// `mib` MiB of text (or of random words, `random`) rewritten by
    /// `threads` workers (see `programs/ctext.c`): compressed images.
    pub fn text(mib: u32, threads: u32, random: bool) -> Program {
        let kind = if random { "random" } else { "text" };
        Program::new(
            &format!("ctext-{mib}m-{threads}t-{kind}"),
            vec![
                env!("MIGRATE_TEST_CTEXT").into(),
                mib.to_string().into(),
                threads.to_string().into(),
                kind.into(),
            ],
        )
    }

    /// Forks a child that makes a POSIX timer of its own and checks at
    /// every step that it is still there (see `programs/cforktimer.c`).
    pub fn fork_timer() -> Program {
        Program::new("cforktimer", vec![env!("MIGRATE_TEST_CFORKTIMER").into()])
    }

    /// Creates two POSIX timers and prints their ids and every id the
    /// process has (see `programs/ctimerid.c`).
    pub fn timer_ids() -> Program {
        Program::new("ctimerid", vec![env!("MIGRATE_TEST_CTIMERID").into()])
    }

    /// Test program 2: Rust with a `HashMap` and a `Vec`, at `path` (use
    /// [`rust_program!`], which knows the path in integration tests).
    pub fn rust_at(path: &str) -> Program {
        Program::new("rustprog", vec![path.into()])
    }

    /// Threaded Rust program (std::thread, mpsc, Mutex) at `path` (use
    /// [`rust_threads_program!`]).
    pub fn rust_threads_at(path: &str) -> Program {
        Program::new("rustthreads", vec![path.into()])
    }

    /// `threads` workers taking turns under one mutex and condition variable
    /// (see `programs/cthreads.c`).
    pub fn cthreads(threads: u32) -> Program {
        Program::new(
            &format!("cthreads-{threads}"),
            vec![
                env!("MIGRATE_TEST_CTHREADS").into(),
                threads.to_string().into(),
            ],
        )
    }

    /// A thread holds a recursive and an error-checking mutex across the
    /// paced steps, then gets a `pthread_kill` (see `programs/cmutex.c`);
    /// with `tids`, it also prints whether its TID stayed the same.
    pub fn cmutex(tids: bool) -> Program {
        Program::flagged("cmutex", env!("MIGRATE_TEST_CMUTEX"), "tids", tids)
    }

    /// Short-lived threads created and joined every step (see `programs/cchurn.c`).
    pub fn cchurn() -> Program {
        Program::new("cchurn", vec![env!("MIGRATE_TEST_CCHURN").into()])
    }

    /// A thread named `blocker` blocks SIGUSR2 (see `programs/cblock.c`).
    pub fn cblock() -> Program {
        Program::new("cblock", vec![env!("MIGRATE_TEST_CBLOCK").into()])
    }

    /// Python `threading` worker pool fed through `queue.Queue`.
    pub fn python_threads() -> Program {
        Program::new(
            "pythreads",
            vec![
                PYTHON.into(),
                crate_dir().join("programs/pythreads.py").into(),
            ],
        )
    }

    /// Test program 3: Python with a 200k-entry dict.
    pub fn python() -> Program {
        Program::new(
            "pydict",
            vec![PYTHON.into(), crate_dir().join("programs/pydict.py").into()],
        )
    }

    /// A program that dlopens `lib` and maps `data` (see `programs/dlprog.c`).
    pub fn dlprog(lib: &Path, data: &Path) -> Program {
        Program::new(
            "dlprog",
            vec![env!("MIGRATE_TEST_DLPROG").into(), lib.into(), data.into()],
        )
    }

    /// Any command line, run as is (e.g. a system tool such as Python's
    /// `http.server`); `name` names it in messages.
    pub fn command_of(name: &str, argv: &[&OsStr]) -> Program {
        Program::new(name, argv.iter().map(|a| a.to_os_string()).collect())
    }

    /// Copies `input` line by line through stdio to `flushed` (fflush'd
    /// every line) and `buffered` (never flushed), and in chunks through raw
    /// fds to `raw` (see `programs/cfilecopy.c`).
    pub fn filecopy(input: &Path, flushed: &Path, buffered: &Path, raw: &Path) -> Program {
        Program::new(
            "cfilecopy",
            vec![
                env!("MIGRATE_TEST_CFILECOPY").into(),
                input.into(),
                flushed.into(),
                buffered.into(),
                raw.into(),
            ],
        )
    }

    /// Records queued in a pipe, an epoll set and a timerfd (see `programs/cpipeq.c`).
    pub fn pipe_queue() -> Program {
        Program::new("cpipeq", vec![env!("MIGRATE_TEST_CPIPEQ").into()])
    }

    /// Reads `input` after unlinking it, copying it to the unlinked
    /// `scratch` (see `programs/cunlinked.c`).
    pub fn unlinked(input: &Path, scratch: &Path) -> Program {
        Program::new(
            "cunlinked",
            vec![
                env!("MIGRATE_TEST_CUNLINKED").into(),
                input.into(),
                scratch.into(),
            ],
        )
    }

    /// Installs its own SIGUSR2 handler and blocks SIGUSR2 in both its
    /// threads (see `programs/csigown.c`).
    pub fn sigown() -> Program {
        Program::new("csigown", vec![env!("MIGRATE_TEST_CSIGOWN").into()])
    }

    /// Connects to 127.0.0.1:`port`, exchanges a line, then idles watching
    /// for the peer to go (see `programs/cpeer.c`).
    pub fn peer_tcp(port: u16) -> Program {
        Program::new(
            "cpeer-tcp",
            vec![
                env!("MIGRATE_TEST_CPEER").into(),
                "tcp".into(),
                port.to_string().into(),
            ],
        )
    }

    /// Reads a line from fd 5 and answers on fd 6 (pipes from the parent:
    /// spawn it with [`TestDir::spawn_with_fds`]), then idles watching for
    /// the peer to go (see `programs/cpeer.c`).
    pub fn peer_pipe() -> Program {
        Program::new(
            "cpeer-pipe",
            vec![env!("MIGRATE_TEST_CPEER").into(), "pipe".into()],
        )
    }

    /// Holds an io_uring fd (see `programs/curing.c`).
    pub fn io_uring() -> Program {
        Program::new("curing", vec![env!("MIGRATE_TEST_CURING").into()])
    }

    /// One kind of descriptor per `mode`, with its argument if it takes one
    /// (see `programs/cfdkinds.c`).
    pub fn fd_kinds(mode: &str, arg: Option<&Path>) -> Program {
        Program::with_mode("cfdkinds", env!("MIGRATE_TEST_CFDKINDS"), mode, arg)
    }

    /// Signals and file locks the kernel holds, one kind per `mode`, with
    /// its argument if it takes one (see `programs/csignals.c`).
    pub fn signals(mode: &str, arg: Option<&Path>) -> Program {
        Program::with_mode("csignals", env!("MIGRATE_TEST_CSIGNALS"), mode, arg)
    }

    /// inotify instances and their watches, in `dir` (see
    /// `programs/cinotify.c`).
    pub fn inotify(mode: &str, arg: Option<&Path>) -> Program {
        Program::with_mode("cinotify", env!("MIGRATE_TEST_CINOTIFY"), mode, arg)
    }

    /// Two threads with rseq areas of the program's own, registered with
    /// `syscall(SYS_rseq)` (see `programs/crseq.c`).
    pub fn rseq() -> Program {
        Program::new("crseq", vec![env!("MIGRATE_TEST_CRSEQ").into()])
    }

    /// As [`Program::rseq`], the areas registered by a raw `syscall`
    /// instruction, which the library cannot see.
    pub fn rseq_raw() -> Program {
        Program::with_mode("crseq", env!("MIGRATE_TEST_CRSEQ"), "raw", None)
    }

    /// POSIX timers, one kind per `mode` (see `programs/ctimers.c`).
    pub fn timers(mode: &str) -> Program {
        Program::with_mode("ctimers", env!("MIGRATE_TEST_CTIMERS"), mode, None)
    }

    /// Files a restore makes again exactly, one kind per `mode`, in `dir`
    /// (see `programs/cfileattrs.c`).
    pub fn file_attrs(mode: &str, dir: Option<&Path>) -> Program {
        Program::with_mode("cfileattrs", env!("MIGRATE_TEST_CFILEATTRS"), mode, dir)
    }

    /// Unnamed files too large for the metadata, one `mode` per kind
    /// (see `programs/cbigfiles.c`).
    pub fn big_files(mode: &str, dir: Option<&Path>) -> Program {
        Program::with_mode("cbigfiles", env!("MIGRATE_TEST_CBIGFILES"), mode, dir)
    }

    /// cwd, umask, rlimits, signal dispositions and mask, an interval timer;
    /// it changes into `dir` (see `programs/cprocstate.c`).
    pub fn proc_state(dir: &Path) -> Program {
        Program::new(
            "cprocstate",
            vec![env!("MIGRATE_TEST_CPROCSTATE").into(), dir.into()],
        )
    }

    /// prctl state, oom_score_adj, per-mapping state, one group per `mode`
    /// (see `programs/cprocattrs.c`).
    pub fn proc_attrs(mode: &str) -> Program {
        Program::with_mode("cprocattrs", env!("MIGRATE_TEST_CPROCATTRS"), mode, None)
    }

    /// A worker thread on a 32 KiB stack does the steps; with `raise`, it
    /// raises the dump signal itself at step 10 (see `programs/csmallstack.c`;
    /// run that only under the shim).
    pub fn small_stack(raise: bool) -> Program {
        Program::flagged(
            "csmallstack",
            env!("MIGRATE_TEST_CSMALLSTACK"),
            "raise",
            raise,
        )
    }

    /// A thread forks short-lived children in a loop (see `programs/cforker.c`).
    pub fn forker() -> Program {
        Program::new("cforker", vec![env!("MIGRATE_TEST_CFORKER").into()])
    }

    /// Every signal blocked, waited for with `sigtimedwait` and a signalfd
    /// of the full set (see `programs/csigwait.c`).
    pub fn sigwait() -> Program {
        Program::new("csigwait", vec![env!("MIGRATE_TEST_CSIGWAIT").into()])
    }

    /// An epoll loop watching stdin, paced by a timerfd (see
    /// `programs/cstdinpoll.c`).
    pub fn stdin_poll() -> Program {
        Program::new("cstdinpoll", vec![env!("MIGRATE_TEST_CSTDINPOLL").into()])
    }

    /// One descriptor case per `mode` found in review, with its argument if
    /// it takes one (see `programs/cfdregress.c`).
    pub fn fd_regress(mode: &str, arg: Option<&Path>) -> Program {
        Program::with_mode("cfdregress", env!("MIGRATE_TEST_CFDREGRESS"), mode, arg)
    }

    /// One defect of issue 7 per `mode`, with its argument if it takes one
    /// (see `programs/cdefects.c`).
    pub fn defects(mode: &str, arg: Option<&Path>) -> Program {
        Program::with_mode("cdefects", env!("MIGRATE_TEST_CDEFECTS"), mode, arg)
    }

    /// One child, `live`, a `zombie`, `stopped`, or `static` (running the
    /// statically linked `programs/cstatic.c`), while the parent steps (see
    /// `programs/cchildren.c`).
    pub fn children(mode: &str) -> Program {
        let exe = (mode == "static").then(|| Path::new(env!("MIGRATE_TEST_CSTATIC")));
        Program::with_mode("cchildren", env!("MIGRATE_TEST_CCHILDREN"), mode, exe)
    }

    /// `cchildren static` with its child running `exe` instead of
    /// `cstatic` (with the pipe as its stdin).
    pub fn children_running(exe: &'static Path) -> Program {
        Program::with_mode(
            "cchildren",
            env!("MIGRATE_TEST_CCHILDREN"),
            "static",
            Some(exe),
        )
    }

    /// A tree of `groups` (a child leading its group, another its
    /// session) or `watch` (a child the parent watches every step), see
    /// `programs/ctree.c`.
    pub fn tree(mode: &str) -> Program {
        Program::with_mode("ctree", env!("MIGRATE_TEST_CTREE"), mode, None)
    }

    /// `O_PATH` and procfs descriptors a parent and its child share, per
    /// `mode` (see `programs/ctreefds.c`).
    pub fn tree_fds(mode: &str) -> Program {
        Program::with_mode("ctreefds", env!("MIGRATE_TEST_CTREEFDS"), mode, None)
    }

    /// A parent and a child sharing memory, semaphores, socket pairs or
    /// open files, per `mode` (see `programs/cshared.c`); `append` writes
    /// its files in directory `dir`.
    pub fn shared(mode: &str, dir: Option<&Path>) -> Program {
        Program::with_mode("cshared", env!("MIGRATE_TEST_CSHARED"), mode, dir)
    }

    /// Python's `multiprocessing` (fork): a parent and a child taking
    /// turns through `Semaphore`s and counting in a `Value` under a `Lock`
    /// (see `programs/pyshared.py`).
    pub fn python_shared() -> Program {
        Program::new(
            "pyshared",
            vec![
                PYTHON.into(),
                crate_dir().join("programs/pyshared.py").into(),
            ],
        )
    }

    /// Zombie and stopped children (`states`), or `signals N`: N children
    /// counting the SIGTERMs they get (see `programs/cmembers.c`).
    pub fn members(mode: &str, n: Option<u32>) -> Program {
        let mut argv: Vec<OsString> = vec![env!("MIGRATE_TEST_CMEMBERS").into(), mode.into()];
        let mut name = format!("cmembers-{mode}");
        if let Some(n) = n {
            argv.push(n.to_string().into());
            name.push_str(&format!("-{n}"));
        }
        Program::new(&name, argv)
    }

    /// A parent whose child execs another test program, `cexecee`, and
    /// steps with it in turn (see `programs/cexec.c`).
    pub fn exec_child() -> Program {
        Program::new(
            "cexec",
            vec![
                env!("MIGRATE_TEST_CEXEC").into(),
                env!("MIGRATE_TEST_CEXECEE").into(),
            ],
        )
    }

    /// `/bin/bash` running `programs/bashtree.sh`: children forked every
    /// step (`date` in a command substitution, `sleep`) and a long-lived
    /// one fed through process substitution.
    pub fn bash_tree() -> Program {
        Program::new(
            "bashtree",
            vec![
                "/bin/bash".into(),
                crate_dir().join("programs/bashtree.sh").into(),
            ],
        )
    }

    /// `programs/cjobctl.c`: a small job-control shell to put in front of
    /// a program (see [`Program::wrapped`]) whose stdin is a terminal.
    pub fn jobctl_path() -> &'static str {
        env!("MIGRATE_TEST_CJOBCTL")
    }

    /// The same program run through `wrapper` (a command that execs its arguments).
    pub fn wrapped(&self, wrapper: &[&str]) -> Program {
        let mut p = self.clone();
        p.wrapper = wrapper.iter().map(OsString::from).collect();
        p
    }

    /// The same program with extra arguments (a relaunch's arguments must not matter).
    pub fn with_args(&self, args: &[&str]) -> Program {
        let mut p = self.clone();
        p.argv.extend(args.iter().map(OsString::from));
        p
    }

    /// The command that runs the program with `env` added to the test's
    /// environment (less anything that would change how the shim or the
    /// programs behave).
    fn command(&self, env: &[(OsString, OsString)]) -> Command {
        let (first, rest) = match self.wrapper.split_first() {
            Some((w, rest)) => (w, rest),
            None => (&self.argv[0], &self.argv[1..]),
        };
        let mut cmd = Command::new(first);
        cmd.args(rest);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("MIGRATE_") || k == "LD_PRELOAD" || k.starts_with("PYTHON") {
                cmd.env_remove(&key);
            }
        }
        if self.wrapper.is_empty() {
            cmd.envs(env.iter().cloned());
        } else {
            cmd.arg("/usr/bin/env");
            for (k, v) in env {
                let mut kv = k.clone();
                kv.push("=");
                kv.push(v);
                cmd.arg(kv);
            }
            cmd.args(&self.argv);
        }
        cmd.stdin(Stdio::null());
        // Only fds 0, 1 and 2 go to the program: not whatever the test
        // process inherited (cargo's jobserver pipe, ...).
        // SAFETY: the closure runs in the forked child before exec and only
        // makes the close_range(2) system call, which is async-signal-safe
        // and touches no memory. Marking fds close-on-exec (rather than
        // closing them) keeps std's own exec-error pipe working.
        unsafe {
            cmd.pre_exec(|| {
                if libc::close_range(
                    3,
                    libc::c_uint::MAX,
                    libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// The whole command line, wrapper included (for messages).
    pub fn command_line(&self) -> Vec<OsString> {
        self.wrapper.iter().chain(&self.argv).cloned().collect()
    }
}

/// Output of an uninterrupted run of `program` without the shim (paced
/// without sleeps, which changes no output), checked to start with `start`
/// and end with `done`. Cached per program for the test binary.
pub fn reference(program: &Program) -> Vec<String> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<OsString>, Vec<String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = program.command_line();
    if let Some(lines) = cache.lock().unwrap().get(&key) {
        return lines.clone();
    }
    let out = program
        .command(&[("MIGRATE_TEST_NOSLEEP".into(), "1".into())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {key:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reference run of {} failed ({}); stderr:\n{}\nstdout tail:\n{}",
        program.name,
        out.status,
        String::from_utf8_lossy(&out.stderr),
        tail(&stdout, 5)
    );
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(lines.first().map(String::as_str), Some("start"));
    assert!(
        lines.last().is_some_and(|l| l.starts_with("done ")),
        "reference output of {} does not end with done",
        program.name
    );
    cache.lock().unwrap().insert(key, lines.clone());
    lines
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A temporary directory for one test: the cwd of its processes, where
/// images go, and (under `logs/`) the stdout and stderr of every process.
#[derive(Debug)]
pub struct TestDir {
    dir: tempfile::TempDir,
    logs: PathBuf,
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("migrate-{test}-"))
            .tempdir()
            .expect("make temp dir");
        let logs = dir.path().join("logs");
        fs::create_dir(&logs).expect("make logs dir");
        // Restore check images (see `fidelity`), out of the way of tests
        // that list the images in the directory.
        fs::create_dir(dir.path().join("checks")).expect("make checks dir");
        // Everyone may traverse it (an unprivileged test runs programs in it).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        TestDir { dir, logs }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the directory (it is removed when dropped otherwise), for a
    /// look at the logs and images of a failure; returns its path.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// `path()/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes `path()/name` (and any missing parent) and returns it.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.join(name);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// Gives the directory to `uid`/`gid` (for tests that run unprivileged).
    pub fn chown(&self, uid: u32, gid: u32) {
        let checks = self.dir.path().join("checks");
        for p in [self.dir.path(), self.logs.as_path(), checks.as_path()] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        }
    }

    /// Starts `program` under the shim with `env` added, in this directory.
    /// `label` names the process in messages and its log files.
    pub fn spawn(&self, program: &Program, label: &str, env: &[(&str, &str)]) -> Proc {
        self.spawn_with(program, label, env, true, &[], None)
    }

    /// As [`TestDir::spawn`], with `stdin` as the program's fd 0 (instead
    /// of `/dev/null`).
    pub fn spawn_with_stdin(
        &self,
        program: &Program,
        label: &str,
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> Proc {
        self.spawn_with(program, label, env, true, &[], Some(stdin))
    }

    /// As [`TestDir::spawn`], and the program also gets descriptors of the
    /// test process: each `(from, to)` puts a duplicate of the test's fd
    /// `from` at fd `to` in the program (not close-on-exec).
    pub fn spawn_with_fds(
        &self,
        program: &Program,
        label: &str,
        env: &[(&str, &str)],
        fds: &[(RawFd, RawFd)],
    ) -> Proc {
        self.spawn_with(program, label, env, true, fds, None)
    }

    /// Starts `program` without the shim.
    pub fn spawn_plain(&self, program: &Program, label: &str, env: &[(&str, &str)]) -> Proc {
        self.spawn_with(program, label, env, false, &[], None)
    }

    /// Relaunches `program` under the shim with `MIGRATE_RESTORE=image`.
    pub fn restore(
        &self,
        program: &Program,
        label: &str,
        image: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        let image = image.to_str().expect("utf-8 image path");
        let mut all = vec![("MIGRATE_RESTORE", image)];
        all.extend_from_slice(env);
        self.spawn_with(program, label, &all, true, &[], None)
    }

    /// As [`TestDir::restore`], with `stdin` as the relaunch's fd 0 (which
    /// becomes the restored process's).
    pub fn restore_with_stdin(
        &self,
        program: &Program,
        label: &str,
        image: &Path,
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> Proc {
        let image = image.to_str().expect("utf-8 image path");
        let mut all = vec![("MIGRATE_RESTORE", image)];
        all.extend_from_slice(env);
        self.spawn_with(program, label, &all, true, &[], Some(stdin))
    }

    fn spawn_with(
        &self,
        program: &Program,
        label: &str,
        env: &[(&str, &str)],
        shim: bool,
        fds: &[(RawFd, RawFd)],
        stdin: Option<Stdio>,
    ) -> Proc {
        let stdout = self.logs.join(format!("{label}.out"));
        let stderr = self.logs.join(format!("{label}.err"));
        assert!(!stdout.exists(), "label {label} used twice");
        let mut all: Vec<(OsString, OsString)> = Vec::new();
        if shim {
            all.push(("LD_PRELOAD".into(), shim_path().into()));
        }
        all.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
        // Every restore is checked (see `fidelity`).
        let check = shim
            .then(|| fidelity::wanted(self.path(), label, env))
            .flatten();
        if let Some(check) = &check {
            all.push((fidelity::CHECK_VAR.into(), check.into()));
        }
        let mut cmd = program.command(&all);
        cmd.current_dir(self.path())
            .stdout(File::create(&stdout).expect("create stdout file"))
            .stderr(File::create(&stderr).expect("create stderr file"));
        if !fds.is_empty() {
            pass_fds(&mut cmd, fds);
        }
        if let Some(stdin) = stdin {
            cmd.stdin(stdin);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({:?}): {e}", program.command_line()));
        let mut p = Proc {
            label: label.to_string(),
            child,
            stdout,
            stderr,
            status: None,
            started: Instant::now(),
            dump_lines: Vec::new(),
        };
        if let Some(check) = check {
            fidelity::check_restore(&mut p, &check, env, self.path());
        }
        p
    }
}

/// Most descriptors [`TestDir::spawn_with_fds`] passes at once.
const MAX_PASSED_FDS: usize = 8;

/// Makes `cmd` give the child a duplicate of each `from` at `to`. Runs after
/// the pre-exec hook of [`Program::command`] (which marks every fd from 3 on
/// close-on-exec): each `from` is first copied above every `to` (so that no
/// `to` overwrites a `from` still to be copied), then put in place with
/// dup2, which leaves the new fd open across exec.
fn pass_fds(cmd: &mut Command, fds: &[(RawFd, RawFd)]) {
    assert!(fds.len() <= MAX_PASSED_FDS, "at most {MAX_PASSED_FDS} fds");
    assert!(
        fds.iter().all(|&(_, to)| to > 2),
        "fds 0, 1 and 2 are the harness's"
    );
    let mut pairs = [(-1, -1); MAX_PASSED_FDS];
    pairs[..fds.len()].copy_from_slice(fds);
    let count = fds.len();
    let above = fds.iter().map(|&(_, to)| to).max().unwrap_or(2) + 1;
    // SAFETY: the closure runs in the forked child before exec; it only
    // reads its own captured array (no allocation, no locks) and makes the
    // fcntl(2) and dup2(2) system calls, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let mut copies = [-1; MAX_PASSED_FDS];
            for (copy, &(from, _)) in copies.iter_mut().zip(&pairs[..count]) {
                *copy = libc::fcntl(from, libc::F_DUPFD_CLOEXEC, above);
                if *copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (&copy, &(_, to)) in copies.iter().zip(&pairs[..count]) {
                if libc::dup2(copy, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// A process started by the harness. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Proc {
    pub label: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
    started: Instant,
    /// How many stdout lines were out when each dump signal was sent
    /// ([`Proc::dump_signal`], [`Proc::dump_with`]).
    dump_lines: Vec<usize>,
}

/// The number of a `step N ...` line.
pub fn step_of(line: &str) -> Option<u64> {
    line.strip_prefix("step ")?.split(' ').next()?.parse().ok()
}

impl Proc {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Complete lines the process has written to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let text = fs::read(&self.stdout).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete.lines().map(str::to_string).collect()
    }

    /// Everything written to stdout so far, partial last line included.
    pub fn stdout_raw(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stdout).unwrap_or_default()).into_owned()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// A description for failure messages: status, stderr, end of stdout.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => describe_status(s),
            None => "running".to_string(),
        };
        let stdout = self.stdout_raw();
        let mut s = String::new();
        let _ = write!(
            s,
            "--- {} (pid {}, {status}, {:.1}s) stderr:\n{}\n--- {} stdout ({} lines), last 5:\n{}\n---",
            self.label,
            self.child.id(),
            self.started.elapsed().as_secs_f64(),
            self.stderr().trim_end(),
            self.label,
            stdout.lines().count(),
            tail(&stdout, 5)
        );
        s
    }

    /// The exit status, if the process is known to have exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Whether the process has exited (reaps it if so).
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Polls until `found` finds something in what the process printed;
    /// returns it. Panics (with the process's stderr) on timeout or if the
    /// process exits first; `what` names what was awaited in the messages
    /// ("exited before printing {what}").
    fn poll_output<T>(&mut self, what: &str, mut found: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // Read the status before the output, so that output written
            // just before an exit is seen.
            let exited = self.poll_exit();
            if let Some(v) = found(self) {
                return v;
            }
            assert!(
                exited.is_none(),
                "{} exited before printing {what}\n{}",
                self.label,
                self.describe()
            );
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for {} to print {what}\n{}",
                self.label,
                self.describe()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until a stdout line satisfies `pred`; returns its index.
    /// Panics (with the process's stderr) on timeout or if the process exits first.
    pub fn wait_for_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        self.poll_output(what, |p| p.stdout_lines().iter().position(|l| pred(l)))
    }

    /// Waits until a stderr line satisfies `pred`; returns that line.
    /// Panics on timeout or if the process exits first.
    pub fn wait_for_stderr_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.poll_output(&format!("{what} on stderr"), |p| {
            let stderr = p.stderr();
            let complete = &stderr[..stderr.rfind('\n').map_or(0, |i| i + 1)];
            complete.lines().find(|l| pred(l)).map(str::to_string)
        })
    }

    /// Waits for a `step N ...` line with N >= `step`; returns its index.
    pub fn wait_for_step(&mut self, step: u64) -> usize {
        self.wait_for_line(&format!("a line `step N` with N >= {step}"), |l| {
            step_of(l).is_some_and(|n| n >= step)
        })
    }

    /// Waits until stdout has more than `lines` complete lines.
    pub fn wait_for_lines(&mut self, lines: usize) {
        self.poll_output(&format!("line {}", lines + 1), |p| {
            (p.stdout_lines().len() > lines).then_some(())
        })
    }

    /// Sends `sig` to the process.
    pub fn signal(&mut self, sig: i32) {
        assert!(
            self.poll_exit().is_none(),
            "cannot signal {}: it has exited\n{}",
            self.label,
            self.describe()
        );
        // SAFETY: kill(2) takes plain integers and touches no memory; the pid
        // is our own child, not yet reaped (poll_exit above), so it cannot
        // have been reused by another process.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Sends the default dump signal (SIGUSR2).
    pub fn dump_signal(&mut self) {
        self.dump_with(libc::SIGUSR2);
    }

    /// Sends `sig` as the dump signal (the process's `MIGRATE_SIGNAL`),
    /// noting how many lines it had printed (see [`check_resumed_after_dump`]).
    pub fn dump_with(&mut self, sig: i32) {
        self.dump_lines.push(self.stdout_lines().len());
        self.signal(sig);
    }

    /// Notes a dump asked for some other way than [`Proc::dump_with`]
    /// (`migrate dump`), as that method does.
    pub fn note_dump(&mut self) {
        self.dump_lines.push(self.stdout_lines().len());
    }

    /// How many stdout lines were out when each dump signal was sent.
    pub fn dump_lines(&self) -> &[usize] {
        &self.dump_lines
    }

    /// Waits for `image` to appear (the shim renames it into place when
    /// complete), then checks it with `dumpfmt::verify`. Panics with the
    /// process's stderr if it exits without making it (unless `may_exit`) or
    /// on timeout.
    pub fn wait_for_image(&mut self, image: &Path, may_exit: bool) -> dumpfmt::Summary {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let exited = self.poll_exit();
            if image.exists() {
                break;
            }
            assert!(
                exited.is_none() || may_exit,
                "{} exited without writing {}\n{}",
                self.label,
                image.display(),
                self.describe()
            );
            if let Some(status) = exited {
                // A snapshot's writer may still be writing after the
                // program ended: the image is complete once it is gone.
                crate::procs::wait_for_writers(image.parent().unwrap_or(Path::new("/")));
                if image.exists() {
                    break;
                }
                // It may exit (exit-after-dump) only once the image is in place.
                assert!(
                    image.exists(),
                    "{} exited ({}) but {} is not there\n{}",
                    self.label,
                    describe_status(status),
                    image.display(),
                    self.describe()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {TIMEOUT:?} waiting for {} to write {}\n{}",
                self.label,
                image.display(),
                self.describe()
            );
            std::thread::sleep(POLL);
        }
        verify_image(image, &self.describe())
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().expect("wait"));
        }
    }

    /// Waits for the process to exit; panics (killing it) after `TIMEOUT`.
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_exit(false)
    }

    /// Waits for the process to exit, but kills it as soon as it prints
    /// anything on stdout (for runs that must fail before the program runs).
    pub fn wait_unless_output(&mut self) -> ExitStatus {
        self.wait_exit(true)
    }

    /// [`Proc::wait`], or with `unless_output` [`Proc::wait_unless_output`].
    fn wait_exit(&mut self, unless_output: bool) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.poll_exit() {
                return status;
            }
            if unless_output && !self.stdout_raw().is_empty() {
                self.kill();
                panic!(
                    "{} should have failed before the program ran, but the program printed\n{}",
                    self.label,
                    self.describe()
                );
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "timed out after {TIMEOUT:?} waiting for {} to exit\n{}",
                    self.label,
                    self.describe()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the process to exit with status 0; returns its stdout lines.
    pub fn wait_success(&mut self) -> Vec<String> {
        let status = self.wait();
        assert!(
            status.success(),
            "{} did not exit with status 0\n{}",
            self.label,
            self.describe()
        );
        self.stdout_lines()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// "exit status N" or "killed by signal N (core dumped)".
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig}{}",
            if status.core_dumped() {
                " (core dumped)"
            } else {
                ""
            }
        ),
        _ => format!("{status}"),
    }
}

/// `dumpfmt::verify(image)`, which must succeed; `context` (usually
/// [`Proc::describe`] of the dumping process) goes into the failure message.
/// Of a tree image (every section checked), its root's summary with the
/// whole file's length.
pub fn verify_image(image: &Path, context: &str) -> dumpfmt::Summary {
    if let Ok(dumpfmt::Opened::Tree(_)) = dumpfmt::open_any(image) {
        return match dumpfmt::TreeFile::verify(image) {
            Ok(t) => dumpfmt::Summary {
                file_len: t.file_len,
                ..t.members[0].1.clone()
            },
            Err(e) => panic!(
                "TreeFile::verify({}) failed: {e}\n{context}",
                image.display()
            ),
        };
    }
    match dumpfmt::verify(image) {
        Ok(summary) => summary,
        Err(e) => panic!(
            "dumpfmt::verify({}) failed: {e}\n{context}",
            image.display()
        ),
    }
}

/// The metadata of a (good) image.
/// Of a tree image, its root's section (what its restored root re-dumps
/// in a restore check).
pub fn image_meta(image: &Path) -> dumpfmt::ImageFile {
    match dumpfmt::open_any(image) {
        Ok(dumpfmt::Opened::Single(img)) => img,
        Ok(dumpfmt::Opened::Tree(t)) => t.sections.into_iter().next().expect("a root"),
        Err(e) => panic!("open_any({}): {e}", image.display()),
    }
}

/// Checks that `got` is a contiguous slice of `expected` and returns where it
/// starts. `what` and `context` go into failure messages.
pub fn check_segment(expected: &[String], got: &[String], what: &str, context: &str) -> usize {
    assert!(!got.is_empty(), "{what}: printed nothing\n{context}");
    let Some(k) = expected.iter().position(|l| *l == got[0]) else {
        panic!(
            "{what}: first line {:?} is not in the expected output\n{context}",
            got[0]
        );
    };
    let end = (k + got.len()).min(expected.len());
    if let Some(i) = (k..end).find(|&i| expected[i] != got[i - k]) {
        panic!(
            "{what}: line {} differs from the uninterrupted run:\n  expected: {:?}\n  got:      {:?}\n{context}",
            i - k,
            expected[i],
            got[i - k]
        );
    }
    assert!(
        k + got.len() <= expected.len(),
        "{what}: printed {} lines past the end of the expected output\n{context}",
        k + got.len() - expected.len()
    );
    k
}

/// Checks one dump → kill → restore: the killed `original` printed a prefix
/// of `expected`; the `restored` process printed exactly `expected[k..]` for
/// some k ≥ 1, and the original had printed at least `expected[..k]`.
/// Returns k.
pub fn check_restored(
    expected: &[String],
    original: &[String],
    restored: &[String],
    context: &str,
) -> usize {
    let k0 = check_segment(
        expected,
        original,
        "the original (dumped, then killed)",
        context,
    );
    assert_eq!(k0, 0, "the original did not start at the start\n{context}");
    let k = check_segment(expected, restored, "the restored process", context);
    assert!(
        k + restored.len() == expected.len(),
        "the restored process stopped after line {} of {} of the expected output\n{context}",
        k + restored.len(),
        expected.len()
    );
    assert!(
        k >= 1,
        "the restored process started over from the first line\n{context}"
    );
    assert!(
        original.len() >= k,
        "the restored process resumed at line {k}, but the original had only printed {} lines\n{context}",
        original.len()
    );
    k
}

/// `describe()` of several processes, for failure messages.
pub fn describe_all(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| p.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pipe as (read end, write end), both close-on-exec.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array it is given, which is
    // two ints long.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by pipe2 and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// `len` deterministic bytes (xorshift from `seed`).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Deterministic text: `lines` numbered lines of 10 to 110 bytes.
pub fn numbered_text(lines: usize) -> Vec<u8> {
    let lens = noise(7, lines);
    let mut out = Vec::new();
    for (i, len) in lens.iter().enumerate() {
        let fill = (b'a' + (i % 26) as u8) as char;
        let body: String = std::iter::repeat_n(fill, usize::from(len % 100)).collect();
        out.extend_from_slice(format!("{i:05} {body}\n").as_bytes());
    }
    out
}

/// Where two byte strings first differ, for messages.
pub fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("byte {i} differs (lengths {} and {})", a.len(), b.len()),
        None => format!("lengths {} and {} (one is a prefix)", a.len(), b.len()),
    }
}

/// Rewrites the metadata of the image at `path` with `edit` applied, and
/// frames it again (new metadata length and checksum, header checksum), so
/// that the result is a well-formed image that says something else.
pub fn rewrite_meta(path: &Path, edit: impl FnOnce(&mut dumpfmt::Image<'static>)) {
    rewrite_meta_unchecked(path, edit);
    dumpfmt::verify(path).expect("the rewritten image verifies");
}

/// [`rewrite_meta`], without checking that a reader accepts the result.
pub fn rewrite_meta_unchecked(path: &Path, edit: impl FnOnce(&mut dumpfmt::Image<'static>)) {
    use std::os::unix::fs::FileExt;
    let file = image_meta(path);
    let mut image = file.image.clone();
    edit(&mut image);
    let meta = dumpfmt::encode_meta(&image);
    let mut header = file.header;
    header.meta_len = meta.len() as u64;
    header.meta_crc = crc32fast::hash(&meta);
    header.file_len = header.meta_offset + header.meta_len;
    let mut head = [0u8; 64];
    header.encode(&mut head);
    drop(file);
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(header.meta_offset).unwrap();
    f.write_all_at(&meta, header.meta_offset).unwrap();
    f.write_all_at(&head, 0).unwrap();
}

/// Copies `image` to `dir/name` (mode 0600, as the shim writes it) and returns the copy.
pub fn copy_image(image: &Path, dir: &TestDir, name: &str) -> PathBuf {
    let copy = dir.join(name);
    fs::copy(image, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", image.display()));
    copy
}

/// Flips every bit of the byte at `offset` in `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open image for writing");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset)
        .unwrap_or_else(|e| panic!("read byte {offset} of {}: {e}", path.display()));
    b[0] ^= 0xff;
    f.write_all_at(&b, offset).expect("write byte");
}

/// Builds `programs/libchg.c` with `-DVARIANT=variant` as a shared library at `out`.
pub fn build_libchg(out: &Path, variant: u32) {
    let src = crate_dir().join("programs/libchg.c");
    let tmp = out.with_extension("so.new");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-Wl,--build-id"])
        .arg(format!("-DVARIANT={variant}"))
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("run gcc");
    assert!(status.success(), "gcc failed on {}", src.display());
    // Replace in place of the old one, as an upgrade would.
    fs::rename(&tmp, out).expect("rename library into place");
}

/// Runs `program` under `wrapper` on nothing and tells whether it works here
/// (e.g. `setpriv` may be refused in a container).
pub fn wrapper_works(wrapper: &[&str]) -> Result<(), String> {
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg("/bin/true")
        .output()
        .map_err(|e| format!("{}: {e}", wrapper[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{wrapper:?} /bin/true failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `program` run as nobody (uid and gid 65534, no supplementary groups)
/// through `setpriv`, with `dir` given to nobody. Needs root; panics if
/// `setpriv` does not work here.
pub fn as_nobody(dir: &TestDir, program: &Program) -> Program {
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    if let Err(e) = wrapper_works(&wrapper) {
        panic!("setpriv does not work here: {e}");
    }
    dir.chown(65534, 65534);
    program.wrapped(&wrapper)
}

/// The files in `dir` (not in subdirectories), sorted, as names.
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The threads of a running process: (TID, name from `comm`), by TID.
pub fn threads_of(pid: i32) -> Vec<(i32, String)> {
    let dir = format!("/proc/{pid}/task");
    let mut threads: Vec<(i32, String)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .filter_map(Result::ok)
        .filter_map(|e| {
            let tid: i32 = e.file_name().to_str()?.parse().ok()?;
            // A thread may exit between the listing and the read.
            let comm = fs::read_to_string(e.path().join("comm")).ok()?;
            Some((tid, comm.trim_end().to_string()))
        })
        .collect();
    threads.sort();
    threads
}

/// `/proc/PID/personality` of a running process.
pub fn personality(pid: i32) -> u32 {
    let text = fs::read_to_string(format!("/proc/{pid}/personality")).expect("read personality");
    u32::from_str_radix(text.trim(), 16).expect("parse personality")
}

/// Runs a failing restore of `image` with `program` and checks its failure:
/// exit status `code`, exactly one line on stderr starting `migrate: `, and
/// nothing of the program run (no `start` line on stdout).
pub fn expect_restore_failure(
    dir: &TestDir,
    program: &Program,
    label: &str,
    image: &Path,
    code: i32,
) -> String {
    let mut p = dir.restore(program, label, image, &[]);
    let status = p.wait_unless_output();
    let stderr = p.stderr();
    let stdout = p.stdout_raw();
    let context = format!("restoring {} ({label})\n{}", image.display(), p.describe());
    assert_eq!(
        status.code(),
        Some(code),
        "expected exit status {code}, got {}\n{context}",
        describe_status(status)
    );
    assert!(
        !stdout.lines().any(|l| l == "start"),
        "the program ran (it printed `start`)\n{context}"
    );
    assert!(
        stdout.is_empty(),
        "nothing of the program may run before a restore fails, but it printed to stdout\n{context}"
    );
    assert!(
        stderr.starts_with("migrate: ") && stderr.ends_with('\n') && stderr.lines().count() == 1,
        "stderr must be exactly one line starting with `migrate: `, got {stderr:?}\n{context}"
    );
    eprintln!("{label}: {}", stderr.trim_end());
    stderr
}

/// Starts `program` as `original` under the shim with `MIGRATE_IMAGE=image`,
/// sends the dump signal once it has printed `step N` with N >= `step`,
/// waits for the image (and verifies it), and kills the process. Returns
/// the killed process.
pub fn dump_and_kill(dir: &TestDir, program: &Program, image: &Path, step: u64) -> Proc {
    let mut p = dir.spawn(
        program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    p.wait_for_step(step);
    p.dump_signal();
    p.wait_for_image(image, false);
    p.kill();
    p
}

/// Starts `program` as `label` under the shim with `MIGRATE_AFTER_DUMP=exit`
/// and `MIGRATE_IMAGE=image`, sends SIGUSR2 once it has printed `step N`
/// with N >= `step`, waits for the image (and verifies it) and for the
/// process to exit with status 0 right after it. Returns the exited process.
pub fn dump_then_exit(
    dir: &TestDir,
    program: &Program,
    label: &str,
    image: &Path,
    step: u64,
) -> Proc {
    let mut p = dir.spawn(
        program,
        label,
        &[
            ("MIGRATE_AFTER_DUMP", "exit"),
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ],
    );
    p.wait_for_step(step);
    p.dump_signal();
    p.wait_for_image(image, true);
    let status = p.wait();
    assert!(status.success(), "dump with exit failed\n{}", p.describe());
    p
}

/// Waits for `restored` (a restore of an image of `original`) to exit with
/// status 0 and checks its output with [`check_restored`] against
/// `expected` and what `original` printed. Returns where in `expected` the
/// restored process resumed.
pub fn finish_restored(restored: &mut Proc, original: &Proc, expected: &[String]) -> usize {
    let status = restored.wait();
    let context = describe_all(&[original, restored]);
    assert!(
        status.success(),
        "{} did not exit with status 0 ({})\n{context}",
        restored.label,
        describe_status(status)
    );
    let k = check_restored(
        expected,
        &original.stdout_lines(),
        &restored.stdout_lines(),
        &context,
    );
    check_resumed_after_dump(original, restored, &context);
    k
}

/// Restores `image` (of `original`) with `program` as `label`, then
/// [`finish_restored`]. Returns the restored process.
pub fn restore_and_check(
    dir: &TestDir,
    program: &Program,
    label: &str,
    image: &Path,
    original: &Proc,
    expected: &[String],
) -> Proc {
    let mut restored = dir.restore(program, label, image, &[]);
    finish_restored(&mut restored, original, expected);
    restored
}

/// What [`dump_kill_restore`] did.
#[derive(Debug)]
pub struct DumpRestore {
    /// The dumped, then killed, process.
    pub original: Proc,
    /// The restored process, exited with status 0.
    pub restored: Proc,
    pub image: PathBuf,
    pub summary: dumpfmt::Summary,
    /// Index in the expected output of the restored process's first line.
    pub k: usize,
}

/// The common scenario: start `program` under the shim with `env`, wait for
/// `step N` with N >= `step`, send SIGUSR2, wait for the image (at
/// `MIGRATE_IMAGE` if `env` sets it, else the default `migrate-PID.img` in
/// the cwd) and verify it, SIGKILL the process, restore the image with the
/// same program (and `restore_env`), wait for it to finish, and check the
/// output against an uninterrupted run.
pub fn dump_kill_restore(
    dir: &TestDir,
    program: &Program,
    step: u64,
    env: &[(&str, &str)],
    restore_env: &[(&str, &str)],
) -> DumpRestore {
    let expected = reference(program);
    dump_kill_restore_with(
        dir,
        program,
        &DumpPlan {
            expected: &expected,
            step,
            env,
            restore_env,
            lines_after: 0,
        },
    )
}

/// How [`dump_kill_restore_with`] runs the scenario.
#[derive(Debug, Clone, Copy)]
pub struct DumpPlan<'a> {
    /// The output of an uninterrupted run (say, [`reference`] of the same
    /// program with its own input files).
    pub expected: &'a [String],
    /// Dump once the program has printed `step N` with N >= `step`.
    pub step: u64,
    /// Environment of the dumped run.
    pub env: &'a [(&'a str, &'a str)],
    /// Environment of the restore.
    pub restore_env: &'a [(&'a str, &'a str)],
    /// Lines the dumped process must print after its image is complete
    /// before it is killed (it goes on after a dump; what it does then, to
    /// files or pipes, must not change what the restored process does).
    pub lines_after: usize,
}

/// [`dump_kill_restore`] with the expected output and the number of lines
/// the dumped process prints after the dump given in `plan`.
pub fn dump_kill_restore_with(dir: &TestDir, program: &Program, plan: &DumpPlan) -> DumpRestore {
    let mut original = dir.spawn(program, "original", plan.env);
    let image = match plan.env.iter().find(|(k, _)| *k == "MIGRATE_IMAGE") {
        Some((_, v)) => dir.path().join(v),
        None => dir.join(&format!("migrate-{}.img", original.pid())),
    };
    original.wait_for_step(plan.step);
    original.dump_signal();
    let summary = original.wait_for_image(&image, false);
    if plan.lines_after > 0 {
        let at_image = original.stdout_lines().len();
        original.wait_for_lines(at_image + plan.lines_after - 1);
    }
    original.kill();
    let mut restored = dir.restore(program, "restored", &image, plan.restore_env);
    let k = finish_restored(&mut restored, &original, plan.expected);
    DumpRestore {
        original,
        restored,
        image,
        summary,
        k,
    }
}

/// The usual scenario for a program with files: in a new [`TestDir`] for
/// `test`, `prepare` gets `work/` and `ref/` ready alike and `make` builds
/// the program for either; the reference run is in `ref/`, the dumped run
/// in `work/` with `MIGRATE_IMAGE=DIR/TEST.img`, dumped at `step` and
/// killed 3 lines after its image is complete, then restored
/// ([`dump_kill_restore_with`]). Returns the directory, `work/`, and what
/// was done.
pub fn work_dir_roundtrip(
    test: &str,
    step: u64,
    prepare: impl Fn(&Path),
    make: impl Fn(&Path) -> Program,
) -> (TestDir, PathBuf, DumpRestore) {
    let dir = TestDir::new(test);
    let work = dir.subdir("work");
    let refdir = dir.subdir("ref");
    prepare(&work);
    prepare(&refdir);
    let expected = reference(&make(&refdir));
    let image = dir.join(&format!("{test}.img"));
    let r = dump_kill_restore_with(
        &dir,
        &make(&work),
        &DumpPlan {
            expected: &expected,
            step,
            env: &[("MIGRATE_IMAGE", image.to_str().unwrap())],
            restore_env: &[],
            lines_after: 3,
        },
    );
    (dir, work, r)
}

/// [`work_dir_roundtrip`] of a program that runs one `mode` (as
/// [`Program::fd_kinds`] and [`Program::fd_regress`]) with no argument or
/// with `work/ARG` (`ref/ARG` for the reference run); the restored process
/// must print nothing on stderr.
pub fn mode_roundtrip(
    test: &str,
    program: impl Fn(&str, Option<&Path>) -> Program,
    mode: &str,
    arg: Option<&str>,
    step: u64,
) -> (TestDir, PathBuf, DumpRestore) {
    let (dir, work, r) = work_dir_roundtrip(
        test,
        step,
        |_| {},
        |d| program(mode, arg.map(|a| d.join(a)).as_deref()),
    );
    assert_eq!(
        r.restored.stderr(),
        "",
        "the restored process printed on stderr\n{}",
        describe_all(&[&r.original, &r.restored])
    );
    (dir, work, r)
}

/// Starts `program` as `original` under the shim with
/// `MIGRATE_IMAGE=DIR/img-%n.img`: its n-th dump goes to
/// [`numbered_image`]`(dir, n)`.
pub fn spawn_numbered(dir: &TestDir, program: &Program) -> Proc {
    let pattern = dir.join("img-%n.img");
    dir.spawn(
        program,
        "original",
        &[("MIGRATE_IMAGE", pattern.to_str().unwrap())],
    )
}

/// Where the n-th dump of a process from [`spawn_numbered`] goes.
pub fn numbered_image(dir: &TestDir, n: u64) -> PathBuf {
    dir.join(&format!("img-{n}.img"))
}

/// Dumps `p` (from [`spawn_numbered`]) `dumps` times in a row: each time
/// sends the dump signal, waits for image n (and verifies it), then for a
/// line printed after it (the process goes on and does not hang) and checks
/// that the process has not exited. `expected` is the program's whole
/// output: it must not have finished before a dump. Returns, for each dump,
/// how many lines were out before the signal and once its image was there.
pub fn dump_repeatedly(
    dir: &TestDir,
    p: &mut Proc,
    expected: &[String],
    dumps: u64,
) -> Vec<(usize, usize)> {
    let mut windows = Vec::new();
    for n in 1..=dumps {
        let before = p.stdout_lines().len();
        assert!(
            before + 1 < expected.len(),
            "the program finished its {} lines before dump {n} of {dumps}: dumps are too slow\n{}",
            expected.len(),
            p.describe()
        );
        p.dump_signal();
        p.wait_for_image(&numbered_image(dir, n), false);
        let at_image = p.stdout_lines().len();
        windows.push((before, at_image));
        // It goes on after the dump (and does not hang): a new line comes.
        p.wait_for_lines(at_image);
        assert!(
            p.poll_exit().is_none(),
            "the process exited after dump {n}\n{}",
            p.describe()
        );
    }
    windows
}

/// Checks that the images of `dumps` dumps of `p` ([`dump_repeatedly`])
/// are all `dir` holds: `img-1.img` to `img-{dumps}.img`, each verified
/// again (now that no dump is running) and with `n` as its sequence.
/// Returns their paths, in order.
pub fn check_numbered_images(dir: &TestDir, dumps: u64, p: &Proc) -> Vec<PathBuf> {
    let images = list_files(dir.path());
    assert_eq!(
        images.len() as u64,
        dumps,
        "expected img-1.img..img-{dumps}.img only, found {images:?}\n{}",
        p.describe()
    );
    let paths: Vec<PathBuf> = (1..=dumps).map(|n| numbered_image(dir, n)).collect();
    for (n, img) in (1..=dumps).zip(&paths) {
        verify_image(img, &p.describe());
        assert_eq!(
            image_meta(img).image.sequence,
            n,
            "%n of img-{n}.img and its sequence differ\n{}",
            p.describe()
        );
    }
    paths
}

/// A chain of restores: `program` starts as stage 0; stage i is dumped
/// once it has printed `step N` with N >= `targets[i]` (to
/// `stage-{i+1}.img`: every relaunch's `MIGRATE_IMAGE` overrides the
/// restored setting with the next name), killed, and restored as stage
/// i+1; the last stage runs to its end. Image i's sequence must be i (it
/// counts the dumps of its ancestors) and, with `threads`, the image must
/// hold that many threads. Each stage's output must be a piece of the
/// uninterrupted run's that resumes within what the previous stage printed,
/// the last must finish it, and it must not dump again without a signal.
pub fn chain_of_restores(
    dir: &TestDir,
    program: &Program,
    targets: &[u64],
    threads: Option<usize>,
) {
    let expected = reference(program);
    let image = |i: usize| dir.join(&format!("stage-{i}.img"));

    let first = image(1);
    let mut procs = vec![dir.spawn(
        program,
        "stage-0",
        &[("MIGRATE_IMAGE", first.to_str().unwrap())],
    )];
    for (i, &step) in targets.iter().enumerate() {
        let stage = i + 1;
        let img = image(stage);
        let current = procs.last_mut().unwrap();
        current.wait_for_step(step);
        current.dump_signal();
        let summary = current.wait_for_image(&img, false);
        current.kill();
        if let Some(threads) = threads {
            assert_eq!(
                summary.threads,
                threads,
                "threads in image {stage}\n{}",
                current.describe()
            );
        }
        assert_eq!(
            image_meta(&img).image.sequence,
            stage as u64,
            "image {stage}'s sequence should count the dumps of its ancestors\n{}",
            current.describe()
        );
        let next = image(stage + 1);
        procs.push(dir.restore(
            program,
            &format!("stage-{stage}"),
            &img,
            &[("MIGRATE_IMAGE", next.to_str().unwrap())],
        ));
    }
    procs.last_mut().unwrap().wait();
    let all: Vec<&Proc> = procs.iter().collect();
    let context = describe_all(&all);
    let status = procs.last().unwrap().exit_status().expect("exited");
    assert!(
        status.success(),
        "the last restored process failed ({})\n{context}",
        describe_status(status)
    );
    let mut prev: Option<(usize, usize)> = None;
    for (i, p) in procs.iter().enumerate() {
        let out = p.stdout_lines();
        let what = format!("stage {i} ({})", p.label);
        let k = check_segment(&expected, &out, &what, &context);
        match prev {
            None => assert_eq!(k, 0, "{what} did not start at the start\n{context}"),
            Some((pk, plen)) => assert!(
                k > pk && k <= pk + plen,
                "{what} resumed at line {k}, but the previous stage printed lines {pk}..{}\n{context}",
                pk + plen
            ),
        }
        prev = Some((k, out.len()));
    }
    let (k, len) = prev.unwrap();
    assert_eq!(
        k + len,
        expected.len(),
        "the last stage did not finish the output\n{context}"
    );
    assert!(
        !image(targets.len() + 1).exists(),
        "the last stage dumped without a signal\n{context}"
    );
}

/// Whether `text` names descriptor `fd` as `fd N` (not `fd N0`, ...).
pub fn names_fd(text: &str, fd: i32) -> bool {
    let needle = format!("fd {fd}");
    text.match_indices(&needle).any(|(i, _)| {
        !text[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit())
            && (i == 0 || !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric()))
    })
}

/// The line a failed dump prints on stderr starts with this.
pub const DUMP_FAILED: &str = "migrate: dump failed, the process goes on:";

/// Waits for `p` (dumped towards `image`) to report a failed dump; checks
/// that the report is one line starting [`DUMP_FAILED`] that names one of
/// `fds` (unless `fds` is empty: a failure about no descriptor) and
/// contains each of `words`; then [`expect_went_on_after_failed_dump`].
/// Returns the line.
pub fn expect_dump_failure(
    p: &mut Proc,
    image: &Path,
    fds: &[i32],
    words: &[&str],
    expected: &[String],
) -> String {
    let line = p.wait_for_stderr_line(&format!("`{DUMP_FAILED}`"), |l| {
        l.starts_with("migrate: dump failed")
    });
    eprintln!("{}: {line}", p.label);
    assert!(
        line.starts_with(DUMP_FAILED),
        "the failure line does not start with {DUMP_FAILED:?}: {line:?}\n{}",
        p.describe()
    );
    assert!(
        fds.is_empty() || fds.iter().any(|&fd| names_fd(&line, fd)),
        "the failure line names none of the fds {fds:?}: {line:?}\n{}",
        p.describe()
    );
    for w in words {
        assert!(
            line.contains(w),
            "the failure line does not say {w:?}: {line:?}\n{}",
            p.describe()
        );
    }
    expect_went_on_after_failed_dump(p, image, expected);
    line
}

/// After a failed dump of `p` (towards `image`): checks that the process
/// goes on and exits with status 0 having printed `expected` (its whole
/// output, as an uninterrupted run), that stderr holds the one failure line
/// only, and that neither the image nor its temporary file exists.
pub fn expect_went_on_after_failed_dump(p: &mut Proc, image: &Path, expected: &[String]) {
    let out = p.wait_success();
    assert_eq!(
        out,
        expected,
        "after the failed dump the program printed something else than an uninterrupted run\n{}",
        p.describe()
    );
    let stderr = p.stderr();
    assert_eq!(
        stderr.lines().count(),
        1,
        "stderr must be the one failure line\n{}",
        p.describe()
    );
    let temps = temp_files_of(image);
    assert!(
        !image.exists() && temps.is_empty(),
        "a failed dump left {} or a temporary file ({temps:?})\n{}",
        image.display(),
        p.describe()
    );
}

/// Temporary files of dumps to `image` in its directory: the names
/// `<image>.<anything>.tmp` (and `<image>.tmp`), sorted.
pub fn temp_files_of(image: &Path) -> Vec<PathBuf> {
    let dir = image.parent().expect("image has a directory");
    let name = image
        .file_name()
        .expect("image has a name")
        .to_string_lossy();
    let prefix = format!("{name}.");
    let mut temps: Vec<PathBuf> = list_files(dir)
        .into_iter()
        .filter(|f| f.starts_with(&prefix) && f.ends_with(".tmp"))
        .map(|f| dir.join(f))
        .collect();
    temps.sort();
    temps
}

/// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's
/// ephemeral range (32768 and up): a server restored on it must find it
/// free again, and any test's outgoing connection could take a port of
/// that range in between (seen under parallel load).
pub fn free_tcp_port() -> u16 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = now ^ u64::from(std::process::id()) << 32 ^ calls;
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 10_000 + (x % 20_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port in 10000-29999");
}

/// `GET path HTTP/1.0` from 127.0.0.1:`port`: the status line and the body.
/// Connecting is retried until `deadline` (a server being restored may not
/// listen yet); reading has a 10 s timeout.
pub fn http_get(port: u16, path: &str, deadline: Instant) -> Result<(String, Vec<u8>), String> {
    use std::io::{Read, Write};
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("connect to 127.0.0.1:{port}: {e}")),
        }
    };
    let io = |e: std::io::Error| format!("HTTP exchange with 127.0.0.1:{port}: {e}");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(io)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(io)?;
    let Some(split) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "no end of headers in the reply: {:?}",
            String::from_utf8_lossy(&reply)
        ));
    };
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, reply[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn expected() -> Vec<String> {
        lines(&["start", "step 1 a", "step 2 b", "step 3 c", "done x"])
    }

    fn panics(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
        std::panic::catch_unwind(f).is_err()
    }

    #[test]
    fn fd_names() {
        assert!(names_fd(
            "migrate: dump failed, the process goes on: fd 3 (x)",
            3
        ));
        assert!(names_fd("fd 12", 12));
        assert!(!names_fd("fd 31 (x)", 3));
        assert!(!names_fd("fd 3", 31));
        assert!(!names_fd("pfd 3", 3));
    }

    #[test]
    fn step_numbers() {
        assert_eq!(step_of("step 17 sum=3"), Some(17));
        assert_eq!(step_of("step 4"), Some(4));
        assert_eq!(step_of("start"), None);
        assert_eq!(step_of("stepping 3"), None);
    }

    #[test]
    fn segments() {
        let e = expected();
        assert_eq!(
            check_segment(&e, &lines(&["step 2 b", "step 3 c"]), "", ""),
            2
        );
        assert!(panics(|| {
            check_segment(&expected(), &lines(&["step 2 b", "step 3 X"]), "", "");
        }));
        assert!(panics(|| {
            check_segment(&expected(), &lines(&["nope"]), "", "");
        }));
        assert!(panics(|| {
            check_segment(&expected(), &[], "", "");
        }));
    }

    #[test]
    fn restored_is_the_tail() {
        let e = expected();
        let original = lines(&["start", "step 1 a", "step 2 b"]);
        let restored = lines(&["step 2 b", "step 3 c", "done x"]);
        assert_eq!(check_restored(&e, &original, &restored, ""), 2);
        // Started over.
        assert!(panics(|| {
            check_restored(&expected(), &lines(&["start"]), &expected(), "");
        }));
        // Did not finish.
        assert!(panics(|| {
            check_restored(
                &expected(),
                &lines(&["start", "step 1 a"]),
                &lines(&["step 1 a", "step 2 b"]),
                "",
            );
        }));
        // Resumed past where the original had got to.
        assert!(panics(|| {
            check_restored(
                &expected(),
                &lines(&["start"]),
                &lines(&["step 3 c", "done x"]),
                "",
            );
        }));
        // A line missing in the middle.
        assert!(panics(|| {
            check_restored(
                &expected(),
                &lines(&["start", "step 1 a"]),
                &lines(&["step 1 a", "step 3 c", "done x"]),
                "",
            );
        }));
    }
}
