/*
 * POSIX timers (issue 12, timers group).
 *
 * usage: ctimers thread
 *
 * thread: a SIGEV_THREAD timer ticking every 5 ms, whose callback (run
 * by glibc in a new thread each time) counts its ticks; glibc's helper
 * thread blocks every signal, so a dump fails (naming it) and the
 * process goes on. After the steps it checks the timer still ticks.
 *
 * Protocol: "start", "step N" per step (20 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), "thread timer ticks=yes value=77",
 * "done 1".
 */
#include "testprog.h"

#include <signal.h>
#include <stdatomic.h>

#define STEPS 30

static atomic_int g_ticks;
static atomic_int g_value;

static void on_tick(union sigval v)
{
    atomic_store(&g_value, v.sival_int);
    atomic_fetch_add(&g_ticks, 1);
}

static void thread_mode(void)
{
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_tick;
    ev.sigev_value.sival_int = 77;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0)
        die("timer_create");
    struct itimerspec its = {{0, 5000000}, {0, 5000000}};
    if (timer_settime(t, 0, &its, NULL) != 0)
        die("timer_settime");
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d\n", s);
        pace(20000000L);
    }
    int before = atomic_load(&g_ticks);
    struct timespec ts = {0, 1000000};
    for (int i = 0; i < 5000 && atomic_load(&g_ticks) == before; i++)
        nanosleep(&ts, NULL);
    printf("thread timer ticks=%s value=%d\n", atomic_load(&g_ticks) > before ? "yes" : "no",
           atomic_load(&g_value));
    printf("done 1\n");
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc == 2 && strcmp(argv[1], "thread") == 0)
        thread_mode();
    else {
        printf("usage: ctimers thread\n");
        return 2;
    }
    return 0;
}
