//! The objects a restored tree's processes share (issue 9), made once by
//! the root before it forks, so that every member inherits them: the
//! restore side of `crate::tree::shared`, beside the pipes of
//! `super::tree`.
//!
//! - *Shared memory* (`MAP_SHARED` anonymous memory, memfds, deleted or
//!   unlinked files such as `/dev/shm/sem.*`), found in two or more
//!   processes by the object's device and inode: made once as an object
//!   of the same kind and name (shared anonymous memory, a memfd, a file
//!   created at the old path and unlinked again), sized to what its users
//!   reach, filled with the descriptor's contents and the users' pages.
//!   A user that maps it without a descriptor takes it from a *source
//!   mapping* of the whole object, placed where no image maps anything:
//!   the restorer maps it at the user's address with `mremap` (old size
//!   0, which makes a second mapping of the same shared pages) and the
//!   user's protection, writes none of its pages (they are in the object
//!   already, and a member restored later must not overwrite what another
//!   already changed), then unmaps the source. A user holding a
//!   descriptor gets a duplicate of the object's, and its mappings follow
//!   (`Backing::Fd`).
//! - *Socket pairs* whose ends are in two or more processes (one may hold
//!   both, recorded as its own `UnixPair`): one `socketpair`, each end
//!   holding what was waiting to be read on it (once, however many
//!   processes recorded it).
//! - *Open file descriptions* of regular files, sockets (a listener
//!   children inherit, bound once) and eventfds held by two or more
//!   processes: opened once, at the dump's offset and with its flags; each
//!   user gets a duplicate, so one offset moves for all.
//!
//! Each process takes what it uses ([`take_fd`], [`source_mappings`]) and
//! drops the rest ([`close`]) before teardown.
//!
//! Runs in the constructor, before teardown, with libc.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use dumpfmt::{Backing, Fd, FdKind, Image, PAGE_SIZE, SharedKey};

use super::{Refusal, exit, refuse};

/// One shared memory object: its descriptor (when some user holds one)
/// and its source mapping (when some user maps it without one).
struct Memory {
    fd: Option<OwnedFd>,
    source: Option<(u64, u64)>,
}

#[derive(Default)]
struct Objects {
    /// By (device, inode).
    memory: HashMap<(u64, u64), Memory>,
    /// Socket-pair ends by inode.
    sockets: HashMap<u64, OwnedFd>,
    /// Descriptions by key.
    descriptions: HashMap<(u32, i32), OwnedFd>,
}

static OBJECTS: Mutex<Option<Objects>> = Mutex::new(None);

fn objects() -> std::sync::MutexGuard<'static, Option<Objects>> {
    OBJECTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn fail(what: &str, e: impl std::fmt::Display) -> Refusal {
    refuse(exit::UNSUPPORTED, format!("shared {what}: {e}"))
}

/// Makes every object two or more of `images` (with their files) share.
pub fn make(images: &[(&Image<'_>, &File, u64)]) -> Result<(), Refusal> {
    let mut objects = Objects::default();
    // Who uses what: key -> processes.
    let mut users: HashMap<SharedKey, HashSet<usize>> = HashMap::new();
    for (i, (image, _, _)) in images.iter().enumerate() {
        for m in image.minor3.shared.memory.iter() {
            let key = SharedKey::Object {
                dev: m.dev,
                ino: m.ino,
            };
            users.entry(key).or_default().insert(i);
        }
        for f in image.minor3.shared.fds.iter() {
            users.entry(f.key).or_default().insert(i);
        }
    }
    users.retain(|_, u| u.len() >= 2);
    for key in users.keys() {
        match *key {
            SharedKey::Object { dev, ino } => {
                let m = make_memory(images, (dev, ino))?;
                objects.memory.insert((dev, ino), m);
            }
            // Paired below: each end may have one user only.
            SharedKey::SocketEnd { .. } => {}
            SharedKey::Description { pid, fd } => {
                let (image, rec) = find_fd(images, *key)
                    .ok_or_else(|| fail("file", format!("no record of description {pid}:{fd}")))?;
                // Made here, in the root, before the other members
                // exist: a procfs file can only be the root's (PIDs are
                // kept), or `files::make` would open the root's own.
                if let Some(dumpfmt::files::How::Proc { .. }) = image.minor4.files.of(rec.fd) {
                    let of = super::tree_procfs::recorded(rec).unwrap_or(0);
                    // SAFETY: no arguments.
                    if of != unsafe { libc::getpid() } as u32 {
                        return Err(fail(
                            "file",
                            format!(
                                "fd {} of process {}: the procfs file of process {of}, shared by several processes of the tree, can be made again only when it is the first process's",
                                rec.fd, image.pid
                            ),
                        ));
                    }
                }
                // O_PATH and procfs files as their entries say.
                let made = match super::files::make(image, rec) {
                    Some(made) => made?,
                    None => super::fds::make_file(rec)?,
                };
                objects.descriptions.insert((pid, fd), made);
            }
        }
    }
    // Socket pairs with both ends in the tree (else an end stays
    // peer-gone), held by two or more processes (a pair one process holds
    // alone is its own, `super::fds`). End inode -> processes holding it.
    let mut ends: HashMap<u64, HashSet<usize>> = HashMap::new();
    for (i, (image, _, _)) in images.iter().enumerate() {
        for f in image.minor3.shared.fds.iter() {
            if let SharedKey::SocketEnd { ino, .. } = f.key {
                ends.entry(ino).or_default().insert(i);
            }
        }
    }
    let tree_pair = |ino: u64, peer: u64| match (ends.get(&ino), ends.get(&peer)) {
        (Some(a), Some(b)) => a.union(b).nth(1).is_some(),
        _ => false,
    };
    for (image, _, _) in images {
        for f in image.minor3.shared.fds.iter() {
            if let SharedKey::SocketEnd { ino, peer } = f.key
                && tree_pair(ino, peer)
                && !objects.sockets.contains_key(&ino)
            {
                let (a, b) = make_pair(images, ino, peer)?;
                objects.sockets.insert(ino, a);
                objects.sockets.insert(peer, b);
            }
        }
    }
    *OBJECTS.lock().unwrap_or_else(|e| e.into_inner()) = Some(objects);
    Ok(())
}

/// The first descriptor record with `key`.
fn find_fd<'i, 'a>(
    images: &[(&'i Image<'a>, &File, u64)],
    key: SharedKey,
) -> Option<(&'i Image<'a>, &'i Fd<'a>)> {
    images.iter().find_map(|(image, _, _)| {
        let f = image.minor3.shared.fds.iter().find(|f| f.key == key)?;
        Some((*image, image.fds.iter().find(|r| r.fd == f.fd)?))
    })
}

/// A socket pair for ends `a` and `b`, each holding what waited on it.
fn make_pair(
    images: &[(&Image<'_>, &File, u64)],
    a: u64,
    b: u64,
) -> Result<(OwnedFd, OwnedFd), Refusal> {
    let end =
        |ino: u64| {
            images.iter().find_map(|(image, _, _)| {
                let f =
                    image.minor3.shared.fds.iter().find(
                        |f| matches!(f.key, SharedKey::SocketEnd { ino: i, .. } if i == ino),
                    )?;
                image.fds.iter().find(|r| r.fd == f.fd)
            })
        };
    let (Some(ra), Some(rb)) = (end(a), end(b)) else {
        return Err(fail("socket pair", format!("socket:[{a}] has no record")));
    };
    // A `Gone` end (its peer in another process) or a `UnixPair` end (both
    // in one process): what waits to be read on it, and the pair's type.
    let queued = |kind: &'_ FdKind<'_>| match kind {
        FdKind::Gone {
            sock_type, data, ..
        }
        | FdKind::UnixPair {
            sock_type, data, ..
        } => Some((*sock_type, data.to_vec())),
        _ => None,
    };
    let (Some((sock_type, data)), Some((_, data_b))) = (queued(&ra.kind), queued(&rb.kind)) else {
        return Err(fail("socket pair", format!("socket:[{a}] is not a socket")));
    };
    let (sock_type, data, data_b) = (&sock_type, &data[..], &data_b[..]);
    let (sa, sb) = super::fds::socket_pair(*sock_type, ra)?;
    let what = format!("socket:[{a}]");
    super::fds::send_queued(&sb, *sock_type, data).map_err(|e| fail(&what, e))?;
    super::fds::send_queued(&sa, *sock_type, data_b).map_err(|e| fail(&what, e))?;
    Ok((sa, sb))
}

/// Makes shared memory object `key` and fills it.
fn make_memory(images: &[(&Image<'_>, &File, u64)], key: (u64, u64)) -> Result<Memory, Refusal> {
    let okey = SharedKey::Object {
        dev: key.0,
        ino: key.1,
    };
    // Its size, its name, and whether a descriptor or a mapping needs it.
    let mut size = 0u64;
    let mut name: Option<String> = None;
    let mut contents: Option<&[u8]> = None;
    // Contents stored with the page data (`super::bigfiles`): the first
    // record's, with its image.
    let mut stored: Option<(&File, u64, i32, &dumpfmt::files::How<'_>)> = None;
    // The first descriptor's name, flags and offset.
    let mut record: Option<(String, i32, u64)> = None;
    let mut mapped = false;
    for (image, file, base) in images {
        for s in image.minor3.shared.memory.iter() {
            if (s.dev, s.ino) != key {
                continue;
            }
            let m = mapping_at(image, s.start)?;
            size = size.max(s.offset + (m.end - m.start));
            mapped = true;
            name.get_or_insert_with(|| m.name.to_string());
        }
        for f in image.minor3.shared.fds.iter().filter(|f| f.key == okey) {
            if let Some(Fd {
                kind:
                    FdKind::Contents {
                        name: n,
                        data,
                        memfd,
                        offset,
                        ..
                    },
                flags,
                ..
            }) = image.fds.iter().find(|r| r.fd == f.fd)
            {
                size = size.max(data.len() as u64);
                match image.minor4.files.of(f.fd) {
                    Some(how @ dumpfmt::files::How::Stored { size: n, .. }) => {
                        size = size.max(*n);
                        stored.get_or_insert((*file, *base, f.fd, how));
                    }
                    _ => {
                        contents.get_or_insert(data);
                    }
                }
                record.get_or_insert_with(|| {
                    let n = if *memfd {
                        format!("/memfd:{n} (deleted)")
                    } else {
                        format!("{n} (deleted)")
                    };
                    (n, *flags, *offset)
                });
            }
            // Mappings of it through the descriptor reach this far too.
            for m in image.mappings.iter() {
                if m.backing == Backing::Fd(f.fd) {
                    size = size.max(m.offset + (m.end - m.start));
                }
            }
        }
    }
    let (flags, offset) = record.as_ref().map_or((0, 0), |r| (r.1, r.2));
    let name = record.map(|r| r.0).or(name).unwrap_or_default();
    let what = name.clone();
    let fd = if contents.is_some() || stored.is_some() || !name.starts_with("/dev/zero") {
        Some(object_file(&name, size, flags).map_err(|e| fail(&what, e))?)
    } else {
        None
    };
    if let (Some(fd), Some(data)) = (&fd, contents) {
        let f = File::from(fd.try_clone().map_err(|e| fail(&what, e))?);
        f.write_all_at(data, 0).map_err(|e| fail(&what, e))?;
        // SAFETY: lseek on our descriptor.
        unsafe { libc::lseek(f.as_raw_fd(), offset as i64, libc::SEEK_SET) };
    }
    if let (Some(fd), Some((image, base, n, how))) = (&fd, stored) {
        let f = File::from(fd.try_clone().map_err(|e| fail(&what, e))?);
        super::bigfiles::fill(image, base, n, how, &f)?;
        // SAFETY: lseek on our descriptor.
        unsafe { libc::lseek(f.as_raw_fd(), offset as i64, libc::SEEK_SET) };
    }
    let mut source = None;
    if mapped {
        let len = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let at = source_mapping(images, len, fd.as_ref()).map_err(|e| fail(&what, e))?;
        source = Some((at, len));
        fill(images, key, at).map_err(|e| fail(&what, e))?;
    }
    // A descriptor only the source mapping needed is not kept.
    let keep_fd = images
        .iter()
        .any(|(image, _, _)| image.minor3.shared.fds.iter().any(|f| f.key == okey));
    Ok(Memory {
        fd: fd.filter(|_| keep_fd),
        source,
    })
}

/// The mapping of `image` that starts at `start`.
fn mapping_at<'i>(image: &'i Image<'_>, start: u64) -> Result<&'i dumpfmt::Mapping<'i>, Refusal> {
    let at = image.mappings.partition_point(|m| m.start < start);
    image
        .mappings
        .get(at)
        .filter(|m| m.start == start)
        .ok_or_else(|| {
            refuse(
                exit::CORRUPT,
                format!("a shared memory record names {start:#x}, where no mapping starts"),
            )
        })
}

/// A file for a shared memory object named `name` as `/proc/PID/maps`
/// showed it: a memfd of that name, or the old path made again and
/// unlinked (a memfd of that name if it is taken), opened with the
/// `O_NOFOLLOW` of `flags` (which `F_SETFL` cannot give it later).
fn object_file(name: &str, size: u64, flags: i32) -> std::io::Result<OwnedFd> {
    let path = name.strip_suffix(" (deleted)").unwrap_or(name);
    let memfd = |n: &str| -> std::io::Result<OwnedFd> {
        let c = CString::new(n).unwrap_or_default();
        // SAFETY: memfd_create with a NUL-terminated name.
        let fd =
            unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: just created, ours.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let fd = if let Some(n) = path.strip_prefix("/memfd:") {
        memfd(n)?
    } else {
        let c = CString::new(path).unwrap_or_default();
        // SAFETY: open with a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR
                    | libc::O_CREAT
                    | libc::O_EXCL
                    | libc::O_CLOEXEC
                    | (flags & libc::O_NOFOLLOW),
                0o600,
            )
        };
        if fd >= 0 {
            // SAFETY: the file we just created; `fd` is ours.
            unsafe { libc::unlink(c.as_ptr()) };
            // SAFETY: just opened, ours.
            unsafe { OwnedFd::from_raw_fd(fd) }
        } else {
            memfd(path)?
        }
    };
    File::from(fd.try_clone()?).set_len(size)?;
    Ok(fd)
}

/// Maps the object (`fd`, or new shared anonymous memory) whole, `len`
/// bytes, where no image maps anything; returns the address.
fn source_mapping(
    images: &[(&Image<'_>, &File, u64)],
    len: u64,
    fd: Option<&OwnedFd>,
) -> std::io::Result<u64> {
    const GAP: u64 = 1 << 30;
    let taken = |a: u64| {
        images.iter().any(|(image, _, _)| {
            image
                .mappings
                .iter()
                .any(|m| m.start < a + len + GAP && a < m.end + GAP)
        })
    };
    let mut at = 0x2000_0000_0000u64;
    while at + len < super::plan::TASK_END / 2 {
        if !taken(at) {
            let (flags, fd) = match fd {
                Some(f) => (libc::MAP_SHARED, f.as_raw_fd()),
                None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
            };
            // SAFETY: a new mapping where nothing is (NOREPLACE checks).
            let p = unsafe {
                libc::mmap(
                    at as *mut _,
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags | libc::MAP_FIXED_NOREPLACE,
                    fd,
                    0,
                )
            };
            if p as u64 == at {
                return Ok(at);
            }
            if p != libc::MAP_FAILED {
                // SAFETY: the mapping just made elsewhere, ours.
                unsafe { libc::munmap(p, len as usize) };
            }
        }
        at += (len + GAP).div_ceil(GAP) * GAP;
    }
    Err(std::io::Error::other("no free address range for it"))
}

/// Writes every user's pages of object `key` into its source mapping.
fn fill(images: &[(&Image<'_>, &File, u64)], key: (u64, u64), at: u64) -> std::io::Result<()> {
    for (image, file, base) in images {
        for s in image.minor3.shared.memory.iter() {
            if (s.dev, s.ino) != key {
                continue;
            }
            let Ok(m) = mapping_at(image, s.start) else {
                continue;
            };
            let first = image.runs.partition_point(|r| r.addr < m.start);
            for r in image.runs[first..].iter().take_while(|r| r.addr < m.end) {
                let len = (r.pages * PAGE_SIZE) as usize;
                let dst = at + s.offset + (r.addr - m.start);
                // SAFETY: `dst..dst+len` lies in the source mapping (the
                // object's size covers every user's mapping), read-write.
                let buf = unsafe { core::slice::from_raw_parts_mut(dst as *mut u8, len) };
                file.read_exact_at(buf, base + r.file_offset)?;
            }
        }
    }
    Ok(())
}

/// A new descriptor for record `fd` of `image` when it is one of the
/// tree's shared objects.
pub fn take_fd(image: &Image<'_>, fd: &Fd<'_>) -> Option<Result<OwnedFd, Refusal>> {
    let shared = &image.minor3.shared.fds;
    let at = shared.binary_search_by_key(&fd.fd, |f| f.fd).ok()?;
    let guard = objects();
    let objects = guard.as_ref()?;
    let theirs = match shared[at].key {
        SharedKey::Object { dev, ino } => objects.memory.get(&(dev, ino))?.fd.as_ref()?,
        SharedKey::SocketEnd { ino, .. } => objects.sockets.get(&ino)?,
        SharedKey::Description { pid, fd } => objects.descriptions.get(&(pid, fd))?,
    };
    Some(
        theirs
            .try_clone()
            .map_err(|e| fail(&format!("fd {}", fd.fd), e)),
    )
}

/// The shared memory a process maps from source mappings.
#[derive(Default)]
pub struct Sources {
    /// Mapping start to the address in a source mapping where its pages
    /// start.
    pub from: HashMap<u64, u64>,
    /// The source mappings, kept until the restorer has used them.
    pub keep: Vec<(u64, u64)>,
}

/// What `image` maps from the source mappings of the tree's shared memory.
pub fn source_mappings(image: &Image<'_>) -> Sources {
    let mut sources = Sources::default();
    let guard = objects();
    let Some(objects) = guard.as_ref() else {
        return sources;
    };
    for s in image.minor3.shared.memory.iter() {
        if let Some(Memory {
            source: Some((at, len)),
            ..
        }) = objects.memory.get(&(s.dev, s.ino))
        {
            sources.from.insert(s.start, at + s.offset);
            if !sources.keep.contains(&(*at, at + len)) {
                sources.keep.push((*at, at + len));
            }
        }
    }
    sources
}

/// Refuses an image whose shared memory has its pages in another
/// member's image (a tree stores them once) unless the tree restores it.
pub fn check_pages(image: &Image<'_>, sources: &Sources) -> Result<(), Refusal> {
    for s in image.minor3.shared.memory.iter() {
        if s.pages_in != 0 && !sources.from.contains_key(&s.start) {
            let name = mapping_at(image, s.start).map_or(String::new(), |m| m.name.to_string());
            return Err(refuse(
                exit::UNSUPPORTED,
                format!(
                    "the pages of shared memory at {:#x} {name} are in the image of process {} (restore this image with its tree's)",
                    s.start, s.pages_in
                ),
            ));
        }
    }
    Ok(())
}

/// Drops this process's copies of the shared objects' descriptors (what it
/// uses of them it holds as its own descriptors by now; source mappings
/// stay until the restorer unmaps them).
pub fn close() {
    objects().take();
}

/// The restorer's ops that map `m` from the source mapping at `at` (where
/// `m`'s pages start): a second mapping of the same pages, then `m`'s
/// protection.
pub fn map_ops(plan: &mut super::plan::Plan, m: &dumpfmt::Mapping<'_>, at: u64) {
    use super::plan::Arg::V;
    let len = m.end - m.start;
    let flags = (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64;
    plan.call(
        libc::SYS_mremap,
        &[V(at), V(0), V(len), V(flags), V(m.start)],
        V(m.start),
        &format!(
            "restore: cannot map shared memory at {:#x}-{:#x} {}",
            m.start, m.end, m.name
        ),
    );
    plan.call(
        libc::SYS_mprotect,
        &[V(m.start), V(len), V(u64::from(m.prot))],
        V(0),
        &format!("restore: cannot protect {:#x}", m.start),
    );
}

/// The restorer's ops that unmap the source mappings once every mapping
/// is made.
pub fn unmap_ops(plan: &mut super::plan::Plan, sources: &[(u64, u64)]) {
    use super::plan::Arg::V;
    for &(start, end) in sources {
        plan.call(
            libc::SYS_munmap,
            &[V(start), V(end - start)],
            V(0),
            "restore: cannot unmap a shared memory source",
        );
    }
}
