/* SPDX-License-Identifier: MIT */
/*
 * lookup.c — walking the hash tables and turning records into views.
 *
 * Everything read here may be garbage (a damaged segment, or memory the
 * writer reused under a stalled section): every offset is checked against
 * the arena, every count against the record that holds it, every loop is
 * bounded. A check that fails yields -EBADMSG; disc_read_end then tells the
 * caller whether to retry (-EAGAIN) or believe the error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reader_internal.h"

#define RETRIES 64

/* Work budget (see disc__charge): WORK_K honest walks + WORK_FLOOR, at most
 * WORK_CAP units. One unit is one record or table slot visited; verifying
 * a checksum costs one more per 64 bytes hashed. */
#define WORK_K     8u
#define WORK_FLOOR 4096u
#define WORK_CAP   (1u << 30)

static inline struct disc_map *rmap(const struct disc_read *rd)
{
    return (struct disc_map *)rd->map_;
}

static inline int verifying(const struct disc_read *rd)
{
    return (rd->flags_ & DISC_OPEN_VERIFY) != 0;
}

/* Units to charge for hashing `size` bytes of a record (0 unless verifying). */
static inline uint32_t verify_units(const struct disc_read *rd, uint32_t size)
{
    return verifying(rd) ? size / 64 + 1 : 0;
}

/* A string of a record: in bounds, at most max bytes and NUL-terminated
 * where it says. `s` is the caller's local copy; the terminator is loaded
 * once. */
static const char *rec_str(const unsigned char *rec, uint32_t size, struct disc_str s, size_t max)
{
    if ((uint32_t)s.off + s.len >= size || s.len > max || disc__ld8(rec + s.off + s.len) != 0)
        return NULL;
    return (const char *)rec + s.off;
}

/* Big-endian 8 bytes of an id at `at` (so integer order is memcmp order). */
static inline uint64_t id_chunk(const char *id, unsigned at)
{
    uint64_t x;
    memcpy(&x, id + at, 8);
    return __builtin_bswap64(x);
}

/* 1 if id b sorts after id a (memcmp order), in five 8-byte steps (the
 * last overlaps: 36 bytes), unrolled. */
static inline int id_above(const char *a, const char *b)
{
#define ID_STEP(at)                                                                                \
    do {                                                                                           \
        uint64_t x = id_chunk(a, at), y = id_chunk(b, at);                                         \
        if (x != y)                                                                                \
            return x < y;                                                                          \
    } while (0)
    ID_STEP(0);
    ID_STEP(8);
    ID_STEP(16);
    ID_STEP(24);
    ID_STEP(28);
#undef ID_STEP
    return 0;
}

/* 1 if the DISC_ID_LEN bytes at id hold no NUL (word-wise, no call, no
 * branch per word). */
static inline int id_nul_free(const char *id)
{
    uint64_t v[5], z = 0;
    memcpy(&v[0], id, 8);
    memcpy(&v[1], id + 8, 8);
    memcpy(&v[2], id + 16, 8);
    memcpy(&v[3], id + 24, 8);
    memcpy(&v[4], id + 28, 8);
    for (int k = 0; k < 5; k++)
        z |= (v[k] - 0x0101010101010101ull) & ~v[k] & 0x8080808080808080ull;
    return z == 0;
}

/* Start loading the first `bytes` (a multiple of 64) of the record at off
 * into the cache, if they are in the arena. Only a hint: nothing read here
 * is used, a prefetch never faults, and the record is loaded and validated
 * as usual when it is read. It turns the dependent misses of a random
 * lookup (a record's header, then the lines its offsets point into; one
 * instance record after another) into parallel ones. */
static inline void prefetch_rec(const struct disc_read *rd, uint32_t off, uint32_t bytes)
{
    const struct disc_map *m = rmap(rd);
    if (off >= m->arena_off && (uint64_t)off + bytes <= m->arena_end)
        for (uint32_t b = 0; b < bytes; b += 64)
            __builtin_prefetch(rd->base_ + off + b);
}

/* Bytes of a service record worth prefetching: header, a few instance
 * offsets and a short name; of an instance record: header, tags and the
 * strings of a typical one. */
#define PREFETCH_SVC  128u
#define PREFETCH_INST 256u
/* Instance records prefetched at the start of a copy-out. */
#define PREFETCH_COPY 16u

/* ---- validated local copies of records --------------------------------------------- */

/* The snapshot, copied whole (48 bytes), then checked: fields come only
 * from the copy, and the checksum is over the copy too. */
static int snap_load(const struct disc_read *rd, struct disc_snapshot *s)
{
    if (!disc__rec(rmap(rd), (uint32_t)rd->root_, sizeof(*s), DISC_REC_SNAPSHOT))
        return -EBADMSG;
    disc__ldcpy(s, rd->base_ + (uint32_t)rd->root_, sizeof(*s));
    if (s->type != DISC_REC_SNAPSHOT || s->size < sizeof(*s))
        return -EBADMSG;
    if (verifying(rd) && (s->size != sizeof(*s) ||
                          disc__record_ck(rd->flags_, s, sizeof(*s),
                                          offsetof(struct disc_snapshot, checksum)) != s->checksum))
        return -EBADMSG;
    return 0;
}

/* A hash table: its offset and validated geometry. */
struct tabv {
    uint32_t off, size, nslots, npages;
};

static int tab_load(const struct disc_read *rd, uint32_t off, struct tabv *t)
{
    uint32_t size;
    const struct disc_htab *h =
        disc__rec_sz(rmap(rd), off, sizeof(struct disc_htab), DISC_REC_HTAB, &size);
    if (!h)
        return -EBADMSG;
    uint32_t ns = disc__ld32(&h->nslots), np = disc__ld32(&h->npages);
    if (ns < DISC_PAGE_SLOTS || (ns & (ns - 1)) || np != ns / DISC_PAGE_SLOTS ||
        np > DISC_MAX_PAGES || size < sizeof(*h) + 4ull * np)
        return -EBADMSG;
    t->off = off;
    t->size = size;
    t->nslots = ns;
    t->npages = np;
    return 0;
}

/* A table of the section's geometry, charged: -EBADMSG if it failed
 * validation; its checksum (over the whole directory) is verified when
 * `verify` is set and the handle verifies (the header is loaded and
 * checked again for that, and must say what the geometry says). */
static int table_verify(struct disc_read *rd, const struct disc_tabv *g)
{
    struct tabv t;
    int rc = tab_load(rd, g->off, &t);
    if (rc == 0)
        rc = t.nslots == g->nslots ? disc__charge(rd, verify_units(rd, t.size)) : -EBADMSG;
    if (rc == 0) {
        const unsigned char *h = rd->base_ + t.off;
        if (disc__record_ck(rd->flags_, h, t.size, offsetof(struct disc_htab, checksum)) !=
            disc__ld32(h + offsetof(struct disc_htab, checksum)))
            rc = -EBADMSG;
    }
    return rc;
}

/* units: what to charge for it (0: the caller charged it already). */
static inline int table(struct disc_read *rd, const struct disc_tabv *g, int verify, uint32_t units)
{
    int rc = units ? disc__charge(rd, units) : 0;
    if (rc == 0 && !g->nslots)
        rc = -EBADMSG;
    if (rc == 0 && verify && verifying(rd))
        rc = table_verify(rd, g);
    return rc;
}

/* The header (type tag, size) of the page at poff, whose bounds page()
 * checked: 0 or -EBADMSG. */
static int page_hdr(const struct disc_read *rd, uint32_t poff)
{
    return disc__rec(rmap(rd), poff, sizeof(struct disc_hpage), DISC_REC_HPAGE) ? 0 : -EBADMSG;
}

/* Page pi of a table: 0 with *poff = 0 (no page: all its slots empty), or
 * its offset: in the arena, aligned, a whole page in bounds. Its header is
 * checked too when `hdr` is set or the handle verifies (with the checksum);
 * a point lookup (find) checks it only when it leaves the page without a
 * hit, so a hit does not load the header's line: the record found is
 * validated whatever the page is. */
static int page_checked(struct disc_read *rd, uint32_t off, uint32_t *poff, uint32_t units)
{
    uint32_t u = units + verify_units(rd, sizeof(struct disc_hpage));
    int rc = u ? disc__charge(rd, u) : 0;
    if (rc < 0)
        return rc;
    const struct disc_hpage *p =
        disc__rec(rmap(rd), off, sizeof(struct disc_hpage), DISC_REC_HPAGE);
    if (!p)
        return -EBADMSG;
    if (verifying(rd) &&
        disc__record_ck(rd->flags_, p, sizeof(*p), offsetof(struct disc_hpage, checksum)) !=
            disc__ld32(&p->checksum))
        return -EBADMSG;
    *poff = off;
    return 0;
}

/* units: what to charge for it (0: the caller charged it already). */
static inline int page(struct disc_read *rd, const struct disc_tabv *t, uint32_t pi, uint32_t *poff,
                       int hdr, uint32_t units)
{
    uint32_t off = disc__ld32(rd->base_ + t->off + sizeof(struct disc_htab) + 4u * pi);
    *poff = 0;
    if (!off)
        return 0;
    if (hdr || verifying(rd))
        return page_checked(rd, off, poff, units);
    int rc = units ? disc__charge(rd, units) : 0;
    if (rc < 0)
        return rc;
    const struct disc_map *m = rmap(rd);
    if (off < m->arena_off || (off & (DISC_ALIGN - 1)) ||
        (uint64_t)off + sizeof(struct disc_hpage) > m->arena_end)
        return -EBADMSG;
    *poff = off;
    return 0;
}

/* Slot si of the (validated) page at poff, loaded once: hash and offset. */
static inline struct disc_slot slot_at(const struct disc_read *rd, uint32_t poff, uint32_t si)
{
    uint64_t v = __atomic_load_n(
        (const uint64_t *)(rd->base_ + poff + offsetof(struct disc_hpage, slot) + 8u * si),
        __ATOMIC_RELAXED);
    return (struct disc_slot){(uint32_t)v, (uint32_t)(v >> 32)};
}

/* A service record: offset and validated fields. */
struct svcv {
    uint32_t off, size, n, name_off, name_len;
    const char *name;
};

static int service_rec(struct disc_read *rd, uint32_t off, struct svcv *v)
{
    const struct disc_map *m = rmap(rd);
    if (off < m->arena_off || (off & (DISC_ALIGN - 1)) ||
        (uint64_t)off + sizeof(struct disc_service_rec) > m->arena_end)
        return -EBADMSG;
    const char *s = (const char *)m->base + off;
    struct disc_service_rec h; /* the header, type and size included, loaded once */
    disc__ldcpy(&h, s, sizeof(h));
    uint32_t size = h.size;
    /* One branch for the header: type, size in bounds; n instances need n
     * distinct records of at least 64 bytes each; the name in bounds. */
    unsigned bad =
        (h.type != DISC_REC_SERVICE) | (size < sizeof(h)) | ((uint64_t)off + size > m->arena_end) |
        (h.n_instances > DISC_SVC_INST_MAX) |
        ((uint64_t)h.n_instances * sizeof(struct disc_inst_rec) > m->arena_end - m->arena_off) |
        (h.name_len > DISC_SERVICE_MAX) | (h.name_off < sizeof(h) + 4ull * h.n_instances) |
        ((uint64_t)h.name_off + h.name_len >= size);
    if (bad || disc__ld8(s + h.name_off + h.name_len) != 0)
        return -EBADMSG;
    int rc = disc__charge(rd, 1 + verify_units(rd, size));
    if (rc < 0)
        return rc;
    if (verifying(rd) && disc__record_ck(rd->flags_, s, size,
                                         offsetof(struct disc_service_rec, checksum)) != h.checksum)
        return -EBADMSG;
    v->off = off;
    v->size = size;
    v->n = h.n_instances;
    v->name_off = h.name_off;
    v->name_len = h.name_len;
    v->name = s + h.name_off;
    return 0;
}

/* Offset of instance i (< the validated n) of a service record. */
static uint32_t service_inst(const struct disc_read *rd, const struct svcv *v, uint32_t i)
{
    return disc__ld32(rd->base_ + v->off + sizeof(struct disc_service_rec) + 4u * i);
}

/* The service record of a view made in this section. The caller may pass
 * anything. The record the section validated last (read_service,
 * next_service) is not validated again: its offset, and the instance count
 * checked against its size then, are the section's own (struct disc_read
 * svc_, svc_n_), so instance i < that count is read inside that record
 * whatever the memory holds now. Any other record is validated again (its
 * checksum was checked when the view was made) with its instance count
 * loaded now, not the view's. */
static inline int view_service(const struct disc_read *rd, const struct disc_service_view *sv,
                               struct svcv *v)
{
    if (sv->rec_ == rd->svc_ && rd->svc_ != 0) {
        v->off = rd->svc_;
        v->n = rd->svc_n_;
        return 0;
    }
    const struct disc_service_rec *r = disc__rec_sz(
        rmap(rd), sv->rec_, sizeof(struct disc_service_rec), DISC_REC_SERVICE, &v->size);
    if (!r)
        return -EBADMSG;
    v->off = sv->rec_;
    v->n = disc__ld32(&r->n_instances);
    return v->n > DISC_SVC_INST_MAX || v->size < sizeof(*r) + 4ull * v->n ? -EBADMSG : 0;
}

/* Remember v, just validated, as the section's last service record. */
static inline void svc_remember(struct disc_read *rd, const struct svcv *v)
{
    rd->svc_ = v->off;
    rd->svc_n_ = v->n;
}

/* ---- work budget ------------------------------------------------------------------------ */

/*
 * The budget of a section: WORK_K times what an honest walk of every table,
 * service and instance of the snapshot costs, plus WORK_FLOOR, capped by
 * WORK_CAP. The counts are the snapshot's own, clamped to what can fit in
 * the arena (every instance takes a record of at least 64 bytes, and no
 * honest table has more slots than four times the entries it ever held), so
 * neither a lying count nor a record reused everywhere buys more work.
 *
 * It is granted in two parts so that a point lookup does not pay for
 * reading both tables: first the part from the snapshot's counts; the part
 * from the tables' slot counts is added once, when the first part is
 * spent. work_ holds the units left + 1 in its low 31 bits (0: nothing
 * granted yet) and WORK_TABLES once the second part was added.
 */
#define WORK_TABLES 0x80000000u

static uint64_t clamp(uint64_t v, uint64_t max)
{
    return v < max ? v : max;
}

/* From the snapshot's counts; s: the validated snapshot, or NULL to load it. */
static uint64_t budget_counts(const struct disc_read *rd, const struct disc_snapshot *s)
{
    const struct disc_map *m = rmap(rd);
    uint64_t arena = m->arena_end - m->arena_off, cap = arena / 64 + 1;
    struct disc_snapshot copy;
    uint64_t S = 0, I = 0;
    if (!s && snap_load(rd, &copy) == 0)
        s = &copy;
    if (s) {
        S = clamp(s->n_services, cap);
        I = clamp(s->n_instances, cap);
    }
    uint64_t walk = 4 * S + 4 * I;
    if (verifying(rd)) {
        /* each record hashed once, each page (1 KiB) once per entry found */
        uint64_t bytes =
            S * (sizeof(struct disc_service_rec) + DISC_SERVICE_MAX + 1) + I * (4 + DISC_REC_MAX);
        walk += 40 * (S + I) + clamp(bytes, arena) / 64;
    }
    return WORK_FLOOR + WORK_K * walk;
}

static uint64_t budget_tables(const struct disc_read *rd)
{
    const struct disc_map *m = rmap(rd);
    uint64_t arena = m->arena_end - m->arena_off, nsmax = DISC_PAGE_SLOTS + arena / 16;
    struct disc_snapshot s;
    struct tabv t;
    uint64_t ns = 0;
    if (snap_load(rd, &s) == 0) {
        if (tab_load(rd, s.svc_table, &t) == 0)
            ns += clamp(t.nslots, nsmax);
        if (tab_load(rd, s.id_table, &t) == 0)
            ns += clamp(t.nslots, nsmax);
    }
    uint64_t walk = ns + ns / DISC_PAGE_SLOTS;
    if (verifying(rd))
        walk += 40 * (ns / DISC_PAGE_SLOTS);
    return WORK_K * walk;
}

int disc__charge_slow(struct disc_read *rd, uint32_t units)
{
    uint32_t left = rd->work_ & ~WORK_TABLES, flags = rd->work_ & WORK_TABLES;
    if (left == 0)
        left = (uint32_t)clamp(budget_counts(rd, NULL), WORK_CAP) + 1;
    if (left - 1 < units && !flags) {
        flags = WORK_TABLES;
        left = (uint32_t)clamp(left + budget_tables(rd), WORK_CAP + 1);
    }
    if (left - 1 < units) {
        rd->work_ = flags | 1; /* spent: every further step fails too */
        return -EBADMSG;
    }
    rd->work_ = flags | (left - units);
    return 0;
}

/* ---- lookups ------------------------------------------------------------------------------ */

/* Validate the section's snapshot and both its tables' headers into *g.
 * A table that fails is recorded as such (nslots 0), not an error: a
 * lookup in the other table still works, as it did before the cache. */
static int geo_fill(const struct disc_read *rd, struct disc_geo *g)
{
    struct disc_snapshot s;
    int rc = snap_load(rd, &s);
    if (rc < 0)
        return rc;
    struct tabv t;
    g->gen = s.gen;
    g->n_services = s.n_services;
    g->svc = (struct disc_tabv){s.svc_table, tab_load(rd, s.svc_table, &t) < 0 ? 0 : t.nslots};
    g->id = (struct disc_tabv){s.id_table, tab_load(rd, s.id_table, &t) < 0 ? 0 : t.nslots};
    g->budget = (uint32_t)clamp(budget_counts(rd, &s), WORK_CAP) + 1;
    return 0;
}

/*
 * The snapshot of the section (its validated geometry), charged as one
 * step. Without DISC_OPEN_VERIFY it comes from the map's geometry cache
 * when a section already validated the snapshot of the same root word:
 * every offset and count in it was checked against the arena, whose bounds
 * never change, so using it is as safe as re-deriving it, and the records
 * it describes cannot have changed while the root still names them (an
 * honest writer never stores a root word twice; memory reused under this
 * section is caught by its end check, as for every read). With
 * DISC_OPEN_VERIFY every section re-reads and re-checksums the snapshot.
 */
static int snapshot_fill(struct disc_read *rd, struct disc_geo *g)
{
    int rc = geo_fill(rd, g);
    /* cached only when it is what the root word says it is */
    if (rc == 0 && !verifying(rd) && (uint32_t)g->gen == (uint32_t)(rd->root_ >> 32))
        disc__geo_put(rmap(rd), rd->root_, g);
    return rc;
}

/* units: 1 for the snapshot, plus the steps the caller takes next (a
 * point lookup charges its table here: one update of the budget, not two). */
static inline int snapshot(struct disc_read *rd, struct disc_geo *g, uint32_t units)
{
    if (verifying(rd) || !disc__geo_get(rmap(rd), rd->root_, rd->gen_, g)) {
        int rc = snapshot_fill(rd, g);
        if (rc < 0)
            return rc;
    }
    if (rd->work_ == 0) /* the section's first step: grant its budget */
        rd->work_ = g->budget;
    return disc__charge(rd, units);
}

/* Find `key` in the table at tab_off. match() validates the record at an
 * entry whose hash matches: 1 (it is the key), 0 (not), or -errno. The
 * caller charged the table, the first page and the first slot with its
 * snapshot (snapshot(rd, g, 4)): one update of the budget instead of
 * four; every further page and slot is charged as it is reached. */
typedef int (*key_match_fn)(struct disc_read *rd, uint32_t off, const char *key, size_t len,
                            void *out);

static inline __attribute__((always_inline)) int find(struct disc_read *rd,
                                                      const struct disc_tabv *tp, const char *key,
                                                      size_t len, key_match_fn match, void *out)
{
    int rc = table(rd, tp, 1, 0); /* charged with the snapshot (4 units) */
    if (rc < 0)
        return rc;
    const struct disc_tabv t = *tp;
    uint32_t h = (uint32_t)disc_hash(key, len, rmap(rd)->seed), mask = t.nslots - 1;
    uint32_t si = h & mask, pi = UINT32_MAX, poff = 0;
    /* Linear probing from the home slot, over at most DISC_PROBE_MAX slots
     * (the writer keeps every entry closer than that to its home). */
    for (uint32_t d = 0; d < DISC_PROBE_MAX && d < t.nslots; d++, si = (si + 1) & mask) {
        if (si / DISC_PAGE_SLOTS != pi) {
            /* leaving a page without a hit: its header must be right */
            if (poff && (rc = page_hdr(rd, poff)) < 0)
                return rc;
            pi = si / DISC_PAGE_SLOTS;
            /* the first page and slot were charged with the snapshot */
            if ((rc = page(rd, &t, pi, &poff, 0, d > 0)) < 0)
                return rc;
        }
        if (!poff) /* an absent page: all its slots are empty */
            return -ENOENT;
        if (d > 0 && (rc = disc__charge(rd, 1)) < 0)
            return rc;
        struct disc_slot e = slot_at(rd, poff, si % DISC_PAGE_SLOTS);
        if (!e.off) /* not there, if the page is a page */
            return page_hdr(rd, poff) < 0 ? -EBADMSG : -ENOENT;
        if (e.hash != h)
            continue;
        prefetch_rec(rd, e.off, PREFETCH_SVC);
        int m = match(rd, e.off, key, len, out);
        if (m != 0)
            return m < 0 ? m : 0;
    }
    /* A run no honest writer makes (nor a full table: the load is <= 1/2). */
    return -EBADMSG;
}

static int svc_match(struct disc_read *rd, uint32_t off, const char *key, size_t len, void *out)
{
    struct svcv *v = out;
    int rc = service_rec(rd, off, v);
    if (rc < 0)
        return rc;
    return v->name_len == len && memcmp(v->name, key, len) == 0;
}

/* Fill a view from an instance record at rec with `avail` readable bytes
 * (shared memory or a private copy: the header is loaded once either way).
 *
 * Branch-light: every check of the header is folded into one flag and
 * tested once, then the six string terminators (each in bounds by then)
 * are loaded and tested together, then the id's bytes; the view is written
 * only when all of it holds. The checks are those of rec_str, one string
 * at a time: off + len < size, len <= its DISC_*_MAX, a NUL at off + len. */
static inline __attribute__((always_inline)) int
fill_view(const unsigned char *rec, uint64_t avail, unsigned flags, struct disc_instance *out)
{
    if (avail < sizeof(struct disc_inst_rec))
        return -EBADMSG;
    struct disc_inst_rec r;
    disc__ldcpy(&r, rec, sizeof(r));
    uint32_t size = r.size;
    if (r.type != DISC_REC_INSTANCE || size < sizeof(r) || size > avail || size > DISC_REC_MAX)
        return -EBADMSG;
    if ((flags & DISC_OPEN_VERIFY) &&
        disc__record_ck(flags, rec, size, offsetof(struct disc_inst_rec, checksum)) != r.checksum)
        return -EBADMSG;
#define STR_END(f) ((uint32_t)r.f.off + r.f.len)
    /* string ends: a string fits when its end (the NUL) is below size */
    uint32_t e_id = STR_END(id), e_svc = STR_END(service), e_ver = STR_END(version),
             e_host = STR_END(host), e_az = STR_END(az), e_addr = STR_END(address);
#undef STR_END
    unsigned bad =
        (r.n_tags > DISC_TAGS_MAX) | (r.n_endpoints > DISC_ENDPOINTS_MAX) |
        ((uint64_t)r.tags_off + (uint64_t)r.n_tags * sizeof(struct disc_tag_rec) > size) |
        ((uint64_t)r.endpoints_off + (uint64_t)r.n_endpoints * sizeof(struct disc_endpoint_rec) >
         size) |
        (((r.tags_off | r.endpoints_off) & 3) != 0) | (r.id.len != DISC_ID_LEN);
    bad |= (e_id >= size) | (e_svc >= size) | (e_ver >= size) | (e_host >= size) | (e_az >= size) |
           (e_addr >= size);
    bad |= (r.service.len > DISC_SERVICE_MAX) | (r.version.len > DISC_VERSION_MAX) |
           (r.host.len > DISC_HOST_MAX) | (r.az.len > DISC_AZ_MAX) |
           (r.address.len > DISC_ADDRESS_MAX);
    if (bad)
        return -EBADMSG;
    /* each terminator loaded once, all in bounds now */
    unsigned nul = disc__ld8(rec + e_id) | disc__ld8(rec + e_svc) | disc__ld8(rec + e_ver) |
                   disc__ld8(rec + e_host) | disc__ld8(rec + e_az) | disc__ld8(rec + e_addr);
    const char *id = (const char *)rec + r.id.off;
    if (nul != 0 || !id_nul_free(id)) /* 36 characters, no NUL inside */
        return -EBADMSG;
    out->id = id;
    out->service = (const char *)rec + r.service.off;
    out->version = (const char *)rec + r.version.off;
    out->host = (const char *)rec + r.host.off;
    out->az = (const char *)rec + r.az.off;
    out->address = (const char *)rec + r.address.off;
    out->weight = r.weight;
    out->addr_kind = r.addr_kind;
    out->health = r.health;
    out->origin = r.origin;
    out->reserved_ = 0;
    out->n_tags = r.n_tags;
    out->n_endpoints = r.n_endpoints;
    out->registered_at_ms = r.registered_at_ms;
    out->owner_uid = r.owner_uid;
    out->reserved2_ = 0;
    out->rec_ = rec;
    out->rec_size_ = size;
    out->rec_pad_ = 0;
    return 0;
}

/* For filter.c / pick.c: re-validate a copied record into a view. */
int disc__fill_view(const unsigned char *rec, uint64_t avail, unsigned flags,
                    struct disc_instance *out)
{
    return fill_view(rec, avail, flags, out);
}

/* units: 1 for the record, plus the caller's step (charged in one update). */
static int view_at(struct disc_read *rd, uint32_t off, struct disc_instance *out, uint32_t units)
{
    const struct disc_map *m = rmap(rd);
    if (off < m->arena_off || (off & (DISC_ALIGN - 1)) ||
        (uint64_t)off + sizeof(struct disc_inst_rec) > m->arena_end)
        return -EBADMSG;
    uint32_t size = disc__ld32(m->base + off + offsetof(struct disc_inst_rec, size));
    int rc = disc__charge(rd, units + verify_units(rd, size < DISC_REC_MAX ? size : DISC_REC_MAX));
    return rc < 0 ? rc : fill_view(m->base + off, m->arena_end - off, rd->flags_, out);
}

static int id_match(struct disc_read *rd, uint32_t off, const char *key, size_t len, void *out)
{
    struct disc_instance *v = out;
    int rc = view_at(rd, off, v, 1);
    if (rc < 0)
        return rc;
    return len == DISC_ID_LEN && memcmp(v->id, key, len) == 0;
}

/* ---- zero-copy API ------------------------------------------------------------- */

static int read_service(struct disc_read *rd, const char *service, struct svcv *v)
{
    size_t len = strnlen(service, DISC_SERVICE_MAX + 1);
    if (len > DISC_SERVICE_MAX)
        return -ENAMETOOLONG;
    struct disc_geo g;
    int rc = snapshot(rd, &g, 4); /* and find's table, first page and slot */
    if (rc == 0)
        rc = find(rd, &g.svc, service, len, svc_match, v);
    if (rc == 0)
        svc_remember(rd, v);
    /* what a caller reads next: the first instance (zero-copy) or all of
     * them (copy-out, which prefetches the rest) */
    if (rc == 0 && v->n > 0)
        prefetch_rec(rd, service_inst(rd, v, 0), PREFETCH_INST);
    return rc;
}

DISC_API int disc_read_service(struct disc_read *rd, const char *service,
                               struct disc_service_view *sv)
{
    if (!rd || !rd->map_ || !service || !sv)
        return -EINVAL;
    struct svcv v;
    int rc = read_service(rd, service, &v);
    if (rc < 0)
        return rc;
    sv->name = v.name;
    sv->n_instances = v.n;
    sv->rec_ = v.off;
    return 0;
}

DISC_API int disc_read_instance(struct disc_read *rd, const struct disc_service_view *sv,
                                uint32_t i, struct disc_instance *out)
{
    if (!rd || !rd->map_ || !sv || !out)
        return -EINVAL;
    struct svcv v;
    if (view_service(rd, sv, &v) < 0)
        return -EBADMSG;
    if (i >= sv->n_instances)
        return -EINVAL;
    if (i >= v.n)
        return -EBADMSG; /* the record no longer says what the view did */
    return view_at(rd, service_inst(rd, &v, i), out, 2); /* the step and the record */
}

DISC_API int disc_read_instance_by_id(struct disc_read *rd, const char *id,
                                      struct disc_instance *out)
{
    if (!rd || !rd->map_ || !id || !out)
        return -EINVAL;
    size_t len = strnlen(id, DISC_ID_LEN + 1);
    if (len != DISC_ID_LEN)
        return -ENOENT;
    struct disc_geo g;
    int rc = snapshot(rd, &g, 4); /* and find's table, first page and slot */
    return rc < 0 ? rc : find(rd, &g.id, id, len, id_match, out);
}

/* The next service from *cursor (the next slot to look at): 1 and *v, 0
 * at the end, or -errno. One page is validated per call, its slots scanned
 * in turn. */
static int next_service(struct disc_read *rd, uint64_t *cursor, struct svcv *v)
{
    struct disc_geo g;
    int rc = snapshot(rd, &g, 1);
    /* The directory is hashed once per walk (at cursor 0), not per call. */
    if (rc < 0 || (rc = table(rd, &g.svc, *cursor == 0, 1)) < 0)
        return rc;
    const struct disc_tabv t = g.svc;
    uint64_t si = *cursor;
    uint32_t mask = t.nslots - 1;
    while (si < t.nslots) {
        uint32_t poff;
        if ((rc = page(rd, &t, (uint32_t)(si / DISC_PAGE_SLOTS), &poff, 1, 1)) < 0)
            return rc;
        if (!poff) { /* an absent page: skip all of it */
            if ((rc = disc__charge(rd, 1)) < 0)
                return rc;
            si = (si / DISC_PAGE_SLOTS + 1) * DISC_PAGE_SLOTS;
            continue;
        }
        do {
            if ((rc = disc__charge(rd, 1)) < 0)
                return rc;
            struct disc_slot e = slot_at(rd, poff, (uint32_t)(si % DISC_PAGE_SLOTS));
            if (e.off) {
                /* An entry sits fewer than DISC_PROBE_MAX slots after its
                 * home slot: a page reused at other positions of the table
                 * is refused. */
                if ((((uint32_t)si - (e.hash & mask)) & mask) >= DISC_PROBE_MAX)
                    return -EBADMSG;
                if ((rc = service_rec(rd, e.off, v)) < 0)
                    return rc;
                svc_remember(rd, v);
                *cursor = si + 1;
                return 1;
            }
            si++;
        } while (si % DISC_PAGE_SLOTS != 0);
    }
    *cursor = si;
    return 0;
}

DISC_API int disc_read_next_service(struct disc_read *rd, uint64_t *cursor,
                                    struct disc_service_view *sv)
{
    if (!rd || !rd->map_ || !cursor || !sv)
        return -EINVAL;
    struct svcv v;
    int rc = next_service(rd, cursor, &v);
    if (rc == 1) {
        sv->name = v.name;
        sv->n_instances = v.n;
        sv->rec_ = v.off;
    }
    return rc;
}

/* ---- accessors --------------------------------------------------------------------- */

/* The instance's tag or endpoint array offset, loaded once and bounded for
 * element i (the record may be shared memory that changed since the view). */
static int array_at(const struct disc_instance *inst, size_t field, unsigned i, size_t elem,
                    uint32_t *at)
{
    uint32_t a = disc__ld32((const unsigned char *)inst->rec_ + field);
    if ((uint64_t)a + (uint64_t)(i + 1) * elem > inst->rec_size_ || (a & 3))
        return -EBADMSG;
    *at = a + (uint32_t)(i * elem);
    return 0;
}

DISC_API int disc_instance_tag(const struct disc_instance *inst, unsigned i, const char **key,
                               const char **value)
{
    if (!inst || !inst->rec_ || i >= inst->n_tags)
        return -EINVAL;
    const unsigned char *rec = inst->rec_;
    uint32_t size = inst->rec_size_, at;
    if (array_at(inst, offsetof(struct disc_inst_rec, tags_off), i, sizeof(struct disc_tag_rec),
                 &at) < 0)
        return -EBADMSG;
    struct disc_tag_rec t;
    disc__ldcpy(&t, rec + at, sizeof(t));
    const char *k = rec_str(rec, size, t.key, DISC_TAG_KEY_MAX),
               *v = rec_str(rec, size, t.value, DISC_TAG_VALUE_MAX);
    if (!k || !v)
        return -EBADMSG;
    if (key)
        *key = k;
    if (value)
        *value = v;
    return 0;
}

DISC_API const char *disc_instance_tag_get(const struct disc_instance *inst, const char *key)
{
    if (!inst || !key)
        return NULL;
    for (unsigned i = 0; i < inst->n_tags && i < DISC_TAGS_MAX; i++) {
        const char *k, *v;
        if (disc_instance_tag(inst, i, &k, &v) == 0 && strcmp(k, key) == 0)
            return v;
    }
    return NULL;
}

DISC_API int disc_instance_endpoint(const struct disc_instance *inst, unsigned i,
                                    struct disc_endpoint *out)
{
    if (!inst || !inst->rec_ || !out || i >= inst->n_endpoints)
        return -EINVAL;
    const unsigned char *rec = inst->rec_;
    uint32_t size = inst->rec_size_, at;
    if (array_at(inst, offsetof(struct disc_inst_rec, endpoints_off), i,
                 sizeof(struct disc_endpoint_rec), &at) < 0)
        return -EBADMSG;
    struct disc_endpoint_rec e;
    disc__ldcpy(&e, rec + at, sizeof(e));
    out->name = rec_str(rec, size, e.name, DISC_ENDPOINT_NAME_MAX);
    out->request_type = rec_str(rec, size, e.request_type, DISC_TYPE_NAME_MAX);
    out->response_type = rec_str(rec, size, e.response_type, DISC_TYPE_NAME_MAX);
    out->mean_us = e.mean_us;
    out->p95_us = e.p95_us;
    return out->name && out->request_type && out->response_type ? 0 : -EBADMSG;
}

/* ---- copy-out API ------------------------------------------------------------------ */

static size_t align8(size_t v)
{
    return (v + 7) & ~(size_t)7;
}

/* A service names each instance record once (they are sorted by id): 0 if
 * instance i is not the record instance i - 1 is, else -EBADMSG. Only the
 * service record is read, so an iteration pays no extra cache miss; the
 * copy-out calls check the full id order on their private copies. */
int disc__inst_not_repeated(struct disc_read *rd, const struct disc_service_view *sv, uint32_t i)
{
    if (i == 0)
        return 0;
    struct svcv v;
    if (view_service(rd, sv, &v) < 0 || i >= v.n ||
        service_inst(rd, &v, i - 1) == service_inst(rd, &v, i))
        return -EBADMSG;
    return 0;
}

/* Offset of the i-th record to copy: instance i of service v, or `one`. */
static uint32_t copy_src(const struct disc_read *rd, const struct svcv *v, uint32_t one, uint32_t i)
{
    return v ? service_inst(rd, v, i) : one;
}

/* Copy n instance records (those of service v, or the one at `one`) into
 * buf as views + records, in one pass: each record's offset and size are
 * loaded once and bounded as far as the copy needs (the offset in the
 * arena and aligned, the size at most DISC_REC_MAX and inside the arena),
 * the record is copied, and the copy (not the source) is validated, its
 * type tag included. When buf turns out too small the pass goes on only
 * summing sizes for *needed and the call returns -ENOBUFS. */
static int copy_out(struct disc_read *rd, const struct svcv *v, uint32_t one, uint32_t n, void *buf,
                    size_t buflen, struct disc_instance **list, size_t *needed)
{
    const struct disc_map *m = rmap(rd);
    const size_t head = align8((size_t)n * sizeof(struct disc_instance));
    size_t need = head;
    int fits = buf != NULL && head <= buflen;
    struct disc_instance *views = buf;
    uint32_t size, prev = 0;
    int rc;
    /* one unit per record, charged for all of them at once */
    if ((rc = disc__charge(rd, n)) < 0)
        return rc;
    for (uint32_t i = 1; v && i < n && i < PREFETCH_COPY; i++)
        prefetch_rec(rd, service_inst(rd, v, i), PREFETCH_INST);
    for (uint32_t i = 0; i < n; i++) {
        /* a record named twice in a row is refused at once; the copies'
         * ids must strictly ascend (checked below) */
        uint32_t off = copy_src(rd, v, one, i);
        if (off < m->arena_off || (off & (DISC_ALIGN - 1)) ||
            (uint64_t)off + sizeof(struct disc_inst_rec) > m->arena_end || (i > 0 && off == prev))
            return -EBADMSG;
        const unsigned char *r = m->base + off;
        size = disc__ld32(r + offsetof(struct disc_inst_rec, size));
        if (size > DISC_REC_MAX || (uint64_t)off + size > m->arena_end)
            return -EBADMSG;
        prev = off;
        if (fits && need + size <= buflen) {
            unsigned char *at = (unsigned char *)buf + need;
            memcpy(at, r, size);
            if ((rc = fill_view(at, size, rd->flags_, &views[i])) < 0)
                return rc;
            if (i > 0 && !id_above(views[i - 1].id, views[i].id))
                return -EBADMSG; /* the copies, in private memory, in order too */
        } else {
            fits = 0;
        }
        need += align8(size);
    }
    if (needed)
        *needed = need;
    if (!fits || need > buflen)
        return -ENOBUFS;
    *list = views;
    return (int)n;
}

DISC_API int disc_lookup(disc_handle *h, const char *service, void *buf, size_t buflen,
                         struct disc_instance **list, size_t *needed)
{
    if (!h || !service || !list || (!buf && buflen))
        return -EINVAL;
    struct disc_read rd;
    int rc;
    for (int tries = 0; tries < RETRIES; tries++) {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        struct svcv v;
        rc = read_service(&rd, service, &v);
        if (rc == 0)
            rc = copy_out(&rd, &v, 0, v.n, buf, buflen, list, needed);
        if (disc_read_end(&rd) == 0)
            return rc;
    }
    return -EAGAIN;
}

DISC_API int disc_lookup_id(disc_handle *h, const char *id, void *buf, size_t buflen,
                            struct disc_instance **inst, size_t *needed)
{
    if (!h || !id || !inst || (!buf && buflen))
        return -EINVAL;
    size_t len = strnlen(id, DISC_ID_LEN + 1);
    if (len != DISC_ID_LEN)
        return -ENOENT;
    struct disc_read rd;
    int rc;
    for (int tries = 0; tries < RETRIES; tries++) {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        struct disc_instance found;
        rc = disc_read_instance_by_id(&rd, id, &found);
        if (rc == 0) {
            uint32_t off = (uint32_t)((const unsigned char *)found.rec_ - rd.base_);
            rc = copy_out(&rd, NULL, off, 1, buf, buflen, inst, needed);
        }
        if (disc_read_end(&rd) == 0)
            return rc < 0 ? rc : 0;
    }
    return -EAGAIN;
}

DISC_API int disc_count(disc_handle *h, const char *service)
{
    if (!h || !service)
        return -EINVAL;
    struct disc_read rd;
    int rc;
    for (int tries = 0; tries < RETRIES; tries++) {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        struct disc_service_view sv;
        rc = disc_read_service(&rd, service, &sv);
        if (rc == 0)
            rc = (int)sv.n_instances;
        else if (rc == -ENOENT)
            rc = 0;
        if (disc_read_end(&rd) == 0)
            return rc;
    }
    return -EAGAIN;
}

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const struct disc_service_info *)a)->name,
                  ((const struct disc_service_info *)b)->name);
}

DISC_API int disc_list_services(disc_handle *h, void *buf, size_t buflen,
                                struct disc_service_info **list, size_t *needed)
{
    if (!h || !list || (!buf && buflen))
        return -EINVAL;
    struct disc_read rd;
    int rc;
    for (int tries = 0; tries < RETRIES; tries++) {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        struct disc_geo g;
        rc = snapshot(&rd, &g, 1);
        uint32_t n = rc == 0 ? g.n_services : 0;
        /* first pass: size */
        size_t need = align8((size_t)n * sizeof(struct disc_service_info));
        uint64_t cur = 0;
        struct disc_service_view sv;
        uint32_t seen = 0;
        while (rc == 0 && seen <= n) {
            int r = disc_read_next_service(&rd, &cur, &sv);
            if (r <= 0) {
                rc = r;
                break;
            }
            need += disc__slen(sv.name, DISC_SERVICE_MAX) + 1;
            seen++;
        }
        if (rc == 0 && seen != n)
            rc = -EBADMSG;
        if (rc == 0 && needed)
            *needed = need;
        if (rc == 0 && need > buflen)
            rc = -ENOBUFS;
        if (rc == 0) {
            struct disc_service_info *info = buf;
            char *names = (char *)buf + align8((size_t)n * sizeof(*info));
            uint32_t k = 0;
            cur = 0;
            while (k < n && disc_read_next_service(&rd, &cur, &sv) == 1) {
                size_t l = disc__slen(sv.name, DISC_SERVICE_MAX) + 1;
                if (l > DISC_SERVICE_MAX + 1 || (size_t)(names - (char *)buf) + l > buflen) {
                    rc = -EBADMSG;
                    break;
                }
                memcpy(names, sv.name, l - 1);
                names[l - 1] = 0;
                info[k].name = names;
                info[k].n_instances = sv.n_instances;
                info[k].reserved_ = 0;
                names += l;
                k++;
            }
            if (rc == 0 && k != n)
                rc = -EBADMSG;
            if (rc == 0) {
                *list = info;
                rc = (int)n;
            }
        }
        if (disc_read_end(&rd) == 0) {
            if (rc > 0)
                qsort(*list, (size_t)rc, sizeof(**list), cmp_info);
            return rc;
        }
    }
    return -EAGAIN;
}
