//! Incremental dumps (`MIGRATE_INCREMENTAL`): a dump after a dump stores
//! only the pages written since and names its parent; a restore follows
//! the chain (from its newest image or from the middle) and refuses a
//! broken one before teardown; `migrate merge` makes one standalone
//! image; without dirty tracking every dump is full and one line says
//! why. The program (`programs/cincr.c`) rewrites a few pages per step
//! and makes new mappings between dumps (mmap, brk growth, mremap), and
//! frees a page (MADV_DONTNEED): its output hashes all of them.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use migrate_tests::command::migrate;
use migrate_tests::*;

const MIB: u32 = 32;
const STEPS: u32 = 140;
const PACE_MS: u32 = 20;
/// Pages the program rewrites per step (see `cincr.c`).
const PAGES_PER_STEP: u64 = 4;
/// Pages a step can add at most besides (a new 8-page mapping, 4 pages
/// of heap, a mapping grown by 4 pages and moved: up to 20 + 4 k pages).
const NEW_PAGES_PER_STEP: u64 = 64;
/// What an incremental image of this program holds besides the pages it
/// wrote: headers, metadata, stacks, libc's and the shim's data.
const OVERHEAD: u64 = 3 << 20;

fn program() -> Program {
    Program::command_of(
        "cincr",
        &[
            env!("MIGRATE_TEST_CINCR").as_ref(),
            MIB.to_string().as_ref(),
            STEPS.to_string().as_ref(),
            PACE_MS.to_string().as_ref(),
        ],
    )
}

fn image(dir: &TestDir, n: u32) -> PathBuf {
    dir.join(&format!("img-{n}.img"))
}

fn env(dir: &TestDir) -> Vec<(&'static str, String)> {
    vec![
        (
            "MIGRATE_IMAGE",
            dir.join("img-%n.img").display().to_string(),
        ),
        ("MIGRATE_INCREMENTAL", "8".into()),
        ("MIGRATE_LOG", "info".into()),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).expect("stat image").len()
}

/// Dumps at each of `at` (steps), waiting for each image.
fn dump_at(p: &mut Proc, dir: &TestDir, at: &[u64]) {
    for (i, &step) in at.iter().enumerate() {
        p.wait_for_step(step);
        p.dump_signal();
        p.wait_for_image(&image(dir, i as u32 + 1), false);
    }
}

fn ancestors(p: &Path) -> Vec<String> {
    image_meta(p)
        .image
        .minor4
        .incremental
        .ancestors
        .iter()
        .map(|a| a.path.to_string())
        .collect()
}

fn restore_and_check(dir: &TestDir, label: &str, img: &Path, original: &[String]) {
    let expected = reference(&program());
    let mut r = dir.restore(&program(), label, img, &[]);
    let lines = r.wait_success();
    check_restored(&expected, original, &lines, &describe_all(&[&r]));
}

#[test]
fn chain_of_three_restores_from_the_newest_and_the_middle() {
    let dir = TestDir::new("incremental-chain");
    let e = env(&dir);
    let mut p = dir.spawn(&program(), "original", &as_refs(&e));
    dump_at(&mut p, &dir, &[5, 25, 45]);
    p.kill();
    let original = p.stdout_lines();
    let full = size(&image(&dir, 1));
    assert!(
        full > u64::from(MIB) << 20,
        "the first image is full: {full} bytes"
    );
    assert_eq!(ancestors(&image(&dir, 1)), Vec::<String>::new());
    assert_eq!(ancestors(&image(&dir, 2)), ["img-1.img"]);
    assert_eq!(ancestors(&image(&dir, 3)), ["img-2.img", "img-1.img"]);
    // 20 steps between dumps, and a few more while each dump is asked for.
    let bound = 24 * (PAGES_PER_STEP + NEW_PAGES_PER_STEP) * 4096 + OVERHEAD;
    for n in [2, 3] {
        let s = size(&image(&dir, n));
        assert!(
            s <= bound && s * 8 < full,
            "img-{n}.img has {s} bytes; at most {bound} expected (the full one has {full})\n{}",
            p.describe()
        );
    }
    restore_and_check(&dir, "restored-3", &image(&dir, 3), &original);
    restore_and_check(&dir, "restored-2", &image(&dir, 2), &original);
}

#[test]
fn merged_chain_restores_and_verifies_standalone() {
    let dir = TestDir::new("incremental-merge");
    let e = env(&dir);
    let mut p = dir.spawn(&program(), "original", &as_refs(&e));
    dump_at(&mut p, &dir, &[5, 25, 45]);
    p.kill();
    let original = p.stdout_lines();
    let out = Command::new(migrate())
        .arg("verify")
        .arg(image(&dir, 3))
        .output()
        .expect("run migrate verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "verify failed: {out:?}");
    assert!(
        stdout.contains("incremental") && stdout.contains("img-1.img"),
        "{stdout}"
    );
    let out = Command::new(migrate())
        .arg("inspect")
        .arg(image(&dir, 3))
        .output()
        .expect("run migrate inspect");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("incremental over (2 ancestors, parent first)")
            && stdout.contains("1 img-2.img")
            && stdout.contains("2 img-1.img"),
        "{stdout}"
    );
    let merged = dir.join("merged.img");
    let out = Command::new(migrate())
        .arg("merge")
        .arg(image(&dir, 3))
        .arg("-o")
        .arg(&merged)
        .output()
        .expect("run migrate merge");
    assert!(out.status.success(), "merge failed: {out:?}");
    let summary = verify_image(&merged, "merged");
    assert!(image_meta(&merged).image.minor4.incremental.is_standalone());
    assert!(summary.file_len > size(&image(&dir, 3)));
    // Standalone: the chain may go.
    for n in 1..=3 {
        std::fs::remove_file(image(&dir, n)).expect("remove");
    }
    restore_and_check(&dir, "restored-merged", &merged, &original);
}

#[test]
fn broken_chain_is_refused_before_teardown() {
    let dir = TestDir::new("incremental-broken");
    let e = env(&dir);
    let mut p = dir.spawn(&program(), "original", &as_refs(&e));
    dump_at(&mut p, &dir, &[5, 15]);
    let (one, two) = (image(&dir, 1), image(&dir, 2));
    let aside = dir.join("aside.img");
    let refused = |label: &str, code: i32| {
        let mut r = dir.restore(&program(), label, &two, &[]);
        let status = r.wait();
        assert_eq!(status.code(), Some(code), "{}", r.describe());
        assert!(r.stdout_lines().is_empty(), "{}", r.describe());
        let err = r.stderr();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected:\n{err}");
        assert!(lines[0].contains(&one.display().to_string()), "{err}");
        lines[0].to_string()
    };
    // Missing.
    std::fs::rename(&one, &aside).expect("move the parent aside");
    let line = refused("missing", exit::MISSING);
    assert!(line.contains("missing"), "{line}");
    // Replaced by another image (the child itself).
    std::fs::copy(&two, &one).expect("copy");
    let line = refused("replaced", exit::CORRUPT);
    assert!(line.contains("not the one"), "{line}");
    // The parent itself, with a byte of page data damaged, then repaired.
    std::fs::rename(&aside, &one).expect("put the parent back");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&one)
        .expect("open");
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, 4096 * 3).expect("read");
    f.write_all_at(&[!byte[0]], 4096 * 3).expect("damage");
    let line = refused("corrupt", exit::CORRUPT);
    assert!(line.contains("corrupt"), "{line}");
    f.write_all_at(&byte, 4096 * 3).expect("repair");
    drop(f);
    // The running program went on all along, and its next dump still
    // builds on the chain, which restores.
    p.wait_for_step(30);
    p.dump_signal();
    p.wait_for_image(&image(&dir, 3), false);
    assert_eq!(ancestors(&image(&dir, 3)), ["img-2.img", "img-1.img"]);
    p.kill();
    let original = p.stdout_lines();
    restore_and_check(&dir, "restored", &image(&dir, 3), &original);
}

#[test]
fn a_replaced_parent_makes_the_next_dump_full() {
    let dir = TestDir::new("incremental-replaced");
    let e = env(&dir);
    let mut p = dir.spawn(&program(), "original", &as_refs(&e));
    dump_at(&mut p, &dir, &[5, 15]);
    // The grandparent of the next image changes on disk.
    let (one, two) = (image(&dir, 1), image(&dir, 2));
    std::fs::remove_file(&one).expect("remove");
    std::fs::copy(&two, &one).expect("copy");
    p.wait_for_step(25);
    p.dump_signal();
    p.wait_for_image(&image(&dir, 3), false);
    assert_eq!(ancestors(&image(&dir, 3)), Vec::<String>::new());
    p.kill();
    let original = p.stdout_lines();
    restore_and_check(&dir, "restored", &image(&dir, 3), &original);
}

#[test]
fn without_tracking_dumps_are_full_and_say_why_once() {
    let dir = TestDir::new("incremental-off");
    let mut e = env(&dir);
    e.push(("MIGRATE_FAULT", "no-uffd".into()));
    let mut p = dir.spawn(&program(), "original", &as_refs(&e));
    dump_at(&mut p, &dir, &[5, 15, 25]);
    p.kill();
    let original = p.stdout_lines();
    let full = size(&image(&dir, 1));
    for n in [2, 3] {
        assert!(ancestors(&image(&dir, n)).is_empty());
        assert!(size(&image(&dir, n)) * 2 > full, "img-{n}.img is full");
    }
    let said = p
        .stderr()
        .lines()
        .filter(|l| l.contains("incremental dumps unavailable, dumps are full"))
        .count();
    assert_eq!(said, 1, "{}", p.describe());
    restore_and_check(&dir, "restored", &image(&dir, 3), &original);
}
