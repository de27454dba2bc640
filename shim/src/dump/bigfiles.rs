//! Files without a name (deleted while open, memfds) too large for the
//! metadata (issue 12): their data goes with the page data, as runs
//! written straight from the file after the memory's runs, holes left out
//! (`SEEK_DATA`/`SEEK_HOLE`, listed by `files::attrs`), each run
//! checksummed as page runs are, and through the same path (compressed
//! with them under `MIGRATE_COMPRESS`). The descriptor's record is a
//! `Contents` without data; its `files` entry, `How::Stored`, lists the
//! runs (see `dumpfmt::files::FileRun`).
//!
//! The file is read while the process is stopped: a snapshot would not
//! freeze it (fork copies memory, not files), so a process holding one is
//! dumped stopped (`any`, in `dump::write_image`).
//!
//! Runs in the signal handler: the `dump` module's rules hold (no heap, no
//! locks, no std I/O, no panics; raw syscalls, arena buffers).

use std::borrow::Cow;

use dumpfmt::PAGE_SIZE;
use dumpfmt::files::{FileFd, FileRun, How};

use crate::dump::Fail;
use crate::dump::arena::Arena;
use crate::dump::pages::{self, PageScan};
use crate::dump::writer::ImageWriter;
use crate::sys;

/// Contents up to this size stay in the descriptor's record.
pub const INLINE_MAX: u64 = 1 << 20;

/// Data ranges listed per file; a file more fragmented is stored whole
/// (its holes then come back as zeros: nothing lost but sparseness).
pub const MAX_RUNS: usize = 4096;

/// Whether a file of `size` bytes has its data with the page data.
pub fn stored(size: u64) -> bool {
    size > INLINE_MAX
}

/// Whether some descriptor's data goes with the page data.
pub fn any(files: &[FileFd<'_>]) -> bool {
    files.iter().any(|f| matches!(f.how, How::Stored { .. }))
}

/// The runs of the data ranges `data`, their place in the image not yet
/// known (see [`write`]).
pub fn runs<'a>(data: &[(u64, u64)], arena: &'a Arena) -> Option<&'a [FileRun]> {
    let mut runs = arena.vec::<FileRun>(data.len())?;
    for &(start, end) in data {
        let _ = runs.push(FileRun {
            start,
            len: end - start,
            file_offset: 0,
            crc: 0,
        });
    }
    Some(runs.into_slice())
}

fn fail(fd: i32, why: &str) -> Fail {
    Fail::new("fd ").dec(fd as u64).str(": ").str(why)
}

/// Writes the data of every `Stored` entry of `files` after the page
/// runs (through `scan`'s chunker when compressing) and returns the
/// entries with each run's place and checksum filled in.
pub fn write<'a>(
    scan: &mut PageScan<'_>,
    out: &mut ImageWriter,
    files: &'a [FileFd<'a>],
    arena: &'a Arena,
) -> Result<&'a [FileFd<'a>], Fail> {
    if !any(files) {
        return Ok(files);
    }
    let no_mem = || Fail::new("the dump arena is too small");
    let mut done = arena.vec::<FileFd<'a>>(files.len()).ok_or_else(no_mem)?;
    for f in files {
        let How::Stored {
            mode,
            uid,
            gid,
            atime,
            mtime,
            size,
            runs,
        } = &f.how
        else {
            let _ = done.push(f.clone());
            continue;
        };
        let mut placed = arena.vec::<FileRun>(runs.len()).ok_or_else(no_mem)?;
        // A description of its own, read-only (a descriptor open only for
        // writing cannot be read); else the program's, with `pread`,
        // which moves no offset.
        let own = super::files::reopen(f.fd);
        let from = own.unwrap_or(f.fd);
        let result = runs.iter().try_for_each(|r| {
            let placed_run = copy_run(scan, out, from, f.fd, r)?;
            let _ = placed.push(placed_run);
            Ok(())
        });
        if let Some(own) = own {
            sys::close(own);
        }
        result?;
        let _ = done.push(FileFd {
            fd: f.fd,
            how: How::Stored {
                mode: *mode,
                uid: *uid,
                gid: *gid,
                atime: *atime,
                mtime: *mtime,
                size: *size,
                runs: Cow::Borrowed(placed.into_slice()),
            },
        });
    }
    Ok(done.into_slice())
}

/// Copies bytes `r.start..r.start + r.len` of `from` into the image,
/// zero-padded to whole pages, through the bounce buffer.
fn copy_run(
    scan: &mut PageScan<'_>,
    out: &mut ImageWriter,
    from: i32,
    fd: i32,
    r: &FileRun,
) -> Result<FileRun, Fail> {
    let file_offset = pages::pos(&scan.chunker, out);
    let mut crc = crc32fast::Hasher::new();
    let mut left = r.len;
    let mut at = r.start;
    // Whole pages at a time: the bounce buffer is page-aligned and a
    // multiple of the page size.
    let chunk = scan.bounce.len() as u64 / PAGE_SIZE * PAGE_SIZE;
    if chunk == 0 {
        return Err(fail(fd, "the dump's bounce buffer is smaller than a page"));
    }
    while left > 0 {
        let n = left.min(chunk) as usize;
        let Some(buf) = scan.bounce.get_mut(..n) else {
            return Err(fail(fd, "the dump's bounce buffer is too small"));
        };
        let mut got = 0usize;
        while got < n {
            match sys::pread(from, &mut buf[got..], at + got as u64) {
                Ok(0) => {
                    return Err(fail(fd, "its file became shorter while it was read"));
                }
                Ok(k) => got += k,
                Err(sys::Errno(libc::EINTR)) => {}
                Err(e) => return Err(fail(fd, "cannot read its contents").errno(e)),
            }
        }
        // The last piece is padded with zeros to a whole page.
        let padded = (n as u64).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let Some(data) = scan.bounce.get_mut(..padded as usize) else {
            return Err(fail(fd, "the dump's bounce buffer is too small"));
        };
        data[n..].fill(0);
        let data: &[u8] = data;
        crc.update(data);
        pages::put(&mut scan.chunker, out, data, true)?;
        left -= n as u64;
        at += n as u64;
    }
    Ok(FileRun {
        file_offset,
        crc: crc.finalize(),
        ..*r
    })
}
