/*
 * inotify instances (issue 12): their watches, numbers, masks and flags
 * after a restore. The dump lands during the steps; what the program sees
 * afterwards must be what an uninterrupted run sees.
 *
 * usage: cinotify watches DIR | cinotify moved DIR | cinotify pending DIR
 *
 * In DIR (made here): instance A (IN_NONBLOCK | IN_CLOEXEC) watches
 * directory sub (IN_CREATE | IN_DELETE, wd 1), b.txt (IN_MODIFY, wd 2,
 * removed before the steps: a gap), c.txt (IN_MODIFY | IN_CLOSE_WRITE,
 * wd 3) and, through the relative path "DIR/lnk" with IN_DONT_FOLLOW, the
 * symlink lnk itself (IN_ATTRIB, wd 4); instance B (blocking, no flags)
 * watches DIR (IN_CREATE, wd 1). After the steps, one verdict line per
 * check: each instance's flags, that A is empty (EAGAIN), the events
 * that creating sub/new, writing c.txt, touching lnk and creating DIR/x
 * give (wd, mask, name), and the number a new watch gets.
 *
 * moved: one instance watches DIR/f.txt, which is then renamed
 * to g.txt: the path the watch was added by names nothing, so a dump
 * must fail naming the instance while the program goes on.
 *
 * pending: one instance watches DIR for IN_CREATE, and DIR/p is made
 * before the steps: its event waits, unread, through the dump (the dump
 * says, at info, that it is not kept).
 *
 * Protocol: "start", "step N ..." per step (20 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), verdict lines, "done inotify".
 */
#include "testprog.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define STEPS 30

static char g_path[4096];

static const char *at(const char *dir, const char *name)
{
    snprintf(g_path, sizeof g_path, "%s/%s", dir, name);
    return g_path;
}

static int add(int in, const char *path, uint32_t mask)
{
    int wd = inotify_add_watch(in, path, mask);
    if (wd < 0)
        die("inotify_add_watch");
    return wd;
}

static void touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open");
    close(fd);
}

static void flags(const char *name, int in)
{
    int fl = fcntl(in, F_GETFL);
    int fd = fcntl(in, F_GETFD);
    printf("%s flags: nonblock=%d cloexec=%d\n", name, !!(fl & O_NONBLOCK),
           !!(fd & FD_CLOEXEC));
}

/* Every event queued on `in` now, one line each. */
static void events(const char *name, int in)
{
    char buf[4096] __attribute__((aligned(8)));
    int fl = fcntl(in, F_GETFL);
    fcntl(in, F_SETFL, fl | O_NONBLOCK);
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) {
            printf("%s read: %s\n", name, errno == EAGAIN ? "EAGAIN" : "error");
            break;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            printf("%s event: wd=%d mask=%#x name=%s\n", name, e->wd, e->mask,
                   e->len ? e->name : "-");
            p += sizeof *e + e->len;
        }
    }
    fcntl(in, F_SETFL, fl);
}

static void watches(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("mkdir");
    if (mkdir(at(dir, "sub"), 0755) != 0)
        die("mkdir sub");
    touch(at(dir, "b.txt"));
    touch(at(dir, "c.txt"));
    if (symlink("c.txt", at(dir, "lnk")) != 0)
        die("symlink");
    int a = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int b = inotify_init1(0);
    if (a < 0 || b < 0)
        die("inotify_init1");
    int w1 = add(a, at(dir, "sub"), IN_CREATE | IN_DELETE);
    int w2 = add(a, at(dir, "b.txt"), IN_MODIFY);
    int w3 = add(a, at(dir, "c.txt"), IN_MODIFY | IN_CLOSE_WRITE);
    if (inotify_rm_watch(a, w2) != 0)
        die("inotify_rm_watch");
    /* A relative path, not followed. */
    if (chdir(dir) != 0)
        die("chdir");
    int w4 = add(a, "lnk", IN_ATTRIB | IN_DONT_FOLLOW);
    if (chdir("/") != 0)
        die("chdir /");
    int v1 = add(b, dir, IN_CREATE);
    printf("watches: %d %d %d %d, %d\n", w1, w2, w3, w4, v1);
    events("a", a); /* the IN_IGNORED of wd 2 */
    uint64_t acc = 5;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    flags("a", a);
    flags("b", b);
    events("a", a);
    touch(at(dir, "sub/new"));
    int c = open(at(dir, "c.txt"), O_WRONLY);
    if (c < 0)
        die("open c.txt");
    write_all(c, "x", 1, "write c.txt");
    close(c);
    struct timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    if (utimensat(AT_FDCWD, at(dir, "lnk"), times, AT_SYMLINK_NOFOLLOW) != 0)
        die("utimensat");
    touch(at(dir, "x"));
    events("a", a);
    events("b", b);
    printf("new watch: %d\n", add(a, at(dir, "b.txt"), IN_MODIFY));
    printf("done inotify\n");
}

static void moved(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("mkdir");
    touch(at(dir, "f.txt"));
    int a = inotify_init1(IN_CLOEXEC);
    if (a < 0)
        die("inotify_init1");
    printf("watch: %d\n", add(a, at(dir, "f.txt"), IN_MODIFY));
    char to[4096];
    snprintf(to, sizeof to, "%s/g.txt", dir);
    if (rename(at(dir, "f.txt"), to) != 0)
        die("rename");
    uint64_t acc = 7;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    printf("done moved\n");
}

static void pending(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("mkdir");
    int a = inotify_init1(IN_CLOEXEC);
    if (a < 0)
        die("inotify_init1");
    printf("watch: %d\n", add(a, dir, IN_CREATE));
    touch(at(dir, "p"));
    uint64_t acc = 9;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    printf("done pending\n");
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc == 3 && strcmp(argv[1], "watches") == 0)
        watches(argv[2]);
    else if (argc == 3 && strcmp(argv[1], "moved") == 0)
        moved(argv[2]);
    else if (argc == 3 && strcmp(argv[1], "pending") == 0)
        pending(argv[2]);
    else
        fail("usage: cinotify watches|moved|pending DIR");
    return 0;
}
