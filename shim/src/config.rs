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
    /// `MIGRATE_CHILDREN`: what a dump does with a process that has
    /// children (`tree::children::REFUSE`, `LEAVE` or `TREE`).
    pub children: u8,
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
    children: 0,
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
    pub children: Option<u8>,
    /// `MIGRATE_RESTORE_CHECK`: where a restored process takes one dump
    /// as it resumes (absolute), to check the restore's fidelity. Read
    /// only by a restore; never a setting of the restored process.
    pub restore_check: Option<String>,
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
        Ok(o)
    }

    /// Applies the overrides to the settings.
    pub fn apply(&self, s: &mut Settings) {
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
        if let Some(c) = self.children {
            s.children = c;
        }
    }
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
}
