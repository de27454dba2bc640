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
    let original = dump_and_kill(&dir, &prog.wrapped(&wrapper), &image, 3);
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

/// Clocks this kernel cannot offset (an image that says its clocks read
/// over a century: the offsets are out of the kernel's range) are refused
/// in one line before anything is torn down, and the refusal leaves no
/// trace: a data file the checks made again (a shared file mapping whose
/// file is gone) is removed again, as for every other refusal.
#[test]
fn clocks_out_of_range_are_refused_leaving_no_trace() {
    let dir = TestDir::new("clocks-range");
    let prog = Program::c();
    let image = dir.join("cprog.img");
    dump_and_kill(&dir, &prog, &image, 3);
    let made = dir.join("gone/data.bin");
    rewrite_meta(&image, |img| {
        img.minor2.monotonic_ns = u64::MAX;
        img.minor2.boottime_ns = u64::MAX;
        // A page the program mapped shared from a file that is gone, in
        // a free range low in the address space.
        let mut f = img.files[0].clone();
        (f.path, f.size, f.build_id) = (
            made.to_str().unwrap().to_string().into(),
            4096,
            Vec::new().into(),
        );
        let files = img.files.to_mut();
        files.push(f);
        let m = dumpfmt::Mapping {
            start: 0x10000,
            end: 0x11000,
            prot: dumpfmt::PROT_READ | dumpfmt::PROT_WRITE,
            shared: true,
            offset: 0,
            backing: dumpfmt::Backing::SharedFile(files.len() as u32 - 1),
            name: made.to_str().unwrap().to_string().into(),
        };
        img.mappings.to_mut().insert(0, m);
    });
    let mut r = dir.restore(&prog, "refused", &image, &[]);
    let status = r.wait();
    assert_eq!(
        status.code(),
        Some(exit::CANNOT_RESTORE),
        "{}",
        r.describe()
    );
    let err = r.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("clocks"), "{err}");
    assert!(r.stdout_raw().is_empty(), "{}", r.describe());
    assert!(
        !made.exists() && !made.parent().unwrap().exists(),
        "the refused restore left {} behind",
        made.display()
    );
}

/// As above, restored from inside a time namespace of its own (a
/// restore run by a restored process, or in a container): the offsets a
/// time namespace takes are from this machine's clocks, not from the
/// restoring process's. Dumped two days ahead, restored one day ahead:
/// the clocks still continue from the dump's.
#[test]
fn clocks_continue_when_the_restore_itself_runs_in_a_time_namespace() {
    let dir = TestDir::new("clocks-nested");
    let two_days = ahead(2 * 86_400);
    let one_day = ahead(86_400);
    let two_days: Vec<&str> = two_days.iter().map(String::as_str).collect();
    let one_day: Vec<&str> = one_day.iter().map(String::as_str).collect();
    if let Err(e) = wrapper_works(&two_days) {
        skip::skip(
            "clocks_continue_when_the_restore_itself_runs_in_a_time_namespace",
            &format!("time namespaces ({e})"),
        );
        return;
    }
    let prog = Program::c();
    let expected = reference(&prog);
    let image = dir.join("ahead.img");
    let original = dump_and_kill(&dir, &prog.wrapped(&two_days), &image, 3);
    let mut restored = dir.restore(&prog.wrapped(&one_day), "restored", &image, &[]);
    finish_restored(&mut restored, &original, &expected);
}
