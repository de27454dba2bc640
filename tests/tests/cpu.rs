//! CPU baselines (`MIGRATE_CPU`, `migrate run --cpu`) and what a restore
//! needs of the CPU: the baseline's features when the program was started
//! for one, else the dumping CPU's features that programs use; never the
//! kernel-only ones; named in words when missing. (Restores on a CPU that
//! really lacks features are in `guest.rs`.)

use std::fs;

use migrate_tests::*;

const V3: &str = "x86-64-v3";

fn environ(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn v3_tunables() -> String {
    format!(
        "GLIBC_TUNABLES={}",
        dumpfmt::level(V3).unwrap().tunables(None).unwrap()
    )
}

/// Feature names in a refusal line, checked to be words (no masks).
fn names_in(stderr: &str, after: &str) -> Vec<String> {
    let list = stderr
        .split(after)
        .nth(1)
        .unwrap_or_else(|| panic!("no `{after}` in {stderr:?}"));
    let names: Vec<String> = list.trim_end().split(", ").map(str::to_string).collect();
    for n in &names {
        assert!(
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
            "not a feature name: {n:?} in {stderr:?}"
        );
    }
    names
}

#[test]
fn a_baseline_holds_glibc_back_and_is_all_a_restore_needs() {
    let dir = TestDir::new("cpu-baseline");
    let program = Program::vector("avx");
    let expected = reference(&program);
    let img = dir.join("v3.img");
    let mut p = dir.spawn(
        &program,
        "run",
        &[
            ("MIGRATE_CPU", V3),
            ("MIGRATE_IMAGE", img.to_str().unwrap()),
        ],
    );
    p.wait_for_step(3);
    // The library ran the program again, glibc's tunables set.
    let env = environ(p.pid());
    assert!(env.contains(&v3_tunables()), "{env:?}");
    assert!(
        env.iter().any(|v| v == "MIGRATE_CPU_REEXEC=cvector"),
        "{env:?}"
    );
    p.dump_signal();
    p.wait_for_image(&img, false);
    p.kill();
    let meta = image_meta(&img);
    let b = meta
        .image
        .minor2
        .baseline
        .as_ref()
        .expect("baseline recorded");
    assert_eq!(b.name, V3);
    assert_eq!(meta.image.minor2.fpstate.len(), meta.image.threads.len());
    assert!(meta.image.minor2.fpstate.iter().all(|&f| f != 0));
    drop(meta);
    // ymm15 was live in the frame: it comes back.
    restore_and_check(&dir, &program, "restore", &img, &p, &expected);

    // Recorded on a CPU with every feature: still only the baseline counts.
    let rich = copy_image(&img, &dir, "rich.img");
    rewrite_meta(&rich, |i| {
        i.cpu.cpuid = [u32::MAX; 5];
        i.minor2.cpu_ext = [u32::MAX; 3];
    });
    restore_and_check(&dir, &program, "restore-rich", &rich, &p, &expected);

    // The same without a baseline needs what programs could use of it,
    // named; never the features only a kernel uses.
    let native = copy_image(&rich, &dir, "native.img");
    rewrite_meta(&native, |i| i.minor2.baseline = None);
    let err = expect_restore_failure(
        &dir,
        &program,
        "restore-native",
        &native,
        exit::CANNOT_RESTORE,
    );
    let names = names_in(&err, "to move it between CPUs): ");
    for kernel_only in [
        "vmx",
        "pcid",
        "md_clear",
        "tsc_deadline_timer",
        "x2apic",
        "xsaves",
    ] {
        assert!(
            !names.iter().any(|n| n == kernel_only),
            "{kernel_only} in {err}"
        );
    }

    // A baseline this CPU does not meet.
    let beyond = copy_image(&img, &dir, "beyond.img");
    rewrite_meta(&beyond, |i| {
        if let Some(b) = i.minor2.baseline.as_mut() {
            b.isa.words = [u32::MAX; 8];
        }
    });
    let err = expect_restore_failure(
        &dir,
        &program,
        "restore-beyond",
        &beyond,
        exit::CANNOT_RESTORE,
    );
    names_in(&err, &format!("what the image's CPU baseline {V3} needs: "));
}

#[test]
fn migrate_run_cpu_sets_the_tunables_itself() {
    let dir = TestDir::new("cpu-run");
    let migrate = shim_path().with_file_name("migrate");
    let exe = env!("MIGRATE_TEST_CVECTOR");
    let img = dir.join("v3.img");
    let argv: Vec<&std::ffi::OsStr> = [
        migrate.as_os_str(),
        "run".as_ref(),
        "--cpu".as_ref(),
        V3.as_ref(),
        "--image".as_ref(),
        img.as_os_str(),
        "--".as_ref(),
        exe.as_ref(),
        "avx".as_ref(),
    ]
    .to_vec();
    let program = Program::command_of("migrate-run-cvector", &argv);
    let mut p = dir.spawn_plain(&program, "run", &[]);
    p.wait_for_step(2);
    let env = environ(p.pid());
    assert!(env.contains(&v3_tunables()), "{env:?}");
    assert!(env.iter().any(|v| v == "MIGRATE_CPU=x86-64-v3"), "{env:?}");
    // Nothing for the library to redo: no second exec.
    assert!(
        !env.iter().any(|v| v.starts_with("MIGRATE_CPU_REEXEC")),
        "{env:?}"
    );
    p.dump_signal();
    p.wait_for_image(&img, false);
    p.kill();
    assert_eq!(image_meta(&img).image.minor2.baseline.unwrap().name, V3);
}

#[test]
fn unknown_levels_are_refused_before_the_program_runs() {
    let dir = TestDir::new("cpu-bad");
    let mut p = dir.spawn(
        &Program::vector("avx"),
        "bad",
        &[("MIGRATE_CPU", "x86-64-v9")],
    );
    let status = p.wait_unless_output();
    assert_eq!(status.code(), Some(64), "{}", p.describe());
    assert!(
        p.stderr()
            .starts_with("migrate: MIGRATE_CPU=x86-64-v9: expected native, x86-64"),
        "{}",
        p.describe()
    );
    let migrate = shim_path().with_file_name("migrate");
    let out = std::process::Command::new(&migrate)
        .args(["run", "--cpu", "pentium", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// The library's re-exec gives the program exactly the arguments it was
/// started with (empty ones included, in place) and its name.
#[test]
fn the_reexec_keeps_every_argument() {
    let dir = TestDir::new("cpu-argv");
    let program = Program::vector("avx").with_args(&["", "two words", ""]);
    let mut p = dir.spawn(&program, "run", &[("MIGRATE_CPU", V3)]);
    p.wait_for_step(2);
    assert!(environ(p.pid()).contains(&v3_tunables()));
    let cmdline = fs::read(format!("/proc/{}/cmdline", p.pid())).unwrap();
    // Its name too (`ps`, `pgrep`, thread names), not `exe`.
    let comm = fs::read_to_string(format!("/proc/{}/comm", p.pid())).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    p.kill();
    assert_eq!(
        &args[1..],
        [&b"avx"[..], b"", b"two words", b"", b""],
        "{:?}",
        String::from_utf8_lossy(&cmdline)
    );
    assert_eq!(comm, "cvector\n");
}

/// A thread with live AMX tile data (the process asked the kernel for
/// AMX; a restore does not ask again, so this kernel's frames leave the
/// tiles out) is refused before teardown, naming the state, rather than
/// killed after it.
#[test]
fn live_amx_state_is_refused_before_teardown() {
    let dir = TestDir::new("cpu-amx");
    let program = Program::vector("amx");
    let img = dir.join("amx.img");
    let mut p = dir.spawn(&program, "run", &[("MIGRATE_IMAGE", img.to_str().unwrap())]);
    let first = p.wait_for_line("start or no amx", |l| l == "start" || l == "no amx");
    if p.stdout_lines()[first] == "no amx" {
        skip(
            "live_amx_state_is_refused_before_teardown",
            "a CPU and kernel with AMX",
        );
        return;
    }
    p.wait_for_step(2);
    p.dump_signal();
    p.wait_for_image(&img, false);
    p.kill();
    let err = expect_restore_failure(&dir, &program, "restore", &img, exit::CANNOT_RESTORE);
    assert!(err.contains("amx_tiledata_state"), "{err}");
}

/// A thread dumped while running a signal handler: the state the handler
/// interrupted lies in an older signal frame, which the restore does not
/// rewrite; where this kernel would not take it back whole (here: tile
/// data, as a restored process has no AMX permission; elsewhere: a frame
/// larger than this kernel's, taken as x87/SSE only), the restore is
/// refused before teardown. Without the check the program ran on and died
/// of SIGILL as the handler returned to its tile instructions.
#[test]
fn state_under_a_running_signal_handler_is_not_silently_lost() {
    let test = "state_under_a_running_signal_handler_is_not_silently_lost";
    let dir = TestDir::new("cpu-amx-nested");
    let program = Program::vector("amx-handler");
    let img = dir.join("nested.img");
    let mut p = dir.spawn(&program, "run", &[("MIGRATE_IMAGE", img.to_str().unwrap())]);
    let first = p.wait_for_line("start or no amx", |l| l == "start" || l == "no amx");
    if p.stdout_lines()[first] == "no amx" {
        skip(test, "a CPU and kernel with AMX");
        return;
    }
    p.wait_for_step(2);
    p.dump_signal();
    p.wait_for_image(&img, false);
    p.kill();
    let err = expect_restore_failure(&dir, &program, "restore", &img, exit::CANNOT_RESTORE);
    assert!(
        err.contains("signal handler") && err.contains("amx_tiledata_state"),
        "{err}"
    );
}

/// An image without frame addresses (as before format 1.2) cannot have its
/// threads' vector state checked one by one: it needs every state
/// component of the CPU it was dumped on, refused by name before teardown.
#[test]
fn an_image_without_frames_needs_its_cpus_state_components() {
    let test = "an_image_without_frames_needs_its_cpus_state_components";
    let flags = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if flags.split_whitespace().any(|w| w == "mpx") {
        skip(test, "a CPU without MPX");
        return;
    }
    let dir = TestDir::new("cpu-noframes");
    let program = Program::vector("avx");
    let expected = reference(&program);
    let img = dir.join("v.img");
    let mut p = dir.spawn(&program, "run", &[("MIGRATE_IMAGE", img.to_str().unwrap())]);
    p.wait_for_step(2);
    p.dump_signal();
    p.wait_for_image(&img, false);
    p.kill();
    let old = copy_image(&img, &dir, "old.img");
    rewrite_meta(&old, |i| i.minor2.fpstate = Default::default());
    restore_and_check(&dir, &program, "restore-old", &old, &p, &expected);
    let mpx = copy_image(&old, &dir, "mpx.img");
    rewrite_meta(&mpx, |i| i.cpu.xcr0 |= 1 << 3);
    let err = expect_restore_failure(&dir, &program, "restore-mpx", &mpx, exit::CANNOT_RESTORE);
    assert!(
        err.contains("to move it between CPUs): mpx_bndregs_state"),
        "{err}"
    );
}
