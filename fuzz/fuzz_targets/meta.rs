//! Frames arbitrary bytes as the metadata of an image, with correct header
//! and metadata checksums, so that mutations reach the postcard decoder and
//! the consistency check instead of stopping at a checksum.
//!
//! Input: one byte giving the number of (zero) data pages, 0 to 7, then the
//! metadata bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;

use dumpfmt::{HEADER_ENCODED_LEN, HEADER_LEN, Header, PAGE_SIZE, VERSION_MAJOR, VERSION_MINOR};

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
    };
    let mut bytes = vec![0u8; meta_offset as usize];
    let mut head = [0u8; HEADER_ENCODED_LEN];
    header.encode(&mut head);
    bytes[..HEADER_ENCODED_LEN].copy_from_slice(&head);
    bytes.extend_from_slice(meta);

    let Ok((_, image)) = dumpfmt::decode(&bytes) else {
        return;
    };
    let again = dumpfmt::frame(&image, &bytes[HEADER_LEN as usize..meta_offset as usize]);
    let (_, image2) = dumpfmt::decode(&again).expect("a re-framed image decodes");
    assert_eq!(image2, image);
});
