//! Descriptor state of `dumpfmt::sockets` (format 1.4), made again. In
//! the constructor, before teardown (libc available): [`finish`] runs once
//! every descriptor of the image is made at its temporary number (Unix
//! datagram queues refilled, clients connected, shutdowns); the epoll
//! entries through closed descriptors go into the restorer's plan
//! ([`plan_aliases`]), as they name descriptor numbers.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use dumpfmt::sockets::{EpollAlias, SHUT_READS, SHUT_WRITES, Sockets, messages};
use dumpfmt::{FdKind, Image};

use super::fds::Made;
use super::plan::{Arg, Plan};
use super::{Refusal, exit, refuse};

fn sockets<'i, 'a>(image: &'i Image<'a>) -> &'i Sockets<'a> {
    &image.minor4.sockets
}

/// Whether `kind` is a datagram socket bound to `addr` (a wildcard IP
/// address matches any with the same port).
fn bound_at(kind: &FdKind<'_>, addr: &[u8]) -> bool {
    match kind {
        FdKind::Socket {
            family,
            sock_type: libc::SOCK_DGRAM,
            addr: mine,
            ..
        } => same_place(*family, mine, addr),
        _ => false,
    }
}

/// Whether a socket bound to `mine` (of `family`) is at `addr`.
fn same_place(family: i32, mine: &[u8], addr: &[u8]) -> bool {
    if addr.is_empty() || mine.is_empty() {
        return false;
    }
    if mine[..] == *addr {
        return true;
    }
    let same_port = mine.len() == addr.len() && mine.get(..4) == addr.get(..4);
    let ip = match family {
        libc::AF_INET => 4..8,
        libc::AF_INET6 => 8..24,
        _ => return false,
    };
    same_port && mine.get(ip).is_some_and(|b| b.iter().all(|&c| c == 0))
}

/// A datagram socket to send a queued message from `from` (its sender's
/// address, no socket of the image's): bound there, or without a name.
fn sender_at(from: &[u8], to: &[u8], fd: i32) -> Result<OwnedFd, Refusal> {
    let family = match from {
        [] => to.get(..2).map_or(libc::AF_UNIX, |f| {
            i32::from(u16::from_ne_bytes([f[0], f[1]]))
        }),
        [a, b, ..] => i32::from(u16::from_ne_bytes([*a, *b])),
        _ => libc::AF_UNIX,
    };
    if family == libc::AF_UNIX && !from.is_empty() {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "fd {fd}: a queued message comes from a named Unix socket the image does not hold"
            ),
        ));
    }
    // SAFETY: plain socket creation.
    let n = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if n < 0 {
        return Err(os_error(fd, "socket"));
    }
    // SAFETY: `n` was just returned by the kernel and is ours.
    let s = unsafe { OwnedFd::from_raw_fd(n) };
    // SAFETY: `from` holds the sockaddr recvfrom returned at the dump.
    if !from.is_empty() && unsafe { libc::bind(n, from.as_ptr().cast(), from.len() as u32) } != 0 {
        return Err(os_error(
            fd,
            "a message waiting on it came from an address outside the process that cannot be bound here to send it again",
        ));
    }
    Ok(s)
}

/// Connects each TCP connection with both ends in the image again: the
/// connecting end bound to its address and connected to the accepting
/// end's, through the image's listener there (or one made for the
/// moment); what each end had waiting is written through the other. The
/// made sockets replace the fresh ones `super::fds` made for the records
/// (and their dups').
fn tcp(image: &Image<'_>, made: &mut [Made], base: i32) -> Result<(), Refusal> {
    let ends = &sockets(image).tcp;
    for a in ends.iter() {
        let b = ends
            .iter()
            .find(|o| o.local == a.peer && o.peer == a.local)
            .ok_or_else(|| refuse(exit::CORRUPT, format!("fd {}: a TCP end alone", a.fd)))?;
        if b.fd < a.fd {
            continue;
        }
        let record = |fd: i32| {
            image
                .fds
                .binary_search_by_key(&fd, |f| f.fd)
                .map(|at| &image.fds[at])
                .map_err(|_| refuse(exit::CORRUPT, format!("no fd {fd}")))
        };
        let family = i32::from(u16::from_ne_bytes([a.local[0], a.local[1]]));
        let listener_at = |local: &[u8]| {
            image.fds.iter().find(|f| {
                matches!(&f.kind, FdKind::Socket { family: fam, sock_type: libc::SOCK_STREAM, listening: true, addr, .. }
                    if same_place(*fam, addr, local))
            })
        };
        let (acc, con, listener) = match (listener_at(&a.local), listener_at(&b.local)) {
            (Some(l), _) => (a, b, Some(l.fd)),
            (None, Some(l)) => (b, a, Some(l.fd)),
            (None, None) => (a, b, None),
        };
        let fd = acc.fd;
        let new_socket = || -> Result<OwnedFd, Refusal> {
            // SAFETY: plain socket creation.
            let n = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            if n < 0 {
                return Err(os_error(fd, "socket"));
            }
            // SAFETY: `n` was just returned by the kernel and is ours.
            let s = unsafe { OwnedFd::from_raw_fd(n) };
            let one = 1i32;
            // SAFETY: an int option from a live int.
            unsafe {
                libc::setsockopt(
                    n,
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    (&one as *const i32).cast(),
                    4,
                )
            };
            Ok(s)
        };
        let bind = |s: &OwnedFd, addr: &[u8], what: &str| {
            // SAFETY: `addr` holds the sockaddr getsockname returned at the dump.
            if unsafe { libc::bind(s.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) } != 0 {
                return Err(os_error(fd, what));
            }
            Ok(())
        };
        let own_listener;
        let lfd = match listener {
            Some(l) => temp(made, l)?,
            None => {
                let l = new_socket()?;
                bind(&l, &acc.local, "cannot listen at its address again")?;
                // SAFETY: listen on our socket.
                if unsafe { libc::listen(l.as_raw_fd(), 1) } != 0 {
                    return Err(os_error(fd, "listen"));
                }
                own_listener = l;
                own_listener.as_raw_fd()
            }
        };
        let c = new_socket()?;
        bind(
            &c,
            &con.local,
            "cannot bind the connecting end's address again",
        )?;
        // The connection's addresses may wait out TIME_WAIT of the killed
        // process's (loopback reuses them after a second).
        let mut tries = 0;
        // SAFETY: `acc.local` holds a sockaddr; connect on our socket.
        while unsafe {
            libc::connect(
                c.as_raw_fd(),
                acc.local.as_ptr().cast(),
                acc.local.len() as u32,
            )
        } != 0
        {
            let e = std::io::Error::last_os_error().raw_os_error();
            if !matches!(
                e,
                Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE | libc::EINTR)
            ) || tries >= 40
            {
                return Err(os_error(con.fd, "cannot connect to its other end again"));
            }
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut pfd = libc::pollfd {
            fd: lfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&mut pfd, 1, 2000) };
        let mut peer = [0u8; 128];
        let mut peer_len = 128u32;
        // SAFETY: `peer` is writable for `peer_len` bytes.
        let n = unsafe {
            libc::accept4(
                lfd,
                peer.as_mut_ptr().cast(),
                &mut peer_len,
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        if n < 0 {
            return Err(os_error(fd, "cannot accept its connection again"));
        }
        // SAFETY: `n` was just returned by the kernel and is ours.
        let s = unsafe { OwnedFd::from_raw_fd(n) };
        if peer.get(..peer_len as usize) != Some(&con.local[..]) {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!("fd {fd}: another connection came to its listener while it was made again"),
            ));
        }
        for (to, from, through) in [(acc, con, &c), (con, acc, &s)] {
            super::fds::send_queued(through, libc::SOCK_STREAM, &to.data).map_err(|e| {
                refuse(
                    exit::UNSUPPORTED,
                    format!("fd {}: refilling it: {e} (from fd {})", to.fd, from.fd),
                )
            })?;
        }
        for (end, sock) in [(acc, s), (con, c)] {
            let rec = record(end.fd)?;
            if let FdKind::Socket { options, .. } = &rec.kind {
                for o in options.iter() {
                    // SAFETY: an int option from a live int.
                    unsafe {
                        libc::setsockopt(
                            sock.as_raw_fd(),
                            o.level,
                            o.name,
                            (&o.value as *const i32).cast(),
                            4,
                        )
                    };
                }
            }
            const SETFL: i32 = libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC;
            // SAFETY: F_SETFL on our socket.
            unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_SETFL, rec.flags & SETFL) };
            let sock = super::fds::lift(sock, base)?;
            for m in made.iter_mut() {
                let dup_of = image
                    .fds
                    .binary_search_by_key(&m.target, |f| f.fd)
                    .is_ok_and(
                        |at| matches!(image.fds[at].kind, FdKind::Dup { of } if of == end.fd),
                    );
                if m.target == end.fd || dup_of {
                    let again = sock
                        .try_clone()
                        .map_err(|e| refuse(exit::UNSUPPORTED, format!("fd {}: {e}", end.fd)))?;
                    m.temp = super::fds::lift(again, base)?;
                }
            }
        }
    }
    Ok(())
}

/// The made descriptor for the image's fd `fd`.
fn temp(made: &[Made], fd: i32) -> Result<i32, Refusal> {
    made.binary_search_by_key(&fd, |m| m.target)
        .map(|at| made[at].temp.as_raw_fd())
        .map_err(|_| refuse(exit::CORRUPT, format!("fd {fd} is named but was not made")))
}

fn os_error(fd: i32, what: &str) -> Refusal {
    refuse(
        exit::UNSUPPORTED,
        format!("fd {fd}: {what}: {}", std::io::Error::last_os_error()),
    )
}

/// The highest descriptor number an epoll entry through a closed
/// descriptor uses (the restorer opens it for a moment): the temporary
/// descriptors must sit above it.
pub fn highest(image: &Image<'_>) -> i32 {
    sockets(image)
        .epoll_aliases
        .iter()
        .filter_map(|a| entry_number(image, a))
        .max()
        .unwrap_or(2)
}

fn entry_number(image: &Image<'_>, a: &EpollAlias) -> Option<i32> {
    let at = image.fds.binary_search_by_key(&a.epoll, |f| f.fd).ok()?;
    match &image.fds[at].kind {
        FdKind::Epoll { entries } => entries.get(a.entry as usize).map(|e| e.fd),
        _ => None,
    }
}

/// Whether entry `entry` of epoll descriptor `epoll` is added by
/// [`plan_aliases`] (not at the number of a descriptor of the image).
pub fn aliased(image: &Image<'_>, epoll: i32, entry: usize) -> bool {
    sockets(image)
        .epoll_aliases
        .binary_search_by_key(&(epoll, entry as u32), |a| (a.epoll, a.entry))
        .is_ok()
}

/// Adds each epoll entry whose file was open at another descriptor than
/// its number: that file is put at the entry's number for the moment of
/// the `EPOLL_CTL_ADD`, then closed there. Runs in the plan where nothing
/// is open below the temporaries but stdio (before the descriptors are
/// moved into place): the number is free, and a descriptor of the image
/// that holds it now (another file) comes after.
pub fn plan_aliases(plan: &mut Plan, image: &Image<'_>, made: &[Made]) -> Result<(), Refusal> {
    const EPOLL_CTL_ADD: u64 = 1;
    let v = Arg::V;
    for a in sockets(image).epoll_aliases.iter() {
        let at = image
            .fds
            .binary_search_by_key(&a.epoll, |f| f.fd)
            .map_err(|_| refuse(exit::CORRUPT, format!("no epoll fd {}", a.epoll)))?;
        let FdKind::Epoll { entries } = &image.fds[at].kind else {
            return Err(refuse(
                exit::CORRUPT,
                format!("fd {} is not epoll", a.epoll),
            ));
        };
        let e = entries.get(a.entry as usize).ok_or_else(|| {
            refuse(
                exit::CORRUPT,
                format!("epoll fd {}: no such entry", a.epoll),
            )
        })?;
        if e.fd <= 2 {
            return Err(refuse(
                exit::CORRUPT,
                format!("epoll fd {}: an entry through stdio fd {}", a.epoll, e.fd),
            ));
        }
        let (epoll, file) = (temp(made, a.epoll)?, temp(made, a.file)?);
        let n = e.fd as u64;
        plan.call(
            libc::SYS_dup3,
            &[v(file as u64), v(n), v(0)],
            v(n),
            &format!(
                "restore: cannot put fd {} at {n} for epoll fd {}",
                a.file, a.epoll
            ),
        );
        // struct epoll_event is packed on x86-64: u32 events, u64 data.
        let mut ev = [0u8; 12];
        ev[..4].copy_from_slice(&e.events.to_ne_bytes());
        ev[4..].copy_from_slice(&e.data.to_ne_bytes());
        let off = plan.bytes(&ev);
        plan.call(
            libc::SYS_epoll_ctl,
            &[v(epoll as u64), v(EPOLL_CTL_ADD), v(n), Arg::Data(off)],
            v(0),
            &format!(
                "restore: cannot add fd {} (as {n}) to epoll fd {}",
                a.file, a.epoll
            ),
        );
        plan.call_any(libc::SYS_close, &[v(n)]);
    }
    Ok(())
}

/// Refills the queues of bound datagram sockets (each message sent from
/// the socket of the image bound to its sender's address, else from a
/// socket bound there for the moment, or without a name), then connects
/// the clients (a connected socket takes messages only from its peer:
/// they come after) and shuts down what was shut down.
pub fn finish(image: &Image<'_>, made: &mut [Made], base: i32) -> Result<(), Refusal> {
    tcp(image, made, base)?;
    let made = &*made;
    let s = sockets(image);
    // Sockets made only to send from: (address, socket).
    let mut senders: Vec<(&[u8], OwnedFd)> = Vec::new();
    for q in s.queues.iter() {
        let at = image
            .fds
            .binary_search_by_key(&q.fd, |f| f.fd)
            .map_err(|_| refuse(exit::CORRUPT, format!("no fd {}", q.fd)))?;
        let FdKind::Socket { addr, .. } = &image.fds[at].kind else {
            return Err(refuse(
                exit::CORRUPT,
                format!("fd {}: a queue on no socket", q.fd),
            ));
        };
        for m in messages(&q.messages) {
            let (from, bytes) =
                m.map_err(|e| refuse(exit::CORRUPT, format!("fd {}: {e}", q.fd)))?;
            let through = match image.fds.iter().find(|f| bound_at(&f.kind, from)) {
                Some(f) => temp(made, f.fd)?,
                None => match senders.iter().find(|(a, _)| *a == from) {
                    Some((_, fd)) => fd.as_raw_fd(),
                    None => {
                        let fd = sender_at(from, addr, q.fd)?;
                        let raw = fd.as_raw_fd();
                        senders.push((from, fd));
                        raw
                    }
                },
            };
            // SAFETY: sending a live buffer to the sockaddr the dump recorded.
            let sent = unsafe {
                libc::sendto(
                    through,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_DONTWAIT,
                    addr.as_ptr().cast(),
                    addr.len() as u32,
                )
            };
            if sent != bytes.len() as isize {
                return Err(os_error(q.fd, "refilling its queued messages"));
            }
        }
    }
    drop(senders);
    for c in s.connects.iter() {
        // SAFETY: `addr` holds the sockaddr getpeername returned.
        let r = unsafe {
            libc::connect(
                temp(made, c.fd)?,
                c.addr.as_ptr().cast(),
                c.addr.len() as u32,
            )
        };
        if r != 0 {
            return Err(os_error(c.fd, "cannot connect it to its peer again"));
        }
    }
    for sd in s.shutdowns.iter() {
        let fd = temp(made, sd.fd)?;
        for (bit, how) in [(SHUT_READS, libc::SHUT_RD), (SHUT_WRITES, libc::SHUT_WR)] {
            // SAFETY: shutdown on our socket.
            if sd.how & bit != 0 && unsafe { libc::shutdown(fd, how) } != 0 {
                return Err(os_error(sd.fd, "shutdown"));
            }
        }
    }
    Ok(())
}
