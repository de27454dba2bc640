/*
 * Files a restore must make again exactly (issue 12, files group). One
 * mode per kind; each sets its objects up, prints "ready", runs STEPS
 * paced steps (the dump lands in between), then checks every object's
 * state and behaviour against what it recorded before the steps, one
 * verdict line per check.
 *
 * usage: cfileattrs MODE DIR
 *
 *  attrs      a sparse file (data at 0 and at 1 MiB, 3 MiB long) given
 *             mode 0640 and fixed times, then deleted; a memfd of mode
 *             0600 with seals; a Unix socket bound in DIR, its file given
 *             mode 0600 after the bind.
 *  deleted    a deleted file open only for writing; a deleted FIFO open
 *             at both ends (non-blocking read end) with bytes queued; a
 *             deleted FIFO open O_RDWR with bytes queued.
 *  opath      O_PATH descriptors to a file, a directory and a symlink
 *             (O_PATH|O_NOFOLLOW), used with fstatat, openat and
 *             readlinkat(fd, "").
 *  procfs     /proc/self/status read 6 bytes in, /proc/<pid>/stat,
 *             /proc/self/maps, the /proc/self/fd directory and
 *             /proc/self/task/<tid>/comm: after the steps each shows the
 *             process's own live data.
 *  procother  /proc/<parent>/status open: the dump must fail naming it.
 *
 * Protocol: "start", "ready", "step N" per step (25 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), verdict lines, "done". Every line is
 * deterministic.
 */
#include "testprog.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#define STEPS 30
#define STEP_NS 25000000L
#define MIB (1024L * 1024L)

static char g_path[4096];

static const char *in_dir(const char *dir, const char *name)
{
    snprintf(g_path, sizeof g_path, "%s/%s", dir, name);
    return g_path;
}

static void steps(void)
{
    printf("ready\n");
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d\n", s);
        pace(STEP_NS);
    }
}

static const char *yes(int ok)
{
    return ok ? "yes" : "NO";
}

/* ---- attrs ------------------------------------------------------------- */

/* The (data, hole) offsets of fd, up to 8 pairs; returns how many. */
static int layout(int fd, off_t size, off_t out[16])
{
    int n = 0;
    off_t at = 0;
    while (at < size && n < 16) {
        off_t d = lseek(fd, at, SEEK_DATA);
        if (d < 0)
            break;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            die("SEEK_HOLE");
        out[n++] = d;
        out[n++] = h;
        at = h;
    }
    return n;
}

static int mode_attrs(const char *dir)
{
    const char *p = in_dir(dir, "sparse");
    int sparse = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (sparse < 0)
        die("open sparse");
    if (pwrite(sparse, "head", 4, 0) != 4 || pwrite(sparse, "middle", 6, MIB) != 6)
        die("pwrite sparse");
    if (ftruncate(sparse, 3 * MIB) != 0)
        die("ftruncate");
    if (fchmod(sparse, 0640) != 0)
        die("fchmod");
    struct timespec times[2] = {{1000000000, 123456789}, {1200000000, 500000000}};
    if (futimens(sparse, times) != 0)
        die("futimens");
    if (unlink(p) != 0)
        die("unlink sparse");
    lseek(sparse, 7, SEEK_SET);
    off_t before[16];
    int nbefore = layout(sparse, 3 * MIB, before);
    lseek(sparse, 7, SEEK_SET);
    printf("sparse ranges=%d\n", nbefore / 2);

    int memfd = memfd_create("attrs-memfd", MFD_ALLOW_SEALING);
    if (memfd < 0)
        die("memfd_create");
    write_all(memfd, "memfd contents\n", 15, "write memfd");
    if (fchmod(memfd, 0600) != 0)
        die("fchmod memfd");
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
        die("F_ADD_SEALS");

    int sock = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", in_dir(dir, "sock"));
    if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(sock, 4) != 0)
        die("bind");
    if (chmod(sa.sun_path, 0600) != 0)
        die("chmod sock");

    steps();

    struct stat st;
    if (fstat(sparse, &st) != 0)
        die("fstat sparse");
    printf("sparse mode=%o size=%lld\n", st.st_mode & 07777, (long long)st.st_size);
    printf("sparse times-kept=%s\n",
           yes(st.st_atim.tv_sec == times[0].tv_sec && st.st_atim.tv_nsec == times[0].tv_nsec &&
               st.st_mtim.tv_sec == times[1].tv_sec && st.st_mtim.tv_nsec == times[1].tv_nsec));
    printf("sparse offset=%lld\n", (long long)lseek(sparse, 0, SEEK_CUR));
    off_t after[16];
    int nafter = layout(sparse, 3 * MIB, after);
    printf("sparse holes-same=%s still-sparse=%s\n",
           yes(nafter == nbefore && memcmp(before, after, sizeof(off_t) * (size_t)nafter) == 0),
           yes(st.st_blocks * 512 < MIB));
    char buf[8] = {0};
    if (pread(sparse, buf, 6, MIB) != 6)
        die("pread sparse");
    printf("sparse data=%.6s\n", buf);

    if (fstat(memfd, &st) != 0)
        die("fstat memfd");
    printf("memfd mode=%o size=%lld seals=%#x\n", st.st_mode & 07777, (long long)st.st_size,
           fcntl(memfd, F_GET_SEALS));
    printf("memfd shrink-refused=%s\n", yes(ftruncate(memfd, 1) != 0 && errno == EPERM));

    if (stat(sa.sun_path, &st) != 0)
        die("stat sock");
    printf("socket file mode=%o is-socket=%s\n", st.st_mode & 07777, yes(S_ISSOCK(st.st_mode)));
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("socket connects=%s\n", yes(connect(c, (struct sockaddr *)&sa, sizeof sa) == 0));
    return 0;
}

/* ---- deleted ----------------------------------------------------------- */

static int mode_deleted(const char *dir)
{
    const char *p = in_dir(dir, "writeonly");
    int wo = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (wo < 0)
        die("open writeonly");
    write_all(wo, "written before the dump\n", 24, "write writeonly");
    if (unlink(p) != 0)
        die("unlink writeonly");

    p = in_dir(dir, "fifo");
    if (mkfifo(p, 0600) != 0)
        die("mkfifo");
    int rd = open(p, O_RDONLY | O_NONBLOCK);
    int wr = open(p, O_WRONLY);
    if (rd < 0 || wr < 0)
        die("open fifo");
    write_all(wr, "queued in the fifo", 18, "write fifo");
    if (unlink(p) != 0)
        die("unlink fifo");

    p = in_dir(dir, "fiforw");
    if (mkfifo(p, 0600) != 0)
        die("mkfifo rw");
    int rw = open(p, O_RDWR | O_NONBLOCK);
    if (rw < 0)
        die("open fifo rw");
    write_all(rw, "rw bytes", 8, "write fifo rw");
    if (unlink(p) != 0)
        die("unlink fiforw");

    steps();

    printf("writeonly still-write-only=%s\n", yes((fcntl(wo, F_GETFL) & O_ACCMODE) == O_WRONLY));
    write_all(wo, "written after\n", 14, "write writeonly after");
    char link[64], buf[128] = {0};
    snprintf(link, sizeof link, "/proc/self/fd/%d", wo);
    int again = open(link, O_RDONLY);
    ssize_t n = again < 0 ? -1 : read(again, buf, sizeof buf - 1);
    printf("writeonly contents=%zd %s", n, n > 0 ? buf : "\n");

    struct stat st;
    if (fstat(rd, &st) != 0)
        die("fstat fifo");
    char target[256] = {0};
    snprintf(link, sizeof link, "/proc/self/fd/%d", rd);
    ssize_t t = readlink(link, target, sizeof target - 1);
    printf("fifo is-fifo=%s named=%s\n", yes(S_ISFIFO(st.st_mode)),
           yes(t > 0 && strncmp(target, "pipe:", 5) != 0));
    memset(buf, 0, sizeof buf);
    n = read(rd, buf, sizeof buf - 1);
    printf("fifo queued=%s\n", n > 0 ? buf : "(none)");
    write_all(wr, "after", 5, "write fifo after");
    memset(buf, 0, sizeof buf);
    n = read(rd, buf, sizeof buf - 1);
    printf("fifo passes=%s\n", n > 0 ? buf : "(none)");
    n = read(rd, buf, sizeof buf - 1);
    printf("fifo empty-eagain=%s\n", yes(n < 0 && errno == EAGAIN));
    printf("fifo nonblock-kept=%s blocking-writer=%s\n", yes(fcntl(rd, F_GETFL) & O_NONBLOCK),
           yes(!(fcntl(wr, F_GETFL) & O_NONBLOCK)));

    memset(buf, 0, sizeof buf);
    n = read(rw, buf, sizeof buf - 1);
    printf("fifo-rw queued=%s\n", n > 0 ? buf : "(none)");
    write_all(rw, "again", 5, "write fifo rw after");
    memset(buf, 0, sizeof buf);
    n = read(rw, buf, sizeof buf - 1);
    printf("fifo-rw passes=%s mode=%s\n", n > 0 ? buf : "(none)",
           yes((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR));
    return 0;
}

/* ---- opath ------------------------------------------------------------- */

static int mode_opath(const char *dir)
{
    char d[4096], f[4096], l[4096], inner[4096];
    snprintf(d, sizeof d, "%s/d", dir);
    snprintf(f, sizeof f, "%s/f", dir);
    snprintf(l, sizeof l, "%s/l", dir);
    snprintf(inner, sizeof inner, "%s/d/inner", dir);
    if (mkdir(d, 0700) != 0)
        die("mkdir");
    int w = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write_all(w, "file", 4, "write f");
    close(w);
    w = open(inner, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write_all(w, "inner", 5, "write inner");
    close(w);
    if (symlink("f", l) != 0)
        die("symlink");
    int pf = open(f, O_PATH);
    int pd = open(d, O_PATH | O_DIRECTORY);
    int pl = open(l, O_PATH | O_NOFOLLOW);
    if (pf < 0 || pd < 0 || pl < 0)
        die("open O_PATH");
    struct stat sf, sd, sl, st;
    if (fstat(pf, &sf) || fstat(pd, &sd) || fstatat(pl, "", &sl, AT_EMPTY_PATH))
        die("fstat O_PATH");

    steps();

    int same = fstat(pf, &st) == 0 && st.st_ino == sf.st_ino && st.st_dev == sf.st_dev;
    printf("opath file same=%s is-o-path=%s read-refused=%s\n", yes(same),
           yes(fcntl(pf, F_GETFL) & O_PATH), yes(read(pf, &st, 1) < 0 && errno == EBADF));
    same = fstatat(pd, "", &st, AT_EMPTY_PATH) == 0 && st.st_ino == sd.st_ino && S_ISDIR(st.st_mode);
    char buf[16] = {0};
    int in = openat(pd, "inner", O_RDONLY);
    ssize_t n = in < 0 ? -1 : read(in, buf, sizeof buf - 1);
    printf("opath dir same=%s is-o-path=%s openat=%s\n", yes(same),
           yes(fcntl(pd, F_GETFL) & O_PATH), n > 0 ? buf : "(failed)");
    same = fstatat(pl, "", &st, AT_EMPTY_PATH) == 0 && st.st_ino == sl.st_ino && S_ISLNK(st.st_mode);
    memset(buf, 0, sizeof buf);
    n = readlinkat(pl, "", buf, sizeof buf - 1);
    printf("opath symlink same=%s readlinkat=%s\n", yes(same), n > 0 ? buf : "(failed)");
    return 0;
}

/* ---- procfs ------------------------------------------------------------ */

static int has_line(int fd, const char *prefix, long want)
{
    static char buf[1 << 16];
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, strlen(prefix)) == 0 && atol(l + strlen(prefix)) == want)
            return 1;
    return 0;
}

static int mode_procfs(void)
{
    char path[128];
    int status = open("/proc/self/status", O_RDONLY);
    char head[8] = {0};
    if (status < 0 || read(status, head, 6) != 6)
        die("status");
    snprintf(path, sizeof path, "/proc/%d/stat", (int)getpid());
    int statfd = open(path, O_RDONLY);
    int maps = open("/proc/self/maps", O_RDONLY);
    int fddir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)syscall(SYS_gettid));
    int comm = open(path, O_RDONLY);
    if (statfd < 0 || maps < 0 || fddir < 0 || comm < 0)
        die("open procfs");

    steps();

    char buf[64] = {0};
    printf("status rest-of-line=%s", read(status, buf, 64) > 0 ? strtok(buf, "\n") : "(none)");
    printf(" own=%s\n", yes(has_line(status, "Pid:\t", getpid())));
    lseek(statfd, 0, SEEK_SET);
    memset(buf, 0, sizeof buf);
    printf("stat own=%s\n", yes(read(statfd, buf, 63) > 0 && atol(buf) == getpid()));
    /* A mapping made after the restore shows in the maps opened before it. */
    void *fresh = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char want[64];
    snprintf(want, sizeof want, "%lx-%lx ", (unsigned long)fresh, (unsigned long)fresh + 3 * 4096);
    static char all[1 << 20];
    lseek(maps, 0, SEEK_SET);
    ssize_t n, got = 0;
    while ((n = read(maps, all + got, sizeof all - 1 - (size_t)got)) > 0)
        got += n;
    all[got] = 0;
    printf("maps live=%s\n", yes(strstr(all, want) != NULL));
    /* So does a descriptor opened after it, in the fd directory. */
    int extra = dup2(0, 777);
    lseek(fddir, 0, SEEK_SET);
    DIR *d = fdopendir(dup(fddir));
    int seen = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        seen |= extra >= 0 && atoi(e->d_name) == extra;
    printf("fd-dir live=%s\n", yes(seen));
    memset(buf, 0, sizeof buf);
    printf("comm=%s", read(comm, buf, 63) > 0 ? buf : "(none)\n");
    return 0;
}

static int mode_procother(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)getppid());
    int other = open(path, O_RDONLY);
    if (other < 0)
        die("open parent's status");
    printf("other fd=%d\n", other);
    steps();
    return 0;
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 2)
        fail("usage: cfileattrs MODE [DIR]");
    const char *mode = argv[1], *dir = argc > 2 ? argv[2] : ".";
    int rc;
    if (strcmp(mode, "attrs") == 0)
        rc = mode_attrs(dir);
    else if (strcmp(mode, "deleted") == 0)
        rc = mode_deleted(dir);
    else if (strcmp(mode, "opath") == 0)
        rc = mode_opath(dir);
    else if (strcmp(mode, "procfs") == 0)
        rc = mode_procfs();
    else if (strcmp(mode, "procother") == 0)
        rc = mode_procother();
    else
        fail("unknown mode");
    printf("done mode=%s\n", mode);
    return rc;
}
