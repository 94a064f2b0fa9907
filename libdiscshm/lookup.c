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

static inline const struct disc_map *rmap(const struct disc_read *rd)
{
    return (const struct disc_map *)rd->map_;
}

/* A string of a record: in bounds and NUL-terminated where it says. */
static const char *rec_str(const unsigned char *rec, uint32_t size, struct disc_str s)
{
    if ((uint32_t)s.off + s.len >= size || rec[s.off + s.len] != 0)
        return NULL;
    return (const char *)rec + s.off;
}

/* disc_read_begin checked that the snapshot record lies inside the arena;
 * its fields are checked where they are used. */
static const struct disc_snapshot *snap_of(const struct disc_read *rd)
{
    return (const struct disc_snapshot *)(rd->base_ + rd->snap_);
}

static const struct disc_htab *table(const struct disc_read *rd, uint32_t off)
{
    const struct disc_htab *t = disc__rec(rmap(rd), off, sizeof(struct disc_htab), DISC_REC_HTAB);
    if (!t || t->nbuckets < DISC_PAGE_BUCKETS || (t->nbuckets & (t->nbuckets - 1)) ||
        t->npages != t->nbuckets / DISC_PAGE_BUCKETS || t->npages > DISC_MAX_PAGES ||
        t->size < sizeof(*t) + 4ull * t->npages)
        return NULL;
    return t;
}

/* The bucket for hash h, NULL with *err=0 when empty, or *err=-EBADMSG. */
static const struct disc_bucket *bucket(const struct disc_read *rd, const struct disc_htab *t,
                                        uint32_t b, int *err)
{
    *err = 0;
    uint32_t poff = t->pages[b / DISC_PAGE_BUCKETS];
    if (!poff)
        return NULL;
    const struct disc_hpage *p = disc__rec(rmap(rd), poff, sizeof(*p), DISC_REC_HPAGE);
    if (!p) {
        *err = -EBADMSG;
        return NULL;
    }
    uint32_t boff = p->bucket[b % DISC_PAGE_BUCKETS];
    if (!boff)
        return NULL;
    const struct disc_bucket *bk = disc__rec(rmap(rd), boff, sizeof(*bk), DISC_REC_BUCKET);
    if (!bk || bk->n > DISC_BUCKET_MAX ||
        bk->size < sizeof(*bk) + (uint64_t)bk->n * sizeof(struct disc_bucket_ent)) {
        *err = -EBADMSG;
        return NULL;
    }
    return bk;
}

static const struct disc_service_rec *service_rec(const struct disc_read *rd, uint32_t off)
{
    const struct disc_service_rec *s =
        disc__rec(rmap(rd), off, sizeof(struct disc_service_rec), DISC_REC_SERVICE);
    if (!s || s->n_instances > DISC_SVC_INST_MAX ||
        s->name_off < sizeof(*s) + 4ull * s->n_instances ||
        (uint64_t)s->name_off + s->name_len >= s->size ||
        ((const char *)s)[s->name_off + s->name_len] != 0)
        return NULL;
    if ((rd->flags_ & DISC_OPEN_VERIFY) &&
        disc_checksum(s, s->size, offsetof(struct disc_service_rec, checksum)) != s->checksum)
        return NULL;
    return s;
}

/* Generic hash lookup: the record offset whose key matches (and the
 * record, validated by the match function). */
typedef int (*key_match_fn)(const struct disc_read *rd, uint32_t off, const char *key, size_t len,
                            const void **rec);

static int svc_match(const struct disc_read *rd, uint32_t off, const char *key, size_t len,
                     const void **rec)
{
    const struct disc_service_rec *s = service_rec(rd, off);
    if (!s)
        return -EBADMSG;
    *rec = s;
    return s->name_len == len && memcmp((const char *)s + s->name_off, key, len) == 0;
}

static int id_match(const struct disc_read *rd, uint32_t off, const char *key, size_t len,
                    const void **rec)
{
    const struct disc_inst_rec *r =
        disc__rec(rmap(rd), off, sizeof(struct disc_inst_rec), DISC_REC_INSTANCE);
    if (!r)
        return -EBADMSG;
    const char *id = rec_str((const unsigned char *)r, r->size, r->id);
    if (!id)
        return -EBADMSG;
    *rec = r;
    return r->id.len == len && memcmp(id, key, len) == 0;
}

static int find(const struct disc_read *rd, uint32_t tab_off, const char *key, size_t len,
                key_match_fn match, uint32_t *out, const void **rec)
{
    const struct disc_htab *t = table(rd, tab_off);
    if (!t)
        return -EBADMSG;
    uint32_t h = (uint32_t)disc_hash(key, len, rmap(rd)->seed);
    int err;
    const struct disc_bucket *bk = bucket(rd, t, h & (t->nbuckets - 1), &err);
    if (!bk)
        return err ? err : -ENOENT;
    for (uint32_t i = 0; i < bk->n; i++) {
        if (bk->e[i].hash != h)
            continue;
        int m = match(rd, bk->e[i].off, key, len, rec);
        if (m < 0)
            return m;
        if (m) {
            *out = bk->e[i].off;
            return 0;
        }
    }
    return -ENOENT;
}

/* Fill a view from an instance record at rec with `avail` readable bytes. */
static int fill_view(const unsigned char *rec, uint64_t avail, unsigned flags,
                     struct disc_instance *out)
{
    if (avail < sizeof(struct disc_inst_rec))
        return -EBADMSG;
    const struct disc_inst_rec *r = (const struct disc_inst_rec *)rec;
    uint32_t size = r->size;
    if (r->type != DISC_REC_INSTANCE || size < sizeof(*r) || size > avail || size > DISC_REC_MAX)
        return -EBADMSG;
    if ((flags & DISC_OPEN_VERIFY) &&
        disc_checksum(rec, size, offsetof(struct disc_inst_rec, checksum)) != r->checksum)
        return -EBADMSG;
    if (r->n_tags > DISC_TAGS_MAX || r->n_endpoints > DISC_ENDPOINTS_MAX ||
        (uint64_t)r->tags_off + (uint64_t)r->n_tags * sizeof(struct disc_tag_rec) > size ||
        (uint64_t)r->endpoints_off + (uint64_t)r->n_endpoints * sizeof(struct disc_endpoint_rec) >
            size ||
        (r->tags_off & 3) || (r->endpoints_off & 3))
        return -EBADMSG;
    out->id = rec_str(rec, size, r->id);
    out->service = rec_str(rec, size, r->service);
    out->version = rec_str(rec, size, r->version);
    out->host = rec_str(rec, size, r->host);
    out->az = rec_str(rec, size, r->az);
    out->address = rec_str(rec, size, r->address);
    if (!out->id || !out->service || !out->version || !out->host || !out->az || !out->address ||
        r->id.len != DISC_ID_LEN)
        return -EBADMSG;
    out->weight = r->weight;
    out->addr_kind = r->addr_kind;
    out->health = r->health;
    out->origin = r->origin;
    out->reserved_ = 0;
    out->n_tags = r->n_tags;
    out->n_endpoints = r->n_endpoints;
    out->registered_at_ms = r->registered_at_ms;
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

static int view_at(const struct disc_read *rd, uint32_t off, struct disc_instance *out)
{
    const struct disc_map *m = rmap(rd);
    if (off < m->arena_off || (off & (DISC_ALIGN - 1)) || off >= m->arena_end)
        return -EBADMSG;
    return fill_view(m->base + off, m->arena_end - off, rd->flags_, out);
}

/* ---- zero-copy API ------------------------------------------------------------- */

DISC_API int disc_read_service(struct disc_read *rd, const char *service,
                               struct disc_service_view *sv)
{
    if (!rd || !rd->map_ || !service || !sv)
        return -EINVAL;
    size_t len = strnlen(service, DISC_SERVICE_MAX + 1);
    if (len > DISC_SERVICE_MAX)
        return -ENAMETOOLONG;
    const struct disc_snapshot *s = snap_of(rd);
    if (!s)
        return -EBADMSG;
    uint32_t off;
    const void *rec;
    int rc = find(rd, s->svc_table, service, len, svc_match, &off, &rec);
    if (rc < 0)
        return rc;
    const struct disc_service_rec *r = rec;
    sv->name = (const char *)r + r->name_off;
    sv->n_instances = r->n_instances;
    sv->rec_ = off;
    return 0;
}

DISC_API int disc_read_instance(struct disc_read *rd, const struct disc_service_view *sv,
                                uint32_t i, struct disc_instance *out)
{
    if (!rd || !rd->map_ || !sv || !out)
        return -EINVAL;
    /* The view came from this section; its name was checked then. Re-check
     * only what indexing needs (the caller may pass anything). */
    const struct disc_service_rec *r =
        disc__rec(rmap(rd), sv->rec_, sizeof(struct disc_service_rec), DISC_REC_SERVICE);
    if (!r || r->n_instances > DISC_SVC_INST_MAX || r->size < sizeof(*r) + 4ull * r->n_instances)
        return -EBADMSG;
    if (i >= r->n_instances)
        return -EINVAL;
    return view_at(rd, r->instances[i], out);
}

DISC_API int disc_read_instance_by_id(struct disc_read *rd, const char *id,
                                      struct disc_instance *out)
{
    if (!rd || !rd->map_ || !id || !out)
        return -EINVAL;
    size_t len = strnlen(id, DISC_ID_LEN + 1);
    if (len != DISC_ID_LEN)
        return -ENOENT;
    const struct disc_snapshot *s = snap_of(rd);
    if (!s)
        return -EBADMSG;
    uint32_t off;
    const void *rec;
    int rc = find(rd, s->id_table, id, len, id_match, &off, &rec);
    return rc < 0 ? rc : view_at(rd, off, out);
}

DISC_API int disc_read_next_service(struct disc_read *rd, uint64_t *cursor,
                                    struct disc_service_view *sv)
{
    if (!rd || !rd->map_ || !cursor || !sv)
        return -EINVAL;
    const struct disc_snapshot *s = snap_of(rd);
    const struct disc_htab *t = s ? table(rd, s->svc_table) : NULL;
    if (!t)
        return -EBADMSG;
    uint64_t b = *cursor >> 16, e = *cursor & 0xffff;
    for (; b < t->nbuckets; b++, e = 0) {
        int err;
        const struct disc_bucket *bk = bucket(rd, t, (uint32_t)b, &err);
        if (err)
            return err;
        if (!bk || e >= bk->n)
            continue;
        const struct disc_service_rec *r = service_rec(rd, bk->e[e].off);
        if (!r)
            return -EBADMSG;
        sv->name = (const char *)r + r->name_off;
        sv->n_instances = r->n_instances;
        sv->rec_ = bk->e[e].off;
        *cursor = (b << 16) | (e + 1);
        return 1;
    }
    *cursor = b << 16;
    return 0;
}

/* ---- accessors --------------------------------------------------------------------- */

DISC_API int disc_instance_tag(const struct disc_instance *inst, unsigned i, const char **key,
                               const char **value)
{
    if (!inst || !inst->rec_ || i >= inst->n_tags)
        return -EINVAL;
    const unsigned char *rec = inst->rec_;
    uint32_t size = inst->rec_size_;
    const struct disc_inst_rec *r = inst->rec_;
    uint32_t at = r->tags_off; /* re-read: bound it again */
    if ((uint64_t)at + (uint64_t)(i + 1) * sizeof(struct disc_tag_rec) > size || (at & 3))
        return -EBADMSG;
    struct disc_tag_rec t;
    memcpy(&t, rec + at + i * sizeof(t), sizeof(t));
    const char *k = rec_str(rec, size, t.key), *v = rec_str(rec, size, t.value);
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
    uint32_t size = inst->rec_size_;
    const struct disc_inst_rec *r = inst->rec_;
    uint32_t at = r->endpoints_off;
    if ((uint64_t)at + (uint64_t)(i + 1) * sizeof(struct disc_endpoint_rec) > size || (at & 3))
        return -EBADMSG;
    struct disc_endpoint_rec e;
    memcpy(&e, rec + at + i * sizeof(e), sizeof(e));
    out->name = rec_str(rec, size, e.name);
    out->request_type = rec_str(rec, size, e.request_type);
    out->response_type = rec_str(rec, size, e.response_type);
    out->mean_us = e.mean_us;
    out->p95_us = e.p95_us;
    return out->name && out->request_type && out->response_type ? 0 : -EBADMSG;
}

/* ---- copy-out API ------------------------------------------------------------------ */

static size_t align8(size_t v)
{
    return (v + 7) & ~(size_t)7;
}

/* Copy the instance records at offs[0..n) into buf as views + records. */
static int copy_out(struct disc_read *rd, const uint32_t *offs, uint32_t n, void *buf,
                    size_t buflen, struct disc_instance **list, size_t *needed)
{
    const struct disc_map *m = rmap(rd);
    size_t need = align8((size_t)n * sizeof(struct disc_instance));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t off = offs[i];
        const struct disc_inst_rec *r =
            disc__rec(m, off, sizeof(struct disc_inst_rec), DISC_REC_INSTANCE);
        if (!r || r->size > DISC_REC_MAX)
            return -EBADMSG;
        need += align8(r->size);
    }
    if (needed)
        *needed = need;
    if (need > buflen || !buf)
        return -ENOBUFS;
    struct disc_instance *views = buf;
    unsigned char *at = (unsigned char *)buf + align8((size_t)n * sizeof(struct disc_instance));
    for (uint32_t i = 0; i < n; i++) {
        const struct disc_inst_rec *r =
            disc__rec(m, offs[i], sizeof(struct disc_inst_rec), DISC_REC_INSTANCE);
        if (!r)
            return -EBADMSG;
        uint32_t size = r->size; /* read once; the copy is checked against it */
        if ((uint64_t)offs[i] + size > m->arena_end ||
            (size_t)(at - (unsigned char *)buf) + size > buflen)
            return -EBADMSG;
        memcpy(at, r, size);
        int rc = fill_view(at, size, rd->flags_, &views[i]);
        if (rc < 0)
            return rc;
        at += align8(size);
    }
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
        struct disc_service_view sv;
        rc = disc_read_service(&rd, service, &sv);
        if (rc == 0) {
            const struct disc_service_rec *r = service_rec(&rd, sv.rec_);
            rc = r ? copy_out(&rd, r->instances, r->n_instances, buf, buflen, list, needed)
                   : -EBADMSG;
        }
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
        const struct disc_snapshot *s = snap_of(&rd);
        uint32_t off = 0;
        const void *rec;
        rc = s ? find(&rd, s->id_table, id, len, id_match, &off, &rec) : -EBADMSG;
        if (rc == 0)
            rc = copy_out(&rd, &off, 1, buf, buflen, inst, needed);
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
        const struct disc_snapshot *s = snap_of(&rd);
        uint32_t n = s ? s->n_services : 0;
        /* first pass: size */
        size_t need = align8((size_t)n * sizeof(struct disc_service_info));
        uint64_t cur = 0;
        struct disc_service_view sv;
        uint32_t seen = 0;
        rc = s ? 0 : -EBADMSG;
        while (rc == 0 && seen <= n) {
            int r = disc_read_next_service(&rd, &cur, &sv);
            if (r <= 0) {
                rc = r;
                break;
            }
            need += strlen(sv.name) + 1;
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
                size_t l = strlen(sv.name) + 1;
                if ((size_t)(names - (char *)buf) + l > buflen) {
                    rc = -EBADMSG;
                    break;
                }
                memcpy(names, sv.name, l);
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
