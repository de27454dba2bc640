//! Process trees (issue 9): a program and its descendants.
//!
//! What is built so far:
//!
//! - nothing is lost silently: a process with children (live, stopped,
//!   or exited and not yet waited for) fails its dump with one line
//!   naming each child, and goes on; `MIGRATE_CHILDREN=leave` dumps it
//!   alone and the `info` log names the children left out ([`children`]);
//!   the line also says which children could not take part in a tree dump
//!   ([`participant`]: no `libmigrate.so`, another user's, the signal not
//!   caught);
//! - the tree dump (`MIGRATE_CHILDREN=tree`, [`dump`]): a process and its
//!   descendants stopped together through [`control`] blocks (one per
//!   parent) and written as **one tree image** (format 1.3, steps 7 and 8
//!   below: each member's section in turn, pre-order, into the root's
//!   file; the index and the header last), one snapshot; the default
//!   (`MIGRATE_CHILDREN=tree`);
//! - children running another program (a script's `date`, `sleep`):
//!   restored in the fork of their parent like any member, their
//!   executable given back by the restorer (`crate::restore::tree_exec`);
//!   a member's own stdio (a pipe from its parent, not the root's fd) is
//!   recorded and comes back ([`stdio`]); `execve` keeps the dump signal
//!   blocked so that a dump cannot kill a child starting a program
//!   (`crate::exec`);
//! - process groups and sessions ([`groups`]): recorded per member in the
//!   index, checked at the dump (the root refuses a tree whose groups
//!   cannot be made again) and made again at the restore (step 1 below);
//! - the restore (`crate::restore::tree`, `MIGRATE_RESTORE=tree.img`):
//!   every section checked before teardown, each restored parent forks
//!   its children with their PIDs (steps 1 and 3), and each restores its
//!   section; a pipe between them (each end recorded as `Gone`, named by
//!   inode) is made once by the root, with the bytes waiting in it, and
//!   inherited; the restore barrier (step 4: two pipes rather than a
//!   futex, so that a process that dies unblocks the others with end of
//!   file instead of leaving them waiting).
//! - the other objects members share ([`shared`], format 1.3, and
//!   `crate::restore::tree_shared`): shared memory (`MAP_SHARED`
//!   anonymous memory, memfds, unlinked `/dev/shm` files such as POSIX
//!   semaphores), socket pairs with the bytes queued each way, and open
//!   file descriptions of regular files and of sockets (found with
//!   `kcmp`: a server's listener its workers inherit), each recorded
//!   by its identity and made once by the root before it forks; a pipe
//!   or socket pair one member holds both ends of is the tree's as soon
//!   as another holds an end too (a `multiprocessing.Pool`'s queues,
//!   nginx's channels: `tests/tests/tree_programs.rs`); a pipe or
//!   socket whose peer is another member is not "connected to another
//!   process" in the dump's log, nor refused by `MIGRATE_EXTERNAL=refuse`.
//! - zombie and stopped members ([`members`], step 4 below and the zombie
//!   parts; restore side `crate::restore::tree_members`): a zombie child
//!   is recorded by its parent (format 1.3, `Minor3::members`) and forked
//!   again by the restore to end as it had; a stopped child takes part
//!   and stops again, and comes back stopped; the parent's `waitpid`
//!   reports are those of an undumped run;
//! - a signal sent to the whole process group of a restored tree reaches
//!   each process once (`crate::restore::group_signals`; "Signals" below).
//!
//! Not yet: a child that exits, or is in `execve` before its library is
//! mapped, at the very moment of the dump fails it (naming it: try again);
//! Shared
//! memory's pages are stored once, by the highest member mapping the
//! part of the object another maps (the others' sections name it).
//!
//! Where the code differs from the design below, and why: the turn is
//! passed level by level (each process, its own section written, gives
//! its children their turns in its own control block, and appends its
//! own index entry and its descendants' to its parent's block), so no
//! process needs more than its parent's block; the phases (stop all,
//! write in turn, index and header, release) are the design's. A deep
//! tree waits one park timeout per level at worst.
//!
//! Where other work hooks in (the `shared` and `members` helpers):
//! per-member dump data is written by each member's own `dump::write_image`
//! (its section is a whole image: a new per-process value goes in its
//! metadata, `Minor3`); at the dump the stop checks are in
//! `tree::dump::stop_members` (which children take part) and
//! `tree::dump::member` (a member parks); at the restore, objects made
//! once before the forks go beside `make_shared_pipes` in
//! `crate::restore::tree::fork_children`, a child's own setup after its
//! fork in `crate::restore::tree::descend` (beside `take_step`), and what
//! the restorer does last before the barrier in
//! `crate::restore::tree::barrier_ops`' caller (`restore::build_plan`).

//! The rest of this comment is the design the next steps follow.
//!
//! # Rules
//!
//! Code under this module that runs in the dump signal's handler keeps the
//! `dump` module's rules (no heap, no locks, no libc, no panics; raw
//! system calls, the arena for memory); code that runs after a restore's
//! teardown keeps the restorer's (no libc at all). Each file says which.
//!
//! # Design
//!
//! ## Words
//!
//! The *root* is the process the user's dump signal reaches; the *tree* is
//! the root and every descendant reachable through `children` files
//! (`/proc/PID/task/TID/children` of every thread). A *member* is a live
//! member (its shim takes part) or a *zombie* (exited, not waited for:
//! kernel state only, recorded by whoever is its parent). A process that
//! left the tree before the dump (a daemon that double-forked away,
//! reparented to init or a subreaper) is not a member: no link leads to
//! it any more; the `info` log names those still in the root's session
//! (a scan of `/proc` for the root's sid). One seen leaving during the
//! dump (its parent exited meanwhile) fails the dump.
//!
//! ## Dump: one consistent snapshot
//!
//! 1. The root's leader parks the root's threads as today
//!    (`dump::world`). No root thread can fork any more.
//! 2. *Control block.* The leader creates a memfd (`memfd_create`,
//!    `MFD_CLOEXEC`) of a fixed size and maps it shared: a header (magic,
//!    generation, phase word, turn word, release word: all futex words,
//!    used with the shared (non-`PRIVATE`) futex operations) and one slot
//!    per member (pid, ppid, pgid, sid, state, exit status for a zombie,
//!    section offset and length, a failure line). Members find it through
//!    `/proc/ROOT/fd/N` (same user; `PTRACE_MODE_READ`, which Yama does not
//!    restrict). It is never part of an image: it is ours, like the arena.
//! 3. *Walk, top down.* For each member, parent before child: check that
//!    it can take part before signalling it (its `/proc/PID/maps` maps our
//!    `libmigrate.so`, same device and inode as ours; its
//!    `/proc/PID/status` `SigCgt` has the root's dump signal, and its
//!    `environ` does not set another `MIGRATE_SIGNAL`); a member that
//!    fails this fails the dump, naming it ("pid 1234 /usr/bin/foo: no
//!    libmigrate.so (statically linked, setuid, or started without
//!    LD_PRELOAD)"), before any signal is sent: a stray SIGUSR2 kills a
//!    process that does not handle it. Then send it the dump signal with
//!    `SI_QUEUE` and a *tree request* value (magic in the high 32 bits, the
//!    control block's fd number in the low 32), as `world::is_park_request`
//!    tells a park request. Its handler checks that the sender (`si_pid`)
//!    is an ancestor (`PPid` chain), opens and maps the control block,
//!    parks its own threads as a local leader (the same `world` code), and
//!    only then lists its own children: with every thread parked its set
//!    of children is final but for exits (which stay as zombies). It
//!    records them in the control block (slots claimed with an atomic
//!    counter), marks itself `PARKED` and waits on the phase word. The
//!    root walks on as slots appear, until every member is parked.
//! 4. *Stopped members* (state `T`) cannot run a handler. Their parent
//!    (which leads them: each process leads its own children) notes
//!    whether it has consumed the stop report (`waitid(WSTOPPED |
//!    WNOHANG | WNOWAIT)`), sends the tree request with the stop in its
//!    value, then `SIGCONT`; the member parks and records its stop in its
//!    image. Once every member is parked the parent consumes the
//!    `CLD_CONTINUED` report (before its own image is written). At release
//!    the member stops itself again (`SIGSTOP`, after its threads are
//!    released and its line is out, its `SIGCONT` taken back so that an
//!    application handler does not run for it), and the parent waits for
//!    that stop and consumes the new report when the old one had been
//!    consumed, so that `waitpid` sees what it would have seen. A
//!    `SIGCHLD` the parent did not have pending before is taken back with
//!    `rt_sigtimedwait`. The restore stops the member before its teardown
//!    (every signal blocked, so what is sent while it is stopped waits for
//!    the program's own handlers), once its children exist; its parent
//!    waits for the stop and consumes the report the same way. A stopped
//!    member with a deliverable signal pending numbered below the dump
//!    signal fails the dump (continuing it would deliver that signal
//!    first); higher ones wait, as the member stops again inside the
//!    handler. Limits: the
//!    restored stop is a `SIGSTOP` (a report still waiting says signal 19
//!    where the original said `SIGTSTP`, `SIGTTIN` or `SIGTTOU`); with an
//!    RT dump signal an application handler of `SIGCONT` may run once for
//!    the dump's `SIGCONT` (it is taken before the dump signal then).
//! 5. *Deadline.* A member that does not park within `PARK_TIMEOUT_NS`
//!    fails the dump, naming it ("did not stop within 5 s: does it block
//!    signal N?"); so does a member seen leaving the tree (re-walked once
//!    all are parked: reparented away because its parent exited). A failed
//!    dump releases every member; nothing was written yet, the tree goes
//!    on.
//! 6. *Shared objects.* With every member parked, the root identifies
//!    what members share, from outside: for every fd of every member,
//!    `/proc/PID/fd/N` (kind and inode) and `fdinfo`; two fds are one open
//!    file description when `kcmp(KCMP_FILE)` says so (inode equality is
//!    not enough: two `open`s of one file have separate offsets). The
//!    result, a table of *shared objects* (pipes and socket pairs with
//!    ends in several members, shared descriptions, `MAP_SHARED`
//!    anonymous memory recognized by `/proc/PID/map_files` inode, memfds),
//!    each with its users and their fd numbers, goes into the control
//!    block. A member's own `dump::fds` then writes a shared end as a
//!    reference to the table instead of `Gone`; buffered pipe bytes are
//!    copied once (with `tee`) by the object's designated reader.
//! 7. *Writing, in turn.* One image file: the root creates the writer as
//!    today (`O_TMPFILE` beside the target); members reopen it through
//!    `/proc/ROOT/fd/N` (`O_WRONLY`, no `O_TRUNC`) and `pwrite` at the
//!    offset the turn word gives them. Each member in pre-order (the
//!    root first) writes its own single-process section, exactly today's
//!    image (header page, runs, metadata) but shifted to a page-aligned
//!    base, records its length and passes the turn. Sequential turns keep
//!    the write path unchanged; a later step may let members write in
//!    parallel into ranges reserved from their RSS.
//! 8. *Index and header last.* The root appends the tree index (below),
//!    writes the outer header, fsyncs, links and renames as today.
//! 9. *Release, together.* The root bumps the release word; every member
//!    leaves its handler (or, with `MIGRATE_AFTER_DUMP=exit`, every member
//!    exits, the root last). A member whose section failed fails the whole
//!    dump, with its line, and all are released.
//!
//! ## Image: a container of sections (format 1.3, as built)
//!
//! Header bytes 12 to 15 (reserved, zero before 1.3, under
//! `header_crc`) become `flags`; bit 0 set means *tree image*. A 1.3
//! reader reads 1.0 to 1.2 images unchanged; an older reader refuses any
//! 1.3 image (`NewerVersion`), as it could not restore a tree. A dump of a
//! process without children keeps writing a single-process image.
//!
//! In a tree image the outer page data is the sections, back to back from
//! 4096, each page-aligned; the outer metadata block is one postcard
//! `Tree`: for each member, in pre-order, `pid`, `ppid`, `pgid`, `sid`,
//! and its section's `offset` and `len` (built: `dumpfmt::Member`; a
//! zombie's wait status and the shared objects are left to the work on
//! them, each its own value).
//! Each live section is a complete 1.x single-process image whose own
//! offsets are relative to its start, so `dumpfmt` verifies a section
//! with the code that verifies an image today, plus: sections tile the
//! page data exactly, pids are unique, the first member is the root,
//! every other member's `ppid` is an earlier member, every object's users
//! are members and its creator is their common ancestor.
//!
//! ## Restore: parents fork their children
//!
//! Everything is validated first, while libc works, for every section
//! (files, CPU, owner), before any process is torn down. Then, in the PID
//! namespace the restore already creates, init creates the root with
//! `clone3` `set_tid` as today. Each restoring process, before its
//! teardown:
//!
//! 1. becomes what its process group and session say: `setsid()` first
//!    if it led a session; `setpgid(0, 0)` if it led a group; else
//!    `setpgid(0, PGID)` when that group's leader is a member (created
//!    earlier: siblings are forked leaders first, as CRIU orders them);
//!    a group or session whose leader is outside the tree stays the
//!    supervisor's (as a single process does today); one whose leader
//!    exited (neither live nor zombie) fails the dump for now;
//! 2. creates the shared objects it is the creator of (pipes, socket
//!    pairs, a description opened once, `MAP_SHARED` anonymous memory as
//!    a memfd mapped by each user at its address), at fd numbers above
//!    every fd the tree uses, so that its children inherit them;
//! 3. forks each child with `clone3` `set_tid` = its pid (a zombie child
//!    exits at once with its status, or kills itself with its signal, and
//!    stays unreaped); a live child is a copy of this process still in
//!    the constructor, with libc: it does steps 1 to 3 for itself, keeps
//!    the objects it uses at their numbers (`dup3`), closes the others,
//!    then restores its own section as a single image is restored today.
//!    Its executable comes back with `PR_SET_MM_MAP`'s `exe_fd` once the
//!    old one is unmapped (we hold `CAP_SYS_RESOURCE` in the user
//!    namespace until the credentials are restored);
//! 4. tears down and restores its section as today, then waits at a
//!    tree barrier (a futex in a shared mapping made by the root before
//!    its first fork) so that no member runs application code before
//!    every member is restored: a parent that signals or waits for a
//!    child then finds it whole.
//!
//! Signals (decided, issue 9 item 7; `crate::restore::group_signals`):
//! every restored process whose group was outside the tree stays in the
//! supervisor's process group, which is the shell's job: a signal sent to
//! the group (`kill -TERM -PGID`, the terminal's Ctrl-C and Ctrl-Z)
//! reaches each member directly, once, and the job stays the terminal's
//! foreground group, so a restored foreground program still reads the
//! terminal (moving the members into a group of their own would make
//! them a background group: `SIGTTIN` on every read). The supervisor
//! forwards only what was sent to its PID alone, to the root; it tells
//! the two apart through init, which keeps every signal blocked: a
//! group's signal is already pending in init when the supervisor's
//! handler runs (the kernel signals a group's newest members first),
//! one sent to the supervisor alone is not. Init forwards nothing. On a
//! stop from the group the supervisor stops too once the root has, so
//! that the shell, waiting for the supervisor, sees its job stopped; the
//! shell's `SIGCONT` to the group continues everyone. Tested from a real
//! pty (`tests/tests/tree_members.rs`). Limit: a signal sent to init's
//! PID alone stays pending there and makes the supervisor take the next
//! signal of that number to its own PID for a group's.

// `Fail` carries its message inline (there is no heap to box it in), as
// in `dump`.
#![allow(clippy::result_large_err)]

pub mod children;
pub mod control;
pub mod dump;
pub mod groups;
pub mod members;
pub mod participant;
pub mod procfs;
pub mod shared;
pub mod stdio;
