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
#include "zk_batch.h"

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
    _Atomic uint64_t waves;           /* waves of pipelined calls (one wait each) */
    _Atomic uint64_t last_full_ms;    /* the last full reconcile (new session): its time */
    _Atomic uint64_t last_full_nodes; /* ... and the nodes it put in place */
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

/* ---- pipelined reconcile ---------------------------------------------------- */

/*
 * Each id to reconcile is a task that walks these steps, one async call
 * per step; a round runs the tasks in windows of EXPORT_WINDOW, each wave
 * issuing the next call of every unfinished task of the window and waiting
 * once for all of them (zk_batch.h). The steps are those of the synchronous
 * version they replace: make the node an ephemeral of this session holding
 * the document, with an exists watch armed on it.
 */
enum xstep {
    X_DELETE_OLD,   /* withdrawn, or moved to another service: delete the old node */
    X_VERIFY,       /* believed in place (after a reconnect): exists + watch, ours? */
    X_CREATE,       /* create the ephemeral node */
    X_GET,          /* it exists: whose, with what data? */
    X_DELETE_STALE, /* another session's node (an older discd, a foreign client) */
    X_SET,          /* ours with other data: rewrite */
    X_WATCH,        /* in place: arm the exists watch */
    X_DONE,
};

#define EXPORT_WINDOW   256 /* outstanding async calls */
#define EXPORT_ATTEMPTS 4   /* returns to X_CREATE before giving up until the next round */

struct xtask {
    const char *id;   /* key of the round's todo object */
    json_t *want;     /* the round's private copy, or NULL (withdrawn) */
    const char *ws;   /* want's service */
    const char *data; /* want's document */
    char *path;       /* BASE/<ws>/<id> */
    char *old_path;   /* X_DELETE_OLD: the node to delete */
    enum xstep step;
    int attempts;
    bool ok;          /* X_DONE: the node is in place (or withdrawn) */
    bool keep;        /* failed deleting the old node: actual still names it */
    const char *what; /* the failed call, for the log */
    /* the last call's result (written by the completion thread) */
    struct zk_batch *b;
    int rc;
    int64_t owner;
    int32_t version;
    int32_t want_version; /* X_WATCH: the version the node has if nobody touched it */
    char *val;
    size_t vlen;
};

static void x_stat_done(int rc, const struct Stat *stat, const void *data)
{
    struct xtask *t = (struct xtask *)data;
    t->rc = rc;
    if (rc == ZOK && stat) {
        t->owner = stat->ephemeralOwner;
        t->version = stat->version;
    }
    zk_batch_done(t->b);
}

static void x_get_done(int rc, const char *value, int value_len, const struct Stat *stat,
                       const void *data)
{
    struct xtask *t = (struct xtask *)data;
    t->rc = rc;
    if (rc == ZOK && stat) {
        t->owner = stat->ephemeralOwner;
        t->version = stat->version;
        /* too large or torn: left NULL, so it differs and is rewritten */
        if (zk_batch_copy_value(value, value_len, stat, EXPORT_DATA_MAX, &t->val, &t->vlen) != ZOK)
            t->rc = ZSYSTEMERROR;
    }
    zk_batch_done(t->b);
}

static void x_create_done(int rc, const char *value, const void *data)
{
    (void)value;
    struct xtask *t = (struct xtask *)data;
    t->rc = rc;
    zk_batch_done(t->b);
}

static void x_void_done(int rc, const void *data)
{
    struct xtask *t = (struct xtask *)data;
    t->rc = rc;
    zk_batch_done(t->b);
}

/* Issue t's next call into batch b. */
static void x_issue(zhandle_t *zh, const struct ACL_vector *acl, struct xtask *t,
                    struct zk_batch *b)
{
    static const char *const what[] = {
        [X_DELETE_OLD] = "export delete",
        [X_VERIFY] = "export exists",
        [X_CREATE] = "export create",
        [X_GET] = "export get",
        [X_DELETE_STALE] = "export delete stale",
        [X_SET] = "export set",
        [X_WATCH] = "export watch",
    };
    if (t->step == X_DONE)
        return;
    t->b = b;
    t->rc = ZOK;
    free(t->val);
    t->val = NULL;
    t->vlen = 0;
    t->what = what[t->step];
    int len = t->data ? (int)strlen(t->data) : 0;
    int rc = ZOK;
    zk_batch_add(b);
    switch (t->step) {
    case X_DELETE_OLD:
        rc = zoo_adelete(zh, t->old_path, -1, x_void_done, t);
        break;
    case X_VERIFY:
    case X_WATCH:
        rc = zoo_aexists(zh, t->path, 1, x_stat_done, t);
        break;
    case X_CREATE:
        rc = zoo_acreate(zh, t->path, t->data, len, acl, ZOO_EPHEMERAL, x_create_done, t);
        break;
    case X_GET:
        rc = zoo_aget(zh, t->path, 0, x_get_done, t);
        break;
    case X_DELETE_STALE:
        rc = zoo_adelete(zh, t->path, t->version, x_void_done, t);
        break;
    case X_SET:
        rc = zoo_aset(zh, t->path, t->data, len, t->version, x_stat_done, t);
        break;
    case X_DONE: /* not reached */
        break;
    }
    zk_batch_issued(b, rc, &t->rc);
}

/* The task failed with rc (t->what names the call): retried next round. */
static void x_fail(struct xtask *t, int rc)
{
    t->rc = rc;
    t->ok = false;
    t->step = X_DONE;
}

/* Back to X_CREATE (the node changed under us), at most EXPORT_ATTEMPTS times. */
static void x_again(struct xtask *t)
{
    if (++t->attempts >= EXPORT_ATTEMPTS) {
        t->what = "export create";
        x_fail(t, ZNODEEXISTS); /* kept changing under us: the next round tries again */
    } else {
        t->step = X_CREATE;
    }
}

/* Move t on after its call completed. made: services whose parents this
 * round created (a missing service node is created once, synchronously). */
static void x_advance(struct zk_export *ex, zhandle_t *zh, int64_t me, struct xtask *t,
                      json_t *made)
{
    int rc = t->rc;
    switch (t->step) {
    case X_DELETE_OLD:
        if (rc != ZOK && rc != ZNONODE) {
            t->keep = true; /* the old node may still be there: keep knowing it */
            x_fail(t, rc);
            return;
        }
        atomic_fetch_add(&ex->deletes, 1);
        json_object_del(ex->actual, t->id);
        t->ok = true;
        t->step = t->want ? X_CREATE : X_DONE;
        return;
    case X_VERIFY:
        if (rc == ZOK && t->owner == me) {
            t->ok = true;
            t->step = X_DONE;
        } else if (rc == ZOK || rc == ZNONODE) {
            t->step = X_CREATE;
        } else {
            x_fail(t, rc);
        }
        return;
    case X_CREATE:
        if (rc == ZOK) {
            atomic_fetch_add(&ex->creates, 1);
            t->want_version = 0;
            t->step = X_WATCH;
        } else if (rc == ZNONODE) {
            if (!json_object_get(made, t->ws)) {
                t->what = "export create parents";
                int prc = make_parents(ex, zh, t->ws);
                if (prc != ZOK) {
                    x_fail(t, prc);
                    return;
                }
                json_object_set_new(made, t->ws, json_true());
            }
            x_again(t);
        } else if (rc == ZNODEEXISTS) {
            t->step = X_GET;
        } else {
            x_fail(t, rc);
        }
        return;
    case X_GET:
        if (rc == ZNONODE) {
            x_again(t);
            return;
        }
        if (rc != ZOK) {
            x_fail(t, rc);
            return;
        }
        if (t->owner != me) {
            t->step = X_DELETE_STALE;
        } else if (!t->val || t->vlen != strlen(t->data) || memcmp(t->val, t->data, t->vlen) != 0) {
            t->step = X_SET;
        } else {
            t->want_version = t->version;
            t->step = X_WATCH;
        }
        return;
    case X_DELETE_STALE:
        if (rc != ZOK && rc != ZNONODE && rc != ZBADVERSION) {
            x_fail(t, rc);
            return;
        }
        atomic_fetch_add(&ex->repairs, 1);
        x_again(t);
        return;
    case X_SET:
        if (rc == ZBADVERSION || rc == ZNONODE) {
            x_again(t);
            return;
        }
        if (rc != ZOK) {
            x_fail(t, rc);
            return;
        }
        atomic_fetch_add(&ex->rewrites, 1);
        t->want_version = t->version;
        t->step = X_WATCH;
        return;
    case X_WATCH:
        if (rc == ZNONODE) {
            x_again(t); /* deleted right after: again */
            return;
        }
        if (rc != ZOK) {
            x_fail(t, rc);
            return;
        }
        if (t->owner != me || t->version != t->want_version) {
            /* rewritten (or replaced) by another client before the watch was
             * armed: that change fires no watch of ours, so look again now */
            atomic_fetch_add(&ex->repairs, 1);
            x_again(t);
            return;
        }
        t->ok = true;
        t->step = X_DONE;
        return;
    case X_DONE:
        return;
    }
}

/* Run tasks t[0..n) to X_DONE: windows of EXPORT_WINDOW, one wait per wave. */
static void x_run(struct zk_export *ex, zhandle_t *zh, const struct ACL_vector *acl,
                  struct xtask *t, size_t n)
{
    const clientid_t *cid = zoo_client_id(zh);
    int64_t me = cid ? cid->client_id : 0;
    json_t *made = json_object();
    for (size_t w0 = 0; w0 < n; w0 += EXPORT_WINDOW) {
        size_t w1 = n - w0 < EXPORT_WINDOW ? n : w0 + EXPORT_WINDOW;
        for (;;) {
            struct zk_batch b;
            zk_batch_init(&b);
            size_t issued = 0;
            for (size_t i = w0; i < w1; i++) {
                if (t[i].step != X_DONE) {
                    x_issue(zh, acl, &t[i], &b);
                    issued++;
                }
            }
            if (issued > 0)
                atomic_fetch_add(&ex->waves, 1);
            zk_batch_wait(&b);
            zk_batch_destroy(&b);
            if (issued == 0)
                break;
            for (size_t i = w0; i < w1; i++) {
                if (t[i].step != X_DONE)
                    x_advance(ex, zh, me, &t[i], made);
            }
        }
    }
    json_decref(made);
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

    int64_t t0 = mono_ms();
    size_t n = json_object_size(todo), k = 0;
    struct xtask *t = calloc(n ? n : 1, sizeof(*t));
    if (!t) {
        failed(ex, zs, "export", ex->base, ZSYSTEMERROR);
        json_object_foreach(todo, id, v)
        {
            redirty(ex, id);
        }
        json_decref(todo);
        json_decref(wants);
        return;
    }
    char path[1024];
    json_object_foreach(todo, id, v)
    {
        struct xtask *x = &t[k];
        json_t *want = json_object_get(wants, id);
        json_t *have = json_object_get(ex->actual, id);
        const char *hs = json_string_value(json_object_get(have, "s"));
        const char *ws = json_string_value(json_object_get(want, "s"));
        x->id = id;
        x->want = want;
        x->ws = ws;
        x->data = json_string_value(json_object_get(want, "d"));
        if (want) {
            node_path(ex, ws, id, path, sizeof(path));
            x->path = strdup(path);
        }
        if (have && (!want || strcmp(hs, ws) != 0)) {
            node_path(ex, hs, id, path, sizeof(path));
            x->old_path = strdup(path);
            x->step = X_DELETE_OLD;
        } else if (want) {
            x->step = have && json_equal(have, want) ? X_VERIFY : X_CREATE;
        } else {
            x->step = X_DONE; /* withdrawn before it was ever in place */
            x->ok = true;
        }
        if ((want && !x->path) || (x->step == X_DELETE_OLD && !x->old_path)) {
            x->what = "export";
            x_fail(x, ZSYSTEMERROR);
        }
        k++;
    }
    x_run(ex, zh, r->acl, t, n);
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        struct xtask *x = &t[i];
        if (!x->ok) {
            if (!x->keep)
                json_object_del(ex->actual, x->id);
            failed(ex, zs, x->what ? x->what : "export", x->path ? x->path : ex->base, x->rc);
            redirty(ex, x->id);
        } else if (x->want) {
            json_object_set(ex->actual, x->id, x->want);
            done++;
        }
        free(x->path);
        free(x->old_path);
        free(x->val);
    }
    free(t);
    if (full && done > 0) {
        atomic_store(&ex->last_full_ms, (uint64_t)(mono_ms() - t0));
        atomic_store(&ex->last_full_nodes, (uint64_t)done);
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
        /* another client deleted or rewrote our node: make it right again.
         * It stays in actual, marked so that it equals no wanted document
         * (the round takes the create path, which reads and compares): were
         * it withdrawn before that round, the round must still delete it. */
        atomic_fetch_add(&ex->repairs, 1);
        json_t *stale = json_copy(have);
        if (stale && json_object_set_new(stale, "stale", json_true()) == 0)
            json_object_set_new(ex->actual, id, stale);
        else {
            json_decref(stale);
            json_object_del(ex->actual, id);
        }
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
    out->waves = atomic_load(&ex->waves);
    out->last_full_ms = atomic_load(&ex->last_full_ms);
    out->last_full_nodes = atomic_load(&ex->last_full_nodes);
}

json_t *zk_export_status_json(struct zk_export *ex)
{
    struct zk_export_counters c;
    zk_export_get(ex, &c);
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "format",
                     "curator", "base", ex->base, "desired", (json_int_t)c.desired, "exported",
                     (json_int_t)c.exported, "creates", (json_int_t)c.creates, "deletes",
                     (json_int_t)c.deletes, "rewrites", (json_int_t)c.rewrites, "repairs",
                     (json_int_t)c.repairs, "errors", (json_int_t)c.errors, "waves",
                     (json_int_t)c.waves, "last_full_ms", (json_int_t)c.last_full_ms,
                     "last_full_nodes", (json_int_t)c.last_full_nodes);
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
