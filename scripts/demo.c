/* The demo program: counts, keeps a running hash, prints a line per step. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void) {
    unsigned long hash = 5381;
    char *history = calloc(64, 1 << 20); /* 64 MiB of heap it keeps using */
    for (int step = 1; step <= 25; step++) {
        for (int i = 0; i < (64 << 20); i += 4096)
            history[i] += (char)step;
        hash = hash * 33 + (unsigned long)step + (unsigned char)history[step * 4096];
        printf("step %2d  hash %016lx\n", step, hash);
        fflush(stdout);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    printf("done     hash %016lx\n", hash);
    return 0;
}
