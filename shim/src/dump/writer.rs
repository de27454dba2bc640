//! Writing an image file: a temporary file beside the target, page data
//! from offset 4096, metadata at the tail, then the header, fsync, rename.
//! A reader never sees a partial image; a failed dump removes its
//! temporary file and leaves the previous image in place.
//!
//! The temporary file has no name while it is written (`O_TMPFILE` in the
//! target's directory), so a dump killed part-way leaves nothing behind.
//! Once complete and synced it is linked (`linkat` of `/proc/self/fd/N`)
//! under a name of its own, `<target>.<pid>.<ns>.tmp` (the target's file
//! name cut short where that would be too long), created exclusively,
//! and renamed over the target: dumpers that share a target never touch
//! each other's files, and the last rename wins with a complete image.
//! Only a kill between the link and the rename (two system calls) leaves a
//! temporary file, and that one is complete. Where nothing is at the
//! target yet (a new `%n`), the file is linked there directly: one call,
//! and no temporary name at all. A numbered image's writer never replaces
//! (`never_replace`): whatever is at such a name was written by someone
//! else, so a file that appears there meanwhile fails the dump and stays
//! (`RENAME_NOREPLACE`, or a second link where a filesystem lacks it).
//! Where the filesystem has no
//! `O_TMPFILE`, the file is created under its unique name from the start
//! (`O_EXCL | O_NOFOLLOW`); a dump killed part-way then leaves that
//! incomplete file, which nothing reuses and which may be removed.
//!
//! Everything happens on the one descriptor created here: `O_DIRECT` is
//! switched on and off on it (`F_SETFL`), never by opening the path again.

use crate::config::PATH_MAX;
use crate::dump::Fail;
use crate::sys::{self, line::Line};

/// Room for the target plus `.<pid>.<ns>.tmp`.
const TMP_MAX: usize = PATH_MAX + 48;

/// The longest file name (a path component), as Linux filesystems take.
const NAME_MAX: usize = 255;

/// Tries at a unique name before giving up (each taken name moves on).
const NAME_TRIES: u64 = 100;

pub struct ImageWriter {
    fd: i32,
    /// `O_DIRECT` is set on `fd` now.
    direct_on: bool,
    /// The filesystem took `O_DIRECT` (false once it refused it).
    direct_ok: bool,
    /// The temporary file's name, once it has one.
    tmp: Line<TMP_MAX>,
    /// `tmp` names our file: remove it unless the rename happened.
    named: bool,
    kind: TempKind,
    target: Line<PATH_MAX>,
    /// Where the image being written starts in the file: 0, or its
    /// section's offset in a tree image (see `crate::tree::dump`); `pos`
    /// and every write count from here.
    base: u64,
    pos: u64,
    done: bool,
    /// A tree member's section in its parent's file: never finished,
    /// linked or renamed here.
    section: bool,
    /// A file already at the target is never replaced (a numbered
    /// image's name: whatever is there was written by someone else).
    no_replace: bool,
}

/// How the temporary file is made (see the module's documentation).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TempKind {
    /// `O_TMPFILE`, linked under a unique name when complete.
    Unnamed,
    /// Created under a unique name from the start.
    Named,
}

impl ImageWriter {
    /// Creates the temporary file beside `target`, mode 0600, never
    /// through a symlink.
    pub fn create(target: &[u8]) -> Result<ImageWriter, Fail> {
        let mut w = ImageWriter::new(target)?;
        match w.open_unnamed() {
            Ok(()) => Ok(w),
            // No O_TMPFILE in this kernel (EISDIR) or filesystem.
            Err(sys::Errno(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {
                w.open_named()?;
                Ok(w)
            }
            Err(e) => Err(unnamed_fail(target, e)),
        }
    }

    /// As [`ImageWriter::create`], with the temporary file made as `kind`
    /// says, no fallback (for tests of both kinds).
    pub fn create_as(target: &[u8], kind: TempKind) -> Result<ImageWriter, Fail> {
        let mut w = ImageWriter::new(target)?;
        match kind {
            TempKind::Unnamed => w.open_unnamed().map_err(|e| unnamed_fail(target, e))?,
            TempKind::Named => w.open_named()?,
        }
        Ok(w)
    }

    fn new(target: &[u8]) -> Result<ImageWriter, Fail> {
        let mut w = ImageWriter {
            fd: -1,
            direct_on: false,
            direct_ok: true,
            tmp: Line::new(),
            named: false,
            kind: TempKind::Unnamed,
            target: Line::new(),
            base: 0,
            pos: dumpfmt::HEADER_LEN,
            done: false,
            section: false,
            no_replace: false,
        };
        w.target.bytes(target);
        if w.target.is_full() || target.is_empty() {
            return Err(Fail::new("image path too long or empty"));
        }
        Ok(w)
    }

    /// A tree member's writer: its section at `base` in the file its
    /// parent `parent` writes as descriptor `fd` (reopened through
    /// `/proc/PARENT/fd/FD`); `target` only names it in messages.
    pub fn open_section(
        target: &[u8],
        parent: i32,
        fd: i32,
        base: u64,
    ) -> Result<ImageWriter, Fail> {
        let mut w = ImageWriter::new(target)?;
        let mut path = Line::<64>::new();
        path.str("/proc/")
            .dec(parent as u64)
            .str("/fd/")
            .dec(fd as u64);
        let Some(p) = path.c_str() else {
            return Err(Fail::new("image path too long"));
        };
        w.fd = sys::open(p, libc::O_WRONLY | libc::O_CLOEXEC, 0).map_err(|e| {
            Fail::new("cannot open the tree image through ")
                .bytes(path.as_bytes())
                .errno(e)
        })?;
        w.section = true;
        w.base = base;
        Ok(w)
    }

    /// Starts a section at `base` (page-aligned): the image written from
    /// now on is a tree member's, its own offsets counting from `base`.
    pub fn start_section(&mut self, base: u64) {
        self.base = base;
        self.pos = dumpfmt::HEADER_LEN;
    }

    /// Writes the section's header at its start; returns where the
    /// section ends in the file.
    pub fn finish_section(&mut self, header: &dumpfmt::Header) -> Result<u64, Fail> {
        let mut page = [0u8; 64];
        header.encode(&mut page);
        self.write_at(&page, 0)?;
        Ok(self.base + self.pos)
    }

    /// Goes back to writing the outer file, at offset `pos`.
    pub fn outer_at(&mut self, pos: u64) {
        self.base = 0;
        self.pos = pos;
    }

    /// Never replace a file already at the target: [`ImageWriter::finish`]
    /// fails instead (a numbered image, see `dump::numbered_path`).
    pub fn never_replace(&mut self) {
        self.no_replace = true;
    }

    /// How the temporary file was made.
    pub fn kind(&self) -> TempKind {
        self.kind
    }

    /// An unnamed file in the target's directory.
    fn open_unnamed(&mut self) -> Result<(), sys::Errno> {
        let target = self.target.as_bytes();
        let mut dir = Line::<PATH_MAX>::new();
        match target.iter().rposition(|&c| c == b'/') {
            None => dir.bytes(b"."),
            Some(0) => dir.bytes(b"/"),
            Some(slash) => dir.bytes(&target[..slash]),
        };
        let dir = dir.c_str().ok_or(sys::Errno(libc::ENAMETOOLONG))?;
        let flags = libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC;
        self.fd = sys::open(dir, flags, 0o600)?;
        self.kind = TempKind::Unnamed;
        Ok(())
    }

    /// A file created under a unique name (the fallback).
    fn open_named(&mut self) -> Result<(), Fail> {
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        self.fd = self.claim_name("cannot create ", |path| sys::open(path, flags, 0o600))?;
        self.kind = TempKind::Named;
        Ok(())
    }

    /// Sets `tmp` to `<target>.<pid>.<ns>.tmp` names until `make` creates
    /// one that did not exist; marks it ours. `what` starts the failure.
    fn claim_name(
        &mut self,
        what: &str,
        mut make: impl FnMut(&[u8]) -> Result<i32, sys::Errno>,
    ) -> Result<i32, Fail> {
        let pid = sys::getpid() as u64;
        let ns = sys::monotonic_ns();
        let target = self.target.as_bytes();
        let base = target.iter().rposition(|&c| c == b'/').map_or(0, |s| s + 1);
        let mut last = sys::Errno(libc::EEXIST);
        for attempt in 0..NAME_TRIES {
            let mut suffix = Line::<48>::new();
            suffix
                .str(".")
                .dec(pid)
                .str(".")
                .dec(ns + attempt)
                .str(".tmp");
            // A long file name is shortened so that the temporary one is
            // still a valid name (NAME_MAX), or the link of a complete image
            // would fail with ENAMETOOLONG.
            let room = NAME_MAX.saturating_sub(suffix.as_bytes().len());
            let keep = (target.len() - base).min(room);
            self.tmp.clear();
            self.tmp
                .bytes(&target[..base + keep])
                .bytes(suffix.as_bytes());
            let Some(path) = self.tmp.c_str() else {
                return Err(Fail::new("image path too long: ").bytes(self.target.as_bytes()));
            };
            match make(path) {
                Ok(v) => {
                    self.named = true;
                    return Ok(v);
                }
                Err(sys::Errno(libc::EEXIST)) => {}
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(Fail::new(what).bytes(self.tmp.as_bytes()).errno(last))
    }

    /// The descriptor the writer holds (not to be saved in the image).
    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// Switches `O_DIRECT` on `fd`; false when the kernel refused.
    fn set_direct(&mut self, on: bool) -> bool {
        if self.direct_on == on {
            return true;
        }
        let flags = if on { libc::O_DIRECT } else { 0 };
        match sys::fcntl(self.fd, libc::F_SETFL, flags as u64) {
            Ok(_) => {
                self.direct_on = on;
                true
            }
            Err(_) => false,
        }
    }

    /// Writes page-aligned data at a page-aligned position, straight from
    /// memory to the disk when the filesystem allows (O_DIRECT): a large
    /// dump then neither copies its pages into the page cache nor waits
    /// for them to be written back. Falls back to `write`.
    pub fn write_pages(&mut self, data: &[u8]) -> Result<(), Fail> {
        let aligned = (data.as_ptr() as u64 | data.len() as u64 | self.pos)
            .is_multiple_of(dumpfmt::PAGE_SIZE);
        if self.direct_ok && aligned {
            if !self.set_direct(true) {
                self.direct_ok = false;
            } else {
                match sys::pwrite_all(self.fd, data, self.base + self.pos) {
                    Ok(()) => {
                        self.pos += data.len() as u64;
                        // SAFETY: images are written by the thread leading a dump.
                        unsafe { crate::status::progress(self.pos) };
                        return Ok(());
                    }
                    // Not for this file or memory after all (EFAULT: memory
                    // direct I/O cannot pin, as memfd_secret's): buffered
                    // from now on, rewriting whatever part went out.
                    Err(sys::Errno(libc::EINVAL | libc::EFAULT)) => self.direct_ok = false,
                    Err(e) => return Err(self.io_fail(e)),
                }
            }
        }
        self.write(data)
    }

    /// Where the image being written starts in the file.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Where the next byte goes.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), Fail> {
        self.write_at(data, self.pos)?;
        self.pos += data.len() as u64;
        // SAFETY: images are written by the thread leading a dump.
        unsafe { crate::status::progress(self.pos) };
        Ok(())
    }

    /// A buffered write (O_DIRECT off) at `at`.
    fn write_at(&mut self, data: &[u8], at: u64) -> Result<(), Fail> {
        if !self.set_direct(false) {
            return Err(Fail::new(
                "cannot turn O_DIRECT off on the image being written",
            ));
        }
        sys::pwrite_all(self.fd, data, self.base + at).map_err(|e| self.io_fail(e))
    }

    fn io_fail(&self, e: sys::Errno) -> Fail {
        Fail::new("cannot write ")
            .bytes(self.target.as_bytes())
            .errno(e)
    }

    /// Writes the header, syncs, names the file and renames it into place.
    pub fn finish(mut self, header: &dumpfmt::Header) -> Result<u64, Fail> {
        if self.section {
            return Err(Fail::new(
                "internal: a tree member's section is not an image file",
            ));
        }
        self.base = 0;
        let mut page = [0u8; 64];
        header.encode(&mut page);
        self.write_at(&page, 0)?;
        sys::fsync(self.fd).map_err(|e| self.io_fail(e))?;
        if !self.named {
            match self.link_at_target() {
                Ok(()) => {
                    self.done = true;
                    sync_parent_dir(self.target.as_bytes());
                    return Ok(self.pos);
                }
                Err(sys::Errno(libc::EEXIST)) if self.no_replace => return Err(self.taken()),
                // Linked under a unique name and renamed below.
                Err(_) => {}
            }
        }
        if !self.named {
            let fd = self.fd;
            let what = "cannot link the complete image (through /proc/self/fd) as ";
            self.claim_name(what, |path| sys::link_fd(fd, path).map(|()| 0))?;
        }
        let mut tmp = Line::<TMP_MAX>::new();
        tmp.bytes(self.tmp.as_bytes());
        let (Some(from), Some(to)) = (tmp.c_str(), self.target.c_str()) else {
            return Err(Fail::new("image path too long"));
        };
        let renamed = if !self.no_replace {
            sys::rename(from, to)
        } else {
            match sys::rename_noreplace(from, to) {
                // No RENAME_NOREPLACE here: a second name, which fails as
                // well when the target exists; the temporary one is
                // removed on drop (`done` stays false).
                Err(sys::Errno(libc::EINVAL)) => match sys::link(from, to) {
                    Ok(()) => {
                        sync_parent_dir(self.target.as_bytes());
                        return Ok(self.pos);
                    }
                    Err(e) => Err(e),
                },
                other => other,
            }
        };
        renamed.map_err(|e| match e {
            sys::Errno(libc::EEXIST) if self.no_replace => self.taken(),
            e => Fail::new("cannot rename to ")
                .bytes(self.target.as_bytes())
                .errno(e),
        })?;
        self.done = true;
        sync_parent_dir(self.target.as_bytes());
        Ok(self.pos)
    }
}

impl ImageWriter {
    /// Links the complete unnamed file straight at the target when no
    /// file is there yet (a new name, as `%n` makes): one system call, so
    /// not even a kill can leave a temporary name behind.
    fn link_at_target(&mut self) -> Result<(), sys::Errno> {
        let fd = self.fd;
        match self.target.c_str() {
            Some(to) => sys::link_fd(fd, to),
            None => Err(sys::Errno(libc::ENAMETOOLONG)),
        }
    }

    /// The target appeared while the image was written.
    fn taken(&self) -> Fail {
        Fail::new("")
            .bytes(self.target.as_bytes())
            .str(" appeared while the image was written (another process writes the same names?); not replaced")
    }
}

fn unnamed_fail(target: &[u8], e: sys::Errno) -> Fail {
    Fail::new("cannot create a temporary file beside ")
        .bytes(target)
        .errno(e)
}

/// Makes the rename durable; best effort (the image is complete either way).
fn sync_parent_dir(path: &[u8]) {
    let Some(slash) = path.iter().rposition(|&c| c == b'/') else {
        return;
    };
    let mut dir = Line::<PATH_MAX>::new();
    dir.bytes(if slash == 0 { b"/" } else { &path[..slash] });
    let Some(dir) = dir.c_str() else { return };
    if let Ok(fd) = sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0) {
        let _ = sys::fsync(fd);
        sys::close(fd);
    }
}

impl Drop for ImageWriter {
    fn drop(&mut self) {
        if self.fd >= 0 {
            sys::close(self.fd);
        }
        if self.named
            && !self.done
            && let Some(tmp) = self.tmp.c_str()
        {
            let _ = sys::unlink(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(file_len: u64) -> dumpfmt::Header {
        dumpfmt::Header {
            major: dumpfmt::VERSION_MAJOR,
            minor: dumpfmt::VERSION_MINOR,
            meta_offset: file_len,
            meta_len: 0,
            meta_crc: 0,
            file_len,
            flags: 0,
        }
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Both kinds: nothing but the target is left, the data is there, and
    /// the previous file at the target is replaced only by the rename.
    fn writes_and_renames(kind: TempKind) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.img");
        std::fs::write(&target, b"old").unwrap();
        let path = target.to_str().unwrap().as_bytes();
        let mut w = ImageWriter::create_as(path, kind).unwrap_or_else(|f| {
            panic!("{}", String::from_utf8_lossy(f.line.as_bytes()));
        });
        assert_eq!(w.kind(), kind);
        let page = vec![7u8; 3 * dumpfmt::PAGE_SIZE as usize + 4096];
        // A page-aligned piece of the buffer (O_DIRECT where it is taken).
        let off = page.as_ptr().align_offset(4096);
        w.write_pages(&page[off..off + 2 * 4096]).ok().unwrap();
        w.write(b"tail").ok().unwrap();
        let expected_named = kind == TempKind::Named;
        let during = names(dir.path());
        assert_eq!(during.len(), 1 + usize::from(expected_named), "{during:?}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        let len = w.finish(&header(3 * 4096 + 4)).ok().unwrap();
        assert_eq!(len, 3 * 4096 + 4);
        assert_eq!(names(dir.path()), ["a.img"]);
        let bytes = std::fs::read(&target).unwrap();
        assert_eq!(bytes.len(), 3 * 4096 + 4);
        assert!(bytes[4096..3 * 4096].iter().all(|&b| b == 7));
        assert_eq!(&bytes[3 * 4096..], b"tail");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn unnamed_temporary_file() {
        writes_and_renames(TempKind::Unnamed);
    }

    /// A new target gets the complete file linked straight at its name:
    /// no temporary name exists at any moment.
    #[test]
    fn new_target_is_linked_directly() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a-1.img");
        let path = target.to_str().unwrap().as_bytes();
        let mut w = ImageWriter::create_as(path, TempKind::Unnamed)
            .ok()
            .unwrap();
        w.write(b"tail").ok().unwrap();
        assert!(names(dir.path()).is_empty());
        let len = w.finish(&header(4096 + 4)).ok().unwrap();
        assert_eq!(len, 4096 + 4);
        assert_eq!(names(dir.path()), ["a-1.img"]);
        assert_eq!(&std::fs::read(&target).unwrap()[4096..], b"tail");
    }

    /// A writer that must not replace: a file that appeared at the
    /// target while the image was written stays as it is, the dump fails
    /// naming it, and no temporary file is left (both kinds).
    #[test]
    fn never_replaces_a_file_that_appeared() {
        for kind in [TempKind::Unnamed, TempKind::Named] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("a-2.img");
            let path = target.to_str().unwrap().as_bytes();
            let mut w = ImageWriter::create_as(path, kind).ok().unwrap();
            w.never_replace();
            w.write(b"tail").ok().unwrap();
            std::fs::write(&target, b"theirs").unwrap();
            let fail = w.finish(&header(4096 + 4)).err().unwrap();
            let line = String::from_utf8_lossy(fail.line.as_bytes()).into_owned();
            assert!(line.contains("a-2.img appeared"), "{kind:?}: {line}");
            assert_eq!(std::fs::read(&target).unwrap(), b"theirs", "{kind:?}");
            assert_eq!(names(dir.path()), ["a-2.img"], "{kind:?}");
        }
    }

    /// Without the file there, a writer that must not replace still
    /// names its image (both kinds), and leaves no temporary file.
    #[test]
    fn never_replace_names_a_new_target() {
        for kind in [TempKind::Unnamed, TempKind::Named] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("a-3.img");
            let path = target.to_str().unwrap().as_bytes();
            let mut w = ImageWriter::create_as(path, kind).ok().unwrap();
            w.never_replace();
            w.write(b"tail").ok().unwrap();
            assert_eq!(w.finish(&header(4096 + 4)).ok(), Some(4096 + 4));
            assert_eq!(names(dir.path()), ["a-3.img"], "{kind:?}");
            assert_eq!(&std::fs::read(&target).unwrap()[4096..], b"tail");
        }
    }

    #[test]
    fn named_temporary_file() {
        writes_and_renames(TempKind::Named);
    }

    /// A writer dropped before `finish` leaves nothing, whatever its kind.
    #[test]
    fn abandoned_dump_leaves_nothing() {
        for kind in [TempKind::Unnamed, TempKind::Named] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("b.img");
            let mut w = ImageWriter::create_as(target.to_str().unwrap().as_bytes(), kind)
                .ok()
                .unwrap();
            w.write(b"partial").ok().unwrap();
            drop(w);
            assert!(names(dir.path()).is_empty(), "{kind:?}");
        }
    }

    /// A target whose file name is valid but too long to take the
    /// temporary name's suffix (it used to fail only at the link, once the
    /// whole image was written): both kinds finish, nothing else is left.
    #[test]
    fn long_file_name() {
        for kind in [TempKind::Unnamed, TempKind::Named] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("x".repeat(NAME_MAX));
            let path = target.to_str().unwrap().as_bytes();
            let mut w = ImageWriter::create_as(path, kind).unwrap_or_else(|f| {
                panic!("{}", String::from_utf8_lossy(f.line.as_bytes()));
            });
            w.write(b"long").ok().unwrap();
            if let Err(f) = w.finish(&header(4096 + 4)) {
                panic!("{kind:?}: {}", String::from_utf8_lossy(f.line.as_bytes()));
            }
            assert_eq!(names(dir.path()), ["x".repeat(NAME_MAX)], "{kind:?}");
            assert_eq!(&std::fs::read(&target).unwrap()[4096..], b"long");
        }
    }

    /// Two writers of one target: each has its own file; both finish, and
    /// the target is the last one's, whole.
    #[test]
    fn two_writers_of_one_target() {
        for kind in [TempKind::Unnamed, TempKind::Named] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("c.img");
            let path = target.to_str().unwrap().as_bytes();
            let mut a = ImageWriter::create_as(path, kind).ok().unwrap();
            let mut b = ImageWriter::create_as(path, kind).ok().unwrap();
            a.write(b"first writer").ok().unwrap();
            b.write(b"second writer").ok().unwrap();
            a.finish(&header(4096 + 12)).ok().unwrap();
            b.finish(&header(4096 + 13)).ok().unwrap();
            assert_eq!(names(dir.path()), ["c.img"], "{kind:?}");
            let bytes = std::fs::read(&target).unwrap();
            assert_eq!(&bytes[4096..], b"second writer", "{kind:?}");
        }
    }
}
