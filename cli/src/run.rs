//! `migrate run`: execs a program with the library preloaded and the
//! `MIGRATE_*` settings set. Values are checked here first, by the
//! library's own parser, so a bad one is refused before the program runs.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{AfterDump, EXIT_BAD_SETTING, Failure, LibArg, library};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where dumps go: %p the pid, %n the dump's number, %% a percent sign
    /// [default: migrate-%p.img in the directory the program starts in].
    #[arg(long, value_name = "PATTERN")]
    image: Option<String>,
    /// Signal that triggers a dump: a name (USR2, SIGUSR2, RTMIN+4) or number [default: USR2].
    #[arg(long, value_name = "SIG")]
    signal: Option<String>,
    /// What the program does once a dump is written [default: continue].
    #[arg(long, value_enum, value_name = "WHAT")]
    after_dump: Option<AfterDump>,
    /// The library's log level: error, info or debug [default: error].
    #[arg(long, value_name = "LEVEL")]
    log: Option<String>,
    /// Also dump every DUR (30s, 5m, 1h30m; at least 1s), on a timer
    /// that adds no thread [default: only when signalled].
    #[arg(long, value_name = "DUR")]
    interval: Option<String>,
    /// Keep only the newest N images (1 to 32), removing older ones once
    /// a newer one is complete; the pattern needs %n [default:
    /// migrate-%p-%n.img with --keep].
    #[arg(long, value_name = "N")]
    keep: Option<String>,
    /// Start the program for a CPU baseline, so its image restores on any
    /// CPU that has it: x86-64, x86-64-v2, x86-64-v3, x86-64-v4 or native
    /// [default: native, the CPU it starts on]. Holds glibc back with
    /// GLIBC_TUNABLES; code that picks CPU features itself is not held back.
    #[arg(long, value_name = "LEVEL")]
    cpu: Option<String>,
    #[command(flatten)]
    lib: LibArg,
    /// The program and its arguments.
    #[arg(required = true, last = true, value_name = "PROG ARGS")]
    command: Vec<OsString>,
}

pub fn main(a: Args) -> Result<(), Failure> {
    let after = a.after_dump.map(|w| match w {
        AfterDump::Continue => "continue",
        AfterDump::Exit => "exit",
    });
    // Numbered images, so that there are several to keep.
    let env_image = std::env::var_os("MIGRATE_IMAGE").filter(|v| !v.is_empty());
    let image = match (&a.image, &a.keep, env_image) {
        (None, Some(_), None) => Some(DEFAULT_NUMBERED),
        _ => a.image.as_deref(),
    };
    let mut set: Vec<(&str, OsString)> = [
        ("MIGRATE_IMAGE", image),
        ("MIGRATE_SIGNAL", a.signal.as_deref()),
        ("MIGRATE_AFTER_DUMP", after),
        ("MIGRATE_LOG", a.log.as_deref()),
        ("MIGRATE_INTERVAL", a.interval.as_deref()),
        ("MIGRATE_KEEP", a.keep.as_deref()),
        ("MIGRATE_CPU", a.cpu.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, OsString::from(v?))))
    .collect();
    check_settings(&set, None)?;
    if let Some(level) = a.cpu.as_deref().and_then(dumpfmt::level) {
        let missing = level.isa.missing_in(&migrate::cpu::here());
        if !missing.is_empty() {
            return Err(Failure::new(
                EXIT_BAD_SETTING,
                format!(
                    "--cpu {}: this CPU lacks {}",
                    level.name,
                    missing.names().join(", ")
                ),
            ));
        }
        // glibc reads its tunables as the program starts: set here, the
        // library has nothing to redo.
        let now = std::env::var("GLIBC_TUNABLES").ok();
        if let Some(t) = level.tunables(now.as_deref()) {
            set.push(("GLIBC_TUNABLES", t.into()));
        }
    }
    let lib = library::find(a.lib.lib)?;
    set.push(("LD_PRELOAD", library::preload(&lib)));
    let (prog, args) = a.command.split_first().expect("clap requires a program");
    // A restore left in the environment would make the program an image's.
    let remove = ["MIGRATE_RESTORE", "MIGRATE_RESTORE_CHECK"];
    Err(crate::exec(prog, prog, args, &set, &remove))
}

/// The image pattern `--keep` takes when none is given.
const DEFAULT_NUMBERED: &str = "migrate-%p-%n.img";

/// Checks `set` together with the `MIGRATE_*` variables already in the
/// environment, as the library will read them; `pattern` is the image
/// pattern in force without `MIGRATE_IMAGE` (a restored image's), if not
/// the library's default.
pub fn check_settings(set: &[(&str, OsString)], pattern: Option<&str>) -> Result<(), Failure> {
    for (k, v) in set {
        // SAFETY: the command is single-threaded (no thread was started),
        // so nothing reads the environment while it changes; the program
        // exec'd next gets the same values anyway.
        unsafe { std::env::set_var(k, v) };
    }
    let cwd = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| PathBuf::from("/").display().to_string());
    migrate::config::Overrides::from_env(&cwd)
        .and_then(|o| {
            let default = format!("{cwd}/migrate-%p.img");
            o.check_keep(pattern.unwrap_or(&default))
        })
        .map_err(|e| Failure::new(EXIT_BAD_SETTING, e.0))
}
