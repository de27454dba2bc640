/*
 * Test program for migrate's mapped-file checks: it dlopens a shared library
 * (argv[1]) and maps a data file (argv[2], MAP_PRIVATE, read-only), and uses
 * both every step. A restore after either file changed must refuse (69).
 *
 * Protocol: "start", one "step N ..." line per step, then "done <checksum>".
 * Steps are paced with a 30 ms nanosleep unless MIGRATE_TEST_NOSLEEP is set.
 */
#include "testprog.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define STEPS 60
#define SLEEP_NS 30000000L

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dlprog LIB DATAFILE\n");
        return 2;
    }
    tp_start();
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        printf("error dlopen %s\n", dlerror());
        return 1;
    }
    uint64_t (*lib_step)(uint64_t) = (uint64_t (*)(uint64_t))dlsym(lib, "lib_step");
    if (!lib_step) {
        printf("error dlsym\n");
        return 1;
    }
    int fd = open(argv[2], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        printf("error data file\n");
        return 1;
    }
    size_t len = (size_t)st.st_size;
    const unsigned char *data = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
        printf("error mmap\n");
        return 1;
    }
    close(fd);
    uint64_t acc = 1;
    for (int step = 1; step <= STEPS; step++) {
        uint64_t d = 0;
        for (size_t i = (size_t)step % 64; i < len; i += 64)
            d = d * 131 + data[i];
        acc = lib_step(acc + d);
        printf("step %d data=%016" PRIx64 " lib=%016" PRIx64 "\n", step, d, acc);
        pace(SLEEP_NS);
    }
    printf("done %016" PRIx64 "\n", acc);
    return 0;
}
