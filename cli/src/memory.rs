//! Strings of the dumped process's memory (`ImageFile::read_memory`).

use dumpfmt::ImageFile;

/// The NUL-terminated strings in `start..end` (argv or the environment).
pub fn strings(img: &ImageFile, start: u64, end: u64) -> Option<Vec<String>> {
    if end < start {
        return None;
    }
    let bytes = img.read_memory(start, end - start)?;
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
