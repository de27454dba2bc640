//! The kernel's mappings (`[vvar]`, `[vvar_vclock]`, `[vdso]`) on restore,
//! on the same kernel and on another one (the vDSO proxy).
//!
//! Rules of this module:
//! - Everything here runs before teardown, in the constructor, with libc
//!   and the heap; it decides, checks and prepares, and what can fail
//!   fails here with one line. After teardown the restorer only executes
//!   the system calls [`ops`] appended to the plan (mremap, mmap, pread,
//!   mprotect): no libc, no code of this module.
//! - The image's copy of its vDSO (format 1.2: page data of the `[vdso]`
//!   mapping) is untrusted bytes: parsed by [`crate::sys::vdso`], which
//!   checks every offset, and checked again here against the mapping.
//!
//! Same kernel: the image's vDSO bytes equal this kernel's, and the kernel
//! mappings have the same names and sizes. The fresh process's mappings
//! are moved (`mremap`) to the image's addresses, as before. An image
//! without its vDSO bytes (format 1.0 and 1.1) is judged by names and
//! sizes alone, as those versions were (a kernel whose vDSO has the same
//! size but other code passes: the limit of those images). So is an image
//! written without them (no run in its `[vdso]`; the shim's dump always
//! writes them, as the vDSO is never all zeros).
//!
//! Another kernel: glibc holds pointers to the old vDSO's functions, and
//! the old code reads the old kernel's `[vvar]` layout, so the old code
//! must never run. This kernel's mappings stay as they are, moved
//! together to a free range when they would collide with the image's.
//! At the image's `[vdso]` address the restore maps an anonymous copy of
//! the old vDSO (its ELF headers, symbols and unwind tables stay readable
//! for whoever reads them) in which each exported function starts with
//! an absolute jump to this kernel's function of the same name (`movabs
//! r11, target; jmp r11`: r11 is a scratch register in the x86-64 ABI,
//! never an argument). A function this kernel lacks becomes its system
//! call (`mov eax, nr; syscall; ret`: the vDSO functions return what the
//! system call would, `-errno` included, and take their arguments in the
//! registers the system call does), `getrandom` a stub that answers
//! glibc's parameter query with `-ENOSYS` (so it stops using the vDSO for
//! it) and otherwise makes the system call with the first three
//! arguments, which is the kernel's own fallback. Anything else (only
//! `__vdso_sgx_enter_enclave` exists: it enters an SGX enclave, which no
//! image holds) becomes `ud2`. The old `[vvar]` addresses stay unmapped,
//! and the auxv's `AT_SYSINFO_EHDR` names this kernel's vDSO.
//!
//! A thread the dump caught inside the old vDSO's code (it reads the
//! clock there for a few dozen nanoseconds at a time) would resume in the
//! copy past the jump and fault on the missing `[vvar]`: the restore
//! refuses such an image before teardown ([`frames::caught_inside`]; dump again).
//! The interrupted place is in the kernel's signal frame on the thread's
//! stack, above the shim's handler: found as the first word, upwards from
//! where the thread parked, that is a signal's restorer (the frame's
//! return address) and followed by a frame whose saved stack pointer lies
//! above it. A thread caught in a signal handler of its own resumes,
//! when the handler returns, where that signal interrupted it: the frames
//! are followed (from each saved stack pointer up) to the eighth.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use dumpfmt::{Backing, Image, ImageFile};

use super::plan::{Arg, Plan};
use super::{FreshMap, Refusal, exit, refuse};
use crate::sys::vdso::functions;

mod frames;
pub mod patch;

use frames::caught_inside;
use patch::{Entry, Patched, patch};

/// The names of the kernel's mappings.
pub fn is_kernel(name: &str) -> bool {
    matches!(name, "[vdso]" | "[vvar]" | "[vvar_vclock]")
}

/// What the restore does with the kernel's mappings.
pub enum Kernel {
    /// The same kernel: (fresh address, image address, size) moves.
    Same(Vec<(u64, u64, u64)>),
    /// Another kernel: see the module's documentation.
    Proxy(Proxy),
}

pub struct Proxy {
    /// (fresh address, final address, size) of this kernel's mappings.
    pub moves: Vec<(u64, u64, u64)>,
    /// Where this kernel's `[vdso]` ends up.
    pub new_vdso: u64,
    /// The image's `[vdso]`: address, length, protection.
    pub at: u64,
    pub len: u64,
    pub prot: u8,
    /// The old vDSO with its entry points patched.
    pub bytes: Vec<u8>,
    /// How many entry points jump, make their system call, trap.
    pub counts: (usize, usize, usize),
    /// The patched copy, in a memfd the restorer reads it from.
    pub memfd: Option<File>,
}

impl Kernel {
    /// The moves of this kernel's mappings (to the image's addresses on
    /// the same kernel, aside or nowhere on another).
    pub fn moves(&self) -> &[(u64, u64, u64)] {
        match self {
            Kernel::Same(m) => m,
            Kernel::Proxy(p) => &p.moves,
        }
    }

    /// Where this kernel's mappings end up, when they are not where the
    /// image's were (so that nothing else is placed there).
    pub fn reserved(&self) -> Option<(u64, u64)> {
        let Kernel::Proxy(p) = self else { return None };
        let start = p.moves.iter().map(|m| m.1).min()?;
        let end = p.moves.iter().map(|m| m.1 + m.2).max()?;
        Some((start, end))
    }
}

/// The largest `[vdso]` an image may have: x86-64 vDSOs are two or three
/// pages; this leaves room for growth and keeps the symbol table's
/// reading (quadratic in the worst case) short.
const MAX_VDSO: u64 = 256 << 10;

/// The image's `[vdso]` mapping and its bytes.
type ImageVdso<'a> = (&'a dumpfmt::Mapping<'static>, Vec<u8>);

/// The image's own vDSO bytes (pages no run covers are zero), or None
/// for an image that does not carry them (older than format 1.2, or
/// written without them: no run in its `[vdso]`).
fn image_vdso(img: &ImageFile) -> Result<Option<ImageVdso<'_>>, Refusal> {
    if img.header.minor < 2 {
        return Ok(None);
    }
    let image = &img.image;
    let Some(m) = image
        .mappings
        .iter()
        .find(|m| &*m.name == "[vdso]" && m.backing == Backing::Kernel)
    else {
        return Ok(None);
    };
    // Read into a buffer of its size: bounded first, as the size is the
    // image's word (a vDSO has a few pages; one of terabytes aborted the
    // constructor when the buffer could not be allocated).
    let len = m.end - m.start;
    if len > MAX_VDSO {
        return Err(refuse(
            exit::CORRUPT,
            format!(
                "the image's [vdso] at {:#x} has {len} bytes, more than any vDSO ({MAX_VDSO})",
                m.start
            ),
        ));
    }
    let mut bytes = vec![0u8; len as usize];
    let mine = |r: &&dumpfmt::PageRun| r.addr >= m.start && r.addr < m.end;
    if !image.runs.iter().any(|r| mine(&r)) {
        return Ok(None);
    }
    for r in image.runs.iter() {
        if mine(&r) {
            let off = (r.addr - m.start) as usize;
            let len = (r.pages * dumpfmt::PAGE_SIZE) as usize;
            let into = bytes.get_mut(off..off + len).ok_or_else(|| {
                refuse(exit::CORRUPT, "the image's vDSO pages overrun its mapping")
            })?;
            img.file
                .read_exact_at(into, img.base + r.file_offset)
                .map_err(|e| refuse(exit::CORRUPT, format!("cannot read the image's vDSO: {e}")))?;
        }
    }
    Ok(Some((m, bytes)))
}

/// This process's own vDSO: its address and bytes.
fn own_vdso(fresh: &[FreshMap]) -> Result<(u64, Vec<u8>), Refusal> {
    let m = fresh
        .iter()
        .find(|m| m.name == "[vdso]")
        .ok_or_else(|| refuse(exit::UNSUPPORTED, "this process has no vDSO"))?;
    // SAFETY: the kernel's [vdso] mapping is readable, stays mapped while
    // this process runs, and nothing writes it.
    let b =
        unsafe { core::slice::from_raw_parts(m.start as *const u8, (m.end - m.start) as usize) };
    Ok((m.start, b.to_vec()))
}

/// Decides how the kernel's mappings come back: same kernel or proxy.
pub(super) fn decide(img: &ImageFile, fresh: &[FreshMap]) -> Result<Kernel, Refusal> {
    let image = &img.image;
    let theirs: Vec<_> = image
        .mappings
        .iter()
        .filter(|m| m.backing == Backing::Kernel)
        .collect();
    let ours: Vec<_> = fresh.iter().filter(|m| is_kernel(&m.name)).collect();
    let same_layout = theirs.len() == ours.len()
        && theirs.iter().all(|t| {
            ours.iter()
                .any(|o| o.name == *t.name && o.end - o.start == t.end - t.start)
        });
    let old = image_vdso(img)?;
    let Some((m, old_bytes)) = old else {
        // An image from before 1.2: names and sizes only.
        return pairs(&theirs, &ours, same_layout);
    };
    let (new_at, new_bytes) = own_vdso(fresh)?;
    if same_layout && old_bytes == new_bytes {
        return pairs(&theirs, &ours, true);
    }
    let cannot = |why: String| {
        refuse(
            exit::UNSUPPORTED,
            format!("the image comes from another kernel, and its vDSO cannot be proxied: {why}"),
        )
    };
    let old_syms = functions(&old_bytes).map_err(|e| cannot(format!("the image's: {e}")))?;
    let new_syms = functions(&new_bytes).map_err(|e| cannot(format!("this kernel's: {e}")))?;
    // This kernel's mappings move together, keeping their distances.
    let lo = ours.iter().map(|m| m.start).min().unwrap_or(new_at);
    let hi = ours.iter().map(|m| m.end).max().unwrap_or(new_at);
    let base = if collides(image, lo, hi) {
        super::find_gap(image, fresh, hi - lo)
            .ok_or_else(|| cannot("no free range for this kernel's vDSO".into()))?
    } else {
        lo
    };
    let moves = ours
        .iter()
        .map(|m| (m.start, base + (m.start - lo), m.end - m.start))
        .collect();
    let new_vdso = base + (new_at - lo);
    let Patched { bytes, entries } =
        patch(&old_bytes, &old_syms, &new_syms, new_vdso).map_err(cannot)?;
    let count = |f: fn(&Entry) -> bool| entries.iter().filter(|(_, e)| f(e)).count();
    let counts = (
        count(|e| matches!(e, Entry::Jump(_))),
        count(|e| matches!(e, Entry::Syscall(_) | Entry::Getrandom)),
        count(|e| matches!(e, Entry::Trap)),
    );
    let old_at = m.start;
    if let Some(tid) = caught_inside(img, old_at, m.end) {
        return Err(cannot(format!(
            "the dump caught thread {tid} inside it (at another instant it would not be: dump again)"
        )));
    }
    Ok(Kernel::Proxy(Proxy {
        moves,
        new_vdso,
        at: old_at,
        len: m.end - m.start,
        prot: m.prot,
        bytes,
        counts,
        memfd: None,
    }))
}

/// The same kernel's moves, or the refusal older images get.
fn pairs(
    theirs: &[&dumpfmt::Mapping<'_>],
    ours: &[&FreshMap],
    same: bool,
) -> Result<Kernel, Refusal> {
    let layout = |v: Vec<(&str, u64)>| {
        v.iter()
            .map(|(n, s)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !same {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "the kernel's vDSO differs from the image's (image: {}; here: {}), and an image \
                 from before format 1.2 does not carry its vDSO: restore on a host with the same kernel",
                layout(theirs.iter().map(|m| (&*m.name, m.end - m.start)).collect()),
                layout(
                    ours.iter()
                        .map(|m| (m.name.as_str(), m.end - m.start))
                        .collect()
                ),
            ),
        ));
    }
    Ok(Kernel::Same(
        theirs
            .iter()
            .filter_map(|t| {
                let o = ours
                    .iter()
                    .find(|o| o.name == *t.name && o.end - o.start == t.end - t.start)?;
                Some((o.start, t.start, t.end - t.start))
            })
            .collect(),
    ))
}

/// Whether `lo..hi` comes within a margin of the image's mappings or of
/// the room its heap may grow into.
fn collides(image: &Image<'_>, lo: u64, hi: u64) -> bool {
    const MARGIN: u64 = 1 << 20;
    let heap = (
        image.mm.start_brk,
        image.mm.brk.max(image.mm.start_brk) + (64 << 20),
    );
    image
        .mappings
        .iter()
        .map(|m| (m.start, m.end))
        .chain([heap])
        .any(|(s, e)| s < hi + MARGIN && lo < e + MARGIN)
}

/// Puts the patched copy into a memfd (numbered from `base` up) for the
/// restorer to read.
pub(super) fn prepare(kernel: &mut Kernel, base: i32) -> Result<(), Refusal> {
    let Kernel::Proxy(p) = kernel else {
        return Ok(());
    };
    let fail = |e: std::io::Error| {
        refuse(
            exit::UNSUPPORTED,
            format!("cannot prepare the vDSO proxy: {e}"),
        )
    };
    // SAFETY: a valid name; the descriptor returned is ours.
    let fd = unsafe { libc::memfd_create(c"migrate-vdso".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = File::from(super::fds::lift(fd, base)?);
    file.write_all(&p.bytes).map_err(fail)?;
    p.memfd = Some(file);
    Ok(())
}

/// Appends what the image's kernel mapping `m` needs after this kernel's
/// were moved: nothing on the same kernel; on another, the proxy at the
/// old `[vdso]` (the old `[vvar]` ones stay unmapped).
pub(super) fn map_ops(plan: &mut Plan, kernel: &Kernel, m: &dumpfmt::Mapping<'_>) {
    let Kernel::Proxy(p) = kernel else { return };
    if m.start != p.at {
        return;
    }
    let v = Arg::V;
    let fd = p.memfd.as_ref().expect("prepared").as_raw_fd() as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    plan.call(
        libc::SYS_mmap,
        &[v(p.at), v(p.len), v(rw), v(flags), v(u64::MAX), v(0)],
        v(p.at),
        "restore: cannot map the vDSO proxy",
    );
    plan.call(
        libc::SYS_pread64,
        &[v(fd), v(p.at), v(p.len), v(0)],
        v(p.len),
        "restore: cannot fill the vDSO proxy",
    );
    plan.call(
        libc::SYS_mprotect,
        &[v(p.at), v(p.len), v(u64::from(p.prot))],
        v(0),
        "restore: cannot protect the vDSO proxy",
    );
}

/// The auxv to restore: the image's, with `AT_SYSINFO_EHDR` naming this
/// kernel's vDSO when it is proxied.
pub(super) fn auxv(image: &Image<'_>, kernel: &Kernel) -> Vec<u64> {
    let mut auxv = image.auxv.to_vec();
    if let Kernel::Proxy(p) = kernel {
        for pair in auxv.chunks_exact_mut(2) {
            if pair[0] == libc::AT_SYSINFO_EHDR {
                pair[1] = p.new_vdso;
            }
        }
    }
    auxv
}
