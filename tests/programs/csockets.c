/*
 * Descriptors of issue 12 (objects_sockets.rs): pipes and socket pairs
 * with flags on one end, epoll watching a file through a closed
 * descriptor, Unix datagram sockets connected inside the process, and the
 * shutdown state of Unix stream sockets. One mode per case.
 *
 * usage: csockets MODE
 *
 *  flags     a pipe whose read end alone is O_NONBLOCK and whose write end
 *            alone is close-on-exec; a stream socket pair with one end
 *            O_NONBLOCK; a dup of the pipe's read end, not close-on-exec.
 *  epoll     an epoll set watching three eventfds: one through its own
 *            descriptor, one through a descriptor closed since (a dup keeps
 *            the eventfd open), one through a descriptor closed since whose
 *            number now holds another file (/dev/null).
 *  epollgone an epoll set watching a pipe whose descriptors are all closed
 *            but which is in flight in a socket pair (SCM_RIGHTS): no
 *            descriptor holds it, so a dump must fail; the program goes on
 *            (40 steps 25 ms apart, during which the test dumps it).
 *  dgram     Unix datagram sockets: a server bound to a path and one bound
 *            to an abstract name; two clients connected to the first, one
 *            to the second, one bound client connected to the first, an
 *            unconnected socket that sends to the first. Messages wait in
 *            both servers and in the bound client at the dump.
 *  udp       UDP sockets on loopback: a server bound to a port of its own,
 *            a bound client connected to it, one connected without a bind
 *            (bound by the connect), and a sender closed since: datagrams
 *            wait in the server and the client at the dump.
 *  tcp       two TCP connections on loopback with both ends here, bytes
 *            waiting both ways: one accepted from a listener still open,
 *            one whose listener was closed since.
 *  shutdown  two stream socket pairs: one with SHUT_WR on one end (after 3
 *            bytes queued), one with SHUT_RD on one end.
 *  scmstream a stream socket pair with three messages waiting on one end,
 *  scmdgram  the middle one carrying two descriptors (SCM_RIGHTS: a pipe's
 *            read end with bytes in the pipe, a file): a dump must fail
 *            naming the receiving end; after the test creates the file
 *            CSOCKETS_GO, the program receives all three and reads through
 *            both descriptors, and checks that the failed dump left no
 *            descriptor behind. scmdgram: the same on a datagram pair.
 *  tcpshut   three loopback TCP connections with both ends here: the
 *            connecting end wrote bytes then shut down its writes; the
 *            accepted end the same, with the bytes and the EOF already read
 *            by the other end; the accepted end shut down its reads.
 *  unixpending the same with a Unix stream listener (an abstract name).
 *  passcred  a datagram socket pair whose receiving end has SO_PASSCRED,
 *            a message waiting: a dump must fail naming it (the image
 *            cannot hold the option on a connected socket); after
 *            CSOCKETS_GO, the message is received with our credentials.
 *  creds     a Unix datagram server (an abstract name) with SO_PASSCRED and
 *            a message from an unnamed socket of the process waiting: the
 *            option and the message come back, with our credentials.
 *  tcppending a loopback TCP connection waiting in its listener's accept
 *            queue with bytes sent: a dump must fail naming the listener;
 *            after CSOCKETS_GO, the connection is accepted and read.
 *
 * Protocol: "start", "ready", then the program waits for the image
 * (MIGRATE_IMAGE, which the test dumps to once it reads "ready"; without
 * MIGRATE_IMAGE it goes straight on), then one verdict line per check,
 * "done". The verdict lines are the same in every run.
 */
#include "testprog.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>

static const char *errname(int e)
{
    switch (e) {
    case 0:
        return "ok";
    case EAGAIN:
        return "EAGAIN";
    case EPIPE:
        return "EPIPE";
    case EBADF:
        return "EBADF";
    case ENOENT:
        return "ENOENT";
    case EPERM:
        return "EPERM";
    case ENOTCONN:
        return "ENOTCONN";
    default:
        return strerror(e);
    }
}

/* Waits until the image exists (the dump is over, or this is the restored
 * process), or returns at once without MIGRATE_IMAGE. */
static void wait_for_dump(void)
{
    printf("ready\n");
    const char *image = getenv("MIGRATE_IMAGE");
    if (!image)
        return;
    struct stat st;
    for (int i = 0; i < 6000; i++) {
        if (stat(image, &st) == 0)
            return;
        pace(5000000L);
        if (g_nosleep)
            usleep(5000);
    }
    fail("no image after 30 s");
}

/* ---- helpers of the socket modes ------------------------------------------ */

/* Connects s to `to` (len bytes) or dies naming what. */
static void connect_or_die(int s, const void *to, socklen_t len, const char *what)
{
    if (connect(s, (const struct sockaddr *)to, len) != 0)
        die(what);
}

/* Sends text as one message (to `to`, len bytes, unless it is NULL) or
 * dies naming what. */
static void send_or_die(int s, const char *text, int flags, const void *to, socklen_t len, const char *what)
{
    size_t n = strlen(text);
    if (sendto(s, text, n, flags, (const struct sockaddr *)to, len) != (ssize_t)n)
        die(what);
}

/* Reads every datagram waiting on s (non-blocking), one line each, its
 * sender as `sender` names it. */
static void drain_named(int s, const char *who, const char *(*sender)(const struct sockaddr_storage *, socklen_t))
{
    for (;;) {
        char buf[256];
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t r = recvfrom(s, buf, sizeof buf - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
        if (r < 0) {
            printf("%s: no more (%s)\n", who, errname(errno));
            return;
        }
        buf[r] = 0;
        printf("%s: %zd bytes '%s' from %s\n", who, r, buf, sender(&from, flen));
    }
}

/* ---- flags -------------------------------------------------------------- */

static void say_flags(const char *what, int fd)
{
    int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
    printf("%s nonblock=%d cloexec=%d\n", what, !!(fl & O_NONBLOCK), !!(fdfl & FD_CLOEXEC));
}

static int mode_flags(void)
{
    int p[2], s[2];
    if (pipe(p) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0)
        die("pipe/socketpair");
    if (fcntl(p[0], F_SETFL, O_NONBLOCK) != 0 || fcntl(p[1], F_SETFD, FD_CLOEXEC) != 0)
        die("fcntl pipe");
    if (fcntl(s[1], F_SETFL, O_NONBLOCK) != 0)
        die("fcntl socket");
    int d = dup(p[0]);
    if (d < 0)
        die("dup");
    wait_for_dump();
    say_flags("pipe read end", p[0]);
    say_flags("pipe write end", p[1]);
    say_flags("pipe read end dup", d);
    say_flags("pair end 0", s[0]);
    say_flags("pair end 1", s[1]);
    char c;
    errno = 0;
    ssize_t r = read(p[0], &c, 1);
    printf("read empty pipe: %zd %s\n", r, errname(r < 0 ? errno : 0));
    errno = 0;
    r = read(s[1], &c, 1);
    printf("read empty pair end 1: %zd %s\n", r, errname(r < 0 ? errno : 0));
    write_all(s[1], "k", 1, "write pair");
    r = read(s[0], &c, 1);
    printf("pair end 0 reads %zd '%c'\n", r, r == 1 ? c : '?');
    return 0;
}

/* ---- epoll -------------------------------------------------------------- */

static int mode_epoll(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int kept = eventfd(0, EFD_NONBLOCK);
    int closed = eventfd(0, EFD_NONBLOCK);
    int reused = eventfd(0, EFD_NONBLOCK);
    if (ep < 0 || kept < 0 || closed < 0 || reused < 0)
        die("epoll/eventfd");
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = 101;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, kept, &ev) != 0)
        die("epoll_ctl kept");
    ev.data.u64 = 202;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, closed, &ev) != 0)
        die("epoll_ctl closed");
    ev.data.u64 = 303;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, reused, &ev) != 0)
        die("epoll_ctl reused");
    /* The watched files live on through dups at other numbers. */
    int closed_dup = fcntl(closed, F_DUPFD_CLOEXEC, 40);
    int reused_dup = fcntl(reused, F_DUPFD_CLOEXEC, 50);
    if (closed_dup < 0 || reused_dup < 0)
        die("dup");
    int reused_no = reused;
    close(closed);
    close(reused);
    int null = open("/dev/null", O_RDONLY);
    if (null != reused_no && dup2(null, reused_no) != reused_no)
        die("dup2 /dev/null");
    if (null != reused_no)
        close(null);
    wait_for_dump();
    struct epoll_event out[8];
    int n = epoll_wait_retry(ep, out, 8, 0);
    printf("nothing ready: %d\n", n);
    uint64_t one = 1;
    const struct {
        int fd;
        const char *name;
    } order[] = {{closed_dup, "closed"}, {reused_dup, "reused"}, {kept, "kept"}};
    for (int i = 0; i < 3; i++) {
        write_all(order[i].fd, &one, sizeof one, "eventfd write");
        n = epoll_wait_retry(ep, out, 8, 2000);
        printf("%s ready: %d data=%" PRIu64 "\n", order[i].name, n, n > 0 ? out[0].data.u64 : 0);
        uint64_t v;
        if (read(order[i].fd, &v, sizeof v) != sizeof v)
            die("eventfd read");
    }
    n = epoll_wait_retry(ep, out, 8, 0);
    printf("nothing ready again: %d\n", n);
    errno = 0;
    int rc0 = epoll_ctl(ep, EPOLL_CTL_DEL, closed_dup, &ev);
    printf("delete by the dup's number: %d %s\n", rc0, errname(rc0 ? errno : 0));
    /* The entry of the number that now holds /dev/null is not /dev/null's. */
    errno = 0;
    int rc = epoll_ctl(ep, EPOLL_CTL_DEL, reused_no, &ev);
    printf("delete by the reused number: %d %s\n", rc, errname(rc ? errno : 0));
    return 0;
}

static int mode_epollgone(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int p[2], s[2];
    if (ep < 0 || pipe(p) != 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, s) != 0)
        die("epoll/pipe/socketpair");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0)
        die("epoll_ctl");
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[0], sizeof(int));
    if (sendmsg(s[1], &m, 0) != 1)
        die("sendmsg");
    close(p[0]);
    printf("epoll fd %d\n", ep);
    printf("ready\n");
    /* The test dumps (which fails) meanwhile: the program goes on. */
    for (int step = 1; step <= 40; step++) {
        pace(25000000L);
        printf("step %d\n", step);
    }
    write_all(p[1], "y", 1, "pipe write");
    struct epoll_event out[2];
    int n = epoll_wait_retry(ep, out, 2, 2000);
    printf("pipe ready: %d data=%" PRIu64 "\n", n, n > 0 ? out[0].data.u64 : 0);
    return 0;
}

/* ---- dgram -------------------------------------------------------------- */

static socklen_t unix_addr(struct sockaddr_un *a, const char *name, int abstract)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (abstract) {
        memcpy(a->sun_path + 1, name, len);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    }
    memcpy(a->sun_path, name, len);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

static int dgram_socket(void)
{
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket");
    return s;
}

static const char *unix_sender(const struct sockaddr_storage *from, socklen_t flen)
{
    return flen > offsetof(struct sockaddr_un, sun_path) ? ((const struct sockaddr_un *)from)->sun_path : "(unnamed)";
}

/* Reads every message waiting on s (non-blocking), one line each. */
static void drain(int s, const char *who)
{
    drain_named(s, who, unix_sender);
}

static char abs_name[64];

static void say_peer(int s, const char *who)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    socklen_t len = sizeof a;
    if (getpeername(s, (struct sockaddr *)&a, &len) != 0) {
        printf("%s peer: %s\n", who, errname(errno));
        return;
    }
    int abstract = len > offsetof(struct sockaddr_un, sun_path) && a.sun_path[0] == 0;
    size_t name_len = len - offsetof(struct sockaddr_un, sun_path) - 1;
    if (abstract)
        printf("%s peer: %s\n", who,
               name_len == strlen(abs_name) && memcmp(a.sun_path + 1, abs_name, name_len) == 0 ? "@the abstract name"
                                                                                               : "@another");
    else
        printf("%s peer: %s\n", who, a.sun_path);
}

static void send_msg(int s, const char *text)
{
    send_or_die(s, text, MSG_DONTWAIT, NULL, 0, "send");
}

static int mode_dgram(void)
{
    struct sockaddr_un a_srv, a_abs, a_cli;
    socklen_t l_srv = unix_addr(&a_srv, "srv.sock", 0);
    socklen_t l_abs = unix_addr(&a_abs, "migrate-csockets-abstract", 1);
    socklen_t l_cli = unix_addr(&a_cli, "cli.sock", 0);
    unlink("srv.sock");
    unlink("cli.sock");
    /* A distinct abstract name per run: runs go on in parallel. */
    snprintf(abs_name, sizeof abs_name, "migrate-csockets-%d", (int)getpid());
    l_abs = unix_addr(&a_abs, abs_name, 1);
    int srv = dgram_socket(), abs = dgram_socket();
    if (bind(srv, (struct sockaddr *)&a_srv, l_srv) != 0 || bind(abs, (struct sockaddr *)&a_abs, l_abs) != 0)
        die("bind server");
    int c1 = dgram_socket(), c2 = dgram_socket(), c3 = dgram_socket(), bound = dgram_socket();
    int loose = dgram_socket();
    if (bind(bound, (struct sockaddr *)&a_cli, l_cli) != 0)
        die("bind client");
    connect_or_die(c1, &a_srv, l_srv, "connect");
    connect_or_die(c2, &a_srv, l_srv, "connect");
    connect_or_die(c3, &a_abs, l_abs, "connect");
    connect_or_die(bound, &a_srv, l_srv, "connect");
    send_msg(c1, "one");
    send_msg(c2, "two");
    send_or_die(loose, "three", 0, &a_srv, l_srv, "sendto");
    send_msg(bound, "four");
    send_msg(c1, "");
    send_msg(c3, "five");
    send_or_die(srv, "reply", 0, &a_cli, l_cli, "sendto reply");
    wait_for_dump();
    drain(srv, "server");
    drain(abs, "abstract server");
    drain(bound, "bound client");
    say_peer(c1, "client 1");
    say_peer(c2, "client 2");
    say_peer(c3, "client 3");
    say_peer(bound, "bound client");
    say_peer(loose, "unconnected");
    send_msg(c2, "after 2");
    send_msg(c1, "after 1");
    send_msg(c3, "after 3");
    send_or_die(srv, "again", 0, &a_cli, l_cli, "sendto again");
    drain(srv, "server");
    drain(abs, "abstract server");
    drain(bound, "bound client");
    /* Only its peer may send to a connected socket. */
    errno = 0;
    ssize_t r = sendto(loose, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&a_cli, l_cli);
    printf("unconnected to bound client: %zd %s\n", r, errname(r < 0 ? errno : 0));
    unlink("srv.sock");
    unlink("cli.sock");
    return 0;
}

/* ---- udp ---------------------------------------------------------------- */

static struct sockaddr_in udp_bound(int s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0)
        die("bind udp");
    socklen_t len = sizeof a;
    if (getsockname(s, (struct sockaddr *)&a, &len) != 0)
        die("getsockname udp");
    return a;
}

static struct sockaddr_in name_of(int s, int peer)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    socklen_t len = sizeof a;
    if ((peer ? getpeername(s, (struct sockaddr *)&a, &len) : getsockname(s, (struct sockaddr *)&a, &len)) != 0)
        a.sin_family = 0;
    return a;
}

static int same_addr(struct sockaddr_in a, struct sockaddr_in b)
{
    return a.sin_family == b.sin_family && a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
}

static struct sockaddr_in g_srv, g_cli, g_auto, g_gone;

static const char *who_is(struct sockaddr_in a)
{
    if (same_addr(a, g_srv))
        return "the server";
    if (same_addr(a, g_cli))
        return "the client";
    if (same_addr(a, g_auto))
        return "the autobound client";
    if (same_addr(a, g_gone))
        return "the closed sender";
    return "someone else";
}

static const char *inet_sender(const struct sockaddr_storage *from, socklen_t flen)
{
    (void)flen;
    return who_is(*(const struct sockaddr_in *)from);
}

static void udp_drain(int s, const char *who)
{
    drain_named(s, who, inet_sender);
}

static int mode_udp(void)
{
    int srv = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int cli = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int autob = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int gone = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int other = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (srv < 0 || cli < 0 || autob < 0 || gone < 0 || other < 0)
        die("socket udp");
    int one = 1;
    if (setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die("SO_REUSEADDR");
    g_srv = udp_bound(srv);
    g_cli = udp_bound(cli);
    g_gone = udp_bound(gone);
    connect_or_die(cli, &g_srv, sizeof g_srv, "connect udp");
    connect_or_die(autob, &g_srv, sizeof g_srv, "connect udp");
    g_auto = name_of(autob, 0);
    send_or_die(cli, "ping1", 0, NULL, 0, "send udp");
    send_or_die(autob, "auto", 0, NULL, 0, "send udp");
    send_or_die(gone, "bye", 0, &g_srv, sizeof g_srv, "sendto udp gone");
    close(gone);
    send_or_die(cli, "ping2", 0, NULL, 0, "send udp");
    send_or_die(srv, "pong", 0, &g_cli, sizeof g_cli, "sendto udp pong");
    wait_for_dump();
    printf("server name kept: %d\n", same_addr(name_of(srv, 0), g_srv));
    printf("client name kept: %d\n", same_addr(name_of(cli, 0), g_cli));
    printf("autobound client name kept: %d\n", same_addr(name_of(autob, 0), g_auto));
    printf("client peer: %s\n", who_is(name_of(cli, 1)));
    printf("autobound client peer: %s\n", who_is(name_of(autob, 1)));
    printf("server peer: %s\n", name_of(srv, 1).sin_family ? "some" : "none");
    int reuse = 0;
    socklen_t ol = sizeof reuse;
    getsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &reuse, &ol);
    printf("server SO_REUSEADDR: %d\n", reuse);
    udp_drain(srv, "server");
    udp_drain(cli, "client");
    send_or_die(cli, "after", 0, NULL, 0, "send udp after");
    send_or_die(autob, "after auto", 0, NULL, 0, "send udp after");
    send_or_die(srv, "again", 0, &g_cli, sizeof g_cli, "sendto udp again");
    /* A connected socket takes datagrams only from its peer. */
    send_or_die(other, "stranger", 0, &g_cli, sizeof g_cli, "sendto udp stranger");
    udp_drain(srv, "server");
    udp_drain(cli, "client");
    return 0;
}

/* ---- tcp ---------------------------------------------------------------- */

static int tcp_listener(struct sockaddr_in *at)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die("tcp listener");
    *at = udp_bound(l);
    if (listen(l, 8) != 0)
        die("listen");
    return l;
}

static int tcp_connect(const struct sockaddr_in *to)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (const struct sockaddr *)to, sizeof *to) != 0)
        die("tcp connect");
    return c;
}

/* Reads what waits on fd (up to 255 bytes, within 2 s), one line. */
static void tcp_read(int fd, const char *who)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (poll(&pfd, 1, 2000) < 0 && errno == EINTR)
        ;
    char buf[256];
    errno = 0;
    ssize_t r = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (r >= 0)
        buf[r] = 0;
    printf("%s reads %zd '%s' %s\n", who, r, r >= 0 ? buf : "", errname(r < 0 ? errno : 0));
}

static int mode_tcp(void)
{
    struct sockaddr_in at1, at2;
    int l1 = tcp_listener(&at1), l2 = tcp_listener(&at2);
    int c1 = tcp_connect(&at1), c2 = tcp_connect(&at2);
    int a1 = accept4(l1, NULL, NULL, SOCK_CLOEXEC), a2 = accept4(l2, NULL, NULL, SOCK_CLOEXEC);
    if (a1 < 0 || a2 < 0)
        die("accept");
    /* The second listener is gone: its connection lives on. */
    close(l2);
    int one = 1;
    if (setsockopt(c1, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die("TCP_NODELAY");
    struct sockaddr_in c1_name = name_of(c1, 0), c2_name = name_of(c2, 0);
    write_all(c1, "from client 1", 13, "tcp write");
    write_all(c1, ", more", 6, "tcp write");
    write_all(a1, "from server 1", 13, "tcp write");
    write_all(c2, "from client 2", 13, "tcp write");
    wait_for_dump();
    printf("accepted end name: %d, peer: %d\n", same_addr(name_of(a1, 0), at1), same_addr(name_of(a1, 1), c1_name));
    printf("connecting end name: %d, peer: %d\n", same_addr(name_of(c1, 0), c1_name), same_addr(name_of(c1, 1), at1));
    printf("second pair: %d %d\n", same_addr(name_of(a2, 0), at2), same_addr(name_of(c2, 0), c2_name));
    int nodelay = 0;
    socklen_t ol = sizeof nodelay;
    getsockopt(c1, IPPROTO_TCP, TCP_NODELAY, &nodelay, &ol);
    printf("TCP_NODELAY: %d\n", nodelay);
    tcp_read(a1, "server 1");
    tcp_read(c1, "client 1");
    tcp_read(a2, "server 2");
    tcp_read(c2, "client 2");
    write_all(a1, "again", 5, "tcp write");
    write_all(c2, "again 2", 7, "tcp write");
    tcp_read(c1, "client 1");
    tcp_read(a2, "server 2");
    /* The listener still takes connections. */
    int c3 = tcp_connect(&at1);
    int a3 = accept4(l1, NULL, NULL, SOCK_CLOEXEC);
    write_all(c3, "third", 5, "tcp write");
    tcp_read(a3, "server 3");
    close(c1);
    tcp_read(a1, "server 1 after close");
    return 0;
}

/* ---- shutdown ----------------------------------------------------------- */

static void try_read(int fd, const char *who)
{
    char buf[16];
    errno = 0;
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    printf("%s read: %zd %s\n", who, r, errname(r < 0 ? errno : 0));
}

static void try_write(int fd, const char *who)
{
    errno = 0;
    ssize_t r = send(fd, "z", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    printf("%s write: %zd %s\n", who, r, errname(r < 0 ? errno : 0));
}

static int mode_shutdown(void)
{
    int a[2], b[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, b) != 0)
        die("socketpair");
    write_all(a[0], "abc", 3, "write");
    if (shutdown(a[0], SHUT_WR) != 0 || shutdown(b[0], SHUT_RD) != 0)
        die("shutdown");
    wait_for_dump();
    try_read(a[1], "wr-shut peer");
    try_read(a[1], "wr-shut peer");
    try_write(a[0], "wr-shut end");
    try_write(a[1], "wr-shut peer");
    try_read(a[0], "wr-shut end");
    try_read(b[0], "rd-shut end");
    try_write(b[1], "rd-shut peer");
    try_write(b[0], "rd-shut end");
    try_read(b[1], "rd-shut peer");
    return 0;
}

/* ---- descriptors in flight ---------------------------------------------- */

/* Prints "ready", then waits until the file CSOCKETS_GO exists (the test
 * creates it once the dump has failed), or goes straight on without it. */
static void wait_for_go(void)
{
    printf("ready\n");
    const char *go = getenv("CSOCKETS_GO");
    if (!go)
        return;
    struct stat st;
    for (int i = 0; i < 6000; i++) {
        if (stat(go, &st) == 0)
            return;
        pace(5000000L);
        if (g_nosleep)
            usleep(5000);
    }
    fail("no go file after 30 s");
}

/* Receives one message on s: its bytes and the descriptors it carries;
 * reads through each (up to 63 bytes) and closes it. */
static void scm_receive(int s, const char *who)
{
    char buf[64] = {0};
    union {
        char b[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    struct iovec iov = {buf, sizeof buf - 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b, .msg_controllen = sizeof cbuf.b};
    errno = 0;
    ssize_t r = recvmsg(s, &m, MSG_DONTWAIT);
    int fds[4], n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); r >= 0 && c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && n < 4; i++)
                memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    printf("%s: %zd bytes '%s' %s, %d descriptors\n", who, r, r > 0 ? buf : "", errname(r < 0 ? errno : 0), n);
    for (int i = 0; i < n; i++) {
        char got[64] = {0};
        ssize_t k = pread(fds[i], got, sizeof got - 1, 0);
        if (k < 0 && errno == ESPIPE)
            k = read(fds[i], got, sizeof got - 1);
        printf("  descriptor %d reads %zd '%s'\n", i + 1, k, k > 0 ? got : "");
        close(fds[i]);
    }
}

static int mode_scm(int type)
{
    int s[2], p[2];
    if (socketpair(AF_UNIX, type, 0, s) != 0 || pipe(p) != 0)
        die("socketpair/pipe");
    char path[] = "/tmp/csockets-scm-XXXXXX";
    int file = mkstemp(path);
    if (file < 0)
        die("mkstemp");
    unlink(path);
    write_all(file, "in the file", 11, "file write");
    write_all(p[1], "through the pipe", 16, "pipe write");
    send_msg(s[0], "first");
    char cbuf[CMSG_SPACE(2 * sizeof(int))] = {0};
    char text[] = "with two";
    struct iovec iov = {text, strlen(text)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int pass[2] = {p[0], file};
    memcpy(CMSG_DATA(c), pass, sizeof pass);
    if (sendmsg(s[0], &m, 0) != (ssize_t)strlen(text))
        die("sendmsg");
    close(p[0]);
    close(file);
    send_msg(s[0], "last");
    /* The lowest free number now: a peeked copy left open would take it. */
    int free_fd = dup(0);
    close(free_fd);
    printf("socket fd %d\n", s[1]);
    wait_for_go();
    int again = dup(0);
    close(again);
    printf("no descriptor left behind: %d\n", again == free_fd);
    if (type == SOCK_DGRAM) {
        for (int i = 0; i < 4; i++)
            scm_receive(s[1], "receiver");
    } else {
        /* A stream read stops at a message with descriptors and after it. */
        for (int i = 0; i < 3; i++)
            scm_receive(s[1], "receiver");
    }
    return 0;
}

/* ---- TCP shutdown and accept queue -------------------------------------- */

static void tcp_try_write(int fd, const char *who)
{
    errno = 0;
    ssize_t r = send(fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    printf("%s write: %zd %s\n", who, r, errname(r < 0 ? errno : 0));
}

static int mode_tcpshut(void)
{
    struct sockaddr_in at;
    int l = tcp_listener(&at);
    int c1 = tcp_connect(&at), a1 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    int c2 = tcp_connect(&at), a2 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    int c3 = tcp_connect(&at), a3 = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (a1 < 0 || a2 < 0 || a3 < 0)
        die("accept");
    close(l);
    write_all(c1, "before eof", 10, "tcp write");
    write_all(a2, "read already", 12, "tcp write");
    if (shutdown(c1, SHUT_WR) != 0 || shutdown(a2, SHUT_WR) != 0 || shutdown(a3, SHUT_RD) != 0)
        die("shutdown");
    tcp_read(c2, "eof-read client");
    tcp_read(c2, "eof-read client");
    /* Bytes wait unread at both ends of the first connection and at the
     * end that did not shut down first of the others: an end closed with
     * bytes unread resets its connection, so the original process's exit
     * leaves no TIME_WAIT at the addresses a restore binds but (with
     * SO_REUSEADDR, which accepted ends have from their listener) the
     * accepted ends'. */
    write_all(a1, "back", 4, "tcp write");
    write_all(c2, "to 2", 4, "tcp write");
    write_all(a3, "still", 5, "tcp write");
    wait_for_dump();
    tcp_read(a1, "wr-shut server");
    tcp_read(a1, "wr-shut server");
    tcp_try_write(c1, "wr-shut client");
    tcp_read(c1, "wr-shut client");
    tcp_read(c2, "eof-read client");
    tcp_try_write(a2, "eof-read server");
    tcp_read(a2, "eof-read server");
    tcp_read(a3, "rd-shut server");
    tcp_read(c3, "rd-shut client");
    tcp_try_write(c3, "rd-shut client");
    close(c2);
    tcp_read(a2, "eof-read server after close");
    return 0;
}

static int mode_tcppending(void)
{
    struct sockaddr_in at;
    int l = tcp_listener(&at);
    int c = tcp_connect(&at);
    write_all(c, "early bytes", 11, "tcp write");
    printf("listener fd %d\n", l);
    wait_for_go();
    int a = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    printf("accepted: %d %s\n", a >= 0, errname(a < 0 ? errno : 0));
    if (a >= 0)
        tcp_read(a, "server");
    return 0;
}

static int mode_unixpending(void)
{
    struct sockaddr_un a;
    char name[64];
    snprintf(name, sizeof name, "csockets-pending-%d", (int)getpid());
    socklen_t len = unix_addr(&a, name, 1);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, len) != 0 || listen(l, 4) != 0 ||
        connect(c, (struct sockaddr *)&a, len) != 0)
        die("unix listener/connect");
    write_all(c, "early", 5, "write");
    printf("listener fd %d\n", l);
    wait_for_go();
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    printf("accepted: %d %s\n", s >= 0, errname(s < 0 ? errno : 0));
    if (s >= 0)
        tcp_read(s, "server");
    return 0;
}

/* Receives one message on s with its credentials: whether they are ours. */
static void creds_receive(int s, const char *who)
{
    char buf[64] = {0};
    union {
        char b[CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } cbuf;
    memset(&cbuf, 0, sizeof cbuf);
    struct iovec iov = {buf, sizeof buf - 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.b, .msg_controllen = sizeof cbuf.b};
    errno = 0;
    ssize_t r = recvmsg(s, &m, MSG_DONTWAIT);
    int creds = 0, ours = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); r >= 0 && c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred u;
            memcpy(&u, CMSG_DATA(c), sizeof u);
            creds = 1;
            ours = u.pid == getpid() && u.uid == getuid() && u.gid == getgid();
        }
    printf("%s: %zd bytes '%s' %s, credentials %d ours %d\n", who, r, r > 0 ? buf : "", errname(r < 0 ? errno : 0), creds, ours);
}

static int mode_passcred(void)
{
    int s[2], one = 1;
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, s) != 0 ||
        setsockopt(s[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0)
        die("socketpair/SO_PASSCRED");
    send_msg(s[0], "hi");
    printf("socket fd %d\n", s[1]);
    wait_for_go();
    creds_receive(s[1], "receiver");
    return 0;
}

static int mode_creds(void)
{
    struct sockaddr_un a;
    char name[64];
    snprintf(name, sizeof name, "csockets-creds-%d", (int)getpid());
    socklen_t len = unix_addr(&a, name, 1);
    int srv = dgram_socket(), cli = dgram_socket(), one = 1;
    if (bind(srv, (struct sockaddr *)&a, len) != 0 ||
        setsockopt(srv, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0)
        die("bind/SO_PASSCRED");
    if (sendto(cli, "with creds", 10, 0, (struct sockaddr *)&a, len) != 10)
        die("sendto");
    wait_for_dump();
    int v = 0;
    socklen_t vl = sizeof v;
    getsockopt(srv, SOL_SOCKET, SO_PASSCRED, &v, &vl);
    printf("SO_PASSCRED: %d\n", v);
    creds_receive(srv, "server");
    if (sendto(cli, "after", 5, 0, (struct sockaddr *)&a, len) != 5)
        die("sendto");
    creds_receive(srv, "server");
    creds_receive(srv, "server");
    return 0;
}

int main(int argc, char **argv)
{
    tp_start();
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argc > 1 ? argv[1] : "";
    int rc;
    if (strcmp(mode, "flags") == 0)
        rc = mode_flags();
    else if (strcmp(mode, "epoll") == 0)
        rc = mode_epoll();
    else if (strcmp(mode, "epollgone") == 0)
        rc = mode_epollgone();
    else if (strcmp(mode, "dgram") == 0)
        rc = mode_dgram();
    else if (strcmp(mode, "udp") == 0)
        rc = mode_udp();
    else if (strcmp(mode, "tcp") == 0)
        rc = mode_tcp();
    else if (strcmp(mode, "shutdown") == 0)
        rc = mode_shutdown();
    else if (strcmp(mode, "scmstream") == 0)
        rc = mode_scm(SOCK_STREAM);
    else if (strcmp(mode, "scmdgram") == 0)
        rc = mode_scm(SOCK_DGRAM);
    else if (strcmp(mode, "tcpshut") == 0)
        rc = mode_tcpshut();
    else if (strcmp(mode, "tcppending") == 0)
        rc = mode_tcppending();
    else if (strcmp(mode, "unixpending") == 0)
        rc = mode_unixpending();
    else if (strcmp(mode, "passcred") == 0)
        rc = mode_passcred();
    else if (strcmp(mode, "creds") == 0)
        rc = mode_creds();
    else
        fail("usage: csockets flags|epoll|epollgone|dgram|udp|tcp|shutdown|scmstream|scmdgram|tcpshut|tcppending|unixpending|passcred|creds");
    printf("done %s\n", mode);
    return rc;
}
