/*
 * Threaded test program for migrate: N worker threads (argv[1], default 4,
 * at most 256) take turns under one pthread mutex and one condition
 * variable, each adding to shared totals, and are joined at the end.
 *
 *  - Round r, turn i: worker i waits (pthread_cond_wait) until
 *    turn == r*N + i, folds its thread-local state into the shared totals,
 *    advances the turn and broadcasts. The last worker of a round prints the
 *    round's line (under the mutex, so lines come in a fixed order) and then
 *    paces the run, so a dump finds workers in pthread_cond_wait, in
 *    nanosleep, computing, or waiting for the mutex.
 *  - Every worker keeps state in __thread variables and on its stack, and
 *    returns a checksum of it that main folds in after pthread_join.
 *
 * Protocol: "start", one "step R ..." line per round, then "done <checksum>".
 * Every line is deterministic: it depends on neither scheduling, time, pid
 * nor addresses. Rounds are paced with nanosleep (30 ms) unless
 * MIGRATE_TEST_NOSLEEP is set, which only makes the reference run faster.
 */
#include "testprog.h"

#define ROUNDS 60
#define MAX_THREADS 256
#define SLEEP_NS 30000000L
#define LOCAL_WORDS 256

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static uint64_t g_turn;
static uint64_t g_sum;
static uint64_t g_fold = 0x9e3779b97f4a7c15ULL;
static uint64_t g_turns_taken;
static int g_nthreads;

static __thread uint64_t t_state;
static __thread uint64_t t_rounds;

static void *worker(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t n = (uint64_t)g_nthreads;
    /* State on this thread's stack, used across every round. */
    volatile uint64_t local[LOCAL_WORDS];
    for (int i = 0; i < LOCAL_WORDS; i++)
        local[i] = mix(id * 1000 + (uint64_t)i);
    t_state = mix(id + 1);
    for (uint64_t r = 0; r < ROUNDS; r++) {
        /* Work outside the lock. */
        for (int i = 0; i < LOCAL_WORDS; i++) {
            local[i] = mix(local[i] + r);
            t_state ^= local[i];
        }
        t_rounds++;
        int rc = pthread_mutex_lock(&g_lock);
        if (rc)
            die_rc("lock", rc);
        while (g_turn != r * n + id) {
            rc = pthread_cond_wait(&g_cond, &g_lock);
            if (rc)
                die_rc("cond_wait", rc);
        }
        g_sum += t_state;
        g_fold = mix(g_fold ^ t_state ^ id);
        g_turns_taken++;
        g_turn++;
        if (id == n - 1)
            printf("step %" PRIu64 " threads=%" PRIu64 " turns=%" PRIu64 " sum=%016" PRIx64
                   " fold=%016" PRIx64 "\n",
                   r + 1, n, g_turns_taken, g_sum, g_fold);
        rc = pthread_cond_broadcast(&g_cond);
        if (rc)
            die_rc("cond_broadcast", rc);
        rc = pthread_mutex_unlock(&g_lock);
        if (rc)
            die_rc("unlock", rc);
        if (id == n - 1)
            pace(SLEEP_NS);
        else if (id % 3 == 0)
            pace(SLEEP_NS / 10);
    }
    uint64_t check = t_state ^ (t_rounds << 32);
    for (int i = 0; i < LOCAL_WORDS; i++)
        check = mix(check ^ local[i]);
    return (void *)(uintptr_t)check;
}

int main(int argc, char **argv)
{
    g_nthreads = argc > 1 ? atoi(argv[1]) : 4;
    if (g_nthreads < 1 || g_nthreads > MAX_THREADS) {
        printf("error bad thread count %s\n", argv[1]);
        return 1;
    }
    tp_start();
    pthread_t threads[MAX_THREADS];
    for (int i = 0; i < g_nthreads; i++)
        threads[i] = start_thread(worker, (void *)(uintptr_t)i);
    uint64_t check = 0;
    for (int i = 0; i < g_nthreads; i++)
        check = mix(check ^ (uint64_t)(uintptr_t)join_thread(threads[i]));
    check = mix(check ^ g_sum ^ g_fold ^ g_turns_taken);
    printf("done threads=%d turns=%" PRIu64 " %016" PRIx64 "\n", g_nthreads, g_turns_taken,
           check);
    return 0;
}
