//! A private `sshd` (Debian's openssh-server) for the `migrate send`
//! tests: its own host key, a generated client key and `known_hosts`, all
//! in one test's directory, listening on a loopback port as the current
//! user. Nothing of the machine's ssh configuration is read or changed
//! (the client gets `-F`-free options pointing at the test's files, the
//! server its own config file).
//!
//! [`Keys::make`] writes the keys and a config for a port; [`Sshd::start`]
//! runs the server here (optionally inside a private mount namespace with
//! bind mounts, for a remote side whose files differ), waiting for its
//! `Server listening` line. The guest runs the same config itself.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{POLL, TIMEOUT};

const SSHD: &str = "/usr/sbin/sshd";

/// Why the rig cannot run here (for a skip line), if it cannot.
pub fn missing() -> Option<String> {
    if !Path::new(SSHD).is_file() {
        return Some("openssh-server (/usr/sbin/sshd)".into());
    }
    for tool in ["ssh", "ssh-keygen"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} (package openssh-client)"));
        }
    }
    None
}

/// The keys and config of one server, in `dir`.
#[derive(Debug)]
pub struct Keys {
    pub dir: PathBuf,
    pub user: String,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "migrate-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Keys {
    /// Host and client keys, `authorized_keys` and `known_hosts` in `dir`
    /// (made), for a server reached at 127.0.0.1:`port`.
    pub fn make(dir: &Path, port: u16) -> Keys {
        fs::create_dir_all(dir).expect("mkdir ssh dir");
        keygen(&dir.join("host_key"));
        keygen(&dir.join("id"));
        fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).expect("authorized_keys");
        let host_pub = fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        let mut words = host_pub.split_whitespace();
        let (kind, key) = (words.next().unwrap(), words.next().unwrap());
        fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .expect("known_hosts");
        // SAFETY: geteuid has no preconditions; getpwuid's result is read
        // at once, before any other call could reuse its buffer.
        let user = unsafe {
            let pw = libc::getpwuid(libc::geteuid());
            assert!(!pw.is_null(), "no passwd entry for this user");
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned()
        };
        Keys {
            dir: dir.to_path_buf(),
            user,
        }
    }

    /// The server's config for `listen` (`127.0.0.1:PORT`, or `0.0.0.0:22`
    /// in the guest).
    pub fn config(&self, listen: &str) -> PathBuf {
        let d = self.dir.display();
        let path = self
            .dir
            .join(format!("sshd_config-{}", listen.replace(':', "-")));
        fs::write(
            &path,
            format!(
                "ListenAddress {listen}\n\
                 HostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 PidFile none\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\n\
                 PrintMotd no\n\
                 LogLevel INFO\n"
            ),
        )
        .expect("write sshd_config");
        path
    }

    /// `migrate send`'s ssh options for this server at `port`.
    pub fn send_args(&self, port: u16) -> Vec<String> {
        let d = self.dir.display();
        vec![
            "-p".into(),
            port.to_string(),
            "-i".into(),
            format!("{d}/id"),
            "-o".into(),
            format!("UserKnownHostsFile={d}/known_hosts"),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "ConnectTimeout=60".into(),
        ]
    }

    /// `USER@127.0.0.1:path`.
    pub fn dest(&self, path: &Path) -> String {
        format!("{}@127.0.0.1:{}", self.user, path.display())
    }
}

/// A free loopback port (free when asked; the server's start retries).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// A running server; killed when dropped.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub keys: Keys,
}

impl Sshd {
    /// Starts a server on a free loopback port with keys in `dir`. With
    /// `binds` (each `(file, over)`), it runs in a private mount namespace
    /// where `file` is bind-mounted over `over` (root only): a remote host
    /// whose files differ from this one's.
    pub fn start(dir: &Path, binds: &[(&Path, &Path)]) -> Sshd {
        // As root, sshd wants its privilege separation directory.
        if crate::skip::is_root() {
            let _ = fs::create_dir_all("/run/sshd");
        }
        for _ in 0..5 {
            let port = free_port();
            let _ = fs::remove_dir_all(dir);
            let keys = Keys::make(dir, port);
            let config = keys.config(&format!("127.0.0.1:{port}"));
            let mut cmd = if binds.is_empty() {
                let mut c = Command::new(SSHD);
                c.arg("-D").arg("-e").arg("-f").arg(&config);
                c
            } else {
                let mut script = String::from("set -e\n");
                for (file, over) in binds {
                    script.push_str(&format!(
                        "mount --bind '{}' '{}'\n",
                        file.display(),
                        over.display()
                    ));
                }
                script.push_str(&format!("exec {SSHD} -D -e -f '{}'\n", config.display()));
                let mut c = Command::new("unshare");
                c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
                c
            };
            let log = dir.join("sshd.log");
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).expect("sshd log"))
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + TIMEOUT;
            loop {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Server listening on") {
                    return Sshd { child, port, keys };
                }
                if let Some(status) = child.try_wait().expect("try_wait sshd") {
                    if text.contains("Address already in use") {
                        break;
                    }
                    panic!("sshd ended ({status}):\n{text}");
                }
                assert!(Instant::now() < deadline, "sshd did not start:\n{text}");
                std::thread::sleep(POLL);
            }
        }
        panic!("no free port for sshd after 5 tries");
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.keys.dir.join("sshd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
