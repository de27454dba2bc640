//! CPU baselines (`MIGRATE_CPU=x86-64-v3`) and the CPU side of a restore
//! on another machine.
//!
//! A process picks code for the CPU it starts on: glibc's string
//! functions (AVX-512, AVX2, ...), ld.so's lazy-binding trampoline
//! (`XSAVEC`), TSX-aware variants. An image of it only runs where those
//! choices still work. Started for a baseline, glibc is held inside the
//! level with `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,...` (which glibc
//! reads when the program starts: set by `migrate run --cpu`, or by this
//! module re-executing the program once with it), and the image records
//! the level, so a restore needs only what the level has
//! (`dumpfmt::Image::required_isa`). Code that dispatches on cpuid by
//! itself (OpenSSL, the JVM, numpy) is not held back: say so to users.
//!
//! The saved vector registers are another matter: every thread's signal
//! frame holds its xsave area in the dumping CPU's layout. A restore
//! checks, before teardown, that no thread has live state in a component
//! this CPU lacks ([`frames`]); [`kernel_frame`] learns the frame this
//! kernel writes, and [`fix_frame`] rewrites each thread's frame to it as
//! the thread resumes (after teardown: raw memory accesses only).

use dumpfmt::{ImageFile, Isa, Level, XsaveComponent};

use crate::restore::{Refusal, exit, refuse};
use crate::sys;

/// The level with index `i` (1-based, as `Settings::cpu_level` keeps it;
/// 0: none).
pub fn level_of(i: u8) -> Option<Level> {
    dumpfmt::levels()
        .get(usize::from(i).checked_sub(1)?)
        .copied()
}

/// `Settings::cpu_level` of the level called `name`.
pub fn level_index(name: &str) -> Option<u8> {
    dumpfmt::levels()
        .iter()
        .position(|l| l.name == name)
        .map(|i| i as u8 + 1)
}

/// This CPU's features, as an image records them.
pub fn here() -> Isa {
    Isa::of(&sys::cpu_features(), sys::cpu_ext())
}

/// Marks a process this module re-executed (a second refusal of the
/// tunables then fails instead of looping); its value is the program's
/// name (`comm`), which an exec of `/proc/self/exe` would turn into `exe`.
const REEXEC_MARK: &str = "MIGRATE_CPU_REEXEC";

/// At start-up of a program run for `level`: checks this CPU has the
/// level, and that glibc was started with the tunables that hold it there;
/// if not, runs the program again (same executable, argv and environment,
/// the tunables added). Returns an error line for status 64.
pub fn start(level: &Level) -> Result<(), String> {
    if let Some(name) = std::env::var_os(REEXEC_MARK)
        .and_then(|n| std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(&*n)).ok())
        .filter(|n| !n.as_bytes().is_empty())
    {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string (the kernel
        // takes its first 15 bytes).
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
    let missing = level.isa.missing_in(&here());
    if !missing.is_empty() {
        return Err(format!(
            "MIGRATE_CPU={}: this CPU lacks {}",
            level.name,
            missing.names().join(", ")
        ));
    }
    let now = std::env::var("GLIBC_TUNABLES").ok();
    let Some(tunables) = level.tunables(now.as_deref()) else {
        return Ok(());
    };
    if std::env::var_os(REEXEC_MARK).is_some() {
        return Err(format!(
            "MIGRATE_CPU={}: glibc did not take GLIBC_TUNABLES={tunables}",
            level.name
        ));
    }
    reexec(&tunables)
}

/// Replaces this process with the same program, `GLIBC_TUNABLES` set.
fn reexec(tunables: &str) -> Result<(), String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cmdline = std::fs::read("/proc/self/cmdline")
        .map_err(|e| format!("MIGRATE_CPU: cannot read /proc/self/cmdline: {e}"))?;
    // Every argument ends in a NUL; empty ones are arguments too.
    let args: Vec<CString> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .filter_map(|a| CString::new(a).ok())
        .collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "GLIBC_TUNABLES" && k != REEXEC_MARK)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.extend(CString::new(format!("GLIBC_TUNABLES={tunables}")).ok());
    let comm = std::fs::read("/proc/self/comm").unwrap_or_default();
    let mut mark = format!("{REEXEC_MARK}=").into_bytes();
    mark.extend_from_slice(comm.strip_suffix(b"\n").unwrap_or(&comm));
    env.extend(CString::new(mark).ok());
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(core::iter::once(core::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(core::iter::once(core::ptr::null()))
        .collect();
    // SAFETY: NUL-terminated strings in null-terminated arrays that live
    // across the call; execve returns only on failure.
    unsafe { libc::execve(c"/proc/self/exe".as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err(format!(
        "MIGRATE_CPU: cannot run the program again with GLIBC_TUNABLES: {}",
        std::io::Error::last_os_error()
    ))
}

/// This CPU has what the image needs: its baseline's features (or those
/// of the CPU it was dumped on that programs use).
pub fn check(img: &ImageFile) -> Result<(), Refusal> {
    let image = &img.image;
    let missing = image.required_isa().missing_in(&here());
    if missing.is_empty() {
        return Ok(());
    }
    let what = match &image.minor2.baseline {
        Some(b) => format!("what the image's CPU baseline {} needs", b.name),
        None => "features of the image's CPU that the program may use (start it with \
                 `migrate run --cpu LEVEL` to move it between CPUs)"
            .to_string(),
    };
    Err(refuse(
        exit::UNSUPPORTED,
        format!("this CPU lacks {what}: {}", missing.names().join(", ")),
    ))
}

/// The xsave header's offset in the area, and the software-reserved bytes
/// the kernel keeps in the legacy area's spare space (`_fpx_sw_bytes`).
const XSAVE_HEADER: u64 = 512;
const SW_BYTES: u64 = 464;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// State every restore can take: x87 and SSE live in the legacy area,
/// whatever the CPU; PKRU (never in its init state on Linux) only matters
/// with protection keys, which a CPU without PKRU has none of and which a
/// restored mapping does not carry; MPX's bounds registers mean nothing
/// since Linux 5.6 (no program can enable MPX), yet a CPU that has MPX
/// (QEMU's `max`) may save them as in use.
const LEGACY: u64 = 0b11 | 1 << 3 | 1 << 4 | 1 << 9;

/// Every thread's saved vector state fits this kernel's signal frames, as
/// [`fix_frame`] will rewrite them (the same [`plan`]): no thread has live
/// state (its frame's `xstate_bv`) in a component this kernel's frames do
/// not carry (absent from XCR0, or dynamic like AMX tile data, whose
/// permission a restore does not ask for again), nor one whose place here
/// lies beyond the room the dump's frame has. One refusal per thread that
/// does. (An image without frame addresses, before 1.2, needs every state
/// component its CPU had: `Image::required_isa`, checked by [`check`].)
pub fn frames(img: &ImageFile) -> Vec<Refusal> {
    let image = &img.image;
    let k = kernel_frame(img);
    let xcr0 = sys::cpu_features().xcr0;
    let mut out = Vec::new();
    for (t, &fp) in image.threads.iter().zip(image.minor2.fpstate.iter()) {
        if fp == 0 {
            continue;
        }
        let Some(b) = img.read_memory(fp, XSAVE_HEADER + 8) else {
            continue;
        };
        let word = |at: u64, n: usize| {
            let at = at as usize;
            b[at..at + n]
                .iter()
                .rev()
                .fold(0u64, |v, &x| v << 8 | u64::from(x))
        };
        if word(SW_BYTES, 4) as u32 != FP_XSTATE_MAGIC1 {
            continue;
        }
        let why = match plan(word(XSAVE_HEADER, 8), word(SW_BYTES + 16, 4) as u32, &k) {
            Ok(_) => None,
            Err(Unfit::Lacks(c)) if c & xcr0 == 0 => Some(format!(
                "was using CPU state this CPU lacks: {}",
                dumpfmt::xstate_names(c).join(", ")
            )),
            Err(Unfit::Lacks(c)) => Some(format!(
                "was using CPU state a restored process's signal frames leave out \
                 (AMX: its permission is not asked for again): {}",
                dumpfmt::xstate_names(c).join(", ")
            )),
            Err(Unfit::NoRoom(c)) => Some(format!(
                "has saved CPU state that does not fit this CPU's layout: {}",
                dumpfmt::xstate_names(c).join(", ")
            )),
        };
        if let Some(why) = why {
            out.push(refuse(exit::UNSUPPORTED, format!("thread {} {why}", t.tid)));
        }
        if let Some((at, lost)) = nested_loss(img, fp, &k) {
            out.push(refuse(
                exit::UNSUPPORTED,
                format!(
                    "thread {} was in a signal handler: the state it interrupted (saved at \
                     {at:#x}) would lose {} on this CPU or kernel",
                    t.tid,
                    dumpfmt::xstate_names(lost).join(", ")
                ),
            ));
        }
    }
    out
}

/// How far above the dump's frame older signal frames are looked for.
const NESTED_SCAN: u64 = 4 << 20;

/// A signal frame older than the dump's (the thread was running a signal
/// handler), above `fp` on the same stack, whose live state this kernel
/// would not take back as it is: its address and the components lost.
/// [`fix_frame`] rewrites only the dump's own frame; the kernel takes an
/// older frame larger than its own as x87/SSE only, silently.
fn nested_loss(img: &ImageFile, fp: u64, k: &KernelFrame) -> Option<(u64, u64)> {
    let maps = &img.image.mappings[..];
    let m = maps
        .get(maps.partition_point(|m| m.end <= fp))
        .filter(|m| m.start <= fp)?;
    let end = m.end.min(fp.saturating_add(NESTED_SCAN));
    let b = img.read_memory(fp, end - fp)?;
    let rd = |at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at.checked_add(n)?)?;
        Some(s.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x)))
    };
    let features = if k.size == 0 { 0b11 } else { k.features };
    for at in (64..b.len()).step_by(64) {
        if rd(at + SW_BYTES as usize, 4) != Some(u64::from(FP_XSTATE_MAGIC1)) {
            continue;
        }
        let (Some(size), Some(ext), Some(bv)) = (
            rd(at + SW_BYTES as usize + 16, 4),
            rd(at + SW_BYTES as usize + 4, 4),
            rd(at + XSAVE_HEADER as usize, 8),
        ) else {
            continue;
        };
        if !(576..=1 << 16).contains(&size)
            || ext < size + 4
            || rd(at + size as usize, 4) != Some(u64::from(FP_XSTATE_MAGIC2))
        {
            continue;
        }
        let live = bv & !LEGACY;
        let mut lost = live & !features;
        if size > u64::from(k.size) {
            lost |= live;
        }
        for c in 2..32 {
            let (from, to) = (k.image[c], k.here[c]);
            if live & (1 << c) != 0 && from.offset != 0 && from.offset != to.offset {
                lost |= 1 << c;
            }
        }
        if lost != 0 {
            return Some((fp + at as u64, lost));
        }
    }
    None
}

/// Why a frame cannot be rewritten: the live components concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Unfit {
    /// Not carried by this kernel's frames.
    Lacks(u64),
    /// Carried, but their place here lies beyond the frame's room, or
    /// their sizes differ, or the moves cannot be ordered.
    NoRoom(u64),
}

/// How [`fix_frame`] rewrites a frame: its new size, the components kept
/// live (`xstate_bv`), and the moves, in an order where none overwrites a
/// component still to move.
#[derive(Debug)]
pub struct Plan {
    pub new_size: u32,
    pub keep: u64,
    pub moves: [u8; 32],
    pub n_moves: usize,
}

const PKRU: u64 = 1 << 9;

/// The rewrite of a frame whose header says `bv` (live components) and
/// `old_size` (its `xstate_size`), for this kernel's frames `k`. Pure: the
/// same answer before teardown (from the image) and after (from the frame).
pub fn plan(bv: u64, old_size: u32, k: &KernelFrame) -> Result<Plan, Unfit> {
    // No xsave frames here: only the legacy area comes back.
    let features = if k.size == 0 { 0b11 } else { k.features };
    let lacking = bv & !features & !LEGACY;
    if lacking != 0 {
        return Err(Unfit::Lacks(lacking));
    }
    // Never larger than the room the dump's kernel made for the frame.
    let new_size = k.size.min(old_size);
    let mut keep = bv & features;
    let mut p = Plan {
        new_size,
        keep,
        moves: [0; 32],
        n_moves: 0,
    };
    if k.size == 0 {
        return Ok(p);
    }
    // (component, from, to, size) of each move.
    let mut pending = [(0u8, 0u64, 0u64, 0u64); 32];
    let mut n = 0;
    for c in 2..32 {
        if keep & (1 << c) == 0 {
            continue;
        }
        let (from, to) = (k.image[c], k.here[c]);
        // An image without a recorded layout is taken to match.
        let from_at = if from.offset == 0 {
            to.offset
        } else {
            from.offset
        };
        let (from_at, to_at, size) = (u64::from(from_at), u64::from(to.offset), u64::from(to.size));
        let fits = (from.offset == 0 || from.size == to.size)
            && to_at != 0
            && to_at + size <= u64::from(new_size)
            && from_at + size <= u64::from(old_size);
        if !fits {
            // PKRU goes to its init state, as on a CPU without it.
            if 1u64 << c == PKRU {
                keep &= !PKRU;
                continue;
            }
            return Err(Unfit::NoRoom(1 << c));
        }
        if from_at != to_at {
            pending[n] = (c as u8, from_at, to_at, size);
            n += 1;
        }
    }
    // Moves in place: repeatedly the first whose destination overlaps no
    // other pending move's source.
    let overlaps = |a: u64, b: u64, len_a: u64, len_b: u64| a < b + len_b && b < a + len_a;
    while n > 0 {
        let Some(i) = (0..n).find(|&i| {
            let (_, _, to, size) = pending[i];
            (0..n).all(|j| {
                let (_, from_j, _, size_j) = pending[j];
                j == i || !overlaps(to, from_j, size, size_j)
            })
        }) else {
            let stuck = pending[..n].iter().fold(0u64, |m, &(c, ..)| m | 1 << c);
            return Err(Unfit::NoRoom(stuck));
        };
        p.moves[p.n_moves] = pending[i].0;
        p.n_moves += 1;
        pending[i] = pending[n - 1];
        n -= 1;
    }
    p.keep = keep;
    Ok(p)
}

/// The xsave frame this kernel writes on this CPU, as the restored threads
/// must leave theirs (see [`fix_frame`]).
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct KernelFrame {
    /// `xstate_size` of the frames (0: no xsave frames; nothing to fix).
    pub size: u32,
    pub features: u64,
    /// This CPU's layout, then the dumping CPU's (component 0: unused).
    pub here: [XsaveComponent; 32],
    pub image: [XsaveComponent; 32],
}

static mut SEEN: [u8; 48] = [0; 48];

extern "C" fn capture(_: i32, _: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passed `uc` to this handler.
    let fp = unsafe { crate::dump::frame_fpstate(uc.cast()) };
    if fp != 0 {
        // SAFETY: the kernel's frame holds 512 bytes of legacy area; the
        // static is written by this handler alone, while the constructor
        // waits for the signal it raised.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (fp + SW_BYTES) as *const u8,
                (&raw mut SEEN).cast::<u8>(),
                48,
            )
        };
    }
}

/// Learns the frame this kernel writes (by taking a signal), with the
/// layouts the rewrite needs. Runs in the constructor, with libc.
pub fn kernel_frame(img: &ImageFile) -> KernelFrame {
    let mut k = KernelFrame::default();
    let sig = libc::SIGRTMAX();
    // SAFETY: a temporary handler for a signal nothing else uses yet in
    // this fresh process, raised synchronously on this thread, then the
    // old action put back.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        let mut old: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = capture as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigfillset(&mut sa.sa_mask);
        if crate::interpose::real_sigaction(sig, &sa, &mut old) != 0 {
            return k;
        }
        let mut set: libc::sigset_t = core::mem::zeroed();
        let mut was: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        crate::interpose::real_sigprocmask(libc::SIG_UNBLOCK, &set, &mut was);
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig);
        crate::interpose::real_sigprocmask(libc::SIG_SETMASK, &was, core::ptr::null_mut());
        crate::interpose::real_sigaction(sig, &old, core::ptr::null_mut());
    }
    // SAFETY: the handler has run (the signal was delivered on return from
    // tgkill); nothing writes the static any more.
    let seen = unsafe { SEEN };
    let u32_at = |i: usize| u32::from_le_bytes([seen[i], seen[i + 1], seen[i + 2], seen[i + 3]]);
    if u32_at(0) != FP_XSTATE_MAGIC1 {
        return k;
    }
    k.features = u64::from(u32_at(8)) | u64::from(u32_at(12)) << 32;
    k.size = u32_at(16);
    let mut here = [XsaveComponent::default(); 32];
    let n = sys::xsave_layout(sys::cpu_features().xcr0, &mut here);
    for c in &here[..n] {
        k.here[usize::from(c.component) & 31] = *c;
    }
    for c in img.image.minor2.xsave.iter() {
        k.image[usize::from(c.component) & 31] = *c;
    }
    k
}

/// Rewrites the xsave area of a restored thread's signal frame (`uc`'s)
/// to the layout this kernel expects, so that `rt_sigreturn` restores
/// every register: a frame larger than this kernel's is otherwise taken
/// as x87/SSE only, silently dropping the AVX state. Components this CPU
/// lacks were checked unused before teardown ([`frames`]). Returns false
/// when the frame cannot be rewritten (the caller fails the restore).
///
/// Runs after teardown on the thread's own stack: no libc, no panics.
///
/// # Safety
/// `uc` is null or the context of the calling thread's live signal frame,
/// which the kernel wrote (its xsave area as large as it says).
pub unsafe fn fix_frame(uc: *mut libc::ucontext_t, k: &KernelFrame) -> bool {
    // SAFETY: the caller's promise.
    let fp = unsafe { crate::dump::frame_fpstate(uc) };
    if fp == 0 || k.size == 0 {
        return true;
    }
    // SAFETY: the frame the kernel wrote holds the 512-byte legacy area,
    // whose spare bytes say how large the whole xsave area is (`old_size`,
    // at least 576 or the frame is refused); every access below lies
    // inside that size.
    let rd32 = |a: u64| unsafe { (a as *const u32).read_unaligned() };
    if rd32(fp + SW_BYTES) != FP_XSTATE_MAGIC1 {
        return true;
    }
    // SAFETY: as above.
    let old_features = unsafe { ((fp + SW_BYTES + 8) as *const u64).read_unaligned() };
    let old_size = rd32(fp + SW_BYTES + 16);
    if old_size < 576 {
        return false;
    }
    let bv_at = (fp + XSAVE_HEADER) as *mut u64;
    // SAFETY: as above.
    let bv = unsafe { bv_at.read_unaligned() };
    let Ok(p) = plan(bv, old_size, k) else {
        return false;
    };
    for &c in &p.moves[..p.n_moves] {
        let c = usize::from(c) & 31;
        let (from, to) = (k.image[c], k.here[c]);
        // SAFETY: both ranges lie inside the old frame (`plan` checked
        // them against old_size and new_size <= old_size), and the order
        // never overwrites a component still to move.
        unsafe {
            core::ptr::copy(
                (fp + u64::from(from.offset)) as *const u8,
                (fp + u64::from(to.offset)) as *mut u8,
                to.size as usize,
            )
        };
    }
    let dropped = bv & !p.keep;
    // SAFETY: the sw bytes, the header and the magic word at the new end
    // all lie inside the old frame (new_size <= old_size).
    unsafe {
        bv_at.write_unaligned(p.keep);
        ((fp + SW_BYTES + 4) as *mut u32).write_unaligned(p.new_size + 4);
        ((fp + SW_BYTES + 8) as *mut u64).write_unaligned(old_features & k.features & !dropped);
        ((fp + SW_BYTES + 16) as *mut u32).write_unaligned(p.new_size);
        ((fp + u64::from(p.new_size)) as *mut u32).write_unaligned(FP_XSTATE_MAGIC2);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC2_AT_OLD: usize = 2696;

    /// A frame as a 6.18 kernel writes it on an AVX-512 CPU (x87, SSE,
    /// AVX, AVX-512 and PKRU; 2696 bytes), with `bv` in its header.
    fn host_frame(bv: u64) -> Vec<u8> {
        let mut f = vec![0u8; 4096];
        let put = |f: &mut Vec<u8>, at: usize, b: &[u8]| f[at..at + b.len()].copy_from_slice(b);
        put(&mut f, 464, &FP_XSTATE_MAGIC1.to_le_bytes());
        put(&mut f, 468, &(MAGIC2_AT_OLD as u32 + 4).to_le_bytes());
        put(&mut f, 472, &0x2e7u64.to_le_bytes());
        put(&mut f, 480, &(MAGIC2_AT_OLD as u32).to_le_bytes());
        put(&mut f, 512, &bv.to_le_bytes());
        put(&mut f, MAGIC2_AT_OLD, &FP_XSTATE_MAGIC2.to_le_bytes());
        // ymm upper halves.
        for (i, b) in f[576..832].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    fn comp(component: u8, offset: u32, size: u32) -> XsaveComponent {
        XsaveComponent {
            component,
            offset,
            size,
        }
    }

    /// The frame a 6.1 kernel on an AVX2 CPU expects: x87, SSE and AVX.
    fn avx2_kernel() -> KernelFrame {
        let mut k = KernelFrame {
            size: 832,
            features: 0x7,
            ..KernelFrame::default()
        };
        k.here[2] = comp(2, 576, 256);
        k.image[2] = comp(2, 576, 256);
        k.image[5] = comp(5, 1088, 64);
        k.image[6] = comp(6, 1152, 512);
        k.image[7] = comp(7, 1664, 1024);
        k.image[9] = comp(9, 2688, 8);
        k
    }

    fn uc_for(frame: &mut [u8]) -> libc::ucontext_t {
        // SAFETY: an all-zero ucontext is valid; only `fpregs` is read.
        let mut uc: libc::ucontext_t = unsafe { core::mem::zeroed() };
        uc.uc_mcontext.fpregs = frame.as_mut_ptr().cast();
        uc
    }

    fn u32_at(f: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(f[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn a_larger_frame_is_cut_to_this_kernels_layout() {
        let mut f = host_frame(0x7 | 1 << 9);
        let mut uc = uc_for(&mut f);
        // SAFETY: `uc` points at a frame built like the kernel's.
        assert!(unsafe { fix_frame(&mut uc, &avx2_kernel()) });
        assert_eq!(u32_at(&f, 480), 832, "xstate_size");
        assert_eq!(u32_at(&f, 468), 836, "extended_size");
        assert_eq!(u32_at(&f, 472), 0x7, "xfeatures");
        assert_eq!(u32_at(&f, 512), 0x7, "xstate_bv keeps AVX, drops PKRU");
        assert_eq!(u32_at(&f, 832), FP_XSTATE_MAGIC2);
        assert!(f[576..832].iter().enumerate().all(|(i, &b)| b == i as u8));
    }

    #[test]
    fn live_state_this_cpu_lacks_is_not_dropped() {
        let mut f = host_frame(0x7 | 1 << 7);
        let before = f.clone();
        let mut uc = uc_for(&mut f);
        // SAFETY: `uc` points at a frame built like the kernel's.
        assert!(!unsafe { fix_frame(&mut uc, &avx2_kernel()) });
        assert_eq!(f, before, "nothing written");
    }

    #[test]
    fn a_frame_this_kernel_takes_is_left_alone() {
        let mut f = host_frame(0x7);
        let before = f.clone();
        let mut k = avx2_kernel();
        k.size = MAGIC2_AT_OLD as u32;
        k.features = 0x2e7;
        k.here = k.image;
        let mut uc = uc_for(&mut f);
        // SAFETY: `uc` points at a frame built like the kernel's.
        assert!(unsafe { fix_frame(&mut uc, &k) });
        assert_eq!(f, before);
        // A frame without xsave data (magic1 missing) is never touched.
        let mut g = vec![0u8; 1024];
        let mut uc = uc_for(&mut g);
        // SAFETY: `uc` points at a frame built like the kernel's.
        assert!(unsafe { fix_frame(&mut uc, &avx2_kernel()) });
        assert!(g.iter().all(|&b| b == 0));
    }

    /// A frame from a CPU with MPX and PKRU, restored where neither
    /// exists and the kernel's frames are larger: cut to what is here, not
    /// grown (no room), PKRU's bit dropped.
    #[test]
    fn a_smaller_frame_loses_what_this_cpu_lacks() {
        let mut f = host_frame(0x7 | 1 << 9);
        f[472..480].copy_from_slice(&0x21fu64.to_le_bytes());
        let mut k = avx2_kernel();
        k.size = 4000;
        k.features = 0x600e7;
        let mut uc = uc_for(&mut f);
        // SAFETY: `uc` points at a frame built like the kernel's.
        assert!(unsafe { fix_frame(&mut uc, &k) });
        assert_eq!(u32_at(&f, 480), MAGIC2_AT_OLD as u32, "not grown");
        assert_eq!(u32_at(&f, 472), 0x7);
        assert_eq!(u32_at(&f, 512), 0x7);
        assert_eq!(u32_at(&f, MAGIC2_AT_OLD), FP_XSTATE_MAGIC2);
    }

    /// A frame from a CPU that keeps AVX-512 right after AVX (AMD's
    /// layout: opmask at 832, ZMM_Hi256 at 896, Hi16_ZMM at 1408),
    /// restored where they lie higher (Intel's): every component moves up,
    /// over the next one's old place, and all arrive intact.
    #[test]
    fn components_moving_up_do_not_overwrite_each_other() {
        let amd = [(5u8, 832u32, 64u32), (6, 896, 512), (7, 1408, 1024)];
        let intel = [(5u8, 1088u32, 64u32), (6, 1152, 512), (7, 1664, 1024)];
        let old_size = 2816u32;
        let mut f = vec![0u8; 4096];
        f[464..468].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        f[468..472].copy_from_slice(&(old_size + 4).to_le_bytes());
        f[472..480].copy_from_slice(&0xe7u64.to_le_bytes());
        f[480..484].copy_from_slice(&old_size.to_le_bytes());
        f[512..520].copy_from_slice(&0xe7u64.to_le_bytes());
        for &(c, off, size) in &amd {
            for b in &mut f[off as usize..(off + size) as usize] {
                *b = c;
            }
        }
        let mut k = KernelFrame {
            size: 2696,
            features: 0xe7,
            ..KernelFrame::default()
        };
        k.here[2] = comp(2, 576, 256);
        k.image[2] = comp(2, 576, 256);
        for (&(c, a, s), &(_, i, _)) in amd.iter().zip(&intel) {
            k.image[usize::from(c)] = comp(c, a, s);
            k.here[usize::from(c)] = comp(c, i, s);
        }
        let mut uc = uc_for(&mut f);
        // SAFETY: `uc` points at a frame built like the kernel's.
        assert!(unsafe { fix_frame(&mut uc, &k) });
        for &(c, off, size) in &intel {
            let at = &f[off as usize..(off + size) as usize];
            assert!(at.iter().all(|&b| b == c), "component {c} damaged");
        }
        assert_eq!(u32_at(&f, 480), 2696);
    }

    /// PKRU whose place here lies beyond the frame's room goes to its
    /// init state (as where there is no PKRU), not the whole restore.
    #[test]
    fn pkru_beyond_the_room_is_dropped() {
        let mut k = avx2_kernel();
        k.size = 2696;
        k.features = 0x207;
        k.here[9] = comp(9, 2688, 8);
        k.image = [XsaveComponent::default(); 32];
        k.image[2] = comp(2, 576, 256);
        k.image[9] = comp(9, 2432, 8);
        let p = plan(0x207, 2440, &k).unwrap();
        assert_eq!((p.keep, p.new_size, p.n_moves), (0x7, 2440, 0));
        // Anything else that does not fit is refused, named.
        k.features = 0xe7;
        k.here[7] = comp(7, 1664, 1024);
        k.image[7] = comp(7, 1408, 1024);
        assert_eq!(plan(0x87, 2440, &k).unwrap_err(), Unfit::NoRoom(1 << 7));
    }

    /// Live state in a component this kernel's frames leave out (AMX tile
    /// data without the process's permission) is refused, not dropped.
    #[test]
    fn state_the_kernel_does_not_carry_is_refused() {
        let mut k = avx2_kernel();
        k.size = 2816;
        k.features = 0x200e7;
        assert_eq!(plan(0x600e3, 11008, &k).unwrap_err(), Unfit::Lacks(1 << 18));
        // Without xsave frames, only the legacy area comes back.
        k.size = 0;
        assert_eq!(plan(0x7, 832, &k).unwrap_err(), Unfit::Lacks(1 << 2));
        assert!(plan(0x3, 832, &k).is_ok());
    }

    #[test]
    fn levels_by_index() {
        assert_eq!(level_index("x86-64-v3"), Some(3));
        assert_eq!(level_of(3).unwrap().name, "x86-64-v3");
        assert!(level_of(0).is_none() && level_of(5).is_none());
    }
}
