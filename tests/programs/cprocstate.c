/*
 * Process state that is not memory: cwd, umask, rlimits, signal
 * dispositions with their SA_* flags and masks, the signal mask, and an
 * interval timer.
 *
 * usage: cprocstate DIR
 *
 * The program changes into DIR (where the test put a file "marker"), sets
 * umask 027, RLIMIT_NOFILE's soft limit to 200 and RLIMIT_CORE's to 0,
 * installs handlers for SIGALRM (SA_RESTART, SIGUSR1 in sa_mask) and
 * SIGUSR1 (SA_SIGINFO | SA_NODEFER | SA_RESETHAND), ignores SIGINT, blocks
 * SIGHUP and SIGALRM, and starts ITIMER_REAL every 20 ms (1 ms with
 * MIGRATE_TEST_NOSLEEP). Every step waits in ppoll, with SIGALRM let in,
 * until the handler has counted a new tick (no tick within 2 s is an
 * error: the timer did not come back), then prints all of the above.
 *
 * Protocol: "start", "step N ..." per tick, "done ...". Every line is
 * deterministic.
 */
#include "testprog.h"

#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>

#define STEPS 60

static volatile sig_atomic_t g_ticks;

static void on_alarm(int sig)
{
    (void)sig;
    g_ticks++;
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
}

#define SA_SHOWN (SA_RESTART | SA_SIGINFO | SA_NODEFER | SA_RESETHAND | SA_ONSTACK)

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 2)
        fail("usage: cprocstate DIR");
    if (chdir(argv[1]) != 0)
        die("chdir");
    umask(027);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    rl.rlim_cur = 200;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit NOFILE");
    if (getrlimit(RLIMIT_CORE, &rl) != 0)
        die("getrlimit");
    rl.rlim_cur = 0;
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        die("setrlimit CORE");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        die("sigaction SIGALRM");
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        die("sigaction SIGUSR1");
    if (signal(SIGINT, SIG_IGN) == SIG_ERR)
        die("signal SIGINT");

    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGALRM);
    if (sigprocmask(SIG_BLOCK, &block, &waitmask) != 0)
        die("sigprocmask");
    /* ppoll's mask: what we block, less SIGALRM. */
    sigaddset(&waitmask, SIGHUP);
    sigdelset(&waitmask, SIGALRM);

    long interval_us = g_nosleep ? 1000 : 20000;
    struct itimerval it = {{0, interval_us}, {0, interval_us}};
    if (setitimer(ITIMER_REAL, &it, NULL) != 0)
        die("setitimer");

    sig_atomic_t seen = 0;
    for (int s = 1; s <= STEPS; s++) {
        struct timespec limit = {2, 0};
        while (g_ticks == seen) {
            int r = ppoll(NULL, 0, &limit, &waitmask);
            if (r == 0) {
                printf("error step %d: no SIGALRM within 2 s\n", s);
                exit(1);
            }
            if (r < 0 && errno != EINTR)
                die("ppoll");
        }
        seen = g_ticks;

        char cwd[4096], marker[64] = "";
        if (!getcwd(cwd, sizeof cwd))
            die("getcwd");
        FILE *m = fopen("marker", "r");
        if (!m || !fgets(marker, sizeof marker, m))
            die("read marker");
        fclose(m);
        marker[strcspn(marker, "\n")] = 0;
        mode_t um = umask(0);
        umask(um);
        struct rlimit nofile, core;
        if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || getrlimit(RLIMIT_CORE, &core) != 0)
            die("getrlimit");
        struct sigaction alrm, usr1, sint;
        if (sigaction(SIGALRM, NULL, &alrm) != 0 || sigaction(SIGUSR1, NULL, &usr1) != 0 ||
            sigaction(SIGINT, NULL, &sint) != 0)
            die("sigaction query");
        sigset_t cur;
        if (sigprocmask(SIG_BLOCK, NULL, &cur) != 0)
            die("sigprocmask query");
        struct itimerval now;
        if (getitimer(ITIMER_REAL, &now) != 0)
            die("getitimer");
        /* Only the interval: it_value reads 0 while a SIGALRM is pending
         * (the kernel re-arms ITIMER_REAL when the signal is taken). That
         * the timer runs shows in the ticks. */
        int timer_ok = now.it_interval.tv_sec == 0 && now.it_interval.tv_usec == interval_us;
        printf("step %d cwd=%s marker=%s umask=%03o nofile=%llu core=%llu"
               " alrm=%s/%x/%d usr1=%s/%x int=%s blocked=%d%d%d%d itimer=%s\n",
               s, basename(cwd), marker, (unsigned)um, (unsigned long long)nofile.rlim_cur,
               (unsigned long long)core.rlim_cur, alrm.sa_handler == on_alarm ? "handler" : "OTHER",
               alrm.sa_flags & SA_SHOWN, sigismember(&alrm.sa_mask, SIGUSR1),
               usr1.sa_sigaction == on_usr1 ? "handler" : "OTHER", usr1.sa_flags & SA_SHOWN,
               sint.sa_handler == SIG_IGN ? "ignored" : "NOT-IGNORED", sigismember(&cur, SIGHUP),
               sigismember(&cur, SIGALRM), sigismember(&cur, SIGUSR1), sigismember(&cur, SIGTERM),
               timer_ok ? "interval-kept" : "INTERVAL-CHANGED");
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    if (setitimer(ITIMER_REAL, &off, NULL) != 0)
        die("setitimer off");
    printf("done steps=%d\n", STEPS);
    return 0;
}
