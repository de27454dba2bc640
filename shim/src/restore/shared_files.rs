//! Files the program maps shared and writable (`Backing::SharedFile`):
//! their contents are the program's data, not a dependency to check.
//!
//! HotSpot's performance counters (`/tmp/hsperfdata_<user>/<pid>`) are the
//! common case: a small file the JVM maps shared and writes all the time.
//! The image holds every page of such a mapping as of the dump; before
//! teardown the file is made again if it is gone (on another box, say),
//! given its size at the dump, and (the last step before teardown) the
//! pages the image leaves out (all zero) are zeroed in it; the restorer then maps the file and writes the
//! saved pages through the mapping. What another process wrote to the file
//! since the dump is overwritten within the mapped ranges: the file is the
//! program's, as its memory is.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;

use dumpfmt::{Backing, FileId, Image, PAGE_SIZE};

use super::{Refusal, exit, refuse};

/// Files and directories [`open`] made, in order: a refused restore
/// removes them again ([`undo`]).
fn made() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    static MADE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    MADE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes what [`open`] made, newest first (a restore that is refused
/// leaves no trace of its data files).
pub fn undo() {
    for p in made().drain(..).rev() {
        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir(&p));
    }
}

/// Indexes of `Image::files` that some mapping shares and writes.
pub fn data_files(image: &Image<'_>) -> Vec<bool> {
    let mut data = vec![false; image.files.len()];
    for m in image.mappings.iter() {
        if let Backing::SharedFile(i) = m.backing
            && let Some(d) = data.get_mut(i as usize)
        {
            *d = true;
        }
    }
    data
}

/// Opens data file `f`, making it again (empty) if it is gone.
pub fn open(f: &FileId<'_>) -> Result<File, Refusal> {
    let fail = |e: std::io::Error| refuse(exit::FILE_CHANGED, format!("data file {}: {e}", f.path));
    let path = std::path::Path::new(&*f.path);
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Made again, and removed again if the restore is refused.
            let mut missing = Vec::new();
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                missing.push(d.to_path_buf());
                dir = d.parent();
            }
            for d in missing.iter().rev() {
                std::fs::create_dir(d).map_err(fail)?;
                made().push(d.clone());
            }
            let file = options.create_new(true).open(path).map_err(fail)?;
            made().push(path.to_path_buf());
            file
        }
        r => r.map_err(fail)?,
    };
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(refuse(
            exit::FILE_CHANGED,
            format!("data file {} is not a regular file any more", f.path),
        ));
    }
    Ok(file)
}

/// Gives data file `index` (open as `file`) the dump's size and zeros
/// where the image has no page: the last step before teardown, once
/// nothing can refuse the restore any more.
pub fn fill(image: &Image<'_>, index: u32, file: &File) -> Result<(), Refusal> {
    let f = &image.files[index as usize];
    let fail = |e: std::io::Error| refuse(exit::FILE_CHANGED, format!("data file {}: {e}", f.path));
    if file.metadata().map_err(fail)?.len() != f.size {
        file.set_len(f.size).map_err(fail)?;
    }
    let zeros = vec![0u8; 1 << 20];
    for m in image.mappings.iter() {
        if m.backing != Backing::SharedFile(index) {
            continue;
        }
        let first = image.runs.partition_point(|r| r.addr < m.start);
        let mut at = m.start;
        let mut gaps = Vec::new();
        for r in image.runs[first..].iter().take_while(|r| r.addr < m.end) {
            gaps.push((at, r.addr));
            at = r.addr + r.pages * PAGE_SIZE;
        }
        gaps.push((at, m.end));
        for (start, end) in gaps {
            // File offsets of the gap, within the file's size.
            let from = m.offset + (start - m.start);
            let to = (m.offset + (end.max(start) - m.start)).min(f.size);
            let mut off = from;
            while off < to {
                let n = (to - off).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], off).map_err(fail)?;
                off += n as u64;
            }
        }
    }
    Ok(())
}
