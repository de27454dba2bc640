//! Issue 12, descriptors: per-end flags of pipes and socket pairs, epoll
//! watching a file through a descriptor closed since, Unix datagram
//! sockets connected inside the process (with messages queued at the
//! dump), connected UDP sockets on loopback, TCP connections with both
//! ends in the process, and the shutdown state of Unix stream sockets. Each mode of
//! `programs/csockets.c` makes the objects, prints `ready`, waits for its
//! image, then checks the objects' state and behaviour itself, one verdict
//! line each: the restored process must print exactly those lines (and the
//! restore check, a second dump compared with the first, must agree).
//! A watch whose file no descriptor holds fails the dump, naming the epoll
//! descriptor, and the program goes on; so do descriptors in flight
//! (SCM_RIGHTS) and SO_PASSCRED on a connected socket (naming the socket),
//! and a connection from a client of the process waiting in a listener's
//! accept queue (naming the listener). The shutdown state of TCP
//! connections and SO_PASSCRED on a bound socket come back.

use std::ffi::OsStr;

use migrate_tests::*;

fn csockets(mode: &str) -> Program {
    Program::command_of(
        &format!("csockets-{mode}"),
        &[OsStr::new(env!("MIGRATE_TEST_CSOCKETS")), OsStr::new(mode)],
    )
}

/// Runs `mode` under the shim, dumps it once it is ready, kills it,
/// restores the image and checks that the restored process prints the
/// verdicts of an uninterrupted run, which must be `want` (so that a run
/// that is wrong both ways fails too), then `done MODE`.
fn roundtrip(mode: &str, want: &[&str]) {
    roundtrip_with(mode, want, &[]);
}

/// [`roundtrip`], with `env` set for the original process.
fn roundtrip_with(mode: &str, want: &[&str], env: &[(&str, &str)]) {
    let program = csockets(mode);
    let reference = reference(&program);
    let after_ready: Vec<String> = reference
        .iter()
        .skip_while(|l| *l != "ready")
        .skip(1)
        .cloned()
        .collect();
    let mut expected: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    expected.push(format!("done {mode}"));
    assert_eq!(
        after_ready, expected,
        "the uninterrupted run of csockets {mode} printed other verdicts than expected"
    );

    let dir = TestDir::new(&format!("sockets-{mode}"));
    let image = dir.join("sockets.img");
    let mut env = env.to_vec();
    env.push(("MIGRATE_IMAGE", image.to_str().unwrap()));
    let mut original = dir.spawn(&program, "original", &env);
    original.wait_for_line("`ready`", |l| l == "ready");
    original.dump_signal();
    original.wait_for_image(&image, true);
    original.kill();

    let mut restored = dir.restore(&program, "restored", &image, &[]);
    let status = restored.wait();
    let context = describe_all(&[&original, &restored]);
    assert!(
        status.success(),
        "{} failed ({})\n{context}",
        restored.label,
        describe_status(status)
    );
    assert_eq!(restored.stdout_lines(), expected, "\n{context}");
    assert_eq!(restored.stderr(), "", "\n{context}");
}

/// O_NONBLOCK on one end of a pipe and of a socket pair, close-on-exec on
/// one end: each end keeps its own flags (a dup shares its original's).
#[test]
fn pipe_and_pair_flags_per_end() {
    roundtrip(
        "flags",
        &[
            "pipe read end nonblock=1 cloexec=0",
            "pipe write end nonblock=0 cloexec=1",
            "pipe read end dup nonblock=1 cloexec=0",
            "pair end 0 nonblock=0 cloexec=0",
            "pair end 1 nonblock=1 cloexec=0",
            "read empty pipe: -1 EAGAIN",
            "read empty pair end 1: -1 EAGAIN",
            "pair end 0 reads 1 'k'",
        ],
    );
}

/// Epoll entries whose descriptor was closed while a dup keeps the file
/// open (one number left free, one holding /dev/null now) fire with their
/// data, and stay keyed by their old numbers.
#[test]
fn epoll_through_closed_descriptor() {
    roundtrip(
        "epoll",
        &[
            "nothing ready: 0",
            "closed ready: 1 data=202",
            "reused ready: 1 data=303",
            "kept ready: 1 data=101",
            "nothing ready again: 0",
            "delete by the dup's number: -1 ENOENT",
            "delete by the reused number: -1 EPERM",
        ],
    );
}

/// An epoll entry on a pipe that no descriptor holds (it is in flight in
/// a socket): the dump fails naming the epoll fd, and the program goes on.
#[test]
fn epoll_watch_without_descriptor_fails_dump() {
    let program = csockets("epollgone");
    let expected = reference(&program);
    let dir = TestDir::new("sockets-epollgone");
    let image = dir.join("sockets.img");
    let mut p = dir.spawn(
        &program,
        "original",
        &[("MIGRATE_IMAGE", image.to_str().unwrap())],
    );
    let at = p.wait_for_line("`epoll fd N`", |l| l.starts_with("epoll fd "));
    let epoll: i32 = p.stdout_lines()[at]
        .trim_start_matches("epoll fd ")
        .parse()
        .expect("epoll fd number");
    p.wait_for_line("`ready`", |l| l == "ready");
    p.dump_signal();
    expect_dump_failure(&mut p, &image, &[epoll], &["epoll", "watch"], &expected);
}

/// Unix datagram clients connected to a server bound to a path (two, and
/// one bound client), one connected to an abstract name, an unconnected
/// sender: the messages waiting at the dump come back in order with their
/// boundaries and senders, and every client is still connected.
#[test]
fn unix_datagram_clients() {
    roundtrip(
        "dgram",
        &[
            "server: 3 bytes 'one' from (unnamed)",
            "server: 3 bytes 'two' from (unnamed)",
            "server: 5 bytes 'three' from (unnamed)",
            "server: 4 bytes 'four' from cli.sock",
            "server: 0 bytes '' from (unnamed)",
            "server: no more (EAGAIN)",
            "abstract server: 4 bytes 'five' from (unnamed)",
            "abstract server: no more (EAGAIN)",
            "bound client: 5 bytes 'reply' from srv.sock",
            "bound client: no more (EAGAIN)",
            "client 1 peer: srv.sock",
            "client 2 peer: srv.sock",
            "client 3 peer: @the abstract name",
            "bound client peer: srv.sock",
            "unconnected peer: ENOTCONN",
            "server: 7 bytes 'after 2' from (unnamed)",
            "server: 7 bytes 'after 1' from (unnamed)",
            "server: no more (EAGAIN)",
            "abstract server: 7 bytes 'after 3' from (unnamed)",
            "abstract server: no more (EAGAIN)",
            "bound client: 5 bytes 'again' from srv.sock",
            "bound client: no more (EAGAIN)",
            "unconnected to bound client: -1 EPERM",
        ],
    );
}

/// UDP on loopback: a bound client connected to a server, one bound by its
/// connect, a sender closed since: names, peers and options come back,
/// the datagrams waiting at the dump come back in order from their
/// senders' addresses, and a connected socket still takes datagrams only
/// from its peer.
#[test]
fn udp_connected_on_loopback() {
    roundtrip(
        "udp",
        &[
            "server name kept: 1",
            "client name kept: 1",
            "autobound client name kept: 1",
            "client peer: the server",
            "autobound client peer: the server",
            "server peer: none",
            "server SO_REUSEADDR: 1",
            "server: 5 bytes 'ping1' from the client",
            "server: 4 bytes 'auto' from the autobound client",
            "server: 3 bytes 'bye' from the closed sender",
            "server: 5 bytes 'ping2' from the client",
            "server: no more (EAGAIN)",
            "client: 4 bytes 'pong' from the server",
            "client: no more (EAGAIN)",
            "server: 5 bytes 'after' from the client",
            "server: 10 bytes 'after auto' from the autobound client",
            "server: no more (EAGAIN)",
            "client: 5 bytes 'again' from the server",
            "client: no more (EAGAIN)",
        ],
    );
}

/// Two TCP connections over loopback with both ends in the process, bytes
/// waiting both ways: one accepted from a listener still open, one whose
/// listener was closed since. Both come back connected to each other with
/// their addresses and options, the bytes in order, and the listener
/// still takes connections.
#[test]
fn tcp_both_ends_on_loopback() {
    roundtrip(
        "tcp",
        &[
            "accepted end name: 1, peer: 1",
            "connecting end name: 1, peer: 1",
            "second pair: 1 1",
            "TCP_NODELAY: 1",
            "server 1 reads 19 'from client 1, more' ok",
            "client 1 reads 13 'from server 1' ok",
            "server 2 reads 13 'from client 2' ok",
            "client 2 reads -1 '' EAGAIN",
            "client 1 reads 5 'again' ok",
            "server 2 reads 7 'again 2' ok",
            "server 3 reads 5 'third' ok",
            "server 1 after close reads 0 '' ok",
        ],
    );
}

/// SHUT_WR on one end of a stream pair (with bytes queued before it) and
/// SHUT_RD on one end of another: reads give the bytes then EOF, writes
/// EPIPE, where they did before the dump; the other direction still works.
#[test]
fn unix_stream_shutdown() {
    roundtrip(
        "shutdown",
        &[
            "wr-shut peer read: 3 ok",
            "wr-shut peer read: 0 ok",
            "wr-shut end write: -1 EPIPE",
            "wr-shut peer write: 1 ok",
            "wr-shut end read: 1 ok",
            "rd-shut end read: 0 ok",
            "rd-shut peer write: -1 EPIPE",
            "rd-shut end write: 1 ok",
            "rd-shut peer read: 1 ok",
        ],
    );
}

/// Runs `mode`, which prints `{what} fd N` and `ready`, then waits for the
/// file `CSOCKETS_GO`: the dump must fail naming fd N and saying `words`,
/// and once the test creates the file the program goes on as an
/// uninterrupted run.
fn dump_fails(mode: &str, what: &str, words: &[&str]) {
    let program = csockets(mode);
    let expected = reference(&program);
    let dir = TestDir::new(&format!("sockets-{mode}"));
    let image = dir.join("sockets.img");
    let go = dir.join("go");
    let mut p = dir.spawn(
        &program,
        "original",
        &[
            ("MIGRATE_IMAGE", image.to_str().unwrap()),
            ("CSOCKETS_GO", go.to_str().unwrap()),
        ],
    );
    let prefix = format!("{what} fd ");
    let at = p.wait_for_line(&format!("`{prefix}N`"), |l| l.starts_with(&prefix));
    let fd: i32 = p.stdout_lines()[at]
        .trim_start_matches(&prefix)
        .parse()
        .expect("fd number");
    p.wait_for_line("`ready`", |l| l == "ready");
    p.dump_signal();
    p.wait_for_stderr_line("`migrate: dump failed`", |l| {
        l.starts_with("migrate: dump failed")
    });
    std::fs::write(&go, "").expect("create the go file");
    expect_dump_failure(&mut p, &image, &[fd], words, &expected);
}

/// A message carrying two descriptors (a pipe's read end, a file) waits
/// between two others on a stream socket pair: the image cannot hold the
/// descriptors, so the dump fails naming the receiving end; the program
/// then receives every message and reads through both descriptors, and
/// the failed dump left no descriptor open in it (no peeked copy).
#[test]
fn scm_rights_in_flight_on_stream_pair_fails_dump() {
    dump_fails("scmstream", "socket", &["SCM_RIGHTS", "Unix socket"]);
}

/// The same on a datagram socket pair.
#[test]
fn scm_rights_in_flight_on_datagram_pair_fails_dump() {
    dump_fails("scmdgram", "socket", &["SCM_RIGHTS", "Unix socket"]);
}

/// Loopback TCP connections with both ends in the process: one end shut
/// down its writes after sending bytes (the other reads them, then EOF),
/// the same with the bytes and the EOF read before the dump (EOF again),
/// and one end shut down its reads: each comes back shut down as it was,
/// the other direction still carrying bytes. The original exits at the
/// dump (`MIGRATE_AFTER_DUMP=exit`), so that the addresses a restore binds
/// are not held by its own connections' ends after it went on.
#[test]
fn tcp_shutdown_on_loopback() {
    roundtrip_with(
        "tcpshut",
        &[
            "wr-shut server reads 10 'before eof' ok",
            "wr-shut server reads 0 '' ok",
            "wr-shut client write: -1 EPIPE",
            "wr-shut client reads 4 'back' ok",
            "eof-read client reads 0 '' ok",
            "eof-read server write: -1 EPIPE",
            "eof-read server reads 4 'to 2' ok",
            "rd-shut server reads 0 '' ok",
            "rd-shut client reads 5 'still' ok",
            "rd-shut client write: 1 ok",
            "eof-read server after close reads 0 '' ok",
        ],
        &[("MIGRATE_AFTER_DUMP", "exit")],
    );
}

/// A loopback TCP connection from a client of the process waits in its
/// listener's accept queue with bytes sent: they cannot be read without
/// accepting it, so the dump fails naming the listener; the program then
/// accepts it and reads the bytes.
#[test]
fn tcp_pending_in_accept_queue_fails_dump() {
    dump_fails("tcppending", "listener", &["accept queue"]);
}

/// The same with a Unix stream listener: the dump fails naming it.
#[test]
fn unix_pending_in_accept_queue_fails_dump() {
    dump_fails(
        "unixpending",
        "listener",
        &["Unix listener", "accept queue"],
    );
}

/// A datagram socket pair whose receiving end has SO_PASSCRED (which its
/// record cannot hold), a message waiting: the dump fails naming that end,
/// and the message is then received with the process's credentials.
#[test]
fn passcred_on_socket_pair_fails_dump() {
    dump_fails("passcred", "socket", &["SO_PASSCRED"]);
}

/// A Unix datagram server with SO_PASSCRED and a message from a socket of
/// the process waiting: the option comes back, and the message (sent again
/// from the restored process) carries its credentials, as later ones do.
#[test]
fn passcred_on_datagram_server() {
    roundtrip(
        "creds",
        &[
            "SO_PASSCRED: 1",
            "server: 10 bytes 'with creds' ok, credentials 1 ours 1",
            "server: 5 bytes 'after' ok, credentials 1 ours 1",
            "server: -1 bytes '' EAGAIN, credentials 0 ours 0",
        ],
    );
}
