//! Restoring an incremental image (see `dump::incremental` and
//! `dumpfmt::chain`): every ancestor is opened and checked before
//! teardown (the image it was, its page checksums, each inherited piece
//! inside its own pages), held open above the image's descriptors, and
//! each run of pages is read from the file that holds it.
//!
//! Runs in the constructor, before teardown, with libc and the heap.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use dumpfmt::chain::{self, ChainError};
use dumpfmt::{ImageFile, PAGE_SIZE};

use super::{Refusal, exit, fds, refuse};

thread_local! {
    /// The ancestors' files, parent first (the restore is single-threaded
    /// until teardown; the restorer closes them with the rest).
    static ANCESTORS: RefCell<Vec<File>> = const { RefCell::new(Vec::new()) };
}

/// Opens and checks every ancestor of the image at `path`. A missing one
/// is refused as a missing image is; a replaced or corrupt one as a
/// corrupt image. Nothing is torn down.
pub fn open(img: &ImageFile, path: &str) -> Result<(), Refusal> {
    let chain = &img.image.minor4.incremental;
    if chain.is_standalone() {
        return Ok(());
    }
    let mut files = Vec::with_capacity(chain.ancestors.len());
    for (i, a) in chain.ancestors.iter().enumerate() {
        let at = chain::resolve(Path::new(path), a);
        let shown = at.display().to_string();
        let file = super::open_checked(&shown).map_err(|r| Refusal {
            code: r.code,
            msg: if r.code == exit::NO_IMAGE {
                format!("ancestor image {shown} is missing: {}", r.msg)
            } else {
                format!("ancestor image {shown}: {}", r.msg)
            },
        })?;
        let checked = chain::check_ancestor(&at, file, i, chain).map_err(|e| {
            let code = match e {
                ChainError::Missing { .. } => exit::NO_IMAGE,
                ChainError::Replaced { .. } | ChainError::Corrupt { .. } => exit::CORRUPT,
            };
            refuse(code, e.to_string())
        })?;
        files.push(checked.file);
    }
    ANCESTORS.with(|a| *a.borrow_mut() = files);
    Ok(())
}

/// Moves the ancestors' descriptors to `base` or above.
pub fn lift(base: i32) -> Result<(), Refusal> {
    ANCESTORS.with(|a| {
        let mut a = a.borrow_mut();
        let files = core::mem::take(&mut *a);
        for f in files {
            a.push(File::from(fds::lift(OwnedFd::from(f), base)?));
        }
        Ok(())
    })
}

/// A run of pages and where its bytes are.
#[derive(Clone, Copy)]
pub struct Source {
    pub addr: u64,
    pub pages: u64,
    pub fd: u64,
    pub offset: u64,
}

/// Every run of the image, its own and inherited, in address order.
pub fn runs(img: &ImageFile) -> Result<Vec<Source>, Refusal> {
    let fd = img.file.as_raw_fd() as u64;
    let own = img.image.runs.iter().map(|r| Source {
        addr: r.addr,
        pages: r.pages,
        fd,
        offset: img.base + r.file_offset,
    });
    let mut all: Vec<Source> = own.collect();
    ANCESTORS.with(|a| {
        let a = a.borrow();
        for r in img.image.minor4.incremental.inherited.iter() {
            let f = a.get(r.ancestor as usize - 1).ok_or_else(|| {
                refuse(
                    exit::CORRUPT,
                    format!("pages at {:#x} name an ancestor not opened", r.addr),
                )
            })?;
            all.push(Source {
                addr: r.addr,
                pages: r.pages,
                fd: f.as_raw_fd() as u64,
                offset: r.file_offset,
            });
        }
        Ok::<(), Refusal>(())
    })?;
    all.sort_unstable_by_key(|s| s.addr);
    debug_assert!(
        all.windows(2)
            .all(|w| w[0].addr + w[0].pages * PAGE_SIZE <= w[1].addr)
    );
    Ok(all)
}
