/*
 * Holds an io_uring instance (io_uring_setup(2) through syscall(2), no
 * liburing), a kind of descriptor a dump cannot save: a dump must fail with
 * a line naming the fd and "io_uring", and the program go on unchanged.
 *
 * Protocol: "start", "io_uring fd=N", "step N ..." per step (25 ms apart),
 * "done ...". Every line is deterministic.
 */
#include "testprog.h"

#include <linux/io_uring.h>
#include <sys/syscall.h>

#define STEPS 50

int main(void)
{
    tp_start();
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(__NR_io_uring_setup, 8, &params);
    if (fd < 0)
        die("io_uring_setup");
    printf("io_uring fd=%ld\n", fd);
    uint64_t acc = 3;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(25000000L);
    }
    if (close((int)fd) != 0)
        die("close io_uring");
    printf("done %016" PRIx64 "\n", acc);
    return 0;
}
