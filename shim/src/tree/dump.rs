//! The tree dump (`MIGRATE_CHILDREN=tree`): a process and its
//! descendants, stopped together and dumped as one snapshot into one tree
//! image (format 1.3, `dumpfmt::TreeFile`), which `crate::restore::tree`
//! brings back, pipes between them included. A zombie child is recorded by
//! its parent and a stopped one takes part and stops again ([`members`]);
//! what members share is recorded by `crate::tree::shared`.
//!
//! A member with children of its own leads them as the root leads its
//! own (a control block of its own, which it names after its image): it
//! reports parked only once they are, lets them write only once its own
//! parent lets it, reports written only once they have, and releases them
//! only once its parent released it and its image is in place.
//!
//! The root, once its own threads are parked, checks that every child can
//! take part ([`participant`], and that it runs the same program),
//! creates the [control block](crate::tree::control) and sends each child
//! the dump signal with a *tree request* (`SI_QUEUE`, the block's fd
//! number in `si_value`). A child's handler leads a dump of its own: it
//! parks its threads, claims a slot, leads its own children the same way
//! (a control block of its own), reports `PARKED` once they are, and
//! waits. Once every child is parked (else the dump fails, naming the one
//! that did not stop), the root writes its own section at 4096 in its
//! image file, then gives each child its turn: the child reopens the file
//! through `/proc/PARENT/fd/N`, writes its section at the cursor, gives
//! its own children their turns, appends its index entry and theirs to
//! the parent's block and moves the cursor. The root then writes the index
//! and the header, and renames the file into place; only then does it
//! release the children. Any failure before that aborts every one: no
//! image of this dump stays.
//!
//! # Rules
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no libc, no panics; raw system calls, the arena for memory).

use core::sync::atomic::{AtomicI32, Ordering::*};

use crate::config::{PATH_MAX, Settings};
use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::dump::writer::ImageWriter;
use crate::sys::{self, args, line::Line};
use crate::tree::children;
use crate::tree::control::{Control, MAX_MEMBERS, Slot, phase, state};
use crate::tree::members;
use crate::tree::participant::{self, Part};

/// High 32 bits of a tree request's `si_value` (the low 32: the fd).
pub const REQUEST_MAGIC: u64 = 0x7472_6565;
/// How long the root waits for every child to park.
const PARK_TIMEOUT_NS: u64 = 5_000_000_000;
/// How long anyone waits for the others to write (a member then gives up).
const WRITE_TIMEOUT_NS: u64 = 600_000_000_000;
/// Room for a child's `/proc/PID/maps`.
const MAPS_LEN: usize = 16 << 20;
/// How often a process that waits for its children checks that none
/// has exited.
const EXIT_CHECK_NS: u64 = 100_000_000;

/// Whether child `pid` has exited: gone, a zombie, or no longer ours
/// (reaped, its PID taken by another process).
fn has_exited(pid: i32) -> bool {
    children::parent_and_state(pid)
        .is_none_or(|(ppid, st)| ppid != sys::getpid() || st == b'Z' || st == b'X')
}

/// The descriptors of the control blocks this process has open while a
/// tree dump runs (-1 when none), its parent's and its own: they stay out
/// of the image.
static MEMBER_FD: AtomicI32 = AtomicI32::new(-1);
static ROOT_FD: AtomicI32 = AtomicI32::new(-1);

/// The control blocks' descriptors, to leave out of the image (-1: none).
pub fn control_fds() -> [i32; 2] {
    [MEMBER_FD.load(Acquire), ROOT_FD.load(Acquire)]
}

/// Forgets the control blocks' descriptors. For a restored process: its
/// memory holds the numbers they had while its image was written, which
/// are free after the restore and soon another file's, and a later dump
/// would leave that file out.
pub fn forget_control_fds() {
    MEMBER_FD.store(-1, Release);
    ROOT_FD.store(-1, Release);
}

/// Room for a control block in the dump's arena, so that its mapping
/// stays out of the image with the arena.
fn control_room(arena: &Arena) -> Result<*mut u8, Fail> {
    arena
        .bytes(crate::tree::control::LEN)
        .map(|b| b.as_mut_ptr())
        .ok_or_else(|| Fail::new("the dump arena is too small"))
}

/// The tree request this process took (root PID, fd), until its dump
/// starts; 0 when none.
static REQUEST_ROOT: AtomicI32 = AtomicI32::new(0);
static REQUEST_FD: AtomicI32 = AtomicI32::new(-1);

/// Whether a signal is a tree request from this process's parent; if so,
/// it is kept for the dump the signal starts.
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed to the handler.
pub unsafe fn take_request(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: the kernel's siginfo is 128 readable bytes.
    let b = unsafe { core::slice::from_raw_parts(info.cast::<u8>(), 32) };
    let code = i32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
    let pid = i32::from_ne_bytes([b[16], b[17], b[18], b[19]]);
    let value = u64::from_ne_bytes([b[24], b[25], b[26], b[27], b[28], b[29], b[30], b[31]]);
    // SAFETY: getppid takes no arguments.
    let parent = unsafe { sys::syscall6(libc::SYS_getppid, [0; 6]) } as i32;
    let stop = members::stop_of_request(value >> 32);
    let ours = value >> 32 == REQUEST_MAGIC || stop.is_some();
    if code != libc::SI_QUEUE || !ours || pid != parent || pid <= 0 {
        return false;
    }
    if let Some(stop) = stop {
        // This process was stopped: it stops again once released.
        members::set_stop(stop);
    }
    REQUEST_FD.store(value as u32 as i32, Release);
    REQUEST_ROOT.store(pid, Release);
    true
}

/// Forgets a tree request this process could not act on (it was busy
/// with a dump of its own: the root then fails, naming it).
pub fn forget_request() {
    REQUEST_ROOT.store(0, Release);
}

/// This process's part in the dump that runs.
pub struct Tree {
    role: Role,
}

enum Role {
    /// A dump of this process only.
    Alone,
    /// The root: it leads its children.
    Root(Sub),
    /// A member: its parent leads it, and it may lead children of its own.
    Member {
        ctl: Control,
        slot: usize,
        root: i32,
        sub: Option<Sub>,
    },
}

/// The children a process leads, parked; told to abort when this goes
/// unless they were released.
struct Sub {
    ctl: Control,
    members: u32,
    released: bool,
}

impl Sub {
    /// Waits until the first `n` children have written their sections;
    /// the first failure. A child that exits meanwhile (killed: it cannot
    /// write any more, and we cannot reap it while we are stopped) fails
    /// the dump at once.
    fn wait_written(&self, n: u32) -> Result<(), Fail> {
        let deadline = sys::monotonic_ns() + WRITE_TIMEOUT_NS;
        loop {
            let slice = (sys::monotonic_ns() + EXIT_CHECK_NS).min(deadline);
            let done = self.ctl.wait_written(n, slice);
            if let Some(pid) = self.exited_member() {
                return Err(Fail::new("child ")
                    .dec(pid as u64)
                    .str(" exited during the tree dump"));
            }
            if done >= n {
                break;
            }
            if sys::monotonic_ns() >= deadline {
                return Err(Fail::new("the children did not write their images in time"));
            }
        }
        failed_member(&self.ctl, self.members)
    }

    /// Gives each child its turn to write its section (and its
    /// descendants') from `start` on, one after the other; returns where
    /// the last one ended (page-aligned). Their index entries are in the
    /// block's index then.
    fn turns(&self, start: u64) -> Result<u64, Fail> {
        let h = self.ctl.header();
        h.cursor.store(start, Release);
        for i in 0..self.members as usize {
            self.ctl.give_turn(i);
            self.wait_written(i as u32 + 1)?;
        }
        Ok(h.cursor.load(Acquire))
    }

    /// A member that has exited, if any (see [`has_exited`]).
    fn exited_member(&self) -> Option<i32> {
        (0..self.members as usize)
            .filter_map(|i| self.ctl.slot(i))
            .map(|s| s.pid.load(Acquire))
            .find(|&pid| pid > 0 && has_exited(pid))
    }

    /// Lets every child go.
    fn release(&mut self) {
        self.ctl.set_phase(phase::RELEASE);
        self.released = true;
        members::after_release();
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        if !self.released {
            self.ctl.set_phase(phase::ABORT);
            members::after_release();
        }
        ROOT_FD.store(-1, Release);
    }
}

/// Called once every thread of this process is parked: decides what the
/// dump is (alone, a tree's root, a tree's member), and for a tree stops
/// the members (root) or reports parked and waits for the turn to write
/// (member). `path` is where this process's image goes (a member's is set
/// here). A failure fails this process's dump and, through the control
/// block, the whole tree's.
pub fn begin(
    arena: &Arena,
    settings: &Settings,
    path: &mut Line<PATH_MAX>,
    check: bool,
) -> Result<Tree, Fail> {
    members::clear_zombies();
    let root = REQUEST_ROOT.swap(0, AcqRel);
    if root != 0 {
        return member(arena, settings, root, REQUEST_FD.load(Acquire), path);
    }
    // A restore's check dump is about this process alone (its zombie
    // children are its own: recorded).
    if check {
        members::take_zombies(arena, children::list(arena)?, true)?;
        return Ok(Tree { role: Role::Alone });
    }
    if settings.children != children::TREE {
        children::refuse_or_leave(arena, settings)?;
        return Ok(Tree { role: Role::Alone });
    }
    let kids = members::take_zombies(arena, children::list(arena)?, false)?;
    if kids.is_empty() {
        return Ok(Tree { role: Role::Alone });
    }
    let sub = stop_members(arena, settings, kids, path)?;
    sub.ctl.set_phase(phase::WRITE);
    Ok(Tree {
        role: Role::Root(sub),
    })
}

/// Stops this process's children `kids` (each stopping its own first):
/// returns once every one is parked, having not yet let them write.
fn stop_members(
    arena: &Arena,
    settings: &Settings,
    kids: &[i32],
    path: &Line<PATH_MAX>,
) -> Result<Sub, Fail> {
    if kids.len() >= MAX_MEMBERS {
        return Err(Fail::new("more than ")
            .dec(MAX_MEMBERS as u64 - 1)
            .str(" children"));
    }
    let buf = arena
        .bytes(MAPS_LEN)
        .ok_or_else(|| Fail::new("the dump arena is too small"))?;
    let shim = participant::our_shim(buf)
        .map_err(|e| Fail::new("cannot find libmigrate.so in /proc/self/maps").errno(e))?;
    members::clear_stopped();
    for &pid in kids {
        let part = participant::check(pid, shim, settings.signal, buf);
        let state = children::state_of(pid);
        if let (Part::Ready, Some(stop)) = (part, members::stopped_child(pid)) {
            // Continued for the dump, it would take these at once, before
            // the dump signal (lower numbers go first), not when the
            // program continues it. Higher ones wait: the member stops
            // again inside the dump's handler.
            let below = (1u64 << ((settings.signal - 1) & 63)) - 1;
            let early = members::deliverable_pending(pid) & below;
            if early != 0 {
                let sig = early.trailing_zeros() + 1;
                return Err(Fail::new("child ")
                    .dec(pid as u64)
                    .str(" is stopped with signal ")
                    .dec(u64::from(sig))
                    .str(" pending, which continuing it for the tree dump would deliver"));
            }
            members::note_stopped(pid, stop)?;
            continue;
        }
        if part != Part::Ready || state == Some(b'Z') || state == Some(b't') {
            let why = match state {
                Some(b'Z') => "it exited during the tree dump",
                Some(b't') => "it is stopped by a tracer",
                _ => part.why(),
            };
            return Err(Fail::new("child ")
                .dec(pid as u64)
                .str(" cannot take part in a tree dump: ")
                .str(why));
        }
    }
    let ctl = Control::create(control_room(arena)?)
        .map_err(|e| Fail::new("cannot create the tree's control block").errno(e))?;
    ROOT_FD.store(ctl.fd(), Release);
    let h = ctl.header_mut();
    let n = path.len().min(PATH_MAX);
    h.path[..n].copy_from_slice(&path.as_bytes()[..n]);
    h.path_len = n as u32;
    let sub = Sub {
        ctl,
        members: kids.len() as u32,
        released: false,
    };
    let value = REQUEST_MAGIC << 32 | sub.ctl.fd() as u32 as u64;
    for &pid in kids {
        let value = members::stopped_request(pid, sub.ctl.fd()).unwrap_or(value);
        queue_signal(pid, settings.signal, value)
            .map_err(|e| Fail::new("cannot signal child ").dec(pid as u64).errno(e))?;
        // A stopped child takes its request once continued.
        members::continue_stopped(pid)?;
    }
    let n = kids.len() as u32;
    // A child with children of its own settles only once they have: give
    // it the time they take (one timeout per level is the price).
    let deadline = sys::monotonic_ns() + PARK_TIMEOUT_NS;
    let settled = loop {
        let slice = (sys::monotonic_ns() + EXIT_CHECK_NS).min(deadline);
        let settled = sub.ctl.wait_settled(n, slice);
        if let Some(&pid) = kids.iter().find(|&&pid| has_exited(pid)) {
            return Err(Fail::new("child ")
                .dec(pid as u64)
                .str(" exited during the tree dump"));
        }
        if settled >= n || sys::monotonic_ns() >= deadline {
            break settled;
        }
    };
    if settled < n {
        let late = kids
            .iter()
            .copied()
            .find(|&pid| !(0..n as usize).any(|i| slot_is(&sub.ctl, i, pid, state::PARKED)))
            .unwrap_or(0);
        return Err(Fail::new("child ")
            .dec(late as u64)
            .str(" did not stop within 5 s (does it block signal ")
            .dec(settings.signal as u64)
            .str("?)"));
    }
    failed_member(&sub.ctl, n)?;
    members::after_parked();
    Ok(sub)
}

/// A member's side, up to parked (its own children too) and told to write.
fn member(
    arena: &Arena,
    settings: &Settings,
    root: i32,
    fd: i32,
    path: &mut Line<PATH_MAX>,
) -> Result<Tree, Fail> {
    let ctl = Control::open(root, fd, control_room(arena)?).map_err(|e| {
        Fail::new("cannot open the tree's control block of process ")
            .dec(root as u64)
            .errno(e)
    })?;
    MEMBER_FD.store(ctl.fd(), Release);
    let Some((idx, slot)) = ctl.claim() else {
        return Err(Fail::new("the tree's control block is full"));
    };
    slot.ppid = root;
    // SAFETY: getpgid(0) and getsid(0) ask about this process.
    unsafe {
        slot.pgid = sys::syscall6(libc::SYS_getpgid, [0; 6]) as i32;
        slot.sid = sys::syscall6(libc::SYS_getsid, [0; 6]) as i32;
    }
    // The tree's one image (messages name it).
    let h = ctl.header();
    path.clear();
    path.bytes(&h.path[..(h.path_len as usize).min(PATH_MAX)]);
    let kids = children::list(arena).and_then(|k| members::take_zombies(arena, k, false));
    let sub = match kids {
        Ok([]) => None,
        Ok(kids) => match stop_members(arena, settings, kids, path) {
            Ok(sub) => Some(sub),
            Err(f) => {
                fail_slot(&ctl, slot, &f, false);
                return Err(f);
            }
        },
        Err(f) => {
            fail_slot(&ctl, slot, &f, false);
            return Err(f);
        }
    };
    ctl.settle(slot, state::PARKED);
    let deadline = sys::monotonic_ns() + WRITE_TIMEOUT_NS;
    if ctl.wait_phase_while(phase::STOPPING, root, deadline) != phase::WRITE {
        return Err(Fail::new("the tree dump led by process ")
            .dec(root as u64)
            .str(" was abandoned"));
    }
    // Every process of the tree is stopped: our children may write too.
    if let Some(sub) = &sub {
        sub.ctl.set_phase(phase::WRITE);
    }
    Ok(Tree {
        role: Role::Member {
            ctl,
            slot: idx,
            root,
            sub,
        },
    })
}

impl Tree {
    /// Whether this dump is a tree's (root or member): what the process
    /// shares with the others is then looked for.
    pub fn is_tree(&self) -> bool {
        !matches!(self.role, Role::Alone)
    }

    /// Whether this process writes a section of its parent's tree image
    /// (and no file of its own).
    pub fn is_member(&self) -> bool {
        matches!(self.role, Role::Member { .. })
    }

    /// The writer of this process's image: a file of its own (alone), the
    /// tree image with the root's section first (the root), or, once its
    /// turn comes, its section in the tree image its parent writes (a
    /// member).
    pub fn writer(&mut self, path: &Line<PATH_MAX>) -> Result<ImageWriter, Fail> {
        match &mut self.role {
            Role::Alone => ImageWriter::create(path.as_bytes()),
            Role::Root(sub) => {
                let mut w = ImageWriter::create(path.as_bytes())?;
                w.start_section(dumpfmt::HEADER_LEN);
                sub.ctl.header().writer_fd.store(w.fd(), Release);
                Ok(w)
            }
            Role::Member {
                ctl,
                slot,
                root,
                sub,
            } => {
                let deadline = sys::monotonic_ns() + WRITE_TIMEOUT_NS;
                let w = if ctl.wait_turn(*slot, *root, deadline) {
                    let h = ctl.header();
                    ImageWriter::open_section(
                        path.as_bytes(),
                        *root,
                        h.writer_fd.load(Acquire),
                        h.cursor.load(Acquire),
                    )
                } else {
                    Err(Fail::new("the tree dump led by process ")
                        .dec(*root as u64)
                        .str(" was abandoned"))
                };
                match w {
                    Ok(w) => {
                        if let Some(sub) = sub {
                            sub.ctl.header().writer_fd.store(w.fd(), Release);
                        }
                        Ok(w)
                    }
                    Err(f) => {
                        if let Some(s) = ctl.own_slot(*slot) {
                            fail_slot(ctl, s, &f, true);
                        }
                        Err(f)
                    }
                }
            }
        }
    }

    /// Called once this process's image is written (`header`, not yet
    /// in the file): for a tree, writes it as the section's header, lets
    /// the children write theirs in turn, and then the root writes the
    /// index and returns the tree image's header; a member adds its
    /// entries to its parent's index, reports written and waits for the
    /// parent's verdict. `Ok` means: finish the image (see [`Tree::finish`]).
    pub fn written(
        &mut self,
        header: Result<dumpfmt::Header, Fail>,
        out: &mut ImageWriter,
    ) -> Result<dumpfmt::Header, Fail> {
        match &self.role {
            Role::Alone => header,
            Role::Member {
                ctl,
                slot,
                root,
                sub,
            } => {
                let Some(s) = ctl.own_slot(*slot) else {
                    return header;
                };
                let h = match header.and_then(|h| {
                    let base = out.base();
                    let end = out.finish_section(&h)?;
                    let next = end.next_multiple_of(dumpfmt::PAGE_SIZE);
                    let cursor = match sub {
                        Some(sub) => sub.turns(next)?,
                        None => next,
                    };
                    let own = own_entry(*root, base, end - base);
                    let below = sub.as_ref().map_or(&[][..], |sub| sub.ctl.index());
                    if !ctl.push_index(&[own]) || !ctl.push_index(below) {
                        return Err(Fail::new("the tree has more than ")
                            .dec(MAX_MEMBERS as u64)
                            .str(" processes"));
                    }
                    ctl.header().cursor.store(cursor, Release);
                    Ok(h)
                }) {
                    Ok(h) => h,
                    Err(f) => {
                        fail_slot(ctl, s, &f, true);
                        return Err(f);
                    }
                };
                ctl.written(s, state::WRITTEN);
                let deadline = sys::monotonic_ns() + WRITE_TIMEOUT_NS;
                match ctl.wait_phase_while(phase::WRITE, *root, deadline) {
                    phase::RELEASE => Ok(h),
                    _ => Err(Fail::new("the tree dump led by process ")
                        .dec(*root as u64)
                        .str(" failed elsewhere")),
                }
            }
            Role::Root(sub) => {
                let h = header?;
                let end = out.finish_section(&h)?;
                // SAFETY: getppid takes no arguments.
                let parent = unsafe { sys::syscall6(libc::SYS_getppid, [0; 6]) } as i32;
                let own = own_entry(parent, dumpfmt::HEADER_LEN, end - dumpfmt::HEADER_LEN);
                let cursor = sub.turns(end.next_multiple_of(dumpfmt::PAGE_SIZE))?;
                let below = sub.ctl.index();
                if below.len() + 1 > dumpfmt::MAX_MEMBERS {
                    return Err(Fail::new("the tree has more than ")
                        .dec(dumpfmt::MAX_MEMBERS as u64)
                        .str(" processes"));
                }
                crate::tree::groups::check(own, below)?;
                write_index(out, cursor, own, below)
            }
        }
    }

    /// Puts the image in place (alone, root) and returns its size; a
    /// member's section is the root's to put in place.
    pub fn finish(
        &self,
        out: ImageWriter,
        header: Result<dumpfmt::Header, Fail>,
    ) -> Result<u64, Fail> {
        let h = header?;
        match self.role {
            Role::Member { .. } => Ok(h.file_len),
            _ => out.finish(&h),
        }
    }

    /// This process's image is in place: let its children go.
    pub fn commit(&mut self) {
        match &mut self.role {
            Role::Root(sub) | Role::Member { sub: Some(sub), .. } => sub.release(),
            _ => {}
        }
    }
}

/// This process's index entry: parent `parent`, its section `len` bytes
/// at `offset`.
fn own_entry(parent: i32, offset: u64, len: u64) -> dumpfmt::Member {
    // SAFETY: getpgid(0) and getsid(0) ask about this process.
    let (pgid, sid) = unsafe {
        (
            sys::syscall6(libc::SYS_getpgid, [0; 6]) as u32,
            sys::syscall6(libc::SYS_getsid, [0; 6]) as u32,
        )
    };
    dumpfmt::Member {
        pid: sys::getpid() as u32,
        ppid: parent as u32,
        pgid,
        sid,
        offset,
        len,
    }
}

/// Writes the tree index (`own`, then `below`) at `at` in the tree image
/// as its metadata block; returns the tree image's header.
fn write_index(
    out: &mut ImageWriter,
    at: u64,
    own: dumpfmt::Member,
    below: &[dumpfmt::Member],
) -> Result<dumpfmt::Header, Fail> {
    out.outer_at(at);
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    // postcard: the sequence's length as a varint, then each member.
    let mut count = [0u8; 10];
    let mut n = below.len() as u64 + 1;
    let mut used = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        count[used] = if n == 0 { byte } else { byte | 0x80 };
        used += 1;
        if n == 0 {
            break;
        }
    }
    let mut emit = |b: &[u8], out: &mut ImageWriter| -> Result<(), Fail> {
        crc.update(b);
        len += b.len() as u64;
        out.write(b)
    };
    emit(&count[..used], out)?;
    for m in core::iter::once(&own).chain(below) {
        let mut buf = [0u8; 64];
        let bytes = postcard::to_slice(m, &mut buf)
            .map_err(|_| Fail::new("cannot encode the tree index"))?;
        emit(bytes, out)?;
    }
    Ok(dumpfmt::Header {
        major: dumpfmt::VERSION_MAJOR,
        minor: dumpfmt::VERSION_MINOR,
        meta_offset: at,
        meta_len: len,
        meta_crc: crc.finalize(),
        file_len: at + len,
        flags: dumpfmt::FLAG_TREE,
    })
}

impl Drop for Tree {
    fn drop(&mut self) {
        MEMBER_FD.store(-1, Release);
        if let Role::Member { ctl, slot, .. } = &self.role
            && let Some(s) = ctl.slot(*slot)
        {
            s.state.store(state::LEFT, Release);
        }
    }
}

/// Whether slot `i` holds `pid` in state `st` (or past it, for PARKED).
fn slot_is(ctl: &Control, i: usize, pid: i32, st: u32) -> bool {
    ctl.slot(i).is_some_and(|s| {
        let now = s.state.load(Acquire);
        s.pid.load(Acquire) == pid && (now == st || st == state::PARKED && now == state::WRITTEN)
    })
}

/// The first member's failure, as the root's.
fn failed_member(ctl: &Control, n: u32) -> Result<(), Fail> {
    for i in 0..n as usize {
        let Some(s) = ctl.slot(i) else { continue };
        if s.state.load(Acquire) == state::FAILED {
            let len = (s.fail_len as usize).min(s.fail.len());
            return Err(Fail::new("child ")
                .dec(s.pid.load(Acquire) as u64)
                .str(": ")
                .bytes(&s.fail[..len]));
        }
    }
    Ok(())
}

/// Leaves `f` in the member's slot and reports it failed.
fn fail_slot(ctl: &Control, slot: &mut Slot, f: &Fail, writing: bool) {
    let bytes = f.line.as_bytes();
    let n = bytes.len().min(slot.fail.len());
    slot.fail[..n].copy_from_slice(&bytes[..n]);
    slot.fail_len = n as u32;
    if writing {
        ctl.written(slot, state::FAILED);
    } else {
        ctl.settle(slot, state::FAILED);
    }
}

/// Sends `sig` to process `pid` with `si_code = SI_QUEUE` and `value`.
fn queue_signal(pid: i32, sig: i32, value: u64) -> sys::SysResult<()> {
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&sig.to_ne_bytes());
    info[8..12].copy_from_slice(&libc::SI_QUEUE.to_ne_bytes());
    info[16..20].copy_from_slice(&sys::getpid().to_ne_bytes());
    // SAFETY: getuid takes no arguments.
    let uid = unsafe { sys::syscall6(libc::SYS_getuid, [0; 6]) } as u32;
    info[20..24].copy_from_slice(&uid.to_ne_bytes());
    info[24..32].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: `info` is a 128-byte siginfo the kernel only reads.
    unsafe { sys::sys(libc::SYS_rt_sigqueueinfo, args!(pid, sig, info.as_ptr())) }.map(|_| ())
}
