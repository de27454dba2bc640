//! The restore check: every restore the harness runs also asks the
//! restored process for one dump as it resumes (`MIGRATE_RESTORE_CHECK`,
//! taken before any of the program's code runs), and compares that image's
//! metadata with the image it was restored from. The two describe the same
//! process at the same instant, so what differs was lost or changed by the
//! restore: the general guard against silent loss.
//!
//! Both images are decoded into a flat list of `key = value` lines
//! ([`facts`]), after normalizing the few things that may legitimately
//! differ; the lists must be equal, and a failure shows the lines that
//! differ. What is normalized, and why (the whole list):
//!
//! - `time_ns`: when the dump was taken.
//! - `cpu`, `cpu_ext` and the xsave layout: the CPU the image was taken
//!   on, a property of the host (the CPU baseline the program was started
//!   for is the process's, and compared); likewise the addresses of the
//!   threads' signal frames, which are the shim's own.
//! - Page runs (`runs`): which pages are stored is the dump's own
//!   bookkeeping (a restore touches pages the original never had); page
//!   contents are checked through the program's output.
//! - Thread registers (`context`): each thread is at another instruction
//!   of the shim's handler. Threads are matched by FS base (their TLS),
//!   not by order: another thread may lead the check dump.
//! - PID and TIDs when the relaunch sets `MIGRATE_NAMESPACE=off`: the
//!   restored process then has new ones by design.
//! - Mappings are compared after merging neighbours with equal attributes
//!   (the kernel may merge or split anonymous memory and file mappings
//!   without any difference to the program). `[heap]` counts as no name
//!   for that: the kernel gives it to whichever anonymous mapping holds
//!   the program break (`mm`, compared), and an anonymous neighbour that
//!   merged with the heap on restore takes it.
//! - Pipe and socket-pair `id`s are renumbered in order of appearance, and
//!   the inode number in a peer-gone descriptor's `what` (`pipe:[N]`) is
//!   dropped: they are kernel object numbers that only pair the ends.
//! - Remaining times (timerfd, interval timers): time passes between the
//!   dump and the check; only whether they are armed, and their intervals,
//!   must match (and an armed timerfd's count of expirations is not
//!   compared: it may expire again before the check).
//! - Size and mtime of a file open for writing: the file is outside the
//!   process, the dumped process may go on writing it before it is killed,
//!   and a restore reopens it as it is then (one open only for reading
//!   must not change: the restore refuses it otherwise, and it is compared).
//! - Epoll entries watching fds 0 to 2: stdio is the relaunch's (by
//!   design), and epoll refuses some files (`/dev/null`, regular files),
//!   so such an entry may not come back. Entries are compared one by one,
//!   not in the kernel's order.
//! - Pending signals that an armed timer (POSIX or interval) sends: it may
//!   fire between the dump and the check (a POSIX timer's pending signal,
//!   kept with its siginfo among the queued ones, as well).
//! - A queued `SIGCHLD` (`Minor4::signals`) of a process restored with
//!   children: a child may end between the restore and the check.
//! - A zombie child's process group and session numbers: seen from the
//!   restore's PID namespace, one led from outside it reads 0; only
//!   whether the zombie leads its own is compared.
//! - Byte contents (pipes, sockets, deleted files) are compared by length
//!   and hash, only to keep the report short; not at all for a pipe or
//!   socket pair the restored tree's other processes hold too (a tree
//!   image): they run between the restore and the check, reading and
//!   writing it. Nor an eventfd's count they share, nor the offset of a
//!   file description they share (a log all of them append to).
//! - The kernel's mappings, when the restore ran on another kernel and
//!   proxied the image's vDSO (`shim/src/restore/vdso/`; seen as the
//!   check's `[vdso]` elsewhere and an anonymous mapping in the image's
//!   `[vdso]` range): the image's `[vdso]` is expected as that anonymous
//!   mapping (same range and protection), its `[vvar]` and `[vvar_vclock]`
//!   as gone, and the check's own kernel mappings, wherever they are, and
//!   `AT_SYSINFO_EHDR` (auxv 33, which names them) are not compared.
//!   Another kernel is another machine (or boot) here: the CPU the check
//!   records is the restoring machine's, and the device and inode numbers
//!   of mapped files are its own (the restore identifies a file by size,
//!   mtime and, for ELF files, build-id, by design): neither is compared
//!   then.
//! - Settings and the dump signal's disposition: the relaunch's `MIGRATE_*`
//!   variables replace the restored settings (documented behaviour), so
//!   the expected settings are the image's with those applied; when
//!   `MIGRATE_SIGNAL` moves the dump signal, the dispositions of the old
//!   and the new signal change by design and are not compared. The same
//!   holds for the shim's periodic timer, which `MIGRATE_SIGNAL` and
//!   `MIGRATE_INTERVAL` make again with the new signal and interval.
//!
//! [`KNOWN_BUGS`] lists differences that are real bugs not fixed yet: they
//! are reported on stderr, and do not fail the test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dumpfmt::{Backing, Fd, FdKind, Image};

use crate::{POLL, Proc, TIMEOUT, describe_status, image_meta};

/// The environment variable that asks a restore for its check dump.
pub const CHECK_VAR: &str = "MIGRATE_RESTORE_CHECK";

/// A real difference the check finds that is not fixed yet: a difference
/// (key, value in the restored image, value in the check image; `None`
/// when absent) that `matches` is reported on stderr with `why` and does
/// not fail the test. Keep the list short; each entry is a bug.
pub struct KnownBug {
    pub why: &'static str,
    pub matches: fn(&str, Option<&str>, Option<&str>) -> bool,
}

/// The known bugs (see [`KnownBug`]).
pub const KNOWN_BUGS: &[KnownBug] = &[
    KnownBug {
        why: "a private mapping of a file deleted (or replaced) since it was mapped comes \
              back as anonymous memory with the same contents: /proc/self/maps no longer \
              names the file (the program's bytes are the same)",
        matches: deleted_mapping_became_anonymous,
    },
    KnownBug {
        why: "a file deleted while open comes back as a memfd of the same contents: its \
              link in /proc/self/fd reads /memfd:PATH (deleted) instead of PATH (deleted), \
              and the next dump records it as a memfd",
        matches: deleted_file_became_memfd,
    },
    KnownBug {
        why: "an EPOLLONESHOT entry that had fired (no events left armed) comes back \
              armed for EPOLLERR|EPOLLHUP: epoll_ctl adds those two to every ADD and MOD, \
              so a disarmed entry cannot be made again as it was",
        matches: oneshot_rearmed,
    },
];

/// [`KNOWN_BUGS`]: a private `Contents` mapping named `... (deleted)` that
/// comes back the same but `Anonymous` without a name.
fn deleted_mapping_became_anonymous(key: &str, expected: Option<&str>, got: Option<&str>) -> bool {
    let (Some(e), Some(g)) = (expected, got) else {
        return false;
    };
    let Some((head, name)) = e.split_once(" Contents ") else {
        return false;
    };
    key.starts_with("mapping ")
        && head.contains("p offset=")
        && name.ends_with(" (deleted)\"")
        && g == format!("{head} Anonymous \"\"")
}

/// [`KNOWN_BUGS`]: a `Contents` descriptor with `memfd: false` that
/// comes back the same but for `memfd: true`.
fn deleted_file_became_memfd(key: &str, expected: Option<&str>, got: Option<&str>) -> bool {
    match (expected, got) {
        (Some(e), Some(g)) => {
            key.starts_with("fd ")
                && e.contains(" Contents {")
                && e.contains("memfd: false")
                && e.replace("memfd: false", "memfd: true") == g
        }
        _ => false,
    }
}

/// [`KNOWN_BUGS`]: an epoll entry with only `EPOLLONESHOT` (and other
/// private bits) that comes back with `EPOLLERR|EPOLLHUP` added.
fn oneshot_rearmed(key: &str, expected: Option<&str>, got: Option<&str>) -> bool {
    const ONESHOT: u32 = 1 << 30;
    const PRIVATE: u32 = (1 << 28) | (1 << 29) | (1 << 30) | (1 << 31);
    const ERR_HUP: u32 = 0x8 | 0x10;
    let events = |v: &str| -> Option<(u32, String)> {
        let rest = v.strip_prefix("events=0x")?;
        let (hex, tail) = rest.split_once(' ')?;
        Some((u32::from_str_radix(hex, 16).ok()?, tail.to_string()))
    };
    match (expected.and_then(events), got.and_then(events)) {
        (Some((e, et)), Some((g, gt))) => {
            key.contains(" epoll entry ")
                && et == gt
                && e & ONESHOT != 0
                && e & !PRIVATE == 0
                && g == e | ERR_HUP
        }
        _ => false,
    }
}

/// Where the check image of a restore labelled `label` goes in `dir`.
pub fn check_image_path(dir: &Path, label: &str) -> PathBuf {
    dir.join("checks").join(format!("{label}.img"))
}

/// The check image a relaunch labelled `label` in `dir` with `env` should
/// make: one for every restore (`MIGRATE_RESTORE`), unless the test sets
/// `MIGRATE_RESTORE_CHECK` itself.
pub fn wanted(dir: &Path, label: &str, env: &[(&str, &str)]) -> Option<PathBuf> {
    let has = |key: &str| env.iter().any(|(k, _)| *k == key);
    (has("MIGRATE_RESTORE") && !has(CHECK_VAR)).then(|| check_image_path(dir, label))
}

/// What a restore was asked for: the image, the relaunch's environment and
/// working directory (for the settings it overrides).
struct Restore<'a> {
    image: &'a Path,
    check: &'a Path,
    env: &'a [(&'a str, &'a str)],
    cwd: &'a Path,
}

/// Waits for `check`, the check image of `p` (relaunched in `cwd` with
/// `env`, which has `MIGRATE_RESTORE`), and compares it with the restored
/// image; panics with the differences. A relaunch that exits with a
/// restore failure's status (64 to 71) without a check image was refused
/// (tests of refusals check that themselves); any other exit without one
/// fails.
pub fn check_restore(p: &mut Proc, check: &Path, env: &[(&str, &str)], cwd: &Path) {
    let image = env
        .iter()
        .find(|(k, _)| *k == "MIGRATE_RESTORE")
        .map(|(_, v)| cwd.join(v))
        .expect("a restore has MIGRATE_RESTORE");
    let r = &Restore {
        image: &image,
        check,
        env,
        cwd,
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let exited = p.poll_exit();
        if r.check.exists() {
            break;
        }
        if let Some(status) = exited {
            if status.code().is_some_and(|c| (64..=71).contains(&c)) {
                return;
            }
            panic!(
                "{} ({}) exited ({}) without its restore check image {}: the check dump \
                 is taken before any code of the program runs, so every restore makes one\n{}",
                p.label,
                r.image.display(),
                describe_status(status),
                r.check.display(),
                p.describe()
            );
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {}'s restore check image {}\n{}",
            p.label,
            r.check.display(),
            p.describe()
        );
        std::thread::sleep(POLL);
    }
    let mut before = image_meta(r.image).image;
    let mut after = image_meta(r.check).image;
    if proxied_vdso(&before, &after) {
        as_on_another_kernel(&mut before, &mut after);
    }
    let expect = Expect::of(r, &before);
    let expected = facts_as_relaunched(&before, &expect);
    let got = facts(&after, &expect, &after.settings);
    let mut diff = differences(&expected, &got);
    diff.retain(|d| !members_ran(d, r.image));
    let (known, bad): (Vec<_>, Vec<_>) = diff.into_iter().partition(|d| known_bug(d).is_some());
    for d in &known {
        eprintln!(
            "{}: restore check: known bug ({}):\n  {}",
            p.label,
            known_bug(d).unwrap_or_default(),
            d.line
        );
    }
    if !bad.is_empty() {
        let mut s = String::new();
        for d in &bad {
            let _ = writeln!(s, "  {}", d.line);
        }
        panic!(
            "restore check of {}: the restored process (dumped as it resumed, {}) differs from \
             the image it was restored from ({}):\n{s}(- restored image, + check image)\n{}",
            p.label,
            r.check.display(),
            r.image.display(),
            p.describe()
        );
    }
}

/// Whether the restore proxied the image's vDSO: the check's `[vdso]` is
/// not at the image's, and an anonymous mapping holds the image's range.
fn proxied_vdso(before: &Image, after: &Image) -> bool {
    let vdso = |img: &Image| {
        img.mappings
            .iter()
            .find(|m| &*m.name == "[vdso]")
            .map(|m| (m.start, m.end))
    };
    let Some((start, end)) = vdso(before) else {
        return false;
    };
    vdso(after) != Some((start, end))
        && after
            .mappings
            .iter()
            .any(|m| m.start == start && m.end == end && m.backing == Backing::Anonymous)
}

/// Rewrites both images as a restore on another kernel, which
/// [`proxied_vdso`] tells, makes them differ (see the module's
/// documentation).
fn as_on_another_kernel<'a>(before: &mut Image<'a>, after: &mut Image<'a>) {
    let maps = before.mappings.to_mut();
    maps.retain(|m| m.backing != Backing::Kernel || &*m.name == "[vdso]");
    for m in maps.iter_mut().filter(|m| m.backing == Backing::Kernel) {
        m.backing = Backing::Anonymous;
        m.name = "".into();
    }
    after
        .mappings
        .to_mut()
        .retain(|m| m.backing != Backing::Kernel);
    for img in [before, after] {
        let auxv = img.auxv.to_mut();
        for pair in auxv.chunks_exact_mut(2) {
            if pair[0] == libc::AT_SYSINFO_EHDR {
                pair[1] = 0;
            }
        }
        img.cpu = Default::default();
        let machine_local = |f: &mut dumpfmt::FileId| (f.dev, f.ino) = (0, 0);
        machine_local(&mut img.exe);
        img.files.to_mut().iter_mut().for_each(machine_local);
    }
}

/// What the relaunch changes by design.
struct Expect {
    /// `MIGRATE_NAMESPACE=off`: new PID and TIDs.
    new_ids: bool,
    /// The settings the restored process must have.
    settings: dumpfmt::Settings<'static>,
    /// Signals whose disposition the relaunch moved (old and new dump signal).
    moved: Vec<u8>,
    /// The shim's periodic timer as the relaunch makes it again (its
    /// signal and interval), when `MIGRATE_SIGNAL` or `MIGRATE_INTERVAL`
    /// changes it.
    ticker: Option<(u8, u64)>,
    /// Children restored with it (a tree image): one may end before the
    /// check, and SIGCHLD be pending then.
    children: bool,
    /// Its descriptors of pipes and socket pairs that other processes of
    /// its tree hold too (their bytes change as those run).
    tree_fds: Vec<i32>,
}

/// The descriptors of a tree image's root whose pipe or socket pair (by
/// inode) another member's descriptors name too.
fn tree_fds(image: &Path) -> Vec<i32> {
    let Ok(dumpfmt::Opened::Tree(t)) = dumpfmt::open_any(image) else {
        return Vec::new();
    };
    let inodes = |fd: &Fd| -> Vec<u64> {
        match &fd.kind {
            FdKind::Pipe { id, .. } => vec![*id],
            FdKind::UnixPair { id, peer, .. } => vec![*id, *peer],
            FdKind::Gone { what, .. } => what
                .split(['[', ']'])
                .nth(1)
                .and_then(|n| n.parse().ok())
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    };
    let Some((root, rest)) = t.sections.split_first() else {
        return Vec::new();
    };
    let others: std::collections::HashSet<u64> = rest
        .iter()
        .flat_map(|s| s.image.fds.iter().flat_map(inodes))
        .collect();
    let other_keys: std::collections::HashSet<_> = rest
        .iter()
        .flat_map(|s| s.image.minor3.shared.fds.iter().map(|f| f.key))
        .collect();
    let root = &root.image;
    let shared_key = |fd: i32| {
        root.minor3
            .shared
            .fds
            .iter()
            .any(|f| f.fd == fd && other_keys.contains(&f.key))
    };
    root.fds
        .iter()
        .filter(|fd| inodes(fd).iter().any(|i| others.contains(i)) || shared_key(fd.fd))
        .map(|fd| fd.fd)
        .collect()
}

impl Expect {
    fn of(r: &Restore, before: &Image<'static>) -> Expect {
        let var = |k: &str| r.env.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let mut settings = before.settings.clone();
        let mut moved = Vec::new();
        if let Some(v) = var("MIGRATE_SIGNAL") {
            let sig = parse_signal(v).unwrap_or_else(|| panic!("MIGRATE_SIGNAL={v}: unknown"));
            if sig != settings.signal {
                moved = vec![settings.signal, sig];
            }
            settings.signal = sig;
        }
        if let Some(v) = var("MIGRATE_IMAGE") {
            settings.image = if v.starts_with('/') {
                v.to_string().into()
            } else {
                format!("{}/{v}", r.cwd.display()).into()
            };
        }
        if let Some(v) = var("MIGRATE_AFTER_DUMP") {
            settings.exit_after_dump = v == "exit";
        }
        if let Some(v) = var("MIGRATE_LOG") {
            settings.log_level = match v {
                "error" => 0,
                "info" => 1,
                _ => 2,
            };
        }
        let old = before
            .minor1
            .posix_timers
            .iter()
            .find(|t| t.value == TICK_MAGIC);
        let interval = var("MIGRATE_INTERVAL")
            .map(|v| parse_duration(v).unwrap_or_else(|| panic!("MIGRATE_INTERVAL={v}: unknown")));
        let ticker = match (old, interval) {
            (_, Some(ns)) => Some((settings.signal, ns)),
            (Some(t), None) if !moved.is_empty() => Some((settings.signal, t.interval_ns)),
            _ => None,
        };
        Expect {
            new_ids: var("MIGRATE_NAMESPACE") == Some("off"),
            settings,
            moved,
            ticker,
            children: matches!(dumpfmt::open_any(r.image), Ok(dumpfmt::Opened::Tree(_))),
            tree_fds: tree_fds(r.image),
        }
    }
}

/// `sigev_value` of the shim's periodic timer (`MIGRATE_INTERVAL`).
const TICK_MAGIC: u64 = 0x7469_636b_4d49_4752;

/// The key of a POSIX timer's fact: its id, which the program uses, but
/// not for the shim's periodic timer, whose id no program knows and which
/// takes another where a restore cannot choose ids (kernels before 6.16).
fn timer_key(value: u64, id: i32) -> String {
    if value == TICK_MAGIC {
        "posix timer (periodic dumps)".into()
    } else {
        format!("posix timer {id}")
    }
}

/// A duration as `MIGRATE_INTERVAL` takes it (`1s`, `1h30m`, `90`), in ns.
fn parse_duration(v: &str) -> Option<u64> {
    if let Ok(s) = v.parse::<u64>() {
        return s.checked_mul(1_000_000_000);
    }
    let mut total = 0u64;
    let mut rest = v;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let unit = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| i + digits);
        let n: u64 = rest[..digits].parse().ok()?;
        let scale = match &rest[digits..unit] {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &rest[unit..];
    }
    Some(total)
}

/// A signal as `MIGRATE_SIGNAL` takes it (number, `USR1`, `SIGUSR1`, `RTMIN+4`).
fn parse_signal(v: &str) -> Option<u8> {
    if let Ok(n) = v.parse() {
        return Some(n);
    }
    let name = v.strip_prefix("SIG").unwrap_or(v);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let k: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        return u8::try_from(libc::SIGRTMIN() + k).ok();
    }
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "URG" => libc::SIGURG,
        _ => return None,
    };
    u8::try_from(n).ok()
}

/// One fact that differs.
struct Difference {
    key: String,
    expected: Option<String>,
    got: Option<String>,
    /// For the message: the key, then `- expected` and `+ got`.
    line: String,
}

/// Why `d` is a known bug, if it is one.
/// Whether `d` is what the other processes of a tree image did between
/// the restore and the root's check: they run as the root resumes (the
/// barrier lets all go at once), so a pipe shared with one of them may
/// hold what it wrote since, and one that exited meanwhile is a zombie
/// child the image did not have. Only for a tree image, and only the
/// bytes waiting in a pipe (its kind, flags and end must match) or a new
/// zombie child.
fn members_ran(d: &Difference, image: &Path) -> bool {
    let Ok(dumpfmt::Opened::Tree(t)) = dumpfmt::open_any(image) else {
        return false;
    };
    if t.tree.members.len() < 2 {
        return false;
    }
    if d.key.starts_with("zombie child ") && d.expected.is_none() {
        return true;
    }
    let (Some(e), Some(g)) = (&d.expected, &d.got) else {
        return false;
    };
    let without_data = |v: &str| v.split(", data: ").next().map(str::to_string);
    d.key.starts_with("fd ")
        && e.contains("Gone { what: \"pipe:\"")
        && without_data(e) == without_data(g)
}

fn known_bug(d: &Difference) -> Option<&'static str> {
    KNOWN_BUGS
        .iter()
        .find(|b| (b.matches)(&d.key, d.expected.as_deref(), d.got.as_deref()))
        .map(|b| b.why)
}

/// The facts of `expected` and `got` that differ, by key.
fn differences(
    expected: &BTreeMap<String, String>,
    got: &BTreeMap<String, String>,
) -> Vec<Difference> {
    let keys: std::collections::BTreeSet<&String> = expected.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(*k) != got.get(*k))
        .map(|k| {
            let (e, g) = (expected.get(k).cloned(), got.get(k).cloned());
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
            Difference {
                key: k.clone(),
                line: format!("{k}:\n    - {}\n    + {}", show(&e), show(&g)),
                expected: e,
                got: g,
            }
        })
        .collect()
}

/// The normalized facts an image states, as `key = value`; `settings`
/// stands for the image's own.
/// The facts of the image a restore started from, with the shim's
/// periodic timer as the relaunch makes it again (see [`Expect::ticker`]).
fn facts_as_relaunched(before: &Image, e: &Expect) -> BTreeMap<String, String> {
    let mut f = facts(before, e, &e.settings);
    if let Some((signal, interval)) = e.ticker {
        f.insert(
            timer_key(TICK_MAGIC, 0),
            format!(
                "clock={} notify={} signal={signal} value={TICK_MAGIC:#x} tid=0 armed=true interval={interval}ns",
                libc::CLOCK_MONOTONIC,
                libc::SIGEV_SIGNAL
            ),
        );
        // Its ticks may be pending as the new signal.
        let pending = f
            .get("process.pending")
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        f.insert(
            "process.pending".into(),
            format!("{:#x}", pending & !(1u64 << (signal - 1))),
        );
    }
    f
}

fn facts(img: &Image, e: &Expect, settings: &dumpfmt::Settings) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let mut put = |k: String, v: String| {
        f.insert(k, v);
    };
    if !e.new_ids {
        put("pid".into(), img.pid.to_string());
    }
    put("sequence".into(), img.sequence.to_string());
    put("exe".into(), format!("{:?}", img.exe));
    put(
        "cpu baseline".into(),
        format!("{:?}", img.minor2.baseline.as_ref().map(|b| &b.name)),
    );
    for (start, name, rest) in merged_mappings(img) {
        // `[stack]` by name, so that a change of its start shows as one fact.
        if name == "[stack]" {
            put("mapping [stack]".into(), format!("{start:#x} {rest}"));
        } else {
            put(format!("mapping {start:#x}"), rest);
        }
    }
    put("threads".into(), img.threads.len().to_string());
    for t in img.threads.iter() {
        let tid = if e.new_ids {
            String::new()
        } else {
            format!("tid {} ", t.tid)
        };
        let name = String::from_utf8_lossy(&t.name);
        put(
            format!("thread fs_base={:#x}", t.fs_base),
            format!(
                "{tid}gs_base={:#x} sigmask={:#x} clear_child_tid={:#x} robust_list={:#x}/{} \
                 rseq={:#x}/{}/{:#x} pthread_tid_offset={} name={:?}",
                t.gs_base,
                t.sigmask,
                t.clear_child_tid,
                t.robust_list,
                t.robust_list_len,
                t.rseq_addr,
                t.rseq_len,
                t.rseq_sig,
                t.pthread_tid_offset,
                name.trim_end_matches('\0')
            ),
        );
    }
    for (t, c) in img.threads.iter().zip(img.minor1.credentials.iter()) {
        put(
            format!("thread fs_base={:#x} credentials", t.fs_base),
            format!("{c:?}"),
        );
    }
    put(
        "process attributes".into(),
        format!("{:?}", img.minor4.procattrs.process),
    );
    for (t, a) in img.threads.iter().zip(img.minor4.procattrs.threads.iter()) {
        put(
            format!("thread fs_base={:#x} attributes", t.fs_base),
            format!("{a:?}"),
        );
    }
    for m in img.minor4.procattrs.mappings.iter() {
        put(
            format!("mapping {:#x} attributes", m.start),
            format!("end={:#x} flags={:#x}", m.end, m.flags),
        );
    }
    for z in img.minor3.members.zombies.iter() {
        // Process group and session numbers are those seen from the PID
        // namespace: one led from outside it reads 0 inside. Whether the
        // zombie leads its own is compared.
        put(
            format!("zombie child {}", z.pid),
            format!(
                "killed={} status={} group leader={} session leader={}",
                z.killed,
                z.status,
                z.pgid == z.pid,
                z.sid == z.pid
            ),
        );
    }
    for t in img.minor1.posix_timers.iter() {
        // Time passes between the dump and the check (as for itimers).
        let tid = if e.new_ids { 0 } else { t.tid };
        put(
            timer_key(t.value, t.id),
            format!(
                "clock={} notify={} signal={} value={:#x} tid={tid} armed={} interval={}ns",
                t.clock,
                t.notify,
                t.signal,
                t.value,
                t.value_ns != 0,
                t.interval_ns
            ),
        );
    }
    // Queued signals, per queue in order (a thread's by its TLS); a child
    // restored with the process may end before the check (its SIGCHLD).
    let mut nth = BTreeMap::new();
    // A standard signal that arrived while the dump ran is recorded as a
    // bare pending bit, and comes back as the restorer's plain `kill`:
    // queued with SI_USER, it is that bit again.
    let mut as_pending = 0u64;
    for q in img.minor4.signals.queued.iter() {
        if e.children && q.signo() == libc::SIGCHLD {
            continue;
        }
        if q.tid == 0 && (1..32).contains(&q.signo()) && q.info[1] as u32 as i32 == libc::SI_USER {
            as_pending |= 1 << (q.signo() - 1);
            continue;
        }
        // An armed timer's pending signal (with its siginfo, SI_TIMER)
        // may come or go between the dump and the check, as its number.
        let code = q.info[1] as u32 as i32;
        if code == libc::SI_TIMER
            && img
                .minor1
                .posix_timers
                .iter()
                .any(|t| t.value_ns != 0 && t.signal == q.signo())
        {
            continue;
        }
        let queue = match img.threads.iter().find(|t| q.tid != 0 && t.tid == q.tid) {
            Some(t) => format!("thread fs_base={:#x}", t.fs_base),
            None => format!("process (tid {})", q.tid),
        };
        let n = nth.entry(queue.clone()).or_insert(0);
        put(
            format!("queued signal {queue} #{n}"),
            format!("{:x?}", q.info),
        );
        *n += 1;
    }
    for (i, l) in img.minor4.signals.locks.iter().enumerate() {
        put(
            format!("file lock {i} fd {}", l.fd),
            format!(
                "kind={} write={} bytes {}-{}",
                l.kind, l.write, l.start, l.end
            ),
        );
    }
    for a in img.sigactions.iter() {
        if e.moved.contains(&a.signal) {
            continue;
        }
        put(
            format!("sigaction {:2}", a.signal),
            format!(
                "handler={:#x} flags={:#x} restorer={:#x} mask={:#x}",
                a.handler, a.flags, a.restorer, a.mask
            ),
        );
    }
    put("mm".into(), format!("{:?}", img.mm));
    for pair in img.auxv.chunks(2) {
        if let [key, value] = *pair
            && key != 0
        {
            put(format!("auxv {key:2}"), format!("{value:#x}"));
        }
    }
    put("settings".into(), format!("{settings:?}"));
    let mut ids = Renumber::default();
    for fd in img.fds.iter() {
        let mut text = describe_fd(fd, &mut ids);
        if e.tree_fds.contains(&fd.fd) {
            if let Some(at) = text.find("data: ")
                && let Some(len) = text[at..].find(')')
            {
                text.replace_range(at..=at + len, "data: (shared with the tree)");
            }
            if let Some(at) = text.find("count: ")
                && let Some(len) = text[at..].find(',')
            {
                text.replace_range(at..at + len, "count: (shared with the tree)");
            }
            if let FdKind::File { .. } = fd.kind
                && let Some(at) = text.find("offset: ")
            {
                let from = at + "offset: ".len();
                let digits = text[from..].find(|c: char| !c.is_ascii_digit());
                let end = from + digits.unwrap_or(text.len() - from);
                text.replace_range(at..end, "offset: (shared with the tree)");
            }
        }
        put(format!("fd {:3}", fd.fd), text);
        if let FdKind::Epoll { entries } = &fd.kind {
            // Stdio is the relaunch's (documented): an entry watching it
            // may not come back (epoll refuses /dev/null and regular files).
            for e in entries.iter().filter(|e| e.fd > 2) {
                put(
                    format!("fd {:3} epoll entry {}", fd.fd, e.fd),
                    format!("events={:#x} data={:#x}", e.events, e.data),
                );
            }
        }
    }
    sockets_facts(img, e, &mut put);
    let p = &img.process;
    put("process.cwd".into(), p.cwd.to_string());
    put("process.umask".into(), format!("{:#o}", p.umask));
    put(
        "process.personality".into(),
        format!("{:#x}", p.personality),
    );
    for (res, soft, hard) in p.rlimits.iter() {
        put(format!("process.rlimit {res:2}"), format!("{soft} {hard}"));
    }
    for (i, (value, interval)) in p.itimers.iter().enumerate() {
        // One that has expired reads 0 until its pending signal is taken,
        // and is re-armed then: armed all the same.
        put(
            format!("process.itimer {i}"),
            format!(
                "armed={} interval={interval}us",
                *value != 0 || *interval != 0
            ),
        );
    }
    // An armed timer may fire between the dump and the check: its signal
    // pending in one image and not the other is time passing, not a loss.
    let mut ticking = 0u64;
    for t in img.minor1.posix_timers.iter() {
        if t.value_ns != 0 && (1..=64).contains(&t.signal) {
            ticking |= 1 << (t.signal - 1);
        }
    }
    // So may a child restored with the process end.
    if e.children {
        ticking |= 1 << (libc::SIGCHLD - 1);
    }
    for (i, sig) in [libc::SIGALRM, libc::SIGVTALRM, libc::SIGPROF]
        .into_iter()
        .enumerate()
    {
        if p.itimers[i].0 != 0 || p.itimers[i].1 != 0 {
            ticking |= 1 << (sig - 1);
        }
    }
    put(
        "process.pending".into(),
        format!("{:#x}", (p.pending | as_pending) & !ticking),
    );
    // What files, O_PATH and procfs descriptors and deleted FIFOs keep
    // besides their records (issue 12).
    // A file's access time moves whenever the program reads it (after the
    // restore, before the check's dump): not compared (the programs check
    // it themselves, see `objects_files`).
    for entry in img.minor4.files.fds.iter() {
        let mut how = entry.how.clone();
        match &mut how {
            dumpfmt::files::How::Attrs { atime, .. } => *atime = (0, 0),
            // Where a stored file's data lies in the image follows from
            // how much page data comes before it: not compared (its
            // ranges, lengths and checksums are).
            dumpfmt::files::How::Stored { atime, runs, .. } => {
                *atime = (0, 0);
                runs.to_mut().iter_mut().for_each(|r| r.file_offset = 0);
            }
            _ => {}
        }
        put(format!("fd {:3} files", entry.fd), format!("{how:?}"));
    }
    f
}

/// The descriptor state of format 1.4's `sockets` (shutdowns, datagram
/// clients, queued messages, epoll entries through another descriptor).
/// Queued messages are compared by sender, length and hash, not at all
/// for a socket the tree's other processes hold too; an epoll entry is
/// named by its number, not its index (the kernel orders entries by the
/// address of their file).
fn sockets_facts(img: &Image, e: &Expect, put: &mut impl FnMut(String, String)) {
    let s = &img.minor4.sockets;
    for sd in s.shutdowns.iter() {
        put(format!("fd {:3} shutdown", sd.fd), format!("{}", sd.how));
    }
    for c in s.connects.iter() {
        put(
            format!("fd {:3} connected to", c.fd),
            format!("{:?}", String::from_utf8_lossy(&c.addr)),
        );
    }
    for q in s.queues.iter() {
        let text = if e.tree_fds.contains(&q.fd) {
            "(shared with the tree)".to_string()
        } else {
            dumpfmt::sockets::messages(&q.messages)
                .map(|m| match m {
                    Ok((from, data)) => format!("from {from:?}: {}", bytes(data)),
                    Err(why) => why.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        put(format!("fd {:3} queued messages", q.fd), text);
    }
    for t in s.tcp.iter() {
        put(
            format!("fd {:3} TCP end", t.fd),
            format!(
                "local {:?} peer {:?} data {}",
                t.local,
                t.peer,
                if e.tree_fds.contains(&t.fd) {
                    "(shared with the tree)".to_string()
                } else {
                    bytes(&t.data)
                }
            ),
        );
    }
    for a in s.epoll_aliases.iter() {
        let number = img
            .fds
            .iter()
            .find(|f| f.fd == a.epoll)
            .and_then(|f| match &f.kind {
                FdKind::Epoll { entries } => entries.get(a.entry as usize).map(|x| x.fd),
                _ => None,
            });
        put(
            format!("fd {:3} epoll entry {number:?} through", a.epoll),
            format!("fd {}", a.file),
        );
    }
}

/// Mappings with file indexes resolved to paths, neighbours with equal
/// attributes merged: (start, name, "end prot offset backing name").
/// `[heap]` is a name the kernel gives the anonymous mapping around the
/// program break (compared in `mm`): an anonymous neighbour merged into
/// the heap takes that name, so anonymous mappings merge across it.
fn merged_mappings(img: &Image) -> Vec<(u64, String, String)> {
    struct M {
        start: u64,
        end: u64,
        prot: u8,
        shared: bool,
        offset: u64,
        backing: String,
        /// Whether `offset` advances with the address (file-like backing).
        filelike: bool,
        name: String,
    }
    let mut out: Vec<M> = Vec::new();
    for m in img.mappings.iter() {
        let (backing, filelike) = match m.backing {
            Backing::File(i) => (
                match img.files.get(i as usize) {
                    Some(f) => format!("file {:?}", f),
                    None => format!("file #{i} (no such file record)"),
                },
                true,
            ),
            Backing::Fd(fd) => (format!("fd {fd}"), true),
            // The program's data: its size and times change as it writes.
            Backing::SharedFile(i) => (
                match img.files.get(i as usize) {
                    Some(f) => format!("shared file {:?}", f.path),
                    None => format!("shared file #{i} (no such file record)"),
                },
                true,
            ),
            other => (format!("{other:?}"), false),
        };
        let heap_merge = |a: &str, b: &str| {
            matches!(
                (a, b),
                ("", "[heap]") | ("[heap]", "") | ("[heap]", "[heap]")
            )
        };
        if let Some(last) = out.last_mut()
            && last.end == m.start
            && last.prot == m.prot
            && last.shared == m.shared
            && last.backing == backing
            && (last.name == m.name || (!filelike && heap_merge(&last.name, &m.name)))
            && (!filelike || last.offset + (last.end - last.start) == m.offset)
        {
            last.end = m.end;
            if m.name == "[heap]" {
                last.name = m.name.to_string();
            }
            continue;
        }
        out.push(M {
            start: m.start,
            end: m.end,
            prot: m.prot,
            shared: m.shared,
            offset: m.offset,
            backing,
            filelike,
            name: m.name.to_string(),
        });
    }
    out.into_iter()
        .map(|m| {
            let prot = format!(
                "{}{}{}{}",
                if m.prot & dumpfmt::PROT_READ != 0 {
                    'r'
                } else {
                    '-'
                },
                if m.prot & dumpfmt::PROT_WRITE != 0 {
                    'w'
                } else {
                    '-'
                },
                if m.prot & dumpfmt::PROT_EXEC != 0 {
                    'x'
                } else {
                    '-'
                },
                if m.shared { 's' } else { 'p' },
            );
            let offset = if m.filelike { m.offset } else { 0 };
            (
                m.start,
                m.name.clone(),
                format!(
                    "..{:#x} {prot} offset={offset:#x} {} {:?}",
                    m.end, m.backing, m.name
                ),
            )
        })
        .collect()
}

/// Renumbers kernel object ids (pipes, socket pairs) in order of appearance.
#[derive(Default)]
struct Renumber(Vec<u64>);

impl Renumber {
    fn id(&mut self, id: u64) -> usize {
        match self.0.iter().position(|&x| x == id) {
            Some(i) => i,
            None => {
                self.0.push(id);
                self.0.len() - 1
            }
        }
    }
}

/// Bytes as their length and a hash (FNV-1a), short enough for a diff.
fn bytes(b: &[u8]) -> String {
    let h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{} bytes (fnv {h:016x})", b.len())
}

/// One descriptor, with ids renumbered, remaining times reduced to
/// "armed", and byte contents to their length and hash. A file open for
/// writing may have changed on disk since the dump (the dumped process
/// went on, and a restore reopens it as it is then): its size and mtime
/// are not compared; a file open only for reading must not have changed
/// (the restore refuses it otherwise). A peer-gone descriptor's `what`
/// names a kernel inode number (`pipe:[N]`), which is not compared.
/// Epoll entries are separate facts (see [`facts`]).
fn describe_fd(fd: &Fd, ids: &mut Renumber) -> String {
    let kind = match &fd.kind {
        FdKind::File {
            path,
            offset,
            size,
            mtime_sec,
            mtime_nsec,
        } => {
            let stat = if fd.flags & libc::O_ACCMODE == libc::O_RDONLY {
                format!(", size: {size}, mtime: {mtime_sec}.{mtime_nsec:09}")
            } else {
                String::new()
            };
            format!("File {{ path: {path:?}, offset: {offset}{stat} }}")
        }
        FdKind::Contents {
            name,
            data,
            offset,
            memfd,
            seals,
        } => format!(
            "Contents {{ name: {name:?}, data: {}, offset: {offset}, memfd: {memfd}, seals: {seals:#x} }}",
            bytes(data)
        ),
        FdKind::Gone {
            what,
            sock_type,
            write,
            data,
        } => {
            let what = what.split('[').next().unwrap_or_default();
            format!(
                "Gone {{ what: {what:?}, sock_type: {sock_type}, write: {write}, data: {} }}",
                bytes(data)
            )
        }
        FdKind::Epoll { entries } => format!(
            "Epoll {{ {} entries beyond stdio }}",
            entries.iter().filter(|e| e.fd > 2).count()
        ),
        FdKind::Pipe {
            id,
            path,
            write,
            data,
            size,
        } => format!(
            "Pipe {{ id: #{}, path: {path:?}, write: {write}, data: {}, size: {size} }}",
            ids.id(*id),
            bytes(data)
        ),
        FdKind::UnixPair {
            id,
            peer,
            sock_type,
            data,
        } => format!(
            "UnixPair {{ id: #{}, peer: #{}, sock_type: {sock_type}, data: {} }}",
            ids.id(*id),
            ids.id(*peer),
            bytes(data)
        ),
        FdKind::Timerfd {
            clock,
            value_ns,
            interval_ns,
            ticks,
        } => {
            // An armed timer may expire again between the restore and the
            // check: its count is compared only when it is disarmed.
            let ticks = if *value_ns != 0 {
                "(armed)".to_string()
            } else {
                ticks.to_string()
            };
            format!(
                "Timerfd {{ clock: {clock}, armed: {}, interval_ns: {interval_ns}, ticks: {ticks} }}",
                *value_ns != 0
            )
        }
        other => format!("{other:?}"),
    };
    format!("flags={:#o} cloexec={} {kind}", fd.flags, fd.cloexec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("SIGUSR1"), Some(libc::SIGUSR1 as u8));
        assert_eq!(parse_signal("USR1"), Some(libc::SIGUSR1 as u8));
        assert_eq!(parse_signal("RTMIN+4"), Some((libc::SIGRTMIN() + 4) as u8));
        assert_eq!(parse_signal("NOPE"), None);
    }

    fn image() -> Image<'static> {
        let file = dumpfmt::FileId {
            path: "/bin/x".into(),
            size: 1,
            mtime_sec: 2,
            mtime_nsec: 3,
            dev: 4,
            ino: 5,
            build_id: vec![6].into(),
        };
        Image {
            pid: 100,
            time_ns: 1,
            sequence: 1,
            exe: file.clone(),
            cpu: Default::default(),
            files: vec![file].into(),
            mappings: vec![
                dumpfmt::Mapping {
                    start: 0x1000,
                    end: 0x2000,
                    prot: dumpfmt::PROT_READ,
                    shared: false,
                    offset: 0,
                    backing: Backing::File(0),
                    name: "/bin/x".into(),
                },
                dumpfmt::Mapping {
                    start: 0x2000,
                    end: 0x3000,
                    prot: dumpfmt::PROT_READ,
                    shared: false,
                    offset: 0x1000,
                    backing: Backing::File(0),
                    name: "/bin/x".into(),
                },
            ]
            .into(),
            runs: vec![].into(),
            threads: vec![dumpfmt::ThreadState {
                tid: 100,
                fs_base: 0x7000,
                ..Default::default()
            }]
            .into(),
            sigactions: vec![].into(),
            mm: Default::default(),
            auxv: vec![33, 0x7fff_0000, 0, 0].into(),
            settings: dumpfmt::Settings {
                signal: 12,
                image: "/tmp/x.img".into(),
                exit_after_dump: false,
                log_level: 0,
            },
            fds: vec![Fd {
                fd: 3,
                flags: libc::O_RDONLY,
                cloexec: false,
                kind: FdKind::Pipe {
                    id: 77,
                    path: "".into(),
                    write: false,
                    data: vec![1, 2].into(),
                    size: 4096,
                },
            }]
            .into(),
            process: Default::default(),
            minor1: Default::default(),
            minor2: Default::default(),
            minor3: Default::default(),
            minor4: Default::default(),
        }
    }

    fn expect(new_ids: bool) -> Expect {
        Expect {
            new_ids,
            settings: image().settings,
            moved: vec![],
            ticker: None,
            children: false,
            tree_fds: vec![],
        }
    }

    fn diff(a: &Image, b: &Image, e: &Expect) -> Vec<String> {
        differences(&facts(a, e, &a.settings), &facts(b, e, &b.settings))
            .into_iter()
            .map(|d| d.key)
            .collect()
    }

    #[test]
    fn what_may_differ_does_not_count() {
        let a = image();
        let mut b = image();
        b.time_ns = 99;
        b.runs = vec![dumpfmt::PageRun {
            addr: 0x1000,
            pages: 1,
            file_offset: 4096,
            crc: 0,
        }]
        .into();
        b.threads.to_mut()[0].context.rip = 0x1234;
        // One mapping split in two at the same offsets is the same memory.
        let mut one = image();
        one.mappings.to_mut().truncate(1);
        one.mappings.to_mut()[0].end = 0x3000;
        if let FdKind::Pipe { id, .. } = &mut b.fds.to_mut()[0].kind {
            *id = 12345;
        }
        assert!(diff(&a, &b, &expect(false)).is_empty());
        assert!(diff(&a, &one, &expect(false)).is_empty());
        b.pid = 200;
        b.threads.to_mut()[0].tid = 201;
        assert_eq!(
            diff(&a, &b, &expect(false)),
            ["pid", "thread fs_base=0x7000"]
        );
        assert!(diff(&a, &b, &expect(true)).is_empty());
    }

    #[test]
    fn what_must_match_fails() {
        let a = image();
        let mut b = image();
        b.fds.to_mut()[0].flags = libc::O_RDWR;
        b.threads.to_mut()[0].sigmask = 1;
        b.mappings.to_mut()[1].prot |= dumpfmt::PROT_WRITE;
        b.auxv.to_mut()[1] = 0x7fff_1000;
        b.process.umask = 0o77;
        assert_eq!(
            diff(&a, &b, &expect(false)),
            [
                "auxv 33",
                "fd   3",
                "mapping 0x1000",
                "mapping 0x2000",
                "process.umask",
                "thread fs_base=0x7000",
            ]
        );
    }

    #[test]
    fn known_bugs_match_only_their_case() {
        let k = "mapping 0x7f00";
        let e = Some("..0x7f01 r--p offset=0x0 Contents \"/d (deleted)\"");
        let g = Some("..0x7f01 r--p offset=0x0 Anonymous \"\"");
        assert!(deleted_mapping_became_anonymous(k, e, g));
        let shared = Some("..0x7f01 r--s offset=0x0 Contents \"/d (deleted)\"");
        assert!(!deleted_mapping_became_anonymous(k, shared, g));
        let other = Some("..0x7f02 r--p offset=0x0 Anonymous \"\"");
        assert!(!deleted_mapping_became_anonymous(k, e, other));
        let k = "fd   6 epoll entry 3";
        let fired = Some("events=0x40000000 data=0x1");
        assert!(oneshot_rearmed(
            k,
            fired,
            Some("events=0x40000018 data=0x1")
        ));
        assert!(!oneshot_rearmed(
            k,
            fired,
            Some("events=0x40000019 data=0x1")
        ));
        assert!(!oneshot_rearmed(
            k,
            Some("events=0x19 data=0x1"),
            Some("events=0x1 data=0x1")
        ));
    }

    #[test]
    fn differences_name_both_sides() {
        let a: BTreeMap<String, String> =
            [("x".to_string(), "1".to_string()), ("y".into(), "2".into())].into();
        let b: BTreeMap<String, String> =
            [("x".to_string(), "1".to_string()), ("z".into(), "3".into())].into();
        let d = differences(&a, &b);
        assert_eq!(d.len(), 2);
        assert!(d[0].line.contains("- 2") && d[0].line.contains("+ (missing)"));
        assert!(d[1].line.contains("- (missing)") && d[1].line.contains("+ 3"));
    }
}
