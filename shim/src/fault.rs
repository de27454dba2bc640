//! Faults injected on purpose, so that tests can prove what the shim
//! promises when things go wrong (the way CRIU's `CRIU_FAULT` does).
//!
//! `MIGRATE_FAULT=<name>` in the environment of a process started under
//! the shim arms one fault for its whole life; unset, nothing changes.
//! Only the tests set it. The dump path reads the armed fault with one
//! atomic load: no heap, no locks.

use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crate::sys;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// The dump panics once every thread is stopped (`dump-panic`).
    DumpPanic = 1,
    /// Every read of `/proc/self/mem` fails with EIO (`mem-read`).
    MemRead = 2,
    /// As `dump-panic`, with a formatted message (`dump-panic-fmt`): std
    /// builds such a message on the heap before the hook runs.
    DumpPanicFmt = 3,
    /// As `dump-panic`, once the image file and the page scan's
    /// descriptors are open (`dump-panic-late`).
    DumpPanicLate = 4,
    /// Every dump takes 1.2 s longer, with every thread stopped
    /// (`slow-dump`): longer than a 1 s `MIGRATE_INTERVAL`.
    SlowDump = 5,
    /// `userfaultfd` is refused, as where it is not allowed (`no-uffd`):
    /// incremental dumps fall back to full ones.
    NoUffd = 6,
}

static ARMED: AtomicU8 = AtomicU8::new(0);

/// Arms the fault named by `MIGRATE_FAULT` (constructor only).
pub fn arm_from_env() -> Result<(), String> {
    let Ok(name) = std::env::var("MIGRATE_FAULT") else {
        return Ok(());
    };
    let f = match name.as_str() {
        "" => Fault::None,
        "dump-panic" => Fault::DumpPanic,
        "mem-read" => Fault::MemRead,
        "dump-panic-fmt" => Fault::DumpPanicFmt,
        "dump-panic-late" => Fault::DumpPanicLate,
        "slow-dump" => Fault::SlowDump,
        "no-uffd" => Fault::NoUffd,
        other => {
            return Err(format!(
                "MIGRATE_FAULT={other}: not a fault (dump-panic, dump-panic-fmt, dump-panic-late, mem-read, no-uffd, slow-dump)"
            ));
        }
    };
    ARMED.store(f as u8, Relaxed);
    Ok(())
}

pub fn armed(f: Fault) -> bool {
    ARMED.load(Relaxed) == f as u8
}

/// A read of `/proc/self/mem` (pread), failing when `mem-read` is armed.
pub fn mem_read(fd: i32, buf: &mut [u8], addr: u64) -> sys::SysResult<usize> {
    if armed(Fault::MemRead) {
        return Err(sys::Errno(libc::EIO));
    }
    sys::pread(fd, buf, addr)
}

/// Panics when `dump-panic` or `dump-panic-fmt` is armed; sleeps 1.2 s
/// when `slow-dump` is.
pub fn dump_panic_point() {
    if armed(Fault::SlowDump) {
        let ts: [i64; 2] = [1, 200_000_000];
        // SAFETY: nanosleep reads one struct timespec; no remainder.
        let _ = unsafe { sys::sys(libc::SYS_nanosleep, sys::args!(ts.as_ptr(), 0)) };
    }
    if armed(Fault::DumpPanic) {
        panic!("injected fault: dump-panic");
    }
    if armed(Fault::DumpPanicFmt) {
        // Not a literal: std formats it into a `String` before the hook.
        panic!(
            "injected fault: {}",
            core::hint::black_box("dump-panic-fmt")
        );
    }
}

/// Panics when `dump-panic-late` is armed.
pub fn dump_panic_late_point() {
    if armed(Fault::DumpPanicLate) {
        panic!("injected fault: dump-panic-late");
    }
}
