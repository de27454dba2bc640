//! Restores that must fail before anything of the program runs, each with
//! its exit status and one `migrate: ` line on stderr.

use std::fs;
use std::path::{Path, PathBuf};

use migrate_tests::*;

/// Dumps the malloc loop at step 50 with MIGRATE_AFTER_DUMP=exit and
/// returns its (verified) image.
fn good_image(dir: &TestDir) -> PathBuf {
    let img = dir.join("good.img");
    dump_then_exit(dir, &Program::cloop(), "dumped", &img, 50);
    img
}

/// A copy of `good` with the byte at `offset` flipped.
fn flipped(dir: &TestDir, good: &Path, offset: u64) -> PathBuf {
    let copy = copy_image(good, dir, &format!("flip-{offset}.img"));
    flip_byte(&copy, offset);
    copy
}

/// Offsets of bytes in the header page: magic, the metadata offset, the file
/// length, the header checksum, and two bytes of the (zero) rest of the page.
/// (Bytes 8..12, the version, are left to `format_version`.)
const HEADER_OFFSETS: [u64; 7] = [0, 3, 20, 40, 61, 100, 4095];

/// Offsets of the first, middle and last byte of page data.
fn data_offsets(good: &Path) -> Vec<u64> {
    let meta = image_meta(good);
    let runs = &meta.image.runs;
    assert!(!runs.is_empty(), "the image has no page data");
    let total: u64 = runs.iter().map(|r| r.pages * dumpfmt::PAGE_SIZE).sum();
    let mut left = total / 2;
    let mut middle = None;
    for r in runs.iter() {
        let len = r.pages * dumpfmt::PAGE_SIZE;
        if left < len {
            middle = Some(r.file_offset + left);
            break;
        }
        left -= len;
    }
    let last = runs.last().unwrap();
    vec![
        runs[0].file_offset,
        middle.unwrap(),
        last.file_offset + last.pages * dumpfmt::PAGE_SIZE - 1,
    ]
}

/// Offsets of the first, middle and last byte of the metadata (the last byte
/// of the file).
fn meta_offsets(good: &Path) -> Vec<u64> {
    let h = image_meta(good).header;
    vec![
        h.meta_offset,
        h.meta_offset + h.meta_len / 2,
        h.file_len - 1,
    ]
}

#[test]
fn missing_image() {
    let dir = TestDir::new("missing");
    expect_restore_failure(
        &dir,
        &Program::cloop(),
        "restore",
        &dir.join("no-such.img"),
        exit::MISSING,
    );
}

#[test]
fn image_is_a_directory() {
    let dir = TestDir::new("directory");
    let path = dir.join("dir.img");
    fs::create_dir(&path).unwrap();
    expect_restore_failure(&dir, &Program::cloop(), "restore", &path, exit::MISSING);
}

#[test]
fn truncated_image() {
    let dir = TestDir::new("truncated");
    let good = good_image(&dir);
    let len = fs::metadata(&good).unwrap().len();
    for cut in [0, 100, 4095, 4096, len / 2, len - 1] {
        let copy = copy_image(&good, &dir, &format!("cut-{cut}.img"));
        fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(cut)
            .unwrap();
        expect_restore_failure(
            &dir,
            &Program::cloop(),
            &format!("restore-cut-{cut}"),
            &copy,
            exit::CORRUPT,
        );
    }
}

/// A byte appended to a good image makes it corrupt too.
#[test]
fn extended_image() {
    let dir = TestDir::new("extended");
    let good = good_image(&dir);
    let copy = copy_image(&good, &dir, "longer.img");
    let len = fs::metadata(&copy).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_len(len + 1)
        .unwrap();
    expect_restore_failure(&dir, &Program::cloop(), "restore", &copy, exit::CORRUPT);
}

fn check_flips(test: &str, offsets: impl FnOnce(&Path) -> Vec<u64>) {
    let dir = TestDir::new(test);
    let good = good_image(&dir);
    for offset in offsets(&good) {
        let bad = flipped(&dir, &good, offset);
        expect_restore_failure(
            &dir,
            &Program::cloop(),
            &format!("restore-flip-{offset}"),
            &bad,
            exit::CORRUPT,
        );
    }
}

#[test]
fn flipped_header_byte() {
    check_flips("flip-header", |_| HEADER_OFFSETS.to_vec());
}

#[test]
fn flipped_page_data_byte() {
    check_flips("flip-data", data_offsets);
}

#[test]
fn flipped_metadata_byte() {
    check_flips("flip-meta", meta_offsets);
}

/// `dumpfmt::verify` itself must also reject every flipped byte (this tests
/// the format crate, not the shim).
#[test]
fn verify_rejects_flipped_bytes() {
    let dir = TestDir::new("verify-flips");
    let good = good_image(&dir);
    let mut offsets = HEADER_OFFSETS.to_vec();
    offsets.extend(data_offsets(&good));
    offsets.extend(meta_offsets(&good));
    let mut accepted = Vec::new();
    for offset in offsets {
        let bad = flipped(&dir, &good, offset);
        if let Ok(s) = dumpfmt::verify(&bad) {
            accepted.push((offset, s));
        }
        fs::remove_file(&bad).unwrap();
    }
    assert!(
        accepted.is_empty(),
        "dumpfmt::verify accepted images with a flipped byte at these offsets: {:?}",
        accepted.iter().map(|(o, _)| o).collect::<Vec<_>>()
    );
}

/// Writes `major` into the header and fixes the header checksum.
fn set_major(path: &Path, major: u16) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut head = [0u8; 64];
    f.read_exact_at(&mut head, 0).unwrap();
    head[8..10].copy_from_slice(&major.to_le_bytes());
    let crc = crc32fast::hash(&head[..60]);
    head[60..64].copy_from_slice(&crc.to_le_bytes());
    f.write_all_at(&head, 0).unwrap();
}

#[test]
fn format_version() {
    let dir = TestDir::new("version");
    let good = good_image(&dir);
    for major in [dumpfmt::VERSION_MAJOR + 1, 0] {
        let img = copy_image(&good, &dir, &format!("major-{major}.img"));
        set_major(&img, major);
        let err = dumpfmt::verify(&img).expect_err("verify accepted another major version");
        assert!(
            matches!(
                err,
                dumpfmt::Error::NewerVersion { .. } | dumpfmt::Error::OlderVersion { .. }
            ),
            "verify: {err}"
        );
        expect_restore_failure(
            &dir,
            &Program::cloop(),
            &format!("restore-major-{major}"),
            &img,
            exit::VERSION,
        );
    }
}

/// An image of the C malloc loop relaunched with the Rust program, and with
/// another C program.
#[test]
fn image_of_another_program() {
    let dir = TestDir::new("other-program");
    let good = good_image(&dir);
    expect_restore_failure(
        &dir,
        &rust_program!(),
        "restore-rust",
        &good,
        exit::OTHER_PROGRAM,
    );
    expect_restore_failure(
        &dir,
        &Program::c(),
        "restore-cprog",
        &good,
        exit::OTHER_PROGRAM,
    );
}

/// An image that belongs to another user (readable, but not the restoring
/// user's) is refused with 70. Needs root to make such an image; as another
/// user the test is skipped, and says so.
#[test]
fn image_of_another_user() {
    if !skip::is_root() {
        skip(
            "image_of_another_user",
            "root (to make an image of another user)",
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("other-user");
    let good = good_image(&dir);
    fs::set_permissions(&good, fs::Permissions::from_mode(0o644)).unwrap();
    let program = as_nobody(&dir, &Program::cloop());
    expect_restore_failure(
        &dir,
        &program,
        "restore-as-nobody",
        &good,
        exit::CANNOT_RESTORE,
    );
}

/// An image that needs CPU features this machine lacks is refused with 70.
/// (The same rewrite without the change restores, so the rewrite is sound.)
#[test]
fn cpu_features_missing() {
    let dir = TestDir::new("cpu");
    let program = rust_program!();
    let expected = reference(&program);
    let img = dir.join("rust.img");
    let p = dump_then_exit(&dir, &program, "dumped", &img, 50);

    let same = copy_image(&img, &dir, "same.img");
    rewrite_meta(&same, |_| {});
    restore_and_check(&dir, &program, "restore-same", &same, &p, &expected);

    let needy = copy_image(&img, &dir, "needy.img");
    rewrite_meta(&needy, |image| {
        image.cpu.xcr0 = u64::MAX;
        image.cpu.cpuid = [u32::MAX; 5];
    });
    expect_restore_failure(
        &dir,
        &program,
        "restore-needy",
        &needy,
        exit::CANNOT_RESTORE,
    );
}

/// An image with 200,000 descriptor records, half of them dups, the last
/// one a dup of a dup, is refused with one line, and quickly: reading it
/// is linear in its size (a scan of every record per dup took half a
/// minute on this one).
#[test]
fn many_descriptor_records() {
    use std::borrow::Cow;
    use std::time::{Duration, Instant};

    use dumpfmt::{Fd, FdKind};

    let dir = TestDir::new("many-fds");
    let good = good_image(&dir);
    let img = copy_image(&good, &dir, "many-fds.img");
    const N: i32 = 200_000;
    const FIRST: i32 = 3;
    let last_original = FIRST + N / 2 - 1;
    rewrite_meta_unchecked(&img, |image| {
        let fds: Vec<Fd<'static>> = (FIRST..FIRST + N)
            .map(|fd| Fd {
                fd,
                flags: libc::O_RDWR,
                cloexec: false,
                kind: if fd <= last_original {
                    FdKind::Contents {
                        name: Cow::Borrowed("memfd:x"),
                        data: Cow::Borrowed(&[]),
                        offset: 0,
                        memfd: true,
                        seals: 0,
                    }
                } else if fd == FIRST + N - 1 {
                    FdKind::Dup { of: fd - 1 }
                } else {
                    FdKind::Dup {
                        of: last_original - fd % 64,
                    }
                },
            })
            .collect();
        image.fds = fds.into();
    });
    let start = Instant::now();
    let stderr = expect_restore_failure(&dir, &Program::cloop(), "restore", &img, exit::CORRUPT);
    let took = start.elapsed();
    let last = FIRST + N - 1;
    assert!(
        stderr.contains(&format!("fd {last} duplicates fd {}", last - 1)),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
}
