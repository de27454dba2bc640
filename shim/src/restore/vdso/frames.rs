//! Where the dump caught each thread, read from its signal frame in the
//! image (see the parent module: a thread caught inside the old vDSO).
//!
//! Rules: before teardown, with the heap; the image's stack memory is
//! untrusted bytes, every read of it bounded and checked.

use std::os::unix::fs::FileExt;

use dumpfmt::ImageFile;

/// The image's memory at `addr` (zeros where no run holds it), or None
/// when it cannot be read.
fn read_memory(img: &ImageFile, addr: u64, buf: &mut [u8]) -> Option<()> {
    let runs = &img.image.runs;
    let end = addr.checked_add(buf.len() as u64)?;
    buf.fill(0);
    let first = runs.partition_point(|r| r.addr + r.pages * dumpfmt::PAGE_SIZE <= addr);
    for r in runs[first..].iter().take_while(|r| r.addr < end) {
        let (from, to) = (
            r.addr.max(addr),
            (r.addr + r.pages * dumpfmt::PAGE_SIZE).min(end),
        );
        let into = &mut buf[(from - addr) as usize..(to - addr) as usize];
        img.file
            .read_exact_at(into, img.base + r.file_offset + (from - r.addr))
            .ok()?;
    }
    Some(())
}

/// How far above a stack pointer its signal frame is looked for.
const REACH: u64 = 64 << 10;
/// How many signal frames, nested, are followed per thread.
const DEPTH: usize = 8;
// struct rt_sigframe: the return address, then the ucontext, whose
// sigcontext (at 40) holds rsp and rip as its 16th and 17th words.
const RSP_AT: u64 = 8 + 40 + 15 * 8;
const RIP_AT: u64 = RSP_AT + 8;

/// The first signal frame above `sp` on its stack (a word that is one of
/// the `restorers`, the frame's return address, followed by a frame whose
/// saved stack pointer lies above it): its (rip, rsp).
fn frame_above(img: &ImageFile, sp: u64, restorers: &[u64]) -> Option<(u64, u64)> {
    let stack = img
        .image
        .mappings
        .iter()
        .find(|m| m.start <= sp && sp < m.end)?;
    let len = (stack.end - sp).min(REACH) as usize & !7;
    let mut words = vec![0u8; len];
    read_memory(img, sp, &mut words)?;
    let word = |at: u64| {
        let i = usize::try_from(at).ok()?;
        Some(u64::from_le_bytes(words.get(i..i + 8)?.try_into().ok()?))
    };
    let frame = (0..len as u64).step_by(8).find(|&at| {
        word(at).is_some_and(|w| restorers.contains(&w))
            && word(at + RSP_AT).is_some_and(|s| s > sp + at)
    })?;
    Some((word(frame + RIP_AT)?, word(frame + RSP_AT)?))
}

/// A thread whose interrupted place (in its signal frame; see the
/// parent module) lies in `start..end`, or that of an older frame: a
/// thread the dump caught in a signal handler resumes, once the handler
/// returns, where the handler's own signal interrupted it.
pub(super) fn caught_inside(img: &ImageFile, start: u64, end: u64) -> Option<u32> {
    let image = &img.image;
    // The dump signal's frame returns through its restorer; an older one
    // through its own signal's (glibc's, for every handler it installs).
    let mut restorers: Vec<u64> = image
        .sigactions
        .iter()
        .map(|a| a.restorer)
        .filter(|&r| r != 0)
        .collect();
    restorers.sort_unstable();
    restorers.dedup();
    if restorers.is_empty() {
        return None;
    }
    image.threads.iter().find_map(|t| {
        let mut sp = t.context.rsp;
        for _ in 0..DEPTH {
            let (rip, rsp) = frame_above(img, sp, &restorers)?;
            if start <= rip && rip < end {
                return Some(t.tid);
            }
            sp = rsp;
        }
        None
    })
}
