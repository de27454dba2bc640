//! A bump arena over one anonymous mapping, the dump path's only memory.
//!
//! # Safety
//!
//! The arena hands out disjoint pieces of its mapping; each piece borrows
//! the arena, so none outlives the mapping (unmapped on drop). Memory from
//! a fresh anonymous mapping is zero; `ArenaVec` never reads a slot it has
//! not written and never drops its elements (the dump path only stores
//! plain data and borrowed `Cow`s, which own nothing).

use core::cell::Cell;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};

use crate::sys::{self, SysResult};

pub struct Arena {
    base: *mut u8,
    len: usize,
    used: Cell<usize>,
}

impl Arena {
    /// Reserves `len` bytes of address space; pages cost memory only when touched.
    pub fn new(len: usize) -> SysResult<Arena> {
        let base = sys::mmap_anon(len, libc::MAP_NORESERVE)?;
        Ok(Arena {
            base,
            len,
            used: Cell::new(0),
        })
    }

    /// The address range of the arena's mapping.
    pub fn range(&self) -> (u64, u64) {
        (self.base as u64, self.base as u64 + self.len as u64)
    }

    fn take(&self, bytes: usize, align: usize) -> Option<*mut u8> {
        let start = self.used.get().checked_add(align - 1)? & !(align - 1);
        let end = start.checked_add(bytes)?;
        if end > self.len {
            return None;
        }
        self.used.set(end);
        // SAFETY: start <= len, inside the mapping.
        Some(unsafe { self.base.add(start) })
    }

    /// A zeroed byte buffer.
    // Each call hands out a fresh, disjoint piece (the `used` cell moves
    // past it), so several `&mut` pieces from one `&self` never alias.
    #[allow(clippy::mut_from_ref)]
    pub fn bytes(&self, n: usize) -> Option<&mut [u8]> {
        let p = self.take(n, 4096)?;
        // SAFETY: `p..p+n` is inside the mapping, handed out once, and zero
        // (a valid u8 array).
        Some(unsafe { core::slice::from_raw_parts_mut(p, n) })
    }

    /// A zeroed word buffer.
    #[allow(clippy::mut_from_ref)]
    pub fn words(&self, n: usize) -> Option<&mut [u64]> {
        let p = self.take(n.checked_mul(8)?, 4096)?;
        // SAFETY: as `bytes`; zero is a valid u64 and the piece is 8-aligned.
        Some(unsafe { core::slice::from_raw_parts_mut(p.cast::<u64>(), n) })
    }

    /// A vector of capacity `cap`.
    pub fn vec<T>(&self, cap: usize) -> Option<ArenaVec<'_, T>> {
        let p = self.take(cap.checked_mul(size_of::<T>())?, align_of::<T>().max(8))?;
        Some(ArenaVec {
            ptr: p.cast(),
            cap,
            len: 0,
            _arena: PhantomData,
        })
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> usize {
        self.len - self.used.get()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: every piece borrows the arena, so none is live any more.
        let _ = unsafe { sys::munmap(self.base as u64, self.len as u64) };
    }
}

/// A fixed-capacity vector in the arena.
pub struct ArenaVec<'a, T> {
    ptr: *mut T,
    cap: usize,
    len: usize,
    _arena: PhantomData<&'a Arena>,
}

impl<'a, T> ArenaVec<'a, T> {
    /// Appends; `Err(v)` when full.
    pub fn push(&mut self, v: T) -> Result<(), T> {
        if self.len == self.cap {
            return Err(v);
        }
        // SAFETY: len < cap, so the slot is inside this vector's piece.
        unsafe { self.ptr.add(self.len).write(v) };
        self.len += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` slots are initialized.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: the first `len` slots are initialized and borrowed mutably once.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Gives up the vector, keeping its elements for the arena's lifetime.
    pub fn into_slice(self) -> &'a [T] {
        // SAFETY: as `as_slice`; the piece lives as long as the arena borrow.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The vector's storage, for sharing with other threads (zeroed memory
    /// of capacity `cap`; the caller initialises what it uses).
    pub fn into_raw(self) -> *mut T {
        self.ptr
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn last_mut(&mut self) -> Option<&mut T> {
        self.as_mut_slice().last_mut()
    }
}
