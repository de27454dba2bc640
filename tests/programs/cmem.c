/*
 * A program of a chosen size, for dumps that take a while: MIB MiB of
 * anonymous memory, every page filled with a different non-zero pattern
 * (so every page goes into an image), then STEPS steps PACE_MS ms apart.
 * Each step rewrites 16 pages spread over the region and prints a hash of
 * 64 others; the last line hashes all of the memory, so a restore that
 * lost or tore a page ends with another checksum.
 *
 * Usage: cmem MIB STEPS PACE_MS
 * Protocol: "start", one "step N ..." line per step, then "done <checksum>";
 * MIGRATE_TEST_NOSLEEP drops the pacing (which changes no output).
 */
#include "testprog.h"

#include <sys/mman.h>

#define PAGE 4096UL
#define WORDS_PER_PAGE (PAGE / 8)

int main(int argc, char **argv)
{
    if (argc != 4) {
        printf("usage: cmem MIB STEPS PACE_MS\n");
        return 2;
    }
    size_t len = strtoul(argv[1], NULL, 10) << 20;
    int steps = atoi(argv[2]);
    long pace_ns = atol(argv[3]) * 1000000L;
    size_t pages = len / PAGE;
    if (pages == 0 || steps <= 0) {
        printf("error bad arguments\n");
        return 2;
    }
    tp_start();
    uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap");
    for (size_t i = 0; i < len / 8; i++)
        mem[i] = mix(i + 1);
    uint64_t total = FNV_INIT;
    for (int step = 1; step <= steps; step++) {
        for (uint64_t k = 0; k < 16; k++) {
            uint64_t *w = mem + mix((uint64_t)step * 16 + k) % pages * WORDS_PER_PAGE;
            for (size_t j = 0; j < WORDS_PER_PAGE; j++)
                w[j] = mix(w[j] ^ (uint64_t)step) | 1;
        }
        uint64_t h = FNV_INIT;
        for (uint64_t k = 0; k < 64; k++) {
            uint64_t *w = mem + mix((uint64_t)step * 1000 + k) % pages * WORDS_PER_PAGE;
            h = fnv(h, w, PAGE);
        }
        total = mix(total ^ h);
        printf("step %d sample=%016" PRIx64 "\n", step, h);
        pace(pace_ns);
    }
    uint64_t all = FNV_INIT;
    for (size_t i = 0; i < len / 8; i++)
        all = mix(all ^ mem[i]);
    printf("done %016" PRIx64 "\n", total ^ all);
    return 0;
}
