/*
 * One kind of descriptor per mode, used every step so that a restore that
 * lost or changed it shows in the output (or ends the program with an
 * "error ..." line).
 *
 * usage: cfdkinds MODE [ARG]
 *
 *  eventfd          a counting eventfd (every step adds the step number,
 *                   every 5th step reads and prints the sum) and a semaphore
 *                   one (adds 3, takes 1 per step).
 *  signalfd         SIGUSR1 and SIGWINCH blocked and read through a
 *                   non-blocking signalfd; every step raises one of them
 *                   and reads it back; prints the fd's mask from fdinfo.
 *  socketpair       a stream socketpair used as a queue in both directions
 *                   (records written ahead).
 *  dgram            a datagram socketpair with 4 datagrams of different
 *                   lengths always queued.
 *  fifo PATH        a FIFO made at PATH, open at both ends, used as a queue
 *                   like the socketpair.
 *  unix PATH        a listening Unix socket at PATH: every step connects to
 *                   it, accepts, and passes a line; plus a UDP socket bound
 *                   to 127.0.0.1:0 with SO_REUSEADDR that gets a datagram
 *                   every step and must keep its port.
 *  flags DIR        descriptors with chosen numbers, access modes and flags
 *                   (O_APPEND, O_NONBLOCK, FD_CLOEXEC), offsets that move
 *                   every step, a directory, /dev/null, /dev/zero,
 *                   /dev/urandom and a non-blocking pipe; prints them all.
 *  shm              a MAP_SHARED anonymous region, and a memfd written
 *                   through the fd and read through a MAP_SHARED mapping of
 *                   it (and the other way round).
 *  readonly PATH    a regular file opened read-only, read a line per step.
 *
 * Protocol: "start", setup lines, "step N ..." per step (25 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), "done ...". Every line is deterministic.
 */
#include "testprog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define STEPS 50
#define STEP_NS 25000000L

/* ---- eventfd ---------------------------------------------------------- */

static int mode_eventfd(void)
{
    int counter = eventfd(0, EFD_NONBLOCK);
    int sem = eventfd(0, EFD_NONBLOCK | EFD_SEMAPHORE);
    if (counter < 0 || sem < 0)
        die("eventfd");
    printf("eventfds %d %d\n", counter, sem);
    uint64_t h = FNV_INIT;
    for (int s = 1; s <= STEPS; s++) {
        uint64_t add = (uint64_t)s, three = 3, v, one;
        if (write(counter, &add, 8) != 8 || write(sem, &three, 8) != 8)
            die("write eventfd");
        if (read(sem, &one, 8) != 8)
            die("read semaphore eventfd");
        if (s % 5 == 0) {
            if (read(counter, &v, 8) != 8)
                die("read eventfd");
            h = fnv(h, &v, 8);
            printf("step %d counter=%" PRIu64 " sem-took=%" PRIu64 "\n", s, v, one);
        } else {
            printf("step %d added %d\n", s, s);
        }
        pace(STEP_NS);
    }
    /* The semaphore holds 2 per step: count them out one by one. */
    uint64_t one, left = 0;
    while (read(sem, &one, 8) == 8)
        left += one;
    printf("done semaphore-left=%" PRIu64 " h=%016" PRIx64 "\n", left, h);
    return 0;
}

/* ---- signalfd --------------------------------------------------------- */

/* The "sigmask:" value of fd's /proc/self/fdinfo entry. */
static void fdinfo_field(int fd, const char *field, char *out, size_t cap)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    int f = open(path, O_RDONLY);
    if (f < 0)
        die("open fdinfo");
    ssize_t n = read(f, buf, sizeof buf - 1);
    close(f);
    if (n < 0)
        die("read fdinfo");
    buf[n] = 0;
    char *p = strstr(buf, field);
    if (!p) {
        snprintf(out, cap, "(no %s)", field);
        return;
    }
    p += strlen(field);
    while (*p == ' ' || *p == '\t')
        p++;
    size_t i = 0;
    while (p[i] && p[i] != '\n' && i + 1 < cap) {
        out[i] = p[i];
        i++;
    }
    out[i] = 0;
}

static int mode_signalfd(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGWINCH);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0)
        die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK);
    if (sfd < 0)
        die("signalfd");
    printf("signalfd %d\n", sfd);
    int got = 0;
    for (int s = 1; s <= STEPS; s++) {
        int sig = s % 2 ? SIGUSR1 : SIGWINCH;
        if (raise(sig) != 0)
            die("raise");
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof si);
        if (n < 0 && errno == EAGAIN) {
            printf("step %d raised %d, signalfd has nothing\n", s, sig);
        } else if (n != sizeof si) {
            die("read signalfd");
        } else {
            char m[64];
            fdinfo_field(sfd, "sigmask:", m, sizeof m);
            got++;
            printf("step %d raised %d read %u mask %s\n", s, sig, si.ssi_signo, m);
        }
        pace(STEP_NS);
    }
    printf("done read=%d\n", got);
    return 0;
}

/* ---- socketpair ------------------------------------------------------- */

#define REC 16

static void put_rec(int fd, char dir, int k)
{
    char r[REC + 1];
    snprintf(r, sizeof r, "%c%06d-%07" PRIx64 "\n", dir, k, mix((uint64_t)k) & 0xfffffff);
    write_all(fd, r, REC, "write socketpair");
}

static int take_rec(int fd, char dir, int want, uint64_t *h)
{
    char r[REC + 1];
    ssize_t n = read(fd, r, REC);
    if (n < 0 && errno == EAGAIN)
        fail("socketpair empty");
    if (n != REC)
        die("read socketpair");
    r[REC] = 0;
    if (r[0] != dir || atoi(r + 1) != want) {
        printf("error expected %c%06d, got %.*s\n", dir, want, REC - 1, r);
        exit(1);
    }
    *h = fnv(*h, r, REC);
    return want;
}

static int mode_socketpair(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        die("socketpair");
    printf("stream %d %d\n", sv[0], sv[1]);
    /* 5 records ahead from sv[0] to sv[1], 3 the other way. */
    int a_next = 1, b_next = 1;
    for (; a_next <= 5; a_next++)
        put_rec(sv[0], 'a', a_next);
    for (; b_next <= 3; b_next++)
        put_rec(sv[1], 'b', b_next);
    uint64_t h = FNV_INIT;
    for (int s = 1; s <= STEPS; s++) {
        int a = take_rec(sv[1], 'a', s, &h);
        int b = take_rec(sv[0], 'b', s, &h);
        put_rec(sv[0], 'a', a_next++);
        put_rec(sv[1], 'b', b_next++);
        printf("step %d a=%d b=%d\n", s, a, b);
        pace(STEP_NS);
    }
    printf("done %016" PRIx64 "\n", h);
    return 0;
}

/* A named FIFO opened at both ends, used as a queue like the socketpair. */
static int mode_fifo(const char *path)
{
    unlink(path);
    if (mkfifo(path, 0600) != 0)
        die("mkfifo");
    int r = open(path, O_RDONLY | O_NONBLOCK);
    if (r < 0)
        die("open fifo for reading");
    int w = open(path, O_WRONLY);
    if (w < 0)
        die("open fifo for writing");
    printf("fifo r=%d w=%d\n", r, w);
    int next = 1;
    for (; next <= 6; next++)
        put_rec(w, 'f', next);
    uint64_t h = FNV_INIT;
    for (int s = 1; s <= STEPS; s++) {
        int f = take_rec(r, 'f', s, &h);
        put_rec(w, 'f', next++);
        struct stat st;
        if (fstat(r, &st) != 0)
            die("fstat fifo");
        printf("step %d f=%d fifo=%s\n", s, f, S_ISFIFO(st.st_mode) ? "yes" : "NO");
        pace(STEP_NS);
    }
    printf("done %016" PRIx64 "\n", h);
    return 0;
}

/* Datagram k: 1 + mix(k) % 200 bytes, all 'A' + k % 26. */
static size_t dgram_len(int k)
{
    return 1 + (size_t)(mix((uint64_t)k) % 200);
}

static void send_dgram(int fd, int k)
{
    char msg[256];
    size_t len = dgram_len(k);
    memset(msg, 'A' + k % 26, len);
    if (send(fd, msg, len, 0) != (ssize_t)len)
        die("send dgram");
}

static int mode_dgram(void)
{
    int dg[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, dg) != 0)
        die("socketpair");
    printf("dgram %d %d\n", dg[0], dg[1]);
    /* 4 datagrams of different lengths always queued from dg[0] to dg[1]. */
    int next = 1;
    for (; next <= 4; next++)
        send_dgram(dg[0], next);
    for (int s = 1; s <= STEPS; s++) {
        char msg[256];
        ssize_t n = recv(dg[1], msg, sizeof msg, 0);
        if (n < 0 && errno == EAGAIN)
            fail("no datagram queued");
        if (n < 0)
            die("recv dgram");
        int ok = (size_t)n == dgram_len(s);
        for (ssize_t i = 0; ok && i < n; i++)
            ok = msg[i] == 'A' + s % 26;
        send_dgram(dg[0], next++);
        printf("step %d len=%zd %s\n", s, n, ok ? "ok" : "WRONG");
        pace(STEP_NS);
    }
    int left = 0;
    char msg[256];
    while (recv(dg[1], msg, sizeof msg, 0) > 0)
        left++;
    printf("done left=%d\n", left);
    return 0;
}

/* ---- unix + udp ------------------------------------------------------- */

static int mode_unix(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path)
        fail("socket path too long");
    strcpy(sun.sun_path, path);
    unlink(path);
    int ls = socket(AF_UNIX, SOCK_STREAM, 0);
    if (ls < 0)
        die("socket unix");
    if (bind(ls, (struct sockaddr *)&sun, sizeof sun) != 0)
        die("bind unix");
    if (listen(ls, 8) != 0)
        die("listen unix");

    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (udp < 0)
        die("socket udp");
    int one = 1;
    if (setsockopt(udp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die("setsockopt SO_REUSEADDR");
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(udp, (struct sockaddr *)&sin, sizeof sin) != 0)
        die("bind udp");
    socklen_t sl = sizeof sin;
    if (getsockname(udp, (struct sockaddr *)&sin, &sl) != 0)
        die("getsockname udp");
    uint16_t port = sin.sin_port;
    printf("listening unix fd=%d udp fd=%d\n", ls, udp);

    for (int s = 1; s <= STEPS; s++) {
        char msg[32], got[64];
        int len = snprintf(msg, sizeof msg, "hello %d\n", s);

        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (c < 0)
            die("socket unix client");
        if (connect(c, (struct sockaddr *)&sun, sizeof sun) != 0)
            die("connect unix");
        int a = accept(ls, NULL, NULL);
        if (a < 0)
            die("accept unix");
        write_all(c, msg, (size_t)len, "write unix");
        ssize_t n = read(a, got, sizeof got);
        if (n < 0)
            die("read unix");
        const char *unix_ok = n == len && memcmp(got, msg, (size_t)len) == 0 ? "ok" : "WRONG";
        close(c);
        close(a);

        int u = socket(AF_INET, SOCK_DGRAM, 0);
        if (u < 0)
            die("socket udp client");
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = port};
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (sendto(u, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof to) != len)
            die("sendto udp");
        close(u);
        struct pollfd pfd = {.fd = udp, .events = POLLIN};
        int pr;
        while ((pr = poll(&pfd, 1, 5000)) < 0 && errno == EINTR)
            ;
        if (pr == 0)
            fail("no datagram on the UDP socket within 5 s");
        n = recv(udp, got, sizeof got, MSG_DONTWAIT);
        if (n < 0)
            die("recv udp");
        const char *udp_ok = n == len && memcmp(got, msg, (size_t)len) == 0 ? "ok" : "WRONG";

        struct sockaddr_in now;
        sl = sizeof now;
        if (getsockname(udp, (struct sockaddr *)&now, &sl) != 0)
            die("getsockname udp");
        int reuse = 0, accepting = 0;
        socklen_t ol = sizeof reuse;
        if (getsockopt(udp, SOL_SOCKET, SO_REUSEADDR, &reuse, &ol) != 0)
            die("getsockopt SO_REUSEADDR");
        ol = sizeof accepting;
        if (getsockopt(ls, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &ol) != 0)
            die("getsockopt SO_ACCEPTCONN");
        struct sockaddr_un bound;
        sl = sizeof bound;
        if (getsockname(ls, (struct sockaddr *)&bound, &sl) != 0)
            die("getsockname unix");
        printf("step %d unix=%s udp=%s port=%s reuseaddr=%d acceptconn=%d path=%s\n", s, unix_ok,
               udp_ok, now.sin_port == port ? "same" : "CHANGED", reuse, accepting,
               strcmp(bound.sun_path, path) == 0 ? "same" : "CHANGED");
        pace(STEP_NS);
    }
    printf("done steps=%d\n", STEPS);
    return 0;
}

/* ---- flags and offsets ------------------------------------------------ */

enum { A_APPEND, B_RDWR, C_RDONLY, D_DIR, NUL, ZERO, URANDOM, PIPE_R, PIPE_W, NFDS };
static const char *const NAMES[NFDS] = {"append", "rdwr", "rdonly", "dir", "null",
                                        "zero",   "urandom", "pipe-r", "pipe-w"};

static int open_at(const char *dir, const char *name, int flags, int at)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, flags, 0644);
    if (fd < 0)
        die(name);
    return move_fd(fd, at);
}

static int mode_flags(const char *dir)
{
    int fds[NFDS];
    /* ro.txt and rw.bin get their contents first; nothing writes ro.txt later. */
    char text[4096];
    size_t tl = 0;
    for (int i = 0; tl + 64 < sizeof text; i++)
        tl += (size_t)snprintf(text + tl, sizeof text - tl, "line %04d %016" PRIx64 "\n", i,
                               mix((uint64_t)i));
    int t = open_at(dir, "ro.txt", O_WRONLY | O_CREAT | O_TRUNC, 3);
    write_all(t, text, tl, "write ro.txt");
    close(t);
    t = open_at(dir, "rw.bin", O_WRONLY | O_CREAT | O_TRUNC, 3);
    write_all(t, text, tl, "write rw.bin");
    close(t);

    fds[A_APPEND] = open_at(dir, "append.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 20);
    write_all(fds[A_APPEND], "header\n", 7, "write append.log");
    fds[B_RDWR] = open_at(dir, "rw.bin", O_RDWR, 23);
    if (fcntl(fds[B_RDWR], F_SETFL, fcntl(fds[B_RDWR], F_GETFL) | O_NONBLOCK) != 0)
        die("F_SETFL O_NONBLOCK");
    fds[C_RDONLY] = open_at(dir, "ro.txt", O_RDONLY, 31);
    if (fcntl(fds[C_RDONLY], F_SETFD, FD_CLOEXEC) != 0)
        die("F_SETFD FD_CLOEXEC");
    if (lseek(fds[C_RDONLY], 100, SEEK_SET) != 100)
        die("lseek");
    fds[D_DIR] = open_at(dir, ".", O_RDONLY | O_DIRECTORY, 40);
    fds[NUL] = move_fd(open("/dev/null", O_WRONLY), 41);
    fds[ZERO] = move_fd(open("/dev/zero", O_RDONLY | O_CLOEXEC), 42);
    if (fcntl(fds[ZERO], F_SETFD, FD_CLOEXEC) != 0)
        die("F_SETFD");
    fds[URANDOM] = move_fd(open("/dev/urandom", O_RDONLY | O_NONBLOCK), 43);
    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0)
        die("pipe2");
    fds[PIPE_R] = move_fd(p[0], 50);
    fds[PIPE_W] = move_fd(p[1], 51);

    printf("fds");
    for (int i = 0; i < NFDS; i++)
        printf(" %s=%d", NAMES[i], fds[i]);
    printf("\n");

    for (int s = 1; s <= STEPS; s++) {
        char buf[256];
        /* Offsets move: B reads 37 bytes and writes 11 (the same bytes the
         * file had, so the file never changes), C reads 53 bytes. */
        ssize_t n = read(fds[B_RDWR], buf, 37);
        if (n != 37)
            die("read rw.bin");
        uint64_t hb = fnv(FNV_INIT, buf, 37);
        off_t at = lseek(fds[B_RDWR], 0, SEEK_CUR);
        if (at < 0 || at + 11 > (off_t)tl)
            fail("rw.bin offset out of range");
        write_all(fds[B_RDWR], text + at, 11, "write rw.bin");
        n = read(fds[C_RDONLY], buf, 53);
        if (n != 53)
            die("read ro.txt");
        uint64_t hc = fnv(FNV_INIT, buf, 53);
        /* The directory: a file found through it. */
        int f = openat(fds[D_DIR], "ro.txt", O_RDONLY);
        struct stat st, dst;
        if (f < 0 || fstat(f, &st) != 0 || fstat(fds[D_DIR], &dst) != 0)
            die("openat/fstat through the directory fd");
        close(f);
        /* Devices. */
        if (write(fds[NUL], buf, 10) != 10)
            die("write /dev/null");
        memset(buf, 1, 16);
        if (read(fds[ZERO], buf, 16) != 16)
            die("read /dev/zero");
        int zeros = 1;
        for (int i = 0; i < 16; i++)
            zeros &= buf[i] == 0;
        if (read(fds[URANDOM], buf, 16) != 16)
            die("read /dev/urandom");
        /* The pipe: empty (EAGAIN), then one byte through. */
        int empty = read(fds[PIPE_R], buf, 1) < 0 && errno == EAGAIN;
        if (write(fds[PIPE_W], "x", 1) != 1 || read(fds[PIPE_R], buf, 1) != 1 || buf[0] != 'x')
            die("pipe byte");

        printf("step %d off B=%lld C=%lld hB=%08" PRIx64 " hC=%08" PRIx64
               " dir=%s size=%lld zero=%s pipe=%s fl",
               s, (long long)lseek(fds[B_RDWR], 0, SEEK_CUR),
               (long long)lseek(fds[C_RDONLY], 0, SEEK_CUR), hb & 0xffffffff, hc & 0xffffffff,
               S_ISDIR(dst.st_mode) ? "yes" : "no", (long long)st.st_size, zeros ? "yes" : "no",
               empty ? "EAGAIN" : "not-empty");
        for (int i = 0; i < NFDS; i++) {
            int fl = fcntl(fds[i], F_GETFL);
            int fd = fcntl(fds[i], F_GETFD);
            printf(" %s=%x/%d", NAMES[i], fl < 0 ? 0xfff : fl & (O_ACCMODE | O_APPEND | O_NONBLOCK),
                   fd < 0 ? -1 : fd & FD_CLOEXEC);
        }
        printf("\n");
        pace(STEP_NS);
    }
    /* O_APPEND: a write after seeking to 0 still lands at the end. */
    struct stat st;
    if (fstat(fds[A_APPEND], &st) != 0)
        die("fstat append.log");
    if (lseek(fds[A_APPEND], 0, SEEK_SET) != 0)
        die("lseek append.log");
    write_all(fds[A_APPEND], "tail\n", 5, "write append.log");
    off_t end = lseek(fds[A_APPEND], 0, SEEK_CUR);
    printf("done append=%s\n", end == st.st_size + 5 ? "at-end" : "NOT-AT-END");
    return 0;
}

/* ---- shared memory ---------------------------------------------------- */

#define SHM_BYTES (64 * 1024)

static int mode_shm(void)
{
    uint64_t *anon = mmap(NULL, SHM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (anon == MAP_FAILED)
        die("mmap shared anonymous");
    for (size_t i = 0; i < SHM_BYTES / 8; i++)
        anon[i] = mix(i);
    int mfd = memfd_create("migrate-test", MFD_CLOEXEC);
    if (mfd < 0)
        die("memfd_create");
    if (ftruncate(mfd, SHM_BYTES) != 0)
        die("ftruncate memfd");
    unsigned char *m = mmap(NULL, SHM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (m == MAP_FAILED)
        die("mmap memfd");
    for (size_t i = 0; i < SHM_BYTES; i++)
        m[i] = (unsigned char)(i * 7);
    printf("memfd %d\n", mfd);

    for (int s = 1; s <= STEPS; s++) {
        for (size_t p = 0; p < SHM_BYTES / 4096; p++) {
            uint64_t *w = anon + p * 512 + (size_t)s % 512;
            *w = mix(*w + (uint64_t)s);
        }
        uint64_t ha = fnv(FNV_INIT, anon, SHM_BYTES);
        /* fd -> mapping */
        char rec[32];
        memset(rec, 'a' + s % 26, sizeof rec);
        off_t off = (off_t)(((size_t)s * 977) % (SHM_BYTES - sizeof rec));
        if (pwrite(mfd, rec, sizeof rec, off) != (ssize_t)sizeof rec)
            die("pwrite memfd");
        int fd_to_map = memcmp(m + off, rec, sizeof rec) == 0;
        /* mapping -> fd */
        off_t off2 = (off_t)(((size_t)s * 3331) % (SHM_BYTES - sizeof rec));
        memset(m + off2, 'A' + s % 26, sizeof rec);
        char back[32];
        if (pread(mfd, back, sizeof back, off2) != (ssize_t)sizeof back)
            die("pread memfd");
        int map_to_fd = memcmp(back, m + off2, sizeof back) == 0;
        struct stat st;
        if (fstat(mfd, &st) != 0)
            die("fstat memfd");
        uint64_t hm = fnv(FNV_INIT, m, SHM_BYTES);
        printf("step %d anon=%016" PRIx64 " memfd=%016" PRIx64 " size=%lld fd->map=%s map->fd=%s\n",
               s, ha, hm, (long long)st.st_size, fd_to_map ? "yes" : "NO", map_to_fd ? "yes" : "NO");
        pace(STEP_NS);
    }
    printf("done %016" PRIx64 "\n", fnv(fnv(FNV_INIT, anon, SHM_BYTES), m, SHM_BYTES));
    return 0;
}

/* ---- a read-only regular file ------------------------------------------ */

static int mode_readonly(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("fopen");
    /* Unbuffered: every line is read from the file, at the restored offset. */
    setvbuf(f, NULL, _IONBF, 0);
    char line[256];
    uint64_t h = FNV_INIT;
    for (int s = 1; s <= STEPS && fgets(line, sizeof line, f); s++) {
        h = fnv(h, line, strlen(line));
        printf("step %d %016" PRIx64 "\n", s, h);
        pace(STEP_NS);
    }
    printf("done %016" PRIx64 "\n", h);
    return 0;
}

int main(int argc, char **argv)
{
    tp_start();
    const char *mode = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : NULL;
    if (strcmp(mode, "eventfd") == 0)
        return mode_eventfd();
    if (strcmp(mode, "signalfd") == 0)
        return mode_signalfd();
    if (strcmp(mode, "socketpair") == 0)
        return mode_socketpair();
    if (strcmp(mode, "dgram") == 0)
        return mode_dgram();
    if (strcmp(mode, "fifo") == 0 && arg)
        return mode_fifo(arg);
    if (strcmp(mode, "unix") == 0 && arg)
        return mode_unix(arg);
    if (strcmp(mode, "flags") == 0 && arg)
        return mode_flags(arg);
    if (strcmp(mode, "shm") == 0)
        return mode_shm();
    if (strcmp(mode, "readonly") == 0 && arg)
        return mode_readonly(arg);
    fail("usage: cfdkinds eventfd|signalfd|socketpair|dgram|fifo PATH|unix PATH|flags DIR|shm|readonly PATH");
    return 2;
}
