//! inotify descriptors (issue 12): each watch the kernel shows in
//! `/proc/self/fdinfo` (`inotify wd:N ino:I sdev:D mask:M ...`, all hex), with the
//! path `crate::inotify` recorded when it was added, checked to still name
//! the same inode. A watch whose path is unknown or gone fails the dump
//! naming the descriptor. Events queued at the dump are not saved (reading
//! them would take them from the running program): an `info` line says so.
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no std I/O, no panics; raw syscalls, arena buffers).

use std::borrow::Cow;

use dumpfmt::FdKind;
use dumpfmt::files::{How, INOTIFY_RECORD, Watch};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::sys::procfields::field;
use crate::sys::{self, args, line::Line};

/// The `/proc/self/fd` link of an inotify descriptor.
pub const TARGET: &[u8] = b"anon_inode:inotify";

fn fail(fd: i32, why: &str) -> Fail {
    Fail::new("fd ").dec(fd as u64).str(" (inotify): ").str(why)
}

/// The record and entry of inotify descriptor `fd`.
pub fn collect<'a>(
    fd: i32,
    arena: &'a Arena,
    scratch: &mut [u8],
) -> Result<(FdKind<'a>, How<'a>), Fail> {
    let mut path = Line::<64>::new();
    path.str("/proc/self/fdinfo/").dec(fd as u64);
    let n = path
        .c_str()
        .map(|p| sys::read_file(p, scratch))
        .unwrap_or(Ok(0))
        .map_err(|e| fail(fd, "cannot read its fdinfo").errno(e))?;
    let fdinfo: &[u8] = &scratch[..n];
    let lines = fdinfo
        .split(|&c| c == b'\n')
        .filter(|l| l.starts_with(b"inotify "));
    let mut watches = arena
        .vec::<Watch<'a>>(lines.clone().count())
        .ok_or_else(|| fail(fd, "the dump arena is too small"))?;
    for l in lines {
        let wd = field(l, b"wd:", 16).unwrap_or(0) as i32;
        let ino = field(l, b"ino:", 16).unwrap_or(0);
        let sdev = field(l, b"sdev:", 16).unwrap_or(0);
        let mask = field(l, b"mask:", 16).unwrap_or(0) as u32;
        // The kernel's dev_t (major << 20 | minor), as stat gives it.
        let dev = libc::makedev((sdev >> 20) as u32, (sdev & 0xfffff) as u32);
        let unknown = || {
            Fail::new("fd ")
                .dec(fd as u64)
                .str(" (inotify): the path of watch ")
                .dec(wd as u64)
                .str(" is unknown (added other than through libc's inotify_add_watch, or too long)")
        };
        let r = crate::inotify::find(fd, wd, dev, ino).ok_or_else(unknown)?;
        let mut c = [0u8; crate::inotify::PATH_MAX + 1];
        c[..r.len].copy_from_slice(&r.path[..r.len]);
        let now = sys::stat_path(&c[..=r.len], !r.dont_follow).ok();
        if now.map(|st| (st.st_dev, st.st_ino)) != Some((dev, ino)) {
            return Err(Fail::new("fd ")
                .dec(fd as u64)
                .str(" (inotify): watch ")
                .dec(wd as u64)
                .str(" is of ")
                .bytes(&r.path[..r.len])
                .str(", which is gone or now another file"));
        }
        let text = arena
            .bytes(r.len)
            .ok_or_else(|| fail(fd, "the dump arena is too small"))?;
        text.copy_from_slice(&r.path[..r.len]);
        let text: &'a [u8] = text;
        let path =
            core::str::from_utf8(text).map_err(|_| fail(fd, "the path of a watch is not UTF-8"))?;
        let _ = watches.push(Watch {
            wd,
            mask,
            dont_follow: r.dont_follow,
            dev,
            ino,
            path: Cow::Borrowed(path),
        });
    }
    // Sorted by number (the kernel lists the newest first): the restore
    // adds them in this order.
    watches.as_mut_slice().sort_unstable_by_key(|w| w.wd);
    let watches = watches.into_slice();
    if watches.windows(2).any(|w| w[0].wd == w[1].wd) || watches.first().is_some_and(|w| w.wd <= 0)
    {
        return Err(fail(fd, "its fdinfo shows a watch number twice"));
    }
    log_pending(fd);
    Ok((
        FdKind::Device {
            path: Cow::Borrowed(INOTIFY_RECORD),
        },
        How::Inotify {
            watches: Cow::Borrowed(watches),
        },
    ))
}

/// Says, at `info`, that events waiting at the dump will not be there
/// after a restore.
fn log_pending(fd: i32) {
    let mut queued: i32 = 0;
    // SAFETY: FIONREAD writes one int.
    let asked = unsafe {
        sys::sys(
            libc::SYS_ioctl,
            args!(fd, libc::FIONREAD, &mut queued as *mut i32),
        )
    };
    // SAFETY: read-only access to the settings from the handler.
    let level = unsafe { crate::config::SETTINGS.get() }.log;
    if asked.is_ok() && queued > 0 && level >= crate::config::LogLevel::Info {
        let mut line = Line::<200>::new();
        line.str("migrate: fd ")
            .dec(fd as u64)
            .str(" (inotify): ")
            .dec(queued as u64)
            .str(
                " bytes of events waiting at the dump are not saved; after a restore they are lost",
            );
        line.emit();
    }
}
