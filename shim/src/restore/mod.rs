//! The restore path, entered from the constructor of a relaunched process
//! when `MIGRATE_RESTORE` names an image.
//!
//! The image's header and metadata are read first, and this process's
//! executable compared with the image's: a wrapper that will run the
//! image's program (`timeout 60 ./app`) passes the image on untouched and
//! the restore happens in the program (see [`wrapper`]).
//!
//! Everything that can fail is checked first, while libc works: the image
//! (framing, metadata, every page checksum), the executable, every mapped
//! file, the CPU, the kernel's vDSO layout. A failure prints one line and
//! exits with a documented status before anything of the application ran.
//! Only then [`launch`] hands over to the [`restorer`], which tears the
//! fresh address space down and rebuilds the image's.

pub mod bigfiles;
pub mod check;
pub mod checksums;
pub mod clocks;
pub mod creds;
pub mod fds;
pub mod files;
pub mod group_signals;
pub mod incremental;
pub mod inotify;
pub mod lazy;
pub mod locks;
pub mod namespace;
pub mod pages;
pub mod plan;
pub mod precheck;
pub mod procattrs;
pub mod queued;
pub mod restorer;
pub mod resume;
pub mod shared_files;
pub mod sockets;
pub mod timers;
pub mod tree;
pub mod tree_exec;
pub mod tree_members;
pub mod tree_procfs;
pub mod tree_shared;
pub mod vdso;
pub mod wrapper;

use std::fs::File;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};

use dumpfmt::{FileId, Image, ImageFile, PAGE_SIZE};

use crate::config::{Overrides, PATH_MAX};
use crate::sys::{self, KernelSigaction, PrctlMmMap};
use plan::{Arg, Plan};
use resume::{HANDOFF_MAGIC, Handoff};

/// Exit statuses of a restore that did not happen (documented in the README).
pub mod exit {
    /// The image is corrupt, truncated or not an image.
    pub const CORRUPT: i32 = 65;
    /// The image cannot be opened.
    pub const NO_IMAGE: i32 = 66;
    /// The image's format version is not one this shim reads.
    pub const VERSION: i32 = 67;
    /// The image is of another program.
    pub const OTHER_PROGRAM: i32 = 68;
    /// A file the image maps is missing or changed.
    pub const FILE_CHANGED: i32 = 69;
    /// This machine or process cannot take the image (CPU, kernel, owner, threads).
    pub const UNSUPPORTED: i32 = 70;
    /// The restore failed after teardown.
    pub const TEARDOWN: i32 = 71;
}

/// Why a restore cannot go ahead.
pub struct Refusal {
    pub code: i32,
    pub msg: String,
}

pub(crate) fn refuse(code: i32, msg: impl Into<String>) -> Refusal {
    Refusal {
        code,
        msg: msg.into(),
    }
}

/// Restores the image at `path` into this process; returns only when this
/// process is a wrapper that passes the image on to the program it runs
/// (see [`wrapper`]), having done nothing.
///
/// After validation, the process tries to move into a fresh user and PID
/// namespace where the image's PID and TIDs are free (see [`namespace`]):
/// this process stays outside as a supervisor and the restore continues
/// in a child that has the image's PID. Where namespaces are not
/// available, the restore happens in this process with new TIDs.
pub fn run(path: &str, overrides: &Overrides) {
    let started = sys::monotonic_ns();
    let fail = |r: Refusal| -> ! {
        shared_files::undo();
        eprintln!("migrate: restore {path}: {}", r.msg);
        std::process::exit(r.code);
    };
    let (img, tree) = match precheck::open_any(path).unwrap_or_else(|r| fail(r)) {
        dumpfmt::Opened::Single(img) => (img, None),
        dumpfmt::Opened::Tree(t) => {
            let (root, index, sections) = tree::split(t);
            (root, Some((index, sections)))
        }
    };
    match wrapper::role(&img.image.exe, path).unwrap_or_else(|r| fail(r)) {
        wrapper::Role::Program => {}
        wrapper::Role::Wrapper { exe, word } => {
            if overrides.log.is_some_and(|l| l >= 1) {
                eprintln!(
                    "migrate: restore {path}: {exe} runs {word}, the image's program: passed on"
                );
            }
            return;
        }
    }
    if let Err(e) = overrides.check_keep(&img.image.settings.image) {
        eprintln!("migrate: restore {path}: {}", e.0);
        std::process::exit(64);
    }
    incremental::open(&img, path).unwrap_or_else(|r| fail(r));
    let lazy = lazy::decide(overrides, &img, tree.is_some(), path);
    let checked = validate(img, !lazy).unwrap_or_else(|r| fail(r));
    if lazy {
        // The supervisor checks the pages after the resume (see `lazy`).
        lazy::arm(&checked.img, path).unwrap_or_else(|r| fail(r));
    }
    let members = tree
        .map(|(index, sections)| tree::members(&checked, index, sections))
        .transpose()
        .unwrap_or_else(|r| fail(r));
    let keep_tids = namespace::enter(&checked.img.image);
    if lazy {
        lazy::disarm();
        if !keep_tids {
            lazy::verify_before_resume(&checked.img, overrides, path).unwrap_or_else(|r| fail(r));
        }
    }
    let child_overrides;
    let (checked, overrides) = match tree::fork_children(checked, members, keep_tids) {
        Ok(tree::Role::Root(c)) => (c, overrides),
        Ok(tree::Role::Member(c)) => {
            // The fidelity check is the root's: its path is one.
            child_overrides = Overrides {
                restore_check: None,
                ..overrides.clone()
            };
            (c, &child_overrides)
        }
        Err(r) => fail(r),
    };
    let path = path.to_string();
    // Zombie children, stopped children and this process's own stop.
    if let Err(r) = tree_members::settle(&checked.img.image, keep_tids) {
        fail(r);
    }
    match build(checked, &path, overrides, started, keep_tids, lazy) {
        Ok(ready) => launch(ready),
        Err(r) => fail(r),
    }
}

/// An image that passed every check, with the files it maps held open.
pub struct Checked {
    img: ImageFile,
    fds: Vec<File>,
    /// A tree member running another program than the one restoring it:
    /// its executable, which `PR_SET_MM_MAP` makes this process's (see
    /// `tree_exec`). None: the program running now is the image's.
    exe: Option<File>,
}

/// Everything `launch` needs: the placed restorer and the image's fds.
pub struct Ready {
    entry: u64,
    header: u64,
    stack_top: u64,
}

/// Opens the image once and checks the descriptor it got: a regular
/// file, owned by this user and writable by nobody else. Restoring an
/// image runs its code, so whoever can write it could run code as this
/// user. The checks look at what was opened (`fstat`), not at the path
/// again, so nothing swapped in between is trusted. A symlink may lead to
/// the image (say, `latest.img`): the file it leads to is the one checked.
fn open_checked(path: &str) -> Result<File, Refusal> {
    // O_NONBLOCK: a FIFO at the path must not hang the open; cleared below.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| refuse(exit::NO_IMAGE, format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(exit::NO_IMAGE, format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(exit::NO_IMAGE, "not a regular file"));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "image is owned by uid {}, not by this user (uid {me}); restoring it would run its code",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(
            exit::UNSUPPORTED,
            format!(
                "image is writable by group or others (mode {mode:04o}); restoring it would run code anyone of them could have put there (chmod go-w {path})"
            ),
        ));
    }
    // SAFETY: F_SETFL with an integer argument on a descriptor we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(refuse(exit::NO_IMAGE, format!("cannot read: {e}")));
    }
    Ok(file)
}

/// Identity of an open file, as the dump records it.
fn identity(file: &File, path: &str) -> std::io::Result<FileId<'static>> {
    let st = file.metadata()?;
    let mut id = [0u8; dumpfmt::BUILD_ID_MAX];
    let n = dumpfmt::build_id(|off, buf| file.read_at(buf, off).unwrap_or(0), &mut id);
    Ok(FileId {
        path: path.to_string().into(),
        size: st.size(),
        mtime_sec: st.mtime(),
        mtime_nsec: st.mtime_nsec(),
        dev: st.dev(),
        ino: st.ino(),
        build_id: id[..n].to_vec().into(),
    })
}

/// Why `now` is not the file `then` was, or None when it is the same.
/// ELF files compare by size and build-id (so an identical binary copied to
/// another host matches whatever its times); other files by size and mtime.
fn differs(then: &FileId<'_>, now: &FileId<'_>) -> Option<String> {
    if then.size != now.size {
        return Some(format!("size is {} bytes, was {}", now.size, then.size));
    }
    if !then.build_id.is_empty() || !now.build_id.is_empty() {
        return (then.build_id != now.build_id).then(|| "ELF build-id differs".to_string());
    }
    if (then.mtime_sec, then.mtime_nsec) != (now.mtime_sec, now.mtime_nsec) {
        return Some("modified since the dump".to_string());
    }
    None
}

/// One line of the fresh process's /proc/self/maps: range and name.
struct FreshMap {
    start: u64,
    end: u64,
    name: String,
}

fn fresh_maps() -> Result<Vec<FreshMap>, Refusal> {
    let text = std::fs::read_to_string("/proc/self/maps").map_err(|e| {
        refuse(
            exit::UNSUPPORTED,
            format!("cannot read /proc/self/maps: {e}"),
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| crate::dump::maps::parse_line(l.as_bytes()))
        .map(|m| FreshMap {
            start: m.start,
            end: m.end,
            name: String::from_utf8_lossy(m.name).into_owned(),
        })
        .collect())
}

/// Checks an image of this program (see [`wrapper::role`]): every page
/// checksum, the CPU, and every file it maps.
/// A lazy restore (`check_pages` false) leaves the page checksums to
/// `lazy`.
fn validate(img: ImageFile, check_pages: bool) -> Result<Checked, Refusal> {
    if check_pages {
        checksums::check(&img).map_err(|e| refuse(exit::CORRUPT, e.to_string()))?;
    }
    let image = &img.image;
    precheck::cpu(&img)?;
    match crate::dump::count_threads() {
        Ok(1) => {}
        Ok(n) => {
            return Err(refuse(
                exit::UNSUPPORTED,
                format!("{n} threads exist before restore (a library started them)"),
            ));
        }
        Err(_) => return Err(refuse(exit::UNSUPPORTED, "cannot list /proc/self/task")),
    }

    // Every mapped file, opened now and kept open for the restorer.
    let mut fds = Vec::with_capacity(image.files.len());
    for f in precheck::mapped_files(image, true) {
        fds.extend(f?);
    }
    Ok(Checked {
        img,
        fds,
        exe: None,
    })
}

/// Builds and places the restorer and its plan.
fn build(
    checked: Checked,
    path: &str,
    overrides: &Overrides,
    started: u64,
    keep_tids: bool,
    lazy: bool,
) -> Result<Ready, Refusal> {
    let Checked { mut img, fds, exe } = checked;
    // Every descriptor the restorer uses or moves into place sits above
    // every number the image or this process uses.
    let base = descriptor_base(&img.image)?;
    // The tree's barrier first, at `base` and `base + 1` (the restorer
    // keeps those two open past its last close_range, see `build_plan`).
    let barrier = match tree::take_barrier() {
        // Left open for the restorer, which closes them.
        Some(b) => Some(tree::LiftedBarrier {
            root: b.root,
            members: b.members,
            read: fds::lift(b.read, base)?.into_raw_fd() as u64,
            write: fds::lift(b.write, base)?.into_raw_fd() as u64,
        }),
        None => None,
    };
    img.file = File::from(fds::lift(img.file.into(), base)?);
    incremental::lift(base)?;
    // Left open for the restorer: it closes with close_range.
    let exe_fd = match exe {
        Some(f) => fds::lift(f.into(), base)?.into_raw_fd() as u32,
        None => u32::MAX,
    };
    let fds = fds
        .into_iter()
        .map(|f| fds::lift(f.into(), base).map(File::from))
        .collect::<Result<Vec<_>, _>>()?;
    let made = fds::make(&img.image, (&img.file, img.base), base)?;
    // Pipes shared with the tree's other processes: what this process
    // uses of them is in `made` now; the rest must not stay open here.
    tree::close_shared_pipes();
    // Shared memory, socket pairs, descriptions: likewise; the source
    // mappings of the shared memory this process maps stay for the plan.
    let sources = tree_shared::source_mappings(&img.image);
    tree_shared::close();
    tree_shared::check_pages(&img.image, &sources)?;
    precheck::cwd(&img.image)?;
    let image = &img.image;
    let mut fresh = fresh_maps()?;
    let mut kernel = vdso::decide(&img, &fresh)?;
    vdso::prepare(&mut kernel, base)?;
    if let vdso::Kernel::Proxy(p) = &kernel
        && overrides.log.is_some_and(|l| l >= 1)
    {
        let (jumps, calls, traps) = p.counts;
        eprintln!(
            "migrate: restore {path}: the image comes from another kernel: its vDSO at {:#x} is proxied to this kernel's at {:#x} ({jumps} entry points jump, {calls} make their system call, {traps} trap)",
            p.at, p.new_vdso
        );
    }
    let mut plan = Plan::default();
    let creds_now = creds::check(image)?;
    procattrs::set_before_teardown(image)?;
    let timers = timers::check(image, keep_tids)?;
    let placing = pages::placing(&img, lazy)?;
    queued::check(image, keep_tids)?;
    let handoff_off = build_plan(
        &mut plan,
        image,
        &placing,
        &fds,
        &kernel,
        &made,
        (keep_tids, &creds_now, &timers, &sources, barrier, exe_fd),
    )?;

    // Place the restorer where neither address space has anything.
    let code = restorer::code();
    let len = plan.mapping_len(code.len());
    if let Some((start, end)) = kernel.reserved() {
        // Where this kernel's vDSO goes is taken.
        fresh.push(FreshMap {
            start,
            end,
            name: String::new(),
        });
    }
    let gap = find_gap(image, &fresh, len)
        .ok_or_else(|| refuse(exit::UNSUPPORTED, "no free address range for the restorer"))?;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: a new anonymous mapping in a range no mapping uses (NOREPLACE checks).
    let mem = unsafe {
        libc::mmap(
            gap as *mut _,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if mem as u64 != gap {
        return Err(refuse(exit::UNSUPPORTED, "cannot map the restorer"));
    }
    // SAFETY: the mapping was just created, `len` bytes, read-write, ours alone.
    let buf = unsafe { core::slice::from_raw_parts_mut(mem.cast::<u8>(), len as usize) };
    let placed = plan.place(code, gap, buf, exit::TEARDOWN);
    let mut h = Handoff {
        magic: HANDOFF_MAGIC,
        gap_start: gap,
        gap_len: len,
        started_ns: started,
        signal: overrides.signal.map_or(0, i64::from),
        exit_after_dump: overrides.exit_after_dump.map_or(-1, i64::from),
        log: overrides.log.map_or(-1, i64::from),
        image_len: 0,
        image: [0; PATH_MAX],
        from_len: 0,
        from: [0; PATH_MAX],
        threads: image.threads.len() as u64,
        refuse_external: overrides.refuse_external.map_or(-1, i64::from),
        children: overrides.children.map_or(-1, i64::from),
        check_len: 0,
        interval_ns: overrides.interval_ns.map_or(-1, |ns| ns as i64),
        keep: overrides.keep.map_or(-1, i64::from),
        frame: crate::cpu::kernel_frame(&img),
        status_pid: 0,
        status_starttime: 0,
        lazy_source: if lazy { lazy::identity(&img) } else { (0, 0) },
        snapshot: overrides.snapshot.map_or(-1, i64::from),
        compress: crate::dump::compress::relaunch_level().map_or(-1, i64::from),
    };
    if keep_tids {
        // The supervisor (this process before `namespace::enter`) is
        // the PID the user holds.
        (h.status_pid, h.status_starttime) = namespace::supervisor();
    }
    if let Some(img) = &overrides.image {
        h.image[..img.len()].copy_from_slice(img.as_bytes());
        h.image_len = img.len() as u64;
    }
    let from = std::fs::canonicalize(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or(path.to_string());
    let n = from.len().min(PATH_MAX);
    h.from[..n].copy_from_slice(&from.as_bytes()[..n]);
    h.from_len = n as u64;
    if let Some(check) = &overrides.restore_check {
        // The path follows the block (see `check::arm`), which stays small.
        h.check_len = check.len() as u64;
        let after = handoff_off + size_of::<Handoff>();
        plan.write_data(buf, code.len(), after, check.as_bytes());
    }
    plan.write_data(buf, code.len(), handoff_off, plan::as_bytes(&h));
    // SAFETY: the code pages of our own fresh mapping become read-execute.
    if unsafe {
        libc::mprotect(
            mem,
            placed.code_len as usize,
            libc::PROT_READ | libc::PROT_EXEC,
        )
    } != 0
    {
        return Err(refuse(
            exit::UNSUPPORTED,
            "cannot make the restorer executable",
        ));
    }
    for (i, _) in shared_files::data_files(image)
        .iter()
        .enumerate()
        .filter(|(_, d)| **d)
    {
        shared_files::fill(image, i as u32, &fds[i])?;
    }
    // The restorer uses these through the plan; they close with close_range.
    for f in fds {
        let _ = f.into_raw_fd();
    }
    for m in made.made {
        let _ = m.temp.into_raw_fd();
    }
    let _ = img.file.into_raw_fd();
    if let vdso::Kernel::Proxy(p) = kernel {
        let _ = p.memfd.map(IntoRawFd::into_raw_fd);
    }
    Ok(Ready {
        entry: gap,
        header: placed.header,
        stack_top: placed.stack_top,
    })
}

/// A descriptor number above every one the image uses and every one open
/// now; the soft RLIMIT_NOFILE is raised (up to the hard one) to reach it.
fn descriptor_base(image: &Image<'_>) -> Result<i32, Refusal> {
    let open_now = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .max()
                .unwrap_or(2)
        })
        .unwrap_or(2);
    let highest = image
        .fds
        .iter()
        .map(|f| f.fd)
        .max()
        .unwrap_or(2)
        .max(open_now)
        .max(sockets::highest(image));
    let base = highest + 1;
    let need = base as u64 + image.fds.len() as u64 + image.files.len() as u64 + 64;
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut lim: libc::rlimit = core::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < need {
            if lim.rlim_max < need {
                return Err(refuse(
                    exit::UNSUPPORTED,
                    format!("the image uses descriptor {highest}, above this process's limit"),
                ));
            }
            lim.rlim_cur = need;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    Ok(base)
}

use plan::TASK_END;

/// A free range of `len` bytes, away from every mapping of both address
/// spaces by a margin.
fn find_gap(image: &Image<'_>, fresh: &[FreshMap], len: u64) -> Option<u64> {
    const MARGIN: u64 = 1 << 20;
    let mut busy: Vec<(u64, u64)> = image.mappings.iter().map(|m| (m.start, m.end)).collect();
    busy.extend(
        fresh
            .iter()
            .filter(|m| m.end <= TASK_END)
            .map(|m| (m.start, m.end)),
    );
    busy.push((
        image.mm.start_brk,
        image.mm.brk.max(image.mm.start_brk) + (64 << 20),
    ));
    busy.sort_unstable();
    let mut cand = 1u64 << 32;
    for (s, e) in busy {
        if e + MARGIN <= cand {
            continue;
        }
        if s >= cand + len + MARGIN {
            return Some(cand);
        }
        cand = cand.max((e + MARGIN).next_multiple_of(PAGE_SIZE));
    }
    (cand + len + MARGIN <= TASK_END).then_some(cand)
}

/// Appends the whole restore to `plan`; returns the handoff's data offset.
fn build_plan(
    plan: &mut Plan,
    image: &Image<'_>,
    placing: &pages::Placing,
    fds: &[File],
    kernel: &vdso::Kernel,
    made: &fds::MadeFds,
    (keep_tids, creds_now, timer_plan, sources, barrier, exe_fd): (
        bool,
        &dumpfmt::Credentials,
        &timers::TimerPlan,
        &tree_shared::Sources,
        Option<tree::LiftedBarrier>,
        u32,
    ),
) -> Result<usize, Refusal> {
    use libc::*;
    let v = |x: u64| Arg::V(x);

    // 1. Unmap everything of the fresh process but the restorer and the vDSO:
    //    the holes between them are filled in when the plan is placed.
    let keep: Vec<(u64, u64)> = kernel
        .moves()
        .iter()
        .map(|&(from, _, size)| (from, from + size))
        .chain(sources.keep.iter().copied())
        .collect();
    plan.unmap_all_but(&keep);

    // 2. Move the vDSO and friends to the image's addresses (or, on
    //    another kernel, aside where they collide with the image's
    //    mappings: see `vdso`), through a staging area so that
    //    overlapping old and new ranges cannot collide.
    let mut staged = 0u64;
    let mut moves = Vec::new();
    for &(from, to, size) in kernel.moves() {
        if from != to {
            let flags = (MREMAP_MAYMOVE | MREMAP_FIXED) as u64;
            plan.call(
                SYS_mremap,
                &[v(from), v(size), v(size), v(flags), Arg::Staging(staged)],
                Arg::Staging(staged),
                "restore: cannot move the vDSO aside",
            );
            moves.push((staged, to, size));
            staged += size;
        }
    }
    for (at, to, size) in moves {
        let flags = (MREMAP_MAYMOVE | MREMAP_FIXED) as u64;
        plan.call(
            SYS_mremap,
            &[Arg::Staging(at), v(size), v(size), v(flags), v(to)],
            v(to),
            &format!("restore: cannot move the vDSO to {to:#x}"),
        );
    }
    plan.staging = staged;

    // 3. Every mapping of the image, then its pages (see `pages`), each
    //    run read from the file that holds it (an incremental image's
    //    parents hold some).
    pages::map_all(plan, image, fds, kernel, made, sources, placing)?;

    tree_shared::unmap_ops(plan, &sources.keep);

    // 4. The memory descriptor: brk, stack, arguments, environment, auxv.
    let auxv = vdso::auxv(image, kernel);
    let auxv_off = plan.bytes(plan::as_bytes_slice(&auxv));
    let map = PrctlMmMap {
        mm: image.mm,
        auxv: 0,
        auxv_size: (auxv.len() * 8) as u32,
        // A member of another program gets its executable back here, its
        // restorer's own program unmapped by now (the kernel refuses to
        // replace an executable still mapped).
        exe_fd,
    };
    let map_off = plan.data(&map);
    plan.patch_pointer(map_off + core::mem::offset_of!(PrctlMmMap, auxv), auxv_off);
    plan.call(
        SYS_prctl,
        &[
            v(sys::PR_SET_MM),
            v(sys::PR_SET_MM_MAP),
            Arg::Data(map_off),
            v(size_of::<PrctlMmMap>() as u64),
            v(0),
        ],
        v(0),
        "restore: prctl(PR_SET_MM_MAP) failed",
    );

    // 5. FS base and clear_child_tid of the main thread (the other threads
    //    get theirs from clone3).
    let main = image
        .threads
        .iter()
        .position(|t| t.tid == image.pid)
        .ok_or_else(|| {
            refuse(
                exit::UNSUPPORTED,
                "the image has no main thread (it had exited)",
            )
        })?;
    let t = &image.threads[main];
    plan.call(
        SYS_arch_prctl,
        &[v(sys::ARCH_SET_FS), v(t.fs_base)],
        v(0),
        "restore: cannot set the FS base",
    );
    plan.call_any(SYS_set_tid_address, &[v(t.clear_child_tid)]);

    // 6. Signal dispositions: every signal, default unless the image says otherwise.
    for sig in 1..=64u8 {
        if i32::from(sig) == SIGKILL || i32::from(sig) == SIGSTOP {
            continue;
        }
        let act = image.sigactions.iter().find(|a| a.signal == sig).map_or(
            KernelSigaction::default(),
            |a| KernelSigaction {
                handler: a.handler,
                flags: a.flags,
                restorer: a.restorer,
                mask: a.mask,
            },
        );
        let off = plan.data(&act);
        plan.call(
            SYS_rt_sigaction,
            &[v(u64::from(sig)), Arg::Data(off), v(0), v(8)],
            v(0),
            &format!("restore: cannot set the action of signal {sig}"),
        );
    }

    // 7. Descriptors: close what the fresh process had beyond stdio, move
    //    each one made for the image to its number, rebuild the epoll
    //    interest lists (they name descriptors by number), and close the
    //    temporaries, the image and the mapped files.
    let base = made.base as u64;
    plan.call(
        SYS_close_range,
        &[v(3), v(base - 1), v(0)],
        v(0),
        "restore: close_range failed",
    );
    sockets::plan_aliases(plan, image, &made.made)?;
    for m in &made.made {
        let flags = if m.cloexec { O_CLOEXEC as u64 } else { 0 };
        let target = m.target as u64;
        plan.call(
            SYS_dup3,
            &[v(m.temp.as_raw_fd() as u64), v(target), v(flags)],
            v(target),
            &format!("restore: cannot move fd {target} into place"),
        );
    }
    for fd in image.fds.iter() {
        if let dumpfmt::FdKind::Epoll { entries } = &fd.kind {
            for (i, e) in entries.iter().enumerate() {
                if sockets::aliased(image, fd.fd, i) {
                    continue;
                }
                // struct epoll_event is packed on x86-64: u32 events, u64 data.
                let mut ev = [0u8; 12];
                ev[..4].copy_from_slice(&e.events.to_ne_bytes());
                ev[4..].copy_from_slice(&e.data.to_ne_bytes());
                let off = plan.bytes(&ev);
                let args = [
                    v(fd.fd as u64),
                    v(EPOLL_CTL_ADD as u64),
                    v(e.fd as u64),
                    Arg::Data(off),
                ];
                if e.fd <= 2 {
                    // Stdio is the relaunch's now: watch it if epoll can
                    // (a regular file cannot be watched, and need not be).
                    plan.call_any(SYS_epoll_ctl, &args);
                } else if image.fds.binary_search_by_key(&e.fd, |f| f.fd).is_ok() {
                    let what = format!("restore: cannot add fd {} to epoll fd {}", e.fd, fd.fd);
                    plan.call(SYS_epoll_ctl, &args, v(0), &what);
                }
                // Otherwise the watched fd was closed after it was added
                // (epoll forgets a file only when its last fd closes):
                // nothing by that number remains to watch.
            }
        }
    }
    // Memfd seals, now that the mappings that needed write access exist.
    for fd in image.fds.iter() {
        if let dumpfmt::FdKind::Contents {
            memfd: true, seals, ..
        } = fd.kind
            && seals != 0
        {
            plan.call_any(
                SYS_fcntl,
                &[v(fd.fd as u64), v(F_ADD_SEALS as u64), v(u64::from(seals))],
            );
        }
    }
    // The tree's barrier's two descriptors stay open until it is passed.
    let first_closed = match &barrier {
        Some(b) => b.read.max(b.write) + 1,
        None => base,
    };
    plan.call(
        SYS_close_range,
        &[v(first_closed), v(u64::from(u32::MAX)), v(0)],
        v(0),
        "restore: close_range failed",
    );

    // 7b. The rest of the process: working directory, umask, personality,
    //     limits, interval timers, signals that were pending.
    let p = &image.process;
    let cwd = plan.bytes(format!("{}\0", p.cwd).as_bytes());
    plan.call(
        SYS_chdir,
        &[Arg::Data(cwd)],
        v(0),
        &format!("restore: cannot enter {}", p.cwd),
    );
    plan.call_any(SYS_umask, &[v(u64::from(p.umask))]);
    plan.call_any(SYS_personality, &[v(p.personality)]);
    procattrs::process_ops(plan, image);
    for &(res, soft, hard) in p.rlimits.iter() {
        // Raising a hard limit needs privilege: a limit that cannot be set stays as it is.
        let off = plan.data(&[soft, hard]);
        plan.call_any(
            SYS_prlimit64,
            &[v(0), v(u64::from(res)), Arg::Data(off), v(0)],
        );
    }
    procattrs::mapping_ops(plan, image);
    for (which, &(value, interval)) in p.itimers.iter().enumerate() {
        // A timer that has just expired reads 0 with its signal still
        // pending; the kernel re-arms it only as that signal is taken.
        // Armed again with its interval, the pending signal (restored
        // below) and the next expiry come as they would have.
        let value = if value == 0 { interval } else { value };
        if value != 0 {
            let tv = |us: u64| [(us / 1_000_000) as i64, (us % 1_000_000) as i64];
            let (i, val) = (tv(interval), tv(value));
            let off = plan.data(&[i[0], i[1], val[0], val[1]]);
            plan.call(
                SYS_setitimer,
                &[v(which as u64), Arg::Data(off), v(0)],
                v(0),
                "restore: cannot set an interval timer",
            );
        }
    }
    for sig in 1..=64u64 {
        if p.pending & (1 << (sig - 1)) != 0 && sig != u64::from(image.settings.signal) {
            // This process's PID (the image's only inside a PID namespace).
            // SAFETY: getpid has no preconditions.
            plan.call_any(SYS_kill, &[v(unsafe { getpid() } as u64), v(sig)]);
        }
    }

    // The tree's barrier: every process of the tree is restored (but for
    // its threads' last steps, which run no code of the program) before
    // any goes on.
    if let Some(b) = &barrier {
        tree::barrier_ops(plan, b);
        plan.call(
            SYS_close_range,
            &[v(base), v(first_closed - 1), v(0)],
            v(0),
            "restore: close_range failed",
        );
    }

    // 8. The other threads, each finishing its own state and resuming;
    //    then the main thread does the same.
    // The handoff block, then room for the check path (see `check::arm`).
    let handoff_off = plan.bytes(&vec![0u8; size_of::<Handoff>() + crate::config::PATH_MAX]);
    for (i, t) in image.threads.iter().enumerate() {
        if i == main {
            continue;
        }
        let stack = plan.bytes(&[0u8; 4096]);
        let set_tid = plan.data(&t.tid);
        let mut flags = (CLONE_VM
            | CLONE_FS
            | CLONE_FILES
            | CLONE_SIGHAND
            | CLONE_THREAD
            | CLONE_SYSVSEM
            | CLONE_SETTLS) as u64;
        if t.clear_child_tid != 0 {
            flags |= CLONE_CHILD_CLEARTID as u64;
        }
        let args = CloneArgs {
            flags,
            child_tid: t.clear_child_tid,
            stack_size: 4096,
            tls: t.fs_base,
            set_tid_size: u64::from(keep_tids),
            ..CloneArgs::default()
        };
        let args_off = plan.data(&args);
        plan.patch_pointer(args_off + 40, stack);
        if keep_tids {
            plan.patch_pointer(args_off + 64, set_tid);
        }
        let want = image.minor1.credentials.get(i);
        let attrs = image.minor4.procattrs.threads.get(i);
        let child = plan.child(|plan| {
            queued::thread_ops(plan, image, t.tid);
            thread_ops(plan, t, (creds_now, want, attrs), handoff_off)
        });
        let what = format!("restore: cannot create thread {}", t.tid);
        plan.clone_thread(args_off, size_of::<CloneArgs>() as u64, child, &what);
    }
    // 9. POSIX timers, once every thread a timer may signal exists.
    timers::ops(plan, image, timer_plan, keep_tids);
    // 9b. Queued signals, once every thread they wait for exists.
    queued::ops(plan, image);
    // 9c. File locks, now that no descriptor will be closed.
    locks::ops(plan, image);
    let want = image.minor1.credentials.get(main);
    let attrs = image.minor4.procattrs.threads.get(main);
    thread_ops(plan, t, (creds_now, want, attrs), handoff_off);
    Ok(handoff_off)
}

/// `struct clone_args` up to `set_tid_size` (CLONE_ARGS_SIZE_VER1).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
}

/// What a thread sets for itself before resuming: GS base, robust list,
/// rseq, name, its credentials (`want`, when the image has them, from
/// `now`) and then its timer slack and parent-death signal, the signal mask it had in the handler; then the jump back.
fn thread_ops(
    plan: &mut Plan,
    t: &dumpfmt::ThreadState,
    (now, want, attrs): (
        &dumpfmt::Credentials,
        Option<&dumpfmt::Credentials>,
        Option<&dumpfmt::ThreadAttrs>,
    ),
    handoff_off: usize,
) {
    let v = Arg::V;
    if let Some(want) = want {
        creds::thread_ops(plan, now, want);
    }
    procattrs::thread_ops(plan, attrs);
    if t.gs_base != 0 {
        plan.call(
            libc::SYS_arch_prctl,
            &[v(sys::ARCH_SET_GS), v(t.gs_base)],
            v(0),
            "restore: cannot set the GS base",
        );
    }
    if t.robust_list != 0 {
        plan.call(
            libc::SYS_set_robust_list,
            &[v(t.robust_list), v(t.robust_list_len)],
            v(0),
            "restore: set_robust_list failed",
        );
    }
    if t.rseq_addr != 0 {
        let args = [
            v(t.rseq_addr),
            v(u64::from(t.rseq_len)),
            v(0),
            v(u64::from(t.rseq_sig)),
        ];
        plan.call(libc::SYS_rseq, &args, v(0), "restore: cannot register rseq");
    }
    if t.name[0] != 0 {
        let name = plan.data(&t.name);
        plan.call(
            libc::SYS_prctl,
            &[v(libc::PR_SET_NAME as u64), Arg::Data(name)],
            v(0),
            "restore: cannot set a thread name",
        );
    }
    let mask = plan.data(&t.sigmask);
    let args = [v(libc::SIG_SETMASK as u64), Arg::Data(mask), v(0), v(8)];
    plan.call(
        libc::SYS_rt_sigprocmask,
        &args,
        v(0),
        "restore: cannot set the signal mask",
    );
    let regs = t.context;
    let regs_off = plan.data(&regs);
    plan.resume(regs_off, handoff_off);
}

/// Jumps to the restorer on its own stack; never returns.
fn launch(ready: Ready) -> ! {
    // No signal may arrive while the address space is half rebuilt, nor
    // in the threads it starts (they inherit this mask) before they set
    // their own: glibc's internal signals too (glibc's `sigfillset` leaves
    // them out), or a SIGEV_THREAD timer's SIGTIMER (32, default action:
    // terminate) would kill the process before its helper blocks it.
    let all = !0u64;
    // SAFETY: rt_sigprocmask reads one 8-byte set.
    let _ = unsafe {
        sys::sys(
            libc::SYS_rt_sigprocmask,
            sys::args!(libc::SIG_SETMASK, &all as *const u64, 0, 8),
        )
    };
    // glibc registered rseq for this thread inside memory about to vanish:
    // the kernel would write to it on every return to user space.
    // SAFETY: the settings were filled in by the constructor.
    let s = unsafe { crate::config::SETTINGS.get() };
    if s.rseq_len != 0 {
        let area = sys::arch_get(sys::ARCH_GET_FS).wrapping_add(s.rseq_offset as u64);
        // SAFETY: unregistering this thread's own rseq area.
        let r = unsafe {
            sys::sys(
                sys::SYS_rseq,
                sys::args!(area, s.rseq_len, sys::RSEQ_FLAG_UNREGISTER, sys::RSEQ_SIG),
            )
        };
        if r.is_err() {
            eprintln!(
                "migrate: restore: cannot unregister rseq (length {})",
                s.rseq_len
            );
            std::process::exit(exit::UNSUPPORTED);
        }
    }
    // SAFETY: the restorer mapping holds the routine, its plan and its
    // stack; it never returns, and nothing of this process is used again.
    unsafe {
        core::arch::asm!(
            "mov rsp, {stack}",
            "jmp {entry}",
            stack = in(reg) ready.stack_top,
            entry = in(reg) ready.entry,
            in("rdi") ready.header,
            options(noreturn),
        )
    }
}
