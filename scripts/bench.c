/* Benchmark subject: fills N MiB of anonymous memory with non-zero data,
 * forks P - 1 children (P, the second argument, default 1: a tree of P
 * processes of N MiB each), prints "ready", then keeps checking it (the
 * children wait). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t n = (size_t)atol(argc > 1 ? argv[1] : "1024") << 20;
    unsigned long *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    for (size_t i = 0; i < n / 8; i++) p[i] = i * 0x9E3779B97F4A7C15ul + 1;
    int procs = argc > 2 ? atoi(argv[2]) : 1;
    for (int c = 1; c < procs; c++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            /* Memory of its own, as a worker's would be. */
            for (size_t i = 0; i < n / 8; i += 512) p[i] += (unsigned long)c;
            for (;;) pause();
        }
    }
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
