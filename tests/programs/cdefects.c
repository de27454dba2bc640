/*
 * One mode per defect of issue 7 (see tests/tests/defects.rs).
 *
 * usage: cdefects MODE [FILE]
 *
 *  fastprint  a worker prints "step N" lines as fast as it can (no pacing
 *             at all) for STEPS_FAST steps while main waits in
 *             pthread_join: a dump that lets it run on after the snapshot
 *             shows up as lines printed twice.
 *  caps       prints its capability sets, securebits and no_new_privs
 *             (from /proc/self/status and prctl) at every step: a restore
 *             must bring back exactly what it had.
 *  mapfile    maps FILE (read-only, private), closes it and checks its
 *             first bytes every step: the test may replace FILE by a FIFO.
 *  malloc     three threads malloc and free in a tight loop while main
 *             prints the steps: a dump signal most likely interrupts malloc.
 *  shared     16 pages of MAP_SHARED anonymous memory, filled at start and
 *             checked every step (the dump reads them through
 *             /proc/self/mem).
 *  timers     POSIX timers: A signals the process every 5 ms, B signals a
 *             worker thread every 5 ms (SIGEV_THREAD_ID), C was deleted (a
 *             gap in the ids), D is never armed; each step checks that A
 *             and B still tick (B on the worker) and prints the ids; at the
 *             end every timer_delete must succeed.
 *  fullstderr fd 2 becomes the write end of a pipe that is full and that
 *             nobody reads (the read end stays open): a log line written
 *             there would block.
 *
 * Protocol: "start", one "step N ..." line per step (paced 20 ms unless
 * MIGRATE_TEST_NOSLEEP is set, except in fastprint), "done ...". Every line
 * is deterministic.
 */
#include "testprog.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sched.h>

#define STEPS 60
#define STEPS_FAST 400000

static void *fast_worker(void *arg)
{
    (void)arg;
    uint64_t acc = 1;
    for (int s = 1; s <= STEPS_FAST; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d %016" PRIx64 "\n", s, acc);
    }
    printf("done %016" PRIx64 "\n", acc);
    return NULL;
}

static int fastprint(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fast_worker, NULL) != 0)
        fail("pthread_create");
    if (pthread_join(t, NULL) != 0)
        fail("pthread_join");
    return 0;
}

/* The credential lines of /proc/self/status, on one line. */
static void print_creds(int step)
{
    char buf[4096];
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        die("fopen /proc/self/status");
    printf("step %d", step);
    while (fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, "Cap", 3) == 0 || strncmp(buf, "NoNewPrivs", 10) == 0) {
            buf[strcspn(buf, "\n")] = 0;
            char *colon = strchr(buf, ':');
            if (!colon)
                continue;
            *colon = 0;
            printf(" %s=%s", buf, colon + 1 + strspn(colon + 1, "\t "));
        }
    }
    fclose(f);
    printf(" secbits=%x\n", prctl(PR_GET_SECUREBITS));
}

static int caps(void)
{
    for (int s = 1; s <= STEPS; s++) {
        print_creds(s);
        pace(20000000L);
    }
    printf("done 0\n");
    return 0;
}

/* caps-noeff: as caps, with CAP_SETPCAP (8) permitted, not effective. */
static int caps_noeff(void)
{
    uint32_t hdr[2] = {0x20080522, 0};
    uint32_t data[6];
    if (syscall(SYS_capget, hdr, data) != 0)
        die("capget");
    data[0] &= ~(1u << 8);
    if (syscall(SYS_capset, hdr, data) != 0)
        die("capset");
    return caps();
}

static int mapfile(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open");
    const unsigned char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    close(fd);
    uint64_t h = fnv(FNV_INIT, p, 64);
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d %016" PRIx64 "\n", s, fnv(h, p, 64) ^ (uint64_t)s);
        pace(20000000L);
    }
    printf("done 0\n");
    return 0;
}

static volatile int g_stop;

static void *churn(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    while (!g_stop) {
        void *blocks[16];
        for (int i = 0; i < 16; i++)
            blocks[i] = malloc(n * (size_t)(i + 1));
        for (int i = 0; i < 16; i++)
            free(blocks[i]);
    }
    return NULL;
}

static int mallocs(void)
{
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(24 + i * 200)) != 0)
            fail("pthread_create");
    uint64_t acc = 7;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d %016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    g_stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("done %016" PRIx64 "\n", acc);
    return 0;
}

static int shared(void)
{
    size_t len = 16 * 4096;
    uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    for (size_t i = 0; i < len / 8; i++)
        p[i] = mix(i + 1);
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d %016" PRIx64 "\n", s, fnv(FNV_INIT, p, len) ^ (uint64_t)s);
        pace(20000000L);
    }
    printf("done 0\n");
    return 0;
}

static int fullstderr(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe");
    if (fcntl(fds[1], F_SETFL, O_NONBLOCK) != 0)
        die("fcntl");
    char block[4096];
    memset(block, 'x', sizeof block);
    long filled = 0;
    for (;;) {
        ssize_t n = write(fds[1], block, sizeof block);
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0)
            die("write");
        filled += n;
    }
    if (fcntl(fds[1], F_SETFL, 0) != 0)
        die("fcntl");
    if (dup2(fds[1], 2) != 2)
        die("dup2");
    close(fds[1]);
    printf("filled %s\n", filled > 0 ? "yes" : "no");
    uint64_t acc = 3;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d %016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    printf("done %016" PRIx64 "\n", acc);
    return 0;
}

static volatile long g_ticks_a, g_ticks_b, g_wrong_b;
static volatile pid_t g_worker_tid;

static void on_a(int sig) { (void)sig; g_ticks_a++; }
static void on_b(int sig)
{
    (void)sig;
    if (gettid() != g_worker_tid)
        g_wrong_b++;
    g_ticks_b++;
}

static void *timer_worker(void *arg)
{
    (void)arg;
    g_worker_tid = gettid();
    for (;;)
        pause();
    return NULL;
}

static timer_t make_timer(int notify, int sig, pid_t tid, long period_ns)
{
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = notify;
    ev.sigev_signo = sig;
    ev._sigev_un._tid = tid;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0)
        die("timer_create");
    if (period_ns) {
        struct itimerspec its = {{0, period_ns}, {0, period_ns}};
        if (timer_settime(t, 0, &its, NULL) != 0)
            die("timer_settime");
    }
    return t;
}

/* Waits (up to 2 s) for *counter to pass `since`. */
static const char *ticks_after(volatile long *counter, long since)
{
    for (int i = 0; i < 2000 && *counter <= since; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return *counter > since ? "yes" : "no";
}

static int timers(void)
{
    int sa = SIGRTMIN + 1, sb = SIGRTMIN + 2;
    signal(sa, on_a);
    signal(sb, on_b);
    pthread_t w;
    if (pthread_create(&w, NULL, timer_worker, NULL) != 0)
        fail("pthread_create");
    while (!g_worker_tid)
        sched_yield();
    /* B's signal only ever reaches the worker: main blocks it. */
    sigset_t only_b;
    sigemptyset(&only_b);
    sigaddset(&only_b, sb);
    pthread_sigmask(SIG_BLOCK, &only_b, NULL);
    timer_t a = make_timer(SIGEV_SIGNAL, sa, 0, 5000000L);
    timer_t c = make_timer(SIGEV_NONE, 0, 0, 0);
    timer_t b = make_timer(SIGEV_THREAD_ID, sb, g_worker_tid, 5000000L);
    timer_t d = make_timer(SIGEV_NONE, 0, 0, 0);
    if (timer_delete(c) != 0)
        die("timer_delete c");
    for (int s = 1; s <= STEPS; s++) {
        long ta = g_ticks_a, tb = g_ticks_b;
        const char *ya = ticks_after(&g_ticks_a, ta);
        const char *yb = ticks_after(&g_ticks_b, tb);
        struct itimerspec its;
        if (timer_gettime(d, &its) != 0)
            die("timer_gettime d");
        printf("step %d ids=%ld,%ld,%ld a=%s b=%s d=%s wrong=%ld\n", s, (long)(intptr_t)a,
               (long)(intptr_t)b, (long)(intptr_t)d, ya, yb,
               its.it_value.tv_sec || its.it_value.tv_nsec ? "armed" : "off", g_wrong_b);
        pace(20000000L);
    }
    int deleted = (timer_delete(a) == 0) + (timer_delete(b) == 0) + (timer_delete(d) == 0);
    printf("done deleted=%d\n", deleted);
    return 0;
}

int main(int argc, char **argv)
{
    tp_start();
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "fastprint") == 0)
        return fastprint();
    if (strcmp(mode, "caps") == 0)
        return caps();
    if (strcmp(mode, "caps-noeff") == 0)
        return caps_noeff();
    if (strcmp(mode, "mapfile") == 0 && argc > 2)
        return mapfile(argv[2]);
    if (strcmp(mode, "malloc") == 0)
        return mallocs();
    if (strcmp(mode, "shared") == 0)
        return shared();
    if (strcmp(mode, "fullstderr") == 0)
        return fullstderr();
    if (strcmp(mode, "timers") == 0)
        return timers();
    printf("usage: cdefects fastprint|caps|caps-noeff|mapfile FILE|malloc|shared|fullstderr|timers\n");
    return 2;
}
