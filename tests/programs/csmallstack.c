/*
 * A worker thread on a 32 KiB stack (pthread_attr_setstacksize) does all
 * the work and takes the dump signal on that stack: the dump must not run
 * on the interrupted thread's stack (it needs far more than 32 KiB).
 *
 * usage: csmallstack [raise] [KIB]
 *
 * KIB sets the worker's stack size (default 32; 16 is glibc's
 * PTHREAD_STACK_MIN: every thread's share of a restore must fit there).
 * The worker (named "small") prints every step; main waits for it in
 * pthread_join. With "raise", the worker calls raise(SIGUSR2) itself right
 * after printing step RAISE_AT (run that only under the library: without it
 * SIGUSR2 kills the process). The output is the same with and without it.
 *
 * Protocol: "start", "worker stack <bytes>", "step N ..." per step (25 ms
 * apart unless MIGRATE_TEST_NOSLEEP is set), "done ...". Every line is
 * deterministic.
 */
#include "testprog.h"

#include <pthread.h>
#include <signal.h>

#define STEPS 80
#define RAISE_AT 10

static int g_raise;
static size_t g_stack = 32 * 1024;
static uint64_t g_acc;

static void *worker(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "small");
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0 ||
        pthread_attr_getstacksize(&attr, &size) != 0)
        fail("pthread_getattr_np");
    pthread_attr_destroy(&attr);
    printf("worker stack %zu\n", size);
    uint64_t acc = 5;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        if (g_raise && s == RAISE_AT && raise(SIGUSR2) != 0)
            die("raise");
        pace(25000000L);
    }
    g_acc = acc;
    return NULL;
}

int main(int argc, char **argv)
{
    tp_start();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "raise") == 0)
            g_raise = 1;
        else
            g_stack = (size_t)atoi(argv[i]) * 1024;
    }
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0)
        fail("pthread_attr_init");
    int rc = pthread_attr_setstacksize(&attr, g_stack);
    if (rc != 0) {
        errno = rc;
        die("pthread_attr_setstacksize");
    }
    rc = pthread_create(&t, &attr, worker, NULL);
    if (rc != 0) {
        errno = rc;
        die("pthread_create");
    }
    pthread_attr_destroy(&attr);
    if (pthread_join(t, NULL) != 0)
        fail("pthread_join");
    printf("done %016" PRIx64 "\n", g_acc);
    return 0;
}
