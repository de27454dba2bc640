//! Making the image's descriptors again, in the constructor, before
//! teardown (libc available): every descriptor is created at a temporary
//! number above all of the image's; the restorer then moves each to its
//! number with `dup3` (see `build_plan`). Anything missing or changed
//! refuses the restore here, while nothing has been torn down.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use dumpfmt::{Fd, FdKind, Image};

use super::{Refusal, exit, refuse};

/// A descriptor made again, waiting at a temporary number.
pub struct Made {
    pub temp: OwnedFd,
    pub target: i32,
    pub cloexec: bool,
}

/// The descriptors made for an image, and the lowest temporary number.
pub struct MadeFds {
    pub made: Vec<Made>,
    /// Every temporary descriptor (these and any moved by `lift`) is at or above this.
    pub base: i32,
}

fn last_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Moves `fd` to a number at or above `base` (close-on-exec).
pub fn lift(fd: OwnedFd, base: i32) -> Result<OwnedFd, Refusal> {
    if fd.as_raw_fd() >= base {
        return Ok(fd);
    }
    // SAFETY: duplicating a descriptor we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, base) };
    if n < 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!("cannot move a descriptor above {base}: {}", last_error()),
        ));
    }
    // SAFETY: `n` is a new descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Takes ownership of a raw descriptor returned by a libc call, or says why it failed.
fn own(n: libc::c_int, fd: &Fd<'_>, what: &str) -> Result<OwnedFd, Refusal> {
    if n < 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!("fd {}: {what}: {}", fd.fd, last_error()),
        ));
    }
    // SAFETY: `n` was just returned by the kernel and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Opens `path` again for descriptor `fd`; a failure refuses the restore
/// naming the `what` (file, directory, ...) and the path.
fn open_path(what: &str, path: &str, flags: i32, fd: &Fd<'_>) -> Result<OwnedFd, Refusal> {
    // SAFETY: opening a NUL-terminated path.
    let n = unsafe { libc::open(cstr(path).as_ptr(), flags) };
    if n < 0 {
        return Err(refuse(
            exit::FILE_CHANGED,
            format!("{what} {path} (fd {}): {}", fd.fd, last_error()),
        ));
    }
    // SAFETY: `n` was just returned by the kernel and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// The status flags `F_SETFL` can change.
const SETFL_FLAGS: i32 =
    libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;

fn set_status_flags(fd: &OwnedFd, flags: i32) {
    // SAFETY: F_SETFL on a descriptor we own.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & SETFL_FLAGS) };
}

/// Writes all of `data`; a descriptor that would block (a pipe or socket
/// too small for what it held at the dump) is an error, not a hang.
fn write_all(fd: &OwnedFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        // SAFETY: sending from a live buffer; MSG_DONTWAIT only applies to
        // sockets, so other kinds fall back to write below.
        let mut n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 && last_error().raw_os_error() == Some(libc::ENOTSOCK) {
            // SAFETY: writing from a live buffer.
            n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        }
        if n < 0 {
            let e = last_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => {
                    return Err(std::io::Error::other(format!(
                        "{} bytes do not fit in it here (pipe or socket buffers are smaller than at the dump)",
                        data.len()
                    )));
                }
                _ => return Err(e),
            }
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// A pipe (read end, write end), close-on-exec, holding `data`.
fn pipe_with(data: &[u8], size: u32, fd: &Fd<'_>) -> Result<(OwnedFd, OwnedFd), Refusal> {
    let mut p = [0; 2];
    // SAFETY: `p` has room for two descriptors.
    // Non-blocking while it is filled (each end gets its own flags later).
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!("fd {}: pipe: {}", fd.fd, last_error()),
        ));
    }
    // SAFETY: both descriptors were just created and are ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    fill_pipe(&w, data, size, fd)?;
    Ok((r, w))
}

/// Gives the pipe of write end `w` room for `size` bytes (and `data`), and
/// writes `data` into it.
fn fill_pipe(w: &OwnedFd, data: &[u8], size: u32, fd: &Fd<'_>) -> Result<(), Refusal> {
    let want = size.max(data.len() as u32);
    // SAFETY: F_GETPIPE_SZ and F_SETPIPE_SZ on our pipe (a refused resize
    // shows as a full pipe below).
    unsafe {
        if want as libc::c_int > libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) {
            libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, want as libc::c_int);
        }
    }
    write_all(w, data).map_err(|e| {
        refuse(
            exit::UNSUPPORTED,
            format!("fd {}: refilling its pipe: {e}", fd.fd),
        )
    })
}

/// The two ends of the FIFO at `path`, opened again (so they stay that
/// FIFO, not an anonymous pipe), holding `data`. The read end is opened
/// first: a non-blocking open for writing fails while there is no reader.
fn fifo_with(
    path: &str,
    data: &[u8],
    size: u32,
    fd: &Fd<'_>,
) -> Result<(OwnedFd, OwnedFd), Refusal> {
    let flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    let r = open_path("FIFO", path, libc::O_RDONLY | flags, fd)?;
    let is_fifo = std::fs::File::from(
        r.try_clone()
            .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))?,
    )
    .metadata()
    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
    if !is_fifo {
        return Err(refuse(
            exit::FILE_CHANGED,
            format!("FIFO {path} (fd {}) is no longer a FIFO", fd.fd),
        ));
    }
    let w = open_path("FIFO", path, libc::O_WRONLY | flags, fd)?;
    fill_pipe(&w, data, size, fd)?;
    Ok((r, w))
}

/// Queues on a socket what its peer will read: a stream's bytes, or a
/// datagram socket's messages (each framed as a little-endian u32 length
/// and the bytes, as the dump wrote them).
pub(super) fn send_queued(through: &OwnedFd, sock_type: i32, data: &[u8]) -> std::io::Result<()> {
    let room = (data.len() * 2).min(i32::MAX as usize) as i32;
    // SAFETY: an int option from a live int (the kernel caps it at wmem_max).
    unsafe {
        libc::setsockopt(
            through.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&room as *const i32).cast(),
            4,
        )
    };
    if sock_type == libc::SOCK_STREAM {
        return write_all(through, data);
    }
    let mut rest = data;
    while rest.len() >= 4 {
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let msg = rest
            .get(4..4 + n)
            .ok_or_else(|| std::io::Error::other("a queued datagram runs past its record"))?;
        // SAFETY: sending from a live buffer.
        if unsafe {
            libc::send(
                through.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                libc::MSG_DONTWAIT,
            )
        } < 0
        {
            return Err(std::io::Error::other(format!(
                "a queued message does not fit: {}",
                last_error()
            )));
        }
        rest = &rest[4 + n..];
    }
    Ok(())
}

/// A connected pair of Unix sockets of `sock_type`, close-on-exec.
pub(super) fn socket_pair(sock_type: i32, fd: &Fd<'_>) -> Result<(OwnedFd, OwnedFd), Refusal> {
    let mut s = [0; 2];
    // SAFETY: `s` has room for two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            sock_type | libc::SOCK_CLOEXEC,
            0,
            s.as_mut_ptr(),
        )
    } != 0
    {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!("fd {}: socketpair: {}", fd.fd, last_error()),
        ));
    }
    // SAFETY: both were just created and are ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(s[0]), OwnedFd::from_raw_fd(s[1])) })
}

/// Makes every descriptor of the image, checking files on the way.
/// `base` must exceed every number the image uses.
/// `data`: the image's file and where the image starts in it (the data
/// of large unnamed files is read from there: `super::bigfiles`).
pub fn make(image: &Image<'_>, data: (&std::fs::File, u64), base: i32) -> Result<MadeFds, Refusal> {
    let mut made = Vec::with_capacity(image.fds.len());
    let mut shared = Shared::default();
    let queued = Queued::of(&image.fds);
    // Descriptors some mapping shares and writes, in one pass.
    let mapped_writable: std::collections::HashSet<i32> = image
        .mappings
        .iter()
        .filter(|m| m.shared && m.prot & dumpfmt::PROT_WRITE != 0)
        .filter_map(|m| match m.backing {
            dumpfmt::Backing::Fd(n) => Some(n),
            _ => None,
        })
        .collect();
    // And those any mapping comes from (a write-only descriptor cannot be mapped).
    let mapped: std::collections::HashSet<i32> = image
        .mappings
        .iter()
        .filter_map(|m| match m.backing {
            dumpfmt::Backing::Fd(n) => Some(n),
            _ => None,
        })
        .collect();
    for fd in image.fds.iter() {
        if let FdKind::Dup { of } = fd.kind {
            // `made` follows the image's fds, in increasing order: a binary
            // search keeps a restore of many dups from being quadratic.
            let original: &Made = made
                .binary_search_by_key(&of, |m: &Made| m.target)
                .ok()
                .map(|at| &made[at])
                .ok_or_else(|| {
                    refuse(
                        exit::CORRUPT,
                        format!(
                            "fd {} duplicates fd {of}, which the image does not hold",
                            fd.fd
                        ),
                    )
                })?;
            let temp = original
                .temp
                .try_clone()
                .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))?;
            made.push(Made {
                temp: lift(temp, base)?,
                target: fd.fd,
                cloexec: fd.cloexec,
            });
            continue;
        }
        // One of the objects the tree's processes share, made once.
        let (temp, filled) = match super::tree_shared::take_fd(image, fd) {
            Some(made) => (made?, true),
            None => match super::files::make(image, fd) {
                Some(made) => (made?, false),
                None => (make_one(fd, &queued, &mut shared)?, false),
            },
        };
        super::files::shape(image, data, fd, &temp, filled)?;
        let temp = read_only_again(
            fd,
            temp,
            mapped_writable.contains(&fd.fd),
            mapped.contains(&fd.fd),
        )?;
        super::files::attrs(image, fd, &temp)?;
        set_status_flags(&temp, fd.flags);
        made.push(Made {
            temp: lift(temp, base)?,
            target: fd.fd,
            cloexec: fd.cloexec,
        });
    }
    super::sockets::finish(image, &mut made, base)?;
    super::files::close();
    Ok(MadeFds { made, base })
}

/// A deleted file open only for reading (or only for writing) comes back
/// so: its contents go into a memfd, which is read-write, so it is opened
/// again through /proc with the file's access mode. Not for memfds (seals need a
/// writable descriptor), nor when a mapping of it is shared and writable,
/// nor, for a write-only one, mapped at all (the restore maps it from this
/// descriptor).
fn read_only_again(
    fd: &Fd<'_>,
    made: OwnedFd,
    mapped_writable: bool,
    mapped: bool,
) -> Result<OwnedFd, Refusal> {
    let FdKind::Contents {
        memfd: false,
        offset,
        ..
    } = fd.kind
    else {
        return Ok(made);
    };
    let access = fd.flags & libc::O_ACCMODE;
    if access == libc::O_RDWR || mapped_writable || (access == libc::O_WRONLY && mapped) {
        return Ok(made);
    }
    let again = format!("/proc/self/fd/{}", made.as_raw_fd());
    let f = open_path("deleted file", &again, access | libc::O_CLOEXEC, fd)?;
    // SAFETY: lseek on our descriptor (a new open file, at 0).
    unsafe { libc::lseek(f.as_raw_fd(), offset as i64, libc::SEEK_SET) };
    Ok(f)
}

/// Pipes and socket pairs whose ends several records share: made with the
/// first record, each record takes a duplicate of its end.
#[derive(Default)]
struct Shared {
    /// Pipe id to (read end, write end).
    pipes: HashMap<u64, (OwnedFd, OwnedFd)>,
    /// (lower id, higher id) to (end of the lower, end of the higher).
    pairs: HashMap<(u64, u64), (OwnedFd, OwnedFd)>,
}

/// What the records of pipes and socket pairs had waiting, by id: found in
/// one pass, as a scan of every record for each pipe or pair made the
/// restore quadratic in the number of descriptors.
#[derive(Default)]
struct Queued<'i> {
    /// Pipe id to what its (first) read end had waiting.
    pipes: HashMap<u64, &'i [u8]>,
    /// Socket-pair end id to (fd, what it had waiting), in record order.
    pair_ends: HashMap<u64, Vec<(i32, &'i [u8])>>,
}

impl<'i> Queued<'i> {
    fn of(all: &'i [Fd<'_>]) -> Queued<'i> {
        let mut queued = Queued::default();
        for o in all {
            match &o.kind {
                FdKind::Pipe {
                    id,
                    write: false,
                    data,
                    ..
                } => {
                    queued.pipes.entry(*id).or_insert(&data[..]);
                }
                FdKind::UnixPair { id, data, .. } => {
                    queued.pair_ends.entry(*id).or_default().push((o.fd, data));
                }
                _ => {}
            }
        }
        queued
    }
}

/// A regular file's descriptor made alone (an open file description the
/// tree's processes share, opened once: `super::tree_shared`).
pub(super) fn make_file(fd: &Fd<'_>) -> Result<OwnedFd, Refusal> {
    let made = make_one(fd, &Queued::default(), &mut Shared::default())?;
    set_status_flags(&made, fd.flags);
    Ok(made)
}

fn make_one(fd: &Fd<'_>, queued: &Queued<'_>, shared: &mut Shared) -> Result<OwnedFd, Refusal> {
    let Shared { pipes, pairs } = shared;
    let cloexec = libc::O_CLOEXEC;
    match &fd.kind {
        FdKind::Dup { of } => Err(refuse(
            exit::CORRUPT,
            format!("fd {} duplicates fd {of} out of order", fd.fd),
        )),
        FdKind::File {
            path,
            offset,
            size,
            mtime_sec,
            mtime_nsec,
        } => {
            let open_flags = (fd.flags
                & (libc::O_ACCMODE
                    | libc::O_APPEND
                    | libc::O_NONBLOCK
                    | libc::O_DSYNC
                    | libc::O_SYNC
                    | libc::O_PATH
                    | libc::O_NOATIME))
                | cloexec
                | libc::O_NOCTTY
                // Never wait on something else now at that path (a FIFO).
                | libc::O_NONBLOCK;
            let file = std::fs::File::from(open_path("file", path, open_flags, fd)?);
            if fd.flags & libc::O_PATH == 0 && !file.metadata().is_ok_and(|m| m.is_file()) {
                return Err(refuse(
                    exit::FILE_CHANGED,
                    format!("file {path} (fd {}) is no longer a regular file", fd.fd),
                ));
            }
            if fd.flags & libc::O_ACCMODE == libc::O_RDONLY {
                let st = file
                    .metadata()
                    .map_err(|e| refuse(exit::FILE_CHANGED, format!("file {path}: {e}")))?;
                if st.size() != *size || (st.mtime(), st.mtime_nsec()) != (*mtime_sec, *mtime_nsec)
                {
                    return Err(refuse(
                        exit::FILE_CHANGED,
                        format!(
                            "file {path} (fd {}, open for reading) changed since the dump",
                            fd.fd
                        ),
                    ));
                }
            }
            // SAFETY: lseek on our descriptor.
            unsafe { libc::lseek(file.as_raw_fd(), *offset as i64, libc::SEEK_SET) };
            Ok(file.into())
        }
        // Seals come back after the mappings (see `build_plan`): a write
        // seal would forbid mapping the file writable.
        FdKind::Contents {
            name, data, offset, ..
        } => {
            // SAFETY: memfd_create with a NUL-terminated name.
            let n = unsafe {
                libc::memfd_create(
                    cstr(name).as_ptr(),
                    libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
                )
            };
            let f = own(n, fd, "memfd_create")?;
            write_all(&f, data).map_err(|e| {
                refuse(
                    exit::UNSUPPORTED,
                    format!("fd {}: refilling {name}: {e}", fd.fd),
                )
            })?;
            // SAFETY: lseek on our descriptor.
            unsafe { libc::lseek(f.as_raw_fd(), *offset as i64, libc::SEEK_SET) };
            Ok(f)
        }
        FdKind::Dir { path, offset } => {
            let f = open_path(
                "directory",
                path,
                libc::O_RDONLY | libc::O_DIRECTORY | cloexec,
                fd,
            )?;
            // SAFETY: lseek on our descriptor.
            unsafe { libc::lseek(f.as_raw_fd(), *offset as i64, libc::SEEK_SET) };
            Ok(f)
        }
        FdKind::Device { path } => {
            let flags = (fd.flags & (libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_APPEND))
                | cloexec
                | libc::O_NOCTTY;
            open_path("device", path, flags, fd)
        }
        FdKind::Pipe {
            id,
            path,
            write,
            data,
            size,
        } => {
            if fd.flags & libc::O_ACCMODE == libc::O_RDWR && !path.is_empty() {
                // A FIFO open for both reading and writing.
                // (O_RDWR does not block on a FIFO.)
                let f = open_path("FIFO", path, libc::O_RDWR | libc::O_NONBLOCK | cloexec, fd)?;
                let st = std::fs::File::from(
                    f.try_clone()
                        .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))?,
                )
                .metadata();
                if !st.is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type())) {
                    return Err(refuse(
                        exit::FILE_CHANGED,
                        format!("FIFO {path} (fd {}) is no longer a FIFO", fd.fd),
                    ));
                }
                write_all(&f, data).map_err(|e| {
                    refuse(
                        exit::UNSUPPORTED,
                        format!("fd {}: refilling {path}: {e}", fd.fd),
                    )
                })?;
                return Ok(f);
            }
            // Both ends here, and an end in another process of the tree.
            if path.is_empty()
                && let Some(end) =
                    super::tree::shared_pipe_end(&super::tree::pipe_name(*id), *write)
            {
                return end.map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)));
            }
            let (r, w) = match pipes.entry(*id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(slot) => {
                    // The pipe holds what its read end had waiting.
                    let data = queued.pipes.get(id).copied().unwrap_or(&[]);
                    let ends = if path.is_empty() {
                        pipe_with(data, *size, fd)?
                    } else {
                        fifo_with(path, data, *size, fd)?
                    };
                    slot.insert(ends)
                }
            };
            let end = if *write { w } else { r };
            end.try_clone()
                .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))
        }
        FdKind::Gone {
            what,
            sock_type,
            write,
            data,
        } => {
            // A pipe to another process of the tree restored with this one.
            if *sock_type == 0
                && let Some(end) = super::tree::shared_pipe_end(what, *write)
            {
                return end.map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)));
            }
            if *sock_type == 0 {
                let (r, w) = pipe_with(if *write { &[] } else { data }, 0, fd)?;
                return Ok(if *write { w } else { r });
            }
            let (mine, peer) = socket_pair(*sock_type, fd)?;
            send_queued(&peer, *sock_type, data)
                .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))?;
            drop(peer);
            Ok(mine)
        }
        FdKind::Eventfd { count, semaphore } => {
            let flags = libc::EFD_CLOEXEC | if *semaphore { libc::EFD_SEMAPHORE } else { 0 };
            // SAFETY: plain eventfd creation.
            let f = own(unsafe { libc::eventfd(0, flags) }, fd, "eventfd")?;
            if *count > 0 {
                write_all(&f, &count.to_ne_bytes())
                    .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))?;
            }
            Ok(f)
        }
        FdKind::Timerfd {
            clock,
            value_ns,
            interval_ns,
            ticks,
        } => {
            // SAFETY: plain timerfd creation.
            let f = own(
                unsafe { libc::timerfd_create(*clock, libc::TFD_CLOEXEC) },
                fd,
                "timerfd_create",
            )?;
            let ts = |ns: u64| libc::timespec {
                tv_sec: (ns / 1_000_000_000) as i64,
                tv_nsec: (ns % 1_000_000_000) as i64,
            };
            let spec = libc::itimerspec {
                it_interval: ts(*interval_ns),
                it_value: ts(*value_ns),
            };
            // SAFETY: setting our timer from a valid itimerspec.
            let set =
                unsafe { libc::timerfd_settime(f.as_raw_fd(), 0, &spec, core::ptr::null_mut()) };
            if *value_ns > 0 && set != 0 {
                return Err(refuse(
                    exit::UNSUPPORTED,
                    format!("fd {}: timerfd_settime: {}", fd.fd, last_error()),
                ));
            }
            if *ticks > 0 {
                const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;
                // SAFETY: the ioctl reads one u64.
                unsafe { libc::ioctl(f.as_raw_fd(), TFD_IOC_SET_TICKS, ticks as *const u64) };
            }
            Ok(f)
        }
        FdKind::Signalfd { mask } => {
            // SAFETY: signalfd4 reads an 8-byte kernel sigset.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_signalfd4,
                    -1,
                    mask as *const u64,
                    8,
                    libc::SFD_CLOEXEC,
                )
            };
            own(n as libc::c_int, fd, "signalfd")
        }
        FdKind::Epoll { .. } => {
            // SAFETY: plain epoll creation; the interest list is added by the restorer.
            own(
                unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
                fd,
                "epoll_create1",
            )
        }
        FdKind::Socket {
            family,
            sock_type,
            protocol,
            listening,
            addr,
            options,
        } => make_socket(
            fd, *family, *sock_type, *protocol, *listening, addr, options,
        ),
        FdKind::UnixPair {
            id,
            peer,
            sock_type,
            ..
        } => {
            let key = ((*id).min(*peer), (*id).max(*peer));
            let (lo, hi) = match pairs.entry(key) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(slot) => {
                    let (lo, hi) = socket_pair(*sock_type, fd)?;
                    // What one end will read is written through the other.
                    let ends = [(key.0, &hi), (key.1, &lo)];
                    // A record paired with itself is sent once, as before.
                    let ends = if key.0 == key.1 {
                        &ends[..1]
                    } else {
                        &ends[..]
                    };
                    for &(end, through) in ends {
                        let records = queued.pair_ends.get(&end).map_or(&[][..], |v| &v[..]);
                        for &(o_fd, data) in records {
                            send_queued(through, *sock_type, data).map_err(|e| {
                                refuse(exit::UNSUPPORTED, format!("fd {o_fd}: {e}"))
                            })?;
                        }
                    }
                    slot.insert((lo, hi))
                }
            };
            let end = if *id == key.0 { lo } else { hi };
            end.try_clone()
                .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", fd.fd)))
        }
    }
}

fn make_socket(
    fd: &Fd<'_>,
    family: i32,
    sock_type: i32,
    protocol: i32,
    listening: bool,
    addr: &[u8],
    options: &[dumpfmt::SockOpt],
) -> Result<OwnedFd, Refusal> {
    // SAFETY: plain socket creation.
    let s = own(
        unsafe { libc::socket(family, sock_type | libc::SOCK_CLOEXEC, protocol) },
        fd,
        "socket",
    )?;
    let set = |level: i32, name: i32, value: i32| {
        // SAFETY: an int option from a live int.
        unsafe { libc::setsockopt(s.as_raw_fd(), level, name, (&value as *const i32).cast(), 4) }
    };
    for o in options {
        set(o.level, o.name, o.value);
    }
    if !addr.is_empty() {
        // The port may still be in TIME_WAIT from the process that was
        // killed: SO_REUSEADDR for the bind, then the app's own setting.
        set(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        if family == libc::AF_UNIX && addr.len() > 2 && addr[2] != 0 {
            let path = &addr[2..];
            let path = &path[..path.iter().position(|&c| c == 0).unwrap_or(path.len())];
            let path = std::path::Path::new(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path),
            );
            // A socket file left by the dumped process is removed; one that
            // a live process (the original, still running) answers on is not.
            let stale = std::fs::symlink_metadata(path)
                .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                && std::os::unix::net::UnixStream::connect(path)
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            if stale {
                let _ = std::fs::remove_file(path);
            }
        }
        // SAFETY: `addr` holds the sockaddr getsockname returned.
        if unsafe { libc::bind(s.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) } != 0 {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!(
                    "fd {}: cannot bind its address again: {}",
                    fd.fd,
                    last_error()
                ),
            ));
        }
        let reuse = options
            .iter()
            .find(|o| o.level == libc::SOL_SOCKET && o.name == libc::SO_REUSEADDR)
            .map_or(0, |o| o.value);
        set(libc::SOL_SOCKET, libc::SO_REUSEADDR, reuse);
    }
    // SAFETY: listen on our socket.
    if listening && unsafe { libc::listen(s.as_raw_fd(), libc::SOMAXCONN) } != 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!("fd {}: listen: {}", fd.fd, last_error()),
        ));
    }
    Ok(s)
}
