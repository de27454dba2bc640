//! Periodic dumps (`MIGRATE_INTERVAL`).
//!
//! One POSIX timer on `CLOCK_MONOTONIC` sends the dump signal to the
//! process (`SIGEV_SIGNAL`) with [`TICK_MAGIC`] as its value, so that the
//! handler tells a tick from a user's signal (and says `periodic` in its
//! log line). No thread is added, and the program's own timers, signals
//! and handlers are not touched: on kernels with
//! `PR_TIMER_CREATE_RESTORE_IDS` (6.16 and later) the timer is made with
//! the id [`TIMER_ID`] (`INT_MAX`), far above the ids the kernel hands
//! out in order from 0 and chosen so that the kernel's next id is 0 again:
//! the program's own `timer_create` calls get the ids they get without
//! the shim. On older kernels it takes the first free id (0 in a
//! new process) and the program's ids are one higher.
//!
//! The timer is a POSIX timer like any other: a dump saves it
//! (`dump::timers`) and a restore makes it again with its id, signal,
//! value and the time it had left (`restore::timers`), so a restored
//! process goes on dumping. A restore that moves the dump signal or sets
//! `MIGRATE_INTERVAL` makes it again ([`after_restore`]). A forked child
//! has no POSIX timers; `MIGRATE_INTERVAL` and `MIGRATE_KEEP` are removed
//! from the environment by the constructor, so an exec'd program does not
//! start a timer of its own either.
//!
//! A tick during a dump: the handler runs with every signal blocked, so a
//! tick that comes while a dump is written stays pending (later ones only
//! count as overruns) and would start another dump the moment the first
//! ends. A tick that comes less than half an interval after a dump (of
//! any kind) ended is therefore skipped; one that comes while another
//! thread leads a dump parks like any thread. With
//! `MIGRATE_AFTER_DUMP=exit` the first periodic dump ends the program.
//!
//! # Rules
//!
//! [`configure`] and [`start`] run in the constructor; everything else in
//! the signal handler, or in a restored process as it resumes: the dump
//! path's rules hold (no heap, no locks, no libc, no panics; raw system
//! calls only), and [`start`] keeps them too, since a restore calls it.

use core::sync::atomic::Ordering::{Acquire, Release};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

use super::timers::{PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_OFF, RESTORE_IDS_ON, SigEvent};
use crate::sys::line::{Line, errno_name};
use crate::sys::{self, Errno, args};

/// `sigev_value` of the periodic timer ("tickMIGR").
pub const TICK_MAGIC: u64 = 0x7469_636b_4d49_4752;
/// The periodic timer's id where the kernel lets us choose. The kernel
/// hands out the next id after a chosen one (`id + 1`, kept positive by
/// masking with `INT_MAX`): after `INT_MAX` that is 0 again, so the
/// program's first timer gets 0, as without the shim.
pub const TIMER_ID: i32 = i32::MAX;
/// `si_code` of a POSIX timer's signal.
const SI_TIMER: i32 = -2;

/// Nanoseconds between periodic dumps (0: none).
pub static INTERVAL_NS: AtomicU64 = AtomicU64::new(0);
/// How many images to keep (0: all; see `keep`).
pub static KEEP: AtomicU32 = AtomicU32::new(0);
/// The periodic timer's id (-1: none).
pub static TIMER: AtomicI32 = AtomicI32::new(-1);
/// The process that made [`TIMER`]: a forked child has a copy of the
/// static but no timer (the kernel does not copy POSIX timers), and the
/// id may be one of the child's own timers.
static OWNER: AtomicI32 = AtomicI32::new(0);
/// Monotonic time the last dump ended (0: none yet in this process).
static LAST_END: AtomicU64 = AtomicU64::new(0);

/// Records the settings (the constructor, before the handler exists).
pub fn configure(interval_ns: Option<u64>, keep: Option<u32>) {
    INTERVAL_NS.store(interval_ns.unwrap_or(0), Release);
    KEEP.store(keep.unwrap_or(0), Release);
}

/// Makes and arms the timer if an interval is set and there is none yet.
pub fn start(signal: i32) -> Result<(), Errno> {
    let interval = INTERVAL_NS.load(Acquire);
    if interval == 0 || TIMER.load(Acquire) >= 0 {
        return Ok(());
    }
    let id = create(signal)?;
    let sec = (interval / 1_000_000_000) as i64;
    let nsec = (interval % 1_000_000_000) as i64;
    let spec = [sec, nsec, sec, nsec];
    // SAFETY: timer_settime reads one struct itimerspec; no old value.
    let armed = unsafe { sys::sys(libc::SYS_timer_settime, args!(id, 0, spec.as_ptr(), 0)) };
    if let Err(e) = armed {
        // SAFETY: deletes the timer just made, which nothing else knows.
        let _ = unsafe { sys::sys(libc::SYS_timer_delete, args!(id)) };
        return Err(e);
    }
    OWNER.store(sys::getpid(), Release);
    TIMER.store(id, Release);
    Ok(())
}

/// In a dump, before memory is saved: a forked child's copy of its
/// parent's timer id names no timer of its own (or one of the program's),
/// so neither it nor a process restored from its image may use it.
pub fn forget_if_forked() {
    if TIMER.load(Acquire) >= 0 && OWNER.load(Acquire) != sys::getpid() {
        TIMER.store(-1, Release);
    }
}

/// Whether this process has a POSIX timer `id`.
fn exists(id: i32) -> bool {
    let mut spec = [0i64; 4];
    // SAFETY: timer_gettime writes one struct itimerspec into `spec`.
    unsafe { sys::sys(libc::SYS_timer_gettime, args!(id, spec.as_mut_ptr())) }.is_ok()
}

/// Creates the timer, with [`TIMER_ID`] where the kernel takes a chosen id.
fn create(signal: i32) -> Result<i32, Errno> {
    let ev = SigEvent {
        value: TICK_MAGIC,
        signo: signal,
        notify: libc::SIGEV_SIGNAL,
        ..SigEvent::default()
    };
    let prctl = |mode: u64| {
        // SAFETY: a prctl that sets a flag of this process.
        unsafe {
            sys::sys(
                sys::SYS_prctl,
                args!(PR_TIMER_CREATE_RESTORE_IDS, mode, 0, 0, 0),
            )
        }
    };
    let chosen = prctl(RESTORE_IDS_ON).is_ok();
    let mut id: i32 = if chosen { TIMER_ID } else { 0 };
    // SAFETY: timer_create reads a struct sigevent and reads (in restore
    // mode) and writes the timer id.
    let made = unsafe {
        sys::sys(
            libc::SYS_timer_create,
            args!(
                libc::CLOCK_MONOTONIC,
                &ev as *const SigEvent,
                &mut id as *mut i32
            ),
        )
    };
    if chosen {
        let _ = prctl(RESTORE_IDS_OFF);
    }
    made.map(|_| id)
}

/// Whether a signal is a tick of the periodic timer.
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to the handler.
pub unsafe fn is_tick(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: the kernel's siginfo is 128 readable bytes.
    let b = unsafe { core::slice::from_raw_parts(info.cast::<u8>(), 32) };
    let code = i32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let value = u64::from_ne_bytes([b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31]]);
    code == SI_TIMER && value == TICK_MAGIC
}

/// Whether a tick should be skipped: it comes less than half an interval
/// after the last dump ended (it was pending while that dump was written).
pub fn skip_tick() -> bool {
    let last = LAST_END.load(Acquire);
    let now = sys::monotonic_ns();
    let skip = last != 0 && now >= last && now - last < INTERVAL_NS.load(Acquire) / 2;
    // SAFETY: reading the log level, which only the constructor and a
    // restore (every other thread waiting) write.
    let log = unsafe { crate::config::SETTINGS.get() }.log;
    if skip && log >= crate::config::LogLevel::Debug {
        Line::<100>::new()
            .str("migrate: periodic dump skipped (a dump ended ")
            .ms(now - last)
            .str(" ago)")
            .emit();
    }
    skip
}

/// Notes that a dump (of any kind) has just ended.
pub fn dump_ended() {
    LAST_END.store(sys::monotonic_ns(), Release);
}

/// Settings the relaunch of a restore passes on (`None`: keep).
pub struct Relaunch {
    pub signal_before: i32,
    pub signal_now: i32,
    pub interval_ns: Option<u64>,
    pub keep: Option<u32>,
}

/// In a restored process, as it resumes (every other thread waiting):
/// forgets the old process's clock, takes the relaunch's settings, and
/// makes the timer again if its signal or interval changes or the
/// restore could not make it.
pub fn after_restore(r: &Relaunch) {
    // The monotonic clock of another boot or host.
    LAST_END.store(0, Release);
    super::keep::restored();
    super::incremental::restored();
    if let Some(k) = r.keep {
        KEEP.store(k, Release);
    }
    // The image's timer, unless the restore could not make it again (a
    // kernel before 6.16 cannot give it its id, see `restore::timers`):
    // then it is made afresh with the next free id.
    let had = TIMER.load(Acquire);
    let lost = had >= 0 && !exists(had);
    if lost {
        TIMER.store(-1, Release);
    } else if had >= 0 {
        OWNER.store(sys::getpid(), Release);
    }
    let moved = r.signal_now != r.signal_before;
    if !moved && r.interval_ns.is_none() && !lost {
        return;
    }
    if let Some(ns) = r.interval_ns {
        INTERVAL_NS.store(ns, Release);
    }
    let id = TIMER.swap(-1, Release);
    if id >= 0 {
        // SAFETY: the shim's own timer, which nothing else uses.
        let _ = unsafe { sys::sys(libc::SYS_timer_delete, args!(id)) };
    }
    if let Err(e) = start(r.signal_now) {
        Line::<120>::new()
            .str("migrate: cannot make the periodic dump timer again, no periodic dumps: ")
            .str(errno_name(e))
            .emit();
    }
}
