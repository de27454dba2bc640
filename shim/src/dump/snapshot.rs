//! Low-pause dumps (`MIGRATE_SNAPSHOT`, issue 11): the process is stopped
//! only while its state is captured and a copy-on-write snapshot of it is
//! taken; a helper process, the *writer*, writes the image from that
//! snapshot while the process runs on.
//!
//! # Design
//!
//! Everything the image needs that is not private memory is read while
//! every thread is parked, exactly as a stopped dump reads it: registers
//! and xsave frames, the maps, descriptors (their offsets, flags and the
//! contents of unnamed files), timers, signal state, the memory
//! descriptor's fields, credentials, the clocks. It all lands in the
//! dump's arena or on the dump's stack. Then [`split`] clones the process
//! without `CLONE_VM`: the clone's memory is a copy-on-write copy of the
//! process at that instant, arena, collected records and thread frames
//! included. The clone writes the pages and the metadata with the usual
//! writer (temporary file, fsync, rename), reports the outcome in the
//! status file, logs its line and ends with `exit_group`: it never returns
//! into the program, never runs `atexit` handlers or libc.
//!
//! The writer must be invisible to the program:
//! - the process clones an *intermediate* with exit signal 0 (no SIGCHLD;
//!   `wait`/`waitpid(-1)` without `__WALL`/`__WCLONE` never return it),
//!   a `vfork` sharing its memory, which forks the writer and exits at
//!   once (so the page tables are copied once, and the intermediate's exit
//!   tears down no memory: [`clone_writer`]); the process, still in its
//!   handler with every other thread parked, reaps the intermediate by PID
//!   with `__WCLONE`. The writer is an orphan: the kernel hands it to init
//!   or the nearest subreaper (and
//!   sets its exit signal to SIGCHLD for that reaper). So the program never
//!   has it among its children once its threads go on, and no zombie is
//!   left with it. A process that is a child subreaper itself, or a PID
//!   namespace's init, would get the writer back as a child: it is dumped
//!   stopped. In a restored process's PID namespace the writer's reaper is
//!   the namespace's init, whose end kills everything in the namespace:
//!   init waits for the writers (by their name, `migrate-writer`, given by
//!   the intermediate) once the program ended (`restore::namespace`).
//! - the writer `setsid()`s (a signal to the program's process group, a
//!   terminal's Ctrl-C, never reaches it), keeps every signal blocked (the
//!   handler's mask), and closes every descriptor at once but the image's
//!   and stderr (its log line): holding a pipe's write end would delay the
//!   EOF the program's reader waits for. It reopens `/proc/self/pagemap`
//!   and `/proc/self/mem` for its own memory.
//!
//! Memory the copy-on-write copy does not freeze makes the dump a stopped
//! one, with an `info` line naming the mapping: shared memory whose pages
//! the image holds (`MAP_SHARED` anonymous, `/dev/shm`, memfds not open as
//! descriptors, shared writable files), and private mappings of files
//! whose pages the image takes from the file itself (a deleted file).
//! Memory the clone does not get as it was, mappings marked
//! `MADV_DONTFORK` (absent in the clone) or `MADV_WIPEONFORK` (zero in the
//! clone), is found by the writer ([`check_clone`]: its own maps against
//! the program's, and its `/proc/self/smaps`, which walks every page table
//! and would cost the program hundreds of milliseconds of pause on a large
//! heap); the dump then fails naming the mapping (`MIGRATE_SNAPSHOT=stop`
//! dumps it), and the program, reading that outcome back from its status
//! file before its next dump (`status::writer_gone`), dumps stopped from
//! then on until exec ([`learnt_obstacle`]). An image never mixes two
//! instants.
//!
//! A writer whose program ends (is killed) before the image is complete
//! still completes it, of an instant the program lived: nothing partial,
//! nothing lost. But it removes no older image for `MIGRATE_KEEP`
//! ([`program_gone`], through a pidfd the intermediate opens): a program
//! killed during a dump may have been killed for what the newest holds.
//!
//! Dumps after which the process must stay frozen (`exit`, `kill`, `stop`
//! for `migrate send`, `MIGRATE_AFTER_DUMP=exit`), a restore's check dump
//! and process trees keep the stopped dump. A dump that starts while the
//! previous snapshot's writer still writes waits for it first
//! ([`wait_previous`]): two writers renaming to one target could otherwise
//! leave the older image last.
//!
//! Everything the writer changes in memory it shares with nobody; but what
//! it changes in the program's own statics before the pages holding them
//! are written ends up in the image. It therefore keeps its state on the
//! dump's stack (the `Job`, never part of an image); the status module
//! resets what it notes for the writer when a restored process sets up.
//!
//! # Rules
//!
//! The dump path's rules hold here and in the writer, a clone of a process
//! that may have been inside malloc: no heap, no locks, no libc (raw
//! system calls through `crate::sys`), no panics.

#![allow(clippy::result_large_err)]

use core::sync::atomic::AtomicBool;
use core::sync::atomic::AtomicI32;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Acquire, Release};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::line::Line;
use crate::sys::{self, args};

/// The writer of the last snapshot, and its start time (field 22 of its
/// `/proc/PID/stat`, to tell a reused PID); 0: none.
static PREV_WRITER: AtomicI32 = AtomicI32::new(0);
static PREV_START: AtomicU64 = AtomicU64::new(0);

/// A writer found memory a clone does not get (`MADV_DONTFORK`,
/// `MADV_WIPEONFORK`): learnt from its outcome in the status file
/// (`status::writer_gone`), kept until exec; later dumps are stopped.
static UNFORKABLE: AtomicBool = AtomicBool::new(false);

/// The words of a writer's failure that [`UNFORKABLE`] is learnt from.
pub const UNFORKABLE_MARK: &str = ": a copy-on-write snapshot does not hold its memory";

/// Notes that this process's snapshots cannot work (see [`UNFORKABLE`]).
pub fn unforkable_found() {
    UNFORKABLE.store(true, Release);
}

/// Why this process's dumps are stopped from now on, if they are.
pub fn learnt_obstacle() -> Option<&'static str> {
    UNFORKABLE.load(Acquire).then_some(
        "an earlier snapshot found memory a clone does not get (MADV_DONTFORK or MADV_WIPEONFORK)",
    )
}

/// How long a dump waits for the previous snapshot's writer.
const PREVIOUS_WAIT_NS: u64 = 120_000_000_000;

/// Which process returns from [`split`].
pub enum Side {
    /// The program: the writer (PID) writes the image; the program was
    /// stopped `pause_ns` from `started` until its threads may go on.
    App { writer: i32, pause_ns: u64 },
    /// The writer: the program's pause comes through `pause_fd` (see
    /// [`read_pause`]); `program_fd` is a pidfd of the program (-1: the
    /// kernel has none), for [`program_gone`].
    Writer { pause_fd: i32, program_fd: i32 },
}

/// Why this process cannot hand its dump to a writer (`None`: it can).
pub fn process_obstacle() -> Option<&'static str> {
    if sys::getpid() == 1 {
        return Some("this process is its PID namespace's init (the writer would be its child)");
    }
    let mut reaper = 0i32;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int.
    let r = unsafe {
        sys::sys(
            sys::SYS_prctl,
            args!(libc::PR_GET_CHILD_SUBREAPER, &mut reaper as *mut i32),
        )
    };
    if r.is_err() || reaper != 0 {
        return Some("this process is a child subreaper (the writer would be its child)");
    }
    if locked_memory() {
        // A clone does not inherit `mlock`: the writer could not tell
        // which ranges are locked (`dump::procattrs`).
        return Some("this process has locked memory (mlock), which a clone does not inherit");
    }
    None
}

/// Whether `/proc/self/status` counts locked memory (`VmLck:` not 0).
fn locked_memory() -> bool {
    sys::procfields::read_line_field(b"/proc/self/status\0", b"VmLck:", 10)
        .is_some_and(|kb| kb != 0)
}

/// Why a mapping's pages cannot come from the snapshot (`None`: they
/// can): `shared` and `contents` say whether it is a shared mapping, or a
/// private one whose pages the image takes from its file, and the image
/// holds its pages.
pub fn mapping_obstacle(shared: bool, file_contents: bool) -> Option<&'static str> {
    if shared {
        Some(
            "shared memory whose pages the image holds is not frozen by a copy-on-write snapshot: ",
        )
    } else if file_contents {
        Some("a private mapping whose pages come from its file is not frozen by a snapshot: ")
    } else {
        None
    }
}

/// In the writer: fails when memory the image needs did not come into the
/// clone as it was: a range of `work` (the program's mappings whose pages
/// the image holds) that the clone lacks (`MADV_DONTFORK`), or a mapping
/// marked `MADV_WIPEONFORK` (zero in the clone). Read here, in the writer,
/// because `/proc/self/smaps` walks every page table (hundreds of
/// milliseconds for a large heap) and the program must not wait for it.
/// `lines`: how many mappings the program had.
pub fn check_clone(
    arena: &Arena,
    work: &[(u64, u64, bool, crate::dump::pages::Select)],
    lines: usize,
) -> Result<(), Fail> {
    let advice = |what: &[u8], advice: &str| {
        Fail::new("mapping ")
            .bytes(what)
            .str(" is marked ")
            .str(advice)
            .str(UNFORKABLE_MARK)
            .str(" (MIGRATE_SNAPSHOT=stop dumps it; this process's next dumps are stopped)")
    };
    let buf = arena
        .bytes((lines + 16) * 200)
        .ok_or_else(|| Fail::new("the dump arena is too small for /proc/self/maps"))?;
    let n = sys::read_file(b"/proc/self/maps\0", buf)
        .map_err(|e| Fail::new("cannot read /proc/self/maps").errno(e))?;
    let text: &[u8] = &buf[..n];
    for &(start, end, ..) in work {
        let held = crate::dump::maps::lines(text)
            .filter_map(crate::dump::maps::parse_line)
            .any(|m| m.start <= start && end <= m.end);
        if !held {
            let mut range = Line::<40>::new();
            range.hex(start).str("-").hex(end);
            return Err(advice(range.as_bytes(), "MADV_DONTFORK"));
        }
    }
    match unforkable(arena, lines)? {
        Some((what, how)) => Err(advice(what, how)),
        None => Ok(()),
    }
}

/// The first mapping marked `MADV_DONTFORK` or `MADV_WIPEONFORK` (their
/// memory is absent or zero in a clone), as its `/proc/self/smaps` line
/// and the advice; `None` when there is none.
fn unforkable<'a>(
    arena: &'a Arena,
    mappings: usize,
) -> Result<Option<(&'a [u8], &'static str)>, Fail> {
    // About 1.2 KiB of text per mapping; room for twice that.
    let len = (mappings + 16) * 2600;
    let buf = arena
        .bytes(len)
        .ok_or_else(|| Fail::new("the dump arena is too small for /proc/self/smaps"))?;
    let n = sys::read_file(b"/proc/self/smaps\0", buf)
        .map_err(|e| Fail::new("cannot read /proc/self/smaps").errno(e))?;
    let text: &'a [u8] = &buf[..n];
    let mut head: &[u8] = b"";
    for line in text.split(|&c| c == b'\n') {
        if line.first().is_some_and(|c| c.is_ascii_hexdigit()) && line.contains(&b'-') {
            head = line;
        } else if let Some(flags) = line.strip_prefix(b"VmFlags:") {
            for flag in flags.split(|&c| c == b' ').filter(|f| !f.is_empty()) {
                match flag {
                    b"dc" => return Ok(Some((head, "MADV_DONTFORK"))),
                    b"wf" => return Ok(Some((head, "MADV_WIPEONFORK"))),
                    _ => {}
                }
            }
        }
    }
    Ok(None)
}

/// The `info` line of a dump that keeps the process stopped although a
/// snapshot was wanted: `why`, then `what` (a mapping's line, or empty).
pub fn log_stopped(why: &str, what: &[u8]) {
    // SAFETY: reading the log level; the dump's leader holds the settings.
    let log = unsafe { crate::config::SETTINGS.get() }.log;
    if log >= crate::config::LogLevel::Info {
        sys::line::emit_parts(&[
            b"migrate: this dump keeps the process stopped: ",
            why.as_bytes(),
            what,
        ]);
    }
}

/// Clones the writer (see the module's documentation). In the program,
/// returns once the intermediate is reaped and the writer's PID known,
/// with the pause since `started` (which the writer is told); in the
/// writer, once it is set up as a process of its own, keeping only
/// descriptor `keep`, stderr and the pause's pipe.
pub fn split(keep: i32, started: u64) -> Result<Side, Fail> {
    // `back`: the program tells the writer how long it was stopped. A
    // socket pair, written with MSG_NOSIGNAL: a writer that failed at once
    // has closed its end, and a pipe would raise SIGPIPE, which, pending
    // under the handler's mask, would kill the program as the handler
    // returns.
    let mut back = [-1i32; 2];
    // SAFETY: socketpair writes two ints.
    let made = unsafe {
        sys::sys(
            libc::SYS_socketpair,
            args!(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                back.as_mut_ptr()
            ),
        )
    };
    if let Err(e) = made {
        return Err(Fail::new("cannot make a socket pair for the snapshot writer").errno(e));
    }
    // The writer has its name from its first instant (a restored process's
    // init waits for writers by it): this thread wears it while it clones.
    let mut own_name = [0u8; 16];
    // SAFETY: PR_GET_NAME writes at most 16 bytes; PR_SET_NAME reads a
    // NUL-terminated string of at most 16 bytes.
    unsafe {
        let _ = sys::sys(
            sys::SYS_prctl,
            args!(libc::PR_GET_NAME, own_name.as_mut_ptr()),
        );
        let _ = sys::sys(
            sys::SYS_prctl,
            args!(libc::PR_SET_NAME, c"migrate-writer".as_ptr()),
        );
    }
    // The writer keeps a pidfd of the program (see `program_gone`); -1
    // where the kernel has none.
    let program_fd = open_program();
    let mut writer = 0i32;
    // SAFETY: see `clone_writer`; `writer` outlives the call.
    let mid = unsafe { clone_writer(&mut writer) };
    if mid == 0 {
        // -1 (no pidfd) keeps stderr twice rather than nothing.
        become_writer([
            keep,
            2,
            back[0],
            if program_fd >= 0 { program_fd } else { 2 },
        ]);
        return Ok(Side::Writer {
            pause_fd: back[0],
            program_fd,
        });
    }
    if program_fd >= 0 {
        sys::close(program_fd);
    }
    // SAFETY: as above, this thread's own name back.
    let _ = unsafe { sys::sys(sys::SYS_prctl, args!(libc::PR_SET_NAME, own_name.as_ptr())) };
    sys::close(back[0]);
    if mid < 0 {
        sys::close(back[1]);
        return Err(Fail::new("cannot clone the snapshot writer").errno(sys::Errno(-mid as i32)));
    }
    let mut status = 0i32;
    loop {
        // SAFETY: wait4 writes one int; no rusage.
        let r = unsafe {
            sys::sys(
                libc::SYS_wait4,
                args!(mid, &mut status as *mut i32, libc::__WCLONE, 0),
            )
        };
        match r {
            Err(sys::Errno(libc::EINTR)) => {}
            Err(e) => {
                sys::close(back[1]);
                return Err(Fail::new("cannot reap the snapshot's intermediate").errno(e));
            }
            Ok(_) => break,
        }
    }
    // SAFETY: the kernel stored the writer's PID there (CLONE_PARENT_SETTID
    // in the intermediate, which shares this memory) before it exited.
    let writer = unsafe { core::ptr::read_volatile(&writer) };
    if status != 0 || writer <= 0 {
        sys::close(back[1]);
        return Err(Fail::new(
            "cannot clone the snapshot writer (its parent failed)",
        ));
    }
    note_writer(writer);
    let pause_ns = sys::monotonic_ns().saturating_sub(started).max(1);
    let b = pause_ns.to_ne_bytes();
    // SAFETY: sendto reads `b.len()` bytes of `b`; no address. Eight bytes
    // go whole into an empty socket (or not at all: the writer is gone, and
    // then nobody needs them).
    let _ = unsafe {
        sys::sys(
            libc::SYS_sendto,
            args!(back[1], b.as_ptr(), b.len(), libc::MSG_NOSIGNAL, 0, 0),
        )
    };
    sys::close(back[1]);
    Ok(Side::App { writer, pause_ns })
}

/// Clones the intermediate and, from it, the writer, in one assembly
/// block: returns the intermediate's PID (or `-errno`) in the program, 0
/// in the writer; the intermediate never returns.
///
/// The intermediate is a `vfork`: it shares this process's memory
/// (`CLONE_VM`, no page tables copied) and this thread waits until it has
/// exited (`CLONE_VFORK`); exit signal 0 (no SIGCHLD; only a wait with
/// `__WCLONE` or `__WALL` sees it). It runs on this thread's stack, so it
/// writes no memory at all: it forks the writer (the only copy of the page
/// tables the program waits for; the kernel stores the writer's PID at
/// `writer` with `CLONE_PARENT_SETTID`) and exits. Its exit tears down no
/// memory (the program still holds it). The writer, a fork of the
/// intermediate, returns from here on its copy of this stack as it was.
///
/// # Safety
/// `writer` must be valid for a write of an `i32`; the caller must be
/// ready to run on in two processes (the program and the writer).
unsafe fn clone_writer(writer: *mut i32) -> i64 {
    const MID: u64 = (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
    const WRITER: u64 = (libc::SIGCHLD | libc::CLONE_PARENT_SETTID) as u64;
    let ret: i64;
    // SAFETY: the intermediate runs only this block and writes no memory
    // (no stack either: it shares the program's); `syscall` clobbers rcx
    // and r11; the writer leaves with rax 0 and the argument registers
    // changed, which are declared clobbered.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            // The intermediate: fork the writer.
            "mov eax, {clone}",
            "mov rdi, {wflags}",
            "xor esi, esi",
            "mov rdx, r9",
            "xor r10d, r10d",
            "xor r8d, r8d",
            "syscall",
            "test rax, rax",
            "jz 2f",
            // Still the intermediate: exit, 1 if the fork failed.
            "xor edi, edi",
            "test rax, rax",
            "setl dil",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            clone = const libc::SYS_clone,
            wflags = const WRITER,
            exit = const libc::SYS_exit_group,
            inlateout("rax") libc::SYS_clone => ret,
            inlateout("rdi") MID => _,
            inlateout("rsi") 0u64 => _,
            inlateout("rdx") 0u64 => _,
            inlateout("r10") 0u64 => _,
            inlateout("r8") 0u64 => _,
            in("r9") writer,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// The program's pause, as it told the writer through `fd` (closed
/// here); `None` if it could not (it died first).
pub fn read_pause(fd: i32) -> Option<u64> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < b.len() {
        match sys::read(fd, &mut b[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(sys::Errno(libc::EINTR)) => {}
            Err(_) => break,
        }
    }
    sys::close(fd);
    (got == b.len()).then(|| u64::from_ne_bytes(b))
}

/// In the program, before the writer is cloned: a pidfd of itself for the
/// writer (-1: the kernel has no `pidfd_open`).
fn open_program() -> i32 {
    // SAFETY: pidfd_open takes a PID and flags; this process, which is
    // alive (and cannot be another) while it asks.
    match unsafe { sys::sys(libc::SYS_pidfd_open, args!(sys::getpid(), 0)) } {
        Ok(fd) => fd as i32,
        Err(_) => -1,
    }
}

/// In the writer: whether the program has ended (its pidfd `fd` is
/// readable). The writer still completes the image (of an instant the
/// program lived: nothing partial, nothing lost), but removes no older
/// image for `MIGRATE_KEEP`: a program killed during its dump may have been
/// killed for what the newest image holds. With `fd` -1 (no pidfd) the
/// program is taken to live on.
pub fn program_gone(fd: i32) -> bool {
    if fd < 0 {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, no timeout.
    let ready = unsafe { sys::sys(libc::SYS_poll, args!(&mut pfd as *mut libc::pollfd, 1, 0)) };
    ready == Ok(1) && pfd.revents & libc::POLLIN != 0
}

/// The writer's `info` line when its program ended before the image was
/// complete: no older image is removed (`MIGRATE_KEEP`).
pub fn log_kept_old() {
    // SAFETY: reading the log level; the writer's only thread.
    let log = unsafe { crate::config::SETTINGS.get() }.log;
    if log >= crate::config::LogLevel::Info {
        sys::line::emit_parts(&[
            b"migrate: the program ended while its snapshot was written: no older image is removed",
        ]);
    }
}

/// The writer's own set-up: a session of its own, only the descriptors
/// `keep` (the image, stderr for its log line, the pause's socket, the
/// program's pidfd). (Its name, `migrate-writer`, comes from the thread
/// that cloned it.)
fn become_writer(mut keep: [i32; 4]) {
    // SAFETY: setsid takes no arguments (fails only for a group leader,
    // which a fresh clone is not).
    let _ = unsafe { sys::sys(libc::SYS_setsid, [0; 6]) };
    keep.sort_unstable();
    let mut from = 0u32;
    for fd in keep {
        let fd = fd as u32;
        if fd > from {
            // SAFETY: closing descriptors of this process, in which no
            // code of the program runs.
            let _ = unsafe { sys::sys(sys::SYS_close_range, args!(from, fd - 1, 0)) };
        }
        from = from.max(fd + 1);
    }
    // SAFETY: as above.
    let _ = unsafe { sys::sys(sys::SYS_close_range, args!(from, u32::MAX, 0)) };
}

/// Remembers the writer and its start time, for [`wait_previous`].
fn note_writer(pid: i32) {
    PREV_START.store(start_time(pid).map_or(0, |(s, _)| s), Release);
    PREV_WRITER.store(pid, Release);
}

/// The last snapshot's writer and its start time ((0, 0): none).
pub fn last_writer() -> (i32, u64) {
    (PREV_WRITER.load(Acquire), PREV_START.load(Acquire))
}

/// Field 22 (start time) and the state letter of `/proc/PID/stat`.
fn start_time(pid: i32) -> Option<(u64, u8)> {
    let mut path = Line::<40>::new();
    path.str("/proc/").dec(pid as u64).str("/stat");
    let p = path.c_str()?;
    let mut buf = [0u8; 1024];
    let n = sys::read_file(p, &mut buf).ok()?;
    let text = &buf[..n];
    let close = text.iter().rposition(|&c| c == b')')?;
    let state = *text.get(close + 2)?;
    Some((crate::status::stat_starttime(text)?, state))
}

/// Waits until the previous snapshot's writer, if any, is gone.
pub fn wait_previous() -> Result<(), Fail> {
    let pid = PREV_WRITER.load(Acquire);
    if pid <= 0 {
        return Ok(());
    }
    let start = PREV_START.load(Acquire);
    let deadline = sys::monotonic_ns() + PREVIOUS_WAIT_NS;
    loop {
        match start_time(pid) {
            Some((s, state)) if s == start && !matches!(state, b'Z' | b'X') => {}
            _ => break,
        }
        if sys::monotonic_ns() >= deadline {
            return Err(Fail::new("the previous snapshot's writer (pid ")
                .dec(pid as u64)
                .str(") is still writing its image"));
        }
        let ts = [0i64, 1_000_000];
        // SAFETY: nanosleep reads one timespec; no remainder wanted.
        let _ = unsafe { sys::sys(libc::SYS_nanosleep, args!(ts.as_ptr(), 0)) };
    }
    PREV_WRITER.store(0, Release);
    Ok(())
}
