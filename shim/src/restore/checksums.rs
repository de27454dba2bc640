//! The page checksums of an image, summed where the page cache holds them.
//!
//! `ImageFile::check_pages` reads every run into a buffer: a second copy
//! of all the page data on top of the restore's own read (a quarter of an
//! eager restore's time, measured). Here the page data is mapped read-only
//! in windows populated in one call (`MAP_POPULATE`: no fault per page) and
//! summed in place. Where mapping fails, the reading check runs instead.
//!
//! Runs in the constructor (and the supervisor), with libc. The image is
//! not to change meanwhile: one truncated under the mapping would fault
//! (`SIGBUS`); the file's length is checked before each window, which
//! leaves only a truncation in the middle of a window's sum.

use std::os::fd::AsRawFd;

use dumpfmt::{Error, ImageFile, PAGE_SIZE};

/// Bytes mapped at a time.
const WINDOW: u64 = 64 << 20;

/// Checks every run's checksum; the error names the first bad run.
pub fn check(img: &ImageFile) -> Result<(), Error> {
    let runs = &img.image.runs;
    let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
        return Ok(());
    };
    // Runs lie back to back in the file (`check_consistency`), from a
    // page-aligned offset (the end of the header page of the image, or
    // of its section of a tree image).
    let start = img.base + first.file_offset;
    let end = img.base + last.file_offset + last.pages * PAGE_SIZE;
    if !start.is_multiple_of(PAGE_SIZE) {
        return img.check_pages().map(drop);
    }
    let fd = img.file.as_raw_fd();
    let mut index = 0usize;
    let mut left = first.pages * PAGE_SIZE;
    let mut hasher = crc32fast::Hasher::new();
    let mut at = start;
    while at < end {
        let n = (end - at).min(WINDOW);
        match img.file.metadata() {
            Ok(m) if m.len() >= at + n => {}
            _ => {
                return Err(Error::Truncated { len: at, need: end });
            }
        }
        // SAFETY: a new read-only shared mapping of `n` bytes of a file
        // we hold open, at a page-aligned offset inside the file.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                n as usize,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                at as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return img.check_pages().map(drop);
        }
        // SAFETY: the mapping just made, `n` bytes, readable, ours until
        // the munmap below; the file is at least `at + n` bytes long.
        let mut window = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n as usize) };
        let mut bad = None;
        while !window.is_empty() {
            let take = (left as usize).min(window.len());
            hasher.update(&window[..take]);
            window = &window[take..];
            left -= take as u64;
            if left == 0 {
                let sum = core::mem::replace(&mut hasher, crc32fast::Hasher::new()).finalize();
                if sum != runs[index].crc {
                    bad = Some(index);
                    break;
                }
                index += 1;
                left = runs.get(index).map_or(0, |r| r.pages * PAGE_SIZE);
            }
        }
        // SAFETY: unmapping the window mapped above; `window` is not used again.
        unsafe { libc::munmap(p, n as usize) };
        if let Some(index) = bad {
            return Err(Error::RunCrc {
                index,
                addr: runs[index].addr,
            });
        }
        at += n;
    }
    Ok(())
}
