//! The checks a restore makes before teardown that depend only on the
//! image and this host, not on the relaunched process: the image's
//! integrity, its executable, the files it maps and reopens, the working
//! directory, the CPU, the kernel's vDSO, the credentials.
//!
//! The restore stops at the first problem ([`super::validate`] and
//! [`super::build`] call these one by one); `migrate verify` calls
//! [`all`], which runs every check and reports every problem, so that
//! both always judge an image the same way.

use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};

use dumpfmt::{Backing, FdKind, Image, ImageFile, PAGE_SIZE};

use super::{Refusal, differs, exit, identity, refuse, shared_files};

/// Opens the image (checking who may have written it) and decodes its
/// framing and metadata; page data is not read yet.
pub fn open(path: &str) -> Result<ImageFile, Refusal> {
    let file = super::open_checked(path)?;
    ImageFile::from_file(file).map_err(refusal)
}

/// As [`open`], for an image of either kind: a tree image's index and
/// every section's metadata are decoded and checked.
pub fn open_any(path: &str) -> Result<dumpfmt::Opened, Refusal> {
    let file = super::open_checked(path)?;
    dumpfmt::open_any_file(file).map_err(refusal)
}

fn refusal(e: dumpfmt::Error) -> Refusal {
    refuse(code_of(&e), e.to_string())
}

/// The exit status of a restore refused for `e`.
fn code_of(e: &dumpfmt::Error) -> i32 {
    use dumpfmt::Error as E;
    match e {
        E::Io(_) => exit::NO_IMAGE,
        E::NewerVersion { .. } | E::OlderVersion { .. } => exit::VERSION,
        E::Section { error, .. } => code_of(error),
        _ => exit::CORRUPT,
    }
}

/// Every run of page data (and of stored file data) whose checksum is
/// wrong, one problem each (a short read ends the list: nothing after it
/// can be read).
pub fn bad_runs(img: &ImageFile) -> Vec<Refusal> {
    let mut bad = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for (index, run) in img.image.runs.iter().enumerate() {
        let mut hasher = crc32fast::Hasher::new();
        let (mut at, mut left) = (img.base + run.file_offset, run.pages * PAGE_SIZE);
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            match img.file.read_exact_at(&mut buf[..n], at) {
                Ok(()) => hasher.update(&buf[..n]),
                Err(e) => {
                    bad.push(refuse(
                        exit::CORRUPT,
                        format!("page data of run {index} cannot be read: {e}"),
                    ));
                    return bad;
                }
            }
            left -= n as u64;
            at += n as u64;
        }
        if hasher.finalize() != run.crc {
            let e = dumpfmt::Error::RunCrc {
                index,
                addr: run.addr,
            };
            bad.push(refuse(exit::CORRUPT, e.to_string()));
        }
    }
    // The data of large unnamed files, after the page runs.
    for (fd, run) in img.image.minor4.files.stored_runs() {
        let mut hasher = crc32fast::Hasher::new();
        let (mut at, mut left) = (img.base + run.file_offset, run.stored_len());
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            if let Err(e) = img.file.read_exact_at(&mut buf[..n], at) {
                bad.push(refuse(
                    exit::CORRUPT,
                    format!(
                        "stored contents of fd {fd} cannot be read at byte {}: {e}",
                        run.start
                    ),
                ));
                return bad;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
            at += n as u64;
        }
        if hasher.finalize() != run.crc {
            let e = dumpfmt::Error::FileRunCrc {
                fd,
                start: run.start,
            };
            bad.push(refuse(exit::CORRUPT, e.to_string()));
        }
    }
    bad
}

/// The executable the image records, present and unchanged. (A restore
/// compares it with the program it runs in, status 68; without a program
/// to compare with, a missing or changed executable is a changed file, 69.)
pub fn exe(image: &Image<'_>) -> Result<(), Refusal> {
    let path = &*image.exe.path;
    let now = File::open(path)
        .and_then(|f| identity(&f, path))
        .map_err(|e| refuse(exit::FILE_CHANGED, format!("executable {path}: {e}")))?;
    match differs(&image.exe, &now) {
        Some(why) => Err(refuse(
            exit::FILE_CHANGED,
            format!("executable {path} changed since the dump: {why}"),
        )),
        None => Ok(()),
    }
}

/// This CPU can take the image: the features it needs (see
/// [`crate::cpu`]), and every thread's saved vector state.
pub fn cpu(img: &ImageFile) -> Result<(), Refusal> {
    match cpu_all(img).into_iter().next() {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

fn cpu_all(img: &ImageFile) -> Vec<Refusal> {
    let mut out: Vec<Refusal> = crate::cpu::check(img).err().into_iter().collect();
    out.extend(crate::cpu::frames(img));
    out
}

/// Every file the image maps, opened as the restore maps it and checked
/// unchanged, in the order of `Image::files`. Data files (mapped shared
/// and writable, see [`shared_files`]) are made again if gone when
/// `make_data_files`; otherwise (a check that must change nothing) they
/// are not opened, and their entry is `None`.
pub fn mapped_files(
    image: &Image<'_>,
    make_data_files: bool,
) -> Vec<Result<Option<File>, Refusal>> {
    // Which files a writable shared mapping needs open for writing, in one
    // pass over the mappings (one per file was quadratic).
    let mut writable_shared = vec![false; image.files.len()];
    for m in image.mappings.iter() {
        if let Backing::File(i) = m.backing
            && m.shared
            && m.prot & dumpfmt::PROT_WRITE != 0
            && let Some(w) = writable_shared.get_mut(i as usize)
        {
            *w = true;
        }
    }
    let data_files = shared_files::data_files(image);
    let mut out = Vec::with_capacity(image.files.len());
    for (i, (f, &writable_shared)) in image.files.iter().zip(&writable_shared).enumerate() {
        if data_files[i] {
            out.push(if make_data_files {
                shared_files::open(f).map(Some)
            } else {
                Ok(None)
            });
            continue;
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(writable_shared)
            .custom_flags(libc::O_CLOEXEC)
            .open(&*f.path)
            .and_then(|file| Ok((identity(&file, &f.path)?, file)))
            .map_err(|e| refuse(exit::FILE_CHANGED, format!("mapped file {}: {e}", f.path)));
        out.push(opened.and_then(|(now, file)| match differs(f, &now) {
            Some(why) => Err(refuse(
                exit::FILE_CHANGED,
                format!("mapped file {} changed since the dump: {why}", f.path),
            )),
            None => Ok(Some(file)),
        }));
    }
    out
}

/// The working directory is still there.
pub fn cwd(image: &Image<'_>) -> Result<(), Refusal> {
    let cwd = &image.process.cwd;
    if std::fs::metadata(&**cwd).is_ok_and(|m| m.is_dir()) {
        Ok(())
    } else {
        Err(refuse(
            exit::FILE_CHANGED,
            format!("the working directory {cwd} is gone"),
        ))
    }
}

/// The kernel's vDSO here is the image's, or the image's can be proxied
/// to it (see `vdso`).
pub fn vdso(img: &ImageFile) -> Result<(), Refusal> {
    super::vdso::decide(img, &super::fresh_maps()?).map(|_| ())
}

/// The files and directories the image's descriptors reopen by path,
/// checked as the restore checks them (see `fds::make`) without opening
/// anything that could have an effect: a regular file must be one, and
/// unchanged if it was open only for reading; a directory, device or FIFO
/// must be there and of its kind.
pub fn reopened_files(image: &Image<'_>) -> Vec<Refusal> {
    let mut out = Vec::new();
    for fd in image.fds.iter() {
        if image.minor4.files.of(fd.fd).is_some() {
            continue; // made and checked as `super::files` says
        }
        let n = fd.fd;
        let gone = |what: &str, path: &str, e: std::io::Error| {
            refuse(exit::FILE_CHANGED, format!("{what} {path} (fd {n}): {e}"))
        };
        let changed = |what: String| refuse(exit::FILE_CHANGED, what);
        match &fd.kind {
            FdKind::File {
                path,
                size,
                mtime_sec,
                mtime_nsec,
                ..
            } => match std::fs::metadata(&**path) {
                Err(e) => out.push(gone("file", path, e)),
                Ok(m) if fd.flags & libc::O_PATH == 0 && !m.is_file() => out.push(changed(
                    format!("file {path} (fd {n}) is no longer a regular file"),
                )),
                Ok(m) => {
                    if fd.flags & libc::O_ACCMODE == libc::O_RDONLY
                        && (m.size() != *size
                            || (m.mtime(), m.mtime_nsec()) != (*mtime_sec, *mtime_nsec))
                    {
                        out.push(changed(format!(
                            "file {path} (fd {n}, open for reading) changed since the dump"
                        )));
                    }
                }
            },
            FdKind::Dir { path, .. } => match std::fs::metadata(&**path) {
                Err(e) => out.push(gone("directory", path, e)),
                Ok(m) if !m.is_dir() => out.push(changed(format!(
                    "directory {path} (fd {n}) is no longer a directory"
                ))),
                Ok(_) => {}
            },
            FdKind::Device { path } => {
                if let Err(e) = std::fs::metadata(&**path) {
                    out.push(gone("device", path, e));
                }
            }
            FdKind::Pipe { path, .. } if !path.is_empty() => match std::fs::metadata(&**path) {
                Err(e) => out.push(gone("FIFO", path, e)),
                Ok(m) if !m.file_type().is_fifo() => {
                    out.push(changed(format!("FIFO {path} (fd {n}) is no longer a FIFO")))
                }
                Ok(_) => {}
            },
            _ => {}
        }
    }
    out
}

/// Every problem a restore of the image at `path` would meet before
/// teardown that this process can see, in the order the restore meets
/// them (so the first one's status is the restore's). Empty: the image
/// is whole and this host can take it. What only the relaunched process
/// can know (that it is the image's program, its threads, its
/// descriptors' numbers) is not checked.
pub fn all(path: &str) -> Vec<Refusal> {
    match open_any(path) {
        Ok(dumpfmt::Opened::Single(img)) => {
            let mut out = all_of(&img);
            out.extend(super::incremental::open(&img, path).err());
            out
        }
        Ok(dumpfmt::Opened::Tree(t)) => {
            // Each section as a single image, its problems named by pid;
            // then the tree's own (groups and sessions); each one's
            // executable is checked by `all_of`.
            let mut out = Vec::new();
            for (m, img) in t.tree.members.iter().zip(&t.sections) {
                for mut r in all_of(img) {
                    r.msg = format!("pid {}: {}", m.pid, r.msg);
                    out.push(r);
                }
            }
            if let Err((pid, why)) = crate::tree::groups::steps(&t.tree.members) {
                out.push(refuse(
                    exit::UNSUPPORTED,
                    format!("pid {pid}: its process group or session cannot be restored: {why}"),
                ));
            }
            out
        }
        Err(r) => vec![r],
    }
}

/// Every problem of one image (a single one, or a tree's section).
fn all_of(img: &ImageFile) -> Vec<Refusal> {
    let image = &img.image;
    let mut out = bad_runs(img);
    out.extend(exe(image).err());
    out.extend(cpu_all(img));
    out.extend(
        mapped_files(image, false)
            .into_iter()
            .filter_map(Result::err),
    );
    out.extend(reopened_files(image));
    out.extend(cwd(image).err());
    out.extend(vdso(img).err());
    out.extend(super::creds::check(image).err());
    out
}
