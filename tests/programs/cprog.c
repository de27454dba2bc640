/*
 * Test program 1 for migrate: state in every kind of memory a C program has.
 *
 *  - globals (.data and .bss),
 *  - thread-local storage (__thread, in the static TLS block),
 *  - the brk heap (small malloc blocks in a linked list, and an sbrk'd array),
 *  - a 256 MiB anonymous mmap filled with a pattern, checked and folded every step,
 *  - a 20000-frame recursion in progress across steps 30..50,
 *  - clock_gettime(CLOCK_MONOTONIC) through the vDSO, checked for monotonicity.
 *
 * Protocol: "start", then one "step N ..." line per step, then "done <checksum>".
 * Every line is deterministic: it depends on neither time, pid nor addresses.
 * Steps are paced with nanosleep (30 ms) unless MIGRATE_TEST_NOSLEEP is set,
 * which only makes the reference run faster and changes no output.
 */
#include "testprog.h"

#include <sys/mman.h>

#define STEPS 80
#define REC_STEP 30       /* the recursion starts at this step ...   */
#define REC_LAST 50       /* ... and the bottom frame runs up to this */
#define REC_DEPTH 20000
#define SLEEP_NS 30000000L
#define REGION_BYTES (256UL << 20)
#define PAGE 4096UL
#define NPAGES (REGION_BYTES / PAGE)
#define WORDS_PER_PAGE (PAGE / 8)
#define NODES 3000
#define SBRK_WORDS 8192

struct node {
    struct node *next;
    uint64_t value;
    uint64_t id;
    char pad[24];
};

/* .data */
static uint64_t g_data = 0x0123456789abcdefULL;
static const char *g_name = "cprog";
/* .bss */
static uint64_t g_bss[512];
static struct timespec g_last_mono;
static uint64_t *g_region;
static struct node *g_list;
static uint64_t *g_sbrk;
static uint64_t g_rec_acc;

/* TLS */
static __thread uint64_t t_counter = 7;
static __thread uint64_t t_array[64];

/* Prints "error WHAT A B" and exits with status 1. */
static void die_at(const char *what, uint64_t a, uint64_t b)
{
    printf("error %s %" PRIu64 " %" PRIu64 "\n", what, a, b);
    exit(1);
}

/* The first word of every page is a tag that never changes. */
static uint64_t page_tag(uint64_t p)
{
    return mix(p) | 1;
}

static void region_init(void)
{
    g_region = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_region == MAP_FAILED)
        die_at("mmap", 0, 0);
    for (uint64_t p = 0; p < NPAGES; p++) {
        uint64_t *w = g_region + p * WORDS_PER_PAGE;
        w[0] = page_tag(p);
        for (uint64_t i = 1; i < WORDS_PER_PAGE; i += 64)
            w[i] = p * 0x9e3779b97f4a7c15ULL + i;
    }
}

/* Check every page's tag, fold one word per page, and change it. */
static uint64_t region_step(int step)
{
    uint64_t acc = 0;
    uint64_t slot = 1 + (uint64_t)(step % 8) * 64;
    for (uint64_t p = 0; p < NPAGES; p++) {
        uint64_t *w = g_region + p * WORDS_PER_PAGE;
        if (w[0] != page_tag(p))
            die_at("region-tag", p, w[0]);
        acc = acc * 31 + w[slot];
        w[slot] = mix(w[slot] + (uint64_t)step);
    }
    return acc;
}

static uint64_t region_sum(void)
{
    uint64_t acc = 0;
    for (uint64_t p = 0; p < NPAGES; p++) {
        uint64_t *w = g_region + p * WORDS_PER_PAGE;
        for (uint64_t i = 0; i < WORDS_PER_PAGE; i += 64)
            acc = mix(acc ^ w[i]);
    }
    return acc;
}

static void heap_init(void)
{
    for (uint64_t i = 0; i < NODES; i++) {
        struct node *n = malloc(sizeof *n);
        if (!n)
            die_at("malloc", i, 0);
        n->id = i;
        n->value = mix(i);
        memset(n->pad, (int)(i & 0x7f), sizeof n->pad);
        n->next = g_list;
        g_list = n;
    }
    void *old = sbrk(SBRK_WORDS * 8);
    if (old == (void *)-1)
        die_at("sbrk", 0, 0);
    g_sbrk = old;
    for (uint64_t i = 0; i < SBRK_WORDS; i++)
        g_sbrk[i] = i * 3 + 1;
}

/* Walk the list, update every node, and replace one node with a fresh block. */
static uint64_t heap_step(int step)
{
    uint64_t acc = 0, count = 0;
    struct node **pp = &g_list;
    for (struct node *n = g_list; n; n = n->next) {
        n->value = mix(n->value + (uint64_t)step);
        acc += n->value ^ n->id;
        if (n->pad[0] != (char)(n->id & 0x7f))
            die_at("node-pad", n->id, (uint64_t)n->pad[0]);
        count++;
    }
    if (count != NODES)
        die_at("node-count", count, NODES);
    /* Free the ((step*7) % NODES)th node and put a new one in its place. */
    uint64_t k = ((uint64_t)step * 7) % NODES;
    for (uint64_t i = 0; i < k; i++)
        pp = &(*pp)->next;
    struct node *old = *pp;
    struct node *fresh = malloc(sizeof *fresh);
    if (!fresh)
        die_at("malloc", (uint64_t)step, 0);
    *fresh = *old;
    fresh->value ^= 0x5555;
    *pp = fresh;
    free(old);

    for (uint64_t i = 0; i < SBRK_WORDS; i++) {
        g_sbrk[i] = g_sbrk[i] * 6364136223846793005ULL + (uint64_t)step;
        acc ^= g_sbrk[i];
    }
    return acc;
}

static const char *mono_step(void)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        die_at("clock_gettime", (uint64_t)errno, 0);
    int ok = now.tv_sec > g_last_mono.tv_sec ||
             (now.tv_sec == g_last_mono.tv_sec && now.tv_nsec >= g_last_mono.tv_nsec);
    g_last_mono = now;
    return ok ? "ok" : "BACKWARDS";
}

static void do_step(int step, int depth)
{
    g_data = mix(g_data + (uint64_t)step);
    g_bss[step % 512] += g_data;
    t_counter = t_counter * 3 + (uint64_t)step;
    t_array[step % 64] ^= t_counter;
    uint64_t heap = heap_step(step);
    uint64_t region = region_step(step);
    const char *mono = mono_step();
    printf("step %d depth=%d g=%016" PRIx64 " tls=%016" PRIx64 " heap=%016" PRIx64
           " map=%016" PRIx64 " mono=%s\n",
           step, depth, g_data, t_counter, heap, region, mono);
    pace(SLEEP_NS);
}

/*
 * Recursion that is in progress across steps: every frame holds state in a
 * local array, the bottom frame runs steps REC_STEP..REC_LAST, and the way
 * back up folds each frame's state in.
 */
static uint64_t descend(int depth, uint64_t carry)
{
    volatile uint64_t local[4];
    local[0] = carry;
    local[1] = mix(carry + (uint64_t)depth);
    local[2] = (uint64_t)depth;
    local[3] = local[1] ^ local[0];
    uint64_t r;
    if (depth == REC_DEPTH) {
        for (int s = REC_STEP; s <= REC_LAST; s++)
            do_step(s, depth);
        r = local[3];
    } else {
        r = descend(depth + 1, local[1]);
    }
    /* Non-tail: every frame's locals are used after the call returns. */
    if (local[2] != (uint64_t)depth || local[1] != mix(local[0] + (uint64_t)depth))
        die_at("frame", (uint64_t)depth, local[2]);
    return mix(r + local[3]);
}

int main(void)
{
    tp_start();
    heap_init();
    region_init();
    for (int s = 1; s <= STEPS; s++) {
        if (s == REC_STEP) {
            g_rec_acc = descend(1, 42);
            s = REC_LAST;
            printf("recursion %016" PRIx64 "\n", g_rec_acc);
        } else {
            do_step(s, 0);
        }
    }
    uint64_t sum = mix(g_data);
    for (int i = 0; i < 512; i++)
        sum = mix(sum ^ g_bss[i]);
    sum = mix(sum ^ t_counter);
    for (int i = 0; i < 64; i++)
        sum = mix(sum ^ t_array[i]);
    for (struct node *n = g_list; n; n = n->next)
        sum = mix(sum ^ n->value ^ n->id);
    for (uint64_t i = 0; i < SBRK_WORDS; i++)
        sum = mix(sum ^ g_sbrk[i]);
    sum = mix(sum ^ g_rec_acc);
    sum = mix(sum ^ region_sum());
    sum = mix(sum ^ (uint64_t)strlen(g_name));
    printf("done %016" PRIx64 "\n", sum);
    return 0;
}
