//! A panic on the dump path is a failed dump: the process goes on.
//!
//! # Rules
//!
//! The shim is built with `panic = "abort"`, and Rust's default panic hook
//! formats with the heap, reads the environment and takes stderr's lock:
//! inside a signal handler that interrupted malloc it could deadlock
//! instead of dying. The shim's own hook (its copy of std is its own, the
//! program cannot replace it) writes one line with a raw system call and
//! uses no heap and no lock. When the panic happened on the dump path
//! (the leading thread, on the dump's stack) it then undoes the dump as a
//! failed one (the temporary image removed, every thread released, the
//! dump's memory unmapped) and returns from `migrate_checkpoint` in
//! [`super::lead`] with [`PANICKED`]: the frames in between are abandoned
//! without running their destructors, which is why the job records what
//! must be undone. Anywhere else it returns to std, which aborts.
//!
//! std counts the panic as in progress for that thread from then on: a
//! second panic on the same thread aborts at once (with std's own short
//! message).

use core::sync::atomic::{AtomicPtr, Ordering::SeqCst};

use super::{Job, world};
use crate::config::SETTINGS;
use crate::sys::{self, context, line::Line};

/// What `migrate_checkpoint` returns in `lead` after a panic.
pub const PANICKED: u64 = 0x5041_4e49_4321; // "PANIC!"

/// The job of the dump this process is leading, while it runs.
pub(super) static LEADING: AtomicPtr<Job> = AtomicPtr::new(core::ptr::null_mut());

/// Whether the calling thread leads a dump now (see `crate::alloc`).
pub fn leading_here() -> bool {
    !LEADING.load(SeqCst).is_null() && world::WORLD.leader.load(SeqCst) == sys::gettid()
}

/// Installs the hook (constructor).
pub fn install_hook() {
    std::panic::set_hook(Box::new(hook));
}

fn hook(info: &std::panic::PanicHookInfo<'_>) {
    let mut what = Line::<400>::new();
    what.str("internal error (panic");
    if let Some(l) = info.location() {
        what.str(" at ")
            .str(l.file())
            .str(":")
            .dec(u64::from(l.line()));
    }
    if let Some(m) = info.payload().downcast_ref::<&str>() {
        what.str(": ").str(m);
    } else if let Some(m) = info.payload().downcast_ref::<String>() {
        what.str(": ").str(m);
    }
    what.str(")");
    let job = LEADING.load(SeqCst);
    // SAFETY: a non-null `job` is the leading dump's, on the dump's stack
    // (a snapshot's writer has its own copy, and leads nothing else).
    if !job.is_null() && unsafe { (*job).snap_side } == super::SNAP_WRITER {
        let mut line = Line::<450>::new();
        line.str("migrate: dump failed, the process goes on: ")
            .bytes(what.as_bytes());
        line.emit();
        // SAFETY: as above; the writer's only thread, ending here.
        unsafe {
            let job = &mut *job;
            if !job.writer.is_null() {
                core::ptr::drop_in_place(job.writer);
            }
            let fail = super::Fail::new("").bytes(what.as_bytes());
            super::report(job, Err(&fail));
        }
        sys::exit_group(1);
    }
    if !leading_here() {
        let mut line = Line::<450>::new();
        line.str("migrate: ")
            .bytes(what.as_bytes())
            .str("; the process aborts");
        line.emit();
        return;
    }
    let mut line = Line::<450>::new();
    line.str("migrate: dump failed, the process goes on: ")
        .bytes(what.as_bytes());
    line.emit();
    LEADING.store(core::ptr::null_mut(), SeqCst);
    // SAFETY: `job` is the leading dump's job on the dump stack, which
    // stays mapped until `lead` unmaps it after the jump below; the
    // pointers it records are live objects of the abandoned frames, each
    // dropped once here and never again (those frames never resume).
    unsafe {
        let job = &mut *job;
        if !job.fds.is_null() {
            core::ptr::drop_in_place(job.fds);
        }
        if !job.writer.is_null() {
            core::ptr::drop_in_place(job.writer);
        }
        if !job.check && !job.reported {
            let fail = super::Fail::new("").bytes(what.as_bytes());
            super::report(job, Err(&fail));
        }
        world::release_all();
        crate::restore::check::release_held();
        if !job.arena.is_null() {
            core::ptr::drop_in_place(job.arena);
        }
        SETTINGS.get().sequence = job.prev_sequence;
        if !job.check {
            // Pages it protected again may be in no image: the next dump
            // is full.
            super::incremental::abort();
        }
        context::migrate_return_to(job.regs, PANICKED);
    }
}
