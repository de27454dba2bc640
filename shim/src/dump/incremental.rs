//! Incremental dumps (`MIGRATE_INCREMENTAL=N`): a dump after a dump
//! writes only the pages written since, and names where the others are.
//!
//! Dirty tracking is userfaultfd write-protection in asynchronous mode
//! (`UFFD_FEATURE_WP_ASYNC`, kernel 6.7+; `UFFD_USER_MODE_ONLY`, so no
//! privilege): each dump registers the private readable mappings it saved
//! and write-protects them, every other thread parked. A later write just
//! clears the page's protection (no fault is delivered), and the next dump
//! asks `PAGEMAP_SCAN` for the pages written, protecting them again in the
//! same call (`PM_SCAN_WP_MATCHING`). `PM_SCAN_CHECK_WPASYNC` makes the
//! scan fail on a mapping that is not registered (made, moved or replaced
//! since): such a mapping is saved whole. So is a range that is not inside
//! one the last dump tracked (a mapping grown since). A page freed since
//! (`MADV_DONTNEED`) reads as written, so it is never inherited.
//! `UFFD_FEATURE_WP_UNPOPULATED` is not asked for: with it, a page freed by
//! `MADV_DONTNEED` would keep its protection and look unwritten.
//!
//! What the next dump needs of the last image (its path and identity, its
//! ancestors, where each of its pages is stored, and the ranges tracked)
//! is kept in a mapping of the shim's own, outside every image. A forked
//! child and a restored process start afresh: their first dump is full.
//!
//! A dump is full (a new chain) when: tracking is not available (one
//! `info` line says why, once), this is the process's first dump, the
//! image would replace its parent (same path), the parent changed on disk,
//! the chain reached `MIGRATE_INCREMENTAL` incremental images, or
//! `MIGRATE_KEEP` rotates images (rotation would delete ancestors that
//! kept images need: every image is full then, one `info` line says so).
//!
//! # Rules
//!
//! Signal-handler code, run only by a dump's leader (every other thread
//! parked): no heap, no locks, no libc, no panics; raw system calls only.

use core::sync::atomic::Ordering::Acquire;
use std::borrow::Cow;

use dumpfmt::{Ancestor, InheritedRun, PAGE_SIZE, PageRun};

use crate::config::{Global, LogLevel, PATH_MAX, SETTINGS};
use crate::dump::Fail;
use crate::dump::arena::{Arena, ArenaVec};
use crate::dump::pages::{PageScan, Select};
use crate::dump::writer::ImageWriter;
use crate::sys::line::Line;
use crate::sys::{self, Errno, args};

const UFFD_USER_MODE_ONLY: u64 = 1;
const UFFD_API: u64 = 0xaa;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
/// `_IOWR(0xaa, 0x3f, struct uffdio_api)` (24 bytes).
const UFFDIO_API: u64 = 0xc018_aa3f;
/// `_IOWR(0xaa, 0x00, struct uffdio_register)` (32 bytes).
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
const UFFDIO_REGISTER_MODE_WP: u64 = 2;
/// `_IOWR('f', 16, struct pm_scan_arg)` (96 bytes).
const PAGEMAP_SCAN: u64 = 0xc060_6610;
const PM_SCAN_WP_MATCHING: u64 = 1;
const PM_SCAN_CHECK_WPASYNC: u64 = 2;
const PAGE_IS_WRITTEN: u64 = 2;
/// The shim's descriptors sit at or above this number, out of the app's way.
const FD_FLOOR: u64 = 1000;
/// Written ranges asked for per `PAGEMAP_SCAN` call.
const REGIONS: usize = 4096;

#[repr(C)]
struct ScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// An ancestor of the last image, as the next dump names it.
#[repr(C)]
struct AncestorRec {
    file_len: u64,
    meta_crc: u64,
    path_len: u64,
    path: [u8; PATH_MAX],
}

/// Where pages of the last image are: `depth` 0 in the last image itself,
/// `k` in its k-th ancestor.
#[repr(C)]
#[derive(Clone, Copy)]
struct RunRec {
    addr: u64,
    pages: u64,
    depth: u64,
    file_offset: u64,
}

/// What the shim keeps of the last image between dumps: in `mem`, its
/// ancestors, then its run map, then the ranges tracked since it.
#[derive(Clone, Copy)]
struct Chain {
    mem: u64,
    mem_len: u64,
    ancestors: usize,
    runs: usize,
    tracked: usize,
    file_len: u64,
    meta_crc: u32,
}

impl Chain {
    const NONE: Chain = Chain {
        mem: 0,
        mem_len: 0,
        ancestors: 0,
        runs: 0,
        tracked: 0,
        file_len: 0,
        meta_crc: 0,
    };

    fn ancestors(&self) -> &[AncestorRec] {
        if self.mem == 0 {
            return &[];
        }
        // SAFETY: `mem` is the shim's own mapping, laid out by `build`.
        unsafe { core::slice::from_raw_parts(self.mem as *const AncestorRec, self.ancestors) }
    }

    fn runs(&self) -> &[RunRec] {
        if self.mem == 0 {
            return &[];
        }
        let at = self.mem + (self.ancestors * size_of::<AncestorRec>()) as u64;
        // SAFETY: as above; the run map follows the ancestors.
        unsafe { core::slice::from_raw_parts(at as *const RunRec, self.runs) }
    }

    fn tracked(&self) -> &[(u64, u64)] {
        if self.mem == 0 {
            return &[];
        }
        let at = self.mem
            + (self.ancestors * size_of::<AncestorRec>() + self.runs * size_of::<RunRec>()) as u64;
        // SAFETY: as above; the tracked ranges follow the run map.
        unsafe { core::slice::from_raw_parts(at as *const (u64, u64), self.tracked) }
    }

    fn free(&mut self) {
        if self.mem != 0 {
            // SAFETY: the shim's own mapping, referred to by nothing else.
            let _ = unsafe { sys::munmap(self.mem, self.mem_len) };
        }
        *self = Chain::NONE;
    }
}

struct State {
    /// The process this state is of (0: none yet).
    pid: i32,
    uffd: i32,
    /// Why tracking is not available (empty: it is, or not tried yet).
    unavailable: &'static str,
    said_keep: bool,
    /// The last image, when the next dump may build on it.
    path: Line<PATH_MAX>,
    last: Chain,
    /// The chain of the image being written, until it is complete.
    pending: Chain,
    pending_path: Line<PATH_MAX>,
}

static STATE: Global<State> = Global::new(State {
    pid: 0,
    uffd: -1,
    unavailable: "",
    said_keep: false,
    path: Line::new(),
    last: Chain::NONE,
    pending: Chain::NONE,
    pending_path: Line::new(),
});

fn state() -> &'static mut State {
    // SAFETY: only a dump's leader (one thread, see `World::leader`) or a
    // restored process's last thread (the others waiting) calls in here.
    unsafe { STATE.get() }
}

/// The tracking descriptor (-1: none), kept out of the image.
pub fn fd() -> i32 {
    let s = state();
    if s.pid == sys::getpid() { s.uffd } else { -1 }
}

/// In a restored process: the old process's state means nothing here
/// (its mapping and descriptor are not part of the image).
pub fn restored() {
    let s = state();
    s.pid = 0;
    s.uffd = -1;
    s.unavailable = "";
    s.path.clear();
    s.last = Chain::NONE;
    s.pending = Chain::NONE;
}

fn info(parts: &[&[u8]]) {
    // SAFETY: read by the dump's leader only.
    if unsafe { SETTINGS.get() }.log >= LogLevel::Info {
        sys::line::emit_parts(parts);
    }
}

fn ioctl(fd: i32, req: u64, arg: *mut u8) -> Result<u64, Errno> {
    // SAFETY: `arg` points at the struct `req` names, of its size.
    unsafe { sys::sys(libc::SYS_ioctl, args!(fd, req, arg)) }
}

/// Makes the tracking descriptor: Err says why tracking is unavailable.
fn open_uffd() -> Result<i32, &'static str> {
    if crate::fault::armed(crate::fault::Fault::NoUffd) {
        return Err("userfaultfd: EPERM (MIGRATE_FAULT=no-uffd)");
    }
    let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64 | UFFD_USER_MODE_ONLY;
    // SAFETY: userfaultfd takes flags only.
    let fd = match unsafe { sys::sys(libc::SYS_userfaultfd, args!(flags)) } {
        Ok(fd) => fd as i32,
        Err(Errno(libc::ENOSYS)) => return Err("userfaultfd is not in this kernel"),
        Err(Errno(libc::EPERM)) => return Err("userfaultfd: EPERM (refused here)"),
        Err(_) => return Err("userfaultfd failed"),
    };
    let fd = match sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, FD_FLOOR) {
        Ok(high) => {
            sys::close(fd);
            high as i32
        }
        Err(_) => fd,
    };
    let mut api = [UFFD_API, UFFD_FEATURE_WP_ASYNC, 0];
    if ioctl(fd, UFFDIO_API, api.as_mut_ptr().cast()).is_err() {
        sys::close(fd);
        return Err("this kernel has no asynchronous userfaultfd write-protection (6.7+)");
    }
    Ok(fd)
}

/// One dump's part in a chain.
pub struct Plan<'a> {
    /// Tracking works: mappings saved are registered and protected.
    track: bool,
    /// This image builds on the last: pages not written since are named.
    on: bool,
    regions: &'a mut [u64],
    pub inherited: ArenaVec<'a, InheritedRun>,
    pub ancestors: ArenaVec<'a, Ancestor<'a>>,
    tracked: ArenaVec<'a, (u64, u64)>,
}

/// The directory part of `path` (up to its last `/`).
fn dir(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// `path` as an image in `target`'s directory names it.
fn relative<'a>(path: &'a [u8], target: &[u8]) -> &'a str {
    let d = dir(path);
    let shown = if !d.is_empty() && d == dir(target) {
        &path[d.len() + 1..]
    } else {
        path
    };
    core::str::from_utf8(shown).unwrap_or("")
}

/// Whether the file at `path` is still the image of `len` bytes with
/// metadata checksum `crc`.
fn same_image(path: &[u8], len: u64, crc: u32, arena: &Arena) -> bool {
    let mut c = Line::<{ PATH_MAX + 1 }>::new();
    c.bytes(path);
    let Some(cpath) = c.c_str() else {
        return false;
    };
    let Ok(fd) = sys::open(
        cpath,
        libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        0,
    ) else {
        return false;
    };
    let Some(buf) = arena.bytes(PAGE_SIZE as usize) else {
        sys::close(fd);
        return false;
    };
    let got = sys::pread(fd, buf, 0);
    let size = sys::fstat(fd).map(|st| st.st_size as u64);
    sys::close(fd);
    match (got, size) {
        (Ok(n), Ok(size)) if size == len => dumpfmt::Header::decode(&buf[..n], len)
            .is_ok_and(|h| h.meta_crc == crc && h.file_len == len),
        _ => false,
    }
}

/// Decides how this dump stands to the last one. `target` is the image's
/// path; a fidelity check or a tree dump takes no part.
pub fn begin<'a>(
    arena: &'a Arena,
    target: &[u8],
    check: bool,
    in_tree: bool,
    lines: usize,
) -> Result<Plan<'a>, Fail> {
    let no_mem = || Fail::new("the dump arena is too small");
    // SAFETY: read by the dump's leader only.
    let max = unsafe { SETTINGS.get() }.incremental as usize;
    let wanted = max > 0 && !check && !in_tree;
    let mut plan = Plan {
        track: false,
        on: false,
        regions: arena
            .words(if wanted { REGIONS * 3 } else { 0 })
            .ok_or_else(no_mem)?,
        inherited: arena.vec(0).ok_or_else(no_mem)?,
        ancestors: arena.vec(0).ok_or_else(no_mem)?,
        tracked: arena.vec(0).ok_or_else(no_mem)?,
    };
    if !wanted {
        return Ok(plan);
    }
    let s = state();
    let pid = sys::getpid();
    if s.pid != pid {
        // First dump, or a forked child's copy of its parent's state: the
        // descriptor is the parent's, its registrations are gone.
        if s.pid != 0 {
            if s.uffd >= 0 {
                sys::close(s.uffd);
            }
            s.last.free();
            s.pending.free();
        }
        s.pid = pid;
        s.uffd = -1;
        s.unavailable = "";
        s.path.clear();
    }
    if super::periodic::KEEP.load(Acquire) > 0 {
        if !s.said_keep {
            s.said_keep = true;
            info(&[
                b"migrate: MIGRATE_INCREMENTAL: dumps are full, MIGRATE_KEEP rotation would delete images that kept images need",
            ]);
        }
        return Ok(plan);
    }
    if s.uffd < 0 && s.unavailable.is_empty() {
        match open_uffd() {
            Ok(fd) => s.uffd = fd,
            Err(why) => {
                s.unavailable = why;
                info(&[
                    b"migrate: incremental dumps unavailable, dumps are full: ",
                    why.as_bytes(),
                ]);
            }
        }
    }
    if s.uffd < 0 {
        return Ok(plan);
    }
    plan.track = true;
    // A line of /proc/self/maps is saved in at most four parts.
    plan.tracked = arena.vec(lines * 4 + 4).ok_or_else(no_mem)?;
    let last = s.last;
    let usable = last.mem != 0
        && !s.path.is_empty()
        && s.path.as_bytes() != target
        && last.ancestors < max
        && same_image(s.path.as_bytes(), last.file_len, last.meta_crc, arena)
        && s.last.ancestors().iter().all(|a| {
            let path = &a.path[..a.path_len as usize];
            same_image(path, a.file_len, a.meta_crc as u32, arena)
        });
    if !usable {
        return Ok(plan);
    }
    plan.on = true;
    let cap = arena.remaining() / 4 / size_of::<InheritedRun>();
    plan.inherited = arena.vec(cap).ok_or_else(no_mem)?;
    plan.ancestors = arena.vec(last.ancestors + 1).ok_or_else(no_mem)?;
    let _ = plan.ancestors.push(Ancestor {
        path: Cow::Borrowed(relative(s.path.as_bytes(), target)),
        file_len: last.file_len,
        meta_crc: last.meta_crc,
    });
    for a in s.last.ancestors() {
        let _ = plan.ancestors.push(Ancestor {
            path: Cow::Borrowed(relative(&a.path[..a.path_len as usize], target)),
            file_len: a.file_len,
            meta_crc: a.meta_crc as u32,
        });
    }
    Ok(plan)
}

impl Plan<'_> {
    /// Whether this dump tracks written pages (and must therefore write
    /// them in this process: see `dump::snapshot`).
    pub fn tracks(&self) -> bool {
        self.track
    }

    /// Saves `start..end` of one mapping: only what was written since the
    /// last image where tracking vouches for the rest, else everything
    /// (as [`PageScan::dump`]); then tracks it for the next dump.
    #[allow(clippy::too_many_arguments)]
    pub fn dump(
        &mut self,
        scan: &mut PageScan<'_>,
        start: u64,
        end: u64,
        readable: bool,
        select: Select,
        runs: &mut ArenaVec<'_, PageRun>,
        out: &mut ImageWriter,
    ) -> Result<(), Fail> {
        let trackable =
            self.track && readable && matches!(select, Select::Touched | Select::Private);
        if !trackable {
            return scan.dump(start, end, readable, select, runs, out);
        }
        let s = state();
        if self.on && covered(s.last.tracked(), start, end) {
            match self.since_last(scan, start, end, readable, select, runs, out) {
                Ok(true) => return self.track_range(start, end),
                Ok(false) => {}
                Err(f) => return Err(f),
            }
        }
        scan.dump(start, end, readable, select, runs, out)?;
        let mut reg = [start, end - start, UFFDIO_REGISTER_MODE_WP, 0];
        // EINVAL (a kind of memory it does not take), EBUSY (the app's own
        // userfaultfd): not tracked, saved whole each time.
        if ioctl(s.uffd, UFFDIO_REGISTER, reg.as_mut_ptr().cast()).is_ok()
            && self.protect(scan.pagemap_fd, start, end).is_ok()
        {
            return self.track_range(start, end);
        }
        Ok(())
    }

    fn track_range(&mut self, start: u64, end: u64) -> Result<(), Fail> {
        self.tracked
            .push((start, end))
            .map_err(|_| Fail::new("too many tracked ranges for the dump arena"))
    }

    /// One `PAGEMAP_SCAN` (an ioctl of `/proc/self/pagemap`, `pagemap`)
    /// from `start`: the written ranges found are in `regions` (start, end,
    /// categories), write-protected again.
    fn scan_written(&mut self, pagemap: i32, start: u64, end: u64) -> Result<(usize, u64), Errno> {
        let mut arg = ScanArg {
            size: size_of::<ScanArg>() as u64,
            flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
            start,
            end,
            walk_end: 0,
            vec: self.regions.as_mut_ptr() as u64,
            vec_len: (self.regions.len() / 3) as u64,
            max_pages: 0,
            category_inverted: 0,
            category_mask: PAGE_IS_WRITTEN,
            category_anyof_mask: 0,
            return_mask: PAGE_IS_WRITTEN,
        };
        let n = ioctl(pagemap, PAGEMAP_SCAN, (&mut arg as *mut ScanArg).cast())?;
        Ok((n as usize, arg.walk_end))
    }

    fn protect(&mut self, pagemap: i32, start: u64, end: u64) -> Result<(), Errno> {
        let mut at = start;
        while at < end {
            let (_, walk_end) = self.scan_written(pagemap, at, end)?;
            if walk_end <= at {
                return Err(Errno(libc::EIO));
            }
            at = walk_end;
        }
        Ok(())
    }

    /// The incremental path: false when tracking cannot vouch for the
    /// range after all (not registered), nothing saved then.
    #[allow(clippy::too_many_arguments)]
    fn since_last(
        &mut self,
        scan: &mut PageScan<'_>,
        start: u64,
        end: u64,
        readable: bool,
        select: Select,
        runs: &mut ArenaVec<'_, PageRun>,
        out: &mut ImageWriter,
    ) -> Result<bool, Fail> {
        let mut at = start;
        let mut clean_from = start;
        while at < end {
            let (n, walk_end) = match self.scan_written(scan.pagemap_fd, at, end) {
                Ok(r) => r,
                Err(Errno(libc::EPERM)) if at == start => return Ok(false),
                Err(e) => {
                    return Err(Fail::new("PAGEMAP_SCAN failed at ").hex(at).errno(e));
                }
            };
            for i in 0..n.min(self.regions.len() / 3) {
                let (ws, we) = (self.regions[3 * i], self.regions[3 * i + 1]);
                self.inherit(clean_from, ws)?;
                scan.dump(ws, we, readable, select, runs, out)?;
                clean_from = we;
            }
            if walk_end <= at {
                return Err(Fail::new("PAGEMAP_SCAN made no progress at ").hex(at));
            }
            at = walk_end;
        }
        self.inherit(clean_from, end)?;
        Ok(true)
    }

    /// Names where the last image keeps the pages of `start..end`, which
    /// were not written since.
    fn inherit(&mut self, start: u64, end: u64) -> Result<(), Fail> {
        if start >= end {
            return Ok(());
        }
        let map = state().last.runs();
        let first = map.partition_point(|r| r.addr + r.pages * PAGE_SIZE <= start);
        for r in map[first..].iter().take_while(|r| r.addr < end) {
            let lo = r.addr.max(start);
            let hi = (r.addr + r.pages * PAGE_SIZE).min(end);
            let run = InheritedRun {
                ancestor: r.depth as u32 + 1,
                addr: lo,
                pages: (hi - lo) / PAGE_SIZE,
                file_offset: r.file_offset + (lo - r.addr),
            };
            self.inherited
                .push(run)
                .map_err(|_| Fail::new("too many inherited runs for the dump arena"))?;
        }
        Ok(())
    }

    /// The image is written (`file_len`, `meta_crc`) at `path`: keeps what
    /// the next dump needs, in a new mapping, until [`commit`] or [`abort`].
    pub fn finish(&self, path: &[u8], own: &[PageRun], file_len: u64, meta_crc: u32) {
        if !self.track {
            return;
        }
        let s = state();
        s.pending.free();
        let ancestors = self.ancestors.len();
        let runs = own.len() + self.inherited.len();
        let tracked = self.tracked.len();
        let len = ancestors * size_of::<AncestorRec>() + runs * size_of::<RunRec>() + tracked * 16;
        let len = (len as u64).div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let Ok(mem) = sys::mmap_anon(len as usize, libc::MAP_NORESERVE) else {
            return;
        };
        let c = Chain {
            mem: mem as u64,
            mem_len: len,
            ancestors,
            runs,
            tracked,
            file_len,
            meta_crc,
        };
        // SAFETY: the fresh mapping is `len` bytes, large enough for the
        // three arrays, and ours alone; each slice covers its own part.
        let (recs, map, ranges) = unsafe {
            let recs = core::slice::from_raw_parts_mut(mem.cast::<AncestorRec>(), ancestors);
            let at = mem.add(ancestors * size_of::<AncestorRec>());
            let map = core::slice::from_raw_parts_mut(at.cast::<RunRec>(), runs);
            let at = at.add(runs * size_of::<RunRec>());
            let ranges = core::slice::from_raw_parts_mut(at.cast::<(u64, u64)>(), tracked);
            (recs, map, ranges)
        };
        // Ancestors by absolute path: the last image's own first.
        let last = s.last.ancestors();
        for (i, rec) in recs.iter_mut().enumerate() {
            let (p, a) = (&mut rec.path, &self.ancestors.as_slice()[i]);
            let abs: &[u8] = if i == 0 {
                s.path.as_bytes()
            } else {
                last.get(i - 1)
                    .map_or(&[], |r| &r.path[..r.path_len as usize])
            };
            p[..abs.len()].copy_from_slice(abs);
            rec.path_len = abs.len() as u64;
            rec.file_len = a.file_len;
            rec.meta_crc = u64::from(a.meta_crc);
        }
        // The run map: own runs (depth 0) and inherited ones, merged by address.
        let (mut i, mut j) = (0, 0);
        let inh = self.inherited.as_slice();
        for slot in map.iter_mut() {
            let take_own = j >= inh.len() || (i < own.len() && own[i].addr < inh[j].addr);
            *slot = if take_own {
                let r = own[i];
                i += 1;
                RunRec {
                    addr: r.addr,
                    pages: r.pages,
                    depth: 0,
                    file_offset: r.file_offset,
                }
            } else {
                let r = inh[j];
                j += 1;
                RunRec {
                    addr: r.addr,
                    pages: r.pages,
                    depth: u64::from(r.ancestor),
                    file_offset: r.file_offset,
                }
            };
        }
        ranges.copy_from_slice(self.tracked.as_slice());
        s.pending = c;
        s.pending_path.clear();
        s.pending_path.bytes(path);
    }
}

/// Whether `start..end` lies inside one of `tracked` (sorted, apart).
fn covered(tracked: &[(u64, u64)], start: u64, end: u64) -> bool {
    tracked
        .get(tracked.partition_point(|&(_, e)| e <= start))
        .is_some_and(|&(s, e)| s <= start && end <= e)
}

/// The shim's own mapping that holds the chain (0, 0 when none): not part
/// of any image.
pub fn own_memory() -> (u64, u64) {
    let s = state();
    if s.pid != sys::getpid() || s.last.mem == 0 {
        return (0, 0);
    }
    (s.last.mem, s.last.mem + s.last.mem_len)
}

/// The image `finish` described is in place: the next dump builds on it.
pub fn commit() {
    let s = state();
    if s.pid != sys::getpid() {
        return;
    }
    s.last.free();
    s.last = s.pending;
    s.pending = Chain::NONE;
    s.path.clear();
    if s.last.mem != 0 {
        s.path.bytes(s.pending_path.as_bytes());
    }
}

/// The dump failed: pages it protected again are in no image, so the
/// next dump is full.
pub fn abort() {
    let s = state();
    if s.pid != sys::getpid() {
        return;
    }
    s.pending.free();
    s.last.free();
    s.path.clear();
}
