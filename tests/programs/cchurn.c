/*
 * Threaded test program for migrate: threads start and exit all the time.
 *
 * Every step, main creates THREADS short-lived threads, each of which
 * computes from its argument with some thread-local and stack state and
 * exits;
 * main joins them in creation order, folds their results and prints the
 * step's line. Dumps therefore land while threads are being created, are
 * running, or are exiting.
 *
 * Protocol: "start", one "step N ..." line per step, then "done <checksum>".
 * Every line is deterministic. Steps are paced with nanosleep (2 ms) unless
 * MIGRATE_TEST_NOSLEEP is set, which changes no output.
 */
#include "testprog.h"

#define STEPS 1500
#define THREADS 3
#define SLEEP_NS 2000000L
#define WORK 2000

static uint64_t g_created;
static __thread uint64_t t_acc;

static void *short_lived(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    volatile uint64_t local[16];
    for (int i = 0; i < 16; i++)
        local[i] = mix(seed + (uint64_t)i);
    t_acc = seed;
    for (int i = 0; i < WORK; i++)
        t_acc = mix(t_acc ^ local[i % 16]);
    return (void *)(uintptr_t)t_acc;
}

int main(void)
{
    tp_start();
    uint64_t total = 0;
    for (int step = 1; step <= STEPS; step++) {
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            t[i] = start_thread(short_lived,
                                (void *)(uintptr_t)((uint64_t)step * THREADS + (uint64_t)i));
            g_created++;
        }
        uint64_t sum = 0;
        for (int i = 0; i < THREADS; i++)
            sum = mix(sum ^ (uint64_t)(uintptr_t)join_thread(t[i]));
        total = mix(total + sum);
        printf("step %d created=%" PRIu64 " sum=%016" PRIx64 " total=%016" PRIx64 "\n", step,
               g_created, sum, total);
        pace(SLEEP_NS);
    }
    printf("done created=%" PRIu64 " %016" PRIx64 "\n", g_created, total);
    return 0;
}
