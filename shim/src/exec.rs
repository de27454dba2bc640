//! Running another program without dying of a tree dump (issue 9).
//!
//! `execve` resets every caught signal to its default action; the dump
//! signal's (`SIGUSR2`, or an RT signal) terminates. A tree dump that
//! checked a child's `SigCgt` just before the child called `execve`, and
//! sent the dump signal while it was inside it, would kill it. So the
//! program's `execve`, `execv`, `execvp`, `execvpe` and `fexecve` are
//! interposed: each blocks the dump signal first (the mask survives the
//! exec), and unblocks it again if the exec fails. A dump signal sent
//! meanwhile stays pending, through the exec, until the new program's
//! copy of this library has installed its handler: its constructor
//! unblocks the dump signal last (`crate::init`), and takes the request
//! then, as a member of the tree. The root's check counts such a process
//! as ready ([`crate::tree::participant`]: the library mapped, the signal
//! blocked).
//!
//! What remains: glibc's `posix_spawn` (and `system`, `popen`) reach
//! the kernel's `execve` through glibc's internal symbol, not these; its
//! child resets the handlers itself and unblocks every signal just before
//! its `execve`. Sent between the root's check and that reset, the dump
//! signal kills such a child; sent after it, the check sees the signal
//! not caught and the dump fails, naming the child.
//! A process that has just exec'd and whose library ld.so has not mapped
//! yet fails the dump the same way ("is starting a program").
//!
//! # Safety
//!
//! C entry points: they trust their arguments as libc does. No heap: they
//! may run in a `vfork` child.

use core::ffi::c_char;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::config::SETTINGS;
use crate::interpose;

/// Blocks the dump signal (if the library handles one); returns the mask
/// to go back to if the exec fails.
fn block_dump_signal() -> Option<libc::sigset_t> {
    if !interpose::ACTIVE.load(Relaxed) {
        return None;
    }
    // SAFETY: the constructor wrote the signal before ACTIVE was set.
    let sig = unsafe { SETTINGS.get() }.signal;
    // SAFETY: valid sets, a valid signal number.
    unsafe {
        let mut only: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut only);
        libc::sigaddset(&mut only, sig);
        let mut old: libc::sigset_t = core::mem::zeroed();
        (interpose::real_sigprocmask(libc::SIG_BLOCK, &only, &mut old) == 0).then_some(old)
    }
}

/// Puts back the mask [`block_dump_signal`] returned, keeping errno.
fn restore_mask(old: Option<libc::sigset_t>) {
    let Some(old) = old else { return };
    // SAFETY: errno is this thread's; `old` is a valid set.
    unsafe {
        let e = *libc::__errno_location();
        interpose::real_sigprocmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        *libc::__errno_location() = e;
    }
}

fn next(cache: &AtomicUsize, name: &core::ffi::CStr) -> usize {
    let mut f = cache.load(Relaxed);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        cache.store(f, Relaxed);
    }
    f
}

macro_rules! exec_with_dump_signal_blocked {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*)) => {
        /// libc's function of the same name, resolved by [`init`].
        mod $name {
            pub static REAL: super::AtomicUsize = super::AtomicUsize::new(0);
            // SAFETY: the literal ends with its only NUL.
            pub const NAME: &core::ffi::CStr = unsafe {
                core::ffi::CStr::from_bytes_with_nul_unchecked(concat!(stringify!($name), "\0").as_bytes())
            };
        }

        $(#[$doc])*
        ///
        /// # Safety
        /// As the libc function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> i32 {
            let f = next(&$name::REAL, $name::NAME);
            if f == 0 {
                // SAFETY: errno is this thread's.
                unsafe { *libc::__errno_location() = libc::ENOSYS };
                return -1;
            }
            let old = block_dump_signal();
            // SAFETY: `f` is libc's function of this name and type; the
            // arguments are the caller's, as libc takes them.
            let r = unsafe {
                core::mem::transmute::<usize, unsafe extern "C" fn($($ty),*) -> i32>(f)($($arg),*)
            };
            restore_mask(old);
            r
        }
    };
}

exec_with_dump_signal_blocked! {
    /// `execve(2)` with the dump signal blocked across it.
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char)
}
exec_with_dump_signal_blocked! {
    /// As `execve`.
    fn execv(path: *const c_char, argv: *const *const c_char)
}
exec_with_dump_signal_blocked! {
    /// As `execve`.
    fn execvp(file: *const c_char, argv: *const *const c_char)
}
exec_with_dump_signal_blocked! {
    /// As `execve`.
    fn execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char)
}
exec_with_dump_signal_blocked! {
    /// As `execve`.
    fn fexecve(fd: i32, argv: *const *const c_char, envp: *const *const c_char)
}

/// Resolves libc's functions early (the constructor): a `vfork` child
/// must not run dlsym.
pub fn init() {
    for (real, name) in [
        (&execve::REAL, execve::NAME),
        (&execv::REAL, execv::NAME),
        (&execvp::REAL, execvp::NAME),
        (&execvpe::REAL, execvpe::NAME),
        (&fexecve::REAL, fexecve::NAME),
    ] {
        next(real, name);
    }
}

/// The constructor's last step, its handler installed: the dump signal
/// unblocked, whoever blocked it (the `execve` that started this program,
/// above; a program cannot block it, see `crate::interpose`). A request
/// sent during the exec is taken now.
pub fn unblock_dump_signal(sig: i32) {
    // SAFETY: valid sets, a valid signal number.
    unsafe {
        let mut only: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut only);
        libc::sigaddset(&mut only, sig);
        interpose::real_sigprocmask(libc::SIG_UNBLOCK, &only, core::ptr::null_mut());
    }
}
