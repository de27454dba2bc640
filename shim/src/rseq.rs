//! rseq areas a program registers itself (issue 12): with
//! `GLIBC_TUNABLES=glibc.pthread.rseq=0` glibc registers none, and a
//! program (or a library such as librseq or tcmalloc) may call `rseq(2)`
//! on an area of its own, one per thread.
//!
//! The kernel tells no one but a ptracer where a thread's area is, so the
//! library learns it as it happens: `syscall` is interposed and every
//! successful registration (and unregistration) of a thread is recorded
//! in a small table of its own ([`syscall`]). At the dump each thread
//! asks the kernel what it has registered, with calls that never change
//! anything ([`registration`]):
//!
//! - `rseq(kernel address, 32, 0, 0)` fails with `EFAULT` when nothing is
//!   registered (the address is checked only then) and with `EINVAL` when
//!   another area is;
//! - `rseq(area, len, 0, sig)` fails with `EBUSY` exactly when that very
//!   area, length and signature are registered (and registers nothing,
//!   since something is).
//!
//! glibc's own area is tried first, then the one the table holds for the
//! thread; a registration that is neither (made by a raw `syscall`
//! instruction, or with the table full) fails the dump naming the thread:
//! never a silent loss. The restore registers the area again in each
//! thread (`restore::thread_ops` registers `ThreadState::rseq_addr`).
//!
//! # Rules
//!
//! [`syscall`] may run in any thread, in a signal handler of the
//! program's: atomics only, no heap, no locks. [`registration`] runs in
//! the dump's signal handler (the `dump` module's rules).

use core::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering::*};

use crate::sys::{self, Errno, args};

/// Threads whose registrations the table holds at once.
const SLOTS: usize = 1024;
/// The size of the original `struct rseq`, the least a registration has.
const ORIG_LEN: u64 = 32;
/// An address in the kernel's half: never a user's area.
const KERNEL_ADDR: u64 = 0xffff_8000_0000_0000;

struct Slot {
    /// The thread's TID; 0: free.
    tid: AtomicI32,
    addr: AtomicU64,
    /// Length (low half) and signature (high half).
    len_sig: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    tid: AtomicI32::new(0),
    addr: AtomicU64::new(0),
    len_sig: AtomicU64::new(0),
};

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];

/// libc's `syscall`, resolved by [`init`].
static REAL: AtomicUsize = AtomicUsize::new(0);

/// A thread that holds an rseq registration the dump cannot tell: its
/// TID (0: none).
static UNKNOWN: AtomicI32 = AtomicI32::new(0);

/// Resolves libc's `syscall` (the constructor: no later call needs dlsym).
pub fn init() {
    real();
}

fn real() -> usize {
    let mut f = REAL.load(Relaxed);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"syscall".as_ptr()) } as usize;
        REAL.store(f, Relaxed);
    }
    f
}

type SyscallFn = unsafe extern "C" fn(i64, i64, i64, i64, i64, i64, i64) -> i64;

/// libc's `syscall`, which records the caller's rseq registrations.
///
/// Declared with the six arguments a system call has: on x86-64 a
/// variadic call passes them where a plain one does, and libc's
/// `syscall` reads exactly those.
///
/// # Safety
/// As `syscall(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(nr: i64, a: i64, b: i64, c: i64, d: i64, e: i64, f: i64) -> i64 {
    let real = real();
    // SAFETY: `real` is libc's `syscall`; the arguments are the caller's.
    let r = unsafe { core::mem::transmute::<usize, SyscallFn>(real)(nr, a, b, c, d, e, f) };
    if nr == libc::SYS_rseq && r == 0 {
        if c as u64 & sys::RSEQ_FLAG_UNREGISTER != 0 {
            forget(sys::gettid());
        } else {
            record(sys::gettid(), a as u64, b as u32, d as u32);
        }
    }
    r
}

fn record(tid: i32, addr: u64, len: u32, sig: u32) {
    let slot = TABLE
        .iter()
        .find(|s| s.tid.load(Acquire) == tid)
        .or_else(|| {
            TABLE
                .iter()
                .find(|s| s.tid.compare_exchange(0, tid, AcqRel, Acquire).is_ok())
        });
    // A full table: the dump says which thread it cannot tell.
    if let Some(s) = slot {
        s.addr.store(addr, Release);
        s.len_sig
            .store(u64::from(len) | u64::from(sig) << 32, Release);
    }
}

fn forget(tid: i32) {
    if let Some(s) = TABLE.iter().find(|s| s.tid.load(Acquire) == tid) {
        s.addr.store(0, Release);
        s.len_sig.store(0, Release);
        s.tid.store(0, Release);
    }
}

/// What the table holds for `tid`.
fn recorded(tid: i32) -> Option<(u64, u32, u32)> {
    let s = TABLE.iter().find(|s| s.tid.load(Acquire) == tid)?;
    let ls = s.len_sig.load(Acquire);
    Some((s.addr.load(Acquire), ls as u32, (ls >> 32) as u32))
}

fn rseq(addr: u64, len: u64, flags: u64, sig: u32) -> Result<u64, Errno> {
    // SAFETY: with something registered, or an address the kernel checks
    // before using it, rseq only reports (see the module's notes).
    unsafe { sys::sys(libc::SYS_rseq, args!(addr, len, flags, sig)) }
}

/// Before the threads park: no thread has been found wanting.
pub fn begin() {
    UNKNOWN.store(0, Release);
}

/// The calling thread's rseq registration: area, length, signature (all
/// 0: none). `glibc` is glibc's area of this thread and its length (0:
/// glibc registers none). A registration it cannot tell is remembered for
/// [`check`].
pub fn registration(glibc: Option<(u64, u32)>) -> (u64, u32, u32) {
    match rseq(KERNEL_ADDR, ORIG_LEN, 0, 0) {
        // Nothing registered (or no rseq in this kernel).
        Err(Errno(libc::EFAULT | libc::ENOSYS)) => return (0, 0, 0),
        Err(Errno(libc::EINVAL)) => {}
        _ => {
            UNKNOWN.store(sys::gettid(), Release);
            return (0, 0, 0);
        }
    }
    let me = sys::gettid();
    let candidates = glibc
        .map(|(addr, len)| (addr, len, sys::RSEQ_SIG))
        .into_iter()
        .chain(recorded(me));
    for (addr, len, sig) in candidates {
        if rseq(addr, len.into(), 0, sig) == Err(Errno(libc::EBUSY)) {
            return (addr, len, sig);
        }
    }
    UNKNOWN.store(me, Release);
    (0, 0, 0)
}

/// Fails the dump if a thread holds a registration it cannot tell.
#[allow(clippy::result_large_err)]
pub fn check() -> Result<(), crate::dump::Fail> {
    match UNKNOWN.load(Acquire) {
        0 => Ok(()),
        tid => Err(crate::dump::Fail::new("thread ")
            .dec(tid as u64)
            .str(" has an rseq area registered by a raw system call (not through glibc or syscall()): it would be lost")),
    }
}
