/*
 * Threaded test program for migrate: locks held across a dump, and
 * thread-directed signals after a restore.
 *
 *  - The holder thread locks a recursive mutex (PTHREAD_MUTEX_RECURSIVE)
 *    twice and an error-checking mutex (PTHREAD_MUTEX_ERRORCHECK) once,
 *    prints "locked", then prints STEPS "step N holding" lines, pacing them,
 *    while holding both: a dump lands while they are held. Then it unlocks
 *    them and prints the return codes (glibc checks the owner's TID in both
 *    kinds, so they are 0 only if the thread is still the owner).
 *  - A waiter thread is blocked meanwhile in pthread_mutex_timedlock on the
 *    error-checking mutex (8 s limit); main prints what it got.
 *  - After the holding steps, main sends the holder SIGUSR1 with
 *    pthread_kill; the handler records gettid() and pthread_self(), and the
 *    holder prints whether it got the signal and whether the handler ran in
 *    it.
 *  - With the argument "tids", the holder also prints whether its gettid()
 *    is the value it saw at its start ("tid stable: yes"), which holds
 *    across a restore only if the restore keeps TIDs.
 *
 * Protocol: "start", deterministic lines, "step N holding" for the paced
 * steps, then "done ...". Steps are paced with nanosleep (30 ms) unless
 * MIGRATE_TEST_NOSLEEP is set, which changes no output.
 */
#include "testprog.h"

#include <signal.h>

#define STEPS 30
#define SLEEP_NS 30000000L
#define WAITER_LIMIT_S 8

static pthread_mutex_t g_recursive;
static pthread_mutex_t g_errorcheck;
static sem_t g_locked, g_held_done, g_signal_sent;
static int g_check_tids;

static volatile sig_atomic_t g_got_usr1;
static volatile pid_t g_handler_tid;
static volatile pthread_t g_handler_self;

static int g_waiter_lock_rc = -1, g_waiter_unlock_rc = -1;

static const char *rc_name(int rc)
{
    switch (rc) {
    case 0:
        return "0";
    case EPERM:
        return "EPERM";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case EDEADLK:
        return "EDEADLK";
    case EBUSY:
        return "EBUSY";
    case ESRCH:
        return "ESRCH";
    case EINVAL:
        return "EINVAL";
    default:
        return "other";
    }
}

static void on_usr1(int sig)
{
    (void)sig;
    g_handler_tid = gettid();
    g_handler_self = pthread_self();
    g_got_usr1 = 1;
}

static void *holder(void *arg)
{
    (void)arg;
    pid_t tid_before = gettid();
    pthread_t self_before = pthread_self();
    int rc1 = pthread_mutex_lock(&g_recursive);
    int rc2 = pthread_mutex_lock(&g_recursive);
    int rc3 = pthread_mutex_lock(&g_errorcheck);
    /* Locking an error-checking mutex again in its owner: EDEADLK. */
    int rc4 = pthread_mutex_lock(&g_errorcheck);
    printf("locked recursive=%s,%s errorcheck=%s relock=%s\n", rc_name(rc1), rc_name(rc2),
           rc_name(rc3), rc_name(rc4));
    sem_post(&g_locked);
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d holding\n", s);
        pace(SLEEP_NS);
    }
    /* Still the owner: EDEADLK at once (a thread that is not would wait). */
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 1;
    int rc5 = pthread_mutex_timedlock(&g_errorcheck, &limit);
    printf("relocked errorcheck=%s\n", rc_name(rc5));
    int u1 = pthread_mutex_unlock(&g_errorcheck);
    int u2 = pthread_mutex_unlock(&g_recursive);
    int u3 = pthread_mutex_unlock(&g_recursive);
    printf("unlocked errorcheck=%s recursive=%s,%s\n", rc_name(u1), rc_name(u2), rc_name(u3));
    /* Unlocking again is an error for both kinds: the thread owns neither. */
    int u4 = pthread_mutex_unlock(&g_errorcheck);
    int u5 = pthread_mutex_unlock(&g_recursive);
    printf("unlocked again errorcheck=%s recursive=%s\n", rc_name(u4), rc_name(u5));
    sem_post(&g_held_done);
    sem_wait_retry(&g_signal_sent);
    for (int i = 0; i < 5000 && !g_got_usr1; i++)
        pace(1000000L);
    printf("worker got SIGUSR1: %s\n", g_got_usr1 ? "yes" : "no");
    printf("handler ran in worker: tid %s, pthread_self %s\n",
           g_handler_tid == gettid() ? "yes" : "no",
           pthread_equal(g_handler_self, pthread_self()) ? "yes" : "no");
    printf("pthread_self stable: %s\n", pthread_equal(self_before, pthread_self()) ? "yes" : "no");
    if (g_check_tids)
        printf("tid stable: %s\n", tid_before == gettid() ? "yes" : "no");
    return NULL;
}

static void *waiter(void *arg)
{
    (void)arg;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAITER_LIMIT_S;
    g_waiter_lock_rc = pthread_mutex_timedlock(&g_errorcheck, &deadline);
    if (g_waiter_lock_rc == 0)
        g_waiter_unlock_rc = pthread_mutex_unlock(&g_errorcheck);
    return NULL;
}

int main(int argc, char **argv)
{
    tp_start();
    g_check_tids = argc > 1 && strcmp(argv[1], "tids") == 0;

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&g_recursive, &attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&g_errorcheck, &attr);
    pthread_mutexattr_destroy(&attr);
    sem_init(&g_locked, 0, 0);
    sem_init(&g_held_done, 0, 0);
    sem_init(&g_signal_sent, 0, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        die_rc("sigaction", errno);

    pthread_t h = start_thread(holder, NULL);
    sem_wait_retry(&g_locked);
    pthread_t w = start_thread(waiter, NULL);
    sem_wait_retry(&g_held_done);
    int rc = pthread_kill(h, SIGUSR1);
    printf("pthread_kill rc=%s\n", rc_name(rc));
    sem_post(&g_signal_sent);
    join_thread(h);
    join_thread(w);
    printf("waiter lock=%s unlock=%s\n", rc_name(g_waiter_lock_rc), rc_name(g_waiter_unlock_rc));
    printf("done %s\n", g_check_tids ? "tids" : "mutex");
    return 0;
}
