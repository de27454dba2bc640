/*
 * Process attributes that are neither memory contents nor descriptors
 * (issue 12), one mode per group:
 *
 *   prctl   THP disable, dumpable 0, no_new_privs, child subreaper, a
 *           parent-death signal and a timer slack on the main thread, another
 *           slack and parent-death signal and a name on a worker thread, and
 *           oom_score_adj raised to 345.
 *   madvise one anonymous area per madvise advice (DONTFORK, DONTDUMP,
 *           WIPEONFORK, HUGEPAGE, NOHUGEPAGE, MERGEABLE), one locked with
 *           mlock, one with mlock2(MLOCK_ONFAULT), one plain; every step
 *           prints each area's VmFlags (of those) and a hash of its bytes;
 *           the end forks a child that checks the DONTFORK area is absent,
 *           the WIPEONFORK one zero, the others kept.
 *   oom     oom_score_adj as the process was started with (the test lowers
 *           it below 0, which needs CAP_SYS_RESOURCE).
 *   oom100  oom_score_adj raised to 100 by the program itself (any process
 *           may raise its own), printed at every step.
 *   mlockall mlockall(MCL_CURRENT|MCL_FUTURE): every step prints the
 *           VmFlags of an area mapped before the call; the end maps a new
 *           area, untouched, and prints its VmFlags and smaps "Locked:"
 *           (MCL_FUTURE locks and fills it at once), then touches it.
 *   mlockall-onfault  the same with MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT: the
 *           new area is locked on fault (0 kB locked until touched).
 *
 * usage: cprocattrs MODE
 *
 * Every step prints the state as the program reads it back (prctl, and
 * /proc/self/status, /proc/self/oom_score_adj, /proc/thread-self/comm);
 * the end checks behaviour (a subreaper gets its orphaned grandchild)
 * once, after any dump the test takes. Protocol: "start", "step N ...",
 * "check ..." lines, "done". Every line is deterministic.
 */
#include "testprog.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define STEPS 40

static void read_text(const char *path, char *out, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die(path);
    ssize_t n = read(fd, out, len - 1);
    if (n < 0)
        die(path);
    close(fd);
    out[n] = 0;
    out[strcspn(out, "\n")] = 0;
}

/* The value of "Key:" in /proc/self/status, as text. */
static void status_field(const char *key, char *out, size_t len)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n < 0)
        die("/proc/self/status");
    close(fd);
    buf[n] = 0;
    char *at = strstr(buf, key);
    if (!at) {
        snprintf(out, len, "absent");
        return;
    }
    at += strlen(key);
    at += strspn(at, " \t");
    size_t k = strcspn(at, "\n");
    if (k >= len)
        k = len - 1;
    memcpy(out, at, k);
    out[k] = 0;
}

/* One thread's own prctl state, as text. */
static void thread_state(char *out, size_t len)
{
    int pdeath = -1;
    if (prctl(PR_GET_PDEATHSIG, &pdeath) != 0)
        die("PR_GET_PDEATHSIG");
    long slack = prctl(PR_GET_TIMERSLACK);
    char name[32];
    if (prctl(PR_GET_NAME, name) != 0)
        die("PR_GET_NAME");
    name[16] = 0;
    snprintf(out, len, "slack=%ld pdeath=%d name=%s", slack, pdeath, name);
}

static sem_t g_ask, g_told;
static char g_worker[128];

static void *worker(void *arg)
{
    (void)arg;
    if (prctl(PR_SET_TIMERSLACK, 777000UL) != 0)
        die("worker PR_SET_TIMERSLACK");
    if (prctl(PR_SET_PDEATHSIG, SIGWINCH) != 0)
        die("worker PR_SET_PDEATHSIG");
    if (prctl(PR_SET_NAME, "attr-worker") != 0)
        die("worker PR_SET_NAME");
    for (;;) {
        while (sem_wait(&g_ask) != 0)
            ;
        thread_state(g_worker, sizeof g_worker);
        sem_post(&g_told);
    }
    return NULL;
}

static void prctl_setup(void)
{
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
        die("PR_SET_THP_DISABLE");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("PR_SET_NO_NEW_PRIVS");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        die("PR_SET_CHILD_SUBREAPER");
    if (prctl(PR_SET_PDEATHSIG, SIGURG) != 0)
        die("PR_SET_PDEATHSIG");
    if (prctl(PR_SET_TIMERSLACK, 123456UL) != 0)
        die("PR_SET_TIMERSLACK");
    if (prctl(PR_SET_NAME, "attr-main") != 0)
        die("PR_SET_NAME");
    int fd = open("/proc/self/oom_score_adj", O_WRONLY);
    if (fd < 0)
        die("open oom_score_adj");
    write_all(fd, "345", 3, "write oom_score_adj");
    close(fd);
    /* Last: a process that is not dumpable has its /proc/self files
     * owned by root (the dump must still read its own). */
    if (prctl(PR_SET_DUMPABLE, 0) != 0)
        die("PR_SET_DUMPABLE");
    if (sem_init(&g_ask, 0, 0) != 0 || sem_init(&g_told, 0, 0) != 0)
        die("sem_init");
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker, NULL);
    if (rc != 0)
        die_rc("pthread_create", rc);
}

static void prctl_step(int s)
{
    char main_state[128], oom[32], thp[32], nnp[32], slack_file[32];
    thread_state(main_state, sizeof main_state);
    sem_post(&g_ask);
    while (sem_wait(&g_told) != 0)
        ;
    int subreaper = -1;
    if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper) != 0)
        die("PR_GET_CHILD_SUBREAPER");
    read_text("/proc/self/oom_score_adj", oom, sizeof oom);
    read_text("/proc/self/timerslack_ns", slack_file, sizeof slack_file);
    status_field("THP_enabled:", thp, sizeof thp);
    status_field("NoNewPrivs:", nnp, sizeof nnp);
    printf("step %d thp_disable=%d dumpable=%d no_new_privs=%d subreaper=%d oom_score_adj=%s"
           " status:THP_enabled=%s status:NoNewPrivs=%s timerslack_ns=%s main: %s worker: %s\n",
           s, prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0), prctl(PR_GET_DUMPABLE),
           prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), subreaper, oom, thp, nnp, slack_file,
           main_state, g_worker);
}

/* A child that forks a grandchild and exits: the grandchild, orphaned,
 * must become this process's child (it is a subreaper), and says whose
 * child it is now. */
static void check_subreaper(void)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        pid_t parent = getpid();
        pid_t grandchild = fork();
        if (grandchild < 0)
            _exit(2);
        if (grandchild == 0) {
            while (getppid() == parent)
                usleep(1000);
            pid_t now = getppid();
            if (write(p[1], &now, sizeof now) != sizeof now)
                _exit(3);
            _exit(0);
        }
        _exit(0);
    }
    close(p[1]);
    if (waitpid(child, NULL, 0) != child)
        die("waitpid child");
    pid_t adopted = 0;
    if (read(p[0], &adopted, sizeof adopted) != sizeof adopted)
        die("read adopted");
    close(p[0]);
    int status = -1;
    pid_t reaped = waitpid(-1, &status, 0);
    printf("check subreaper: orphan %s, reaped %s\n",
           adopted == getpid() ? "adopted by this process" : "ADOPTED ELSEWHERE",
           reaped > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "here" : "NOT HERE");
}

#define AREA_PAGES 4
#define PAGE 4096

struct area {
    const char *name;
    int advice; /* -1: none; -2: mlock; -3: mlock2 onfault */
    unsigned char *p;
};

static struct area g_areas[] = {
    {"dontfork", MADV_DONTFORK, NULL},     {"dontdump", MADV_DONTDUMP, NULL},
    {"wipeonfork", MADV_WIPEONFORK, NULL}, {"hugepage", MADV_HUGEPAGE, NULL},
    {"nohugepage", MADV_NOHUGEPAGE, NULL}, {"mergeable", MADV_MERGEABLE, NULL},
    {"mlock", -2, NULL},                   {"mlock-onfault", -3, NULL},
    {"plain", -1, NULL},
};
#define N_AREAS (sizeof g_areas / sizeof g_areas[0])

static const char *const SHOWN[] = {"dc", "dd", "wf", "hg", "nh", "mg", "lo", "lf"};

/* The VmFlags of the area at p (those in SHOWN), from /proc/self/smaps. */
static void area_flags(const void *p, char *out, size_t len)
{
    static char buf[1 << 20];
    int fd = open("/proc/self/smaps", O_RDONLY);
    if (fd < 0)
        die("open smaps");
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    snprintf(out, len, "none");
    uintptr_t want = (uintptr_t)p;
    int inside = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long start, end;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = start <= want && want < end;
            continue;
        }
        if (!inside || strncmp(line, "VmFlags:", 8) != 0)
            continue;
        out[0] = 0;
        size_t used = 0;
        for (size_t i = 0; i < sizeof SHOWN / sizeof SHOWN[0]; i++) {
            char word[5] = {' ', SHOWN[i][0], SHOWN[i][1], ' ', 0};
            char padded[512];
            snprintf(padded, sizeof padded, "%s ", line + 8);
            if (strstr(padded, word))
                used += (size_t)snprintf(out + used, len - used, "%s%s", used ? "," : "",
                                         SHOWN[i]);
        }
        if (used == 0)
            snprintf(out, len, "none");
        return;
    }
}

/* The "Locked:" of the smaps entry of the area at p, in kB (-1: none). */
static long area_locked_kb(const void *p)
{
    static char buf[1 << 20];
    int fd = open("/proc/self/smaps", O_RDONLY);
    if (fd < 0)
        die("open smaps");
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = 0;
    uintptr_t want = (uintptr_t)p;
    int inside = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long start, end;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = start <= want && want < end;
            continue;
        }
        long kb;
        if (inside && sscanf(line, "Locked: %ld kB", &kb) == 1)
            return kb;
    }
    return -1;
}

static unsigned char *g_before;

static void mlockall_setup(int flags)
{
    g_before = mmap(NULL, AREA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (g_before == MAP_FAILED)
        die("mmap");
    memset(g_before, 7, AREA_PAGES * PAGE);
    if (mlockall(flags) != 0)
        printf("setup mlockall: %s\n", strerror(errno));
}

static void mlockall_step(int s)
{
    char flags[64];
    area_flags(g_before, flags, sizeof flags);
    printf("step %d mapped before mlockall: %s\n", s, flags);
}

/* A new area after the dump: MCL_FUTURE must lock it. (Shared, so that
 * it never merges with a neighbour and smaps shows it alone.) */
static void mlockall_check(void)
{
    unsigned char *p = mmap(NULL, AREA_PAGES * PAGE, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    char flags[64];
    area_flags(p, flags, sizeof flags);
    long untouched = area_locked_kb(p);
    p[0] = 1;
    p[2 * PAGE] = 1;
    long touched = area_locked_kb(p);
    printf("check new mapping: %s, Locked: %ld kB untouched, %ld kB with 2 of %d pages touched\n",
           flags, untouched, touched, AREA_PAGES);
}

static void madvise_setup(void)
{
    for (size_t i = 0; i < N_AREAS; i++) {
        struct area *a = &g_areas[i];
        a->p = mmap(NULL, AREA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
        if (a->p == MAP_FAILED)
            die("mmap");
        for (size_t k = 0; k < AREA_PAGES * PAGE; k++)
            a->p[k] = (unsigned char)(mix(i * 100000 + k) | 1);
        int r = 0;
        if (a->advice >= 0)
            r = madvise(a->p, AREA_PAGES * PAGE, a->advice);
        else if (a->advice == -2)
            r = mlock(a->p, AREA_PAGES * PAGE);
        else if (a->advice == -3)
            r = mlock2(a->p, AREA_PAGES * PAGE, MLOCK_ONFAULT);
        if (r != 0)
            printf("setup %s: %s\n", a->name, strerror(errno));
    }
}

static void madvise_step(int s)
{
    printf("step %d", s);
    for (size_t i = 0; i < N_AREAS; i++) {
        char flags[64];
        area_flags(g_areas[i].p, flags, sizeof flags);
        uint64_t h = fnv(FNV_INIT, g_areas[i].p, AREA_PAGES * PAGE);
        printf(" %s=%s/%04" PRIx64, g_areas[i].name, flags, h & 0xffff);
    }
    printf("\n");
}

/* What a fork child sees of each area: absent, zero, or the same bytes. */
static void check_fork(void)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    uint64_t before[N_AREAS];
    for (size_t i = 0; i < N_AREAS; i++)
        before[i] = fnv(FNV_INIT, g_areas[i].p, AREA_PAGES * PAGE);
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        char seen[N_AREAS];
        for (size_t i = 0; i < N_AREAS; i++) {
            unsigned char vec[AREA_PAGES];
            if (mincore(g_areas[i].p, AREA_PAGES * PAGE, vec) != 0 && errno == ENOMEM) {
                seen[i] = 'A';
                continue;
            }
            int zero = 1;
            for (size_t k = 0; k < AREA_PAGES * PAGE; k++)
                zero &= g_areas[i].p[k] == 0;
            uint64_t h = fnv(FNV_INIT, g_areas[i].p, AREA_PAGES * PAGE);
            seen[i] = zero ? 'Z' : h == before[i] ? 'K' : 'X';
        }
        if (write(p[1], seen, sizeof seen) != sizeof seen)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    char seen[N_AREAS];
    if (read(p[0], seen, sizeof seen) != sizeof seen)
        die("read from the fork child");
    close(p[0]);
    if (waitpid(child, NULL, 0) != child)
        die("waitpid");
    printf("check fork child:");
    for (size_t i = 0; i < N_AREAS; i++)
        printf(" %s=%s", g_areas[i].name,
               seen[i] == 'A'   ? "absent"
               : seen[i] == 'Z' ? "zero"
               : seen[i] == 'K' ? "kept"
                                : "CHANGED");
    printf("\n");
}

int main(int argc, char **argv)
{
    tp_start();
    if (argc < 2)
        fail("usage: cprocattrs MODE");
    const char *mode = argv[1];
    if (strcmp(mode, "prctl") == 0) {
        prctl_setup();
        for (int s = 1; s <= STEPS; s++) {
            prctl_step(s);
            pace(20 * 1000 * 1000);
        }
        check_subreaper();
    } else if (strcmp(mode, "madvise") == 0) {
        madvise_setup();
        for (int s = 1; s <= STEPS; s++) {
            madvise_step(s);
            pace(20 * 1000 * 1000);
        }
        check_fork();
    } else if (strcmp(mode, "mlockall") == 0 || strcmp(mode, "mlockall-onfault") == 0) {
        int onfault = strcmp(mode, "mlockall-onfault") == 0;
        mlockall_setup(MCL_CURRENT | MCL_FUTURE | (onfault ? MCL_ONFAULT : 0));
        for (int s = 1; s <= STEPS; s++) {
            mlockall_step(s);
            pace(20 * 1000 * 1000);
        }
        mlockall_check();
    } else if (strcmp(mode, "oom100") == 0) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY);
        if (fd < 0)
            die("open oom_score_adj");
        write_all(fd, "100", 3, "write oom_score_adj");
        close(fd);
        for (int s = 1; s <= STEPS; s++) {
            char oom[32];
            read_text("/proc/self/oom_score_adj", oom, sizeof oom);
            printf("step %d oom_score_adj=%s\n", s, oom);
            pace(20 * 1000 * 1000);
        }
    } else if (strcmp(mode, "oom") == 0) {
        /* oom_score_adj as the process was started with. */
        for (int s = 1; s <= STEPS; s++) {
            char oom[32];
            read_text("/proc/self/oom_score_adj", oom, sizeof oom);
            printf("step %d oom_score_adj=%s\n", s, oom);
            pace(20 * 1000 * 1000);
        }
    } else {
        fail("unknown mode");
    }
    printf("done %s\n", mode);
    return 0;
}
