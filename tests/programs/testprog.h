/*
 * Shared helpers of the C test programs: the output protocol ("start",
 * "step N ...", "done ..."), pacing that MIGRATE_TEST_NOSLEEP turns off, a
 * mixer and a byte hash, error exits, starting and joining threads, and
 * an epoll loop's timerfd.
 *
 * stdout is unbuffered, so every line is out as soon as it is printed and a
 * restored process (whose fd 1 is the relaunch's) prints only what comes
 * after the dump.
 */
#ifndef MIGRATE_TESTPROG_H
#define MIGRATE_TESTPROG_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

__attribute__((unused)) static int g_nosleep;

/* Prints "start" and reads MIGRATE_TEST_NOSLEEP. */
static inline void tp_start(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    g_nosleep = getenv("MIGRATE_TEST_NOSLEEP") != NULL;
    printf("start\n");
}

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#define FNV_INIT 0xcbf29ce484222325ULL

/* FNV-1a over n bytes, continuing from h. */
static inline uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Sleeps ns nanoseconds (all of them: a dump's signal does not shorten
 * it), unless MIGRATE_TEST_NOSLEEP is set. */
static inline void pace(long ns)
{
    if (g_nosleep)
        return;
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Prints "error WHAT: strerror(errno)" and exits with status 1. */
static inline void die(const char *what)
{
    printf("error %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Prints "error WHAT strerror(err)" and exits with status 1: for calls that
 * return an error number (as pthread's do) and callers that pass errno. */
static inline void die_rc(const char *what, int err)
{
    printf("error %s %s\n", what, strerror(err));
    exit(1);
}

/* Prints "error WHAT" and exits with status 1. */
static inline void fail(const char *what)
{
    printf("error %s\n", what);
    exit(1);
}

/* write(2) all n bytes or die. */
static inline void write_all(int fd, const void *p, size_t n, const char *what)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die(what);
        c += w;
        n -= (size_t)w;
    }
}

/* Moves fd to the lowest free number >= at (closing the old number). */
static inline int move_fd(int fd, int at)
{
    int n = fcntl(fd, F_DUPFD, at);
    if (n < 0)
        die("fcntl F_DUPFD");
    close(fd);
    return n;
}

/* pthread_create(fn, arg) with default attributes, or die_rc. */
static inline pthread_t start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, fn, arg);
    if (rc)
        die_rc("pthread_create", rc);
    return t;
}

/* pthread_join(t), or die_rc; returns what the thread returned. */
static inline void *join_thread(pthread_t t)
{
    void *ret;
    int rc = pthread_join(t, &ret);
    if (rc)
        die_rc("pthread_join", rc);
    return ret;
}

/* sem_wait(s), again when a signal interrupts it, or die_rc. */
static inline void sem_wait_retry(sem_t *s)
{
    while (sem_wait(s) != 0) {
        if (errno != EINTR)
            die_rc("sem_wait", errno);
    }
}

/* A timerfd_create(CLOCK_MONOTONIC, flags) that ticks every interval_ns
 * (below a second), or die. */
static inline int ticking_timerfd(long interval_ns, int flags)
{
    int tfd = timerfd_create(CLOCK_MONOTONIC, flags);
    if (tfd < 0)
        die("timerfd_create");
    struct itimerspec its = {{0, interval_ns}, {0, interval_ns}};
    if (timerfd_settime(tfd, 0, &its, NULL) != 0)
        die("timerfd_settime");
    return tfd;
}

/* Reads a non-blocking timerfd: 1 if it ticked since the last read, 0 if
 * not (EAGAIN); dies on anything else. */
static inline int timer_ticked(int tfd)
{
    uint64_t expirations;
    ssize_t r = read(tfd, &expirations, sizeof expirations);
    if (r == sizeof expirations)
        return 1;
    if (!(r < 0 && errno == EAGAIN))
        die("read timerfd");
    return 0;
}

/* epoll_wait, again when a signal (a dump's) interrupts it, or die. */
static inline int epoll_wait_retry(int ep, struct epoll_event *evs, int max, int timeout_ms)
{
    int n;
    while ((n = epoll_wait(ep, evs, max, timeout_ms)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        die("epoll_wait");
    return n;
}

#endif
