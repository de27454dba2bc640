//! Room for the dump's memory in a program that called
//! `mlockall(MCL_FUTURE)` (issue 12).
//!
//! Under `MCL_FUTURE` every new mapping is locked, and a process without
//! `CAP_IPC_LOCK` (any restored process: its user namespace does not give
//! it) may map only what `RLIMIT_MEMLOCK` leaves: the dump's 1 GiB arena
//! and its stack would be refused. A mapping that is not locked may grow
//! with `mremap` without that limit (only a locked one counts), and keeps
//! its flags as it grows. So the constructor maps one page of its own,
//! the *seed*; [`grow`] moves a copy of it elsewhere
//! (`MREMAP_DONTUNMAP`: the seed stays as it is) and grows that copy to a
//! reservation of any size, when a plain mapping is refused. The
//! reservation is unmapped as any other. `mlockall(MCL_CURRENT)` would
//! lock the seed: [`mlockall`] is interposed and unlocks it after.
//!
//! The seed is one page of zeros, part of the process's memory like any
//! other (an image holds it, and a restore puts it back unlocked).
//!
//! # Rules
//!
//! [`grow`] runs in the dump's signal handler: atomics and raw system
//! calls only. [`mlockall`] may run in any thread.

use core::sync::atomic::{AtomicU64, Ordering::*};

use crate::sys::{self, args};

const PAGE: u64 = 4096;
/// `mremap`: keep the old mapping where it is (Linux 5.7).
const MREMAP_DONTUNMAP: u64 = 4;

/// The seed's address; 0: none (never made).
static SEED: AtomicU64 = AtomicU64::new(0);

/// Maps the seed (the constructor, before any code of the program).
pub fn init() {
    // SAFETY: a new private mapping at an address the kernel picks
    // replaces nothing.
    if let Ok(seed) = unsafe {
        sys::sys(
            libc::SYS_mmap,
            args!(
                0,
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1i64,
                0
            ),
        )
    } {
        SEED.store(seed, Release);
    }
}

/// A reservation of `len` bytes, read-write and not locked, grown from a
/// copy of the seed; `None` if there is no seed or it cannot grow.
pub fn grow(len: u64) -> Option<u64> {
    let seed = SEED.load(Acquire);
    if seed == 0 {
        return None;
    }
    let moved = libc::MREMAP_MAYMOVE as u64 | MREMAP_DONTUNMAP;
    // SAFETY: the seed is this library's own page, never used: its pages
    // (none) move to a new mapping, the seed stays mapped, empty.
    let copy = unsafe { sys::sys(libc::SYS_mremap, args!(seed, PAGE, PAGE, moved)) }.ok()?;
    // SAFETY: the copy is this call's own mapping.
    match unsafe {
        sys::sys(
            libc::SYS_mremap,
            args!(copy, PAGE, len, libc::MREMAP_MAYMOVE),
        )
    } {
        Ok(addr) => Some(addr),
        Err(_) => {
            // SAFETY: likewise.
            let _ = unsafe { sys::munmap(copy, PAGE) };
            None
        }
    }
}

/// `mlockall`, interposed: after `MCL_CURRENT` has locked every mapping,
/// the seed is unlocked again (a locked seed could not grow past
/// `RLIMIT_MEMLOCK`).
#[unsafe(no_mangle)]
pub extern "C" fn mlockall(flags: i32) -> i32 {
    // SAFETY: mlockall takes an integer.
    match unsafe { sys::sys(libc::SYS_mlockall, args!(flags)) } {
        Ok(_) => {
            let seed = SEED.load(Acquire);
            if flags & libc::MCL_CURRENT != 0 && seed != 0 {
                // SAFETY: munlock changes no memory.
                let _ = unsafe { sys::sys(libc::SYS_munlock, args!(seed, PAGE)) };
            }
            0
        }
        Err(e) => {
            // SAFETY: errno is this thread's.
            unsafe { *libc::__errno_location() = e.0 };
            -1
        }
    }
}
