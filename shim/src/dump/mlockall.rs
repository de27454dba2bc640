//! What `mlockall` left for mappings to come (`MCL_FUTURE`, with or
//! without `MCL_ONFAULT`; see `dumpfmt::procattrs::ProcessAttrs`).
//! Runs in the signal handler, with the other threads stopped: the
//! `dump` module's rules hold (raw system calls, no heap, no panics).
//!
//! The kernel shows the flag nowhere (`VmLck` counts locked bytes, the
//! mappings' `lo` is per mapping), and a library cannot see every call
//! (a raw `syscall`, a fork child, which loses it, an exec). So the dump
//! asks the kernel by making one mapping of its own ([`future`]): one
//! page, read-only and private. A new mapping under `MCL_FUTURE` is
//! locked, which adds its page to `VmLck`; without `MCL_ONFAULT` it is
//! also filled at once (the zero page), which `mincore` shows. The page
//! is unmapped again; nothing else of the process changes.
//!
//! (`MCL_CURRENT` is no lasting state: the mappings it locked carry `lo`
//! in the per-mapping state, `dump::procattrs::mappings`.)

use dumpfmt::procattrs::{MCL_FUTURE, MCL_ONFAULT};

use crate::dump::Fail;
use crate::sys::{self, args};

const PAGE: usize = 4096;

/// `VmLck:` of `/proc/self/status`, in kB.
fn locked_kb() -> Result<u64, Fail> {
    sys::procfields::read_line_field(b"/proc/self/status\0", b"VmLck:", 10)
        .ok_or_else(|| Fail::new("cannot read VmLck in /proc/self/status"))
}

/// 0, `MCL_FUTURE` or `MCL_FUTURE | MCL_ONFAULT`, as the kernel applies
/// it to a new mapping now.
pub fn future() -> Result<u8, Fail> {
    let before = locked_kb()?;
    // SAFETY: a new private mapping at an address the kernel picks
    // replaces nothing; it is unmapped below.
    let page = unsafe {
        sys::sys(
            libc::SYS_mmap,
            args!(
                0,
                PAGE,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1i64,
                0
            ),
        )
    };
    let page = match page {
        Ok(p) => p,
        // Only a locked mapping over RLIMIT_MEMLOCK fails so.
        Err(e) if e.0 == libc::EAGAIN => {
            return Err(Fail::new(
                "mlockall(MCL_FUTURE) is on and RLIMIT_MEMLOCK leaves no room for the dump's own memory",
            ));
        }
        Err(e) => return Err(Fail::new("cannot map a page to read mlockall's flags").errno(e)),
    };
    let mut resident = [0u8; 1];
    // SAFETY: mincore writes one byte for the one page.
    let filled = unsafe { sys::sys(libc::SYS_mincore, args!(page, PAGE, resident.as_mut_ptr())) };
    let after = locked_kb();
    // SAFETY: the page is this function's own, used by nothing else.
    let _ = unsafe { sys::munmap(page, PAGE as u64) };
    let after = after?;
    filled.map_err(|e| Fail::new("cannot read a page's residency (mincore)").errno(e))?;
    Ok(if after <= before {
        0
    } else if resident[0] & 1 != 0 {
        MCL_FUTURE
    } else {
        MCL_FUTURE | MCL_ONFAULT
    })
}
