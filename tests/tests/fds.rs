//! Descriptors beyond 0, 1 and 2: regular files (also deleted ones),
//! pipes, epoll, timerfd, eventfd, signalfd, sockets, memfd and shared
//! memory come back from the image with their numbers, flags, offsets and
//! buffered bytes; what connects outside the process comes back as if the
//! peer had gone (or, with `MIGRATE_EXTERNAL=refuse`, fails the dump); kinds
//! that cannot be saved fail the dump; a file the process reads that
//! changed or vanished refuses the restore.
//!
//! Programs that take file arguments get one directory for the dumped run
//! (`work/`) and another for the reference run (`ref/`), with the same
//! files in both; their output does not depend on paths. Images go to the
//! test directory itself.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migrate_tests::*;

/// [`mode_roundtrip`] of a `cfdkinds` mode.
fn fd_kind(test: &str, mode: &str, arg: Option<&str>, step: u64) {
    mode_roundtrip(test, Program::fd_kinds, mode, arg, step);
}

/// A file copied line by line through stdio (to one output flushed
/// every line, to another never flushed: its FILE buffer is in memory and
/// comes back with it) and in chunks through raw fds, dumped mid-copy,
/// killed (after writing on past the dump), restored: every output equals
/// the input.
#[test]
fn file_copy_stdio_and_raw_fds() {
    let input = numbered_text(250);
    let names = ["flushed.txt", "buffered.txt", "raw.txt"];
    let (_dir, work, r) = work_dir_roundtrip(
        "filecopy",
        80,
        |d| fs::write(d.join("in.txt"), &input).unwrap(),
        |d| {
            Program::filecopy(
                &d.join("in.txt"),
                &d.join(names[0]),
                &d.join(names[1]),
                &d.join(names[2]),
            )
        },
    );
    let context = describe_all(&[&r.original, &r.restored]);
    assert!(
        r.k < 250,
        "the dump was meant to land mid-copy, but the restored process resumed at line {}\n{context}",
        r.k
    );
    for name in names {
        let got = fs::read(work.join(name)).unwrap();
        assert!(
            got == input,
            "{name} differs from the input after the restore: {}\n{context}",
            first_difference(&got, &input)
        );
    }
}

/// Records queued in a pipe, read one per tick of a timerfd, both
/// waited for in one epoll set: the restored process continues the exact
/// sequence (the pipe's bytes, the epoll interest list and the timer come
/// back), and the dumped process, going on after its dump, too (the dump
/// does not consume the pipe's bytes).
#[test]
fn pipe_queue_epoll_timerfd() {
    let dir = TestDir::new("pipeq");
    let program = Program::pipe_queue();
    let expected = reference(&program);
    let image = dir.join("pipeq.img");
    let r = dump_kill_restore_with(
        &dir,
        &program,
        &DumpPlan {
            expected: &expected,
            step: 30,
            env: &[("MIGRATE_IMAGE", image.to_str().unwrap())],
            restore_env: &[],
            lines_after: 5,
        },
    );
    assert_eq!(
        r.restored.stderr(),
        "",
        "{}",
        describe_all(&[&r.original, &r.restored])
    );
}

/// Starts `python3 -m http.server` on a free port serving `www`; returns it
/// and the port once it prints its `Serving HTTP` line. Another port is
/// tried when the one picked was taken in the meantime.
fn start_http_server(dir: &TestDir, www: &Path, image: &Path) -> (Proc, Program, u16) {
    for attempt in 0..5 {
        let port = free_tcp_port();
        let port_s = port.to_string();
        let program = Program::command_of(
            "http.server",
            &[
                PYTHON.as_ref(),
                "-u".as_ref(),
                "-m".as_ref(),
                "http.server".as_ref(),
                port_s.as_ref(),
                "--bind".as_ref(),
                "127.0.0.1".as_ref(),
                "--directory".as_ref(),
                www.as_os_str(),
            ],
        );
        let mut p = dir.spawn(
            &program,
            &format!("server-{attempt}"),
            &[("MIGRATE_IMAGE", image.to_str().unwrap())],
        );
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let exited = p.poll_exit();
            if p.stdout_lines()
                .iter()
                .any(|l| l.starts_with("Serving HTTP"))
            {
                return (p, program, port);
            }
            if exited.is_some() {
                assert!(
                    p.stderr().contains("Address already in use"),
                    "http.server exited before serving\n{}",
                    p.describe()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "http.server did not start serving\n{}",
                p.describe()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("no free port for http.server after 5 attempts");
}

/// Fetches `path` and checks the reply is `200` with `body`; says what
/// went wrong otherwise.
fn fetch_and_check(
    port: u16,
    path: &str,
    body: &[u8],
    connect_for: Duration,
) -> Result<(), String> {
    let (status, got) = http_get(port, path, Instant::now() + connect_for)
        .map_err(|e| format!("GET {path}: {e}"))?;
    if !status.contains(" 200 ") {
        return Err(format!("GET {path}: {status}"));
    }
    if got != body {
        return Err(format!(
            "GET {path}: the body differs from the file: {}",
            first_difference(&got, body)
        ));
    }
    Ok(())
}

/// A server holding an accepted TCP connection that has ended (peer
/// closed, its own side shut down), as servers do for a moment after
/// each request: it was saved as a socket to bind at its local address,
/// which its listener holds, and the restore failed ("cannot bind its
/// address again: Address already in use"). It comes back as a
/// connection whose peer is gone.
#[test]
fn ended_tcp_connection_beside_its_listener() {
    let dir = TestDir::new("ended-tcp");
    let program = Program::command_of(
        "pyclosed",
        &[
            PYTHON.as_ref(),
            crate_dir().join("programs/pyclosed.py").as_os_str(),
        ],
    );
    dump_kill_restore(&dir, &program, 3, &[], &[]);
}

/// Python's http.server (a listening TCP socket with SO_REUSEADDR,
/// select loop): it serves a file, is dumped, killed and restored, and
/// serves files again on the same port.
#[test]
fn python_http_server() {
    let dir = TestDir::new("http");
    let www = dir.subdir("www");
    let hello = b"hello from before the dump\n".repeat(100);
    let data = noise(3, 100_000);
    fs::write(www.join("hello.txt"), &hello).unwrap();
    fs::write(www.join("data.bin"), &data).unwrap();
    let image = dir.join("http.img");
    let (mut server, program, port) = start_http_server(&dir, &www, &image);
    if let Err(e) = fetch_and_check(port, "/hello.txt", &hello, Duration::ZERO) {
        panic!("before the dump: {e}\n{}", server.describe());
    }
    server.dump_signal();
    server.wait_for_image(&image, false);
    server.kill();
    let mut restored = dir.restore(&program, "restored", &image, &[]);
    let after = fetch_and_check(port, "/hello.txt", &hello, Duration::from_secs(10))
        .and_then(|()| fetch_and_check(port, "/data.bin", &data, Duration::ZERO));
    let running = restored.poll_exit().is_none();
    if let Err(e) = after {
        panic!(
            "after the restore: {e}\n{}",
            describe_all(&[&server, &restored])
        );
    }
    assert!(
        running,
        "the restored server exited\n{}",
        describe_all(&[&server, &restored])
    );
    restored.signal(libc::SIGTERM);
    restored.wait();
}

/// A file deleted while open (read-only) is read to its end after the
/// restore, and a deleted scratch file it copies into (read-write) keeps
/// what was written before the dump: both come back with their contents.
#[test]
fn deleted_file_read_to_end() {
    let data = noise(11, 24 * 1024);
    let (_dir, work, r) = work_dir_roundtrip(
        "unlinked",
        15,
        |d| fs::write(d.join("in.bin"), &data).unwrap(),
        |d| Program::unlinked(&d.join("in.bin"), &d.join("scratch.bin")),
    );
    let context = describe_all(&[&r.original, &r.restored]);
    assert!(
        !work.join("in.bin").exists() && !work.join("scratch.bin").exists(),
        "the restore brought a deleted file back under its name\n{context}"
    );
    assert!(
        r.restored
            .stdout_lines()
            .last()
            .is_some_and(|l| l.contains("scratch-equals-input=yes")),
        "{context}"
    );
}

/// The TCP listener's side of `cpeer tcp`: accepts its connection (or
/// panics if `p` exits first), reads `hello`, answers `welcome`.
fn accept_peer(listener: &TcpListener, p: &mut Proc) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    p.poll_exit().is_none() && Instant::now() < deadline,
                    "{} did not connect\n{}",
                    p.label,
                    p.describe()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n", "{}", p.describe());
    (&conn).write_all(b"welcome\n").unwrap();
    conn
}

/// The fd number in the program's `connected fd=N` line.
fn connected_fd(p: &mut Proc) -> i32 {
    let i = p.wait_for_line("`connected fd=N`", |l| l.starts_with("connected fd="));
    p.stdout_lines()[i]["connected fd=".len()..]
        .parse()
        .expect("fd number")
}

/// The test's side of a running `cpeer tcp`.
struct TcpPeer {
    /// The program (connecting to the listener's port).
    program: Program,
    /// The listener, kept open.
    _listener: TcpListener,
    /// The accepted connection, kept open.
    _conn: TcpStream,
    /// The program's fd of its connection.
    fd: i32,
}

/// Starts `cpeer tcp` connecting to a listener of the test's, accepts the
/// connection and does its exchange (hello, welcome).
fn spawn_tcp_peer(dir: &TestDir, env: &[(&str, &str)]) -> (Proc, TcpPeer) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let program = Program::peer_tcp(listener.local_addr().unwrap().port());
    let mut p = dir.spawn(&program, "original", env);
    let conn = accept_peer(&listener, &mut p);
    let fd = connected_fd(&mut p);
    p.wait_for_line("`exchanged: welcome`", |l| l == "exchanged: welcome");
    let peer = TcpPeer {
        program,
        _listener: listener,
        _conn: conn,
        fd,
    };
    (p, peer)
}

/// The pipes of a running `cpeer pipe`: the test's ends.
struct PipePeer {
    /// Writes to the program's fd 5.
    to_prog: fs::File,
    /// Reads the program's fd 6.
    from_prog: fs::File,
}

/// Starts `cpeer pipe` with fd 5 the read end of one pipe and fd 6 the
/// write end of another (the test keeps the other ends), and does its
/// exchange (ping, pong).
fn spawn_pipe_peer(dir: &TestDir, env: &[(&str, &str)]) -> (Proc, PipePeer) {
    let (prog_in, to_prog) = pipe();
    let (from_prog, prog_out) = pipe();
    let mut p = dir.spawn_with_fds(
        &Program::peer_pipe(),
        "original",
        env,
        &[(prog_in.as_raw_fd(), 5), (prog_out.as_raw_fd(), 6)],
    );
    drop((prog_in, prog_out));
    let mut peer = PipePeer {
        to_prog: fs::File::from(to_prog),
        from_prog: fs::File::from(from_prog),
    };
    peer.to_prog.write_all(b"ping\n").unwrap();
    p.wait_for_line("`exchanged: ping`", |l| l == "exchanged: ping");
    let mut pong = [0u8; 5];
    peer.from_prog.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"pong\n", "{}", p.describe());
    (p, peer)
}

/// Checks what a restored `cpeer` printed: maybe `step N idle` lines
/// continuing the original's, then `peer gone: EOF`, `write: EPIPE`, and
/// `done idle=K` counting every idle step (at least the 3 before the dump).
fn check_peer_gone(original: &Proc, restored: &Proc) {
    let context = describe_all(&[original, restored]);
    let last_step = original
        .stdout_lines()
        .iter()
        .filter_map(|l| step_of(l))
        .max()
        .unwrap_or(0);
    let out = restored.stdout_lines();
    let gone = out
        .iter()
        .position(|l| l == "peer gone: EOF")
        .unwrap_or_else(|| panic!("the restored process never read EOF\n{context}"));
    let mut prev: Option<u64> = None;
    for l in &out[..gone] {
        let n = step_of(l).unwrap_or_else(|| panic!("unexpected line {l:?}\n{context}"));
        assert!(
            l.ends_with(" idle") && prev.is_none_or(|p| n == p + 1) && n <= last_step + 1,
            "unexpected line {l:?} (the original got to step {last_step})\n{context}"
        );
        prev = Some(n);
    }
    assert_eq!(
        out.get(gone + 1).map(String::as_str),
        Some("write: EPIPE"),
        "after EOF, a write must fail with EPIPE\n{context}"
    );
    assert_eq!(out.len(), gone + 3, "{context}");
    let idle: u64 = out[gone + 2]
        .strip_prefix("done idle=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("last line is not `done idle=N`\n{context}"));
    match prev {
        Some(p) => assert_eq!(idle, p, "{context}"),
        None => assert!(
            (3..=last_step + 1).contains(&idle),
            "done idle={idle}, but the original got to step {last_step}\n{context}"
        ),
    }
}

/// Waits for `p`'s info log to name `fd` (a descriptor connected outside).
fn expect_logged(p: &mut Proc, fd: i32) {
    let line = p.wait_for_stderr_line(&format!("a log line naming fd {fd}"), |l| names_fd(l, fd));
    eprintln!("{}: {line}", p.label);
}

/// Dumps a `cpeer` (`original`, started with `MIGRATE_LOG=info`) once it
/// has printed step 3, waits for its info log to name each of `fds`, kills
/// it, restores the image with `program` while the peer is still there,
/// and checks that the restored process finds the peer gone.
fn dump_restore_peer_gone(
    dir: &TestDir,
    original: &mut Proc,
    program: &Program,
    image: &Path,
    fds: &[i32],
) {
    original.wait_for_step(3);
    original.dump_signal();
    original.wait_for_image(image, false);
    for &fd in fds {
        expect_logged(original, fd);
    }
    original.kill();
    let mut restored = dir.restore(program, "restored", image, &[]);
    restored.wait_success();
    check_peer_gone(original, &restored);
}

/// 6a. A connected TCP client, dumped, killed and restored while its
/// server stays up: the restored socket reads EOF and writes EPIPE, as if
/// the server had gone, and the dump's info log names the fd.
#[test]
fn tcp_client_peer_gone() {
    let dir = TestDir::new("peer-tcp");
    let image = dir.join("peer.img");
    let (mut original, peer) = spawn_tcp_peer(
        &dir,
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_LOG", "info"),
        ],
    );
    dump_restore_peer_gone(&dir, &mut original, &peer.program, &image, &[peer.fd]);
    drop(peer);
}

/// 6b. A program holding pipe ends its parent passed (fd 5 to read, fd 6
/// to write), dumped, killed and restored while the parent keeps the other
/// ends: fd 5 reads EOF, fd 6 writes EPIPE, and the info log names both.
#[test]
fn inherited_pipe_peer_gone() {
    let dir = TestDir::new("peer-pipe");
    let image = dir.join("peer.img");
    let (mut original, peer) = spawn_pipe_peer(
        &dir,
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_LOG", "info"),
        ],
    );
    dump_restore_peer_gone(&dir, &mut original, &Program::peer_pipe(), &image, &[5, 6]);
    drop(peer);
}

/// The whole output of a `cpeer` whose peer stays: `head` lines, 60 idle
/// steps, done.
fn peer_stays_output(head: &[String]) -> Vec<String> {
    let mut v = vec!["start".to_string()];
    v.extend_from_slice(head);
    v.extend((1..=60).map(|s| format!("step {s} idle")));
    v.push("done idle=60".to_string());
    v
}

/// Dumps a `cpeer` (`p`, started with `MIGRATE_EXTERNAL=refuse`) once it
/// has printed step 3: the dump must fail naming one of `fds`, and the
/// program go on to the output of a run whose peer stays (`head` after
/// `start`), leaving nothing in the test directory.
fn expect_peer_refused(dir: &TestDir, p: &mut Proc, image: &Path, head: &[String], fds: &[i32]) {
    p.wait_for_step(3);
    p.dump_signal();
    let expected = peer_stays_output(head);
    expect_dump_failure(p, image, fds, &[], &expected);
    assert_eq!(list_files(dir.path()), Vec::<String>::new());
}

/// 6c. With `MIGRATE_EXTERNAL=refuse`, a dump of a connected TCP client
/// fails with one line naming the socket's fd; no image; the program goes
/// on and ends as if nothing happened.
#[test]
fn tcp_client_refused() {
    let dir = TestDir::new("refuse-tcp");
    let image = dir.join("peer.img");
    let (mut p, peer) = spawn_tcp_peer(
        &dir,
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_EXTERNAL", "refuse"),
        ],
    );
    let head = [
        format!("connected fd={}", peer.fd),
        "exchanged: welcome".to_string(),
    ];
    expect_peer_refused(&dir, &mut p, &image, &head, &[peer.fd]);
    drop(peer);
}

/// 6c. The same for pipes whose other ends are in the parent.
#[test]
fn inherited_pipe_refused() {
    let dir = TestDir::new("refuse-pipe");
    let image = dir.join("peer.img");
    let (mut p, peer) = spawn_pipe_peer(
        &dir,
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("MIGRATE_EXTERNAL", "refuse"),
        ],
    );
    let head = [
        "reading fd=5 writing fd=6".to_string(),
        "exchanged: ping".to_string(),
    ];
    expect_peer_refused(&dir, &mut p, &image, &head, &[5, 6]);
    drop(peer);
}

/// An io_uring fd cannot be saved: the dump fails with one line naming
/// the fd and `io_uring`, and the program goes on to its normal end.
#[test]
fn io_uring_fails_dump() {
    let dir = TestDir::new("io-uring");
    let program = Program::io_uring();
    let expected = reference(&program);
    let image = dir.join("uring.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    let i = p.wait_for_line("`io_uring fd=N`", |l| l.starts_with("io_uring fd="));
    let fd: i32 = p.stdout_lines()[i]["io_uring fd=".len()..].parse().unwrap();
    p.wait_for_step(5);
    p.dump_signal();
    expect_dump_failure(&mut p, &image, &[fd], &["io_uring"], &expected);
    assert_eq!(list_files(dir.path()), Vec::<String>::new());
}

/// An eventfd's counter (and a semaphore eventfd's) comes back.
#[test]
fn eventfd_counter() {
    fd_kind("eventfd", "eventfd", None, 12);
}

/// A signalfd comes back with its mask (and the signals it reads stay
/// blocked).
#[test]
fn signalfd_mask() {
    fd_kind("signalfd", "signalfd", None, 12);
}

/// A stream socketpair comes back with the bytes queued in it, in both
/// directions.
#[test]
fn socketpair_buffered_bytes() {
    fd_kind("socketpair", "socketpair", None, 12);
}

/// A datagram socketpair comes back with the datagrams queued in it, each
/// with its own length.
#[test]
fn dgram_socketpair_buffered_datagrams() {
    fd_kind("dgram", "dgram", None, 12);
}

/// A named FIFO open at both ends comes back with the bytes queued in it.
#[test]
fn fifo_buffered_bytes() {
    fd_kind("fifo", "fifo", Some("fifo"), 12);
}

/// A listening Unix socket still accepts at its path after the restore;
/// a bound UDP socket keeps its port and SO_REUSEADDR.
#[test]
fn unix_listener_and_udp_socket() {
    fd_kind("unix-listener", "unix", Some("sock"), 12);
}

/// Descriptor numbers, access modes, O_APPEND, O_NONBLOCK, FD_CLOEXEC
/// and file offsets come back; so do a directory fd, /dev/null, /dev/zero,
/// /dev/urandom and a non-blocking pipe.
#[test]
fn fd_flags_and_offsets() {
    fd_kind("fd-flags", "flags", Some("."), 12);
}

/// A MAP_SHARED anonymous region keeps its contents; a memfd comes back
/// with its contents, still the same file as its MAP_SHARED mapping (writes
/// through either show through the other).
#[test]
fn shared_memory_and_memfd() {
    fd_kind("shm", "shm", None, 12);
}

/// cwd, umask, RLIMIT_NOFILE and RLIMIT_CORE soft limits, signal
/// dispositions with their SA_* flags and sa_mask, the signal mask, and a
/// running ITIMER_REAL (SIGALRM keeps ticking) come back.
#[test]
fn cwd_umask_rlimits_signals_itimer() {
    let (_dir, _work, r) = work_dir_roundtrip(
        "proc-state",
        12,
        |d| {
            fs::create_dir_all(d.join("here")).unwrap();
            fs::write(d.join("here/marker"), "marker-1234\n").unwrap();
        },
        |d| Program::proc_state(&d.join("here")),
    );
    assert_eq!(
        r.restored.stderr(),
        "",
        "{}",
        describe_all(&[&r.original, &r.restored])
    );
}

/// A `cfdkinds readonly` run on `work/lines.txt`, dumped at step 5 with
/// `MIGRATE_AFTER_DUMP=exit`.
struct ReadOnlySetup {
    dir: TestDir,
    file: PathBuf,
    program: Program,
    image: PathBuf,
    dumped: Proc,
}

fn readonly_setup(test: &str) -> ReadOnlySetup {
    let dir = TestDir::new(test);
    let work = dir.subdir("work");
    let file = work.join("lines.txt");
    fs::write(&file, numbered_text(100)).unwrap();
    let program = Program::fd_kinds("readonly", Some(&file));
    let image = dir.join("ro.img");
    let dumped = dump_then_exit(&dir, &program, "dumped", &image, 5);
    ReadOnlySetup {
        dir,
        file,
        program,
        image,
        dumped,
    }
}

/// Restores `s.image`, which must fail with 69 and a line naming the file.
fn expect_file_refused(s: &ReadOnlySetup, label: &str) {
    let line = expect_restore_failure(
        &s.dir,
        &s.program,
        label,
        &s.image,
        exit::MAPPED_FILE_CHANGED,
    );
    assert!(
        line.contains(s.file.to_str().unwrap()),
        "the refusal does not name {}: {line:?}",
        s.file.display()
    );
}

/// A file the process had open read-only refuses the restore (69, one
/// line naming it, nothing of the program run) once it has been appended
/// to; before that, the image restores (the positive control).
#[test]
fn readonly_file_appended_refuses_restore() {
    let s = readonly_setup("ro-appended");
    let refdir = s.dir.subdir("ref");
    fs::write(refdir.join("lines.txt"), numbered_text(100)).unwrap();
    let expected = reference(&Program::fd_kinds(
        "readonly",
        Some(&refdir.join("lines.txt")),
    ));
    restore_and_check(
        &s.dir, &s.program, "restored", &s.image, &s.dumped, &expected,
    );

    fs::OpenOptions::new()
        .append(true)
        .open(&s.file)
        .unwrap()
        .write_all(b"one more line\n")
        .unwrap();
    expect_file_refused(&s, "restore-after-append");
}

/// The same when the file was deleted.
#[test]
fn readonly_file_deleted_refuses_restore() {
    let s = readonly_setup("ro-deleted");
    fs::remove_file(&s.file).unwrap();
    expect_file_refused(&s, "restore-after-delete");
}

/// The same when the file kept its size but was rewritten later (its
/// mtime moved on).
#[test]
fn readonly_file_rewritten_refuses_restore() {
    let s = readonly_setup("ro-rewritten");
    let mut bytes = fs::read(&s.file).unwrap();
    bytes[0] ^= 1;
    fs::write(&s.file, &bytes).unwrap();
    let later = fs::metadata(&s.file).unwrap().modified().unwrap() + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(&s.file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    expect_file_refused(&s, "restore-after-rewrite");
}
