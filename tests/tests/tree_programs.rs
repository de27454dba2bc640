//! Real programs as process trees (issue 9, Done-when 2 and 3), and the
//! smaller regressions behind them: a parent that holds both ends of a
//! pipe or socket pair its children use too (a `multiprocessing.Pool`'s
//! queues, nginx's channels), and a listening socket its children inherit
//! (nginx's). Each is dumped as a tree (`MIGRATE_CHILDREN=tree`), every
//! process is killed, and the restored tree must go on as if nothing had
//! happened.
//!
//! Without the tree's own pipes and socket pairs the parent made a private
//! copy of each (it held both ends) and its children's ends led nowhere:
//! the Pool's workers died of `BrokenPipeError` and the pool hung, `cends`
//! waits 5 s and prints an error line. Without the shared listener nginx's
//! restore bound the port once per process and failed.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migrate_tests::*;

/// Runs `program` as a tree of `members` processes, dumps it once it has
/// printed step `at`, kills every process, restores the tree and checks
/// that it ends exactly as an uninterrupted run.
fn tree_round_trip(dir: &TestDir, program: &Program, members: usize, at: u64) {
    let expected = reference(program);
    let image = dir.join("tree.img");
    let env = [
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_CHILDREN", "tree"),
    ];
    let mut p = dir.spawn(program, "original", &env);
    p.wait_for_line("ready", |l| l == "ready");
    p.wait_for_step(at);
    let below = descendants(p.pid());
    assert_eq!(below.len(), members - 1, "{below:?}\n{}", p.describe());
    p.dump_signal();
    p.wait_for_image(&image, false);
    kill_all(&below);
    p.kill();
    let tree = dumpfmt::TreeFile::open(&image)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", image.display(), p.describe()));
    assert_eq!(tree.sections.len(), members, "{}", p.describe());
    let mut restored = dir.restore(program, "restored", &image, &[]);
    finish_restored(&mut restored, &p, &expected);
    assert_eq!(restored.stderr(), "", "{}", restored.describe());
}

fn ends(mode: &str) -> Program {
    Program::command_of(
        &format!("cends-{mode}"),
        &[OsStr::new(env!("MIGRATE_TEST_CENDS")), OsStr::new(mode)],
    )
}

/// A parent holding both ends of a pipe and of a socket pair, its child
/// the ends it uses: one pipe and one pair after the restore, each with
/// the bytes that waited in it once.
#[test]
fn a_pipe_and_a_socket_pair_the_parent_holds_whole_stay_shared_with_its_child() {
    let dir = TestDir::new("tree-programs-ends-one");
    tree_round_trip(&dir, &ends("one"), 2, 10);
}

/// Both processes hold all four ends (as a fork leaves them): the bytes
/// waiting in the pipe, seen by both read ends, come back once.
#[test]
fn a_pipe_and_a_socket_pair_both_processes_hold_whole_stay_one() {
    let dir = TestDir::new("tree-programs-ends-both");
    tree_round_trip(&dir, &ends("both"), 2, 10);
}

/// Issue 9, Done-when 2: Debian's python3 running `multiprocessing.Pool(2)`
/// with `imap` over 200 items (50 ms each) finishes with the exact result
/// after a tree dump, the kill of every process, and the restore.
#[test]
fn python_multiprocessing_pool_imap_finishes_after_a_tree_restore() {
    let dir = TestDir::new("tree-programs-pool");
    let program = Program::command_of(
        "pypool",
        &[
            OsStr::new(PYTHON),
            crate_dir().join("programs/pypool.py").as_os_str(),
        ],
    );
    tree_round_trip(&dir, &program, 3, 40);
}

const NGINX: &str = "/usr/sbin/nginx";

/// A free loopback port (bound and let go: nothing else here takes ports
/// from the ephemeral range on purpose).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// nginx's private prefix in the test dir: its config (master and two
/// workers, `daemon off`, every path inside the prefix), a page to serve.
fn nginx_prefix(dir: &TestDir, port: u16) -> (PathBuf, PathBuf) {
    let prefix = dir.subdir("nginx");
    for d in ["logs", "html", "tmp"] {
        fs::create_dir_all(prefix.join(d)).expect("mkdir");
    }
    fs::write(prefix.join("html/index.html"), "restored nginx serves\n").expect("page");
    // Only the temp paths of the modules this nginx has (nginx-light has
    // fewer; an unknown directive is an error).
    let built = std::process::Command::new(NGINX)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let p = prefix.display();
    let temps: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .filter(|m| {
            let flag = format!("--http-{}-temp-path", m.replace('_', "-"));
            **m == "client_body" || built.contains(&flag)
        })
        .map(|m| format!("  {m}_temp_path {p}/tmp/{m};\n"))
        .collect();
    let user = if skip::is_root() { "user root;\n" } else { "" };
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\n{user}\
         error_log {p}/logs/error.log info;\npid {p}/logs/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n{temps}  server {{ listen 127.0.0.1:{port}; root {p}/html; }}\n}}\n"
    );
    let conf_path = prefix.join("nginx.conf");
    fs::write(&conf_path, conf).expect("nginx.conf");
    (prefix, conf_path)
}

/// The body of `GET /` from 127.0.0.1:`port` (HTTP/1.0: the server closes).
fn get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Polls `what` until it gives a value, for `TIMEOUT` at most.
fn wait_until<T>(what: &str, context: &dyn Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The worker processes of nginx master `master`, once there are exactly
/// two.
fn two_workers(master: i32, context: &dyn Fn() -> String) -> Vec<i32> {
    wait_until("two nginx workers", context, || {
        let w = children_of(master);
        let named = w.iter().all(|&pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"nginx: worker"))
        });
        (w.len() == 2 && named).then_some(w)
    })
}

fn serves(port: u16, context: &dyn Fn() -> String) {
    let reply = get(port).unwrap_or_else(|e| panic!("GET from nginx: {e}\n{}", context()));
    assert!(
        reply.starts_with("HTTP/1.1 200") && reply.ends_with("restored nginx serves\n"),
        "unexpected reply:\n{reply}\n{}",
        context()
    );
}

/// Issue 9, Done-when 3: Debian's nginx, a master and two workers sharing
/// one listening socket and the master's channel socket pairs, dumped as a
/// tree with `MIGRATE_SIGNAL=RTMIN+4` (nginx uses SIGUSR2 itself), every
/// process killed, restored: it serves the page over TCP, the master has
/// its two workers, and a reload (SIGHUP to the master) makes new workers
/// that serve too.
#[test]
fn nginx_master_and_workers_serve_and_reload_after_a_tree_restore() {
    if !Path::new(NGINX).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is missing in CI (.ci/run installs nginx-light)"
        );
        skip::skip(
            "nginx_master_and_workers_serve_and_reload_after_a_tree_restore",
            "nginx (apt-get install nginx-light)",
        );
        return;
    }
    let dir = TestDir::new("tree-programs-nginx");
    let port = free_port();
    let (prefix, conf) = nginx_prefix(&dir, port);
    let program = Program::command_of(
        "nginx",
        &[
            OsStr::new(NGINX),
            OsStr::new("-p"),
            prefix.as_os_str(),
            OsStr::new("-c"),
            conf.as_os_str(),
        ],
    );
    let image = dir.join("tree.img");
    let signal = "RTMIN+4";
    let env = [
        ("MIGRATE_IMAGE", image.to_str().unwrap()),
        ("MIGRATE_CHILDREN", "tree"),
        ("MIGRATE_SIGNAL", signal),
    ];
    let error_log = prefix.join("logs/error.log");
    let describe = |p: &Proc| {
        let log = fs::read_to_string(&error_log).unwrap_or_default();
        format!("{}\nerror.log:\n{log}", p.describe())
    };

    let mut original = dir.spawn(&program, "original", &env);
    let master = original.pid();
    let workers = two_workers(master, &|| describe(&original));
    serves(port, &|| describe(&original));
    original.dump_with(libc::SIGRTMIN() + 4);
    original.wait_for_image(&image, false);
    // The master first (killed and waited for): a master that sees a
    // worker die starts another, which would hold the port the restore
    // binds again. Then its workers, and the port is free once every
    // process that held it is gone.
    original.kill();
    kill_all(&workers);
    let now = Instant::now();
    while workers.iter().any(|w| {
        std::fs::read_to_string(format!("/proc/{w}/stat")).is_ok_and(|s| !s.contains(") Z "))
    }) {
        assert!(now.elapsed() < TIMEOUT, "the workers did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    let tree = dumpfmt::TreeFile::open(&image)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", image.display(), describe(&original)));
    assert_eq!(tree.sections.len(), 3, "{}", describe(&original));

    let mut restored = dir.restore(&program, "restored", &image, &[("MIGRATE_SIGNAL", signal)]);
    let context = || describe(&restored);
    // The supervisor, the namespace's init, then the restored master.
    let master = wait_until("the restored master", &context, || {
        let init = *children_of(restored.pid()).first()?;
        children_of(init).first().copied()
    });
    let before = two_workers(master, &context);
    serves(port, &context);

    // SAFETY: kill(2) with plain integers; the restored master, ours.
    unsafe { libc::kill(master, libc::SIGHUP) };
    wait_until("new workers after the reload", &context, || {
        let w = children_of(master);
        let fresh = w.iter().filter(|p| !before.contains(p)).count();
        (w.len() == 2 && fresh == 2).then_some(())
    });
    two_workers(master, &context);
    serves(port, &context);

    // SAFETY: as above; SIGQUIT is nginx's graceful stop.
    unsafe { libc::kill(master, libc::SIGQUIT) };
    let status = restored.wait();
    assert!(status.success(), "{status:?}\n{}", describe(&restored));
}
