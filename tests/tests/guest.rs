//! Another kernel and another CPU: Debian's 6.1 kernel under QEMU's
//! software emulation (`tests/guest/`, `migrate_tests::guest`).
//!
//! Programs started for a CPU baseline both sides meet (`MIGRATE_CPU=
//! x86-64-v3`) and dumped on this kernel (6.18) finish in the guest, and
//! one dumped in the guest finishes here, with exact output: the restore
//! proxies the other kernel's vDSO (`shim/src/restore/vdso/`), keeps the
//! boot clocks going in a time namespace (`shim/src/restore/clocks.rs`)
//! and rewrites every thread's signal frame to the other CPU's xsave
//! layout (`shim/src/cpu.rs`; the guest's frames carry MPX and PKRU
//! state, this machine's AVX-512 state). What cannot cross is refused
//! before teardown, named in words.

use std::path::Path;

use migrate_tests::guest::Guest;
use migrate_tests::*;

/// A baseline this machine and the guest's CPU (QEMU's `max`) both meet.
const BASELINE: &str = "x86-64-v3";

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

fn shell_words(p: &Program) -> String {
    p.command_line()
        .iter()
        .map(|w| w.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" ")
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

/// A C program, Debian's python3 and a threaded program, started for the
/// baseline and dumped here, finish in the guest with exact output; an
/// image of a program started for this whole CPU is refused there,
/// naming what the guest lacks.
#[test]
fn programs_dumped_here_finish_in_the_6_1_guest() {
    let test = "programs_dumped_here_finish_in_the_6_1_guest";
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("guest-here-there");
    let programs = [Program::c(), Program::python(), Program::cthreads(3)];
    let mut originals = Vec::new();
    let mut cmd = String::new();
    for (n, prog) in programs.iter().enumerate() {
        let image = dir.join(&format!("{n}.img"));
        let mut p = dir.spawn(
            prog,
            &format!("run-{n}"),
            &[
                ("MIGRATE_IMAGE", image.to_str().unwrap()),
                ("MIGRATE_CPU", BASELINE),
            ],
        );
        p.wait_for_step(3);
        p.dump_signal();
        p.wait_for_image(&image, false);
        p.kill();
        cmd.push_str(&format!(
            "MIGRATE_LOG=info MIGRATE_RESTORE={img} LD_PRELOAD={lib} {prog} > out-{n} 2> err-{n}; echo $? > status-{n}\n",
            img = image.display(),
            lib = shim_path().display(),
            prog = shell_words(prog),
        ));
        originals.push(p);
    }
    // Started for this whole CPU: refused there.
    let native = dir.join("native.img");
    let c = Program::c();
    let mut p = dir.spawn(&c, "native", &[("MIGRATE_IMAGE", native.to_str().unwrap())]);
    p.wait_for_step(3);
    p.dump_signal();
    p.wait_for_image(&native, false);
    p.kill();
    cmd.push_str(&format!(
        "MIGRATE_RESTORE={img} LD_PRELOAD={lib} {prog} 2> err-native; echo $? > status-native\n",
        img = native.display(),
        lib = shim_path().display(),
        prog = shell_words(&c),
    ));

    let run = guest.run(dir.path(), &cmd);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    for (n, (prog, p)) in programs.iter().zip(&originals).enumerate() {
        let context = format!(
            "{} restored in {}: status {}stderr:\n{}\n{}",
            prog.name,
            guest.kernel,
            read(&format!("status-{n}")),
            read(&format!("err-{n}")),
            p.describe()
        );
        assert_eq!(read(&format!("status-{n}")), "0\n", "{context}");
        assert!(
            read(&format!("err-{n}")).contains("the image comes from another kernel"),
            "the vDSO was not proxied\n{context}"
        );
        check_restored(
            &reference(prog),
            &p.stdout_lines(),
            &lines(&read(&format!("out-{n}"))),
            &context,
        );
    }
    assert_eq!(
        read("status-native"),
        format!("{}\n", exit::CANNOT_RESTORE),
        "{}",
        run.stderr
    );
    check_refusal(&read("err-native"), &native);
}

/// A C program, Debian's python3 and a threaded program, started for the
/// baseline in the guest and dumped there, finish here with exact output
/// (their frames' MPX and PKRU state, which this CPU lacks, dropped: both
/// in their init or unused states).
#[test]
fn programs_dumped_in_the_6_1_guest_finish_here() {
    let test = "programs_dumped_in_the_6_1_guest_finish_here";
    let Some(guest) = Guest::get(test) else {
        return;
    };
    let dir = TestDir::new("guest-there-here");
    let programs = [Program::c(), Program::python(), Program::cthreads(3)];
    let mut cmd = String::new();
    for (n, prog) in programs.iter().enumerate() {
        cmd.push_str(&format!(
            "LD_PRELOAD={lib} MIGRATE_CPU={BASELINE} MIGRATE_IMAGE={img} MIGRATE_AFTER_DUMP=exit {prog} > run-{n}.out 2> run-{n}.err &
             pid=$!
             until grep -q '^step *3' run-{n}.out 2>/dev/null; do sleep 0.05; done
             kill -USR2 $pid; wait $pid; echo dumped $?\n",
            img = dir.join(&format!("{n}.img")).display(),
            lib = shim_path().display(),
            prog = shell_words(prog),
        ));
    }
    cmd.push_str("uname -r\n");
    let run = guest.run(dir.path(), &cmd);
    assert_eq!(
        run.stdout,
        format!("dumped 0\ndumped 0\ndumped 0\n{}\n", guest.kernel),
        "{}",
        run.stderr
    );
    for (n, prog) in programs.iter().enumerate() {
        let image = dir.join(&format!("{n}.img"));
        dumpfmt::verify(&image).expect("the guest's image verifies");
        let original = std::fs::read_to_string(dir.join(&format!("run-{n}.out"))).unwrap();
        let mut r = dir.restore(
            prog,
            &format!("restore-{n}"),
            &image,
            &[("MIGRATE_LOG", "info")],
        );
        let status = r.wait();
        let context = r.describe();
        assert!(status.success(), "{context}");
        assert!(
            r.stderr().contains("the image comes from another kernel"),
            "the vDSO was not proxied\n{context}"
        );
        check_restored(
            &reference(prog),
            &lines(&original),
            &r.stdout_lines(),
            &context,
        );
    }
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
