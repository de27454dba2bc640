/*
 * Process trees for the tree image tests (issue 9), by mode:
 *
 *  - "groups": two children, each blocked reading its own pipe from the
 *    parent: A leads a process group of its own (setpgid(0, 0)), B a
 *    session of its own (setsid()). At the end the parent closes A's pipe
 *    and waits for it, then B's; each child, at end of file, checks with
 *    getpgid and getsid that it still is what it made itself (and A that
 *    it is still in its parent's session), prints what it found, and
 *    exits 3.
 *  - "watch": one child, blocked reading a pipe, named "ctree-child"
 *    (PR_SET_NAME), with SIGUSR1 handled and many small mappings (its
 *    restore takes a while); before every step the parent sends it
 *    SIGUSR1 and reads its name in /proc/PID/comm. At the end the parent
 *    says whether the name was always the child's own: a parent that
 *    runs before its child is restored sees the relaunched program's.
 *
 * Protocol: "start", "ready", "step N acc=..." per step (the parent),
 * then each child's line, "child X exited N", "done acc=...".
 * MIGRATE_TEST_NOSLEEP drops the pacing.
 */
#include "testprog.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define STEPS 40
#define STEP_NS 30000000L
#define MAPPINGS 30000

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
    (void)sig;
    usr1++;
}

/* Waits for end of file on fd. */
static void wait_eof(int fd)
{
    char b;
    ssize_t n;
    while ((n = read(fd, &b, 1)) != 0)
        if (n < 0 && errno != EINTR)
            _exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: ctree groups|watch");
    int groups = strcmp(argv[1], "groups") == 0;
    int signal_mode = strcmp(argv[1], "watch") == 0;
    if (!groups && !signal_mode)
        fail("unknown mode");
    tp_start();
    signal(SIGPIPE, SIG_IGN);
    const char *modes = groups ? "AB" : "S";
    int n = (int)strlen(modes);
    pid_t pids[2];
    int to[2];
    for (int i = 0; i < n; i++) {
        int ex[2];
        if (pipe2(ex, O_CLOEXEC) != 0)
            die("pipe2");
        to[i] = -1;
        /* The child closes its end of ex once it is set up. */
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            die("pipe2");
        pid_t c = fork();
        if (c < 0)
            die("fork");
        if (c == 0) {
            close(p[1]);
            close(ex[0]);
            for (int j = 0; j < i; j++)
                close(to[j]);
            int mode = modes[i];
            if (mode == 'A' && setpgid(0, 0) != 0)
                _exit(1);
            if (mode == 'B' && setsid() < 0)
                _exit(1);
            if (mode == 'S') {
                struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
                sigaction(SIGUSR1, &sa, NULL);
                if (prctl(PR_SET_NAME, "ctree-child") != 0)
                    _exit(1);
                for (int k = 0; k < MAPPINGS; k++) {
                    int prot = PROT_READ | (k % 2 ? PROT_WRITE : 0);
                    char *m = mmap(NULL, 4096, prot,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                    if (m == MAP_FAILED)
                        _exit(1);
                }
            }
            close(ex[1]);
            wait_eof(p[0]);
            pid_t me = getpid();
            if (mode == 'A')
                printf("child A: leads its group %s, in its parent's session %s\n",
                       getpgid(0) == me ? "yes" : "no",
                       getsid(0) == getsid(getppid()) ? "yes" : "no");
            if (mode == 'B')
                printf("child B: leads its session %s, leads its group %s\n",
                       getsid(0) == me ? "yes" : "no",
                       getpgid(0) == me ? "yes" : "no");
            if (mode == 'S')
                printf("child S: signalled %s\n", usr1 > 0 ? "yes" : "no");
            _exit(3);
        }
        close(p[0]);
        close(ex[1]);
        char e;
        while (read(ex[0], &e, 1) < 0 && errno == EINTR)
            ;
        close(ex[0]);
        pids[i] = c;
        to[i] = p[1];
    }
    printf("ready\n");
    uint64_t acc = 5;
    int wrong_name = 0;
    char comm[64];
    snprintf(comm, sizeof comm, "/proc/%d/comm", (int)pids[0]);
    for (int s = 1; s <= STEPS; s++) {
        if (signal_mode && kill(pids[0], SIGUSR1) != 0)
            die("kill");
        if (signal_mode) {
            char name[32] = {0};
            int fd = open(comm, O_RDONLY | O_CLOEXEC);
            if (fd < 0 || read(fd, name, sizeof name - 1) < 0)
                die("read the child's name");
            close(fd);
            wrong_name += strcmp(name, "ctree-child\n") != 0;
        }
        acc = mix(acc ^ (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(STEP_NS);
    }
    for (int i = 0; i < n; i++) {
        close(to[i]);
        int status;
        pid_t w;
        while ((w = waitpid(pids[i], &status, 0)) < 0 && errno == EINTR)
            ;
        if (w < 0)
            printf("child %c gone: %s\n", modes[i], strerror(errno));
        else if (WIFEXITED(status))
            printf("child %c exited %d\n", modes[i], WEXITSTATUS(status));
        else
            printf("child %c ended by signal %d\n", modes[i], WTERMSIG(status));
    }
    if (signal_mode)
        printf("the child's name was always its own: %s\n", wrong_name ? "no" : "yes");
    printf("done acc=%016" PRIx64 "\n", acc);
    return 0;
}
