//! Another kernel and another CPU: Debian's 6.1 kernel under QEMU's
//! software emulation (`tests/guest/`, `migrate_tests::guest`).
//!
//! A program dumped on this kernel (6.18) finishes in the guest, and one
//! dumped in the guest finishes here, with exact output: the restore
//! proxies the other kernel's vDSO (`shim/src/restore/vdso/`) and keeps
//! the boot clocks going in a time namespace (`shim/src/restore/clocks.rs`).
//!
//! The CPUs differ too, and images do not carry a CPU baseline yet (issue
//! 10, the lead's part). Until they do, these tests work around it, and
//! say so here:
//! - the program dumped here starts with glibc's code paths for what the
//!   guest lacks switched off ([`BASELINE`]) and binds every symbol at
//!   start (`LD_BIND_NOW=1`: lazy binding saves registers with `XSAVEC`);
//! - the guest dumping for this machine runs on QEMU's `max,-pku,-mpx`
//!   (its signal frames would otherwise carry PKRU state this CPU cannot
//!   load: `rt_sigreturn` fails);
//! - both restores arm `MIGRATE_FAULT=skip-cpu-check` (tests only), as the
//!   images' recorded features are not all present on the other side.

use migrate_tests::guest::Guest;
use migrate_tests::*;

/// What the guest's CPU lacks, switched off in glibc (RTM: its string
/// functions' `xtest`).
const BASELINE: &str =
    "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-XSAVEC,-RTM";

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

/// The one refusal line of a restore, checked to name the CPU features
/// missing in words, never as masks.
fn check_cpu_refusal(stderr: &str, image: &std::path::Path) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    let prefix = format!("migrate: restore {}: ", image.display());
    assert!(lines[0].starts_with(&prefix), "{stderr}");
    let names = lines[0]
        .split("this CPU lacks features the image uses: ")
        .nth(1)
        .unwrap_or_else(|| panic!("not a CPU refusal: {stderr}"));
    assert!(
        !names.contains("0x") && !names.contains('['),
        "masks: {stderr}"
    );
    for name in names.split(", ") {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
            "not a feature name: {name:?} in {stderr}"
        );
    }
}

#[test]
fn c_program_dumped_here_finishes_in_the_6_1_guest() {
    let test = "c_program_dumped_here_finishes_in_the_6_1_guest";
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("guest-here-there");
    let image = dir.join("cprog.img");
    let prog = Program::c();
    let expected = reference(&prog);
    let mut p = dir.spawn(
        &prog,
        "run",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("GLIBC_TUNABLES", BASELINE),
            ("LD_BIND_NOW", "1"),
        ],
    );
    p.wait_for_step(3);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();

    let exe = prog.argv[0].to_str().unwrap();
    // Refused before teardown as it is (the image records this CPU's
    // features), then restored with the CPU check skipped.
    let cmd = format!(
        "MIGRATE_RESTORE={img} LD_PRELOAD={lib} {exe}; echo refused $? >&2
         MIGRATE_FAULT=skip-cpu-check MIGRATE_LOG=info MIGRATE_RESTORE={img} LD_PRELOAD={lib} {exe}; echo status $? >&2",
        img = image.display(),
        lib = shim_path().display(),
    );
    let run = guest.run(dir.path(), &cmd);
    let context = format!("{}\nin {}:\n{}", p.describe(), guest.kernel, run.stderr);
    let (refusal, rest) = run
        .stderr
        .split_once("refused ")
        .unwrap_or_else(|| panic!("no refusal status\n{context}"));
    assert!(
        rest.starts_with(&format!("{}\n", exit::CANNOT_RESTORE)),
        "{context}"
    );
    check_cpu_refusal(refusal, &image);
    assert!(
        run.stderr.ends_with("status 0\n"),
        "the restore failed in the guest\n{context}"
    );
    assert!(
        run.stderr.contains("the image comes from another kernel"),
        "the vDSO was not proxied\n{context}"
    );
    check_restored(&expected, &p.stdout_lines(), &lines(&run.stdout), &context);
}

#[test]
fn c_program_dumped_in_the_6_1_guest_finishes_here() {
    let test = "c_program_dumped_in_the_6_1_guest_finishes_here";
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("guest-there-here");
    let image = dir.join("cprog.img");
    let prog = Program::c();
    let expected = reference(&prog);
    let exe = prog.argv[0].to_str().unwrap();
    // In the guest: run, wait for step 3, dump (the program exits once the
    // image is complete).
    let cmd = format!(
        "LD_PRELOAD={lib} MIGRATE_IMAGE={img} MIGRATE_AFTER_DUMP=exit {exe} > run.out 2> run.err &
         pid=$!
         until grep -q '^step *3' run.out 2>/dev/null; do sleep 0.05; done
         kill -USR2 $pid; wait $pid; echo dumped $?; uname -r",
        img = image.display(),
        lib = shim_path().display(),
    );
    let run = guest.run_on(dir.path(), &cmd, "max,-pku,-mpx");
    assert_eq!(
        run.stdout,
        format!("dumped 0\n{}\n", guest.kernel),
        "{}",
        run.stderr
    );
    dumpfmt::verify(&image).expect("the guest's image verifies");
    let original = std::fs::read_to_string(dir.join("run.out")).unwrap();

    // Here (the restore check compares a dump of the restored process
    // with the image, the kernel's mappings as a proxy leaves them).
    let mut r = dir.restore(
        &prog,
        "restore",
        &image,
        &[("MIGRATE_FAULT", "skip-cpu-check"), ("MIGRATE_LOG", "info")],
    );
    let status = r.wait();
    let context = r.describe();
    assert!(status.success(), "{context}");
    assert!(
        r.stderr().contains("the image comes from another kernel"),
        "the vDSO was not proxied\n{context}"
    );
    check_restored(&expected, &lines(&original), &r.stdout_lines(), &context);
}
