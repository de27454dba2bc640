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

/// `members[0]` is the root; each member's parent comes earlier.
fn get(members: &[Member], i: usize) -> Member {
    members[i]
}

/// The member's (session, group) after its step (`OUT` for outside).
fn after(members: &[Member], i: usize, depth: usize) -> Result<(u32, u32), &'static str> {
    let m = get(members, i);
    if i == 0 {
        return Ok((OUT, OUT));
    }
    if depth > members.len() {
        return Err("the parent links of the tree form a loop");
    }
    Ok(match step_at(members, i, depth)? {
        Step::Setsid => (m.pid, m.pid),
        Step::Lead => (after(members, parent(members, i)?, depth + 1)?.0, m.pid),
        Step::Join(g) => (after(members, parent(members, i)?, depth + 1)?.0, g),
        Step::Keep => after(members, parent(members, i)?, depth + 1)?,
    })
}

fn parent(members: &[Member], i: usize) -> Result<usize, &'static str> {
    let ppid = get(members, i).ppid;
    members[..i]
        .iter()
        .position(|m| m.pid == ppid)
        .ok_or("its parent is not an earlier member of the tree")
}

/// `id` (a group or session of a member) as the restore sees it: `OUT`
/// when it is the root's, the leader's pid when a member leads it.
fn norm(members: &[Member], id: u32, roots: u32) -> Result<u32, &'static str> {
    if id == roots {
        Ok(OUT)
    } else if members.iter().any(|m| m.pid == id) {
        Ok(id)
    } else {
        Err("its leader (not in the tree) has exited")
    }
}

fn step_at(members: &[Member], i: usize, depth: usize) -> Result<Step, &'static str> {
    let m = get(members, i);
    let root = get(members, 0);
    let sid = norm(members, m.sid, root.sid).map_err(|_| "its session's leader has exited")?;
    let pgid =
        norm(members, m.pgid, root.pgid).map_err(|_| "its process group's leader has exited")?;
    if sid == m.pid {
        if pgid != m.pid {
            return Err("it leads a session but not its process group");
        }
        return Ok(Step::Setsid);
    }
    let p = parent(members, i)?;
    let (psid, ppgid) = after(members, p, depth + 1)?;
    if sid != psid {
        return Err(
            "its session is not its parent's (the parent changed session after forking it)",
        );
    }
    if pgid == ppgid {
        return Ok(Step::Keep);
    }
    if pgid == m.pid {
        return Ok(Step::Lead);
    }
    if pgid == OUT {
        return Err("its process group is outside the tree but its parent's is not");
    }
    // The leader must exist, in its group, before this member asks to
    // join: an ancestor (its steps precede its forks) or an earlier
    // sibling (its parent puts it in its group right after forking it).
    let Some(leader) = members[..i].iter().position(|o| o.pid == pgid) else {
        return Err("its process group's leader comes after it in the tree");
    };
    let is_ancestor = {
        let mut at = Some(p);
        let mut found = false;
        for _ in 0..members.len() {
            match at {
                Some(a) if a == leader => {
                    found = true;
                    break;
                }
                Some(0) | None => break,
                Some(a) => at = parent(members, a).ok(),
            }
        }
        found
    };
    let sibling = get(members, leader).ppid == m.ppid;
    if !is_ancestor && !sibling {
        return Err("its process group's leader is neither an ancestor nor a sibling");
    }
    if after(members, leader, depth + 1)?.0 != sid {
        return Err("its process group's leader is in another session");
    }
    Ok(Step::Join(pgid))
}

/// What member `i` of `members` (the index, root first) does; the root
/// keeps what it has.
pub fn step(members: &[Member], i: usize) -> Result<Step, &'static str> {
    if i == 0 || i >= members.len() {
        return Ok(Step::Keep);
    }
    step_at(members, i, 0)
}

/// Checks that every member's group and session can be made again: the
/// index is `own` (the root) followed by `below`.
pub fn check(own: Member, below: &[Member]) -> Result<(), Fail> {
    let mut all = [Member::default(); dumpfmt::MAX_MEMBERS];
    let n = below.len() + 1;
    if n > all.len() {
        return Err(Fail::new("too many processes in the tree"));
    }
    all[0] = own;
    all[1..n].copy_from_slice(below);
    check_all(&all[..n]).map_err(|(pid, why)| {
        Fail::new("pid ")
            .dec(u64::from(pid))
            .str(": its process group or session cannot be restored: ")
            .str(why)
    })
}

/// As [`check`], on the whole index: the first member refused, and why.
pub fn check_all(members: &[Member]) -> Result<(), (u32, &'static str)> {
    for i in 1..members.len() {
        step(members, i).map_err(|why| (members[i].pid, why))?;
    }
    Ok(())
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
    fn steps() {
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
        let got: Vec<_> = (0..t.len()).map(|i| step(&t, i)).collect();
        assert_eq!(
            got,
            [
                Ok(Step::Keep),
                Ok(Step::Keep),
                Ok(Step::Lead),
                Ok(Step::Setsid),
                Ok(Step::Join(12)),
                Ok(Step::Keep),
                Ok(Step::Keep),
            ]
        );
        assert_eq!(check_all(&t), Ok(()));
        // The root led its own group: members in it stay outside with it.
        let t = [m(10, 4, 10, 1), m(11, 10, 10, 1)];
        assert_eq!(step(&t, 1), Ok(Step::Keep));
    }

    #[test]
    fn refusals() {
        // A group whose leader has exited.
        let t = [m(10, 4, 5, 1), m(11, 10, 99, 1)];
        assert!(check_all(&t).is_err_and(|(pid, why)| pid == 11 && why.contains("exited")));
        // A parent that left the group after forking its child.
        let t = [m(10, 4, 5, 1), m(11, 10, 11, 1), m(12, 11, 5, 1)];
        assert!(check_all(&t).is_err_and(|(pid, _)| pid == 12));
        // A cousin's group.
        let t = [
            m(10, 4, 5, 1),
            m(11, 10, 11, 1),
            m(12, 10, 5, 1),
            m(13, 12, 11, 1),
        ];
        assert!(check_all(&t).is_err_and(|(pid, _)| pid == 13));
    }
}
