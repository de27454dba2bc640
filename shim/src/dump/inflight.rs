//! Descriptors in flight: a message waiting on a Unix socket of the
//! process with descriptors attached (`SCM_RIGHTS`). The image holds a
//! socket's queued bytes only, so such a message would come back without
//! its descriptors: the dump fails naming the socket instead. Runs in the
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
        if carries_descriptors(f.fd) {
            return Err(Fail::new("fd ").dec(f.fd as u64).str(
                " (Unix socket): a message waiting on it carries descriptors (SCM_RIGHTS), which cannot be saved",
            ));
        }
    }
    Ok(())
}

/// Whether a message waiting on Unix socket `fd` has descriptors attached.
fn carries_descriptors(fd: i32) -> bool {
    if sys::bytes_waiting(fd) == 0 && !peekable(fd) {
        return false;
    }
    let passcred = sys::sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PASSCRED).unwrap_or(0) != 0;
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
    let mut found = false;
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
        if passcred && close_installed(&control, msg.msg_controllen) {
            found = true;
        }
        let Ok(n) = got else { break };
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            found = true;
        }
        if found || !stepping || (n == 0 && !is_dgram(fd)) {
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

/// Closes every descriptor an `SCM_RIGHTS` message in `control` (of
/// `len` bytes filled) installed: whether there was one.
fn close_installed(control: &[u64; CREDS_SPACE / 8], len: usize) -> bool {
    // SAFETY: reinterpreting our own u64 array as bytes.
    let bytes: &[u8] = unsafe {
        core::slice::from_raw_parts(
            control.as_ptr().cast::<u8>(),
            core::mem::size_of_val(control),
        )
    };
    let bytes = &bytes[..len.min(bytes.len())];
    let mut any = false;
    let mut at = 0usize;
    // struct cmsghdr: cmsg_len (usize), cmsg_level (i32), cmsg_type (i32), data.
    while let Some(head) = bytes.get(at..at + 16) {
        let cmsg_len = usize::from_ne_bytes(head[..8].try_into().unwrap_or([0; 8]));
        let level = i32::from_ne_bytes(head[8..12].try_into().unwrap_or([0; 4]));
        let kind = i32::from_ne_bytes(head[12..16].try_into().unwrap_or([0; 4]));
        if cmsg_len < 16 {
            break;
        }
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            any = true;
            let end = (at + cmsg_len).min(bytes.len());
            for fd in bytes.get(at + 16..end).unwrap_or(&[]).chunks_exact(4) {
                sys::close(i32::from_ne_bytes([fd[0], fd[1], fd[2], fd[3]]));
            }
        }
        at += (cmsg_len + 7) & !7;
    }
    any
}
