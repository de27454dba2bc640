//! Descriptors the library opens for a moment (`read_file`,
//! `for_each_dir_entry`), tracked so that a child forked meanwhile can
//! close the copies it inherited.
//!
//! A thread of the program that is inside `fork` when the dump starts
//! copies the descriptor table before it can park: the child then holds
//! the parent's `/proc/<parent>/...` descriptor, which its own dump would
//! (rightly) refuse as another process's procfs file. The kernel copies
//! the descriptor table before the memory, so the slot is claimed, with
//! the link the descriptor will have, *before* the `open`: a child that
//! inherited the descriptor always finds the claim. A claim without its
//! number yet (the fork fell between `open` and the number's store) is
//! matched by scanning the child's descriptors for that exact link.
//!
//! The memory is copied a while after the descriptors (page tables of a
//! large process take milliseconds): a slot freed in between would be
//! free in the child, which still has the descriptor. So while a dump
//! stops the threads (a fork may be in flight until every thread is
//! parked) releases are deferred ([`defer`]): a closed descriptor's slot
//! keeps its link, marked closed, until the dump ends, and a child scans
//! for it.
//!
//! Same rules as the rest of `sys`: no heap, no locks, no panics.

use super::line::Line;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Release};

/// The fd half of a claim whose `open` has not returned yet.
const PENDING: u64 = 0xffff_ffff;
/// The fd half of a deferred release: closed, the link kept.
const CLOSED: u64 = 0xffff_fffe;
/// Most claims at once (threads reading files at the same moment, and
/// the deferred ones of a dump).
const SLOTS: usize = 64;
/// Releases are deferred (see the module's notes).
static DEFER: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Most descriptors a pending claim's scan closes.
const SCAN_MAX: usize = 16;

/// (pid << 32 | fd), 0 when free.
static KEY: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// FNV-1a of the link the descriptor has (`/proc/<pid>/...`).
static LINK: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// A claimed slot (or none: all were taken, the fork race goes untracked).
pub struct Claim(Option<usize>);

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The link a descriptor of `path` (NUL-terminated) will read as:
/// `/proc/self/` and `/proc/thread-self/` spelled out.
fn link_of(path: &[u8], out: &mut Line<320>) {
    let path = path.strip_suffix(b"\0").unwrap_or(path);
    let pid = super::getpid() as u64;
    if let Some(rest) = path.strip_prefix(b"/proc/self/") {
        out.str("/proc/").dec(pid).str("/").bytes(rest);
    } else if let Some(rest) = path.strip_prefix(b"/proc/thread-self/") {
        let tid = super::gettid() as u64;
        out.str("/proc/")
            .dec(pid)
            .str("/task/")
            .dec(tid)
            .str("/")
            .bytes(rest);
    } else if path == b"/proc/self" {
        out.str("/proc/").dec(pid);
    } else {
        out.bytes(path);
    }
}

/// Claims a slot for a descriptor of `path` about to be opened.
pub fn claim(path: &[u8]) -> Claim {
    let mut link = Line::<320>::new();
    link_of(path, &mut link);
    let pid = u64::from(super::getpid() as u32) << 32;
    let key = pid | PENDING;
    let hash = fnv(link.as_bytes());
    // A deferred slot of the same link is taken again (a dump lists
    // /proc/self/task many times while threads park).
    let again = KEY.iter().zip(LINK.iter()).position(|(k, l)| {
        l.load(Acquire) == hash
            && k.compare_exchange(pid | CLOSED, key, AcqRel, Acquire)
                .is_ok()
    });
    if again.is_some() {
        return Claim(again);
    }
    let slot = KEY
        .iter()
        .position(|s| s.compare_exchange(0, key, AcqRel, Acquire).is_ok());
    if let Some(l) = slot.and_then(|i| LINK.get(i)) {
        l.store(hash, Release);
    }
    Claim(slot)
}

/// Defers releases (`true`, as a dump starts) or ends that, freeing the
/// deferred slots of this process (`false`, once every thread is parked
/// or the dump is over: no fork is in flight any more).
pub fn defer(on: bool) {
    DEFER.store(on, Release);
    if on {
        return;
    }
    let pid = u64::from(super::getpid() as u32) << 32;
    for (k, l) in KEY.iter().zip(LINK.iter()) {
        // Owned first (as a claim would), so no other thread's claim of
        // this slot can meet a half-cleared one.
        if k.compare_exchange(pid | CLOSED, pid | PENDING, AcqRel, Acquire)
            .is_ok()
        {
            l.store(0, Release);
            k.store(0, Release);
        }
    }
}

impl Claim {
    /// The `open` returned `fd`.
    pub fn opened(&self, fd: i32) {
        if let Some(s) = self.0.and_then(|i| KEY.get(i)) {
            s.store(
                (u64::from(super::getpid() as u32) << 32) | u64::from(fd as u32),
                Release,
            );
        }
    }

    /// The descriptor is closed (or the `open` failed): frees the slot,
    /// or marks it closed while releases are deferred.
    pub fn release(self) {
        if let Some((l, k)) = self.0.and_then(|i| Some((LINK.get(i)?, KEY.get(i)?))) {
            if DEFER.load(Acquire) {
                k.store((u64::from(super::getpid() as u32) << 32) | CLOSED, Release);
                return;
            }
            l.store(0, Release);
            k.store(0, Release);
        }
    }
}

/// Whether descriptor `fd` of this process reads as the link hashed `want`.
fn names(fd: u64, want: u64) -> bool {
    let mut path = Line::<48>::new();
    path.str("/proc/self/fd/").dec(fd);
    let mut link = [0u8; 320];
    let Some(p) = path.c_str() else { return false };
    match super::readlink(p, &mut link) {
        Ok(n) if n < link.len() => fnv(&link[..n]) == want,
        _ => false,
    }
}

/// In a child forked while its parent's library had a file open for a
/// moment: closes the copies it inherited (only descriptors that read as
/// the very link the parent opened: the number may have been reused).
pub fn close_inherited() {
    let me = super::getpid();
    for (key, link) in KEY.iter().zip(LINK.iter()) {
        let v = key.load(Acquire);
        let want = link.load(Acquire);
        let (pid, fd) = ((v >> 32) as i32, v & 0xffff_ffff);
        if v == 0 || pid == me || key.compare_exchange(v, 0, AcqRel, Acquire).is_err() {
            continue;
        }
        link.store(0, Release);
        // Claimed before the open: a zero link means the parent had not
        // got as far as opening when the memory was copied.
        if want == 0 {
            continue;
        }
        if fd != PENDING && fd != CLOSED {
            if names(fd, want) {
                super::close(fd as i32);
            }
            continue;
        }
        // The number was not stored yet, or the parent had closed it
        // before the memory was copied: look for the link itself.
        let mut found = [0i32; SCAN_MAX];
        let mut n = 0;
        let _ = super::for_each_dir_entry(b"/proc/self/fd\0", |name| {
            if let Some(fd) = super::parse_dec(name)
                && n < SCAN_MAX
                && names(fd, want)
            {
                found[n] = fd as i32;
                n += 1;
            }
        });
        for &fd in &found[..n] {
            super::close(fd);
        }
    }
}
