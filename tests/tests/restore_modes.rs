//! The restore modes (issue 11): eager (the default: pages read into
//! place) and lazy (`MIGRATE_RESTORE_MODE=lazy`: the image's runs mapped
//! from the image file), on a program with a large heap that checks its
//! own memory (`programs/cbigheap.c`).

use std::fs;
use std::path::{Path, PathBuf};

use migrate_tests::*;

const LAZY: (&str, &str) = ("MIGRATE_RESTORE_MODE", "lazy");

/// A heap of `mib` MiB, a third zeros; 30 steps 40 ms apart.
fn program(mib: u32) -> Program {
    Program::big_heap(mib, 30, 40)
}

/// Every process below `pid` (children, their children, ...), as this
/// PID namespace sees them.
fn descendants(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The name may hold spaces and parentheses: fields follow the last `)`.
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split(' ').nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parents.iter().filter(|&&(_, pp)| pp == p).map(|&(c, _)| c));
        i += 1;
    }
    found.remove(0);
    found
}

/// Whether a process below the relaunch `p` maps `image` (a lazy restore
/// does, for the runs it mapped).
fn maps_image(p: &Proc, image: &Path) -> bool {
    let name = fs::canonicalize(image).unwrap();
    let name = name.to_str().unwrap();
    descendants(p.pid()).iter().any(|pid| {
        fs::read_to_string(format!("/proc/{pid}/maps"))
            .is_ok_and(|m| m.lines().any(|l| l.ends_with(name)))
    })
}

/// Dumps `program` at step 5 (it exits after the dump); returns the
/// exited original, the image and the output of an uninterrupted run.
fn dumped(dir: &TestDir, program: &Program) -> (Proc, PathBuf, Vec<String>) {
    let expected = reference(program);
    assert!(
        expected.last().is_some_and(|l| l.ends_with("bad=0")),
        "the uninterrupted run found bad pages: {expected:?}"
    );
    let image = dir.join("first.img");
    let original = dump_then_exit(dir, program, "original", &image, 5);
    (original, image, expected)
}

#[test]
fn eager_and_lazy_restores_of_a_large_heap() {
    let dir = TestDir::new("modes-large-heap");
    let program = program(256);
    let (original, image, expected) = dumped(&dir, &program);
    let mut eager = dir.restore(&program, "eager", &image, &[]);
    eager.wait_for_step(8);
    assert!(
        !maps_image(&eager, &image),
        "an eager restore maps its image\n{}",
        eager.describe()
    );
    finish_restored(&mut eager, &original, &expected);
    let mut lazy = dir.restore(&program, "lazy", &image, &[LAZY]);
    lazy.wait_for_step(8);
    assert!(
        maps_image(&lazy, &image),
        "a lazy restore does not map its image\n{}",
        lazy.describe()
    );
    finish_restored(&mut lazy, &original, &expected);
}

/// A lazily restored process, dumped again: its second image holds the
/// mapped ranges as anonymous memory, and restores both ways.
#[test]
fn lazily_restored_process_dumped_again() {
    let dir = TestDir::new("modes-dumped-again");
    let program = program(64);
    let (original, image, expected) = dumped(&dir, &program);
    let second = dir.join("second.img");
    let mut lazy = dir.restore(
        &program,
        "lazy",
        &image,
        &[
            LAZY,
            ("MIGRATE_IMAGE", second.to_str().unwrap()),
            ("MIGRATE_AFTER_DUMP", "continue"),
        ],
    );
    lazy.wait_for_step(12);
    assert!(maps_image(&lazy, &image), "{}", lazy.describe());
    lazy.dump_signal();
    lazy.wait_for_image(&second, false);
    let meta = image_meta(&second);
    let first_name = fs::canonicalize(&image).unwrap();
    assert!(
        !meta
            .image
            .mappings
            .iter()
            .any(|m| Path::new(&*m.name) == first_name),
        "the second image names the first as a mapped file"
    );
    assert!(
        meta.image.minor4.placement.from_lazy > 0,
        "the second image stored no pages from the lazily mapped ranges"
    );
    let k_lazy = finish_restored(&mut lazy, &original, &expected);
    // Each restore of the second image resumes where the lazy one was
    // dumped (the line after the last one out when the signal went, or
    // one later) and runs to the end.
    let dumped_at = k_lazy + lazy.dump_lines()[0];
    for (label, env) in [("again-eager", &[][..]), ("again-lazy", &[LAZY][..])] {
        let mut again = dir.restore(&program, label, &second, env);
        let status = again.wait();
        let context = describe_all(&[&lazy, &again]);
        assert!(status.success(), "{context}");
        let got = again.stdout_lines();
        let k = check_segment(&expected, &got, label, &context);
        assert!(
            (dumped_at..=dumped_at + 1).contains(&k) && k + got.len() == expected.len(),
            "{label} resumed at line {k}, not after line {dumped_at}, or stopped early\n{context}"
        );
    }
}

/// Offset of a byte in the middle of the image's page data.
fn middle_of_data(image: &Path) -> u64 {
    let runs = image_meta(image).image.runs;
    let r = &runs[runs.len() / 2];
    r.file_offset + r.pages * dumpfmt::PAGE_SIZE / 2
}

/// A flipped byte in the page data of a lazily restored image: the
/// supervisor's check kills the restored process and exits with the
/// corrupt-image status, one line naming the image and the address.
#[test]
fn corrupt_page_of_a_lazy_image_is_caught() {
    let dir = TestDir::new("modes-lazy-corrupt");
    let program = program(64);
    let (_original, image, _) = dumped(&dir, &program);
    let bad = copy_image(&image, &dir, "bad.img");
    flip_byte(&bad, middle_of_data(&image));
    let mut p = dir.restore(&program, "lazy-corrupt", &bad, &[LAZY]);
    let status = p.wait();
    let stderr = p.stderr();
    assert_eq!(
        status.code(),
        Some(exit::CORRUPT),
        "a corrupt lazy image was not caught ({})\n{}",
        describe_status(status),
        p.describe()
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("migrate: "))
        .collect();
    assert!(
        lines.len() == 1 && lines[0].contains("bad.img") && lines[0].contains("checksum mismatch"),
        "expected one line naming the image and the bad run, got {stderr:?}"
    );
}

/// Without a supervisor (no PID namespace) a lazy restore checks every
/// page before the resume: a corrupt image is refused before anything ran.
#[test]
fn corrupt_lazy_image_without_supervisor_is_refused() {
    let dir = TestDir::new("modes-lazy-corrupt-nons");
    let program = program(16);
    let (_original, image, _) = dumped(&dir, &program);
    let bad = copy_image(&image, &dir, "bad.img");
    flip_byte(&bad, middle_of_data(&image));
    let mut p = dir.restore(
        &program,
        "lazy-corrupt",
        &bad,
        &[LAZY, ("MIGRATE_NAMESPACE", "off")],
    );
    let status = p.wait();
    assert_eq!(status.code(), Some(exit::CORRUPT), "{}", p.describe());
    assert!(
        p.stdout_raw().is_empty(),
        "the program ran\n{}",
        p.describe()
    );
    let stderr = p.stderr();
    assert!(
        stderr.lines().count() == 1 && stderr.contains("checksum mismatch"),
        "{stderr:?}"
    );
}

/// The image deleted after a lazy restore: the mappings hold its inode,
/// and the process runs to the end (rewriting the image in place is the
/// documented catch).
#[test]
fn lazy_restore_survives_the_image_deleted() {
    let dir = TestDir::new("modes-lazy-unlinked");
    let program = program(64);
    let (original, image, expected) = dumped(&dir, &program);
    let mine = copy_image(&image, &dir, "mine.img");
    let mut lazy = dir.restore(&program, "lazy", &mine, &[LAZY]);
    lazy.wait_for_step(7);
    assert!(maps_image(&lazy, &mine), "{}", lazy.describe());
    fs::remove_file(&mine).unwrap();
    finish_restored(&mut lazy, &original, &expected);
}

#[test]
fn unknown_restore_mode_is_refused() {
    let dir = TestDir::new("modes-unknown");
    let program = program(4);
    let (_original, image, _) = dumped(&dir, &program);
    let mut p = dir.restore(
        &program,
        "fast",
        &image,
        &[("MIGRATE_RESTORE_MODE", "fast")],
    );
    let status = p.wait();
    assert_ne!(status.code(), Some(0), "{}", p.describe());
    assert!(
        p.stderr().contains("MIGRATE_RESTORE_MODE=fast"),
        "{}",
        p.describe()
    );
}
