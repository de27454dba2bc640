/*
 * A parent that holds both ends of a pipe and of a socket pair that its
 * child uses too (issue 9: the pipes of a multiprocessing.Pool, the
 * channels of nginx's master): made before the fork, never closed by the
 * parent. With "both" the child keeps both ends too; with "one" it closes
 * the ends it does not use.
 *
 * The parent keeps AHEAD numbered requests queued in the pipe; each step
 * it reads the child's answer to the oldest from the socket pair (the
 * child may have answered the next ones already: they wait there), prints
 * it and queues one more. The child reads a request, checks its number,
 * paces, and answers. So at a dump bytes wait in the pipe (in the read
 * ends of both processes with "both") and usually in the socket pair: a
 * restore that makes either twice, or loses or doubles its bytes, breaks
 * the numbering or leaves one side waiting (5 s: an error line). The pipe
 * is 128 KiB, not the default 64 (the restore check compares it). The
 * child also counts its answers in an eventfd made before the fork, which
 * the parent reads once the child has exited: one counter, not two.
 *
 * Protocol: "start", "ready", "step N answer=A" per step, "child exited
 * N", "answers counted C", "done S".
 */
#include "testprog.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define STEPS 40
#define STEP_NS 30000000L
#define AHEAD 3

/* Reads n bytes from fd, waiting 5 s at most for each part. */
static void read_all(int fd, void *p, size_t n, const char *who)
{
    char *c = p;
    while (n > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int k = poll(&pfd, 1, 5000);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0) {
            printf("error %s: nothing to read within 5 s\n", who);
            exit(1);
        }
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            printf("error %s: read: %s\n", who, r == 0 ? "end of file" : strerror(errno));
            exit(1);
        }
        c += r;
        n -= (size_t)r;
    }
}

static uint64_t answer(uint64_t n)
{
    return mix(n) % 1000003;
}

int main(int argc, char **argv)
{
    tp_start();
    int both = argc > 1 && strcmp(argv[1], "both") == 0;
    int p[2], s[2];
    if (pipe(p) != 0)
        die("pipe");
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0)
        die("socketpair");
    int counter = eventfd(0, 0);
    if (counter < 0)
        die("eventfd");
    /* Not the default size: the tree's pipe is made with this one. */
    if (fcntl(p[1], F_SETPIPE_SZ, 1 << 17) < 0)
        die("F_SETPIPE_SZ");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        if (!both) {
            close(p[1]);
            close(s[0]);
        }
        for (uint64_t want = 1; want <= STEPS + AHEAD - 1; want++) {
            uint64_t n;
            read_all(p[0], &n, sizeof n, "child");
            if (n != want) {
                printf("error child: request %" PRIu64 ", expected %" PRIu64 "\n", n, want);
                _exit(1);
            }
            pace(STEP_NS);
            uint64_t a[2] = {n, answer(n)};
            write_all(s[1], a, sizeof a, "child answer");
            uint64_t one = 1;
            write_all(counter, &one, sizeof one, "child count");
        }
        _exit(7);
    }
    /* The parent keeps all four ends. */
    uint64_t next = 1, sum = 0;
    for (; next <= AHEAD; next++)
        write_all(p[1], &next, sizeof next, "request");
    printf("ready\n");
    for (uint64_t step = 1; step <= STEPS; step++) {
        uint64_t a[2];
        read_all(s[0], a, sizeof a, "parent");
        if (a[0] != step) {
            printf("error parent: answer to %" PRIu64 ", expected %" PRIu64 "\n", a[0], step);
            exit(1);
        }
        sum += a[1];
        printf("step %" PRIu64 " answer=%" PRIu64 "\n", step, a[1]);
        if (next < STEPS + AHEAD) {
            write_all(p[1], &next, sizeof next, "request");
            next++;
        }
    }
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    uint64_t counted;
    read_all(counter, &counted, sizeof counted, "parent count");
    printf("answers counted %" PRIu64 "\n", counted);
    printf("done %" PRIu64 "\n", sum);
    return 0;
}
