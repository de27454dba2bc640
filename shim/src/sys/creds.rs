//! A thread's credentials as the kernel keeps them: capability sets,
//! securebits, `no_new_privs`. Read with raw system calls (no buffers: a
//! parked thread reads its own on whatever stack it has).

use super::{SysResult, args, sys};
use dumpfmt::Credentials;

pub const PR_CAPBSET_READ: u64 = 23;
pub const PR_CAPBSET_DROP: u64 = 24;
pub const PR_GET_SECUREBITS: u64 = 27;
pub const PR_SET_SECUREBITS: u64 = 28;
pub const PR_SET_NO_NEW_PRIVS: u64 = 38;
pub const PR_GET_NO_NEW_PRIVS: u64 = 39;
pub const PR_CAP_AMBIENT: u64 = 47;
pub const PR_CAP_AMBIENT_IS_SET: u64 = 1;
pub const PR_CAP_AMBIENT_RAISE: u64 = 2;
pub const PR_CAP_AMBIENT_CLEAR_ALL: u64 = 4;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets in two 32-bit halves.
pub const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// `CAP_SETPCAP`: needed to drop from the bounding set and set securebits.
pub const CAP_SETPCAP: u32 = 8;
/// Highest capability number the sets can hold.
pub const CAP_MAX: u32 = 63;

/// `struct __user_cap_header_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CapHeader {
    pub version: u32,
    pub pid: i32,
}

/// Two `struct __user_cap_data_struct`: bits 0-31, then 32-63.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CapData {
    pub lo: [u32; 3],
    pub hi: [u32; 3],
}

impl CapData {
    /// (effective, permitted, inheritable) as 64-bit sets.
    pub fn sets(&self) -> [u64; 3] {
        core::array::from_fn(|i| u64::from(self.hi[i]) << 32 | u64::from(self.lo[i]))
    }

    pub fn from_sets(effective: u64, permitted: u64, inheritable: u64) -> CapData {
        let s = [effective, permitted, inheritable];
        CapData {
            lo: s.map(|v| v as u32),
            hi: s.map(|v| (v >> 32) as u32),
        }
    }
}

fn prctl(op: u64, a: u64, b: u64) -> SysResult<u64> {
    // SAFETY: the prctl operations used here take integers only.
    unsafe { sys(super::SYS_prctl, args!(op, a, b, 0, 0)) }
}

/// The calling thread's credentials.
pub fn current() -> Credentials {
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = CapData::default();
    // SAFETY: capget reads the header and writes two data structs.
    let _ = unsafe {
        sys(
            libc::SYS_capget,
            args!(&header as *const CapHeader, &mut data as *mut CapData),
        )
    };
    let [effective, permitted, inheritable] = data.sets();
    let (mut bounding, mut ambient) = (0u64, 0u64);
    for cap in 0..=CAP_MAX {
        // EINVAL past the kernel's last capability.
        let Ok(inb) = prctl(PR_CAPBSET_READ, u64::from(cap), 0) else {
            break;
        };
        bounding |= u64::from(inb == 1) << cap;
        if prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, u64::from(cap)) == Ok(1) {
            ambient |= 1 << cap;
        }
    }
    Credentials {
        effective,
        permitted,
        inheritable,
        bounding,
        ambient,
        securebits: prctl(PR_GET_SECUREBITS, 0, 0).unwrap_or(0) as u32,
        no_new_privs: prctl(PR_GET_NO_NEW_PRIVS, 0, 0) == Ok(1),
    }
}
