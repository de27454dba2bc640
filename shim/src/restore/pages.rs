//! Page placement: where each mapping of the image comes from, and where
//! the bytes of each of its runs come from (issue 11).
//!
//! Runs in the constructor, before teardown, with libc and the heap: it
//! only appends ops to the restorer's [`Plan`]; the restorer executes
//! them after the fresh address space is gone.
//!
//! # The seam
//!
//! [`Placing`] says, per image, how run bytes reach memory; [`run_ops`]
//! turns one run into ops. Today a run is either read (`pread` from the
//! image, eager, the default) or mapped (a private mapping of the image
//! file at the run's offset, lazy: `MIGRATE_RESTORE_MODE=lazy`, see
//! [`super::lazy`]). A source that cannot be read straight into place
//! (compressed chunks, runs kept in a parent image) adds a variant to
//! [`Placing`] and a case to [`run_ops`], and makes [`super::lazy::decide`]
//! fall back to eager for it (`dumpfmt::placement::mappable` is false for
//! such an image).

use std::fs::File;
use std::os::fd::AsRawFd;

use dumpfmt::{Backing, Image, ImageFile, Mapping, PAGE_SIZE};

use super::incremental::Source;
use super::plan::{Arg, Plan};
use super::{Refusal, exit, fds, refuse, tree_shared, vdso};

/// Runs at least this long are populated before they are read.
const POPULATE_MIN_PAGES: u64 = 16;

/// `MIGRATE_RESTORE_MODE`: true for `lazy`, false for `eager`.
pub fn parse_mode(v: &str) -> Result<bool, String> {
    match v {
        "eager" => Ok(false),
        "lazy" => Ok(true),
        _ => Err(format!("MIGRATE_RESTORE_MODE={v}: expected eager or lazy")),
    }
}

/// How the bytes of the image's runs reach memory.
pub struct Placing {
    /// Every run, the image's own and those an incremental image's
    /// parents hold, with the descriptor and offset of its bytes (as the
    /// restorer sees them), in address order.
    pub runs: Vec<Source>,
    /// Map the runs of eligible mappings from the image instead of
    /// reading them (see [`lazy_eligible`]; short runs are read).
    pub lazy: bool,
}

/// Whether the runs of `m` may be mapped from the image: private
/// anonymous memory that is not the stack (which grows down, and which
/// the kernel names by where it is) and not executable (an image on a
/// `noexec` mount cannot be mapped executable).
pub fn lazy_eligible(m: &Mapping<'_>) -> bool {
    m.backing == Backing::Anonymous
        && !m.shared
        && &*m.name != "[stack]"
        && m.prot & dumpfmt::PROT_EXEC == 0
}

/// Step 3 of the plan: every mapping of the image, then its pages.
#[allow(clippy::too_many_arguments)]
pub fn map_all(
    plan: &mut Plan,
    image: &Image<'_>,
    fds: &[File],
    kernel: &vdso::Kernel,
    made: &fds::MadeFds,
    sources: &tree_shared::Sources,
    placing: &Placing,
) -> Result<(), Refusal> {
    use libc::*;
    let v = Arg::V;
    let mut runs = placing.runs.iter().peekable();
    let commit_limit = commit_limit();
    for m in image.mappings.iter() {
        let len = m.end - m.start;
        let mut my_runs = Vec::new();
        while let Some(r) = runs.peek() {
            if r.addr >= m.end {
                break;
            }
            my_runs.push(**r);
            runs.next();
        }
        if m.backing == Backing::Contents
            && m.shared
            && let Some(&at) = sources.from.get(&m.start)
        {
            // Memory the tree shares: its pages are in the object already.
            tree_shared::map_ops(plan, m, at);
            continue;
        }
        if m.backing == Backing::Kernel {
            // Its pages (the vDSO's, from 1.2 on) are the kernel's own.
            vdso::map_ops(plan, kernel, m);
            continue;
        }
        let mapped = |r: &Source| {
            placing.lazy && lazy_eligible(m) && r.pages >= super::lazy::MIN_MAPPED_PAGES
        };
        let reads = my_runs.iter().any(|r| !mapped(r));
        let prot = u64::from(m.prot);
        let map_prot = if !reads {
            prot
        } else {
            prot | PROT_WRITE as u64
        };
        let mut flags =
            (MAP_FIXED_NOREPLACE | if m.shared { MAP_SHARED } else { MAP_PRIVATE }) as u64;
        let (fd, off) = match m.backing {
            Backing::File(i) | Backing::SharedFile(i) => {
                (fds[i as usize].as_raw_fd() as u64, m.offset)
            }
            Backing::Fd(n) => {
                // In the image's fd order, increasing: binary search.
                let made = made
                    .made
                    .binary_search_by_key(&n, |x| x.target)
                    .ok()
                    .map(|at| &made.made[at]);
                let made = made.ok_or_else(|| {
                    refuse(
                        exit::CORRUPT,
                        format!("mapping at {:#x} names fd {n}, not in the image", m.start),
                    )
                })?;
                (made.temp.as_raw_fd() as u64, m.offset)
            }
            _ => {
                flags |= MAP_ANONYMOUS as u64;
                (u64::MAX, 0)
            }
        };
        if &*m.name == "[stack]" {
            flags |= MAP_GROWSDOWN as u64;
        }
        if m.backing == Backing::Anonymous && !m.shared && len > commit_limit {
            // Larger than this machine's memory and swap: the program can
            // only have made it with MAP_NORESERVE (a reservation, e.g. a
            // 64 GiB heap of which little is touched), which the maps do
            // not show; without it the kernel refuses the mapping.
            flags |= MAP_NORESERVE as u64;
        }
        let what = format!("restore: cannot map {:#x}-{:#x} {}", m.start, m.end, m.name);
        plan.call(
            SYS_mmap,
            &[v(m.start), v(len), v(map_prot), v(flags), v(fd), v(off)],
            v(m.start),
            &what,
        );
        let mut i = 0;
        while i < my_runs.len() {
            let r = &my_runs[i];
            if mapped(r) {
                run_ops(plan, r, prot, true);
                i += 1;
                continue;
            }
            // The runs after it that lie right after it in the same file
            // are read with it, by one call.
            let mut j = i + 1;
            let mut bytes = r.pages * PAGE_SIZE;
            while let Some(n) = my_runs.get(j) {
                let p = &my_runs[j - 1];
                if j - i == IOV_BATCH
                    || mapped(n)
                    || n.fd != r.fd
                    || n.offset != p.offset + p.pages * PAGE_SIZE
                    || bytes + n.pages * PAGE_SIZE > 1 << 30
                {
                    break;
                }
                bytes += n.pages * PAGE_SIZE;
                j += 1;
            }
            if j - i == 1 {
                run_ops(plan, r, prot, false);
            } else {
                read_batch(plan, &my_runs[i..j], bytes);
            }
            i = j;
        }
        if map_prot != prot {
            plan.call(
                SYS_mprotect,
                &[v(m.start), v(len), v(prot)],
                v(0),
                &format!("restore: cannot protect {:#x}", m.start),
            );
        }
    }
    Ok(())
}

/// Runs read by one `preadv` at most (the kernel's IOV_MAX).
const IOV_BATCH: usize = 1024;

/// Reads `runs`, which lie back to back in one file (`bytes` in all),
/// into place with one `preadv`. Where they cover at least half of the
/// span from the first to the last, the span is faulted in first by one
/// call (its zero pages too: cheaper than a fault per page as the read
/// copies, and a zero page reads as one either way).
fn read_batch(plan: &mut Plan, runs: &[Source], bytes: u64) {
    use libc::*;
    let v = Arg::V;
    let (first, last) = (&runs[0], &runs[runs.len() - 1]);
    let span = last.addr + last.pages * PAGE_SIZE - first.addr;
    if span >= POPULATE_MIN_PAGES * PAGE_SIZE && bytes * 2 >= span {
        plan.call_any(
            SYS_madvise,
            &[v(first.addr), v(span), v(MADV_POPULATE_WRITE as u64)],
        );
    }
    let iov: Vec<u64> = runs
        .iter()
        .flat_map(|r| [r.addr, r.pages * PAGE_SIZE])
        .collect();
    let at = plan.bytes(super::plan::as_bytes_slice(&iov));
    plan.call(
        SYS_preadv,
        &[
            v(first.fd),
            Arg::Data(at),
            v(runs.len() as u64),
            v(first.offset),
        ],
        v(bytes),
        &format!(
            "restore: cannot read pages for {:#x}-{:#x} from the image",
            first.addr,
            first.addr + span
        ),
    );
}

/// Bytes of memory and swap on this machine (the most a private
/// writable mapping without MAP_NORESERVE may be here).
fn commit_limit() -> u64 {
    // SAFETY: sysinfo fills the struct it is given.
    let mut si: libc::sysinfo = unsafe { core::mem::zeroed() };
    // SAFETY: as above; a valid pointer to a sysinfo struct.
    if unsafe { libc::sysinfo(&mut si) } != 0 {
        return u64::MAX;
    }
    (si.totalram as u64 + si.totalswap as u64).saturating_mul(u64::from(si.mem_unit.max(1)))
}

/// The ops that bring one run's bytes to its address, in a mapping that
/// exists already (writable when a run is read into it), whose own
/// protection is `prot`.
fn run_ops(plan: &mut Plan, r: &Source, prot: u64, mapped: bool) {
    use libc::*;
    let v = Arg::V;
    let total = r.pages * PAGE_SIZE;
    let at = r.offset;
    if mapped {
        // Over the anonymous mapping just made: a private mapping of the
        // image, faulting from the page cache (copied on first write).
        let flags = (MAP_PRIVATE | MAP_FIXED) as u64;
        plan.call(
            SYS_mmap,
            &[v(r.addr), v(total), v(prot), v(flags), v(r.fd), v(at)],
            v(r.addr),
            &format!("restore: cannot map pages for {:#x} from the image", r.addr),
        );
        return;
    }
    if r.pages >= POPULATE_MIN_PAGES {
        // Fresh memory faulted in one call (Linux 5.14) rather than one fault per page
        // as `pread` copies (ignored where the kernel lacks it).
        plan.call_any(
            SYS_madvise,
            &[v(r.addr), v(total), v(MADV_POPULATE_WRITE as u64)],
        );
    }
    let mut done = 0;
    while done < total {
        let n = (total - done).min(1 << 30);
        let what = format!(
            "restore: cannot read pages for {:#x} from the image",
            r.addr + done
        );
        plan.call(
            SYS_pread64,
            &[v(r.fd), v(r.addr + done), v(n), v(at + done)],
            v(n),
            &what,
        );
        done += n;
    }
}

/// The placing of `img` (whose descriptors, and its parents', are the
/// restorer's now).
pub fn placing(img: &ImageFile, lazy: bool) -> Result<Placing, Refusal> {
    Ok(Placing {
        runs: super::incremental::runs(img)?,
        lazy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("eager"), Ok(false));
        assert_eq!(parse_mode("lazy"), Ok(true));
        assert!(parse_mode("fast").unwrap_err().contains("eager or lazy"));
    }
}
