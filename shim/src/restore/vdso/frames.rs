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
            .read_exact_at(into, r.file_offset + (from - r.addr))
            .ok()?;
    }
    Some(())
}

/// A thread whose interrupted place (in its signal frame; see the
/// parent module) lies in `start..end`.
pub(super) fn caught_inside(img: &ImageFile, start: u64, end: u64) -> Option<u32> {
    /// How far above its parked stack pointer a thread's frame is looked for.
    const REACH: u64 = 64 << 10;
    // struct rt_sigframe: the return address, then the ucontext, whose
    // sigcontext (at 40) holds rsp and rip as its 16th and 17th words.
    const RSP_AT: u64 = 8 + 40 + 15 * 8;
    const RIP_AT: u64 = RSP_AT + 8;
    let image = &img.image;
    let restorer = image
        .sigactions
        .iter()
        .find(|a| a.signal == image.settings.signal)?
        .restorer;
    if restorer == 0 {
        return None;
    }
    image.threads.iter().find_map(|t| {
        let sp = t.context.rsp;
        let stack = image
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
            word(at) == Some(restorer) && word(at + RSP_AT).is_some_and(|s| s > sp + at)
        })?;
        let rip = word(frame + RIP_AT)?;
        (start <= rip && rip < end).then_some(t.tid)
    })
}
