//! `migrate inspect`: what an image holds, for people (the default) or
//! as JSON (`--json`, the same facts and numbers). Environment values stay
//! hidden without `--env`: they may be secrets.

use std::fmt::Write as _;
use std::path::PathBuf;

use dumpfmt::{Backing, FdKind, Image, ImageFile, PAGE_SIZE};
use serde_json::{Value, json};

use crate::{Failure, human, memory};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to inspect.
    image: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Show the values of environment variables (they may be secrets).
    #[arg(long)]
    env: bool,
}

const NOT_RECORDED: &str = "not recorded";

pub fn main(a: Args) -> Result<(), Failure> {
    let path = a.image.to_string_lossy().into_owned();
    let opened = dumpfmt::open_any(&a.image).map_err(|e| {
        use dumpfmt::Error as E;
        use migrate::restore::exit;
        let code = match &e {
            E::Io(_) => exit::NO_IMAGE,
            E::NewerVersion { .. } | E::OlderVersion { .. } => exit::VERSION,
            _ => exit::CORRUPT,
        };
        Failure::new(code, format!("inspect {path}: {e}"))
    })?;
    let img = match opened {
        dumpfmt::Opened::Single(img) => img,
        dumpfmt::Opened::Tree(t) => {
            tree(&t, a.json, a.env);
            return Ok(());
        }
    };
    let facts = Facts::of(&img, a.env);
    if a.json {
        let v = json(&img, &facts);
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON of plain values")
        );
    } else {
        print!("{}", text(&img, &facts));
    }
    Ok(())
}

/// A tree image: its processes (index order: each parent before its
/// children), then each one's image as for a single one.
fn tree(t: &dumpfmt::TreeFile, as_json: bool, show_env: bool) {
    let members = t.tree.members.iter().zip(&t.sections);
    if as_json {
        let v = json!({
            "format": { "major": t.header.major, "minor": t.header.minor },
            "tree": true,
            "members": members.map(|(m, img)| json!({
                "pid": m.pid, "ppid": m.ppid, "pgid": m.pgid, "sid": m.sid,
                "program": img.image.exe.path,
                "section": { "offset": m.offset, "bytes": m.len },
                "image": json(img, &Facts::of(img, show_env)),
            })).collect::<Vec<_>>(),
            "totals": { "file_bytes": t.header.file_len, "processes": t.sections.len() },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON of plain values")
        );
        return;
    }
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "format      {}.{}, a tree image of {} processes ({})",
        t.header.major,
        t.header.minor,
        t.sections.len(),
        human::size(t.header.file_len)
    );
    let _ = writeln!(w, "processes   pid ppid pgid sid program (section size)");
    for (m, img) in members.clone() {
        let _ = writeln!(
            w,
            "  {} {} {} {} {} ({})",
            m.pid,
            m.ppid,
            m.pgid,
            m.sid,
            img.image.exe.path,
            human::size(m.len)
        );
    }
    for (m, img) in members {
        let _ = writeln!(w, "\n--- process {} ---", m.pid);
        w.push_str(&text(img, &Facts::of(img, show_env)));
    }
    print!("{o}");
}

/// What is derived from the image rather than read from one field.
struct Facts {
    argv: Option<Vec<String>>,
    /// (name, value if shown).
    env: Option<Vec<(String, Option<String>)>>,
    /// Bytes stored in the image for each mapping.
    stored: Vec<u64>,
    data_bytes: u64,
    meta_len: u64,
}

impl Facts {
    fn of(img: &ImageFile, show_env: bool) -> Facts {
        let image = &img.image;
        let mm = &image.mm;
        let argv = memory::strings(img, mm.arg_start, mm.arg_end);
        let env = memory::strings(img, mm.env_start, mm.env_end).map(|v| {
            v.into_iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, val)) => (k.to_string(), show_env.then(|| val.to_string())),
                    None => (kv, None),
                })
                .collect()
        });
        // Runs are in address order (checked when the image was opened):
        // each mapping's are found by binary search, not a scan of all
        // (mappings times runs took minutes on a large image).
        let runs = &image.runs[..];
        let stored = image
            .mappings
            .iter()
            .map(|m| {
                let from = runs.partition_point(|r| r.addr < m.start);
                let to = runs.partition_point(|r| r.addr < m.end);
                runs[from..to.max(from)]
                    .iter()
                    .map(|r| r.pages * PAGE_SIZE)
                    .sum()
            })
            .collect();
        Facts {
            argv,
            env,
            stored,
            data_bytes: image.runs.iter().map(|r| r.pages * PAGE_SIZE).sum(),
            meta_len: img.header.meta_len,
        }
    }
}

fn backing(image: &Image<'_>, b: Backing) -> String {
    let file = |i: u32| {
        image
            .files
            .get(i as usize)
            .map_or("?".to_string(), |f| f.path.to_string())
    };
    match b {
        Backing::Anonymous => "anonymous".to_string(),
        Backing::File(i) => format!("file {}", file(i)),
        Backing::Contents => "contents".to_string(),
        Backing::Kernel => "kernel".to_string(),
        Backing::Fd(n) => format!("fd {n}"),
        Backing::SharedFile(i) => format!("data file {}", file(i)),
    }
}

/// (kind, target, offset) of a descriptor.
fn fd_kind(image: &Image<'_>, fd: &dumpfmt::Fd<'_>) -> (&'static str, String, Option<u64>) {
    // A large unnamed file's data is with the page data: its size, and
    // what the image holds of it (its holes left out).
    if let (
        FdKind::Contents {
            name,
            offset,
            memfd,
            ..
        },
        Some(dumpfmt::files::How::Stored { size, runs, .. }),
    ) = (&fd.kind, image.minor4.files.of(fd.fd))
    {
        let held: u64 = runs.iter().map(|r| r.stored_len()).sum();
        return (
            if *memfd { "memfd" } else { "deleted" },
            format!(
                "{name} ({}, {} stored with the page data)",
                human::size(*size),
                human::size(held)
            ),
            Some(*offset),
        );
    }
    match &fd.kind {
        FdKind::File { path, offset, .. } => ("file", path.to_string(), Some(*offset)),
        FdKind::Contents {
            name,
            data,
            offset,
            memfd,
            ..
        } => (
            if *memfd { "memfd" } else { "deleted" },
            format!("{name} ({})", human::size(data.len() as u64)),
            Some(*offset),
        ),
        FdKind::Dir { path, offset } => ("dir", path.to_string(), Some(*offset)),
        FdKind::Device { path } => ("device", path.to_string(), None),
        FdKind::Pipe {
            id, path, write, ..
        } => {
            let end = if *write { "write" } else { "read" };
            let what = if path.is_empty() {
                format!("pipe {id} ({end} end)")
            } else {
                format!("FIFO {path} ({end} end)")
            };
            ("pipe", what, None)
        }
        FdKind::Gone { what, .. } => ("gone", what.to_string(), None),
        FdKind::Eventfd { count, .. } => ("eventfd", format!("count {count}"), None),
        FdKind::Timerfd {
            clock,
            value_ns,
            interval_ns,
            ..
        } => (
            "timerfd",
            format!("clock {clock}, {value_ns} ns left, every {interval_ns} ns"),
            None,
        ),
        FdKind::Signalfd { mask } => (
            "signalfd",
            format!("signals {}", human::sigset(*mask)),
            None,
        ),
        FdKind::Epoll { entries } => {
            let fds: Vec<String> = entries.iter().map(|e| e.fd.to_string()).collect();
            ("epoll", format!("fds [{}]", fds.join(",")), None)
        }
        FdKind::Socket {
            family,
            sock_type,
            listening,
            addr,
            ..
        } => (
            "socket",
            format!(
                "family {family}, type {sock_type}{}, address {} bytes",
                if *listening { ", listening" } else { "" },
                addr.len()
            ),
            None,
        ),
        FdKind::UnixPair { id, peer, .. } => ("unixpair", format!("{id} to {peer}"), None),
        FdKind::Dup { of } => ("dup", format!("fd {of}"), None),
    }
}

fn thread_name(name: &[u8; 16]) -> String {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn text(img: &ImageFile, f: &Facts) -> String {
    let image = &img.image;
    let h = &img.header;
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "format      {}.{}", h.major, h.minor);
    let _ = writeln!(
        w,
        "taken       {} ({} ns)",
        human::time(image.time_ns),
        image.time_ns
    );
    let _ = writeln!(w, "host        {NOT_RECORDED}");
    let _ = writeln!(w, "kernel      {NOT_RECORDED}");
    let _ = writeln!(w, "pid         {}", image.pid);
    let _ = writeln!(w, "sequence    {}", image.sequence);
    let e = &image.exe;
    let _ = writeln!(
        w,
        "program     {} ({}, build-id {})",
        e.path,
        human::size(e.size),
        if e.build_id.is_empty() {
            "none".to_string()
        } else {
            hex(&e.build_id)
        }
    );
    match &f.argv {
        Some(v) => {
            let q: Vec<String> = v.iter().map(|a| format!("{a:?}")).collect();
            let _ = writeln!(w, "argv        {}", q.join(" "));
        }
        None => {
            let _ = writeln!(w, "argv        not in the image");
        }
    }
    match &f.env {
        Some(v) => {
            let hidden = v.iter().all(|(_, val)| val.is_none());
            let _ = writeln!(
                w,
                "environment {} variables{}",
                v.len(),
                if hidden {
                    " (values hidden; --env shows them)"
                } else {
                    ""
                }
            );
            for (k, val) in v {
                match val {
                    Some(val) => {
                        let _ = writeln!(w, "  {k}={val}");
                    }
                    None => {
                        let _ = writeln!(w, "  {k}");
                    }
                }
            }
        }
        None => {
            let _ = writeln!(w, "environment not in the image");
        }
    }
    let isa = image.isa();
    let words: Vec<String> = isa.words.iter().map(|x| format!("{x:08x}")).collect();
    let _ = writeln!(
        w,
        "cpu         xcr0 {:#x}, cpuid {}",
        isa.xcr0,
        words.join(" ")
    );
    for line in human::wrap(&isa.names(), 88) {
        let _ = writeln!(w, "            {line}");
    }
    match &image.minor2.baseline {
        Some(b) => {
            let _ = writeln!(
                w,
                "baseline    {} (a restore needs only its features)",
                b.name
            );
        }
        None => {
            let _ = writeln!(
                w,
                "baseline    none (a restore needs the features above that programs use)"
            );
        }
    }
    let s = &image.settings;
    let _ = writeln!(
        w,
        "settings    signal {}, image {}, after dump {}, log level {}",
        s.signal,
        s.image,
        if s.exit_after_dump {
            "exit"
        } else {
            "continue"
        },
        s.log_level
    );
    let _ = writeln!(w, "capture     {}", capture_text(&image.minor4.capture));

    let _ = writeln!(w, "\nthreads ({})", image.threads.len());
    let _ = writeln!(
        w,
        "  {:>8}  {:<16}  {:<18}  {:<18}  sigmask",
        "tid", "name", "rip", "rsp"
    );
    for t in image.threads.iter() {
        let _ = writeln!(
            w,
            "  {:>8}  {:<16}  {:#018x}  {:#018x}  {}",
            t.tid,
            thread_name(&t.name),
            t.context.rip,
            t.context.rsp,
            human::sigset(t.sigmask)
        );
    }

    let _ = writeln!(w, "\nmappings ({})", image.mappings.len());
    for (m, stored) in image.mappings.iter().zip(&f.stored) {
        let _ = writeln!(
            w,
            "  {:012x}-{:012x} {} {:>10}  stored {:>10}  {}{}",
            m.start,
            m.end,
            human::prot(m.prot, m.shared),
            human::size(m.end - m.start),
            human::size(*stored),
            backing(image, m.backing),
            if m.name.is_empty() || matches!(m.backing, Backing::File(_) | Backing::SharedFile(_)) {
                String::new()
            } else {
                format!(" {}", m.name)
            }
        );
    }

    let _ = writeln!(w, "\ndescriptors ({} beyond stdio)", image.fds.len());
    for fd in image.fds.iter() {
        let (kind, target, offset) = fd_kind(image, fd);
        let _ = writeln!(
            w,
            "  {:>4}  {:<9} {}  [{}]{}",
            fd.fd,
            kind,
            target,
            human::fd_flags(fd.flags, fd.cloexec),
            offset.map_or(String::new(), |o| format!(" offset {o}"))
        );
    }

    let p = &image.process;
    let _ = writeln!(w, "\nprocess");
    let _ = writeln!(w, "  cwd          {}", p.cwd);
    let _ = writeln!(w, "  umask        {:04o}", p.umask);
    let _ = writeln!(w, "  personality  {:#x}", p.personality);
    let _ = writeln!(w, "  pending      {}", human::sigset(p.pending));
    for (name, (value, interval)) in ["real", "virtual", "prof"].iter().zip(p.itimers) {
        if value != 0 || interval != 0 {
            let _ = writeln!(w, "  itimer {name:<6}{value} us left, every {interval} us");
        }
    }
    let _ = writeln!(
        w,
        "  brk          {:#x}-{:#x}",
        image.mm.start_brk, image.mm.brk
    );
    let _ = writeln!(w, "  sigactions   {}", image.sigactions.len());
    for &(res, soft, hard) in p.rlimits.iter() {
        let _ = writeln!(
            w,
            "  rlimit {:<10} {} / {}",
            human::rlimit_name(res),
            human::limit(soft),
            human::limit(hard)
        );
    }

    let m1 = &image.minor1;
    let _ = writeln!(w, "\nposix timers ({})", m1.posix_timers.len());
    for t in m1.posix_timers.iter() {
        // The library's own timer (MIGRATE_INTERVAL), by its value.
        let ours = if t.value == migrate::dump::periodic::TICK_MAGIC {
            " (the library's periodic dumps)"
        } else {
            ""
        };
        let _ = writeln!(
            w,
            "  id {} clock {} notify {} signal {} tid {}: {} ns left, every {} ns{ours}",
            t.id, t.clock, t.notify, t.signal, t.tid, t.value_ns, t.interval_ns
        );
    }
    if h.minor >= 1 {
        let _ = writeln!(w, "\ncredentials");
        for (t, c) in image.threads.iter().zip(m1.credentials.iter()) {
            let _ = writeln!(
                w,
                "  {:>8}  eff {:#x} perm {:#x} inh {:#x} bnd {:#x} amb {:#x} securebits {:#x} no_new_privs {}",
                t.tid,
                c.effective,
                c.permitted,
                c.inheritable,
                c.bounding,
                c.ambient,
                c.securebits,
                c.no_new_privs
            );
        }
    } else {
        let _ = writeln!(w, "\ncredentials {NOT_RECORDED} (format 1.0)");
    }
    let members = &image.minor3.members;
    if !members.zombies.is_empty() || members.stop.is_some() {
        let _ = writeln!(w, "\ntree members");
        if let Some(s) = members.stop {
            let _ = writeln!(
                w,
                "  stopped by signal {} (its parent {} the report)",
                s.signal,
                if s.reported {
                    "had not taken"
                } else {
                    "had taken"
                }
            );
        }
        for z in members.zombies.iter() {
            let how = if z.killed {
                "killed by signal"
            } else {
                "exited"
            };
            let _ = writeln!(
                w,
                "  zombie child {}: {how} {}, pgid {} sid {}",
                z.pid, z.status, z.pgid, z.sid
            );
        }
    }

    let chain = &image.minor4.incremental;
    if !chain.is_standalone() {
        let _ = writeln!(
            w,
            "\nincremental over ({} ancestors, parent first)",
            chain.ancestors.len()
        );
        for (i, a) in chain.ancestors.iter().enumerate() {
            let pages: u64 = chain
                .inherited
                .iter()
                .filter(|r| r.ancestor as usize == i + 1)
                .map(|r| r.pages)
                .sum();
            let _ = writeln!(
                w,
                "  {} {} ({} bytes, meta crc {:08x}): {} pages of this image",
                i + 1,
                a.path,
                a.file_len,
                a.meta_crc,
                pages
            );
        }
    }
    let _ = writeln!(w, "\ntotals");
    let _ = writeln!(
        w,
        "  file         {} ({} bytes)",
        human::size(h.file_len),
        h.file_len
    );
    let _ = writeln!(
        w,
        "  page data    {} ({} bytes) in {} runs",
        human::size(f.data_bytes),
        f.data_bytes,
        image.runs.len()
    );
    let _ = writeln!(
        w,
        "  metadata     {} ({} bytes)",
        human::size(f.meta_len),
        f.meta_len
    );
    let mapped: u64 = image.mappings.iter().map(|m| m.end - m.start).sum();
    let _ = writeln!(
        w,
        "  mapped       {} ({} bytes) in {} mappings",
        human::size(mapped),
        mapped,
        image.mappings.len()
    );
    let _ = writeln!(w, "  files        {}", image.files.len());
    let _ = writeln!(w, "  threads      {}", image.threads.len());
    let _ = writeln!(w, "  descriptors  {}", image.fds.len());
    o
}

/// How the dump froze the process, and for how long when that is known.
fn capture_text(c: &dumpfmt::Capture) -> String {
    match c.mode {
        // The pause of a stopped dump is the whole dump, which the image
        // cannot hold (it was not over when the metadata was written).
        dumpfmt::CaptureMode::Stopped => {
            "stopped, the process stayed stopped for the whole dump".to_string()
        }
        dumpfmt::CaptureMode::Snapshot => format!(
            "snapshot, the process stopped {} ({} ns) while a writer wrote the image",
            human::duration(c.pause_ns),
            c.pause_ns
        ),
    }
}

fn capture_mode(m: dumpfmt::CaptureMode) -> &'static str {
    match m {
        dumpfmt::CaptureMode::Stopped => "stopped",
        dumpfmt::CaptureMode::Snapshot => "snapshot",
    }
}

fn json(img: &ImageFile, f: &Facts) -> Value {
    let image = &img.image;
    let h = &img.header;
    let e = &image.exe;
    let s = &image.settings;
    let p = &image.process;
    let c = &image.cpu;
    let mapped: u64 = image.mappings.iter().map(|m| m.end - m.start).sum();
    let mut v = json!({
        "format": { "major": h.major, "minor": h.minor },
        "time_ns": image.time_ns,
        "time": human::time(image.time_ns),
        "host": Value::Null,
        "kernel": Value::Null,
        "pid": image.pid,
        "sequence": image.sequence,
        "program": {
            "path": e.path, "size": e.size, "mtime_sec": e.mtime_sec, "mtime_nsec": e.mtime_nsec,
            "dev": e.dev, "ino": e.ino, "build_id": hex(&e.build_id),
        },
        "argv": f.argv,
        "environment": f.env.as_ref().map(|v| v.iter().map(|(k, val)| json!({"name": k, "value": val})).collect::<Vec<_>>()),
        "cpu": {
            "xcr0": c.xcr0, "cpuid": c.cpuid, "cpuid_ext": image.minor2.cpu_ext,
            "features": image.isa().names(),
            "baseline": image.minor2.baseline.as_ref().map(|b| json!({"name": b.name, "features": b.isa.names()})),
            "required": image.required_isa().names(),
        },
        "settings": {
            "signal": s.signal, "image": s.image, "exit_after_dump": s.exit_after_dump, "log_level": s.log_level,
        },
        "capture": {
            "mode": capture_mode(image.minor4.capture.mode),
            "pause_ns": (image.minor4.capture.mode == dumpfmt::CaptureMode::Snapshot)
                .then_some(image.minor4.capture.pause_ns),
        },
        "threads": image.threads.iter().map(|t| json!({
            "tid": t.tid, "name": thread_name(&t.name), "rip": t.context.rip, "rsp": t.context.rsp,
            "fs_base": t.fs_base, "sigmask": t.sigmask,
        })).collect::<Vec<_>>(),
        "mappings": image.mappings.iter().zip(&f.stored).map(|(m, stored)| json!({
            "start": m.start, "end": m.end, "prot": human::prot(m.prot, m.shared), "offset": m.offset,
            "backing": backing(image, m.backing), "name": m.name, "stored_bytes": stored,
        })).collect::<Vec<_>>(),
        "descriptors": image.fds.iter().map(|fd| {
            let (kind, target, offset) = fd_kind(image, fd);
            json!({
                "fd": fd.fd, "kind": kind, "target": target, "flags": fd.flags,
                "cloexec": fd.cloexec, "offset": offset,
            })
        }).collect::<Vec<_>>(),
        "process": {
            "cwd": p.cwd, "umask": p.umask, "personality": p.personality, "pending": p.pending,
            "itimers": p.itimers.iter().map(|(v, i)| json!({"value_us": v, "interval_us": i})).collect::<Vec<_>>(),
            "rlimits": p.rlimits.iter().map(|&(r, soft, hard)| json!({
                "resource": human::rlimit_name(r), "soft": soft, "hard": hard,
            })).collect::<Vec<_>>(),
            "start_brk": image.mm.start_brk, "brk": image.mm.brk,
            "signal_actions": image.sigactions.len(),
        },
        "posix_timers": image.minor1.posix_timers.iter().map(|t| json!({
            "id": t.id, "clock": t.clock, "notify": t.notify, "signal": t.signal, "tid": t.tid,
            "value_ns": t.value_ns, "interval_ns": t.interval_ns,
        })).collect::<Vec<_>>(),
        "credentials": (h.minor >= 1).then(|| image.threads.iter().zip(image.minor1.credentials.iter()).map(|(t, c)| json!({
            "tid": t.tid, "effective": c.effective, "permitted": c.permitted, "inheritable": c.inheritable,
            "bounding": c.bounding, "ambient": c.ambient, "securebits": c.securebits, "no_new_privs": c.no_new_privs,
        })).collect::<Vec<_>>()),
        "members": {
            "zombies": image.minor3.members.zombies.iter().map(|z| json!({
                "pid": z.pid, "killed": z.killed, "status": z.status, "pgid": z.pgid, "sid": z.sid,
            })).collect::<Vec<_>>(),
            "stop": image.minor3.members.stop.map(|s| json!({"signal": s.signal, "reported": s.reported})),
        },
        "totals": {
            "file_bytes": h.file_len, "page_data_bytes": f.data_bytes, "runs": image.runs.len(),
            "metadata_bytes": f.meta_len, "mapped_bytes": mapped, "mappings": image.mappings.len(),
            "files": image.files.len(), "threads": image.threads.len(), "descriptors": image.fds.len(),
        },
    });
    let chain = &image.minor4.incremental;
    if !chain.is_standalone() {
        v["incremental"] = json!({
            "ancestors": chain.ancestors.iter().map(|a| json!({
                "path": a.path, "file_len": a.file_len, "meta_crc": a.meta_crc,
            })).collect::<Vec<_>>(),
            "inherited_runs": chain.inherited.len(),
            "inherited_pages": chain.inherited.iter().map(|r| r.pages).sum::<u64>(),
        });
    }
    v
}
