//! Issue 12, process attributes: `prctl` state (THP disable, dumpable,
//! no_new_privs, child subreaper, parent-death signal and timer slack per
//! thread, thread names), `oom_score_adj` and per-mapping `madvise` and
//! `mlock` state come back exactly; an `oom_score_adj` the restore cannot
//! give back refuses the restore with one line. The program
//! (`programs/cprocattrs.c`) prints the state it reads back at every step
//! and checks behaviour at the end; the output must equal an uninterrupted
//! run's, and the restore check compares a second dump with the first.

use migrate_tests::*;

/// Dumps `cprocattrs MODE` at step 10, kills it, restores it: the output
/// must equal an uninterrupted run's, with nothing on stderr.
fn roundtrip(test: &str, mode: &str) -> DumpRestore {
    let (_dir, _work, r) = mode_roundtrip(test, |m, _| Program::proc_attrs(m), mode, None, 10);
    r
}

/// Every prctl attribute and oom_score_adj, set by the program to values
/// other than a fresh process's, read back the same after the restore; the
/// child subreaper flag still makes an orphaned grandchild this process's
/// child.
#[test]
fn prctl_state_and_oom_score_adj() {
    roundtrip("procattrs-prctl", "prctl");
}

/// Areas with each `madvise` advice that `/proc/self/smaps` shows
/// (DONTFORK, DONTDUMP, WIPEONFORK, HUGEPAGE, NOHUGEPAGE, MERGEABLE), one
/// locked and one locked on fault, keep their flags and bytes; a fork of
/// the restored process does not get the DONTFORK area and gets the
/// WIPEONFORK one zeroed.
#[test]
fn madvise_and_mlock_state() {
    roundtrip("procattrs-madvise", "madvise");
}

/// Whether `choom` can lower oom_score_adj below 0 here (it needs
/// `CAP_SYS_RESOURCE` of the initial user namespace, which the root of a
/// container may lack).
fn can_lower_oom_score_adj() -> bool {
    std::process::Command::new("choom")
        .args(["-n", "-500", "--", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// An `oom_score_adj` below what the relaunch may set (-500, from a
/// privileged `choom`; the restore's own user namespace gives no
/// `CAP_SYS_RESOURCE`) refuses the restore with one line naming both
/// values, before anything of the program runs; the image stays, and a
/// relaunch that has the value already restores it.
#[test]
fn oom_score_adj_that_cannot_be_set_back_refuses_the_restore() {
    if !can_lower_oom_score_adj() {
        skip(
            "oom_score_adj_that_cannot_be_set_back_refuses_the_restore",
            "CAP_SYS_RESOURCE (choom -n -500)",
        );
        return;
    }
    let dir = TestDir::new("procattrs-oom");
    let program = Program::proc_attrs("oom");
    let low = program.wrapped(&["choom", "-n", "-500", "--"]);
    let expected = reference(&low);
    let image = dir.join("oom.img");
    let mut original = dir.spawn(
        &low,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    original.wait_for_step(10);
    original.dump_signal();
    original.wait_for_image(&image, false);
    original.kill();

    let mut refused = dir.restore(&program, "refused", &image, &[]);
    let status = refused.wait_unless_output();
    let context = refused.describe();
    assert_eq!(status.code(), Some(70), "{context}");
    assert_eq!(refused.stdout_raw(), "", "{context}");
    let err = refused.stderr();
    assert_eq!(err.lines().count(), 1, "{context}");
    assert!(
        err.contains("cannot set oom_score_adj back to -500: it is 0 here"),
        "{context}"
    );

    let mut restored = dir.restore(&low, "restored", &image, &[]);
    finish_restored(&mut restored, &original, &expected);
}

/// `setpriv` as nobody (uid and gid 65534, no supplementary groups).
const NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--",
];

/// Whether a root `choom` here sets the `oom_score_adj_min` of what it
/// runs (it does with `CAP_SYS_RESOURCE`): then nobody under `choom -n 500`
/// cannot lower its oom_score_adj to 100.
fn choom_sets_the_minimum() -> bool {
    let mut wrapper = vec!["choom", "-n", "500", "--"];
    wrapper.extend(NOBODY);
    wrapper.extend(["sh", "-c", "echo 100 > /proc/self/oom_score_adj"]);
    let out = std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .output()
        .expect("run choom");
    !out.status.success()
}

/// An `oom_score_adj` the relaunch cannot set back refuses the restore
/// with one line naming both values and exit 70, before anything of the
/// program runs; the image stays, and a restore that has to raise the
/// value (from 0 to the image's 100) brings the program back exactly.
///
/// Everything runs as nobody. Where a root writer can set the minimum an
/// unprivileged process may lower its value to (`CAP_SYS_RESOURCE`), the
/// refused restore runs under `choom -n 500` (minimum 500) and the image
/// holds 100. Where it cannot (a container's root without
/// `CAP_SYS_RESOURCE`: the minimum is always 0), the image is made to hold
/// -500, what a program lowered by a privileged writer elsewhere would
/// have, and a restore under `choom -n 500` that lowers it to 100 works.
#[test]
fn oom_score_adj_below_the_relaunch_minimum_refuses_the_restore() {
    const TEST: &str = "oom_score_adj_below_the_relaunch_minimum_refuses_the_restore";
    if !migrate_tests::skip::is_root() {
        skip(
            TEST,
            "root (to run the program as nobody under a root choom)",
        );
        return;
    }
    let dir = TestDir::new("procattrs-oom-min");
    let program = as_nobody(&dir, &Program::proc_attrs("oom100"));
    let expected = reference(&program);
    let image = dir.join("oom.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    original.wait_for_step(10);
    original.dump_signal();
    original.wait_for_image(&image, false);
    original.kill();

    let mut at_500 = vec!["choom", "-n", "500", "--"];
    at_500.extend(NOBODY);
    let at_500 = program.wrapped(&at_500);
    let minimum_set = choom_sets_the_minimum();
    let (refused_image, refused_program, message) = if minimum_set {
        (
            image.clone(),
            at_500.clone(),
            "cannot set oom_score_adj back to 100: it is 500 here (lowering it needs CAP_SYS_RESOURCE)",
        )
    } else {
        let low = copy_image(&image, &dir, "low.img");
        rewrite_meta(&low, |i| {
            i.minor4.procattrs.process.as_mut().unwrap().oom_score_adj = -500;
        });
        std::os::unix::fs::chown(&low, Some(65534), Some(65534)).unwrap();
        (
            low,
            program.clone(),
            "cannot set oom_score_adj back to -500: it is 0 here (lowering it needs CAP_SYS_RESOURCE)",
        )
    };
    let err = expect_restore_failure(&dir, &refused_program, "refused", &refused_image, 70);
    assert!(err.contains(message), "{err:?} does not say {message:?}");
    verify_image(&refused_image, "the image after the refused restore");

    if !minimum_set {
        // Lowering from 500 to 100 is allowed with a minimum of 0.
        let mut lowered = dir.restore(&at_500, "lowered", &image, &[]);
        finish_restored(&mut lowered, &original, &expected);
    }
    let mut raised = dir.restore(&program, "raised", &image, &[]);
    finish_restored(&mut raised, &original, &expected);
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE)` comes back: the area mapped before
/// the call stays locked, and an area the restored program maps is locked
/// and filled at once (smaps `Locked:` all of it before it is touched).
/// The dump itself maps its memory unlocked (a 1 GiB arena would otherwise
/// be filled).
#[test]
fn mlockall_future() {
    roundtrip("procattrs-mlockall", "mlockall");
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)` comes back: a new
/// area is locked on fault (`lo,lf`, 0 kB locked until touched, then the
/// touched pages).
#[test]
fn mlockall_future_onfault() {
    roundtrip("procattrs-mlockall-onfault", "mlockall-onfault");
}

/// An image with more locked memory (two locked areas of 16 KiB) than the
/// relaunch's `RLIMIT_MEMLOCK` allows (16 KiB, the image's own 8 MiB hard
/// limit cannot be set back under it) refuses the restore before
/// anything of the program runs, with one line naming both, instead of
/// failing in the restorer's `mlock` after the teardown; the image stays
/// and restores where the limit allows it.
#[test]
fn locked_memory_over_the_relaunch_limit_refuses_the_restore() {
    let dir = TestDir::new("procattrs-memlock");
    let program = Program::proc_attrs("madvise");
    let expected = reference(&program);
    let image = dir.join("madvise.img");
    let mut original = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    original.wait_for_step(10);
    original.dump_signal();
    original.wait_for_image(&image, false);
    original.kill();
    let low = program.wrapped(&["prlimit", "--memlock=16384:16384", "--"]);
    let err = expect_restore_failure(&dir, &low, "refused", &image, 70);
    assert!(
        err.contains("the image has 32 KiB of locked memory (mlock, mlockall) and RLIMIT_MEMLOCK here allows 16 KiB"),
        "{err:?}"
    );
    verify_image(&image, "the image after the refused restore");
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    finish_restored(&mut restored, &original, &expected);
}
