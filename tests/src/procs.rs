//! The process table as tests of trees see it: children, descendants,
//! states, signals, and waiting for a condition.

use std::fs;
use std::time::{Duration, Instant};

use crate::{Proc, TIMEOUT};

/// The children of every thread of `pid`, thread by thread in the
/// kernel's order (each thread's in the order it forked them); none if
/// `pid` is gone.
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut tids: Vec<i32> = tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect();
    // The main thread first: it forks most children.
    tids.sort_unstable_by_key(|&t| (t != pid, t));
    let mut out = Vec::new();
    for tid in tids {
        let path = format!("/proc/{pid}/task/{tid}/children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// Every descendant of `pid`, parents before children.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut all = Vec::new();
    let mut next = vec![pid];
    while let Some(p) = next.pop() {
        for c in children_of(p) {
            all.push(c);
            next.push(c);
        }
    }
    all
}

/// The program a process runs (`/proc/PID/exe`), empty if it is gone.
pub fn exe_of(pid: i32) -> String {
    fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The state letter of `/proc/PID/stat`, if it exists.
pub fn state_of(pid: i32) -> Option<char> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..].chars().next()
}

/// Whether `pid` has exited (gone, or a zombie).
pub fn has_exited(pid: i32) -> bool {
    state_of(pid).is_none_or(|s| s == 'Z')
}

/// Sends `sig` to `pid` (a negative `pid`: a process group), which must
/// exist.
pub fn send_signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with plain integers, to processes of this test.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Stops every one of `pids` first (none may react to another's end),
/// then kills them.
pub fn kill_all(pids: &[i32]) {
    for &pid in pids {
        // SAFETY: kill(2) with plain integers; the test's own processes.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
    }
    for &pid in pids {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Waits (at most `TIMEOUT`) until `cond` holds; on a timeout the
/// assertion names `what` and describes `context`.
pub fn wait_until(what: &str, context: &Proc, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}\n{}",
            context.describe()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The snapshot writers (`migrate-writer`) of programs run in `dir`: they
/// inherit the program's working directory and hold their image open.
pub fn writers_in(dir: &std::path::Path) -> Vec<i32> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let within = |link: std::path::PathBuf| link.starts_with(dir);
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "migrate-writer\n")
        })
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(within)
                || fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                    fds.flatten()
                        .any(|fd| fs::read_link(fd.path()).is_ok_and(within))
                })
        })
        .collect()
}

/// Waits until no snapshot writer of a program run in `dir` is left (a
/// program killed mid-dump may leave one finishing); panics after
/// `TIMEOUT`.
pub fn wait_for_writers(dir: &std::path::Path) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = writers_in(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "snapshot writers {left:?} of programs in {} did not finish",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The status file of `pid` (see `migrate::status`), empty if none.
pub fn status_text(pid: i32) -> String {
    // SAFETY: getuid takes no arguments.
    let uid = unsafe { libc::getuid() };
    let run = std::path::PathBuf::from(format!("/run/user/{uid}"));
    let dir = if run.is_dir() {
        run.join("migrate")
    } else {
        std::path::PathBuf::from(format!("/tmp/migrate-{uid}"))
    };
    fs::read_to_string(dir.join(pid.to_string())).unwrap_or_default()
}

/// The value of `key` in a status file's `text`.
pub fn status_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}
