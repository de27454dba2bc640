/*
 * Which ids the kernel gives this program's POSIX timers: creates two
 * (raw timer_create, so the numbers are the kernel's ids, not glibc's
 * timer_t), then prints them and every id /proc/self/timers lists, which
 * includes any timer the shim made.
 *
 * Protocol: "start", "mine A B", "all X Y ...", "done".
 */
#include "testprog.h"

#include <signal.h>
#include <sys/syscall.h>

static int make_timer(void)
{
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_NONE;
    int id = -1;
    if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id) != 0)
        die("timer_create");
    return id;
}

int main(void)
{
    tp_start();
    int a = make_timer();
    int b = make_timer();
    printf("mine %d %d\n", a, b);
    FILE *f = fopen("/proc/self/timers", "r");
    if (!f)
        die("open /proc/self/timers");
    char line[256];
    long ids[64];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < 64)
        if (strncmp(line, "ID: ", 4) == 0)
            ids[n++] = atol(line + 4);
    fclose(f);
    /* The kernel lists them newest first: sort. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            long t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    printf("all");
    for (int i = 0; i < n; i++)
        printf(" %ld", ids[i]);
    printf("\ndone\n");
    return 0;
}
