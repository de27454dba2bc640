//! The vDSO on restore (`shim/src/restore/vdso/`): on the same kernel
//! the fresh process's `[vdso]` is moved to the image's address; an image
//! whose stored vDSO differs from this kernel's, even with the same size,
//! is restored through a proxy: an anonymous copy of the old vDSO at its
//! address whose entry points jump to this kernel's.
//!
//! Another kernel is synthesized here by altering the image's copy of its
//! vDSO: every byte of its code (`.text`) becomes `int3`, the symbol
//! table stays. The proxy writes a jump at each exported function's
//! start; anything that ran the old code past it would trap, so a program
//! that reads the clock through glibc's cached vDSO pointers and finishes
//! with exact output shows that only the jumps ran. The 6.1 guest
//! (`guest.rs`) crosses real kernels.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dumpfmt::{Backing, HEADER_ENCODED_LEN, Header, PAGE_SIZE};
use migrate_tests::fidelity::check_image_path;
use migrate_tests::*;

/// The `.text` section (offset, size) of the ELF file in `b`.
fn text_section(b: &[u8]) -> (usize, usize) {
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3c), u16_at(0x3e));
    let sh = |i: usize| shoff + i * 64;
    let names = u64_at(sh(shstrndx) + 24);
    (0..shnum)
        .find(|&i| {
            let name = names + u32::from_le_bytes(b[sh(i)..sh(i) + 4].try_into().unwrap()) as usize;
            b[name..].starts_with(b".text\0")
        })
        .map(|i| (u64_at(sh(i) + 24), u64_at(sh(i) + 32)))
        .expect("the vDSO has a .text section")
}

/// Rewrites the image's memory in `start..end` with `alter` (the data of
/// the runs inside it in place, their checksums, the metadata and the
/// header); what no run holds reads as zeros and stays so.
fn alter_memory(image: &Path, start: u64, end: u64, alter: impl FnOnce(&mut [u8])) {
    let file = image_meta(image);
    let mut img = file.image;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .unwrap();
    let mut bytes = vec![0u8; (end - start) as usize];
    let mine = |r: &dumpfmt::PageRun| r.addr >= start && r.addr + r.pages * PAGE_SIZE <= end;
    assert!(
        img.runs.iter().any(mine),
        "no page data in {start:#x}-{end:#x}"
    );
    for r in img.runs.iter().filter(|r| mine(r)) {
        let at = (r.addr - start) as usize;
        let len = (r.pages * PAGE_SIZE) as usize;
        f.read_exact_at(&mut bytes[at..at + len], r.file_offset)
            .unwrap();
    }
    alter(&mut bytes);
    for r in img.runs.to_mut().iter_mut().filter(|r| mine(r)) {
        let at = (r.addr - start) as usize;
        let data = &bytes[at..at + (r.pages * PAGE_SIZE) as usize];
        f.write_all_at(data, r.file_offset).unwrap();
        r.crc = crc32fast::hash(data);
    }
    write_meta(image, &f, &file.header, &img);
}

/// Replaces the metadata of `image` (open as `f`, with `header`) with
/// `img`'s, and the header to match.
fn write_meta(image: &Path, f: &std::fs::File, header: &Header, img: &dumpfmt::Image<'_>) {
    let file = header;
    let meta = dumpfmt::encode_meta(img);
    let meta_offset = file.meta_offset;
    f.set_len(meta_offset).unwrap();
    f.write_all_at(&meta, meta_offset).unwrap();
    let header = Header {
        meta_len: meta.len() as u64,
        meta_crc: crc32fast::hash(&meta),
        file_len: meta_offset + meta.len() as u64,
        ..*file
    };
    let mut head = [0u8; HEADER_ENCODED_LEN];
    header.encode(&mut head);
    f.write_all_at(&head, 0).unwrap();
    dumpfmt::verify(image).expect("the altered image verifies");
}

/// Rewrites the image's copy of its vDSO with `alter`; returns the
/// `[vdso]` mapping's address.
fn alter_vdso(image: &Path, alter: impl FnOnce(&mut [u8])) -> u64 {
    let m = image_meta(image)
        .image
        .mappings
        .iter()
        .find(|m| &*m.name == "[vdso]")
        .expect("a [vdso] mapping")
        .clone();
    assert_eq!(m.backing, Backing::Kernel);
    alter_memory(image, m.start, m.end, alter);
    m.start
}

/// A dump of `prog` (`cprog.img`, the program killed) and a copy of it
/// (`altered.img`) whose every byte of vDSO code (`.text`) is `int3`:
/// another kernel's vDSO of the same size. Returns its `[vdso]` address
/// and `.text` (offset, size) too.
fn dump_with_altered_vdso(dir: &TestDir, prog: &Program) -> (Proc, PathBuf, u64, (usize, usize)) {
    let image = dir.join("cprog.img");
    let original = dump_and_kill(dir, prog, &image, 3);
    let copy = dir.join("altered.img");
    std::fs::copy(&image, &copy).unwrap();
    let mut text = (0, 0);
    let at = alter_vdso(&copy, |b| {
        text = text_section(b);
        b[text.0..text.0 + text.1].fill(0xcc);
    });
    (original, copy, at, text)
}

/// The `[vdso]` of an image, and the mapping at `at`.
fn vdso_and_mapping_at(image: &Path, at: u64) -> (Option<u64>, Option<dumpfmt::Mapping<'static>>) {
    let img = image_meta(image).image;
    let vdso = img
        .mappings
        .iter()
        .find(|m| &*m.name == "[vdso]")
        .map(|m| m.start);
    let there = img.mappings.iter().find(|m| m.start == at).cloned();
    (vdso, there)
}

#[test]
fn another_kernels_vdso_of_the_same_size_is_proxied_not_moved() {
    let dir = TestDir::new("vdso-proxy");
    let prog = Program::c();
    let expected = reference(&prog);
    let (original, copy, at, text) = dump_with_altered_vdso(&dir, &prog);
    let image = dir.join("cprog.img");

    // The same kernel: moved, as before (the check image has [vdso] at
    // the image's address).
    let mut same = dir.restore(&prog, "same", &image, &[("MIGRATE_LOG", "info")]);
    finish_restored(&mut same, &original, &expected);
    assert_eq!(vdso_and_mapping_at(&image, 0).0, Some(at));
    assert_eq!(
        vdso_and_mapping_at(&check_image_path(dir.path(), "same"), at).0,
        Some(at),
        "{}",
        same.describe()
    );
    assert!(!same.stderr().contains("proxied"), "{}", same.describe());

    // Same size, other code.
    let mut proxied = dir.restore(&prog, "proxied", &copy, &[("MIGRATE_LOG", "info")]);
    finish_restored(&mut proxied, &original, &expected);
    assert!(
        proxied
            .stderr()
            .lines()
            .any(|l| l.contains("another kernel") && l.contains(&format!("at {at:#x} is proxied"))),
        "{}",
        proxied.describe()
    );
    // The check dump (taken as the restored process resumed) has this
    // kernel's [vdso] elsewhere and, at the old one's address, ordinary
    // memory: the old code, int3 but for a jump at each entry point.
    let check = check_image_path(dir.path(), "proxied");
    let (vdso, there) = vdso_and_mapping_at(&check, at);
    assert!(vdso.is_some_and(|v| v != at), "{vdso:x?}");
    let there = there.expect("a mapping at the old vDSO's address");
    assert_eq!(there.backing, Backing::Anonymous, "{there:?}");
    assert_eq!(there.prot, dumpfmt::PROT_READ | dumpfmt::PROT_EXEC);
    let f = image_meta(&check);
    let run = f
        .image
        .runs
        .iter()
        .find(|r| {
            r.addr <= at + text.0 as u64
                && at + (text.0 + text.1) as u64 <= r.addr + r.pages * PAGE_SIZE
        })
        .expect("the proxy's code is in the check image");
    let mut code = vec![0u8; text.1];
    f.file
        .read_exact_at(&mut code, run.file_offset + (at + text.0 as u64 - run.addr))
        .unwrap();
    let jumps = code.windows(3).filter(|w| *w == [0x41, 0xff, 0xe3]).count();
    assert!(jumps >= 5, "{jumps} jumps in the proxy");
    assert!(code.iter().filter(|&&c| c == 0xcc).count() > text.1 / 2);

    // That dump records what is mapped (the proxy as memory, this
    // kernel's vDSO as the kernel's): restored on this kernel, it moves
    // the vDSO, keeps the proxy, and the program finishes again.
    let again_from = dir.join("again.img");
    std::fs::copy(&check, &again_from).unwrap();
    let mut again = dir.restore(&prog, "again", &again_from, &[("MIGRATE_LOG", "info")]);
    finish_restored(&mut again, &original, &expected);
    assert!(!again.stderr().contains("proxied"), "{}", again.describe());
    assert_eq!(again.stdout_lines(), proxied.stdout_lines());
}

/// Where the main thread of `image`'s image parked: the dump signal's
/// restorer (the return address its signal frames hold), the thread's
/// stack mapping, its stack pointer and TID.
struct Parked {
    restorer: u64,
    start: u64,
    end: u64,
    rsp: u64,
    tid: u32,
}

impl Parked {
    /// Where in `stack` (its bytes) the dump's signal frame is: above
    /// the parked stack pointer, holding the restorer and a stack pointer
    /// above itself.
    fn frame(&self, stack: &[u8]) -> usize {
        let from = (self.rsp - self.start) as usize;
        (from..stack.len() - 184)
            .step_by(8)
            .find(|&i| {
                word(stack, i) == self.restorer && word(stack, i + 168) > self.start + i as u64
            })
            .expect("the signal frame above the parked stack pointer")
    }
}

/// The little-endian word at `i` of `b`.
fn word(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}

fn parked(image: &Path) -> Parked {
    let img = image_meta(image);
    let image = &img.image;
    let restorer = image
        .sigactions
        .iter()
        .find(|a| a.signal == image.settings.signal)
        .expect("the dump signal's action")
        .restorer;
    let t = &image.threads[0];
    let rsp = t.context.rsp;
    let stack = image
        .mappings
        .iter()
        .find(|m| m.start <= rsp && rsp < m.end)
        .expect("the thread's stack");
    Parked {
        restorer,
        start: stack.start,
        end: stack.end,
        rsp,
        tid: t.tid,
    }
}

/// A thread the dump caught inside the old vDSO's code would resume past
/// the proxy's jump, in code that reads the old `[vvar]`: refused before
/// teardown. Synthesized: the interrupted place in the main thread's
/// signal frame (found as the restore finds it) is moved into the vDSO.
#[test]
fn a_thread_caught_inside_another_kernels_vdso_is_refused_before_teardown() {
    let dir = TestDir::new("vdso-caught");
    let prog = Program::c();
    let (_original, copy, at, text) = dump_with_altered_vdso(&dir, &prog);
    // Its stack: the frame is above where it parked.
    let p = parked(&copy);
    let inside = at + text.0 as u64 + 16;
    alter_memory(&copy, p.start, p.end, |b| {
        let frame = p.frame(b);
        b[frame + 176..frame + 184].copy_from_slice(&inside.to_le_bytes());
    });
    refused(
        &dir,
        &prog,
        &copy,
        exit::CANNOT_RESTORE,
        &format!("caught thread {} inside it", p.tid),
    );
}

/// Without ASLR (`setarch -R` for the run and the relaunch) this kernel's
/// fresh `[vdso]` lies exactly where the image's did: on another kernel
/// (synthesized as above) the proxy needs that address, so this kernel's
/// mappings move aside, together, to a free range, and the jumps go
/// there.
#[test]
fn another_kernels_vdso_where_this_kernels_lies_moves_this_kernels_aside() {
    let dir = TestDir::new("vdso-collide");
    let wrapper = ["setarch", "x86_64", "-R"];
    if let Err(e) = wrapper_works(&wrapper) {
        panic!("setarch does not work here: {e}");
    }
    let prog = Program::c().wrapped(&wrapper);
    let expected = reference(&prog);
    let (original, copy, at, _) = dump_with_altered_vdso(&dir, &prog);
    let mut proxied = dir.restore(&prog, "proxied", &copy, &[("MIGRATE_LOG", "info")]);
    finish_restored(&mut proxied, &original, &expected);
    let line = proxied
        .stderr()
        .lines()
        .find(|l| l.contains("another kernel"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no proxy line\n{}", proxied.describe()));
    assert!(line.contains(&format!("at {at:#x} is proxied")), "{line}");
    // The check dump: this kernel's vDSO elsewhere, the proxy at the old
    // address.
    let check = check_image_path(dir.path(), "proxied");
    let (vdso, there) = vdso_and_mapping_at(&check, at);
    assert!(vdso.is_some_and(|v| v != at), "{vdso:x?}");
    assert_eq!(there.map(|m| m.backing), Some(Backing::Anonymous));
}

/// The restore of `image` ends in one line naming `what`, before
/// teardown, with `code`.
fn refused(dir: &TestDir, prog: &Program, image: &Path, code: i32, what: &str) {
    let mut r = dir.restore(prog, "refused", image, &[]);
    let status = r.wait();
    assert_eq!(status.code(), Some(code), "{}", r.describe());
    assert!(r.stdout_raw().is_empty(), "{}", r.describe());
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(what), "{err}");
}

/// An image's `[vdso]` is untrusted: one that claims terabytes (the
/// restore read it into a buffer of its size, and the allocation's
/// failure aborted the constructor) is refused in one line.
#[test]
fn an_image_vdso_of_absurd_size_is_refused_in_one_line() {
    let dir = TestDir::new("vdso-huge");
    let prog = Program::c();
    let (_original, copy, _, _) = dump_with_altered_vdso(&dir, &prog);
    rewrite_meta(&copy, |img| {
        let first = img.mappings[0].start;
        let mut m = img
            .mappings
            .iter()
            .find(|m| &*m.name == "[vdso]")
            .unwrap()
            .clone();
        (m.start, m.end) = (PAGE_SIZE, first);
        img.mappings.to_mut().insert(0, m);
    });
    refused(&dir, &prog, &copy, exit::CORRUPT, "vDSO");
}

/// As above, one frame older: the dump caught the thread in a signal
/// handler that had interrupted the old vDSO's code (a profiling timer's
/// handler, say). The handler would return into the old code after the
/// restore: refused as well. Synthesized: an older frame is written on
/// the stack the dump's frame says the handler ran on.
#[test]
fn a_handler_that_interrupted_another_kernels_vdso_is_refused_before_teardown() {
    let dir = TestDir::new("vdso-caught-nested");
    let prog = Program::c();
    let (_original, copy, at, text) = dump_with_altered_vdso(&dir, &prog);
    let p = parked(&copy);
    let inside = at + text.0 as u64 + 16;
    alter_memory(&copy, p.start, p.end, |b| {
        let frame = p.frame(b);
        // The interrupted code's stack: the older frame a little above it.
        let handler_sp = (word(b, frame + 168) - p.start) as usize;
        let older = (handler_sp + 256) & !7;
        assert!(older + 184 <= b.len());
        b[older..older + 8].copy_from_slice(&p.restorer.to_le_bytes());
        let sp = p.start + older as u64 + 4096;
        b[older + 168..older + 176].copy_from_slice(&sp.to_le_bytes());
        b[older + 176..older + 184].copy_from_slice(&inside.to_le_bytes());
    });
    refused(
        &dir,
        &prog,
        &copy,
        exit::CANNOT_RESTORE,
        &format!("caught thread {} inside it", p.tid),
    );
}
