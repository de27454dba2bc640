//! `migrate ps`: this user's processes running under the library, from
//! their status files (see `migrate::status`). A file whose process is
//! gone (or whose PID now names another process) is stale and removed.

use serde_json::{Value, json};

use crate::status::{self, Status, alive, has_library};
use crate::{Failure, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (an array, one object per process) instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> Result<(), Failure> {
    let list = processes();
    if a.json {
        let v: Vec<Value> = list.iter().map(to_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON of plain values")
        );
        return Ok(());
    }
    println!(
        "{:<8} {:<16} {:<8} {:<40} LAST DUMP",
        "PID", "PROGRAM", "SIGNAL", "IMAGE"
    );
    for s in &list {
        println!(
            "{:<8} {:<16} {:<8} {:<40} {}",
            s.pid,
            program(s),
            signal_name(s.signal),
            s.image,
            last_dump(s)
        );
    }
    Ok(())
}

/// The live processes with a status, by PID; stale files removed.
fn processes() -> Vec<Status> {
    let Ok(dir) = status::dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut list = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_str().unwrap_or("");
        // A status write's temporary file, left by a process killed
        // between writing it and renaming it into place.
        if let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.parse::<i32>().ok())
        {
            if status::proc_stat(pid).is_none() {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        // A request or outcome left by a `migrate dump` that gave up, of a
        // process that is gone.
        let (head, tail) = name.split_once('.').unwrap_or((name, ""));
        if (tail.starts_with("req.") || tail.starts_with("done."))
            && head
                .parse::<i32>()
                .is_ok_and(|pid| status::proc_stat(pid).is_none())
        {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        let Some(s) = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| Status::parse(&t))
        else {
            // Not one this version reads: removed only once its process
            // is gone.
            if status::proc_stat(pid).is_none() {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        };
        // Gone, another process under that PID now, or an exec of a
        // program without the library: the file is of nobody.
        if s.pid != pid || !alive(pid, s.starttime) || matches!(has_library(pid), Ok(false)) {
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        list.push(s);
    }
    list.sort_by_key(|s| s.pid);
    list
}

fn program(s: &Status) -> &str {
    s.exe.rsplit('/').next().unwrap_or(&s.exe)
}

/// `USR2`, `RTMIN+4`, or the number.
pub fn signal_name(sig: i32) -> String {
    let names = [
        (libc::SIGHUP, "HUP"),
        (libc::SIGINT, "INT"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
        (libc::SIGALRM, "ALRM"),
        (libc::SIGTERM, "TERM"),
        (libc::SIGCONT, "CONT"),
        (libc::SIGWINCH, "WINCH"),
        (libc::SIGURG, "URG"),
        (libc::SIGXCPU, "XCPU"),
        (libc::SIGVTALRM, "VTALRM"),
        (libc::SIGPROF, "PROF"),
        (libc::SIGPWR, "PWR"),
    ];
    if let Some((_, n)) = names.iter().find(|(s, _)| *s == sig) {
        return (*n).to_string();
    }
    if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&sig) {
        return format!("RTMIN+{}", sig - libc::SIGRTMIN());
    }
    sig.to_string()
}

fn last_dump(s: &Status) -> String {
    if s.dumping {
        let done = s.progress.map_or(0, |p| p.0);
        return format!("dumping now ({} written)", human::size(done));
    }
    let Some(l) = &s.last else {
        return "-".into();
    };
    // `YYYY-MM-DD HH:MM:SS`, without the fraction.
    let when: String = human::time(l.time_ns).chars().take(19).collect();
    if l.ok {
        format!("{when} ok {} {}", human::size(l.size), l.path)
    } else {
        format!("{when} failed: {}", l.error)
    }
}

fn to_json(s: &Status) -> Value {
    let last = s.last.as_ref().map(|l| {
        json!({
            "time_ns": l.time_ns,
            "outcome": if l.ok { "ok" } else { "failed" },
            "path": l.path,
            "size": l.size,
            "pages": l.pages,
            "ms": l.ms,
            "error": if l.ok { Value::Null } else { Value::from(l.error.clone()) },
        })
    });
    json!({
        "pid": s.pid,
        "program": s.exe,
        "signal": s.signal,
        "signal_name": signal_name(s.signal),
        "image": s.image,
        "state": if s.dumping { "dumping" } else { "idle" },
        "dumps": s.dumps,
        "progress": s.progress.map(|(w, e)| json!({"written": w, "estimate": e})),
        "last_dump": last,
    })
}

#[cfg(test)]
mod tests {
    use super::signal_name;

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGUSR2), "USR2");
        assert_eq!(signal_name(libc::SIGRTMIN() + 4), "RTMIN+4");
        assert_eq!(
            migrate::config::parse_signal(&signal_name(libc::SIGRTMIN() + 4)),
            Some(libc::SIGRTMIN() + 4)
        );
    }
}
