//! The clocks that count from boot (`CLOCK_MONOTONIC`, `CLOCK_BOOTTIME`)
//! on another boot: a time namespace keeps them from going back.
//!
//! Rules of this module: it runs in the constructor, before teardown, with
//! libc; what fails is refused with one line before anything is torn down.
//!
//! A program may hold times read from these clocks (deadlines, the last
//! reading it checks the next against); they must never go back. On the
//! machine and boot of the dump they do not. Restored on another boot
//! (another machine, or this one rebooted), they may read less than at the
//! dump: the restore then puts the restored process in a time namespace
//! (made with the user namespace of [`super::namespace`], whose owner may
//! set its offsets) in which each clock continues from its value at the
//! dump (format 1.2, `Minor2`) plus the wall-clock time since (none if the
//! wall clock reads earlier). A clock that reads more here is left alone:
//! it jumped forward, as across a suspend. The supervisor stays outside.
//! A time namespace's offsets count from the machine's clocks, not from
//! its parent namespace's: a restore that itself runs in one (started by
//! a restored process, or in a container) adds that one's offsets.
//!
//! Limits: without the namespaces (`MIGRATE_NAMESPACE=off`, or where the
//! kernel refuses them) and for images older than 1.2 (which do not record
//! the clocks), the clocks may go back, and no line says so.

use dumpfmt::{Image, Minor2};

const NS: i128 = 1_000_000_000;

/// The offsets (ns) that make `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME`
/// continue from their values `then` at a dump taken at wall-clock time
/// `then_real`, given the clocks now (monotonic, boottime, realtime);
/// `None` when neither would go back.
pub fn offsets(then: &Minor2<'_>, then_real: u64, now: (u64, u64, u64)) -> Option<(i64, i64)> {
    if then.monotonic_ns == 0 && then.boottime_ns == 0 {
        return None;
    }
    let elapsed = i128::from(now.2) - i128::from(then_real);
    let elapsed = elapsed.max(0);
    let offset = |then: u64, now: u64| -> i64 {
        let want = i128::from(then) + elapsed;
        (want - i128::from(now)).clamp(0, i128::from(i64::MAX / 2)) as i64
    };
    let mono = offset(then.monotonic_ns, now.0);
    let boot = offset(then.boottime_ns, now.1);
    (mono != 0 || boot != 0).then_some((mono, boot))
}

/// `/proc/self/timens_offsets` text for these offsets.
fn offsets_text((mono, boot): (i64, i64)) -> String {
    let line = |name: &str, ns: i64| {
        let ns = i128::from(ns);
        format!("{name} {} {}\n", ns.div_euclid(NS), ns.rem_euclid(NS))
    };
    line("monotonic", mono) + &line("boottime", boot)
}

/// The offsets (ns) of the time namespace `text` (`/proc/self/timens_offsets`)
/// describes, from this machine's clocks.
fn parse_offsets(text: &str) -> Option<(i64, i64)> {
    let mut out = (None, None);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (name, secs, nsecs) = (words.next()?, words.next()?, words.next()?);
        let ns = i64::try_from(
            i128::from(secs.parse::<i64>().ok()?) * NS + i128::from(nsecs.parse::<i64>().ok()?),
        )
        .ok()?;
        match name {
            "monotonic" | "1" => out.0 = Some(ns),
            "boottime" | "7" => out.1 = Some(ns),
            _ => {}
        }
    }
    Some((out.0?, out.1?))
}

/// The offsets of the time namespace this process runs in (none outside
/// one): a time namespace's offsets count from this machine's clocks,
/// not from its parent namespace's, so a restore run inside one (by a
/// restored process, in a container) adds them to its own.
fn own_offsets() -> Result<(i64, i64), String> {
    let own = std::fs::read_link("/proc/self/ns/time");
    let children = std::fs::read_link("/proc/self/ns/time_for_children");
    match (own, children) {
        (Ok(own), Ok(children)) if own != children => {
            return Err("this process's children are bound for another time namespace".into());
        }
        (Ok(_), Ok(_)) => {}
        // A kernel without time namespaces.
        _ => return Ok((0, 0)),
    }
    let text = std::fs::read_to_string("/proc/self/timens_offsets")
        .map_err(|e| format!("cannot read /proc/self/timens_offsets ({e})"))?;
    parse_offsets(&text).ok_or_else(|| format!("cannot read /proc/self/timens_offsets: {text:?}"))
}

/// In the new user namespace, before the restore's first child: when the
/// clocks would go back, makes that child's time namespace with the
/// offsets that keep them going. An error says what failed.
pub fn enter(image: &Image<'_>) -> Result<(), String> {
    let now = (
        crate::sys::monotonic_ns(),
        crate::sys::boottime_ns(),
        crate::sys::realtime_ns(),
    );
    let Some(off) = offsets(&image.minor2, image.time_ns, now) else {
        return Ok(());
    };
    let behind = |o: i64| o as f64 / 1e9;
    let why = format!(
        "the clocks here are behind the image's (another boot: CLOCK_MONOTONIC by {:.3} s, CLOCK_BOOTTIME by {:.3} s), and they cannot be kept from going back",
        behind(off.0),
        behind(off.1)
    );
    // The clocks read above are this process's: its own namespace's
    // offsets (which a new one inherits) come on top of the missing ones.
    let own = own_offsets().map_err(|e| format!("{why}: {e}"))?;
    let total = (own.0.saturating_add(off.0), own.1.saturating_add(off.1));
    // SAFETY: unshare affects only this (single-threaded) process's children.
    if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "{why}: no time namespace ({e}; MIGRATE_NAMESPACE=off restores without one, the clocks going back)"
        ));
    }
    std::fs::write("/proc/self/timens_offsets", offsets_text(total))
        .map_err(|e| format!("{why}: cannot set the time namespace's offsets ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(mono: u64, boot: u64, real: u64) -> (Minor2<'static>, u64) {
        let then = Minor2 {
            monotonic_ns: mono,
            boottime_ns: boot,
            ..Minor2::default()
        };
        (then, real)
    }

    #[test]
    fn clocks_continue_from_the_dump_plus_the_wall_time_since() {
        // Dumped at monotonic 1000 s; restored 10 s later (wall clock) on
        // a machine up for 5 s.
        let img = image(1000 * NS as u64, 1100 * NS as u64, 50_000 * NS as u64);
        let now = (5 * NS as u64, 6 * NS as u64, 50_010 * NS as u64);
        let (mono, boot) = offsets(&img.0, img.1, now).unwrap();
        assert_eq!(mono as i128, (1010 - 5) * NS);
        assert_eq!(boot as i128, (1110 - 6) * NS);
        assert_eq!(
            offsets_text((mono, boot)),
            "monotonic 1005 0\nboottime 1104 0\n"
        );
    }

    #[test]
    fn no_namespace_when_the_clocks_do_not_go_back() {
        // The same boot: the clocks went on.
        let img = image(1000, 1100, 50_000);
        assert_eq!(offsets(&img.0, img.1, (2000, 2100, 51_000)), None);
        // An image without clocks (before 1.2).
        assert_eq!(offsets(&image(0, 0, 50_000).0, 50_000, (1, 1, 1)), None);
    }

    #[test]
    fn offsets_read_back_as_the_kernel_shows_them() {
        let text = "monotonic       86400         0\nboottime           -2 500000000\n";
        assert_eq!(
            parse_offsets(text),
            Some((86_400 * NS as i64, -1_500_000_000))
        );
        let off = (-1_500_000_000, 7);
        assert_eq!(parse_offsets(&offsets_text(off)), Some(off));
        assert_eq!(parse_offsets("monotonic 1 0\n"), None);
        assert_eq!(parse_offsets("monotonic x 0\nboottime 0 0\n"), None);
        // This process's (outside any, or in one: either reads).
        assert!(own_offsets().is_ok());
    }

    #[test]
    fn a_wall_clock_behind_the_dumps_adds_nothing() {
        let img = image(1000, 1000, 50_000);
        assert_eq!(offsets(&img.0, img.1, (400, 1500, 10)), Some((600, 0)));
    }
}
