/*
 * A large heap that checks itself, for the restore modes (eager, lazy):
 * MIB MiB of anonymous memory, every third block of 64 pages left zero
 * and the others filled with a pattern of their own (a page each); a file it reads a line of at every
 * step; a second thread that checks all of the memory at the end.
 *
 * Page i's words are mix(i, word, gen[i]), where gen[i] counts how often
 * the page was rewritten (0: as first filled, and then zero in a zero
 * block).
 * Each step rewrites 8 pages, checks 64 others and prints their hash; the
 * last line (printed by the checking thread) counts the pages that do not
 * hold their pattern: a restore that lost, tore or misplaced a page prints
 * another line than an uninterrupted run.
 *
 * Usage: cbigheap MIB STEPS PACE_MS
 * Protocol: "start", "step N line=L sample=H" per step, then
 * "done pages=P bad=B"; MIGRATE_TEST_NOSLEEP drops the pacing.
 */
#include "testprog.h"

#include <sys/mman.h>

#define PAGE 4096UL
#define WORDS (PAGE / 8)
#define ZERO(i) (((i) / 64) % 3 == 2)

static uint64_t *mem;
static uint8_t *gen;
static size_t pages;
static sem_t finish;

static uint64_t word(size_t i, size_t j)
{
    if (ZERO(i) && gen[i] == 0)
        return 0;
    return mix(((uint64_t)i << 20) ^ ((uint64_t)j << 8) ^ gen[i]) | 1;
}

static void fill(size_t i)
{
    for (size_t j = 0; j < WORDS; j++)
        mem[i * WORDS + j] = word(i, j);
}

static int page_ok(size_t i)
{
    for (size_t j = 0; j < WORDS; j++)
        if (mem[i * WORDS + j] != word(i, j))
            return 0;
    return 1;
}

static void *checker(void *arg)
{
    (void)arg;
    while (sem_wait(&finish) == -1 && errno == EINTR)
        ;
    size_t bad = 0;
    for (size_t i = 0; i < pages; i++)
        bad += !page_ok(i);
    printf("done pages=%zu bad=%zu\n", pages, bad);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        printf("usage: cbigheap MIB STEPS PACE_MS\n");
        return 2;
    }
    size_t len = strtoul(argv[1], NULL, 10) << 20;
    int steps = atoi(argv[2]);
    long pace_ns = atol(argv[3]) * 1000000L;
    pages = len / PAGE;
    if (pages == 0 || steps <= 0) {
        printf("error bad arguments\n");
        return 2;
    }
    tp_start();
    FILE *f = fopen("cbigheap.txt", "w");
    if (!f)
        die("create cbigheap.txt");
    for (int s = 1; s <= steps; s++)
        fprintf(f, "line %04d\n", s);
    fclose(f);
    int fd = open("cbigheap.txt", O_RDONLY);
    if (fd < 0)
        die("open cbigheap.txt");
    mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    gen = calloc(pages, 1);
    if (mem == MAP_FAILED || !gen)
        die("allocate");
    for (size_t i = 0; i < pages; i++)
        if (!ZERO(i))
            fill(i);
    sem_init(&finish, 0, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, checker, NULL) != 0)
        die("pthread_create");
    for (int step = 1; step <= steps; step++) {
        for (uint64_t k = 0; k < 8; k++) {
            size_t i = mix((uint64_t)step * 8 + k) % pages;
            gen[i]++;
            fill(i);
        }
        uint64_t h = FNV_INIT;
        int ok = 1;
        for (uint64_t k = 0; k < 64; k++) {
            size_t i = mix((uint64_t)step * 1000 + k) % pages;
            ok &= page_ok(i);
            h = fnv(h, mem + i * WORDS, PAGE);
        }
        char line[16] = {0};
        if (pread(fd, line, 10, (off_t)(step - 1) * 10) != 10)
            die("pread");
        line[9] = 0;
        printf("step %d %s %s sample=%016" PRIx64 "\n", step, line, ok ? "ok" : "BAD", h);
        pace(pace_ns);
    }
    sem_post(&finish);
    pthread_join(t, NULL);
    return 0;
}
