/* SPDX-License-Identifier: MIT */
/*
 * seg_writer.c — create, publish into and retire discshm segments.
 *
 * Memory-ordering summary (the reader side is libdiscshm/reader.c):
 *   publish:  records written with plain stores
 *             -> root  (release)   readers that load root see the records
 *             -> gen   (release)   a reader that loads gen=g then root
 *                                  finds a snapshot >= g
 *             -> change_seq++ and FUTEX_WAKE
 *   reclaim:  a batch retired by publish t is reused once it has been
 *             retired for reclaim_after_ms, or earlier (oldest first) while
 *             retired bytes exceed the budget. Before any retired block is
 *             reused, reclaimed_upto is raised to t and fenced, so a reader
 *             that saw a reused byte also sees the raised word at its end
 *             and retries. Readers announce nothing: no reader-writable
 *             object exists.
 *   files:    <dir>/<name> (data, 0644, fully allocated) and
 *             <dir>/<name>.lock (0600), in a directory only our uid can
 *             write (regdir.h); a new segment is built as a hidden
 *             temporary in the same directory and renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "regdir.h"
#include "seg_internal.h"

#define DEFAULT_SEGMENT_BYTES (4ull << 20)
#define MIN_SEGMENT_BYTES     (1ull << 20)
#define MAX_SEGMENT_BYTES     SEGW_MAX_SEGMENT_BYTES
#define DEFAULT_RECLAIM_MS    1000u
#define INITIAL_SLOTS         DISC_PAGE_SLOTS

/* One staged change, keyed by instance id. rec_off == 0 means delete. */
struct pending {
    char id[DISC_ID_LEN + 1];
    uint32_t rec_off, rec_size;
    uint32_t used; /* slot occupied in the open-addressing map */
    uint32_t h32;  /* wtab_hash of id: its slot here and in the id table */
};

struct seg_writer {
    char name[216];
    char dir[4096];
    struct segw_config cfg;
    int lock_fd, dir_fd;
    bool made_dir, made_lock; /* created by this writer: removed again on failure / unlink */
    bool installed;           /* the segment is <dir>/<name> (else still under tmp) */
    bool budget_auto;         /* retired_budget follows the arena (a quarter) */
    uint64_t grows;           /* roll-overs to a larger segment */
    pthread_mutex_t hdr_mu;   /* segw_mark_stopped (any thread) vs. segw_grow's header swap */
    char tmp[NAME_MAX + 1];   /* hidden name the segment was built under */
    unsigned char *base;
    uint64_t size;
    struct disc_hdr *hdr;
    struct sega a;
    struct wtab svc, ids;
    uint64_t seed;
    uint64_t gen;
    uint32_t snap_off;
    uint32_t snap_flags;
    /* staged changes: open addressing over `pend`, insertion order in `order` */
    struct pending *pend;
    uint32_t pend_cap, npend;
    uint32_t *order;
    /* counters */
    uint64_t commits, overtakes, reclaimed_upto;
    uint64_t unchanged;       /* puts of exactly the published record, dropped */
    uint64_t reclaimed_bytes; /* in total (segw_stats) */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- record keys ----------------------------------------------------------- */

static const char *svc_key(const unsigned char *base, uint32_t off, uint32_t *len)
{
    const struct disc_service_rec *s = (const void *)(base + off);
    *len = s->name_len;
    return (const char *)s + s->name_off;
}

static const char *inst_key(const unsigned char *base, uint32_t off, uint32_t *len)
{
    const struct disc_inst_rec *r = (const void *)(base + off);
    *len = r->id.len;
    return (const char *)r + r->id.off;
}

static const char *inst_service(const unsigned char *base, uint32_t off, uint32_t *len)
{
    const struct disc_inst_rec *r = (const void *)(base + off);
    *len = r->service.len;
    return (const char *)r + r->service.off;
}

/* ---- instance records -------------------------------------------------------- */

struct strbuf {
    unsigned char *rec;
    uint32_t at, size;
};

/* The lengths of an instance's strings, measured once by
 * inst_record_size and used by write_inst (each string was scanned three
 * times: its check, the size, the copy). In the order write_inst puts
 * them: id, service, version, host, az, address, then each tag's key and
 * value, then each endpoint's name, request and response type. */
#define INST_NSTR (6 + 2 * DISC_TAGS_MAX + 3 * DISC_ENDPOINTS_MAX)
struct inst_lens {
    uint16_t n[INST_NSTR];
};

static struct disc_str put_str(struct strbuf *b, const char *s, uint16_t n)
{
    struct disc_str r = {(uint16_t)b->at, n};
    if (n)
        memcpy(b->rec + b->at, s, n);
    b->rec[b->at + n] = 0;
    b->at += (uint32_t)n + 1;
    return r;
}

/* Check string s (NULL: absent, length 0) against max; its length in *len. */
static int check_len(const char *s, size_t max, int required, uint16_t *len)
{
    *len = 0;
    if (!s)
        return required ? -EINVAL : 0;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return -ENAMETOOLONG;
    if (required && n == 0)
        return -EINVAL;
    *len = (uint16_t)n;
    return 0;
}

/* Validate `in` and return the record size it needs (> 0) or -errno; the
 * lengths of its strings in *l. */
static long inst_record_size(const struct segw_instance *in, struct inst_lens *l)
{
    int rc;
    uint16_t *n = l->n;
    if (!in->id || strnlen(in->id, DISC_ID_LEN + 1) != DISC_ID_LEN)
        return -EINVAL;
    n[0] = DISC_ID_LEN;
    if ((rc = check_len(in->service, DISC_SERVICE_MAX, 1, &n[1])) ||
        (rc = check_len(in->version, DISC_VERSION_MAX, 0, &n[2])) ||
        (rc = check_len(in->host, DISC_HOST_MAX, 0, &n[3])) ||
        (rc = check_len(in->az, DISC_AZ_MAX, 0, &n[4])) ||
        (rc = check_len(in->address, DISC_ADDRESS_MAX, 1, &n[5])))
        return rc;
    if (in->addr_kind != DISC_ADDR_TCP && in->addr_kind != DISC_ADDR_UNIX)
        return -EINVAL;
    if (in->n_tags > DISC_TAGS_MAX || in->n_endpoints > DISC_ENDPOINTS_MAX)
        return -E2BIG;
    if ((in->n_tags && !in->tags) || (in->n_endpoints && !in->endpoints))
        return -EINVAL;
    size_t strings = 6;
    for (unsigned i = 0; i < 6; i++)
        strings += n[i];
    n += 6;
    for (unsigned i = 0; i < in->n_tags; i++, n += 2) {
        if ((rc = check_len(in->tags[i].key, DISC_TAG_KEY_MAX, 1, &n[0])) ||
            (rc = check_len(in->tags[i].value, DISC_TAG_VALUE_MAX, 0, &n[1])))
            return rc;
        strings += (size_t)n[0] + n[1] + 2;
    }
    for (unsigned i = 0; i < in->n_endpoints; i++, n += 3) {
        const struct segw_endpoint *e = &in->endpoints[i];
        if ((rc = check_len(e->name, DISC_ENDPOINT_NAME_MAX, 1, &n[0])) ||
            (rc = check_len(e->request_type, DISC_TYPE_NAME_MAX, 0, &n[1])) ||
            (rc = check_len(e->response_type, DISC_TYPE_NAME_MAX, 0, &n[2])))
            return rc;
        strings += (size_t)n[0] + n[1] + n[2] + 3;
    }
    size_t total = sizeof(struct disc_inst_rec) + in->n_tags * sizeof(struct disc_tag_rec) +
                   in->n_endpoints * sizeof(struct disc_endpoint_rec) + strings;
    if (total > DISC_REC_MAX)
        return -E2BIG;
    return (long)total;
}

static void write_inst(unsigned char *rec, uint32_t size, const struct segw_instance *in,
                       const struct inst_lens *l)
{
    struct disc_inst_rec *r = (struct disc_inst_rec *)rec;
    const uint16_t *n = l->n;
    memset(rec, 0, size);
    r->type = DISC_REC_INSTANCE;
    r->size = size;
    r->weight = in->weight ? in->weight : 10;
    r->registered_at_ms = in->registered_at_ms;
    r->owner_uid = in->owner_uid;
    r->addr_kind = in->addr_kind;
    r->health = in->health;
    r->origin = in->origin ? in->origin : DISC_ORIGIN_LOCAL;
    r->n_tags = in->n_tags;
    r->n_endpoints = in->n_endpoints;
    r->tags_off = sizeof(*r);
    r->endpoints_off = r->tags_off + in->n_tags * (uint32_t)sizeof(struct disc_tag_rec);
    struct strbuf b = {
        rec, r->endpoints_off + in->n_endpoints * (uint32_t)sizeof(struct disc_endpoint_rec), size};
    r->id = put_str(&b, in->id, n[0]);
    r->service = put_str(&b, in->service, n[1]);
    r->version = put_str(&b, in->version, n[2]);
    r->host = put_str(&b, in->host, n[3]);
    r->az = put_str(&b, in->az, n[4]);
    r->address = put_str(&b, in->address, n[5]);
    n += 6;
    struct disc_tag_rec *t = (struct disc_tag_rec *)(rec + r->tags_off);
    for (unsigned i = 0; i < in->n_tags; i++, n += 2) {
        t[i].key = put_str(&b, in->tags[i].key, n[0]);
        t[i].value = put_str(&b, in->tags[i].value, n[1]);
    }
    struct disc_endpoint_rec *e = (struct disc_endpoint_rec *)(rec + r->endpoints_off);
    for (unsigned i = 0; i < in->n_endpoints; i++, n += 3) {
        e[i].name = put_str(&b, in->endpoints[i].name, n[0]);
        e[i].request_type = put_str(&b, in->endpoints[i].request_type, n[1]);
        e[i].response_type = put_str(&b, in->endpoints[i].response_type, n[2]);
        e[i].mean_us = in->endpoints[i].mean_us;
        e[i].p95_us = in->endpoints[i].p95_us;
    }
    r->checksum = disc_checksum(rec, size, offsetof(struct disc_inst_rec, checksum));
}

/* ---- staged changes ------------------------------------------------------------ */

/* The staging slot of id (h32: its wtab_hash, which the commit uses again
 * for the id table). */
static struct pending *pend_slot(struct seg_writer *w, const char *id, uint32_t h32)
{
    uint32_t mask = w->pend_cap - 1;
    for (uint32_t i = h32 & mask;; i = (i + 1) & mask) {
        struct pending *p = &w->pend[i];
        if (!p->used || memcmp(p->id, id, DISC_ID_LEN) == 0)
            return p;
    }
}

static int pend_grow(struct seg_writer *w)
{
    if ((w->npend + 1) * 2 <= w->pend_cap)
        return 0;
    uint32_t ncap = w->pend_cap ? w->pend_cap * 2 : 64;
    struct pending *old = w->pend;
    uint32_t ocap = w->pend_cap;
    uint32_t *order = realloc(w->order, (size_t)ncap * sizeof(*order));
    struct pending *np = calloc(ncap, sizeof(*np));
    if (!order || !np) {
        free(np);
        if (order)
            w->order = order;
        return -ENOMEM;
    }
    w->order = order;
    w->pend = np;
    w->pend_cap = ncap;
    for (uint32_t i = 0; i < w->npend; i++) {
        struct pending *src = &old[w->order[i]];
        struct pending *dst = pend_slot(w, src->id, src->h32);
        *dst = *src;
        w->order[i] = (uint32_t)(dst - w->pend);
    }
    (void)ocap;
    free(old);
    return 0;
}

/* Stage rec_off (0 = delete) for id; frees a superseded staged record. */
static int stage(struct seg_writer *w, const char *id, uint32_t rec_off, uint32_t rec_size)
{
    int rc = pend_grow(w);
    if (rc < 0)
        return rc;
    uint32_t h32 = wtab_hash(w->seed, id, DISC_ID_LEN);
    struct pending *p = pend_slot(w, id, h32);
    if (p->used) {
        if (p->rec_off)
            sega_free_now(&w->a, p->rec_off, p->rec_size); /* never published */
    } else {
        memcpy(p->id, id, DISC_ID_LEN);
        p->id[DISC_ID_LEN] = 0;
        p->used = 1;
        p->h32 = h32;
        w->order[w->npend++] = (uint32_t)(p - w->pend);
    }
    p->rec_off = rec_off;
    p->rec_size = rec_size;
    return 0;
}

/* Staging tables above this many slots are given back once empty: a bulk
 * load (100k instances in one commit) grows the table to 256k slots of 48
 * bytes, and every later put of a small commit would probe a random line of
 * those 12 MB (a cache and TLB miss per change, 6% of a 10-change
 * commit's CPU); pend_grow builds a small one again on the next put. */
#define PEND_KEEP_CAP 1024u

static void pend_clear(struct seg_writer *w)
{
    if (w->pend_cap > PEND_KEEP_CAP) {
        free(w->pend);
        free(w->order);
        w->pend = NULL;
        w->order = NULL;
        w->pend_cap = 0;
        w->npend = 0;
        return;
    }
    for (uint32_t i = 0; i < w->npend; i++)
        w->pend[w->order[i]].used = 0;
    w->npend = 0;
}

long segw_record_size(const struct segw_instance *in)
{
    struct inst_lens l;
    return in ? inst_record_size(in, &l) : -EINVAL;
}

void segw_unstage(struct seg_writer *w)
{
    for (uint32_t i = 0; i < w->npend; i++) {
        struct pending *p = &w->pend[w->order[i]];
        if (p->rec_off)
            sega_free_now(&w->a, p->rec_off, p->rec_size); /* never published */
        p->rec_off = 0;
        p->rec_size = 0;
    }
    pend_clear(w);
}

int segw_put(struct seg_writer *w, const struct segw_instance *in)
{
    struct inst_lens l;
    long size = inst_record_size(in, &l);
    if (size < 0)
        return (int)size;
    uint32_t off = sega_alloc(&w->a, (uint32_t)size);
    if (!off)
        return -ENOSPC;
    write_inst(w->a.base + off, (uint32_t)size, in, &l);
    int rc = stage(w, in->id, off, (uint32_t)size);
    if (rc < 0)
        sega_free_now(&w->a, off, (uint32_t)size);
    return rc;
}

int segw_del(struct seg_writer *w, const char *id)
{
    if (!id || strlen(id) != DISC_ID_LEN)
        return -EINVAL;
    uint32_t h32 = wtab_hash(w->seed, id, DISC_ID_LEN);
    int published = wtab_find_h(&w->a, &w->ids, h32, inst_key, id, DISC_ID_LEN) != 0;
    int staged = w->pend_cap && pend_slot(w, id, h32)->used;
    if (!published && !staged)
        return -ENOENT;
    return stage(w, id, 0, 0);
}

static void stage_del_cb(uint32_t rec_off, void *arg)
{
    struct seg_writer *w = arg;
    uint32_t len;
    const char *id = inst_key(w->a.base, rec_off, &len);
    char buf[DISC_ID_LEN + 1];
    memcpy(buf, id, DISC_ID_LEN);
    buf[DISC_ID_LEN] = 0;
    stage(w, buf, 0, 0);
}

void segw_clear(struct seg_writer *w)
{
    for (uint32_t i = 0; i < w->npend; i++) {
        struct pending *p = &w->pend[w->order[i]];
        if (p->rec_off)
            sega_free_now(&w->a, p->rec_off, p->rec_size);
        p->rec_off = 0;
        p->rec_size = 0;
    }
    wtab_foreach(&w->a, &w->ids, stage_del_cb, w);
}

size_t segw_pending(const struct seg_writer *w)
{
    return w->npend;
}

/* ---- commit ------------------------------------------------------------------------ */

/* One effect of a staged change on one service. */
struct effect {
    const char *svc;
    uint32_t svc_len;
    uint32_t h32; /* wtab_hash of svc */
    uint32_t rm;  /* instance record leaving the service (0: none) */
    uint32_t add; /* instance record joining it (0: none) */
};

/* The staged record at rec (rec_size bytes) is byte for byte the published
 * record at old: every field, hence the same checksum. */
static bool same_record(const struct sega *a, uint32_t old, uint32_t rec, uint32_t rec_size)
{
    const struct disc_inst_rec *o = SEG_AT(a, const struct disc_inst_rec, old);
    return o->size == rec_size && memcmp(o, a->base + rec, rec_size) == 0;
}

/* By hash first: a small commit's effects on different services are then
 * ordered without reading their names (an old record's name is a cold
 * line); only effects on one service (or a 32-bit collision) compare
 * names. Equal names have equal hashes, so a service's effects are still
 * adjacent. */
static int cmp_effect(const void *x, const void *y)
{
    const struct effect *a = x, *b = y;
    if (a->h32 != b->h32)
        return a->h32 < b->h32 ? -1 : 1;
    uint32_t n = a->svc_len < b->svc_len ? a->svc_len : b->svc_len;
    int c = memcmp(a->svc, b->svc, n);
    if (c)
        return c;
    return a->svc_len < b->svc_len ? -1 : a->svc_len > b->svc_len;
}

/* Effects grouped by service: an insertion sort for a small commit's
 * (qsort's merge sort and its calls through a pointer cost ~4k
 * instructions for 20 effects), qsort above that. */
static void sort_effects(struct effect *e, uint32_t n)
{
    if (n > 24) {
        qsort(e, n, sizeof(*e), cmp_effect);
        return;
    }
    for (uint32_t i = 1; i < n; i++) {
        struct effect x = e[i];
        uint32_t j = i;
        for (; j > 0 && cmp_effect(&e[j - 1], &x) > 0; j--)
            e[j] = e[j - 1];
        e[j] = x;
    }
}

/* Instance offsets sort by id; qsort has no context argument, so ids are
 * compared through a small array of (id pointer, offset) pairs instead. */
struct idref {
    const char *id;
    uint32_t off;
};

static int cmp_idref(const void *x, const void *y)
{
    return memcmp(((const struct idref *)x)->id, ((const struct idref *)y)->id, DISC_ID_LEN);
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static uint32_t svc_rec_bytes(uint32_t n, uint32_t name_len)
{
    return (uint32_t)sizeof(struct disc_service_rec) + 4u * n + name_len + 1;
}

static const char *idref_id(const struct sega *a, struct idref *r)
{
    uint32_t l;
    if (!r->id)
        r->id = inst_key(a->base, r->off, &l);
    return r->id;
}

/* Place add[0..nadd) (sorted by id, none equal to an id in v) into
 * v[0..*nv) (sorted by id; room for both): a binary search per joining
 * instance when few join, else one merge. Ids are read only as
 * compared. */
static void insert_sorted(const struct sega *a, struct idref *v, uint32_t *nv,
                          const struct idref *add, uint32_t nadd)
{
    uint32_t n = *nv, lg = 1;
    while ((1u << lg) <= n)
        lg++;
    if ((uint64_t)nadd * lg < n) {
        uint32_t lo = 0;
        for (uint32_t k = 0; k < nadd; k++) {
            uint32_t hi = n; /* first index in [lo, n) whose id is above add[k]'s */
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (memcmp(idref_id(a, &v[mid]), add[k].id, DISC_ID_LEN) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            memmove(v + lo + 1, v + lo, (size_t)(n - lo) * sizeof(*v));
            v[lo] = add[k];
            n++;
            lo++;
        }
    } else {
        /* merge from the back, in place */
        uint32_t i = n, j = nadd, o = n + nadd;
        while (j > 0) {
            if (i > 0 && memcmp(idref_id(a, &v[i - 1]), add[j - 1].id, DISC_ID_LEN) > 0)
                v[--o] = v[--i];
            else
                v[--o] = add[--j];
        }
        n += nadd;
    }
    *nv = n;
}

#define APPLY_STACK_N 16  /* effects on one service handled on the stack */
#define APPLY_STACK_V 128 /* instances of the new service record, likewise */

/* Apply the effects [e, e+n) (all on one service) to the service table. */
static int apply_service(struct seg_writer *w, struct effect *e, uint32_t n)
{
    struct sega *a = &w->a;
    uint32_t cur_slot;
    uint32_t cur_off = wtab_find_slot_h(a, &w->svc, e->h32, svc_key, e->svc, e->svc_len, &cur_slot);
    const struct disc_service_rec *cur =
        cur_off ? SEG_AT(a, const struct disc_service_rec, cur_off) : NULL;
    uint32_t ncur = cur ? cur->n_instances : 0;

    /* The common case (a few changes to a service of up to ~100
     * instances) works on the stack: four mallocs and frees per changed
     * service were ~5% of a small commit's instructions. */
    uint32_t rm_s[APPLY_STACK_N], rm_by_s[APPLY_STACK_N];
    struct idref v_s[APPLY_STACK_V], add_s[APPLY_STACK_N];
    bool heap = n + 1 > APPLY_STACK_N || ncur + n + 1 > APPLY_STACK_V;
    uint32_t *rm = heap ? malloc((size_t)(n + 1) * sizeof(*rm)) : rm_s;
    uint32_t *rm_by = heap ? malloc((size_t)(n + 1) * sizeof(*rm_by)) : rm_by_s;
    struct idref *v = heap ? malloc((size_t)(ncur + n + 1) * sizeof(*v)) : v_s;
    struct idref *add = heap ? malloc((size_t)(n + 1) * sizeof(*add)) : add_s;
    int rc = -ENOMEM;
    if (!rm || !rm_by || !v || !add)
        goto out;
    /* The current record's offsets are sorted by id already. A change of
     * an instance that stays in this service removes its old record and
     * adds the new one, with the same id: the new offset takes the old
     * one's place, and no other instance record is read. Only instances
     * joining the service are placed by id (a binary search each, or one
     * merge when many join), so a change to one instance of a service no
     * longer reads every instance record of it (cold lines: ~10% of a
     * small commit's CPU at 10 instances a service). */
    uint32_t nrm = 0, nadd = 0, nv = 0;
    for (uint32_t i = 0; i < n; i++)
        if (e[i].rm)
            rm[nrm++] = e[i].rm;
    if (nrm > 1)
        qsort(rm, nrm, sizeof(*rm), cmp_u32);
    for (uint32_t i = 0; i < nrm; i++)
        rm_by[i] = 0; /* the added record taking rm[i]'s place, 0: none */
    for (uint32_t i = 0; i < n; i++) {
        if (!e[i].add)
            continue;
        uint32_t l;
        const char *id = inst_key(a->base, e[i].add, &l);
        bool placed = false;
        for (uint32_t r = 0; r < nrm && !placed; r++) {
            uint32_t rl;
            if (!rm_by[r] && memcmp(inst_key(a->base, rm[r], &rl), id, DISC_ID_LEN) == 0) {
                rm_by[r] = e[i].add;
                placed = true;
            }
        }
        if (!placed) {
            add[nadd].id = id;
            add[nadd++].off = e[i].add;
        }
    }
    for (uint32_t i = 0; i < ncur; i++) {
        uint32_t off = cur->instances[i];
        const uint32_t *hit = nrm ? bsearch(&off, rm, nrm, sizeof(*rm), cmp_u32) : NULL;
        if (hit && !rm_by[hit - rm])
            continue;
        v[nv].id = NULL; /* read only if a joining instance needs it */
        v[nv++].off = hit ? rm_by[hit - rm] : off;
        if (hit)
            rm_by[hit - rm] = 0; /* taken */
    }
    for (uint32_t r = 0; r < nrm; r++)
        if (rm_by[r]) { /* its old record was not in the service: joins by id */
            uint32_t l;
            add[nadd].id = inst_key(a->base, rm_by[r], &l);
            add[nadd++].off = rm_by[r];
        }
    if (nadd) {
        if (nadd > 1)
            qsort(add, nadd, sizeof(*add), cmp_idref);
        insert_sorted(a, v, &nv, add, nadd);
    }

    if (nv == 0) {
        rc = cur_off ? wtab_del_h(a, &w->svc, e->h32, svc_key, e->svc, e->svc_len) : 0;
    } else {
        if (nv > DISC_SVC_INST_MAX) {
            rc = -E2BIG;
            goto out;
        }
        uint32_t bytes = svc_rec_bytes(nv, e->svc_len);
        uint32_t off = sega_alloc(a, bytes);
        rc = -ENOSPC;
        if (!off)
            goto out;
        struct disc_service_rec *s = SEG_AT(a, struct disc_service_rec, off);
        memset(s, 0, bytes);
        s->type = DISC_REC_SERVICE;
        s->size = bytes;
        s->n_instances = nv;
        s->name_len = (uint16_t)e->svc_len;
        s->name_off = (uint32_t)sizeof(*s) + 4u * nv;
        for (uint32_t i = 0; i < nv; i++)
            s->instances[i] = v[i].off;
        memcpy((char *)s + s->name_off, e->svc, e->svc_len);
        s->checksum = disc_checksum(s, bytes, offsetof(struct disc_service_rec, checksum));
        /* the key must come from the new record: e->svc may point into cur */
        uint32_t kl;
        const char *k = svc_key(a->base, off, &kl);
        rc = wtab_replace_at(a, &w->svc, cur_slot, e->h32, cur_off, off);
        if (rc == -ESTALE) /* a new service, or its slot moved by a removal before */
            rc = wtab_set_h(a, &w->svc, e->h32, svc_key, k, kl, off); /* k: e->svc's bytes */
    }
    if (rc == 0 && cur_off)
        rc = sega_retire(a, cur_off, cur->size);
out:
    if (heap) {
        free(rm);
        free(rm_by);
        free(v);
        free(add);
    }
    return rc;
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void reclaim(struct seg_writer *w);
static void mark_recycled(struct disc_hdr *h, uint64_t successor);

/* Write a snapshot of the tables svc/ids in arena a (not published yet). */
static int write_snapshot_in(struct sega *a, struct wtab *svc, struct wtab *ids, uint32_t flags,
                             uint64_t gen, uint32_t *out)
{
    uint32_t off = sega_alloc(a, sizeof(struct disc_snapshot));
    if (!off)
        return -ENOSPC;
    wtab_seal(a, (struct wtab *const[]){svc, ids}, 2);
    struct disc_snapshot *s = SEG_AT(a, struct disc_snapshot, off);
    memset(s, 0, sizeof(*s));
    s->type = DISC_REC_SNAPSHOT;
    s->size = sizeof(*s);
    s->gen = gen;
    s->published_ms = real_ms();
    s->svc_table = svc->off;
    s->id_table = ids->off;
    s->n_services = wtab_count(a, svc);
    s->n_instances = wtab_count(a, ids);
    s->flags = flags;
    s->checksum = disc_checksum(s, sizeof(*s), offsetof(struct disc_snapshot, checksum));
    *out = off;
    return 0;
}

static int write_snapshot(struct seg_writer *w, uint64_t gen, uint32_t *out)
{
    return write_snapshot_in(&w->a, &w->svc, &w->ids, w->snap_flags, gen, out);
}

/* Make snapshot `off` (generation gen) the one readers see. */
static void publish_in(struct disc_hdr *h, uint32_t off, uint64_t gen)
{
    /* Records are complete before root: release. */
    atomic_store_explicit(&h->root, ((gen & 0xffffffffull) << 32) | off, memory_order_release);
    /* gen after root: a reader that sees gen=g then loads root finds >= g. */
    atomic_store_explicit(&h->gen, gen, memory_order_release);
    atomic_fetch_add_explicit(&h->change_seq, 1, memory_order_release);
    futex_wake_all(&h->change_seq);
}

static void publish(struct seg_writer *w, uint32_t off, uint64_t gen)
{
    publish_in(w->hdr, off, gen);
}

int64_t segw_commit(struct seg_writer *w)
{
    if (w->npend == 0)
        return 0;
    struct sega *a = &w->a;
    struct effect *eff = malloc((size_t)w->npend * 2 * sizeof(*eff));
    /* each id's old record, hash, slot, and whether its staged record is
     * the old one again */
    uint32_t *old = malloc((size_t)w->npend * (3 * sizeof(*old) + 1));
    int rc = -ENOMEM;
    if (!eff || !old) {
        free(eff);
        free(old);
        return -ENOMEM;
    }
    uint32_t *oslot = old + 2 * w->npend;
    uint8_t *same = (uint8_t *)(oslot + w->npend);
    sega_commit_begin(a);

    /* Every staged id's slot, then its old record, as one batch of misses
     * (then the services', below). Each key is hashed once. */
    uint32_t *hid = old + w->npend;
    for (uint32_t i = 0; i < w->npend; i++)
        hid[i] = w->pend[w->order[i]].h32; /* hashed when staged */
    for (int stage = 0; stage < 2; stage++)
        for (uint32_t i = 0; i < w->npend; i++)
            wtab_prefetch_h(a, &w->ids, hid[i], stage);
    uint32_t ne = 0;
    for (uint32_t i = 0; i < w->npend; i++) {
        struct pending *p = &w->pend[w->order[i]];
        old[i] = wtab_find_slot_h(a, &w->ids, hid[i], inst_key, p->id, DISC_ID_LEN, &oslot[i]);
        /* A put of exactly the published record (a re-registration, a
         * region resync, a restart's reload) changes nothing: no new
         * service record, no page copied; the staged copy is dropped once
         * the commit succeeds. */
        same[i] = old[i] && p->rec_off && same_record(a, old[i], p->rec_off, p->rec_size);
        if (same[i])
            continue;
        if (old[i]) {
            eff[ne].svc = inst_service(a->base, old[i], &eff[ne].svc_len);
            eff[ne].h32 = wtab_hash(w->seed, eff[ne].svc, eff[ne].svc_len);
            eff[ne].rm = old[i];
            eff[ne++].add = 0;
        }
        if (p->rec_off) {
            eff[ne].svc = inst_service(a->base, p->rec_off, &eff[ne].svc_len);
            eff[ne].h32 = wtab_hash(w->seed, eff[ne].svc, eff[ne].svc_len);
            eff[ne].rm = 0;
            eff[ne++].add = p->rec_off;
        }
    }
    sort_effects(eff, ne);
    for (int stage = 0; stage < 2; stage++)
        for (uint32_t i = 0; i < ne; i++)
            if (i == 0 || eff[i - 1].h32 != eff[i].h32 || cmp_effect(&eff[i - 1], &eff[i]) != 0)
                wtab_prefetch_h(a, &w->svc, eff[i].h32, stage);
    for (uint32_t i = 0; i < ne;) {
        uint32_t j = i + 1;
        while (j < ne && cmp_effect(&eff[i], &eff[j]) == 0)
            j++;
        if ((rc = apply_service(w, eff + i, j - i)) < 0)
            goto fail;
        i = j;
    }
    for (uint32_t i = 0; i < w->npend; i++) {
        struct pending *p = &w->pend[w->order[i]];
        if (same[i])
            continue;
        if (p->rec_off) {
            rc = wtab_replace_at(a, &w->ids, oslot[i], hid[i], old[i], p->rec_off);
            if (rc == -ESTALE) /* a new id, or its slot moved by a deletion before */
                rc = wtab_set_h(a, &w->ids, hid[i], inst_key, p->id, DISC_ID_LEN, p->rec_off);
        } else if (old[i])
            rc = wtab_del_h(a, &w->ids, hid[i], inst_key, p->id, DISC_ID_LEN);
        else
            rc = 0;
        if (rc < 0)
            goto fail;
        if (old[i] &&
            (rc = sega_retire(a, old[i], SEG_AT(a, struct disc_inst_rec, old[i])->size)) < 0)
            goto fail;
    }
    uint32_t snap;
    if ((rc = write_snapshot(w, w->gen + 1, &snap)) < 0)
        goto fail;
    if ((rc = sega_retire(a, w->snap_off, sizeof(struct disc_snapshot))) < 0)
        goto fail;

    w->gen++;
    publish(w, snap, w->gen);
    w->snap_off = snap;
    sega_commit_ok(a, w->gen, mono_ns());
    wtab_commit_done(&w->svc);
    wtab_commit_done(&w->ids);
    for (uint32_t i = 0; i < w->npend; i++)
        if (same[i]) { /* never published: its old twin stays */
            struct pending *p = &w->pend[w->order[i]];
            sega_free_now(a, p->rec_off, p->rec_size);
            w->unchanged++;
        }
    pend_clear(w);
    w->commits++;
    free(eff);
    free(old);
    reclaim(w);
    return (int64_t)w->gen;

fail:
    sega_commit_fail(a);
    {
        const struct disc_snapshot *s = SEG_AT(a, const struct disc_snapshot, w->snap_off);
        w->svc.off = s->svc_table;
        w->ids.off = s->id_table;
        wtab_commit_done(&w->svc);
        wtab_commit_done(&w->ids);
    }
    free(eff);
    free(old);
    return rc;
}

/* ---- grace periods ------------------------------------------------------------------ */

static void reclaim(struct seg_writer *w)
{
    struct sega *a = &w->a;
    if (a->nbatches == 0) {
        atomic_store_explicit(&w->hdr->used_bytes, sega_used(a), memory_order_relaxed);
        return;
    }
    /* Batches are oldest first. Reuse what was retired at least T ago. */
    int64_t now = mono_ns(), after = (int64_t)w->cfg.reclaim_after_ms * 1000000;
    uint64_t upto = w->reclaimed_upto, pinned = 0;
    uint32_t i = 0;
    /* pinned = bytes of the batches from i on: all closed batches' bytes
     * less the prefix (the writer runs this after every commit and tick,
     * with ~1000 batches inside T at 1000 commits/s: no walk over them) */
    pinned = a->retired_bytes - a->open.bytes;
    for (; i < a->nbatches && now - sega_batch_at(a, i)->retired_ns >= after; i++) {
        upto = sega_batch_at(a, i)->tag;
        pinned -= sega_batch_at(a, i)->bytes;
    }
    /* Short of memory: reuse younger batches too, oldest first, until the
     * rest fits the budget. A section that spans this retries. */
    bool early = false;
    for (; i < a->nbatches && pinned > w->cfg.retired_budget; i++) {
        upto = sega_batch_at(a, i)->tag;
        pinned -= sega_batch_at(a, i)->bytes;
        early = true;
    }
    if (upto <= w->reclaimed_upto) {
        atomic_store_explicit(&w->hdr->used_bytes, sega_used(a), memory_order_relaxed);
        return;
    }
    if (early) {
        w->overtakes++;
        atomic_store_explicit(&w->hdr->early_upto, upto, memory_order_relaxed);
        atomic_store_explicit(&w->hdr->overtakes, w->overtakes, memory_order_relaxed);
    }
    w->reclaimed_upto = upto;
    atomic_store_explicit(&w->hdr->reclaimed_upto, upto, memory_order_seq_cst);
    /* The raised word is visible before any reused byte is written. */
    atomic_thread_fence(memory_order_seq_cst);
    w->reclaimed_bytes += sega_reclaim(a, upto);
    atomic_store_explicit(&w->hdr->used_bytes, sega_used(a), memory_order_relaxed);
}

void segw_tick(struct seg_writer *w)
{
    atomic_store_explicit(&w->hdr->heartbeat_mono_ns, mono_ns(), memory_order_release);
    reclaim(w);
}

/* ---- creation and recycling ------------------------------------------------------------ */

/* Take the one-writer lock <dir>/<name>.lock (mode 0600: nobody else can
 * even open it to read-lock it). The lock is an OFD write lock on byte 0;
 * after taking it we check the name still refers to the locked file (a
 * writer that removes it on exit does so while holding the lock). */
static int take_lock(struct seg_writer *w)
{
    char lname[NAME_MAX + 1];
    snprintf(lname, sizeof(lname), "%s.lock", w->name);
    for (int attempt = 0; attempt < 8; attempt++) {
        bool made = false;
        int fd = openat(w->dir_fd, lname, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            fd = openat(w->dir_fd, lname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            made = fd >= 0;
            if (fd < 0 && errno == EEXIST)
                continue;
        }
        if (fd < 0) {
            int e = errno;
            disc__msg(w->cfg.err, w->cfg.errlen, "lock %s/%s: %s", w->dir, lname,
                      e == ELOOP ? "is a symbolic link" : strerror(e));
            return e == ELOOP ? -EPERM : -e;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
            disc__msg(w->cfg.err, w->cfg.errlen,
                      "lock %s/%s is not a regular file owned by uid %u (owner uid %u)", w->dir,
                      lname, (unsigned)geteuid(), (unsigned)st.st_uid);
            close(fd);
            return -EPERM;
        }
        if ((st.st_mode & 07777) != 0600)
            fchmod(fd, 0600); /* an older discd made it 0644: nobody else may lock it */
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
            int e = errno;
            close(fd);
            if (made)
                unlinkat(w->dir_fd, lname, 0); /* cannot happen: nobody locks what we just made */
            disc__msg(w->cfg.err, w->cfg.errlen, "lock %s/%s is held by another writer", w->dir,
                      lname);
            return (e == EAGAIN || e == EACCES) ? -EBUSY : -e;
        }
        struct stat now;
        if (fstatat(w->dir_fd, lname, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st.st_ino &&
            now.st_dev == st.st_dev) {
            w->lock_fd = fd;
            w->made_lock = made;
            return 0;
        }
        close(fd); /* removed by its previous holder meanwhile: try again */
    }
    return -EAGAIN;
}

/* Create <dir>/<tmp> of `size` bytes, fully allocated: a full file system
 * fails here (-ENOSPC), never later with SIGBUS on a write into a hole. */
static int create_object(struct seg_writer *w, const char *tmp, uint64_t size, mode_t mode,
                         int *fd_out)
{
    int fd = openat(w->dir_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    /* fchmod: the umask must not narrow what readers need */
    int rc = 0;
    if (fchmod(fd, mode) < 0 || ftruncate(fd, (off_t)size) < 0)
        rc = -errno;
    else
        rc = -posix_fallocate(fd, 0, (off_t)size);
    if (rc < 0) {
        close(fd);
        unlinkat(w->dir_fd, tmp, 0);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* Mark the predecessor segment (opened as fd before our rename) RECYCLED
 * so its readers move to ours. */
static void recycle_old(int fd, uint64_t successor)
{
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
        st.st_size >= (off_t)DISC_HEADER_SIZE) {
        struct disc_hdr *h =
            mmap(NULL, DISC_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (h != MAP_FAILED) {
            if (h->magic == DISC_MAGIC && h->segment_id != successor)
                mark_recycled(h, successor);
            munmap(h, DISC_HEADER_SIZE);
        }
    }
    close(fd);
}

/* Open (creating it 0755 if missing) and check the registry directory: ours,
 * not writable by others, in a directory only root or we can write. */
static int open_dir(struct seg_writer *w)
{
    uint32_t me = (uint32_t)geteuid();
    if (mkdir(w->dir, 0755) == 0) {
        w->made_dir = true;
        chmod(w->dir, 0755); /* the umask must not hide it from readers */
    } else if (errno != EEXIST) {
        int e = errno;
        disc__msg(w->cfg.err, w->cfg.errlen, "cannot create registry directory %s: %s", w->dir,
                  strerror(e));
        return -e;
    }
    int fd = disc__open_dir(w->dir, &me, 1, w->cfg.err, w->cfg.errlen);
    if (fd < 0) {
        if (w->made_dir) {
            rmdir(w->dir);
            w->made_dir = false;
        }
        return fd;
    }
    w->dir_fd = fd;
    return 0;
}

/* Remove the lock file (held) and the directory if we made them. */
static void remove_own(struct seg_writer *w, bool lock_too)
{
    if (w->dir_fd < 0)
        return;
    if (lock_too && w->lock_fd >= 0) {
        char lname[NAME_MAX + 1];
        snprintf(lname, sizeof(lname), "%s.lock", w->name);
        unlinkat(w->dir_fd, lname, 0); /* still locked: a racing writer re-checks the name */
    }
    if (w->made_dir)
        rmdir(w->dir); /* only if empty: other registries may live there */
}

/* The first line of a header (a live segment's or an image's), alive. */
static void hdr_init(struct disc_hdr *h, uint64_t magic, uint64_t size, uint64_t id, uint64_t seed,
                     uint32_t arena_end)
{
    h->magic = magic;
    h->abi_major = DISC_ABI_MAJOR;
    h->abi_minor = DISC_ABI_MINOR;
    h->header_size = DISC_HEADER_SIZE;
    h->features = DISC_FEAT_CHECKSUMS | DISC_FEAT_CHECKSUM_WORD;
    h->segment_size = size;
    h->segment_id = id;
    h->hash_seed = seed;
    h->arena_off = DISC_HEADER_SIZE;
    h->arena_end = arena_end;
    h->writer_pid = (uint32_t)getpid();
    h->created_ms = real_ms();
    atomic_store(&h->status, DISC_SEG_ALIVE);
}

/* Create <dir>/<tmp> of `bytes`, fully allocated, map it and write its
 * header (id, seed, arena, the writer's settings); nothing is published.
 * On error nothing is left behind. */
static int newseg_create(struct seg_writer *w, const char *tmp, uint64_t bytes,
                         unsigned char **base_out)
{
    uint64_t id;
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
        return -EIO;
    id |= 1; /* never 0 */
    int fd = -1, rc;
    unlinkat(w->dir_fd, tmp, 0); /* leftovers of a writer with our pid that crashed */
    if ((rc = create_object(w, tmp, bytes, 0644, &fd)) < 0)
        return rc;
    unsigned char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    rc = base == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc < 0) {
        unlinkat(w->dir_fd, tmp, 0);
        return rc;
    }
    struct disc_hdr *h = (struct disc_hdr *)base;
    hdr_init(h, DISC_MAGIC, bytes, id, w->seed, (uint32_t)(bytes - 4096)); /* last page: zero */
    h->reclaim_after_ms = w->cfg.reclaim_after_ms;
    atomic_store(&h->heartbeat_mono_ns, mono_ns());
    h->dead_after_ms = w->cfg.dead_after_ms ? w->cfg.dead_after_ms : DISC_WRITER_DEAD_MS;
    *base_out = base;
    return 0;
}

/* Mark the segment mapped at h RECYCLED in favour of `successor` and wake
 * its waiters: its readers move at their next section. */
static void mark_recycled(struct disc_hdr *h, uint64_t successor)
{
    atomic_store_explicit(&h->successor_id, successor, memory_order_relaxed);
    atomic_store_explicit(&h->status, DISC_SEG_RECYCLED, memory_order_release);
    atomic_fetch_add_explicit(&h->change_seq, 1, memory_order_release);
    futex_wake_all(&h->change_seq);
}

int segw_install(struct seg_writer *w)
{
    if (w->installed)
        return 0;
    /* Atomic replace: a reader always finds a complete segment. */
    int old_fd = openat(w->dir_fd, w->name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (renameat(w->dir_fd, w->tmp, w->dir_fd, w->name) < 0) {
        int rc = -errno;
        disc__msg(w->cfg.err, w->cfg.errlen, "cannot rename the new segment into %s/%s: %s", w->dir,
                  w->name, strerror(-rc));
        if (old_fd >= 0)
            close(old_fd);
        return rc;
    }
    w->installed = true;
    recycle_old(old_fd, w->hdr->segment_id);
    return 0;
}

int segw_open(const char *name, const struct segw_config *cfg_in, struct seg_writer **out)
{
    if (!name || !disc__name_ok(name) || !out)
        return -EINVAL;
    struct segw_config cfg = cfg_in ? *cfg_in : (struct segw_config){0};
    if (cfg.err && cfg.errlen)
        cfg.err[0] = 0;
    if (!cfg.segment_bytes)
        cfg.segment_bytes = DEFAULT_SEGMENT_BYTES;
    if (cfg.segment_bytes < MIN_SEGMENT_BYTES || cfg.segment_bytes > MAX_SEGMENT_BYTES)
        return -EINVAL;
    cfg.segment_bytes &= ~4095ull;
    if (!cfg.reclaim_after_ms)
        cfg.reclaim_after_ms = DEFAULT_RECLAIM_MS;
    uint32_t arena_end = (uint32_t)(cfg.segment_bytes - 4096); /* last page stays zero */
    bool budget_auto = !cfg.retired_budget;
    if (budget_auto)
        cfg.retired_budget = (arena_end - DISC_HEADER_SIZE) / 4;

    struct seg_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->lock_fd = w->dir_fd = -1;
    pthread_mutex_init(&w->hdr_mu, NULL);
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->cfg = cfg;
    w->cfg.dir = NULL; /* not kept: w->dir is our copy */
    w->budget_auto = budget_auto;
    int rc = 0;
    if (cfg.dir && *cfg.dir) {
        if (snprintf(w->dir, sizeof(w->dir), "%s", cfg.dir) >= (int)sizeof(w->dir)) {
            free(w);
            return -ENAMETOOLONG;
        }
    } else if (!disc__dir_candidate(0, w->dir, sizeof(w->dir))) {
        disc__msg(cfg.err, cfg.errlen,
                  "no registry directory: set --dir or $%s (or $XDG_RUNTIME_DIR for a "
                  "non-root user)",
                  DISC_DIR_ENV);
        free(w);
        return -ENOENT;
    }
    if ((rc = open_dir(w)) < 0)
        goto fail;
    /* hidden (registry names never start with '.'), unique to this writer */
    snprintf(w->tmp, sizeof(w->tmp), ".%s.new-%d", name, (int)getpid());

    if (!cfg.no_lock && (rc = take_lock(w)) < 0)
        goto fail;
    if (getrandom(&w->seed, sizeof(w->seed), 0) != sizeof(w->seed)) {
        rc = -EIO;
        goto fail;
    }
    if ((rc = newseg_create(w, w->tmp, cfg.segment_bytes, &w->base)) < 0) {
        disc__msg(cfg.err, cfg.errlen, "cannot create a %llu-byte segment in %s: %s",
                  (unsigned long long)cfg.segment_bytes, w->dir, strerror(-rc));
        w->base = NULL;
        goto fail;
    }
    w->size = cfg.segment_bytes;
    w->hdr = (struct disc_hdr *)w->base;

    if ((rc = sega_init(&w->a, w->base, DISC_HEADER_SIZE, arena_end, cfg.poison)) < 0 ||
        (rc = wtab_create(&w->a, &w->svc, INITIAL_SLOTS)) < 0 ||
        (rc = wtab_create(&w->a, &w->ids, INITIAL_SLOTS)) < 0)
        goto fail_unlink;
    w->gen = 1;
    if ((rc = write_snapshot(w, w->gen, &w->snap_off)) < 0)
        goto fail_unlink;
    wtab_commit_done(&w->svc);
    wtab_commit_done(&w->ids);
    publish(w, w->snap_off, w->gen);

    if (!cfg.defer_install && (rc = segw_install(w)) < 0)
        goto fail_unlink;
    w->cfg.err = NULL; /* the caller's buffer: only for segw_open */
    w->cfg.errlen = 0;
    *out = w;
    return 0;

fail_unlink:
    unlinkat(w->dir_fd, w->tmp, 0);
fail:
    remove_own(w, w->made_lock);
    w->installed = true; /* nothing of ours left under tmp */
    segw_close(w, false);
    return rc;
}

/* Collect service offsets (wtab_foreach callback). */
struct offs {
    uint32_t *v;
    uint32_t n, cap;
};

static void collect_cb(uint32_t off, void *arg)
{
    struct offs *o = arg;
    if (o->n < o->cap)
        o->v[o->n++] = off;
}

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t b = INITIAL_SLOTS;
    while (b < n && b < (DISC_MAX_PAGES * DISC_PAGE_SLOTS))
        b <<= 1;
    return b;
}

static int export_service(struct seg_writer *w, struct sega *a2, struct wtab *svc2,
                          struct wtab *ids2, uint32_t s_off);

/* Copy the published registry of w into the empty arena a2 as fresh,
 * compact tables svc2 / ids2 (sized for what they hold). */
static int copy_registry(struct seg_writer *w, struct sega *a2, struct wtab *svc2,
                         struct wtab *ids2)
{
    uint32_t nsvc = wtab_count(&w->a, &w->svc), ninst = wtab_count(&w->a, &w->ids);
    struct offs svcs = {malloc((size_t)(nsvc + 1) * sizeof(uint32_t)), 0, nsvc};
    if (!svcs.v)
        return -ENOMEM;
    int rc;
    if ((rc = wtab_create(a2, svc2, pow2_at_least(2 * nsvc))) < 0 ||
        (rc = wtab_create(a2, ids2, pow2_at_least(2 * ninst))) < 0)
        goto out;
    wtab_foreach(&w->a, &w->svc, collect_cb, &svcs);
    for (uint32_t i = 0; i < svcs.n; i++)
        if ((rc = export_service(w, a2, svc2, ids2, svcs.v[i])) < 0)
            goto out;
out:
    free(svcs.v);
    return rc;
}

uint64_t segw_grow_size(uint64_t cur, uint64_t need, uint64_t max)
{
    if (max > MAX_SEGMENT_BYTES)
        max = MAX_SEGMENT_BYTES;
    if (cur >= max)
        return cur;
    uint64_t size = cur * 2;
    while (size < max && size / 2 < need + size / 32)
        size *= 2;
    return size < max ? size : max;
}

int segw_grow(struct seg_writer *w, uint64_t bytes)
{
    if (w->npend)
        return -EBUSY;
    bytes &= ~4095ull;
    if (bytes <= w->size || bytes > MAX_SEGMENT_BYTES)
        return -EINVAL;
    char tmp[NAME_MAX + 1];
    snprintf(tmp, sizeof(tmp), ".%s.grow-%d", w->name, (int)getpid());
    unsigned char *base;
    int rc = newseg_create(w, tmp, bytes, &base);
    if (rc < 0)
        return rc;
    struct disc_hdr *nh = (struct disc_hdr *)base, *oh = w->hdr;
    struct sega a2;
    struct wtab svc2 = {0}, ids2 = {0};
    uint32_t snap = 0;
    uint64_t gen = w->gen + 1;
    if ((rc = sega_init(&a2, base, DISC_HEADER_SIZE, nh->arena_end, w->cfg.poison)) < 0 ||
        (rc = copy_registry(w, &a2, &svc2, &ids2)) < 0 ||
        (rc = write_snapshot_in(&a2, &svc2, &ids2, w->snap_flags, gen, &snap)) < 0)
        goto fail;
    wtab_commit_done(&svc2);
    wtab_commit_done(&ids2);
    /* What the writer said about itself carries over. */
    atomic_store(&nh->state_flags, atomic_load(&oh->state_flags));
    atomic_store(&nh->degraded_reason, atomic_load(&oh->degraded_reason));
    atomic_store(&nh->degraded_since_ms, atomic_load(&oh->degraded_since_ms));
    atomic_store(&nh->last_sync_ms, atomic_load(&oh->last_sync_ms));
    atomic_store(&nh->held_changes, atomic_load(&oh->held_changes));
    atomic_store(&nh->overtakes, atomic_load(&oh->overtakes));
    atomic_store(&nh->used_bytes, sega_used(&a2));
    /* Generations go on from the old segment's, so a client waiting for the
     * generation its reply named finds it (or a later one) here. */
    publish_in(nh, snap, gen);
    /* Into place: the complete segment replaces the old name atomically
     * (an uninstalled writer's temporary, which nobody reads, likewise). */
    if (renameat(w->dir_fd, tmp, w->dir_fd, w->installed ? w->name : w->tmp) < 0) {
        rc = -errno;
        goto fail;
    }
    /* The old segment is never written again but this mark: its readers
     * keep a valid last snapshot until they move. */
    pthread_mutex_lock(&w->hdr_mu);
    atomic_store(&nh->stopped_ms, atomic_load(&oh->stopped_ms)); /* a shutdown under way */
    if (w->installed)
        mark_recycled(oh, nh->segment_id);
    sega_destroy(&w->a);
    wtab_destroy(&w->svc);
    wtab_destroy(&w->ids);
    munmap(w->base, w->size);
    w->a = a2;
    w->svc = svc2;
    w->ids = ids2;
    w->base = base;
    w->hdr = nh;
    w->size = bytes;
    w->gen = gen;
    w->snap_off = snap;
    w->commits++;
    w->grows++;
    if (w->budget_auto)
        w->cfg.retired_budget = (nh->arena_end - DISC_HEADER_SIZE) / 4;
    pthread_mutex_unlock(&w->hdr_mu);
    return 0;

fail:
    sega_destroy(&a2);
    wtab_destroy(&svc2);
    wtab_destroy(&ids2);
    munmap(base, bytes);
    unlinkat(w->dir_fd, tmp, 0);
    return rc;
}

void segw_close(struct seg_writer *w, bool unlink)
{
    if (!w)
        return;
    if (!w->installed && w->dir_fd >= 0)
        unlinkat(w->dir_fd, w->tmp, 0); /* never visible: nobody maps it */
    if (unlink && w->installed && w->hdr && w->dir_fd >= 0) {
        /* Readers that still map it learn it is gone (DISC_ST_GONE); new
         * opens find nothing. */
        atomic_store_explicit(&w->hdr->status, DISC_SEG_GONE, memory_order_release);
        atomic_fetch_add_explicit(&w->hdr->change_seq, 1, memory_order_release);
        futex_wake_all(&w->hdr->change_seq);
        unlinkat(w->dir_fd, w->name, 0);
    }
    if (unlink && w->dir_fd >= 0)
        remove_own(w, true);
    sega_destroy(&w->a);
    wtab_destroy(&w->svc);
    wtab_destroy(&w->ids);
    if (w->base)
        munmap(w->base, w->size);
    if (w->lock_fd >= 0)
        close(w->lock_fd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    free(w->pend);
    free(w->order);
    pthread_mutex_destroy(&w->hdr_mu);
    free(w);
}

const char *segw_dir(const struct seg_writer *w)
{
    return w->dir;
}

/* ---- state and stats --------------------------------------------------------------------- */

void segw_set_state(struct seg_writer *w, uint32_t flags, uint32_t degraded_reason,
                    int64_t degraded_since_ms, int64_t last_sync_ms, uint32_t held_changes)
{
    struct disc_hdr *h = w->hdr;
    atomic_store_explicit(&h->degraded_reason, degraded_reason, memory_order_relaxed);
    atomic_store_explicit(&h->degraded_since_ms, degraded_since_ms, memory_order_relaxed);
    atomic_store_explicit(&h->last_sync_ms, last_sync_ms, memory_order_relaxed);
    atomic_store_explicit(&h->held_changes, held_changes, memory_order_relaxed);
    /* flags last: a reader that sees a flag (acquire) sees its details */
    atomic_store_explicit(&h->state_flags, flags, memory_order_release);
    atomic_fetch_add_explicit(&h->change_seq, 1, memory_order_release);
    futex_wake_all(&h->change_seq);
}

void segw_mark_stopped(struct seg_writer *w)
{
    /* Under hdr_mu: a roll-over on the publisher thread swaps (and unmaps)
     * the header, carrying stopped_ms over under the same lock. */
    pthread_mutex_lock(&w->hdr_mu);
    struct disc_hdr *h = w->hdr;
    int64_t zero = 0;
    if (atomic_compare_exchange_strong(&h->stopped_ms, &zero, real_ms())) {
        atomic_fetch_add_explicit(&h->change_seq, 1, memory_order_release);
        futex_wake_all(&h->change_seq);
    } /* else marked already */
    pthread_mutex_unlock(&w->hdr_mu);
}

void segw_set_snapshot_flags(struct seg_writer *w, uint32_t flags)
{
    if (w->snap_flags == flags)
        return;
    w->snap_flags = flags;
    if (w->npend)
        return; /* the coming commit carries them */
    /* Nothing staged: publish a new snapshot of the same tables now, so
     * readers see the flags change without waiting for a registry change. */
    uint32_t snap;
    sega_commit_begin(&w->a);
    if (write_snapshot(w, w->gen + 1, &snap) < 0 ||
        sega_retire(&w->a, w->snap_off, sizeof(struct disc_snapshot)) < 0) {
        sega_commit_fail(&w->a);
        return; /* the next commit will carry the flags */
    }
    w->gen++;
    publish(w, snap, w->gen);
    w->snap_off = snap;
    sega_commit_ok(&w->a, w->gen, mono_ns());
    w->commits++;
}

void segw_stats(const struct seg_writer *w, struct segw_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->generation = w->gen;
    st->commits = w->commits;
    st->arena_bytes = w->a.arena_end - w->a.arena_off;
    st->segment_bytes = w->size;
    st->grows = w->grows;
    st->used_bytes = sega_used(&w->a);
    st->retired_bytes = w->a.retired_bytes;
    st->reclaimed_upto = w->reclaimed_upto;
    st->reclaimed_bytes = w->reclaimed_bytes;
    st->overtakes = w->overtakes;
    st->n_services = wtab_count(&w->a, &w->svc);
    st->n_instances = wtab_count(&w->a, &w->ids);
    st->svc_slots = wtab_slots(&w->a, &w->svc);
    st->id_slots = wtab_slots(&w->a, &w->ids);
    st->unchanged_puts = w->unchanged;
}

uint64_t segw_generation(const struct seg_writer *w)
{
    return w->gen;
}

/* ---- file-cache image ------------------------------------------------------------ */

/* Copy service s_off and its instances from w's arena into the image. */
static int export_service(struct seg_writer *w, struct sega *a2, struct wtab *svc2,
                          struct wtab *ids2, uint32_t s_off)
{
    const struct disc_service_rec *s = SEG_AT(&w->a, const struct disc_service_rec, s_off);
    uint32_t ns = sega_alloc(a2, s->size);
    if (!ns)
        return -ENOSPC;
    struct disc_service_rec *d = SEG_AT(a2, struct disc_service_rec, ns);
    memcpy(d, s, s->size);
    for (uint32_t i = 0; i < s->n_instances; i++) {
        const struct disc_inst_rec *r = SEG_AT(&w->a, const struct disc_inst_rec, s->instances[i]);
        uint32_t no = sega_alloc(a2, r->size);
        if (!no)
            return -ENOSPC;
        memcpy(a2->base + no, r, r->size);
        d->instances[i] = no;
        int rc = wtab_set(a2, ids2, w->seed, inst_key, (const char *)r + r->id.off, r->id.len, no);
        if (rc < 0)
            return rc;
    }
    d->checksum = disc_checksum(d, d->size, offsetof(struct disc_service_rec, checksum));
    return wtab_set(a2, svc2, w->seed, svc_key, (const char *)d + d->name_off, d->name_len, ns);
}

static int write_file_atomically(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const unsigned char *p = data;
    size_t left = len;
    int rc = 0;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    /* durable before it replaces the previous image */
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    /* and the rename itself */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof(dir), ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int64_t segw_export(struct seg_writer *w, const char *path)
{
    if (!w || !path || !*path)
        return -EINVAL;
    uint64_t cap = DISC_HEADER_SIZE + 2 * sega_used(&w->a) + (1u << 20);
    cap = (cap + 4095) & ~4095ull;
    if (cap > MAX_SEGMENT_BYTES)
        return -E2BIG;
    unsigned char *buf = calloc(1, cap);
    struct sega a2;
    struct wtab svc2 = {0}, ids2 = {0};
    int64_t rc = -ENOMEM;
    if (!buf)
        goto out;
    if ((rc = sega_init(&a2, buf, DISC_HEADER_SIZE, (uint32_t)(cap - 4096), false)) < 0)
        goto out;
    if ((rc = copy_registry(w, &a2, &svc2, &ids2)) < 0)
        goto out_a2;
    wtab_seal(&a2, (struct wtab *const[]){&svc2, &ids2}, 2);
    uint32_t snap = sega_alloc(&a2, sizeof(struct disc_snapshot));
    rc = -ENOSPC;
    if (!snap)
        goto out_a2;
    struct disc_snapshot *s = SEG_AT(&a2, struct disc_snapshot, snap);
    *s = (struct disc_snapshot){.type = DISC_REC_SNAPSHOT,
                                .size = sizeof(*s),
                                .gen = w->gen,
                                .published_ms = real_ms(),
                                .svc_table = svc2.off,
                                .id_table = ids2.off,
                                .n_services = wtab_count(&a2, &svc2),
                                .n_instances = wtab_count(&a2, &ids2),
                                .flags = DISC_ST_FROM_CACHE};
    s->checksum = disc_checksum(s, sizeof(*s), offsetof(struct disc_snapshot, checksum));
    uint64_t arena_end = (a2.top + 4095) & ~4095u;
    uint64_t size = arena_end + 4096; /* a zero tail page, as in live segments */
    struct disc_hdr *h = (struct disc_hdr *)buf;
    hdr_init(h, DISC_IMAGE_MAGIC, size, w->hdr->segment_id, w->seed, (uint32_t)arena_end);
    atomic_store(&h->root, ((w->gen & 0xffffffffull) << 32) | snap);
    atomic_store(&h->gen, w->gen);
    atomic_store(&h->state_flags, DISC_ST_FROM_CACHE);
    h->image_bytes = size;
    h->image_checksum = 0;
    h->image_checksum =
        disc_checksum(buf, (uint32_t)size, offsetof(struct disc_hdr, image_checksum));
    rc = write_file_atomically(path, buf, size);
    if (rc == 0)
        rc = (int64_t)size;
out_a2:
    sega_destroy(&a2);
out:
    wtab_destroy(&svc2);
    wtab_destroy(&ids2);
    free(buf);
    return rc;
}
