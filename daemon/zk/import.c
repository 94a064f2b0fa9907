/* SPDX-License-Identifier: MIT */
/*
 * import.c — the import engine (import.h): foreign registries read through
 * the format adapters (formats/format.h), on zk_sync's session and worker
 * thread. Everything below "worker-private" is touched by the worker only;
 * the published counters are copied under im->mu at the end of each round.
 */
#include "import.h"
#include "zk_batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#define BATCH_MAX 256 /* outstanding async requests */
#define ID_LEN    36

enum in_kind {
    IN_NEW,  /* listed, not read (or parsed) yet */
    IN_OK,   /* reported under `id` */
    IN_BAD,  /* bad name, bad data or unreadable: remembered, not reported */
    IN_DROP, /* read failed transiently (or deleted meanwhile): forget, list again */
};

struct inode {
    char *name;
    enum in_kind kind;
    bool bad_name; /* not an instance node of the format: never read */
    bool refetch;  /* data changed in place (or an id twin went): read again */
    bool ignored;  /* IN_BAD because the format does not import it (not bad data) */
    int64_t mzxid; /* stat of the last read (0 unknown) */
    char id[ID_LEN + 1];
};

struct svc {
    char *name;          /* raw service node name (SINGLE: the source's service) */
    char *path;          /* what is listed: <base>/<name>[/<instance_dir>] or <base> */
    struct inode *nodes; /* sorted by name */
    size_t n;
    bool dirty;
    bool missing;    /* listing path absent: an exists watch waits for it */
    bool unreadable; /* listing refused (ZNOAUTH) */
};

struct held {
    char id[ID_LEN + 1];
};

/* Id -> number of IN_OK nodes of the source that map to it. */
struct idcount {
    char id[ID_LEN + 1];
    uint32_t n; /* 0: empty slot */
};

struct source {
    struct fmt_source cfg;
    size_t base_len;
    struct svc **svcs; /* SERVICES: sorted by name; SINGLE: exactly one */
    size_t nsvc;
    bool base_dirty;   /* SERVICES: list the base */
    bool base_missing; /* base absent: an exists watch waits for it */
    bool base_unreadable;
    bool check_stats; /* after a new session: exists (re-arming data watches) on every node */
    struct idcount *ids;
    size_t ids_cap, ids_used;
    struct held *held;
    size_t nheld, cap_held;
    struct zk_import_counters c; /* worker-private; published under im->mu */
};

struct zk_import {
    struct zk_import_callbacks cb;
    size_t max_doc;
    struct source *src;
    size_t nsrc;
    char **excluded; /* discd's own paths (zk-root, export base), then every
                      * source's base: never taken for a service of another source */
    size_t nexcluded;
    size_t n_own;     /* of those, discd's own (events there are never ours) */
    atomic_bool work; /* a watch event was noted: run a round now */
    bool full_done;   /* a full round completed since the last (re)connect */
    bool connected;
    struct source *delivering; /* the source whose delivery batch is open, or NULL */
    pthread_mutex_t mu;
    struct zk_import_counters *pub; /* published copy, one per source */
};

/* ---------- small helpers ---------- */

static void ilog(struct zk_import *im, enum zk_sync_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ilog(struct zk_import *im, enum zk_sync_log_level lvl, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (im->cb.log)
        im->cb.log(im->cb.arg, lvl, msg);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    bool root = la == 1 && a[0] == '/';
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (!root)
        p[o++] = '/';
    memcpy(p + o, b, lb + 1);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* a is b or inside b */
static bool within(const char *a, const char *b)
{
    if (strcmp(b, "/") == 0)
        return a[0] == '/';
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

/* ---------- id counts ---------- */

static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < ID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

static struct idcount *ids_slot(struct source *s, const char *id)
{
    if (s->ids_cap == 0)
        return NULL;
    size_t mask = s->ids_cap - 1;
    for (size_t i = hash_id(id) & mask;; i = (i + 1) & mask) {
        struct idcount *r = &s->ids[i];
        if (r->id[0] == '\0' || memcmp(r->id, id, ID_LEN) == 0)
            return r;
    }
}

/* Count one more node for id; returns the new count (0 on ENOMEM). Slots
 * whose count drops to 0 keep the id (a tombstone) until the table grows. */
static uint32_t ids_inc(struct source *s, const char *id)
{
    if ((s->ids_used + 1) * 10 > s->ids_cap * 7) {
        size_t ncap = s->ids_cap ? s->ids_cap * 2 : 256;
        struct idcount *n = calloc(ncap, sizeof(*n));
        if (!n)
            return 0;
        size_t used = 0;
        for (size_t k = 0; k < s->ids_cap; k++) {
            if (s->ids[k].n == 0)
                continue;
            size_t i = hash_id(s->ids[k].id) & (ncap - 1);
            while (n[i].id[0])
                i = (i + 1) & (ncap - 1);
            n[i] = s->ids[k];
            used++;
        }
        free(s->ids);
        s->ids = n;
        s->ids_cap = ncap;
        s->ids_used = used;
    }
    struct idcount *r = ids_slot(s, id);
    if (r->id[0] == '\0') {
        memcpy(r->id, id, ID_LEN + 1);
        s->ids_used++;
    }
    return ++r->n;
}

static uint32_t ids_dec(struct source *s, const char *id)
{
    struct idcount *r = ids_slot(s, id);
    if (!r || r->id[0] == '\0' || r->n == 0)
        return 0;
    return --r->n;
}

static uint32_t ids_get(struct source *s, const char *id)
{
    struct idcount *r = ids_slot(s, id);
    return r && r->id[0] ? r->n : 0;
}

/* ---------- delivery batches ---------- */

/* Open a delivery batch for source s before its first upsert or removal
 * (lazily: a round that changes nothing costs the daemon nothing). The
 * daemon makes every change of one batch visible in one segment commit. */
static void deliver_open(struct zk_import *im, struct source *s)
{
    if (im->delivering == s)
        return;
    if (im->delivering) {
        im->delivering->c.batches++;
        if (im->cb.on_batch_end)
            im->cb.on_batch_end(im->cb.arg);
    }
    im->delivering = s;
    if (im->cb.on_batch_begin)
        im->cb.on_batch_begin(im->cb.arg);
}

/* Close the open delivery batch, if any. Called before every wait for
 * ZooKeeper: a batch holds the daemon's publisher (local changes too), so
 * it never spans a round trip. */
static void deliver_close(struct zk_import *im)
{
    if (!im->delivering)
        return;
    im->delivering->c.batches++;
    im->delivering = NULL;
    if (im->cb.on_batch_end)
        im->cb.on_batch_end(im->cb.arg);
}

/* zk_batch_wait after closing the delivery batch. */
static void batch_wait(struct zk_import *im, struct zk_batch *b)
{
    deliver_close(im);
    zk_batch_wait(b);
}

/* ---------- held removals ---------- */

/* Hold the removal of id; false if it cannot be held (out of memory). */
static bool held_add(struct source *s, const char *id)
{
    for (size_t i = 0; i < s->nheld; i++) {
        if (strcmp(s->held[i].id, id) == 0)
            return true;
    }
    if (s->nheld == s->cap_held) {
        size_t nc = s->cap_held ? s->cap_held * 2 : 16;
        struct held *n = realloc(s->held, nc * sizeof(*n));
        if (!n)
            return false;
        s->held = n;
        s->cap_held = nc;
    }
    memcpy(s->held[s->nheld++].id, id, ID_LEN + 1);
    s->c.held_removals++;
    return true;
}

/* ---------- reporting ---------- */

static void report_gone(struct zk_import *im, struct source *s, const char *id, bool cooling)
{
    if (cooling && held_add(s, id))
        return; /* (if it cannot be held, it is reported now) */
    s->c.removes++;
    ilog(im, ZK_SYNC_LOG_DEBUG, "import %s: %s gone", s->cfg.name, id);
    deliver_open(im, s);
    if (im->cb.on_remove)
        im->cb.on_remove(im->cb.arg, &s->cfg, id);
}

/* Another IN_OK node of the source with this id: read it again, so the id
 * keeps the document of a node that still exists. */
static void refetch_twin(struct source *s, const char *id, const struct inode *except)
{
    for (size_t k = 0; k < s->nsvc; k++) {
        struct svc *v = s->svcs[k];
        for (size_t i = 0; i < v->n; i++) {
            struct inode *in = &v->nodes[i];
            if (in != except && in->kind == IN_OK && strcmp(in->id, id) == 0) {
                in->refetch = true;
                return;
            }
        }
    }
}

/* Node in (about to be forgotten or re-read) no longer stands for its id. */
static void node_release(struct zk_import *im, struct source *s, struct inode *in, bool cooling)
{
    if (in->kind != IN_OK)
        return;
    if (ids_dec(s, in->id) == 0)
        report_gone(im, s, in->id, cooling);
    else
        refetch_twin(s, in->id, in);
    in->kind = IN_NEW;
}

static void free_nodes(struct inode *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(nodes[i].name);
    free(nodes);
}

/* Every node of v is gone (its listing path vanished, or the service did). */
static void svc_clear(struct zk_import *im, struct source *s, struct svc *v, bool cooling)
{
    for (size_t i = 0; i < v->n; i++)
        node_release(im, s, &v->nodes[i], cooling);
    free_nodes(v->nodes, v->n);
    v->nodes = NULL;
    v->n = 0;
}

static void svc_free(struct svc *v)
{
    if (!v)
        return;
    free_nodes(v->nodes, v->n);
    free(v->name);
    free(v->path);
    free(v);
}

static struct svc *svc_new(const struct source *s, const char *name)
{
    struct svc *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->name = strdup(name);
    if (s->cfg.fmt->layout == FMT_LAYOUT_SINGLE) {
        v->path = strdup(s->cfg.base);
    } else {
        char *p = join(s->cfg.base, name);
        if (p && s->cfg.fmt->instance_dir) {
            v->path = join(p, s->cfg.fmt->instance_dir);
            free(p);
        } else {
            v->path = p;
        }
    }
    if (!v->name || !v->path) {
        svc_free(v);
        return NULL;
    }
    v->dirty = true;
    return v;
}

/* ---------- async batches ---------- */

struct aop {
    struct zk_batch *b;
    size_t max_doc;
    int rc;
    char *data; /* get: copy of the value, NUL-terminated */
    size_t len;
    int32_t data_len; /* stat dataLength */
    int64_t mzxid, ctime;
    struct String_vector kids; /* list */
    struct svc *svc;
    size_t node;
};

static void get_done(int rc, const char *value, int value_len, const struct Stat *stat,
                     const void *data)
{
    struct aop *op = (struct aop *)data;
    op->rc = rc;
    if (rc == ZOK && stat) {
        op->mzxid = stat->mzxid;
        op->ctime = stat->ctime;
        op->data_len = stat->dataLength;
        op->rc = zk_batch_copy_value(value, value_len, stat, op->max_doc, &op->data, &op->len);
    }
    zk_batch_done(op->b);
}

static void exists_done(int rc, const struct Stat *stat, const void *data)
{
    struct aop *op = (struct aop *)data;
    op->rc = rc;
    if (rc == ZOK && stat)
        op->mzxid = stat->mzxid;
    zk_batch_done(op->b);
}

static void list_done(int rc, const struct String_vector *strings, const void *data)
{
    struct aop *op = (struct aop *)data;
    op->rc = rc;
    if (rc == ZOK)
        op->rc = zk_batch_copy_children(strings, &op->kids);
    zk_batch_done(op->b);
}

/* ---------- listing ---------- */

/* Merge a sorted listing into v: new names become IN_NEW (or IN_BAD for
 * names that are not the format's), vanished names are released. */
static int merge_listing(struct zk_import *im, struct source *s, struct svc *v, char **kids,
                         size_t nk, bool cooling)
{
    struct inode *out = calloc(nk + 1, sizeof(*out));
    struct inode *gone = calloc(v->n + 1, sizeof(*gone));
    if (!out || !gone) {
        free(out);
        free(gone);
        return ZSYSTEMERROR;
    }
    size_t no = 0, ng = 0, i = 0, j = 0;
    while (i < v->n || j < nk) {
        int c = i >= v->n ? 1 : j >= nk ? -1 : strcmp(v->nodes[i].name, kids[j]);
        if (c == 0) {
            out[no++] = v->nodes[i++];
            j++;
        } else if (c < 0) { /* gone: released once the new list is in place */
            gone[ng++] = v->nodes[i++];
        } else { /* new */
            struct inode *in = &out[no];
            memset(in, 0, sizeof(*in));
            in->name = kids[j];
            kids[j] = NULL;
            j++;
            if (s->cfg.fmt->is_instance && !s->cfg.fmt->is_instance(in->name)) {
                in->kind = IN_BAD;
                in->bad_name = true;
                s->c.skipped_bad_name++;
                ilog(im, ZK_SYNC_LOG_WARN, "import %s: skip %s/%s: not a %s instance node",
                     s->cfg.name, v->path, in->name, s->cfg.fmt->name);
            } else {
                in->kind = IN_NEW;
            }
            no++;
        }
    }
    free(v->nodes);
    v->nodes = out;
    v->n = no;
    for (size_t k = 0; k < ng; k++) { /* a twin of a gone id is found in the new list */
        node_release(im, s, &gone[k], cooling);
        free(gone[k].name);
    }
    free(gone);
    return ZOK;
}

/* An exists watch on a path that is absent, so its creation is seen. If it
 * exists after all (a race), the caller lists it again. */
static int watch_creation(struct zk_import *im, struct source *s, zhandle_t *zh, const char *path,
                          bool *exists_now)
{
    struct Stat st;
    (void)s;
    deliver_close(im); /* a round trip */
    int rc = zoo_exists(zh, path, 1, &st);
    *exists_now = rc == ZOK;
    return rc == ZNONODE ? ZOK : rc;
}

/* List every dirty service of s (pipelined child listings that re-arm the
 * child watches) and merge. */
static void list_services(struct zk_import *im, struct source *s, struct zk_sync *zs, zhandle_t *zh,
                          bool cooling)
{
    size_t k = 0;
    while (k < s->nsvc) {
        struct zk_batch b;
        zk_batch_init(&b);
        struct aop *ops[BATCH_MAX];
        size_t nops = 0;
        for (; k < s->nsvc && nops < BATCH_MAX; k++) {
            struct svc *v = s->svcs[k];
            if (!v->dirty)
                continue;
            struct aop *op = calloc(1, sizeof(*op));
            if (!op) {
                zk_sync_round_error(zs, "import list", v->path, ZSYSTEMERROR);
                k = s->nsvc; /* the rest stays dirty for the next round */
                break;
            }
            op->b = &b;
            op->svc = v;
            zk_batch_add(&b);
            s->c.lists++;
            int rc = zoo_aget_children(zh, v->path, 1, list_done, op);
            zk_batch_issued(&b, rc, &op->rc);
            ops[nops++] = op;
        }
        batch_wait(im, &b);
        zk_batch_destroy(&b);
        for (size_t n = 0; n < nops; n++) {
            struct aop *op = ops[n];
            struct svc *v = op->svc;
            if (op->rc == ZOK) {
                v->dirty = false;
                v->missing = false;
                v->unreadable = false;
                if (op->kids.count > 1)
                    qsort(op->kids.data, (size_t)op->kids.count, sizeof(char *), cmp_str);
                if (merge_listing(im, s, v, op->kids.data, (size_t)op->kids.count, cooling) !=
                    ZOK) {
                    v->dirty = true;
                    zk_sync_round_error(zs, "import list", v->path, ZSYSTEMERROR);
                }
            } else if (op->rc == ZNONODE) {
                svc_clear(im, s, v, cooling);
                bool now = false;
                int wrc = watch_creation(im, s, zh, v->path, &now);
                v->missing = !now;
                v->dirty = now || wrc != ZOK;
                if (wrc != ZOK) {
                    s->c.errors++;
                    zk_sync_round_error(zs, "import watch", v->path, wrc);
                }
            } else if (op->rc == ZNOAUTH) {
                v->dirty = false;
                if (!v->unreadable) {
                    v->unreadable = true;
                    s->c.skipped_unreadable++;
                    ilog(im, ZK_SYNC_LOG_WARN, "import %s: skip %s: not readable (%s)", s->cfg.name,
                         v->path, zerror(op->rc));
                }
            } else {
                s->c.errors++;
                zk_sync_round_error(zs, "import list", v->path, op->rc);
            }
            for (int i = 0; i < op->kids.count; i++)
                free(op->kids.data[i]);
            free(op->kids.data);
            free(op);
        }
    }
}

/* Is child `name` of base s a service node? Not if the format says so, and
 * not if it leads to discd's own tree or another source's base. */
static bool is_service(struct zk_import *im, const struct source *s, const char *name)
{
    if (s->cfg.fmt->is_service && !s->cfg.fmt->is_service(name))
        return false;
    char *p = join(s->cfg.base, name);
    if (!p)
        return false;
    bool ok = true;
    for (size_t i = 0; i < im->nexcluded && ok; i++) {
        if (strcmp(im->excluded[i], s->cfg.base) != 0 && within(im->excluded[i], p))
            ok = false;
    }
    free(p);
    return ok;
}

/* SERVICES: list the base (re-arming its child watch) and merge the services. */
static void list_base(struct zk_import *im, struct source *s, struct zk_sync *zs, zhandle_t *zh,
                      bool cooling)
{
    struct String_vector sv = {0, NULL};
    s->c.lists++;
    deliver_close(im); /* a round trip */
    int rc = zoo_get_children(zh, s->cfg.base, 1, &sv);
    if (rc == ZNOAUTH) {
        s->base_dirty = false;
        if (!s->base_unreadable) {
            s->base_unreadable = true;
            s->c.skipped_unreadable++;
            ilog(im, ZK_SYNC_LOG_WARN, "import %s: base %s not readable (%s)", s->cfg.name,
                 s->cfg.base, zerror(rc));
        }
        return;
    }
    if (rc != ZOK && rc != ZNONODE) {
        s->c.errors++;
        zk_sync_round_error(zs, "import list", s->cfg.base, rc);
        return;
    }
    s->base_unreadable = false;
    if (rc == ZNONODE) {
        bool now = false;
        int wrc = watch_creation(im, s, zh, s->cfg.base, &now);
        if (wrc != ZOK) {
            s->c.errors++;
            zk_sync_round_error(zs, "import watch", s->cfg.base, wrc);
        }
        s->base_missing = !now;
        s->base_dirty = now || wrc != ZOK;
        if (!s->base_missing)
            return; /* list it again next round */
    } else {
        s->base_missing = false;
        s->base_dirty = false;
    }
    if (sv.count > 1)
        qsort(sv.data, (size_t)sv.count, sizeof(char *), cmp_str);
    size_t nk = (size_t)(sv.count > 0 ? sv.count : 0);
    struct svc **out = calloc(nk + 1, sizeof(*out));
    if (!out) {
        deallocate_String_vector(&sv);
        s->base_dirty = true;
        zk_sync_round_error(zs, "import list", s->cfg.base, ZSYSTEMERROR);
        return;
    }
    size_t no = 0, i = 0, j = 0;
    while (i < s->nsvc || j < nk) {
        int c = i >= s->nsvc ? 1 : j >= nk ? -1 : strcmp(s->svcs[i]->name, sv.data[j]);
        if (c == 0) {
            out[no++] = s->svcs[i++];
            j++;
        } else if (c < 0) {
            svc_clear(im, s, s->svcs[i], cooling);
            svc_free(s->svcs[i]);
            i++;
        } else {
            if (is_service(im, s, sv.data[j])) {
                struct svc *v = svc_new(s, sv.data[j]);
                if (v)
                    out[no++] = v;
                else
                    s->base_dirty = true;
            }
            j++;
        }
    }
    free(s->svcs);
    s->svcs = out;
    s->nsvc = no;
    deallocate_String_vector(&sv);
}

/* ---------- reading and parsing ---------- */

/* Parse node in of v (data as read) and report it. */
static void settle_node(struct zk_import *im, struct source *s, struct svc *v, struct inode *in,
                        const char *data, size_t len, int64_t ctime_ms, bool cooling)
{
    char *path = join(v->path, in->name);
    if (!path) {
        in->kind = IN_DROP;
        return;
    }
    struct fmt_node fn = {
        .src = &s->cfg,
        .path = path,
        .service_dir = s->cfg.fmt->layout == FMT_LAYOUT_SINGLE ? s->cfg.service : v->name,
        .name = in->name,
        .data = data,
        .len = len,
        .ctime_ms = ctime_ms,
    };
    char why[FMT_WHY_MAX] = "";
    json_t *doc = NULL;
    in->ignored = false;
    int rc = s->cfg.fmt->parse(&fn, &doc, why);
    if (rc == 0 && !doc) { /* not imported by the format's rule (format.h), not bad */
        node_release(im, s, in, cooling);
        in->kind = IN_BAD;
        in->ignored = true;
        s->c.ignored++;
        ilog(im, ZK_SYNC_LOG_DEBUG, "import %s: %s not imported: %s", s->cfg.name, path,
             why[0] ? why : "the format's rule");
        free(path);
        return;
    }
    if (rc == -ENOMEM) {
        if (in->kind == IN_OK) {
            in->refetch = true; /* keep what it stood for; try again */
            v->dirty = true;
        } else {
            in->kind = IN_DROP;
        }
        free(path);
        return;
    }
    if (rc < 0 || !doc) {
        node_release(im, s, in, cooling); /* rewritten into garbage: gone */
        in->kind = IN_BAD;
        s->c.skipped_bad_data++;
        ilog(im, ZK_SYNC_LOG_WARN, "import %s: skip %s: %s", s->cfg.name, path,
             why[0] ? why : "cannot be mapped");
        free(path);
        return;
    }
    const char *id = json_string_value(json_object_get(doc, "id"));
    deliver_open(im, s);
    int urc = im->cb.on_upsert ? im->cb.on_upsert(im->cb.arg, &s->cfg, id, doc) : 0;
    bool same = in->kind == IN_OK && strcmp(in->id, id) == 0;
    if (urc < 0 || !same)
        node_release(im, s, in, cooling); /* its old id, if another, is gone */
    if (urc < 0) {
        in->kind = IN_BAD;
        s->c.skipped_bad_data++;
        ilog(im, ZK_SYNC_LOG_WARN, "import %s: skip %s: refused by the instance model", s->cfg.name,
             path);
    } else {
        memcpy(in->id, id, ID_LEN);
        in->id[ID_LEN] = '\0';
        in->kind = IN_OK;
        s->c.upserts++;
        if (!same)
            ids_inc(s, in->id);
        for (size_t h = 0; h < s->nheld; h++) { /* back before its removal was reported */
            if (strcmp(s->held[h].id, in->id) == 0) {
                s->held[h] = s->held[--s->nheld];
                break;
            }
        }
        ilog(im, ZK_SYNC_LOG_DEBUG, "import %s: %s -> %s", s->cfg.name, path, in->id);
    }
    json_decref(doc);
    free(path);
}

static bool wants_read(const struct inode *in)
{
    return !in->bad_name && (in->kind == IN_NEW || in->refetch);
}

/* Forget v's transient failures: they look new at the next listing. */
static void drop_failed(struct svc *v)
{
    size_t w = 0;
    for (size_t k = 0; k < v->n; k++) {
        if (v->nodes[k].kind == IN_DROP) {
            free(v->nodes[k].name);
            v->dirty = true;
            continue;
        }
        v->nodes[w++] = v->nodes[k];
    }
    v->n = w;
}

/* Settle the result of a read of node in of v (path: its znode). */
static void settle_read(struct zk_import *im, struct source *s, struct svc *v, struct inode *in,
                        const struct aop *op, const char *path, struct zk_sync *zs, bool cooling)
{
    in->refetch = false;
    in->ignored = false;
    if (op->rc == ZOK)
        in->mzxid = op->mzxid;
    if (op->rc == ZNONODE) {
        node_release(im, s, in, cooling);
        in->kind = IN_DROP; /* deleted meanwhile: the child watch lists it */
        v->dirty = true;
    } else if (op->rc == ZNOAUTH) {
        node_release(im, s, in, cooling);
        in->kind = IN_BAD;
        s->c.skipped_unreadable++;
        ilog(im, ZK_SYNC_LOG_WARN, "import %s: skip %s: not readable", s->cfg.name, path);
    } else if (op->rc != ZOK) {
        in->kind = in->kind == IN_OK ? IN_OK : IN_DROP;
        in->refetch = in->kind == IN_OK;
        v->dirty = true;
        s->c.errors++;
        zk_sync_round_error(zs, "import read", path, op->rc);
    } else if (op->data_len < 0 || (size_t)op->data_len > im->max_doc) {
        node_release(im, s, in, cooling);
        in->kind = IN_BAD;
        s->c.skipped_too_large++;
        ilog(im, ZK_SYNC_LOG_WARN, "import %s: skip %s: %d bytes > %zu", s->cfg.name, path,
             (int)op->data_len, im->max_doc);
    } else {
        settle_node(im, s, v, in, op->data ? op->data : "", op->len, op->ctime, cooling);
    }
}

/* Read (or, for name-only formats, parse) every new or changed node of
 * every service of s: windows of BATCH_MAX pipelined gets that span
 * services, each window's results delivered as one batch. */
static void fetch_source(struct zk_import *im, struct source *s, struct zk_sync *zs, zhandle_t *zh,
                         bool cooling)
{
    if (!s->cfg.fmt->needs_data) {
        for (size_t k = 0; k < s->nsvc; k++) {
            struct svc *v = s->svcs[k];
            for (size_t i = 0; i < v->n; i++) {
                struct inode *in = &v->nodes[i];
                if (wants_read(in)) {
                    in->refetch = false;
                    settle_node(im, s, v, in, NULL, 0, 0, cooling);
                }
            }
        }
    } else {
        size_t k = 0, i = 0;
        while (k < s->nsvc) {
            struct zk_batch b;
            zk_batch_init(&b);
            struct aop *ops[BATCH_MAX];
            char *paths[BATCH_MAX];
            size_t nops = 0;
            while (k < s->nsvc && nops < BATCH_MAX) {
                struct svc *v = s->svcs[k];
                if (i >= v->n) {
                    k++;
                    i = 0;
                    continue;
                }
                struct inode *in = &v->nodes[i++];
                if (!wants_read(in))
                    continue;
                struct aop *op = calloc(1, sizeof(*op));
                char *path = op ? join(v->path, in->name) : NULL;
                if (!path) {
                    free(op);
                    zk_sync_round_error(zs, "import read", v->path, ZSYSTEMERROR);
                    k = s->nsvc; /* the rest is read next round */
                    break;
                }
                op->b = &b;
                op->max_doc = im->max_doc;
                op->svc = v;
                op->node = i - 1;
                zk_batch_add(&b);
                s->c.reads++;
                int rc = zoo_aget(zh, path, 1, get_done, op); /* arms a data watch */
                zk_batch_issued(&b, rc, &op->rc);
                paths[nops] = path;
                ops[nops++] = op;
            }
            batch_wait(im, &b);
            zk_batch_destroy(&b);
            for (size_t n = 0; n < nops; n++) {
                struct aop *op = ops[n];
                settle_read(im, s, op->svc, &op->svc->nodes[op->node], op, paths[n], zs, cooling);
                free(op->data);
                free(op);
                free(paths[n]);
            }
            deliver_close(im); /* this window's changes: one commit */
        }
    }
    for (size_t k = 0; k < s->nsvc; k++)
        drop_failed(s->svcs[k]);
}

/* After a new session the data watches are gone: one pipelined exists per
 * read node re-arms them, and a node whose mzxid moved is read again. */
static void check_stats(struct zk_import *im, struct source *s, struct svc *v, struct zk_sync *zs,
                        zhandle_t *zh)
{
    size_t i = 0;
    while (i < v->n) {
        struct zk_batch b;
        zk_batch_init(&b);
        struct aop *ops[BATCH_MAX];
        size_t nops = 0;
        for (; i < v->n && nops < BATCH_MAX; i++) {
            struct inode *in = &v->nodes[i];
            if (in->bad_name || in->kind == IN_NEW)
                continue;
            struct aop *op = calloc(1, sizeof(*op));
            char *path = op ? join(v->path, in->name) : NULL;
            if (!path) {
                free(op);
                s->check_stats = true;
                i = v->n;
                break;
            }
            op->b = &b;
            op->node = i;
            zk_batch_add(&b);
            int rc = zoo_aexists(zh, path, 1, exists_done, op);
            free(path);
            zk_batch_issued(&b, rc, &op->rc);
            ops[nops++] = op;
        }
        batch_wait(im, &b);
        zk_batch_destroy(&b);
        for (size_t k = 0; k < nops; k++) {
            struct aop *op = ops[k];
            struct inode *in = &v->nodes[op->node];
            if (op->rc == ZOK && in->mzxid && op->mzxid != in->mzxid) {
                in->refetch = true;
                s->c.changed_in_place++;
            } else if (op->rc == ZNONODE) {
                v->dirty = true;
            } else if (op->rc != ZOK && op->rc != ZNOAUTH) {
                s->check_stats = true; /* try again next round */
                s->c.errors++;
                zk_sync_round_error(zs, "import check", v->path, op->rc);
            }
            free(op);
        }
    }
}

/* ---------- the extension hooks ---------- */

/* The source whose base is the longest prefix of path (not inside
 * discd's own tree), or NULL. */
static struct source *source_of(struct zk_import *im, const char *path)
{
    struct source *best = NULL;
    for (size_t i = 0; i < im->nsrc; i++) {
        struct source *s = &im->src[i];
        if (within(path, s->cfg.base) && (!best || s->base_len > best->base_len))
            best = s;
    }
    for (size_t i = 0; best && i < im->n_own; i++) {
        if (within(path, im->excluded[i]))
            return NULL; /* discd's own tree */
    }
    return best;
}

static bool ext_on_watch(void *arg, int type, const char *path)
{
    struct zk_import *im = arg;
    struct source *s = source_of(im, path);
    if (!s)
        return false;
    s->c.watches_fired++;
    if (strcmp(path, s->cfg.base) == 0)
        s->base_dirty = true;
    bool hit = false;
    for (size_t k = 0; k < s->nsvc && !hit; k++) {
        struct svc *v = s->svcs[k];
        size_t pl = strlen(v->path);
        if (strcmp(path, v->path) == 0) {
            v->dirty = true;
            hit = true;
        } else if (strncmp(path, v->path, pl) == 0 && path[pl] == '/' &&
                   !strchr(path + pl + 1, '/')) {
            const char *name = path + pl + 1;
            for (size_t i = 0; i < v->n; i++) {
                struct inode *in = &v->nodes[i];
                if (strcmp(in->name, name) == 0) {
                    if (type == ZOO_CHANGED_EVENT && !in->bad_name) {
                        in->refetch = true;
                        s->c.changed_in_place++;
                    } else {
                        v->dirty = true;
                    }
                    break;
                }
            }
            hit = true;
        }
    }
    if (!hit && s->cfg.fmt->layout == FMT_LAYOUT_SERVICES)
        s->base_dirty = true; /* e.g. a service node of an instance_dir format */
    atomic_store(&im->work, true);
    return true;
}

static void ext_on_session(void *arg, enum zk_sync_state state, bool new_session)
{
    struct zk_import *im = arg;
    im->connected = state == ZK_SYNC_CONNECTED;
    if (!im->connected)
        return;
    im->full_done = false;
    for (size_t i = 0; i < im->nsrc; i++) {
        if (new_session && im->src[i].cfg.fmt->needs_data)
            im->src[i].check_stats = true;
    }
}

static void publish(struct zk_import *im)
{
    pthread_mutex_lock(&im->mu);
    for (size_t i = 0; i < im->nsrc; i++) {
        struct source *s = &im->src[i];
        uint64_t inst = 0, bad = 0, ign = 0;
        for (size_t k = 0; k < s->nsvc; k++) {
            for (size_t j = 0; j < s->svcs[k]->n; j++) {
                const struct inode *in = &s->svcs[k]->nodes[j];
                inst += in->kind == IN_OK;
                bad += in->kind == IN_BAD && !in->ignored;
                ign += in->kind == IN_BAD && in->ignored;
            }
        }
        s->c.ignored_now = ign;
        s->c.services = s->cfg.fmt->layout == FMT_LAYOUT_SINGLE ? 1 : s->nsvc;
        s->c.instances = inst + s->nheld;
        s->c.bad_now = bad;
        s->c.held_now = s->nheld;
        im->pub[i] = s->c;
    }
    pthread_mutex_unlock(&im->mu);
}

/* Cooling-off is over and everything was listed once since the reconnect:
 * held removals whose id did not come back are reported now. */
static void release_held(struct zk_import *im, struct source *s)
{
    while (s->nheld > 0) {
        struct held h = s->held[--s->nheld];
        if (ids_get(s, h.id) > 0)
            continue;
        s->c.removes++;
        ilog(im, ZK_SYNC_LOG_DEBUG, "import %s: %s gone (held during cooling-off)", s->cfg.name,
             h.id);
        deliver_open(im, s);
        if (im->cb.on_remove)
            im->cb.on_remove(im->cb.arg, &s->cfg, h.id);
    }
}

static void ext_round(void *arg, struct zk_sync *zs, const struct zk_sync_round *r)
{
    struct zk_import *im = arg;
    zhandle_t *zh = (zhandle_t *)r->zh;
    atomic_store(&im->work, false);
    for (size_t i = 0; i < im->nsrc; i++) {
        struct source *s = &im->src[i];
        if (r->full) {
            s->base_dirty = s->cfg.fmt->layout == FMT_LAYOUT_SERVICES;
            for (size_t k = 0; k < s->nsvc; k++)
                s->svcs[k]->dirty = true;
        }
        if (s->base_dirty)
            list_base(im, s, zs, zh, r->cooling);
        list_services(im, s, zs, zh, r->cooling);
        bool stats = s->check_stats;
        s->check_stats = false;
        for (size_t k = 0; stats && k < s->nsvc; k++)
            check_stats(im, s, s->svcs[k], zs, zh);
        fetch_source(im, s, zs, zh, r->cooling);
    }
    if (r->full)
        im->full_done = true;
    if (!r->cooling && im->full_done) {
        for (size_t i = 0; i < im->nsrc; i++)
            release_held(im, &im->src[i]);
    }
    deliver_close(im);
    publish(im);
}

static bool ext_pending(void *arg)
{
    struct zk_import *im = arg;
    return atomic_load(&im->work);
}

/* ---------- public API ---------- */

int zk_import_new(const struct fmt_source *src, size_t n, const char *const *exclude,
                  size_t n_exclude, size_t max_doc_bytes, const struct zk_import_callbacks *cb,
                  struct zk_import **out, struct zk_sync_ext *ext)
{
    *out = NULL;
    if (n == 0 || n > FMT_SOURCES_MAX || !src)
        return -EINVAL;
    struct zk_import *im = calloc(1, sizeof(*im));
    if (!im)
        return -ENOMEM;
    if (cb)
        im->cb = *cb;
    im->max_doc = max_doc_bytes ? max_doc_bytes : 65536;
    pthread_mutex_init(&im->mu, NULL);
    atomic_init(&im->work, true);
    im->src = calloc(n, sizeof(*im->src));
    im->pub = calloc(n, sizeof(*im->pub));
    im->excluded = calloc(n + n_exclude + 1, sizeof(char *));
    if (!im->src || !im->pub || !im->excluded) {
        zk_import_free(im);
        return -ENOMEM;
    }
    im->nsrc = n;
    for (size_t i = 0; i < n; i++) {
        struct source *s = &im->src[i];
        s->cfg = src[i];
        s->base_len = strlen(s->cfg.base);
        if (s->cfg.fmt->layout == FMT_LAYOUT_SINGLE) {
            s->svcs = calloc(1, sizeof(*s->svcs));
            if (s->svcs)
                s->svcs[0] = svc_new(s, s->cfg.service);
            if (!s->svcs || !s->svcs[0]) {
                zk_import_free(im);
                return -ENOMEM;
            }
            s->nsvc = 1;
        } else {
            s->base_dirty = true;
        }
    }
    for (size_t i = 0; i < n_exclude + n; i++) {
        const char *p = i < n_exclude ? exclude[i] : src[i - n_exclude].base;
        im->excluded[i] = strdup(p);
        if (!im->excluded[i]) {
            zk_import_free(im);
            return -ENOMEM;
        }
        im->nexcluded = i + 1;
    }
    im->n_own = n_exclude;
    *out = im;
    *ext = (struct zk_sync_ext){
        .arg = im,
        .on_watch = ext_on_watch,
        .on_session = ext_on_session,
        .round = ext_round,
        .pending = ext_pending,
    };
    return 0;
}

void zk_import_free(struct zk_import *im)
{
    if (!im)
        return;
    for (size_t i = 0; i < im->nsrc && im->src; i++) {
        struct source *s = &im->src[i];
        for (size_t k = 0; k < s->nsvc; k++)
            svc_free(s->svcs[k]);
        free(s->svcs);
        free(s->ids);
        free(s->held);
    }
    for (size_t i = 0; i < im->nexcluded; i++)
        free(im->excluded[i]);
    free(im->excluded);
    free(im->src);
    free(im->pub);
    pthread_mutex_destroy(&im->mu);
    free(im);
}

size_t zk_import_sources(const struct zk_import *im)
{
    return im ? im->nsrc : 0;
}

int zk_import_get(struct zk_import *im, size_t i, struct fmt_source *src,
                  struct zk_import_counters *out)
{
    if (!im || i >= im->nsrc)
        return -ERANGE;
    if (src)
        *src = im->src[i].cfg;
    if (out) {
        pthread_mutex_lock(&im->mu);
        *out = im->pub[i];
        pthread_mutex_unlock(&im->mu);
    }
    return 0;
}

json_t *zk_import_status_json(struct zk_import *im)
{
    json_t *arr = json_array();
    if (!arr || !im)
        return arr;
    for (size_t i = 0; i < im->nsrc; i++) {
        struct fmt_source s;
        struct zk_import_counters c;
        zk_import_get(im, i, &s, &c);
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "source",
            s.name, "format", s.fmt->name, "base", s.base, "services", (json_int_t)c.services,
            "instances", (json_int_t)c.instances, "lists", (json_int_t)c.lists, "reads",
            (json_int_t)c.reads, "watches_fired", (json_int_t)c.watches_fired, "upserts",
            (json_int_t)c.upserts, "removes", (json_int_t)c.removes, "changed_in_place",
            (json_int_t)c.changed_in_place, "skipped_bad_name", (json_int_t)c.skipped_bad_name,
            "skipped_bad_data", (json_int_t)c.skipped_bad_data, "skipped_too_large",
            (json_int_t)c.skipped_too_large);
        if (o)
            json_object_update_new(
                o, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "batches",
                             (json_int_t)c.batches, "ignored", (json_int_t)c.ignored, "ignored_now",
                             (json_int_t)c.ignored_now, "skipped_unreadable",
                             (json_int_t)c.skipped_unreadable, "bad_now", (json_int_t)c.bad_now,
                             "held_removals", (json_int_t)c.held_removals, "held_now",
                             (json_int_t)c.held_now, "errors", (json_int_t)c.errors));
        if (s.fmt->layout == FMT_LAYOUT_SINGLE && o)
            json_object_set_new(o, "service", json_string(s.service));
        if (!o || json_array_append_new(arr, o)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
