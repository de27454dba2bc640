/*
 * A parent whose child runs another program (issue 9): the child execs
 * cexecee (argv[1]) with its stdin a pipe from the parent and its fd 3 a
 * pipe back. Every step the parent sends the step number, the child
 * prints its own line and answers with its accumulator, and the parent
 * prints its line with both: the output's order does not depend on
 * scheduling. At the end the parent closes the pipe, waits for the child
 * and prints its exit status.
 *
 * Protocol: "start", "ready" (the child has answered once: its library
 * is loaded), then per step "exec child step N acc=..." (the child) and
 * "step N acc=... child=..." (the parent), "child exited N", "done acc=...".
 * MIGRATE_TEST_NOSLEEP drops the pacing.
 */
#include "testprog.h"

#include <signal.h>
#include <sys/wait.h>

#define STEPS 40
#define STEP_NS 30000000L

/* Reads exactly n bytes from fd, or exits. */
static void read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read from the child");
        p += r;
        n -= (size_t)r;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: cexec PATH-OF-CEXECEE");
    tp_start();
    signal(SIGPIPE, SIG_IGN);
    int to[2], from[2];
    if (pipe(to) != 0 || pipe(from) != 0)
        die("pipe");
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        int w = fcntl(from[1], F_DUPFD, 10);
        if (w < 0 || dup2(to[0], 0) < 0)
            die("dup");
        close(to[0]);
        close(to[1]);
        close(from[0]);
        close(from[1]);
        if (dup2(w, 3) < 0)
            die("dup2");
        close(w);
        char *args[] = {argv[1], NULL};
        execv(argv[1], args);
        die("execv");
    }
    close(to[0]);
    close(from[1]);
    uint64_t theirs;
    read_all(from[0], &theirs, sizeof theirs);
    printf("ready\n");
    uint64_t acc = 1;
    for (uint64_t i = 1; i <= STEPS; i++) {
        pace(STEP_NS);
        acc = mix(acc + i);
        if (write(to[1], &i, sizeof i) != sizeof i)
            die("write to the child");
        read_all(from[0], &theirs, sizeof theirs);
        printf("step %" PRIu64 " acc=%016" PRIx64 " child=%016" PRIx64 "\n", i, acc, theirs);
    }
    close(to[1]);
    int status;
    while (waitpid(c, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    printf("done acc=%016" PRIx64 "\n", acc);
    return 0;
}
