//! `libmigrate.so`: checkpoint and restore of an unmodified program from
//! inside itself.
//!
//! Loaded with `LD_PRELOAD`, its constructor either restores the image
//! named by `MIGRATE_RESTORE` (see [`restore`]) or installs a handler for
//! the dump signal (see [`dump`]), writes the process's status file,
//! which `migrate dump` and `migrate ps` read (see [`status`]), and, with
//! `MIGRATE_INTERVAL`, starts the timer of periodic dumps (see
//! [`dump::periodic`]). In a setuid or setgid process it does
//! nothing at all, nor in a wrapper (`timeout 60 ./app`) that will run the
//! program an image named by `MIGRATE_RESTORE` is of (see
//! [`restore::wrapper`]).

mod alloc;
pub mod config;
pub mod cpu;
pub mod dump;
pub mod exec;
pub mod fault;
pub mod inotify;
pub mod interpose;
pub mod restore;
pub mod rseq;
pub mod seeds;
pub mod status;
pub mod sys;
pub mod tree;

use config::{Overrides, SETTINGS};

/// Offset of the cached TID in glibc 2.36's `struct pthread`; checked
/// against `gettid()` before use.
const GLIBC_PTHREAD_TID_OFFSET: u32 = 720;
/// rseq length glibc registers (larger than `__rseq_size`, see DESIGN.md).
const GLIBC_RSEQ_LEN: u32 = 32;

#[ctor::ctor]
fn init() {
    if linked_into_program() {
        return;
    }
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return;
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d.to_string_lossy().into_owned(),
        Err(e) => {
            eprintln!("migrate: cannot read the working directory: {e}");
            std::process::exit(64);
        }
    };
    let overrides = match Overrides::from_env(&cwd) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("migrate: {}", e.0);
            std::process::exit(64);
        }
    };
    if let Err(e) = dump::compress::configure_from_env() {
        eprintln!("migrate: {e}");
        std::process::exit(64);
    }
    if let Err(e) = fault::arm_from_env() {
        eprintln!("migrate: {e}");
        std::process::exit(64);
    }
    dump::panic::install_hook();
    interpose::init();
    rseq::init();
    seeds::init();
    exec::init();
    // Warm crc32fast's CPU-feature detection outside the signal handler.
    let _ = crc32fast::hash(&[0u8; 64]);
    // SAFETY: the constructor runs before any other code of the shim, alone.
    let s = unsafe { SETTINGS.get() };
    s.rseq_offset = 0;
    s.rseq_len = 0;
    if let Some((off, size)) = glibc_rseq()
        && size > 0
    {
        s.rseq_offset = off;
        s.rseq_len = GLIBC_RSEQ_LEN;
    }
    s.pthread_tid_offset = if tid_offset_ok(GLIBC_PTHREAD_TID_OFFSET) {
        GLIBC_PTHREAD_TID_OFFSET
    } else {
        0
    };

    if let Ok(path) = std::env::var("MIGRATE_RESTORE")
        && !path.is_empty()
    {
        // Returns only in a wrapper that runs the image's program (see
        // `restore::wrapper`): it keeps no handler, so it is not dumpable
        // as if it were the program.
        restore::run(&path, &overrides);
        return;
    }
    s.image.clear();
    s.image.str(&cwd).str("/migrate-%p.img");
    if let Err(e) = overrides.check_keep(&format!("{cwd}/migrate-%p.img")) {
        eprintln!("migrate: {}", e.0);
        std::process::exit(64);
    }
    overrides.apply(s);
    // First: it may run the program again, with the environment whole.
    if let Some(level) = cpu::level_of(s.cpu_level)
        && let Err(e) = cpu::start(&level)
    {
        eprintln!("migrate: {e}");
        std::process::exit(64);
    }
    // Periodic dumping is this process's alone: a forked child has no
    // POSIX timers, and a program it execs must not start its own.
    for var in ["MIGRATE_INTERVAL", "MIGRATE_KEEP"] {
        // SAFETY: the constructor runs before main, with no other thread
        // of the program reading the environment.
        unsafe { std::env::remove_var(var) };
    }
    dump::periodic::configure(overrides.interval_ns, overrides.keep);
    if let Err(e) = install_handler(s.signal) {
        eprintln!(
            "migrate: cannot install the handler for signal {}: {e}",
            s.signal
        );
        return;
    }
    // The handler exists before the status says so (`migrate dump` sends
    // the signal once it reads the status), and cannot run while the
    // status is set up.
    let mut only = empty_sigset();
    // SAFETY: a valid set and signal number.
    unsafe { libc::sigaddset(&mut only, s.signal) };
    let mut old = empty_sigset();
    // SAFETY: valid sets.
    unsafe { interpose::real_sigprocmask(libc::SIG_BLOCK, &only, &mut old) };
    status::at_start();
    // SAFETY: valid sets.
    unsafe { interpose::real_sigprocmask(libc::SIG_SETMASK, &old, core::ptr::null_mut()) };
    // Blocked across the `execve` that started this program when its
    // parent carries the library too (see `exec`): a tree dump's request
    // sent meanwhile is taken here.
    exec::unblock_dump_signal(s.signal);
    if let Err(e) = dump::periodic::start(s.signal) {
        eprintln!(
            "migrate: cannot create the timer for MIGRATE_INTERVAL, no periodic dumps: {}",
            sys::line::errno_name(e)
        );
    }
}

/// Whether this code is part of the program itself (the rlib linked into
/// the `migrate` command, which shares the restore's checks) rather than
/// the preloaded library: there the constructor must do nothing.
fn linked_into_program() -> bool {
    // SAFETY: dladdr fills the structs it is given; AT_ENTRY is an address
    // inside the main program.
    unsafe {
        let mut ours: libc::Dl_info = core::mem::zeroed();
        let mut main: libc::Dl_info = core::mem::zeroed();
        let entry = libc::getauxval(libc::AT_ENTRY) as *const libc::c_void;
        let here = linked_into_program as *const () as *const libc::c_void;
        libc::dladdr(here, &mut ours) != 0
            && libc::dladdr(entry, &mut main) != 0
            && ours.dli_fbase == main.dli_fbase
    }
}

/// glibc's `__rseq_offset` and `__rseq_size` (glibc >= 2.35), if present.
fn glibc_rseq() -> Option<(i64, u32)> {
    // SAFETY: dlsym with NUL-terminated names; the symbols, when present,
    // are glibc's read-only variables of these types.
    unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr());
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr());
        if off.is_null() || size.is_null() {
            return None;
        }
        Some((*(off as *const isize) as i64, *(size as *const u32)))
    }
}

/// Whether glibc keeps this thread's TID at `off` from the thread pointer.
fn tid_offset_ok(off: u32) -> bool {
    let fs = sys::arch_get(sys::ARCH_GET_FS);
    if fs == 0 {
        return false;
    }
    // SAFETY: the thread descriptor is far larger than 724 bytes and mapped
    // (glibc's `struct pthread` of the main thread).
    let v = unsafe { ((fs + u64::from(off)) as *const i32).read_volatile() };
    v == sys::gettid()
}

extern "C" fn on_signal(_sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo and ucontext to an
    // SA_SIGINFO handler.
    unsafe { dump::on_dump_signal(info, uc.cast()) };
}

fn install_handler(sig: i32) -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; we fill handler, flags and a
    // full mask (nothing interrupts a dump) and install it.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigfillset(&mut sa.sa_mask);
        if interpose::real_sigaction(sig, &sa, core::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    interpose::ACTIVE.store(true, core::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn empty_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}
