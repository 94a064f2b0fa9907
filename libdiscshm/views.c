/* SPDX-License-Identifier: MIT */
/*
 * views.c — the `services` and `endpoints` queries.
 *
 * Both are copy-out and allocation-free. The caller's buffer is used from
 * both ends: fixed-size, 8-aligned structs grow from the front, strings
 * from the back. Deduplication (of versions, of endpoints) scans what was
 * already written for the current service, so no scratch memory is needed.
 * A first pass computes an upper bound of the space needed, which is what
 * -ENOBUFS reports in *needed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reader_internal.h"

#define RETRIES 64

static size_t align8(size_t v)
{
    return (v + 7) & ~(size_t)7;
}

/* The caller's buffer: [0, front) structs, [back, len) strings. */
struct space {
    unsigned char *buf;
    size_t front, back;
};

static void *take_front(struct space *s, size_t n)
{
    n = align8(n);
    if (n > s->back - s->front)
        return NULL;
    void *p = s->buf + s->front;
    s->front += n;
    return p;
}

/* Strings here come from shared memory: validated no longer than their
 * DISC_*_MAX, but scanned with a bound anyway (a string changed since it was
 * checked is cut, never followed). */
#define STR_BOUND 1024

static size_t blen(const char *s)
{
    return disc__slen(s, STR_BOUND);
}

/* Copy a ++ sep ++ b (sep 0: none) with a NUL into the back. */
static const char *take_str2(struct space *s, const char *a, char sep, const char *b)
{
    size_t la = blen(a), lb = b ? blen(b) : 0, n = la + (sep ? 1 : 0) + lb + 1;
    if (n > s->back - s->front)
        return NULL;
    s->back -= n;
    char *p = (char *)s->buf + s->back;
    memcpy(p, a, la);
    if (sep)
        p[la++] = sep;
    memcpy(p + la, b ? b : "", lb);
    p[la + lb] = 0;
    return p;
}

static const char *take_str(struct space *s, const char *a)
{
    return take_str2(s, a, 0, NULL);
}

/* ---- services ------------------------------------------------------------------------- */

static int services_body(struct disc_read *rd, const struct disc_filter *f, void *buf,
                         size_t buflen, struct disc_service_summary **list, size_t *needed)
{
    struct disc_filter_iter it;
    struct disc_instance in;
    uint32_t prev = 0;
    size_t nsvc = 0, need = 0;
    int rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        rc = 0;
        if (it.sv_.rec_ != prev) { /* instances of one service come together */
            prev = it.sv_.rec_;
            nsvc++;
            need += blen(it.sv_.name) + 1;
        }
        need += sizeof(struct disc_version_count) + blen(in.version) + 1;
    }
    if (rc == -ENOENT) { /* filter->service names no service: nothing matches */
        nsvc = 0;
        rc = 0;
    }
    if (rc < 0)
        return rc;
    if (nsvc > INT32_MAX)
        return -EBADMSG;
    need += align8(nsvc * sizeof(struct disc_service_summary));
    if (needed)
        *needed = need;
    if (nsvc == 0) {
        *list = buf;
        return 0;
    }
    if (!buf)
        return -ENOBUFS;

    struct space sp = {buf, 0, buflen};
    struct disc_service_summary *sum = take_front(&sp, nsvc * sizeof(*sum));
    if (!sum)
        return -ENOBUFS;
    struct disc_service_summary *cur = NULL;
    struct disc_version_count *vers = NULL;
    size_t k = 0;
    prev = 0;
    rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        rc = 0;
        if (it.sv_.rec_ != prev) {
            if (k == nsvc)
                return -EBADMSG; /* more services than in pass one: overtaken */
            prev = it.sv_.rec_;
            cur = &sum[k++];
            memset(cur, 0, sizeof(*cur));
            if (!(cur->name = take_str(&sp, it.sv_.name)))
                return -ENOBUFS;
            vers = (struct disc_version_count *)(sp.buf + sp.front);
            cur->versions = vers;
        }
        cur->n_instances++;
        uint32_t v = 0;
        while (v < cur->n_versions && strcmp(vers[v].version, in.version) != 0)
            v++;
        if (v == cur->n_versions) {
            /* Appends right after this service's earlier versions. */
            struct disc_version_count *e = take_front(&sp, sizeof(*e));
            if (!e || !(e->version = take_str(&sp, in.version)))
                return -ENOBUFS;
            e->n_instances = 0;
            e->reserved_ = 0;
            cur->n_versions++;
        }
        vers[v].n_instances++;
    }
    if (rc < 0)
        return rc;
    if (k != nsvc)
        return -EBADMSG;
    if (needed)
        *needed = sp.front + (buflen - sp.back);
    *list = sum;
    return (int)nsvc;
}

static int cmp_version_count(const void *pa, const void *pb)
{
    const struct disc_version_count *a = pa, *b = pb;
    int c = disc_version_cmp(a->version, b->version);
    return c ? c : strcmp(a->version, b->version);
}

static int cmp_summary(const void *pa, const void *pb)
{
    return strcmp(((const struct disc_service_summary *)pa)->name,
                  ((const struct disc_service_summary *)pb)->name);
}

DISC_API int disc_services(disc_handle *h, const struct disc_filter *f, void *buf, size_t buflen,
                           struct disc_service_summary **list, size_t *needed)
{
    if (!h || !list || (!buf && buflen))
        return -EINVAL;
    int rc = disc_filter_check(f);
    if (rc < 0)
        return rc;
    struct disc_read rd;
    for (int tries = 0; tries < RETRIES; tries++) {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        rc = services_body(&rd, f, buf, buflen, list, needed);
        if (disc_read_end(&rd) == 0) {
            /* Sorting reads the copies: only once they are known good. */
            for (int i = 0; i < rc; i++)
                qsort((void *)(*list)[i].versions, (*list)[i].n_versions,
                      sizeof(struct disc_version_count), cmp_version_count);
            if (rc > 1)
                qsort(*list, (size_t)rc, sizeof(**list), cmp_summary);
            return rc;
        }
    }
    return -EAGAIN;
}

/* ---- endpoints ------------------------------------------------------------------------- */

static int endpoints_body(struct disc_read *rd, const struct disc_filter *f, void *buf,
                          size_t buflen, struct disc_endpoint_info **list, size_t *needed)
{
    struct disc_filter_iter it;
    struct disc_instance in;
    struct disc_endpoint e;
    uint32_t prev = 0;
    size_t need = 0, svc_len = 0;
    int rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        rc = 0;
        if (it.sv_.rec_ != prev) {
            prev = it.sv_.rec_;
            svc_len = blen(it.sv_.name);
            need += svc_len + 1;
        }
        for (unsigned i = 0; i < in.n_endpoints && i < DISC_ENDPOINTS_MAX; i++) {
            if ((rc = disc_instance_endpoint(&in, i, &e)) < 0)
                return rc;
            need += sizeof(struct disc_endpoint_info) + svc_len + blen(e.name) + 2 +
                    blen(in.version) + 1 + blen(e.request_type) + 1 + blen(e.response_type) + 1;
        }
    }
    if (rc == -ENOENT)
        rc = 0; /* filter->service names no service: nothing matches */
    if (rc < 0)
        return rc;
    if (needed)
        *needed = need;

    struct space sp = {buf, 0, buflen};
    struct disc_endpoint_info *info = buf;
    size_t n = 0, first = 0; /* entries; first entry of the current service */
    const char *svc = NULL;
    prev = 0;
    rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        rc = 0;
        if (it.sv_.rec_ != prev) {
            prev = it.sv_.rec_;
            svc = NULL; /* copied with the service's first endpoint */
            svc_len = blen(it.sv_.name);
            first = n;
        }
        for (unsigned i = 0; i < in.n_endpoints && i < DISC_ENDPOINTS_MAX; i++) {
            if ((rc = disc_instance_endpoint(&in, i, &e)) < 0)
                return rc;
            size_t j = first;
            while (j < n && (strcmp(info[j].name + svc_len + 1, e.name) != 0 ||
                             strcmp(info[j].version, in.version) != 0))
                j++;
            if (j == n) {
                if (!svc && !(svc = take_str(&sp, it.sv_.name)))
                    return -ENOBUFS;
                struct disc_endpoint_info *x = take_front(&sp, sizeof(*x));
                if (!x)
                    return -ENOBUFS;
                memset(x, 0, sizeof(*x));
                x->service = svc;
                if (!(x->name = take_str2(&sp, svc, '.', e.name)) ||
                    !(x->version = take_str(&sp, in.version)) ||
                    !(x->request_type = take_str(&sp, e.request_type)) ||
                    !(x->response_type = take_str(&sp, e.response_type)))
                    return -ENOBUFS;
                n++;
            }
            struct disc_endpoint_info *x = &info[j];
            x->n_instances++;
            if (e.mean_us) {
                x->n_reporting++;
                x->reserved_ += e.mean_us; /* sum, turned into the mean below */
            }
            if (e.p95_us > x->p95_us)
                x->p95_us = e.p95_us;
        }
    }
    if (rc < 0)
        return rc;
    if (n > INT32_MAX)
        return -EBADMSG;
    for (size_t j = 0; j < n; j++) {
        if (info[j].n_reporting)
            info[j].mean_us =
                (uint32_t)((info[j].reserved_ + info[j].n_reporting / 2) / info[j].n_reporting);
        info[j].reserved_ = 0;
    }
    if (needed)
        *needed = sp.front + (buflen - sp.back);
    *list = info;
    return (int)n;
}

static int cmp_endpoint(const void *pa, const void *pb)
{
    const struct disc_endpoint_info *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    if (!c)
        c = disc_version_cmp(a->version, b->version);
    return c ? c : strcmp(a->version, b->version);
}

DISC_API int disc_endpoints(disc_handle *h, const struct disc_filter *f, void *buf, size_t buflen,
                            struct disc_endpoint_info **list, size_t *needed)
{
    if (!h || !list || (!buf && buflen))
        return -EINVAL;
    int rc = disc_filter_check(f);
    if (rc < 0)
        return rc;
    struct disc_read rd;
    for (int tries = 0; tries < RETRIES; tries++) {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        rc = endpoints_body(&rd, f, buf, buflen, list, needed);
        if (disc_read_end(&rd) == 0) {
            if (rc > 1)
                qsort(*list, (size_t)rc, sizeof(**list), cmp_endpoint);
            return rc;
        }
    }
    return -EAGAIN;
}
