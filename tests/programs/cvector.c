/*
 * Vector registers live across the dump: each step loads a value into a
 * register (ymm15 in mode "avx", zmm16 in mode "avx512", AMX tile 0 in
 * mode "amx", after asking the kernel for AMX with arch_prctl; "no amx"
 * and exit 3 where it says no), sleeps 20 ms
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
#include <signal.h>
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
    if (strcmp(mode, "amx") == 0) {
        /* Palette 1, tile 0: one row of 64 bytes. */
        unsigned char cfg[64] __attribute__((aligned(64))) = {1};
        cfg[16] = 64;
        cfg[48] = 1;
        __asm__ volatile("ldtilecfg (%[cfg])\n\t"
                         "tileloadd (%[in],%[stride],1), %%tmm0\n\t"
                         "syscall\n\t"
                         "tilestored %%tmm0, (%[out],%[stride],1)\n\t"
                         "tilerelease\n\t"
                         : "=a"(ret)
                         : "a"((long)SYS_nanosleep), "D"(&ts), "S"(0L), [in] "r"(in), [out] "r"(out),
                           [cfg] "r"(cfg), [stride] "r"(64L)
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

/* Mode "amx-handler": the steps run in a SIGUSR1 handler that
 * interrupted code holding tile 0 (so a dump finds the tile in the older
 * signal frame, not its own); "done" once the interrupted code finds the
 * tile intact, "error" when it lost it. */
static void steps_in_handler(int sig)
{
    (void)sig;
    struct timespec ts = {0, g_nosleep ? 0 : 20000000L};
    for (int step = 1; step <= 100; step++) {
        nanosleep(&ts, NULL);
        printf("step %d ok\n", step);
    }
}

static int amx_handler(void)
{
    uint64_t in[8], out[8];
    for (int i = 0; i < 8; i++)
        in[i] = mix((uint64_t)i + 1);
    memset(out, 0, sizeof out);
    unsigned char cfg[64] __attribute__((aligned(64))) = {1};
    cfg[16] = 64;
    cfg[48] = 1;
    signal(SIGUSR1, steps_in_handler);
    long ret;
    __asm__ volatile("ldtilecfg (%[cfg])\n\t"
                     "tileloadd (%[in],%[stride],1), %%tmm0\n\t"
                     "syscall\n\t"
                     "tilestored %%tmm0, (%[out],%[stride],1)\n\t"
                     "tilerelease\n\t"
                     : "=a"(ret)
                     : "a"((long)SYS_kill), "D"((long)getpid()), "S"((long)SIGUSR1), [in] "r"(in),
                       [out] "r"(out), [cfg] "r"(cfg), [stride] "r"(64L)
                     : "rcx", "r11", "memory");
    if (memcmp(in, out, 64) != 0) {
        printf("error: tile 0 lost its value\n");
        return 1;
    }
    printf("done %016" PRIx64 "\n", fnv(FNV_INIT, out, 64));
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "avx";
    /* ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA. */
    if (strncmp(mode, "amx", 3) == 0 && syscall(SYS_arch_prctl, 0x1023, 18) != 0) {
        printf("no amx\n");
        return 3;
    }
    tp_start();
    if (strcmp(mode, "amx-handler") == 0)
        return amx_handler();
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
