/* SPDX-License-Identifier: MIT */
/* cache_load.c — seed the registry from the file cache (see cache_load.h). */
#include "cache_load.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "discshm.h"
#include "instance.h"
#include "log.h"

/* The document instance_from_document expects, from a reader's view. */
static json_t *doc_from_view(const struct disc_instance *v)
{
    json_t *tags = json_object(), *eps = json_array();
    for (unsigned i = 0; i < v->n_tags; i++) {
        const char *k, *val;
        if (disc_instance_tag(v, i, &k, &val) == 0)
            json_object_set_new(tags, k, json_string(val));
    }
    for (unsigned i = 0; i < v->n_endpoints; i++) {
        struct disc_endpoint e;
        if (disc_instance_endpoint(v, i, &e) == 0)
            json_array_append_new(eps,
                                  json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", e.name, "request",
                                            e.request_type, "response", e.response_type, "mean_us",
                                            (json_int_t)e.mean_us, "p95_us", (json_int_t)e.p95_us));
    }
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "id", v->id, "service",
        v->service, "version", v->version, "host", v->host, "az", v->az, "address", v->address,
        "network", v->addr_kind == DISC_ADDR_UNIX ? "unix" : "tcp", "weight", (json_int_t)v->weight,
        "registered_at_ms", (json_int_t)v->registered_at_ms, "tags", tags, "endpoints", eps);
    if (doc && v->owner_uid != DISC_OWNER_UNKNOWN)
        json_object_set_new(doc, "owner_uid", json_integer(v->owner_uid));
    return doc;
}

int cache_load(struct registry *reg, const char *path, const char *own_host)
{
    disc_handle *h;
    int rc = disc_open_file(path, DISC_OPEN_VERIFY, &h);
    if (rc < 0)
        return rc;
    int loaded = 0, skipped = 0;
    struct disc_read rd;
    if ((rc = disc_read_begin(h, &rd)) == 0) {
        uint64_t cur = 0;
        struct disc_service_view sv;
        /* A file never changes under us: one section reads it all. */
        while ((rc = disc_read_next_service(&rd, &cur, &sv)) == 1) {
            for (uint32_t i = 0; i < sv.n_instances; i++) {
                struct disc_instance v;
                if (disc_read_instance(&rd, &sv, i, &v) < 0 || strcmp(v.host, own_host) == 0) {
                    skipped++;
                    continue;
                }
                json_t *doc = doc_from_view(&v);
                struct instance *inst = NULL;
                struct instance_error err = {0};
                if (!doc || instance_from_document(doc, &inst, &err) < 0) {
                    skipped++;
                } else {
                    inst->origin = DISC_ORIGIN_CACHE;
                    if (registry_put_remote(reg, inst) == 0)
                        loaded++;
                    instance_unref(inst);
                }
                json_decref(doc);
            }
        }
        disc_read_end(&rd);
    }
    disc_close(h);
    if (rc < 0)
        return rc;
    if (skipped)
        log_info("file cache %s: %d instances of this host or unreadable skipped", path, skipped);
    return loaded;
}

struct purge {
    char (*ids)[DISC_ID_LEN + 1];
    size_t n, cap;
};

static int collect_cache(struct instance *inst, void *arg)
{
    struct purge *p = arg;
    if (inst->origin != DISC_ORIGIN_CACHE)
        return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        void *n = realloc(p->ids, cap * sizeof(*p->ids));
        if (!n)
            return 1;
        p->ids = n;
        p->cap = cap;
    }
    memcpy(p->ids[p->n++], inst->id, DISC_ID_LEN + 1);
    return 0;
}

int cache_purge(struct registry *reg)
{
    struct purge p = {0};
    registry_foreach(reg, REGISTRY_REMOTE, collect_cache, &p);
    int n = 0;
    for (size_t i = 0; i < p.n; i++)
        n += registry_remove_remote(reg, p.ids[i]) == 0;
    free(p.ids);
    return n;
}
