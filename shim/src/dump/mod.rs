//! The dump path: runs inside the signal handler.
//!
//! # Rules
//!
//! The signal may have interrupted malloc, stdio or any lock holder. This
//! code therefore allocates nothing from the heap (its memory is one
//! anonymous mapping, the [`arena::Arena`]), takes no lock, calls no libc
//! function (raw system calls only, `crate::sys`), and must not panic
//! (`get` instead of indexing where a bound is not obvious). Every failure
//! becomes a [`Fail`] that the handler prints as one line; the process
//! then goes on as if nothing had happened, and the previous image stays.

// `Fail` carries its message inline (there is no heap to box it in); a
// dump fails rarely, so moving 600 bytes on that path costs nothing.
#![allow(clippy::result_large_err)]

pub mod arena;
pub mod backlog;
pub mod bigfiles;
pub mod compress;
pub mod fds;
pub mod files;
pub mod incremental;
pub mod inflight;
pub mod inotify;
pub mod keep;
pub mod locks;
pub mod maps;
pub mod mlockall;
pub mod pages;
pub mod panic;
pub mod periodic;
pub mod procattrs;
pub mod process;
pub mod queued;
pub mod snapshot;
pub mod sockets;
pub mod timer_helper;
pub mod timer_signals;
pub mod timers;
pub mod world;
pub mod writer;

use core::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::borrow::Cow;

use dumpfmt::{
    Backing, Credentials, FileId, Image, Mapping, Minor1, Minor2, Minor3, Minor4, MmFields,
    PageRun, SigAction, ThreadState,
};

use crate::config::{LogLevel, PATH_MAX, SETTINGS};
use crate::sys::context::{RESUMED, SavedRegs, migrate_checkpoint};
use crate::sys::line::{Line, errno_name};
use crate::sys::{self, Errno, args};

/// Address space reserved for one dump's bookkeeping (touched pages only).
const ARENA_LEN: usize = 1 << 30;
const MAPS_BUF: usize = 16 << 20;
const PAGEMAP_ENTRIES: usize = 1 << 16;
const BOUNCE_LEN: usize = 1 << 20;
/// How far below its saved stack pointer the dump code's own frames may reach.
const STACK_SLACK: u64 = 1 << 20;

/// Why a dump failed: one line for the log.
pub struct Fail {
    pub line: Line<600>,
}

impl Fail {
    pub fn new(what: &str) -> Fail {
        let mut line = Line::new();
        line.str(what);
        Fail { line }
    }

    pub fn bytes(mut self, b: &[u8]) -> Fail {
        self.line.bytes(b);
        self
    }

    pub fn str(mut self, s: &str) -> Fail {
        self.line.str(s);
        self
    }

    pub fn dec(mut self, v: u64) -> Fail {
        self.line.dec(v);
        self
    }

    pub fn hex(mut self, v: u64) -> Fail {
        self.line.hex(v);
        self
    }

    pub fn errno(mut self, e: Errno) -> Fail {
        self.line
            .str(": ")
            .str(errno_name(e))
            .str(" (errno ")
            .dec(e.0 as u64)
            .str(")");
        self
    }
}

/// One dump's state. It lives at the bottom of the dump's own stack
/// mapping, so that only a few hundred bytes of the interrupted thread's
/// stack are used (threads may have small stacks). All-zero is a valid
/// `Job` (null pointer, empty lines, zero numbers, `failed` false).
struct Job {
    regs: *const SavedRegs,
    /// The xsave area of the leader's signal frame (0: none).
    fpstate: u64,
    started: u64,
    /// The dump's stack mapping, kept out of the image.
    stack: (u64, u64),
    path: Line<PATH_MAX>,
    size: u64,
    failed: bool,
    fail: Fail,
    /// What a panic must undo (see [`panic`]): the writer and the arena
    /// while they live (null otherwise), the sequence number before.
    writer: *mut writer::ImageWriter,
    arena: *mut arena::Arena,
    /// The page scan's descriptors while they are open (null otherwise).
    fds: *mut Fds,
    prev_sequence: u64,
    /// This dump is a restore's fidelity check (`restore::check`).
    check: bool,
    /// A tick of the periodic timer asked for this dump.
    periodic: bool,
    /// The `migrate dump` request this dump serves (0: a plain signal)
    /// and what it asks for after (its image path is kept by `status`,
    /// out of this block: a larger `Job` made dumps measurably slower to
    /// start, see `status::request_image`).
    nonce: u32,
    after: crate::status::After,
    /// Pages stored in the image.
    pages: u64,
    /// The outcome is in the status file already.
    reported: bool,
    /// The request's file was left for an earlier process with this PID:
    /// no dump, no outcome.
    stale: bool,
    /// The copy-on-write snapshot (see [`snapshot`]): wanted for this
    /// dump, which side of it this is (`SNAP_*`), the pause until it was
    /// taken and the writer's PID (in the program).
    snap_want: bool,
    snap_side: u8,
    snap_pause_ns: u64,
    snap_writer: i32,
    /// In the writer: a pidfd of the program (-1: none), see
    /// [`snapshot::program_gone`].
    snap_program: i32,
}

/// `Job::snap_side` (0: a stopped dump): the program once its writer
/// took over, the writer.
const SNAP_APP: u8 = 1;
const SNAP_WRITER: u8 = 2;

/// The address of the xsave area of the signal frame whose context `uc`
/// is (0: none, or a frame without one).
///
/// # Safety
/// `uc` is null or the context the kernel passed to a signal handler
/// (whose frame is still live).
pub unsafe fn frame_fpstate(uc: *const libc::ucontext_t) -> u64 {
    if uc.is_null() {
        return 0;
    }
    // SAFETY: the caller's promise.
    unsafe { (*uc).uc_mcontext.fpregs as u64 }
}

/// The dump code's own stack (touched pages only).
const DUMP_STACK_LEN: usize = 1 << 20;

/// The signal handler's work: park if another thread is dumping, else
/// lead a dump.
///
/// # Safety
/// `info` and `uc` must be the `siginfo_t` and `ucontext_t` the kernel
/// passed to the handler.
pub unsafe fn on_dump_signal(info: *const libc::siginfo_t, uc: *mut libc::ucontext_t) {
    world::forget_inherited();
    // SAFETY: forwarded from the caller.
    if unsafe { world::is_park_request(info) } {
        // SAFETY: forwarded from the caller.
        unsafe { world::park(uc) };
        return;
    }
    // SAFETY: forwarded from the caller.
    let periodic = unsafe { periodic::is_tick(info) };
    if periodic && world::WORLD.leader.load(Acquire) == 0 && periodic::skip_tick() {
        return;
    }
    // SAFETY: forwarded from the caller.
    let tree_request = unsafe { crate::tree::dump::take_request(info) };
    // SAFETY: forwarded from the caller.
    let request = unsafe { sys::siginfo_code_value(info) }
        .and_then(|(code, value)| crate::status::request_nonce(code, value))
        .unwrap_or(0);
    let me = sys::gettid();
    if !claim_lead(me) {
        // Another thread leads a dump: this one stops like the rest. A
        // request taken here goes to the leader's thread, pending there
        // until that dump is over (a process-directed signal could land
        // on any thread, and find a leader again).
        if tree_request {
            crate::tree::dump::forget_request();
        }
        if request != 0 {
            let leader = world::WORLD.leader.load(Acquire);
            let to = if leader != 0 { leader } else { me };
            // SAFETY: the handler runs with every signal blocked; reading a word.
            let sig = unsafe { SETTINGS.get() }.signal;
            let _ = sys::queue_signal_to_thread(to, sig, crate::status::request_value(request));
        }
        // SAFETY: forwarded from the caller.
        unsafe { world::park(uc) };
        return;
    }
    if periodic && periodic::skip_tick() {
        // It waited for a dump that was ending (`claim_lead`): that dump
        // was this tick's, as for a tick taken while no dump leads.
        world::WORLD.leader.store(0, Release);
        return;
    }
    world::WORLD.pid.store(sys::getpid(), Release);
    lead(uc, periodic, request);
    world::WORLD.pid.store(0, Release);
    world::WORLD.leader.store(0, Release);
}

/// How long a dump signal waits for a dump that is ending to be over.
const FINISHING_WAIT_NS: u64 = 50_000_000;

/// Claims the lead of a new dump. A dump signal that lands while another
/// thread still leads one that is no longer collecting threads (it is
/// ending: its threads released, its leader about to let go) waits a
/// little for it to be over instead of being lost; while the other dump
/// collects (or does not end in time), this thread parks as before.
fn claim_lead(me: i32) -> bool {
    let deadline = sys::monotonic_ns() + FINISHING_WAIT_NS;
    loop {
        if world::WORLD
            .leader
            .compare_exchange(0, me, AcqRel, Acquire)
            .is_ok()
        {
            return true;
        }
        if !world::WORLD.slots.load(Acquire).is_null() || sys::monotonic_ns() >= deadline {
            return false;
        }
        // SAFETY: sched_yield takes no arguments.
        let _ = unsafe { sys::sys(libc::SYS_sched_yield, [0; 6]) };
    }
}

/// Dumps, or, when this is a restored process coming back through the
/// dump's own call frames, finishes the restore. `uc` is the signal
/// frame's context; `periodic` says a periodic tick asked for the dump,
/// `request` which `migrate dump` request it serves (0: none).
fn lead(uc: *mut libc::ucontext_t, periodic: bool, request: u32) {
    let started = sys::monotonic_ns();
    let Ok(stack) = sys::mmap_anon(DUMP_STACK_LEN, libc::MAP_NORESERVE | libc::MAP_STACK) else {
        Line::<80>::new()
            .str("migrate: dump failed, the process goes on: cannot map a stack")
            .emit();
        return;
    };
    let job = stack.cast::<Job>();
    let mut regs = SavedRegs::default();
    // SAFETY: the fresh mapping is zeroed and large enough for a `Job`, a
    // valid all-zero value; these are the only references to it. `uc` is
    // the context the kernel passed to this handler.
    unsafe {
        (*job).regs = &regs;
        (*job).fpstate = frame_fpstate(uc);
        (*job).started = started;
        (*job).stack = (stack as u64, stack as u64 + DUMP_STACK_LEN as u64);
        (*job).periodic = periodic;
        (*job).nonce = request;
    }
    let top = stack as u64 + DUMP_STACK_LEN as u64;
    panic::LEADING.store(job, Release);
    // SAFETY: `regs` outlives the call; `dump_body` receives the job and
    // runs on the stack above it, which nothing else uses.
    let out = unsafe { migrate_checkpoint(&mut regs, dump_body, job.cast(), top) };
    // Also in a restored process, whose memory holds the old value.
    panic::LEADING.store(core::ptr::null_mut(), Release);
    // Likewise: a tree dump's control blocks are not the restored
    // process's descriptors.
    crate::tree::dump::forget_control_fds();
    if out.status == RESUMED {
        // Nor is a stop its image recorded still to come.
        crate::tree::members::forget_stop();
        // The dump's stack is not part of the image: nothing to unmap.
        // Before any other thread goes on: timers' pending signals and
        // overruns.
        timer_signals::after_restore();
        // SAFETY: `uc` is this thread's frame, restored with its stack.
        unsafe { crate::restore::resume::after_restore(out.handoff, uc) };
        return;
    }
    // SAFETY: nothing refers to the dump's stack any more.
    let _ = unsafe { sys::munmap(stack as u64, DUMP_STACK_LEN as u64) };
    periodic::dump_ended();
    // A tree member that was stopped stops again, as it was, once its
    // threads are released and its line is out.
    crate::tree::members::stop_again();
}

/// Runs on the dump's own stack: dumps, reports, and exits when asked to.
extern "C" fn dump_body(arg: *mut u8) -> u64 {
    // SAFETY: `arg` is the `Job` set up by `lead`.
    let job = unsafe { &mut *arg.cast::<Job>() };
    // SAFETY: the handler runs with every signal blocked; no other access.
    let settings = unsafe { SETTINGS.get() };
    let nonce = job.nonce;
    // SAFETY: this thread leads the dump.
    let pending = nonce == 0 || unsafe { crate::status::request_pending(nonce) };
    if !pending {
        // Served already: its signal came after the dump that took it.
        // SAFETY: this thread leads the dump.
        unsafe { crate::status::ring_next(nonce) };
        return 0;
    }
    let result = dump(job);
    sys::transient::defer(false);
    if !job.check && job.snap_side != SNAP_WRITER {
        // Signals of one number do not queue: requests that came during
        // this dump are asked again, one by one, from their files.
        // SAFETY: this thread leads the dump.
        unsafe { crate::status::ring_next(nonce) };
    }
    if job.stale {
        return 0;
    }
    if job.check {
        crate::restore::check::release_held();
    } else if !job.reported {
        // A failure before every thread was stopped.
        report(job, result.as_ref().map(|_| ()));
    }
    match result {
        Err(f) => {
            let mut line = Line::<800>::new();
            line.str("migrate: dump failed, the process goes on: ")
                .bytes(f.line.as_bytes());
            line.emit();
            if job.snap_side == SNAP_WRITER {
                sys::exit_group(1);
            }
            job.failed = true;
            job.fail = f;
            1
        }
        Ok(()) => {
            // A check dump is silent and never ends the process.
            if job.check {
                return 0;
            }
            if job.snap_side == SNAP_APP {
                log_handed_over(job, settings);
                return 0;
            }
            log_dumped(job, settings);
            if job.snap_side == SNAP_WRITER {
                sys::exit_group(0);
            }
            0
        }
    }
}

/// Puts the dump's outcome in the status file (see `crate::status`).
fn report(job: &mut Job, result: Result<(), &Fail>) {
    job.reported = true;
    let ns = sys::monotonic_ns().saturating_sub(job.started);
    // SAFETY: this thread leads the dump.
    unsafe {
        crate::status::dump_finished(
            job.nonce,
            result,
            job.path.as_bytes(),
            job.size,
            job.pages,
            ns,
        )
    };
}

/// The `info` line for a complete dump.
fn log_dumped(job: &Job, settings: &crate::config::Settings) {
    if settings.log >= LogLevel::Info {
        let mut tail = Line::<100>::new();
        tail.str(" (")
            .dec(job.size)
            .str(" bytes, ")
            .ms(sys::monotonic_ns() - job.started);
        if job.snap_side == SNAP_WRITER {
            tail.str(", snapshot, paused ").ms(job.snap_pause_ns);
        } else {
            tail.str(", stopped");
        }
        tail.str(if job.periodic { ", periodic)" } else { ")" });
        sys::line::emit_parts(&[b"migrate: dumped ", job.path.as_bytes(), tail.as_bytes()]);
    }
}

/// The program's `info` line once a snapshot's writer took its dump over.
fn log_handed_over(job: &Job, settings: &crate::config::Settings) {
    // `info` is the writer's line (one per dump), which says the pause too.
    if settings.log >= LogLevel::Debug {
        let mut tail = Line::<100>::new();
        tail.str(" taken, paused ")
            .ms(job.snap_pause_ns)
            .str(", written by pid ")
            .dec(job.snap_writer as u64)
            .str(if job.periodic { " (periodic)" } else { "" });
        sys::line::emit_parts(&[
            b"migrate: snapshot for ",
            job.path.as_bytes(),
            tail.as_bytes(),
        ]);
    }
}

/// `start..end` less the three ranges in `out` (at most four pieces;
/// empty pieces are `(x, x)`).
fn cut_out(start: u64, end: u64, mut out: [(u64, u64); 3]) -> [(u64, u64); 4] {
    out.sort_unstable();
    let mut parts = [(0, 0); 4];
    let mut at = start;
    for (i, &(s, e)) in out.iter().enumerate() {
        if s < end && e > at {
            parts[i] = (at, s.max(at));
            at = at.max(e);
        }
    }
    parts[3] = (at, end.max(at));
    parts
}

/// Counts the threads of this process (entries of /proc/self/task).
pub fn count_threads() -> Result<usize, Errno> {
    let mut count = 0;
    sys::for_each_dir_entry(b"/proc/self/task\0", |name| {
        if sys::parse_dec(name).is_some() {
            count += 1;
        }
    })?;
    Ok(count)
}

/// Expands `%p`, `%n` and `%%` in the image pattern.
fn expand_path(pattern: &[u8], pid: i32, seq: u64, out: &mut Line<PATH_MAX>) {
    let mut i = 0;
    while i < pattern.len() {
        match (pattern[i], pattern.get(i + 1)) {
            (b'%', Some(b'p')) => {
                out.dec(pid as u64);
                i += 2;
            }
            (b'%', Some(b'n')) => {
                out.dec(seq);
                i += 2;
            }
            (b'%', Some(b'%')) => {
                out.bytes(b"%");
                i += 2;
            }
            (c, _) => {
                out.bytes(&[c]);
                i += 1;
            }
        }
    }
}

/// Numbers tried past a taken one before the dump fails on it.
const NUMBER_TRIES: u64 = 1000;

/// Expands the image pattern into `out` with sequence number `seq` or,
/// when the pattern numbers its images (`%n`) and a file is already at
/// that name, the next number whose name is free: such a file was written
/// by someone else (another process with the same pattern, the original
/// of a restored process, an earlier process with the same pid), and
/// replacing it, or later removing it for `MIGRATE_KEEP`, would lose it.
/// Returns the number used. The writer links the image there without
/// replacing anything, so a file that appears meanwhile fails the dump.
fn numbered_path(pattern: &[u8], seq: u64, out: &mut Line<PATH_MAX>) -> u64 {
    let pid = sys::getpid();
    let numbered = crate::config::has_number(pattern);
    let mut n = seq;
    loop {
        out.clear();
        expand_path(pattern, pid, n, out);
        if !numbered || n - seq + 1 >= NUMBER_TRIES || out.is_full() {
            return n;
        }
        let mut c = Line::<{ PATH_MAX + 1 }>::new();
        c.bytes(out.as_bytes());
        match c.c_str() {
            Some(path) if sys::exists(path) => n += 1,
            _ => return n,
        }
    }
}

fn dump(job: &mut Job) -> Result<(), Fail> {
    // A fork while the parent's library read a file leaves its descriptor.
    sys::transient::close_inherited();
    // Until every thread is parked a fork may be in flight (see
    // `sys::transient`); `dump_body` ends this whatever happens.
    sys::transient::defer(true);
    // SAFETY: the handler runs with every signal blocked; this is the only access.
    let settings = unsafe { SETTINGS.get() };
    let before = settings.sequence;
    // Before anything can panic: the hook puts this back (a panic in
    // `ImageWriter::create` used to reset the sequence number to 0).
    job.prev_sequence = before;
    // A restore's check dump goes to its own path and does not count.
    job.check = crate::restore::check::take(&mut job.path);
    if !job.check && job.nonce != 0 {
        let nonce = job.nonce;
        // SAFETY: this thread leads the dump.
        match unsafe { crate::status::read_request(nonce) }? {
            Some(after) => job.after = after,
            None => {
                job.stale = true;
                return Ok(());
            }
        }
    }
    // A writer still at work could rename its older image last.
    snapshot::wait_previous()?;
    // SAFETY: this thread leads the dump.
    unsafe { crate::status::writer_gone() };
    let frozen_after = match job.after {
        crate::status::After::Default => settings.exit_after_dump,
        crate::status::After::Continue => false,
        crate::status::After::Exit | crate::status::After::Kill | crate::status::After::Stop => {
            true
        }
    };
    job.snap_want = settings.snapshot && !job.check && !frozen_after;
    // SAFETY: this thread leads the dump.
    let requested = unsafe { crate::status::request_image() };
    // A request may name an image of its own: that one-off file is the
    // requester's, never one of the images `MIGRATE_KEEP` rotates.
    let own_pattern = job.nonce == 0 || requested.is_empty();
    let pattern = if own_pattern {
        settings.image.as_bytes()
    } else {
        requested
    };
    let numbered = !job.check && crate::config::has_number(pattern);
    let seq = if job.check {
        before
    } else {
        numbered_path(pattern, before + 1, &mut job.path)
    };
    if job.path.is_full() {
        return Err(Fail::new("image path too long"));
    }
    // Before any memory is saved: the image holds its own path (`keep`)
    // and no timer id inherited through a fork.
    periodic::forget_if_forked();
    if !job.check && own_pattern {
        keep::begin(job.path.as_bytes());
    }
    let mut arena = arena::Arena::new(ARENA_LEN)
        .map_err(|e| Fail::new("cannot map the dump arena").errno(e))?;
    job.arena = &mut arena;

    // The sequence number is part of the memory being dumped: set it first,
    // so the restored process numbers its next dump after this one.
    settings.sequence = seq;
    queued::begin(&arena, settings.signal)?;
    timer_helper::begin();
    crate::rseq::begin();
    let result = world::stop_others(&arena).and_then(|others| {
        // Every other thread has taken its own queued signals.
        queued::take();
        if !job.check {
            // SAFETY: this thread leads the dump; the others are parked.
            unsafe { crate::status::dump_started(job.nonce) };
        }
        // Only now is the set of children final (no thread can fork): a
        // process with children fails, is dumped alone, or leads a tree.
        let mut tree = crate::tree::dump::begin(&arena, settings, &mut job.path, job.check)?;
        if job.snap_want {
            let why = if tree.is_tree() || tree.is_member() {
                Some("a process tree is dumped stopped")
            } else {
                snapshot::learnt_obstacle().or_else(snapshot::process_obstacle)
            };
            if let Some(why) = why {
                snapshot::log_stopped(why, b"");
                job.snap_want = false;
            }
        }
        if tree.is_member() && !job.check && own_pattern {
            // A member's section goes in its parent's image: no file of
            // its own to rotate.
            keep::abort();
        }
        // Created once every other thread is parked: a fork still in
        // flight would hand the image's descriptor to the child, which
        // then finds an unnamed file it cannot read among its own fds.
        let mut out = tree.writer(&job.path)?;
        if numbered {
            out.never_replace();
        }
        job.writer = &mut out;
        let header = write_image(job, &arena, &mut out, settings, others, tree.is_tree());
        job.fds = core::ptr::null_mut();
        job.writer = core::ptr::null_mut();
        if job.snap_side == SNAP_APP {
            // The writer has the file now: close this copy of its
            // descriptor, never remove it.
            let fd = out.fd();
            core::mem::forget(out);
            sys::close(fd);
            return Ok(0);
        }
        let header = tree.written(header, &mut out);
        // `out` is dropped (its file discarded) on the way out of a failure.
        let size = tree.finish(out, header)?;
        tree.commit();
        Ok(size)
    });
    job.writer = core::ptr::null_mut();
    queued::end();
    let after = job.after;
    let exit = match after {
        crate::status::After::Default => settings.exit_after_dump,
        crate::status::After::Continue | crate::status::After::Stop => false,
        crate::status::After::Exit | crate::status::After::Kill => true,
    };
    if let Ok(size) = &result {
        job.size = *size;
    }
    if job.snap_side == SNAP_APP {
        // The writer reports the outcome; the status names it meanwhile.
        job.reported = true;
        let (writer, start) = snapshot::last_writer();
        // SAFETY: this thread leads the dump.
        unsafe { crate::status::handed_over(writer, start) };
    } else if !job.check {
        // Before the other threads go on (or the process ends).
        report(job, result.as_ref().map(|_| ()));
    }
    if let (Ok(_), true) = (&result, exit && !job.check) {
        // The image is complete: exit with every other thread still
        // parked, so that nothing the restored process will do again (a
        // line printed, a byte sent) happens after the snapshot.
        log_dumped(job, settings);
        keep::commit();
        if after == crate::status::After::Kill {
            let _ = sys::kill(sys::getpid(), libc::SIGKILL);
        }
        sys::exit_group(0);
    }
    if let (Ok(_), crate::status::After::Stop, false) = (&result, after, job.check) {
        // The image is complete and reported: stop the whole process
        // before any other thread leaves its handler, so that nothing
        // happens after the snapshot until SIGCONT (the move failed: go
        // on) or SIGKILL (the image runs elsewhere).
        let _ = sys::kill(sys::getpid(), libc::SIGSTOP);
    }
    // The writer's threads are the program's, not its own.
    if job.snap_side != SNAP_WRITER {
        world::release_all();
    }
    job.arena = core::ptr::null_mut();
    if job.snap_side == SNAP_APP {
        keep::handed_over();
        // SAFETY: this thread leads the dump.
        unsafe { crate::status::idle_after_hand_over() };
    } else if !job.check {
        match result {
            Ok(_) if job.snap_side == SNAP_WRITER && snapshot::program_gone(job.snap_program) => {
                // The image is complete, of an instant the program lived;
                // but that it ended meanwhile (killed, maybe because it
                // hung) may make its older images the ones wanted: keep them.
                snapshot::log_kept_old();
                keep::abort();
            }
            Ok(_) => {
                keep::commit();
                incremental::commit();
            }
            Err(_) => {
                keep::abort();
                incremental::abort();
            }
        }
    }
    match result {
        Ok(size) => {
            job.size = size;
            Ok(())
        }
        Err(f) => {
            settings.sequence = before;
            Err(f)
        }
    }
}

struct Fds {
    pagemap: i32,
    mem: i32,
}

impl Drop for Fds {
    fn drop(&mut self) {
        for fd in [self.pagemap, self.mem] {
            if fd >= 0 {
                sys::close(fd);
            }
        }
    }
}

/// Writes page data and metadata; returns the header to finish with.
fn write_image(
    job: &mut Job,
    arena: &arena::Arena,
    out: &mut writer::ImageWriter,
    settings: &crate::config::Settings,
    others: &[world::Slot],
    in_tree: bool,
) -> Result<dumpfmt::Header, Fail> {
    crate::fault::dump_panic_point();
    let no_mem = || Fail::new("the dump arena is too small");
    // Before anything reads procfs files a non-dumpable process cannot.
    let proc_attrs = procattrs::process()?;
    let _dumpable = procattrs::Dumpable::on(&proc_attrs);
    let maps_buf = arena.bytes(MAPS_BUF).ok_or_else(no_mem)?;
    let maps_len = sys::read_file(b"/proc/self/maps\0", maps_buf)
        .map_err(|e| Fail::new("cannot read /proc/self/maps").errno(e))?;
    let maps_text = &maps_buf[..maps_len];
    let lines = maps::lines(maps_text).count();

    let ro = libc::O_RDONLY | libc::O_CLOEXEC;
    // Owned by `fds` as soon as each is open: a failure to open the second
    // (EMFILE) must close the first, or the next dump saves it.
    let mut fds = Fds {
        pagemap: -1,
        mem: -1,
    };
    fds.pagemap = sys::open(b"/proc/self/pagemap\0", ro, 0)
        .map_err(|e| Fail::new("cannot open /proc/self/pagemap").errno(e))?;
    fds.mem = sys::open(b"/proc/self/mem\0", ro, 0)
        .map_err(|e| Fail::new("cannot open /proc/self/mem").errno(e))?;
    // A panic from here on closes them (see `panic`); the caller forgets
    // the pointer once this returns.
    job.fds = &mut fds;
    crate::fault::dump_panic_late_point();
    // Status writes open and close a descriptor of their own: progress
    // reports wait until the descriptors are collected (below).
    // The pages each mapping gives the image, written once every record
    // is collected (by a snapshot's writer, or with the process stopped).
    let mut work = arena
        .vec::<(u64, u64, bool, pages::Select)>(lines * 3 + 3)
        .ok_or_else(no_mem)?;
    let mut obstacle: Option<(&str, &[u8])> = None;

    let mut files = arena.vec::<FileId<'_>>(lines + 1).ok_or_else(no_mem)?;
    let mut mappings = arena.vec::<Mapping<'_>>(lines * 2 + 2).ok_or_else(no_mem)?;
    let run_cap = arena.remaining() / 2 / core::mem::size_of::<PageRun>();
    let mut shared_memory = arena
        .vec::<dumpfmt::SharedMemory>(lines * 2 + 2)
        .ok_or_else(no_mem)?;
    // A tree stores its shared memory once: in the highest member mapping it.
    let ancestors = crate::tree::shared::Ancestors::read(arena, in_tree);
    let mut runs = arena.vec::<PageRun>(run_cap).ok_or_else(no_mem)?;
    // The dump's own memory stays out of the image.
    let ours = [arena.range(), job.stack, incremental::own_memory()];
    let mut chain = incremental::begin(arena, job.path.as_bytes(), job.check, in_tree, lines)?;

    let mut from_lazy = 0u64;
    crate::tree::shared::set_in_tree(in_tree);
    let descriptors = fds::collect(
        arena,
        &[
            out.fd(),
            fds.pagemap,
            fds.mem,
            incremental::fd(),
            crate::tree::dump::control_fds()[0],
            crate::tree::dump::control_fds()[1],
        ],
        settings.refuse_external,
    )?;
    let shared_fds = crate::tree::shared::fds(arena, &descriptors, in_tree)?;
    let sockets = sockets::collect(arena, descriptors.fds)?;
    let file_locks = locks::collect(arena, descriptors.fds)?;
    if !job.check {
        // SAFETY: this thread leads the dump.
        unsafe { crate::status::scan_begins() };
    }
    for line in maps::lines(maps_text) {
        let Some(m) = maps::parse_line(line) else {
            return Err(Fail::new("cannot parse /proc/self/maps line: ").bytes(line));
        };
        if m.name == b"[vsyscall]" {
            continue;
        }
        let name = core::str::from_utf8(m.name)
            .map_err(|_| Fail::new("mapping name is not UTF-8: ").bytes(m.name))?;
        if m.name.starts_with(b"/[aio]") || m.name.starts_with(b"/SYSV") {
            let what = if m.name.starts_with(b"/[aio]") {
                "an AIO ring (io_setup)"
            } else {
                "SysV shared memory"
            };
            return Err(Fail::new("mapping ")
                .bytes(m.name)
                .str(": ")
                .str(what)
                .str(" cannot be saved"));
        }
        let (backing, mut select) = if m.is_kernel() {
            // The vDSO's code is kept (format 1.2): a restore compares it
            // with its kernel's and proxies it if they differ.
            let vdso = m.name == b"[vdso]";
            (Backing::Kernel, vdso.then_some(pages::Select::All))
        } else if let Some(&(fd, ..)) = descriptors
            .contents
            .iter()
            .find(|&&(_, dev, ino)| (dev, ino) == (m.dev, m.inode) && m.inode != 0)
        {
            // A memfd or deleted file that is also open: map it from that
            // descriptor's file again; its contents are in the fd record.
            (
                Backing::Fd(fd),
                (!m.shared).then_some(pages::Select::Private),
            )
        } else if !m.shared && crate::restore::lazy::is_source(m.dev, m.inode) {
            // Anonymous memory a lazy restore mapped from its image.
            (Backing::Anonymous, Some(pages::Select::Lazy))
        } else if m.is_file() && !m.is_deleted() {
            match file_index(&mut files, arena, m.name, m.inode)? {
                // The program writes this file through the mapping: its
                // contents are the program's data, kept whole.
                Some(i) if m.shared && m.prot & dumpfmt::PROT_WRITE != 0 => {
                    (Backing::SharedFile(i), Some(pages::Select::All))
                }
                Some(i) => (
                    Backing::File(i),
                    (!m.shared).then_some(pages::Select::Private),
                ),
                // The path names another file now: keep the contents.
                None => (Backing::Contents, Some(pages::Select::All)),
            }
        } else if m.shared || !m.name.is_empty() && m.name[0] == b'/' {
            (Backing::Contents, Some(pages::Select::All))
        } else {
            (Backing::Anonymous, Some(pages::Select::Touched))
        };
        let mut pages_in = 0;
        if backing == Backing::Contents
            && m.shared
            && let Some(pid) =
                ancestors.holder(m.dev, m.inode, m.offset, m.offset + (m.end - m.start))
        {
            pages_in = pid;
            select = None;
        }
        // The dump's memory may have merged with a neighbouring mapping: cut it out.
        let parts = cut_out(m.start, m.end, ours);
        for (start, end) in parts {
            if start >= end {
                continue;
            }
            let offset = if matches!(
                backing,
                Backing::File(_) | Backing::Fd(_) | Backing::SharedFile(_)
            ) {
                m.offset + (start - m.start)
            } else {
                0
            };
            let lazy = select == Some(pages::Select::Lazy);
            let rec = Mapping {
                start,
                end,
                prot: m.prot,
                shared: m.shared,
                offset,
                backing,
                name: Cow::Borrowed(if lazy { "" } else { name }),
            };
            mappings.push(rec).map_err(|_| no_mem())?;
            if backing == Backing::Contents && m.shared {
                let rec = crate::tree::shared::memory(&m, start, pages_in);
                shared_memory.push(rec).map_err(|_| no_mem())?;
            }
            if let Some(select) = select {
                let readable = m.prot & dumpfmt::PROT_READ != 0;
                work.push((start, end, readable, select))
                    .map_err(|_| no_mem())?;
                if job.snap_want && obstacle.is_none() {
                    let contents = backing == Backing::Contents && !m.shared;
                    obstacle = snapshot::mapping_obstacle(m.shared, contents).map(|w| (w, line));
                }
            }
        }
    }

    let mut process = process::collect(arena)?;
    // After the pending masks: a signal that came while the dump ran
    // keeps its siginfo too (`queued`'s note).
    queued::retake();
    let queued = queued::collected()?;
    // Those come back with their siginfo, not as a bare `kill`.
    process.pending &= !queued::numbers(queued);
    // Those of timers come back as the timers fire again (`timer_signals`).
    process.pending &= !timer_signals::numbers();
    let posix_timers = timers::collect(arena, others.len() + 1)?;
    // A timer's pending signal comes back with its siginfo.
    let queued = timers::pending_signals(arena, posix_timers, &mut process.pending, queued)?;
    let queued = timer_helper::pending_signals(arena, queued)?;
    let exe = exe_identity(arena)?;
    // SAFETY: `job.regs` points at the registers saved by `migrate_checkpoint`.
    let regs = unsafe { &*job.regs };
    let mut threads = arena
        .vec::<ThreadState>(others.len() + 1)
        .ok_or_else(no_mem)?;
    let mut creds = arena
        .vec::<Credentials>(others.len() + 1)
        .ok_or_else(no_mem)?;
    let mut frames = arena.vec::<u64>(others.len() + 1).ok_or_else(no_mem)?;
    let mut thread_attrs = arena
        .vec::<dumpfmt::ThreadAttrs>(others.len() + 1)
        .ok_or_else(no_mem)?;
    let _ = threads.push(thread_state(regs, settings));
    crate::rseq::check()?;
    let _ = creds.push(sys::creds::current());
    let _ = frames.push(job.fpstate);
    let _ = thread_attrs.push(procattrs::thread());
    // A slot claimed by a park request that raced with the start of this
    // dump may have stayed empty.
    for slot in others.iter().filter(|s| s.ready.load(Acquire) == 1) {
        let _ = threads.push(slot.state);
        let _ = creds.push(slot.creds);
        let _ = frames.push(slot.fpstate);
        let _ = thread_attrs.push(slot.attrs);
    }
    let cpu = sys::cpu_features();
    let mut xsave = [dumpfmt::XsaveComponent::default(); 32];
    let n_xsave = sys::xsave_layout(cpu.xcr0, &mut xsave);
    let baseline = crate::cpu::level_of(settings.cpu_level).map(|l| dumpfmt::Baseline {
        name: Cow::Borrowed(l.name),
        isa: l.isa,
    });
    let sigactions = signal_actions(arena)?;
    let mm = mm_fields()?;
    let auxv = read_auxv(arena)?;
    let (pid, time_ns) = (sys::getpid() as u32, sys::realtime_ns());
    let (monotonic_ns, boottime_ns) = (sys::monotonic_ns(), sys::boottime_ns());
    let members = crate::tree::members::members();
    // Everything but private memory is collected: a snapshot can take over.
    let mut capture = dumpfmt::Capture::default();
    let mut snap_pause_fd = -1;
    if job.snap_want && obstacle.is_none() && chain.tracks() {
        // Written pages are found and protected again in this process
        // (`incremental`), whose bookkeeping a writer could not update.
        obstacle = Some((
            "incremental dumps (",
            b"MIGRATE_INCREMENTAL) are taken stopped",
        ));
    }
    if job.snap_want && obstacle.is_none() && bigfiles::any(descriptors.files) {
        // A clone's memory is frozen, not the files it has open.
        obstacle = Some((
            "the contents of a deleted file or memfd larger than 1 MiB (",
            b"stored with the page data) are read with the process stopped",
        ));
    }
    if let (true, Some((why, what))) = (job.snap_want, obstacle) {
        snapshot::log_stopped(why, what);
    } else if job.snap_want {
        match snapshot::split(out.fd(), job.started) {
            Err(f) => snapshot::log_stopped("", f.line.as_bytes()),
            Ok(snapshot::Side::App { writer, pause_ns }) => {
                job.snap_side = SNAP_APP;
                job.snap_writer = writer;
                job.snap_pause_ns = pause_ns;
                return Ok(dumpfmt::Header {
                    major: dumpfmt::VERSION_MAJOR,
                    minor: dumpfmt::VERSION_MINOR,
                    meta_offset: 0,
                    meta_len: 0,
                    meta_crc: 0,
                    file_len: 0,
                    flags: 0,
                });
            }
            Ok(snapshot::Side::Writer {
                pause_fd,
                program_fd,
            }) => {
                job.snap_side = SNAP_WRITER;
                job.snap_program = program_fd;
                // Until the program says (below): since the signal.
                job.snap_pause_ns = sys::monotonic_ns().saturating_sub(job.started).max(1);
                // At once: a failure below is reported in the program's
                // status file, not one of the writer's PID.
                // SAFETY: the writer's only thread.
                unsafe { crate::status::snapshot_writer(job.snap_pause_ns) };
                snap_pause_fd = pause_fd;
                // The program's were closed: its own memory's.
                fds.pagemap = sys::open(b"/proc/self/pagemap\0", ro, 0)
                    .map_err(|e| Fail::new("cannot open /proc/self/pagemap").errno(e))?;
                fds.mem = sys::open(b"/proc/self/mem\0", ro, 0)
                    .map_err(|e| Fail::new("cannot open /proc/self/mem").errno(e))?;
                // Memory the clone did not get as it was: the dump fails.
                snapshot::check_clone(arena, work.as_slice(), lines)?;
            }
        }
    }
    let mut scan = pages::PageScan {
        pagemap_fd: fds.pagemap,
        mem_fd: fds.mem,
        pagemap: arena.words(PAGEMAP_ENTRIES).ok_or_else(no_mem)?,
        bounce: arena.bytes(BOUNCE_LEN).ok_or_else(no_mem)?,
        volatile: {
            // SAFETY: `job.regs` points at the registers saved by `migrate_checkpoint`.
            let rsp = unsafe { (*job.regs).rsp };
            (
                rsp.saturating_sub(STACK_SLACK),
                rsp + 2 * dumpfmt::PAGE_SIZE,
            )
        },
        chunker: compress::start(arena, out, in_tree, settings.log)?,
    };
    for &(start, end, readable, select) in work.as_slice() {
        let stored_before = runs.as_slice().len();
        chain.dump(&mut scan, start, end, readable, select, &mut runs, out)?;
        if select == pages::Select::Lazy {
            from_lazy += runs.as_slice()[stored_before..]
                .iter()
                .map(|r| r.pages)
                .sum::<u64>();
        }
    }
    // The data of large unnamed files follows the memory's.
    let stored_files = bigfiles::write(&mut scan, out, descriptors.files, arena)?;
    let compression = compress::finish(scan.chunker.take(), out)?;
    job.pages = runs.as_slice().iter().map(|r| r.pages).sum();
    if job.snap_side == SNAP_WRITER {
        // Told long before the pages are written.
        if let Some(ns) = snapshot::read_pause(snap_pause_fd) {
            job.snap_pause_ns = ns.clamp(1, dumpfmt::capture::MAX_PAUSE_NS);
        }
        // SAFETY: the writer's only thread.
        unsafe { crate::status::snapshot_writer(job.snap_pause_ns) };
        capture = dumpfmt::Capture {
            mode: dumpfmt::CaptureMode::Snapshot,
            pause_ns: job.snap_pause_ns.min(dumpfmt::capture::MAX_PAUSE_NS),
        };
    }
    let image = Image {
        pid,
        time_ns,
        sequence: settings.sequence,
        exe,
        cpu,
        files: Cow::Borrowed(files.as_slice()),
        mappings: Cow::Borrowed(mappings.as_slice()),
        runs: Cow::Borrowed(runs.as_slice()),
        threads: Cow::Borrowed(threads.as_slice()),
        sigactions: Cow::Borrowed(sigactions),
        mm,
        auxv: Cow::Borrowed(auxv),
        settings: dumpfmt::Settings {
            signal: settings.signal as u8,
            image: Cow::Borrowed(core::str::from_utf8(settings.image.as_bytes()).unwrap_or("")),
            exit_after_dump: settings.exit_after_dump,
            log_level: settings.log as u8,
        },
        fds: Cow::Borrowed(descriptors.fds),
        process,
        minor1: Minor1 {
            credentials: Cow::Borrowed(creds.as_slice()),
            posix_timers: Cow::Borrowed(posix_timers),
        },
        minor2: Minor2 {
            monotonic_ns,
            boottime_ns,
            cpu_ext: sys::cpu_ext(),
            baseline,
            fpstate: Cow::Borrowed(frames.as_slice()),
            xsave: Cow::Borrowed(&xsave[..n_xsave]),
        },
        minor3: Minor3 {
            shared: dumpfmt::Shared {
                memory: Cow::Borrowed(shared_memory.as_slice()),
                fds: Cow::Borrowed(shared_fds),
            },
            members,
        },
        minor4: Minor4 {
            capture,
            // Runs written raw, each page-aligned (see `pages`), and all in
            // this file (none in a parent image) can be mapped from it.
            placement: dumpfmt::Placement {
                mappable: chain.inherited.as_slice().is_empty() && !compression.is_compressed(),
                from_lazy,
            },
            incremental: dumpfmt::Incremental {
                ancestors: Cow::Borrowed(chain.ancestors.as_slice()),
                inherited: Cow::Borrowed(chain.inherited.as_slice()),
            },
            compression,
            sockets,
            signals: dumpfmt::Signals {
                queued: Cow::Borrowed(queued),
                locks: Cow::Borrowed(file_locks),
            },
            procattrs: dumpfmt::ProcAttrs {
                process: Some(proc_attrs),
                threads: Cow::Borrowed(thread_attrs.as_slice()),
                // Read here, by a snapshot's writer where there is one:
                // `/proc/self/smaps` walks every page table, and the
                // program must not wait for it. The writer's mappings
                // carry the program's flags but for `mlock`, which a
                // clone does not inherit (a process with locked memory
                // is dumped stopped: `snapshot::process_obstacle`).
                mappings: Cow::Borrowed(procattrs::mappings(arena, mappings.as_slice())?),
            },
            files: dumpfmt::files::Files {
                fds: Cow::Borrowed(stored_files),
            },
        },
    };
    // Readers refuse metadata over MAX_META_LEN: better a failed dump, with
    // the app going on, than an image no restore takes.
    let room = arena
        .remaining()
        .saturating_sub(8192)
        .min(dumpfmt::MAX_META_LEN as usize);
    let buf = arena.bytes(room).ok_or_else(no_mem)?;
    let too_big = |_| Fail::new("metadata does not fit the dump arena or the image format's limit");
    // The metadata block: `Image`, then the values versions 1.1 to 1.4 added.
    let image_len = postcard::to_slice(&image, buf).map_err(too_big)?.len();
    let rest = buf.get_mut(image_len..).ok_or_else(no_mem)?;
    let minor1_len = postcard::to_slice(&image.minor1, rest)
        .map_err(too_big)?
        .len();
    let rest = buf.get_mut(image_len + minor1_len..).ok_or_else(no_mem)?;
    let minor2_len = postcard::to_slice(&image.minor2, rest)
        .map_err(too_big)?
        .len();
    let rest = buf
        .get_mut(image_len + minor1_len + minor2_len..)
        .ok_or_else(no_mem)?;
    let minor3_len = postcard::to_slice(&image.minor3, rest)
        .map_err(too_big)?
        .len();
    let rest = buf
        .get_mut(image_len + minor1_len + minor2_len + minor3_len..)
        .ok_or_else(no_mem)?;
    let minor4_len = postcard::to_slice(&image.minor4, rest)
        .map_err(too_big)?
        .len();
    let meta: &[u8] = &buf[..image_len + minor1_len + minor2_len + minor3_len + minor4_len];
    let meta_offset = out.pos();
    out.write(meta)?;
    chain.finish(
        job.path.as_bytes(),
        runs.as_slice(),
        out.pos(),
        crc32fast::hash(meta),
    );
    Ok(dumpfmt::Header {
        major: dumpfmt::VERSION_MAJOR,
        minor: dumpfmt::VERSION_MINOR,
        meta_offset,
        meta_len: meta.len() as u64,
        meta_crc: crc32fast::hash(meta),
        file_len: out.pos(),
        flags: 0,
    })
}

/// Index of `path` in `files`, adding it. `None` when the path now names
/// a different file than the mapping's inode.
fn file_index<'a>(
    files: &mut arena::ArenaVec<'a, FileId<'a>>,
    arena: &'a arena::Arena,
    path: &'a [u8],
    inode: u64,
) -> Result<Option<u32>, Fail> {
    if let Some(i) = files
        .as_slice()
        .iter()
        .position(|f| f.path.as_bytes() == path)
    {
        return Ok((files.as_slice()[i].ino == inode).then_some(i as u32));
    }
    let id = file_identity(path, arena)?;
    if id.ino != inode {
        return Ok(None);
    }
    let i = files.len() as u32;
    files
        .push(id)
        .map_err(|_| Fail::new("too many mapped files"))?;
    Ok(Some(i))
}

/// Size, times, inode and ELF build-id of a file.
pub fn file_identity<'a>(path: &'a [u8], arena: &'a arena::Arena) -> Result<FileId<'a>, Fail> {
    let path_str = core::str::from_utf8(path)
        .map_err(|_| Fail::new("file name is not UTF-8: ").bytes(path))?;
    let mut c = Line::<{ PATH_MAX + 1 }>::new();
    c.bytes(path);
    let cpath = c
        .c_str()
        .ok_or_else(|| Fail::new("path too long: ").bytes(path))?;
    // O_NONBLOCK: the path may name a FIFO by now, whose open would wait
    // for a writer with every thread stopped.
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = sys::open(cpath, flags, 0)
        .map_err(|e| Fail::new("cannot open mapped file ").bytes(path).errno(e))?;
    let st = sys::fstat(fd);
    let id_buf = arena.bytes(dumpfmt::BUILD_ID_MAX);
    let mut id = [0u8; dumpfmt::BUILD_ID_MAX];
    let n = dumpfmt::build_id(|off, buf| sys::pread(fd, buf, off).unwrap_or(0), &mut id);
    sys::close(fd);
    let st = st.map_err(|e| Fail::new("cannot stat ").bytes(path).errno(e))?;
    if matches!(st.st_mode & libc::S_IFMT, libc::S_IFCHR | libc::S_IFBLK) {
        return Err(Fail::new("a mapping of device ")
            .bytes(path)
            .str(" cannot be saved"));
    }
    let id_buf = id_buf.ok_or_else(|| Fail::new("the dump arena is too small"))?;
    id_buf[..n].copy_from_slice(&id[..n]);
    Ok(FileId {
        path: Cow::Borrowed(path_str),
        size: st.st_size as u64,
        mtime_sec: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec,
        dev: st.st_dev,
        ino: st.st_ino,
        build_id: Cow::Borrowed(&id_buf[..n]),
    })
}

fn exe_identity(arena: &arena::Arena) -> Result<FileId<'_>, Fail> {
    let buf = arena
        .bytes(PATH_MAX)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    let n = sys::readlink(b"/proc/self/exe\0", buf)
        .map_err(|e| Fail::new("cannot read /proc/self/exe").errno(e))?;
    let buf: &[u8] = buf;
    file_identity(&buf[..n], arena)
}

/// The kernel state of the calling thread that memory does not hold.
pub fn thread_state(regs: &SavedRegs, settings: &crate::config::Settings) -> ThreadState {
    let fs_base = sys::arch_get(sys::ARCH_GET_FS);
    let mut tid_addr = 0u64;
    // SAFETY: PR_GET_TID_ADDRESS writes one word to `tid_addr`.
    let _ = unsafe {
        sys::sys(
            sys::SYS_prctl,
            args!(sys::PR_GET_TID_ADDRESS, &mut tid_addr as *mut u64),
        )
    };
    let (mut head, mut len) = (0u64, 0u64);
    // SAFETY: get_robust_list writes one pointer and one length.
    let _ = unsafe {
        sys::sys(
            sys::SYS_get_robust_list,
            args!(0, &mut head as *mut u64, &mut len as *mut u64),
        )
    };
    let glibc = (settings.rseq_len != 0).then(|| {
        (
            fs_base.wrapping_add(settings.rseq_offset as u64),
            settings.rseq_len,
        )
    });
    let (rseq_addr, rseq_len, rseq_sig) = crate::rseq::registration(glibc);
    ThreadState {
        tid: sys::gettid() as u32,
        context: *regs,
        fs_base,
        gs_base: sys::arch_get(sys::ARCH_GET_GS),
        sigmask: sys::sigmask_get(),
        clear_child_tid: tid_addr,
        robust_list: head,
        robust_list_len: len,
        rseq_addr,
        rseq_len,
        rseq_sig,
        pthread_tid_offset: settings.pthread_tid_offset,
        name: world::thread_name(),
    }
}

/// Every signal disposition that is not the default.
fn signal_actions(arena: &arena::Arena) -> Result<&[SigAction], Fail> {
    let mut v = arena
        .vec::<SigAction>(64)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let Ok(a) = sys::sigaction_get(sig) else {
            continue;
        };
        if a.handler != 0 || a.flags != 0 || a.mask != 0 {
            let rec = SigAction {
                signal: sig as u8,
                handler: a.handler,
                flags: a.flags,
                restorer: a.restorer,
                mask: a.mask,
            };
            let _ = v.push(rec);
        }
    }
    Ok(v.into_slice())
}

/// The memory-descriptor fields, from /proc/self/stat and brk(0).
fn mm_fields() -> Result<MmFields, Fail> {
    let mut buf = [0u8; 2048];
    let n = sys::read_file(b"/proc/self/stat\0", &mut buf)
        .map_err(|e| Fail::new("cannot read /proc/self/stat").errno(e))?;
    let text = &buf[..n];
    // Fields after the command name, which may contain anything but ends at the last ')'.
    let close = text
        .iter()
        .rposition(|&c| c == b')')
        .ok_or_else(|| Fail::new("bad /proc/self/stat"))?;
    let mut fields = [0u64; 52];
    // Field 3 (state) is the first after ')'; numbering follows proc(5).
    for (i, f) in text[close + 1..]
        .split(|&c| c == b' ' || c == b'\n')
        .filter(|f| !f.is_empty())
        .enumerate()
    {
        let k = i + 3;
        if k >= fields.len() {
            break;
        }
        let mut v = 0u64;
        for &c in f {
            if c.is_ascii_digit() {
                v = v.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            }
        }
        fields[k] = v;
    }
    // SAFETY: brk(0) only reports the current break.
    let brk = unsafe { sys::syscall6(sys::SYS_brk, [0; 6]) } as u64;
    Ok(MmFields {
        start_code: fields[26],
        end_code: fields[27],
        start_stack: fields[28],
        start_data: fields[45],
        end_data: fields[46],
        start_brk: fields[47],
        brk,
        arg_start: fields[48],
        arg_end: fields[49],
        env_start: fields[50],
        env_end: fields[51],
    })
}

fn read_auxv(arena: &arena::Arena) -> Result<&[u64], Fail> {
    let buf = arena
        .bytes(4096)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    let n = sys::read_file(b"/proc/self/auxv\0", buf)
        .map_err(|e| Fail::new("cannot read /proc/self/auxv").errno(e))?;
    // SAFETY: the buffer is page-aligned; n / 8 whole words were read.
    Ok(unsafe { core::slice::from_raw_parts(buf.as_ptr().cast::<u64>(), n / 8) })
}

#[cfg(test)]
mod tests {
    use super::cut_out;

    fn pieces(start: u64, end: u64, out: [(u64, u64); 2]) -> Vec<(u64, u64)> {
        cut_out(start, end, [out[0], out[1], (0, 0)])
            .into_iter()
            .filter(|(s, e)| s < e)
            .collect()
    }

    #[test]
    fn cuts_out_our_memory() {
        let far = [(0x9000, 0xa000), (0xb000, 0xc000)];
        assert_eq!(pieces(0x1000, 0x5000, far), [(0x1000, 0x5000)]);
        assert_eq!(
            pieces(0x1000, 0x5000, [(0x2000, 0x3000), (0xb000, 0xc000)]),
            [(0x1000, 0x2000), (0x3000, 0x5000)]
        );
        assert_eq!(
            pieces(0x1000, 0x8000, [(0x5000, 0x6000), (0x2000, 0x3000)]),
            [(0x1000, 0x2000), (0x3000, 0x5000), (0x6000, 0x8000)]
        );
        assert_eq!(
            pieces(0x1000, 0x5000, [(0x0, 0x2000), (0x4000, 0x9000)]),
            [(0x2000, 0x4000)]
        );
        assert_eq!(
            pieces(0x1000, 0x5000, [(0x0, 0x9000), (0xb000, 0xc000)]),
            []
        );
    }
}
