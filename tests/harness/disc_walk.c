/* SPDX-License-Identifier: MIT */
/* disc_walk.c — every read API with its invariants (see disc_walk.h). */
#include "disc_walk.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct walk {
    disc_handle *h;
    void *buf;
    size_t len;
    struct disc_walk_stats *st;
    int bad;
    int changing; /* the segment may change under the walk */
};

static void violated(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violated(struct walk *w, const char *fmt, ...)
{
    if (w->bad)
        return;
    w->bad = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->st->why, sizeof(w->st->why), fmt, ap);
    va_end(ap);
}

/* A call's result: a count, or one of the errors a read may return. */
static int result(struct walk *w, const char *call, int rc)
{
    w->st->calls++;
    if (rc >= 0)
        w->st->ok++;
    else if (rc != -ENOENT && rc != -EBADMSG && rc != -ENOBUFS && rc != -EAGAIN && rc != -E2BIG)
        violated(w, "%s returned %d (%s)", call, rc, strerror(-rc));
    return rc;
}

static void str_ok(struct walk *w, const char *what, const char *s, size_t max)
{
    if (!s)
        violated(w, "%s is NULL", what);
    else if (strnlen(s, max + 1) > max)
        violated(w, "%s is longer than %zu bytes", what, max);
}

/* A zero-copy view of a segment that may be changing: its strings were
 * validated, but may have changed since; reading them must still be safe. */
static void touch_view(struct walk *w, const struct disc_instance *v)
{
    w->st->instances++;
    volatile size_t n = strlen(v->id) + strlen(v->service) + strlen(v->version) + strlen(v->host) +
                        strlen(v->az) + strlen(v->address);
    (void)n;
    for (unsigned i = 0; i < v->n_tags && i < DISC_TAGS_MAX; i++) {
        const char *k, *val;
        if (disc_instance_tag(v, i, &k, &val) == 0)
            n = strlen(k) + strlen(val);
    }
    for (unsigned i = 0; i < v->n_endpoints && i < DISC_ENDPOINTS_MAX; i++) {
        struct disc_endpoint e;
        if (disc_instance_endpoint(v, i, &e) == 0)
            n = strlen(e.name) + strlen(e.request_type) + strlen(e.response_type);
    }
}

/* Every string of a view, its tags and endpoints. */
static void check_view(struct walk *w, const struct disc_instance *v)
{
    w->st->instances++;
    str_ok(w, "id", v->id, DISC_ID_LEN);
    if (v->id && strnlen(v->id, DISC_ID_LEN + 1) != DISC_ID_LEN)
        violated(w, "an id is not %d characters", DISC_ID_LEN);
    str_ok(w, "service", v->service, DISC_SERVICE_MAX);
    str_ok(w, "version", v->version, DISC_VERSION_MAX);
    str_ok(w, "host", v->host, DISC_HOST_MAX);
    str_ok(w, "az", v->az, DISC_AZ_MAX);
    str_ok(w, "address", v->address, DISC_ADDRESS_MAX);
    if (v->n_tags > DISC_TAGS_MAX || v->n_endpoints > DISC_ENDPOINTS_MAX)
        violated(w, "%u tags, %u endpoints", v->n_tags, v->n_endpoints);
    for (unsigned i = 0; i < v->n_tags && i < DISC_TAGS_MAX; i++) {
        const char *k, *val;
        int rc = disc_instance_tag(v, i, &k, &val);
        if (rc == 0) {
            str_ok(w, "tag key", k, DISC_TAG_KEY_MAX);
            str_ok(w, "tag value", val, DISC_TAG_VALUE_MAX);
        } else if (rc != -EBADMSG) {
            violated(w, "disc_instance_tag returned %d", rc);
        }
    }
    for (unsigned i = 0; i < v->n_endpoints && i < DISC_ENDPOINTS_MAX; i++) {
        struct disc_endpoint e;
        int rc = disc_instance_endpoint(v, i, &e);
        if (rc == 0) {
            str_ok(w, "endpoint name", e.name, DISC_ENDPOINT_NAME_MAX);
            str_ok(w, "request type", e.request_type, DISC_TYPE_NAME_MAX);
            str_ok(w, "response type", e.response_type, DISC_TYPE_NAME_MAX);
        } else if (rc != -EBADMSG) {
            violated(w, "disc_instance_endpoint returned %d", rc);
        }
    }
    (void)disc_instance_tag_get(v, "zone");
}

static void zero_copy_view(struct walk *w, const struct disc_instance *v)
{
    if (w->changing)
        touch_view(w, v);
    else
        check_view(w, v);
}

static void zero_copy_name(struct walk *w, const char *name)
{
    if (w->changing)
        (void)strlen(name);
    else
        str_ok(w, "service view name", name, DISC_SERVICE_MAX);
}

static void with_filter(struct walk *w, const struct disc_filter *f)
{
    struct disc_instance *list;
    int n = result(w, "disc_lookup_filtered",
                   disc_lookup_filtered(w->h, f, w->buf, w->len, &list, NULL));
    for (int i = 0; i < n; i++)
        check_view(w, &list[i]);
    struct disc_service_summary *sum;
    n = result(w, "disc_services", disc_services(w->h, f, w->buf, w->len, &sum, NULL));
    for (int i = 0; i < n; i++) {
        str_ok(w, "summary name", sum[i].name, DISC_SERVICE_MAX);
        for (uint32_t k = 0; k < sum[i].n_versions; k++)
            str_ok(w, "summary version", sum[i].versions[k].version, DISC_VERSION_MAX);
    }
    struct disc_endpoint_info *ep;
    n = result(w, "disc_endpoints", disc_endpoints(w->h, f, w->buf, w->len, &ep, NULL));
    for (int i = 0; i < n; i++) {
        str_ok(w, "endpoint info name", ep[i].name, DISC_SERVICE_MAX + 1 + DISC_ENDPOINT_NAME_MAX);
        str_ok(w, "endpoint info version", ep[i].version, DISC_VERSION_MAX);
    }
    static const enum disc_pick_policy pol[] = {DISC_PICK_RANDOM, DISC_PICK_ROUND_ROBIN,
                                                DISC_PICK_HASH};
    for (int i = 0; i < 3; i++) {
        disc_picker *p;
        if (disc_picker_create(pol[i], 7, 0, &p) < 0)
            continue;
        struct disc_instance *one;
        if (result(w, "disc_pick", disc_pick(w->h, f, p, "key", 3, w->buf, w->len, &one, NULL)) ==
            0)
            check_view(w, one);
        disc_picker_destroy(p);
    }
}

int disc_walk_all(disc_handle *h, unsigned variant, int changing, void *buf, size_t len,
                  struct disc_walk_stats *st)
{
    struct walk w = {h, buf, len, st, 0, changing};
    struct disc_status s;
    result(&w, "disc_status", disc_status(h, &s));
    char names[8][DISC_SERVICE_MAX + 1];
    char ids[8][DISC_ID_LEN + 1];
    int nn = 0, ni = 0;
    struct disc_read rd;
    if (result(&w, "disc_read_begin", disc_read_begin(h, &rd)) == 0) {
        (void)disc_read_generation(&rd);
        uint64_t cur = 0;
        struct disc_service_view sv;
        while (result(&w, "disc_read_next_service", disc_read_next_service(&rd, &cur, &sv)) == 1) {
            zero_copy_name(&w, sv.name);
            if (nn < 8)
                snprintf(names[nn++], sizeof(names[0]), "%s", sv.name);
            for (uint32_t i = 0; i < sv.n_instances; i++) {
                struct disc_instance v;
                if (result(&w, "disc_read_instance", disc_read_instance(&rd, &sv, i, &v)) < 0)
                    break;
                zero_copy_view(&w, &v);
                if (ni < 8)
                    snprintf(ids[ni++], sizeof(ids[0]), "%s", v.id);
            }
        }
        for (int i = 0; i < nn; i++)
            if (result(&w, "disc_read_service", disc_read_service(&rd, names[i], &sv)) == 0)
                zero_copy_name(&w, sv.name);
        for (int i = 0; i < ni; i++) {
            struct disc_instance v;
            if (result(&w, "disc_read_instance_by_id", disc_read_instance_by_id(&rd, ids[i], &v)) ==
                0)
                zero_copy_view(&w, &v);
        }
        disc_read_end(&rd);
    }
    struct disc_service_info *info;
    int n = result(&w, "disc_list_services", disc_list_services(h, buf, len, &info, NULL));
    for (int i = 0; i < n; i++)
        str_ok(&w, "listed name", info[i].name, DISC_SERVICE_MAX);
    for (int i = 0; i < nn; i++) {
        struct disc_instance *list;
        n = result(&w, "disc_lookup", disc_lookup(h, names[i], buf, len, &list, NULL));
        for (int k = 0; k < n; k++)
            check_view(&w, &list[k]);
        result(&w, "disc_count", disc_count(h, names[i]));
    }
    for (int i = 0; i < ni; i++) {
        struct disc_instance *one;
        if (result(&w, "disc_lookup_id", disc_lookup_id(h, ids[i], buf, len, &one, NULL)) == 0)
            check_view(&w, one);
    }
    struct disc_filter f;
    disc_filter_init(&f);
    switch (variant % 3) {
    case 0:
        with_filter(&w, NULL);
        break;
    case 1:
        f.service_prefix = "s";
        f.min_version = "1.0";
        f.health_mask = DISC_HEALTH_NOT_CRITICAL;
        f.endpoint = "get";
        disc_filter_add_tag(&f, "zone", NULL);
        with_filter(&w, &f);
        break;
    default:
        f.service = nn > 0 ? names[0] : "svc-1";
        f.az = "az-1";
        f.version = "1.1";
        with_filter(&w, &f);
    }
    return w.bad ? -1 : 0;
}
