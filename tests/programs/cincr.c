/*
 * Memory that changes a little between dumps, for incremental images:
 * MIB MiB of anonymous memory, every page different, then STEPS steps
 * PACE_MS ms apart. Each step rewrites 4 pages of the region; every ten
 * steps the program also maps a new region (mmap), grows the heap (sbrk),
 * grows and moves a mapping (mremap), and frees a page of the region
 * (MADV_DONTNEED, which reads back as zeros), each filled or checked
 * afterwards. Every step prints a hash over what changed and samples of
 * the rest; the last line hashes all of the memory.
 *
 * Usage: cincr MIB STEPS PACE_MS
 * Protocol: "start", one "step N ..." line per step, then "done <checksum>".
 */
#include "testprog.h"

#include <sys/mman.h>

#define PAGE 4096UL
#define WORDS (PAGE / 8)
#define MAX_NEW 16

static void fill(uint64_t *p, size_t pages, uint64_t seed)
{
    for (size_t i = 0; i < pages * WORDS; i++)
        p[i] = mix(seed ^ i) | 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        printf("usage: cincr MIB STEPS PACE_MS\n");
        return 2;
    }
    size_t len = strtoul(argv[1], NULL, 10) << 20;
    int steps = atoi(argv[2]);
    long pace_ns = atol(argv[3]) * 1000000L;
    size_t pages = len / PAGE;
    if (pages < 64 || steps <= 0) {
        printf("error bad arguments\n");
        return 2;
    }
    tp_start();
    uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap");
    fill(mem, pages, 7);
    uint64_t *made[MAX_NEW];
    int n_made = 0;
    char *brk_start = sbrk(0);
    size_t brk_pages = 0;
    size_t moved_pages = 4;
    uint64_t *moved = mmap(NULL, moved_pages * PAGE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (moved == MAP_FAILED)
        die("mmap");
    fill(moved, moved_pages, 11);
    uint64_t total = FNV_INIT;
    for (int step = 1; step <= steps; step++) {
        for (uint64_t k = 0; k < 4; k++) {
            uint64_t *w = mem + mix((uint64_t)step * 4 + k) % pages * WORDS;
            for (size_t j = 0; j < WORDS; j++)
                w[j] = mix(w[j] ^ (uint64_t)step) | 1;
        }
        switch (step % 10) {
        case 3:
            if (n_made < MAX_NEW) {
                uint64_t *p = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                    die("mmap");
                fill(p, 8, (uint64_t)step * 101);
                made[n_made++] = p;
            }
            break;
        case 5: {
            char *at = sbrk(4 * PAGE);
            if (at == (char *)-1)
                die("sbrk");
            brk_pages += 4;
            fill((uint64_t *)((uintptr_t)(at + PAGE - 1) & ~(PAGE - 1)), 3, (uint64_t)step * 7);
            break;
        }
        case 7: {
            uint64_t *p = mremap(moved, moved_pages * PAGE, (moved_pages + 4) * PAGE, MREMAP_MAYMOVE);
            if (p == MAP_FAILED)
                die("mremap");
            fill(p + moved_pages * WORDS, 4, (uint64_t)step * 13);
            moved = p;
            moved_pages += 4;
            break;
        }
        case 9: {
            uint64_t *w = mem + mix((uint64_t)step * 77) % pages * WORDS;
            if (madvise(w, PAGE, MADV_DONTNEED) != 0)
                die("madvise");
            break;
        }
        }
        uint64_t h = FNV_INIT;
        for (uint64_t k = 0; k < 32; k++)
            h = fnv(h, mem + mix((uint64_t)step * 1000 + k) % pages * WORDS, PAGE);
        for (int i = 0; i < n_made; i++)
            h = fnv(h, made[i], 8 * PAGE);
        h = fnv(h, moved, moved_pages * PAGE);
        if (brk_pages)
            h = fnv(h, brk_start, (size_t)((char *)sbrk(0) - brk_start));
        total = mix(total ^ h);
        printf("step %d sample=%016" PRIx64 "\n", step, h);
        pace(pace_ns);
    }
    uint64_t all = fnv(FNV_INIT, mem, len);
    printf("done %016" PRIx64 "\n", total ^ all);
    return 0;
}
