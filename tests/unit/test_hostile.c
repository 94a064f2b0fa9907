/* SPDX-License-Identifier: MIT */
/*
 * test_hostile.c — images with valid checksums built to waste a reader's
 * time, and corruption of each record kind under DISC_OPEN_VERIFY.
 *
 * The "centuries image" (about 4 MB) reuses one record everywhere: a
 * 16M-slot table whose 131072 directory entries name one page, whose 128
 * slots all name one service record of 950,000 instance offsets, all
 * naming one instance record. Walked naively that is 16M services of
 * 950,000 instances each. Every
 * call must fail (or answer) after a bounded amount of work; each runs in
 * a child process with an alarm, so a hang fails the test instead of
 * stalling the suite. Work is asserted through what the zero-copy walks
 * hand out before failing, not through time.
 */
#include <fcntl.h>
#include <stddef.h>
#include <sys/stat.h>

#include "layout.h"
#include "segtest.h"

#define SEED       0x5eed5eed12345678ull
#define CENT_INSTS 950000u
#define SVC_NAME   "c"
#define INST_ID    "00000000-0000-4000-8000-000000000001"

static char dir[4200], path[4300];

static void setup(void)
{
    seg_cache_dir(dir, sizeof(dir), "hostile", path, sizeof(path), "img.cache");
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(hostile, .init = setup, .fini = teardown);

/* ---- building images by hand ------------------------------------------------------- */

struct img {
    unsigned char *b;
    uint32_t top, cap;
};

static uint32_t img_alloc(struct img *im, uint32_t n)
{
    uint32_t o = im->top;
    im->top += disc_align_up(n);
    cr_assert_leq(im->top, im->cap);
    return o;
}

#define AT(im, type, off) ((type *)((im)->b + (off)))

static struct disc_str put_s(unsigned char *rec, uint32_t *at, const char *s)
{
    struct disc_str r = {(uint16_t)*at, (uint16_t)strlen(s)};
    memcpy(rec + *at, s, r.len + 1);
    *at += r.len + 1u;
    return r;
}

static uint32_t put_inst(struct img *im, const char *id, const char *svc)
{
    uint32_t size = 64 + 37 + (uint32_t)strlen(svc) + 1 + 2 + 2 + 1 + 10;
    uint32_t off = img_alloc(im, size);
    unsigned char *rec = im->b + off;
    struct disc_inst_rec *r = (struct disc_inst_rec *)rec;
    r->type = DISC_REC_INSTANCE;
    r->size = size;
    r->weight = 10;
    r->addr_kind = DISC_ADDR_TCP;
    r->health = DISC_HEALTH_PASSING;
    r->origin = DISC_ORIGIN_LOCAL;
    r->tags_off = r->endpoints_off = 64;
    uint32_t at = 64;
    r->id = put_s(rec, &at, id);
    r->service = put_s(rec, &at, svc);
    r->version = put_s(rec, &at, "1");
    r->host = put_s(rec, &at, "h");
    r->az = put_s(rec, &at, "");
    r->address = put_s(rec, &at, "1.2.3.4:5");
    cr_assert_leq(at, size);
    r->checksum = disc_checksum(rec, size, offsetof(struct disc_inst_rec, checksum));
    return off;
}

static uint32_t put_service(struct img *im, const char *name, uint32_t n, uint32_t inst)
{
    uint32_t len = (uint32_t)strlen(name), size = 32 + 4 * n + len + 1;
    uint32_t off = img_alloc(im, size);
    struct disc_service_rec *s = AT(im, struct disc_service_rec, off);
    s->type = DISC_REC_SERVICE;
    s->size = size;
    s->n_instances = n;
    s->name_len = (uint16_t)len;
    s->name_off = 32 + 4 * n;
    for (uint32_t i = 0; i < n; i++)
        s->instances[i] = inst;
    memcpy((char *)s + s->name_off, name, len + 1);
    s->checksum = disc_checksum(s, size, offsetof(struct disc_service_rec, checksum));
    return off;
}

/* A page whose every slot names (hash, rec) (rec 0: an empty page). */
static uint32_t put_page(struct img *im, uint32_t hash, uint32_t rec)
{
    uint32_t off = img_alloc(im, sizeof(struct disc_hpage));
    struct disc_hpage *p = AT(im, struct disc_hpage, off);
    p->type = DISC_REC_HPAGE;
    p->size = sizeof(*p);
    for (unsigned i = 0; i < DISC_PAGE_SLOTS; i++)
        p->slot[i] = (struct disc_slot){rec ? hash : 0, rec};
    p->checksum = disc_checksum(p, sizeof(*p), offsetof(struct disc_hpage, checksum));
    return off;
}

/* A table of the largest size whose every directory slot names `page`. */
static uint32_t put_table(struct img *im, uint32_t page, uint32_t count)
{
    uint32_t size = 24 + 4 * DISC_MAX_PAGES, off = img_alloc(im, size);
    struct disc_htab *t = AT(im, struct disc_htab, off);
    t->type = DISC_REC_HTAB;
    t->size = size;
    t->nslots = DISC_MAX_PAGES * DISC_PAGE_SLOTS;
    t->npages = DISC_MAX_PAGES;
    t->count = count;
    for (uint32_t i = 0; i < DISC_MAX_PAGES; i++)
        t->pages[i] = page;
    t->checksum = disc_checksum(t, size, offsetof(struct disc_htab, checksum));
    return off;
}

/* Header, snapshot, whole-file checksum; write to `path`. */
static void finish(struct img *im, uint32_t svc_tab, uint32_t id_tab, uint32_t n_svc,
                   uint32_t n_inst)
{
    uint32_t snap = img_alloc(im, sizeof(struct disc_snapshot));
    struct disc_snapshot *s = AT(im, struct disc_snapshot, snap);
    *s = (struct disc_snapshot){.type = DISC_REC_SNAPSHOT,
                                .size = sizeof(*s),
                                .gen = 1,
                                .svc_table = svc_tab,
                                .id_table = id_tab,
                                .n_services = n_svc,
                                .n_instances = n_inst,
                                .flags = DISC_ST_FROM_CACHE};
    s->checksum = disc_checksum(s, sizeof(*s), offsetof(struct disc_snapshot, checksum));
    uint32_t arena_end = (im->top + 4095) & ~4095u, size = arena_end + 4096;
    cr_assert_leq(size, im->cap + 4096);
    struct disc_hdr *h = (struct disc_hdr *)im->b;
    h->magic = DISC_IMAGE_MAGIC;
    h->abi_major = DISC_ABI_MAJOR;
    h->abi_minor = DISC_ABI_MINOR;
    h->header_size = DISC_HEADER_SIZE;
    h->features = DISC_FEAT_CHECKSUMS | DISC_FEAT_CHECKSUM_WORD;
    h->segment_size = size;
    h->segment_id = 42;
    h->hash_seed = SEED;
    h->arena_off = DISC_HEADER_SIZE;
    h->arena_end = arena_end;
    atomic_store(&h->root, (1ull << 32) | snap);
    atomic_store(&h->gen, 1);
    atomic_store(&h->status, DISC_SEG_ALIVE);
    h->image_bytes = size;
    h->image_checksum = 0;
    h->image_checksum = disc_checksum(im->b, size, offsetof(struct disc_hdr, image_checksum));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, im->b, size), (ssize_t)size);
    close(fd);
}

static struct img img_new(uint32_t cap)
{
    struct img im = {calloc(1, (size_t)cap + 4096), DISC_HEADER_SIZE, cap};
    cr_assert_not_null(im.b);
    return im;
}

/* The centuries image; counts in the snapshot as given. */
static void build_centuries(uint32_t n_svc, uint32_t n_inst)
{
    struct img im = img_new(5u << 20);
    uint32_t inst = put_inst(&im, INST_ID, SVC_NAME);
    uint32_t svc = put_service(&im, SVC_NAME, CENT_INSTS, inst);
    uint32_t hs = (uint32_t)disc_hash(SVC_NAME, strlen(SVC_NAME), SEED);
    uint32_t hi = (uint32_t)disc_hash(INST_ID, DISC_ID_LEN, SEED);
    uint32_t st = put_table(&im, put_page(&im, hs, svc), 1);
    uint32_t it = put_table(&im, put_page(&im, hi, inst), 1);
    finish(&im, st, it, n_svc, n_inst);
    free(im.b);
}

/* ---- running every call in a child -------------------------------------------------- */

struct outcome {
    int lookup, lookup_id, filtered, list, services, endpoints, pick;
    long walk_services, walk_instances; /* yielded by zero-copy walks before they stopped */
    int walk_services_rc, walk_instances_rc;
};

static struct outcome *shared_outcome(void)
{
    void *p = mmap(NULL, sizeof(struct outcome), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    memset(p, 0, sizeof(struct outcome));
    return p;
}

struct run_arg {
    unsigned flags;
    struct outcome *o;
};

static int every_call(void *arg)
{
    struct run_arg *a = arg;
    struct outcome *o = a->o;
    alarm(60); /* a hang is a failure (SIGALRM), never a stalled suite */
    size_t len = 1u << 20, need;
    void *buf = malloc(len);
    disc_handle *h;
    if (disc_open_file(path, a->flags, &h) < 0)
        return 2;
    struct disc_instance *list;
    o->lookup = disc_lookup(h, SVC_NAME, buf, len, &list, &need);
    o->lookup_id = disc_lookup_id(h, INST_ID, buf, len, &list, &need);
    o->filtered = disc_lookup_filtered(h, NULL, buf, len, &list, &need);
    struct disc_service_info *info;
    o->list = disc_list_services(h, buf, len, &info, &need);
    struct disc_service_summary *sum;
    o->services = disc_services(h, NULL, buf, len, &sum, &need);
    struct disc_endpoint_info *ep;
    o->endpoints = disc_endpoints(h, NULL, buf, len, &ep, &need);
    disc_picker *p;
    disc_picker_create(DISC_PICK_RANDOM, 1, 0, &p);
    struct disc_instance *one;
    o->pick = disc_pick(h, NULL, p, NULL, 0, buf, len, &one, &need);
    disc_picker_destroy(p);

    struct disc_read rd;
    if (disc_read_begin(h, &rd) == 0) {
        uint64_t cur = 0;
        struct disc_service_view sv;
        int rc;
        while ((rc = disc_read_next_service(&rd, &cur, &sv)) == 1)
            o->walk_services++;
        o->walk_services_rc = rc;
        disc_read_end(&rd);
    }
    if (disc_read_begin(h, &rd) == 0) {
        struct disc_filter_iter it;
        struct disc_instance in;
        int rc = disc_read_filter_begin(&rd, NULL, &it);
        while (rc == 0 && (rc = disc_read_filter_next(&rd, &it, &in)) == 1) {
            o->walk_instances++;
            rc = 0;
        }
        o->walk_instances_rc = rc;
        disc_read_end(&rd);
    }
    disc_close(h);
    free(buf);
    return 0;
}

static void run_every_call(unsigned flags, struct outcome *o)
{
    struct run_arg a = {flags, o};
    int st = seg_in_child(every_call, &a);
    cr_assert(WIFEXITED(st), "reader died with signal %d (SIGALRM = hang)", WTERMSIG(st));
    cr_assert_eq(WEXITSTATUS(st), 0, "open failed");
}

/* An honest registry in a 4 MB image holds at most (arena / 64-byte
 * records) instances: the most any walk may hand out. */
#define HONEST_MAX ((4u << 20) / 64)

static void check_centuries(unsigned flags)
{
    struct outcome *o = shared_outcome();
    run_every_call(flags, o);
    cr_expect_eq(o->lookup, -EBADMSG, "lookup: %d", o->lookup);
    cr_expect_eq(o->filtered, -EBADMSG, "lookup_filtered: %d", o->filtered);
    cr_expect_eq(o->list, -EBADMSG, "list_services: %d", o->list);
    cr_expect_eq(o->services, -EBADMSG, "services: %d", o->services);
    cr_expect_eq(o->endpoints, -EBADMSG, "endpoints: %d", o->endpoints);
    cr_expect_eq(o->pick, -EBADMSG, "pick: %d", o->pick);
    /* The one real record, found by its id, is a fine answer. */
    cr_expect(o->lookup_id == 0 || o->lookup_id == -EBADMSG, "lookup_id: %d", o->lookup_id);
    cr_expect_eq(o->walk_services_rc, -EBADMSG);
    /* an entry more than DISC_PROBE_MAX slots after its home is refused */
    cr_expect_leq(o->walk_services, DISC_PROBE_MAX, "services walked: %ld", o->walk_services);
    cr_expect_eq(o->walk_instances_rc, -EBADMSG);
    cr_expect_leq(o->walk_instances, HONEST_MAX, "instances walked: %ld", o->walk_instances);
    munmap(o, sizeof(*o));
}

Test(hostile, centuries_image_fails_fast, .timeout = 120)
{
    build_centuries(1, 1);
    check_centuries(0);
    check_centuries(DISC_OPEN_VERIFY);
}

Test(hostile, centuries_image_with_huge_counts_fails_fast, .timeout = 120)
{
    build_centuries(UINT32_MAX, UINT32_MAX); /* counts clamp to what fits */
    check_centuries(0);
    check_centuries(DISC_OPEN_VERIFY);
}

/*
 * Structure that passes every check yet needs more work than any honest
 * registry of the image's size: a 16M-slot table whose directory names
 * one empty page 131072 times (an honest table that large needs 128 MB of
 * pages). Only the work budget stops it: without it the walk would end
 * after 16M steps with "no services"; with it, it must fail.
 */
Test(hostile, work_budget_stops_a_walk_over_one_reused_page, .timeout = 120)
{
    struct img im = img_new(2u << 20);
    uint32_t st = put_table(&im, put_page(&im, 0, 0), 0);
    uint32_t it = put_table(&im, put_page(&im, 0, 0), 0);
    finish(&im, st, it, 0, 0);
    free(im.b);
    for (unsigned flags = 0; flags <= DISC_OPEN_VERIFY; flags += DISC_OPEN_VERIFY) {
        struct outcome *o = shared_outcome();
        run_every_call(flags, o);
        cr_expect_eq(o->list, -EBADMSG, "list_services: %d", o->list);
        cr_expect_eq(o->filtered, -EBADMSG, "lookup_filtered: %d", o->filtered);
        cr_expect_eq(o->walk_services_rc, -EBADMSG);
        cr_expect_eq(o->walk_services, 0);
        cr_expect_eq(o->walk_instances_rc, -EBADMSG);
        /* Point lookups stop at the first empty slot: a plain "not found". */
        cr_expect_eq(o->lookup, -ENOENT, "lookup: %d", o->lookup);
        cr_expect_eq(o->lookup_id, -ENOENT, "lookup_id: %d", o->lookup_id);
        munmap(o, sizeof(*o));
    }
}

/* ---- DISC_OPEN_VERIFY covers every record kind --------------------------------------- */

static unsigned char *real_image(size_t *len)
{
    char name[64];
    seg_name(name, sizeof(name), "hostile");
    struct segw_config cfg = {.segment_bytes = 8u << 20};
    struct seg_writer *w;
    cr_assert_eq(segw_open(name, &cfg, &w), 0);
    seg_fill(w, 300, 30, 1);
    cr_assert_gt(segw_export(w, path), 0);
    segw_close(w, true);
    int fd = open(path, O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    *len = (size_t)st.st_size;
    unsigned char *b = malloc(*len);
    cr_assert_eq(read(fd, b, *len), (ssize_t)*len);
    close(fd);
    return b;
}

/* Where the records of one lookup path lie in an image. */
struct path_offs {
    uint32_t snap, tab, page, rec;
    uint32_t page_slot, slot; /* directory entry of the page; slot in the page */
    uint32_t svc_inst;        /* svc walks only: the service's first instance record */
    char key[256];
};

static void find_path(const unsigned char *b, int id_table, struct path_offs *p)
{
    const struct disc_hdr *h = (const void *)b;
    memset(p, 0, sizeof(*p));
    p->snap = (uint32_t)atomic_load(&h->root);
    const struct disc_snapshot *s = (const void *)(b + p->snap);
    p->tab = id_table ? s->id_table : s->svc_table;
    const struct disc_htab *t = (const void *)(b + p->tab);
    for (uint32_t pi = 0; pi < t->npages && !p->rec; pi++) {
        if (!t->pages[pi])
            continue;
        const struct disc_hpage *pg = (const void *)(b + t->pages[pi]);
        for (uint32_t si = 0; si < DISC_PAGE_SLOTS; si++)
            if (pg->slot[si].off) {
                p->page = t->pages[pi];
                p->page_slot = pi;
                p->slot = si;
                p->rec = pg->slot[si].off;
                break;
            }
    }
    cr_assert_neq(p->rec, 0);
    if (id_table) {
        const struct disc_inst_rec *r = (const void *)(b + p->rec);
        memcpy(p->key, b + p->rec + r->id.off, r->id.len);
    } else {
        const struct disc_service_rec *r = (const void *)(b + p->rec);
        memcpy(p->key, b + p->rec + r->name_off, r->name_len);
        p->svc_inst = r->instances[0];
    }
}

static void write_image(const unsigned char *b, size_t len)
{
    unsigned char *c = malloc(len);
    memcpy(c, b, len);
    struct disc_hdr *h = (struct disc_hdr *)c;
    h->image_checksum = 0;
    /* the kind of checksum the header names, as a writer would */
    h->image_checksum =
        (h->features & DISC_FEAT_CHECKSUM_WORD)
            ? disc_checksum(c, (uint32_t)len, offsetof(struct disc_hdr, image_checksum))
            : disc_checksum_fnv1a(c, (uint32_t)len, offsetof(struct disc_hdr, image_checksum));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_eq(write(fd, c, len), (ssize_t)len);
    close(fd);
    free(c);
}

static char big[1 << 20];

/* The outcome of looking `key` up (by service name or id) on the image. */
static int lookup_key(unsigned flags, int by_id, const char *key, uint32_t *n_out,
                      uint32_t *weight0)
{
    disc_handle *h;
    int rc = disc_open_file(path, flags, &h);
    cr_assert_eq(rc, 0, "open: %d", rc);
    struct disc_instance *list;
    rc = by_id ? disc_lookup_id(h, key, big, sizeof(big), &list, NULL)
               : disc_lookup(h, key, big, sizeof(big), &list, NULL);
    if (rc >= 0) {
        *n_out = by_id ? 1 : (uint32_t)rc;
        *weight0 = list[0].weight;
    }
    disc_close(h);
    return rc < 0 ? rc : 0;
}

static int walk_all(unsigned flags)
{
    disc_handle *h;
    cr_assert_eq(disc_open_file(path, flags, &h), 0);
    struct disc_instance *list;
    int rc = disc_lookup_filtered(h, NULL, big, sizeof(big), &list, NULL);
    disc_close(h);
    return rc;
}

enum kind { K_SNAP, K_TAB, K_PAGE, K_SLOT, K_SERVICE, K_INSTANCE };
static const char *kind_name[] = {"snapshot", "table", "page", "slot hash", "service", "instance"};

/* Damage one record of `kind` on the lookup path of one key, in a way the
 * structural checks accept; the result without VERIFY must differ from
 * the truth (or the corruption would prove nothing), and with VERIFY the
 * lookup and a full walk must report -EBADMSG. */
static void corrupt_and_check(const unsigned char *orig, size_t len, int id_table, enum kind k)
{
    struct path_offs p;
    find_path(orig, id_table, &p);
    uint32_t n0 = 0, w0 = 0, n1 = 0, w1 = 0;
    write_image(orig, len);
    cr_assert_eq(lookup_key(DISC_OPEN_VERIFY, id_table, p.key, &n0, &w0), 0);

    unsigned char *b = malloc(len);
    memcpy(b, orig, len);
    switch (k) {
    case K_SNAP: /* a field no walk checks */
        ((struct disc_snapshot *)(b + p.snap))->published_ms ^= 1;
        break;
    case K_TAB: /* the key's page vanishes */
        ((struct disc_htab *)(b + p.tab))->pages[p.page_slot] = 0;
        break;
    case K_PAGE: /* the key's slot is emptied */
        ((struct disc_hpage *)(b + p.page))->slot[p.slot] = (struct disc_slot){0, 0};
        break;
    case K_SLOT: /* the key's hash changes above the slot bits */
        ((struct disc_hpage *)(b + p.page))->slot[p.slot].hash ^= 0x80000000u;
        break;
    case K_SERVICE: /* the last instance vanishes (name stays in bounds) */
        ((struct disc_service_rec *)(b + p.rec))->n_instances--;
        break;
    case K_INSTANCE: /* its weight changes */
        ((struct disc_inst_rec *)(b + (id_table ? p.rec : p.svc_inst)))->weight += 1;
        break;
    }
    write_image(b, len);
    free(b);

    int plain = lookup_key(0, id_table, p.key, &n1, &w1);
    if (k != K_SNAP) /* the snapshot change is silent by construction */
        cr_expect(plain != 0 || n1 != n0 || w1 != w0,
                  "%s %s: the damage changes nothing a reader sees without VERIFY",
                  id_table ? "id" : "svc", kind_name[k]);
    int v = lookup_key(DISC_OPEN_VERIFY, id_table, p.key, &n1, &w1);
    cr_expect_eq(v, -EBADMSG, "%s %s: lookup with VERIFY gave %d", id_table ? "id" : "svc",
                 kind_name[k], v);
    if (!id_table || k == K_SNAP || k == K_INSTANCE) {
        int wa = walk_all(DISC_OPEN_VERIFY);
        cr_expect_eq(wa, -EBADMSG, "%s %s: full walk with VERIFY gave %d", id_table ? "id" : "svc",
                     kind_name[k], wa);
    }
}

Test(hostile, verify_reports_every_damaged_record_kind, .timeout = 60)
{
    size_t len;
    unsigned char *orig = real_image(&len);
    for (int id_table = 0; id_table <= 1; id_table++)
        for (enum kind k = K_SNAP; k <= K_INSTANCE; k++) {
            if (id_table && k == K_SERVICE)
                continue; /* the id table names instance records directly */
            corrupt_and_check(orig, len, id_table, k);
        }
    free(orig);
}

/* ---- objects written before the word-wise checksum ---------------------------------- */

#define FNV_AT(b, off, type, field)                                                                \
    ((type *)((b) + (off)))->field =                                                               \
        disc_checksum_fnv1a((b) + (off), ((type *)((b) + (off)))->size, offsetof(type, field))

/* Rewrite every checksum of a real image as a writer from before
 * DISC_FEAT_CHECKSUM_WORD did (FNV-1a), and clear the bit. */
static void to_fnv(unsigned char *b)
{
    struct disc_hdr *h = (struct disc_hdr *)b;
    uint32_t snap = (uint32_t)atomic_load(&h->root);
    struct disc_snapshot *s = (struct disc_snapshot *)(b + snap);
    for (int id_table = 0; id_table <= 1; id_table++) {
        uint32_t toff = id_table ? s->id_table : s->svc_table;
        struct disc_htab *t = (struct disc_htab *)(b + toff);
        for (uint32_t pi = 0; pi < t->npages; pi++) {
            if (!t->pages[pi])
                continue;
            struct disc_hpage *pg = (struct disc_hpage *)(b + t->pages[pi]);
            for (uint32_t si = 0; si < DISC_PAGE_SLOTS; si++) {
                uint32_t r = pg->slot[si].off;
                if (!r)
                    continue;
                if (id_table) {
                    FNV_AT(b, r, struct disc_inst_rec, checksum);
                    continue;
                }
                FNV_AT(b, r, struct disc_service_rec, checksum);
                struct disc_service_rec *sr = (struct disc_service_rec *)(b + r);
                for (uint32_t i = 0; i < sr->n_instances; i++)
                    FNV_AT(b, sr->instances[i], struct disc_inst_rec, checksum);
            }
            FNV_AT(b, t->pages[pi], struct disc_hpage, checksum);
        }
        FNV_AT(b, toff, struct disc_htab, checksum);
    }
    FNV_AT(b, snap, struct disc_snapshot, checksum);
    h->features = DISC_FEAT_CHECKSUMS;
}

/* Instances a VERIFY walk over the image at `path` counts (or its error). */
static int verify_walk_count(void)
{
    disc_handle *h;
    int rc = disc_open_file(path, DISC_OPEN_VERIFY, &h);
    if (rc < 0)
        return rc;
    struct disc_instance *list;
    rc = disc_lookup_filtered(h, NULL, big, sizeof(big), &list, NULL);
    disc_close(h);
    return rc;
}

/* An image (or segment: the same header check) from a discd before the
 * word-wise checksum carries FNV-1a and no DISC_FEAT_CHECKSUM_WORD: it is
 * verified with FNV-1a, damage to each record kind is still reported,
 * and checksums of one kind are never accepted under the other's name. */
Test(hostile, fnv_images_from_older_writers_are_verified_with_fnv, .timeout = 60)
{
    size_t len;
    unsigned char *orig = real_image(&len);
    write_image(orig, len);
    int n = verify_walk_count();
    cr_assert_eq(n, 300, "new image, VERIFY walk: %d", n);

    unsigned char *fnv = malloc(len);
    memcpy(fnv, orig, len);
    to_fnv(fnv);
    write_image(fnv, len);
    n = verify_walk_count();
    cr_assert_eq(n, 300, "FNV image, VERIFY walk: %d", n);
    for (int id_table = 0; id_table <= 1; id_table++)
        for (enum kind k = K_SNAP; k <= K_INSTANCE; k++)
            if (!(id_table && k == K_SERVICE))
                corrupt_and_check(fnv, len, id_table, k);

    /* FNV records under a header that claims word-wise checksums (the
     * file's own checksum matching the claim): plain reads still work,
     * every verified record is refused */
    ((struct disc_hdr *)fnv)->features |= DISC_FEAT_CHECKSUM_WORD;
    write_image(fnv, len);
    disc_handle *h;
    cr_assert_eq(disc_open_file(path, 0, &h), 0);
    struct disc_instance *list;
    cr_expect_eq(disc_lookup_filtered(h, NULL, big, sizeof(big), &list, NULL), 300);
    disc_close(h);
    cr_expect_eq(verify_walk_count(), -EBADMSG);
    /* and word-wise records under a header without the bit */
    unsigned char *c = malloc(len);
    memcpy(c, orig, len);
    ((struct disc_hdr *)c)->features = DISC_FEAT_CHECKSUMS;
    write_image(c, len);
    cr_expect_eq(verify_walk_count(), -EBADMSG);

    /* a whole-file checksum of the other kind than the header names: the
     * file is refused at open, whatever the flags */
    struct disc_hdr *ch = (struct disc_hdr *)c;
    ch->features = DISC_FEAT_CHECKSUMS | DISC_FEAT_CHECKSUM_WORD;
    ch->image_checksum = 0;
    ch->image_checksum =
        disc_checksum_fnv1a(c, (uint32_t)len, offsetof(struct disc_hdr, image_checksum));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_eq(write(fd, c, len), (ssize_t)len);
    close(fd);
    cr_expect_eq(disc_open_file(path, 0, &h), -EBADMSG);
    free(c);
    free(fnv);
    free(orig);
}

/* ---- a view's service record: the section's validated count -------------------- */

/* A one-page table whose every slot names (hash, rec). */
static uint32_t put_small_table(struct img *im, uint32_t page)
{
    uint32_t size = 24 + 4, off = img_alloc(im, size);
    struct disc_htab *t = AT(im, struct disc_htab, off);
    t->type = DISC_REC_HTAB;
    t->size = size;
    t->nslots = DISC_PAGE_SLOTS;
    t->npages = 1;
    t->count = 1;
    t->pages[0] = page;
    t->checksum = disc_checksum(t, size, offsetof(struct disc_htab, checksum));
    return off;
}

/* disc_read_instance reads a view's instances through the service record
 * the section validated (its offset and instance count, kept by the
 * section), not through whatever the view or the memory says later: a
 * record whose count grows in place after the view was made (only a
 * hostile writer does that) is read up to the count validated; a view
 * claiming more instances, or naming another record, gets -EBADMSG. */
Test(hostile, service_view_reads_the_count_its_section_validated, .timeout = 30)
{
    struct img im = img_new(1u << 20);
    uint32_t inst = put_inst(&im, INST_ID, SVC_NAME);
    uint32_t svc = put_service(&im, SVC_NAME, 2, inst);
    uint32_t hs = (uint32_t)disc_hash(SVC_NAME, strlen(SVC_NAME), SEED);
    uint32_t hi = (uint32_t)disc_hash(INST_ID, DISC_ID_LEN, SEED);
    uint32_t st = put_small_table(&im, put_page(&im, hs, svc));
    uint32_t it = put_small_table(&im, put_page(&im, hi, inst));
    finish(&im, st, it, 1, 1);
    free(im.b);

    disc_handle *h;
    cr_assert_eq(disc_open_file(path, 0, &h), 0);
    struct disc_read rd;
    struct disc_service_view sv;
    struct disc_instance v;
    cr_assert_eq(disc_read_begin(h, &rd), 0);
    cr_assert_eq(disc_read_service(&rd, SVC_NAME, &sv), 0);
    cr_assert_eq(sv.n_instances, 2);
    cr_assert_eq(disc_read_instance(&rd, &sv, 1, &v), 0);
    cr_assert_str_eq(v.id, INST_ID);

    /* the record's count grows in place (the mapping is of this file) */
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    uint32_t huge = DISC_SVC_INST_MAX;
    cr_assert_eq(pwrite(fd, &huge, 4, svc + offsetof(struct disc_service_rec, n_instances)), 4);
    close(fd);
    cr_assert_eq(disc_read_instance(&rd, &sv, 1, &v), 0, "read through the validated record");
    cr_assert_str_eq(v.id, INST_ID);

    struct disc_service_view forged = sv;
    forged.n_instances = 5;
    cr_expect_eq(disc_read_instance(&rd, &forged, 3, &v), -EBADMSG,
                 "beyond the count the section validated");
    forged = sv;
    forged.rec_ = inst; /* not a service record */
    cr_expect_eq(disc_read_instance(&rd, &forged, 0, &v), -EBADMSG);
    forged.rec_ = svc + 8; /* inside the record, not its start */
    cr_expect_eq(disc_read_instance(&rd, &forged, 0, &v), -EBADMSG);
    disc_read_end(&rd);

    /* a new section validates the record again: its count no longer fits */
    cr_assert_eq(disc_read_begin(h, &rd), 0);
    cr_expect_eq(disc_read_service(&rd, SVC_NAME, &sv), -EBADMSG);
    disc_read_end(&rd);
    disc_close(h);
}
