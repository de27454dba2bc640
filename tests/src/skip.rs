//! Tests that cannot run here say so instead of passing silently.

use std::io::Write as _;

/// Reports that `test` did not run (or ran only in part) because it
/// `needs` something this machine or user lacks: `skipped: needs root`.
///
/// The line goes straight to the test binary's stderr, not through
/// `eprintln!`, which the test harness captures and shows only for
/// failures: so a plain `cargo test` (and `make test`) shows every skip,
/// next to the test's `ok`.
pub fn skip(test: &str, needs: &str) {
    let line = format!("{test}: skipped: needs {needs}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether the tests run as root (some need it to make a file of another
/// user, to mount, or to run a program as another user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
