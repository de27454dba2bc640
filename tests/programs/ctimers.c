/*
 * POSIX timers (issue 12, timers group).
 *
 * usage: ctimers thread|sevthread|signal|tid|pending|overrun
 *
 * thread: a SIGEV_THREAD timer ticking every 5 ms, whose callback (run
 * by glibc in a new thread each time) counts its ticks. After the steps
 * it checks the timer still ticks.
 *
 * sevthread: SIGEV_THREAD timers (glibc's helper thread blocks every
 * signal but SIGSETXID): a periodic one (10 ms, value 77) whose callback
 * counts, checks how glibc runs it (a detached thread that blocks SIGUSR1
 * and not SIGTIMER) and sleeps 15 ms (so callbacks are running at any
 * dump); a one-shot one (value 88) armed at the start for 1.5 s, after
 * the steps. After the steps: the periodic one's interval and that it
 * ticks with its value; the one-shot fires once; a new SIGEV_THREAD timer
 * (value 99) fires and is deleted; the periodic one is deleted and stops;
 * setuid to the same user works (glibc sends SIGSETXID to every thread,
 * the helper too); a forked child's own SIGEV_THREAD timer fires (glibc
 * starts a helper of its own there).
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
 * overrun: signals blocked; timers made to count exact overruns by being
 * armed at an absolute CLOCK_REALTIME time a number of 60 s intervals
 * and a half in the past (their signal, taken within 30 s, counts that
 * many). A: its signal taken with overrun 3, then pending with overrun
 * 50. B: its signal taken with overrun 7 (timer_getoverrun 7), nothing
 * pending. C and D: one-shot timers sharing SIGRTMIN+4 (values 51, 52),
 * both pending. E: a one-shot SIGEV_THREAD_ID timer to the main thread
 * (value 61), pending. F: a 20 ms periodic timer (value 71), pending.
 * After the steps: each signal taken once, with its code, timer, value
 * and overrun, timer_getoverrun before and after, and no second signal.
 *
 * Protocol: "start", "step N" per step (20 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), "thread timer ticks=yes value=77",
 * "done 1".
 */
#include "testprog.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

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

static atomic_int g_once;
static atomic_int g_once_value;
static atomic_int g_new;
static atomic_int g_new_value;
static atomic_int g_bad_context;

/* How glibc runs a callback: a detached thread, SIGUSR1 blocked (the
 * helper's mask), SIGTIMER (SIGRTMIN - 2 as glibc numbers it) not. */
static void check_context(void)
{
    pthread_attr_t a;
    int detached = 0;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        int d;
        pthread_attr_getdetachstate(&a, &d);
        detached = d == PTHREAD_CREATE_DETACHED;
        pthread_attr_destroy(&a);
    }
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    if (!detached || !sigismember(&m, SIGUSR1))
        atomic_store(&g_bad_context, 1);
}

static void on_periodic(union sigval v)
{
    check_context();
    atomic_store(&g_value, v.sival_int);
    atomic_fetch_add(&g_ticks, 1);
    struct timespec ts = {0, 15000000};
    nanosleep(&ts, NULL);
}

static void on_once(union sigval v)
{
    check_context();
    atomic_store(&g_once_value, v.sival_int);
    atomic_fetch_add(&g_once, 1);
}

static void on_new(union sigval v)
{
    atomic_store(&g_new_value, v.sival_int);
    atomic_fetch_add(&g_new, 1);
}

static timer_t thread_timer(void (*fn)(union sigval), int value, long first_ns, long every_ns)
{
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = fn;
    ev.sigev_value.sival_int = value;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0)
        die("timer_create");
    struct itimerspec its = {{every_ns / 1000000000, every_ns % 1000000000},
                             {first_ns / 1000000000, first_ns % 1000000000}};
    if (timer_settime(t, 0, &its, NULL) != 0)
        die("timer_settime");
    return t;
}

/* Waits up to 5 s for *count to pass `above`. */
static int wait_above(atomic_int *count, int above)
{
    struct timespec ts = {0, 1000000};
    for (int i = 0; i < 5000 && atomic_load(count) <= above; i++)
        nanosleep(&ts, NULL);
    return atomic_load(count) > above;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void sevthread_mode(void)
{
    timer_t periodic = thread_timer(on_periodic, 77, 10000000, 10000000);
    timer_t once = thread_timer(on_once, 88, 1500000000, 0);
    (void)once;
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d\n", s);
        pace(20000000L);
    }
    struct itimerspec now;
    if (timer_gettime(periodic, &now) != 0)
        die("timer_gettime");
    int before = atomic_load(&g_ticks);
    int ticks = wait_above(&g_ticks, before + 2);
    printf("periodic interval=%ld.%09ld ticks=%s value=%d\n", (long)now.it_interval.tv_sec,
           now.it_interval.tv_nsec, ticks ? "yes" : "no", atomic_load(&g_value));
    int fired = wait_above(&g_once, 0);
    sleep_ms(30);
    printf("oneshot fired=%d value=%d\n", fired ? atomic_load(&g_once) : 0, atomic_load(&g_once_value));
    timer_t fresh = thread_timer(on_new, 99, 5000000, 0);
    fired = wait_above(&g_new, 0);
    printf("new fired=%d value=%d deleted=%s\n", fired ? atomic_load(&g_new) : 0,
           atomic_load(&g_new_value), timer_delete(fresh) == 0 ? "yes" : "no");
    int deleted = timer_delete(periodic) == 0;
    sleep_ms(40);
    int settled = atomic_load(&g_ticks);
    sleep_ms(60);
    printf("periodic deleted=%s stopped=%s\n", deleted ? "yes" : "no",
           atomic_load(&g_ticks) == settled ? "yes" : "no");
    printf("callbacks context=%s\n", atomic_load(&g_bad_context) ? "wrong" : "ok");
    /* glibc sends SIGSETXID to every thread, its helper too. */
    printf("setuid %s\n", setuid(getuid()) == 0 ? "ok" : "failed");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        atomic_store(&g_new, 0);
        timer_t t = thread_timer(on_new, 55, 5000000, 0);
        int ok = wait_above(&g_new, 0) && atomic_load(&g_new_value) == 55 && timer_delete(t) == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    if (waitpid(child, &status, 0) != child)
        die("waitpid");
    printf("fork child timer=%s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "yes" : "no");
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

static timer_t make(clockid_t clock, int to_thread, int sig, int value)
{
    struct sigevent ev = {0};
    ev.sigev_notify = to_thread ? SIGEV_THREAD_ID : SIGEV_SIGNAL;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_int = value;
    if (to_thread)
        ev._sigev_un._tid = gettid();
    timer_t t;
    if (timer_create(clock, &ev, &t) != 0)
        die("timer_create");
    return t;
}

/* Arms REALTIME timer t with a 60 s interval, `back` intervals and a
 * half ago: its signal, taken within 30 s, counts overrun `back`. */
static void arm_back(timer_t t, int back)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec its = {{60, 0}, {now.tv_sec - 60L * back - 30, now.tv_nsec}};
    if (timer_settime(t, TIMER_ABSTIME, &its, NULL) != 0)
        die("timer_settime");
}

static void arm(timer_t t, long interval_ns, long value_ns)
{
    struct itimerspec its = {{0, interval_ns}, {0, value_ns}};
    if (timer_settime(t, 0, &its, NULL) != 0)
        die("timer_settime");
}

static void wait_pending(int sig)
{
    sigset_t p;
    for (;;) {
        sigpending(&p);
        if (sigismember(&p, sig))
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* Whether another signal `sig` is pending (taken to tell). */
static const char *another(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    struct timespec zero = {0, 0};
    siginfo_t si;
    return sigtimedwait(&set, &si, &zero) == sig ? "yes" : "no";
}

/* Takes signal `sig`, waiting 5 s at most (si_signo 0: none came). */
static siginfo_t take_within(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    struct timespec five = {5, 0};
    siginfo_t si;
    memset(&si, 0, sizeof si);
    while (sigtimedwait(&set, &si, &five) < 0) {
        if (errno != EINTR) {
            memset(&si, 0, sizeof si);
            break;
        }
    }
    return si;
}

static void report(const char *name, siginfo_t si, timer_t t)
{
    printf("%s code=%s timer=%s value=%d overrun=%d\n", name,
           si.si_code == SI_TIMER ? "timer" : "other",
           si.si_timerid == (int)(intptr_t)t ? "same" : "other", si.si_value.sival_int,
           si.si_overrun);
}

static void overrun_mode(void)
{
    int sa = SIGRTMIN + 3, sb = SIGRTMIN + 7, scd = SIGRTMIN + 4, se = SIGRTMIN + 5,
        sf = SIGRTMIN + 6;
    block(sa);
    block(sb);
    block(scd);
    block(se);
    block(sf);
    timer_t a = make(CLOCK_REALTIME, 0, sa, 41);
    arm_back(a, 3);
    printf("A first overrun=%d\n", take(sa).si_overrun);
    arm_back(a, 50);
    timer_t b = make(CLOCK_REALTIME, 0, sb, 42);
    arm_back(b, 7);
    printf("B first overrun=%d\n", take(sb).si_overrun);
    timer_t c = make(CLOCK_MONOTONIC, 0, scd, 51);
    arm(c, 0, 1000000);
    wait_pending(scd);
    timer_t d = make(CLOCK_MONOTONIC, 0, scd, 52);
    arm(d, 0, 1000000);
    for (;;) {
        struct itimerspec left;
        timer_gettime(d, &left);
        if (left.it_value.tv_sec == 0 && left.it_value.tv_nsec == 0)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    timer_t e = make(CLOCK_MONOTONIC, 1, se, 61);
    arm(e, 0, 1000000);
    wait_pending(se);
    timer_t f = make(CLOCK_MONOTONIC, 0, sf, 71);
    arm(f, 20000000, 1000000);
    wait_pending(sf);
    steps();
    printf("A last before=%d\n", timer_getoverrun(a));
    report("A", take_within(sa), a);
    printf("A last after=%d again=%s\n", timer_getoverrun(a), another(sa));
    printf("B last=%d\n", timer_getoverrun(b));
    siginfo_t one = take_within(scd), two = take_within(scd);
    printf("shared first=%s second=%s code=%s,%s values=%d,%d again=%s\n",
           one.si_signo == 0 ? "none" : one.si_timerid == (int)(intptr_t)c ? "C" : "D",
           two.si_signo == 0 ? "none" : two.si_timerid == (int)(intptr_t)c ? "C" : "D",
           one.si_code == SI_TIMER ? "timer" : "other", two.si_code == SI_TIMER ? "timer" : "other",
           one.si_value.sival_int, two.si_value.sival_int, another(scd));
    report("E", take_within(se), e);
    printf("E again=%s\n", another(se));
    siginfo_t fi = take_within(sf);
    arm(f, 0, 0);
    printf("F code=%s value=%d again=%s\n", fi.si_code == SI_TIMER ? "timer" : "other",
           fi.si_value.sival_int, another(sf));
    printf("done overrun\n");
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc == 2 && strcmp(argv[1], "thread") == 0)
        thread_mode();
    else if (argc == 2 && strcmp(argv[1], "sevthread") == 0)
        sevthread_mode();
    else if (argc == 2 && strcmp(argv[1], "signal") == 0)
        signal_mode(0);
    else if (argc == 2 && strcmp(argv[1], "tid") == 0)
        signal_mode(1);
    else if (argc == 2 && strcmp(argv[1], "pending") == 0)
        pending_mode();
    else if (argc == 2 && strcmp(argv[1], "overrun") == 0)
        overrun_mode();
    else {
        printf("usage: ctimers thread|sevthread|signal|tid|pending|overrun\n");
        return 2;
    }
    return 0;
}
