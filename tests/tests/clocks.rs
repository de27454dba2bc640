//! The boot clocks on restore (`shim/src/restore/clocks.rs`): a process
//! whose `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` read more than this
//! machine's (dumped on another boot; here, in a time namespace whose
//! clocks run a day ahead) continues from its values in a time namespace
//! of the restore's; the 6.1 guest (`guest.rs`) crosses real boots.

use migrate_tests::*;

/// `unshare` making a user namespace (the current user mapped to itself)
/// and a time namespace whose boot clocks are `ahead` seconds ahead,
/// which the program it execs enters.
fn ahead(secs: u64) -> Vec<String> {
    let s = secs.to_string();
    [
        "unshare",
        "-U",
        "-c",
        "-T",
        "--monotonic",
        &s,
        "--boottime",
        &s,
    ]
    .map(String::from)
    .to_vec()
}

/// The program reads `CLOCK_MONOTONIC` every step and prints `mono=ok`
/// only if it did not go back: dumped a day ahead of this machine's
/// clocks, restored here without a wrapper, it finishes with the output
/// of an uninterrupted run.
#[test]
fn clocks_ahead_of_this_boot_continue_in_a_time_namespace() {
    let dir = TestDir::new("clocks-ahead");
    let wrapper = ahead(86_400);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    if let Err(e) = wrapper_works(&wrapper) {
        skip::skip(
            "clocks_ahead_of_this_boot_continue_in_a_time_namespace",
            &format!("time namespaces ({e})"),
        );
        return;
    }
    let prog = Program::c();
    let expected = reference(&prog);
    let image = dir.join("ahead.img");
    let mut original = dir.spawn(
        &prog.wrapped(&wrapper),
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    original.wait_for_step(3);
    original.dump_signal();
    original.wait_for_image(&image, false);
    original.kill();
    let recorded = image_meta(&image).image.minor2.monotonic_ns;
    let here = monotonic();
    assert!(
        recorded > here.as_nanos() as u64 + 80_000 * 1_000_000_000,
        "the image's clock ({recorded} ns) is not a day ahead of this one's ({here:?})"
    );
    let mut restored = dir.restore(&prog, "restored", &image, &[]);
    finish_restored(&mut restored, &original, &expected);
}

/// `CLOCK_MONOTONIC` here.
fn monotonic() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
