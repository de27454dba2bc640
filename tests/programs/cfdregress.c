/*
 * Descriptor cases a review found mishandled (regressions.rs): one per mode,
 * used every step so that a restore that got them wrong shows in the output.
 *
 * usage: cfdregress MODE [ARG]
 *
 *  dup PATH    a stream socketpair with 5 bytes queued towards its reading
 *              end and a dup() of that end; a file PATH opened O_RDWR and
 *              dup()ed, written through both in turn. Every step prints both
 *              file offsets (one open file: always equal). At step READ_AT
 *              the queued bytes are read through the dup (exactly once: the
 *              original end has nothing more); later steps send a byte from
 *              the other end and read it through the dup.
 *  pipe101     4096 bytes written into a pipe, 4095 read, 100 more written:
 *              101 bytes in two pipe buffers. Every step prints what FIONREAD
 *              says; the end reads them all (count and checksum).
 *  memfdseal   a sealable memfd mapped MAP_SHARED read-write, then sealed
 *              with F_SEAL_FUTURE_WRITE: every step writes through the
 *              mapping, reads it back through the fd, and tries write() on
 *              the fd (EPERM); the end tries a new writable mapping (EPERM).
 *  aio         an AIO context (io_setup(2), which maps a ring): a dump must
 *              fail; the program goes on and destroys it at the end.
 *  eventfds    NEVENTFDS eventfds, each with its own counter; every step adds
 *              to some; the end reads every counter back and checks it.
 *
 * Protocol: "start", setup lines, "step N ..." per step (25 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), "done ...". Every line is deterministic.
 */
#include "testprog.h"

#include <linux/aio_abi.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define STEPS 50
#define STEP_NS 25000000L

static const char *errname(int e)
{
    switch (e) {
    case EPERM:
        return "EPERM";
    case EACCES:
        return "EACCES";
    case EAGAIN:
        return "EAGAIN";
    case EBADF:
        return "EBADF";
    case EINVAL:
        return "EINVAL";
    case 0:
        return "ok";
    default:
        return "other";
    }
}

/* ---- dup --------------------------------------------------------------- */

#define READ_AT 30

static int mode_dup(const char *path)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
        die("socketpair");
    write_all(sp[1], "HELLO", 5, "write socketpair");
    int rd = dup(sp[0]);
    int f = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (rd < 0 || f < 0)
        die("dup/open");
    int g = dup(f);
    if (g < 0)
        die("dup file");
    printf("socket %d dup %d, file %d dup %d\n", sp[0], rd, f, g);
    for (int s = 1; s <= STEPS; s++) {
        char rec[16];
        int len = snprintf(rec, sizeof rec, "rec %04d\n", s);
        write_all(s % 2 ? f : g, rec, (size_t)len, "write file");
        off_t a = lseek(f, 0, SEEK_CUR), b = lseek(g, 0, SEEK_CUR);
        char sock[96] = "";
        if (s == READ_AT) {
            char buf[64];
            ssize_t n = recv(rd, buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0)
                die("recv through the dup");
            ssize_t m = recv(sp[0], buf + n, sizeof buf - (size_t)n, MSG_DONTWAIT);
            snprintf(sock, sizeof sock, " dup-read %zd '%.*s' then %s", n, (int)n, buf,
                     m < 0 ? errname(errno) : "MORE BYTES");
        } else if (s > READ_AT) {
            char c = (char)('a' + s % 26), got = 0;
            write_all(sp[1], &c, 1, "write socketpair");
            ssize_t n = recv(rd, &got, 1, MSG_DONTWAIT);
            snprintf(sock, sizeof sock, " dup-got %c", n == 1 ? got : '-');
        }
        printf("step %d offsets %lld %lld%s\n", s, (long long)a, (long long)b, sock);
        pace(STEP_NS);
    }
    struct stat st;
    if (fstat(f, &st) != 0)
        die("fstat");
    char buf[4096];
    ssize_t n = pread(f, buf, sizeof buf, 0);
    if (n < 0)
        die("pread");
    printf("done size=%lld fnv=%016" PRIx64 "\n", (long long)st.st_size,
           fnv(FNV_INIT, buf, (size_t)n));
    return 0;
}

/* ---- pipe101 ----------------------------------------------------------- */

static int mode_pipe101(void)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        die("pipe2");
    unsigned char buf[4096];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)mix(i);
    write_all(p[1], buf, sizeof buf, "write pipe");
    if (read(p[0], buf, 4095) != 4095)
        die("read 4095");
    for (size_t i = 0; i < 100; i++)
        buf[i] = (unsigned char)mix(i + 10000);
    write_all(p[1], buf, 100, "write pipe");
    for (int s = 1; s <= STEPS; s++) {
        int n = -1;
        if (ioctl(p[0], FIONREAD, &n) != 0)
            die("FIONREAD");
        printf("step %d pipe holds %d\n", s, n);
        pace(STEP_NS);
    }
    size_t total = 0;
    uint64_t h = FNV_INIT;
    for (;;) {
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r < 0 && errno == EAGAIN)
            break;
        if (r <= 0)
            die("read pipe");
        h = fnv(h, buf, (size_t)r);
        total += (size_t)r;
    }
    printf("done bytes=%zu fnv=%016" PRIx64 "\n", total, h);
    return 0;
}

/* ---- memfdseal --------------------------------------------------------- */

#define MEMFD_LEN (4 * 4096)

static int mode_memfdseal(void)
{
    int m = memfd_create("sealed", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (m < 0)
        die("memfd_create");
    if (ftruncate(m, MEMFD_LEN) != 0)
        die("ftruncate");
    unsigned char *p = mmap(NULL, MEMFD_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    if (p == MAP_FAILED)
        die("mmap");
    if (fcntl(m, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0)
        die("F_ADD_SEALS");
    printf("seals %#x\n", fcntl(m, F_GET_SEALS));
    for (int s = 1; s <= STEPS; s++) {
        size_t at = ((size_t)s * 977) % (MEMFD_LEN - 64);
        for (size_t i = 0; i < 64; i++)
            p[at + i] = (unsigned char)mix((uint64_t)s * 64 + i);
        unsigned char back[64];
        if (pread(m, back, sizeof back, (off_t)at) != (ssize_t)sizeof back)
            die("pread memfd");
        int same = memcmp(back, p + at, sizeof back) == 0;
        errno = 0;
        ssize_t w = write(m, "x", 1);
        const char *wr = w < 0 ? errname(errno) : "WRITTEN";
        printf("step %d fd-sees-mapping=%s write=%s seals=%#x fnv=%016" PRIx64 "\n", s,
               same ? "yes" : "no", wr, fcntl(m, F_GET_SEALS), fnv(FNV_INIT, p, MEMFD_LEN));
        pace(STEP_NS);
    }
    void *q = mmap(NULL, MEMFD_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    const char *remap = q == MAP_FAILED ? errname(errno) : "MAPPED";
    printf("done new-writable-mapping=%s fnv=%016" PRIx64 "\n", remap,
           fnv(FNV_INIT, p, MEMFD_LEN));
    return 0;
}

/* ---- aio --------------------------------------------------------------- */

static int mode_aio(void)
{
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 8, &ctx) != 0)
        die("io_setup");
    printf("aio context ready\n");
    uint64_t acc = 17;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(STEP_NS);
    }
    if (syscall(SYS_io_destroy, ctx) != 0)
        die("io_destroy");
    printf("done %016" PRIx64 "\n", acc);
    return 0;
}

/* ---- eventfds ---------------------------------------------------------- */

#define NEVENTFDS 600
#define PER_STEP 40

static int mode_eventfds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    if (rl.rlim_cur < NEVENTFDS + 64) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            die("setrlimit");
    }
    static int fds[NEVENTFDS];
    static uint64_t want[NEVENTFDS];
    for (int i = 0; i < NEVENTFDS; i++) {
        want[i] = (uint64_t)i * 1000 + 1;
        fds[i] = eventfd((unsigned)want[i], EFD_NONBLOCK | EFD_CLOEXEC);
        if (fds[i] < 0)
            die("eventfd");
    }
    printf("eventfds %d\n", NEVENTFDS);
    for (int s = 1; s <= STEPS; s++) {
        uint64_t h = FNV_INIT;
        for (int k = 0; k < PER_STEP; k++) {
            int i = (int)(mix((uint64_t)(s * PER_STEP + k)) % NEVENTFDS);
            uint64_t add = (uint64_t)s * 3 + (uint64_t)k;
            if (write(fds[i], &add, 8) != 8)
                die("write eventfd");
            want[i] += add;
            h = fnv(h, &i, sizeof i);
        }
        printf("step %d added to %d eventfds h=%016" PRIx64 "\n", s, PER_STEP, h);
        pace(STEP_NS);
    }
    int right = 0;
    uint64_t h = FNV_INIT;
    for (int i = 0; i < NEVENTFDS; i++) {
        uint64_t v = 0;
        if (read(fds[i], &v, 8) != 8)
            die("read eventfd");
        if (v == want[i])
            right++;
        else
            printf("eventfd %d (#%d) reads %" PRIu64 ", expected %" PRIu64 "\n", fds[i], i, v,
                   want[i]);
        h = fnv(h, &v, sizeof v);
    }
    printf("done right=%d h=%016" PRIx64 "\n", right, h);
    return 0;
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 2)
        fail("usage: cfdregress MODE [ARG]");
    const char *mode = argv[1];
    if (strcmp(mode, "dup") == 0 && argc > 2)
        return mode_dup(argv[2]);
    if (strcmp(mode, "pipe101") == 0)
        return mode_pipe101();
    if (strcmp(mode, "memfdseal") == 0)
        return mode_memfdseal();
    if (strcmp(mode, "aio") == 0)
        return mode_aio();
    if (strcmp(mode, "eventfds") == 0)
        return mode_eventfds();
    fail("unknown mode");
    return 1;
}
