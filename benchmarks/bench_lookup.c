/* SPDX-License-Identifier: MIT */
/*
 * bench_lookup.c — libdiscshm lookup latency and throughput, against
 * baselines measured in the same run:
 *   floor   an in-process hash table holding the same data (pointers)
 *   rwlock  the same table in shared memory under a process-shared
 *           pthread rwlock (what a lock-based design would pay)
 *   shm     libdiscshm zero-copy read section (find service, count)
 *   copy    libdiscshm disc_lookup copy-out of all instances
 * and reader throughput while a publisher process churns at 0, 1k, 10k
 * and 100k changes/s.
 *
 * usage: bench_lookup [--quick] [--md FILE] [--json FILE]  (bench_report.h)
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "discshm.h"
#include "layout.h"
#include "segwriter.h"

#define NINST 10
#define BATCH 32

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- baseline hash table (used in-process and inside shared memory) ---- */

struct b_inst {
    char id[DISC_ID_LEN + 1];
    char address[32];
    uint32_t weight;
};
struct b_svc {
    char name[32];
    uint32_t n;
    struct b_inst inst[NINST];
};
struct b_table {
    pthread_rwlock_t lock;
    uint32_t mask;
    uint32_t nsvc;
    int32_t *slot; /* index into svc, -1 empty */
    struct b_svc *svc;
};

static void *arena_alloc(int shared, size_t n)
{
    if (!shared)
        return calloc(1, n);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static struct b_table *b_build(unsigned nsvc, int shared)
{
    struct b_table *t = arena_alloc(shared, sizeof(*t));
    uint32_t cap = 1;
    while (cap < nsvc * 2)
        cap <<= 1;
    t->mask = cap - 1;
    t->nsvc = nsvc;
    t->slot = arena_alloc(shared, cap * sizeof(int32_t));
    t->svc = arena_alloc(shared, nsvc * sizeof(struct b_svc));
    memset(t->slot, 0xff, cap * sizeof(int32_t));
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_rwlock_init(&t->lock, &a);
    for (unsigned i = 0; i < nsvc; i++) {
        struct b_svc *s = &t->svc[i];
        snprintf(s->name, sizeof(s->name), "svc-%u", i);
        s->n = NINST;
        for (int k = 0; k < NINST; k++) {
            snprintf(s->inst[k].id, sizeof(s->inst[k].id), "%08x-0000-4000-8000-%012u", i, k);
            snprintf(s->inst[k].address, sizeof(s->inst[k].address), "10.0.%u.%d:80", i % 250, k);
            s->inst[k].weight = 10;
        }
        uint32_t h = (uint32_t)disc_hash(s->name, strlen(s->name), 1) & t->mask;
        while (t->slot[h] >= 0)
            h = (h + 1) & t->mask;
        t->slot[h] = (int32_t)i;
    }
    return t;
}

static const struct b_svc *b_find(const struct b_table *t, const char *name)
{
    size_t len = strlen(name);
    uint32_t h = (uint32_t)disc_hash(name, len, 1) & t->mask;
    for (uint32_t n = 0; n <= t->mask; n++, h = (h + 1) & t->mask) {
        int32_t i = t->slot[h];
        if (i < 0)
            return NULL;
        if (strcmp(t->svc[i].name, name) == 0)
            return &t->svc[i];
    }
    return NULL;
}

/* ---- measured operations ---- */

enum op { OP_FLOOR, OP_RWLOCK, OP_SHM, OP_COPY, NOPS };
static const char *op_name[NOPS] = {"in-process hash (floor)", "shm + pthread rwlock",
                                    "libdiscshm zero-copy", "libdiscshm copy-out"};

struct ctx {
    struct b_table *local, *shared;
    disc_handle *h;
    char (*keys)[32];
    unsigned nkeys;
    char *buf;
};

static volatile uint64_t sink;

static inline void do_op(struct ctx *c, enum op op, const char *key)
{
    switch (op) {
    case OP_FLOOR: {
        const struct b_svc *s = b_find(c->local, key);
        sink += s ? s->n + (unsigned char)s->inst[0].address[0] : 0;
        break;
    }
    case OP_RWLOCK: {
        pthread_rwlock_rdlock(&c->shared->lock);
        const struct b_svc *s = b_find(c->shared, key);
        sink += s ? s->n + (unsigned char)s->inst[0].address[0] : 0;
        pthread_rwlock_unlock(&c->shared->lock);
        break;
    }
    case OP_SHM: {
        struct disc_read rd;
        struct disc_service_view sv;
        struct disc_instance v;
        do {
            if (disc_read_begin(c->h, &rd) < 0)
                abort();
            if (disc_read_service(&rd, key, &sv) == 0 && disc_read_instance(&rd, &sv, 0, &v) == 0)
                sink += sv.n_instances + (unsigned char)v.address[0];
        } while (disc_read_end(&rd) == -EAGAIN);
        break;
    }
    case OP_COPY: {
        struct disc_instance *list;
        size_t need;
        int n = disc_lookup(c->h, key, c->buf, 1 << 16, &list, &need);
        sink += n > 0 ? (unsigned)n + (unsigned char)list[0].address[0] : 0;
        break;
    }
    default:
        break;
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Per-lookup latency from batches of BATCH lookups: median and p99 of the
 * batch means (ns). */
static void latency(struct ctx *c, enum op op, int hot, int batches, double *med, double *p99)
{
    double *v = malloc(sizeof(double) * (size_t)batches);
    unsigned seed = 7;
    for (int b = 0; b < batches; b++) {
        const char *k[BATCH];
        for (int i = 0; i < BATCH; i++)
            k[i] = c->keys[hot ? 0 : rand_r(&seed) % c->nkeys];
        int64_t t0 = now_ns();
        for (int i = 0; i < BATCH; i++)
            do_op(c, op, k[i]);
        v[b] = (double)(now_ns() - t0) / BATCH;
    }
    qsort(v, (size_t)batches, sizeof(double), cmp_d);
    *med = v[batches / 2];
    *p99 = v[batches * 99 / 100];
    free(v);
}

static double throughput(struct ctx *c, enum op op, int ms)
{
    unsigned seed = 3;
    uint64_t n = 0;
    int64_t end = now_ns() + (int64_t)ms * 1000000, t0 = now_ns();
    while (now_ns() < end) {
        for (int i = 0; i < 256; i++)
            do_op(c, op, c->keys[rand_r(&seed) % c->nkeys]);
        n += 256;
    }
    return (double)n / ((double)(now_ns() - t0) / 1e9);
}

/* ---- writer ---- */

static void put_inst(struct seg_writer *w, unsigned s, unsigned k, unsigned rev)
{
    char id[DISC_ID_LEN + 1], svc[32], addr[32];
    snprintf(id, sizeof(id), "%08x-0000-4000-8000-%012u", s, k);
    snprintf(svc, sizeof(svc), "svc-%u", s);
    snprintf(addr, sizeof(addr), "10.0.%u.%u:%u", s % 250, k, 80 + rev % 1000);
    struct segw_tag tag = {"zone", "a"};
    struct segw_instance in = {.id = id,
                               .service = svc,
                               .version = "1.0.0",
                               .host = "bench",
                               .az = "az1",
                               .address = addr,
                               .addr_kind = DISC_ADDR_TCP,
                               .weight = 10,
                               .tags = &tag,
                               .n_tags = 1};
    if (segw_put(w, &in) < 0)
        abort();
}

static struct seg_writer *g_writer; /* the benchmark program's only writer */

/* A fresh segment with nsvc services; readers of the old one follow. */
static int build(const char *name, unsigned nsvc)
{
    if (g_writer)
        segw_close(g_writer, false);
    struct segw_config cfg = {.segment_bytes = 1ull << 30};
    if (segw_open(name, &cfg, &g_writer) < 0)
        return -1;
    for (unsigned s = 0; s < nsvc; s++)
        for (unsigned k = 0; k < NINST; k++)
            put_inst(g_writer, s, k, 0);
    return segw_commit(g_writer) > 0 ? 0 : -1;
}

static void churn_loop(unsigned nsvc, unsigned rate)
{
    unsigned seed = 1, rev = 1;
    int64_t start = now_ns();
    uint64_t done = 0;
    for (;;) {
        int64_t t = now_ns();
        uint64_t due = (uint64_t)((double)(t - start) / 1e9 * rate);
        while (done < due) {
            put_inst(g_writer, rand_r(&seed) % nsvc, rand_r(&seed) % NINST, rev++);
            done++;
        }
        if (segw_pending(g_writer))
            segw_commit(g_writer);
        segw_tick(g_writer);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    int argc0 = argc;
    char **argv0 = malloc(sizeof(char *) * (size_t)(argc + 1));
    memcpy(argv0, argv, sizeof(char *) * (size_t)(argc + 1));
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0 || argc != 1) {
        fprintf(stderr, "usage: %s [--quick] [--md FILE] [--json FILE]\n", argv[0]);
        return 2;
    }
    int quick = opts.quick;
    struct bench_report *rep =
        bench_report_open("bench_lookup", "Lookups: libdiscshm vs baselines", &opts, argc0, argv0);
    if (!rep)
        return 1;
    int batches = quick ? 5000 : 40000;
    int tput_ms = quick ? 300 : 1000;
    unsigned sizes[2] = {1000, 10000};
    char name[64];
    snprintf(name, sizeof(name), "bench-lookup-%d", (int)getpid());

    printf("%-26s %-6s %-7s %10s %10s %14s\n", "operation", "svcs", "keys", "median ns", "p99 ns",
           "lookups/s");
    bench_md(rep,
             "| operation | services x 10 | keys | median ns | p99 ns | lookups/s (1 thread) |\n"
             "|---|---|---|---|---|---|\n");
    double hot_floor = 0, hot_shm = 0;
    for (int si = 0; si < 2; si++) {
        unsigned nsvc = sizes[si];
        if (build(name, nsvc) < 0) {
            fprintf(stderr, "cannot create segment %s\n", name);
            return 1;
        }
        struct ctx c = {0};
        c.local = b_build(nsvc, 0);
        c.shared = b_build(nsvc, 1);
        c.nkeys = nsvc;
        c.keys = malloc(nsvc * sizeof(*c.keys));
        for (unsigned s = 0; s < nsvc; s++)
            snprintf(c.keys[s], 32, "svc-%u", s);
        c.buf = malloc(1 << 16);
        if (disc_open(name, 0, &c.h) < 0)
            return 1;
        for (int hot = 1; hot >= 0; hot--)
            for (int op = 0; op < NOPS; op++) {
                double med, p99;
                latency(&c, (enum op)op, hot, batches / 10, &med, &p99); /* warm */
                latency(&c, (enum op)op, hot, batches, &med, &p99);
                double tp = throughput(&c, (enum op)op, tput_ms);
                printf("%-26s %-6u %-7s %10.1f %10.1f %14.0f\n", op_name[op], nsvc,
                       hot ? "hot" : "random", med, p99, tp);
                bench_md(rep, "| %s | %u | %s | %.1f | %.1f | %.0f |\n", op_name[op], nsvc,
                         hot ? "hot" : "random", med, p99, tp);
                char rn[128];
                snprintf(rn, sizeof(rn), "%s, %u services, %s", op_name[op], nsvc,
                         hot ? "hot" : "random");
                bench_row(rep, rn, "ns", med, p99, "\"lookups_per_s\": %.0f", tp);
                if (si == 0 && hot && op == OP_FLOOR)
                    hot_floor = med;
                if (si == 0 && hot && op == OP_SHM)
                    hot_shm = med;
            }

        if (si == 0) {
            /* Reader throughput while another process churns. */
            unsigned rates[4] = {0, 1000, 10000, 100000};
            double idle = 0;
            printf("\n%-22s %14s %10s %12s\n", "publisher churn", "lookups/s", "vs idle",
                   "commits");
            bench_md(rep, "\n| publisher churn (changes/s) | reader lookups/s | vs idle |\n"
                          "|---|---|---|\n");
            for (int r = 0; r < 4; r++) {
                /* The churning child takes over the writer's state; each run
                 * starts from a fresh segment so the parent's copy is never
                 * used after a child changed the arena. */
                if (build(name, nsvc) < 0)
                    return 1;
                fflush(NULL);
                pid_t pid = fork();
                if (pid == 0) {
                    churn_loop(nsvc, rates[r]);
                    _exit(0);
                }
                struct timespec ts = {0, 100000000};
                nanosleep(&ts, NULL);
                struct disc_status st0, st1;
                disc_status(c.h, &st0);
                double tp = throughput(&c, OP_SHM, quick ? 500 : 2000);
                disc_status(c.h, &st1);
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                if (r == 0)
                    idle = tp;
                printf("%-22u %14.0f %9.1f%% %12lu\n", rates[r], tp, 100.0 * tp / idle,
                       (unsigned long)(st1.generation - st0.generation));
                bench_md(rep, "| %u | %.0f | %.1f%% |\n", rates[r], tp, 100.0 * tp / idle);
                char rn[128];
                snprintf(rn, sizeof(rn), "zero-copy reader, publisher churning %u changes/s",
                         rates[r]);
                bench_row(rep, rn, "ops/s", tp, NAN, "\"vs_idle\": %.4f", tp / idle);
            }
            printf("\n");
            bench_md(rep, "\n| operation | services x 10 | keys | median ns | p99 ns | "
                          "lookups/s (1 thread) |\n|---|---|---|---|---|---|\n");
        }
        disc_close(c.h);
        segw_close(g_writer, true);
        g_writer = NULL;
        free(c.keys);
        free(c.buf);
    }
    printf("hot lookup: libdiscshm zero-copy / in-process floor = %.2fx\n", hot_shm / hot_floor);
    bench_md(rep, "\nHot lookup, zero-copy vs in-process floor: %.2fx\n\n", hot_shm / hot_floor);
    bench_target(rep, "zero-copy hot lookup / in-process pointer lookup (1000 services)",
                 hot_shm / hot_floor, "<=", 1.3);
    free(argv0);
    return bench_report_close(rep) < 0 ? 1 : 0;
}
