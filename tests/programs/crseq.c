/*
 * rseq areas the program registers itself (issue 12): glibc's own
 * registration is dropped (as with GLIBC_TUNABLES=glibc.pthread.rseq=0,
 * which the program cannot set for itself) and each of two threads
 * registers an area of the program's with syscall(SYS_rseq), the
 * standard signature. The dump lands during the steps. After them each
 * thread checks its area: it writes -2 into cpu_id, takes a signal (the
 * kernel rewrites a registered area's cpu_id on the way back), and asks
 * the kernel whether that very area is registered (EBUSY).
 *
 * usage: crseq [raw]; with raw, the areas are registered by a syscall
 * instruction of the program's own, which a dump must refuse.
 *
 * Protocol: "start", "step N" per step (20 ms apart unless
 * MIGRATE_TEST_NOSLEEP is set), then "main rseq updated=yes busy=yes"
 * and "worker rseq ..." and "done 2".
 */
#include "testprog.h"

#include <signal.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#define STEPS 30
#define SIG 0x53053053

static struct rseq g_area[2] __attribute__((aligned(32)));
static sem_t g_check, g_checked;
static int g_raw;

static void on_usr1(int sig)
{
    (void)sig;
}

static void own_rseq(int i)
{
    if (__rseq_size > 0) {
        struct rseq *glibc = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
        /* EINVAL: glibc did not register this thread's. */
        if (syscall(SYS_rseq, glibc, 32, RSEQ_FLAG_UNREGISTER, SIG) != 0 && errno != EINVAL)
            die("unregister glibc's rseq");
    }
    g_area[i].cpu_id = RSEQ_CPU_ID_UNINITIALIZED;
    long r;
    if (g_raw) {
        /* A syscall instruction of the program's own. */
        register long sig __asm__("r10") = SIG;
        __asm__ volatile("syscall"
                         : "=a"(r)
                         : "0"((long)SYS_rseq), "D"(&g_area[i]), "S"(32L), "d"(0L), "r"(sig)
                         : "rcx", "r11", "memory");
    } else {
        r = syscall(SYS_rseq, &g_area[i], 32, 0, SIG);
    }
    if (r != 0)
        die("rseq");
}

static void check(int i, const char *who)
{
    volatile struct rseq *a = &g_area[i];
    a->cpu_id = (uint32_t)-2;
    pthread_kill(pthread_self(), SIGUSR1);
    int updated = (int)a->cpu_id >= 0;
    long r = syscall(SYS_rseq, &g_area[i], 32, 0, SIG);
    int busy = r == -1 && errno == EBUSY;
    printf("%s rseq updated=%s busy=%s\n", who, updated ? "yes" : "no", busy ? "yes" : "no");
}

static void *worker(void *arg)
{
    (void)arg;
    own_rseq(1);
    sem_post(&g_checked);
    sem_wait_retry(&g_check);
    check(1, "worker");
    sem_post(&g_checked);
    return NULL;
}

int main(int argc, char **argv)
{
    tp_start();
    g_raw = argc == 2 && strcmp(argv[1], "raw") == 0;
    signal(SIGUSR1, on_usr1);
    sem_init(&g_check, 0, 0);
    sem_init(&g_checked, 0, 0);
    own_rseq(0);
    pthread_t t = start_thread(worker, NULL);
    sem_wait_retry(&g_checked);
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d\n", s);
        pace(20000000L);
    }
    check(0, "main");
    sem_post(&g_check);
    sem_wait_retry(&g_checked);
    join_thread(t);
    printf("done 2\n");
    return 0;
}
