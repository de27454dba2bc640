/*
 * A program that wants SIGUSR2 for itself: it installs its own handler
 * (first signal(SIG_IGN), then sigaction with SA_SIGINFO) and blocks SIGUSR2
 * in every thread (sigprocmask in main, pthread_sigmask in the worker).
 *
 * Under the shim with the default dump signal (SIGUSR2) none of that may
 * take the signal from the shim: a SIGUSR2 still dumps, and the program's
 * handler never runs. With MIGRATE_SIGNAL set to another signal, SIGUSR2 is
 * the program's: a SIGUSR2 stays pending (blocked everywhere) until main
 * lets it in between steps, where the handler runs and main prints
 * "got SIGUSR2". Nothing else depends on signals, so with those lines left
 * out the output is that of an uninterrupted run.
 *
 * Protocol: "start", "handler reads back: yes", "ready", "step N ..." per
 * step (40 ms apart), maybe "got SIGUSR2" lines, "done ...".
 */
#include "testprog.h"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>

#define STEPS 60

static volatile sig_atomic_t g_got;
static volatile sig_atomic_t g_bad;
static atomic_int g_stop;
static sem_t g_ready;

static void on_usr2(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (sig != SIGUSR2 || si->si_signo != SIGUSR2)
        g_bad = 1;
    g_got++;
}

static sigset_t usr2_set(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    return set;
}

static void *worker(void *arg)
{
    (void)arg;
    sigset_t set = usr2_set();
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc) {
        errno = rc;
        die("pthread_sigmask");
    }
    sem_post(&g_ready);
    uint64_t acc = 5;
    while (!atomic_load(&g_stop)) {
        acc = mix(acc);
        pace(2000000L);
    }
    return (void *)(uintptr_t)mix(99);
}

int main(void)
{
    tp_start();
    if (signal(SIGUSR2, SIG_IGN) == SIG_ERR)
        die("signal");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0)
        die("sigaction");
    struct sigaction back;
    if (sigaction(SIGUSR2, NULL, &back) != 0)
        die("sigaction query");
    printf("handler reads back: %s\n",
           back.sa_sigaction == on_usr2 && (back.sa_flags & SA_SIGINFO) ? "yes" : "NO");
    sigset_t set = usr2_set();
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        die("sigprocmask");
    sem_init(&g_ready, 0, 0);
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker, NULL);
    if (rc) {
        errno = rc;
        die("pthread_create");
    }
    while (sem_wait(&g_ready) != 0)
        if (errno != EINTR)
            die("sem_wait");
    printf("ready\n");

    uint64_t acc = 1;
    sig_atomic_t seen = 0;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        /* A pending SIGUSR2 is let in here, and only here. */
        if (sigprocmask(SIG_UNBLOCK, &set, NULL) != 0 || sigprocmask(SIG_BLOCK, &set, NULL) != 0)
            die("sigprocmask");
        if (g_got != seen) {
            seen = g_got;
            printf("got SIGUSR2\n");
        }
        if (g_bad)
            fail("handler called with another signal");
        pace(40000000L);
    }
    atomic_store(&g_stop, 1);
    void *ret;
    rc = pthread_join(t, &ret);
    if (rc) {
        errno = rc;
        die("pthread_join");
    }
    printf("done %016" PRIx64 "\n", mix(acc ^ (uint64_t)(uintptr_t)ret));
    return 0;
}
