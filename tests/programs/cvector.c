/*
 * Vector registers live across the dump: each step loads a value into a
 * register (ymm15 in mode "avx", zmm16 in mode "avx512"), sleeps 20 ms
 * with a raw nanosleep in the same asm block (so that is where the dump
 * signal finds it, the register live in the thread's signal frame), and
 * reads the register back: a restore that lost the saved vector state
 * (a frame the kernel took as x87/SSE only) prints "error".
 *
 * Protocol: "start", "step N ok" for 100 steps, then "done <hash of
 * every value read back>".
 * MIGRATE_TEST_NOSLEEP makes the sleeps 0.
 */
#include "testprog.h"
#include <sys/syscall.h>

static uint64_t g_hash = FNV_INIT;

static int round_trip(const char *mode, uint64_t seed)
{
    uint64_t in[8], out[8];
    for (int i = 0; i < 8; i++)
        in[i] = mix(seed + (uint64_t)i);
    memset(out, 0, sizeof out);
    struct timespec ts = {0, g_nosleep ? 0 : 20000000L};
    long ret;
    if (strcmp(mode, "avx512") == 0) {
        __asm__ volatile("vmovdqu64 (%[in]), %%zmm16\n\t"
                         "syscall\n\t"
                         "vmovdqu64 %%zmm16, (%[out])\n\t"
                         : "=a"(ret)
                         : "a"((long)SYS_nanosleep), "D"(&ts), "S"(0L), [in] "r"(in), [out] "r"(out)
                         : "rcx", "r11", "memory");
        g_hash = fnv(g_hash, out, 64);
        return memcmp(in, out, 64) == 0;
    }
    __asm__ volatile("vmovdqu (%[in]), %%ymm15\n\t"
                     "syscall\n\t"
                     "vmovdqu %%ymm15, (%[out])\n\t"
                     : "=a"(ret)
                     : "a"((long)SYS_nanosleep), "D"(&ts), "S"(0L), [in] "r"(in), [out] "r"(out)
                     : "rcx", "r11", "memory");
    g_hash = fnv(g_hash, out, 32);
    return memcmp(in, out, 32) == 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "avx";
    tp_start();
    for (int step = 1; step <= 100; step++) {
        if (!round_trip(mode, (uint64_t)step * 977)) {
            printf("error step %d: %s register lost its value\n", step, mode);
            return 1;
        }
        printf("step %d ok\n", step);
    }
    printf("done %016" PRIx64 "\n", g_hash);
    return 0;
}
