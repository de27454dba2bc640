//! What a member of a tree shares with the others, as its image records
//! it (`dumpfmt::Shared`, format 1.3): the identity of every object the
//! restore must make once for the whole tree (`crate::restore::tree_shared`).
//!
//! - Shared memory the image holds the pages of (`MAP_SHARED` anonymous
//!   memory, a memfd or a deleted file mapped without a descriptor, such
//!   as an unlinked `/dev/shm/sem.*`): the object's device and inode from
//!   `/proc/self/maps`, and where the mapping starts in it. Its pages are
//!   stored once: a member leaves them to the nearest ancestor in the tree
//!   that maps the same part of the object (and names it), [`Ancestors`].
//! - A file without a name held by a descriptor (memfd, deleted file):
//!   its device and inode, the same key as a mapping of it.
//! - One end of a Unix socket pair whose peer is in another process, or
//!   both of whose ends this one holds (another member may hold one too):
//!   its inode and its peer's (sock_diag), so that the two ends pair up.
//! - The open file description of a regular file, a socket or an
//!   eventfd: the first member of the tree, parents before children from
//!   the root, holding the very same description (`kcmp(KCMP_FILE)`, every
//!   member being parked), and its descriptor number there. Every member
//!   walks the same list, so all that hold a description find the same
//!   key, whoever else closed it (siblings whose parent closed it
//!   included).
//!
//! Socket ends and descriptions are looked for in a tree dump only; the
//! rest costs nothing and is recorded always.
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls, the arena for memory).

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use dumpfmt::{Fd, FdKind, SharedFd, SharedKey, SharedMemory};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::dump::fds::Collected;
use crate::dump::maps::MapLine;
use crate::sys::{self, args, line::Line};
use crate::tree::children;

/// How far up a description is looked for.
const MAX_ANCESTORS: usize = 64;

/// The record of shared-memory mapping `m` (cut to start at `start`),
/// whose pages the image of `pages_in` holds (0: this one).
pub fn memory(m: &MapLine<'_>, start: u64, pages_in: i32) -> SharedMemory {
    SharedMemory {
        start,
        dev: m.dev,
        ino: m.inode,
        offset: m.offset + (start - m.start),
        pages_in: pages_in as u32,
    }
}

/// Most ancestors whose maps are read.
const MAX_DEPTH: usize = 8;
/// Room for an ancestor's `/proc/PID/maps`.
const ANCESTOR_MAPS_LEN: usize = 4 << 20;

/// The `/proc/PID/maps` of this process's ancestors in the tree being
/// dumped (parked, so they hold still), nearest first: a shared mapping
/// one of them maps whole has its pages stored in that one's image only.
pub struct Ancestors<'a> {
    n: usize,
    pids: [i32; MAX_DEPTH],
    maps: [&'a [u8]; MAX_DEPTH],
}

impl<'a> Ancestors<'a> {
    /// Reads them (none outside a tree dump; an ancestor whose maps cannot
    /// be read ends the list: this image then keeps those pages itself).
    pub fn read(arena: &'a Arena, in_tree: bool) -> Ancestors<'a> {
        let mut a = Ancestors {
            n: 0,
            pids: [0; MAX_DEPTH],
            maps: [&[]; MAX_DEPTH],
        };
        if !in_tree {
            return a;
        }
        let me = sys::getpid();
        let root = root_of(me);
        let mut at = me;
        while at != root && a.n < MAX_DEPTH {
            let Some((parent, _)) = children::parent_and_state(at) else {
                break;
            };
            let mut path = Line::<64>::new();
            path.str("/proc/").dec(parent as u64).str("/maps");
            let Some(buf) = arena.bytes(ANCESTOR_MAPS_LEN) else {
                break;
            };
            let Some(len) = path.c_str().and_then(|p| sys::read_file(p, buf).ok()) else {
                break;
            };
            let buf: &'a [u8] = buf;
            a.pids[a.n] = parent;
            a.maps[a.n] = &buf[..len];
            a.n += 1;
            at = parent;
        }
        a
    }

    /// The nearest ancestor that maps bytes `from..to` of shared object
    /// (`dev`, `ino`) in one mapping.
    pub fn holder(&self, dev: u64, ino: u64, from: u64, to: u64) -> Option<i32> {
        (0..self.n).find_map(|i| {
            crate::dump::maps::lines(self.maps[i])
                .filter_map(crate::dump::maps::parse_line)
                .any(|l| {
                    l.shared
                        && (l.dev, l.inode) == (dev, ino)
                        && l.offset <= from
                        && l.offset + (l.end - l.start) >= to
                })
                .then_some(self.pids[i])
        })
    }
}

/// The keys of the descriptors of `fds` that another member may hold too
/// (`in_tree`: this dump is a tree's).
pub fn fds<'a>(
    arena: &'a Arena,
    fds: &Collected<'_>,
    in_tree: bool,
) -> Result<&'a [SharedFd], Fail> {
    let mut out = arena
        .vec::<SharedFd>(fds.fds.len())
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    for fd in fds.fds {
        if let Some(key) = key(fd, fds, in_tree) {
            let _ = out.push(SharedFd { fd: fd.fd, key });
        }
    }
    Ok(out.into_slice())
}

fn key(fd: &Fd<'_>, fds: &Collected<'_>, in_tree: bool) -> Option<SharedKey> {
    match &fd.kind {
        FdKind::Contents { .. } => fds
            .contents
            .iter()
            .find(|c| c.0 == fd.fd)
            .map(|&(_, dev, ino)| SharedKey::Object { dev, ino }),
        FdKind::Gone {
            what, sock_type, ..
        } if in_tree && *sock_type != 0 => {
            let ino = what
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .and_then(|n| sys::parse_dec(n.as_bytes()))?;
            let peer = crate::dump::fds::unix_peer(ino)?;
            Some(SharedKey::SocketEnd { ino, peer })
        }
        // An end of a pair whose two ends this process holds: another
        // member may hold either end too (a pool's or a server's channel,
        // made before the fork); the restore pairs what two or more
        // processes hold.
        FdKind::UnixPair { id, peer, .. } if in_tree => Some(SharedKey::SocketEnd {
            ino: *id,
            peer: *peer,
        }),
        // A listening or bound socket inherited by children (a server's
        // listener): one description, which could not be bound twice; an
        // eventfd: one counter.
        FdKind::File { .. } | FdKind::Socket { .. } | FdKind::Eventfd { .. } if in_tree => {
            Some(description(fd.fd))
        }
        _ => None,
    }
}

/// The key of descriptor `fd`'s open file description: the first member
/// of the tree being dumped (parents before children, from the root: the
/// same list in every member) that holds it, this process if none before
/// it does.
fn description(fd: i32) -> SharedKey {
    let me = sys::getpid();
    let mut members = [0i32; MAX_MEMBERS];
    let n = members_of(root_of(me), &mut members);
    for &pid in &members[..n] {
        if pid == me {
            break;
        }
        if let Some(theirs) = holder(me, fd, pid) {
            return SharedKey::Description {
                pid: pid as u32,
                fd: theirs,
            };
        }
    }
    SharedKey::Description { pid: me as u32, fd }
}

/// The descriptor of process `pid` that is the same open file description
/// as our `fd` (tried at the same number first, as a fork leaves it).
fn holder(me: i32, fd: i32, pid: i32) -> Option<i32> {
    if same(me, fd, pid, fd) {
        return Some(fd);
    }
    let mut path = Line::<64>::new();
    path.str("/proc/").dec(pid as u64).str("/fd");
    let mut found = None;
    sys::for_each_dir_entry(path.c_str()?, |name| {
        if found.is_none()
            && let Some(n) = sys::parse_dec(name)
            && n as i32 != fd
            && same(me, fd, pid, n as i32)
        {
            found = Some(n as i32);
        }
    })
    .ok()?;
    found
}

/// Whether our `fd` and `pid`'s `theirs` are one open file description.
fn same(me: i32, fd: i32, pid: i32, theirs: i32) -> bool {
    const KCMP_FILE: u64 = 0;
    // SAFETY: kcmp compares two descriptors of two processes; no memory.
    let order = unsafe { sys::sys(libc::SYS_kcmp, args!(me, pid, KCMP_FILE, fd, theirs)) };
    order == Ok(0)
}

/// Whether this dump is a tree's (set before the descriptors are read).
static IN_TREE: AtomicBool = AtomicBool::new(false);

/// Whether the dump that runs is a tree's (see [`set_in_tree`]).
pub fn in_tree() -> bool {
    IN_TREE.load(Relaxed)
}

/// Says whether the dump that runs is a tree's.
pub fn set_in_tree(yes: bool) {
    IN_TREE.store(yes, Relaxed);
}

/// Most members looked through for a peer or a description: all a tree
/// dump takes.
const MAX_MEMBERS: usize = crate::tree::control::MAX_MEMBERS;

/// For a pipe end or socket (`target` is its `/proc/self/fd` link) whose
/// peer is not in this process: the member of the tree being dumped that
/// holds the peer (the other end of the pipe, the socket's peer), if any.
/// Such an object comes back whole with the tree, not peer-gone.
pub fn peer_in_tree(target: &[u8]) -> Option<i32> {
    if !IN_TREE.load(Relaxed) {
        return None;
    }
    let mut want = Line::<64>::new();
    if let Some(n) = target
        .strip_prefix(b"socket:[")
        .and_then(|t| t.strip_suffix(b"]"))
    {
        let peer = crate::dump::fds::unix_peer(sys::parse_dec(n)?)?;
        want.str("socket:[").dec(peer).str("]");
    } else if target.starts_with(b"pipe:[") {
        want.bytes(target);
    } else {
        return None;
    }
    let me = sys::getpid();
    let mut members = [0i32; MAX_MEMBERS];
    let n = members_of(root_of(me), &mut members);
    members[..n]
        .iter()
        .copied()
        .find(|&pid| pid != me && holds(pid, want.as_bytes()))
}

/// The root of the tree dump `pid` takes part in: the highest ancestor,
/// in an unbroken line, that holds a tree control block.
pub(crate) fn root_of(pid: i32) -> i32 {
    let mut at = pid;
    for _ in 0..MAX_ANCESTORS {
        match children::parent_and_state(at) {
            Some((parent, _)) if parent > 1 && holds(parent, b"/memfd:migrate-tree (deleted)") => {
                at = parent;
            }
            _ => break,
        }
    }
    at
}

/// Whether `pid` is `root` or one of its descendants (a member of the
/// tree dump `root` leads).
pub(crate) fn is_member(root: i32, pid: i32) -> bool {
    let mut members = [0i32; MAX_MEMBERS];
    let n = members_of(root, &mut members);
    members[..n].contains(&pid)
}

/// `root` and its descendants, parents first, into `out`; returns how many.
fn members_of(root: i32, out: &mut [i32]) -> usize {
    let mut n = 0;
    if let Some(first) = out.first_mut() {
        *first = root;
        n = 1;
    }
    let mut i = 0;
    while i < n {
        let pid = out[i];
        i += 1;
        let mut tasks = Line::<64>::new();
        tasks.str("/proc/").dec(pid as u64).str("/task");
        let Some(dir) = tasks.c_str() else { continue };
        let _ = sys::for_each_dir_entry(dir, |tid| {
            let Some(tid) = sys::parse_dec(tid) else {
                return;
            };
            let mut path = Line::<96>::new();
            path.str("/proc/")
                .dec(pid as u64)
                .str("/task/")
                .dec(tid)
                .str("/children");
            // Room for every child a tree dump takes (1023 PIDs of up to
            // 7 digits and a space): a longer list does not fit and is
            // not read at all.
            let mut buf = [0u8; 12 * 1024];
            let Some(len) = path.c_str().and_then(|p| sys::read_file(p, &mut buf).ok()) else {
                return;
            };
            for c in buf[..len].split(|&c| c == b' ' || c == b'\n') {
                if let Some(c) = sys::parse_dec(c)
                    && n < out.len()
                {
                    out[n] = c as i32;
                    n += 1;
                }
            }
        });
    }
    n
}

/// Whether some descriptor of `pid` links to `target`.
fn holds(pid: i32, target: &[u8]) -> bool {
    let mut dir = Line::<64>::new();
    dir.str("/proc/").dec(pid as u64).str("/fd");
    let Some(d) = dir.c_str() else {
        return false;
    };
    let mut found = false;
    let _ = sys::for_each_dir_entry(d, |name| {
        if found || sys::parse_dec(name).is_none() {
            return;
        }
        let mut link = Line::<96>::new();
        link.str("/proc/").dec(pid as u64).str("/fd/").bytes(name);
        let mut buf = [0u8; 256];
        if let Some(len) = link.c_str().and_then(|p| sys::readlink(p, &mut buf).ok()) {
            found = &buf[..len] == target;
        }
    });
    found
}
