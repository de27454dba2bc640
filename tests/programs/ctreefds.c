/*
 * O_PATH and procfs descriptors held across a process tree (issue 12):
 * a parent opens them, forks, and both hold the same open file
 * descriptions.
 *
 *   shared   fd 20: /etc/passwd opened O_PATH; fd 21: "/" opened
 *            O_PATH|O_DIRECTORY; fd 22: /proc/self/status of the parent,
 *            read-only (for the child, the procfs file of another process:
 *            its parent's). Each step the parent seeks fd 22 to the step's
 *            number, hands the child a token through a pipe and both report:
 *            whether fd 20 and 21 are still O_PATH descriptors of the same
 *            file and directory (by inode), whose "Pid:" fd 22 shows (own,
 *            the parent's), and whether its offset is the one the parent
 *            set (one description). The end checks behaviour: a file opened
 *            at fd 21 (openat) is /etc's, and fd 22 read from its offset
 *            gives what the status file gives there.
 *   outside  the parent holds /proc/PPID/status of its own parent, outside
 *            the tree: the dump must fail naming fd 23.
 *   nested   the root forks a middle process, which opens its own
 *            /proc/self/status at fd 22 and forks a grandchild: the middle
 *            process and the grandchild share that description, a procfs
 *            file of a member other than the root. Each step the root
 *            hands the middle process a token, which asks the grandchild,
 *            and prints whose "Pid:" fd 22 shows in each (own, the
 *            parent's).
 *
 * usage: ctreefds MODE. Protocol: "start", "ready", "step N ...", the end's
 * "check ..." lines, "done MODE". Every line is deterministic.
 */
#include "testprog.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define STEPS 40

static int g_to_child[2], g_from_child[2];

/* Whose "Pid:" the status file at fd shows, as a word. */
static const char *whose(int fd)
{
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return "UNREADABLE";
    buf[n] = 0;
    char *at = strstr(buf, "\nPid:");
    int pid = -1;
    if (!at || sscanf(at + 5, "%d", &pid) != 1)
        return "NO-PID";
    return pid == getpid() ? "own" : pid == getppid() ? "parent's" : "ANOTHER";
}

/* Whether fd is an O_PATH descriptor of what path names. */
static const char *same_path(int fd, const char *path)
{
    struct stat a, b;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, &a) != 0 || stat(path, &b) != 0)
        return "GONE";
    if (!(fl & O_PATH))
        return "NOT-O_PATH";
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino ? "same" : "OTHER";
}

static void report(char *out, size_t len, long want_offset)
{
    off_t off = lseek(22, 0, SEEK_CUR);
    snprintf(out, len, "passwd=%s root=%s status=%s offset=%s", same_path(20, "/etc/passwd"),
             same_path(21, "/"), whose(22), off == want_offset ? "shared" : "DIFFERENT");
}

static void child(void)
{
    close(g_to_child[1]);
    close(g_from_child[0]);
    long step;
    while (read(g_to_child[0], &step, sizeof step) == sizeof step) {
        char line[256] = {0};
        if (step < 0) {
            /* The end: openat through the O_PATH directory. */
            int etc = openat(21, "etc", O_PATH | O_DIRECTORY);
            struct stat a, b;
            snprintf(line, sizeof line, "child openat(fd 21, etc): %s",
                     etc >= 0 && fstat(etc, &a) == 0 && stat("/etc", &b) == 0 &&
                             a.st_ino == b.st_ino
                         ? "/etc"
                         : "WRONG");
        } else {
            report(line, sizeof line, step);
        }
        write_all(g_from_child[1], line, sizeof line, "write answer");
    }
    _exit(0);
}

static void shared(void)
{
    if (move_fd(open("/etc/passwd", O_PATH), 20) != 20 ||
        move_fd(open("/", O_PATH | O_DIRECTORY), 21) != 21 ||
        move_fd(open("/proc/self/status", O_RDONLY), 22) != 22)
        fail("descriptors not at 20, 21, 22");
    if (pipe(g_to_child) != 0 || pipe(g_from_child) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0)
        child();
    close(g_to_child[0]);
    close(g_from_child[1]);
    printf("ready\n");
    for (long s = 1; s <= STEPS; s++) {
        if (lseek(22, s, SEEK_SET) != s)
            die("lseek");
        char mine[256], theirs[256];
        report(mine, sizeof mine, s);
        write_all(g_to_child[1], &s, sizeof s, "write token");
        if (read(g_from_child[0], theirs, sizeof theirs) != sizeof theirs)
            die("read answer");
        printf("step %ld parent: %s child: %s\n", s, mine, theirs);
        pace(20 * 1000 * 1000);
    }
    long end = -1;
    write_all(g_to_child[1], &end, sizeof end, "write token");
    char theirs[256];
    if (read(g_from_child[0], theirs, sizeof theirs) != sizeof theirs)
        die("read answer");
    printf("check %s\n", theirs);
    /* Reading on from the offset gives the rest of the status file: the
     * rest of the line there, and this process's "Pid:" further on (the
     * numbers between change as the process runs). */
    char all[4096], rest[4096], pid_line[32];
    ssize_t n = pread(22, all, sizeof all - 1, 0);
    ssize_t k = read(22, rest, sizeof rest - 1);
    int ok = n > STEPS && k > 0;
    if (ok) {
        all[n] = rest[k] = 0;
        size_t line = strcspn(all + STEPS, "\n") + 1;
        snprintf(pid_line, sizeof pid_line, "\nPid:\t%d\n", getpid());
        ok = (size_t)k >= line && memcmp(all + STEPS, rest, line) == 0 && strstr(rest, pid_line);
    }
    printf("check read at offset %d: %s\n", STEPS, ok ? "the rest" : "WRONG");
    close(g_to_child[1]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void outside(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", getppid());
    if (move_fd(open(path, O_RDONLY), 23) != 23)
        fail("descriptor not at 23");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        for (;;)
            pause();
    }
    printf("ready\n");
    for (long s = 1; s <= STEPS; s++) {
        printf("step %ld\n", s);
        pace(20 * 1000 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* The grandchild of `nested`: answers each token with whose status fd 22 is. */
static void nested_grandchild(int down, int up)
{
    long step;
    while (read(down, &step, sizeof step) == sizeof step) {
        char line[64] = {0};
        snprintf(line, sizeof line, "%s", whose(22));
        write_all(up, line, sizeof line, "write answer");
    }
    _exit(0);
}

/* The middle process of `nested`: opens its status file at fd 22, forks
 * the grandchild, then answers the root's tokens for both. */
static void nested_middle(void)
{
    close(g_to_child[1]);
    close(g_from_child[0]);
    if (move_fd(open("/proc/self/status", O_RDONLY), 22) != 22)
        fail("descriptor not at 22");
    int down[2], up[2];
    if (pipe(down) != 0 || pipe(up) != 0)
        die("pipe");
    pid_t g = fork();
    if (g < 0)
        die("fork");
    if (g == 0) {
        close(down[1]);
        close(up[0]);
        nested_grandchild(down[0], up[1]);
    }
    close(down[0]);
    close(up[1]);
    long step;
    while (read(g_to_child[0], &step, sizeof step) == sizeof step) {
        char theirs[64], line[256] = {0};
        write_all(down[1], &step, sizeof step, "write token");
        if (read(up[0], theirs, sizeof theirs) != sizeof theirs)
            die("read answer");
        snprintf(line, sizeof line, "middle: status=%s grandchild: status=%s", whose(22), theirs);
        write_all(g_from_child[1], line, sizeof line, "write answer");
    }
    close(down[1]);
    int status;
    _exit(waitpid(g, &status, 0) == g && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1);
}

static void nested(void)
{
    if (pipe(g_to_child) != 0 || pipe(g_from_child) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0)
        nested_middle();
    close(g_to_child[0]);
    close(g_from_child[1]);
    /* The grandchild exists once the first answer comes. */
    long s = 0;
    char theirs[256];
    write_all(g_to_child[1], &s, sizeof s, "write token");
    if (read(g_from_child[0], theirs, sizeof theirs) != sizeof theirs)
        die("read answer");
    printf("ready\n");
    for (s = 1; s <= STEPS; s++) {
        write_all(g_to_child[1], &s, sizeof s, "write token");
        if (read(g_from_child[0], theirs, sizeof theirs) != sizeof theirs)
            die("read answer");
        printf("step %ld %s\n", s, theirs);
        pace(20 * 1000 * 1000);
    }
    close(g_to_child[1]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        die("waitpid");
    printf("middle exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 2)
        fail("usage: ctreefds MODE");
    if (strcmp(argv[1], "shared") == 0)
        shared();
    else if (strcmp(argv[1], "outside") == 0)
        outside();
    else if (strcmp(argv[1], "nested") == 0)
        nested();
    else
        fail("unknown mode");
    printf("done %s\n", argv[1]);
    return 0;
}
