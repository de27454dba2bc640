/*
 * A thread forks short-lived children in a loop while dumps are taken:
 * a child forked while its parent was dumping inherits the parent's memory,
 * dump state included, and must still be able to take a dump of its own
 * (and otherwise just exit).
 *
 *  - Main prints the steps (30 ms apart).
 *  - The "forker" thread forks children back to back, reaping the ones that
 *    have exited (WNOHANG). Each child waits for its verdict on a pipe:
 *    a child whose fork() blocked the forker (a dump parked it then, or it
 *    waited for the dump's mmap: the child may have been forked while the
 *    dump was starting) is told to live on: it names itself "waiter"
 *    and sleeps WAITER_LIFE_NS; every SLEEPER_EVERY-th child names itself
 *    "sleeper" and sleeps SLEEPER_LIFE_NS; the others _exit at once. A
 *    signal (say, a dump's) cuts a sleep short; every child _exits 0 and
 *    prints nothing. The library's handler and settings are the parent's,
 *    so a dump signal sent to a child makes it write an image of itself.
 *    A restore brings back no children: a verdict pipe open at the dump
 *    then has no reader (SIGPIPE is ignored, EPIPE is fine).
 *  - After the last step, main stops the forker, which waits for its
 *    remaining children; "done" counts those that did not exit with status
 *    0 (children of the process before a restore are not its children
 *    afterwards: waitpid no longer sees them).
 *
 * Protocol: "start", "step N ..." per step, "done bad-children=0 ...".
 * Every line is deterministic (the number of children is not printed).
 * MIGRATE_TEST_NOSLEEP drops the sleeps of main and the children.
 */
#include "testprog.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define STEPS 100
#define STEP_NS 30000000L
#define WAITER_LIFE_NS 500000000L
#define SLEEPER_EVERY 100
#define SLEEPER_LIFE_NS 300000000L
#define SPREAD_PAGES 600

static atomic_int g_stop;
static int g_bad;

static void reap(int flags)
{
    int status;
    pid_t c;
    while ((c = waitpid(-1, &status, flags)) > 0) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            g_bad++;
    }
    if (c < 0 && errno != ECHILD && errno != EINTR)
        die("waitpid");
}

/* Times the calling thread blocked (a dump parks it on a futex). */
static long voluntary_switches(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        die("getrusage");
    return ru.ru_nvcsw;
}

/* The child's side: wait for the verdict, live on as told, exit 0. */
static void child(int verdict_fd)
{
    char v = 'q';
    while (read(verdict_fd, &v, 1) < 0 && errno == EINTR)
        ;
    long life = 0;
    if (v == 'w') {
        pthread_setname_np(pthread_self(), "waiter");
        life = WAITER_LIFE_NS;
    } else if (v == 's') {
        pthread_setname_np(pthread_self(), "sleeper");
        life = SLEEPER_LIFE_NS;
    }
    if (life > 0 && !g_nosleep) {
        struct timespec ts = {life / 1000000000L, life % 1000000000L};
        nanosleep(&ts, NULL);
    }
    _exit(0);
}

static void *forker(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "forker");
    unsigned long n = 0;
    while (!atomic_load(&g_stop)) {
        int vp[2];
        if (pipe2(vp, O_CLOEXEC) != 0)
            die("pipe2");
        long before = voluntary_switches();
        pid_t c = fork();
        long blocked = voluntary_switches() - before;
        if (c == 0) {
            close(vp[1]);
            child(vp[0]);
        }
        close(vp[0]);
        if (c < 0 && errno == EAGAIN) {
            close(vp[1]);
            pace(10000000L);
            continue;
        }
        if (c < 0)
            die("fork");
        char v = blocked > 0 ? 'w' : ++n % SLEEPER_EVERY == 0 ? 's' : 'q';
        /* EPIPE when a restore came in between: the child (the pipe's
         * reader) is not there any more. */
        while (write(vp[1], &v, 1) < 0 && errno == EINTR)
            ;
        close(vp[1]);
        reap(WNOHANG);
    }
    reap(0);
    return NULL;
}

int main(void)
{
    tp_start();
    signal(SIGPIPE, SIG_IGN);
    /* Many small mappings below the libraries make fork() spend a while
     * copying them before it copies the library's state: a dump starting
     * while the forker is in fork() then often publishes that state before
     * the child's copy of it is taken. Never touched: they cost the images
     * nothing but a record each. */
    char *spread = mmap(NULL, SPREAD_PAGES * 4096L, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (spread == MAP_FAILED)
        die("mmap");
    for (long i = 0; i < SPREAD_PAGES; i += 2)
        if (mprotect(spread + i * 4096, 4096, PROT_READ) != 0)
            die("mprotect");
    pthread_t t;
    if (pthread_create(&t, NULL, forker, NULL) != 0)
        fail("pthread_create");
    uint64_t acc = 11;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc ^ (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(STEP_NS);
    }
    atomic_store(&g_stop, 1);
    if (pthread_join(t, NULL) != 0)
        fail("pthread_join");
    printf("done bad-children=%d acc=%016" PRIx64 "\n", g_bad, acc);
    return 0;
}
