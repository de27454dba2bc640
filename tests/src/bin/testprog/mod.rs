//! What the Rust test programs share, as `programs/testprog.h` is for the
//! C ones: the output protocol (`start`, then one line at a time, each out
//! as soon as it is printed), pacing that `MIGRATE_TEST_NOSLEEP` turns off,
//! and a mixer.

use std::io::Write;
use std::time::Duration;

/// Whether `MIGRATE_TEST_NOSLEEP` is set (pacing sleeps are left out,
/// which changes no output).
pub fn nosleep() -> bool {
    std::env::var_os("MIGRATE_TEST_NOSLEEP").is_some()
}

/// Sleeps `d` unless `nosleep`.
pub fn pace(nosleep: bool, d: Duration) {
    if !nosleep {
        std::thread::sleep(d);
    }
}

/// Prints `start` and returns what prints each further line (flushed at
/// once) on the locked stdout.
pub fn start() -> impl FnMut(String) {
    let mut out = std::io::stdout().lock();
    let mut line = move |s: String| {
        writeln!(out, "{s}").expect("stdout");
        out.flush().expect("stdout");
    };
    line("start".into());
    line
}

pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}
