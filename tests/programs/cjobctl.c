/*
 * A small job-control shell for the tests: takes the terminal on fd 0 as
 * the controlling terminal of a new session, runs argv[1..] as its
 * foreground job in a process group of its own (so that the job's group
 * is not orphaned and the terminal's Ctrl-Z stops it), and waits for it
 * as a shell does: each time the job stops it prints "job stopped by
 * signal N" on stderr and waits again (the test continues the job with
 * SIGCONT to its group, as `fg` would); it exits with the job's status
 * (128 + N when a signal killed it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "cjobctl: %s: %s\n", what, strerror(errno));
    exit(125);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cjobctl COMMAND...\n");
        return 125;
    }
    if (setsid() < 0)
        die("setsid");
    if (ioctl(0, TIOCSCTTY, 0) != 0)
        die("TIOCSCTTY");
    /* Giving the terminal away from the background would stop us. */
    signal(SIGTTOU, SIG_IGN);
    pid_t job = fork();
    if (job < 0)
        die("fork");
    if (job == 0) {
        setpgid(0, 0);
        tcsetpgrp(0, getpid());
        signal(SIGTTOU, SIG_DFL);
        execvp(argv[1], argv + 1);
        die("exec");
    }
    setpgid(job, job);
    tcsetpgrp(0, job);
    for (;;) {
        int status;
        if (waitpid(job, &status, WUNTRACED) < 0) {
            if (errno == EINTR)
                continue;
            die("waitpid");
        }
        if (WIFSTOPPED(status)) {
            fprintf(stderr, "job stopped by signal %d\n", WSTOPSIG(status));
            continue;
        }
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
    }
}
