//! Queued signals with their full `siginfo` (issue 12; the dump side and
//! the order are in `crate::dump::queued`): each is queued again where it
//! was, the process's with `rt_sigqueueinfo`, a thread's with
//! `rt_tgsigqueueinfo`, in the order of the image, once every thread
//! exists and before any goes on. Queued by the process to itself, every
//! `si_code` is allowed, so the program takes each with the `siginfo` it
//! had (sender, value, code).
//!
//! Runs in the constructor, before teardown: it only adds calls to the
//! plan.

use dumpfmt::Image;

use super::plan::{Arg, Plan};
use super::{Refusal, exit, refuse};

/// Checks that every queued signal can go back to its thread: a thread
/// other than the main one keeps its TID only in the PID namespace.
pub fn check(image: &Image<'_>, keep_tids: bool) -> Result<(), Refusal> {
    let queued = &image.minor4.signals.queued;
    if let Some(q) = queued
        .iter()
        .find(|q| q.tid != 0 && q.tid != image.pid && !keep_tids)
    {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "signal {} queued for thread {}, whose TID only the PID namespace keeps \
                 (restore without MIGRATE_NAMESPACE=off)",
                q.signo(),
                q.tid
            ),
        ));
    }
    Ok(())
}

/// Appends the main thread's calls: the process's queued signals and
/// its own (the main thread runs the plan's main list: its TID is the
/// PID, which only it may give the `siginfo` of a `kill`).
pub fn ops(plan: &mut Plan, image: &Image<'_>) {
    // This process's PID (the image's only inside a PID namespace).
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    for q in image.minor4.signals.queued.iter() {
        if q.tid == 0 {
            queue(plan, q, pid, None);
        } else if q.tid == image.pid {
            queue(plan, q, pid, Some(pid));
        }
    }
}

/// Appends the calls thread `tid` (not the main thread, which [`ops`]
/// serves) makes to queue its own signals again: only it may give them
/// the `siginfo` of a `tgkill`. Its TID is kept ([`check`]).
pub fn thread_ops(plan: &mut Plan, image: &Image<'_>, tid: u32) {
    if tid == image.pid {
        return;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    for q in image.minor4.signals.queued.iter().filter(|q| q.tid == tid) {
        queue(plan, q, pid, Some(tid));
    }
}

/// Queues `q` to process `pid`, or to its thread `tid`.
fn queue(plan: &mut Plan, q: &dumpfmt::QueuedSignal, pid: u32, tid: Option<u32>) {
    let v = Arg::V;
    let sig = q.signo() as u64;
    let info = plan.data(&q.info);
    let what = format!("restore: cannot queue signal {sig} again");
    match tid {
        None => plan.call(
            libc::SYS_rt_sigqueueinfo,
            &[v(pid.into()), v(sig), Arg::Data(info)],
            v(0),
            &what,
        ),
        Some(tid) => plan.call(
            libc::SYS_rt_tgsigqueueinfo,
            &[v(pid.into()), v(tid.into()), v(sig), Arg::Data(info)],
            v(0),
            &what,
        ),
    }
}
