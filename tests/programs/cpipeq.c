/*
 * A queue of numbered records kept in a pipe, paced by a timerfd, both
 * watched by one epoll instance.
 *
 *  - The pipe always holds AHEAD records of REC bytes ("rec NNNNNN hhhh\n"):
 *    every step reads the oldest and writes a new one, so at any dump the
 *    pipe has bytes in it that must come back (and that the dump must not
 *    consume: the dumped process goes on reading them too).
 *  - The timerfd ticks every 20 ms (200 us with MIGRATE_TEST_NOSLEEP); its
 *    interval is checked every step.
 *  - The pipe's read end is in the epoll set with EPOLLIN | EPOLLONESHOT
 *    and data PIPE_TAG, the timerfd with EPOLLIN and TIMER_TAG. A step
 *    waits until epoll has reported both (the pipe reports at once, then
 *    stays quiet until re-armed with EPOLL_CTL_MOD, so nothing spins), then
 *    takes one record and re-arms the pipe. A dump lands in epoll_wait,
 *    which returns EINTR afterwards; a wait of 5 s with nothing reported is
 *    an error (a timer or epoll set that did not come back).
 *
 * Protocol: "start", "step N rec ..." per step, "done ...". Every line is
 * deterministic.
 */
#include "testprog.h"

#define STEPS 100
#define AHEAD 4
#define REC 24
#define PIPE_TAG 0x5049504500000001ULL
#define TIMER_TAG 0x54494d4500000002ULL

static uint64_t g_hash = FNV_INIT;

static void put(int fd, int k)
{
    char r[REC + 1];
    snprintf(r, sizeof r, "rec %06d %012" PRIx64 "\n", k, (uint64_t)(mix((uint64_t)k) & 0xffffffffffffULL));
    write_all(fd, r, REC, "write pipe");
}

int main(void)
{
    tp_start();
    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0)
        die("pipe2");
    long interval_ns = g_nosleep ? 200000L : 20000000L;
    int tfd = ticking_timerfd(interval_ns, TFD_NONBLOCK);
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event pipe_ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = PIPE_TAG};
    struct epoll_event timer_ev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &pipe_ev) != 0)
        die("epoll_ctl ADD pipe");
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &timer_ev) != 0)
        die("epoll_ctl ADD timerfd");

    int next_read = 1, next_write = 1;
    while (next_write <= AHEAD)
        put(p[1], next_write++);

    for (int s = 1; s <= STEPS; s++) {
        int got_pipe = 0, got_timer = 0;
        while (!got_pipe || !got_timer) {
            struct epoll_event evs[4];
            int n = epoll_wait_retry(ep, evs, 4, 5000);
            if (n == 0) {
                printf("error step %d: epoll_wait reported nothing for 5 s (pipe %d timer %d)\n", s,
                       got_pipe, got_timer);
                exit(1);
            }
            for (int i = 0; i < n; i++) {
                if (evs[i].data.u64 == PIPE_TAG) {
                    if (!(evs[i].events & EPOLLIN))
                        fail("pipe reported without EPOLLIN");
                    got_pipe = 1;
                } else if (evs[i].data.u64 == TIMER_TAG) {
                    if (timer_ticked(tfd))
                        got_timer = 1;
                } else {
                    printf("error epoll data %016" PRIx64 "\n", (uint64_t)evs[i].data.u64);
                    exit(1);
                }
            }
        }
        struct itimerspec cur;
        if (timerfd_gettime(tfd, &cur) != 0)
            die("timerfd_gettime");
        if (cur.it_interval.tv_sec != 0 || cur.it_interval.tv_nsec != interval_ns)
            fail("timerfd interval changed");
        char rec[REC + 1];
        ssize_t r = read(p[0], rec, REC);
        if (r < 0 && errno == EAGAIN)
            fail("pipe empty");
        if (r != REC)
            die("read pipe");
        rec[REC] = 0;
        if (atoi(rec + 4) != next_read) {
            printf("error expected record %d, got %.*s\n", next_read, REC - 1, rec);
            exit(1);
        }
        next_read++;
        g_hash = fnv(g_hash, rec, REC);
        put(p[1], next_write++);
        if (epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &pipe_ev) != 0)
            die("epoll_ctl MOD pipe");
        printf("step %d %.*s\n", s, REC - 1, rec);
    }
    /* What is left in the pipe: exactly the AHEAD records written ahead. */
    char rest[REC * (AHEAD + 1)];
    ssize_t r = read(p[0], rest, sizeof rest);
    if (r != REC * AHEAD)
        fail("pipe does not hold AHEAD records at the end");
    g_hash = fnv(g_hash, rest, (size_t)r);
    printf("done %016" PRIx64 "\n", g_hash);
    return 0;
}
