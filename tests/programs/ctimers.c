/*
 * POSIX timers (issue 12, timers group).
 *
 * usage: ctimers thread|signal|tid|pending
 *
 * thread: a SIGEV_THREAD timer ticking every 5 ms, whose callback (run
 * by glibc in a new thread each time) counts its ticks; glibc's helper
 * thread blocks every signal, so a dump fails (naming it) and the
 * process goes on. After the steps it checks the timer still ticks.
 *
 * signal, tid: a timer signalling SIGRTMIN+1 with value 66 to the process
 * (tid: to the main thread, SIGEV_THREAD_ID), armed for 10 s with a 3 s
 * interval. After the steps it reads its interval (exact) and time left,
 * re-arms it to fire in 1 ms and takes the signal (code, timer id,
 * value); then lets it overrun (1 ms ticks, 30 ms unattended) and checks
 * timer_getoverrun agrees with the overrun in the siginfo.
 *
 * pending: a one-shot timer's SIGRTMIN+2 (value 55) is pending, blocked,
 * from before the steps; after them the program takes it and checks its
 * siginfo (code SI_TIMER, timer id, value).
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

static void block(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static siginfo_t take(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    siginfo_t si;
    while (sigwaitinfo(&set, &si) < 0)
        if (errno != EINTR)
            die("sigwaitinfo");
    return si;
}

static void steps(void)
{
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d\n", s);
        pace(20000000L);
    }
}

static void signal_mode(int to_thread)
{
    int sig = SIGRTMIN + 1;
    block(sig);
    struct sigevent ev = {0};
    ev.sigev_notify = to_thread ? SIGEV_THREAD_ID : SIGEV_SIGNAL;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_int = 66;
    if (to_thread)
        ev._sigev_un._tid = gettid();
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0)
        die("timer_create");
    struct itimerspec its = {{3, 0}, {10, 0}};
    if (timer_settime(t, 0, &its, NULL) != 0)
        die("timer_settime");
    steps();
    struct itimerspec now;
    if (timer_gettime(t, &now) != 0)
        die("timer_gettime");
    printf("interval=%ld.%09ld left=%s\n", (long)now.it_interval.tv_sec, now.it_interval.tv_nsec,
           now.it_value.tv_sec < 10 && (now.it_value.tv_sec > 0 || now.it_value.tv_nsec > 0) ? "ok" : "wrong");
    struct itimerspec soon = {{0, 0}, {0, 1000000}};
    timer_settime(t, 0, &soon, NULL);
    siginfo_t si = take(sig);
    printf("fired code=%s timerid=%s value=%d\n", si.si_code == SI_TIMER ? "timer" : "other",
           si.si_timerid == (int)(intptr_t)t ? "same" : "other", si.si_value.sival_int);
    struct itimerspec fast = {{0, 1000000}, {0, 1000000}};
    timer_settime(t, 0, &fast, NULL);
    pace(30000000L);
    if (g_nosleep) {
        struct timespec ts = {0, 30000000};
        nanosleep(&ts, NULL);
    }
    si = take(sig);
    int over = timer_getoverrun(t);
    printf("overrun many=%s agrees=%s\n", si.si_overrun >= 5 ? "yes" : "no", over == si.si_overrun ? "yes" : "no");
    printf("done 1\n");
}

static void pending_mode(void)
{
    int sig = SIGRTMIN + 2;
    block(sig);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_int = 55;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0)
        die("timer_create");
    struct itimerspec its = {{0, 0}, {0, 1000000}};
    if (timer_settime(t, 0, &its, NULL) != 0)
        die("timer_settime");
    sigset_t p;
    do {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        sigpending(&p);
    } while (!sigismember(&p, sig));
    steps();
    siginfo_t si = take(sig);
    printf("pending code=%s timerid=%s value=%d\n", si.si_code == SI_TIMER ? "timer" : "other",
           si.si_timerid == (int)(intptr_t)t ? "same" : "other", si.si_value.sival_int);
    printf("done 1\n");
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc == 2 && strcmp(argv[1], "thread") == 0)
        thread_mode();
    else if (argc == 2 && strcmp(argv[1], "signal") == 0)
        signal_mode(0);
    else if (argc == 2 && strcmp(argv[1], "tid") == 0)
        signal_mode(1);
    else if (argc == 2 && strcmp(argv[1], "pending") == 0)
        pending_mode();
    else {
        printf("usage: ctimers thread|signal|tid|pending\n");
        return 2;
    }
    return 0;
}
