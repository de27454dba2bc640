/*
 * An event loop watching stdin: an epoll set holds fd 0 (EPOLLIN, edge
 * triggered so that a stdin at EOF does not spin the loop) and a timerfd
 * that paces the steps. A restored process's fd 0 is the relaunch's, which
 * may be a regular file or /dev/null (epoll_ctl refuses both with EPERM):
 * the restore must not fail on it, and the loop goes on.
 *
 * What stdin reports is not printed (it depends on what stdin is); every
 * step waits for a timer tick.
 *
 * Protocol: "start", "epoll fd=N", "step N tick ..." per step (a 25 ms
 * timer; 200 us with MIGRATE_TEST_NOSLEEP), "done ...". Every line is
 * deterministic.
 */
#include "testprog.h"

#define STEPS 80
#define STDIN_TAG 0x535444494e000000ULL
#define TIMER_TAG 0x54494d4552000000ULL

int main(void)
{
    tp_start();
    int tfd = ticking_timerfd(g_nosleep ? 200000L : 25000000L, TFD_NONBLOCK | TFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event in_ev = {.events = EPOLLIN | EPOLLET, .data.u64 = STDIN_TAG};
    struct epoll_event timer_ev = {.events = EPOLLIN, .data.u64 = TIMER_TAG};
    /* The test gives the dumped run a pipe as stdin, which epoll watches;
     * the reference run gets /dev/null, which it cannot (EPERM), and goes
     * on without it. */
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in_ev) != 0 && errno != EPERM)
        die("epoll_ctl ADD stdin");
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &timer_ev) != 0)
        die("epoll_ctl ADD timerfd");
    printf("epoll fd=%d\n", ep);
    uint64_t acc = 13;
    for (int s = 1; s <= STEPS; s++) {
        int ticked = 0;
        while (!ticked) {
            struct epoll_event evs[4];
            int n = epoll_wait_retry(ep, evs, 4, 5000);
            if (n == 0) {
                printf("error step %d: epoll_wait reported nothing for 5 s\n", s);
                exit(1);
            }
            for (int i = 0; i < n; i++) {
                if (evs[i].data.u64 == TIMER_TAG) {
                    if (timer_ticked(tfd))
                        ticked = 1;
                } else if (evs[i].data.u64 != STDIN_TAG) {
                    printf("error epoll data %016" PRIx64 "\n", (uint64_t)evs[i].data.u64);
                    exit(1);
                }
            }
        }
        acc = mix(acc + (uint64_t)s);
        printf("step %d tick acc=%016" PRIx64 "\n", s, acc);
    }
    printf("done %016" PRIx64 "\n", acc);
    return 0;
}
