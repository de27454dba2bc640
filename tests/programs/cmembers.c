/*
 * Zombie and stopped children, and signals to a whole tree (issue 9).
 *
 *  - "states": the parent forks four children before "ready":
 *      1 exits 7 at once (a zombie: the parent waits for it with WNOWAIT);
 *      2 is killed by SIGUSR1 (a zombie too);
 *      3 stops itself (SIGSTOP); the parent takes the stop report;
 *      4 stops itself; the parent leaves the report (WNOWAIT).
 *    It then steps, counting the SIGCHLDs it gets (there are none in an
 *    uninterrupted run: every child reached its state before "ready").
 *    After the steps it prints what it sees: each child's state in
 *    /proc, what waitpid(WUNTRACED | WNOHANG) says of 3 and 4 (3's
 *    report was taken, 4's was not), then continues 3 and 4 one at a
 *    time (each prints a line and exits 5 or 6) and reaps all four,
 *    printing how each ended, and the SIGCHLD count.
 *  - "tstp": the parent forks one child before "ready", which makes a
 *    process group of its own (so that the group is not orphaned and
 *    the stop signals act) and stops itself with SIGTSTP, as Ctrl-Z
 *    stops a job; the parent leaves the report (WNOWAIT). After the
 *    steps it prints what waitpid(WUNTRACED | WNOHANG) says (stopped by
 *    signal 20), continues the child (which exits 5) and reaps it.
 *  - "leader": child 1 leads a process group of its own, child 2 joins
 *    it, and child 1 exits 7 before "ready": a zombie whose PID is the
 *    group of a live process. After the steps the parent ends child 2
 *    (which exits 3) and reaps both.
 *  - "signals N": the parent forks N children (0 to 8); every process
 *    counts the SIGTERMs it gets. The parent steps until a SIGTERM comes
 *    (at most 2000 steps of 10 ms), waits 300 ms more for a second one,
 *    prints "parent got K SIGTERM", then sends each child SIGUSR1: each
 *    prints "child I got K SIGTERM" and exits 0; the parent reaps them
 *    and prints "done".
 *  - "tty N": as "signals N", counting SIGINT (the terminal's Ctrl-C)
 *    instead, SIGTSTP left to its default (Ctrl-Z stops every process);
 *    before its "parent got" line the parent reads a line from stdin (the
 *    terminal) and prints "read: LINE".
 *
 * Protocol: "start", "ready", "step N acc=..." per step, then as above.
 * MIGRATE_TEST_NOSLEEP drops the pacing of "states".
 */
#include "testprog.h"

#include <signal.h>
#include <sys/wait.h>

static volatile sig_atomic_t chld, term, usr1;

static void on_chld(int sig)
{
    (void)sig;
    chld++;
}

static void on_term(int sig)
{
    (void)sig;
    term++;
}

static void on_usr1(int sig)
{
    (void)sig;
    usr1 = 1;
}

static void handle(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, NULL) != 0)
        die("sigaction");
}

/* The state letter of /proc/PID/stat. */
static char state_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close = strrchr(buf, ')');
    return close && close[1] == ' ' ? close[2] : '?';
}

static void print_status(const char *what, int status)
{
    if (WIFEXITED(status))
        printf("%s exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s killed by signal %d%s\n", what, WTERMSIG(status),
               WCOREDUMP(status) ? " (core)" : "");
    else if (WIFSTOPPED(status))
        printf("%s stopped by signal %d\n", what, WSTOPSIG(status));
    else if (WIFCONTINUED(status))
        printf("%s continued\n", what);
    else
        printf("%s status %#x\n", what, status);
}

static pid_t fork_or_die(void)
{
    pid_t c = fork();
    if (c < 0)
        die("fork");
    return c;
}

static void states(void)
{
    pid_t kid[4];
    siginfo_t si;
    handle(SIGCHLD, on_chld);
    kid[0] = fork_or_die();
    if (kid[0] == 0)
        _exit(7);
    kid[1] = fork_or_die();
    if (kid[1] == 0) {
        signal(SIGUSR1, SIG_DFL);
        raise(SIGUSR1);
        _exit(1);
    }
    for (int i = 2; i < 4; i++) {
        kid[i] = fork_or_die();
        if (kid[i] == 0) {
            raise(SIGSTOP);
            printf("child %d goes on\n", i + 1);
            _exit(3 + i);
        }
    }
    for (int i = 0; i < 2; i++)
        while (waitid(P_PID, (id_t)kid[i], &si, WEXITED | WNOWAIT) != 0)
            if (errno != EINTR)
                die("waitid WEXITED");
    int status;
    while (waitpid(kid[2], &status, WUNTRACED) < 0)
        if (errno != EINTR)
            die("waitpid WUNTRACED");
    print_status("child 3 before", status);
    while (waitid(P_PID, (id_t)kid[3], &si, WSTOPPED | WNOWAIT) != 0)
        if (errno != EINTR)
            die("waitid WSTOPPED");
    /* Every SIGCHLD of the above has been handled by now. */
    chld = 0;
    printf("ready\n");
    uint64_t acc = 5;
    for (int s = 1; s <= 40; s++) {
        acc = mix(acc ^ (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(30000000L);
    }
    printf("sigchld during the steps: %d\n", (int)chld);
    for (int i = 0; i < 4; i++)
        printf("child %d state %c\n", i + 1, state_of(kid[i]));
    for (int i = 2; i < 4; i++) {
        pid_t w;
        while ((w = waitpid(kid[i], &status, WUNTRACED | WNOHANG)) < 0 && errno == EINTR)
            ;
        char what[32];
        snprintf(what, sizeof what, "child %d waitpid", i + 1);
        if (w == 0)
            printf("%s: nothing to report\n", what);
        else if (w < 0)
            printf("%s: %s\n", what, strerror(errno));
        else
            print_status(what, status);
    }
    for (int i = 0; i < 4; i++) {
        if (i >= 2 && kill(kid[i], SIGCONT) != 0)
            die("kill SIGCONT");
        pid_t w;
        while ((w = waitpid(kid[i], &status, 0)) < 0 && errno == EINTR)
            ;
        char what[32];
        snprintf(what, sizeof what, "child %d", i + 1);
        if (w < 0)
            printf("%s gone: %s\n", what, strerror(errno));
        else
            print_status(what, status);
    }
    printf("done acc=%016" PRIx64 "\n", acc);
}

static void tstp(void)
{
    pid_t c = fork_or_die();
    if (c == 0) {
        setpgid(0, 0);
        signal(SIGTSTP, SIG_DFL);
        raise(SIGTSTP);
        _exit(5);
    }
    if (setpgid(c, c) != 0 && errno != EACCES)
        die("setpgid");
    siginfo_t si;
    while (waitid(P_PID, (id_t)c, &si, WSTOPPED | WNOWAIT) != 0)
        if (errno != EINTR)
            die("waitid WSTOPPED");
    printf("ready\n");
    uint64_t acc = 5;
    for (int s = 1; s <= 40; s++) {
        acc = mix(acc ^ (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(30000000L);
    }
    int status;
    pid_t w;
    while ((w = waitpid(c, &status, WUNTRACED | WNOHANG)) < 0 && errno == EINTR)
        ;
    if (w == 0)
        printf("child waitpid: nothing to report\n");
    else if (w < 0)
        printf("child waitpid: %s\n", strerror(errno));
    else
        print_status("child waitpid", status);
    if (kill(c, SIGCONT) != 0)
        die("kill SIGCONT");
    while ((w = waitpid(c, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        printf("child gone: %s\n", strerror(errno));
    else
        print_status("child", status);
    printf("done acc=%016" PRIx64 "\n", acc);
}

static void leader(void)
{
    int go[2], q[2];
    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(q, O_CLOEXEC) != 0)
        die("pipe2");
    char b;
    pid_t a = fork_or_die();
    if (a == 0) {
        setpgid(0, 0);
        close(go[1]);
        close(q[0]);
        close(q[1]);
        while (read(go[0], &b, 1) < 0 && errno == EINTR)
            ;
        _exit(7);
    }
    if (setpgid(a, a) != 0 && errno != EACCES)
        die("setpgid leader");
    pid_t c = fork_or_die();
    if (c == 0) {
        setpgid(0, a);
        close(go[0]);
        close(go[1]);
        close(q[1]);
        while (read(q[0], &b, 1) != 0 && errno == EINTR)
            ;
        _exit(3);
    }
    if (setpgid(c, a) != 0 && errno != EACCES)
        die("setpgid member");
    close(go[0]);
    close(q[0]);
    close(go[1]);
    siginfo_t si;
    while (waitid(P_PID, (id_t)a, &si, WEXITED | WNOWAIT) != 0)
        if (errno != EINTR)
            die("waitid WEXITED");
    printf("ready\n");
    uint64_t acc = 5;
    for (int s = 1; s <= 40; s++) {
        acc = mix(acc ^ (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        pace(30000000L);
    }
    close(q[1]);
    pid_t kid[2] = {a, c};
    for (int i = 0; i < 2; i++) {
        int status;
        while (waitpid(kid[i], &status, 0) < 0)
            if (errno != EINTR)
                die("waitpid");
        char what[32];
        snprintf(what, sizeof what, "child %d", i + 1);
        print_status(what, status);
    }
    printf("done acc=%016" PRIx64 "\n", acc);
}

static void signals(int n, int tty)
{
    pid_t kid[8];
    const char *name = tty ? "SIGINT" : "SIGTERM";
    /* What it counts and ends on ("term" counts either). */
    handle(tty ? SIGINT : SIGTERM, on_term);
    handle(SIGUSR1, on_usr1);
    for (int i = 0; i < n; i++) {
        kid[i] = fork_or_die();
        if (kid[i] == 0) {
            while (!usr1)
                usleep(1000);
            printf("child %d got %d %s\n", i + 1, (int)term, name);
            _exit(0);
        }
    }
    printf("ready\n");
    uint64_t acc = 5;
    for (int s = 1; s <= 2000 && !term; s++) {
        acc = mix(acc ^ (uint64_t)s);
        printf("step %d acc=%016" PRIx64 "\n", s, acc);
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    /* A second copy of the signal would come within this. */
    struct timespec ts = {0, 300000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
    if (tty) {
        char line[128];
        if (!fgets(line, sizeof line, stdin))
            die("read the terminal");
        line[strcspn(line, "\n")] = 0;
        printf("read: %s\n", line);
    }
    printf("parent got %d %s\n", (int)term, name);
    for (int i = 0; i < n; i++) {
        if (kill(kid[i], SIGUSR1) != 0)
            die("kill SIGUSR1");
        int status;
        while (waitpid(kid[i], &status, 0) < 0)
            if (errno != EINTR)
                die("waitpid");
    }
    printf("done\n");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: cmembers states | tstp | leader | signals N | tty N");
    tp_start();
    if (strcmp(argv[1], "states") == 0)
        states();
    else if (strcmp(argv[1], "tstp") == 0)
        tstp();
    else if (strcmp(argv[1], "leader") == 0)
        leader();
    else if ((strcmp(argv[1], "signals") == 0 || strcmp(argv[1], "tty") == 0) && argc == 3 &&
             atoi(argv[2]) >= 0 && atoi(argv[2]) <= 8)
        signals(atoi(argv[2]), strcmp(argv[1], "tty") == 0);
    else
        fail("unknown mode");
    return 0;
}
