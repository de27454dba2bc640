//! Keeping the dump signal the library's: `sigaction`, `signal`,
//! `sigprocmask` and `pthread_sigmask` are interposed (the library is
//! preloaded, so the program's calls reach these first).
//!
//! For the dump signal, the program's handler is recorded, reported back
//! by later calls, and never installed; blocking the dump signal is
//! ignored. Every other signal passes straight through to libc. The
//! library's own code calls the `real_*` functions.
//!
//! # Safety
//!
//! These are C entry points: they trust their pointer arguments as libc
//! would, and forward to libc's own functions found with
//! `dlsym(RTLD_NEXT, ...)`.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::config::{Global, SETTINGS};
use crate::sys::KernelSigaction;

/// Set once the dump handler is installed: from then on the dump signal
/// is the library's.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The program's own action for the dump signal (never installed).
pub static APP_ACTION: Global<KernelSigaction> = Global::new(KernelSigaction {
    handler: 0,
    flags: 0,
    restorer: 0,
    mask: 0,
});

type SigactionFn = unsafe extern "C" fn(i32, *const libc::sigaction, *mut libc::sigaction) -> i32;
type SigmaskFn = unsafe extern "C" fn(i32, *const libc::sigset_t, *mut libc::sigset_t) -> i32;

static REAL_SIGACTION: AtomicUsize = AtomicUsize::new(0);
static REAL_SIGPROCMASK: AtomicUsize = AtomicUsize::new(0);
static REAL_PTHREAD_SIGMASK: AtomicUsize = AtomicUsize::new(0);

fn next(cache: &AtomicUsize, name: &core::ffi::CStr) -> usize {
    let mut f = cache.load(Relaxed);
    if f == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
        cache.store(f, Relaxed);
    }
    f
}

/// Resolves libc's functions early (the constructor), so no later call
/// needs dlsym: the first call may come from a signal handler of the
/// program's, where dlsym (which takes ld.so's lock and may allocate)
/// must not run.
pub fn init() {
    next(&REAL_SIGACTION, c"sigaction");
    next(&REAL_SIGPROCMASK, c"sigprocmask");
    next(&REAL_PTHREAD_SIGMASK, c"pthread_sigmask");
    for (real, name) in [
        (&sigwait::REAL, sigwait::NAME),
        (&sigwaitinfo::REAL, sigwaitinfo::NAME),
        (&sigtimedwait::REAL, sigtimedwait::NAME),
        (&signalfd::REAL, signalfd::NAME),
        (&sigsuspend::REAL, sigsuspend::NAME),
        (&ppoll::REAL, ppoll::NAME),
        (&pselect::REAL, pselect::NAME),
        (&epoll_pwait::REAL, epoll_pwait::NAME),
    ] {
        next(real, name);
    }
}

/// libc's `sigaction`.
///
/// # Safety
/// As `sigaction(2)`.
pub unsafe fn real_sigaction(
    sig: i32,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> i32 {
    let f = next(&REAL_SIGACTION, c"sigaction");
    // SAFETY: `f` is libc's sigaction (or 0 if libc had none: impossible).
    unsafe { core::mem::transmute::<usize, SigactionFn>(f)(sig, act, old) }
}

/// libc's `sigprocmask`.
///
/// # Safety
/// As `sigprocmask(2)`.
pub unsafe fn real_sigprocmask(
    how: i32,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> i32 {
    let f = next(&REAL_SIGPROCMASK, c"sigprocmask");
    // SAFETY: `f` is libc's sigprocmask.
    unsafe { core::mem::transmute::<usize, SigmaskFn>(f)(how, set, old) }
}

fn dump_signal() -> Option<i32> {
    // SAFETY: the signal number is written by the constructor before
    // ACTIVE is set, and by a restore before any program code runs.
    ACTIVE
        .load(Relaxed)
        .then(|| unsafe { SETTINGS.get() }.signal)
}

/// `set` without the dump signal, if it holds it.
///
/// # Safety
/// `set` is null or a valid sigset.
unsafe fn without_dump_signal(how: i32, set: *const libc::sigset_t) -> Option<libc::sigset_t> {
    let sig = dump_signal()?;
    if set.is_null() || how == libc::SIG_UNBLOCK {
        return None;
    }
    // SAFETY: `set` is valid (caller).
    let mut copy = unsafe { *set };
    // SAFETY: `copy` is a valid sigset.
    if unsafe { libc::sigismember(&copy, sig) } != 1 {
        return None;
    }
    // SAFETY: as above.
    unsafe { libc::sigdelset(&mut copy, sig) };
    Some(copy)
}

/// # Safety
/// As `sigaction(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigaction(
    sig: i32,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> i32 {
    if dump_signal() != Some(sig) {
        // SAFETY: forwarded as given.
        return unsafe { real_sigaction(sig, act, old) };
    }
    // SAFETY: the program's calls for the dump signal are serialised by the
    // program as any sigaction calls for one signal would need to be.
    let app = unsafe { APP_ACTION.get() };
    if !old.is_null() {
        // SAFETY: `old` points at a writable sigaction (caller).
        unsafe {
            let o = &mut *old;
            *o = core::mem::zeroed();
            o.sa_sigaction = app.handler as usize;
            o.sa_flags = app.flags as i32;
            o.sa_restorer = (app.restorer != 0)
                .then(|| core::mem::transmute::<usize, extern "C" fn()>(app.restorer as usize));
            let bytes = &mut o.sa_mask as *mut libc::sigset_t as *mut u64;
            *bytes = app.mask;
        }
    }
    if !act.is_null() {
        // SAFETY: `act` points at a valid sigaction (caller).
        let a = unsafe { &*act };
        // SAFETY: the first word of a sigset_t holds signals 1..=64.
        let mask = unsafe { *(&a.sa_mask as *const libc::sigset_t as *const u64) };
        *app = KernelSigaction {
            handler: a.sa_sigaction as u64,
            flags: a.sa_flags as u64,
            restorer: a.sa_restorer.map_or(0, |r| r as usize as u64),
            mask,
        };
    }
    0
}

/// # Safety
/// As `signal(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn signal(sig: i32, handler: libc::sighandler_t) -> libc::sighandler_t {
    // glibc's signal() has BSD semantics: restart, and the signal itself
    // blocked while its handler runs.
    // SAFETY: zero is a valid sigaction; the calls get valid pointers.
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = handler;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaddset(&mut act.sa_mask, sig);
        let mut old: libc::sigaction = core::mem::zeroed();
        if sigaction(sig, &act, &mut old) != 0 {
            return libc::SIG_ERR;
        }
        old.sa_sigaction
    }
}

/// # Safety
/// As `sigprocmask(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigprocmask(
    how: i32,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> i32 {
    // SAFETY: `set` is null or valid (caller); forwarded as given otherwise.
    unsafe {
        match without_dump_signal(how, set) {
            Some(copy) => real_sigprocmask(how, &copy, old),
            None => real_sigprocmask(how, set, old),
        }
    }
}

/// # Safety
/// As `pthread_sigmask(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_sigmask(
    how: i32,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> i32 {
    let f = next(&REAL_PTHREAD_SIGMASK, c"pthread_sigmask");
    // SAFETY: `f` is libc's pthread_sigmask; `set` is null or valid (caller).
    unsafe {
        let real = core::mem::transmute::<usize, SigmaskFn>(f);
        match without_dump_signal(how, set) {
            Some(copy) => real(how, &copy, old),
            None => real(how, set, old),
        }
    }
}

/// Interposes a libc function that takes a signal set: the program's call
/// goes to libc with the dump signal taken out of that set.
macro_rules! without_dump_signal_in {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; set = $set:ident) => {
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
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            let f = next(&$name::REAL, $name::NAME);
            // SAFETY: `f` is libc's function of this name and type; the
            // set is null or valid (caller), and the copy outlives the call.
            unsafe {
                let real = core::mem::transmute::<usize, unsafe extern "C" fn($($ty),*) -> $ret>(f);
                match without_dump_signal(libc::SIG_BLOCK, $set) {
                    Some(copy) => {
                        let $set: *const libc::sigset_t = &copy;
                        real($($arg),*)
                    }
                    None => real($($arg),*),
                }
            }
        }
    };
}

without_dump_signal_in! {
    /// Waiting for the dump signal would take dump requests away from the library.
    fn sigwait(set: *const libc::sigset_t, sig: *mut i32) -> i32; set = set
}
without_dump_signal_in! {
    /// As `sigwait`.
    fn sigwaitinfo(set: *const libc::sigset_t, info: *mut libc::siginfo_t) -> i32; set = set
}
without_dump_signal_in! {
    /// As `sigwait`.
    fn sigtimedwait(set: *const libc::sigset_t, info: *mut libc::siginfo_t, timeout: *const libc::timespec) -> i32; set = set
}
without_dump_signal_in! {
    /// A signalfd reading the dump signal would take dump requests away.
    fn signalfd(fd: i32, set: *const libc::sigset_t, flags: i32) -> i32; set = set
}
without_dump_signal_in! {
    /// The mask installed while waiting must not block the dump signal.
    fn sigsuspend(set: *const libc::sigset_t) -> i32; set = set
}
without_dump_signal_in! {
    /// As `sigsuspend`.
    fn ppoll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: *const libc::timespec, set: *const libc::sigset_t) -> i32; set = set
}
without_dump_signal_in! {
    /// As `sigsuspend`.
    fn pselect(n: i32, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, timeout: *const libc::timespec, set: *const libc::sigset_t) -> i32; set = set
}
without_dump_signal_in! {
    /// As `sigsuspend`.
    fn epoll_pwait(epfd: i32, events: *mut libc::epoll_event, max: i32, timeout: i32, set: *const libc::sigset_t) -> i32; set = set
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every libc function the interposers forward to is found by `init`
    /// (the constructor), none on its first call.
    #[test]
    fn init_resolves_every_function() {
        init();
        let all = [
            &REAL_SIGACTION,
            &REAL_SIGPROCMASK,
            &REAL_PTHREAD_SIGMASK,
            &sigwait::REAL,
            &sigwaitinfo::REAL,
            &sigtimedwait::REAL,
            &signalfd::REAL,
            &sigsuspend::REAL,
            &ppoll::REAL,
            &pselect::REAL,
            &epoll_pwait::REAL,
        ];
        for (i, real) in all.iter().enumerate() {
            assert_ne!(real.load(Relaxed), 0, "function {i} not resolved");
        }
    }
}
