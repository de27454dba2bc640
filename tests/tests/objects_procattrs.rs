//! Issue 12, process attributes: `prctl` state (THP disable, dumpable,
//! no_new_privs, child subreaper, parent-death signal and timer slack per
//! thread, thread names) and `oom_score_adj` come back exactly; a value the
//! restore cannot give back refuses the restore with one line. The program
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
