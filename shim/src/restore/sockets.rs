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

/// Refills the queues of bound Unix datagram sockets (each message sent
/// from the socket that sent it, or from one without a name), then
/// connects the clients (a connected socket takes messages only from its
/// peer: they come after) and shuts down what was shut down.
pub fn finish(image: &Image<'_>, made: &[Made]) -> Result<(), Refusal> {
    let s = sockets(image);
    let mut unnamed: Option<OwnedFd> = None;
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
            let through = if from >= 0 {
                temp(made, from)?
            } else {
                match &unnamed {
                    Some(u) => u.as_raw_fd(),
                    None => {
                        // SAFETY: plain socket creation.
                        let n = unsafe {
                            libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
                        };
                        if n < 0 {
                            return Err(os_error(q.fd, "socket"));
                        }
                        // SAFETY: `n` was just returned by the kernel and is ours.
                        unnamed
                            .insert(unsafe { OwnedFd::from_raw_fd(n) })
                            .as_raw_fd()
                    }
                }
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
