//! Descriptor state the `Fd` records cannot hold (`dumpfmt::sockets`,
//! format 1.4): the shutdown state of Unix sockets and TCP connections
//! with both ends in the process, Unix datagram sockets
//! connected to another socket of the process and the messages waiting on
//! bound ones, and epoll entries whose file is open only through another
//! descriptor. Runs in the signal handler: the `dump` module's rules hold
//! (no heap, no locks, no panics; raw system calls only).
//!
//! Nothing here changes a descriptor: messages are copied with
//! `MSG_PEEK` (`SO_PEEK_OFF` steps through them and is put back). What
//! cannot be saved fails the dump: descriptors and credentials in flight
//! (`super::inflight`), connections waiting in accept queues
//! (`super::backlog`).

use std::borrow::Cow;

use dumpfmt::sockets::{Connect, EpollAlias, Queue, Shutdown, Sockets, TcpEnd};
use dumpfmt::{Fd, FdKind};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::{self, args};

/// The netlink message type of a sock_diag request and of its answer.
const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// Sends `req` to the kernel's sock_diag netlink interface and receives
/// its answer into `resp`: the bytes received.
fn sock_diag(req: &[u8], resp: &mut [u8]) -> Option<usize> {
    // SAFETY: plain socket creation.
    let nl = unsafe {
        sys::sys(
            libc::SYS_socket,
            args!(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG
            ),
        )
    }
    .ok()? as i32;
    // SAFETY: sending our request buffer and receiving into `resp`.
    let got = unsafe {
        let sent = sys::sys(
            libc::SYS_sendto,
            args!(nl, req.as_ptr(), req.len(), 0, 0, 0),
        );
        sent.and_then(|_| {
            sys::sys(
                libc::SYS_recvfrom,
                args!(nl, resp.as_mut_ptr(), resp.len(), 0, 0, 0),
            )
        })
    };
    sys::close(nl);
    Some((got.ok()? as usize).min(resp.len()))
}

/// What the kernel's sock_diag says of a Unix socket.
pub(crate) struct Diag {
    pub peer: Option<u64>,
    /// `sk_shutdown`: `dumpfmt::sockets::SHUT_READS`, `SHUT_WRITES`.
    pub shutdown: u8,
    /// A listener's connections waiting to be accepted (else its
    /// messages waiting to be read).
    pub rqueue: u32,
}

/// The peer and shutdown state of Unix socket `ino`, asked of the
/// kernel's sock_diag netlink interface.
pub(crate) fn diag(ino: u64) -> Option<Diag> {
    const UDIAG_SHOW_PEER: u32 = 4;
    const UDIAG_SHOW_RQLEN: u32 = 0x10;
    const UNIX_DIAG_PEER: u16 = 2;
    const UNIX_DIAG_RQLEN: u16 = 4;
    const UNIX_DIAG_SHUTDOWN: u16 = 6;
    // nlmsghdr (16) + unix_diag_req (24)
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // all states
    req[24..28].copy_from_slice(&(ino as u32).to_ne_bytes());
    req[28..32].copy_from_slice(&(UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
    let mut resp = [0u8; 512];
    let got = sock_diag(&req, &mut resp)?;
    // An error (no such socket) comes back as NLMSG_ERROR.
    if got < 32 || u16::from_ne_bytes([resp[4], resp[5]]) != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    let mut out = Diag {
        peer: None,
        shutdown: 0,
        rqueue: 0,
    };
    // nlmsghdr (16), unix_diag_msg (16), then attributes.
    let mut at = 32usize;
    while at + 4 <= got {
        let len = u16::from_ne_bytes([resp[at], resp[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([resp[at + 2], resp[at + 3]]);
        if len < 4 {
            break;
        }
        if kind == UNIX_DIAG_PEER && at + 8 <= got {
            let p = [resp[at + 4], resp[at + 5], resp[at + 6], resp[at + 7]];
            out.peer = Some(u64::from(u32::from_ne_bytes(p)));
        }
        if kind == UNIX_DIAG_SHUTDOWN && at + 5 <= got {
            out.shutdown = resp[at + 4];
        }
        if kind == UNIX_DIAG_RQLEN && at + 8 <= got {
            let q = [resp[at + 4], resp[at + 5], resp[at + 6], resp[at + 7]];
            out.rqueue = u32::from_ne_bytes(q);
        }
        at += (len + 3) & !3;
    }
    Some(out)
}

/// What the kernel's inet_diag says of one end of a TCP connection.
pub(crate) struct TcpDiag {
    /// Its socket's inode (0: a connection not accepted yet).
    pub inode: u64,
    /// `sk_shutdown`: `dumpfmt::sockets::SHUT_READS`, `SHUT_WRITES`.
    pub shutdown: u8,
}

/// The inode of the socket at the other end of TCP connection `fd` (0:
/// one not accepted yet), asked of the kernel's inet_diag interface with
/// the connection's addresses swapped.
pub(crate) fn tcp_peer(fd: i32) -> Option<u64> {
    tcp_diag(fd, true).map(|d| d.inode)
}

/// What inet_diag says of TCP connection `fd` (`peer` false) or of its
/// other end (`peer` true: the connection's addresses swapped).
pub(crate) fn tcp_diag(fd: i32, other_end: bool) -> Option<TcpDiag> {
    const INET_DIAG_SHUTDOWN: u16 = 8;
    let (mut local, mut peer) = ([0u8; 128], [0u8; 128]);
    let len = sys::sock_addr(fd, false, &mut local).ok()?;
    sys::sock_addr(fd, true, &mut peer).ok()?;
    let (src, dst) = if other_end {
        (&peer, &local)
    } else {
        (&local, &peer)
    };
    let family = i32::from(u16::from_ne_bytes([local[0], local[1]]));
    let ip = match family {
        libc::AF_INET if len >= 8 => 4..8,
        libc::AF_INET6 if len >= 24 => 8..24,
        _ => return None,
    };
    // nlmsghdr (16) + inet_diag_req_v2 (8 + inet_diag_sockid 48)
    let mut req = [0u8; 72];
    req[0..4].copy_from_slice(&72u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[16] = family as u8;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // all states
    // The asked end's port and address first, then its peer's (network order).
    req[24..26].copy_from_slice(&src[2..4]);
    req[26..28].copy_from_slice(&dst[2..4]);
    let n = ip.len();
    req[28..28 + n].copy_from_slice(&src[ip.clone()]);
    req[44..44 + n].copy_from_slice(&dst[ip]);
    req[64..72].copy_from_slice(&[0xff; 8]); // no cookie
    let mut resp = [0u8; 512];
    let got = sock_diag(&req, &mut resp)?;
    // nlmsghdr (16), inet_diag_msg: 4 bytes, sockid (48), expires, rqueue,
    // wqueue, uid, inode (u32 each), then attributes.
    if got < 88 || u16::from_ne_bytes([resp[4], resp[5]]) != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    let word = |at: usize| u32::from_ne_bytes([resp[at], resp[at + 1], resp[at + 2], resp[at + 3]]);
    let mut out = TcpDiag {
        inode: u64::from(word(84)),
        shutdown: 0,
    };
    let mut at = 88usize;
    while at + 4 <= got {
        let len = u16::from_ne_bytes([resp[at], resp[at + 1]]) as usize;
        let kind = u16::from_ne_bytes([resp[at + 2], resp[at + 3]]);
        if len < 4 {
            break;
        }
        if kind == INET_DIAG_SHUTDOWN && at + 5 <= got {
            out.shutdown = resp[at + 4];
        }
        at += (len + 3) & !3;
    }
    Some(out)
}

/// Whether Unix socket `ino`, connected to `peer`, is a client of it
/// (connected one way: `peer` is connected to nothing or to another).
pub(crate) fn one_way(ino: u64, peer: u64) -> bool {
    diag(peer).is_some_and(|d| d.peer != Some(ino))
}

fn fail(fd: i32, what: &str) -> Fail {
    Fail::new("fd ")
        .dec(fd as u64)
        .str(" (")
        .str(what)
        .str("): ")
}

fn ino_of(fd: i32) -> Option<u64> {
    sys::fstat(fd).ok().map(|st| st.st_ino)
}

/// The state of `fds` (the collected records) that needs [`Sockets`].
pub fn collect<'a>(arena: &'a Arena, fds: &[Fd<'a>]) -> Result<Sockets<'a>, Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let mut shutdowns = arena.vec::<Shutdown>(fds.len()).ok_or_else(no_mem)?;
    let mut connects = arena.vec::<Connect<'a>>(fds.len()).ok_or_else(no_mem)?;
    let mut queues = arena.vec::<Queue<'a>>(fds.len()).ok_or_else(no_mem)?;
    let tcp = tcp_ends(arena, fds)?;
    for f in fds {
        if tcp.iter().any(|t| t.fd == f.fd) {
            let how = tcp_shutdown(f.fd);
            if how != 0 {
                let _ = shutdowns.push(Shutdown { fd: f.fd, how });
            }
            continue;
        }
        let (unix, dgram) = match &f.kind {
            FdKind::UnixPair { .. } => (true, false),
            FdKind::Socket {
                family, sock_type, ..
            } => (*family == libc::AF_UNIX, *sock_type == libc::SOCK_DGRAM),
            _ => continue,
        };
        if unix
            && let Some(d) = ino_of(f.fd).and_then(diag)
            && d.shutdown != 0
        {
            let _ = shutdowns.push(Shutdown {
                fd: f.fd,
                how: d.shutdown,
            });
        }
        if !dgram {
            continue;
        }
        let mut peer = [0u8; 128];
        if let Ok(len) = sys::sock_addr(f.fd, true, &mut peer) {
            let addr = arena.bytes(len).ok_or_else(no_mem)?;
            addr.copy_from_slice(&peer[..len]);
            let addr: &'a [u8] = addr;
            let _ = connects.push(Connect {
                fd: f.fd,
                addr: Cow::Borrowed(addr),
            });
        }
        let messages = queued(arena, f, fds)?;
        if !messages.is_empty() {
            let _ = queues.push(Queue {
                fd: f.fd,
                messages: Cow::Borrowed(messages),
            });
        }
    }
    // After the epoll check: a watch on a file in flight is named as such.
    let epoll_aliases = epoll_aliases(arena, fds)?;
    super::inflight::check(fds)?;
    super::backlog::check(fds)?;
    Ok(Sockets {
        tcp: Cow::Borrowed(tcp),
        shutdowns: Cow::Borrowed(shutdowns.into_slice()),
        connects: Cow::Borrowed(connects.into_slice()),
        queues: Cow::Borrowed(queues.into_slice()),
        epoll_aliases: Cow::Borrowed(epoll_aliases),
    })
}

/// The messages waiting on datagram socket `f`, framed as
/// `dumpfmt::sockets::Queue` says, each with its sender's address. A
/// message from a Unix socket with a name that no socket of the process
/// has fails the dump: a restore could not send it from there.
fn queued<'a>(arena: &'a Arena, f: &Fd<'a>, fds: &[Fd<'a>]) -> Result<&'a [u8], Fail> {
    let fd = f.fd;
    let what = "datagram socket";
    if sys::bytes_waiting(fd) == 0 {
        // FIONREAD gives the first message's length: none, or an empty one.
        let mut b = [0u8; 1];
        // SAFETY: peeking one byte into `b`.
        let got = unsafe {
            sys::sys(
                libc::SYS_recvfrom,
                args!(
                    fd,
                    b.as_mut_ptr(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                    0,
                    0
                ),
            )
        };
        if got.is_err() {
            return Ok(&[]);
        }
    }
    let rcvbuf = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)
        .unwrap_or(1 << 16)
        .max(1 << 16) as usize;
    let cap = (rcvbuf * 2 + 4096).min(64 << 20);
    let buf = arena
        .bytes(cap)
        .ok_or_else(|| fail(fd, what).str("the dump arena is too small"))?;
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
    if set_off(0).is_err() {
        return Err(fail(fd, what).str("cannot step through the messages waiting on it"));
    }
    let mut len = 0usize;
    let result = loop {
        let mut from = [0u8; 128];
        let mut from_len: u32 = 128;
        let Some(room) = buf.get_mut(len + 6 + 128..).filter(|r| !r.is_empty()) else {
            break Err(fail(fd, what).str("more bytes are queued on it than the dump can hold"));
        };
        // SAFETY: `room` and `from` are writable for their lengths.
        let got = unsafe {
            sys::sys(
                libc::SYS_recvfrom,
                args!(
                    fd,
                    room.as_mut_ptr(),
                    room.len(),
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                    from.as_mut_ptr(),
                    &mut from_len as *mut u32
                ),
            )
        };
        let Ok(n) = got else { break Ok(()) };
        let n = n as usize;
        let from = &from[..(from_len as usize).min(128)];
        // A Unix socket without a name reads as no address (or its family only).
        let from = if from.len() <= 2 { &[][..] } else { from };
        let unix_named =
            from.len() > 2 && i32::from(from[0]) | i32::from(from[1]) << 8 == libc::AF_UNIX;
        if unix_named
            && !fds.iter().any(|o| {
                matches!(&o.kind, FdKind::Socket { family: libc::AF_UNIX, addr, .. } if &addr[..] == from)
            })
        {
            break Err(fail(fd, what)
                .str("a message waiting on it comes from a socket of another process (")
                .bytes(printable(from))
                .str("), which a restore cannot send it from"));
        }
        // The bytes were peeked past room for the header and the address:
        // move them into place behind both.
        let at = len + 6 + from.len();
        buf.copy_within(len + 6 + 128..len + 6 + 128 + n, at);
        buf[len..len + 4].copy_from_slice(&(n as u32).to_le_bytes());
        buf[len + 4..len + 6].copy_from_slice(&(from.len() as u16).to_le_bytes());
        buf[len + 6..at].copy_from_slice(from);
        len = at + n;
    };
    let _ = set_off(old_off);
    result?;
    if len > 0 && matches!(&f.kind, FdKind::Socket { addr, .. } if addr.is_empty()) {
        return Err(
            fail(fd, what).str("messages wait on it but it has no name to send them to again")
        );
    }
    let buf: &'a [u8] = buf;
    Ok(&buf[..len])
}

/// The ends of TCP connections with both ends in the process: the
/// connected sockets `crate::dump::fds` recorded as `Socket`s without an
/// address. Bytes one has sent that are not yet at the other (its window
/// is full) fail the dump: only what waits to be read can be copied.
fn tcp_ends<'a>(arena: &'a Arena, fds: &[Fd<'a>]) -> Result<&'a [TcpEnd<'a>], Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    let mut out = arena.vec::<TcpEnd<'a>>(fds.len()).ok_or_else(no_mem)?;
    for f in fds {
        let FdKind::Socket {
            family,
            sock_type: libc::SOCK_STREAM,
            listening: false,
            addr,
            ..
        } = &f.kind
        else {
            continue;
        };
        let (mut local, mut peer) = ([0u8; 128], [0u8; 128]);
        if *family == libc::AF_UNIX || !addr.is_empty() {
            continue;
        }
        let Ok(peer_len) = sys::sock_addr(f.fd, true, &mut peer) else {
            continue;
        };
        let local_len = sys::sock_addr(f.fd, false, &mut local).unwrap_or(0);
        let what = "TCP connection";
        const SIOCOUTQNSD: u64 = 0x894b;
        let mut unsent: i32 = 0;
        // SAFETY: SIOCOUTQNSD writes one int.
        let _ = unsafe {
            sys::sys(
                libc::SYS_ioctl,
                args!(f.fd, SIOCOUTQNSD, &mut unsent as *mut i32),
            )
        };
        if unsent > 0 {
            return Err(fail(f.fd, what)
                .str("bytes it sent are not yet at the other end (its window is full): they cannot be saved"));
        }
        let waiting = sys::bytes_waiting(f.fd) as usize;
        let data = arena.bytes(waiting).ok_or_else(no_mem)?;
        let mut got = 0usize;
        if waiting > 0 {
            // SAFETY: `data` is writable for its length.
            got = unsafe {
                sys::sys(
                    libc::SYS_recvfrom,
                    args!(
                        f.fd,
                        data.as_mut_ptr(),
                        data.len(),
                        libc::MSG_PEEK | libc::MSG_DONTWAIT,
                        0,
                        0
                    ),
                )
            }
            .unwrap_or(0) as usize;
        }
        if got != waiting {
            return Err(fail(f.fd, what).str("cannot copy the bytes waiting on it"));
        }
        let keep = |b: &[u8]| -> Result<&'a [u8], Fail> {
            let c = arena.bytes(b.len()).ok_or_else(no_mem)?;
            c.copy_from_slice(b);
            Ok(c)
        };
        let data: &'a [u8] = data;
        let _ = out.push(TcpEnd {
            fd: f.fd,
            local: Cow::Borrowed(keep(&local[..local_len])?),
            peer: Cow::Borrowed(keep(&peer[..peer_len])?),
            data: Cow::Borrowed(data),
        });
    }
    Ok(out.into_slice())
}

/// What a restore must shut down on TCP end `fd` (`Shutdown::how`): the
/// directions it shut down itself. Reads shut down because the other end
/// shut down its writes (its FIN arrived) are not its own: the other end's
/// shutdown makes them again.
fn tcp_shutdown(fd: i32) -> u8 {
    use dumpfmt::sockets::{SHUT_READS, SHUT_WRITES};
    let own = tcp_diag(fd, false).map_or(0, |d| d.shutdown) & (SHUT_READS | SHUT_WRITES);
    let other = tcp_diag(fd, true).map_or(0, |d| d.shutdown);
    if other & SHUT_WRITES != 0 {
        own & !SHUT_READS
    } else {
        own
    }
}

/// A Unix socket address's path or abstract name, for a message.
fn printable(addr: &[u8]) -> &[u8] {
    let name = addr.get(2..).unwrap_or(&[]);
    match name.first() {
        Some(0) => name.get(1..).unwrap_or(&[]),
        _ => &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())],
    }
}

/// Whether the file open at `fd` is the one epoll entry `slot` (epoll
/// descriptor, entry's number, its index among the entries of that number)
/// watches (`kcmp(KCMP_EPOLL_TFD)`).
fn watches(fd: i32, slot: [u32; 3]) -> bool {
    const KCMP_EPOLL_TFD: u64 = 7;
    let pid = sys::getpid();
    // SAFETY: kcmp reads the 12-byte slot; it compares our own descriptors.
    let r = unsafe {
        sys::sys(
            libc::SYS_kcmp,
            args!(pid, pid, KCMP_EPOLL_TFD, fd, slot.as_ptr()),
        )
    };
    r == Ok(0)
}

/// Epoll entries whose file is not the one at their own number: each
/// watches a file open at another descriptor (found with kcmp), or the
/// dump fails naming the epoll descriptor.
fn epoll_aliases<'a>(arena: &'a Arena, fds: &[Fd<'a>]) -> Result<&'a [EpollAlias], Fail> {
    let total = fds
        .iter()
        .map(|f| match &f.kind {
            FdKind::Epoll { entries } => entries.len(),
            _ => 0,
        })
        .sum::<usize>();
    let mut out = arena
        .vec::<EpollAlias>(total)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    for f in fds {
        let FdKind::Epoll { entries } = &f.kind else {
            continue;
        };
        for (i, e) in entries.iter().enumerate() {
            let toff = entries[..i].iter().filter(|o| o.fd == e.fd).count() as u32;
            let slot = [f.fd as u32, e.fd as u32, toff];
            if watches(e.fd, slot) {
                continue;
            }
            let Some(file) = fds.iter().find(|o| watches(o.fd, slot)) else {
                return Err(fail(f.fd, "epoll")
                    .str("the file it watches as fd ")
                    .dec(e.fd as u64)
                    .str(" is not open through any descriptor (it was closed, and lives on elsewhere): the watch cannot be saved"));
            };
            if e.fd <= 2 {
                return Err(fail(f.fd, "epoll")
                    .str("it watches a file as fd ")
                    .dec(e.fd as u64)
                    .str(", a standard descriptor that holds another file now: the watch cannot be saved"));
            }
            let _ = out.push(EpollAlias {
                epoll: f.fd,
                entry: i as u32,
                file: file.fd,
            });
        }
    }
    Ok(out.into_slice())
}
