/* Benchmark subject: fills N MiB of anonymous memory with non-zero data,
 * prints "ready", then keeps checking it. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t n = (size_t)atol(argc > 1 ? argv[1] : "1024") << 20;
    unsigned long *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    for (size_t i = 0; i < n / 8; i++) p[i] = i * 0x9E3779B97F4A7C15ul + 1;
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        unsigned long s = 0;
        for (size_t i = 0; i < n / 8; i += 512) s += p[i];
        printf("sum %lu\n", s);
        fflush(stdout);
        sleep(1);
    }
}
