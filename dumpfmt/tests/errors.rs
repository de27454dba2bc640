//! One test per `Error` variant, on whole images, plus the good path.

mod common;

use std::path::Path;

use dumpfmt::{
    Error, HEADER_LEN, Header, ImageFile, MAX_FDS, MAX_META_LEN, MAX_THREADS, PAGE_SIZE, Summary,
    VERSION_MAJOR, VERSION_MINOR, decode, verify,
};

fn write(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join("image.img");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Both entry points give `want`: `decode` in memory, `verify` on a file.
fn both(bytes: &[u8], want: &Error) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), bytes);
    assert_eq!(verify(&path).as_ref(), Err(want), "verify");
    assert_eq!(decode(bytes).map(|_| ()).as_ref(), Err(want), "decode");
}

#[test]
fn good_image_verifies() {
    let bytes = common::good();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &bytes);
    let summary = verify(&path).unwrap();
    assert_eq!(
        summary,
        Summary {
            file_len: bytes.len() as u64,
            mappings: 4,
            runs: 3,
            data_bytes: 5 * PAGE_SIZE,
            threads: 2,
        }
    );
    let file = ImageFile::open(&path).unwrap();
    assert_eq!(file.check_pages(), Ok(5 * PAGE_SIZE));
    assert_eq!(file.header.meta_offset, HEADER_LEN + 5 * PAGE_SIZE);
    assert_eq!(
        (file.header.major, file.header.minor),
        (VERSION_MAJOR, VERSION_MINOR)
    );

    let (header, image) = decode(&bytes).unwrap();
    assert_eq!(header, file.header);
    assert_eq!(image, file.image);
    // The page data of each run is where the run says, byte for byte.
    for (run, (addr, data)) in image.runs.iter().zip(common::run_data()) {
        assert_eq!(run.addr, addr);
        let at = run.file_offset as usize;
        assert_eq!(&bytes[at..at + data.len()], &data[..]);
    }
    // Everything but the runs is what was given to `build`.
    let mut given = common::image();
    given.runs = image.runs.clone();
    assert_eq!(image, given);
}

#[test]
fn image_without_runs_verifies() {
    let bytes = dumpfmt::build(&common::image(), &[]).unwrap();
    let (header, image) = decode(&bytes).unwrap();
    assert_eq!(header.meta_offset, HEADER_LEN);
    assert!(image.runs.is_empty());
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(verify(&write(dir.path(), &bytes)).unwrap().data_bytes, 0);
}

#[test]
fn header_layout_is_pinned() {
    let bytes = common::good();
    let h = Header::decode(&bytes, bytes.len() as u64).unwrap();
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    assert_eq!(&bytes[0..8], b"MIGRATE\0");
    assert_eq!(&bytes[8..10], &VERSION_MAJOR.to_le_bytes());
    assert_eq!(&bytes[10..12], &VERSION_MINOR.to_le_bytes());
    assert_eq!(&bytes[12..16], &[0; 4]);
    assert_eq!(u64_at(16), h.meta_offset);
    assert_eq!(u64_at(24), h.meta_len);
    assert_eq!(&bytes[32..36], &h.meta_crc.to_le_bytes());
    assert_eq!(&bytes[36..40], &[0; 4]);
    assert_eq!(u64_at(40), bytes.len() as u64);
    assert_eq!(&bytes[48..60], &[0; 12]);
    assert_eq!(&bytes[60..64], &crc32fast::hash(&bytes[..60]).to_le_bytes());
    assert!(bytes[64..HEADER_LEN as usize].iter().all(|&b| b == 0));
    let meta = &bytes[h.meta_offset as usize..];
    assert_eq!(crc32fast::hash(meta), h.meta_crc);
    // The CRC-32 FORMAT.md names (zlib's), by its check value.
    assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
}

#[test]
fn io() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.img");
    let e = verify(&missing).unwrap_err();
    assert!(
        matches!(&e, Error::Io(m) if m.contains("missing.img")),
        "{e:?}"
    );
    // A directory opens but cannot be read.
    assert!(matches!(verify(dir.path()), Err(Error::Io(_))));
}

#[test]
fn truncated() {
    let bytes = common::good();
    both(
        &bytes[..100],
        &Error::Truncated {
            len: 100,
            need: HEADER_LEN,
        },
    );
    both(
        &[],
        &Error::Truncated {
            len: 0,
            need: HEADER_LEN,
        },
    );
    let short = &bytes[..bytes.len() - 1];
    both(
        short,
        &Error::Truncated {
            len: short.len() as u64,
            need: bytes.len() as u64,
        },
    );
}

#[test]
fn bad_magic() {
    let mut bytes = common::good();
    bytes[7] = b'X';
    both(&bytes, &Error::BadMagic);
    both(&[0u8; HEADER_LEN as usize * 2], &Error::BadMagic);
}

#[test]
fn newer_version() {
    let mut bytes = common::good();
    common::with_header(&mut bytes, |h| h.major = VERSION_MAJOR + 1);
    both(
        &bytes,
        &Error::NewerVersion {
            major: VERSION_MAJOR + 1,
            minor: VERSION_MINOR,
        },
    );
    let mut bytes = common::good();
    common::with_header(&mut bytes, |h| h.minor = VERSION_MINOR + 1);
    both(
        &bytes,
        &Error::NewerVersion {
            major: VERSION_MAJOR,
            minor: VERSION_MINOR + 1,
        },
    );
}

#[test]
fn older_version() {
    let mut bytes = common::good();
    common::with_header(&mut bytes, |h| {
        h.major = VERSION_MAJOR - 1;
        h.minor = 9;
    });
    both(
        &bytes,
        &Error::OlderVersion {
            major: VERSION_MAJOR - 1,
            minor: 9,
        },
    );
}

#[test]
fn header_crc() {
    let mut bytes = common::good();
    bytes[60] ^= 0x80;
    both(&bytes, &Error::HeaderCrc);
    let mut bytes = common::good();
    bytes[41] ^= 1; // file_len
    both(&bytes, &Error::HeaderCrc);
}

#[test]
fn bad_header() {
    let mut longer = common::good();
    longer.push(0);
    both(
        &longer,
        &Error::BadHeader("file is longer than the header says"),
    );

    let mut bytes = common::good();
    bytes[HEADER_LEN as usize - 1] = 1;
    both(
        &bytes,
        &Error::BadHeader("reserved header bytes are not zero"),
    );

    let mut bytes = common::good();
    common::with_header(&mut bytes, |h| h.meta_offset += 1);
    both(
        &bytes,
        &Error::BadHeader("metadata is not the tail of the file"),
    );

    let mut bytes = common::good();
    common::with_header(&mut bytes, |h| {
        h.meta_offset = HEADER_LEN - 8;
        h.meta_len = h.file_len - h.meta_offset;
    });
    both(
        &bytes,
        &Error::BadHeader("metadata is not the tail of the file"),
    );
}

#[test]
fn bad_header_metadata_over_the_cap() {
    // A file just long enough for the header to claim an over-cap metadata
    // block; sparse, so it takes no disk space.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.img");
    let file_len = HEADER_LEN + MAX_META_LEN + 1;
    let h = Header {
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        meta_offset: HEADER_LEN,
        meta_len: MAX_META_LEN + 1,
        meta_crc: 0,
        file_len,
        flags: 0,
    };
    let mut head = [0u8; dumpfmt::HEADER_ENCODED_LEN];
    h.encode(&mut head);
    let file = std::fs::File::create(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &head, 0).unwrap();
    file.set_len(file_len).unwrap();
    assert_eq!(
        verify(&path),
        Err(Error::BadHeader("metadata length exceeds the cap"))
    );
}

#[test]
fn meta_crc() {
    let mut bytes = common::good();
    let last = bytes.len() - 1;
    bytes[last] ^= 4;
    both(&bytes, &Error::MetaCrc);
}

#[test]
fn meta_decode() {
    let good = common::good();
    let (header, _, _) = common::split(&good);
    let meta = &good[header.meta_offset as usize..];

    let bytes = common::with_raw_meta(&meta[..meta.len() - 1]);
    assert!(matches!(decode(&bytes), Err(Error::MetaDecode(_))));
    let bytes = common::with_raw_meta(&[]);
    assert!(matches!(decode(&bytes), Err(Error::MetaDecode(_))));
    let bytes = common::with_raw_meta(&[0xff; 64]);
    assert!(matches!(decode(&bytes), Err(Error::MetaDecode(_))));

    let mut longer = meta.to_vec();
    longer.extend_from_slice(&[0, 0, 0]);
    let bytes = common::with_raw_meta(&longer);
    both(
        &bytes,
        &Error::MetaDecode("3 bytes after the metadata".into()),
    );
}

#[test]
fn too_many() {
    let bytes = common::with_meta(|image, _| {
        image.threads = vec![common::thread(7); MAX_THREADS + 1].into();
    });
    both(
        &bytes,
        &Error::TooMany {
            what: "threads",
            count: MAX_THREADS as u64 + 1,
            max: MAX_THREADS as u64,
        },
    );
    // 2^20 + 1, as a varint, and as many bytes: a count larger than the
    // bytes left is `PastEnd` whatever the limit.
    let bytes = common::with_fds_count(&[0x81, 0x80, 0x40], &vec![0; MAX_FDS + 1]);
    both(
        &bytes,
        &Error::TooMany {
            what: "descriptors",
            count: MAX_FDS as u64 + 1,
            max: MAX_FDS as u64,
        },
    );
}

#[test]
fn past_end() {
    // 128 descriptors in the 11 bytes left: postcard itself sees it.
    let bytes = common::with_fds_count(&[0x80, 0x01], &[]);
    both(
        &bytes,
        &Error::PastEnd {
            what: "descriptors",
        },
    );
    // 10000 descriptors in 10000 bytes (and 11 more): each takes at least 5.
    let bytes = common::with_fds_count(&[0x90, 0x4e], &[0; 10_000]);
    both(
        &bytes,
        &Error::PastEnd {
            what: "descriptors",
        },
    );
}

#[test]
fn bad_meta() {
    let bytes = common::with_meta(|image, _| image.threads = Vec::new().into());
    both(&bytes, &Error::BadMeta("no thread".into()));
}

#[test]
fn run_crc() {
    let bytes = common::good();
    let (_, image, _) = common::split(&bytes);
    let dir = tempfile::tempdir().unwrap();
    for (index, run) in image.runs.iter().enumerate() {
        let mut bad = bytes.clone();
        let last = (run.file_offset + run.pages * PAGE_SIZE - 1) as usize;
        bad[last] ^= 0x20;
        // Page data is not read by `decode`, only by `verify`.
        assert!(decode(&bad).is_ok());
        let path = write(dir.path(), &bad);
        assert_eq!(
            verify(&path),
            Err(Error::RunCrc {
                index,
                addr: run.addr
            })
        );
        let file = ImageFile::open(&path).unwrap();
        assert!(matches!(file.check_pages(), Err(Error::RunCrc { .. })));
    }
}

/// `read_memory` takes any address (a restore reads the signal frames an
/// image names, hostile or not): one at the top of the address space is
/// not there, rather than a panic.
#[test]
fn read_memory_at_the_top_of_the_address_space() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &common::good());
    let file = ImageFile::open(&path).unwrap();
    for addr in [u64::MAX - 600, u64::MAX - 4095, u64::MAX, u64::MAX - 519] {
        assert_eq!(file.read_memory(addr, 520), None, "{addr:#x}");
    }
    assert_eq!(file.read_memory(0x1000, u64::MAX), None);
}
