/*
 * Reads a file that was deleted while open, slowly, to its end.
 *
 * usage: cunlinked IN SCRATCH
 *
 * IN (written by the test) is opened read-only and unlinked; SCRATCH is
 * created read-write by the program and unlinked too. Every step reads the
 * next CHUNK bytes of IN, prints their hash and appends them to SCRATCH. At
 * the end SCRATCH is read back from offset 0 and must equal all of IN (read
 * again with pread): a restore must bring back both files' contents (they
 * have no path any more) and both offsets.
 *
 * Protocol: "start", "unlinked", "step N ..." per chunk, "done ...".
 * Steps are paced (25 ms) unless MIGRATE_TEST_NOSLEEP is set.
 */
#include "testprog.h"

#include <sys/stat.h>

#define CHUNK 512
#define MAXSIZE (1 << 20)

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 3)
        fail("usage: cunlinked IN SCRATCH");
    int in = open(argv[1], O_RDONLY);
    if (in < 0)
        die("open IN");
    if (unlink(argv[1]) != 0)
        die("unlink IN");
    int scratch = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (scratch < 0)
        die("open SCRATCH");
    if (unlink(argv[2]) != 0)
        die("unlink SCRATCH");
    printf("unlinked\n");

    static char buf[MAXSIZE], again[MAXSIZE];
    uint64_t h = FNV_INIT;
    size_t total = 0;
    for (int s = 1;; s++) {
        ssize_t n = read(in, buf, CHUNK);
        if (n < 0)
            die("read IN");
        if (n == 0)
            break;
        write_all(scratch, buf, (size_t)n, "write SCRATCH");
        total += (size_t)n;
        uint64_t c = fnv(FNV_INIT, buf, (size_t)n);
        h = fnv(h, buf, (size_t)n);
        printf("step %d n=%zd at=%zu chunk=%016" PRIx64 "\n", s, n, total, c);
        pace(25000000L);
    }
    if (total > MAXSIZE)
        fail("IN too big");
    if (lseek(scratch, 0, SEEK_SET) != 0)
        die("lseek SCRATCH");
    ssize_t back = read(scratch, buf, MAXSIZE);
    if (back < 0)
        die("read SCRATCH");
    ssize_t orig = pread(in, again, MAXSIZE, 0);
    if (orig < 0)
        die("pread IN");
    const char *same = (size_t)back == total && (size_t)orig == total && memcmp(buf, again, total) == 0
                           ? "yes"
                           : "NO";
    struct stat st;
    if (fstat(in, &st) != 0)
        die("fstat IN");
    printf("done total=%zu size=%lld scratch-equals-input=%s h=%016" PRIx64 "\n", total,
           (long long)st.st_size, same, h);
    return 0;
}
