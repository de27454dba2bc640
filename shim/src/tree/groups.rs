//! Process groups and sessions of a tree (design "Restore", step 1): what
//! each member does, after it is forked and before it forks its own
//! children, to be in the group and session it was in at the dump; and
//! the trees whose groups cannot be made again, refused at the dump (by
//! the root, once it has the index) and again at the restore, before
//! anything is torn down.
//!
//! The root stays in the group and session of the process that restores
//! it (the supervisor's, as a single process does), whatever it led at the
//! dump: a restored job must not leave the terminal's foreground group.
//! So the root's group and session at the dump are *outside*, and so is
//! any member's that was the same. A member's group or session led by
//! another member is made again: `setsid()` for a session leader,
//! `setpgid(0, 0)` for a group leader, `setpgid(0, PGID)` to join a group
//! whose leader is its ancestor or an earlier sibling (forked before it,
//! and put in its group by the parent at once, see
//! [`crate::restore::tree`]). What is refused, naming the member: a
//! group or session whose leader is neither outside nor a member (it has
//! exited), a member outside the group or session its parent is in
//! (the parent moved after forking it), and a group leader the member
//! cannot join before it exists (a cousin).
//!
//! # Rules
//!
//! Runs in the dump signal's handler (the `dump` module's rules: no heap,
//! no locks, no panics) and in the restore's constructor.

use dumpfmt::Member;

use crate::dump::Fail;

/// What a member does to take its group and session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing: it inherits both from its parent.
    Keep,
    /// `setsid()`: it leads a session (and the group of the same number).
    Setsid,
    /// `setpgid(0, 0)`: it leads a group.
    Lead,
    /// `setpgid(0, PGID)`: it joins the group of an earlier member.
    Join(u32),
}

/// A group or session outside the tree (the supervisor's).
const OUT: u32 = 0;

/// What each member does, in the index's order, into `steps`: one pass
/// in pre-order (a member's parent and group leader come earlier, so
/// their groups and sessions after their own steps are known), linear
/// but for the walk up to an ancestor. `work` is room for one entry per
/// member (no heap in the dump's signal handler). The first member
/// refused, and why, on failure.
pub fn plan(
    members: &[Member],
    steps: &mut [Step],
    work: &mut [Work],
) -> Result<(), (u32, &'static str)> {
    let n = members.len();
    if steps.len() < n || work.len() < n {
        return Err((0, "too many processes in the tree"));
    }
    let Some(root) = members.first() else {
        return Ok(());
    };
    // (session, group) after the step, `OUT` for outside; the parent.
    let norm = |id: u32, roots: u32| -> Option<u32> {
        if id == roots {
            Some(OUT)
        } else {
            members.iter().any(|m| m.pid == id).then_some(id)
        }
    };
    steps[0] = Step::Keep;
    work[0] = Work {
        sid: OUT,
        pgid: OUT,
        parent: 0,
    };
    for i in 1..n {
        let m = members[i];
        let refuse = |why| Err((m.pid, why));
        let Some(p) = members[..i].iter().position(|o| o.pid == m.ppid) else {
            return refuse("its parent is not an earlier member of the tree");
        };
        let Some(sid) = norm(m.sid, root.sid) else {
            return refuse("its session's leader has exited");
        };
        let Some(pgid) = norm(m.pgid, root.pgid) else {
            return refuse("its process group's leader has exited");
        };
        let (psid, ppgid) = (work[p].sid, work[p].pgid);
        let step = if sid == m.pid {
            if pgid != m.pid {
                return refuse("it leads a session but not its process group");
            }
            Step::Setsid
        } else if sid != psid {
            return refuse(
                "its session is not its parent's (the parent changed session after forking it)",
            );
        } else if pgid == ppgid {
            Step::Keep
        } else if pgid == m.pid {
            Step::Lead
        } else if pgid == OUT {
            return refuse("its process group is outside the tree but its parent's is not");
        } else {
            // The leader must exist, in its group, before this member
            // asks to join: an ancestor (its steps precede its forks) or
            // an earlier sibling (its parent puts it in its group right
            // after forking it).
            let Some(leader) = members[..i].iter().position(|o| o.pid == pgid) else {
                return refuse("its process group's leader comes after it in the tree");
            };
            let mut at = p;
            let mut ancestor = at == leader;
            for _ in 0..n {
                if ancestor || at == 0 {
                    break;
                }
                at = work[at].parent;
                ancestor = at == leader;
            }
            if !ancestor && members[leader].ppid != m.ppid {
                return refuse("its process group's leader is neither an ancestor nor a sibling");
            }
            if work[leader].sid != sid {
                return refuse("its process group's leader is in another session");
            }
            if work[leader].pgid != pgid {
                return refuse("its process group's leader has left the group");
            }
            Step::Join(pgid)
        };
        steps[i] = step;
        work[i] = match step {
            Step::Setsid => Work {
                sid: m.pid,
                pgid: m.pid,
                parent: p,
            },
            Step::Lead => Work {
                sid: psid,
                pgid: m.pid,
                parent: p,
            },
            Step::Join(g) => Work {
                sid: psid,
                pgid: g,
                parent: p,
            },
            Step::Keep => Work {
                sid: psid,
                pgid: ppgid,
                parent: p,
            },
        };
    }
    Ok(())
}

/// A member's session and group after its step, and its parent's index
/// ([`plan`]'s working room).
#[derive(Debug, Clone, Copy, Default)]
pub struct Work {
    sid: u32,
    pgid: u32,
    parent: usize,
}

/// Checks that every member's group and session can be made again: the
/// index is `own` (the root) followed by `below` (in the dump's handler).
pub fn check(own: Member, below: &[Member]) -> Result<(), Fail> {
    const N: usize = dumpfmt::MAX_MEMBERS;
    let mut all = [Member::default(); N];
    let n = below.len() + 1;
    if n > N {
        return Err(Fail::new("too many processes in the tree"));
    }
    all[0] = own;
    all[1..n].copy_from_slice(below);
    let mut steps = [Step::Keep; N];
    let mut work = [Work::default(); N];
    plan(&all[..n], &mut steps, &mut work).map_err(|(pid, why)| {
        Fail::new("pid ")
            .dec(u64::from(pid))
            .str(": its process group or session cannot be restored: ")
            .str(why)
    })
}

/// Every member's step (with libc: a restore, `migrate verify`).
pub fn steps(members: &[Member]) -> Result<Vec<Step>, (u32, &'static str)> {
    let mut steps = vec![Step::Keep; members.len()];
    let mut work = vec![Work::default(); members.len()];
    plan(members, &mut steps, &mut work).map(|()| steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pid: u32, ppid: u32, pgid: u32, sid: u32) -> Member {
        Member {
            pid,
            ppid,
            pgid,
            sid,
            offset: 0,
            len: 0,
        }
    }

    #[test]
    fn plans_steps() {
        // Root 10 in the shell's group 5, session 1.
        let t = [
            m(10, 4, 5, 1),
            m(11, 10, 5, 1),   // keeps
            m(12, 10, 12, 1),  // leads its group
            m(13, 10, 13, 13), // leads its session
            m(14, 10, 12, 1),  // joins its earlier sibling's group
            m(15, 13, 13, 13), // inherits the session leader's
            m(16, 12, 12, 1),  // inherits its parent's group
        ];
        assert_eq!(
            steps(&t),
            Ok(vec![
                Step::Keep,
                Step::Keep,
                Step::Lead,
                Step::Setsid,
                Step::Join(12),
                Step::Keep,
                Step::Keep,
            ])
        );
        // The root led its own group: members in it stay outside with it.
        let t = [m(10, 4, 10, 1), m(11, 10, 10, 1)];
        assert_eq!(steps(&t), Ok(vec![Step::Keep, Step::Keep]));
        // A long chain, each joining its grandparent's group.
        let mut t = vec![m(1000, 4, 5, 1), m(1001, 1000, 1001, 1)];
        for pid in 1002..2000u32 {
            let pgid = if pid % 2 == 1 { pid } else { pid - 1 };
            t.push(m(pid, pid - 1, pgid, 1));
        }
        t.push(m(2000, 1999, 1999, 1));
        t.push(m(2001, 2000, 1999, 1));
        let s = steps(&t).unwrap();
        assert_eq!(s[1001 - 1000], Step::Lead);
        assert_eq!(s[1002 - 1000], Step::Keep);
        assert_eq!(s[2001 - 1000], Step::Keep);
        // A group whose leader has left it cannot be joined.
        let t = [
            m(10, 4, 5, 1),
            m(11, 10, 12, 1),
            m(12, 11, 12, 1),
            m(13, 11, 11, 1),
        ];
        assert!(steps(&t).is_err());
    }

    #[test]
    fn refusals() {
        // A group whose leader has exited.
        let t = [m(10, 4, 5, 1), m(11, 10, 99, 1)];
        assert!(steps(&t).is_err_and(|(pid, why)| pid == 11 && why.contains("exited")));
        // A parent that left the group after forking its child.
        let t = [m(10, 4, 5, 1), m(11, 10, 11, 1), m(12, 11, 5, 1)];
        assert!(steps(&t).is_err_and(|(pid, _)| pid == 12));
        // A cousin's group.
        let t = [
            m(10, 4, 5, 1),
            m(11, 10, 11, 1),
            m(12, 10, 5, 1),
            m(13, 12, 11, 1),
        ];
        assert!(steps(&t).is_err_and(|(pid, _)| pid == 13));
    }
}
