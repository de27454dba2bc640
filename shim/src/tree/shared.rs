//! What a member of a tree shares with the others, as its image records
//! it (`dumpfmt::Shared`, format 1.3): the identity of every object the
//! restore must make once for the whole tree (`crate::restore::tree_shared`).
//!
//! - Shared memory the image holds the pages of (`MAP_SHARED` anonymous
//!   memory, a memfd or a deleted file mapped without a descriptor, such
//!   as an unlinked `/dev/shm/sem.*`): the object's device and inode from
//!   `/proc/self/maps`, and where the mapping starts in it.
//! - A file without a name held by a descriptor (memfd, deleted file):
//!   its device and inode, the same key as a mapping of it.
//! - One end of a Unix socket pair whose peer is in another process: its
//!   inode and its peer's (sock_diag), so that the two ends pair up.
//! - A regular file's open file description: the highest ancestor
//!   holding the very same description (`kcmp(KCMP_FILE)`, every member
//!   being parked), and its descriptor number there. Members that share a
//!   description inherited from a common ancestor that still holds it
//!   find the same key. (A description whose holders all lie below an
//!   ancestor that closed it is not found: each comes back with its own.)
//!
//! Socket ends and descriptions are looked for in a tree dump only; the
//! rest costs nothing and is recorded always.
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls, the arena for memory).

use dumpfmt::{Fd, FdKind, SharedFd, SharedKey, SharedMemory};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::dump::fds::Collected;
use crate::dump::maps::MapLine;
use crate::sys::{self, args, line::Line};
use crate::tree::children;

/// How far up a description is looked for.
const MAX_ANCESTORS: usize = 64;

/// The record of shared-memory mapping `m` (cut to start at `start`).
pub fn memory(m: &MapLine<'_>, start: u64) -> SharedMemory {
    SharedMemory {
        start,
        dev: m.dev,
        ino: m.inode,
        offset: m.offset + (start - m.start),
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
        FdKind::File { .. } if in_tree => Some(description(fd.fd)),
        _ => None,
    }
}

/// The key of descriptor `fd`'s open file description: the highest of
/// this process's ancestors, in an unbroken line, that holds it.
fn description(fd: i32) -> SharedKey {
    let me = sys::getpid();
    let mut key = SharedKey::Description {
        pid: me as u32,
        fd,
    };
    let mut at = me;
    for _ in 0..MAX_ANCESTORS {
        let Some((parent, _)) = children::parent_and_state(at) else {
            break;
        };
        if parent <= 1 {
            break;
        }
        let Some(theirs) = holder(me, fd, parent) else {
            break;
        };
        key = SharedKey::Description {
            pid: parent as u32,
            fd: theirs,
        };
        at = parent;
    }
    key
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
