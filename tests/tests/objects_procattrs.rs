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
