//! Choosing and writing the pages of one mapping.
//!
//! A page goes into the image when the file (if any) does not hold it:
//! for anonymous memory, every page the process touched; for a private
//! file mapping, every page that became private (written: data, RELRO,
//! GOT); for memory the restore cannot find elsewhere (deleted files,
//! shared anonymous memory), every page. All-zero pages are left out: the
//! restore maps fresh zero pages there.

use dumpfmt::{PAGE_SIZE, PageRun};

use crate::dump::Fail;
use crate::dump::arena::ArenaVec;
use crate::dump::writer::ImageWriter;
use crate::sys;

/// Bytes checksummed and written at a time in a large run.
const WRITE_CHUNK: usize = 8 << 20;
/// Runs at least this long are written with O_DIRECT (smaller ones would
/// pay a synchronous disk write each).
const DIRECT_MIN: usize = 1 << 20;

const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
const PM_FILE: u64 = 1 << 61;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Anonymous memory: pages present or swapped.
    Touched,
    /// Private file mapping: pages that are anonymous copies now.
    Private,
    /// Every page (read through `/proc/self/mem`, which cannot fault).
    All,
    /// A range a lazy restore mapped from its image (`restore::lazy`):
    /// the program's anonymous memory, every page, read as `All`; a page
    /// the image no longer holds is lost data, not a hole.
    Lazy,
}

impl Select {
    /// Whether a page with this pagemap entry goes into the image.
    fn wants(self, e: u64) -> bool {
        match self {
            Select::All | Select::Lazy => true,
            Select::Touched => e & (PM_PRESENT | PM_SWAPPED) != 0,
            Select::Private => (e & PM_PRESENT != 0 && e & PM_FILE == 0) || e & PM_SWAPPED != 0,
        }
    }
}

/// Buffers and descriptors shared by all mappings of one dump.
pub struct PageScan<'a> {
    pub pagemap_fd: i32,
    pub mem_fd: i32,
    pub pagemap: &'a mut [u64],
    pub bounce: &'a mut [u8],
    /// Memory that changes while it is written: the stack the dump code
    /// itself runs on. Runs touching it are copied to `bounce` first, so
    /// that checksum and data are of the same bytes.
    pub volatile: (u64, u64),
    /// `MIGRATE_COMPRESS`: page data goes through it (see `compress`).
    pub chunker: Option<crate::dump::compress::Chunker<'a>>,
}

struct OpenRun {
    addr: u64,
    pages: u64,
    file_offset: u64,
    crc: crc32fast::Hasher,
}

fn page_is_zero(page: &[u8]) -> bool {
    let mut acc = 0u64;
    for chunk in page.chunks_exact(8) {
        acc |= u64::from_ne_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
    }
    acc == 0
}

/// Writes page data: through the chunker when compressing, else straight
/// to the image (`pages`: page-aligned, may go around the page cache).
pub(crate) fn put(
    chunker: &mut Option<crate::dump::compress::Chunker<'_>>,
    out: &mut ImageWriter,
    data: &[u8],
    pages: bool,
) -> Result<(), Fail> {
    match chunker {
        Some(c) => c.write(out, data),
        None if pages => out.write_pages(data),
        None => out.write(data),
    }
}

/// Where the next run's data goes (logical when compressing).
pub(crate) fn pos(chunker: &Option<crate::dump::compress::Chunker<'_>>, out: &ImageWriter) -> u64 {
    match chunker {
        Some(c) => c.pos(),
        None => out.pos(),
    }
}

impl PageScan<'_> {
    /// Appends the runs of `start..end` to `runs`, writing their data.
    pub fn dump(
        &mut self,
        start: u64,
        end: u64,
        readable: bool,
        select: Select,
        runs: &mut ArenaVec<'_, PageRun>,
        out: &mut ImageWriter,
    ) -> Result<(), Fail> {
        if matches!(select, Select::All | Select::Lazy) || !readable {
            return self.dump_indirect(start, end, select, runs, out);
        }
        let mut open: Option<OpenRun> = None;
        let mut addr = start;
        while addr < end {
            let n = ((end - addr) / PAGE_SIZE).min(self.pagemap.len() as u64) as usize;
            read_pagemap(self.pagemap_fd, addr, &mut self.pagemap[..n])?;
            for i in 0..n {
                let e = self.pagemap[i];
                let wanted = select.wants(e);
                // SAFETY: the page is inside a readable mapping and present
                // (or swapped, and reading brings it back); every other
                // thread is parked, so nothing unmaps it meanwhile.
                let page =
                    unsafe { core::slice::from_raw_parts(addr as *const u8, PAGE_SIZE as usize) };
                if wanted && !page_is_zero(page) {
                    match &mut open {
                        Some(r) => r.pages += 1,
                        None => {
                            open = Some(OpenRun {
                                addr,
                                pages: 1,
                                file_offset: pos(&self.chunker, out),
                                crc: crc32fast::Hasher::new(),
                            })
                        }
                    }
                } else if let Some(r) = open.take() {
                    self.close_direct(r, runs, out)?;
                }
                addr += PAGE_SIZE;
            }
        }
        if let Some(r) = open.take() {
            self.close_direct(r, runs, out)?;
        }
        Ok(())
    }

    fn close_direct(
        &mut self,
        mut r: OpenRun,
        runs: &mut ArenaVec<'_, PageRun>,
        out: &mut ImageWriter,
    ) -> Result<(), Fail> {
        let len = r.pages * PAGE_SIZE;
        if r.addr < self.volatile.1 && r.addr + len > self.volatile.0 {
            let mut done = 0;
            while done < len {
                let n = (len - done).min(self.bounce.len() as u64) as usize;
                // SAFETY: the run's pages were checked readable and present;
                // `bounce` is our own buffer, disjoint from them.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        (r.addr + done) as *const u8,
                        self.bounce.as_mut_ptr(),
                        n,
                    )
                };
                r.crc.update(&self.bounce[..n]);
                put(&mut self.chunker, out, &self.bounce[..n], false)?;
                done += n as u64;
            }
            return push_run(r, runs);
        }
        // SAFETY: the run's pages were checked readable and present above.
        let data = unsafe { core::slice::from_raw_parts(r.addr as *const u8, len as usize) };
        // Small runs go through the page cache; large ones straight to disk,
        // a piece at a time (checksummed first: the app is stopped, so the
        // bytes written are the bytes summed).
        if data.len() < DIRECT_MIN {
            r.crc.update(data);
            put(&mut self.chunker, out, data, false)?;
        } else {
            for piece in data.chunks(WRITE_CHUNK) {
                r.crc.update(piece);
                put(&mut self.chunker, out, piece, true)?;
            }
        }
        push_run(r, runs)
    }

    /// Pages of memory the process cannot read directly (no PROT_READ) or
    /// that may not be backed (a file truncated under its mapping): copied
    /// through `/proc/self/mem`, which returns an error instead of faulting.
    fn dump_indirect(
        &mut self,
        start: u64,
        end: u64,
        select: Select,
        runs: &mut ArenaVec<'_, PageRun>,
        out: &mut ImageWriter,
    ) -> Result<(), Fail> {
        let per_chunk = (self.bounce.len() as u64 / PAGE_SIZE).min(self.pagemap.len() as u64);
        let mut open: Option<OpenRun> = None;
        let mut addr = start;
        while addr < end {
            let n = ((end - addr) / PAGE_SIZE).min(per_chunk) as usize;
            let entries = &mut self.pagemap[..n];
            read_pagemap(self.pagemap_fd, addr, entries)?;
            for (i, &e) in entries.iter().enumerate() {
                let wanted = select.wants(e);
                let page_addr = addr + i as u64 * PAGE_SIZE;
                let page = &mut self.bounce[..PAGE_SIZE as usize];
                // A lazily mapped page counts as present: the image backs it.
                let e = if select == Select::Lazy {
                    e | PM_PRESENT
                } else {
                    e
                };
                let got =
                    wanted && read_page(self.mem_fd, page, page_addr, e)? && !page_is_zero(page);
                if got {
                    let r = match &mut open {
                        Some(r) => {
                            r.pages += 1;
                            r
                        }
                        None => open.insert(OpenRun {
                            addr: page_addr,
                            pages: 1,
                            file_offset: pos(&self.chunker, out),
                            crc: crc32fast::Hasher::new(),
                        }),
                    };
                    r.crc.update(page);
                    put(&mut self.chunker, out, page, false)?;
                } else if let Some(r) = open.take() {
                    push_run(r, runs)?;
                }
            }
            addr += n as u64 * PAGE_SIZE;
        }
        if let Some(r) = open.take() {
            push_run(r, runs)?;
        }
        Ok(())
    }
}

/// Reads one page through `/proc/self/mem`; false when it has no data at
/// all. A page the process has not faulted in (`entry` not present) whose
/// read fails with EIO lies beyond the end of its file (touching it would
/// raise SIGBUS): nothing to save. Any other failure would lose data, so
/// it fails the dump.
fn read_page(mem_fd: i32, page: &mut [u8], addr: u64, entry: u64) -> Result<bool, Fail> {
    let fail = || Fail::new("cannot read the page at ").hex(addr);
    match crate::fault::mem_read(mem_fd, page, addr) {
        Ok(n) if n == page.len() => Ok(true),
        Err(sys::Errno(libc::EIO)) if entry & (PM_PRESENT | PM_SWAPPED) == 0 => Ok(false),
        Ok(n) => Err(fail().str(" (short read of ").dec(n as u64).str(" bytes)")),
        Err(e) => Err(fail().errno(e)),
    }
}

fn read_pagemap(fd: i32, addr: u64, entries: &mut [u64]) -> Result<(), Fail> {
    let len = entries.len() * 8;
    // SAFETY: a u64 slice viewed as bytes: same memory, every byte pattern valid.
    let bytes = unsafe { core::slice::from_raw_parts_mut(entries.as_mut_ptr().cast::<u8>(), len) };
    match sys::pread(fd, bytes, addr / PAGE_SIZE * 8) {
        Ok(n) if n == len => Ok(()),
        Ok(_) => Err(Fail::new("short read of /proc/self/pagemap")),
        Err(e) => Err(Fail::new("cannot read /proc/self/pagemap").errno(e)),
    }
}

fn push_run(r: OpenRun, runs: &mut ArenaVec<'_, PageRun>) -> Result<(), Fail> {
    let run = PageRun {
        addr: r.addr,
        pages: r.pages,
        file_offset: r.file_offset,
        crc: r.crc.finalize(),
    };
    runs.push(run)
        .map_err(|_| Fail::new("too many page runs for the dump arena"))
}
