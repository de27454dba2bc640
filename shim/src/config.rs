//! Settings from the environment, read once in the constructor and kept in
//! static memory, where the signal handler reads them (and where a restored
//! process finds its old settings, since static memory is part of the image).

use core::cell::UnsafeCell;

use crate::sys::line::Line;

/// Longest image path pattern accepted.
pub const PATH_MAX: usize = 4096;

/// A static cell written only while the process has a single thread of
/// control for it (the constructor, or the dump/restore path with every
/// other thread parked) and read from the signal handler.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: every access is confined to moments with no concurrent access
// (constructor before the handler is installed, or the handler with all
// signals blocked), as the accessor contracts below require.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }

    /// # Safety
    /// No other reference to the value may be live (see the type's note).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's promise.
        unsafe { &mut *self.0.get() }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum LogLevel {
    Error = 0,
    Info = 1,
    Debug = 2,
}

/// Everything the shim keeps between the constructor and a dump.
pub struct Settings {
    pub signal: i32,
    /// Absolute image path pattern (`%p`, `%n`, `%%`).
    pub image: Line<PATH_MAX>,
    pub exit_after_dump: bool,
    pub log: LogLevel,
    /// Dumps made so far by this process and the processes it was restored from.
    pub sequence: u64,
    /// glibc's `__rseq_offset` and the registered rseq length (0: no rseq).
    pub rseq_offset: i64,
    pub rseq_len: u32,
    /// Offset of the cached TID in glibc's `struct pthread` (0: unknown).
    pub pthread_tid_offset: u32,
    /// `MIGRATE_EXTERNAL=refuse`: a descriptor connected to another
    /// process fails the dump instead of coming back with its peer gone.
    pub refuse_external: bool,
    /// `MIGRATE_CPU`: the baseline the program was started for (see
    /// `crate::cpu::level_of`; 0: the CPU it runs on).
    pub cpu_level: u8,
    /// `MIGRATE_CHILDREN`: what a dump does with a process that has
    /// children (`tree::children::REFUSE`, `LEAVE` or `TREE`).
    pub children: u8,
    /// `MIGRATE_SNAPSHOT`: a dump that lets the process go on writes its
    /// image from a copy-on-write snapshot (`true`, the default) or keeps
    /// the process stopped until the image is complete (`stop`); see
    /// `dump::snapshot`.
    pub snapshot: bool,
    /// `MIGRATE_INCREMENTAL`: the most incremental images in a chain after
    /// its full one (0: every dump is full; see `dump::incremental`).
    pub incremental: u32,
}

pub static SETTINGS: Global<Settings> = Global::new(Settings {
    signal: libc::SIGUSR2,
    image: Line::new(),
    exit_after_dump: false,
    log: LogLevel::Error,
    sequence: 0,
    rseq_offset: 0,
    rseq_len: 0,
    pthread_tid_offset: 0,
    refuse_external: false,
    cpu_level: 0,
    children: crate::tree::children::TREE,
    snapshot: true,
    incremental: 0,
});

/// A setting that could not be parsed: the variable and why.
#[derive(Debug)]
pub struct BadSetting(pub String);

/// Parses a signal by name (`USR2`, `SIGUSR2`, `RTMIN+4`, `SIGRTMAX-1`) or number.
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let rt = |base: i32, rest: &str| -> Option<i32> {
        let n = if rest.is_empty() {
            base
        } else if let Some(k) = rest.strip_prefix('+') {
            base + k.parse::<i32>().ok()?
        } else if let Some(k) = rest.strip_prefix('-') {
            base - k.parse::<i32>().ok()?
        } else {
            return None;
        };
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&n)
            .then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest);
    }
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "WINCH" => libc::SIGWINCH,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    };
    Some(n)
}

/// The `MIGRATE_*` variables present in an environment, parsed. `None`
/// fields were not set; a restore keeps the restored process's value there.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    pub signal: Option<i32>,
    pub image: Option<String>,
    pub exit_after_dump: Option<bool>,
    pub log: Option<u8>,
    pub refuse_external: Option<bool>,
    /// `MIGRATE_CPU`: a baseline level (see `crate::cpu::level_index`).
    /// Read when a program starts; a restore keeps the image's.
    pub cpu_level: Option<u8>,
    pub children: Option<u8>,
    /// `MIGRATE_SNAPSHOT`: `snapshot` (true) or `stop` (false).
    pub snapshot: Option<bool>,
    /// `MIGRATE_RESTORE_CHECK`: where a restored process takes one dump
    /// as it resumes (absolute), to check the restore's fidelity. Read
    /// only by a restore; never a setting of the restored process.
    pub restore_check: Option<String>,
    /// `MIGRATE_INTERVAL`: periodic dumps this many nanoseconds apart.
    pub interval_ns: Option<u64>,
    /// `MIGRATE_KEEP`: how many of the newest images to keep.
    pub keep: Option<u32>,
    /// `MIGRATE_RESTORE_MODE=lazy`: map the image's pages into place
    /// (see `restore::pages`); `eager` (the default) reads them.
    pub lazy: bool,
    /// `MIGRATE_INCREMENTAL`: see [`Settings::incremental`].
    pub incremental: Option<u32>,
}

impl Overrides {
    /// Reads the variables from the process environment. `cwd` resolves a
    /// relative image path.
    pub fn from_env(cwd: &str) -> Result<Overrides, BadSetting> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut o = Overrides::default();
        if let Some(v) = var("MIGRATE_SIGNAL") {
            let sig = parse_signal(&v).ok_or_else(|| {
                BadSetting(format!("MIGRATE_SIGNAL={v}: not a signal name or number"))
            })?;
            if [
                libc::SIGKILL,
                libc::SIGSTOP,
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGILL,
                libc::SIGFPE,
            ]
            .contains(&sig)
            {
                return Err(BadSetting(format!(
                    "MIGRATE_SIGNAL={v}: this signal cannot trigger a dump"
                )));
            }
            o.signal = Some(sig);
        }
        if let Some(v) = var("MIGRATE_IMAGE") {
            o.image = Some(absolute("MIGRATE_IMAGE", &v, cwd)?);
        }
        if let Some(v) = var("MIGRATE_RESTORE_CHECK") {
            o.restore_check = Some(absolute("MIGRATE_RESTORE_CHECK", &v, cwd)?);
        }
        if let Some(v) = var("MIGRATE_RESTORE_MODE") {
            o.lazy = crate::restore::pages::parse_mode(&v).map_err(BadSetting)?;
        }
        if let Some(v) = var("MIGRATE_AFTER_DUMP") {
            o.exit_after_dump = Some(match v.as_str() {
                "continue" => false,
                "exit" => true,
                _ => {
                    return Err(BadSetting(format!(
                        "MIGRATE_AFTER_DUMP={v}: expected continue or exit"
                    )));
                }
            });
        }
        if let Some(v) = var("MIGRATE_LOG") {
            o.log = Some(match v.as_str() {
                "error" => 0,
                "info" => 1,
                "debug" => 2,
                _ => {
                    return Err(BadSetting(format!(
                        "MIGRATE_LOG={v}: expected error, info or debug"
                    )));
                }
            });
        }
        if let Some(v) = var("MIGRATE_CPU") {
            o.cpu_level = match v.as_str() {
                "native" => Some(0),
                _ => Some(crate::cpu::level_index(&v).ok_or_else(|| {
                    BadSetting(format!(
                        "MIGRATE_CPU={v}: expected native, x86-64, x86-64-v2, x86-64-v3 or x86-64-v4"
                    ))
                })?),
            };
        }
        if let Some(v) = var("MIGRATE_EXTERNAL") {
            o.refuse_external = Some(match v.as_str() {
                "refuse" => true,
                "gone" | "close" => false,
                _ => {
                    return Err(BadSetting(format!(
                        "MIGRATE_EXTERNAL={v}: expected refuse or gone"
                    )));
                }
            });
        }
        if let Some(v) = var("MIGRATE_INTERVAL") {
            o.interval_ns = Some(
                parse_interval(&v)
                    .map_err(|why| BadSetting(format!("MIGRATE_INTERVAL={v}: {why}")))?,
            );
        }
        if let Some(v) = var("MIGRATE_KEEP") {
            o.keep =
                Some(parse_keep(&v).map_err(|why| BadSetting(format!("MIGRATE_KEEP={v}: {why}")))?);
        }
        if let Some(v) = var("MIGRATE_INCREMENTAL") {
            o.incremental = Some(
                parse_incremental(&v)
                    .map_err(|why| BadSetting(format!("MIGRATE_INCREMENTAL={v}: {why}")))?,
            );
        }
        if let Some(v) = var("MIGRATE_CHILDREN") {
            o.children = Some(match v.as_str() {
                "refuse" => 0,
                "leave" => 1,
                "tree" => 2,
                _ => {
                    return Err(BadSetting(format!(
                        "MIGRATE_CHILDREN={v}: expected refuse, leave or tree"
                    )));
                }
            });
        }
        if let Some(v) = var("MIGRATE_SNAPSHOT") {
            o.snapshot = Some(parse_snapshot(&v).map_err(BadSetting)?);
        }
        Ok(o)
    }

    /// With `MIGRATE_KEEP`, the image pattern (`MIGRATE_IMAGE`, else
    /// `default_image`) must number its images: refuses one without `%n`,
    /// whose every dump would replace the last.
    pub fn check_keep(&self, default_image: &str) -> Result<(), BadSetting> {
        let Some(keep) = self.keep else {
            return Ok(());
        };
        let pattern = self.image.as_deref().unwrap_or(default_image);
        if has_number(pattern.as_bytes()) {
            return Ok(());
        }
        Err(BadSetting(format!(
            "MIGRATE_KEEP={keep}: the image pattern {pattern} has no %n, so every dump would \
             replace the last; add %n to MIGRATE_IMAGE (e.g. MIGRATE_IMAGE=migrate-%p-%n.img)"
        )))
    }

    /// Applies the overrides to the settings.
    pub fn apply(&self, s: &mut Settings) {
        if let Some(n) = self.incremental {
            s.incremental = n;
        }
        if let Some(sig) = self.signal {
            s.signal = sig;
        }
        if let Some(img) = &self.image {
            s.image.clear();
            s.image.str(img);
        }
        if let Some(e) = self.exit_after_dump {
            s.exit_after_dump = e;
        }
        if let Some(l) = self.log {
            s.log = level(l);
        }
        if let Some(r) = self.refuse_external {
            s.refuse_external = r;
        }
        if let Some(l) = self.cpu_level {
            s.cpu_level = l;
        }
        if let Some(c) = self.children {
            s.children = c;
        }
        if let Some(v) = self.snapshot {
            s.snapshot = v;
        }
    }
}

/// Parses `MIGRATE_SNAPSHOT`: `snapshot` (write the image from a
/// copy-on-write snapshot while the process goes on) or `stop`.
pub fn parse_snapshot(v: &str) -> Result<bool, String> {
    match v {
        "snapshot" => Ok(true),
        "stop" => Ok(false),
        _ => Err(format!("MIGRATE_SNAPSHOT={v}: expected snapshot or stop")),
    }
}

/// Shortest `MIGRATE_INTERVAL`: a dump stops the program while it writes,
/// and a tick that comes while one is written is skipped anyway.
pub const MIN_INTERVAL_NS: u64 = 1_000_000_000;
/// Longest `MIGRATE_INTERVAL` (a year).
pub const MAX_INTERVAL_NS: u64 = 365 * 24 * 3600 * 1_000_000_000;
/// Most images `MIGRATE_KEEP` keeps (the shim remembers their paths in
/// static memory).
pub const KEEP_MAX: u32 = 32;

/// Parses a duration: a number and a unit (`ms`, `s`, `m`, `h`, `d`),
/// repeated (`1h30m`), or a bare number of seconds; at least
/// [`MIN_INTERVAL_NS`].
pub fn parse_interval(s: &str) -> Result<u64, String> {
    const UNITS: &str = "expected a duration such as 30s, 5m, 1h or 1h30m";
    let t = s.trim();
    let ns = if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) {
        t.parse::<u64>()
            .ok()
            .and_then(|v| v.checked_mul(1_000_000_000))
    } else {
        let mut total = Some(0u64);
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let unit_len = rest[digits..]
                .bytes()
                .take_while(u8::is_ascii_alphabetic)
                .count();
            if digits == 0 || unit_len == 0 {
                return Err(UNITS.into());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| "number too large")?;
            let scale: u64 = match &rest[digits..digits + unit_len] {
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60 * 1_000_000_000,
                "h" => 3600 * 1_000_000_000,
                "d" => 86400 * 1_000_000_000,
                _ => return Err(format!("unknown unit; {UNITS}")),
            };
            total = total.and_then(|t| t.checked_add(n.checked_mul(scale)?));
            rest = &rest[digits + unit_len..];
        }
        if t.is_empty() { None } else { total }
    };
    let Some(ns) = ns else {
        return Err(UNITS.into());
    };
    if ns < MIN_INTERVAL_NS {
        return Err("shorter than the minimum, 1s".into());
    }
    if ns > MAX_INTERVAL_NS {
        return Err("longer than the maximum, 365d".into());
    }
    Ok(ns)
}

/// Most incremental images `MIGRATE_INCREMENTAL` allows in one chain.
pub const INCREMENTAL_MAX: u32 = 255;

/// Parses `MIGRATE_INCREMENTAL`: `off` (0) or a number of incremental
/// images per chain from 1 to [`INCREMENTAL_MAX`].
pub fn parse_incremental(s: &str) -> Result<u32, String> {
    match s.trim() {
        "off" | "0" => Ok(0),
        v => match v.parse::<u32>() {
            Ok(n) if (1..=INCREMENTAL_MAX).contains(&n) => Ok(n),
            _ => Err(format!(
                "expected off or a chain length from 1 to {INCREMENTAL_MAX}"
            )),
        },
    }
}

/// Parses `MIGRATE_KEEP`: a number from 1 to [`KEEP_MAX`].
pub fn parse_keep(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=KEEP_MAX).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of images from 1 to {KEEP_MAX}")),
    }
}

/// Whether an image pattern has `%n` (not `%%n`).
pub fn has_number(pattern: &[u8]) -> bool {
    let mut i = 0;
    while i + 1 < pattern.len() {
        if pattern[i] == b'%' {
            if pattern[i + 1] == b'n' {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// `v` (the value of `key`) made absolute against `cwd`, checked to fit
/// (with room for what `%p` and `%n` expand to).
fn absolute(key: &str, v: &str, cwd: &str) -> Result<String, BadSetting> {
    let abs = if v.starts_with('/') {
        v.to_string()
    } else {
        format!("{}/{v}", cwd.trim_end_matches('/'))
    };
    if abs.len() + 32 >= PATH_MAX {
        return Err(BadSetting(format!("{key}={v}: path too long")));
    }
    Ok(abs)
}

pub fn level(l: u8) -> LogLevel {
    match l {
        0 => LogLevel::Error,
        1 => LogLevel::Info,
        _ => LogLevel::Debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("USR2"), Some(libc::SIGUSR2));
        assert_eq!(parse_signal("SIGUSR1"), Some(libc::SIGUSR1));
        assert_eq!(parse_signal("12"), Some(12));
        assert_eq!(parse_signal("RTMIN+4"), Some(libc::SIGRTMIN() + 4));
        assert_eq!(parse_signal("sigrtmax-1"), Some(libc::SIGRTMAX() - 1));
        assert_eq!(parse_signal("RTMIN+99"), None);
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("0"), None);
    }

    #[test]
    fn snapshot_modes() {
        assert_eq!(parse_snapshot("snapshot"), Ok(true));
        assert_eq!(parse_snapshot("stop"), Ok(false));
        let bad = parse_snapshot("cow").unwrap_err();
        assert_eq!(bad, "MIGRATE_SNAPSHOT=cow: expected snapshot or stop");
    }

    #[test]
    fn intervals() {
        let s = 1_000_000_000u64;
        assert_eq!(parse_interval("30s"), Ok(30 * s));
        assert_eq!(parse_interval("5m"), Ok(300 * s));
        assert_eq!(parse_interval("1h"), Ok(3600 * s));
        assert_eq!(parse_interval("1h30m"), Ok(5400 * s));
        assert_eq!(parse_interval("1m30s"), Ok(90 * s));
        assert_eq!(parse_interval("1500ms"), Ok(1500 * s / 1000));
        assert_eq!(parse_interval("2d"), Ok(2 * 86400 * s));
        assert_eq!(parse_interval("1s"), Ok(s));
        assert_eq!(parse_interval("45"), Ok(45 * s));
        assert_eq!(parse_interval(" 10s "), Ok(10 * s));
        for bad in ["", "s", "10x", "1.5s", "-5s", "10 s", "m5", "1h30", "ten"] {
            assert!(parse_interval(bad).is_err(), "{bad:?} was taken");
        }
        let short = parse_interval("500ms").unwrap_err();
        assert!(short.contains("minimum, 1s"), "{short}");
        assert!(parse_interval("999ms").is_err());
        assert!(parse_interval("366d").is_err());
        assert!(parse_interval("99999999999999999999s").is_err());
        assert!(parse_interval("18446744073709551615h").is_err());
    }

    #[test]
    fn incremental_chain_lengths() {
        assert_eq!(parse_incremental("off"), Ok(0));
        assert_eq!(parse_incremental("0"), Ok(0));
        assert_eq!(parse_incremental("8"), Ok(8));
        assert_eq!(parse_incremental("255"), Ok(255));
        for bad in ["", "256", "-1", "on", "1.5"] {
            assert!(parse_incremental(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn keeps() {
        assert_eq!(parse_keep("1"), Ok(1));
        assert_eq!(parse_keep("32"), Ok(32));
        for bad in ["0", "33", "-1", "two", ""] {
            assert!(parse_keep(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn numbered_patterns() {
        assert!(has_number(b"/x/app-%n.img"));
        assert!(has_number(b"%n"));
        assert!(!has_number(b"/x/app-%p.img"));
        assert!(!has_number(b"/x/100%%n.img"));
        assert!(has_number(b"/x/100%%%n.img"));
        assert!(!has_number(b"/x/app-%"));
    }

    #[test]
    fn keep_needs_a_numbered_pattern() {
        let o = Overrides {
            keep: Some(2),
            ..Overrides::default()
        };
        let e = o.check_keep("/w/migrate-%p.img").unwrap_err().0;
        assert!(e.starts_with("MIGRATE_KEEP=2: "), "{e}");
        assert!(e.contains("add %n to MIGRATE_IMAGE"), "{e}");
        assert!(o.check_keep("/w/migrate-%p-%n.img").is_ok());
        let o = Overrides {
            image: Some("/w/a-%n.img".into()),
            ..o
        };
        assert!(o.check_keep("/w/migrate-%p.img").is_ok());
        assert!(Overrides::default().check_keep("/w/x.img").is_ok());
    }
}
