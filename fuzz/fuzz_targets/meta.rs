//! Frames arbitrary bytes as the metadata of an image, with correct header
//! and metadata checksums, so that mutations reach the postcard decoder and
//! the consistency check instead of stopping at a checksum.
//!
//! Input: one byte giving the number of (zero) data pages, 0 to 7, then the
//! metadata bytes.
//!
//! Also checks the memory limit FORMAT.md states: decoding `n` bytes of
//! metadata never holds more than `DECODED_BYTES_PER_META_BYTE * n` bytes
//! at once (plus the error message of a refusal).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use libfuzzer_sys::fuzz_target;

use dumpfmt::{
    DECODED_BYTES_PER_META_BYTE, HEADER_ENCODED_LEN, HEADER_LEN, Header, PAGE_SIZE,
    VERSION_MAJOR, VERSION_MINOR,
};

/// Bytes held now and the most held since `PEAK` was last reset
/// (libFuzzer runs inputs on one thread).
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call goes to `System` with the caller's arguments; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Room for the message of an error (a few hundred bytes at most).
const ERROR_SLACK: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&pages, meta)) = data.split_first() else {
        return;
    };
    let meta_offset = HEADER_LEN + u64::from(pages % 8) * PAGE_SIZE;
    let header = Header {
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        meta_offset,
        meta_len: meta.len() as u64,
        meta_crc: crc32fast::hash(meta),
        file_len: meta_offset + meta.len() as u64,
        flags: 0,
    };
    let mut bytes = vec![0u8; meta_offset as usize];
    let mut head = [0u8; HEADER_ENCODED_LEN];
    header.encode(&mut head);
    bytes[..HEADER_ENCODED_LEN].copy_from_slice(&head);
    bytes.extend_from_slice(meta);

    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let decoded = dumpfmt::decode(&bytes);
    let peak = PEAK.load(Relaxed) - before;
    let limit = DECODED_BYTES_PER_META_BYTE * meta.len() + ERROR_SLACK;
    assert!(
        peak <= limit,
        "decoding {} bytes of metadata held {peak} bytes, over {limit}",
        meta.len()
    );

    let Ok((_, image)) = decoded else {
        return;
    };
    let again = dumpfmt::frame(&image, &bytes[HEADER_LEN as usize..meta_offset as usize]);
    let (_, image2) = dumpfmt::decode(&again).expect("a re-framed image decodes");
    assert_eq!(image2, image);
});
