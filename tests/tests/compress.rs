//! `MIGRATE_COMPRESS=zstd`: page data stored as independent compressed
//! chunks (format 1.4, `dumpfmt::compress`), each checksummed, restored
//! exactly; a corrupt chunk refused in one line; the readers (`verify`,
//! `inspect`, the fidelity check's re-dump) work on compressed images.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use migrate_tests::*;

fn migrate_cli(args: &[&OsStr]) -> (i32, String, String) {
    let out = Command::new(command::migrate())
        .args(args)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run migrate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn disk_len(image: &Path) -> u64 {
    std::fs::metadata(image).unwrap().len()
}

/// Dumps `program` with `MIGRATE_COMPRESS=zstd` at step 10, kills it and
/// restores it (the restore's fidelity check dumps the restored process
/// again, compressed, and compares).
fn roundtrip(test: &str, program: &Program) -> (TestDir, DumpRestore) {
    let dir = TestDir::new(test);
    let image = dir.join("c.img");
    let r = dump_kill_restore(
        &dir,
        program,
        10,
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_COMPRESS", "zstd"),
        ],
        &[],
    );
    assert_eq!(r.restored.stderr(), "", "{}", r.restored.describe());
    assert!(image_meta(&r.image).compressed, "not compressed");
    (dir, r)
}

/// 32 MiB of text rewritten by 3 threads: restored exactly, and the image
/// is a fraction of its page data (text of 20 words compresses far
/// more than 4x). `verify` and `inspect` read it.
#[test]
fn text_heap_with_threads() {
    let (_dir, r) = roundtrip("compress-text", &Program::text(32, 3, false));
    assert_eq!(r.summary.threads, 4);
    let stored = disk_len(&r.image);
    assert!(r.summary.data_bytes > 32 << 20, "{:?}", r.summary);
    assert!(
        stored * 4 < r.summary.data_bytes,
        "{stored} bytes on disk for {} of page data",
        r.summary.data_bytes
    );
    let (code, out, err) = migrate_cli(&["verify".as_ref(), r.image.as_os_str()]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.ends_with(": good\n"), "{out}");
    let (code, out, err) = migrate_cli(&["inspect".as_ref(), r.image.as_os_str()]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(!out.is_empty());
}

/// Random words do not compress: their chunks are stored raw (at least
/// the 16 MiB of them) and restored exactly.
#[test]
fn random_heap_is_stored_raw() {
    let (_dir, r) = roundtrip("compress-random", &Program::text(16, 2, true));
    let stored = disk_len(&r.image);
    assert!(stored >= 16 << 20, "{stored} bytes on disk");
    // The chunk table as stored (opening an image decompresses it).
    let (_, image) = dumpfmt::decode(&std::fs::read(&r.image).unwrap()).unwrap();
    let chunks = &image.minor4.compression.chunks;
    let raw: u64 = chunks.iter().filter(|c| c.raw).map(|c| c.covers).sum();
    // The 16 MiB of random words hold at least 3 whole chunks of 4 MiB.
    assert!(raw >= 12 << 20, "{raw} raw bytes in {chunks:?}");
}

/// A byte flipped in a compressed chunk: the restore is refused before
/// anything runs, in one line naming the image and the chunk's offset,
/// with the corrupt-image status; `verify` says the same.
#[test]
fn corrupt_chunk_is_refused() {
    let dir = TestDir::new("compress-corrupt");
    let image = dir.join("c.img");
    let program = Program::text(8, 1, false);
    let mut p = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_COMPRESS", "zstd"),
        ],
    );
    p.wait_for_step(3);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();
    // Inside the first chunk, which starts after the header page.
    flip_byte(&image, 4096 + 200);
    let mut r = dir.restore(&program, "restored", &image, &[]);
    let status = r.wait();
    assert_eq!(status.code(), Some(exit::CORRUPT), "{}", r.describe());
    assert_eq!(r.stdout_raw(), "", "{}", r.describe());
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "{}", r.describe());
    assert!(
        err.contains("c.img") && err.contains("chunk at file offset 0x1000"),
        "{}",
        r.describe()
    );
    let (code, _, err) = migrate_cli(&["verify".as_ref(), image.as_os_str()]);
    assert_eq!(code, exit::CORRUPT, "{err}");
    assert!(err.contains("chunk at file offset 0x1000"), "{err}");
}

/// A tree image is stored uncompressed whatever the setting (its sections
/// keep the layout the tree code reads) and restores.
#[test]
fn tree_image_with_compression_restores() {
    let dir = TestDir::new("compress-tree");
    let image = dir.join("tree.img");
    let program = Program::children("live");
    let mut p = dir.spawn(
        &program,
        "live",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_CHILDREN", "tree"),
            ("MIGRATE_COMPRESS", "zstd"),
        ],
    );
    p.wait_for_line("ready", |l| l == "ready");
    let expected = reference(&program);
    p.wait_for_step(5);
    p.dump_signal();
    p.wait_for_image(&image, false);
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", p.pid()))
        .unwrap_or_default();
    p.kill();
    for c in children.split_whitespace() {
        // SAFETY: kill(2) with plain integers.
        unsafe { libc::kill(c.parse().unwrap(), libc::SIGKILL) };
    }
    let mut restored = dir.restore(&program, "restored", &image, &[("MIGRATE_LOG", "error")]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

/// A value `MIGRATE_COMPRESS` does not take stops the program at its start
/// with one line.
#[test]
fn bad_setting_is_one_line() {
    let dir = TestDir::new("compress-setting");
    for (i, bad) in ["gzip", "zstd:0", "zstd:99", "zstd:x"].iter().enumerate() {
        let program = Program::text(1, 1, false);
        let mut p = dir.spawn(&program, &format!("bad-{i}"), &[("MIGRATE_COMPRESS", bad)]);
        let status = p.wait();
        assert_eq!(status.code(), Some(64), "{}", p.describe());
        assert_eq!(p.stdout_raw(), "", "{}", p.describe());
        let err = p.stderr();
        assert_eq!(err.lines().count(), 1, "{}", p.describe());
        assert!(
            err.contains(&format!(
                "MIGRATE_COMPRESS={bad}: expected none, zstd or zstd:LEVEL"
            )),
            "{}",
            p.describe()
        );
    }
}
