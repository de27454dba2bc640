//! The shim's heap (its own copy of std allocates through this): glibc's
//! malloc, except on the thread that leads a dump.
//!
//! The dump path allocates nothing, but a panic on it does: std formats a
//! panic message with arguments into a `String` before the hook runs
//! (`dump::panic`). In a signal handler that interrupted malloc, glibc's
//! malloc would wait forever for the arena lock the thread itself holds,
//! with every other thread parked. On the leading thread the heap is
//! therefore fresh anonymous memory, never given back: what the dump path
//! allocates is abandoned with the panic's frames anyway.

use core::alloc::{GlobalAlloc, Layout};
use std::alloc::System;

use crate::sys;

struct ShimAlloc;

#[global_allocator]
static ALLOC: ShimAlloc = ShimAlloc;

/// A fresh mapping for `layout` (null if it cannot be had).
fn dump_alloc(layout: Layout) -> *mut u8 {
    if layout.align() > dumpfmt::PAGE_SIZE as usize {
        return core::ptr::null_mut();
    }
    sys::mmap_anon(layout.size().max(1), 0).unwrap_or(core::ptr::null_mut())
}

// SAFETY: every block comes from glibc's malloc (and goes back to it)
// or, on a leading thread, from its own zeroed mapping that is never freed
// or reused; a block is never handed out twice.
unsafe impl GlobalAlloc for ShimAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if crate::dump::panic::leading_here() {
            return dump_alloc(layout);
        }
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if crate::dump::panic::leading_here() {
            return dump_alloc(layout);
        }
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // On a leading thread a block is abandoned, whichever heap it is of.
        if !crate::dump::panic::leading_here() {
            // SAFETY: forwarded from the caller.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if crate::dump::panic::leading_here() {
            // SAFETY: the caller's promise: `new_size`, rounded up to the
            // alignment, does not overflow.
            let new =
                dump_alloc(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
            if !new.is_null() {
                // SAFETY: `ptr` holds `layout.size()` bytes, `new` is a
                // fresh block of `new_size`; they cannot overlap.
                unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            }
            return new;
        }
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
