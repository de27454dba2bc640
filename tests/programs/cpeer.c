/*
 * Talks to a peer outside the process, then idles watching for the peer to
 * go away.
 *
 * usage: cpeer tcp PORT   connects to 127.0.0.1:PORT, sends "hello\n",
 *                         reads a line back; then reads and writes the socket.
 *        cpeer pipe       reads a line from fd 5 (a pipe's read end the
 *                         parent passed), writes "pong\n" to fd 6 (another
 *                         pipe's write end); then reads fd 5, writes fd 6.
 *
 * Then every step (20 ms apart) makes a non-blocking read: EAGAIN prints
 * "step N idle"; end of file prints "peer gone: EOF", then one write is
 * tried and "write: EPIPE" (or what else happened) printed, and the program
 * ends. SIGPIPE is ignored, so a write to a gone peer returns EPIPE.
 *
 * A restored process finds these descriptors as if the peer had gone (the
 * peer is not part of the image). As long as the peer stays, the program
 * idles STEPS steps and prints "done idle=STEPS".
 */
#include "testprog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#define STEPS 60

/* Reads up to a newline (blocking); returns the line without it. */
static void read_line(int fd, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("read line");
        if (r == 0)
            fail("peer closed before a line");
        if (c == '\n')
            break;
        out[n++] = c;
    }
    out[n] = 0;
}

int main(int argc, char **argv)
{
    tp_start();
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        die("signal SIGPIPE");
    int rfd, wfd;
    char line[128];
    if (argc >= 3 && strcmp(argv[1], "tcp") == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0)
            die("socket");
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, (struct sockaddr *)&sin, sizeof sin) != 0)
            die("connect");
        printf("connected fd=%d\n", s);
        write_all(s, "hello\n", 6, "write socket");
        read_line(s, line, sizeof line);
        rfd = wfd = s;
    } else if (argc >= 2 && strcmp(argv[1], "pipe") == 0) {
        rfd = 5;
        wfd = 6;
        read_line(rfd, line, sizeof line);
        write_all(wfd, "pong\n", 5, "write fd 6");
        printf("reading fd=%d writing fd=%d\n", rfd, wfd);
    } else {
        fail("usage: cpeer tcp PORT | cpeer pipe");
    }
    printf("exchanged: %s\n", line);
    int fl = fcntl(rfd, F_GETFL);
    if (fl < 0 || fcntl(rfd, F_SETFL, fl | O_NONBLOCK) != 0)
        die("fcntl O_NONBLOCK");

    int idle = 0;
    for (int s = 1; s <= STEPS; s++) {
        char buf[64];
        ssize_t n = read(rfd, buf, sizeof buf);
        if (n == 0) {
            printf("peer gone: EOF\n");
            ssize_t w = write(wfd, "late\n", 5);
            if (w < 0)
                printf("write: %s\n", errno == EPIPE ? "EPIPE" : strerror(errno));
            else
                printf("write: wrote %zd bytes\n", w);
            break;
        }
        if (n < 0 && errno == EAGAIN) {
            idle++;
            printf("step %d idle\n", s);
        } else if (n < 0) {
            printf("read: %s\n", strerror(errno));
            break;
        } else {
            printf("step %d unexpected %zd bytes\n", s, n);
        }
        pace(20000000L);
    }
    printf("done idle=%d\n", idle);
    return 0;
}
