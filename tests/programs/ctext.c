/*
 * A heap of text for compressed images: MIB MiB of anonymous memory
 * filled with words from a small dictionary (compressible, as a program's
 * strings are) or, with "random", with a different pseudo-random word at
 * every position (incompressible), and THREADS worker threads that each
 * rewrite a slice of it at every step under a mutex. Each step prints a
 * hash of the region; the last line hashes all of it, so a restore that
 * lost or tore a page ends with another checksum.
 *
 * Usage: ctext MIB THREADS text|random
 * Protocol: "start", one "step N ..." line per step (40 steps, 30 ms
 * apart), then "done <checksum>".
 */
#include "testprog.h"

#include <pthread.h>
#include <sys/mman.h>

#define STEPS 40
#define PACE_NS 30000000L

static const char *const WORDS[] = {
    "checkpoint ", "restore ", "the ", "process ", "image ", "page ", "of ",
    "memory ", "and ", "thread ", "signal ", "handler ", "a ", "in ",
    "compressed ", "chunk ", "data\n", "while ", "runs ", "is ",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static unsigned char *g_mem;
static size_t g_len;
static int g_random;
static int g_threads;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_step;
static int g_done_workers;

/* Fills [from, to) with text (or random words) seeded by seed. */
static void fill(size_t from, size_t to, uint64_t seed)
{
    size_t at = from;
    uint64_t k = seed;
    while (at < to) {
        k = mix(k + 1);
        if (g_random) {
            uint64_t w = k;
            size_t n = to - at < 8 ? to - at : 8;
            memcpy(g_mem + at, &w, n);
            at += n;
        } else {
            const char *w = WORDS[k % NWORDS];
            size_t n = strlen(w);
            if (n > to - at)
                n = to - at;
            memcpy(g_mem + at, w, n);
            at += n;
        }
    }
}

static void *worker(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    size_t slice = g_len / (size_t)g_threads;
    for (int step = 1; step <= STEPS; step++) {
        pthread_mutex_lock(&g_lock);
        while (g_step < step)
            pthread_cond_wait(&g_cond, &g_lock);
        pthread_mutex_unlock(&g_lock);
        /* 64 KiB of this worker's slice, a different place each step. */
        size_t len = 64 << 10;
        size_t at = id * slice + (mix((uint64_t)step * 31 + id) % (slice - len));
        fill(at, at + len, (uint64_t)step * 1000 + id);
        pthread_mutex_lock(&g_lock);
        g_done_workers++;
        pthread_cond_broadcast(&g_cond);
        pthread_mutex_unlock(&g_lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        printf("usage: ctext MIB THREADS text|random\n");
        return 2;
    }
    g_len = strtoul(argv[1], NULL, 10) << 20;
    g_threads = atoi(argv[2]);
    g_random = strcmp(argv[3], "random") == 0;
    if (g_len == 0 || g_threads < 1 || g_threads > 64) {
        printf("error bad arguments\n");
        return 2;
    }
    tp_start();
    g_mem = mmap(NULL, g_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_mem == MAP_FAILED)
        die("mmap");
    fill(0, g_len, 7);
    pthread_t t[64];
    for (int i = 0; i < g_threads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0)
            die("pthread_create");
    for (int step = 1; step <= STEPS; step++) {
        pthread_mutex_lock(&g_lock);
        g_step = step;
        pthread_cond_broadcast(&g_cond);
        while (g_done_workers < step * g_threads)
            pthread_cond_wait(&g_cond, &g_lock);
        pthread_mutex_unlock(&g_lock);
        uint64_t h = fnv(FNV_INIT, g_mem + (mix((uint64_t)step) % (g_len - 4096)), 4096);
        printf("step %d sample=%016" PRIx64 "\n", step, h);
        pace(PACE_NS);
    }
    for (int i = 0; i < g_threads; i++)
        pthread_join(t[i], NULL);
    printf("done %016" PRIx64 "\n", fnv(FNV_INIT, g_mem, g_len));
    return 0;
}
