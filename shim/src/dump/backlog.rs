//! Connections waiting in a listener's accept queue (TCP, Unix). Such a
//! connection has no descriptor: its bytes cannot be read without
//! accepting it (which the process would then miss), so the image cannot
//! hold it. One whose client is a socket of the process fails the dump,
//! naming the listener (a restore would bring the client back without its
//! connection, and the program would wait forever in `accept`); ones from
//! other processes are like any connection to another process
//! (`crate::dump::fds`): an `info` line says they are gone after a
//! restore, or the dump fails with `MIGRATE_EXTERNAL=refuse`. Runs in the
//! signal handler: the `dump` module's rules hold (no heap, no locks, no
//! panics; raw system calls only).

use dumpfmt::{Fd, FdKind};

use crate::dump::Fail;
use crate::sys::line::Line;
use crate::sys::{self, args};

/// Checks the accept queue of every listener of `fds` (TCP, Unix).
pub fn check(fds: &[Fd<'_>]) -> Result<(), Fail> {
    for l in fds {
        let FdKind::Socket {
            family,
            sock_type,
            listening: true,
            addr,
            ..
        } = &l.kind
        else {
            continue;
        };
        let unix = *family == libc::AF_UNIX;
        let waiting = if unix {
            sys::fstat(l.fd)
                .ok()
                .and_then(|st| crate::dump::sockets::diag(st.st_ino))
                .map_or(0, |d| d.rqueue)
        } else {
            accept_queue(l.fd)
        };
        if waiting == 0 {
            continue;
        }
        let what = if unix {
            " (Unix listener): "
        } else {
            " (TCP listener): "
        };
        for c in fds {
            if !matches!(&c.kind, FdKind::Gone { sock_type: t, .. } if t == sock_type) {
                continue;
            }
            let mut peer = [0u8; 128];
            let Ok(len) = sys::sock_addr(c.fd, true, &mut peer) else {
                continue;
            };
            let pending = if unix {
                // A client whose connection was accepted and whose accepted
                // end is closed names the listener too; it is a `Gone` all
                // the same, and rarely so while connections wait.
                sys::sockopt_int(c.fd, libc::SOL_SOCKET, libc::SO_DOMAIN) == Ok(libc::AF_UNIX)
                    && peer[..len] == addr[..]
            } else {
                at_listener(*family, addr, &peer[..len])
                    && crate::dump::sockets::tcp_peer(c.fd) == Some(0)
            };
            if pending {
                return Err(Fail::new("fd ")
                    .dec(l.fd as u64)
                    .str(what)
                    .str("the connection from fd ")
                    .dec(c.fd as u64)
                    .str(" waits in its accept queue, not accepted yet: it cannot be saved"));
            }
        }
        // SAFETY: read-only access to the settings from the handler.
        let settings = unsafe { crate::config::SETTINGS.get() };
        if settings.refuse_external {
            return Err(Fail::new("fd ")
                .dec(l.fd as u64)
                .str(what)
                .dec(u64::from(waiting))
                .str(" connection(s) from another process wait in its accept queue (MIGRATE_EXTERNAL=refuse)"));
        }
        if settings.log >= crate::config::LogLevel::Info {
            let mut line = Line::<300>::new();
            line.str("migrate: fd ")
                .dec(l.fd as u64)
                .str(what)
                .dec(u64::from(waiting))
                .str(" connection(s) from another process wait in its accept queue; after a restore they are gone");
            line.emit();
        }
    }
    Ok(())
}

/// How many connections wait in the accept queue of TCP listener `fd`
/// (`tcpi_unacked` of a listener's `TCP_INFO`).
fn accept_queue(fd: i32) -> u32 {
    let mut info = [0u8; 32];
    let mut len: u32 = info.len() as u32;
    // SAFETY: `info` and `len` are writable; the kernel writes at most `len` bytes.
    let r = unsafe {
        sys::sys(
            libc::SYS_getsockopt,
            args!(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr(),
                &mut len as *mut u32
            ),
        )
    };
    if r.is_err() || len < 28 {
        return 0;
    }
    u32::from_ne_bytes([info[24], info[25], info[26], info[27]])
}

/// Whether `peer` (a `struct sockaddr`) is where a listener bound to
/// `addr` takes connections: the same port, and the same address or a
/// listener on every address.
fn at_listener(family: i32, addr: &[u8], peer: &[u8]) -> bool {
    let ip = match family {
        libc::AF_INET => 4..8,
        libc::AF_INET6 => 8..24,
        _ => return false,
    };
    let (Some(port), Some(their_port)) = (addr.get(2..4), peer.get(2..4)) else {
        return false;
    };
    if port != their_port {
        return false;
    }
    match (addr.get(ip.clone()), peer.get(ip)) {
        (Some(mine), Some(theirs)) => mine == theirs || mine.iter().all(|&b| b == 0),
        _ => false,
    }
}
