//! The children of the process being dumped, found once every thread is
//! parked (no thread can fork another one then; a child may still exit,
//! and then stays listed as a zombie until it is waited for).
//!
//! Until trees are dumped whole (see the module above), a dump of a process
//! with children would lose them without a word: its restore finds no
//! children, and a program waiting for one waits forever. So a dump of such
//! a process fails, naming each child, unless `MIGRATE_CHILDREN=leave` asks
//! for the process alone (the `info` log then names the children left out).
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls, the arena for memory).

use crate::config::{LogLevel, Settings};
use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::{self, line::Line};
use crate::tree::participant::{self, ShimFile};

/// `MIGRATE_CHILDREN=refuse`: a process with children fails its dump.
pub const REFUSE: u8 = 0;
/// `MIGRATE_CHILDREN=leave`: it is dumped alone.
pub const LEAVE: u8 = 1;
/// `MIGRATE_CHILDREN=tree` (experimental): its children are dumped with it.
pub const TREE: u8 = 2;

/// Most children a dump lists (more fail the dump as too many).
pub const MAX_CHILDREN: usize = 1 << 16;
/// Children named in a message; the rest are counted.
const NAMED: usize = 3;
/// Longest executable path put in a message (its tail is kept).
const NAME_MAX: usize = 96;
/// Room for a child's `/proc/PID/maps`.
const MAPS_LEN: usize = 16 << 20;
/// A `children` file of one thread: up to MAX_CHILDREN PIDs of 7 digits.
const CHILDREN_FILE: usize = MAX_CHILDREN * 8;

/// The PIDs of every child of this process (of any of its threads), in
/// the order the kernel lists them.
pub fn list(arena: &Arena) -> Result<&[i32], Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let mut pids = arena.vec::<i32>(MAX_CHILDREN).ok_or_else(no_mem)?;
    let buf = arena.bytes(CHILDREN_FILE).ok_or_else(no_mem)?;
    let mut full = false;
    let mut failed = None;
    let mut me = Line::<64>::new();
    me.str("/proc/self/task/")
        .dec(sys::gettid() as u64)
        .str("/children");
    let have_children_files = me.c_str().is_some_and(|p| sys::read_file(p, buf).is_ok());
    if have_children_files {
        let listed = sys::for_each_dir_entry(b"/proc/self/task\0", |name| {
            let Some(tid) = sys::parse_dec(name) else {
                return;
            };
            let mut path = Line::<64>::new();
            path.str("/proc/self/task/").dec(tid).str("/children");
            let Some(p) = path.c_str() else { return };
            match sys::read_file(p, buf) {
                Ok(n) => {
                    for pid in buf[..n].split(|&c| c == b' ' || c == b'\n') {
                        if let Some(pid) = sys::parse_dec(pid) {
                            full |= pids.push(pid as i32).is_err();
                        }
                    }
                }
                // A thread that exited meanwhile: its children moved to another.
                Err(sys::Errno(libc::ENOENT | libc::ESRCH)) => {}
                Err(e) => failed = Some(e),
            }
        });
        listed.map_err(|e| Fail::new("cannot list /proc/self/task").errno(e))?;
    } else {
        // A kernel without CONFIG_PROC_CHILDREN: every process whose parent we are.
        let mine = sys::getpid();
        let listed = sys::for_each_dir_entry(b"/proc\0", |name| {
            let Some(pid) = sys::parse_dec(name) else {
                return;
            };
            if stat_of(pid as i32).is_some_and(|s| s.ppid == mine) {
                full |= pids.push(pid as i32).is_err();
            }
        });
        listed.map_err(|e| Fail::new("cannot list /proc").errno(e))?;
    }
    if let Some(e) = failed {
        return Err(Fail::new("cannot read this process's children in /proc/self/task").errno(e));
    }
    if full {
        return Err(Fail::new("more than ")
            .dec(MAX_CHILDREN as u64)
            .str(" children"));
    }
    Ok(pids.into_slice())
}

/// Fails the dump when the process has children, naming them; with
/// `MIGRATE_CHILDREN=leave`, names them in the `info` log and lets the
/// dump go on without them.
pub fn refuse_or_leave(arena: &Arena, settings: &Settings) -> Result<(), Fail> {
    let children = list(arena)?;
    if children.is_empty() {
        return Ok(());
    }
    if settings.children == LEAVE {
        if settings.log >= LogLevel::Info {
            let mut line = Line::<800>::new();
            line.str("migrate: dumping process ")
                .dec(sys::getpid() as u64)
                .str(" alone (MIGRATE_CHILDREN=leave); not in the image: ");
            name_all(&mut line, children, None);
            line.emit();
        }
        return Ok(());
    }
    let mut f = Fail::new("process trees are not supported yet, and the dump would lose ");
    f.line.str(if children.len() == 1 {
        "its child "
    } else {
        "its children "
    });
    // Also say which children could not take part in a tree dump.
    let buf = arena
        .bytes(MAPS_LEN)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    let check = participant::our_shim(buf).ok().map(|shim| Check {
        shim,
        signal: settings.signal,
        buf,
    });
    name_all(&mut f.line, children, check);
    Err(f.str(" (MIGRATE_CHILDREN=leave dumps the process alone)"))
}

/// What [`participant::check`] needs.
struct Check<'a> {
    shim: ShimFile,
    signal: i32,
    buf: &'a mut [u8],
}

/// Appends "PID EXE (state), ..." for the first [`NAMED`] children and
/// how many more there are; with `check`, the state says why a live child
/// could not take part in a tree dump.
fn name_all<const N: usize>(line: &mut Line<N>, children: &[i32], mut check: Option<Check<'_>>) {
    for (i, &pid) in children.iter().take(NAMED).enumerate() {
        if i > 0 {
            line.str(", ");
        }
        describe(line, pid, check.as_mut());
    }
    if children.len() > NAMED {
        line.str(" and ")
            .dec((children.len() - NAMED) as u64)
            .str(" more");
    }
}

/// Appends "PID EXE (state)" for child `pid`: its executable's path when
/// it can be read (not for a zombie, nor another user's process), else
/// its command name.
fn describe<const N: usize>(line: &mut Line<N>, pid: i32, check: Option<&mut Check<'_>>) {
    line.dec(pid as u64).str(" ");
    let stat = stat_of(pid);
    let mut exe = [0u8; libc::PATH_MAX as usize];
    let mut path = Line::<64>::new();
    path.str("/proc/").dec(pid as u64).str("/exe");
    match path.c_str().map(|p| sys::readlink(p, &mut exe)) {
        Some(Ok(n)) if n > 0 => {
            let name = &exe[..n];
            if name.len() > NAME_MAX {
                line.str("...").bytes(&name[name.len() - NAME_MAX..]);
            } else {
                line.bytes(name);
            }
        }
        _ => match &stat {
            Some(s) => {
                line.bytes(&s.comm[..s.comm_len]);
            }
            None => {
                line.str("?");
            }
        },
    }
    let state = stat.map(|s| s.state);
    line.str(" (").str(match state {
        Some(b'Z') => "exited, not waited for",
        Some(b'T') => "stopped",
        Some(b't') => "stopped by a tracer",
        Some(_) => "running",
        // Reaped by a signal handler? It no longer exists.
        None => "gone",
    });
    if let (Some(c), Some(s)) = (check, state)
        && s != b'Z'
    {
        let why = participant::check(pid, c.shim, c.signal, c.buf).why();
        if !why.is_empty() {
            line.str("; ").str(why);
        }
    }
    line.str(")");
}

/// The state letter of process `pid` (`R`, `S`, `Z`, `T`, ...), if it exists.
pub fn state_of(pid: i32) -> Option<u8> {
    stat_of(pid).map(|s| s.state)
}

/// The parent and the state letter of process `pid`, if it exists.
pub fn parent_and_state(pid: i32) -> Option<(i32, u8)> {
    stat_of(pid).map(|s| (s.ppid, s.state))
}

/// What `/proc/PID/stat` says about a process.
#[derive(Clone, Copy)]
struct Stat {
    state: u8,
    ppid: i32,
    comm: [u8; 16],
    comm_len: usize,
}

fn stat_of(pid: i32) -> Option<Stat> {
    let mut path = Line::<64>::new();
    path.str("/proc/").dec(pid as u64).str("/stat");
    let mut buf = [0u8; 2048];
    let n = sys::read_file(path.c_str()?, &mut buf).ok()?;
    parse_stat(&buf[..n])
}

/// Parses "PID (COMM) STATE PPID ...": the command may hold anything, so
/// it ends at the last ')'.
fn parse_stat(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|&c| c == b'(')?;
    let close = text.iter().rposition(|&c| c == b')')?;
    let comm = text.get(open + 1..close)?;
    let mut rest = text
        .get(close + 1..)?
        .split(|&c| c == b' ')
        .filter(|f| !f.is_empty());
    let state = *rest.next()?.first()?;
    let ppid = sys::parse_dec(rest.next()?)? as i32;
    let mut s = Stat {
        state,
        ppid,
        comm: [0; 16],
        comm_len: comm.len().min(16),
    };
    s.comm[..s.comm_len].copy_from_slice(&comm[..s.comm_len]);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn stat_lines() {
        let s = parse_stat(b"42 (a) b) c) Z 7 42 42 0 -1\n").unwrap();
        assert_eq!((s.state, s.ppid), (b'Z', 7));
        assert_eq!(&s.comm[..s.comm_len], b"a) b) c");
        let s = parse_stat(b"1 (sleep) S 0 1 1").unwrap();
        assert_eq!((s.state, s.ppid), (b'S', 0));
        assert!(parse_stat(b"1 (sleep").is_none());
        assert!(parse_stat(b"1 (x) ").is_none());
    }
}
