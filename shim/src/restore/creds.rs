//! Each restored thread comes back with the credentials it had: its
//! capability sets, securebits and `no_new_privs`.
//!
//! The restore runs with the credentials of the relaunch, which are more
//! (inside the new user namespace: every capability) or, without the
//! namespace, the relaunch's own. [`check`] refuses, before teardown, an
//! image whose credentials this process cannot take (a capability it does
//! not hold, `no_new_privs` it cannot clear); [`thread_ops`] adds the calls
//! that set one thread's credentials, run by that thread in the restorer
//! after every thread exists (creating threads with chosen TIDs needs
//! `CAP_SYS_ADMIN` in the namespace until then).

use dumpfmt::{Credentials, Image};

use super::plan::{Arg, Plan};
use super::{Refusal, exit, refuse};
use crate::sys::creds::{self as c, CAP_SETPCAP, CapData, CapHeader};

/// Capability names, by number (`capabilities(7)`).
const NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `cap_net_raw, cap_chown` for the set bits of `set`.
pub fn names(set: u64) -> String {
    (0..64)
        .filter(|i| set & (1 << i) != 0)
        .map(|i| match NAMES.get(i) {
            Some(n) => format!("cap_{n}"),
            None => format!("capability {i}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SECBIT_NO_CAP_AMBIENT_RAISE`.
const SECBIT_NO_CAP_AMBIENT_RAISE: u32 = 1 << 6;

/// Securebits that lock another bit (`SECBIT_*_LOCKED`: every odd bit).
const SECBITS_LOCKS: u32 = 0xaa;

/// The credentials of the calling thread (every restored thread starts
/// with them), once checked able to become each thread's of the image.
pub fn check(image: &Image<'_>) -> Result<Credentials, Refusal> {
    let now = c::current();
    let setpcap = now.effective & (1 << CAP_SETPCAP) != 0;
    for (t, want) in image.threads.iter().zip(image.minor1.credentials.iter()) {
        let why = |what: String| {
            refuse(
                exit::UNSUPPORTED,
                format!("thread {} of the image {what}", t.tid),
            )
        };
        // Sets the kernel never produces (a crafted image): refused here
        // rather than failing after teardown.
        if want.effective & !want.permitted != 0
            || want.ambient & !(want.permitted & want.inheritable) != 0
        {
            return Err(refuse(
                exit::CORRUPT,
                format!(
                    "thread {} of the image has capability sets no thread can have",
                    t.tid
                ),
            ));
        }
        if want.ambient != 0 && now.securebits & SECBIT_NO_CAP_AMBIENT_RAISE != 0 {
            return Err(why(
                "had ambient capabilities, and this process may not raise any \
                 (SECBIT_NO_CAP_AMBIENT_RAISE)"
                    .to_string(),
            ));
        }
        let missing = want.permitted & !now.permitted;
        if missing != 0 {
            return Err(why(format!(
                "held capabilities this process lacks: {}",
                names(missing)
            )));
        }
        if want.bounding & !now.bounding != 0 {
            return Err(why(format!(
                "had capabilities in its bounding set that this process cannot have: {}",
                names(want.bounding & !now.bounding)
            )));
        }
        // capset takes a new inheritable capability from the old
        // inheritable set, or from the bounding set as it is by then (the
        // drops come first) and, without CAP_SETPCAP, the permitted set.
        let bounding_then = now.bounding & want.bounding;
        let reach = now.inheritable | bounding_then & if setpcap { !0 } else { now.permitted };
        if want.inheritable & !reach != 0 {
            return Err(why(format!(
                "had inheritable capabilities this process cannot give: {}",
                names(want.inheritable & !reach)
            )));
        }
        let drops = now.bounding & !want.bounding;
        if (drops != 0 || want.securebits != now.securebits) && !setpcap {
            return Err(why(
                "had fewer capabilities in its bounding set or other securebits, and this \
                 process cannot change them (it lacks cap_setpcap): relaunch the restore \
                 the way the program was started"
                    .to_string(),
            ));
        }
        let locked = now.securebits & SECBITS_LOCKS;
        if (want.securebits ^ now.securebits) & (locked | locked >> 1) != 0 {
            return Err(why(format!(
                "had securebits {:#x}, and this process has {:#x} locked",
                want.securebits, now.securebits
            )));
        }
        if now.no_new_privs && !want.no_new_privs {
            return Err(why(
                "ran without no_new_privs, and this process runs with it (which cannot be undone)"
                    .to_string(),
            ));
        }
    }
    Ok(now)
}

/// Appends the calls that turn credentials `now` into `want` for the
/// thread that runs them. Order matters: the bounding set and securebits
/// need `CAP_SETPCAP`, so it is kept until they are set; an ambient
/// capability can only be raised once it is permitted and inheritable.
pub fn thread_ops(plan: &mut Plan, now: &Credentials, want: &Credentials) {
    let v = Arg::V;
    let prctl = libc::SYS_prctl;
    if now == want {
        return;
    }
    for cap in 0..=c::CAP_MAX {
        if (now.bounding & !want.bounding) & (1 << cap) != 0 {
            plan.call(
                prctl,
                &[v(c::PR_CAPBSET_DROP), v(u64::from(cap))],
                v(0),
                "restore: cannot drop a capability from the bounding set",
            );
        }
    }
    let secbits = want.securebits != now.securebits;
    let keep = if secbits { 1 << CAP_SETPCAP } else { 0 };
    capset(plan, want, keep);
    if want.ambient != 0 || now.ambient != 0 {
        plan.call(
            prctl,
            &[v(c::PR_CAP_AMBIENT), v(c::PR_CAP_AMBIENT_CLEAR_ALL), v(0)],
            v(0),
            "restore: cannot clear the ambient capabilities",
        );
        for cap in (0..=c::CAP_MAX).filter(|i| want.ambient & (1 << i) != 0) {
            plan.call(
                prctl,
                &[
                    v(c::PR_CAP_AMBIENT),
                    v(c::PR_CAP_AMBIENT_RAISE),
                    v(u64::from(cap)),
                ],
                v(0),
                "restore: cannot raise an ambient capability",
            );
        }
    }
    if secbits {
        plan.call(
            prctl,
            &[v(c::PR_SET_SECUREBITS), v(u64::from(want.securebits))],
            v(0),
            "restore: cannot set the securebits",
        );
        // CAP_SETPCAP was added to the effective set (and the permitted
        // one): drop it unless the thread had it effective (then it had
        // it permitted too, and the sets are already exactly `want`'s).
        if want.effective & keep == 0 {
            capset(plan, want, 0);
        }
    }
    if want.no_new_privs && !now.no_new_privs {
        plan.call(
            prctl,
            &[v(c::PR_SET_NO_NEW_PRIVS), v(1), v(0), v(0), v(0)],
            v(0),
            "restore: cannot set no_new_privs",
        );
    }
}

/// `capset` to `want`'s sets, with `keep` added to effective and permitted.
fn capset(plan: &mut Plan, want: &Credentials, keep: u64) {
    let header = plan.data(&CapHeader {
        version: c::CAPABILITY_VERSION_3,
        pid: 0,
    });
    let data = plan.data(&CapData::from_sets(
        want.effective | keep,
        want.permitted | keep,
        want.inheritable,
    ));
    plan.call(
        libc::SYS_capset,
        &[Arg::Data(header), Arg::Data(data)],
        Arg::V(0),
        "restore: cannot set the capability sets",
    );
}
