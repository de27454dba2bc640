/*
 * Test program for low-pause snapshot dumps (tests/tests/snapshot.rs).
 *
 *   csnap sweep|shared MIB BALLAST STEPS [IMAGE]
 *     BALLAST MiB of private memory filled once (every page different, so
 *     that a dump has that much to write), and MIB MiB of 64-bit counters
 *     (private, or MAP_SHARED anonymous for "shared"), swept once per
 *     step without pause: every counter must
 *     hold the previous step's number before it takes this one's, so
 *     memory of two instants (a page written later than the rest) fails
 *     the program, at the latest one sweep after a restore. Prints
 *     "step N" after each sweep, "done N" at the end. With IMAGE: once a
 *     file is at that path, says on stderr (not compared) at which step
 *     it first saw it: "image seen at step N" (or "image not seen by the
 *     end": a snapshot's writer may finish after the program).
 *   csnap wipe MIB BALLAST STEPS
 *     As sweep, the ballast marked MADV_WIPEONFORK (zero in a clone).
 *   csnap wait STEPS
 *     A thread calls waitpid(-1, ..., 0) in a loop and counts every
 *     answer other than ECHILD; SIGCHLD is counted by a handler; each
 *     step lists every thread's /proc/self/task/TID/children. Prints "step N" each 2 ms
 *     step and "done sigchld=A waited=B children=C" at the end: a dump's
 *     helper process that the program could see makes one non-zero.
 */
#include "testprog.h"

#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

static volatile sig_atomic_t g_sigchld;
static volatile long g_waited;

static void on_chld(int sig)
{
    (void)sig;
    g_sigchld++;
}

static void *waiter(void *arg)
{
    (void)arg;
    for (;;) {
        int st;
        pid_t r = waitpid(-1, &st, 0);
        if (r >= 0 || errno != ECHILD)
            if (!(r < 0 && errno == EINTR))
                g_waited++;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Children listed in /proc/self/task/N/children, all threads. */
static long count_children(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        die("opendir /proc/self/task");
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[320], buf[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t k = read(fd, buf, sizeof buf);
        close(fd);
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] == ' ')
                n++;
    }
    closedir(d);
    return n;
}

static int run_wait(long steps)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    start_thread(waiter, NULL);
    long children = 0;
    for (long step = 1; step <= steps; step++) {
        children += count_children();
        pace(2000000L);
        printf("step %ld\n", step);
    }
    printf("done sigchld=%ld waited=%ld children=%ld\n", (long)g_sigchld, g_waited, children);
    return 0;
}

static int run_sweep(int shared, int wipe, long mib, long ballast, long steps, const char *image)
{
    size_t nb = (size_t)ballast << 17;
    uint64_t *b = nb ? mmap(NULL, nb * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                     : NULL;
    if (b == MAP_FAILED)
        die("mmap ballast");
    for (size_t i = 0; i < nb; i++)
        b[i] = mix(i + 1);
    if (wipe && madvise(b, nb * 8, MADV_WIPEONFORK) != 0)
        die("madvise");
    size_t n = (size_t)mib << 17;
    int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
    uint64_t *a = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (a == MAP_FAILED)
        die("mmap");
    int seen = 0;
    for (long step = 1; step <= steps; step++) {
        uint64_t prev = (uint64_t)step - 1, now = (uint64_t)step;
        for (size_t i = 0; i < n; i++) {
            if (a[i] != prev) {
                printf("error counter %zu holds %" PRIu64 " in step %ld\n", i, a[i], step);
                return 1;
            }
            a[i] = now;
        }
        printf("step %ld\n", step);
        struct stat st;
        if (image && !seen && stat(image, &st) == 0) {
            seen = 1;
            fprintf(stderr, "image seen at step %ld\n", step);
        }
    }
    if (image && !seen)
        fprintf(stderr, "image not seen by the end\n");
    printf("done %ld\n", steps);
    return 0;
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc >= 3 && !strcmp(argv[1], "wait"))
        return run_wait(atol(argv[2]));
    int shared = argc >= 2 && !strcmp(argv[1], "shared");
    int wipe = argc >= 2 && !strcmp(argv[1], "wipe");
    if (argc >= 5 && (!strcmp(argv[1], "sweep") || shared || wipe))
        return run_sweep(shared, wipe, atol(argv[2]), atol(argv[3]), atol(argv[4]),
                         argc >= 6 ? argv[5] : NULL);
    fprintf(stderr, "usage: csnap sweep|shared|wipe MIB BALLAST STEPS [IMAGE] | wait STEPS\n");
    return 2;
}
