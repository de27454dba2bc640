/*
 * The shared library dlprog loads. Tests build it with -DVARIANT=1, dump,
 * rebuild it with another VARIANT at the same path (other code, other
 * build-id), and expect the restore to refuse.
 */
#include <stdint.h>

#ifndef VARIANT
#define VARIANT 1
#endif

uint64_t lib_step(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ULL + (uint64_t)VARIANT * 2;
    x ^= x >> 27;
    return x + VARIANT;
}
