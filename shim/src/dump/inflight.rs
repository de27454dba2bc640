//! Descriptors in flight: a message waiting on a Unix socket of the
//! process with descriptors attached (`SCM_RIGHTS`). The image holds a
//! socket's queued bytes only, so such a message would come back without
//! its descriptors: the dump fails naming the socket instead. So it does
//! for credentials (`SCM_CREDENTIALS`) a restore could not give back: a
//! waiting message's of another process (a restore sends it again from
//! this one), or `SO_PASSCRED` on a socket whose record cannot hold the
//! option (a connected one: only `Socket` records keep it). Runs in the
//! signal handler: the `dump` module's rules hold (no heap, no locks, no
//! panics; raw system calls only).
//!
//! Nothing here changes a descriptor, and no copy of an in-flight
//! descriptor is left in the process: the queue is stepped through with
//! `MSG_PEEK` (`SO_PEEK_OFF`, put back after) without room for
//! descriptors, so the kernel installs none and says `MSG_CTRUNC`
//! instead; where credentials are passed (`SO_PASSCRED`) the control
//! buffer has room for them alone, and any descriptor installed all the
//! same is closed at once.

use dumpfmt::{Fd, FdKind};

use crate::dump::Fail;
use crate::sys::{self, args};

/// Room for one `SCM_CREDENTIALS` message (`CMSG_SPACE(sizeof(struct ucred))`).
const CREDS_SPACE: usize = 32;

/// Fails the dump, naming the socket, if a message waiting on a Unix
/// socket of `fds` carries descriptors.
pub fn check(fds: &[Fd<'_>]) -> Result<(), Fail> {
    for f in fds {
        let maybe_unix = match &f.kind {
            FdKind::UnixPair { .. } => true,
            FdKind::Socket {
                family, listening, ..
            } => *family == libc::AF_UNIX && !listening,
            FdKind::Gone { sock_type, .. } => *sock_type != 0,
            _ => false,
        };
        if !maybe_unix
            || sys::sockopt_int(f.fd, libc::SOL_SOCKET, libc::SO_DOMAIN) != Ok(libc::AF_UNIX)
        {
            continue;
        }
        let passcred =
            sys::sockopt_int(f.fd, libc::SOL_SOCKET, libc::SO_PASSCRED).unwrap_or(0) != 0;
        let fail = || Fail::new("fd ").dec(f.fd as u64).str(" (Unix socket): ");
        // Only a `Socket` record keeps the option (`crate::dump::fds`). A
        // socket whose peer is in another process comes back without it
        // (`Gone`): only the messages waiting on it would miss their
        // credentials (a D-Bus client sets the option on its connection).
        let waiting = || sys::bytes_waiting(f.fd) > 0 || peekable(f.fd);
        let lost = match f.kind {
            FdKind::Socket { .. } => false,
            FdKind::Gone { .. } => waiting(),
            _ => true,
        };
        if passcred && lost {
            return Err(fail().str(
                "SO_PASSCRED is set on it (its messages come with the sender's credentials), which the image cannot hold for a connected socket",
            ));
        }
        match attached(f.fd, passcred) {
            Attached::Nothing => {}
            Attached::Descriptors => {
                return Err(fail().str(
                    "a message waiting on it carries descriptors (SCM_RIGHTS), which cannot be saved",
                ));
            }
            Attached::OtherCredentials => {
                return Err(fail().str(
                    "a message waiting on it carries another process's credentials (SCM_CREDENTIALS), which a restore cannot send again",
                ));
            }
        }
    }
    Ok(())
}

/// What the messages waiting on a Unix socket carry besides their bytes.
enum Attached {
    Nothing,
    /// Descriptors (`SCM_RIGHTS`).
    Descriptors,
    /// The credentials of a process other than this one (a restore sends
    /// the messages again from this process, with its own).
    OtherCredentials,
}

/// What the messages waiting on Unix socket `fd` carry (`passcred`: it
/// receives credentials with them).
fn attached(fd: i32, passcred: bool) -> Attached {
    if sys::bytes_waiting(fd) == 0 && !peekable(fd) {
        return Attached::Nothing;
    }
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
    let mut found = Attached::Nothing;
    let mut data = [0u8; 4096];
    // u64s: aligned for `struct cmsghdr`.
    let mut control = [0u64; CREDS_SPACE / 8];
    // A message each step at least (datagrams), bounded all the same.
    for _ in 0..(1 << 20) {
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: an all-zero msghdr is a valid one (no name, no control).
        let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if passcred {
            control = [0; CREDS_SPACE / 8];
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = CREDS_SPACE;
        }
        // SAFETY: `msg` points at live buffers of the lengths it gives.
        let got = unsafe {
            sys::sys(
                libc::SYS_recvmsg,
                args!(
                    fd,
                    &mut msg as *mut libc::msghdr,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC
                ),
            )
        };
        let control_len = if got.is_ok() { msg.msg_controllen } else { 0 };
        let (installed, other) = if passcred {
            look_at(&control, control_len)
        } else {
            (false, false)
        };
        let Ok(n) = got else { break };
        if installed || msg.msg_flags & libc::MSG_CTRUNC != 0 {
            found = Attached::Descriptors;
        } else if other {
            found = Attached::OtherCredentials;
        }
        if !matches!(found, Attached::Nothing) || !stepping || (n == 0 && !is_dgram(fd)) {
            break;
        }
    }
    if stepping {
        let _ = set_off(old_off);
    }
    found
}

/// Whether a message can be peeked on `fd` though none of its bytes wait
/// (an empty datagram).
fn peekable(fd: i32) -> bool {
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
    got.is_ok() && is_dgram(fd)
}

fn is_dgram(fd: i32) -> bool {
    sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE) != Ok(libc::SOCK_STREAM)
}

/// Looks at the control messages in `control` (`len` bytes filled):
/// closes every descriptor an `SCM_RIGHTS` message installed, and says
/// whether there was one and whether `SCM_CREDENTIALS` name another
/// process than this one.
fn look_at(control: &[u64; CREDS_SPACE / 8], len: usize) -> (bool, bool) {
    // SAFETY: reinterpreting our own u64 array as bytes.
    let bytes: &[u8] = unsafe {
        core::slice::from_raw_parts(
            control.as_ptr().cast::<u8>(),
            core::mem::size_of_val(control),
        )
    };
    let bytes = &bytes[..len.min(bytes.len())];
    let word = |b: &[u8], at: usize| -> u32 {
        b.get(at..at + 4)
            .map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
    };
    let (mut installed, mut other) = (false, false);
    let mut at = 0usize;
    // struct cmsghdr: cmsg_len (usize), cmsg_level (i32), cmsg_type (i32), data.
    while let Some(head) = bytes.get(at..at + 16) {
        let cmsg_len = word(head, 0) as usize | (word(head, 4) as usize) << 32;
        let (level, kind) = (word(head, 8) as i32, word(head, 12) as i32);
        if cmsg_len < 16 {
            break;
        }
        let data = bytes
            .get(at + 16..(at + cmsg_len).min(bytes.len()))
            .unwrap_or(&[]);
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            installed = true;
            for fd in data.chunks_exact(4) {
                sys::close(i32::from_ne_bytes([fd[0], fd[1], fd[2], fd[3]]));
            }
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_CREDENTIALS && data.len() >= 12 {
            // struct ucred: pid, uid, gid.
            let ours = [
                sys::getpid() as u32,
                // SAFETY: getuid and getgid cannot fail and touch no memory.
                unsafe { sys::sys(libc::SYS_getuid, args!(0)) }.unwrap_or(0) as u32,
                // SAFETY: as above.
                unsafe { sys::sys(libc::SYS_getgid, args!(0)) }.unwrap_or(0) as u32,
            ];
            other |= [word(data, 0), word(data, 4), word(data, 8)] != ours;
        }
        at += (cmsg_len + 7) & !7;
    }
    (installed, other)
}
