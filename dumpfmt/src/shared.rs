//! What a process of a tree shares with the others (added in 1.3, the
//! `shared` field of [`crate::Minor3`]): the identity of each object the
//! restore must make once for the whole tree rather than once per
//! process. Every key here is only compared with the keys of the other
//! members' images of the same dump: kernel object numbers at the dump,
//! never used for anything else.

use alloc::borrow::Cow;
use serde::{Deserialize, Serialize};

/// The shared objects a process's mappings and descriptors refer to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Shared<'a> {
    /// One per mapping of `Image::mappings` that is shared memory the
    /// image holds the pages of (`Backing::Contents`, shared), sorted by
    /// `start`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub memory: Cow<'a, [SharedMemory]>,
    /// One per descriptor of `Image::fds` that another member may hold
    /// too, sorted by `fd`.
    #[serde(deserialize_with = "crate::bounded::seq")]
    pub fds: Cow<'a, [SharedFd]>,
}

/// A shared memory mapping and the object it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedMemory {
    /// The mapping's start (a `Mapping::start`).
    pub start: u64,
    /// The object (`MAP_SHARED` anonymous memory, a memfd, a deleted
    /// file): device and inode as `/proc/PID/maps` gives them.
    pub dev: u64,
    pub ino: u64,
    /// Offset of the mapping's start in the object, in bytes.
    pub offset: u64,
    /// 0: the image holds the mapping's pages. Else the PID of the member
    /// (an ancestor mapping the same part of the object) whose image holds
    /// them: a tree's shared memory is stored once.
    pub pages_in: u32,
}

/// A descriptor and what makes it one object with other members' ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFd {
    pub fd: i32,
    pub key: SharedKey,
}

/// The identity of a shared object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SharedKey {
    /// A file without a name (`FdKind::Contents`: a memfd, a deleted
    /// file): its device and inode, as [`SharedMemory`] names them.
    Object { dev: u64, ino: u64 },
    /// One end of a Unix socket pair (`FdKind::Gone` with a socket
    /// type, or `FdKind::UnixPair`, whose peer another member may hold
    /// too): its inode and its peer's.
    SocketEnd { ino: u64, peer: u64 },
    /// An open file description (`FdKind::File`, `FdKind::Socket`: a
    /// listener children inherit, or `FdKind::Eventfd`): the
    /// highest process of its line of ancestors that holds the same
    /// description (`kcmp`), and its descriptor number there.
    Description { pid: u32, fd: i32 },
}
