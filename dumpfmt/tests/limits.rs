//! Decoding takes time linear in the image and memory within the limit
//! `FORMAT.md` states, on images made to be expensive: many descriptor
//! records, most of them `Dup`s, and many mappings backed by a descriptor.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::time::{Duration, Instant};

use dumpfmt::{Backing, DECODED_BYTES_PER_META_BYTE, Fd, FdKind, Image, Mapping, decode};

/// Counts the bytes this thread has asked for and not given back, and the
/// most it held at once, so that tests running side by side do not mix.
struct Counting;

std::thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|live| {
        live.set(live.get() + n);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(live.get())));
    });
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
}

// SAFETY: every call goes to `System` with the caller's arguments; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The most bytes held at once while `f` ran, beyond what was held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.get();
    PEAK.set(before);
    let out = f();
    (out, PEAK.get() - before)
}

const FIRST_FD: i32 = 3;

fn contents() -> FdKind<'static> {
    FdKind::Contents {
        name: Cow::Borrowed("memfd:x"),
        data: Cow::Borrowed(&[]),
        offset: 0,
        memfd: true,
        seals: 0,
    }
}

/// `n` descriptors: the first half memfds, the second half `Dup`s of the
/// last memfds, and `n / 10` mappings of the last memfd. The old check
/// looked each `Dup` and each mapping's fd up by scanning every record.
fn dups_and_fd_mappings(n: usize) -> Vec<u8> {
    let originals = n / 2;
    let last_original = FIRST_FD + originals as i32 - 1;
    let fds: Vec<Fd<'static>> = (0..n)
        .map(|i| Fd {
            fd: FIRST_FD + i as i32,
            flags: 2,
            cloexec: false,
            kind: if i < originals {
                contents()
            } else {
                FdKind::Dup {
                    of: last_original - (i % 64) as i32,
                }
            },
        })
        .collect();
    let mappings: Vec<Mapping<'static>> = (0..n as u64 / 10)
        .map(|i| Mapping {
            start: 0x1000_0000 + i * 0x2000,
            end: 0x1000_1000 + i * 0x2000,
            prot: 3,
            shared: true,
            offset: 0,
            backing: Backing::Fd(last_original),
            name: Cow::Borrowed("/memfd:x (deleted)"),
        })
        .collect();
    framed(Image {
        fds: fds.into(),
        mappings: mappings.into(),
        minor3: Default::default(),
        minor4: Default::default(),
        ..common::image()
    })
}

/// `n` descriptors, all but the first a `Dup` of it: the record that
/// takes the most memory for its encoded size.
fn all_dups(n: usize) -> Vec<u8> {
    let fds: Vec<Fd<'static>> = (0..n)
        .map(|i| Fd {
            fd: FIRST_FD + i as i32,
            flags: 2,
            cloexec: false,
            kind: if i == 0 {
                contents()
            } else {
                FdKind::Dup { of: FIRST_FD }
            },
        })
        .collect();
    framed(Image {
        fds: fds.into(),
        mappings: Vec::new().into(),
        minor3: Default::default(),
        minor4: Default::default(),
        ..common::image()
    })
}

/// The image framed without page data (so without runs).
fn framed(image: Image<'static>) -> Vec<u8> {
    let image = Image {
        runs: Vec::new().into(),
        ..image
    };
    dumpfmt::frame(&image, &[])
}

fn meta_len(bytes: &[u8]) -> usize {
    bytes.len() - dumpfmt::HEADER_LEN as usize
}

/// The shortest of `tries` decodes of `bytes`, which must succeed.
fn best_decode_time(bytes: &[u8], tries: usize) -> Duration {
    (0..tries)
        .map(|_| {
            let start = Instant::now();
            let decoded = decode(bytes);
            let took = start.elapsed();
            assert!(decoded.is_ok(), "{:?}", decoded.err());
            took
        })
        .min()
        .unwrap()
}

#[test]
fn many_descriptor_records_decode_in_linear_time() {
    let small = dups_and_fd_mappings(100_000);
    let large = dups_and_fd_mappings(200_000);
    // Twice the records, about twice the time: 3x leaves room for noise,
    // a quadratic step takes 4x. A busy machine can slow one measurement,
    // never every round, so the best of three rounds counts.
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let t_small = best_decode_time(&small, 5);
        let t_large = best_decode_time(&large, 5);
        eprintln!("decode: 100k fds {t_small:?}, 200k fds {t_large:?}");
        if t_large < t_small * 3 {
            return;
        }
        rounds.push((t_small, t_large));
    }
    panic!("(100k fds, 200k fds) took {rounds:?}");
}

#[test]
fn many_descriptor_records_decode_within_the_stated_memory() {
    // 2^17 + 1 records: a vector grown by doubling would hold room for
    // 2^18, twice what is needed.
    for bytes in [
        all_dups((1 << 17) + 1),
        dups_and_fd_mappings(100_000),
        dups_and_fd_mappings(200_000),
    ] {
        let (decoded, peak) = peak_during(|| decode(&bytes));
        assert!(decoded.is_ok(), "{:?}", decoded.err());
        let limit = DECODED_BYTES_PER_META_BYTE * meta_len(&bytes);
        eprintln!(
            "{} bytes of metadata: peak {peak} bytes while decoding, limit {limit}",
            meta_len(&bytes)
        );
        assert!(peak <= limit, "peak {peak} bytes, limit {limit}");
    }
}

#[test]
fn a_count_that_lies_allocates_nothing_for_it() {
    // 2^20 descriptors, and no byte for any of them: refused when the
    // count is read, before a buffer for them exists.
    let bytes = common::with_fds_count(&[0x80, 0x80, 0x40], &[]);
    let (decoded, peak) = peak_during(|| decode(&bytes));
    assert_eq!(
        decoded.err(),
        Some(dumpfmt::Error::PastEnd {
            what: "descriptors"
        })
    );
    assert!(peak < 64 << 10, "peak {peak} bytes");
}
