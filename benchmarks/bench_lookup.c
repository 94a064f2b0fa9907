/* SPDX-License-Identifier: MIT */
/*
 * bench_lookup.c — libdiscshm lookups against every baseline a reader of a
 * service registry could use instead, all measured in this one process run
 * (issue 13):
 *
 *   floor pointer   an in-process open-addressing table of the same
 *                   services (same hash function); returns a pointer
 *   floor copy-out  the same table, copying the service's 10 records out
 *   rwlock          the same table in a MAP_SHARED mapping under a
 *                   PTHREAD_PROCESS_SHARED rwlock: idle (its best case), and
 *                   with a writer process changing 10k records/s and one
 *                   more reader process (writer-preferring, so the writer
 *                   keeps its rate)
 *   unix socket     an agent process holding the table answers the query
 *                   over a connected AF_UNIX seqpacket socket: the least
 *                   any socket-based local agent (e.g. Consul's) can cost
 *   zoo_get         a loopback ZooKeeper (tests/harness/zk_server.c) holding
 *                   one node per service with the same 10 records
 *   libdiscshm      zero-copy (read section, service, instance 0) and
 *                   copy-out (disc_lookup of all 10 instances), idle and
 *                   with a publisher process churning 10k changes/s and one
 *                   more reader process
 *
 * plus instruction counts per lookup from valgrind --tool=callgrind (the
 * program runs itself under callgrind with --icount and toggles collection
 * around the loop), and reader scaling: 1, 2, 4, 8 reader processes with a
 * writer churning 0, 10k and 100k changes/s, libdiscshm vs the rwlock table.
 *
 * usage: bench_lookup [--quick] [--md FILE] [--json FILE]  (bench_report.h)
 *        bench_lookup --scaling [--quick] [--md FILE] [--json FILE]
 *                              (the reader-scaling phase alone)
 *        bench_lookup --icount OP NSVC HOT N   (internal: the callgrind driver)
 *
 * The registry lives in a private registry directory on /dev/shm (removed
 * at exit). Every child process dies with this one (PR_SET_PDEATHSIG).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif

#include "bench_report.h"
#include "discshm.h"
#include "layout.h"
#include "segwriter.h"
#include "zk_server.h"

#define NINST       10
#define BATCH       32
#define MAX_READERS 8

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
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

static void arena_free(int shared, void *p, size_t n)
{
    if (shared)
        munmap(p, n);
    else
        free(p);
}

static size_t b_cap(unsigned nsvc)
{
    size_t cap = 1;
    while (cap < (size_t)nsvc * 2)
        cap <<= 1;
    return cap;
}

static struct b_table *b_build(unsigned nsvc, int shared)
{
    struct b_table *t = arena_alloc(shared, sizeof(*t));
    size_t cap = b_cap(nsvc);
    if (!t)
        return NULL;
    t->mask = (uint32_t)cap - 1;
    t->nsvc = nsvc;
    t->slot = arena_alloc(shared, cap * sizeof(int32_t));
    t->svc = arena_alloc(shared, nsvc * sizeof(struct b_svc));
    if (!t->slot || !t->svc)
        return NULL;
    memset(t->slot, 0xff, cap * sizeof(int32_t));
    /* Writer-preferring: a reader-preferring lock would starve the churning
     * writer whenever readers overlap, and the table would never change. */
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&t->lock, &a);
    pthread_rwlockattr_destroy(&a);
    for (unsigned i = 0; i < nsvc; i++) {
        struct b_svc *s = &t->svc[i];
        snprintf(s->name, sizeof(s->name), "svc-%u", i);
        s->n = NINST;
        for (unsigned k = 0; k < NINST; k++) {
            snprintf(s->inst[k].id, sizeof(s->inst[k].id), "%08x-0000-4000-8000-%012u", i, k);
            snprintf(s->inst[k].address, sizeof(s->inst[k].address), "10.0.%u.%u:80", i % 250, k);
            s->inst[k].weight = 10;
        }
        uint32_t h = (uint32_t)disc_hash(s->name, strlen(s->name), 1) & t->mask;
        while (t->slot[h] >= 0)
            h = (h + 1) & t->mask;
        t->slot[h] = (int32_t)i;
    }
    return t;
}

static void b_free(struct b_table *t, int shared)
{
    if (!t)
        return;
    pthread_rwlock_destroy(&t->lock);
    arena_free(shared, t->slot, b_cap(t->nsvc) * sizeof(int32_t));
    arena_free(shared, t->svc, t->nsvc * sizeof(struct b_svc));
    arena_free(shared, t, sizeof(*t));
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

/* ---- the measured operations ---- */

enum op {
    OP_FLOOR,      /* in-process table, pointer */
    OP_FLOOR_COPY, /* in-process table, copy the 10 records out */
    OP_RWLOCK,     /* shared table: rdlock, find, read instance 0, unlock */
    OP_RWLOCK_COPY,
    OP_SHM,  /* libdiscshm zero-copy: begin, service, instance 0, end */
    OP_COPY, /* libdiscshm disc_lookup: all 10 instances copied out */
    OP_SOCK, /* unix-socket agent round trip, 10 records in the reply */
    NOPS
};
static const char *const op_name[NOPS] = {
    "in-process floor, pointer",
    "in-process floor, copy-out of 10 records",
    "rwlock table in shm, pointer read under the lock",
    "rwlock table in shm, copy-out of 10 records under the lock",
    "libdiscshm zero-copy (service + instance 0)",
    "libdiscshm copy-out (disc_lookup, 10 instances)",
    "unix-socket agent in another process, 10 records",
};
/* The floor each operation is compared with: pointer-like or copy-out. */
static const int op_copies[NOPS] = {0, 1, 0, 1, 0, 1, 1};

struct reply {
    uint32_t n;
    struct b_inst inst[NINST];
};

struct ctx {
    struct b_table *local, *shared;
    disc_handle *h;
    char (*keys)[32];
    unsigned nkeys;
    char *buf;          /* disc_lookup's buffer */
    struct b_inst *out; /* the floors' and the rwlock's copy-out target */
    int sock;           /* connected to the agent, -1 if none */
    struct reply *rep;
};

static volatile uint64_t sink;
static uint64_t g_retries; /* this process's zero-copy sections retried */

static inline void do_op(struct ctx *c, enum op op, const char *key)
{
    switch (op) {
    case OP_FLOOR: {
        const struct b_svc *s = b_find(c->local, key);
        sink += s ? s->n + (unsigned char)s->inst[0].address[0] : 0;
        break;
    }
    case OP_FLOOR_COPY: {
        const struct b_svc *s = b_find(c->local, key);
        if (s) {
            memcpy(c->out, s->inst, s->n * sizeof(struct b_inst));
            sink += s->n + (unsigned char)c->out[0].address[0];
        }
        break;
    }
    case OP_RWLOCK: {
        pthread_rwlock_rdlock(&c->shared->lock);
        const struct b_svc *s = b_find(c->shared, key);
        sink += s ? s->n + (unsigned char)s->inst[0].address[0] : 0;
        pthread_rwlock_unlock(&c->shared->lock);
        break;
    }
    case OP_RWLOCK_COPY: {
        pthread_rwlock_rdlock(&c->shared->lock);
        const struct b_svc *s = b_find(c->shared, key);
        uint32_t n = s ? s->n : 0;
        if (s)
            memcpy(c->out, s->inst, n * sizeof(struct b_inst));
        pthread_rwlock_unlock(&c->shared->lock);
        sink += n ? n + (unsigned char)c->out[0].address[0] : 0;
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
        } while (disc_read_end(&rd) == -EAGAIN && ++g_retries);
        break;
    }
    case OP_COPY: {
        struct disc_instance *list;
        size_t need;
        int n = disc_lookup(c->h, key, c->buf, 1 << 16, &list, &need);
        sink += n > 0 ? (unsigned)n + (unsigned char)list[0].address[0] : 0;
        break;
    }
    case OP_SOCK: {
        size_t len = strlen(key);
        if (write(c->sock, key, len) != (ssize_t)len)
            abort();
        ssize_t got = read(c->sock, c->rep, sizeof(*c->rep));
        if (got < (ssize_t)sizeof(uint32_t))
            abort();
        sink += c->rep->n ? c->rep->n + (unsigned char)c->rep->inst[0].address[0] : 0;
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

/* Per-lookup latency (ns): median and p99 over samples. A sample is the
 * mean of BATCH lookups for the fast operations (the clock's own cost is
 * ~20 ns) and one lookup for the socket (microseconds each). */
static void latency(struct ctx *c, enum op op, int hot, int samples, double *med, double *p99)
{
    int batch = op == OP_SOCK ? 1 : BATCH;
    if (op == OP_SOCK && samples > 20000)
        samples = 20000;
    double *v = malloc(sizeof(double) * (size_t)samples);
    unsigned seed = 7;
    for (int b = 0; b < samples; b++) {
        const char *k[BATCH];
        for (int i = 0; i < batch; i++)
            k[i] = c->keys[hot ? 0 : rand_r(&seed) % c->nkeys];
        int64_t t0 = now_ns();
        for (int i = 0; i < batch; i++)
            do_op(c, op, k[i]);
        v[b] = (double)(now_ns() - t0) / batch;
    }
    qsort(v, (size_t)samples, sizeof(double), cmp_d);
    *med = v[samples / 2];
    *p99 = v[(size_t)samples * 99 / 100];
    free(v);
}

/* ---- processes: writers, background readers, the socket agent ---- */

struct line {
    _Atomic uint64_t v;
    char pad[56];
};
/* Shared with the child processes (MAP_SHARED). */
struct ctl {
    struct line count[MAX_READERS];   /* lookups done by each reader process */
    struct line retries[MAX_READERS]; /* zero-copy sections that returned -EAGAIN */
    struct line rcpu_ns[MAX_READERS]; /* each reader process's CPU time, with count */
    struct line rate[2];              /* changes/s asked of each writer (enum kind) */
    struct line changes[2];           /* changes made by each writer process */
    struct line cpu_ns[2];            /* each writer process's CPU time (user + system) */
    struct line stop_readers;         /* reader processes exit when set */
    struct line stop_writer;          /* the writer processes exit when set */
};
static struct ctl *g_ctl;

static void child_setup(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(0);
}

/* Stop the given children: they see g_ctl->stop between two lookups or
 * changes and exit, so none dies holding the rwlock (a process killed
 * inside it would leave it locked for good). SIGKILL after 10 s. */
static double stop_children(const pid_t *pid, int n)
{
    atomic_store(&g_ctl->stop_readers.v, 1);
    atomic_store(&g_ctl->stop_writer.v, 1);
    int64_t deadline = now_ns() + 10000000000LL;
    double cpu = 0; /* CPU seconds (user + system) of the children reaped */
    for (int i = 0; i < n; i++) {
        if (pid[i] <= 0)
            continue;
        struct rusage ru;
        pid_t r;
        while ((r = wait4(pid[i], NULL, WNOHANG, &ru)) == 0) {
            if (now_ns() > deadline) {
                kill(pid[i], SIGKILL);
                r = wait4(pid[i], NULL, 0, &ru);
                break;
            }
            sleep_ms(1);
        }
        if (r == pid[i])
            cpu += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    atomic_store(&g_ctl->stop_readers.v, 0);
    atomic_store(&g_ctl->stop_writer.v, 0);
    return cpu;
}

/* Stop reader processes only (a writer keeps going); the minor page
 * faults they took over their lives. */
static uint64_t stop_readers(const pid_t *pid, int n)
{
    uint64_t minflt = 0;
    atomic_store(&g_ctl->stop_readers.v, 1);
    for (int i = 0; i < n; i++) {
        struct rusage ru;
        if (pid[i] > 0 && wait4(pid[i], NULL, 0, &ru) == pid[i]) /* after <= 64 lookups */
            minflt += (uint64_t)ru.ru_minflt;
    }
    atomic_store(&g_ctl->stop_readers.v, 0);
    return minflt;
}

/* Stop one child; its CPU seconds. */
static double stop_child(pid_t pid)
{
    return stop_children(&pid, 1);
}

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
static char g_segname[64];

/* A fresh segment with nsvc services; readers of the old one follow. */
static int build(unsigned nsvc)
{
    if (g_writer)
        segw_close(g_writer, false);
    char err[256] = "";
    struct segw_config cfg = {.segment_bytes = nsvc >= 100000 ? 1ull << 30 : 256ull << 20,
                              .err = err,
                              .errlen = sizeof(err)};
    int rc = segw_open(g_segname, &cfg, &g_writer);
    if (rc < 0) {
        fprintf(stderr, "bench_lookup: segw_open: %s: %s\n", strerror(-rc), err);
        return -1;
    }
    for (unsigned s = 0; s < nsvc; s++)
        for (unsigned k = 0; k < NINST; k++)
            put_inst(g_writer, s, k, 0);
    return segw_commit(g_writer) > 0 ? 0 : -1;
}

enum kind { KIND_SHM, KIND_RWLOCK };

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Paced writers: every millisecond, make the changes due by now at the
 * rate g_ctl->rate[kind] asks (re-read each time: a change of rate starts
 * a new pace from that moment; 0 = idle, the libdiscshm writer still
 * ticks). Both change a random instance of a random service. */
static void churn_loop(struct ctx *c, enum kind kind)
{
    unsigned seed = 1, rev = 1;
    unsigned nsvc = c->nkeys, cur = 0;
    struct b_table *t = c->shared;
    int64_t base_t = now_ns();
    uint64_t done = 0, base_done = 0;
    for (;;) {
        unsigned r = (unsigned)atomic_load_explicit(&g_ctl->rate[kind].v, memory_order_relaxed);
        int64_t now = now_ns();
        if (r != cur) {
            cur = r;
            base_t = now;
            base_done = done;
        }
        uint64_t due = base_done + (uint64_t)((double)(now - base_t) / 1e9 * cur);
        while (done < due) {
            unsigned s = rand_r(&seed) % nsvc, k = rand_r(&seed) % NINST;
            if (kind == KIND_SHM) {
                put_inst(g_writer, s, k, rev++);
            } else {
                pthread_rwlock_wrlock(&t->lock);
                struct b_inst *in = &t->svc[s].inst[k];
                snprintf(in->address, sizeof(in->address), "10.0.%u.%u:%u", s % 250, k,
                         80 + rev++ % 1000);
                pthread_rwlock_unlock(&t->lock);
            }
            done++;
        }
        if (kind == KIND_SHM) {
            if (segw_pending(g_writer))
                segw_commit(g_writer);
            segw_tick(g_writer);
        }
        atomic_store_explicit(&g_ctl->changes[kind].v, done, memory_order_relaxed);
        atomic_store_explicit(&g_ctl->cpu_ns[kind].v, (uint64_t)cpu_ns(), memory_order_relaxed);
        if (atomic_load_explicit(&g_ctl->stop_writer.v, memory_order_relaxed))
            return;
        sleep_ms(1);
    }
}

/* A writer process changing g_ctl->rate[kind] records per second, starting
 * at `rate`. The libdiscshm writer takes over the program's segment writer:
 * the caller must build() a fresh segment before the parent writes again. */
static pid_t start_writer_at(struct ctx *c, enum kind kind, unsigned rate)
{
    atomic_store(&g_ctl->rate[kind].v, rate);
    atomic_store(&g_ctl->changes[kind].v, 0);
    atomic_store(&g_ctl->cpu_ns[kind].v, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_setup();
        churn_loop(c, kind);
        _exit(0);
    }
    return pid;
}

/* The same, none if rate is 0. */
static pid_t start_writer(struct ctx *c, enum kind kind, unsigned rate)
{
    return rate ? start_writer_at(c, kind, rate) : 0;
}

/* A reader process looping over random keys, counting into g_ctl->count[idx]. */
static pid_t start_reader(struct ctx *c, enum op op, int idx)
{
    atomic_store(&g_ctl->count[idx].v, 0);
    atomic_store(&g_ctl->retries[idx].v, 0);
    atomic_store(&g_ctl->rcpu_ns[idx].v, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    child_setup();
    if ((op == OP_SHM || op == OP_COPY) && disc_open(g_segname, 0, &c->h) < 0)
        _exit(1);
    unsigned seed = 100u + (unsigned)idx;
    for (uint64_t n = 0;;) {
        for (int i = 0; i < 64; i++)
            do_op(c, op, c->keys[rand_r(&seed) % c->nkeys]);
        n += 64;
        atomic_store_explicit(&g_ctl->count[idx].v, n, memory_order_relaxed);
        atomic_store_explicit(&g_ctl->retries[idx].v, g_retries, memory_order_relaxed);
        atomic_store_explicit(&g_ctl->rcpu_ns[idx].v, (uint64_t)cpu_ns(), memory_order_relaxed);
        if (atomic_load_explicit(&g_ctl->stop_readers.v, memory_order_relaxed))
            _exit(0);
    }
}

/* The agent: answers "service name" with {n, n records} from its table. */
static pid_t start_agent(struct ctx *c)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_setup();
        close(sv[0]);
        struct reply r;
        char req[64];
        for (;;) {
            ssize_t n = read(sv[1], req, sizeof(req) - 1);
            if (n <= 0)
                _exit(0);
            req[n] = '\0';
            const struct b_svc *s = b_find(c->local, req);
            r.n = s ? s->n : 0;
            if (s)
                memcpy(r.inst, s->inst, s->n * sizeof(struct b_inst));
            size_t len = sizeof(uint32_t) + r.n * sizeof(struct b_inst);
            if (write(sv[1], &r, len) != (ssize_t)len)
                _exit(1);
        }
    }
    close(sv[1]);
    c->sock = sv[0];
    return pid;
}

/* ---- instruction counts: this program under callgrind ---- */

static char g_self[4096];

/* The callgrind driver: N lookups of op, collection on only around them. */
static int icount_driver(enum op op, unsigned nsvc, int hot, int n)
{
#ifdef HAVE_CALLGRIND
    struct ctx c = {.nkeys = nsvc, .sock = -1};
    c.keys = malloc(nsvc * sizeof(*c.keys));
    for (unsigned s = 0; s < nsvc; s++)
        snprintf(c.keys[s], 32, "svc-%u", s);
    c.buf = malloc(1 << 16);
    c.out = malloc(sizeof(struct b_inst) * NINST);
    if (op == OP_FLOOR || op == OP_FLOOR_COPY)
        c.local = b_build(nsvc, 0);
    else if (disc_open(g_segname, 0, &c.h) < 0)
        return 1;
    const char **k = malloc(sizeof(char *) * (size_t)n);
    unsigned seed = 7;
    for (int i = 0; i < n; i++)
        k[i] = c.keys[hot ? 0 : rand_r(&seed) % nsvc];
    for (int i = 0; i < 100; i++) /* warm: first-call paths stay out */
        do_op(&c, op, k[i % n]);
    CALLGRIND_TOGGLE_COLLECT;
    for (int i = 0; i < n; i++)
        do_op(&c, op, k[i]);
    CALLGRIND_TOGGLE_COLLECT;
    return 0;
#else
    (void)op, (void)nsvc, (void)hot, (void)n;
    return 3;
#endif
}

/* Instructions per lookup, or NAN with *why set. */
static double icount(enum op op, unsigned nsvc, int hot, int n, const char **why)
{
#ifndef HAVE_CALLGRIND
    (void)op, (void)nsvc, (void)hot, (void)n;
    *why = "built without valgrind/callgrind.h (install valgrind)";
    return NAN;
#else
    char out[128], a_op[16], a_nsvc[16], a_hot[4], a_n[16];
    snprintf(out, sizeof(out), "/tmp/bench-lookup-cg.%d.%d", (int)getpid(), (int)op);
    char outarg[160];
    snprintf(outarg, sizeof(outarg), "--callgrind-out-file=%s", out);
    snprintf(a_op, sizeof(a_op), "%d", (int)op);
    snprintf(a_nsvc, sizeof(a_nsvc), "%u", nsvc);
    snprintf(a_hot, sizeof(a_hot), "%d", hot);
    snprintf(a_n, sizeof(a_n), "%d", n);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_setup();
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("valgrind", "valgrind", "--tool=callgrind", "--collect-atstart=no", outarg, g_self,
               "--icount", a_op, a_nsvc, a_hot, a_n, g_segname, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        *why = WIFEXITED(st) && WEXITSTATUS(st) == 127 ? "valgrind not found"
                                                       : "the callgrind run failed";
        unlink(out);
        return NAN;
    }
    FILE *f = fopen(out, "r");
    double ir = NAN;
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "summary: %llu", &v) == 1 || sscanf(line, "totals: %llu", &v) == 1)
            ir = (double)v;
    }
    if (f)
        fclose(f);
    unlink(out);
    if (isnan(ir))
        *why = "no summary line in callgrind's output";
    return ir / n;
#endif
}

/* ---- loopback ZooKeeper ---- */

static atomic_int zk_created;
static void zk_created_cb(int rc, const char *value, const void *data)
{
    (void)value, (void)data;
    atomic_fetch_add(&zk_created, rc == ZOK ? 1 : 1000000);
}

/* zoo_get of a node holding a service's 10 records; -1 if ZooKeeper cannot
 * be started here (the row then says so). */
static int zk_latency(struct ctx *c, int samples, double res[2][2], const char **why)
{
    struct zk_cluster zk;
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    int rc = zk_cluster_start(&zk, 1, 60000);
    if (rc < 0) {
        *why = rc == -ENOENT ? "java not found (ZooKeeper cannot run here)"
                             : "ZooKeeper did not start within 60 s";
        return -1;
    }
    zhandle_t *zh = zookeeper_init(zk.connect, NULL, 10000, NULL, NULL, 0);
    for (int i = 0; zh && i < 1000 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++)
        sleep_ms(10);
    if (!zh || zoo_state(zh) != ZOO_CONNECTED_STATE) {
        *why = "cannot connect to the loopback ZooKeeper";
        if (zh)
            zookeeper_close(zh);
        zk_cluster_destroy(&zk);
        return -1;
    }
    zoo_create(zh, "/bench-lookup", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    atomic_store(&zk_created, 0);
    for (unsigned s = 0; s < c->nkeys; s++) {
        char path[64];
        struct reply r = {.n = NINST};
        memcpy(r.inst, c->local->svc[s].inst, sizeof(r.inst));
        snprintf(path, sizeof(path), "/bench-lookup/%s", c->keys[s]);
        zoo_acreate(zh, path, (const char *)&r, (int)sizeof(r), &ZOO_OPEN_ACL_UNSAFE, 0,
                    zk_created_cb, NULL);
        while ((unsigned)atomic_load(&zk_created) + 1000 < s) /* bound the queue */
            sleep_ms(1);
    }
    for (int i = 0; i < 60000 && (unsigned)atomic_load(&zk_created) < c->nkeys; i++)
        sleep_ms(1);
    if ((unsigned)atomic_load(&zk_created) != c->nkeys) {
        *why = "creating the nodes failed";
        zookeeper_close(zh);
        zk_cluster_destroy(&zk);
        return -1;
    }
    double *v = malloc(sizeof(double) * (size_t)samples);
    for (int hot = 1; hot >= 0; hot--) {
        unsigned seed = 7;
        for (int i = 0; i < samples; i++) {
            char path[64];
            snprintf(path, sizeof(path), "/bench-lookup/%s",
                     c->keys[hot ? 0 : rand_r(&seed) % c->nkeys]);
            int len = (int)sizeof(*c->rep);
            int64_t t0 = now_ns();
            rc = zoo_get(zh, path, 0, (char *)c->rep, &len, NULL);
            v[i] = (double)(now_ns() - t0);
            if (rc != ZOK) {
                *why = "zoo_get failed";
                free(v);
                zookeeper_close(zh);
                zk_cluster_destroy(&zk);
                return -1;
            }
        }
        qsort(v, (size_t)samples, sizeof(double), cmp_d);
        res[hot][0] = v[samples / 2];
        res[hot][1] = v[(size_t)samples * 99 / 100];
    }
    free(v);
    zookeeper_close(zh);
    zk_cluster_destroy(&zk);
    return 0;
}

/* ---- the private registry directory ---- */

static char g_regtop[64] = "/dev/shm/discshm-bench-lookup-XXXXXX";
static char g_regdir[80]; /* g_regtop/reg: its parent must not be world-writable */
static pid_t g_main_pid;

/* At exit of the main process: remove whatever is left in the directory. */
static void remove_regdir(void)
{
    if (getpid() != g_main_pid)
        return;
    DIR *d = opendir(g_regdir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    rmdir(g_regdir);
    rmdir(g_regtop);
}

/* ---- the report ---- */

static struct bench_report *rep;
static int quick;
static int64_t g_phase_t0;

/* Log how long the phase that just ended took (stderr, for the run's log). */
static void phase_done(const char *what)
{
    int64_t t = now_ns();
    fprintf(stderr, "bench_lookup: %s: %.1f s\n", what, (double)(t - g_phase_t0) / 1e9);
    g_phase_t0 = t;
}

struct lat_row {
    double med, p99;
};

/* Medians of the floors per size (index) and keys (hot=1). */
struct floors {
    double ptr[2], copy[2];
};

static void emit_row(const char *what, unsigned nsvc, int hot, struct lat_row r,
                     const struct floors *f, int copies)
{
    double fl = copies ? f->copy[hot] : f->ptr[hot];
    char name[200];
    snprintf(name, sizeof(name), "%s, %u services, %s", what, nsvc, hot ? "hot" : "random");
    bench_md(rep, "| %s | %s | %.1f | %.1f | %.2fx %s |\n", what, hot ? "hot" : "random", r.med,
             r.p99, r.med / fl, copies ? "copy-out floor" : "pointer floor");
    char b[BENCH_JNUM_LEN];
    bench_row(rep, name, "ns", r.med, r.p99, "\"vs_floor\": %s, \"floor\": \"%s\"",
              bench_jnum(b, r.med / fl), copies ? "copy-out" : "pointer");
    printf("%-62s %6u %-6s %10.1f %10.1f %7.2fx\n", what, nsvc, hot ? "hot" : "random", r.med,
           r.p99, r.med / fl);
}

/* One measurement of reader scaling. */
struct agg {
    double ops;        /* aggregate lookups/s over the window */
    double cpu_per_op; /* reader CPU ns per lookup over the window (robust to load) */
    double retries;    /* zero-copy sections retried per million lookups */
    double minflt;     /* reader minor page faults per 1000 lookups (whole lives) */
    double wrate;      /* changes/s the churning writer made over the window */
    double wcpu;       /* its CPU over the window, share of one core */
};

/* Aggregate lookups/s of n reader processes over a window, the writer of
 * `kind` asked for `rate` changes/s meanwhile (and idle again after). */
static struct agg aggregate(struct ctx *c, enum op op, int n, int window_ms, enum kind kind,
                            unsigned rate)
{
    pid_t pid[MAX_READERS];
    struct agg r = {0};
    atomic_store(&g_ctl->rate[kind].v, rate);
    for (int i = 0; i < n; i++)
        pid[i] = start_reader(c, op, i);
    sleep_ms(quick ? 30 : 100); /* all started and warm, the writer at its rate */
    uint64_t s0 = 0, s1 = 0, r0 = 0, r1 = 0, l1 = 0, c0 = 0, c1 = 0;
    for (int i = 0; i < n; i++) {
        s0 += atomic_load(&g_ctl->count[i].v);
        r0 += atomic_load(&g_ctl->retries[i].v);
        c0 += atomic_load(&g_ctl->rcpu_ns[i].v);
    }
    uint64_t ch0 = atomic_load(&g_ctl->changes[kind].v), cpu0 = atomic_load(&g_ctl->cpu_ns[kind].v);
    int64_t t0 = now_ns();
    sleep_ms(window_ms);
    for (int i = 0; i < n; i++) {
        s1 += atomic_load(&g_ctl->count[i].v);
        r1 += atomic_load(&g_ctl->retries[i].v);
        c1 += atomic_load(&g_ctl->rcpu_ns[i].v);
    }
    uint64_t ch1 = atomic_load(&g_ctl->changes[kind].v), cpu1 = atomic_load(&g_ctl->cpu_ns[kind].v);
    int64_t t1 = now_ns();
    uint64_t minflt = stop_readers(pid, n);
    for (int i = 0; i < n; i++)
        l1 += atomic_load(&g_ctl->count[i].v);
    atomic_store(&g_ctl->rate[kind].v, 0);
    double secs = (double)(t1 - t0) / 1e9;
    r.ops = (double)(s1 - s0) / secs;
    r.cpu_per_op = s1 > s0 ? (double)(c1 - c0) / (double)(s1 - s0) : NAN;
    r.retries = s1 > s0 ? 1e6 * (double)(r1 - r0) / (double)(s1 - s0) : 0;
    r.minflt = l1 ? 1e3 * (double)minflt / (double)l1 : 0;
    r.wrate = (double)(ch1 - ch0) / secs;
    r.wcpu = (double)(cpu1 - cpu0) / 1e9 / secs;
    return r;
}

static int cmp_agg_ops(const void *a, const void *b)
{
    double x = ((const struct agg *)a)->ops, y = ((const struct agg *)b)->ops;
    return x < y ? -1 : x > y;
}

/* Reader scaling: 1, 2, 4, 8 reader processes, writer at 0 / 10k / 100k
 * changes/s; libdiscshm zero-copy vs rwlock pointer read, and libdiscshm
 * copy-out vs rwlock copy-out, beside the lock-free floor (the same table
 * read with no synchronisation at all, the rwlock's writer churning its
 * own copy): no reader design can beat the floor on this machine, so
 * floor / rwlock bounds what any ratio to the rwlock can be here.
 *
 * Both writer processes run for the whole phase (idle = rate 0, the
 * libdiscshm one still ticking once per ms) and take a new rate for each
 * measurement; the cells are measured in rounds (every rate and reader
 * count, both pairs, the three kinds one after another), and each cell's
 * number is the median over the rounds, so a burst of load on the shared
 * machine moves one round of every cell, not every round of one rate. */
static void scaling(struct ctx *c)
{
    static const int readers[] = {1, 2, 4, 8};
    static const unsigned rates[] = {0, 10000, 100000};
    enum { K_SHM, K_RW, K_FLOOR, NK };
    static const enum op kop[2][NK] = {{OP_SHM, OP_RWLOCK, OP_FLOOR},
                                       {OP_COPY, OP_RWLOCK_COPY, OP_FLOOR_COPY}};
    /* whose writer churns while each kind reads: the floor reads its own
     * private table while the rwlock's (cheapest) writer takes its CPU */
    static const enum kind kwriter[NK] = {KIND_SHM, KIND_RWLOCK, KIND_RWLOCK};
    int window = quick ? 100 : 300, rounds = quick ? 1 : 3;
    int nrates = quick ? 2 : 3, nreaders = quick ? 2 : 4;
    /* [pair][rate][readers][kind][round] */
    static struct agg m[2][3][4][NK][3];
    struct agg med[2][3][4][NK];
    memset(med, 0, sizeof(med));
    pid_t w[2] = {start_writer_at(c, KIND_SHM, 0), start_writer_at(c, KIND_RWLOCK, 0)};
    for (int rd = 0; rd < rounds; rd++)
        for (int ri = 0; ri < nrates; ri++)
            for (int n = 0; n < nreaders; n++)
                for (int pair = 0; pair < 2; pair++)
                    for (int k = 0; k < NK; k++)
                        m[pair][ri][n][k][rd] =
                            aggregate(c, kop[pair][k], readers[n], window, kwriter[k], rates[ri]);
    stop_children(w, 2);
    if (build(c->nkeys) < 0) /* the parent's writer is stale after the child's commits */
        abort();

    /* The writer's own cost, alone (no readers, no pacing): CPU per commit
     * of k random changes (put_inst, as the churning writer), after 100
     * commits of warm-up. The segment is left as the changes made it. */
    static const unsigned per[2] = {10, 100};
    double commit_us[2];
    unsigned seed = 7, rev = 1000000;
    for (int i = 0; i < 2; i++) {
        int ncommits = (quick ? 200 : 2000) / (i ? 10 : 1);
        for (int pass = 0; pass < 2; pass++) {
            int64_t t0 = cpu_ns();
            for (int k = 0; k < (pass ? ncommits : 100); k++) {
                for (unsigned j = 0; j < per[i]; j++)
                    put_inst(g_writer, rand_r(&seed) % c->nkeys, rand_r(&seed) % NINST, rev++);
                if (segw_commit(g_writer) < 0)
                    abort();
                segw_tick(g_writer);
            }
            commit_us[i] = (double)(cpu_ns() - t0) / 1e3 / ncommits;
        }
    }
    for (int pair = 0; pair < 2; pair++)
        for (int ri = 0; ri < nrates; ri++)
            for (int n = 0; n < nreaders; n++)
                for (int k = 0; k < NK; k++) {
                    qsort(m[pair][ri][n][k], (size_t)rounds, sizeof(struct agg), cmp_agg_ops);
                    med[pair][ri][n][k] = m[pair][ri][n][k][rounds / 2];
                }

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    bench_md(rep,
             "### Reader scaling (%u services x 10, random keys, %ld cores)\n\n"
             "Aggregate lookups/s of N reader processes (each its own process and handle, "
             "none pinned) over a %d ms window, while one writer process changes records at "
             "the given rate (libdiscshm: segw_put + a commit per ms; rwlock: one write lock "
             "per change, writer-preferring; both change a random instance of a random "
             "service, paced per ms). Pairs doing the same work: zero-copy vs a pointer read "
             "under the read lock, and copy-out vs copying the 10 records under it. *floor*: "
             "the same reads of a private copy of the table with no synchronisation at all "
             "while the rwlock's writer churns its own table: the most any reader design can "
             "do here, so floor / rwlock bounds libdiscshm / rwlock. Both writer processes "
             "live through the whole phase (rate 0 = idle); every cell is the median of %d "
             "rounds, each round measuring every cell once. *reader CPU ns / lookup*: the "
             "libdiscshm readers' CPU time (CLOCK_PROCESS_CPUTIME_ID) over the window per "
             "lookup, which other load on the machine does not move: what a churning writer "
             "costs each lookup, apart from the CPU the writer itself takes. This machine has "
             "%ld cores: "
             "beyond %ld readers the processes share cores, and the writer takes its share "
             "of them.\n\n",
             c->nkeys, cores, window, rounds, cores, cores);
    for (int pair = 0; pair < 2; pair++) {
        bench_md(rep,
                 "| readers | writer changes/s | %s lookups/s | %s lookups/s | floor lookups/s "
                 "| libdiscshm / rwlock | floor / rwlock | libdiscshm vs idle | libdiscshm "
                 "reader CPU ns / lookup (vs idle) | writer changes/s made, CPU "
                 "|\n|---|---|---|---|---|---|---|---|---|---|\n",
                 pair ? "libdiscshm copy-out" : "libdiscshm zero-copy",
                 pair ? "rwlock copy-out" : "rwlock pointer");
        for (int ri = 0; ri < nrates; ri++)
            for (int n = 0; n < nreaders; n++) {
                const struct agg *x = med[pair][ri][n];
                double s = x[K_SHM].ops, r = x[K_RW].ops, f = x[K_FLOOR].ops;
                double idle = med[pair][0][n][K_SHM].ops;
                char wr[64] = "";
                if (rates[ri])
                    snprintf(wr, sizeof(wr), "%.0f (%.0f%%), rwlock %.0f (%.0f%%)", x[K_SHM].wrate,
                             100 * x[K_SHM].wcpu, x[K_RW].wrate, 100 * x[K_RW].wcpu);
                double cpu = x[K_SHM].cpu_per_op, cpu_idle = med[pair][0][n][K_SHM].cpu_per_op;
                bench_md(rep,
                         "| %d | %u | %.0f | %.0f | %.0f | %.2fx | %.2fx | %.1f%% | %.0f (%.2fx) "
                         "| %s |\n",
                         readers[n], rates[ri], s, r, f, s / r, f / r, 100 * s / idle, cpu,
                         cpu / cpu_idle, wr);
                char name[160];
                snprintf(name, sizeof(name), "scaling %s, %d readers, writer %u changes/s",
                         pair ? "copy-out" : "zero-copy", readers[n], rates[ri]);
                char b1[BENCH_JNUM_LEN], b2[BENCH_JNUM_LEN], b3[BENCH_JNUM_LEN], b4[BENCH_JNUM_LEN],
                    b5[BENCH_JNUM_LEN], b6[BENCH_JNUM_LEN], b7[BENCH_JNUM_LEN], b8[BENCH_JNUM_LEN],
                    b9[BENCH_JNUM_LEN];
                bench_row(rep, name, "ops/s", s, NAN,
                          "\"rwlock_ops_per_s\": %s, \"vs_rwlock\": %s, \"vs_idle\": %s, "
                          "\"floor_ops_per_s\": %s, \"floor_vs_rwlock\": %s, "
                          "\"retries_per_million\": %s, \"reader_minflt_per_k\": %s, "
                          "\"writer_changes_per_s\": %s, \"reader_cpu_ns_per_lookup\": %s",
                          bench_jnum(b1, r), bench_jnum(b2, s / r), bench_jnum(b3, s / idle),
                          bench_jnum(b4, f), bench_jnum(b5, f / r),
                          bench_jnum(b6, x[K_SHM].retries), bench_jnum(b7, x[K_SHM].minflt),
                          bench_jnum(b8, x[K_SHM].wrate), bench_jnum(b9, x[K_SHM].cpu_per_op));
            }
        bench_md(rep, "\n");
    }
    /* The libdiscshm readers' retries and page faults, per rate (zero-copy,
     * all reader counts pooled: medians of the cells). */
    bench_md(rep, "libdiscshm zero-copy readers, per rate (readers 1/2/4/8): sections retried "
                  "per million lookups; minor page faults per 1000 lookups over the readers' "
                  "lives (warm-up included). ");
    for (int ri = 0; ri < nrates; ri++) {
        bench_md(rep, "%s%u changes/s:", ri ? "; " : "", rates[ri]);
        for (int n = 0; n < nreaders; n++)
            bench_md(rep, "%s%.1f/%.2f", n ? ", " : " ", med[0][ri][n][K_SHM].retries,
                     med[0][ri][n][K_SHM].minflt);
    }
    bench_md(rep, ".\n\n");
    for (int ri = 1; ri < nrates; ri++)
        for (int k = 0; k < 2; k++) {
            /* the writer's numbers pooled over the cells of this rate */
            double rate_sum = 0, cpu_sum = 0;
            int cells = 0;
            for (int pair = 0; pair < 2; pair++)
                for (int n = 0; n < nreaders; n++) {
                    rate_sum += med[pair][ri][n][k == 0 ? K_SHM : K_RW].wrate;
                    cpu_sum += med[pair][ri][n][k == 0 ? K_SHM : K_RW].wcpu;
                    cells++;
                }
            double wrate = rate_sum / cells, wcpu = cpu_sum / cells;
            char name[128], b1[BENCH_JNUM_LEN], b2[BENCH_JNUM_LEN];
            snprintf(name, sizeof(name), "scaling: %s writer asked %u changes/s",
                     k ? "rwlock" : "libdiscshm", rates[ri]);
            bench_row(rep, name, "changes/s", wrate, NAN,
                      "\"cpu_share\": %s, \"us_cpu_per_change\": %s", bench_jnum(b1, wcpu),
                      bench_jnum(b2, 1e6 * wcpu / wrate));
        }

    bench_md(rep,
             "The libdiscshm writer alone (this process, no readers, no pacing; put_inst + "
             "segw_commit + segw_tick): %.0f us CPU per commit of 10 random changes (%.1f us a "
             "change), %.0f us per commit of 100 (%.1f us a change).\n\n",
             commit_us[0], commit_us[0] / 10, commit_us[1], commit_us[1] / 100);
    for (int i = 0; i < 2; i++) {
        char name[96], b1[BENCH_JNUM_LEN];
        snprintf(name, sizeof(name), "writer alone: CPU per commit of %u changes", per[i]);
        bench_row(rep, name, "us", commit_us[i], NAN, "\"us_per_change\": %s",
                  bench_jnum(b1, commit_us[i] / per[i]));
    }

    /* Targets (issue 13). */
    double worst = INFINITY, fworst = INFINITY;
    for (int n = 1; n < nreaders; n++)
        for (int ri = 1; ri < nrates; ri++)
            for (int pair = 0; pair < 2; pair++) {
                const struct agg *x = med[pair][ri][n];
                double v = x[K_SHM].ops / x[K_RW].ops, f = x[K_FLOOR].ops / x[K_RW].ops;
                worst = v < worst ? v : worst;
                fworst = f < fworst ? f : fworst;
            }
    bench_md(rep,
             "Bound on this machine: the lock-free floor's lowest ratio to the rwlock over "
             "the same cells is %.2fx%s.\n\n",
             fworst, fworst < 3.0 ? " (below 3: no reader design reaches 3x the rwlock here)" : "");
    bench_target(rep,
                 "aggregate throughput vs the rwlock table, 2+ readers, writer churning "
                 "(lowest ratio over 2/4/8 readers, 10k/100k changes/s, both pairs)",
                 worst, ">=", 3.0);
#define TP(ri, n) (med[0][ri][n][K_SHM].ops)
#define FP(ri, n) (med[0][ri][n][K_FLOOR].ops)
    /* The floor reads a private table with no synchronisation at all; its
     * own throughput under the (rwlock's) churning writer against idle is
     * what the machine leaves any reader: a core shared with the writer's
     * process, caches and memory bandwidth, other load. */
    bench_md(rep,
             "Bound on this machine for the vs-idle rows: the floor (no synchronisation, the "
             "rwlock's writer churning its own table) keeps, of its own idle throughput, "
             "%.2f (1 reader, 10k changes/s)",
             FP(1, 0) / FP(0, 0));
    if (nrates > 2)
        bench_md(rep, ", %.2f (1 reader, 100k)", FP(2, 0) / FP(0, 0));
    bench_md(rep, ", %.2f (2 readers, 10k)", FP(1, 1) / FP(0, 1));
    if (nrates > 2)
        bench_md(rep, ", %.2f (2 readers, 100k)", FP(2, 1) / FP(0, 1));
    bench_md(rep, ". Where the floor itself falls below a row's limit, that row measures the "
                  "machine, not the reader protocol.\n\n");
    for (int ri = 1; ri < nrates; ri++)
        for (int n = 0; n < 2 && n < nreaders; n++) {
            char name[128], b1[BENCH_JNUM_LEN];
            snprintf(name, sizeof(name), "scaling floor vs idle, %d readers, writer %u changes/s",
                     readers[n], rates[ri]);
            bench_row(rep, name, "ratio", FP(ri, n) / FP(0, n), NAN, "\"shm_vs_idle\": %s",
                      bench_jnum(b1, TP(ri, n) / TP(0, n)));
        }
#undef FP
    bench_target(rep,
                 "zero-copy reader throughput at 10k changes/s vs idle, 1 reader (writer on "
                 "the other core)",
                 TP(1, 0) / TP(0, 0), ">=", 0.95);
    if (nrates > 2)
        bench_target(rep, "zero-copy reader throughput at 100k changes/s vs idle, 1 reader",
                     TP(2, 0) / TP(0, 0), ">=", 0.80);
    bench_target(rep, "zero-copy aggregate throughput at 10k changes/s vs idle, 2 readers",
                 TP(1, 1) / TP(0, 1), ">=", 0.95);
    if (nrates > 2)
        bench_target(rep, "zero-copy aggregate throughput at 100k changes/s vs idle, 2 readers",
                     TP(2, 1) / TP(0, 1), ">=", 0.80);
#undef TP
    bench_md(rep, "\n");
}

int main(int argc, char **argv)
{
    ssize_t sl = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    g_self[sl > 0 ? sl : 0] = '\0';
    if (argc == 7 && !strcmp(argv[1], "--icount")) {
        snprintf(g_segname, sizeof(g_segname), "%s", argv[6]);
        return icount_driver((enum op)atoi(argv[2]), (unsigned)atoi(argv[3]), atoi(argv[4]),
                             atoi(argv[5]));
    }
    int argc0 = argc;
    char **argv0 = malloc(sizeof(char *) * (size_t)(argc + 1));
    memcpy(argv0, argv, sizeof(char *) * (size_t)(argc + 1));
    int scaling_only = 0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--scaling")) {
            scaling_only = 1;
            memmove(argv + i, argv + i + 1, sizeof(char *) * (size_t)(argc - i));
            argc--;
            break;
        }
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0 || argc != 1) {
        fprintf(stderr, "usage: %s [--quick] [--scaling] [--md FILE] [--json FILE]\n", argv[0]);
        return 2;
    }
    quick = opts.quick;
    rep = bench_report_open("bench_lookup", "Lookups: libdiscshm vs baselines (issue 13)", &opts,
                            argc0, argv0);
    if (!rep)
        return 1;
    signal(SIGPIPE, SIG_IGN);

    /* A private registry directory on tmpfs. */
    char *regdir = g_regdir;
    g_main_pid = getpid();
    if (mkdtemp(g_regtop))
        snprintf(g_regdir, sizeof(g_regdir), "%s/reg", g_regtop);
    if (!g_regdir[0] || chmod(g_regtop, 0755) < 0 || mkdir(regdir, 0755) < 0) {
        fprintf(stderr, "bench_lookup: cannot create a registry directory in /dev/shm: %s\n",
                strerror(errno));
        return 1;
    }
    atexit(remove_regdir);
    setenv("DISCSHM_DIR", regdir, 1);
    snprintf(g_segname, sizeof(g_segname), "bench-lookup");
    g_ctl = mmap(NULL, sizeof(*g_ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_ctl == MAP_FAILED)
        return 1;

    int samples = quick ? 2000 : 10000;
    unsigned sizes[3] = {1000, 10000, 100000};
    int nsizes = quick ? 1 : 3;
    if (scaling_only) {
        /* The reader-scaling phase alone (what the full run does at 10k
         * services, 1000 with --quick). */
        unsigned nsvc = quick ? 1000 : 10000;
        struct ctx c = {.nkeys = nsvc, .sock = -1};
        if (build(nsvc) < 0 || !(c.local = b_build(nsvc, 0)) || !(c.shared = b_build(nsvc, 1)) ||
            !(c.keys = malloc(nsvc * sizeof(*c.keys))) || !(c.buf = malloc(1 << 16)) ||
            !(c.out = malloc(sizeof(struct b_inst) * NINST)))
            return 1;
        for (unsigned s = 0; s < nsvc; s++)
            snprintf(c.keys[s], 32, "svc-%u", s);
        g_phase_t0 = now_ns();
        scaling(&c);
        phase_done("reader scaling");
        segw_close(g_writer, true);
        g_writer = NULL;
        free(argv0);
        return bench_report_close(rep) < 0 ? 1 : 0;
    }
    int cg_n = quick ? 300 : 5000;
    struct floors fl[3];
    struct lat_row copy_rows[3][2], shm_rows[3][2], sock_rows[3][2];
    for (int i = 0; i < 3; i++) /* NAN: not measured (quick runs one size) */
        for (int k = 0; k < 2; k++) {
            fl[i].ptr[k] = fl[i].copy[k] = NAN;
            copy_rows[i][k] = shm_rows[i][k] = sock_rows[i][k] = (struct lat_row){NAN, NAN};
        }

    bench_md(rep,
             "Every row is measured in this process run. Latency: median and p99 over "
             "%d samples, each the mean of %d lookups timed with CLOCK_MONOTONIC (the socket "
             "rows: one round trip per sample; zoo_get: one call per sample), hot = the same "
             "service each time, random = a random service each time. Each service has 10 "
             "instances. Ratios are to the in-process floor of the same kind: pointer-like "
             "reads to the pointer floor, copies to the copy-out floor.\n\n"
             "- *in-process floor*: an open-addressing table of the same services in this "
             "process's heap (same hash function), a pointer, or a memcpy of the 10 records;\n"
             "- *rwlock table*: the same table in a MAP_SHARED mapping under a "
             "PTHREAD_PROCESS_SHARED rwlock; *idle* is its best case, *churned* has a writer "
             "process changing 10k records/s (one write lock each) and one more reader "
             "process copying records out in a loop;\n"
             "- *unix-socket agent*: another process holds the table and answers the service "
             "name with the 10 records over a connected AF_UNIX seqpacket socket — the least "
             "a socket-based local agent can cost, before any protocol or HTTP;\n"
             "- *libdiscshm zero-copy*: disc_read_begin, disc_read_service, "
             "disc_read_instance(0), disc_read_end; *copy-out*: disc_lookup of all 10 "
             "instances (records copied and validated); *churned*: a publisher process "
             "changing 10k records/s (commit every ms) and one more reader process.\n\n",
             samples, BATCH);
    printf("%-62s %6s %-6s %10s %10s %8s\n", "operation", "svcs", "keys", "median ns", "p99 ns",
           "x floor");

    struct ctx c1000 = {0};
    g_phase_t0 = now_ns();
    for (int si = 0; si < nsizes; si++) {
        unsigned nsvc = sizes[si];
        if (build(nsvc) < 0) {
            fprintf(stderr, "bench_lookup: cannot create the segment in %s\n", regdir);
            return 1;
        }
        struct ctx c = {.nkeys = nsvc, .sock = -1};
        c.local = b_build(nsvc, 0);
        c.shared = b_build(nsvc, 1);
        c.keys = malloc(nsvc * sizeof(*c.keys));
        c.buf = malloc(1 << 16);
        c.out = malloc(sizeof(struct b_inst) * NINST);
        c.rep = malloc(sizeof(struct reply));
        if (!c.local || !c.shared || !c.keys || !c.buf || !c.out || !c.rep)
            return 1;
        for (unsigned s = 0; s < nsvc; s++)
            snprintf(c.keys[s], 32, "svc-%u", s);
        if (disc_open(g_segname, 0, &c.h) < 0)
            return 1;
        pid_t agent = start_agent(&c);
        if (agent < 0)
            return 1;

        bench_md(rep,
                 "### %u services x 10 instances\n\n| operation | keys | median ns | p99 ns "
                 "| vs floor |\n|---|---|---|---|---|\n",
                 nsvc);
        static const enum op idle_ops[] = {OP_FLOOR, OP_FLOOR_COPY, OP_RWLOCK, OP_RWLOCK_COPY,
                                           OP_SOCK,  OP_SHM,        OP_COPY};
        for (int hot = 1; hot >= 0; hot--) {
            struct lat_row r[NOPS];
            for (size_t i = 0; i < sizeof(idle_ops) / sizeof(idle_ops[0]); i++) {
                enum op op = idle_ops[i];
                latency(&c, op, hot, samples / 10, &r[op].med, &r[op].p99); /* warm */
                latency(&c, op, hot, samples, &r[op].med, &r[op].p99);
            }
            fl[si].ptr[hot] = r[OP_FLOOR].med;
            fl[si].copy[hot] = r[OP_FLOOR_COPY].med;
            copy_rows[si][hot] = r[OP_COPY];
            shm_rows[si][hot] = r[OP_SHM];
            sock_rows[si][hot] = r[OP_SOCK];
            for (size_t i = 0; i < sizeof(idle_ops) / sizeof(idle_ops[0]); i++) {
                enum op op = idle_ops[i];
                char what[160];
                snprintf(what, sizeof(what), "%s%s", op_name[op],
                         op == OP_RWLOCK || op == OP_RWLOCK_COPY ? ", idle" : "");
                emit_row(what, nsvc, hot, r[op], &fl[si], op_copies[op]);
            }
        }
        close(c.sock); /* the agent exits at end of file */
        c.sock = -1;
        stop_child(agent);
        phase_done("idle latency rows");

        /* Churned: a writer at 10k changes/s and one more reader process
         * (not at 100k services: rebuilding a 1M-instance segment after the
         * churn takes minutes on this machine). */
        for (int k = 0; k < 2 && nsvc <= 10000; k++) {
            enum kind kind = k == 0 ? KIND_RWLOCK : KIND_SHM;
            enum op ops[2] = {k == 0 ? OP_RWLOCK : OP_SHM, k == 0 ? OP_RWLOCK_COPY : OP_COPY};
            pid_t w = start_writer(&c, kind, 10000);
            pid_t other = start_reader(&c, ops[1], 0);
            sleep_ms(100);
            for (int hot = 1; hot >= 0; hot--)
                for (int j = 0; j < 2; j++) {
                    struct lat_row r;
                    latency(&c, ops[j], hot, samples / 10, &r.med, &r.p99);
                    latency(&c, ops[j], hot, samples, &r.med, &r.p99);
                    char what[160];
                    snprintf(what, sizeof(what), "%s, churned (writer 10k/s + 1 reader)",
                             op_name[ops[j]]);
                    emit_row(what, nsvc, hot, r, &fl[si], op_copies[ops[j]]);
                }
            pid_t both[2] = {other, w};
            stop_children(both, 2);
            if (kind == KIND_SHM && build(nsvc) < 0)
                return 1;
        }
        bench_md(rep, "\n");
        if (nsvc <= 10000)
            phase_done("churned latency rows");

        if (nsvc == (quick ? 1000u : 10000u)) {
            scaling(&c);
            phase_done("reader scaling");
        }
        if (nsvc == 1000) {
            c1000 = c; /* kept for the ZooKeeper rows and instruction counts */
            continue;
        }
        disc_close(c.h);
        b_free(c.local, 0);
        b_free(c.shared, 1);
        free(c.keys);
        free(c.buf);
        free(c.out);
        free(c.rep);
    }

    /* Instruction counts: hot over 1000 services, random over 10000 (the
     * segment of the last size is still published: build the needed ones). */
    bench_md(rep,
             "### Instructions per lookup (valgrind --tool=callgrind)\n\n"
             "This program runs itself under callgrind (`--collect-atstart=no`), builds the "
             "same table or opens the same segment, warms up, and toggles collection on "
             "around %d lookups (CALLGRIND_TOGGLE_COLLECT); instructions / lookups. Exact and "
             "independent of the machine's load (includes ~5 instructions of loop and "
             "dispatch per lookup).\n\n"
             "| operation | services | keys | instructions per lookup | vs floor |\n"
             "|---|---|---|---|---|\n",
             cg_n);
    static const enum op cg_ops[] = {OP_FLOOR, OP_FLOOR_COPY, OP_SHM, OP_COPY};
    for (int pass = 0; pass < 2; pass++) {
        int hot = pass == 0;
        unsigned nsvc = hot ? 1000 : 10000;
        if (quick && !hot)
            break; /* quick: the hot rows only */
        if (build(nsvc) < 0)
            return 1;
        double fl_ptr = NAN, fl_copy = NAN;
        for (size_t i = 0; i < sizeof(cg_ops) / sizeof(cg_ops[0]); i++) {
            enum op op = cg_ops[i];
            if (quick && (op == OP_FLOOR || op == OP_FLOOR_COPY))
                continue;
            const char *why = NULL;
            double ins = icount(op, nsvc, hot, cg_n, &why);
            if (op == OP_FLOOR)
                fl_ptr = ins;
            if (op == OP_FLOOR_COPY)
                fl_copy = ins;
            double fl_ins = op_copies[op] ? fl_copy : fl_ptr;
            char name[200];
            snprintf(name, sizeof(name), "instructions: %s, %u services, %s", op_name[op], nsvc,
                     hot ? "hot" : "random");
            if (isnan(ins)) {
                bench_md(rep, "| %s | %u | %s | not measured: %s | |\n", op_name[op], nsvc,
                         hot ? "hot" : "random", why);
                continue;
            }
            char ratio[64] = "";
            if (!isnan(fl_ins) && op != OP_FLOOR && op != OP_FLOOR_COPY)
                snprintf(ratio, sizeof(ratio), "%.2fx %s floor", ins / fl_ins,
                         op_copies[op] ? "copy-out" : "pointer");
            bench_md(rep, "| %s | %u | %s | %.0f | %s |\n", op_name[op], nsvc,
                     hot ? "hot" : "random", ins, ratio);
            bench_row(rep, name, "instr", ins, NAN, "\"lookups\": %d", cg_n);
            printf("%-62s %6u %-6s %10.0f instructions\n", op_name[op], nsvc,
                   hot ? "hot" : "random", ins);
        }
    }
    bench_md(rep, "\n");
    phase_done("callgrind");

    /* Loopback ZooKeeper, 1000 services. */
    double zkr[2][2] = {{NAN, NAN}, {NAN, NAN}};
    const char *why = NULL;
    bench_md(rep, "### Loopback ZooKeeper zoo_get (1000 services)\n\n");
    if (zk_latency(&c1000, quick ? 200 : 3000, zkr, &why) == 0) {
        bench_md(rep,
                 "A standalone ZooKeeper started by this program on 127.0.0.1 "
                 "(tests/harness/zk_server.c) holds one node per service with the same 10 "
                 "records (%zu bytes); one synchronous zoo_get per sample.\n\n"
                 "| operation | keys | median ns | p99 ns | vs floor |\n|---|---|---|---|---|\n",
                 sizeof(struct reply));
        for (int hot = 1; hot >= 0; hot--) {
            struct lat_row r = {zkr[hot][0], zkr[hot][1]};
            emit_row("loopback ZooKeeper zoo_get, 10 records", 1000, hot, r, &fl[0], 1);
            bench_md(rep, "| (vs libdiscshm copy-out, same keys) | %s | | | %.0fx |\n",
                     hot ? "hot" : "random", r.med / copy_rows[0][hot].med);
        }
    } else {
        bench_md(rep, "Not measured: %s.\n", why);
    }
    phase_done("ZooKeeper");

    bench_md(rep, "\n### Summary: medians as ratios\n\n"
                  "| services | keys | zero-copy / pointer floor | copy-out / copy-out floor | "
                  "unix-socket agent / libdiscshm copy-out | zoo_get / libdiscshm copy-out |\n"
                  "|---|---|---|---|---|---|\n");
    for (int si = 0; si < nsizes; si++)
        for (int hot = 1; hot >= 0; hot--) {
            char zkcol[32] = "";
            if (si == 0 && !isnan(zkr[hot][0]))
                snprintf(zkcol, sizeof(zkcol), "%.0fx", zkr[hot][0] / copy_rows[0][hot].med);
            bench_md(rep, "| %u | %s | %.2fx | %.2fx | %.1fx | %s |\n", sizes[si],
                     hot ? "hot" : "random", shm_rows[si][hot].med / fl[si].ptr[hot],
                     copy_rows[si][hot].med / fl[si].copy[hot],
                     sock_rows[si][hot].med / copy_rows[si][hot].med, zkcol);
        }
    bench_md(rep, "\n### Targets (issue 13)\n\n");
    bench_target(rep, "copy-out lookup of 10 instances, hot (1000 services) / copy-out floor",
                 copy_rows[0][1].med / fl[0].copy[1], "<=", 2.0);
    bench_target(rep, "copy-out lookup of 10 instances, random (10k services) / copy-out floor",
                 copy_rows[1][0].med / fl[1].copy[0], "<=", 2.0);
    bench_target(rep, "zero-copy hot lookup (1000 services) / pointer floor",
                 shm_rows[0][1].med / fl[0].ptr[1], "<=", 1.3);
    bench_target(rep, "zero-copy random lookup over 10k services / pointer floor",
                 shm_rows[1][0].med / fl[1].ptr[0], "<=", 2.0);
    if (nsizes > 2)
        bench_target(rep, "zero-copy random lookup over 100k services / pointer floor",
                     shm_rows[2][0].med / fl[2].ptr[0], "<=", 2.0);

    disc_close(c1000.h);
    segw_close(g_writer, true);
    g_writer = NULL;
    free(argv0);
    return bench_report_close(rep) < 0 ? 1 : 0;
}
