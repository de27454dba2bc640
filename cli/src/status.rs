//! Reading the status files the library writes (format and directory:
//! `migrate::status`), and what `/proc` says about a process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use migrate::status::{DIR_MAX, check_dir, dir_path, stat_starttime};
use migrate::sys::line::Line;

/// One process's status file, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub pid: i32,
    pub starttime: u64,
    pub exe: String,
    pub signal: i32,
    pub image: String,
    pub dumping: bool,
    pub dumps: u64,
    pub request: u32,
    /// Bytes written and the estimate, while dumping.
    pub progress: Option<(u64, u64)>,
    /// The snapshot writer finishing the dump (PID and start time), while
    /// dumping: the program may end before it.
    pub writer: Option<(i32, u64)>,
    pub last: Option<Last>,
}

/// The last dump's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Last {
    pub time_ns: u64,
    pub ok: bool,
    pub path: String,
    pub size: u64,
    pub pages: u64,
    pub ms: u64,
    pub error: String,
}

impl Status {
    /// Parses a status file's text; `None` when a required key is missing
    /// or malformed (a file from another version, or not one at all).
    pub fn parse(text: &str) -> Option<Status> {
        let kv: HashMap<&str, &str> = text
            .lines()
            .map(|l| l.split_once(' ').unwrap_or((l, "")))
            .collect();
        let num = |k: &str| kv.get(k)?.parse::<u64>().ok();
        let mut s = Status {
            pid: i32::try_from(num("pid")?).ok()?,
            starttime: num("starttime")?,
            exe: kv.get("exe")?.to_string(),
            signal: i32::try_from(num("signal")?).ok()?,
            image: kv.get("image")?.to_string(),
            dumping: match *kv.get("state")? {
                "dumping" => true,
                "idle" => false,
                _ => return None,
            },
            dumps: num("dumps")?,
            request: u32::try_from(num("request")?).ok()?,
            progress: None,
            writer: None,
            last: None,
        };
        if let Some(w) = kv.get("writer") {
            let (a, b) = w.split_once(' ')?;
            s.writer = Some((a.parse().ok()?, b.parse().ok()?));
        }
        if let Some(p) = kv.get("progress") {
            let (a, b) = p.split_once(' ')?;
            s.progress = Some((a.parse().ok()?, b.parse().ok()?));
        }
        if kv.contains_key("last_outcome") {
            s.last = Some(Last {
                time_ns: num("last_time")?,
                ok: *kv.get("last_outcome")? == "ok",
                path: kv.get("last_path")?.to_string(),
                size: num("last_size")?,
                pages: num("last_pages")?,
                ms: num("last_ms")?,
                error: kv.get("last_error").unwrap_or(&"").to_string(),
            });
        }
        Some(s)
    }
}

/// This user's status directory, if it exists and is usable; else why not.
pub fn dir() -> Result<PathBuf, String> {
    let uid = migrate::sys::getuid();
    let mut d = Line::<DIR_MAX>::new();
    dir_path(uid, &mut d);
    let name = String::from_utf8_lossy(d.as_bytes()).into_owned();
    check_dir(&mut d, uid)
        .map(|()| PathBuf::from(&name))
        .map_err(|why| format!("{name}: {why}"))
}

/// `/proc/PID/stat` of a live process: (command name, start time,
/// state letter); `None` when there is no such process.
pub fn proc_stat(pid: i32) -> Option<(String, u64, char)> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let open = text.iter().position(|&c| c == b'(')?;
    let close = text.iter().rposition(|&c| c == b')')?;
    let comm = String::from_utf8_lossy(text.get(open + 1..close)?).into_owned();
    let state = *text.get(close + 2)? as char;
    Some((comm, stat_starttime(&text)?, state))
}

/// Whether the process `pid` that started at `starttime` still runs (a
/// zombie does not).
pub fn alive(pid: i32, starttime: u64) -> bool {
    proc_stat(pid).is_some_and(|(_, start, state)| start == starttime && state != 'Z')
}

/// Whether libmigrate.so is mapped in process `pid` (`Err`: its maps
/// cannot be read). A status file outlives an `exec` of a program without
/// the library: the dump signal must not be sent then.
pub fn has_library(pid: i32) -> std::io::Result<bool> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(maps.lines().any(|l| l.ends_with("/libmigrate.so")))
}

/// The status of `pid` in `dir`, if its file is there, parses, and is of
/// this very process (not of an earlier one with the same PID).
pub fn read(dir: &Path, pid: i32, starttime: u64) -> Option<Status> {
    let text = std::fs::read_to_string(dir.join(pid.to_string())).ok()?;
    Status::parse(&text).filter(|s| s.pid == pid && s.starttime == starttime)
}

/// Where the outcome of request `nonce` to `pid` goes.
pub fn done_path(dir: &Path, pid: i32, nonce: u32) -> PathBuf {
    dir.join(format!("{pid}.done.{nonce}"))
}

/// The outcome of request `nonce` to `pid`, once the process wrote it
/// (the status as of the end of that dump); the file is removed.
pub fn read_done(dir: &Path, pid: i32, nonce: u32) -> Option<Status> {
    let path = done_path(dir, pid, nonce);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Status::parse(&text).filter(|s| s.request == nonce && !s.dumping)
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate::status::{Status as Raw, TEXT_MAX, format};

    fn raw() -> Raw {
        let mut s = Raw::new();
        s.pid = 4242;
        s.starttime = 987_654;
        s.exe.str("/usr/bin/python3.11");
        s
    }

    fn text(s: &Raw, dumps: u64) -> String {
        let mut out = Line::<TEXT_MAX>::new();
        format(s, libc::SIGUSR2, b"/tmp/a b/app-%p.img", dumps, &mut out);
        String::from_utf8(out.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn idle_without_a_dump() {
        let s = Status::parse(&text(&raw(), 0)).unwrap();
        assert_eq!(
            s,
            Status {
                pid: 4242,
                starttime: 987_654,
                exe: "/usr/bin/python3.11".into(),
                signal: libc::SIGUSR2,
                image: "/tmp/a b/app-%p.img".into(),
                dumping: false,
                dumps: 0,
                request: 0,
                progress: None,
                writer: None,
                last: None,
            }
        );
    }

    #[test]
    fn dumping_with_progress() {
        let mut r = raw();
        r.dumping = true;
        r.request = 77;
        r.written = 1 << 20;
        r.estimate = 1 << 30;
        let s = Status::parse(&text(&r, 3)).unwrap();
        assert!(s.dumping);
        assert_eq!((s.dumps, s.request), (3, 77));
        assert_eq!(s.progress, Some((1 << 20, 1 << 30)));
    }

    #[test]
    fn last_dump_ok_and_failed() {
        let mut r = raw();
        r.has_last = true;
        r.request = 9;
        r.last.time_ns = 1_795_989_653_042_088_773;
        r.last.ok = true;
        r.last.path.str("/tmp/a b/app-4242.img");
        r.last.size = 184_581;
        r.last.pages = 43;
        r.last.ms = 3;
        let s = Status::parse(&text(&r, 1)).unwrap();
        assert_eq!(
            s.last,
            Some(Last {
                time_ns: 1_795_989_653_042_088_773,
                ok: true,
                path: "/tmp/a b/app-4242.img".into(),
                size: 184_581,
                pages: 43,
                ms: 3,
                error: String::new(),
            })
        );
        r.last.ok = false;
        r.last
            .error
            .str("fd 3 (anon_inode:[io_uring]): an io_uring cannot be saved");
        let s = Status::parse(&text(&r, 1)).unwrap();
        let last = s.last.unwrap();
        assert!(!last.ok);
        assert_eq!(
            last.error,
            "fd 3 (anon_inode:[io_uring]): an io_uring cannot be saved"
        );
    }

    #[test]
    fn not_a_status_file() {
        assert_eq!(Status::parse(""), None);
        assert_eq!(Status::parse("pid 1\nstarttime x\n"), None);
        let t = text(&raw(), 0).replace("state idle", "state asleep");
        assert_eq!(Status::parse(&t), None);
    }
}
