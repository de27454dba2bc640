/*
 * Signals the kernel holds for a program (issue 12, signals group), one
 * mode per kind; the dump lands during the steps, and what the program
 * takes afterwards must be what an uninterrupted run takes.
 *
 * usage: csignals queued | csignals locks DIR | csignals midchld DIR
 *
 * queued: every queued signal blocked in both threads, queued before the
 * steps: for the process, SIGUSR1 (kill: SI_USER), SIGRTMIN+1 twice and
 * SIGRTMIN twice with sigqueue values; for the main thread, SIGRTMIN and
 * SIGRTMIN+3 twice (pthread_sigqueue); for the worker, SIGUSR1
 * (pthread_kill, which this kernel reports as SI_USER) and SIGRTMIN+2 twice. After the steps main
 * takes what it can (its own, then the process's), then the worker its
 * own, each with a zero-timeout sigtimedwait, one verdict line per signal
 * (number, code, value, whether the sender was this process), in the
 * kernel's order.
 *
 * locks: in DIR (files made here), a.txt flock'ed exclusively, b.txt
 * flock'ed shared, c.txt with POSIX locks (write on bytes 0-9, read on
 * 20-29, write from 40 to the end), d.txt with OFD locks (write on
 * 100-199, read on 300-399) through a second descriptor of the same
 * file. After the steps a child process (another lock owner) opens each
 * file anew and tries to take a write lock on each range, and one in
 * between; one verdict line per try ("held by parent", "held (OFD)",
 * "free").
 *
 * midchld: SIGCHLD blocked, a child that exits with status 7 as soon as
 * its parent holds an image being written in DIR (an O_TMPFILE, or a
 * "*.tmp" file: the dump is under way; run with MIGRATE_FAULT=slow-dump,
 * so the child has time to exit while the dump runs) or once the parent
 * is done with its steps (an uninterrupted run). After the steps the
 * program waits for SIGCHLD with sigtimedwait and prints one verdict line
 * with its code, whether si_pid is the child's, and its status.
 *
 * Protocol: "start", "step N ..." per step (20 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), then "main ..." and "worker ..." lines,
 * "done N" with the count of signals taken.
 */
#include "testprog.h"

#include <signal.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/wait.h>

#define STEPS 30

static sigset_t g_set;
static sem_t g_queued, g_take, g_taken;
static int g_count;

static const char *code_name(int code)
{
    switch (code) {
    case SI_USER:
        return "user";
    case SI_QUEUE:
        return "queue";
    case SI_TKILL:
        return "tkill";
    case SI_TIMER:
        return "timer";
    default:
        return "other";
    }
}

static void sig_name(int sig, char *out, size_t n)
{
    if (sig >= SIGRTMIN)
        snprintf(out, n, "RTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(out, n, "%d", sig);
}

/* Takes every signal of g_set this thread can, printing one line each. */
static void take_all(const char *who)
{
    struct timespec zero = {0, 0};
    for (;;) {
        siginfo_t si;
        int sig = sigtimedwait(&g_set, &si, &zero);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            die("sigtimedwait");
        }
        char name[32];
        sig_name(sig, name, sizeof name);
        printf("%s sig=%s code=%s value=%d self=%s\n", who, name, code_name(si.si_code),
               si.si_code == SI_QUEUE ? si.si_value.sival_int : -1,
               si.si_pid == getpid() ? "yes" : "no");
        g_count++;
    }
}

static void queue_to(pthread_t t, int sig, int value)
{
    union sigval v = {.sival_int = value};
    int rc = pthread_sigqueue(t, sig, v);
    if (rc != 0)
        die_rc("pthread_sigqueue", rc);
}

static void queue_process(int sig, int value)
{
    union sigval v = {.sival_int = value};
    if (sigqueue(getpid(), sig, v) != 0)
        die("sigqueue");
}

static void *worker(void *arg)
{
    (void)arg;
    int rc = pthread_kill(pthread_self(), SIGUSR1);
    if (rc != 0)
        die_rc("pthread_kill", rc);
    queue_to(pthread_self(), SIGRTMIN + 2, 201);
    queue_to(pthread_self(), SIGRTMIN + 2, 202);
    sem_post(&g_queued);
    while (sem_wait(&g_take) != 0)
        ;
    take_all("worker");
    sem_post(&g_taken);
    return NULL;
}

static void queued(void)
{
    sigemptyset(&g_set);
    sigaddset(&g_set, SIGUSR1);
    for (int k = 0; k <= 3; k++)
        sigaddset(&g_set, SIGRTMIN + k);
    if (sigprocmask(SIG_BLOCK, &g_set, NULL) != 0)
        die("sigprocmask");
    sem_init(&g_queued, 0, 0);
    sem_init(&g_take, 0, 0);
    sem_init(&g_taken, 0, 0);
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker, NULL);
    if (rc != 0)
        die_rc("pthread_create", rc);
    while (sem_wait(&g_queued) != 0)
        ;
    if (kill(getpid(), SIGUSR1) != 0)
        die("kill");
    queue_process(SIGRTMIN + 1, 21);
    queue_process(SIGRTMIN, 11);
    queue_process(SIGRTMIN, 12);
    queue_process(SIGRTMIN + 1, 22);
    queue_to(pthread_self(), SIGRTMIN + 3, 31);
    queue_to(pthread_self(), SIGRTMIN, 13);
    queue_to(pthread_self(), SIGRTMIN + 3, 32);
    uint64_t acc = 1;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    take_all("main");
    sem_post(&g_take);
    while (sem_wait(&g_taken) != 0)
        ;
    pthread_join(t, NULL);
    printf("done %d\n", g_count);
}

static int open_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
        die(path);
    return fd;
}

static void set_lock(int fd, int cmd, short type, off_t start, off_t len, const char *what)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (fcntl(fd, cmd, &fl) != 0)
        die(what);
}

/* In the child: who holds a write lock's way on [start, start+len). */
static void probe(const char *dir, const char *name, int ofd, off_t start, off_t len)
{
    int fd = open_file(dir, name);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (fcntl(fd, ofd ? F_OFD_GETLK : F_GETLK, &fl) != 0)
        die("F_GETLK");
    const char *verdict;
    if (fl.l_type == F_UNLCK)
        verdict = "free";
    else if (fl.l_pid == getppid())
        verdict = fl.l_type == F_WRLCK ? "write held by parent" : "read held by parent";
    else if (fl.l_pid == -1)
        verdict = fl.l_type == F_WRLCK ? "write held (OFD)" : "read held (OFD)";
    else
        verdict = "held by someone else";
    printf("%s %s %ld+%ld: %s\n", name, ofd ? "ofd" : "posix", (long)start, (long)len, verdict);
    close(fd);
}

static void probe_flock(const char *dir, const char *name)
{
    int fd = open_file(dir, name);
    int ex = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 1 : errno == EWOULDBLOCK ? 0 : -1;
    if (ex > 0)
        flock(fd, LOCK_UN);
    int sh = flock(fd, LOCK_SH | LOCK_NB) == 0 ? 1 : errno == EWOULDBLOCK ? 0 : -1;
    printf("%s flock: exclusive %s, shared %s\n", name, ex > 0 ? "free" : ex == 0 ? "held" : "error",
           sh > 0 ? "free" : sh == 0 ? "held" : "error");
    close(fd);
}

static void locks(const char *dir)
{
    int a = open_file(dir, "a.txt");
    int b = open_file(dir, "b.txt");
    int c = open_file(dir, "c.txt");
    int d = open_file(dir, "d.txt");
    int d2 = dup(d);
    if (d2 < 0)
        die("dup");
    if (flock(a, LOCK_EX | LOCK_NB) != 0)
        die("flock a");
    if (flock(b, LOCK_SH | LOCK_NB) != 0)
        die("flock b");
    set_lock(c, F_SETLK, F_WRLCK, 0, 10, "posix c 0");
    set_lock(c, F_SETLK, F_RDLCK, 20, 10, "posix c 20");
    set_lock(c, F_SETLK, F_WRLCK, 40, 0, "posix c 40");
    set_lock(d2, F_OFD_SETLK, F_WRLCK, 100, 100, "ofd d 100");
    set_lock(d2, F_OFD_SETLK, F_RDLCK, 300, 100, "ofd d 300");
    uint64_t acc = 3;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        probe_flock(dir, "a.txt");
        probe_flock(dir, "b.txt");
        probe(dir, "c.txt", 0, 0, 10);
        probe(dir, "c.txt", 0, 10, 10);
        probe(dir, "c.txt", 0, 20, 10);
        probe(dir, "c.txt", 0, 30, 10);
        probe(dir, "c.txt", 0, 1000000, 1);
        probe(dir, "d.txt", 1, 100, 100);
        probe(dir, "d.txt", 1, 200, 100);
        probe(dir, "d.txt", 1, 300, 100);
        probe(dir, "d.txt", 1, 400, 0);
        fflush(stdout);
        _exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("child");
    printf("done locks\n");
}

/* Whether process `pid` has an image being written in `dir` open. */
static int writes_image(pid_t pid, const char *dir)
{
    char fds[64];
    snprintf(fds, sizeof fds, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(fds);
    if (!d)
        return 0;
    size_t n = strlen(dir);
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char link[4096 + 64], target[4096];
        snprintf(link, sizeof link, "%s/%s", fds, e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = 0;
        if (strncmp(target, dir, n) != 0 || target[n] != '/')
            continue;
        const char *name = target + n + 1;
        size_t l = strlen(name);
        found = name[0] == '#' || (l > 4 && strcmp(name + l - 4, ".tmp") == 0);
    }
    closedir(d);
    return found;
}

static void midchld(const char *dir)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        die("sigprocmask");
    int done[2];
    if (pipe(done) != 0)
        die("pipe");
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        close(done[1]);
        fcntl(done[0], F_SETFL, O_NONBLOCK);
        for (;;) {
            char c;
            if (read(done[0], &c, 1) == 0 || writes_image(parent, dir))
                _exit(7);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    close(done[0]);
    uint64_t acc = 1;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc + (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(20000000L);
    }
    close(done[1]);
    siginfo_t si;
    while (sigwaitinfo(&set, &si) < 0)
        if (errno != EINTR)
            die("sigwaitinfo");
    printf("chld code=%s child=%s status=%d\n",
           si.si_code == CLD_EXITED ? "exited" : code_name(si.si_code),
           si.si_pid == child ? "yes" : "no", si.si_status);
    printf("done midchld\n");
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 2)
        fail("usage: csignals MODE");
    if (strcmp(argv[1], "queued") == 0)
        queued();
    else if (strcmp(argv[1], "locks") == 0 && argc == 3)
        locks(argv[2]);
    else if (strcmp(argv[1], "midchld") == 0 && argc == 3)
        midchld(argv[2]);
    else
        fail("unknown mode");
    return 0;
}
