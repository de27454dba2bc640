//! The data of stored files (format 1.4, `files::How::Stored`) in a whole
//! image: its runs follow the page runs back to back, each checked by its
//! checksum, and a hostile entry is refused, never a panic (the tests run
//! with overflow checks, as the fuzz build does).

mod common;

use std::borrow::Cow;

use dumpfmt::files::{FileFd, FileRun, Files, How};
use dumpfmt::{Error, Fd, FdKind, HEADER_LEN, ImageFile, PAGE_SIZE};

/// The sample image with fd 3, a memfd of `size` bytes whose data ranges
/// `(start, len)` are stored after the page runs; `tweak` may change the
/// runs and the page data before framing.
fn with_stored(
    size: u64,
    ranges: &[(u64, u64)],
    tweak: impl FnOnce(&mut Vec<FileRun>, &mut Vec<u8>),
) -> Vec<u8> {
    let (_, mut image, mut data) = common::split(&common::good());
    let mut runs = Vec::new();
    for &(start, len) in ranges {
        let mut bytes = common::pages(len.div_ceil(PAGE_SIZE) as usize, start + 7);
        bytes[len as usize..].fill(0);
        runs.push(FileRun {
            start,
            len,
            file_offset: HEADER_LEN + data.len() as u64,
            crc: crc32fast::hash(&bytes),
        });
        data.extend_from_slice(&bytes);
    }
    tweak(&mut runs, &mut data);
    image.fds = Cow::Owned(vec![Fd {
        fd: 3,
        flags: 2,
        cloexec: false,
        kind: FdKind::Contents {
            name: "big".into(),
            data: Cow::Borrowed(&[]),
            offset: 0,
            memfd: true,
            seals: 0,
        },
    }]);
    image.minor4.files = Files {
        fds: Cow::Owned(vec![FileFd {
            fd: 3,
            how: How::Stored {
                mode: 0o600,
                uid: 0,
                gid: 0,
                atime: (0, 0),
                mtime: (0, 0),
                size,
                runs: Cow::Owned(runs),
            },
        }]),
    };
    dumpfmt::frame(&image, &data)
}

fn opened(bytes: &[u8]) -> (tempfile::TempDir, ImageFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.img");
    std::fs::write(&path, bytes).unwrap();
    let file = ImageFile::open(&path).unwrap();
    (dir, file)
}

#[test]
fn stored_runs_after_the_page_runs_are_checked() {
    let ranges = [(0, 5000), (3 << 20, 4096)];
    let bytes = with_stored(4 << 20, &ranges, |_, _| {});
    dumpfmt::decode(&bytes).expect("consistent");
    let (_dir, file) = opened(&bytes);
    // The sample's 5 pages, then 2 + 1 of the file.
    assert_eq!(file.check_pages(), Ok(8 * PAGE_SIZE));

    let end = bytes.len() - file.header.meta_len as usize;
    let mut bad = bytes.clone();
    // The second run's page, in the page data just before the metadata.
    bad[end - 100] ^= 1;
    let (_dir, file) = opened(&bad);
    assert_eq!(
        file.check_pages(),
        Err(Error::FileRunCrc {
            fd: 3,
            start: 3 << 20
        })
    );
}

#[test]
fn stored_runs_lie_back_to_back() {
    let bytes = with_stored(1 << 20, &[(0, 4096), (8192, 4096)], |runs, data| {
        // A page left between the two runs.
        let gap = vec![0u8; PAGE_SIZE as usize];
        let at = (runs[1].file_offset - HEADER_LEN) as usize;
        data.splice(at..at, gap);
        runs[1].file_offset += PAGE_SIZE;
    });
    match dumpfmt::decode(&bytes) {
        Err(Error::BadMeta(m)) if m.contains("stored data of fd 3 starts at") => {}
        other => panic!("{other:?}"),
    }
}

/// A run whose whole pages do not fit a u64 (`len` near `u64::MAX` in a
/// file of that size): refused (no file is larger than `i64::MAX`); it
/// overflowed `stored_len` in the consistency check.
#[test]
fn a_stored_run_past_any_file_size_is_refused() {
    for (size, start, len) in [
        (u64::MAX, 0, u64::MAX),
        (u64::MAX, 4096, u64::MAX - 4096),
        (i64::MAX as u64 + 1, 0, 4096),
    ] {
        let (_, mut image, data) = common::split(&with_stored(1 << 20, &[(0, 4096)], |_, _| {}));
        let files = image.minor4.files.fds.to_mut();
        let How::Stored {
            size: s, runs: r, ..
        } = &mut files[0].how
        else {
            unreachable!()
        };
        *s = size;
        r.to_mut()[0].start = start;
        r.to_mut()[0].len = len;
        let bytes = dumpfmt::frame(&image, &data);
        match dumpfmt::decode(&bytes) {
            Err(Error::BadMeta(m)) if m.contains("fd 3") => {}
            other => panic!("size {size:#x}, run {start:#x}+{len:#x}: {other:?}"),
        }
    }
}
