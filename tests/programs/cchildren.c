/*
 * A process with one child, in the state the mode names, while it steps:
 *
 *  - "live": the child blocks reading a pipe until the parent closes its
 *    end, then exits 3.
 *  - "zombie": the child exits 7 at once; the parent waits until it has
 *    exited (waitid WNOWAIT, which leaves it a zombie) and reaps it only
 *    at the end.
 *  - "stopped": the child stops itself (SIGSTOP); the parent waits until
 *    it is stopped, and at the end continues it; it then exits 5.
 *  - "static PATH": the child runs PATH (cstatic, linked statically) with
 *    the pipe as its stdin; it exits 3 at end of file, as "live" does.
 *  - "blocked": as "live", but the child blocks SIGUSR2 with the raw
 *    rt_sigprocmask system call (which the library cannot see), so it
 *    never takes a dump signal.
 *  - "held": as "blocked" until the child gets SIGUSR1; it then unblocks
 *    SIGUSR2 (taking a dump signal that waited) and goes on as "live".
 *    A test holds a tree dump with it: the parent waits for its child to
 *    park for as long as the test likes.
 *  - "chain": as "pipe", through a grandchild: the child forwards each
 *    number through a second pipe to its own child, which prints the step
 *    line and exits 3 at end of file; the child then exits 4 if it did.
 *  - "pipe": the parent sends each step's number through the pipe and
 *    the child prints the step line (the parent prints none); at end of
 *    file the child exits 3. So the step lines come from the child, in
 *    order, and only what went through the pipe is printed. At step 20
 *    the parent opens /dev/null (its lowest free descriptor) and keeps it.
 *
 * The child is forked after "start" and in its state before "ready", so
 * the test finds it as soon as "ready" is out. At the end the
 * parent ends the child as its mode says and prints how it ended:
 * "child exited N", or "child gone: ERROR" when waitpid finds no child
 * (the parent was restored without it).
 *
 * Protocol: "start", "ready", "step N acc=..." per step, "child ...",
 * "done acc=...". MIGRATE_TEST_NOSLEEP drops the pacing.
 */
#include "testprog.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define STEPS 40
#define STEP_NS 30000000L

/* Reads step numbers from fd until end of file, printing each step's
 * line; exits 3 at end of file (1 on an error or a torn number). */
static void print_steps(int fd)
{
    uint64_t acc = 5;
    for (;;) {
        int s;
        size_t got = 0;
        while (got < sizeof s) {
            ssize_t n = read(fd, (char *)&s + got, sizeof s - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(n == 0 && got == 0 ? 3 : 1);
            got += (size_t)n;
        }
        acc = mix(acc ^ (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
    }
}

/* The child of "chain": forwards the numbers to a grandchild that prints
 * them; exits 4 once the grandchild exited 3. */
static void forward_steps(int fd)
{
    int q[2];
    if (pipe2(q, O_CLOEXEC) != 0)
        _exit(1);
    pid_t g = fork();
    if (g < 0)
        _exit(1);
    if (g == 0) {
        close(q[1]);
        close(fd);
        print_steps(q[0]);
    }
    close(q[0]);
    for (;;) {
        int s;
        ssize_t n = read(fd, &s, sizeof s);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            break;
        if (n != (ssize_t)sizeof s)
            _exit(1);
        write_all(q[1], &s, sizeof s, "forward");
    }
    close(q[1]);
    int status;
    while (waitpid(g, &status, 0) < 0)
        if (errno != EINTR)
            _exit(1);
    _exit(WIFEXITED(status) && WEXITSTATUS(status) == 3 ? 4 : 1);
}

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
    (void)sig;
    usr1 = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: cchildren live|zombie|stopped|static PATH");
    const char *mode = argv[1];
    int live = strcmp(mode, "live") == 0;
    int zombie = strcmp(mode, "zombie") == 0;
    int stopped = strcmp(mode, "stopped") == 0;
    int piped = strcmp(mode, "pipe") == 0;
    int held = strcmp(mode, "held") == 0;
    int blocked = strcmp(mode, "blocked") == 0 || held;
    int chain = strcmp(mode, "chain") == 0;
    piped |= chain;
    const char *exe = strcmp(mode, "static") == 0 && argc == 3 ? argv[2] : NULL;
    if (!live && !zombie && !stopped && !exe && !piped && !blocked && !chain)
        fail("unknown mode");
    tp_start();
    signal(SIGPIPE, SIG_IGN);
    int p[2], ex[2];
    if (pipe2(p, O_CLOEXEC) != 0 || pipe2(ex, O_CLOEXEC) != 0)
        die("pipe2");
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        close(p[1]);
        close(ex[0]);
        if (!exe && !blocked)
            close(ex[1]);
        if (zombie)
            _exit(7);
        if (stopped) {
            raise(SIGSTOP);
            _exit(5);
        }
        if (exe) {
            if (dup2(p[0], 0) != 0)
                _exit(1);
            execl(exe, exe, (char *)NULL);
            _exit(1);
        }
        if (blocked) {
            uint64_t set = 1ULL << (SIGUSR2 - 1);
            if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, sizeof set) != 0)
                _exit(1);
            if (held)
                signal(SIGUSR1, on_usr1);
            /* "ready" only once the signal is blocked. */
            close(ex[1]);
            while (held && !usr1)
                usleep(1000);
            if (held && syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &set, NULL, sizeof set) != 0)
                _exit(1);
        }
        if (chain)
            forward_steps(p[0]);
        if (piped)
            print_steps(p[0]);
        char b;
        while (read(p[0], &b, 1) != 0 && errno == EINTR)
            ;
        _exit(3);
    }
    close(p[0]);
    /* The exec closes the child's copy of ex[1]: "ready" comes only once
     * the child runs what it runs for good. */
    close(ex[1]);
    char e;
    while (read(ex[0], &e, 1) < 0 && errno == EINTR)
        ;
    close(ex[0]);
    siginfo_t si;
    if (zombie && waitid(P_PID, (id_t)c, &si, WEXITED | WNOWAIT) != 0)
        die("waitid WEXITED");
    if (stopped && waitid(P_PID, (id_t)c, &si, WSTOPPED | WNOWAIT) != 0)
        die("waitid WSTOPPED");
    printf("ready\n");
    uint64_t acc = 5;
    for (int s = 1; s <= STEPS; s++) {
        acc = mix(acc ^ (uint64_t)s);
        if (piped && s == 20 && open("/dev/null", O_RDONLY) < 0)
            die("open /dev/null");
        if (piped)
            write_all(p[1], &s, sizeof s, "write to the child");
        else
            printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(STEP_NS);
    }
    close(p[1]);
    if (stopped)
        kill(c, SIGCONT);
    int status;
    pid_t w;
    while ((w = waitpid(c, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        printf("child gone: %s\n", strerror(errno));
    else if (WIFEXITED(status))
        printf("child exited %d\n", WEXITSTATUS(status));
    else
        printf("child ended by signal %d\n", WTERMSIG(status));
    printf("done acc=%016" PRIx64 "\n", acc);
    return 0;
}
