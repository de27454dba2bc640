/*
 * Signals the kernel holds for a program (issue 12, signals group), one
 * mode per kind; the dump lands during the steps, and what the program
 * takes afterwards must be what an uninterrupted run takes.
 *
 * usage: csignals queued
 *
 * queued: every queued signal blocked in both threads, queued before the
 * steps: for the process, SIGUSR1 (kill: SI_USER), SIGRTMIN+1 twice and
 * SIGRTMIN twice with sigqueue values; for the main thread, SIGRTMIN and
 * SIGRTMIN+3 twice (pthread_sigqueue); for the worker, SIGUSR1
 * (pthread_kill, which this kernel reports as SI_USER) and SIGRTMIN+2 twice. After the steps main
 * takes what it can (its own, then the process's), then the worker its
 * own, each with a zero-timeout sigtimedwait, one verdict line per signal
 * (number, code, value, whether the sender was this process), in the
 * kernel's order.
 *
 * Protocol: "start", "step N ..." per step (20 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), then "main ..." and "worker ..." lines,
 * "done N" with the count of signals taken.
 */
#include "testprog.h"

#include <signal.h>

#define STEPS 30

static sigset_t g_set;
static sem_t g_queued, g_take, g_taken;
static int g_count;

static const char *code_name(int code)
{
    switch (code) {
    case SI_USER:
        return "user";
    case SI_QUEUE:
        return "queue";
    case SI_TKILL:
        return "tkill";
    case SI_TIMER:
        return "timer";
    default:
        return "other";
    }
}

static void sig_name(int sig, char *out, size_t n)
{
    if (sig >= SIGRTMIN)
        snprintf(out, n, "RTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(out, n, "%d", sig);
}

/* Takes every signal of g_set this thread can, printing one line each. */
static void take_all(const char *who)
{
    struct timespec zero = {0, 0};
    for (;;) {
        siginfo_t si;
        int sig = sigtimedwait(&g_set, &si, &zero);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            die("sigtimedwait");
        }
        char name[32];
        sig_name(sig, name, sizeof name);
        printf("%s sig=%s code=%s value=%d self=%s\n", who, name, code_name(si.si_code),
               si.si_code == SI_QUEUE ? si.si_value.sival_int : -1,
               si.si_pid == getpid() ? "yes" : "no");
        g_count++;
    }
}

static void queue_to(pthread_t t, int sig, int value)
{
    union sigval v = {.sival_int = value};
    int rc = pthread_sigqueue(t, sig, v);
    if (rc != 0)
        die_rc("pthread_sigqueue", rc);
}

static void queue_process(int sig, int value)
{
    union sigval v = {.sival_int = value};
    if (sigqueue(getpid(), sig, v) != 0)
        die("sigqueue");
}

static void *worker(void *arg)
{
    (void)arg;
    int rc = pthread_kill(pthread_self(), SIGUSR1);
    if (rc != 0)
        die_rc("pthread_kill", rc);
    queue_to(pthread_self(), SIGRTMIN + 2, 201);
    queue_to(pthread_self(), SIGRTMIN + 2, 202);
    sem_post(&g_queued);
    while (sem_wait(&g_take) != 0)
        ;
    take_all("worker");
    sem_post(&g_taken);
    return NULL;
}

static void queued(void)
{
    sigemptyset(&g_set);
    sigaddset(&g_set, SIGUSR1);
    for (int k = 0; k <= 3; k++)
        sigaddset(&g_set, SIGRTMIN + k);
    if (sigprocmask(SIG_BLOCK, &g_set, NULL) != 0)
        die("sigprocmask");
    sem_init(&g_queued, 0, 0);
    sem_init(&g_take, 0, 0);
    sem_init(&g_taken, 0, 0);
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker, NULL);
    if (rc != 0)
        die_rc("pthread_create", rc);
    while (sem_wait(&g_queued) != 0)
        ;
    if (kill(getpid(), SIGUSR1) != 0)
        die("kill");
    queue_process(SIGRTMIN + 1, 21);
    queue_process(SIGRTMIN, 11);
    queue_process(SIGRTMIN, 12);
    queue_process(SIGRTMIN + 1, 22);
    queue_to(pthread_self(), SIGRTMIN + 3, 31);
    queue_to(pthread_self(), SIGRTMIN, 13);
    queue_to(pthread_self(), SIGRTMIN + 3, 32);
    uint64_t acc = 1;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    take_all("main");
    sem_post(&g_take);
    while (sem_wait(&g_taken) != 0)
        ;
    pthread_join(t, NULL);
    printf("done %d\n", g_count);
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 2)
        fail("usage: csignals MODE");
    if (strcmp(argv[1], "queued") == 0)
        queued();
    else
        fail("unknown mode");
    return 0;
}
