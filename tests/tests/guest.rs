//! Another kernel and another CPU: Debian's 6.1 kernel under QEMU's
//! software emulation (`tests/guest/`, `migrate_tests::guest`).
//!
//! Until the restore learns to take another kernel's vDSO, an image
//! crosses between this machine and the guest in neither direction: these
//! tests hold the restore to refusing *before teardown*, with one line that
//! names what differs in words, and the program never running on. The CPU
//! side is tested for real: a baseline the guest lacks, and vector state
//! the guest's CPU cannot hold, are refused there naming the features.

use std::path::Path;

use migrate_tests::guest::Guest;
use migrate_tests::*;

/// Refusal to take a CPU's or kernel's image (as the restore exits).
const REFUSED: i32 = exit::CANNOT_RESTORE;

fn migrate_cmd() -> std::path::PathBuf {
    shim_path().with_file_name("migrate")
}

/// The one refusal line of a restore, checked to say what differs in
/// words: CPU features by name, never as masks.
fn check_refusal(stderr: &str, image: &Path) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    let prefix = format!("migrate: restore {}: ", image.display());
    assert!(lines[0].starts_with(&prefix), "{stderr}");
    if let Some(names) = lines[0]
        .split("this CPU lacks ")
        .nth(1)
        .and_then(|r| r.rsplit(": ").next())
    {
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
    } else {
        assert!(lines[0].contains("vDSO"), "{stderr}");
    }
}

#[test]
fn image_from_here_is_refused_in_the_6_1_guest_before_teardown() {
    let test = "image_from_here_is_refused_in_the_6_1_guest_before_teardown";
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("guest-here-there");
    let image = dir.join("cprog.img");
    let prog = Program::c();
    let mut p = dir.spawn(&prog, "run", &[("MIGRATE_IMAGE", image.to_str().unwrap())]);
    p.wait_for_step(3);
    p.dump_signal();
    p.wait_for_image(&image, false);
    p.kill();

    let exe = prog.argv[0].to_str().unwrap();
    let cmd = format!(
        "MIGRATE_RESTORE={img} LD_PRELOAD={lib} {exe}; echo status $? >&2; {migrate} verify {img}",
        img = image.display(),
        lib = shim_path().display(),
        migrate = migrate_cmd().display(),
    );
    let run = guest.run(dir.path(), &cmd);
    assert!(run.stdout.is_empty(), "the program ran on:\n{}", run.stdout);
    let (restore, rest) = run
        .stderr
        .split_once("status ")
        .unwrap_or_else(|| panic!("no restore status in the guest:\n{}", run.stderr));
    assert!(rest.starts_with(&format!("{REFUSED}\n")), "{}", run.stderr);
    check_refusal(restore, &image);
    // verify names every problem, the kernel's vDSO among them.
    assert_ne!(
        run.status, 0,
        "verify passed in {}:\n{}",
        guest.kernel, run.stderr
    );
    assert!(rest.contains("vDSO differs"), "{}", run.stderr);
}

#[test]
fn image_from_the_6_1_guest_is_refused_here_before_teardown() {
    let test = "image_from_the_6_1_guest_is_refused_here_before_teardown";
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("guest-there-here");
    let image = dir.join("cprog.img");
    let prog = Program::c();
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
    let run = guest.run(dir.path(), &cmd);
    assert_eq!(
        run.stdout,
        format!("dumped 0\n{}\n", guest.kernel),
        "{}",
        run.stderr
    );
    dumpfmt::verify(&image).expect("the guest's image verifies");

    let mut r = dir.restore(&prog, "restore", &image, &[]);
    let status = r.wait();
    assert_eq!(status.code(), Some(REFUSED), "{}", r.describe());
    assert!(
        r.stdout_raw().is_empty(),
        "the program ran on: {}",
        r.describe()
    );
    check_refusal(&r.stderr(), &image);
}

/// An image whose CPU baseline the guest lacks, and one whose thread held
/// AVX-512 state (its program broke the baseline's promise), are refused
/// there before teardown, naming the features; a program started there
/// for a baseline the guest lacks is refused at once.
#[test]
fn cpu_state_the_guest_lacks_is_refused_there_by_name() {
    let test = "cpu_state_the_guest_lacks_is_refused_there_by_name";
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    if !["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]
        .iter()
        .all(|f| has(f))
    {
        skip(test, "a CPU with AVX-512 (x86-64-v4)");
        return;
    }
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("guest-cpu");
    let dump = |program: &Program, label: &str, level: &str| {
        let image = dir.join(&format!("{label}.img"));
        let mut p = dir.spawn(
            program,
            label,
            &[
                ("MIGRATE_CPU", level),
                ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ],
        );
        p.wait_for_step(2);
        p.dump_signal();
        p.wait_for_image(&image, false);
        p.kill();
        image
    };
    let avx = Program::vector("avx");
    let zmm = Program::vector("avx512");
    let v4_image = dump(&avx, "v4", "x86-64-v4");
    let zmm_image = dump(&zmm, "zmm", "x86-64-v3");
    let exe = avx.argv[0].to_str().unwrap();
    let lib = shim_path();
    let cmd = format!(
        "for img in {v4} {zmm}; do MIGRATE_RESTORE=$img LD_PRELOAD={lib} {exe} avx; echo status $? >&2; done
         MIGRATE_CPU=x86-64-v4 LD_PRELOAD={lib} {exe} avx; echo status $? >&2",
        v4 = v4_image.display(),
        zmm = zmm_image.display(),
        lib = lib.display(),
    );
    let run = guest.run(dir.path(), &cmd);
    assert!(run.stdout.is_empty(), "a program ran:\n{}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let avx512 = "avx512f, avx512dq, avx512cd, avx512bw, avx512vl";
    let want = [
        format!(
            "migrate: restore {}: this CPU lacks what the image's CPU baseline x86-64-v4 needs: {avx512}",
            v4_image.display()
        ),
        format!("status {}", exit::CANNOT_RESTORE),
        format!("migrate: restore {}: thread ", zmm_image.display()),
        format!("status {}", exit::CANNOT_RESTORE),
        format!("migrate: MIGRATE_CPU=x86-64-v4: this CPU lacks {avx512}"),
        "status 64".to_string(),
    ];
    assert_eq!(lines.len(), want.len(), "{}", run.stderr);
    for (got, want) in lines.iter().zip(&want) {
        assert!(
            got.starts_with(want.as_str()),
            "{got:?} is not {want:?}\n{}",
            run.stderr
        );
    }
    assert!(
        lines[2].ends_with("was using CPU state this CPU lacks: avx512_hi16_zmm_state"),
        "{}",
        run.stderr
    );
}
