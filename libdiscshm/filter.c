/* SPDX-License-Identifier: MIT */
/*
 * filter.c — query filters: matching one instance, version comparison, the
 * filtered iterator inside a read section and the copy-out filtered lookup.
 *
 * The iterator is the one walk over candidates that pick.c and views.c
 * build on. With an exact service it is one hash lookup; otherwise it
 * walks the service table once (bounded by the table's own limits) and
 * tests service_prefix on the service name before touching instances.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reader_internal.h"

#define RETRIES 64

DISC_API void disc_filter_init(struct disc_filter *f)
{
    if (f)
        memset(f, 0, sizeof(*f));
}

/* -ENAMETOOLONG if s (when set) is longer than max. */
static int check_len(const char *s, size_t max)
{
    return s && strnlen(s, max + 1) > max ? -ENAMETOOLONG : 0;
}

DISC_API int disc_filter_add_tag(struct disc_filter *f, const char *key, const char *value)
{
    if (!f || !key || !*key || f->n_tags > DISC_FILTER_TAGS_MAX)
        return -EINVAL;
    if (check_len(key, DISC_TAG_KEY_MAX) || check_len(value, DISC_TAG_VALUE_MAX))
        return -ENAMETOOLONG;
    if (f->n_tags == DISC_FILTER_TAGS_MAX)
        return -E2BIG;
    f->tags[f->n_tags].key = key;
    f->tags[f->n_tags].value = value;
    f->n_tags++;
    return 0;
}

DISC_API int disc_filter_add_owner(struct disc_filter *f, uint32_t uid)
{
    if (!f || uid == DISC_OWNER_UNKNOWN || f->n_owners > DISC_FILTER_OWNERS_MAX)
        return -EINVAL;
    if (f->n_owners == DISC_FILTER_OWNERS_MAX)
        return -E2BIG;
    f->owners[f->n_owners++] = uid;
    return 0;
}

DISC_API int disc_filter_check(const struct disc_filter *f)
{
    if (!f)
        return 0;
    if (f->n_tags > DISC_FILTER_TAGS_MAX || f->n_owners > DISC_FILTER_OWNERS_MAX ||
        (f->health_mask & ~(uint32_t)DISC_HEALTH_MASK_ALL))
        return -EINVAL;
    for (uint32_t i = 0; i < f->n_tags; i++) {
        if (!f->tags[i].key || !*f->tags[i].key)
            return -EINVAL;
        if (check_len(f->tags[i].key, DISC_TAG_KEY_MAX) ||
            check_len(f->tags[i].value, DISC_TAG_VALUE_MAX))
            return -ENAMETOOLONG;
    }
    if (check_len(f->service, DISC_SERVICE_MAX) || check_len(f->service_prefix, DISC_SERVICE_MAX) ||
        check_len(f->version, DISC_VERSION_MAX) || check_len(f->min_version, DISC_VERSION_MAX) ||
        check_len(f->az, DISC_AZ_MAX) || check_len(f->host, DISC_HOST_MAX) ||
        check_len(f->endpoint, DISC_ENDPOINT_NAME_MAX))
        return -ENAMETOOLONG;
    return 0;
}

/* ---- version comparison ----------------------------------------------------------- */

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Compare digit runs by value: strip leading zeros, then length, then bytes. */
static int cmp_number(const char *a, size_t an, const char *b, size_t bn)
{
    while (an > 0 && *a == '0')
        a++, an--;
    while (bn > 0 && *b == '0')
        b++, bn--;
    if (an != bn)
        return an < bn ? -1 : 1;
    int c = memcmp(a, b, an);
    return (c > 0) - (c < 0);
}

/* One component: numbers by value and before words; words bytewise. An
 * empty component is the number 0. */
static int cmp_component(const char *a, size_t an, const char *b, size_t bn)
{
    int na = all_digits(a, an), nb = all_digits(b, bn);
    if (na && nb)
        return cmp_number(a, an, b, bn);
    if (na != nb)
        return na ? -1 : 1;
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    if (c)
        return (c > 0) - (c < 0);
    return an == bn ? 0 : (an < bn ? -1 : 1);
}

/*
 * Compare two '.'-separated lists. missing_is_zero: a list that runs out
 * continues with zeros (version cores); otherwise the shorter list is lower
 * when all shared components are equal (pre-release identifiers).
 */
static int cmp_dotted(const char *a, size_t an, const char *b, size_t bn, int missing_is_zero)
{
    size_t ia = 0, ib = 0;
    /* Each round consumes at least one byte of a or b: at most an+bn+1 rounds. */
    while (ia <= an || ib <= bn) {
        int has_a = ia <= an, has_b = ib <= bn;
        if (!missing_is_zero && (!has_a || !has_b))
            return has_a ? 1 : -1;
        size_t ea = ia, eb = ib;
        while (has_a && ea < an && a[ea] != '.')
            ea++;
        while (has_b && eb < bn && b[eb] != '.')
            eb++;
        int c = cmp_component(a + (has_a ? ia : 0), has_a ? ea - ia : 0, b + (has_b ? ib : 0),
                              has_b ? eb - ib : 0);
        if (c)
            return c;
        ia = has_a ? ea + 1 : ia;
        ib = has_b ? eb + 1 : ib;
    }
    return 0;
}

DISC_API int disc_version_cmp(const char *a, const char *b)
{
    if (!a)
        a = "";
    if (!b)
        b = "";
    /* Versions are bounded by DISC_VERSION_MAX; longer input is cut there. */
    size_t la = strnlen(a, DISC_VERSION_MAX), lb = strnlen(b, DISC_VERSION_MAX);
    size_t ma = strcspn(a, "+"), mb = strcspn(b, "+"); /* drop build metadata */
    la = ma < la ? ma : la;
    lb = mb < lb ? mb : lb;
    size_t ca = 0, cb = 0;
    while (ca < la && a[ca] != '-')
        ca++;
    while (cb < lb && b[cb] != '-')
        cb++;
    int c = cmp_dotted(a, ca, b, cb, 1);
    if (c)
        return c;
    int pa = ca < la, pb = cb < lb;
    if (!pa || !pb)
        return pa == pb ? 0 : (pa ? -1 : 1);
    return cmp_dotted(a + ca + 1, la - ca - 1, b + cb + 1, lb - cb - 1, 0);
}

/* ---- matching ------------------------------------------------------------------- */

static int service_ok(const struct disc_filter *f, const char *name)
{
    if (f->service && strcmp(name, f->service) != 0)
        return 0;
    if (f->service_prefix && strncmp(name, f->service_prefix, strlen(f->service_prefix)) != 0)
        return 0;
    return 1;
}

static int has_tag(const struct disc_instance *in, const struct disc_tag_match *m)
{
    for (unsigned i = 0; i < in->n_tags && i < DISC_TAGS_MAX; i++) {
        const char *k, *v;
        if (disc_instance_tag(in, i, &k, &v) == 0 && strcmp(k, m->key) == 0 &&
            (!m->value || strcmp(v, m->value) == 0))
            return 1;
    }
    return 0;
}

static int has_endpoint(const struct disc_instance *in, const char *name)
{
    for (unsigned i = 0; i < in->n_endpoints && i < DISC_ENDPOINTS_MAX; i++) {
        struct disc_endpoint e;
        if (disc_instance_endpoint(in, i, &e) == 0 && strcmp(e.name, name) == 0)
            return 1;
    }
    return 0;
}

/* Is uid one of the filter's owners? DISC_OWNER_UNKNOWN never is. */
static int owner_ok(const struct disc_filter *f, uint32_t uid)
{
    for (uint32_t i = 0; i < f->n_owners; i++)
        if (f->owners[i] == uid && uid != DISC_OWNER_UNKNOWN)
            return 1;
    return 0;
}

DISC_API int disc_instance_matches(const struct disc_filter *f, const struct disc_instance *in)
{
    if (!in)
        return -EINVAL;
    if (!f)
        return 1;
    if (f->n_tags > DISC_FILTER_TAGS_MAX || f->n_owners > DISC_FILTER_OWNERS_MAX)
        return -EINVAL;
    /* Cheapest tests first. */
    if (f->health_mask && (in->health >= 32 || !(f->health_mask & (1u << in->health))))
        return 0;
    if (f->n_owners && !owner_ok(f, in->owner_uid))
        return 0;
    if (!service_ok(f, in->service))
        return 0;
    if (f->version && strcmp(in->version, f->version) != 0)
        return 0;
    if (f->az && strcmp(in->az, f->az) != 0)
        return 0;
    if (f->host && strcmp(in->host, f->host) != 0)
        return 0;
    if (f->min_version && disc_version_cmp(in->version, f->min_version) < 0)
        return 0;
    for (uint32_t i = 0; i < f->n_tags; i++)
        if (!f->tags[i].key || !has_tag(in, &f->tags[i]))
            return 0;
    if (f->endpoint && !has_endpoint(in, f->endpoint))
        return 0;
    return 1;
}

/* ---- the iterator ------------------------------------------------------------------ */

DISC_API int disc_read_filter_begin(struct disc_read *rd, const struct disc_filter *f,
                                    struct disc_filter_iter *it)
{
    if (!rd || !rd->map_ || !it)
        return -EINVAL;
    int rc = disc_filter_check(f);
    if (rc < 0)
        return rc;
    memset(it, 0, sizeof(*it));
    it->f_ = f;
    if (f && f->service) {
        if ((rc = disc_read_service(rd, f->service, &it->sv_)) < 0)
            return rc;
        it->single_ = 1;
        it->have_sv_ = 1;
        /* An exact name that fails the prefix: nothing can match. */
        it->done_ = !service_ok(f, it->sv_.name);
    }
    return 0;
}

DISC_API int disc_read_filter_next(struct disc_read *rd, struct disc_filter_iter *it,
                                   struct disc_instance *out)
{
    if (!rd || !rd->map_ || !it || !out)
        return -EINVAL;
    const struct disc_filter *f = it->f_;
    /* Each round consumes one instance or one service; both walks are
     * bounded by the validated table and record limits. */
    while (!it->done_) {
        if (!it->have_sv_) {
            int r = disc_read_next_service(rd, &it->cursor_, &it->sv_);
            if (r <= 0) {
                it->done_ = 1;
                return r;
            }
            if (f && !service_ok(f, it->sv_.name))
                continue;
            it->have_sv_ = 1;
            it->next_ = 0;
        }
        if (it->next_ >= it->sv_.n_instances) {
            it->have_sv_ = 0;
            it->done_ = it->single_;
            continue;
        }
        uint32_t i = it->next_++;
        int rc = disc_read_instance(rd, &it->sv_, i, out);
        if (rc < 0)
            return rc;
        if ((rc = disc__inst_not_repeated(rd, &it->sv_, i)) < 0)
            return rc;
        if ((rc = disc_instance_matches(f, out)) != 0)
            return rc;
    }
    return 0;
}

/* ---- copy-out ------------------------------------------------------------------------ */

static size_t align8(size_t v)
{
    return (v + 7) & ~(size_t)7;
}

static int filtered_copy(struct disc_read *rd, const struct disc_filter *f, void *buf,
                         size_t buflen, struct disc_instance **list, size_t *needed)
{
    struct disc_filter_iter it;
    struct disc_instance in;
    size_t n = 0, records = 0;
    int rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        n++;
        records += align8(in.rec_size_);
        rc = 0;
    }
    if (rc < 0)
        return rc;
    if (n > (size_t)DISC_SVC_INST_MAX * 16)
        return -EBADMSG;
    size_t need = align8(n * sizeof(struct disc_instance)) + records;
    if (needed)
        *needed = need;
    if (need > buflen || (!buf && need))
        return -ENOBUFS;
    struct disc_instance *views = buf;
    unsigned char *at = (unsigned char *)buf + align8(n * sizeof(struct disc_instance));
    size_t k = 0;
    rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        uint32_t size = in.rec_size_;
        if (k >= n || (size_t)(at - (unsigned char *)buf) + size > buflen)
            return -EBADMSG; /* the snapshot changed under us: overtaken */
        memcpy(at, in.rec_, size);
        if ((rc = disc__fill_view(at, size, rd->flags_, &views[k])) < 0)
            return rc;
        at += align8(size);
        k++;
    }
    if (rc < 0)
        return rc;
    if (k != n)
        return -EBADMSG;
    *list = views;
    return (int)n;
}

static int cmp_instance(const void *pa, const void *pb)
{
    const struct disc_instance *a = pa, *b = pb;
    int c = strcmp(a->service, b->service);
    return c ? c : strcmp(a->id, b->id);
}

DISC_API int disc_lookup_filtered(disc_handle *h, const struct disc_filter *f, void *buf,
                                  size_t buflen, struct disc_instance **list, size_t *needed)
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
        rc = filtered_copy(&rd, f, buf, buflen, list, needed);
        if (disc_read_end(&rd) == 0) {
            /* Sorting reads the copies: only once they are known good. */
            if (rc > 1)
                qsort(*list, (size_t)rc, sizeof(**list), cmp_instance);
            return rc;
        }
    }
    return -EAGAIN;
}
