//! The control block of a tree dump (see the design in the module above):
//! one memfd that the root creates and maps shared, and that every member
//! maps through `/proc/ROOT/fd/N`. A header of futex words (a phase every
//! member waits on, a count of parked members the root waits on) and one
//! slot per member.
//!
//! The experimental tree dump (`MIGRATE_CHILDREN=tree`, see `tree::dump`)
//! uses it.
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls). The futexes are shared
//! ones (no `FUTEX_PRIVATE_FLAG`): the waiters are other processes.
//!
//! # Safety
//!
//! The block is a shared mapping of `LEN` bytes, placed over a range the
//! caller reserved (in a dump, a piece of the dump's arena, so that it
//! stays out of the image as the arena does), that lives as long as its
//! [`Control`], which puts private anonymous memory back over the range
//! when it goes (the reservation stays whole); every field other processes write is an atomic, every slot
//! is written only by the member that claimed it (claims go through an
//! atomic counter) until it marks itself parked, and read by the root only
//! after that. A process that maps a block checks its magic and its size
//! first.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};

use crate::config::PATH_MAX;
use crate::sys::{self, Errno, SysResult, args, line::Line};

/// First word of a control block.
pub const MAGIC: u64 = 0x6d69_6772_7472_6565;
/// Most members (root included) one tree dump takes.
pub const MAX_MEMBERS: usize = 1024;
/// Longest failure line a member leaves in its slot.
pub const FAIL_LEN: usize = 600;

/// What a tree dump is doing (the header's `phase` word).
pub mod phase {
    /// Members are parking.
    pub const STOPPING: u32 = 0;
    /// Every member is parked: write in turn.
    pub const WRITE: u32 = 1;
    /// Done: every member leaves its handler.
    pub const RELEASE: u32 = 2;
    /// Failed: every member leaves its handler, nothing written stays.
    pub const ABORT: u32 = 3;
}

/// A member's progress (its slot's `state` word).
pub mod state {
    pub const EMPTY: u32 = 0;
    /// Claimed, its threads being stopped.
    pub const CLAIMED: u32 = 1;
    /// Every thread of it parked.
    pub const PARKED: u32 = 2;
    /// Could not park or write: see the slot's failure line.
    pub const FAILED: u32 = 3;
    /// Left its handler after `RELEASE` or `ABORT`.
    pub const LEFT: u32 = 4;
    /// Its image is written (not yet renamed into place).
    pub const WRITTEN: u32 = 5;
}

#[repr(C)]
pub struct Header {
    pub magic: AtomicU64,
    /// The root's PID.
    pub root: AtomicI32,
    /// Slots claimed so far.
    pub claimed: AtomicU32,
    /// Members that reached `PARKED` or `FAILED` (a futex word).
    pub settled: AtomicU32,
    /// See [`phase`] (a futex word).
    pub phase: AtomicU32,
    /// Members whose image is written or failed (a futex word).
    pub written: AtomicU32,
    /// The image path (the tree's one file); set before any member is
    /// asked.
    pub path_len: u32,
    pub path: [u8; PATH_MAX],
    /// The descriptor the leading process writes the tree image through
    /// (members reopen it through `/proc`); set before the first turn.
    pub writer_fd: AtomicI32,
    /// Whose turn it is to write: slot index + 1 (0: nobody's; a futex
    /// word).
    pub turn: AtomicU32,
    /// Where the member whose turn it is writes its section (absolute,
    /// page-aligned); that member leaves it where the next one starts.
    pub cursor: AtomicU64,
    /// The index entries of the members written so far, in pre-order,
    /// each member's own followed by its descendants' (appended by the
    /// member whose turn it is).
    pub index_len: AtomicU32,
    pub index: [dumpfmt::Member; MAX_MEMBERS],
}

#[repr(C)]
pub struct Slot {
    pub pid: AtomicI32,
    /// See [`state`] (a futex word).
    pub state: AtomicU32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub fail_len: u32,
    pub fail: [u8; FAIL_LEN],
}

/// Bytes of a control block: the header, then the slots.
pub const LEN: usize = slots_offset() + MAX_MEMBERS * core::mem::size_of::<Slot>();

const fn slots_offset() -> usize {
    let h = core::mem::size_of::<Header>();
    let a = core::mem::align_of::<Slot>();
    h.div_ceil(a) * a
}

/// A mapped control block; unmapped (and its fd closed) on drop.
pub struct Control {
    base: *mut u8,
    fd: i32,
}

impl Control {
    /// Creates a block (the root): a memfd of [`LEN`] bytes, mapped over
    /// `at` (page-aligned, [`LEN`] bytes the caller reserved and no longer uses).
    pub fn create(at: *mut u8) -> SysResult<Control> {
        // SAFETY: a NUL-terminated name; memfd_create makes a new file.
        let fd = unsafe {
            sys::sys(
                libc::SYS_memfd_create,
                args!(c"migrate-tree".as_ptr(), libc::MFD_CLOEXEC),
            )
        }? as i32;
        // SAFETY: sizing our own new memfd.
        if let Err(e) = unsafe { sys::sys(libc::SYS_ftruncate, args!(fd, LEN)) } {
            sys::close(fd);
            return Err(e);
        }
        let c = Control::map(fd, at)?;
        c.header().root.store(sys::getpid(), Release);
        c.header().magic.store(MAGIC, Release);
        Ok(c)
    }

    /// Maps the block the root `root` holds as its descriptor `fd` (a
    /// member) over `at` (as in [`Control::create`]), after checking its
    /// size and magic.
    pub fn open(root: i32, fd: i32, at: *mut u8) -> SysResult<Control> {
        let mut path = Line::<64>::new();
        path.str("/proc/")
            .dec(root as u64)
            .str("/fd/")
            .dec(fd as u64);
        let p = path.c_str().ok_or(Errno(libc::ENAMETOOLONG))?;
        let own = sys::open(p, libc::O_RDWR | libc::O_CLOEXEC, 0)?;
        match sys::fstat(own) {
            Ok(st) if st.st_size as usize == LEN => {}
            Ok(_) => {
                sys::close(own);
                return Err(Errno(libc::EINVAL));
            }
            Err(e) => {
                sys::close(own);
                return Err(e);
            }
        }
        let c = Control::map(own, at)?;
        let h = c.header();
        if h.magic.load(Acquire) != MAGIC || h.root.load(Acquire) != root {
            return Err(Errno(libc::EINVAL));
        }
        Ok(c)
    }

    /// Maps `fd` shared over `at`, taking `fd` over (closed on failure too).
    fn map(fd: i32, at: *mut u8) -> SysResult<Control> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_SHARED | libc::MAP_FIXED;
        // SAFETY: the caller reserved `at..at+LEN` for this and uses none
        // of it; MAP_FIXED replaces only that range.
        match unsafe { sys::sys(libc::SYS_mmap, args!(at, LEN, prot, flags, fd, 0)) } {
            Ok(a) => Ok(Control {
                base: a as *mut u8,
                fd,
            }),
            Err(e) => {
                sys::close(fd);
                Err(e)
            }
        }
    }

    /// The descriptor members open the block through.
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// The header, to fill in before any member is asked (the root only).
    #[allow(clippy::mut_from_ref)]
    pub fn header_mut(&self) -> &mut Header {
        // SAFETY: as in `header`; the root writes the plain fields before
        // it publishes the block to anyone.
        unsafe { &mut *self.base.cast::<Header>() }
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a `Header` (all atomics, valid
        // when zero) and lives as long as `self`.
        unsafe { &*self.base.cast::<Header>() }
    }

    /// Gives slot `i` its turn to write.
    pub fn give_turn(&self, i: usize) {
        self.header().turn.store(i as u32 + 1, Release);
        sys::futex_wake_all_shared(&self.header().turn);
    }

    /// Waits for slot `i`'s turn; false when the dump is no longer
    /// writing, the parent `parent` is gone or `deadline` passed.
    pub fn wait_turn(&self, i: usize, parent: i32, deadline: u64) -> bool {
        let h = self.header();
        loop {
            if h.phase.load(Acquire) != phase::WRITE {
                return false;
            }
            let t = h.turn.load(Acquire);
            if t == i as u32 + 1 {
                return true;
            }
            // SAFETY: getppid takes no arguments.
            let now_parent = unsafe { sys::syscall6(libc::SYS_getppid, [0; 6]) } as i32;
            if now_parent != parent || sys::monotonic_ns() >= deadline {
                return false;
            }
            sys::futex_wait_shared(&h.turn, t, 100_000_000);
        }
    }

    /// Appends index entries (only the member whose turn it is calls this).
    pub fn push_index(&self, entries: &[dumpfmt::Member]) -> bool {
        let h = self.header_mut();
        let at = h.index_len.load(Acquire) as usize;
        let Some(room) = h.index.get_mut(at..at + entries.len()) else {
            return false;
        };
        room.copy_from_slice(entries);
        h.index_len.store((at + entries.len()) as u32, Release);
        true
    }

    /// The index entries appended so far.
    pub fn index(&self) -> &[dumpfmt::Member] {
        let h = self.header();
        let n = (h.index_len.load(Acquire) as usize).min(MAX_MEMBERS);
        &h.index[..n]
    }

    /// Slot `i` (< [`MAX_MEMBERS`]).
    pub fn slot(&self, i: usize) -> Option<&Slot> {
        if i >= MAX_MEMBERS {
            return None;
        }
        // SAFETY: slot `i` lies inside the mapping (LEN counts MAX_MEMBERS
        // slots after the header), is aligned for `Slot`, and any bytes are
        // a valid `Slot`; see the module's note on who writes what.
        Some(unsafe { &*self.base.add(slots_offset()).cast::<Slot>().add(i) })
    }

    /// Claims a slot for the calling process (a member); returns its
    /// index and the slot.
    pub fn claim(&self) -> Option<(usize, &mut Slot)> {
        let i = self.header().claimed.fetch_add(1, AcqRel) as usize;
        let s = self.own_slot(i)?;
        s.pid.store(sys::getpid(), Release);
        s.state.store(state::CLAIMED, Release);
        Some((i, s))
    }

    /// Slot `i`, to write: only the member that claimed it may call this.
    #[allow(clippy::mut_from_ref)]
    pub fn own_slot(&self, i: usize) -> Option<&mut Slot> {
        self.slot(i)?;
        // SAFETY: as in `slot`; slot `i` was handed out once, to the
        // caller, and the root reads its plain fields only once its state
        // says they are complete.
        Some(unsafe { &mut *self.base.add(slots_offset()).cast::<Slot>().add(i) })
    }

    /// Marks `slot` settled as `st` (`PARKED` or `FAILED`) and wakes the root.
    pub fn settle(&self, slot: &Slot, st: u32) {
        slot.state.store(st, Release);
        self.header().settled.fetch_add(1, AcqRel);
        sys::futex_wake_all_shared(&self.header().settled);
    }

    /// Sets the phase and wakes every member waiting on it.
    pub fn set_phase(&self, p: u32) {
        self.header().phase.store(p, Release);
        sys::futex_wake_all_shared(&self.header().phase);
    }

    /// Waits until the phase is no longer `from`; returns the new one.
    pub fn wait_phase(&self, from: u32) -> u32 {
        loop {
            let p = self.header().phase.load(Acquire);
            if p != from {
                return p;
            }
            sys::futex_wait_shared(&self.header().phase, p, 0);
        }
    }

    /// Waits until `n` members have settled or `deadline` (monotonic ns)
    /// passes; returns how many had.
    pub fn wait_settled(&self, n: u32, deadline: u64) -> u32 {
        wait_count(&self.header().settled, n, deadline)
    }

    /// As [`Control::wait_settled`], for members done writing.
    pub fn wait_written(&self, n: u32, deadline: u64) -> u32 {
        wait_count(&self.header().written, n, deadline)
    }

    /// Marks `slot` written as `st` (`WRITTEN` or `FAILED`) and wakes the root.
    pub fn written(&self, slot: &Slot, st: u32) {
        slot.state.store(st, Release);
        self.header().written.fetch_add(1, AcqRel);
        sys::futex_wake_all_shared(&self.header().written);
    }

    /// As [`Control::wait_phase`], but gives up (returning `ABORT`) once
    /// process `root`, this process's parent, is gone or `deadline`
    /// (monotonic ns) passes: a member must not stay stopped for a root
    /// that was killed.
    ///
    /// Gone means this process is no longer `root`'s child: a killed
    /// parent stays a zombie that `kill(root, 0)` still finds until its own
    /// parent reaps it, but its children are handed to another at once.
    pub fn wait_phase_while(&self, from: u32, root: i32, deadline: u64) -> u32 {
        loop {
            let p = self.header().phase.load(Acquire);
            if p != from {
                return p;
            }
            // SAFETY: getppid takes no arguments.
            let parent = unsafe { sys::syscall6(libc::SYS_getppid, [0; 6]) } as i32;
            if parent != root || sys::monotonic_ns() >= deadline {
                return phase::ABORT;
            }
            sys::futex_wait_shared(&self.header().phase, p, 100_000_000);
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE;
        // SAFETY: nothing borrows the mapping once `self` goes (every
        // reference handed out borrows `self`); fresh memory replaces it in
        // the caller's reservation.
        let _ = unsafe { sys::sys(libc::SYS_mmap, args!(self.base, LEN, prot, flags, -1i64, 0)) };
        sys::close(self.fd);
    }
}

/// Waits until `*word >= n` or `deadline`; returns the last value seen.
fn wait_count(word: &AtomicU32, n: u32, deadline: u64) -> u32 {
    loop {
        let seen = word.load(Acquire);
        let now = sys::monotonic_ns();
        if seen >= n || now >= deadline {
            return seen;
        }
        sys::futex_wait_shared(word, seen, deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child maps the parent's block through /proc, claims a slot, parks,
    /// and leaves only once the parent releases it.
    #[test]
    fn a_child_parks_and_is_released_through_the_block() {
        let Ok(room) = sys::mmap_anon(LEN, libc::MAP_NORESERVE) else {
            panic!("cannot reserve room");
        };
        let Ok(c) = Control::create(room) else {
            panic!("cannot create a control block");
        };
        let root = sys::getpid();
        let fd = c.fd();
        // SAFETY: the child makes raw system calls only, then _exit(2)s.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let code = match Control::open(root, fd, room) {
                Ok(m) => match m.claim() {
                    Some((_, slot)) => {
                        slot.ppid = root;
                        m.settle(slot, state::PARKED);
                        let p = m.wait_phase(phase::STOPPING);
                        slot.state.store(state::LEFT, Release);
                        if p == phase::RELEASE { 0 } else { 3 }
                    }
                    None => 2,
                },
                Err(_) => 1,
            };
            // SAFETY: ends the forked child without running the parent's
            // atexit handlers or destructors.
            unsafe { libc::_exit(code) };
        }
        assert!(child > 0);
        let settled = c.wait_settled(1, sys::monotonic_ns() + 10_000_000_000);
        let slot = c.slot(0).expect("slot 0");
        let (pid, st, ppid) = (slot.pid.load(Acquire), slot.state.load(Acquire), slot.ppid);
        c.set_phase(phase::RELEASE);
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert_eq!(settled, 1);
        assert_eq!((pid, st, ppid), (child, state::PARKED, root));
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status:#x}"
        );
        assert_eq!(slot.state.load(Acquire), state::LEFT);
        // Someone else's descriptor, or a block of another root, is refused.
        drop(c);
        assert!(Control::open(root, 0, room).is_err());
        assert!(Control::open(1, fd, room).is_err());
    }
}
