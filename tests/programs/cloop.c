/*
 * Test program 4 for migrate: a tight malloc/free/print loop, so that dumps
 * land while malloc's locks and lists are in any state.
 *
 * Protocol: "start", one "step N ..." line per step, then "done <checksum>".
 * Each step does 2000 malloc/free of pseudo-random sizes (small ones from the
 * brk heap, some large enough to be mmap'd) and sleeps 1 ms, unless
 * MIGRATE_TEST_NOSLEEP is set (which changes no output).
 */
#include "testprog.h"

#define STEPS 6000
#define OPS 2000
#define SLOTS 512
#define SLEEP_NS 1000000L

static unsigned char *g_slot[SLOTS];
static size_t g_size[SLOTS];
static uint64_t g_rng = 0x243f6a8885a308d3ULL;

static uint64_t next(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

int main(void)
{
    tp_start();
    uint64_t total = 0;
    for (int step = 1; step <= STEPS; step++) {
        uint64_t sum = 0;
        for (int op = 0; op < OPS; op++) {
            uint64_t r = next();
            size_t i = r % SLOTS;
            if (g_slot[i]) {
                /* Check the fill pattern before freeing. */
                unsigned char want = (unsigned char)(g_size[i] * 7);
                if (g_slot[i][0] != want || g_slot[i][g_size[i] - 1] != want) {
                    printf("error slot %zu corrupt\n", i);
                    return 1;
                }
                sum += g_size[i];
                free(g_slot[i]);
                g_slot[i] = NULL;
            } else {
                size_t size = (r >> 20) % 512 + 1;
                if ((r >> 40) % 97 == 0)
                    size += 200000; /* above the mmap threshold */
                unsigned char *p = malloc(size);
                if (!p) {
                    printf("error malloc\n");
                    return 1;
                }
                memset(p, (int)(unsigned char)(size * 7), size);
                g_slot[i] = p;
                g_size[i] = size;
                sum += size * 3;
            }
        }
        total = total * 1000003 + sum;
        printf("step %d sum=%" PRIu64 " total=%016" PRIx64 "\n", step, sum, total);
        pace(SLEEP_NS);
    }
    printf("done %016" PRIx64 "\n", total);
    return 0;
}
