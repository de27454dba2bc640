/*
 * The program cexec's child runs (see cexec.c): it answers once at start,
 * then for each step number read from stdin prints "exec child step N
 * acc=..." and answers on fd 3 with its accumulator; at end of file it
 * exits 5. Its accumulator lives in this program's memory: a restore
 * that brought back the parent's program instead would not have it.
 */
#include "testprog.h"

static uint64_t acc = 7;

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (write(3, &acc, sizeof acc) != sizeof acc)
        die("write");
    for (;;) {
        uint64_t i;
        char *p = (char *)&i;
        size_t n = sizeof i;
        while (n > 0) {
            ssize_t r = read(0, p, n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0 && n == sizeof i)
                return 5;
            if (r <= 0)
                die("read");
            p += r;
            n -= (size_t)r;
        }
        acc = mix(acc ^ (i * 0x9e3779b97f4a7c15ULL));
        printf("exec child step %" PRIu64 " acc=%016" PRIx64 "\n", i, acc);
        if (write(3, &acc, sizeof acc) != sizeof acc)
            die("write");
    }
}
