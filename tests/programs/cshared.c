/*
 * A parent and a child sharing one kind of object each mode (issue 9,
 * "the objects processes share"); the parent steps, the child answers,
 * and every line is deterministic, so a restored tree must end exactly as
 * an uninterrupted run.
 *
 *  - "memory": three pages of MAP_SHARED anonymous memory and two pipes.
 *    Each step the parent writes a value into the memory and the step's
 *    number into the pipe to the child; the child checks the value it
 *    sees, writes its answer into the memory and acks through the other
 *    pipe; the parent prints the answer it sees. With "memory3" the child
 *    hands each step on to a grandchild (its own pipes, the same memory),
 *    which answers instead. With "memfd" the memory is a memfd that both
 *    keep open (fd 20) besides mapping it. With "bigmemfd" that memfd
 *    is 64 MiB long, 1 MiB of data at 40 MiB (its contents too large for
 *    an image's metadata), checked by the parent at the end.
 *  - "sem": two named POSIX semaphores (sem_open, then sem_unlink: the
 *    files under /dev/shm are gone, only the mappings hold them), nothing
 *    else: parent and child print in turn ("step N ping", "pong N"), each
 *    waiting for the other's post (5 s at most, else an error line).
 *  - "socketpair": a stream and a datagram socket pair. The parent keeps
 *    AHEAD numbered messages queued on the stream; each step it sends one
 *    more, hands the child a token through a pipe, and prints the
 *    previous step's answer from the datagram pair; the child reads one
 *    message per token, checks its number and answers. A message lost or
 *    delivered twice breaks the numbering.
 *  - "append": one file opened by the parent with O_APPEND and another
 *    without, both inherited: each step both write a line to each file in
 *    turn (the child through a pipe handshake); at the end the parent
 *    prints the length and hash of each. A description not shared after a
 *    restore (two offsets) overwrites lines of the second file.
 *  - "siblings": one file opened by the parent without O_APPEND, inherited
 *    by two children, and closed by the parent: the children alone share
 *    its description. Each step the parent hands a token to each child in
 *    turn (pipes), each child writes a line to the file and acks; at the
 *    end the parent reaps both and prints the file's length and hash. A
 *    description not shared after a restore (two offsets) overwrites
 *    lines.
 *
 * Protocol: "start", "ready", "step N ..." per step, "child exited N",
 * "done ...".
 */
#include "testprog.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define STEPS 40
#define STEP_NS 30000000L
#define AHEAD 3

struct shm {
    volatile uint64_t a;
    volatile uint64_t b;
    char pad[4096 - 16];
    volatile uint64_t far[512 * 2];
};

static void read_all(int fd, void *p, size_t n, const char *what)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            printf("error %s: %s\n", what, r == 0 ? "end of file" : strerror(errno));
            exit(1);
        }
        c += r;
        n -= (size_t)r;
    }
}

/* Waits for `s`, 5 s at most. */
static void sem_wait5(sem_t *s, const char *who)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 5;
    while (sem_timedwait(s, &t) != 0) {
        if (errno == EINTR)
            continue;
        printf("error %s: sem_timedwait: %s\n", who, strerror(errno));
        exit(1);
    }
}

/* The answering side of "memory": reads step numbers from `in`, checks
 * the memory, answers, acks on `out`; returns at end of file. */
static void answer(struct shm *m, int in, int out)
{
    int s;
    for (;;) {
        ssize_t r = read(in, &s, sizeof s);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return;
        if (r != sizeof s)
            _exit(1);
        if (m->a != mix((uint64_t)s) || m->far[s] != (uint64_t)s * 3) {
            printf("error answer %d: sees %016" PRIx64 "\n", s, m->a);
            _exit(1);
        }
        m->b = mix(m->a ^ 1);
        m->far[512 + s] = m->b;
        write_all(out, &s, sizeof s, "ack");
    }
}

static pid_t fork_or_die(void)
{
    pid_t c = fork();
    if (c < 0)
        die("fork");
    return c;
}

static void pipe_or_die(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe2");
}

static int reap(pid_t c)
{
    int status;
    pid_t w;
    while ((w = waitpid(c, &status, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0) {
        printf("child gone: %s\n", strerror(errno));
        return -1;
    }
    if (WIFEXITED(status))
        printf("child exited %d\n", WEXITSTATUS(status));
    else
        printf("child ended by signal %d\n", WTERMSIG(status));
    return 0;
}

#define BIG_LEN (64L << 20)
#define BIG_AT (40L << 20)
#define BIG_DATA (1L << 20)

/* The hash of the big memfd's data, as written. */
static uint64_t big_hash(void)
{
    uint64_t h = FNV_INIT;
    for (long i = 0; i < BIG_DATA / 8; i++) {
        uint64_t v = mix((uint64_t)i + 77);
        h = fnv(h, &v, sizeof v);
    }
    return h;
}

static void big_fill(int fd)
{
    static uint64_t buf[BIG_DATA / 8];
    for (long i = 0; i < BIG_DATA / 8; i++)
        buf[i] = mix((uint64_t)i + 77);
    if (ftruncate(fd, BIG_LEN) != 0 || pwrite(fd, buf, BIG_DATA, BIG_AT) != BIG_DATA)
        die("fill the big memfd");
}

static void big_check(int fd)
{
    static char buf[BIG_DATA];
    struct stat st;
    if (fstat(fd, &st) != 0 || pread(fd, buf, BIG_DATA, BIG_AT) != BIG_DATA)
        die("read the big memfd");
    printf("bigmemfd size=%s data=%s\n", st.st_size == BIG_LEN ? "yes" : "NO",
           fnv(FNV_INIT, buf, BIG_DATA) == big_hash() ? "yes" : "NO");
}

static void memory(int grandchild, int memfd, int big)
{
    int fd = -1;
    if (memfd) {
        fd = memfd_create("cshared", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, sizeof(struct shm)) != 0)
            die("memfd_create");
        fd = move_fd(fd, 20);
        if (big)
            big_fill(fd);
    }
    struct shm *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE,
                         MAP_SHARED | (memfd ? 0 : MAP_ANONYMOUS), fd, 0);
    if (m == MAP_FAILED)
        die("mmap");
    int p[2], q[2];
    pipe_or_die(p);
    pipe_or_die(q);
    pid_t c = fork_or_die();
    if (c == 0) {
        close(p[1]);
        close(q[0]);
        if (!grandchild) {
            answer(m, p[0], q[1]);
            _exit(3);
        }
        int p2[2], q2[2];
        pipe_or_die(p2);
        pipe_or_die(q2);
        pid_t g = fork_or_die();
        if (g == 0) {
            close(p[0]);
            close(q[1]);
            close(p2[1]);
            close(q2[0]);
            answer(m, p2[0], q2[1]);
            _exit(3);
        }
        close(p2[0]);
        close(q2[1]);
        int s;
        ssize_t r;
        while ((r = read(p[0], &s, sizeof s)) != 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r != sizeof s)
                _exit(1);
            write_all(p2[1], &s, sizeof s, "forward");
            read_all(q2[0], &s, sizeof s, "forward ack");
            write_all(q[1], &s, sizeof s, "ack");
        }
        close(p2[1]);
        int status;
        while (waitpid(g, &status, 0) < 0 && errno == EINTR)
            ;
        _exit(WIFEXITED(status) && WEXITSTATUS(status) == 3 ? 3 : 1);
    }
    close(p[0]);
    close(q[1]);
    printf("ready\n");
    for (int s = 1; s <= STEPS; s++) {
        m->a = mix((uint64_t)s);
        m->far[s] = (uint64_t)s * 3;
        write_all(p[1], &s, sizeof s, "write to the child");
        int ack;
        read_all(q[0], &ack, sizeof ack, "read the ack");
        if (ack != s || m->far[512 + s] != m->b)
            fail("wrong ack");
        printf("step %d answer=%016" PRIx64 "\n", s, m->b);
        pace(STEP_NS);
    }
    close(p[1]);
    reap(c);
    if (big)
        big_check(fd);
}

static void sems(void)
{
    char a[64], b[64];
    snprintf(a, sizeof a, "/cshared-%d-a", (int)getpid());
    snprintf(b, sizeof b, "/cshared-%d-b", (int)getpid());
    sem_t *ping = sem_open(a, O_CREAT | O_EXCL, 0600, 0);
    sem_t *pong = sem_open(b, O_CREAT | O_EXCL, 0600, 0);
    if (ping == SEM_FAILED || pong == SEM_FAILED)
        die("sem_open");
    if (sem_unlink(a) != 0 || sem_unlink(b) != 0)
        die("sem_unlink");
    pid_t c = fork_or_die();
    if (c == 0) {
        for (int s = 1; s <= STEPS; s++) {
            sem_wait5(ping, "child");
            printf("pong %d\n", s);
            sem_post(pong);
        }
        _exit(3);
    }
    printf("ready\n");
    for (int s = 1; s <= STEPS; s++) {
        printf("step %d ping\n", s);
        sem_post(ping);
        sem_wait5(pong, "parent");
        pace(STEP_NS);
    }
    reap(c);
}

struct msg {
    int n;
    uint64_t v;
};

static void socketpairs(void)
{
    int st[2], dg[2], t[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st) != 0 ||
        socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg) != 0)
        die("socketpair");
    pipe_or_die(t);
    pid_t c = fork_or_die();
    if (c == 0) {
        close(st[0]);
        close(dg[0]);
        close(t[1]);
        for (int s = 1; s <= STEPS; s++) {
            char token;
            read_all(t[0], &token, 1, "child: token");
            struct msg m;
            read_all(st[1], &m, sizeof m, "child: message");
            if (m.n != s || m.v != mix((uint64_t)s)) {
                printf("error child: message %d for step %d\n", m.n, s);
                _exit(1);
            }
            m.v = mix(m.v ^ 7);
            ssize_t w;
            while ((w = send(dg[1], &m, sizeof m, 0)) < 0 && errno == EINTR)
                ;
            if (w != sizeof m)
                _exit(1);
        }
        _exit(3);
    }
    close(st[1]);
    close(dg[1]);
    close(t[0]);
    int sent = 0;
    while (sent < AHEAD) {
        sent++;
        struct msg m = {sent, mix((uint64_t)sent)};
        write_all(st[0], &m, sizeof m, "message");
    }
    printf("ready\n");
    for (int s = 1; s <= STEPS + 1; s++) {
        if (sent < STEPS) {
            sent++;
            struct msg m = {sent, mix((uint64_t)sent)};
            write_all(st[0], &m, sizeof m, "message");
        }
        if (s <= STEPS)
            write_all(t[1], "t", 1, "token");
        if (s > 1) {
            struct msg m;
            ssize_t r;
            while ((r = recv(dg[0], &m, sizeof m, 0)) < 0 && errno == EINTR)
                ;
            if (r != sizeof m || m.n != s - 1)
                fail("wrong answer");
            printf("step %d answer=%016" PRIx64 "\n", s - 1, m.v);
        }
        pace(STEP_NS);
    }
    reap(c);
}

static uint64_t file_hash(const char *path, long *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open to hash");
    uint64_t h = FNV_INIT;
    char buf[4096];
    ssize_t n;
    *len = 0;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        h = fnv(h, buf, (size_t)n);
        *len += n;
    }
    close(fd);
    return h;
}

static void line(int fd, const char *who, int s)
{
    char l[64];
    int n = snprintf(l, sizeof l, "%s %d %016" PRIx64 "\n", who, s, mix((uint64_t)s));
    write_all(fd, l, (size_t)n, "write a line");
}

static void append(const char *dir)
{
    char log[4096], data[4096];
    snprintf(log, sizeof log, "%s/append.log", dir);
    snprintf(data, sizeof data, "%s/offset.dat", dir);
    int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    int df = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (lf < 0 || df < 0)
        die("open");
    int p[2], q[2];
    pipe_or_die(p);
    pipe_or_die(q);
    pid_t c = fork_or_die();
    if (c == 0) {
        close(p[1]);
        close(q[0]);
        int s;
        ssize_t r;
        while ((r = read(p[0], &s, sizeof s)) != 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r != sizeof s)
                _exit(1);
            line(lf, "child", s);
            line(df, "child", s);
            write_all(q[1], &s, sizeof s, "ack");
        }
        _exit(3);
    }
    close(p[0]);
    close(q[1]);
    printf("ready\n");
    for (int s = 1; s <= STEPS; s++) {
        line(lf, "parent", s);
        line(df, "parent", s);
        write_all(p[1], &s, sizeof s, "write to the child");
        int ack;
        read_all(q[0], &ack, sizeof ack, "read the ack");
        printf("step %d offset=%ld\n", s, (long)lseek(df, 0, SEEK_CUR));
        pace(STEP_NS);
    }
    close(p[1]);
    reap(c);
    long n1, n2;
    uint64_t h1 = file_hash(log, &n1), h2 = file_hash(data, &n2);
    printf("append.log %ld bytes %016" PRIx64 "\n", n1, h1);
    printf("offset.dat %ld bytes %016" PRIx64 "\n", n2, h2);
}

static void siblings(const char *dir)
{
    char data[4096];
    snprintf(data, sizeof data, "%s/siblings.dat", dir);
    int df = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (df < 0)
        die("open");
    int p[2][2], q[2][2];
    pid_t c[2];
    for (int i = 0; i < 2; i++) {
        pipe_or_die(p[i]);
        pipe_or_die(q[i]);
        c[i] = fork_or_die();
        if (c[i] == 0) {
            close(p[i][1]);
            close(q[i][0]);
            for (int j = 0; j < i; j++) {
                close(p[j][1]);
                close(q[j][0]);
            }
            const char *who = i == 0 ? "child1" : "child2";
            int s;
            ssize_t r;
            while ((r = read(p[i][0], &s, sizeof s)) != 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                if (r != sizeof s)
                    _exit(1);
                line(df, who, s);
                write_all(q[i][1], &s, sizeof s, "ack");
            }
            _exit(3 + i);
        }
        close(p[i][0]);
        close(q[i][1]);
    }
    close(df);
    printf("ready\n");
    for (int s = 1; s <= STEPS; s++) {
        for (int i = 0; i < 2; i++) {
            write_all(p[i][1], &s, sizeof s, "write to a child");
            int ack;
            read_all(q[i][0], &ack, sizeof ack, "read the ack");
        }
        printf("step %d\n", s);
        pace(STEP_NS);
    }
    for (int i = 0; i < 2; i++) {
        close(p[i][1]);
        reap(c[i]);
    }
    long n;
    uint64_t h = file_hash(data, &n);
    printf("siblings.dat %ld bytes %016" PRIx64 "\n", n, h);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: cshared memory|memory3|memfd|bigmemfd|sem|socketpair|append|siblings [DIR]");
    const char *mode = argv[1];
    tp_start();
    signal(SIGPIPE, SIG_IGN);
    int big = strcmp(mode, "bigmemfd") == 0;
    if (strcmp(mode, "memory") == 0 || strcmp(mode, "memory3") == 0 ||
        strcmp(mode, "memfd") == 0 || big)
        memory(strcmp(mode, "memory3") == 0, strcmp(mode, "memfd") == 0 || big, big);
    else if (strcmp(mode, "sem") == 0)
        sems();
    else if (strcmp(mode, "socketpair") == 0)
        socketpairs();
    else if (strcmp(mode, "append") == 0 && argc == 3)
        append(argv[2]);
    else if (strcmp(mode, "siblings") == 0 && argc == 3)
        siblings(argv[2]);
    else
        fail("unknown mode");
    printf("done %s\n", mode);
    return 0;
}
