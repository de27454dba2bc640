//! Reading the dumped process's memory out of an image file: the bytes at
//! an address come from the page run that stored them; pages no run holds
//! are zero in anonymous memory and unknown elsewhere.

use std::os::unix::fs::FileExt;

use dumpfmt::{Backing, ImageFile, PAGE_SIZE};

/// `len` bytes at `addr`, or None when some of them are not in the image
/// (a file's page the dump did not store) or cannot be read.
pub fn read(img: &ImageFile, addr: u64, len: u64) -> Option<Vec<u8>> {
    const MAX: u64 = 16 << 20;
    if len > MAX {
        return None;
    }
    let image = &img.image;
    let mut out = vec![0u8; len as usize];
    let mut at = addr;
    let end = addr.checked_add(len)?;
    while at < end {
        let page_end = (at / PAGE_SIZE + 1) * PAGE_SIZE;
        let n = page_end.min(end) - at;
        let dst = &mut out[(at - addr) as usize..(at - addr + n) as usize];
        // Runs and mappings are in address order, apart (checked when the
        // image was opened): a binary search, not a scan per page.
        let runs = &image.runs[..];
        let run = runs
            .get(runs.partition_point(|r| r.addr + r.pages * PAGE_SIZE <= at))
            .filter(|r| r.addr <= at);
        match run {
            Some(r) => img
                .file
                .read_exact_at(dst, r.file_offset + (at - r.addr))
                .ok()?,
            None => {
                let maps = &image.mappings[..];
                let m = maps
                    .get(maps.partition_point(|m| m.end <= at))
                    .filter(|m| m.start <= at)?;
                if !matches!(m.backing, Backing::Anonymous | Backing::Contents) {
                    return None;
                }
            }
        }
        at += n;
    }
    Some(out)
}

/// The NUL-terminated strings in `start..end` (argv or the environment).
pub fn strings(img: &ImageFile, start: u64, end: u64) -> Option<Vec<String>> {
    if end < start {
        return None;
    }
    let bytes = read(img, start, end - start)?;
    let mut v: Vec<String> = bytes
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    // The area ends with a NUL, which leaves one empty piece after it.
    if bytes.last() == Some(&0) {
        v.pop();
    }
    Some(v)
}
