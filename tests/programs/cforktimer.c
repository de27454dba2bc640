/*
 * A forked child's own POSIX timer: the parent forks and waits; the child
 * makes a timer (SIGEV_NONE, armed for an hour; raw timer_create, so on a
 * kernel that hands out ids in order it has the id its parent's first
 * timer had), writes "child PID" to stderr, then checks the timer at
 * every step (timer_gettime) and says whether it is still there.
 *
 * Protocol (stdout): "start", "step N timer ok|gone" per step, "done steps=N".
 */
#include "testprog.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define STEPS 150
#define STEP_NS 20000000L

int main(void)
{
    tp_start();
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child > 0) {
        int status;
        if (waitpid(child, &status, 0) != child)
            die("waitpid");
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_NONE;
    int id = -1;
    if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id) != 0)
        die("timer_create");
    struct itimerspec hour = {.it_value = {.tv_sec = 3600}};
    if (syscall(SYS_timer_settime, id, 0, &hour, NULL) != 0)
        die("timer_settime");
    fprintf(stderr, "child %d\n", (int)getpid());
    for (int i = 1; i <= STEPS; i++) {
        struct itimerspec left;
        int ok = syscall(SYS_timer_gettime, id, &left) == 0 && left.it_value.tv_sec > 0;
        printf("step %d timer %s\n", i, ok ? "ok" : "gone");
        pace(STEP_NS);
    }
    printf("done steps=%d\n", STEPS);
    return 0;
}
