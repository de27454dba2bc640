//! Status files and dump requests: how `migrate dump` and `migrate ps`
//! learn what a process running under the shim is doing, and how
//! `migrate dump` asks it for one particular dump.
//!
//! # Rules
//!
//! Called from the constructor, from the dump path inside the signal
//! handler, and from the restored process as it resumes (after teardown,
//! on a thread stack that may be 16 KiB in all): no heap, no locks, no
//! libc, no panics; raw system calls only (`crate::sys`). Text and paths
//! are built in [`Line`]s kept in static memory, never in large buffers on
//! the stack. Every status write opens, writes, closes and renames within
//! one call, so no status descriptor is ever open while a dump collects
//! descriptors, and none can reach an image. A status write that fails is
//! dropped: the status is a report, it never fails or delays a dump.
//! The state lives in one static [`Global`], touched only by the
//! constructor (before the handler exists) and by the thread leading a
//! dump or finishing a restore (every other thread parked).
//!
//! ## The directory
//!
//! `/run/user/<uid>/migrate` if `/run/user/<uid>` is a directory owned by
//! the uid, else `/tmp/migrate-<uid>`; created mode 0700, and used only if
//! it then is a real directory (not a symlink) owned by the uid with no
//! access for group or others. Otherwise the process has no status (one
//! `info` log line) and `migrate dump` cannot reach it.
//!
//! ## The status file `<dir>/<pid>`
//!
//! `pid` is the PID the user sees: the process's own, or for a restore
//! inside a PID namespace the supervisor's (passed in the handoff). One
//! `key value` line each (a newline inside a value is written as `?`):
//! `pid`, `starttime` (field 22 of `/proc/<pid>/stat`, to tell a reused
//! PID), `exe`, `signal`, `image` (the pattern), `state` (`idle` or
//! `dumping`), `dumps` (the sequence number), `request` (nonce of the dump
//! in progress or last finished, 0 for a plain signal), `progress <bytes
//! written> <estimate>` while dumping, and of the last dump `last_time`
//! (ns since the epoch), `last_outcome` (`ok` or `failed`), `last_path`,
//! `last_size`, `last_pages`, `last_ms`, `last_error` (the line the
//! process logged). Written to `<dir>/.<pid>.tmp` and renamed into place:
//! by the constructor, by a restored process as it resumes, when a dump
//! starts, at most every [`PROGRESS_NS`] while it writes pages, and when it
//! ends (before the process exits, in exit mode). A restore's check dump
//! reports nothing.
//!
//! ## Requests
//!
//! `migrate dump` writes `<dir>/<pid>.req.<nonce>` (`start` the process's
//! start time, `image PATH`, `after continue|exit|kill|stop`, one per line, at
//! most [`REQUEST_MAX`] bytes; a file whose `start` is not this process's
//! was left for an earlier one with the same PID, and is removed unread) and
//! sends the dump signal with `sigqueue`, `si_value` =
//! [`request_value`]`(nonce)`. The handler reads the file (a regular file
//! owned by this uid), removes it and applies it to that dump only. When
//! the dump ends, its outcome (the status text as of then) is also written
//! to `<dir>/<pid>.done.<nonce>`, which the requester reads and removes:
//! the status file itself may already show a later dump. Signals of one
//! number do not queue, so the signal is a doorbell: after each dump the
//! next request file waiting, if any, rings again ([`ring_next`]), a
//! request that reaches a thread while another leads a dump is passed to
//! the leader's thread, and a request whose file is gone (served by an
//! earlier dump) is skipped. A
//! plain `kill` still dumps with the process's own settings.

use crate::config::{Global, PATH_MAX, SETTINGS};
use crate::dump::Fail;
use crate::sys::{self, line::Line};

/// High half of `si_value` in a dump request (`migR`).
pub const REQUEST_MAGIC: u32 = 0x6d69_6752;
/// Largest request file accepted.
pub const REQUEST_MAX: usize = 8192;
/// Least time between two progress writes.
pub const PROGRESS_NS: u64 = 50_000_000;
/// Bytes written between two looks at the clock.
const PROGRESS_STEP: u64 = 1 << 20;
/// Longest status directory path.
pub const DIR_MAX: usize = 128;
/// Largest status text (three paths, an error line and small fields).
pub const TEXT_MAX: usize = 3 * PATH_MAX + 2048;

/// What a process does once a requested dump is complete.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum After {
    /// As the process's settings say (`MIGRATE_AFTER_DUMP`).
    Default = 0,
    Continue = 1,
    /// Exit with status 0, every other thread still parked.
    Exit = 2,
    /// As `Exit`, ending by SIGKILL.
    Kill = 3,
    /// Stop (SIGSTOP to the whole process) with every other thread still
    /// parked; SIGCONT goes on as after `Continue`, SIGKILL ends it with
    /// nothing done after the snapshot (`migrate send`).
    Stop = 4,
}

/// A request read from its file. All-zero is a valid value (no request).
pub struct Request {
    pub nonce: u32,
    /// Start time of the process the request was written for (`start`,
    /// field 22 of its `/proc/<pid>/stat`): a file left for an earlier
    /// process with the same PID is not this one's.
    pub start: u64,
    /// Image path (pattern) for this dump; empty: the process's own.
    pub image: Line<PATH_MAX>,
    pub after: After,
}

impl Request {
    pub const fn new() -> Request {
        Request {
            nonce: 0,
            start: 0,
            image: Line::new(),
            after: After::Default,
        }
    }
}

impl Default for Request {
    fn default() -> Self {
        Self::new()
    }
}

/// `si_value` of a request with `nonce`.
pub fn request_value(nonce: u32) -> u64 {
    (u64::from(REQUEST_MAGIC) << 32) | u64::from(nonce)
}

/// The nonce of a request signal (`si_code` SI_QUEUE and the magic), if
/// the signal is one.
pub fn request_nonce(code: i32, value: u64) -> Option<u32> {
    let nonce = value as u32;
    (code == libc::SI_QUEUE && (value >> 32) as u32 == REQUEST_MAGIC && nonce != 0).then_some(nonce)
}

/// Parses a request file's text into `req` (its nonce untouched).
pub fn parse_request(text: &[u8], req: &mut Request) -> Result<(), &'static str> {
    req.image.clear();
    req.after = After::Default;
    req.start = 0;
    for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let (key, value) = match line.iter().position(|&c| c == b' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        match key {
            b"image" => {
                if value.first() != Some(&b'/') || value.len() + 32 >= PATH_MAX {
                    return Err("the image path is not absolute or too long");
                }
                req.image.clear();
                req.image.bytes(value);
            }
            b"start" => {
                req.start = sys::parse_dec(value).ok_or("bad start time")?;
            }
            b"after" => {
                req.after = match value {
                    b"continue" => After::Continue,
                    b"exit" => After::Exit,
                    b"kill" => After::Kill,
                    b"stop" => After::Stop,
                    _ => return Err("unknown after-dump action"),
                }
            }
            _ => return Err("unknown key"),
        }
    }
    Ok(())
}

/// A request file's text (for `migrate dump`) to the process that
/// started at `start`.
pub fn format_request(start: u64, image: Option<&str>, after: After) -> String {
    let mut s = format!("start {start}\n");
    if let Some(img) = image {
        s.push_str("image ");
        s.push_str(img);
        s.push('\n');
    }
    let after = match after {
        After::Default => None,
        After::Continue => Some("continue"),
        After::Exit => Some("exit"),
        After::Kill => Some("kill"),
        After::Stop => Some("stop"),
    };
    if let Some(a) = after {
        s.push_str("after ");
        s.push_str(a);
        s.push('\n');
    }
    s
}

/// Field 22 (start time, in clock ticks since boot) of a
/// `/proc/<pid>/stat` text.
pub fn stat_starttime(text: &[u8]) -> Option<u64> {
    let close = text.iter().rposition(|&c| c == b')')?;
    // Field 3 is the first after the command name.
    let field = text
        .get(close + 1..)?
        .split(|&c| c == b' ' || c == b'\n')
        .filter(|f| !f.is_empty())
        .nth(22 - 3)?;
    sys::parse_dec(field)
}

/// The status directory of `uid` (see the module's documentation); not
/// created or checked.
pub fn dir_path(uid: u32, out: &mut Line<DIR_MAX>) {
    out.clear();
    out.str("/run/user/").dec(u64::from(uid));
    let owned = out
        .c_str()
        .and_then(|p| sys::stat_path(p, true).ok())
        .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR && st.st_uid == uid);
    if owned {
        out.str("/migrate");
    } else {
        out.clear();
        out.str("/tmp/migrate-").dec(u64::from(uid));
    }
}

/// Whether `dir` is usable: a real directory owned by `uid`, no access
/// for group or others. `Err` says why not.
pub fn check_dir(dir: &mut Line<DIR_MAX>, uid: u32) -> Result<(), &'static str> {
    let path = dir.c_str().ok_or("path too long")?;
    let st = sys::stat_path(path, false).map_err(|_| "cannot stat it")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err("not a directory");
    }
    if st.st_uid != uid {
        return Err("owned by another user");
    }
    if st.st_mode & 0o077 != 0 {
        return Err("open to group or others");
    }
    Ok(())
}

/// Creates `dir` (mode 0700) if needed and checks it.
fn ensure_dir(dir: &mut Line<DIR_MAX>, uid: u32) -> Result<(), &'static str> {
    let path = dir.c_str().ok_or("path too long")?;
    match sys::mkdir(path, 0o700) {
        Ok(()) | Err(sys::Errno(libc::EEXIST)) => {}
        Err(_) => return Err("cannot create it"),
    }
    check_dir(dir, uid)
}

/// The last dump's outcome.
pub struct Last {
    pub time_ns: u64,
    pub ok: bool,
    pub path: Line<PATH_MAX>,
    pub size: u64,
    pub pages: u64,
    pub ms: u64,
    /// How long the process was stopped, in microseconds: the whole dump,
    /// or until its snapshot was taken (`dump::snapshot`).
    pub pause_us: u64,
    pub error: Line<600>,
}

/// A process's status (see the module's documentation).
pub struct Status {
    pub on: bool,
    pub dir: Line<DIR_MAX>,
    /// The PID the user sees (the file's name) and its start time.
    pub pid: i32,
    pub starttime: u64,
    /// `getpid()` when set up: a forked child sets up its own.
    pub own_pid: i32,
    pub exe: Line<PATH_MAX>,
    pub dumping: bool,
    pub request: u32,
    pub written: u64,
    pub estimate: u64,
    pub has_last: bool,
    pub last: Last,
    /// Progress bookkeeping: writes allowed, next byte count to look at
    /// the clock, time of the last write.
    progress_on: bool,
    next_check: u64,
    last_write_ns: u64,
    /// The pause of the dump being written from a snapshot (0: a stopped
    /// dump, whose pause is its whole time).
    snapshot_pause_ns: u64,
    /// The snapshot's writer finishing the dump being reported (PID and
    /// start time; 0: none, or one in a PID namespace of the process's,
    /// whose PID a requester outside could not look up).
    writer: i32,
    writer_start: u64,
    /// The last dump was handed to a snapshot's writer, which reports its
    /// outcome in the file: read back at the next dump ([`writer_gone`]).
    awaiting_writer: bool,
    tmp: Line<{ DIR_MAX + 32 }>,
    target: Line<{ DIR_MAX + 32 }>,
}

impl Status {
    pub const fn new() -> Status {
        Status {
            on: false,
            dir: Line::new(),
            pid: 0,
            starttime: 0,
            own_pid: 0,
            exe: Line::new(),
            dumping: false,
            request: 0,
            written: 0,
            estimate: 0,
            has_last: false,
            last: Last {
                time_ns: 0,
                ok: false,
                path: Line::new(),
                size: 0,
                pages: 0,
                ms: 0,
                pause_us: 0,
                error: Line::new(),
            },
            progress_on: false,
            next_check: 0,
            last_write_ns: 0,
            snapshot_pause_ns: 0,
            writer: 0,
            writer_start: 0,
            awaiting_writer: false,
            tmp: Line::new(),
            target: Line::new(),
        }
    }
}

impl Default for Status {
    fn default() -> Self {
        Self::new()
    }
}

static STATUS: Global<Status> = Global::new(Status::new());
/// Buffers kept out of the stack (see the rules): the status text, and
/// what is read from /proc.
static TEXT: Global<Line<TEXT_MAX>> = Global::new(Line::new());
static SCRATCH: Global<[u8; PATH_MAX]> = Global::new([0; PATH_MAX]);
/// The status file as a snapshot's writer left it ([`writer_gone`]).
static READBACK: Global<[u8; TEXT_MAX]> = Global::new([0; TEXT_MAX]);

/// The status state.
///
/// # Safety
/// As [`Global::get`]: the constructor, or the thread leading a dump or
/// finishing a restore.
unsafe fn state() -> &'static mut Status {
    // SAFETY: forwarded from the caller.
    unsafe { STATUS.get() }
}

/// Appends `key value\n`, a newline inside the value written as `?`.
fn field<const N: usize>(out: &mut Line<N>, key: &str, value: &[u8]) {
    out.str(key).str(" ");
    for &c in value {
        out.bytes(&[if c == b'\n' { b'?' } else { c }]);
    }
    out.str("\n");
}

fn num<const N: usize>(out: &mut Line<N>, key: &str, v: u64) {
    out.str(key).str(" ").dec(v).str("\n");
}

/// The status text of `s`, for a process whose dump signal, image
/// pattern and dump count are given.
pub fn format<const N: usize>(
    s: &Status,
    signal: i32,
    image: &[u8],
    dumps: u64,
    out: &mut Line<N>,
) {
    out.clear();
    num(out, "pid", s.pid as u64);
    num(out, "starttime", s.starttime);
    field(out, "exe", s.exe.as_bytes());
    num(out, "signal", signal as u64);
    field(out, "image", image);
    field(out, "state", if s.dumping { b"dumping" } else { b"idle" });
    num(out, "dumps", dumps);
    num(out, "request", u64::from(s.request));
    if s.dumping {
        out.str("progress ")
            .dec(s.written)
            .str(" ")
            .dec(s.estimate)
            .str("\n");
        if s.writer > 0 {
            out.str("writer ")
                .dec(s.writer as u64)
                .str(" ")
                .dec(s.writer_start)
                .str("\n");
        }
    }
    if s.has_last {
        let l = &s.last;
        num(out, "last_time", l.time_ns);
        field(out, "last_outcome", if l.ok { b"ok" } else { b"failed" });
        field(out, "last_path", l.path.as_bytes());
        num(out, "last_size", l.size);
        num(out, "last_pages", l.pages);
        num(out, "last_ms", l.ms);
        num(out, "last_pause_us", l.pause_us);
        if !l.ok {
            field(out, "last_error", l.error.as_bytes());
        }
    }
}

/// Writes the status file (dropped on any failure).
fn write(s: &mut Status) {
    write_as(s, 0);
}

/// Writes the status file, and with `done` non-zero the same text as
/// request `done`'s outcome file `<dir>/<pid>.done.<nonce>` first.
fn write_as(s: &mut Status, done: u32) {
    if !s.on {
        return;
    }
    // SAFETY: the caller of every public entry point holds the settings
    // exclusively too (constructor, or the dump or restore's last thread).
    let settings = unsafe { SETTINGS.get() };
    // SAFETY: used only here and by the same callers as `s`.
    let text = unsafe { TEXT.get() };
    format(
        s,
        settings.signal,
        settings.image.as_bytes(),
        settings.sequence,
        text,
    );
    if done != 0 {
        s.target.clear();
        s.target
            .bytes(s.dir.as_bytes())
            .str("/")
            .dec(s.pid as u64)
            .str(".done.")
            .dec(u64::from(done));
        put(s, text.as_bytes());
    }
    s.target.clear();
    s.target.bytes(s.dir.as_bytes()).str("/").dec(s.pid as u64);
    put(s, text.as_bytes());
}

/// Writes `text` to `s.target` through a temporary file and a rename.
fn put(s: &mut Status, text: &[u8]) {
    s.tmp.clear();
    s.tmp
        .bytes(s.dir.as_bytes())
        .str("/.")
        .dec(s.pid as u64)
        .str(".tmp");
    let (Some(tmp), Some(target)) = (s.tmp.c_str(), s.target.c_str()) else {
        return;
    };
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let Ok(fd) = sys::open(tmp, flags, 0o600) else {
        return;
    };
    let wrote = sys::write_all(fd, text);
    sys::close(fd);
    if wrote.is_ok() {
        let _ = sys::rename(tmp, target);
    } else {
        let _ = sys::unlink(tmp);
    }
}

/// The scratch buffer.
fn scratch() -> &'static mut [u8; PATH_MAX] {
    // SAFETY: used by the same callers as the status, one use at a time
    // (every borrow ends before the next call).
    unsafe { SCRATCH.get() }
}

/// Whether process `pid`, started at `start`, still runs (not a zombie).
fn writer_runs(pid: i32, start: u64) -> bool {
    let mut path = Line::<40>::new();
    path.str("/proc/").dec(pid as u64).str("/stat");
    let Some(p) = path.c_str() else {
        return false;
    };
    let buf = scratch();
    let Ok(n) = sys::read_file(p, buf) else {
        return false;
    };
    let text = &buf[..n];
    let state = text
        .iter()
        .rposition(|&c| c == b')')
        .and_then(|close| text.get(close + 2));
    stat_starttime(text) == Some(start) && !matches!(state, Some(b'Z' | b'X'))
}

/// Sets up this process's status and writes it: `user` is the PID the
/// user sees and its start time, `None` for this process itself.
fn set_up(s: &mut Status, user: Option<(i32, u64)>) {
    let log = {
        // SAFETY: as for `write`.
        let settings = unsafe { SETTINGS.get() };
        settings.log >= crate::config::LogLevel::Info
    };
    s.on = false;
    s.dumping = false;
    s.progress_on = false;
    s.request = 0;
    s.has_last = false;
    s.snapshot_pause_ns = 0;
    s.awaiting_writer = false;
    s.own_pid = sys::getpid();
    match user {
        Some((pid, start)) => {
            s.pid = pid;
            s.starttime = start;
        }
        None => {
            s.pid = s.own_pid;
            let buf = scratch();
            let n = sys::read_file(b"/proc/self/stat\0", buf).unwrap_or(0);
            s.starttime = stat_starttime(&buf[..n]).unwrap_or(0);
        }
    }
    s.exe.clear();
    let buf = scratch();
    if let Ok(n) = sys::readlink(b"/proc/self/exe\0", buf) {
        s.exe.bytes(&buf[..n.min(PATH_MAX)]);
    }
    let uid = sys::getuid();
    dir_path(uid, &mut s.dir);
    match ensure_dir(&mut s.dir, uid) {
        Ok(()) => s.on = true,
        Err(why) => {
            if log {
                sys::line::emit_parts(&[
                    b"migrate: no status file (migrate dump cannot reach this process): ",
                    s.dir.as_bytes(),
                    b": ",
                    why.as_bytes(),
                ]);
            }
            return;
        }
    }
    write(s);
}

/// The constructor's status: this process, idle.
pub fn at_start() {
    // SAFETY: the constructor runs alone, before the handler exists.
    set_up(unsafe { state() }, None);
    // Registered once, in the process's first constructor: a restored
    // process inherits the registration with the rest of its memory.
    // SAFETY: `at_exit` is a plain function that stays loaded.
    unsafe { libc::atexit(at_exit) };
}

/// Removes this process's status file as it exits normally (`atexit`):
/// a process that is gone leaves nothing for `migrate ps` to clean up.
/// Exits through `exit_group` (after a dump in exit mode) or by a signal
/// keep the file, with the last dump's outcome, until `migrate ps` sees
/// the process gone.
extern "C" fn at_exit() {
    // SAFETY: a process exiting runs no dump (exit takes no signal
    // handler's path); at worst this races a dump's own status write,
    // and either order leaves a valid file or none.
    let s = unsafe { state() };
    if !s.on || s.own_pid != sys::getpid() {
        return;
    }
    if s.dumping && s.writer > 0 && writer_runs(s.writer, s.writer_start) {
        // A snapshot's writer finishes the dump and writes the file again:
        // a requester learns from it which process to wait for.
        return;
    }
    let mut path = Line::<{ DIR_MAX + 32 }>::new();
    path.bytes(s.dir.as_bytes()).str("/").dec(s.pid as u64);
    if let Some(p) = path.c_str() {
        let _ = sys::unlink(p);
    }
}

/// A restored process's status as it resumes: under the PID the user
/// holds (`pid` non-zero: the supervisor's, with its start time).
///
/// # Safety
/// Every other thread of the restored process waits (see `resume`).
pub unsafe fn at_resume(pid: i32, starttime: u64) {
    let user = (pid > 0).then_some((pid, starttime));
    // SAFETY: the caller's promise.
    set_up(unsafe { state() }, user);
}

/// The status state for a dump, set up again in a forked child.
///
/// # Safety
/// Called by the thread leading a dump.
unsafe fn for_dump() -> &'static mut Status {
    // SAFETY: the caller's promise.
    let s = unsafe { state() };
    if s.own_pid != sys::getpid() {
        set_up(s, None);
    }
    s
}

/// The image path of the request being served (empty: none given).
static REQUEST: Global<Request> = Global::new(Request::new());

/// The image path (pattern) the request being served asks for; empty
/// when it names none.
///
/// # Safety
/// Called by the thread leading a dump, after [`read_request`].
pub unsafe fn request_image() -> &'static [u8] {
    // SAFETY: the caller's promise.
    unsafe { REQUEST.get() }.image.as_bytes()
}

/// Reads and removes request `nonce`'s file; what it asks for after the
/// dump (its image path: [`request_image`]), or `None` when the file was
/// written for an earlier process with this PID (left behind by a
/// `migrate dump` that was interrupted): not a request to this one.
///
/// # Safety
/// Called by the thread leading a dump.
// `Fail` is carried inline, as everywhere on the dump path (no heap).
#[allow(clippy::result_large_err)]
pub unsafe fn read_request(nonce: u32) -> Result<Option<After>, Fail> {
    // SAFETY: the caller's promise.
    let s = unsafe { for_dump() };
    // SAFETY: as above.
    let req = unsafe { REQUEST.get() };
    req.image.clear();
    req.after = After::Default;
    req.nonce = nonce;
    let fail = || Fail::new("dump request ").dec(u64::from(nonce)).str(": ");
    if !s.on {
        return Err(fail().str("this process has no status directory"));
    }
    request_path(s, nonce);
    let path = s.tmp.c_str().ok_or_else(|| fail().str("path too long"))?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    let fd = sys::open(path, flags, 0).map_err(|e| {
        fail()
            .str("cannot open ")
            .bytes(&path[..path.len() - 1])
            .errno(e)
    })?;
    let st = sys::fstat(fd);
    let mut buf = [0u8; REQUEST_MAX];
    let n = sys::read(fd, &mut buf);
    sys::close(fd);
    let _ = sys::unlink(path);
    let st = st.map_err(|e| fail().str("cannot stat its file").errno(e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_uid != sys::getuid() {
        return Err(fail().str("its file is not a regular file of this user"));
    }
    let n = n.map_err(|e| fail().str("cannot read its file").errno(e))?;
    if st.st_size as u64 > REQUEST_MAX as u64 || n >= REQUEST_MAX {
        return Err(fail().str("its file is too large"));
    }
    parse_request(&buf[..n], req).map_err(|why| fail().str(why))?;
    if s.starttime != 0 && req.start != s.starttime {
        req.image.clear();
        return Ok(None);
    }
    Ok(Some(req.after))
}

/// Puts request `nonce`'s file name into `s.tmp`.
fn request_path(s: &mut Status, nonce: u32) {
    s.tmp.clear();
    s.tmp
        .bytes(s.dir.as_bytes())
        .str("/")
        .dec(s.pid as u64)
        .str(".req.")
        .dec(u64::from(nonce));
}

/// Whether request `nonce`'s file is there (not yet taken by a dump).
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn request_pending(nonce: u32) -> bool {
    // SAFETY: the caller's promise.
    let s = unsafe { for_dump() };
    if !s.on {
        // Reading it fails the dump with the reason.
        return true;
    }
    request_path(s, nonce);
    s.tmp
        .c_str()
        .is_some_and(|p| sys::stat_path(p, false).is_ok())
}

/// Signals of one number do not queue (a second one sent while the first
/// is pending is lost): after each dump, the next request waiting in its
/// file, if any, is asked for again by queueing the dump signal to this
/// process, which takes it once the handler returns. `served` is the
/// request just taken (never asked again, should its file have stayed).
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn ring_next(served: u32) {
    // SAFETY: the caller's promise.
    let s = unsafe { for_dump() };
    if !s.on {
        return;
    }
    let mut prefix = Line::<24>::new();
    prefix.dec(s.pid as u64).str(".req.");
    let mut next = 0u32;
    let Some(dir) = s.dir.c_str() else {
        return;
    };
    let _ = sys::for_each_dir_entry(dir, |name| {
        if next == 0
            && let Some(n) = name.strip_prefix(prefix.as_bytes())
            && let Some(n) = sys::parse_dec(n)
            && n != u64::from(served)
            && n != 0
            && n <= u64::from(u32::MAX)
        {
            next = n as u32;
        }
    });
    if next != 0 {
        // SAFETY: as above; reading one word.
        let sig = unsafe { SETTINGS.get() }.signal;
        // To this thread: pending until its handler returns, when no dump
        // is under way (another thread could take a process-directed one
        // now, and find this dump still leading).
        let _ = sys::queue_signal_to_thread(sys::gettid(), sig, request_value(next));
    }
}

/// A dump starts (every other thread parked): state `dumping`.
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn dump_started(nonce: u32) {
    // SAFETY: the caller's promise.
    let s = unsafe { for_dump() };
    s.dumping = true;
    s.request = nonce;
    s.writer = 0;
    s.written = 0;
    s.progress_on = false;
    // Private memory the process has touched: about what the image holds.
    let buf = scratch();
    let n = sys::read_file(b"/proc/self/statm\0", buf).unwrap_or(0);
    let mut f = buf[..n]
        .split(|&c| c == b' ' || c == b'\n')
        .filter_map(sys::parse_dec);
    let (_, resident, shared) = (f.next(), f.next(), f.next());
    s.estimate = resident
        .unwrap_or(0)
        .saturating_sub(shared.unwrap_or(0))
        .saturating_mul(dumpfmt::PAGE_SIZE);
    s.last_write_ns = sys::monotonic_ns();
    s.next_check = PROGRESS_STEP;
    write(s);
}

/// In a snapshot's writer (`dump::snapshot`), a process of its own: the
/// status stays the dumped process's (a forked child would set up its
/// own), and the dump's outcome reports `pause_ns` as its pause.
///
/// # Safety
/// Called by the writer's only thread.
pub unsafe fn snapshot_writer(pause_ns: u64) {
    // SAFETY: the caller's promise.
    let s = unsafe { state() };
    s.own_pid = sys::getpid();
    s.snapshot_pause_ns = pause_ns.max(1);
}

/// In the program, once a snapshot's writer (PID `writer`, started at
/// `start`) took the dump over: the status says which process finishes
/// it, so that a requester waits for the writer, not for the program,
/// which may end first (the writer goes on to complete the image).
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn handed_over(writer: i32, start: u64) {
    // SAFETY: the caller's promise.
    let s = unsafe { for_dump() };
    if s.pid != s.own_pid || start == 0 {
        // The program's PID namespace is not the requester's.
        return;
    }
    s.writer = writer;
    s.writer_start = start;
    write(s);
}

/// In the program, once its dump is handed to a snapshot's writer: the
/// writer reports that dump in the file from now on, so this copy is
/// idle, and writes nothing (it would hide the writer's progress).
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn idle_after_hand_over() {
    // SAFETY: the caller's promise.
    let s = unsafe { state() };
    s.dumping = false;
    s.progress_on = false;
    s.awaiting_writer = true;
}

/// In the program, once the writer of its last dump is gone (before the
/// next dump reports anything): that dump's outcome, as the writer wrote
/// it in the status file, becomes this copy's `last_*`. A writer that
/// ended without its final write leaves the older outcome.
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn writer_gone() {
    // SAFETY: the caller's promise.
    let s = unsafe { state() };
    if !s.awaiting_writer || !s.on || s.own_pid != sys::getpid() {
        return;
    }
    s.awaiting_writer = false;
    // The writer is gone: requesters wait for this process again.
    s.writer = 0;
    s.writer_start = 0;
    s.target.clear();
    s.target.bytes(s.dir.as_bytes()).str("/").dec(s.pid as u64);
    let Some(path) = s.target.c_str() else {
        return;
    };
    // SAFETY: used only here, by the same callers as the status.
    let buf = unsafe { READBACK.get() };
    let Ok(n) = sys::read_file(path, buf) else {
        return;
    };
    read_last(&buf[..n], s);
    let l = &s.last;
    if s.has_last && !l.ok {
        let marker = crate::dump::snapshot::UNFORKABLE_MARK.as_bytes();
        if l.error
            .as_bytes()
            .windows(marker.len())
            .any(|w| w == marker)
        {
            crate::dump::snapshot::unforkable_found();
        }
    }
}

/// Takes the `last_*` lines of a complete status `text` into `s`.
fn read_last(text: &[u8], s: &mut Status) {
    let value = |key: &[u8]| {
        text.split(|&c| c == b'\n').find_map(|line| {
            let rest = line.strip_prefix(key)?;
            rest.strip_prefix(b" ")
        })
    };
    let idle = value(b"state") == Some(b"idle".as_slice());
    let (Some(time), Some(outcome)) = (value(b"last_time"), value(b"last_outcome")) else {
        return;
    };
    if !idle {
        return;
    }
    let dec = |key: &[u8]| value(key).and_then(sys::parse_dec).unwrap_or(0);
    let l = &mut s.last;
    l.time_ns = sys::parse_dec(time).unwrap_or(0);
    l.ok = outcome == b"ok";
    l.path.clear();
    l.path.bytes(value(b"last_path").unwrap_or(b""));
    l.size = dec(b"last_size");
    l.pages = dec(b"last_pages");
    l.ms = dec(b"last_ms");
    l.pause_us = dec(b"last_pause_us");
    l.error.clear();
    l.error.bytes(value(b"last_error").unwrap_or(b""));
    s.has_last = true;
}

/// The page scan begins (the dump's descriptors are collected): from now
/// on [`progress`] may write.
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn scan_begins() {
    // SAFETY: the caller's promise.
    let s = unsafe { state() };
    s.progress_on = s.dumping;
}

/// `pos` bytes of the image are written: reports it now and then.
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn progress(pos: u64) {
    // SAFETY: the caller's promise.
    let s = unsafe { state() };
    if !s.progress_on || pos < s.next_check {
        return;
    }
    s.next_check = pos + PROGRESS_STEP;
    let now = sys::monotonic_ns();
    if now.saturating_sub(s.last_write_ns) < PROGRESS_NS {
        return;
    }
    s.last_write_ns = now;
    s.written = pos;
    write(s);
}

/// A dump ended: its outcome, state `idle`.
///
/// # Safety
/// Called by the thread leading a dump.
pub unsafe fn dump_finished(
    nonce: u32,
    result: Result<(), &Fail>,
    path: &[u8],
    size: u64,
    pages: u64,
    ns: u64,
) {
    // SAFETY: the caller's promise.
    let s = unsafe { for_dump() };
    s.dumping = false;
    s.progress_on = false;
    s.request = nonce;
    s.has_last = true;
    let l = &mut s.last;
    l.time_ns = sys::realtime_ns();
    l.ok = result.is_ok();
    l.path.clear();
    l.path.bytes(path);
    l.size = size;
    l.pages = pages;
    l.ms = ns / 1_000_000;
    l.pause_us = if s.snapshot_pause_ns != 0 {
        s.snapshot_pause_ns
    } else {
        ns
    } / 1000;
    s.snapshot_pause_ns = 0;
    l.error.clear();
    if let Err(f) = result {
        l.error.bytes(f.line.as_bytes());
    }
    // The status file shows only the latest dump, which may already be
    // another's by the time the requester looks: its outcome gets a file
    // of its own.
    write_as(s, nonce);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values() {
        let v = request_value(0x1234_5678);
        assert_eq!(request_nonce(libc::SI_QUEUE, v), Some(0x1234_5678));
        // A plain kill, another magic, a zero nonce: no request.
        assert_eq!(request_nonce(libc::SI_USER, v), None);
        assert_eq!(request_nonce(libc::SI_QUEUE, 0x7061_726b_0000_0001), None);
        assert_eq!(request_nonce(libc::SI_QUEUE, request_value(0)), None);
    }

    #[test]
    fn requests_round_trip() {
        let mut r = Request::new();
        for (image, after) in [
            (Some("/tmp/x.img"), After::Exit),
            (None, After::Kill),
            (None, After::Continue),
            (None, After::Stop),
            (Some("/a b/c%n.img"), After::Default),
        ] {
            parse_request(format_request(4242, image, after).as_bytes(), &mut r).unwrap();
            assert_eq!(r.start, 4242);
            assert_eq!(r.image.as_bytes(), image.unwrap_or("").as_bytes());
            assert_eq!(r.after, after);
        }
    }

    #[test]
    fn bad_requests() {
        let mut r = Request::new();
        for (text, why) in [
            (
                "image rel.img\n",
                "the image path is not absolute or too long",
            ),
            ("after later\n", "unknown after-dump action"),
            ("colour blue\n", "unknown key"),
        ] {
            assert_eq!(parse_request(text.as_bytes(), &mut r), Err(why), "{text}");
        }
        let long = format!("image /{}\n", "x".repeat(PATH_MAX));
        assert!(parse_request(long.as_bytes(), &mut r).is_err());
    }

    #[test]
    fn starttime_of_stat() {
        let stat =
            b"42 (a) b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 100 200\n";
        assert_eq!(stat_starttime(stat), Some(987654));
        assert_eq!(stat_starttime(b"42 (a) S 1"), None);
    }

    #[test]
    fn last_outcome_read_back() {
        let mut w = Status::new();
        w.pid = 7;
        w.has_last = true;
        w.last.time_ns = 123;
        w.last.path.str("/x-1.img");
        w.last.size = 4096;
        w.last.pages = 1;
        w.last.ms = 9;
        w.last.pause_us = 250;
        w.last.error.str("disk full");
        let mut out = Line::<TEXT_MAX>::new();
        format(&w, 12, b"/x-%n.img", 1, &mut out);
        let mut s = Status::new();
        read_last(out.as_bytes(), &mut s);
        assert!(s.has_last);
        assert!(!s.last.ok);
        assert_eq!(s.last.path.as_bytes(), b"/x-1.img");
        assert_eq!((s.last.time_ns, s.last.size, s.last.pages), (123, 4096, 1));
        assert_eq!((s.last.ms, s.last.pause_us), (9, 250));
        assert_eq!(s.last.error.as_bytes(), b"disk full");
        // A file still saying `dumping` (the writer died) changes nothing.
        w.dumping = true;
        format(&w, 12, b"/x-%n.img", 1, &mut out);
        let mut s = Status::new();
        read_last(out.as_bytes(), &mut s);
        assert!(!s.has_last);
    }

    #[test]
    fn newlines_in_values_stay_on_their_line() {
        let mut s = Status::new();
        s.pid = 7;
        s.exe.str("/bin/a\nstate dumping");
        let mut out = Line::<TEXT_MAX>::new();
        format(&s, 12, b"/x.img", 0, &mut out);
        let text = core::str::from_utf8(out.as_bytes()).unwrap();
        assert!(text.contains("exe /bin/a?state dumping\n"), "{text}");
        let states: Vec<&str> = text.lines().filter(|l| l.starts_with("state ")).collect();
        assert_eq!(states, ["state idle"], "{text}");
    }
}
