/*
 * Threaded test program for migrate: one thread blocks SIGUSR2 (the dump
 * signal) with the raw rt_sigprocmask system call, so a dump cannot stop it
 * and must fail. (Through libc, pthread_sigmask and sigprocmask cannot
 * block the dump signal: the library interposes them and keeps it.)
 *
 *  - The "blocker" thread (named so with pthread_setname_np) blocks SIGUSR2
 *    and then counts in steps until main tells it to stop; it unblocks
 *    SIGUSR2 before it exits (a pending park request then arrives late).
 *  - Two "spinner" threads leave SIGUSR2 unblocked and count too.
 *  - Main prints "ready" once the blocker has blocked the signal, then one
 *    line per step; the workers' counts go only into the final line.
 *
 * Protocol: "start", "ready", one "step N ..." line per step, then
 * "done ...". Every line is deterministic. Steps are paced with nanosleep
 * (40 ms) unless MIGRATE_TEST_NOSLEEP is set, which changes no output.
 */
#include "testprog.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define STEPS 60
#define SLEEP_NS 40000000L
#define WORKERS 3

static atomic_int g_stop;
static sem_t g_ready;

/* Blocks or unblocks one signal for the calling thread with the system
 * call itself, past any interposed libc function. */
static void raw_sigmask(int how, int sig)
{
    uint64_t set = 1ull << (sig - 1);
    if (syscall(SYS_rt_sigprocmask, how, &set, NULL, 8) != 0)
        die_rc("rt_sigprocmask", errno);
}

/* Counts until told to stop; returns a value that depends only on its id. */
static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    if (id == 0) {
        pthread_setname_np(pthread_self(), "blocker");
        raw_sigmask(SIG_BLOCK, SIGUSR2);
    } else {
        pthread_setname_np(pthread_self(), "spinner");
    }
    sem_post(&g_ready);
    uint64_t acc = id;
    while (!atomic_load(&g_stop)) {
        acc = mix(acc);
        pace(1000000L);
    }
    if (id == 0)
        raw_sigmask(SIG_UNBLOCK, SIGUSR2);
    return (void *)(uintptr_t)mix(id + 100);
}

int main(void)
{
    tp_start();
    sem_init(&g_ready, 0, 0);
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        t[i] = start_thread(worker, (void *)(uintptr_t)i);
    for (int i = 0; i < WORKERS; i++)
        sem_wait_retry(&g_ready);
    printf("ready\n");
    uint64_t acc = 1;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(SLEEP_NS);
    }
    atomic_store(&g_stop, 1);
    uint64_t check = acc;
    for (int i = 0; i < WORKERS; i++)
        check = mix(check ^ (uint64_t)(uintptr_t)join_thread(t[i]));
    printf("done %016" PRIx64 "\n", check);
    return 0;
}
