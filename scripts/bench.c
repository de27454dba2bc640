/* Benchmark subject, driven by `scripts/bench.py` through stdin/stdout.
 *
 *   bench heap MIB [PROCS]   MIB of anonymous memory, a third of its pages
 *                            zero (in blocks of 16), the rest pseudo-random; PROCS - 1 forked
 *                            children with memory of their own (a tree)
 *   bench text MIB           half text (compressible), half pseudo-random
 *   bench sparse GIB MIB     GIB reserved, MIB of it touched
 *   bench tiny               nothing but the program itself
 *   bench memref MIB         no app: prints the seconds a memcpy and a
 *                            first touch of MIB take, then exits
 *   bench exit               exits at once (start-up cost of the preload)
 *
 * It prints "ready" once its memory is filled, then answers one-letter
 * commands read from stdin, one per line:
 *   p   "alive": the process runs (restore until running)
 *   t   "touched SUM": every page of its memory read (until all touched)
 *   r N rewrites N per mille of its pages (incremental dumps), "rewritten"
 *   z   resets the pause gauge, "zeroed"
 *   g   "gap MS": the longest the ticker thread went without running
 *       since the last z (the app's own view of a dump's pause)
 * A restored process answers the same way (its stdin is the relaunch's).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static unsigned char *mem;
static size_t len;
static volatile int64_t max_gap_ns;
static volatile int64_t last_tick_ns;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Wakes every millisecond and records the longest time between wakes. */
static void *ticker(void *arg) {
    (void)arg;
    int64_t last = now_ns();
    for (;;) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, 0);
        int64_t t = now_ns();
        if (t - last > max_gap_ns) max_gap_ns = t - last;
        last = t;
        last_tick_ns = t;
    }
    return 0;
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill_random(unsigned char *p, size_t n, uint64_t seed) {
    uint64_t s = seed | 1;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = rnd(&s);
        memcpy(p + i, &v, 8);
    }
}

static void fill_heap(uint64_t seed) {
    /* Of every 48 pages the first 16 stay zero: a third of the memory,
     * in blocks, as freed or never-used parts of a heap are. */
    for (size_t pg = 0; pg < len / 4096; pg++)
        if (pg % 48 >= 16) fill_random(mem + pg * 4096, 4096, seed + pg);
}

static void fill_text(void) {
    static const char *words[] = {"migrate ", "checkpoint ", "restore ", "process ",
                                  "memory ", "image ", "thread ", "signal "};
    size_t half = len / 2, at = 0;
    uint64_t s = 7;
    while (at < half) {
        const char *w = words[rnd(&s) % 8];
        size_t n = strlen(w);
        if (at + n > half) break;
        memcpy(mem + at, w, n);
        at += n;
    }
    fill_random(mem + half, len - half, 11);
}

static unsigned char *map(size_t n) {
    unsigned char *p = mmap(0, n, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static int memref(size_t n) {
    unsigned char *a = map(n), *b = map(n);
    int64_t t0 = now_ns();
    memset(a, 1, n); /* first touch: page faults and zeroing */
    int64_t t1 = now_ns();
    memcpy(b, a, n); /* b's first touch too, as a restore's would be */
    int64_t t2 = now_ns();
    memcpy(b, a, n); /* memcpy alone */
    int64_t t3 = now_ns();
    printf("touch %.4f copy_fresh %.4f copy %.4f\n", (t1 - t0) / 1e9, (t2 - t1) / 1e9,
           (t3 - t2) / 1e9);
    return 0;
}

int main(int argc, char **argv) {
    const char *kind = argc > 1 ? argv[1] : "heap";
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 64;
    int procs = 1;
    if (!strcmp(kind, "exit")) return 0;
    if (!strcmp(kind, "memref")) return memref(mib << 20);
    if (!strcmp(kind, "heap")) {
        len = mib << 20;
        mem = map(len);
        fill_heap(1);
        procs = argc > 3 ? atoi(argv[3]) : 1;
    } else if (!strcmp(kind, "text")) {
        len = mib << 20;
        mem = map(len);
        fill_text();
    } else if (!strcmp(kind, "sparse")) {
        size_t reserve = mib << 30, touch = (size_t)atol(argc > 3 ? argv[3] : "100") << 20;
        mem = map(reserve);
        len = touch;
        fill_heap(3);
    } else if (!strcmp(kind, "tiny")) {
        len = 0;
    } else {
        fprintf(stderr, "bench: unknown kind %s\n", kind);
        return 2;
    }
    for (int c = 1; c < procs; c++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            /* Memory of its own, as a worker's would be. */
            fill_heap(100 + c);
            for (;;) pause();
        }
    }
    pthread_t t;
    last_tick_ns = now_ns();
    pthread_create(&t, 0, ticker, 0);
    setvbuf(stdout, 0, _IOLBF, 0);
    printf("ready\n");
    if (getenv("BENCH_TICK")) {
        /* Driven from outside (CRIU, DMTCP): no commands; a line every
         * 5 ms tells the driver the process runs. */
        for (;;) {
            struct timespec ms = {0, 5000000};
            nanosleep(&ms, 0);
            printf("tick\n");
        }
    }
    char line[64];
    uint64_t s = 99;
    while (fgets(line, sizeof line, stdin)) {
        switch (line[0]) {
        case 'p':
            printf("alive\n");
            break;
        case 't': {
            uint64_t sum = 0;
            for (size_t i = 0; i < len; i += 4096) sum += mem[i];
            printf("touched %llu\n", (unsigned long long)sum);
            break;
        }
        case 'r': {
            long permille = atol(line + 1);
            size_t pages = len / 4096, n = pages * permille / 1000;
            for (size_t i = 0; i < n && pages; i++) mem[(rnd(&s) % pages) * 4096] += 1;
            printf("rewritten\n");
            break;
        }
        case 'z':
            max_gap_ns = 0;
            printf("zeroed\n");
            break;
        case 'g': {
            /* The ticker may not have run since the threads were let go:
             * the gap it is in counts too. */
            int64_t gap = max_gap_ns, open = last_tick_ns ? now_ns() - last_tick_ns : 0;
            printf("gap %.3f\n", (gap > open ? gap : open) / 1e6);
            break;
        }
        }
    }
    return 0;
}
