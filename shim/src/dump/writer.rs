//! Writing an image file: a temporary file beside the target, page data
//! from offset 4096, metadata at the tail, then the header, fsync, rename.
//! A reader never sees a partial image; a failed dump removes its
//! temporary file and leaves the previous image in place.

use crate::config::PATH_MAX;
use crate::dump::Fail;
use crate::sys::{self, line::Line};

pub struct ImageWriter {
    fd: i32,
    /// The same file opened with O_DIRECT, for large page-aligned runs
    /// (-1 where the filesystem refuses it).
    direct: i32,
    tmp: Line<{ PATH_MAX + 32 }>,
    target: Line<PATH_MAX>,
    pos: u64,
    done: bool,
}

impl ImageWriter {
    /// Creates `<target>.tmp`, mode 0600, never through a symlink.
    pub fn create(target: &[u8]) -> Result<ImageWriter, Fail> {
        let mut w = ImageWriter {
            fd: -1,
            direct: -1,
            tmp: Line::new(),
            target: Line::new(),
            pos: dumpfmt::HEADER_LEN,
            done: false,
        };
        w.target.bytes(target);
        w.tmp.bytes(target).str(".tmp");
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let Some(tmp) = w.tmp.c_str() else {
            return Err(Fail::new("image path too long"));
        };
        let fd = match sys::open(tmp, flags, 0o600) {
            // A dump killed half-way leaves its temporary file: replace it.
            Err(sys::Errno(libc::EEXIST)) => {
                let _ = sys::unlink(tmp);
                sys::open(tmp, flags, 0o600)
            }
            r => r,
        };
        w.fd = fd.map_err(|e| {
            Fail::new("cannot create ")
                .bytes(target)
                .str(".tmp")
                .errno(e)
        })?;
        if let Some(tmp) = w.tmp.c_str() {
            let flags = libc::O_WRONLY | libc::O_DIRECT | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            w.direct = sys::open(tmp, flags, 0).unwrap_or(-1);
        }
        Ok(w)
    }

    /// The descriptors the writer holds (not to be saved in the image).
    pub fn fds(&self) -> [i32; 2] {
        [self.fd, self.direct]
    }

    /// Writes page-aligned data at a page-aligned position, straight from
    /// memory to the disk when the filesystem allows (O_DIRECT): a large
    /// dump then neither copies its pages into the page cache nor waits
    /// for them to be written back. Falls back to `write`.
    pub fn write_pages(&mut self, data: &[u8]) -> Result<(), Fail> {
        let aligned = (data.as_ptr() as u64 | data.len() as u64 | self.pos)
            .is_multiple_of(dumpfmt::PAGE_SIZE);
        if self.direct >= 0 && aligned {
            match sys::pwrite_all(self.direct, data, self.pos) {
                Ok(()) => {
                    self.pos += data.len() as u64;
                    return Ok(());
                }
                // Not for this file or memory after all: buffered from now on.
                Err(sys::Errno(libc::EINVAL)) => {
                    sys::close(self.direct);
                    self.direct = -1;
                }
                Err(e) => return Err(self.io_fail(e)),
            }
        }
        self.write(data)
    }

    /// Where the next byte goes.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), Fail> {
        sys::pwrite_all(self.fd, data, self.pos).map_err(|e| self.io_fail(e))?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn io_fail(&self, e: sys::Errno) -> Fail {
        Fail::new("cannot write ")
            .bytes(self.target.as_bytes())
            .errno(e)
    }

    /// Writes the header, syncs and renames into place.
    pub fn finish(mut self, header: &dumpfmt::Header) -> Result<u64, Fail> {
        let mut page = [0u8; 64];
        header.encode(&mut page);
        sys::pwrite_all(self.fd, &page, 0).map_err(|e| self.io_fail(e))?;
        sys::fsync(self.fd).map_err(|e| self.io_fail(e))?;
        let mut tmp = Line::<{ PATH_MAX + 32 }>::new();
        tmp.bytes(self.tmp.as_bytes());
        let (Some(from), Some(to)) = (tmp.c_str(), self.target.c_str()) else {
            return Err(Fail::new("image path too long"));
        };
        sys::rename(from, to).map_err(|e| {
            Fail::new("cannot rename to ")
                .bytes(self.target.as_bytes())
                .errno(e)
        })?;
        self.done = true;
        sync_parent_dir(self.target.as_bytes());
        Ok(self.pos)
    }
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
        if self.direct >= 0 {
            sys::close(self.direct);
        }
        if !self.done
            && let Some(tmp) = self.tmp.c_str()
        {
            let _ = sys::unlink(tmp);
        }
    }
}
