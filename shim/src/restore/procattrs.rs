//! `prctl` state and `oom_score_adj` come back (see `dumpfmt::procattrs`).
//!
//! [`set_before_teardown`] runs while libc works: THP disable, the child
//! subreaper flag and `oom_score_adj` belong to the process (its `mm` and
//! signal struct), which the teardown keeps. `oom_score_adj` cannot
//! always be set: lowering it below what the relaunch inherited needs
//! `CAP_SYS_RESOURCE` (of the initial user namespace, which a restore's
//! own namespace does not give). A value that cannot be set back refuses
//! the restore with one line rather than let the process run with
//! another.
//!
//! [`mapping_ops`] gives the image's mappings their `madvise` and `mlock`
//! state back, once they hold their pages and the process has its
//! resource limits (`RLIMIT_MEMLOCK` bounds `mlock`: an image with more
//! locked memory than the limit allows is refused before teardown); a
//! call that fails fails the restore (exit 71) rather than leave a
//! mapping without it.
//! Then `mlockall(MCL_FUTURE)` (with `MCL_ONFAULT` if the image has it)
//! locks the mappings to come; never `MCL_CURRENT`, which would lock
//! every mapping, also those the program had unlocked since (the ones
//! locked are in the per-mapping state). `MCL_FUTURE` alone needs no
//! `RLIMIT_MEMLOCK` room: only the program's later mappings do, as they
//! did before the dump.
//!
//! [`process_ops`] and [`thread_ops`] add plan calls for what must come
//! after the restorer's other steps: the dumpable flag (a credential
//! change resets it, and the restore reads its own procfs files until
//! the teardown), and each thread's timer slack and parent-death signal
//! (per task: each thread sets its own, after its credentials, whose
//! change would clear the parent-death signal).

use dumpfmt::procattrs::{
    MAP_DONTDUMP, MAP_DONTFORK, MAP_HUGEPAGE, MAP_LOCKED, MAP_LOCKONFAULT, MAP_MERGEABLE,
    MAP_NOHUGEPAGE, MAP_WIPEONFORK,
};
use dumpfmt::{Image, ThreadAttrs};

use super::plan::{Arg, Plan};
use super::{Refusal, exit, refuse};
use crate::dump::procattrs::ops;

/// Sets the process-wide attributes the teardown keeps; refuses an
/// `oom_score_adj` this process cannot take.
pub fn set_before_teardown(image: &Image<'_>) -> Result<(), Refusal> {
    let Some(p) = &image.minor4.procattrs.process else {
        return Ok(());
    };
    let now = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|t| t.trim().parse::<i16>().ok());
    if now != Some(p.oom_score_adj)
        && let Err(e) = std::fs::write("/proc/self/oom_score_adj", p.oom_score_adj.to_string())
    {
        let now = now.map_or("unknown".to_string(), |v| v.to_string());
        let why = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (lowering it needs CAP_SYS_RESOURCE)"
        } else {
            ""
        };
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "cannot set oom_score_adj back to {}: it is {now} here{why}: {e}",
                p.oom_score_adj
            ),
        ));
    }
    locked_room(image)?;
    let set = |op: u64, v: u64, what: &str| {
        // SAFETY: these prctl operations take integers only.
        if unsafe { libc::prctl(op as i32, v, 0u64, 0u64, 0u64) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(refuse(exit::UNSUPPORTED, format!("cannot set {what}: {e}")));
        }
        Ok(())
    };
    set(
        ops::PR_SET_THP_DISABLE,
        u64::from(p.thp_disable),
        "PR_SET_THP_DISABLE",
    )?;
    set(
        ops::PR_SET_CHILD_SUBREAPER,
        u64::from(p.child_subreaper),
        "PR_SET_CHILD_SUBREAPER",
    )?;
    Ok(())
}

/// Refuses, before teardown, an image whose locked ranges exceed the
/// `RLIMIT_MEMLOCK` the restored process will have (the image's, if its
/// hard limit can be set here, else this relaunch's), unless the process
/// may lock without limit (`CAP_IPC_LOCK` in the initial user namespace,
/// which a restore's own namespace never gives): the restorer's `mlock`
/// would fail after the teardown instead.
fn locked_room(image: &Image<'_>) -> Result<(), Refusal> {
    let locked: u64 = image
        .minor4
        .procattrs
        .mappings
        .iter()
        .filter(|m| m.flags & MAP_LOCKED != 0)
        .map(|m| m.end - m.start)
        .sum();
    if locked == 0 || may_lock_without_limit() {
        return Ok(());
    }
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a live struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut now) } != 0 {
        return Ok(());
    }
    let limit = match image
        .process
        .rlimits
        .iter()
        .find(|r| r.0 == libc::RLIMIT_MEMLOCK)
    {
        Some(&(_, soft, hard)) if hard <= now.rlim_max => soft,
        _ => now.rlim_cur,
    };
    if locked > limit {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "the image has {} KiB of locked memory (mlock, mlockall) and RLIMIT_MEMLOCK here allows {} KiB",
                locked >> 10,
                limit >> 10
            ),
        ));
    }
    Ok(())
}

/// capability(7) number of `CAP_IPC_LOCK`.
const CAP_IPC_LOCK: u32 = 14;

/// Whether this process holds `CAP_IPC_LOCK` in the initial user
/// namespace (its `uid_map` is the whole identity map).
fn may_lock_without_limit() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let initial = std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]);
    initial && cap_eff & (1 << CAP_IPC_LOCK) != 0
}

/// Each range's `madvise` advice and `mlock`, set by the restorer.
pub fn mapping_ops(plan: &mut Plan, image: &Image<'_>) {
    let v = Arg::V;
    let advice = [
        (MAP_DONTFORK, libc::MADV_DONTFORK, "MADV_DONTFORK"),
        (MAP_DONTDUMP, libc::MADV_DONTDUMP, "MADV_DONTDUMP"),
        (MAP_WIPEONFORK, libc::MADV_WIPEONFORK, "MADV_WIPEONFORK"),
        (MAP_HUGEPAGE, libc::MADV_HUGEPAGE, "MADV_HUGEPAGE"),
        (MAP_NOHUGEPAGE, libc::MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"),
        (MAP_MERGEABLE, libc::MADV_MERGEABLE, "MADV_MERGEABLE"),
    ];
    for m in image.minor4.procattrs.mappings.iter() {
        let len = m.end - m.start;
        for (bit, adv, name) in advice {
            if m.flags & bit != 0 {
                plan.call(
                    libc::SYS_madvise,
                    &[v(m.start), v(len), v(adv as u64)],
                    v(0),
                    &format!("restore: cannot give {:#x}-{:#x} {name}", m.start, m.end),
                );
            }
        }
        if m.flags & MAP_LOCKED != 0 {
            let onfault = if m.flags & MAP_LOCKONFAULT != 0 {
                libc::MLOCK_ONFAULT as u64
            } else {
                0
            };
            plan.call(
                libc::SYS_mlock2,
                &[v(m.start), v(len), v(onfault)],
                v(0),
                &format!("restore: cannot mlock {:#x}-{:#x}", m.start, m.end),
            );
        }
    }
    if let Some(p) = &image.minor4.procattrs.process
        && p.mlockall != 0
    {
        plan.call(
            libc::SYS_mlockall,
            &[v(u64::from(p.mlockall))],
            v(0),
            "restore: cannot set mlockall(MCL_FUTURE) back",
        );
    }
}

/// The dumpable flag, set by the restorer.
pub fn process_ops(plan: &mut Plan, image: &Image<'_>) {
    if let Some(p) = &image.minor4.procattrs.process {
        plan.call(
            libc::SYS_prctl,
            &[Arg::V(ops::PR_SET_DUMPABLE), Arg::V(u64::from(p.dumpable))],
            Arg::V(0),
            "restore: cannot set the dumpable flag",
        );
    }
}

/// A thread's timer slack and parent-death signal, set by itself.
pub fn thread_ops(plan: &mut Plan, attrs: Option<&ThreadAttrs>) {
    let Some(a) = attrs else {
        return;
    };
    let v = Arg::V;
    plan.call(
        libc::SYS_prctl,
        &[v(ops::PR_SET_TIMERSLACK), v(a.timer_slack_ns)],
        v(0),
        "restore: cannot set a thread's timer slack",
    );
    // 0 too: the relaunch may have set one of its own.
    plan.call(
        libc::SYS_prctl,
        &[v(ops::PR_SET_PDEATHSIG), v(u64::from(a.pdeath_signal))],
        v(0),
        "restore: cannot set a thread's parent-death signal",
    );
}
