/*
 * Copies a text file three ways at once, one line (or chunk) per step:
 *
 *  - through stdio, fgets from IN and fputs to OUT_FLUSHED, fflush'd after
 *    every line;
 *  - through stdio, fputs to OUT_BUFFERED, never flushed before fclose (the
 *    FILE buffer, in memory, holds up to 4 KiB not yet written);
 *  - through raw fds, read(2) from a second descriptor of IN in chunks of
 *    1..90 bytes and write(2) to OUT_RAW.
 *
 * usage: cfilecopy IN OUT_FLUSHED OUT_BUFFERED OUT_RAW
 *
 * The outputs are opened with O_TRUNC ("w"): a restore must reopen them at
 * their offsets without truncating again. Whatever the dumped process wrote
 * after the dump (it goes on until it is killed) is written again, the same
 * bytes at the same offsets, by the restored one, so each output ends equal
 * to IN.
 *
 * Protocol: "start", one "step N ..." line per input line, "done ...".
 * Steps are paced (10 ms) unless MIGRATE_TEST_NOSLEEP is set.
 */
#include "testprog.h"

#include <sys/stat.h>

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 5)
        fail("usage: cfilecopy IN OUT_FLUSHED OUT_BUFFERED OUT_RAW");
    FILE *in = fopen(argv[1], "r");
    if (!in)
        die("fopen IN");
    FILE *flushed = fopen(argv[2], "w");
    if (!flushed)
        die("fopen OUT_FLUSHED");
    FILE *buffered = fopen(argv[3], "w");
    if (!buffered)
        die("fopen OUT_BUFFERED");
    int raw_in = open(argv[1], O_RDONLY);
    if (raw_in < 0)
        die("open IN");
    int raw_out = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (raw_out < 0)
        die("open OUT_RAW");

    char line[4096];
    char chunk[128];
    uint64_t h = FNV_INIT;
    size_t raw_total = 0;
    int step = 0;
    while (fgets(line, sizeof line, in)) {
        step++;
        size_t len = strlen(line);
        if (fputs(line, flushed) == EOF || fflush(flushed) == EOF)
            die("write OUT_FLUSHED");
        if (fputs(line, buffered) == EOF)
            die("write OUT_BUFFERED");
        size_t want = 1 + ((size_t)step * 37) % 90;
        ssize_t n = read(raw_in, chunk, want);
        if (n < 0)
            die("read IN");
        write_all(raw_out, chunk, (size_t)n, "write OUT_RAW");
        raw_total += (size_t)n;
        h = fnv(h, line, len);
        printf("step %d len=%zu raw=%zu h=%016" PRIx64 "\n", step, len, raw_total, h);
        pace(10000000L);
    }
    if (ferror(in))
        die("fgets IN");
    for (;;) {
        ssize_t n = read(raw_in, chunk, sizeof chunk);
        if (n < 0)
            die("read IN");
        if (n == 0)
            break;
        write_all(raw_out, chunk, (size_t)n, "write OUT_RAW");
        raw_total += (size_t)n;
    }
    if (fclose(in) || fclose(flushed) || fclose(buffered) || close(raw_in) || close(raw_out))
        die("close");
    printf("done lines=%d raw=%zu h=%016" PRIx64 "\n", step, raw_total, h);
    return 0;
}
