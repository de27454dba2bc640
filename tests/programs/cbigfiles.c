/*
 * Unnamed files too large for an image's metadata (issue 12): their data
 * goes with the page data, holes left out. One mode per kind; each sets
 * its files up, records size, holes (SEEK_DATA/SEEK_HOLE), offset and a
 * hash of the data, prints "ready", runs STEPS paced steps (the dump
 * lands in between), then checks every file against what it recorded,
 * one verdict line per check.
 *
 * usage: cbigfiles MODE DIR
 *
 *  deleted  a deleted file of 1.5 GiB written sparse (2 MiB of data at
 *           its start, middle and end, holes between), offset 12345, and
 *           a dense deleted file of 20 MiB open read-only, offset 777.
 *  memfd    a memfd of 1.2 GiB sparse (data at start, middle and end),
 *           also mapped shared whole; after the steps the mapping and the
 *           descriptor must still be one object (a write through each is
 *           seen through the other).
 *
 * Prints "fd NAME=N" for each file before "ready". Protocol: "start",
 * "fd ...", "ready", "step N" per step (25 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), verdict lines, "done". Every line is
 * deterministic.
 */
#include "testprog.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define STEPS 30
#define STEP_NS 25000000L
#define MIB (1024L * 1024L)
#define PIECE (2 * MIB)

static char g_path[4096];

static const char *in_dir(const char *dir, const char *name)
{
    snprintf(g_path, sizeof g_path, "%s/%s", dir, name);
    return g_path;
}

static const char *yes(int ok)
{
    return ok ? "yes" : "NO";
}

/* What a file looked like: its size, (data, hole) offsets, a hash of its
 * data ranges and its offset. */
struct shape {
    off_t size;
    off_t ranges[32];
    int n;
    uint64_t hash;
    off_t offset;
};

static void measure(int fd, struct shape *s)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat");
    s->size = st.st_size;
    s->offset = lseek(fd, 0, SEEK_CUR);
    s->n = 0;
    s->hash = FNV_INIT;
    static char buf[1 << 20];
    off_t at = 0;
    while (at < s->size && s->n < 32) {
        off_t d = lseek(fd, at, SEEK_DATA);
        if (d < 0)
            break;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            die("SEEK_HOLE");
        s->ranges[s->n++] = d;
        s->ranges[s->n++] = h;
        for (off_t o = d; o < h;) {
            size_t want = (size_t)(h - o) < sizeof buf ? (size_t)(h - o) : sizeof buf;
            ssize_t got = pread(fd, buf, want, o);
            if (got <= 0)
                die("pread");
            s->hash = fnv(s->hash, buf, (size_t)got);
            o += got;
        }
        at = h;
    }
    lseek(fd, s->offset, SEEK_SET);
}

/* Writes n pseudo-random bytes from seed at off. */
static void fill(int fd, off_t off, size_t n, uint64_t seed)
{
    static uint64_t buf[PIECE / 8];
    for (size_t i = 0; i < n / 8; i++)
        buf[i] = mix(seed + i);
    if (pwrite(fd, buf, n, off) != (ssize_t)n)
        die("pwrite");
}

static void steps(void)
{
    printf("ready\n");
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d\n", s);
        pace(STEP_NS);
    }
}

static void compare(const char *name, int fd, const struct shape *before)
{
    struct shape after;
    measure(fd, &after);
    int same_ranges = after.n == before->n &&
                      memcmp(after.ranges, before->ranges, sizeof(off_t) * (size_t)after.n) == 0;
    printf("%s size=%s ranges=%d holes=%s data=%s offset=%s\n", name,
           yes(after.size == before->size), before->n / 2, yes(same_ranges),
           yes(after.hash == before->hash), yes(after.offset == before->offset));
}

static int mode_deleted(const char *dir)
{
    const long big = 1536 * MIB;
    const char *p = in_dir(dir, "sparse");
    int sparse = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (sparse < 0)
        die("open sparse");
    fill(sparse, 0, PIECE, 1);
    fill(sparse, big / 2, PIECE, 2);
    fill(sparse, big - PIECE, PIECE, 3);
    if (unlink(p) != 0)
        die("unlink sparse");
    lseek(sparse, 12345, SEEK_SET);

    p = in_dir(dir, "dense");
    int w = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (w < 0)
        die("open dense");
    for (int i = 0; i < 10; i++)
        fill(w, (off_t)i * PIECE, PIECE, 100 + (uint64_t)i);
    int dense = open(p, O_RDONLY);
    if (dense < 0)
        die("open dense again");
    close(w);
    if (unlink(p) != 0)
        die("unlink dense");
    lseek(dense, 777, SEEK_SET);

    struct shape s_sparse, s_dense;
    measure(sparse, &s_sparse);
    measure(dense, &s_dense);
    printf("fd sparse=%d\n", sparse);
    printf("fd dense=%d\n", dense);
    steps();
    compare("sparse", sparse, &s_sparse);
    compare("dense", dense, &s_dense);
    return 0;
}

static int mode_memfd(void)
{
    const long big = 1228 * MIB;
    int fd = memfd_create("big-memfd", 0);
    if (fd < 0)
        die("memfd_create");
    if (ftruncate(fd, big) != 0)
        die("ftruncate");
    fill(fd, 0, PIECE, 7);
    fill(fd, big / 2, PIECE, 8);
    fill(fd, big - PIECE, PIECE, 9);
    char *m = mmap(NULL, (size_t)big, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        die("mmap");
    /* Written through the mapping: the file's data. */
    memcpy(m + big / 2 + 100, "through the mapping", 19);
    lseek(fd, 4242, SEEK_SET);
    struct shape before;
    measure(fd, &before);
    printf("fd memfd=%d\n", fd);
    steps();
    compare("memfd", fd, &before);
    /* One object: each side sees the other's writes. */
    if (pwrite(fd, "via fd", 6, 64) != 6)
        die("pwrite memfd");
    int seen = memcmp(m + 64, "via fd", 6) == 0;
    memcpy(m + big - 10, "via map", 7);
    char back[7];
    if (pread(fd, back, 7, big - 10) != 7)
        die("pread memfd");
    seen &= memcmp(back, "via map", 7) == 0;
    seen &= memcmp(m + big / 2 + 100, "through the mapping", 19) == 0;
    printf("memfd one object=%s\n", yes(seen));
    return 0;
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 3) {
        printf("usage: cbigfiles MODE DIR\n");
        return 2;
    }
    int rc;
    if (strcmp(argv[1], "deleted") == 0)
        rc = mode_deleted(argv[2]);
    else if (strcmp(argv[1], "memfd") == 0)
        rc = mode_memfd();
    else {
        printf("unknown mode %s\n", argv[1]);
        return 2;
    }
    printf("done %s\n", argv[1]);
    return rc;
}
