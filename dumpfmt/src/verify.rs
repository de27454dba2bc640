//! Reading an image back: framing, metadata, consistency and page checksums.
//!
//! Images are read with positioned reads, never mapped: a reader holds the
//! header and metadata in memory and streams page data through a small
//! buffer, so checking a 100 GiB image needs no more memory than a 1 MiB one.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::Error;
use crate::header::{HEADER_LEN, Header, PAGE_SIZE};
use crate::records::{Backing, FdKind, Image, Minor1, Minor2, Minor3, Minor4};

/// An image opened for reading: header and metadata decoded and checked.
#[derive(Debug)]
pub struct ImageFile {
    pub header: Header,
    pub image: Image<'static>,
    pub file: File,
    /// Where the image starts in `file`: 0, or its section's offset in a
    /// tree image. Every offset the image records counts from here.
    pub base: u64,
    /// The image on disk has compressed page data (format 1.4): `file`
    /// is then a temporary file holding it uncompressed (see
    /// [`crate::compress`]), and `header` and `image` describe that file.
    /// Lazy restore cannot map such an image's runs from the original.
    pub compressed: bool,
}

/// An image of either kind, opened.
// One per image opened: the size of the single variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Opened {
    Single(ImageFile),
    Tree(crate::TreeFile),
}

/// Opens an image of either kind (see [`ImageFile::open`] and
/// [`crate::TreeFile::open`]).
pub fn open_any(path: &Path) -> Result<Opened, Error> {
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    open_any_file(file).map_err(|e| match e {
        Error::Io(m) => Error::Io(format!("{}: {m}", path.display())),
        e => e,
    })
}

/// As [`open_any`], for a file already open.
pub fn open_any_file(file: File) -> Result<Opened, Error> {
    if crate::tree::is_tree(&file)? {
        crate::TreeFile::from_file(file).map(Opened::Tree)
    } else {
        ImageFile::from_file(file).map(Opened::Single)
    }
}

impl ImageFile {
    /// `len` bytes of the dumped process's memory at `addr` (pages no run
    /// holds are zero in anonymous memory, unknown elsewhere), or None when some of them are not in the image
    /// (a file's page the dump did not store) or cannot be read.
    pub fn read_memory(&self, addr: u64, len: u64) -> Option<Vec<u8>> {
        const MAX: u64 = 16 << 20;
        if len > MAX {
            return None;
        }
        let image = &self.image;
        let mut out = vec![0u8; len as usize];
        let mut at = addr;
        let end = addr.checked_add(len)?;
        while at < end {
            // The last page of the address space ends at 2^64: saturate.
            let page_end = (at / PAGE_SIZE + 1).saturating_mul(PAGE_SIZE);
            let n = page_end.min(end) - at;
            let dst = &mut out[(at - addr) as usize..(at - addr + n) as usize];
            // Runs and mappings are in address order, apart (checked when the
            // image was opened): a binary search, not a scan per page.
            let runs = &image.runs[..];
            let run = runs
                .get(runs.partition_point(|r| r.addr + r.pages * PAGE_SIZE <= at))
                .filter(|r| r.addr <= at);
            match run {
                Some(r) => self
                    .file
                    .read_exact_at(dst, self.base + r.file_offset + (at - r.addr))
                    .ok()?,
                None => {
                    // Kept by an ancestor: not in this file.
                    let inherited = &image.minor4.incremental.inherited[..];
                    if inherited
                        .get(inherited.partition_point(|r| r.addr + r.pages * PAGE_SIZE <= at))
                        .is_some_and(|r| r.addr <= at)
                    {
                        return None;
                    }
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
}

/// What `verify` found in a good image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub file_len: u64,
    pub mappings: usize,
    pub runs: usize,
    pub data_bytes: u64,
    pub threads: usize,
}

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}

impl ImageFile {
    /// Opens, frames and decodes an image; checks the metadata but not the
    /// page data (see [`ImageFile::check_pages`]).
    pub fn open(path: &Path) -> Result<ImageFile, Error> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        Self::from_file(file).map_err(|e| match e {
            Error::Io(m) => Error::Io(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// As [`ImageFile::open`], for a file already open. A tree image is
    /// refused ([`Error::TreeImage`]): see [`open_any`].
    pub fn from_file(file: File) -> Result<ImageFile, Error> {
        let len = file.metadata().map_err(|e| Error::Io(e.to_string()))?.len();
        Self::from_file_at(file, 0, len)
    }

    /// The image of `len` bytes at `base` in `file` (a section of a tree
    /// image, or the whole file at 0).
    pub fn from_file_at(file: File, base: u64, len: u64) -> Result<ImageFile, Error> {
        let mut head = [0u8; HEADER_LEN as usize];
        let want = len.min(HEADER_LEN) as usize;
        let got = read_full_at(&file, &mut head[..want], base)?;
        let header = Header::decode(&head[..got], len)?;
        if header.flags & crate::FLAG_TREE != 0 {
            return Err(Error::TreeImage);
        }
        let mut meta = vec![0u8; header.meta_len as usize];
        if read_full_at(&file, &mut meta, base + header.meta_offset)? != meta.len() {
            return Err(Error::Truncated {
                len,
                need: header.file_len,
            });
        }
        let image = decode_meta(&header, &meta)?;
        if image.minor4.compression.is_compressed() {
            let (file, header, image) = crate::compress::expand(&file, base, &header, &image)?;
            return Ok(ImageFile {
                header,
                image,
                file,
                base: 0,
                compressed: true,
            });
        }
        Ok(ImageFile {
            header,
            image,
            file,
            base,
            compressed: false,
        })
    }

    /// The crc32 of `len` bytes of page data at `offset`, read through `buf`.
    fn crc_of(&self, buf: &mut [u8], offset: u64, len: u64) -> Result<u32, Error> {
        let mut hasher = crc32fast::Hasher::new();
        let mut left = len;
        let mut at = self.base + offset;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            if read_full_at(&self.file, &mut buf[..n], at)? != n {
                return Err(Error::Truncated {
                    len: at,
                    need: self.header.file_len,
                });
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
            at += n as u64;
        }
        Ok(hasher.finalize())
    }

    /// Checks the crc32 of every run of page data; returns the bytes checked.
    pub fn check_pages(&self) -> Result<u64, Error> {
        // Large reads: a cold image then streams at disk speed (the kernel reads
        // ahead by the size asked for).
        let mut buf = vec![0u8; 8 << 20];
        let mut total = 0u64;
        for (index, run) in self.image.runs.iter().enumerate() {
            let len = run.pages * PAGE_SIZE;
            if self.crc_of(&mut buf, run.file_offset, len)? != run.crc {
                return Err(Error::RunCrc {
                    index,
                    addr: run.addr,
                });
            }
            total += len;
        }
        for (fd, run) in self.image.minor4.files.stored_runs() {
            let len = run.stored_len();
            if self.crc_of(&mut buf, run.file_offset, len)? != run.crc {
                return Err(Error::FileRunCrc {
                    fd,
                    start: run.start,
                });
            }
            total += len;
        }
        Ok(total)
    }

    pub fn summary(&self) -> Summary {
        Summary {
            file_len: self.header.file_len,
            mappings: self.image.mappings.len(),
            runs: self.image.runs.len(),
            data_bytes: self.image.runs.iter().map(|r| r.pages * PAGE_SIZE).sum(),
            threads: self.image.threads.len(),
        }
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], mut at: u64) -> Result<usize, Error> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                at += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e.to_string())),
        }
    }
    Ok(done)
}

/// Frames and decodes a whole image held in memory (page data is not
/// checked). This is the entry point the fuzz target drives.
pub fn decode(bytes: &[u8]) -> Result<(Header, Image<'static>), Error> {
    let header = Header::decode(bytes, bytes.len() as u64)?;
    if header.flags & crate::FLAG_TREE != 0 {
        return Err(Error::TreeImage);
    }
    // The header checked meta_offset + meta_len == file_len == bytes.len().
    let image = decode_meta(&header, &bytes[header.meta_offset as usize..])?;
    Ok((header, image))
}

pub(crate) fn decode_meta(header: &Header, meta: &[u8]) -> Result<Image<'static>, Error> {
    if crc32fast::hash(meta) != header.meta_crc {
        return Err(Error::MetaCrc);
    }
    let header_minor = header.minor;
    let (image, rest) = crate::bounded::within_budget(
        meta.len(),
        || {
            let (mut image, mut rest) = postcard::take_from_bytes::<Image<'static>>(meta)?;
            if header_minor >= 1 {
                let (minor1, after) = postcard::take_from_bytes::<Minor1<'static>>(rest)?;
                image.minor1 = minor1;
                rest = after;
            }
            if header_minor >= 2 {
                let (minor2, after) = postcard::take_from_bytes::<Minor2<'static>>(rest)?;
                image.minor2 = minor2;
                rest = after;
            }
            if header_minor >= 3 {
                let (minor3, after) = postcard::take_from_bytes::<Minor3<'static>>(rest)?;
                image.minor3 = minor3;
                rest = after;
            }
            if header_minor >= 4 {
                let (minor4, after) = postcard::take_from_bytes::<Minor4<'static>>(rest)?;
                image.minor4 = minor4;
                rest = after;
            }
            Ok((image, rest))
        },
        |e: postcard::Error| Error::MetaDecode(e.to_string()),
    )?;
    if !rest.is_empty() {
        return Err(Error::MetaDecode(format!(
            "{} bytes after the metadata",
            rest.len()
        )));
    }
    check_consistency(header, &image).map_err(Error::BadMeta)?;
    Ok(image)
}

/// Opens an image and checks everything, page data included.
pub fn verify(path: &Path) -> Result<Summary, Error> {
    let file = ImageFile::open(path)?;
    file.check_pages()?;
    Ok(file.summary())
}

/// Every inherited run lies inside one mapping that can hold pages.
fn check_inside_mappings(image: &Image<'_>) -> Result<(), String> {
    let maps = &image.mappings[..];
    for (i, r) in image.minor4.incremental.inherited.iter().enumerate() {
        let end = r.addr + r.pages * PAGE_SIZE;
        match maps.get(maps.partition_point(|m| m.end <= r.addr)) {
            Some(m) if m.start <= r.addr && end <= m.end && m.backing != Backing::Kernel => {}
            _ => {
                return Err(format!(
                    "inherited run {i} at {:#x} is not inside one mapping",
                    r.addr
                ));
            }
        }
    }
    Ok(())
}

fn check_consistency(header: &Header, image: &Image<'_>) -> Result<(), String> {
    image.minor3.members.check(image.pid)?;
    image.minor4.capture.check()?;
    let tids: alloc::vec::Vec<u32> = image.threads.iter().map(|t| t.tid).collect();
    image.minor4.signals.check(&tids, &image.fds)?;
    image
        .minor4
        .procattrs
        .check(image.threads.len(), &image.mappings)?;
    image.minor4.files.check(&image.fds)?;
    let aligned = |v: u64| v % PAGE_SIZE == 0;
    let mut prev_end = 0u64;
    for (i, m) in image.mappings.iter().enumerate() {
        if !aligned(m.start) || !aligned(m.end) || m.start >= m.end {
            return Err(format!(
                "mapping {i} has bad bounds {:#x}-{:#x}",
                m.start, m.end
            ));
        }
        if m.start < prev_end {
            return Err(format!(
                "mapping {i} at {:#x} overlaps or is out of order",
                m.start
            ));
        }
        prev_end = m.end;
        if let Backing::File(f) | Backing::SharedFile(f) = m.backing {
            if f as usize >= image.files.len() {
                return Err(format!(
                    "mapping {i} names file {f} of {}",
                    image.files.len()
                ));
            }
            if !aligned(m.offset) {
                return Err(format!("mapping {i} has an unaligned file offset"));
            }
        }
    }
    // Page data is exactly the runs, back to back in order, from the end of
    // the header page to the start of the metadata: every byte of the file is
    // covered by a checksum or a fixed-value check. Compressed (1.4), the
    // chunks tile that part of the file instead and the runs tile the
    // logical page data the chunks stand for.
    let compression = &image.minor4.compression;
    compression.check(header.meta_offset)?;
    let data_end = if compression.is_compressed() {
        compression.logical_end()
    } else {
        header.meta_offset
    };
    let mut prev_addr_end = 0u64;
    let mut prev_file_end = HEADER_LEN;
    let mut mapping = 0usize;
    for (i, r) in image.runs.iter().enumerate() {
        let len = r
            .pages
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| format!("run {i} is too long"))?;
        let addr_end = r
            .addr
            .checked_add(len)
            .ok_or_else(|| format!("run {i} wraps the address space"))?;
        let file_end = r
            .file_offset
            .checked_add(len)
            .ok_or_else(|| format!("run {i} wraps the file offset"))?;
        if r.pages == 0 || !aligned(r.addr) || !aligned(r.file_offset) {
            return Err(format!("run {i} is empty or unaligned"));
        }
        if r.addr < prev_addr_end {
            return Err(format!(
                "run {i} at {:#x} overlaps the previous run or is out of order",
                r.addr
            ));
        }
        if r.file_offset != prev_file_end {
            return Err(format!(
                "run {i} starts at file offset {:#x}, not where the page data before it ends ({prev_file_end:#x})",
                r.file_offset
            ));
        }
        if file_end > data_end {
            return Err(format!("run {i} extends into the metadata"));
        }
        while mapping < image.mappings.len() && image.mappings[mapping].end <= r.addr {
            mapping += 1;
        }
        match image.mappings.get(mapping) {
            Some(m) if m.start <= r.addr && addr_end <= m.end => {
                // From 1.2 on, the vDSO's own pages are kept.
                if m.backing == Backing::Kernel && (header.minor < 2 || m.name != "[vdso]") {
                    return Err(format!(
                        "run {i} at {:#x} is inside a kernel mapping ({})",
                        r.addr, m.name
                    ));
                }
            }
            _ => {
                return Err(format!(
                    "run {i} at {:#x} is not inside one mapping",
                    r.addr
                ));
            }
        }
        prev_addr_end = addr_end;
        prev_file_end = file_end;
    }
    // The data of stored files (1.4, `files::How::Stored`) follows, in
    // descriptor order, each run whole pages.
    for (fd, r) in image.minor4.files.stored_runs() {
        if r.file_offset != prev_file_end {
            return Err(format!(
                "stored data of fd {fd} starts at file offset {:#x}, not where the page data before it ends ({prev_file_end:#x})",
                r.file_offset
            ));
        }
        let file_end = r
            .file_offset
            .checked_add(r.stored_len())
            .filter(|&e| e <= data_end)
            .ok_or_else(|| format!("stored data of fd {fd} extends into the metadata"))?;
        prev_file_end = file_end;
    }
    let stored: u64 = image.runs.iter().map(|r| r.pages).sum();
    image.minor4.placement.check(stored)?;
    let own: Vec<(u64, u64)> = image
        .runs
        .iter()
        .map(|r| (r.addr, r.addr + r.pages * PAGE_SIZE))
        .collect();
    image.minor4.incremental.check(&own)?;
    check_inside_mappings(image)?;
    if prev_file_end != data_end {
        return Err(format!(
            "page data ends at {prev_file_end:#x} but the metadata starts at {data_end:#x}"
        ));
    }
    // Every lookup below is a binary search among the fds checked so far,
    // which are in strictly increasing order: the check stays linear in
    // the number of records (a scan per record took hours on large images).
    let fds = &image.fds[..];
    // From 1.3 a tree member's own stdio may be recorded (one it does not
    // share with the tree's root); a single process's never is.
    let mut prev_fd = if header.minor >= 3 { -1 } else { 2 };
    for (i, f) in fds.iter().enumerate() {
        if f.fd <= prev_fd {
            return Err(format!("fd {} is stdio, repeated or out of order", f.fd));
        }
        if let FdKind::Dup { of } = f.kind {
            let original = fds[..i]
                .binary_search_by_key(&of, |o| o.fd)
                .ok()
                .map(|at| &fds[at].kind);
            if matches!(original, None | Some(FdKind::Dup { .. })) {
                return Err(format!(
                    "fd {} duplicates fd {of}, which is not an earlier original",
                    f.fd
                ));
            }
        }
        prev_fd = f.fd;
    }
    let kinds: Vec<(i32, Option<usize>)> = fds
        .iter()
        .map(|f| match &f.kind {
            FdKind::Epoll { entries } => (f.fd, Some(entries.len())),
            _ => (f.fd, None),
        })
        .collect();
    image.minor4.sockets.check(&kinds)?;
    for (i, m) in image.mappings.iter().enumerate() {
        if let Backing::Fd(n) = m.backing {
            let named = fds
                .binary_search_by_key(&n, |f| f.fd)
                .ok()
                .map(|at| &fds[at].kind);
            if !matches!(named, Some(FdKind::Contents { .. })) {
                return Err(format!("mapping {i} names fd {n}, which holds no contents"));
            }
        }
    }
    if image.threads.is_empty() {
        return Err("no thread".into());
    }
    if image.auxv.len() % 2 != 0 {
        return Err("auxv has an odd number of words".into());
    }
    let timers = &image.minor1.posix_timers;
    if let Some(w) = timers.windows(2).find(|w| w[0].id >= w[1].id) {
        return Err(format!(
            "POSIX timer {} is repeated or out of order",
            w[1].id
        ));
    }
    let frames = image.minor2.fpstate.len();
    if frames != 0 && frames != image.threads.len() {
        return Err(format!(
            "{frames} signal frame addresses for {} threads",
            image.threads.len()
        ));
    }
    if let Some(b) = &image.minor2.baseline
        && b.name.len() > 64
    {
        return Err("CPU baseline name too long".into());
    }
    let creds = image.minor1.credentials.len();
    if header.minor >= 1 && creds != image.threads.len() {
        return Err(format!(
            "{creds} credential records for {} threads",
            image.threads.len()
        ));
    }
    check_shared(image)
}

/// The largest shared memory object a record may reach into (a restore
/// makes the object that large).
const MAX_SHARED_OBJECT: u64 = 1 << 40;

/// `Minor3::shared`: each memory record names a shared `Contents` mapping
/// and stays within `MAX_SHARED_OBJECT`; each descriptor record names a
/// descriptor of the kind its key is for; both sorted without repeats.
fn check_shared(image: &Image<'_>) -> Result<(), String> {
    let shared = &image.minor3.shared;
    if let Some(w) = shared.memory.windows(2).find(|w| w[0].start >= w[1].start) {
        return Err(format!(
            "shared memory record {:#x} is repeated or out of order",
            w[1].start
        ));
    }
    for s in shared.memory.iter() {
        let at = image.mappings.partition_point(|m| m.start < s.start);
        let m = image
            .mappings
            .get(at)
            .filter(|m| m.start == s.start && m.shared && m.backing == Backing::Contents);
        let Some(m) = m else {
            return Err(format!(
                "shared memory record {:#x} names no shared mapping of contents",
                s.start
            ));
        };
        let reach = s.offset.checked_add(m.end - m.start);
        if s.offset % PAGE_SIZE != 0 || reach.is_none_or(|r| r > MAX_SHARED_OBJECT) {
            return Err(format!(
                "shared memory record {:#x} has a bad offset {:#x}",
                s.start, s.offset
            ));
        }
    }
    if let Some(w) = shared.fds.windows(2).find(|w| w[0].fd >= w[1].fd) {
        return Err(format!(
            "shared descriptor record {} is repeated or out of order",
            w[1].fd
        ));
    }
    for f in shared.fds.iter() {
        // `fds` is sorted by number (checked above): no quadratic scan.
        let kind = image
            .fds
            .binary_search_by_key(&f.fd, |d| d.fd)
            .ok()
            .map(|i| &image.fds[i].kind);
        let fits = match (f.key, kind) {
            (crate::SharedKey::Object { .. }, Some(FdKind::Contents { .. })) => true,
            (crate::SharedKey::SocketEnd { .. }, Some(FdKind::Gone { sock_type, .. })) => {
                *sock_type != 0
            }
            (crate::SharedKey::SocketEnd { .. }, Some(FdKind::UnixPair { .. })) => true,
            (
                crate::SharedKey::Description { .. },
                Some(FdKind::File { .. } | FdKind::Socket { .. } | FdKind::Eventfd { .. }),
            ) => true,
            _ => false,
        };
        if !fits {
            return Err(format!(
                "shared descriptor record {} names no descriptor of its kind",
                f.fd
            ));
        }
    }
    Ok(())
}
