//! The second box: Debian's 6.1 kernel under QEMU's software emulation
//! (`tests/guest/`), for tests that dump here and restore there, and back.
//!
//! [`Guest::get`] prepares the kernel and initramfs once per machine (in
//! `target/guest`, under a lock, so parallel tests share one preparation)
//! and returns `None`, after a `skipped: needs ...` line, where the rig
//! cannot run (no QEMU, no busybox-static, no 6.1 kernel in the package
//! index). [`Guest::run`] boots a guest for one shell command, with a test
//! directory shared read-write at the same path (its working directory)
//! and the rest of this machine's `/` read-only: the same binaries, the
//! same `target/release/libmigrate.so`, another kernel and another CPU
//! (no AVX-512, XSAVEC or SHA-NI). Each run boots afresh (about 5 s).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::skip;

/// A prepared guest.
pub struct Guest {
    dir: PathBuf,
    /// The guest kernel's release (`6.1.0-NN-amd64`).
    pub kernel: String,
}

/// What a command printed in the guest and how it ended.
#[derive(Debug)]
pub struct GuestRun {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

fn rig() -> PathBuf {
    crate::crate_dir().join("guest")
}

impl Guest {
    /// The prepared guest, or `None` (and a skip line naming `test`).
    pub fn get(test: &str) -> Option<&'static Guest> {
        static GUEST: OnceLock<Result<Guest, String>> = OnceLock::new();
        let g = GUEST.get_or_init(prepare);
        match g {
            Ok(g) => Some(g),
            Err(needs) => {
                skip(test, needs);
                None
            }
        }
    }

    /// Runs `cmd` (a shell command) in a fresh guest whose working
    /// directory is `share` (absolute; shared read-write).
    pub fn run(&self, share: &Path, cmd: &str) -> GuestRun {
        self.run_on(share, cmd, "max")
    }

    /// Starts [`Guest::run`]'s command without waiting for it, with this
    /// machine's 127.0.0.1:`ssh_port` forwarded to the guest's port 22
    /// (an isolated user network: the command brings `eth0` up as
    /// 10.0.2.15/24 and starts the sshd; see `tests/guest/run.sh`).
    pub fn start_with_ssh(&self, share: &Path, cmd: &str, ssh_port: u16) -> Started {
        let child = Command::new(rig().join("run.sh"))
            .arg(share)
            .arg(cmd)
            .env("GUEST_DIR", &self.dir)
            .env("GUEST_CPU", "max")
            .env("GUEST_SSH_PORT", ssh_port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run tests/guest/run.sh");
        Started { child: Some(child) }
    }

    /// As [`Guest::run`], on QEMU's CPU model `cpu` (`max` by default:
    /// `max,-pku,-mpx` leaves out the two state components this machine's
    /// CPU lacks, whose xsave state a signal frame from the guest would
    /// carry here).
    pub fn run_on(&self, share: &Path, cmd: &str, cpu: &str) -> GuestRun {
        let out = Command::new(rig().join("run.sh"))
            .arg(share)
            .arg(cmd)
            .env("GUEST_DIR", &self.dir)
            .env("GUEST_CPU", cpu)
            .output()
            .expect("run tests/guest/run.sh");
        let run = GuestRun {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            run.status != 3 || !run.stderr.contains("did not finish"),
            "the guest did not finish:\n{}",
            run.stderr
        );
        run
    }
}

fn prepare() -> Result<Guest, String> {
    for (tool, package) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
    ] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!("{tool} (package {package})"));
        }
    }
    let dir = crate::crate_dir()
        .parent()
        .expect("workspace root")
        .join("target/guest");
    let out = Command::new(rig().join("prepare.sh"))
        .arg(&dir)
        .output()
        .map_err(|e| format!("tests/guest/prepare.sh to run ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "a prepared 6.1 guest (tests/guest/prepare.sh: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let kernel = std::fs::read_to_string(dir.join("kernel"))
        .map_err(|e| format!("a prepared 6.1 guest ({e})"))?
        .trim()
        .to_string();
    Ok(Guest { dir, kernel })
}

/// A guest started by [`Guest::start_with_ssh`]; killed if dropped
/// unfinished.
pub struct Started {
    child: Option<std::process::Child>,
}

impl Started {
    /// Whether the guest (QEMU) has ended.
    pub fn ended(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits for the guest's command to end; what it printed.
    pub fn finish(mut self) -> GuestRun {
        let out = self
            .child
            .take()
            .expect("not finished yet")
            .wait_with_output()
            .expect("wait for tests/guest/run.sh");
        GuestRun {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // run.sh's QEMU is bounded by its timeout; ending run.sh early
            // leaves QEMU to that bound, so end QEMU first.
            let _ = Command::new("pkill")
                .arg("-P")
                .arg(c.id().to_string())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
