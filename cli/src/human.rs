//! Formatting for people: sizes, times, protections, flags.

/// `n` bytes as `1.5 MiB` (exact bytes below 1 KiB).
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A duration of `ns` nanoseconds as `1.234 ms` (`µs` below 1 ms, `s`
/// from 1 s).
pub fn duration(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.3} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else {
        format!("{:.3} s", ns as f64 / 1e9)
    }
}

/// Nanoseconds since the epoch as `2026-11-29 20:58:08.123456789 UTC`.
pub fn time(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:09} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ns % 1_000_000_000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `rwxp` as `/proc/PID/maps` shows it.
pub fn prot(prot: u8, shared: bool) -> String {
    let bit = |b: u8, c: char| if prot & b != 0 { c } else { '-' };
    format!(
        "{}{}{}{}",
        bit(dumpfmt::PROT_READ, 'r'),
        bit(dumpfmt::PROT_WRITE, 'w'),
        bit(dumpfmt::PROT_EXEC, 'x'),
        if shared { 's' } else { 'p' }
    )
}

/// Access mode and status flags of a descriptor (`F_GETFL`), and cloexec.
pub fn fd_flags(flags: i32, cloexec: bool) -> String {
    let mut v = vec![match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "rdonly",
        libc::O_WRONLY => "wronly",
        _ => "rdwr",
    }];
    for (bit, name) in [
        (libc::O_APPEND, "append"),
        (libc::O_NONBLOCK, "nonblock"),
        (libc::O_SYNC, "sync"),
        (libc::O_DIRECT, "direct"),
        (libc::O_PATH, "path"),
    ] {
        if flags & bit == bit {
            v.push(name);
        }
    }
    if cloexec {
        v.push("cloexec");
    }
    v.join(",")
}

/// A resource limit value.
pub fn limit(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".to_string()
    } else {
        v.to_string()
    }
}

/// Name of resource `r` (`RLIMIT_*`).
pub fn rlimit_name(r: u32) -> String {
    const NAMES: [&str; 16] = [
        "cpu",
        "fsize",
        "data",
        "stack",
        "core",
        "rss",
        "nproc",
        "nofile",
        "memlock",
        "as",
        "locks",
        "sigpending",
        "msgqueue",
        "nice",
        "rtprio",
        "rttime",
    ];
    NAMES
        .get(r as usize)
        .map_or_else(|| format!("resource {r}"), |n| n.to_string())
}

/// Signal numbers set in a mask (bit n-1 for signal n), with ranges:
/// `1-8,10,12-64`.
pub fn sigset(mask: u64) -> String {
    let mut parts = Vec::new();
    let mut sig = 1u32;
    while sig <= 64 {
        if mask & (1u64 << (sig - 1)) == 0 {
            sig += 1;
            continue;
        }
        let first = sig;
        while sig < 64 && mask & (1u64 << sig) != 0 {
            sig += 1;
        }
        parts.push(if first == sig {
            first.to_string()
        } else {
            format!("{first}-{sig}")
        });
        sig += 1;
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

/// `words` joined by spaces into lines of at most `width` bytes (a longer
/// word gets a line of its own).
pub fn wrap(words: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in words {
        match lines.last_mut() {
            Some(l) if l.len() + 1 + word.len() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.clone()),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_times() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(3 << 30), "3.0 GiB");
        assert_eq!(super::sigset(0), "none");
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            super::wrap(&w(&["ab", "cd", "efg"]), 5),
            w(&["ab cd", "efg"])
        );
        assert!(super::wrap(&[], 5).is_empty());
        assert_eq!(super::sigset(1 << 11), "12");
        assert_eq!(super::sigset(!(1 << 8) & !(1 << 18)), "1-8,10-18,20-64");
        assert_eq!(super::time(0), "1970-01-01 00:00:00.000000000 UTC");
        assert_eq!(
            super::time(1_764_449_888_000_000_001),
            "2025-11-29 20:58:08.000000001 UTC"
        );
    }
}
