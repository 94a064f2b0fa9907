/* SPDX-License-Identifier: MIT */
/*
 * test_mutation.c — readers survive records changing under them.
 *
 * The test process owns a registry: it writes it with the discpub writer,
 * exports it as a file-cache image and maps that file writable (MAP_SHARED).
 * Reader processes open the image (disc_open_file maps the same page-cache
 * pages, so they see every change at once) and loop over every read API
 * (tests/harness/disc_walk.c), with and without DISC_OPEN_VERIFY, checking
 * on every call that it returns a count or a documented error and that
 * every string it hands out is NUL-terminated within its limit. Meanwhile
 * the owner flips fields of live records — snapshot, tables, pages,
 * table slots, service and instance records, and the root offset — with random
 * bits and with hostile values (0, ~0, offsets of other records, huge
 * counts), restoring the pristine image now and then so readers also walk
 * valid data mid-change.
 *
 * Pass: 0 crashes (a reader killed by a signal, e.g. SIGSEGV or an ASan
 * abort), 0 hangs (a reader whose progress counter does not move for
 * HANG_MS, or that does not stop within HANG_MS of being told to), 0
 * invariant violations; and every reader made progress. Readers are
 * stopped through a shared flag and killed by pid when they do not stop.
 * DISC_STRESS_SECONDS (default 5) sets the mutation time.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "../unit/segtest.h"
#include "disc_walk.h"
#include "layout.h"

#define NREADERS 4
#define HANG_MS  20000 /* generous: sanitizer builds on a loaded machine */

struct shared {
    _Atomic int stop;
    _Atomic int opened;
    struct {
        _Atomic uint64_t walks, calls, ok, instances;
        _Atomic int violated;
        char why[256];
    } r[NREADERS];
};

static char dir[4200], path[4300];

/* The registry the owner publishes and then damages. */
static size_t make_image(void)
{
    char name[64];
    seg_name(name, sizeof(name), "mut");
    struct segw_config cfg = {.segment_bytes = 8u << 20};
    struct seg_writer *w;
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    seg_fill(w, 400, 40, 1);
    int64_t size = segw_export(w, path);
    cr_assert_gt(size, 0);
    segw_close(w, true);
    return (size_t)size;
}

/* ---- the records of the image ------------------------------------------------------- */

struct rec {
    uint32_t off, size;
};

struct recs {
    struct rec *v;
    size_t n, cap;
    uint32_t root_field; /* offset of hdr->root */
};

static void add(struct recs *r, uint32_t off, uint32_t size)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        cr_assert_not_null(r->v);
    }
    r->v[r->n++] = (struct rec){off, size};
}

static void collect_table(const unsigned char *b, uint32_t tab, int ids, struct recs *r)
{
    const struct disc_htab *t = (const void *)(b + tab);
    add(r, tab, t->size);
    for (uint32_t pi = 0; pi < t->npages; pi++) {
        if (!t->pages[pi])
            continue;
        const struct disc_hpage *p = (const void *)(b + t->pages[pi]);
        add(r, t->pages[pi], p->size);
        for (uint32_t si = 0; si < DISC_PAGE_SLOTS; si++) {
            uint32_t off = p->slot[si].off;
            if (!off)
                continue;
            add(r, off, ((const uint32_t *)(b + off))[1]);
            if (!ids) { /* and the service's instance records */
                const struct disc_service_rec *s = (const void *)(b + off);
                for (uint32_t k = 0; k < s->n_instances; k++)
                    add(r, s->instances[k], ((const uint32_t *)(b + s->instances[k]))[1]);
            }
        }
    }
}

static void collect(const unsigned char *b, struct recs *r)
{
    const struct disc_hdr *h = (const void *)b;
    uint32_t snap = (uint32_t)atomic_load(&h->root);
    const struct disc_snapshot *s = (const void *)(b + snap);
    r->root_field = offsetof(struct disc_hdr, root);
    add(r, snap, s->size);
    collect_table(b, s->svc_table, 0, r);
    collect_table(b, s->id_table, 1, r);
}

/* ---- readers ------------------------------------------------------------------------------ */

static struct shared *sh;

static int reader(int idx)
{
    static unsigned char buf[1 << 20];
    disc_handle *plain, *verify;
    if (disc_open_file(path, 0, &plain) < 0 || disc_open_file(path, DISC_OPEN_VERIFY, &verify) < 0)
        return 3;
    atomic_fetch_add(&sh->opened, 1);
    unsigned variant = (unsigned)idx;
    while (!atomic_load(&sh->stop)) {
        struct disc_walk_stats st = {0};
        int rc = disc_walk_all(variant & 1 ? verify : plain, variant, 1, buf, sizeof(buf), &st);
        variant++;
        atomic_fetch_add(&sh->r[idx].walks, 1);
        atomic_fetch_add(&sh->r[idx].calls, st.calls);
        atomic_fetch_add(&sh->r[idx].ok, st.ok);
        atomic_fetch_add(&sh->r[idx].instances, st.instances);
        if (rc < 0) {
            snprintf(sh->r[idx].why, sizeof(sh->r[idx].why), "%s", st.why);
            atomic_store(&sh->r[idx].violated, 1);
            return 4;
        }
    }
    disc_close(plain);
    disc_close(verify);
    return 0;
}

/* ---- the owner's damage ------------------------------------------------------------------- */

static uint32_t rnd(unsigned *seed)
{
    return (uint32_t)rand_r(seed) << 16 ^ (uint32_t)rand_r(seed);
}

/* One change to a live record: a 32-bit word of it gets a hostile value. */
static void flip(unsigned char *m, const struct recs *r, unsigned *seed)
{
    const struct rec *x = &r->v[rnd(seed) % r->n];
    uint32_t words = x->size / 4 ? x->size / 4 : 1;
    /* mostly the fixed header fields (the first 64 bytes), else anywhere */
    uint32_t at = x->off + 4 * (rnd(seed) % (rnd(seed) % 2 && words > 16 ? 16 : words));
    uint32_t v;
    switch (rnd(seed) % 8) {
    case 0:
        v = 0;
        break;
    case 1:
        v = 0xffffffffu;
        break;
    case 2: /* another record's offset: cycles and kind confusion */
        v = r->v[rnd(seed) % r->n].off;
        break;
    case 3: /* a count just above a limit */
        v = (rnd(seed) & 1) ? DISC_MAX_PAGES * DISC_PAGE_SLOTS * 2 : DISC_SVC_INST_MAX;
        break;
    case 4: /* a string offset/length pair pointing at the record's end */
        v = (x->size - 1) | (rnd(seed) & 0xffff0000u);
        break;
    default: /* a few bits */
        v = __atomic_load_n((uint32_t *)(m + at), __ATOMIC_RELAXED) ^ (1u << (rnd(seed) % 32));
    }
    __atomic_store_n((uint32_t *)(m + at), v, __ATOMIC_RELAXED);
    if (rnd(seed) % 512 == 0) { /* the root itself: a random record as the snapshot */
        uint64_t root = (1ull << 32) | r->v[rnd(seed) % r->n].off;
        __atomic_store_n((uint64_t *)(m + r->root_field), root, __ATOMIC_RELAXED);
    }
}

static void setup(void)
{
    seg_cache_dir(dir, sizeof(dir), "mut", path, sizeof(path), "reg.cache");
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(mutation, .init = setup, .fini = teardown);

Test(mutation, readers_survive_records_flipped_under_them, .timeout = 600)
{
    size_t len = make_image();
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sh, MAP_FAILED);
    memset(sh, 0, sizeof(*sh));

    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    close(fd);
    unsigned char *pristine = malloc(len);
    memcpy(pristine, m, len);
    struct recs recs = {0};
    collect(pristine, &recs);
    cr_assert_gt(recs.n, 400u);

    pid_t pids[NREADERS];
    fflush(NULL);
    for (int i = 0; i < NREADERS; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0)
            _exit(reader(i));
    }
    /* Readers open while the file is intact (the open checks the whole file). */
    long long t0 = seg_now_ms();
    while (atomic_load(&sh->opened) < NREADERS && seg_now_ms() - t0 < HANG_MS)
        usleep(1000);
    cr_assert_eq(atomic_load(&sh->opened), NREADERS, "readers could not open the image");

    unsigned seed = (unsigned)getpid();
    long long end = seg_now_ms() + seg_stress_seconds() * 1000LL;
    uint64_t flips = 0, restores = 0, last_walks[NREADERS] = {0};
    long long last_move[NREADERS];
    for (int i = 0; i < NREADERS; i++)
        last_move[i] = seg_now_ms();
    int hung = -1;
    while (seg_now_ms() < end && hung < 0) {
        for (int k = 0; k < 20; k++, flips++)
            flip(m, &recs, &seed);
        if (rnd(&seed) % 3 == 0) { /* back to valid data, then damage again */
            for (size_t o = 0; o + 8 <= len; o += 8)
                __atomic_store_n((uint64_t *)(m + o), *(uint64_t *)(pristine + o),
                                 __ATOMIC_RELAXED);
            restores++;
        }
        usleep(200);
        long long t = seg_now_ms();
        for (int i = 0; i < NREADERS; i++) {
            uint64_t wk = atomic_load(&sh->r[i].walks);
            if (wk != last_walks[i]) {
                last_walks[i] = wk;
                last_move[i] = t;
            } else if (t - last_move[i] > HANG_MS && !atomic_load(&sh->r[i].violated)) {
                hung = i;
            }
        }
    }
    atomic_store(&sh->stop, 1);

    /* Stop: each reader must exit within HANG_MS; one that does not is
     * hung and is killed by its pid. */
    int crashed = 0, violations = 0, stuck = 0;
    for (int i = 0; i < NREADERS; i++) {
        int st = 0;
        long long t1 = seg_now_ms();
        pid_t r;
        while ((r = waitpid(pids[i], &st, WNOHANG)) == 0 && seg_now_ms() - t1 < HANG_MS)
            usleep(2000);
        if (r == 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], &st, 0);
            stuck++;
            cr_log_error("reader %d (pid %d) hung: killed", i, (int)pids[i]);
            continue;
        }
        if (WIFSIGNALED(st)) {
            crashed++;
            cr_log_error("reader %d died with signal %d", i, WTERMSIG(st));
        } else if (WEXITSTATUS(st) == 4) {
            violations++;
            cr_log_error("reader %d: invariant violated: %s", i, sh->r[i].why);
        } else if (WEXITSTATUS(st) != 0) {
            crashed++;
            cr_log_error("reader %d exited %d", i, WEXITSTATUS(st));
        }
    }
    uint64_t walks = 0, calls = 0, ok = 0, inst = 0;
    for (int i = 0; i < NREADERS; i++) {
        walks += sh->r[i].walks;
        calls += sh->r[i].calls;
        ok += sh->r[i].ok;
        inst += sh->r[i].instances;
        cr_expect_gt(sh->r[i].walks, 0, "reader %d never finished a walk", i);
    }
    cr_log_info("mutation: %llu flips, %llu restores; %llu walks, %llu calls (%llu ok), %llu "
                "instance views checked",
                (unsigned long long)flips, (unsigned long long)restores, (unsigned long long)walks,
                (unsigned long long)calls, (unsigned long long)ok, (unsigned long long)inst);
    cr_expect_eq(hung, -1, "reader %d made no progress for %d ms", hung, HANG_MS);
    cr_expect_eq(stuck, 0, "hung readers");
    cr_expect_eq(crashed, 0, "crashed readers");
    cr_expect_eq(violations, 0, "invariant violations");
    cr_expect_gt(ok, 0, "no call ever succeeded: the readers did not read real data");
    cr_expect_gt(flips, 1000u);
    munmap(m, len);
    free(pristine);
    free(recs.v);
    munmap(sh, sizeof(*sh));
}
