//! Descriptors: what each open fd refers to, and what it takes to make it
//! again. Runs in the signal handler: the `dump` module's rules hold.
//!
//! Nothing here changes a descriptor: buffered pipe bytes are copied with
//! `tee`, socket bytes with `MSG_PEEK`, so the process that goes on after
//! the dump finds everything as it was.

use std::borrow::Cow;

use dumpfmt::{EpollEntry, Fd, FdKind, SockOpt};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::procfields::field;
use crate::sys::{self, args, line::Line};

/// What every descriptor of the process looks like from outside.
#[derive(Clone, Copy)]
struct Info<'a> {
    fd: i32,
    mode: u32,
    dev: u64,
    ino: u64,
    flags: i32,
    cloexec: bool,
    /// The `/proc/self/fd/N` link.
    target: &'a [u8],
}

/// Reads every descriptor but `ours` (and stdio, but a tree member's
/// own: `crate::tree::stdio`).
/// Every descriptor, and the (fd, inode) of each that holds file contents
/// (memfds, deleted files), so that mappings of those files can name it.
pub struct Collected<'a> {
    pub fds: &'a [Fd<'a>],
    /// (fd, device, inode).
    pub contents: &'a [(i32, u64, u64)],
    /// What some descriptors need besides their record (`super::files`).
    pub files: &'a [dumpfmt::files::FileFd<'a>],
}

pub fn collect<'a>(
    arena: &'a Arena,
    ours: &[i32],
    refuse_external: bool,
) -> Result<Collected<'a>, Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let mut numbers = arena.vec::<i32>(65536).ok_or_else(no_mem)?;
    let mut full = false;
    let dir = sys::for_each_dir_entry(b"/proc/self/fd\0", |name| {
        if let Some(fd) = sys::parse_dec(name) {
            let fd = fd as i32;
            // Stdio only for a tree member whose own it is.
            if (fd > 2 || crate::tree::stdio::recorded(fd)) && !ours.contains(&fd) {
                full |= numbers.push(fd).is_err();
            }
        }
    })
    .map_err(|e| Fail::new("cannot list /proc/self/fd").errno(e))?;
    if full {
        return Err(Fail::new("more than 65536 descriptors are open"));
    }
    let numbers = numbers.as_mut_slice();
    numbers.sort_unstable();

    let mut infos = arena.vec::<Info<'a>>(numbers.len()).ok_or_else(no_mem)?;
    for &fd in numbers.iter().filter(|&&fd| fd != dir) {
        let mut link = Line::<64>::new();
        link.str("/proc/self/fd/").dec(fd as u64);
        let buf = arena.bytes(4096).ok_or_else(no_mem)?;
        let Some(len) = link.c_str().and_then(|p| sys::readlink(p, buf).ok()) else {
            continue; // closed meanwhile: it was ours (the listing's own fd)
        };
        let Ok(st) = sys::fstat(fd) else { continue };
        let flags = sys::fcntl(fd, libc::F_GETFL, 0).unwrap_or(0) as i32;
        let fdflags = sys::fcntl(fd, libc::F_GETFD, 0).unwrap_or(0);
        let buf: &'a [u8] = buf;
        let _ = infos.push(Info {
            fd,
            mode: st.st_mode & libc::S_IFMT,
            dev: st.st_dev,
            ino: st.st_ino,
            flags,
            cloexec: fdflags & libc::FD_CLOEXEC as u64 != 0,
            target: &buf[..len],
        });
    }
    let infos = infos.into_slice();
    // /proc/self/fdinfo of anon inodes, read one at a time (an epoll set's
    // entries are copied out of it).
    let scratch = arena.bytes(4 << 20).ok_or_else(no_mem)?;
    let mut out = arena.vec::<Fd<'a>>(infos.len()).ok_or_else(no_mem)?;
    let mut contents = arena
        .vec::<(i32, u64, u64)>(infos.len())
        .ok_or_else(no_mem)?;
    let mut files = arena
        .vec::<dumpfmt::files::FileFd<'a>>(infos.len())
        .ok_or_else(no_mem)?;
    for (i, info) in infos.iter().enumerate() {
        let original = infos[..i].iter().find(|o| {
            (o.dev, o.ino, o.mode) == (info.dev, info.ino, info.mode) && same_file(o.fd, info.fd)
        });
        // The first descriptor of an open file is its original: later ones
        // only name it.
        let seen = super::files::Seen {
            fd: info.fd,
            mode: info.mode,
            flags: info.flags,
            target: info.target,
        };
        let (kind, how) = match (original, super::files::special(&seen)) {
            (Some(o), _) => (FdKind::Dup { of: o.fd }, None),
            (None, Some(made)) => made.map(|(kind, how)| (kind, Some(how)))?,
            (None, None) if info.target == super::inotify::TARGET => {
                let (kind, how) = super::inotify::collect(info.fd, arena, scratch)?;
                (kind, Some(how))
            }
            (None, None) => {
                let mut kind = classify(info, infos, arena, scratch, refuse_external)?;
                let how = super::files::after(&seen, &mut kind, arena)?;
                (kind, how)
            }
        };
        if let Some(how) = how {
            let _ = files.push(dumpfmt::files::FileFd { fd: info.fd, how });
        }
        if matches!(kind, FdKind::Contents { .. }) {
            let _ = contents.push((info.fd, info.dev, info.ino));
        }
        let _ = out.push(Fd {
            fd: info.fd,
            flags: info.flags,
            cloexec: info.cloexec,
            kind,
        });
    }
    Ok(Collected {
        fds: out.into_slice(),
        contents: contents.into_slice(),
        files: files.into_slice(),
    })
}

/// Whether two descriptors are the same open file description (a dup).
fn same_file(a: i32, b: i32) -> bool {
    const KCMP_FILE: u64 = 0;
    let pid = sys::getpid();
    // SAFETY: kcmp compares two of our own descriptors; no memory involved.
    let order = unsafe { sys::sys(libc::SYS_kcmp, args!(pid, pid, KCMP_FILE, a, b)) };
    order == Ok(0)
}

fn fail(info: &Info<'_>, why: &str) -> Fail {
    Fail::new("fd ")
        .dec(info.fd as u64)
        .str(" (")
        .bytes(info.target)
        .str("): ")
        .str(why)
}

fn text<'a>(info: &Info<'a>) -> Result<&'a str, Fail> {
    core::str::from_utf8(info.target).map_err(|_| fail(info, "the name is not UTF-8"))
}

fn classify<'a>(
    info: &Info<'a>,
    all: &[Info<'a>],
    arena: &'a Arena,
    scratch: &mut [u8],
    refuse_external: bool,
) -> Result<FdKind<'a>, Fail> {
    let target = info.target;
    let gone = |info: &Info<'a>, sock_type: i32, data: &'a [u8]| -> Result<FdKind<'a>, Fail> {
        // Its peer in another process of the tree being dumped: it comes
        // back whole with the tree (`crate::tree::shared`).
        if let Some(pid) = crate::tree::shared::peer_in_tree(info.target) {
            log_in_tree(info, pid);
        } else if refuse_external {
            return Err(fail(
                info,
                "connected to another process (MIGRATE_EXTERNAL=refuse)",
            ));
        } else {
            log_external(info);
        }
        let write = info.flags & libc::O_ACCMODE == libc::O_WRONLY;
        Ok(FdKind::Gone {
            what: Cow::Borrowed(text(info)?),
            sock_type,
            write,
            data: Cow::Borrowed(data),
        })
    };
    match info.mode {
        libc::S_IFREG => {
            let anonymous = target.ends_with(b" (deleted)") || target.starts_with(b"/memfd:");
            if anonymous {
                return contents(info, arena);
            }
            let st = sys::fstat(info.fd).map_err(|e| fail(info, "fstat").errno(e))?;
            let offset = sys::lseek(info.fd, 0, libc::SEEK_CUR).unwrap_or(0);
            Ok(FdKind::File {
                path: Cow::Borrowed(text(info)?),
                offset,
                size: st.st_size as u64,
                mtime_sec: st.st_mtime,
                mtime_nsec: st.st_mtime_nsec,
            })
        }
        libc::S_IFDIR => {
            let offset = sys::lseek(info.fd, 0, libc::SEEK_CUR).unwrap_or(0);
            Ok(FdKind::Dir {
                path: Cow::Borrowed(text(info)?),
                offset,
            })
        }
        libc::S_IFCHR => {
            let known = [
                &b"/dev/null"[..],
                b"/dev/zero",
                b"/dev/full",
                b"/dev/random",
                b"/dev/urandom",
                b"/dev/tty",
            ];
            if known.contains(&target) || target.starts_with(b"/dev/pts/") {
                Ok(FdKind::Device {
                    path: Cow::Borrowed(text(info)?),
                })
            } else {
                Err(fail(info, "this device cannot be saved"))
            }
        }
        libc::S_IFIFO => {
            let reads = info.flags & libc::O_ACCMODE != libc::O_WRONLY;
            let data = if reads {
                pipe_bytes(info, arena)?
            } else {
                &[][..]
            };
            let peer = all.iter().any(|o| {
                o.fd != info.fd
                    && o.mode == libc::S_IFIFO
                    && o.ino == info.ino
                    && (o.flags & libc::O_ACCMODE) != (info.flags & libc::O_ACCMODE)
            });
            let rdwr = info.flags & libc::O_ACCMODE == libc::O_RDWR;
            if !peer && !rdwr {
                return gone(info, 0, data);
            }
            let size = sys::fcntl(info.fd, libc::F_GETPIPE_SZ, 0).unwrap_or(65536) as u32;
            let path = if target.first() == Some(&b'/') {
                text(info)?
            } else {
                ""
            };
            Ok(FdKind::Pipe {
                id: info.ino,
                path: Cow::Borrowed(path),
                write: !reads,
                data: Cow::Borrowed(data),
                size,
            })
        }
        libc::S_IFSOCK => socket(info, all, arena, gone),
        0 => anon_inode(info, arena, scratch),
        _ => Err(fail(info, "this kind of file cannot be saved")),
    }
}

fn log_in_tree(info: &Info<'_>, pid: i32) {
    // SAFETY: read-only access to the settings from the handler.
    if unsafe { crate::config::SETTINGS.get() }.log >= crate::config::LogLevel::Debug {
        let mut line = Line::<600>::new();
        line.str("migrate: fd ")
            .dec(info.fd as u64)
            .str(" (")
            .bytes(info.target)
            .str(") is shared with process ")
            .dec(pid as u64)
            .str(" of the tree");
        line.emit();
    }
}

fn log_external(info: &Info<'_>) {
    // SAFETY: read-only access to the settings from the handler.
    if unsafe { crate::config::SETTINGS.get() }.log >= crate::config::LogLevel::Info {
        let mut line = Line::<600>::new();
        line.str("migrate: fd ")
            .dec(info.fd as u64)
            .str(" (")
            .bytes(info.target)
            .str(") is connected to another process; after a restore its peer is gone");
        line.emit();
    }
}

/// The whole contents of a file without a name; none when they are too
/// large for the metadata: they then go with the page data
/// (`super::bigfiles`, an entry `super::files::after` adds).
fn contents<'a>(info: &Info<'a>, arena: &'a Arena) -> Result<FdKind<'a>, Fail> {
    let st = sys::fstat(info.fd).map_err(|e| fail(info, "fstat").errno(e))?;
    let size = st.st_size as u64;
    let (buf, done): (&'a [u8], usize) = if super::bigfiles::stored(size) {
        (&[], 0)
    } else {
        let buf = arena
            .bytes(size as usize)
            .ok_or_else(|| fail(info, "the dump arena is too small for its contents"))?;
        let done = super::files::read_contents(info.fd, buf)
            .map_err(|e| fail(info, "cannot read its contents").errno(e))?;
        (buf, done)
    };
    let memfd = info.target.starts_with(b"/memfd:");
    let seals = if memfd {
        sys::fcntl(info.fd, libc::F_GET_SEALS, 0).unwrap_or(0) as u32
    } else {
        0
    };
    let name = text(info)?;
    let name = name.strip_suffix(" (deleted)").unwrap_or(name);
    let name = name.strip_prefix("/memfd:").unwrap_or(name);
    Ok(FdKind::Contents {
        name: Cow::Borrowed(name),
        data: Cow::Borrowed(&buf[..done]),
        offset: sys::lseek(info.fd, 0, libc::SEEK_CUR).unwrap_or(0),
        memfd,
        seals,
    })
}

/// The bytes buffered in a pipe, copied with `tee` (not consumed).
fn pipe_bytes<'a>(info: &Info<'a>, arena: &'a Arena) -> Result<&'a [u8], Fail> {
    let n = sys::bytes_waiting(info.fd);
    if n == 0 {
        return Ok(&[]);
    }
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for two descriptors.
    unsafe {
        sys::sys(
            libc::SYS_pipe2,
            args!(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC),
        )
    }
    .map_err(|e| fail(info, "cannot make a pipe to copy its bytes").errno(e))?;
    // tee copies whole pipe buffers: the copy must be as large as the source.
    let size = sys::fcntl(info.fd, libc::F_GETPIPE_SZ, 0)
        .unwrap_or(n)
        .max(n);
    let _ = sys::fcntl(p[1], libc::F_SETPIPE_SZ, size);
    let buf = arena.bytes(n as usize);
    // SAFETY: tee between two pipes; no memory is passed.
    let teed = unsafe {
        sys::sys(
            libc::SYS_tee,
            args!(info.fd, p[1], n, libc::SPLICE_F_NONBLOCK),
        )
    };
    let result = match (teed, buf) {
        (Ok(got), Some(buf)) => {
            let mut done = 0usize;
            while done < got as usize {
                match sys::read(p[0], &mut buf[done..got as usize]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => done += k,
                }
            }
            let buf: &'a [u8] = buf;
            if (done as u64) < n {
                Err(fail(info, "cannot copy all the bytes buffered in it"))
            } else {
                Ok(&buf[..done])
            }
        }
        (Err(e), _) => Err(fail(info, "cannot copy its buffered bytes").errno(e)),
        (_, None) => Err(fail(info, "the dump arena is too small")),
    };
    sys::close(p[0]);
    sys::close(p[1]);
    result
}

fn socket<'a>(
    info: &Info<'a>,
    all: &[Info<'a>],
    arena: &'a Arena,
    gone: impl Fn(&Info<'a>, i32, &'a [u8]) -> Result<FdKind<'a>, Fail>,
) -> Result<FdKind<'a>, Fail> {
    let fd = info.fd;
    let opt = |level, name| sys::sockopt_int(fd, level, name);
    let family =
        opt(libc::SOL_SOCKET, libc::SO_DOMAIN).map_err(|e| fail(info, "getsockopt").errno(e))?;
    let sock_type =
        opt(libc::SOL_SOCKET, libc::SO_TYPE).map_err(|e| fail(info, "getsockopt").errno(e))?;
    let protocol = opt(libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap_or(0);
    let listening = opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN).unwrap_or(0) != 0;
    if !matches!(family, libc::AF_UNIX | libc::AF_INET | libc::AF_INET6) {
        return Err(fail(info, "only Unix, IPv4 and IPv6 sockets can be saved"));
    }
    let mut peer = [0u8; 128];
    let connected = !listening && sys::sock_addr(fd, true, &mut peer).is_ok();
    // A UDP socket, or a Unix datagram client of a socket of the process:
    // made and bound as a socket of its own, connected again by
    // `crate::dump::sockets`.
    let client = connected
        && sock_type == libc::SOCK_DGRAM
        && (family != libc::AF_UNIX
            || unix_peer(info.ino).is_some_and(|p| {
                crate::dump::sockets::one_way(info.ino, p)
                    && all.iter().any(|o| o.mode == libc::S_IFSOCK && o.ino == p)
            }));
    // A TCP connection with its other end in the process too: made
    // again by `crate::restore::sockets` (it is recorded without an
    // address, and its ends in `crate::dump::sockets`).
    let tcp_pair = connected
        && family != libc::AF_UNIX
        && sock_type == libc::SOCK_STREAM
        && crate::dump::sockets::tcp_peer(fd)
            .is_some_and(|p| p != 0 && all.iter().any(|o| o.mode == libc::S_IFSOCK && o.ino == p));
    if connected && !client && !tcp_pair {
        let data = peek(info, sock_type, arena)?;
        if family == libc::AF_UNIX
            && let Some(peer_ino) = unix_peer(info.ino)
            && all
                .iter()
                .any(|o| o.mode == libc::S_IFSOCK && o.ino == peer_ino)
        {
            return Ok(FdKind::UnixPair {
                id: info.ino,
                peer: peer_ino,
                sock_type,
                data: Cow::Borrowed(data),
            });
        }
        return gone(info, sock_type, data);
    }
    // A TCP connection that has ended (its peer closed, or it was reset)
    // has no peer any more, but keeps the local address it shares with its
    // listener: it comes back as a connection whose peer is gone, not as a
    // socket to bind there again (which the listener's bind refuses).
    if family != libc::AF_UNIX
        && sock_type == libc::SOCK_STREAM
        && !listening
        && !tcp_pair
        && sys::tcp_segs_out(fd).unwrap_or(0) > 0
    {
        let data = peek(info, sock_type, arena)?;
        return gone(info, sock_type, data);
    }
    let mut name = [0u8; 128];
    let len = sys::sock_addr(fd, false, &mut name).unwrap_or(0);
    let bound = !tcp_pair
        && match family {
            libc::AF_INET => name[2..8].iter().any(|&b| b != 0),
            libc::AF_INET6 => {
                name[2..4].iter().any(|&b| b != 0) || name[8..24].iter().any(|&b| b != 0)
            }
            _ => len > 2,
        };
    let addr = if bound {
        let b = arena
            .bytes(len)
            .ok_or_else(|| fail(info, "the dump arena is too small"))?;
        b.copy_from_slice(&name[..len]);
        let b: &'a [u8] = b;
        b
    } else {
        &[]
    };
    let mut options = arena
        .vec::<SockOpt>(8)
        .ok_or_else(|| fail(info, "the dump arena is too small"))?;
    let mut keep = |level: i32, name: i32| {
        if let Ok(value) = opt(level, name) {
            let _ = options.push(SockOpt { level, name, value });
        }
    };
    keep(libc::SOL_SOCKET, libc::SO_REUSEADDR);
    keep(libc::SOL_SOCKET, libc::SO_REUSEPORT);
    keep(libc::SOL_SOCKET, libc::SO_KEEPALIVE);
    keep(libc::SOL_SOCKET, libc::SO_BROADCAST);
    // Credentials passed with messages (`crate::dump::inflight`), kept
    // only where set: images of sockets without it stay as they were.
    if family == libc::AF_UNIX && opt(libc::SOL_SOCKET, libc::SO_PASSCRED).unwrap_or(0) != 0 {
        keep(libc::SOL_SOCKET, libc::SO_PASSCRED);
    }
    if family == libc::AF_INET6 {
        keep(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY);
    }
    if family != libc::AF_UNIX && sock_type == libc::SOCK_STREAM {
        keep(libc::IPPROTO_TCP, libc::TCP_NODELAY);
    }
    Ok(FdKind::Socket {
        family,
        sock_type,
        protocol,
        listening,
        addr: Cow::Borrowed(addr),
        options: Cow::Borrowed(options.into_slice()),
    })
}

/// Everything waiting to be read on a connected socket, without consuming
/// it: `SO_PEEK_OFF` makes each `MSG_PEEK` read go on where the last one
/// stopped. A stream's bytes come back as they are; a datagram socket's
/// messages each as a little-endian u32 length and the bytes (see
/// `dumpfmt::FdKind::UnixPair`).
fn peek<'a>(info: &Info<'a>, sock_type: i32, arena: &'a Arena) -> Result<&'a [u8], Fail> {
    let fd = info.fd;
    let rcvbuf = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)
        .unwrap_or(1 << 16)
        .max(1 << 16) as usize;
    let waiting = sys::bytes_waiting(fd) as usize;
    let cap = (rcvbuf * 4).max(waiting * 2 + 4096).min(64 << 20);
    let buf = arena
        .bytes(cap)
        .ok_or_else(|| fail(info, "the dump arena is too small"))?;
    let old_off = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap_or(-1);
    let set_off = |v: i32| {
        // SAFETY: an int option from a live int.
        unsafe {
            sys::sys(
                libc::SYS_setsockopt,
                args!(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, &v as *const i32, 4),
            )
        }
    };
    let stepping = set_off(0).is_ok();
    let framed = sock_type != libc::SOCK_STREAM;
    let mut len = 0usize;
    loop {
        let head = if framed { 4 } else { 0 };
        let room = match buf.get_mut(len + head..) {
            Some(room) if !room.is_empty() => room,
            _ => {
                let _ = stepping && set_off(old_off).is_ok();
                return Err(fail(
                    info,
                    "more bytes are queued on it than the dump can hold",
                ));
            }
        };
        // SAFETY: `room` is writable for its length.
        let got = unsafe {
            sys::sys(
                libc::SYS_recvfrom,
                args!(
                    fd,
                    room.as_mut_ptr(),
                    room.len(),
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                    0,
                    0
                ),
            )
        };
        let Ok(n) = got else { break };
        if n == 0 && !framed {
            break;
        }
        if framed {
            buf[len..len + 4].copy_from_slice(&(n as u32).to_le_bytes());
        }
        len += head + n as usize;
        if !stepping {
            break;
        }
    }
    if stepping {
        let _ = set_off(old_off);
    }
    let buf: &'a [u8] = buf;
    Ok(&buf[..len])
}

/// The inode of the peer of Unix socket `ino`, asked of the kernel's
/// sock_diag netlink interface.
pub(crate) fn unix_peer(ino: u64) -> Option<u64> {
    crate::dump::sockets::diag(ino)?.peer
}

/// eventfd, timerfd, signalfd, epoll; anything else fails the dump.
fn anon_inode<'a>(
    info: &Info<'a>,
    arena: &'a Arena,
    scratch: &mut [u8],
) -> Result<FdKind<'a>, Fail> {
    let kind = info
        .target
        .strip_prefix(b"anon_inode:")
        .unwrap_or(info.target);
    let mut path = Line::<64>::new();
    path.str("/proc/self/fdinfo/").dec(info.fd as u64);
    let buf = &mut *scratch;
    let n = path
        .c_str()
        .map(|p| sys::read_file(p, buf))
        .unwrap_or(Ok(0))
        .map_err(|e| fail(info, "cannot read its fdinfo").errno(e))?;
    let fdinfo: &[u8] = &buf[..n];
    match kind {
        b"[eventfd]" => Ok(FdKind::Eventfd {
            count: field(fdinfo, b"eventfd-count:", 16).unwrap_or(0),
            semaphore: field(fdinfo, b"eventfd-semaphore:", 10).unwrap_or(0) != 0,
        }),
        b"[timerfd]" => {
            let mut spec = [0i64; 4];
            // SAFETY: timerfd_gettime writes a struct itimerspec (4 words).
            unsafe { sys::sys(libc::SYS_timerfd_gettime, args!(info.fd, spec.as_mut_ptr())) }
                .map_err(|e| fail(info, "timerfd_gettime").errno(e))?;
            let ns = |s: i64, n: i64| {
                (s as u64)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(n as u64)
            };
            Ok(FdKind::Timerfd {
                clock: field(fdinfo, b"clockid:", 10).unwrap_or(1) as i32,
                interval_ns: ns(spec[0], spec[1]),
                value_ns: ns(spec[2], spec[3]),
                ticks: field(fdinfo, b"ticks:", 10).unwrap_or(0),
            })
        }
        b"[signalfd]" => Ok(FdKind::Signalfd {
            mask: field(fdinfo, b"sigmask:", 16).unwrap_or(0),
        }),
        b"[eventpoll]" => {
            let lines = fdinfo
                .split(|&c| c == b'\n')
                .filter(|l| l.starts_with(b"tfd:"));
            let mut entries = arena
                .vec::<EpollEntry>(lines.clone().count())
                .ok_or_else(|| fail(info, "the dump arena is too small"))?;
            for l in lines {
                let entry = EpollEntry {
                    fd: field(l, b"tfd:", 10).unwrap_or(0) as i32,
                    events: field(l, b"events:", 16).unwrap_or(0) as u32,
                    data: field(l, b"data:", 16).unwrap_or(0),
                };
                let _ = entries.push(entry);
            }
            Ok(FdKind::Epoll {
                entries: Cow::Borrowed(entries.into_slice()),
            })
        }
        _ => {
            let name = kind
                .strip_prefix(b"[")
                .and_then(|k| k.strip_suffix(b"]"))
                .unwrap_or(kind);
            Err(Fail::new("fd ")
                .dec(info.fd as u64)
                .str(" (")
                .bytes(info.target)
                .str("): ")
                .bytes(name)
                .str(" cannot be saved"))
        }
    }
}
