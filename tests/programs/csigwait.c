/*
 * Main blocks every signal and waits for any of them: each step is a
 * sigtimedwait(2) on the full set with a 50 ms timeout, then a read of a
 * non-blocking signalfd whose mask is the full set. Neither may take the
 * dump signal (SIGUSR2): the library leaves it out of their sets, so a
 * dump lands (sigtimedwait returns EINTR and is called again) and the
 * program never sees SIGUSR2.
 *
 * Protocol: "start", "step N timeout signalfd-empty ..." per step (or
 * "step N GOT SIGNAL n ..." should a signal ever be taken), "done ...".
 * MIGRATE_TEST_NOSLEEP makes the timeout 1 ms, which changes no output.
 */
#include "testprog.h"

#include <signal.h>
#include <sys/signalfd.h>

#define STEPS 40

int main(void)
{
    tp_start();
    sigset_t all;
    sigfillset(&all);
    if (sigprocmask(SIG_BLOCK, &all, NULL) != 0)
        die("sigprocmask");
    int sfd = signalfd(-1, &all, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd");
    struct timespec timeout = {0, g_nosleep ? 1000000L : 50000000L};
    uint64_t acc = 7;
    int got = 0;
    for (int s = 1; s <= STEPS; s++) {
        siginfo_t si;
        int r;
        do
            r = sigtimedwait(&all, &si, &timeout);
        while (r < 0 && errno == EINTR);
        char what[64];
        if (r > 0) {
            snprintf(what, sizeof what, "GOT SIGNAL %d", r);
            got++;
        } else if (errno == EAGAIN) {
            snprintf(what, sizeof what, "timeout");
        } else {
            die("sigtimedwait");
        }
        struct signalfd_siginfo ssi;
        ssize_t n = read(sfd, &ssi, sizeof ssi);
        char via[64];
        if (n == (ssize_t)sizeof ssi) {
            snprintf(via, sizeof via, "signalfd GOT SIGNAL %u", ssi.ssi_signo);
            got++;
        } else if (n < 0 && errno == EAGAIN) {
            snprintf(via, sizeof via, "signalfd-empty");
        } else {
            die("read signalfd");
        }
        acc = mix(acc + (uint64_t)s);
        printf("step %d %s %s acc=%016" PRIx64 "\n", s, what, via, acc);
    }
    printf("done got=%d acc=%016" PRIx64 "\n", got, acc);
    return 0;
}
