//! Every single-bit corruption and every truncation of a valid image is
//! caught, and none makes the reader panic.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use dumpfmt::{HEADER_LEN, decode, verify};

/// Flips one bit at every offset of the file (the bit cycling with the
/// offset): `verify` must fail every time. `decode`, which does not read page
/// data, must fail every time the flip is outside the page data.
#[test]
fn every_bit_flip_is_caught() {
    let bytes = common::good();
    let (header, _, _) = common::split(&bytes);
    let pages = HEADER_LEN as usize..header.meta_offset as usize;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.img");
    std::fs::write(&path, &bytes).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    assert!(verify(&path).is_ok());

    let mut copy = bytes.clone();
    for at in 0..bytes.len() {
        let bit = 1u8 << (at % 8);
        copy[at] ^= bit;
        file.write_all_at(&copy[at..=at], at as u64).unwrap();
        let checked = verify(&path);
        assert!(checked.is_err(), "flip of bit {bit:#x} at {at} verified");
        let decoded = decode(&copy);
        if !pages.contains(&at) {
            assert!(decoded.is_err(), "flip of bit {bit:#x} at {at} decoded");
        }
        copy[at] ^= bit;
        file.write_all_at(&copy[at..=at], at as u64).unwrap();
    }
    assert!(verify(&path).is_ok());
}

/// In memory, every bit of every byte outside the page data: `decode` fails.
#[test]
fn every_bit_of_header_and_metadata() {
    let bytes = common::good();
    let (header, _, _) = common::split(&bytes);
    let outside = (0..HEADER_LEN as usize).chain(header.meta_offset as usize..bytes.len());
    let mut copy = bytes.clone();
    for at in outside {
        for bit in 0..8 {
            copy[at] ^= 1 << bit;
            assert!(decode(&copy).is_err(), "bit {bit} at {at}");
            copy[at] ^= 1 << bit;
        }
    }
    assert_eq!(copy, bytes);
}

/// Every byte of the metadata set to every value, with the checksums fixed
/// up so that the postcard decoder and the consistency check see it: errors
/// or a different image, never a panic.
#[test]
fn every_metadata_byte_value_with_fixed_checksums() {
    let bytes = common::good();
    let (header, image, _) = common::split(&bytes);
    let meta_at = header.meta_offset as usize;
    let mut copy = bytes.clone();
    for at in meta_at..bytes.len() {
        for value in 0..=255u8 {
            if value == bytes[at] {
                continue;
            }
            copy[at] = value;
            let meta_crc = crc32fast::hash(&copy[meta_at..]);
            common::with_header(&mut copy, |h| h.meta_crc = meta_crc);
            if let Ok((_, decoded)) = decode(&copy) {
                assert_ne!(decoded, image, "byte {at} = {value:#x}");
            }
        }
        copy[at] = bytes[at];
    }
}

#[test]
fn every_truncation_is_caught() {
    let bytes = common::good();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.img");
    std::fs::write(&path, &bytes).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    for len in (0..bytes.len()).rev() {
        assert!(decode(&bytes[..len]).is_err(), "decode of {len} bytes");
        file.set_len(len as u64).unwrap();
        assert!(verify(&path).is_err(), "verify of {len} bytes");
    }
}

#[test]
fn extension_is_caught() {
    let mut bytes = common::good();
    for _ in 0..HEADER_LEN {
        bytes.push(0);
        assert!(decode(&bytes).is_err());
    }
}
