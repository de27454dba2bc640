//! The last steps of a restore, run by the restored process itself.
//!
//! # Rules
//!
//! This code runs in the restored copy of the shim, inside the signal
//! handler that took the dump, in a process whose libc is in whatever
//! state the dump caught it: the same rules as the dump path hold (no
//! heap, no locks, no libc, no panics; raw system calls only). The handoff
//! block lives in the restorer's mapping, which this code unmaps once it
//! has copied what it needs.

use crate::config::{PATH_MAX, SETTINGS, level};
use crate::dump::world::WORLD;
use crate::sys;
use crate::sys::line::{Line, emit_parts};
use core::sync::atomic::Ordering::{AcqRel, Acquire, Release};

pub const HANDOFF_MAGIC: u64 = 0x6d69_6772_6174_6501;

/// What the constructor of the relaunched process passes to the restored
/// one: overrides from its environment, and the restorer mapping to remove.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Handoff {
    pub magic: u64,
    pub gap_start: u64,
    pub gap_len: u64,
    pub started_ns: u64,
    /// New dump signal, or 0 to keep.
    pub signal: i64,
    /// 0 continue, 1 exit, -1 keep.
    pub exit_after_dump: i64,
    /// Log level, or -1 to keep.
    pub log: i64,
    /// Length of `image` (0: keep the old pattern).
    pub image_len: u64,
    pub image: [u8; PATH_MAX],
    pub from_len: u64,
    pub from: [u8; PATH_MAX],
    /// Threads that will come back; the last one to arrive finishes.
    pub threads: u64,
    /// MIGRATE_EXTERNAL: 1 refuse, 0 gone, -1 keep.
    pub refuse_external: i64,
    /// MIGRATE_CHILDREN: 0 refuse, 1 leave, 2 tree, -1 keep.
    pub children: i64,
    /// Length of the `MIGRATE_RESTORE_CHECK` path, whose bytes follow
    /// this block (0: no check; see `restore::check`).
    pub check_len: u64,
    /// MIGRATE_INTERVAL in nanoseconds, or -1 to keep.
    pub interval_ns: i64,
    /// MIGRATE_KEEP, or -1 to keep.
    pub keep: i64,
    /// The signal frames this kernel writes, to rewrite the threads' own
    /// to (see `cpu::fix_frame`).
    pub frame: crate::cpu::KernelFrame,
    /// The PID the user holds and its start time, under which the
    /// restored process writes its status (`crate::status`): the
    /// supervisor's in a PID namespace, else 0 (the process's own).
    pub status_pid: i64,
    pub status_starttime: u64,
    /// Device and inode of the image a lazy restore mapped ((0, 0):
    /// none; see `restore::lazy`).
    pub lazy_source: (u64, u64),
    /// MIGRATE_SNAPSHOT: 1 snapshot, 0 stop, -1 keep.
    pub snapshot: i64,
    /// MIGRATE_COMPRESS's level (0: none), or -1 to keep.
    pub compress: i64,
}

/// Called by every thread of a restored process when `migrate_checkpoint`
/// returns in it (the leader's and the parked threads' alike). Each thread
/// fixes what is its own; the last to arrive finishes the restore and lets
/// them all go.
///
/// This runs on each thread's own stack, below the signal frame, and a
/// thread may have as little as glibc's 16 KiB `PTHREAD_STACK_MIN` in all:
/// nothing here or in [`finish`] keeps more than a few hundred bytes on
/// the stack (the handoff is read where it lies, never copied).
///
/// # Safety
/// `uc` is null or the context of the signal frame this thread will
/// return through (see `cpu::fix_frame`).
pub unsafe fn after_restore(handoff: u64, uc: *mut libc::ucontext_t) {
    let h = handoff as *const Handoff;
    // SAFETY: the restorer passes the address of the handoff block, mapped
    // until the last thread arrives (below), which unmaps it.
    let (magic, threads) = unsafe { ((*h).magic, (*h).threads) };
    if magic != HANDOFF_MAGIC {
        sys::exit_group(71);
    }
    // The frame this thread returns through, in this kernel's layout.
    // SAFETY: as above; `frame` is read where it lies, not copied; `uc`
    // is the caller's promise.
    if !unsafe { crate::cpu::fix_frame(uc, &(*h).frame) } {
        Line::<120>::new()
            .str("migrate: restore failed after teardown: thread ")
            .dec(sys::gettid() as u64)
            .str("'s saved vector state does not fit this CPU's layout")
            .emit();
        sys::exit_group(71);
    }
    // SAFETY: reading the settings; only the last thread writes them, below,
    // after every other thread has passed this point.
    let tid_offset = unsafe { SETTINGS.get() }.pthread_tid_offset;
    // glibc caches the thread's TID in its thread descriptor; raise() and
    // pthread_kill use it. Without a PID namespace the TID is new.
    if tid_offset != 0 {
        let fs = sys::arch_get(sys::ARCH_GET_FS);
        // SAFETY: the offset was checked at start-up to hold the TID inside
        // glibc's (restored, mapped) thread descriptor.
        unsafe { ((fs + u64::from(tid_offset)) as *mut i32).write_volatile(sys::gettid()) };
    }
    let go = WORLD.go.load(Acquire);
    if u64::from(WORLD.arrived.fetch_add(1, AcqRel)) + 1 < threads {
        while WORLD.go.load(Acquire) == go {
            sys::futex_wait(&WORLD.go, go, 0);
        }
        super::check::hold();
        return;
    }
    // SAFETY: as above; every other thread waits on `go`.
    unsafe { super::check::arm(h) };
    // SAFETY: as above; every other thread now waits on `go`, and the
    // handoff stays mapped until `finish` unmaps it last.
    finish(unsafe { &*h });
    // SAFETY: `uc` is the caller's promise.
    let hold = unsafe { super::check::fire(uc) };
    WORLD.pid.store(0, Release);
    WORLD.leader.store(0, Release);
    WORLD.slots.store(core::ptr::null_mut(), Release);
    WORLD.inside.store(0, Release);
    WORLD.go.fetch_add(1, AcqRel);
    sys::futex_wake_all(&WORLD.go);
    if hold {
        super::check::hold();
    }
}

/// Applies the relaunch's overrides, logs, and unmaps the restorer's
/// mapping (which holds `h`: nothing may read `h` after that).
#[inline(never)]
fn finish(h: &Handoff) {
    // SAFETY: the other threads wait on `go`; this is the only access.
    let s = unsafe { SETTINGS.get() };
    let signal_before = s.signal;
    if h.signal > 0 && h.signal as i32 != s.signal {
        move_handler(s.signal, h.signal as i32);
        s.signal = h.signal as i32;
    }
    if h.exit_after_dump >= 0 {
        s.exit_after_dump = h.exit_after_dump == 1;
    }
    if h.log >= 0 {
        s.log = level(h.log as u8);
    }
    if h.refuse_external >= 0 {
        s.refuse_external = h.refuse_external == 1;
    }
    if h.children >= 0 {
        s.children = h.children as u8;
    }
    if h.snapshot >= 0 {
        s.snapshot = h.snapshot == 1;
    }
    if h.compress >= 0 {
        crate::dump::compress::set_level(h.compress as i32);
    }
    if h.image_len > 0 {
        s.image.clear();
        s.image
            .bytes(&h.image[..(h.image_len as usize).min(PATH_MAX)]);
    }
    crate::dump::periodic::after_restore(&crate::dump::periodic::Relaunch {
        signal_before,
        signal_now: s.signal,
        interval_ns: (h.interval_ns >= 0).then_some(h.interval_ns as u64),
        keep: (h.keep >= 0).then_some(h.keep as u32),
    });
    super::lazy::set_source(h.lazy_source.0, h.lazy_source.1);
    // SAFETY: every other thread waits on `go`.
    unsafe { crate::status::at_resume(h.status_pid as i32, h.status_starttime) };
    if s.log >= crate::config::LogLevel::Info {
        let mut tail = Line::<80>::new();
        tail.str(" as pid ")
            .dec(sys::getpid() as u64)
            .str(" (")
            .ms(sys::monotonic_ns().saturating_sub(h.started_ns))
            .str(")");
        let from = &h.from[..(h.from_len as usize).min(PATH_MAX)];
        emit_parts(&[b"migrate: restored ", from, tail.as_bytes()]);
    }
    let (start, len) = (h.gap_start, h.gap_len);
    // SAFETY: every thread has left the restorer mapping (each arrived
    // here on its own stack) and `h`, which lies in it, is not read again.
    let _ = unsafe { sys::munmap(start, len) };
}

/// Moves the shim's handler from signal `old` to `new`. The program's own
/// action for `new` becomes the one it keeps in reserve; its reserved
/// action for `old` is installed there.
fn move_handler(old: i32, new: i32) {
    let Ok(ours) = sys::sigaction_get(old) else {
        return;
    };
    let theirs_new = sys::sigaction_get(new).unwrap_or_default();
    // SAFETY: every other thread waits on `go`; only this one touches it.
    let reserved = unsafe { crate::interpose::APP_ACTION.get() };
    let mut back = *reserved;
    if back.handler > 1 {
        // A real handler needs the sigreturn trampoline glibc gave ours.
        back.flags |= sys::SA_RESTORER;
        back.restorer = ours.restorer;
    }
    *reserved = theirs_new;
    // SAFETY: `ours` is the shim's own disposition, valid in this process;
    // `back` is the program's own handler with glibc's trampoline.
    unsafe {
        let _ = sys::sigaction_set(new, &ours);
        let _ = sys::sigaction_set(old, &back);
    }
}
