//! `migrate`: run a program under `libmigrate.so`, restore an image,
//! inspect and verify images. One file per subcommand; the library is
//! found by [`library`].

mod completions;
mod dump;
mod human;
mod inspect;
mod library;
mod memory;
mod merge;
mod ps;
mod receive;
mod restore;
mod run;
mod send;
mod status;
mod verify;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Checkpoint and restore unmodified Linux programs from user space.
#[derive(Debug, Parser)]
#[command(name = "migrate", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a program with libmigrate.so preloaded: the dump signal writes an image.
    Run(run::Args),
    /// Ask a process running under libmigrate.so for a dump and wait for its outcome.
    Dump(dump::Args),
    /// Restore an image: run its program, which becomes the image's process.
    Restore(restore::Args),
    /// Show what an image holds.
    Inspect(inspect::Args),
    /// Check an image's integrity and whether this host can restore it.
    Verify(verify::Args),
    /// Make one standalone image of an incremental image and its ancestors.
    Merge(merge::Args),
    /// Move a running process to another host over ssh: dump, send, verify, restore there, end here.
    Send(send::Args),
    /// The remote end of `migrate send` (run by it over ssh).
    #[command(hide = true)]
    Receive(receive::Args),
    /// List this user's processes running under libmigrate.so, with their last dump.
    Ps(ps::Args),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: completions::Shell,
    },
}

/// What to do once a dump is written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AfterDump {
    Continue,
    Exit,
}

/// `--lib PATH`, shared by the subcommands that exec a program.
#[derive(Debug, clap::Args)]
pub struct LibArg {
    /// libmigrate.so to preload (default: beside this command, or in ../lib).
    #[arg(long, value_name = "PATH")]
    lib: Option<PathBuf>,
}

/// A failure of the command: a message and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub msg: String,
}

impl Failure {
    pub fn new(code: i32, msg: impl Into<String>) -> Failure {
        Failure {
            code: u8::try_from(code).unwrap_or(1),
            msg: msg.into(),
        }
    }
}

/// Exit status of a bad setting (as the library gives it).
pub const EXIT_BAD_SETTING: i32 = 64;
/// Exit status when libmigrate.so cannot be found, or a program not run.
pub const EXIT_NO_LIBRARY: i32 = 72;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::main(a),
        Command::Dump(a) => dump::main(a),
        Command::Ps(a) => ps::main(a),
        Command::Send(a) => send::main(a),
        Command::Receive(a) => receive::main(a),
        Command::Restore(a) => restore::main(a),
        Command::Inspect(a) => inspect::main(a),
        Command::Verify(a) => verify::main(a),
        Command::Merge(a) => merge::main(a),
        Command::Completions { shell } => {
            completions::main(shell);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.msg.is_empty() {
                eprintln!("migrate: {}", f.msg);
            }
            ExitCode::from(f.code)
        }
    }
}

/// Replaces this process with `argv` (`argv0` as its `argv[0]`), with the
/// environment changes given; returns only on failure.
pub fn exec(
    program: &OsString,
    argv0: &OsString,
    args: &[OsString],
    set: &[(&str, OsString)],
    remove: &[&str],
) -> Failure {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(program);
    cmd.arg0(argv0).args(args);
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in set {
        cmd.env(k, v);
    }
    let e = cmd.exec();
    Failure::new(
        EXIT_NO_LIBRARY,
        format!("cannot run {}: {e}", PathBuf::from(program).display()),
    )
}
