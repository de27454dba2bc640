//! Dump a running program, kill it, restore the image, and check that the
//! restored process finishes exactly as an uninterrupted run would.

use std::os::unix::fs::PermissionsExt;

use migrate_tests::*;

/// Without a signal, the shim changes nothing a program prints, and says
/// nothing on stderr.
#[test]
fn runs_unchanged_under_shim() {
    let dir = TestDir::new("unchanged");
    for program in [
        Program::c(),
        Program::cloop(),
        rust_program!(),
        Program::python(),
    ] {
        let expected = reference(&program);
        let mut p = dir.spawn(&program, &program.name, &[("MIGRATE_TEST_NOSLEEP", "1")]);
        let got = p.wait_success();
        assert_eq!(
            got,
            expected,
            "{} printed something else under the shim\n{}",
            program.name,
            p.describe()
        );
        assert_eq!(
            p.stderr(),
            "",
            "{} under the shim\n{}",
            program.name,
            p.describe()
        );
    }
}

/// Program 1 (globals, TLS, brk, 256 MiB mmap, recursion, vDSO clock), with
/// the default signal and image path, dumped at step 10.
#[test]
fn c_program_dump_kill_restore() {
    let dir = TestDir::new("c");
    let r = dump_kill_restore(&dir, &Program::c(), 10, &[("MIGRATE_LOG", "info")], &[]);
    let context = describe_all(&[&r.original, &r.restored]);
    // This is the ASLR-on case (aslr_off is the other one).
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/randomize_va_space")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        "2",
        "ASLR is not fully on on this machine"
    );
    assert!(
        r.summary.data_bytes >= 256 << 20,
        "the image holds {} bytes of page data, less than the 256 MiB region\n{context}",
        r.summary.data_bytes
    );
    assert_eq!(r.summary.threads, 1, "{context}");
    let meta = image_meta(&r.image);
    assert_eq!(meta.image.sequence, 1, "first dump's sequence\n{context}");
    assert_eq!(meta.image.pid, r.original.pid() as u32, "{context}");
    let mode = std::fs::metadata(&r.image).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "image mode {mode:o}\n{context}");
    // Only the image is left: no temporary file.
    assert_eq!(
        list_files(dir.path()),
        vec![r.image.file_name().unwrap().to_string_lossy().into_owned()],
        "files in the image directory\n{context}"
    );
    // MIGRATE_LOG=info: one line per dump.
    assert_eq!(
        r.original.stderr().lines().count(),
        1,
        "MIGRATE_LOG=info must print one line per dump\n{context}"
    );
}

/// Program 2 (Rust, HashMap + Vec). The signal is given by number, and the
/// relaunch has other arguments, which must not matter.
#[test]
fn rust_program_dump_kill_restore() {
    let dir = TestDir::new("rust");
    let program = rust_program!();
    let expected = reference(&program);
    let image = dir.join("rust.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_SIGNAL", "10"),
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ],
    );
    original.wait_for_step(12);
    original.dump_with(libc::SIGUSR1);
    original.wait_for_image(&image, false);
    original.kill();
    restore_and_check(
        &dir,
        &program.with_args(&["relaunch", "args"]),
        "restored",
        &image,
        &original,
        &expected,
    );
}

/// Program 3 (Python, 200k-entry dict), run with /usr/bin/python3.
#[test]
fn python_dict_dump_kill_restore() {
    let dir = TestDir::new("python");
    let image = dir.join("py.img");
    dump_kill_restore(
        &dir,
        &Program::python(),
        15,
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
        &[],
    );
}

/// Program 1 under `setarch -R` (no ASLR) for both the run and the restore,
/// dumped while the 20000-frame recursion is in progress.
#[test]
fn aslr_off() {
    let dir = TestDir::new("aslr-off");
    let program = Program::c().wrapped(&["setarch", "x86_64", "-R"]);
    if let Err(e) = wrapper_works(&["setarch", "x86_64", "-R"]) {
        panic!("setarch does not work here: {e}");
    }
    let expected = reference(&program);
    let image = dir.join("norand.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    original.wait_for_step(35);
    assert_ne!(
        personality(original.pid()) & libc::ADDR_NO_RANDOMIZE as u32,
        0,
        "setarch -R did not turn ASLR off\n{}",
        original.describe()
    );
    original.dump_signal();
    original.wait_for_image(&image, false);
    original.kill();
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    restored.wait_for_lines(0);
    if restored.poll_exit().is_none() {
        assert_ne!(
            personality(restored.pid()) & libc::ADDR_NO_RANDOMIZE as u32,
            0,
            "the restored process runs with ASLR\n{}",
            restored.describe()
        );
    }
    let k = finish_restored(&mut restored, &original, &expected);
    assert!(
        restored.stdout_lines()[0].contains("depth=20000"),
        "the dump was meant to catch the recursion (restored at line {k})\n{}",
        describe_all(&[&original, &restored])
    );
}

/// Scenario 1 as an unprivileged user (uid 65534) when the tests run as
/// root; as the current user otherwise.
#[test]
fn unprivileged() {
    let dir = TestDir::new("unprivileged");
    let root = skip::is_root();
    let program = if root {
        as_nobody(&dir, &Program::c())
    } else {
        // It still runs, as the current (unprivileged) user.
        skip("unprivileged (as uid 65534)", "root (to switch users)");
        Program::c()
    };
    let r = dump_kill_restore(&dir, &program, 10, &[], &[]);
    if root {
        use std::os::unix::fs::MetadataExt;
        let md = std::fs::metadata(&r.image).unwrap();
        assert_eq!(
            (md.uid(), md.gid()),
            (65534, 65534),
            "the image should belong to the unprivileged user\n{}",
            describe_all(&[&r.original, &r.restored])
        );
    }
}

/// MIGRATE_AFTER_DUMP=exit: the process exits with status 0 right after the
/// image is complete, and the image restores and finishes right. Also uses
/// a signal given by name.
#[test]
fn exit_after_dump() {
    let dir = TestDir::new("exit-after-dump");
    let program = Program::c();
    let expected = reference(&program);
    let image = dir.join("exit.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_AFTER_DUMP", "exit"),
            ("MIGRATE_SIGNAL", "SIGUSR1"),
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ],
    );
    original.wait_for_step(12);
    original.dump_with(libc::SIGUSR1);
    original.wait_for_image(&image, true);
    let status = original.wait();
    assert!(
        status.success(),
        "with MIGRATE_AFTER_DUMP=exit the process must exit 0 after the dump\n{}",
        original.describe()
    );
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    let k = finish_restored(&mut restored, &original, &expected);
    assert_eq!(
        k,
        original.stdout_lines().len(),
        "the process printed more after the dump, though it should have exited\n{}",
        describe_all(&[&original, &restored])
    );
}

/// The same image restored ten times: with ASLR on, each relaunch puts the
/// shim, the loader and the stack elsewhere, and every restore must work
/// (and leave the image as it was).
#[test]
fn restore_same_image_ten_times() {
    let dir = TestDir::new("ten-restores");
    let program = rust_program!();
    let expected = reference(&program);
    let image = dir.join("rust.img");
    let original = dump_then_exit(&dir, &program, "original", &image, 54);
    let bytes = std::fs::read(&image).unwrap();
    for i in 0..10 {
        let label = format!("restored-{i}");
        restore_and_check(&dir, &program, &label, &image, &original, &expected);
    }
    assert!(
        std::fs::read(&image).unwrap() == bytes,
        "restoring changed the image"
    );
}
