//! Lazy restore (`MIGRATE_RESTORE_MODE=lazy`, issue 11): the image's runs
//! in private anonymous memory are mapped into place from the image file
//! (see [`super::pages`]) instead of read, so a process of any size runs
//! again in milliseconds, its pages faulting from the page cache.
//!
//! Three things follow, all here:
//!
//! - **Checksums.** They cannot all be checked before the process runs
//!   (that is the point). In a PID namespace (the default) the supervisor,
//!   which stays outside, checks every run at low priority while the
//!   restored process runs ([`check_in_supervisor`]); on a mismatch it
//!   kills the restored process, prints one line naming the image and the
//!   address, and exits with the corrupt-image status. Without a
//!   supervisor every page is checked before the resume
//!   ([`verify_before_resume`]).
//! - **The next dump.** The restored process's memory map shows the image
//!   file for those ranges. The image's device and inode survive in the
//!   restored shim ([`set_source`], from the handoff); a dump takes
//!   mappings of that file as the anonymous memory they stand for
//!   ([`is_source`]), every page stored, whether still in the page cache
//!   or written since.
//! - **The catch.** The image backs the process's memory while it lives:
//!   it must stay unchanged (deleting it is fine, the mapping holds the
//!   inode; rewriting it in place is not). And `MADV_DONTNEED` on such a
//!   range brings back the image's bytes rather than zeros, as for any
//!   private file mapping.
//!
//! Everything but [`set_source`] and [`is_source`] runs in the constructor
//! or the supervisor, with libc. Those two are plain atomics: the dump
//! path (a signal handler) and the restored shim's resume read them.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use dumpfmt::ImageFile;

use super::{Refusal, exit, refuse};
use crate::config::Overrides;

/// Device and inode of the image a lazy restore mapped (0, 0: none).
static SOURCE_DEV: AtomicU64 = AtomicU64::new(0);
static SOURCE_INO: AtomicU64 = AtomicU64::new(0);

/// Most runs a lazy restore maps: each is a mapping of its own, and the
/// kernel allows about 65,000 per process.
const MAX_MAPPED_RUNS: usize = 16_384;
/// Runs shorter than this are read even in a lazy restore: a mapping per
/// few pages would spend the process's mappings for little.
pub const MIN_MAPPED_PAGES: u64 = 16;

/// Records the image a lazy restore mapped (`ino` 0: none). Called by the
/// restored shim as it resumes, before any dump can run.
pub fn set_source(dev: u64, ino: u64) {
    SOURCE_DEV.store(dev, Relaxed);
    SOURCE_INO.store(ino, Relaxed);
}

/// Whether a mapping of file `dev`/`ino` is memory a lazy restore mapped
/// from its image. Async-signal-safe.
pub fn is_source(dev: u64, ino: u64) -> bool {
    ino != 0 && SOURCE_INO.load(Relaxed) == ino && SOURCE_DEV.load(Relaxed) == dev
}

/// Device and inode of the image, for the handoff.
pub fn identity(img: &ImageFile) -> (u64, u64) {
    img.file
        .metadata()
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or((0, 0))
}

/// Whether this restore maps its runs: asked for, and possible (else an
/// info line says why not, and the restore is eager).
pub fn decide(overrides: &Overrides, img: &ImageFile, tree: bool, path: &str) -> bool {
    if !overrides.lazy {
        return false;
    }
    let info = |why: &str| {
        if overrides.log.is_some_and(|l| l >= 1) {
            eprintln!("migrate: restore {path}: {why}: restored eagerly");
        }
    };
    if tree {
        info("a lazy restore of a tree image is not supported yet");
        return false;
    }
    // Compressed runs or runs kept in a parent image cannot be mapped.
    if !dumpfmt::placement::mappable(img.header.minor, &img.image.minor4.placement) {
        info("the image's pages are not stored raw");
        return false;
    }
    let mut runs = img.image.runs.iter().peekable();
    let mut mapped = 0usize;
    for m in img.image.mappings.iter() {
        while let Some(r) = runs.next_if(|r| r.addr < m.end) {
            if r.addr >= m.start && super::pages::lazy_eligible(m) && r.pages >= MIN_MAPPED_PAGES {
                mapped += 1;
            }
        }
    }
    if mapped > MAX_MAPPED_RUNS {
        info(&format!(
            "{mapped} runs would each be a mapping (more than {MAX_MAPPED_RUNS})"
        ));
        return false;
    }
    true
}

/// The check the supervisor runs after the resume: a copy of the image.
struct Pending {
    img: ImageFile,
    path: String,
}

static ARMED: Mutex<Option<Pending>> = Mutex::new(None);

/// Keeps what the supervisor needs to check the image's pages after the
/// resume (called before the namespaces are entered: the supervisor is
/// this process).
pub fn arm(img: &ImageFile, path: &str) -> Result<(), Refusal> {
    let file = img.file.try_clone().map_err(|e| {
        refuse(
            exit::UNSUPPORTED,
            format!("cannot keep the image open: {e}"),
        )
    })?;
    let copy = ImageFile {
        header: img.header,
        image: img.image.clone(),
        file,
        base: img.base,
        compressed: img.compressed,
    };
    *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Pending {
        img: copy,
        path: path.to_string(),
    });
    Ok(())
}

/// In the process that restores (not the supervisor): the copy is not needed.
pub fn disarm() {
    ARMED.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// In the supervisor, as the restored process starts: checks every run's
/// checksum, at low priority; on a mismatch kills the namespace's init
/// (and with it every process there), prints one line and exits with the
/// corrupt-image status. It runs on the supervisor's own thread (a process
/// that unshared its PID namespace cannot start threads), before it waits
/// for the restored process: one that ends first is reported after the
/// check, so a corrupt page never goes unnoticed. Signals sent to the
/// supervisor meanwhile are forwarded as ever (its handler interrupts the
/// check).
pub fn check_in_supervisor(init_pid: i32) {
    let Some(p) = ARMED.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // SAFETY: lowering this process's own priority; it only waits after this.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if let Err(e) = super::checksums::check(&p.img) {
        // SAFETY: killing our own child, the namespace's init.
        unsafe { libc::kill(init_pid, libc::SIGKILL) };
        eprintln!(
            "migrate: restore {}: {e}: the lazily restored process was killed",
            p.path
        );
        std::process::exit(exit::CORRUPT);
    }
}

/// Without a supervisor: every page checked before the resume.
pub fn verify_before_resume(
    img: &ImageFile,
    overrides: &Overrides,
    path: &str,
) -> Result<(), Refusal> {
    super::checksums::check(img).map_err(|e| refuse(exit::CORRUPT, e.to_string()))?;
    if overrides.log.is_some_and(|l| l >= 1) {
        eprintln!(
            "migrate: restore {path}: lazy restore without a supervisor (no PID namespace): every page was checked before the resume"
        );
    }
    Ok(())
}
