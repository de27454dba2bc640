//! Raw system calls, kernel structures and the few pieces of assembly the
//! shim needs.
//!
//! # Safety
//!
//! Everything here talks to the kernel directly. The wrappers are `unsafe`
//! where a call can break memory safety (it writes through a pointer, maps
//! or unmaps memory, changes the thread's state); callers state why their
//! arguments are valid. Nothing here allocates, locks or panics: it is used
//! from the signal handler and after the old address space is gone.

pub mod context;
pub mod creds;
pub mod line;
pub mod procfields;
pub mod transient;
pub mod vdso;

use core::arch::asm;

pub use libc::{
    SYS_arch_prctl, SYS_brk, SYS_close, SYS_close_range, SYS_exit_group, SYS_fstat, SYS_fsync,
    SYS_get_robust_list, SYS_getdents64, SYS_getpid, SYS_gettid, SYS_mmap, SYS_mprotect,
    SYS_mremap, SYS_munmap, SYS_openat, SYS_prctl, SYS_pread64, SYS_pwrite64, SYS_read,
    SYS_readlinkat, SYS_renameat, SYS_rseq, SYS_rt_sigaction, SYS_rt_sigprocmask,
    SYS_set_robust_list, SYS_set_tid_address, SYS_unlinkat, SYS_write,
};

/// A kernel error number.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

pub type SysResult<T> = Result<T, Errno>;

/// Issues a system call with up to six arguments and returns the raw result.
///
/// # Safety
/// The arguments must be valid for system call `nr`: pointers point to
/// memory of the size the call expects, and the call's effect (mapping,
/// unmapping, changing thread state) must not invalidate what the caller
/// relies on.
#[inline(always)]
pub unsafe fn syscall6(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the `syscall` instruction clobbers rcx and r11 and nothing
    // else; the caller vouches for the arguments.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// As [`syscall6`], with the result turned into `Ok(value)` or `Err(errno)`.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn sys(nr: i64, a: [u64; 6]) -> SysResult<u64> {
    // SAFETY: forwarded from the caller.
    let r = unsafe { syscall6(nr, a) };
    if (-4095..0).contains(&r) {
        Err(Errno(-r as i32))
    } else {
        Ok(r as u64)
    }
}

macro_rules! args {
    ($($a:expr),*) => {{
        let mut v = [0u64; 6];
        let mut _i = 0;
        $( v[_i] = $a as u64; _i += 1; )*
        v
    }};
}
pub(crate) use args;

pub const AT_FDCWD: i64 = libc::AT_FDCWD as i64;
/// `pwritev2` flag: fail with EAGAIN instead of waiting.
const RWF_NOWAIT: u64 = 0x8;

/// Opens `path` (NUL-terminated) relative to the working directory.
pub fn open(path: &[u8], flags: i32, mode: u32) -> SysResult<i32> {
    if path.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: `path` is a NUL-terminated byte string that outlives the call.
    unsafe { sys(SYS_openat, args!(AT_FDCWD, path.as_ptr(), flags, mode)) }.map(|fd| fd as i32)
}

pub fn close(fd: i32) {
    // SAFETY: closing a descriptor the caller owns touches no memory.
    let _ = unsafe { sys(SYS_close, args!(fd)) };
}

pub fn read(fd: i32, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: `buf` is writable for its whole length.
    unsafe { sys(SYS_read, args!(fd, buf.as_mut_ptr(), buf.len())) }.map(|n| n as usize)
}

pub fn pread(fd: i32, buf: &mut [u8], off: u64) -> SysResult<usize> {
    // SAFETY: `buf` is writable for its whole length.
    unsafe { sys(SYS_pread64, args!(fd, buf.as_mut_ptr(), buf.len(), off)) }.map(|n| n as usize)
}

/// Writes all of `buf`, retrying short writes and EINTR.
pub fn write_all(fd: i32, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is readable for its whole length.
        match unsafe { sys(SYS_write, args!(fd, buf.as_ptr(), buf.len())) } {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => buf = buf.get(n as usize..).unwrap_or(&[]),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `writev` to fd 2; to a pipe or socket only when it can take the data
/// without waiting (`poll`, then `RWF_NOWAIT`), else nothing is written.
pub fn writev_stderr(iov: &[libc::iovec]) -> SysResult<usize> {
    let waits = fstat(2)
        .is_ok_and(|st| matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK));
    let (ptr, n) = (iov.as_ptr(), iov.len());
    if waits {
        let mut pfd = libc::pollfd {
            fd: 2,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd, no timeout.
        let ready = unsafe { sys(libc::SYS_poll, args!(&mut pfd as *mut libc::pollfd, 1, 0)) };
        if ready != Ok(1) || pfd.revents & libc::POLLOUT == 0 {
            return Err(Errno(libc::EAGAIN));
        }
        // SAFETY: `iov` describes readable buffers; offset -1: the current one.
        match unsafe { sys(libc::SYS_pwritev2, args!(2, ptr, n, -1i64, 0, RWF_NOWAIT)) } {
            Err(Errno(libc::EOPNOTSUPP | libc::EINVAL)) => {}
            r => return r.map(|v| v as usize),
        }
    }
    // SAFETY: `iov` describes readable buffers.
    unsafe { sys(libc::SYS_writev, args!(2, ptr, n)) }.map(|v| v as usize)
}

pub fn pwrite_all(fd: i32, mut buf: &[u8], mut off: u64) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is readable for its whole length.
        match unsafe { sys(SYS_pwrite64, args!(fd, buf.as_ptr(), buf.len(), off)) } {
            Ok(0) => return Err(Errno(libc::EIO)),
            Ok(n) => {
                buf = buf.get(n as usize..).unwrap_or(&[]);
                off += n;
            }
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Opens `path` for a moment (closed with [`close_transient`]), tracked
/// so that a child forked meanwhile closes its copy (see [`transient`]).
pub fn open_transient(path: &[u8], flags: i32) -> SysResult<(i32, transient::Claim)> {
    let claim = transient::claim(path);
    match open(path, flags, 0) {
        Ok(fd) => {
            claim.opened(fd);
            Ok((fd, claim))
        }
        Err(e) => {
            claim.release();
            Err(e)
        }
    }
}

/// Closes a descriptor of [`open_transient`].
pub fn close_transient(fd: i32, claim: transient::Claim) {
    close(fd);
    claim.release();
}

/// Reads a whole (small, procfs) file into `buf`; returns the length read.
/// Fails with EFBIG when it does not fit.
pub fn read_file(path: &[u8], buf: &mut [u8]) -> SysResult<usize> {
    let (fd, claim) = open_transient(path, libc::O_RDONLY | libc::O_CLOEXEC)?;
    let mut len = 0;
    let res = loop {
        let Some(rest) = buf.get_mut(len..) else {
            break Err(Errno(libc::EFBIG));
        };
        if rest.is_empty() {
            break Err(Errno(libc::EFBIG));
        }
        match read(fd, rest) {
            Ok(0) => break Ok(len),
            Ok(n) => len += n,
            Err(Errno(libc::EINTR)) => {}
            Err(e) => break Err(e),
        }
    };
    close_transient(fd, claim);
    res
}

/// Calls `f` with the name of each entry of directory `path` (NUL-terminated),
/// `.` and `..` included; returns the directory's fd number (already closed)
/// so callers can recognise it among /proc/self/fd entries.
pub fn for_each_dir_entry(path: &[u8], mut f: impl FnMut(&[u8])) -> SysResult<i32> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let (fd, claim) = open_transient(path, flags)?;
    let mut buf = [0u8; 4096];
    let res = loop {
        // SAFETY: `buf` is writable for its length.
        let n = match unsafe { sys(SYS_getdents64, args!(fd, buf.as_mut_ptr(), buf.len())) } {
            Ok(0) => break Ok(fd),
            Ok(n) => n as usize,
            Err(e) => break Err(e),
        };
        // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
        let mut off = 0usize;
        while off + 19 < n {
            let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
            if reclen == 0 {
                break;
            }
            let name = &buf[off + 19..(off + reclen).min(n)];
            f(&name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())]);
            off += reclen;
        }
    };
    close_transient(fd, claim);
    res
}

/// Parses a decimal number made of digits only.
pub fn parse_dec(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |v, &c| {
        c.is_ascii_digit().then_some(())?;
        v.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// A hexadecimal number of at most 16 digits (no `0x`), as procfs prints them.
pub fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |v, &c| {
        Some(v << 4 | u64::from((c as char).to_digit(16)?))
    })
}

/// `fcntl(fd, cmd, arg)`.
pub fn fcntl(fd: i32, cmd: i32, arg: u64) -> SysResult<u64> {
    // SAFETY: the commands used here (F_GETFL, F_SETFL, F_GETFD,
    // F_GETPIPE_SZ, F_SETPIPE_SZ, F_GET_SEALS) take an integer or nothing.
    unsafe { sys(libc::SYS_fcntl, args!(fd, cmd, arg)) }
}

/// `ioctl(fd, FIONREAD)`: bytes waiting to be read.
pub fn bytes_waiting(fd: i32) -> u64 {
    let mut n: i32 = 0;
    // SAFETY: FIONREAD writes one int.
    match unsafe {
        sys(
            libc::SYS_ioctl,
            args!(fd, libc::FIONREAD, &mut n as *mut i32),
        )
    } {
        Ok(_) => n.max(0) as u64,
        Err(_) => 0,
    }
}

pub fn lseek(fd: i32, off: i64, whence: i32) -> SysResult<u64> {
    // SAFETY: no memory is involved.
    unsafe { sys(libc::SYS_lseek, args!(fd, off, whence)) }
}

/// `getsockopt` of an int option.
pub fn sockopt_int(fd: i32, level: i32, name: i32) -> SysResult<i32> {
    let mut v: i32 = 0;
    let mut len: u32 = 4;
    // SAFETY: `v` and `len` are writable and sized for an int option.
    unsafe {
        sys(
            libc::SYS_getsockopt,
            args!(fd, level, name, &mut v as *mut i32, &mut len as *mut u32),
        )
    }
    .map(|_| v)
}

/// Segments a TCP socket has sent (`tcp_info.tcpi_segs_out`): non-zero
/// once it took part in a connection, even one closed since.
pub fn tcp_segs_out(fd: i32) -> SysResult<u32> {
    let mut info = [0u8; 144];
    let mut len: u32 = info.len() as u32;
    // SAFETY: `info` and `len` are writable; the kernel writes at most `len` bytes.
    unsafe {
        sys(
            libc::SYS_getsockopt,
            args!(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr(),
                &mut len as *mut u32
            ),
        )
    }?;
    if len < 140 {
        return Ok(0);
    }
    Ok(u32::from_ne_bytes([
        info[136], info[137], info[138], info[139],
    ]))
}

/// getsockname (`peer` false) or getpeername into `buf`; returns the length.
pub fn sock_addr(fd: i32, peer: bool, buf: &mut [u8; 128]) -> SysResult<usize> {
    let mut len: u32 = 128;
    let nr = if peer {
        libc::SYS_getpeername
    } else {
        libc::SYS_getsockname
    };
    // SAFETY: `buf` holds 128 bytes, `len` says so.
    unsafe { sys(nr, args!(fd, buf.as_mut_ptr(), &mut len as *mut u32)) }
        .map(|_| (len as usize).min(128))
}

pub fn fsync(fd: i32) -> SysResult<()> {
    // SAFETY: no memory is involved.
    unsafe { sys(SYS_fsync, args!(fd)) }.map(|_| ())
}

pub fn fstat(fd: i32) -> SysResult<libc::stat> {
    // SAFETY: all-zero is a valid `struct stat`.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a writable `struct stat`.
    unsafe { sys(SYS_fstat, args!(fd, &mut st as *mut libc::stat)) }.map(|_| st)
}

pub fn rename(from: &[u8], to: &[u8]) -> SysResult<()> {
    if from.last() != Some(&0) || to.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: both are NUL-terminated paths.
    unsafe {
        sys(
            SYS_renameat,
            args!(AT_FDCWD, from.as_ptr(), AT_FDCWD, to.as_ptr()),
        )
    }
    .map(|_| ())
}

/// Gives the file open at `fd` the name `to` (NUL-terminated), which must
/// not exist: `linkat` of `/proc/self/fd/N`, following that link, which
/// works unprivileged for an `O_TMPFILE` file opened without `O_EXCL`.
pub fn link_fd(fd: i32, to: &[u8]) -> SysResult<()> {
    if to.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    let mut from = line::Line::<32>::new();
    from.str("/proc/self/fd/").dec(fd as u64);
    let from = from.c_str().ok_or(Errno(libc::EINVAL))?;
    // SAFETY: both are NUL-terminated paths that outlive the call.
    unsafe {
        sys(
            libc::SYS_linkat,
            args!(
                AT_FDCWD,
                from.as_ptr(),
                AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW
            ),
        )
    }
    .map(|_| ())
}

/// Renames `from` to `to` (both NUL-terminated) unless `to` exists
/// (`renameat2` with `RENAME_NOREPLACE`): EEXIST then, and EINVAL where
/// the filesystem cannot.
pub fn rename_noreplace(from: &[u8], to: &[u8]) -> SysResult<()> {
    if from.last() != Some(&0) || to.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: both are NUL-terminated paths.
    unsafe {
        sys(
            libc::SYS_renameat2,
            args!(
                AT_FDCWD,
                from.as_ptr(),
                AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_NOREPLACE
            ),
        )
    }
    .map(|_| ())
}

/// Gives the file at `from` the further name `to` (both NUL-terminated),
/// which must not exist; a symlink at `from` is linked, not followed.
pub fn link(from: &[u8], to: &[u8]) -> SysResult<()> {
    if from.last() != Some(&0) || to.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: both are NUL-terminated paths.
    unsafe {
        sys(
            libc::SYS_linkat,
            args!(AT_FDCWD, from.as_ptr(), AT_FDCWD, to.as_ptr(), 0),
        )
    }
    .map(|_| ())
}

/// Whether anything (a symlink too, not followed) is at `path`
/// (NUL-terminated); false where that cannot be told.
pub fn exists(path: &[u8]) -> bool {
    if path.last() != Some(&0) {
        return false;
    }
    // SAFETY: plain old data; all-zero is valid.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable `struct stat`.
    unsafe {
        sys(
            libc::SYS_newfstatat,
            args!(
                AT_FDCWD,
                path.as_ptr(),
                &mut st as *mut libc::stat,
                libc::AT_SYMLINK_NOFOLLOW
            ),
        )
    }
    .is_ok()
}

pub fn unlink(path: &[u8]) -> SysResult<()> {
    if path.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: a NUL-terminated path.
    unsafe { sys(SYS_unlinkat, args!(AT_FDCWD, path.as_ptr(), 0)) }.map(|_| ())
}

pub fn readlink(path: &[u8], buf: &mut [u8]) -> SysResult<usize> {
    if path.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: a NUL-terminated path and a writable buffer.
    unsafe {
        sys(
            SYS_readlinkat,
            args!(AT_FDCWD, path.as_ptr(), buf.as_mut_ptr(), buf.len()),
        )
    }
    .map(|n| n as usize)
}

/// Maps fresh anonymous read-write memory.
pub fn mmap_anon(len: usize, extra_flags: i32) -> SysResult<*mut u8> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    if extra_flags & libc::MAP_NORESERVE == 0 {
        // SAFETY: a new anonymous mapping at an address the kernel picks
        // replaces nothing.
        return unsafe { sys(SYS_mmap, args!(0, len, rw, flags, -1i64, 0)) }.map(|a| a as *mut u8);
    }
    // A reservation (the dump's arena and stack) must cost memory only as
    // it is touched, also in a program that called mlockall(MCL_FUTURE),
    // under which a new mapping is locked and filled at once: mapped
    // without access (which nothing fills), unlocked, then opened. Where
    // RLIMIT_MEMLOCK refuses the locked mapping, a copy of the library's
    // own unlocked page grows into it (`seeds`).
    // SAFETY: as above.
    let a = match unsafe { sys(SYS_mmap, args!(0, len, libc::PROT_NONE, flags, -1i64, 0)) } {
        Err(Errno(libc::EAGAIN)) => {
            return crate::seeds::grow(len as u64)
                .map(|a| a as *mut u8)
                .ok_or(Errno(libc::EAGAIN));
        }
        r => r?,
    };
    // SAFETY: the range is this call's new mapping.
    let opened = unsafe { sys(libc::SYS_munlock, args!(a, len)) }
        // SAFETY: likewise.
        .and_then(|_| unsafe { sys(SYS_mprotect, args!(a, len, rw)) });
    if let Err(e) = opened {
        // SAFETY: nothing has used the new mapping.
        let _ = unsafe { munmap(a, len as u64) };
        return Err(e);
    }
    Ok(a as *mut u8)
}

/// # Safety
/// Nothing may use the range after this call.
pub unsafe fn munmap(addr: u64, len: u64) -> SysResult<()> {
    // SAFETY: the caller guarantees the range is no longer used.
    unsafe { sys(SYS_munmap, args!(addr, len)) }.map(|_| ())
}

pub fn gettid() -> i32 {
    // SAFETY: no arguments.
    unsafe { syscall6(SYS_gettid, [0; 6]) as i32 }
}

pub fn getpid() -> i32 {
    // SAFETY: no arguments.
    unsafe { syscall6(SYS_getpid, [0; 6]) as i32 }
}

pub fn exit_group(code: i32) -> ! {
    loop {
        // SAFETY: ends the process.
        unsafe { syscall6(SYS_exit_group, args!(code)) };
    }
}

/// Monotonic time in nanoseconds (raw syscall, not the vDSO).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

pub fn boottime_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: i32) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a writable timespec.
    let _ = unsafe {
        sys(
            libc::SYS_clock_gettime,
            args!(clock, &mut ts as *mut libc::timespec),
        )
    };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Waits while `*word == val`, at most `timeout_ns` (0: no limit).
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, val: u32, timeout_ns: u64) {
    futex_wait_op(
        word,
        libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
        val,
        timeout_ns,
    );
}

/// As [`futex_wait`], for a word in a shared mapping that another process
/// may wake.
pub fn futex_wait_shared(word: &core::sync::atomic::AtomicU32, val: u32, timeout_ns: u64) {
    futex_wait_op(word, libc::FUTEX_WAIT, val, timeout_ns);
}

fn futex_wait_op(word: &core::sync::atomic::AtomicU32, op: i32, val: u32, timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as i64,
        tv_nsec: (timeout_ns % 1_000_000_000) as i64,
    };
    let tsp = if timeout_ns == 0 {
        0
    } else {
        &ts as *const libc::timespec as u64
    };
    // SAFETY: `word` is a live, aligned u32; `ts` outlives the call.
    let _ = unsafe { sys(libc::SYS_futex, args!(word.as_ptr(), op, val, tsp)) };
}

/// Wakes every waiter on `word`.
pub fn futex_wake_all(word: &core::sync::atomic::AtomicU32) {
    futex_wake_all_op(word, libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG);
}

/// As [`futex_wake_all`], for a word in a shared mapping: waiters in
/// other processes too.
pub fn futex_wake_all_shared(word: &core::sync::atomic::AtomicU32) {
    futex_wake_all_op(word, libc::FUTEX_WAKE);
}

fn futex_wake_all_op(word: &core::sync::atomic::AtomicU32, op: i32) {
    // SAFETY: `word` is a live, aligned u32.
    let _ = unsafe { sys(libc::SYS_futex, args!(word.as_ptr(), op, i32::MAX)) };
}

/// Creates directory `path` (NUL-terminated) with `mode`.
pub fn mkdir(path: &[u8], mode: u32) -> SysResult<()> {
    if path.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: a NUL-terminated path.
    unsafe { sys(libc::SYS_mkdirat, args!(AT_FDCWD, path.as_ptr(), mode)) }.map(|_| ())
}

/// `stat` of `path` (NUL-terminated); of a symlink itself when `!follow`.
pub fn stat_path(path: &[u8], follow: bool) -> SysResult<libc::stat> {
    if path.last() != Some(&0) {
        return Err(Errno(libc::EINVAL));
    }
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: all-zero is a valid `struct stat`.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable `struct stat`.
    unsafe {
        sys(
            libc::SYS_newfstatat,
            args!(AT_FDCWD, path.as_ptr(), &mut st as *mut libc::stat, flags),
        )
    }
    .map(|_| st)
}

pub fn getuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { syscall6(libc::SYS_getuid, [0; 6]) as u32 }
}

/// Sends `sig` to process `pid` (SIGKILL to ourselves ends every thread).
pub fn kill(pid: i32, sig: i32) -> SysResult<()> {
    // SAFETY: plain integers.
    unsafe { sys(libc::SYS_kill, args!(pid, sig)) }.map(|_| ())
}

/// Sends `sig` to process `pid` with `si_code = SI_QUEUE` and `value` in
/// `si_value` (what `sigqueue(3)` does), as a request the handler can
/// tell from a plain `kill`.
pub fn queue_signal(pid: i32, sig: i32, value: u64) -> SysResult<()> {
    let info = queued_info(sig, value);
    // SAFETY: `info` is a 128-byte siginfo the kernel only reads.
    unsafe { sys(libc::SYS_rt_sigqueueinfo, args!(pid, sig, info.as_ptr())) }.map(|_| ())
}

/// A siginfo for `sig` with `si_code = SI_QUEUE`, our pid and uid, and `value`.
fn queued_info(sig: i32, value: u64) -> [u8; 128] {
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&sig.to_ne_bytes());
    info[8..12].copy_from_slice(&libc::SI_QUEUE.to_ne_bytes());
    info[16..20].copy_from_slice(&getpid().to_ne_bytes());
    info[20..24].copy_from_slice(&getuid().to_ne_bytes());
    info[24..32].copy_from_slice(&value.to_ne_bytes());
    info
}

/// `si_code` and `si_value` of a siginfo the kernel passed to a handler.
///
/// # Safety
/// `info` must be null or the `siginfo_t` the kernel passed to the handler.
pub unsafe fn siginfo_code_value(info: *const libc::siginfo_t) -> Option<(i32, u64)> {
    if info.is_null() {
        return None;
    }
    // SAFETY: the kernel's siginfo is 128 readable bytes.
    let b = unsafe { core::slice::from_raw_parts(info.cast::<u8>(), 32) };
    let code = i32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let value = u64::from_ne_bytes([b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31]]);
    Some((code, value))
}

/// Sends `sig` to thread `tid` of this process with `si_code = SI_QUEUE`
/// and `value` in `si_value`, so the handler can tell it from a user's signal.
pub fn queue_signal_to_thread(tid: i32, sig: i32, value: u64) -> SysResult<()> {
    let info = queued_info(sig, value);
    // SAFETY: `info` is a 128-byte siginfo the kernel only reads.
    unsafe {
        sys(
            libc::SYS_rt_tgsigqueueinfo,
            args!(getpid(), tid, sig, info.as_ptr()),
        )
    }
    .map(|_| ())
}

/// `SA_RESTORER`: the action carries its own sigreturn trampoline (x86-64
/// requires one; glibc always supplies `__restore_rt`).
pub const SA_RESTORER: u64 = 0x0400_0000;

/// The kernel's `struct sigaction` on x86-64 (not glibc's).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct KernelSigaction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

pub fn sigaction_get(sig: i32) -> SysResult<KernelSigaction> {
    let mut old = KernelSigaction::default();
    // SAFETY: a null new action only reads the disposition into `old`.
    unsafe {
        sys(
            SYS_rt_sigaction,
            args!(sig, 0, &mut old as *mut KernelSigaction, 8),
        )
    }
    .map(|_| old)
}

/// # Safety
/// `act.handler` must be a valid handler (or SIG_DFL/SIG_IGN) and
/// `act.restorer` a valid sigreturn trampoline when SA_RESTORER is set.
pub unsafe fn sigaction_set(sig: i32, act: &KernelSigaction) -> SysResult<()> {
    // SAFETY: forwarded from the caller.
    unsafe {
        sys(
            SYS_rt_sigaction,
            args!(sig, act as *const KernelSigaction, 0, 8),
        )
    }
    .map(|_| ())
}

/// The calling thread's signal mask.
pub fn sigmask_get() -> u64 {
    let mut old = 0u64;
    // SAFETY: a null new set only reads the mask.
    let _ = unsafe {
        sys(
            SYS_rt_sigprocmask,
            args!(libc::SIG_BLOCK, 0, &mut old as *mut u64, 8),
        )
    };
    old
}

pub const ARCH_SET_GS: u64 = 0x1001;
pub const ARCH_SET_FS: u64 = 0x1002;
pub const ARCH_GET_FS: u64 = 0x1003;
pub const ARCH_GET_GS: u64 = 0x1004;

pub fn arch_get(code: u64) -> u64 {
    let mut v = 0u64;
    // SAFETY: ARCH_GET_* writes one word to `v`.
    let _ = unsafe { sys(SYS_arch_prctl, args!(code, &mut v as *mut u64)) };
    v
}

pub const PR_SET_MM: u64 = 35;
pub const PR_SET_MM_MAP: u64 = 14;
pub const PR_GET_TID_ADDRESS: u64 = 40;

/// `struct prctl_mm_map` from `<linux/prctl.h>`: the image's fields,
/// then the auxv and the exe fd.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct PrctlMmMap {
    pub mm: dumpfmt::MmFields,
    pub auxv: u64,
    pub auxv_size: u32,
    pub exe_fd: u32,
}

// The kernel's struct is 104 bytes, auxv at 88.
const _: () =
    assert!(size_of::<PrctlMmMap>() == 104 && core::mem::offset_of!(PrctlMmMap, auxv) == 88);

pub const RSEQ_SIG: u32 = 0x5305_3053;
pub const RSEQ_FLAG_UNREGISTER: u64 = 1;

/// CPU features a saved state may depend on (see `dumpfmt::CpuFeatures`).
pub fn cpu_features() -> dumpfmt::CpuFeatures {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let l1 = __cpuid(1);
    let l7 = __cpuid_count(7, 0);
    let mut xcr0 = 0u64;
    if l1.ecx & (1 << 27) != 0 {
        let (lo, hi): (u32, u32);
        // SAFETY: OSXSAVE is set, so xgetbv with ecx = 0 is valid.
        unsafe {
            asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack))
        };
        xcr0 = u64::from(hi) << 32 | u64::from(lo);
    }
    // Bit 31 of leaf 1 ecx says "running under a hypervisor": not a feature.
    dumpfmt::CpuFeatures {
        xcr0,
        cpuid: [l1.ecx & !(1 << 31), l1.edx, l7.ebx, l7.ecx, l7.edx],
    }
}

/// The cpuid words `cpu_features` lacks (see `dumpfmt::Minor2::cpu_ext`):
/// (0xd, 1).eax, (0x8000_0001).ecx, (0x8000_0001).edx.
pub fn cpu_ext() -> [u32; 3] {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let max = __cpuid(0).eax;
    let d1 = if max >= 0xd {
        __cpuid_count(0xd, 1).eax
    } else {
        0
    };
    let (ecx, edx) = if __cpuid(0x8000_0000).eax >= 0x8000_0001 {
        let e = __cpuid(0x8000_0001);
        (e.ecx, e.edx)
    } else {
        (0, 0)
    };
    [d1, ecx, edx]
}

/// Where each xsave state component above SSE that `xcr0` enables lies
/// in the standard-format area, on this CPU (cpuid leaf 0xd); returns how
/// many entries of `out` it filled.
pub fn xsave_layout(xcr0: u64, out: &mut [dumpfmt::XsaveComponent; 32]) -> usize {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 0xd {
        return 0;
    }
    let mut n = 0;
    for c in 2..32u32 {
        if xcr0 & (1 << c) == 0 {
            continue;
        }
        let l = __cpuid_count(0xd, c);
        out[n] = dumpfmt::XsaveComponent {
            component: c as u8,
            offset: l.ebx,
            size: l.eax,
        };
        n += 1;
    }
    n
}
