//! POSIX timers (`timer_create`) come back with their ids, clocks,
//! signals, values, targets and the time they had left.
//!
//! A program keeps a timer's id and uses it later (`timer_settime`,
//! `timer_delete`: Ruby deletes its timer at exit and crashes if that
//! fails), so ids must be the same. Kernels from 6.16 on create a timer
//! with a chosen id after `PR_TIMER_CREATE_RESTORE_IDS`; older ones hand
//! out ids in order from 0 in a new process, so the timers are created in
//! id order with placeholders for the gaps, deleted afterwards. A timer
//! that signals one thread needs that thread's TID: kept inside the PID
//! namespace; without it only the main thread's is known (the process's
//! new PID). The timers are created once every thread exists and armed
//! with the time they had left.

use dumpfmt::{Image, PosixTimer};

use super::plan::{Arg, Plan};
use super::{Refusal, exit, refuse};
use crate::dump::timers::{PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_OFF, RESTORE_IDS_ON, SigEvent};

const RESTORE_IDS_GET: u64 = 2;
/// Most placeholders created to reach an id on an older kernel.
const MAX_PLACEHOLDERS: i32 = 65536;

/// How the timers will be made here, decided before teardown.
pub struct TimerPlan {
    chosen_ids: bool,
    /// This process's PID, the main thread's TID without a namespace.
    pid: i32,
}

fn kernel_chooses_ids() -> bool {
    // SAFETY: a prctl that only reports a flag.
    unsafe { libc::prctl(PR_TIMER_CREATE_RESTORE_IDS as i32, RESTORE_IDS_GET, 0, 0, 0) >= 0 }
}

/// Checks that every timer can be made again here.
pub fn check(image: &Image<'_>, keep_tids: bool) -> Result<TimerPlan, Refusal> {
    let timers = &image.minor1.posix_timers;
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let plan = TimerPlan {
        chosen_ids: kernel_chooses_ids(),
        pid,
    };
    for t in timers.iter() {
        if let Some((tid, true)) = crate::dump::timers::cpu_clock(t.clock)
            && tid != 0
            && !keep_tids
        {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!(
                    "POSIX timer {} counts the CPU time of thread {tid}, whose TID only the PID \
                     namespace keeps (restore without MIGRATE_NAMESPACE=off)",
                    t.id
                ),
            ));
        }
        if t.notify & libc::SIGEV_THREAD_ID != 0 && !keep_tids && t.tid != image.pid as i32 {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!(
                    "POSIX timer {} signals thread {}, whose TID only the PID namespace keeps \
                     (restore without MIGRATE_NAMESPACE=off, where user namespaces work)",
                    t.id, t.tid
                ),
            ));
        }
        if t.id < 0 || !plan.chosen_ids && t.id >= MAX_PLACEHOLDERS && !remade(t, &plan) {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!(
                    "POSIX timer {} cannot be made with that id on this kernel (it needs 6.16 or later)",
                    t.id
                ),
            ));
        }
    }
    if !plan.chosen_ids && !timers.is_empty() {
        let now = std::fs::read_to_string("/proc/self/timers").unwrap_or_default();
        if !now.is_empty() {
            return Err(refuse(
                exit::UNSUPPORTED,
                "this process already has POSIX timers: their ids would collide",
            ));
        }
    }
    Ok(plan)
}

/// Whether `t` is the shim's periodic timer with an id this kernel cannot
/// reach: it is left to the restored shim, which makes it again with the
/// next free id (`dump::periodic::after_restore`). No program knows its
/// id, so an image made where the shim could choose one (`INT_MAX`)
/// still restores on a kernel before 6.16.
fn remade(t: &PosixTimer, how: &TimerPlan) -> bool {
    t.value == crate::dump::periodic::TICK_MAGIC && !how.chosen_ids && t.id >= MAX_PLACEHOLDERS
}

/// Appends the calls that make and arm every timer.
pub fn ops(plan: &mut Plan, image: &Image<'_>, how: &TimerPlan, keep_tids: bool) {
    let timers = &image.minor1.posix_timers;
    if timers.is_empty() {
        return;
    }
    let v = Arg::V;
    let what = "restore: cannot make a POSIX timer again";
    if how.chosen_ids {
        plan.call(
            libc::SYS_prctl,
            &[
                v(PR_TIMER_CREATE_RESTORE_IDS),
                v(RESTORE_IDS_ON),
                v(0),
                v(0),
                v(0),
            ],
            v(0),
            what,
        );
        // The shim's periodic timer first: the kernel's next id follows
        // the last one made, which is then the program's highest, as in
        // a process without the shim.
        let tick = |t: &&PosixTimer| t.value == crate::dump::periodic::TICK_MAGIC;
        let (ours, theirs): (Vec<&PosixTimer>, Vec<&PosixTimer>) = timers.iter().partition(tick);
        for t in ours.into_iter().chain(theirs) {
            create(plan, t, image, how, keep_tids);
        }
        plan.call(
            libc::SYS_prctl,
            &[
                v(PR_TIMER_CREATE_RESTORE_IDS),
                v(RESTORE_IDS_OFF),
                v(0),
                v(0),
                v(0),
            ],
            v(0),
            what,
        );
    } else {
        // Ids come in order from 0: fill the gaps with placeholders.
        let mut placeholders = Vec::new();
        let mut next = 0;
        for t in timers.iter().filter(|t| !remade(t, how)) {
            while next < t.id {
                let placeholder = PosixTimer {
                    id: next,
                    clock: libc::CLOCK_MONOTONIC,
                    notify: libc::SIGEV_NONE,
                    ..PosixTimer::default()
                };
                create(plan, &placeholder, image, how, keep_tids);
                placeholders.push(next);
                next += 1;
            }
            create(plan, t, image, how, keep_tids);
            next = t.id + 1;
        }
        for id in placeholders {
            plan.call(libc::SYS_timer_delete, &[v(id as u64)], v(0), what);
        }
    }
    for t in timers.iter().filter(|t| t.value_ns != 0 && !remade(t, how)) {
        let sec = |ns: u64| ns / 1_000_000_000;
        let nsec = |ns: u64| ns % 1_000_000_000;
        let spec = plan.data(&[
            sec(t.interval_ns),
            nsec(t.interval_ns),
            sec(t.value_ns),
            nsec(t.value_ns),
        ]);
        plan.call(
            libc::SYS_timer_settime,
            &[v(t.id as u64), v(0), Arg::Data(spec), v(0)],
            v(0),
            "restore: cannot arm a POSIX timer",
        );
    }
}

fn create(plan: &mut Plan, t: &PosixTimer, image: &Image<'_>, how: &TimerPlan, keep_tids: bool) {
    let tid = if t.notify & libc::SIGEV_THREAD_ID == 0 {
        0
    } else if keep_tids || t.tid != image.pid as i32 {
        t.tid
    } else {
        how.pid
    };
    let ev = plan.data(&SigEvent {
        value: t.value,
        signo: t.signal,
        notify: t.notify,
        tid,
        pad: [0; 11],
    });
    // A clock of this process by its PID (`clock_getcpuclockid`): its new
    // PID without the namespace.
    let clock = match crate::dump::timers::cpu_clock(t.clock) {
        Some((pid, false)) if pid == image.pid as i32 && !keep_tids => {
            (!how.pid) << 3 | (t.clock & 7)
        }
        _ => t.clock,
    };
    let id = plan.data(&t.id);
    plan.call(
        libc::SYS_timer_create,
        &[Arg::V(clock as i64 as u64), Arg::Data(ev), Arg::Data(id)],
        Arg::V(0),
        "restore: cannot make a POSIX timer again",
    );
}
