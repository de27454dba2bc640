//! Stopping the world: every thread but the leader parks in the signal
//! handler until the image is written.
//!
//! # Rules
//!
//! Signal-handler code, as the rest of `dump` (no heap, no locks, no libc,
//! no panics). Coordination is by atomics and futexes in static memory.
//!
//! The thread that receives a user's dump signal leads: it claims
//! [`World::leader`], publishes an array of [`Slot`]s, and sends every other
//! thread the same signal with `si_code = SI_QUEUE` and a magic value (a
//! *park request*). A parked thread saves its registers and kernel state
//! in a slot, counts itself in [`World::parked`] and waits on
//! [`World::release`]. The leader re-reads `/proc/self/task` until every
//! thread it lists is parked: once that holds, no thread can start another.
//! A thread that does not park within [`PARK_TIMEOUT_NS`] fails the dump;
//! every thread is released either way.

use core::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering::*};

use dumpfmt::{Credentials, ThreadState};

use crate::config::{SETTINGS, Settings};
use crate::dump::arena::Arena;
use crate::dump::{Fail, thread_state};
use crate::sys;
use crate::sys::context::{RESUMED, SavedRegs, migrate_checkpoint};

/// `si_value` of a park request.
pub const PARK_MAGIC: u64 = 0x7061_726b_4d49_4752;
/// How long the leader waits for every thread to park.
pub const PARK_TIMEOUT_NS: u64 = 5_000_000_000;
/// Most threads a dump can stop.
pub const MAX_THREADS: usize = 16384;

/// One parked thread.
#[repr(C)]
pub struct Slot {
    pub tid: AtomicI32,
    /// 1 once `state` is complete.
    pub ready: AtomicU32,
    pub regs: SavedRegs,
    pub state: ThreadState,
    pub creds: Credentials,
    /// Timer slack and parent-death signal.
    pub attrs: dumpfmt::ThreadAttrs,
    /// The xsave area of the thread's signal frame (0: none).
    pub fpstate: u64,
}

pub struct World {
    /// TID of the thread leading a dump, 0 when none.
    pub leader: AtomicI32,
    /// PID of the process whose thread leads: a child forked during a
    /// dump inherits this memory, and must not wait for that dump.
    pub pid: AtomicI32,
    pub slots: AtomicPtr<Slot>,
    pub claimed: AtomicUsize,
    /// Threads whose slot is complete (a futex word).
    pub parked: AtomicU32,
    /// Bumped to let parked threads go (a futex word).
    pub release: AtomicU32,
    /// Threads that came back in a restored process (see `restore::resume`).
    pub arrived: AtomicU32,
    /// Bumped when every restored thread has arrived (a futex word).
    pub go: AtomicU32,
    /// Threads between starting to park and being done with their slot
    /// (a futex word): the leader unmaps the slots only when it is 0.
    pub inside: AtomicU32,
}

pub static WORLD: World = World {
    leader: AtomicI32::new(0),
    pid: AtomicI32::new(0),
    slots: AtomicPtr::new(core::ptr::null_mut()),
    claimed: AtomicUsize::new(0),
    parked: AtomicU32::new(0),
    release: AtomicU32::new(0),
    arrived: AtomicU32::new(0),
    go: AtomicU32::new(0),
    inside: AtomicU32::new(0),
};

/// Forgets a dump that a forked child inherited from its parent's memory.
pub fn forget_inherited() {
    let pid = WORLD.pid.load(SeqCst);
    if pid != 0 && pid != sys::getpid() {
        WORLD.slots.store(core::ptr::null_mut(), SeqCst);
        WORLD.claimed.store(0, SeqCst);
        WORLD.parked.store(0, SeqCst);
        WORLD.inside.store(0, SeqCst);
        WORLD.pid.store(0, SeqCst);
        WORLD.leader.store(0, SeqCst);
    }
}

/// Whether a signal is a park request from this process's leader.
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to the handler.
pub unsafe fn is_park_request(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: the kernel's siginfo is 128 readable bytes.
    let b = unsafe { core::slice::from_raw_parts(info.cast::<u8>(), 32) };
    let code = i32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let pid = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
    let value = u64::from_ne_bytes([b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31]]);
    code == libc::SI_QUEUE && pid == sys::getpid() && value == PARK_MAGIC
}

/// Parks the calling thread if a dump is collecting threads; returns once
/// it is released (or, in a restored process, once every thread is back).
///
/// # Safety
/// `uc` is null or the context the kernel passed to the signal handler
/// this runs in.
pub unsafe fn park(uc: *mut libc::ucontext_t) {
    // Order matters (see `release_all`): the release round first, then our
    // presence, then whether a dump is collecting.
    let round = WORLD.release.load(SeqCst);
    WORLD.inside.fetch_add(1, SeqCst);
    let slots = WORLD.slots.load(SeqCst);
    if slots.is_null() {
        // A late request from a dump that already finished.
        leave();
        return;
    }
    let idx = WORLD.claimed.fetch_add(1, AcqRel);
    if idx >= MAX_THREADS {
        leave();
        return;
    }
    // SAFETY: `slots` holds MAX_THREADS slots in the leader's arena, which
    // stays mapped while `inside` counts this thread; slot `idx` is ours alone.
    let slot = unsafe { &mut *slots.add(idx) };
    slot.tid.store(sys::gettid(), Release);
    // SAFETY: the caller's promise.
    slot.fpstate = unsafe { super::frame_fpstate(uc) };
    let mut job = ParkJob { slot, round };
    // SAFETY: `slot.regs` outlives the call; `park_body` receives the job.
    let out = unsafe {
        migrate_checkpoint(
            &mut slot.regs,
            park_body,
            (&mut job as *mut ParkJob).cast(),
            0,
        )
    };
    if out.status == RESUMED {
        // SAFETY: `uc` is this thread's frame, restored with its stack.
        unsafe { crate::restore::resume::after_restore(out.handoff, uc) };
    }
}

struct ParkJob {
    slot: *mut Slot,
    round: u32,
}

fn leave() {
    if WORLD.inside.fetch_sub(1, SeqCst) == 1 {
        sys::futex_wake_all(&WORLD.inside);
    }
}

extern "C" fn park_body(arg: *mut u8) -> u64 {
    // SAFETY: `arg` is the `ParkJob` of `park`, whose slot is this thread's.
    let job = unsafe { &mut *arg.cast::<ParkJob>() };
    // SAFETY: as in `park`.
    let slot = unsafe { &mut *job.slot };
    // SAFETY: the leader wrote the settings before publishing the slots and
    // does not change them while threads park; reading is race-free.
    let settings: &Settings = unsafe { SETTINGS.get() };
    // Before the slot is complete: the leader's image has them all.
    crate::dump::queued::take();
    slot.state = thread_state(&slot.regs, settings);
    slot.creds = sys::creds::current();
    slot.attrs = crate::dump::procattrs::thread();
    slot.ready.store(1, Release);
    WORLD.parked.fetch_add(1, AcqRel);
    sys::futex_wake_all(&WORLD.parked);
    // The slot may be unmapped once we leave: touch nothing of it after.
    leave();
    let round = job.round;
    while WORLD.release.load(Acquire) == round {
        sys::futex_wait(&WORLD.release, round, 0);
    }
    0
}

/// Stops every other thread; returns the parked threads' slots.
pub fn stop_others(arena: &Arena) -> Result<&[Slot], Fail> {
    let stopped = stop(arena);
    // Every thread is parked (a timer helper inside the lent handler), or
    // none will be: glibc's SIGSETXID handler is back either way, and no
    // fork is in flight.
    crate::dump::timer_helper::give_back();
    crate::sys::transient::defer(false);
    stopped
}

fn stop(arena: &Arena) -> Result<&[Slot], Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let slots = arena.vec::<Slot>(MAX_THREADS).ok_or_else(no_mem)?;
    let base = slots.into_raw();
    // A restored process counts its threads back in from zero (this
    // memory is part of the image).
    WORLD.arrived.store(0, Release);
    WORLD.claimed.store(0, Release);
    WORLD.parked.store(0, Release);
    WORLD.slots.store(base, Release);
    let me = sys::gettid();
    // SAFETY: settings are only read here.
    let sig = unsafe { SETTINGS.get() }.signal;
    let mut signaled = arena.vec::<i32>(MAX_THREADS).ok_or_else(no_mem)?;
    // glibc's helper of SIGEV_THREAD timers blocks the dump signal: its
    // park request goes on SIGSETXID.
    let helpers = crate::dump::timer_helper::candidates(arena);
    let mut helper = Ok(());
    let deadline = sys::monotonic_ns() + PARK_TIMEOUT_NS;
    loop {
        let seen = WORLD.parked.load(Acquire);
        let mut all_parked = true;
        let mut straggler = 0;
        let mut full = false;
        let listed = sys::for_each_dir_entry(b"/proc/self/task\0", |name| {
            let Some(tid) = sys::parse_dec(name).map(|t| t as i32) else {
                return;
            };
            if tid == me || is_parked(base, tid) {
                return;
            }
            all_parked = false;
            straggler = tid;
            if !signaled.as_slice().contains(&tid) {
                let by = match helpers.park_signal(tid, sig) {
                    Ok(by) => by,
                    Err(e) => {
                        if helper.is_ok() {
                            helper = Err(e);
                        }
                        sig
                    }
                };
                // ESRCH: it exited meanwhile; the next listing will not show it.
                let _ = sys::queue_signal_to_thread(tid, by, PARK_MAGIC);
                full |= signaled.push(tid).is_err();
            }
        });
        listed.map_err(|e| Fail::new("cannot list /proc/self/task").errno(e))?;
        core::mem::replace(&mut helper, Ok(()))?;
        if full {
            return Err(Fail::new("more than ")
                .dec(MAX_THREADS as u64)
                .str(" threads"));
        }
        if all_parked {
            let n = WORLD.claimed.load(Acquire).min(MAX_THREADS);
            // SAFETY: the first `n` slots were claimed; all listed threads are
            // parked, so every claimed slot is complete and nothing writes them.
            return Ok(unsafe { core::slice::from_raw_parts(base, n) });
        }
        let now = sys::monotonic_ns();
        if now >= deadline {
            if is_zombie(straggler) {
                return Err(Fail::new("thread ")
                    .dec(straggler as u64)
                    .str(" has exited but the process goes on (pthread_exit from main): such a process cannot be dumped"));
            }
            return Err(Fail::new("thread ")
                .dec(straggler as u64)
                .str(" did not stop within 5 s (does it block signal ")
                .dec(sig as u64)
                .str("?)"));
        }
        sys::futex_wait(&WORLD.parked, seen, (deadline - now).min(20_000_000));
    }
}

/// Whether thread `tid` of this process is a zombie (state `Z`).
fn is_zombie(tid: i32) -> bool {
    let mut path = crate::sys::line::Line::<64>::new();
    path.str("/proc/self/task/").dec(tid as u64).str("/stat");
    let mut buf = [0u8; 512];
    let Some(Ok(n)) = path.c_str().map(|p| sys::read_file(p, &mut buf)) else {
        return false;
    };
    let text = &buf[..n];
    // The state follows the command name, which ends at the last ')'.
    text.iter()
        .rposition(|&c| c == b')')
        .and_then(|i| text.get(i + 2))
        == Some(&b'Z')
}

fn is_parked(base: *const Slot, tid: i32) -> bool {
    let n = WORLD.claimed.load(Acquire).min(MAX_THREADS);
    (0..n).any(|i| {
        // SAFETY: slot `i` < claimed lies in the published array.
        let s = unsafe { &*base.add(i) };
        s.ready.load(Acquire) == 1 && s.tid.load(Acquire) == tid
    })
}

/// Lets every parked thread go and forgets the slots; returns once no
/// thread touches them any more, so the caller may unmap them.
pub fn release_all() {
    // A parker reads `release`, counts itself `inside`, then reads `slots`;
    // this side clears `slots`, bumps `release`, then waits for `inside`.
    // Either the parker sees no slots, or this side sees it inside; and a
    // parker that read `release` before the bump never waits on it.
    WORLD.slots.store(core::ptr::null_mut(), SeqCst);
    WORLD.release.fetch_add(1, SeqCst);
    sys::futex_wake_all(&WORLD.release);
    loop {
        let n = WORLD.inside.load(SeqCst);
        if n == 0 {
            break;
        }
        sys::futex_wait(&WORLD.inside, n, 10_000_000);
    }
}

/// The thread's name, from /proc/thread-self/comm.
pub fn thread_name() -> [u8; 16] {
    let mut name = [0u8; 16];
    let mut buf = [0u8; 32];
    if let Ok(n) = sys::read_file(b"/proc/thread-self/comm\0", &mut buf) {
        let text = buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]);
        let k = text.len().min(15);
        name[..k].copy_from_slice(&text[..k]);
    }
    name
}
