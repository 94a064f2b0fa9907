/* SPDX-License-Identifier: MIT */
/* export.c — see export.h. */
#include "export.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "curator.h"

#define EXPORT_RETRY_MS 500
#define EXPORT_DATA_MAX 4096 /* an exported document is a few hundred bytes */

struct zk_export {
    char base[512];
    char host_id[256];

    pthread_mutex_t mu;
    /* id -> {"s": service, "d": document text}; entries are never changed,
     * an update replaces the entry (so pointer equality means "same"). */
    json_t *desired;
    json_t *dirty; /* id -> true: ids to reconcile in the next round */
    _Atomic(struct zk_sync *) zs;

    /* worker thread only */
    json_t *actual; /* id -> the entry whose node is in place (as far as we know) */

    atomic_bool work;         /* dirty is not empty */
    atomic_bool full;         /* verify every node at the next round (new session) */
    _Atomic int64_t retry_at; /* CLOCK_MONOTONIC ms of a retry after an error; 0 none */

    _Atomic uint64_t creates, deletes, rewrites, repairs, errors, n_desired, n_exported;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == '/' || c == 0x7f)
            return false;
    }
    return true;
}

/* ---- the extension (worker thread) ------------------------------------------ */

/* base/service/id into buf. */
static void node_path(const struct zk_export *ex, const char *service, const char *id, char *buf,
                      size_t len)
{
    snprintf(buf, len, "%s/%s/%s", strcmp(ex->base, "/") == 0 ? "" : ex->base, service, id);
}

static void redirty(struct zk_export *ex, const char *id)
{
    pthread_mutex_lock(&ex->mu);
    json_object_set_new(ex->dirty, id, json_true());
    pthread_mutex_unlock(&ex->mu);
}

static void failed(struct zk_export *ex, struct zk_sync *zs, const char *what, const char *path,
                   int rc)
{
    atomic_fetch_add(&ex->errors, 1);
    atomic_store(&ex->retry_at, mono_ms() + EXPORT_RETRY_MS);
    zk_sync_round_error(zs, what, path, rc);
}

/* Create every missing component of the base (persistent) and the service
 * node (a container, as Curator makes it), with open ACLs: Java clients
 * create their own service nodes and instances there. */
static int make_parents(struct zk_export *ex, zhandle_t *zh, const char *service)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s", ex->base);
    for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
        if (s)
            *s = '\0';
        if (strcmp(p, "/") != 0) {
            int rc = zoo_create(zh, p, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
            if (rc != ZOK && rc != ZNODEEXISTS)
                return rc;
        }
        if (!s)
            break;
        *s = '/';
    }
    char sp[1024];
    snprintf(sp, sizeof(sp), "%s/%s", strcmp(ex->base, "/") == 0 ? "" : ex->base, service);
    int rc = zoo_create(zh, sp, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, NULL, 0);
    return rc == ZNODEEXISTS ? ZOK : rc;
}

/*
 * Make path an ephemeral node of this session holding data, and arm an
 * exists watch on it. verify_only: first just check it is there and ours
 * (after a reconnect). Returns a ZooKeeper code; *what names the failed call.
 */
static int ensure_node(struct zk_export *ex, zhandle_t *zh, const struct ACL_vector *acl,
                       const char *service, const char *path, const char *data, bool verify_only,
                       const char **what)
{
    const clientid_t *cid = zoo_client_id(zh);
    int64_t me = cid ? cid->client_id : 0;
    struct Stat st;
    if (verify_only) {
        *what = "export exists";
        int rc = zoo_exists(zh, path, 1, &st);
        if (rc == ZOK && st.ephemeralOwner == me)
            return ZOK;
        if (rc != ZOK && rc != ZNONODE)
            return rc;
    }
    int len = (int)strlen(data);
    for (int attempt = 0; attempt < 4; attempt++) {
        *what = "export create";
        int rc = zoo_create(zh, path, data, len, acl, ZOO_EPHEMERAL, NULL, 0);
        if (rc == ZOK) {
            atomic_fetch_add(&ex->creates, 1);
        } else if (rc == ZNONODE) {
            *what = "export create parents";
            rc = make_parents(ex, zh, service);
            if (rc != ZOK)
                return rc;
            continue;
        } else if (rc == ZNODEEXISTS) {
            char buf[EXPORT_DATA_MAX];
            int blen = sizeof(buf);
            *what = "export get";
            rc = zoo_get(zh, path, 0, buf, &blen, &st);
            if (rc == ZNONODE)
                continue;
            if (rc != ZOK)
                return rc;
            if (st.ephemeralOwner != me) {
                /* another session's (an older discd of this host, or a
                 * foreign client): it would vanish with that session */
                *what = "export delete stale";
                rc = zoo_delete(zh, path, st.version);
                if (rc != ZOK && rc != ZNONODE && rc != ZBADVERSION)
                    return rc;
                atomic_fetch_add(&ex->repairs, 1);
                continue;
            }
            if (blen != len || memcmp(buf, data, (size_t)len) != 0) {
                *what = "export set";
                rc = zoo_set(zh, path, data, len, st.version);
                if (rc == ZBADVERSION || rc == ZNONODE)
                    continue;
                if (rc != ZOK)
                    return rc;
                atomic_fetch_add(&ex->rewrites, 1);
            }
        } else {
            return rc;
        }
        *what = "export watch";
        rc = zoo_exists(zh, path, 1, &st);
        if (rc == ZNONODE)
            continue; /* deleted right after: again */
        return rc;
    }
    return ZNODEEXISTS; /* kept changing under us: the next round tries again */
}

static void ext_round(void *arg, struct zk_sync *zs, const struct zk_sync_round *r)
{
    struct zk_export *ex = arg;
    zhandle_t *zh = (zhandle_t *)r->zh;
    bool full = atomic_exchange(&ex->full, false) || r->full;
    int64_t retry = atomic_load(&ex->retry_at);
    if (retry && mono_ms() < retry && !full)
        return;
    atomic_store(&ex->retry_at, 0);

    pthread_mutex_lock(&ex->mu);
    json_t *todo = ex->dirty;
    ex->dirty = json_object();
    atomic_store(&ex->work, false);
    const char *id;
    json_t *v;
    if (full) {
        json_object_foreach(ex->desired, id, v)
        {
            json_object_set_new(todo, id, json_true());
        }
    }
    json_t *wants = json_object();
    json_object_foreach(todo, id, v)
    {
        json_t *w = json_object_get(ex->desired, id);
        /* A private copy: the entries in desired are shared with the
         * threads calling zk_export_put, and jansson's reference counts
         * are read without atomics (TSan). */
        if (w)
            json_object_set_new(wants, id, json_deep_copy(w));
    }
    pthread_mutex_unlock(&ex->mu);
    if (full) {
        json_object_foreach(ex->actual, id, v)
        {
            json_object_set_new(todo, id, json_true());
        }
    }

    char path[1024];
    json_object_foreach(todo, id, v)
    {
        json_t *want = json_object_get(wants, id);
        json_t *have = json_object_get(ex->actual, id);
        const char *hs = json_string_value(json_object_get(have, "s"));
        const char *ws = json_string_value(json_object_get(want, "s"));
        if (have && (!want || strcmp(hs, ws) != 0)) {
            node_path(ex, hs, id, path, sizeof(path));
            int rc = zoo_delete(zh, path, -1);
            if (rc != ZOK && rc != ZNONODE) {
                failed(ex, zs, "export delete", path, rc);
                redirty(ex, id);
                continue;
            }
            atomic_fetch_add(&ex->deletes, 1);
            json_object_del(ex->actual, id);
            have = NULL;
        }
        if (!want)
            continue;
        node_path(ex, ws, id, path, sizeof(path));
        const char *what = "export";
        int rc =
            ensure_node(ex, zh, r->acl, ws, path, json_string_value(json_object_get(want, "d")),
                        have && json_equal(have, want), &what);
        if (rc != ZOK) {
            json_object_del(ex->actual, id);
            failed(ex, zs, what, path, rc);
            redirty(ex, id);
            continue;
        }
        json_object_set(ex->actual, id, want);
    }
    json_decref(todo);
    json_decref(wants);
    atomic_store(&ex->n_exported, json_object_size(ex->actual));
}

static bool ext_on_watch(void *arg, int type, const char *path)
{
    struct zk_export *ex = arg;
    size_t bl = strcmp(ex->base, "/") == 0 ? 0 : strlen(ex->base);
    if (!path || strncmp(path, ex->base, bl) != 0 || path[bl] != '/')
        return false;
    const char *svc = path + bl + 1, *slash = strchr(svc, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    /* BASE/<service>/<id>: an instance node. Ours or not (a watch we armed
     * may fire after we withdrew the node; the import may share the base),
     * the native tree has nothing to do with it. */
    const char *id = slash + 1;
    json_t *have = json_object_get(ex->actual, id);
    const char *hs = json_string_value(json_object_get(have, "s"));
    if (!hs || strlen(hs) != (size_t)(slash - svc) || strncmp(hs, svc, (size_t)(slash - svc)) != 0)
        return true;
    if (type == ZOO_DELETED_EVENT || type == ZOO_CHANGED_EVENT) {
        /* another client deleted or rewrote our node: make it right again */
        atomic_fetch_add(&ex->repairs, 1);
        json_object_del(ex->actual, id);
        redirty(ex, id);
        atomic_store(&ex->work, true);
    }
    return true;
}

static void ext_on_session(void *arg, enum zk_sync_state state, bool new_session)
{
    struct zk_export *ex = arg;
    (void)state;
    if (new_session) {
        json_object_clear(ex->actual); /* the old session's nodes are gone */
        atomic_store(&ex->n_exported, 0);
        atomic_store(&ex->full, true);
        atomic_store(&ex->work, true);
    }
}

static bool ext_pending(void *arg)
{
    struct zk_export *ex = arg;
    return atomic_load(&ex->work) && !atomic_load(&ex->retry_at);
}

static int64_t ext_deadline(void *arg)
{
    struct zk_export *ex = arg;
    return atomic_load(&ex->retry_at);
}

/* ---- public ----------------------------------------------------------------- */

int zk_export_new(const char *base, const char *host_id, struct zk_export **out,
                  struct zk_sync_ext *ext)
{
    if (!base || base[0] != '/' || strlen(base) >= sizeof(((struct zk_export *)0)->base) - 300 ||
        (strlen(base) > 1 && base[strlen(base) - 1] == '/') || !host_id ||
        strlen(host_id) >= sizeof(((struct zk_export *)0)->host_id))
        return -EINVAL;
    struct zk_export *ex = calloc(1, sizeof(*ex));
    if (!ex)
        return -ENOMEM;
    snprintf(ex->base, sizeof(ex->base), "%s", base);
    snprintf(ex->host_id, sizeof(ex->host_id), "%s", host_id);
    ex->desired = json_object();
    ex->dirty = json_object();
    ex->actual = json_object();
    if (!ex->desired || !ex->dirty || !ex->actual || pthread_mutex_init(&ex->mu, NULL) != 0) {
        json_decref(ex->desired);
        json_decref(ex->dirty);
        json_decref(ex->actual);
        free(ex);
        return -ENOMEM;
    }
    *ext = (struct zk_sync_ext){.arg = ex,
                                .on_watch = ext_on_watch,
                                .on_session = ext_on_session,
                                .round = ext_round,
                                .pending = ext_pending,
                                .deadline = ext_deadline};
    *out = ex;
    return 0;
}

void zk_export_attach(struct zk_export *ex, struct zk_sync *zs)
{
    atomic_store(&ex->zs, zs);
    if (zs)
        zk_sync_wake(zs);
}

static void wake(struct zk_export *ex)
{
    atomic_store(&ex->work, true);
    struct zk_sync *zs = atomic_load(&ex->zs);
    if (zs)
        zk_sync_wake(zs);
}

int zk_export_put(struct zk_export *ex, const char *id, const char *service, const char *host,
                  unsigned port, int64_t registered_at_ms)
{
    if (!valid_name(id, 255) || !valid_name(service, 255) || !host || !*host || port < 1 ||
        port > 65535)
        return -EINVAL;
    struct curator_export e = {.service = service,
                               .id = id,
                               .host = host,
                               .port = port,
                               .registered_at_ms = registered_at_ms,
                               .host_id = ex->host_id};
    json_t *doc = curator_export_doc(&e);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    json_t *entry = text ? json_pack("{s:s, s:s}", "s", service, "d", text) : NULL;
    free(text);
    if (!entry)
        return -ENOMEM;
    pthread_mutex_lock(&ex->mu);
    json_t *old = json_object_get(ex->desired, id);
    bool same = old && json_equal(old, entry);
    int rc = 0;
    if (!same) {
        if (json_object_set(ex->desired, id, entry) ||
            json_object_set_new(ex->dirty, id, json_true()))
            rc = -ENOMEM;
    }
    atomic_store(&ex->n_desired, json_object_size(ex->desired));
    json_decref(entry); /* under the lock: desired may hold it now */
    pthread_mutex_unlock(&ex->mu);
    if (rc == 0 && !same)
        wake(ex);
    return rc;
}

void zk_export_remove(struct zk_export *ex, const char *id)
{
    pthread_mutex_lock(&ex->mu);
    bool had = json_object_get(ex->desired, id) != NULL;
    if (had) {
        json_object_del(ex->desired, id);
        json_object_set_new(ex->dirty, id, json_true());
    }
    atomic_store(&ex->n_desired, json_object_size(ex->desired));
    pthread_mutex_unlock(&ex->mu);
    if (had)
        wake(ex);
}

void zk_export_get(struct zk_export *ex, struct zk_export_counters *out)
{
    out->creates = atomic_load(&ex->creates);
    out->deletes = atomic_load(&ex->deletes);
    out->rewrites = atomic_load(&ex->rewrites);
    out->repairs = atomic_load(&ex->repairs);
    out->errors = atomic_load(&ex->errors);
    out->desired = atomic_load(&ex->n_desired);
    out->exported = atomic_load(&ex->n_exported);
}

json_t *zk_export_status_json(struct zk_export *ex)
{
    struct zk_export_counters c;
    zk_export_get(ex, &c);
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "format", "curator", "base",
                     ex->base, "desired", (json_int_t)c.desired, "exported", (json_int_t)c.exported,
                     "creates", (json_int_t)c.creates, "deletes", (json_int_t)c.deletes, "rewrites",
                     (json_int_t)c.rewrites, "repairs", (json_int_t)c.repairs, "errors",
                     (json_int_t)c.errors);
}

void zk_export_free(struct zk_export *ex)
{
    if (!ex)
        return;
    json_decref(ex->desired);
    json_decref(ex->dirty);
    json_decref(ex->actual);
    pthread_mutex_destroy(&ex->mu);
    free(ex);
}
