/* SPDX-License-Identifier: MIT */
/*
 * zk_sync.c — discd's ZooKeeper layer (see zk_sync.h and docs/ZOOKEEPER.md).
 *
 * Structure: the ZooKeeper client's watcher only queues events; one worker
 * thread owns the session, the remote picture and all I/O. The daemon's
 * desired local set is shared under zs->mu (publish/withdraw edit it, the
 * worker snapshots it to reconcile); everything else below "worker-private"
 * is touched by the worker thread only.
 */
#include "zk_sync.h"
#include "zk_batch.h"
#include "zk_snapshot.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#define UUID_LEN          36
#define MAX_NAME_LEN      (UUID_LEN + 1 + 20)
#define MAX_HOST_ID       255
#define BATCH_MAX         256          /* outstanding async requests per batch */
#define RETRY_MS          500          /* after a failed listing or write while connected */
#define NEW_SESSION_RETRY 1000         /* zookeeper_init failed outright */
#define TICK_MS           1000         /* the worker wakes at least this often */
#define REPORT_MS         1000         /* on_state at least this often while rounds complete */
#define AUTH_RETRY_MS     5000         /* new session after an authentication failure */
#define RESOLVE_DELAY_MS  60000        /* zoo_set_servers_resolution_delay */
#define CLIENT_LOG_WINDOW 10000        /* client log rate limit: window ... */
#define CLIENT_LOG_LINES  10           /* ... and lines per window */
#define MULTI_MAX_BYTES   (512 * 1024) /* one atomic announce (zoo_multi), below jute.maxbuffer */
#define HOST_WINDOW       256          /* host subtrees listed and read concurrently */
#define SNAP_MIN_NEW      8    /* read a known host's snapshot when a listing brings this many */
#define SNAP_QUIET_MS     100  /* own snapshot: written once the set is this long unchanged ... */
#define SNAP_MAX_DELAY_MS 1000 /* ... or this long after its first change, whichever is first */
#define SNAP_RETRY_MS     5000 /* after a failed snapshot write */
/* Early creates are confirmed together, this long after the first. 0: as
 * soon as the worker runs (what arrived meanwhile is confirmed with it).
 * 100 ms cut A's worker wake-ups 8x and the propagation p50 by ~10%, but
 * the deferred confirmations (own listing, reconcile) then landed among
 * other clients' requests: bench_zk_prop's p99, discd's and the raw
 * baseline's alike, rose by ~40% on a quiet machine (docs/ZOOKEEPER.md). */
#define LOCAL_SETTLE_MS 0

enum rn_kind {
    RN_OK,   /* valid document, eligible to be reported */
    RN_NEW,  /* listed, not fetched yet */
    RN_BAD,  /* bad name, bad data or conflicting id: remembered, never reported */
    RN_DROP, /* to be removed from the list (fetch failed transiently) */
};

struct rnode {
    char *name;
    uint64_t seq;
    enum rn_kind kind;
    bool bad_name; /* not <uuid>[-<seq>]: never read */
    bool refetch;  /* changed in place (audit): settle even if seq is unchanged */
    bool watched;  /* own node: data watch armed (tamper detection) */
    int64_t mzxid; /* stat of the last read or audit (0 = unknown) */
    int32_t aversion;
    int64_t snap_owner; /* taken from a snapshot written by this session (0: read itself);
                         * the audit checks the node's ephemeralOwner against it */
    char *tmp_json;     /* fetched this round, freed at its end */
    size_t tmp_len;
    json_t *tmp_doc; /* tmp_json parsed (once), freed with it */
};

struct rhost {
    char *name;
    char *path;
    struct rnode *nodes; /* sorted by strcmp(name) */
    size_t n;
    bool dirty;      /* needs listing (and re-arming its watch) */
    bool bad;        /* not a valid host id: ignored */
    bool unreadable; /* listing refused (ZNOAUTH): skipped until the audit or a change */
    bool missing;    /* listed under <root>/hosts but its subtree is gone (ZNONODE) */
    bool listed;     /* listed at least once (its snapshot is read with the first listing) */
    int64_t pzxid;   /* pzxid of the last listing applied (0: unknown): an older fast
                      * listing is not applied after a newer one */
};

enum id_state { ID_EMPTY = 0, ID_LIVE, ID_HELD };

struct idrec {
    char id[UUID_LEN + 1];
    enum id_state state;
    bool conflicted; /* another host claimed it too: re-evaluate when the winner goes */
    uint64_t seq;
    char *host;
};

/* A desired local instance; immutable once shared, refcounted under zs->mu. */
struct lnode {
    char id[UUID_LEN + 1];
    uint64_t seq;
    char name[MAX_NAME_LEN + 1];
    size_t len;
    int refs;
    /* early create (zk_sync_publish_local), under zs->mu: */
    int early;          /* EARLY_NONE / _PENDING / _OK / _FAILED */
    uint64_t early_gen; /* zs->early_gen when issued: valid in that session only */
    bool early_created; /* worker only: its early create succeeded (this reconcile) */
    bool early_watch;   /* the node's data watch went out right behind its early create */
    char json[];        /* len bytes + NUL */
};

enum { EARLY_NONE = 0, EARLY_PENDING, EARLY_OK, EARLY_FAILED };

struct fastop;

struct zevent {
    struct zevent *next;
    zhandle_t *zh;
    int type;
    int state;
    struct fastop *fast; /* a fast listing (and its reads) done for this child event */
    char path[];
};

struct zk_sync {
    /* configuration (immutable after start) */
    char *connect, *root, *host_id, *hosts_path;
    int session_timeout_ms, cooloff_ms, jitter_ms, audit_ms, region_wait_ms;
    char *auth; /* "user:password" or NULL */
    struct ACL acl_node[2], acl_hosts[2];
    struct ACL_vector acl_node_v, acl_hosts_v; /* what we create nodes with */
    size_t max_doc;
    bool snapshots;                  /* write and read aggregate snapshots */
    char *snap_path, *own_snap_path; /* <root>/snap, <root>/snap/<host> */
    enum zk_sync_log_level log_level;
    struct zk_sync_callbacks cb;
    void *arg;
    struct zk_sync_ext ext[ZK_SYNC_EXT_MAX]; /* extensions (zk_sync.h), worker thread */
    size_t n_ext;
    pthread_t thread;

    /* The remote picture's arrays (hosts, nhosts, and each host's nodes, n,
     * listed, and the node names) are written by the worker only, under
     * pic_lock held for writing; the client's completion thread reads them
     * under it for reading, to find a child event's new names ("Fast path").
     * The worker reads them without it. */
    pthread_rwlock_t pic_lock;

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake;    /* worker: events, local changes, stop */
    pthread_cond_t applied; /* waiters of zk_sync_wait_local_applied */
    bool stop;
    struct zevent *ev_head, *ev_tail;
    bool ev_woken; /* the worker was signalled for the events queued */
    /* Early creates that succeeded are confirmed by the worker (listing,
     * reconcile, own watches) together, at local_hold_until (monotonic ms,
     * 0: no hold), not one wake-up each while the region reads them. A
     * change that cannot wait (a withdrawal, a publish without an early
     * create, a failed one) sets local_urgent and ends the hold. */
    int64_t local_hold_until;
    bool local_urgent;
    /* reconcile_local is waiting for early creates' replies: each one
     * wakes it, hold or not */
    bool early_waiting;
    struct lnode **local; /* desired set, sorted by id */
    size_t nlocal, cap_local;
    uint64_t local_gen;   /* bumped by every effective publish/withdraw */
    uint64_t applied_gen; /* local_gen last seen fully applied */
    uint64_t last_seq;
    /* The session's handle while early creates are safe (connected, own
     * subtree exists, first reconcile done), else NULL. Set and cleared by
     * the worker under mu, and cleared before the handle is closed, so a
     * publisher holding mu may issue an async create on it. */
    zhandle_t *early_zh;
    uint64_t early_gen; /* bumped when a session's handle is closed */
    uint64_t early_creates;
    struct zk_sync_status status;
    clientid_t session; /* last established session (zk_sync_get_session), id 0: none */

    /* Fast listings (fast_start .. fast_finish) with requests in flight,
     * and whether new ones are refused: a handle is closed only once none
     * is in flight (libzookeeper 3.8 leaks the request and its watch
     * registration of a call still pending at zookeeper_close). */
    atomic_int fast_inflight;
    atomic_bool fast_closing;
    /* The other requests nobody waits for (own-node exists watches, early
     * creates): issued, not yet completed. Awaited at the close for the same
     * reason: libzookeeper 3.8's completion thread exits at zookeeper_close
     * without running the completions queued for requests still pending, so
     * their memory and ours leak (ASan: test_zkd_persist, a discd stopped
     * 0.1 s after start with 5 own watches in flight). */
    atomic_int async_inflight;

    /* worker-private */
    clientid_t resume; /* zk_sync_config.resume, used by the first open_session */
    zhandle_t *zh;
    bool connected, ever_connected;
    bool session_new;   /* no reconcile has succeeded in this session yet */
    bool session_fresh; /* not connected yet in this session */
    int64_t new_session_at, resync_at, retry_at, cool_until; /* monotonic ms, 0 = none */
    int64_t disconnected_at; /* monotonic ms the session lost its connection, 0 = connected */
    int64_t region_until;    /* monotonic ms: tree lost, absent hosts' removals held until */
    int64_t next_audit_at;   /* monotonic ms of the next audit pass, 0 = none */
    int64_t last_report_ms;  /* monotonic ms of the last on_state */
    int64_t hosts_czxid;     /* czxid of <root>/hosts as last listed (0 = unknown) */
    int64_t hosts_ctime;     /* and its ctime */
    bool synced;             /* the last round completed without error */
    int64_t error_since_ms;  /* realtime ms of the first failed round in a row */
    char last_error[160];    /* the last failed round's first error */
    char round_error[160];   /* the current round's first error ("" none) */
    bool hosts_dirty, local_dirty;
    int64_t hold_w;  /* local_hold_until as the worker last read it (under mu) */
    bool own_exists; /* our host's container node is known to exist */
    struct rhost own;
    struct rhost **hosts; /* other hosts, sorted by name */
    size_t nhosts, cap_hosts;
    struct idrec *idx; /* open addressing, linear probing */
    size_t idx_cap, idx_count, held_count;
    struct zk_sync_counters c;
    enum zk_sync_state state;
    int64_t since_ms, last_sync_ms;
    int64_t session_since_ms; /* 0: no session established */
    unsigned rnd;
    bool delivering;    /* inside on_batch_begin .. on_batch_end */
    bool delivery_held; /* sync_hosts_batch: one delivery batch for a window of hosts */
    /* own aggregate snapshot (worker-private) */
    bool snap_dirty;               /* the confirmed own set changed since the last write */
    bool snap_session_ok;          /* written in this session */
    int64_t snap_first, snap_last; /* monotonic ms of the first and last change unwritten */
    uint64_t snap_gen;             /* generation last written */
    size_t snap_nchunks;           /* chunks written in this session (they exist) */
    char snap_error[160];          /* last write error logged ("" none) */
};

/* ---------- small helpers ---------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void zlog(struct zk_sync *zs, enum zk_sync_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void zlog(struct zk_sync *zs, enum zk_sync_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (lvl > zs->log_level) {
        return;
    }
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (zs->cb.log) {
        zs->cb.log(zs->arg, lvl, msg);
    } else {
        fprintf(stderr, "zk_sync %s %s\n", names[lvl], msg);
    }
}

static int jitter(struct zk_sync *zs)
{
    if (zs->jitter_ms <= 0) {
        return 0;
    }
    return (int)(rand_r(&zs->rnd) % (unsigned)(zs->jitter_ms + 1));
}

const char *zk_sync_state_name(enum zk_sync_state state)
{
    switch (state) {
    case ZK_SYNC_CONNECTING:
        return "connecting";
    case ZK_SYNC_CONNECTED:
        return "connected";
    case ZK_SYNC_DISCONNECTED:
        return "disconnected";
    case ZK_SYNC_EXPIRED:
        return "expired";
    }
    return "unknown";
}

static bool is_hex_lower(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

static bool is_uuid_prefix(const char *s)
{
    for (int i = 0; i < UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return false;
            }
        } else if (!is_hex_lower(s[i])) {
            return false;
        }
    }
    return true;
}

bool zk_sync_is_uuid(const char *s)
{
    return s && strnlen(s, UUID_LEN + 1) == UUID_LEN && is_uuid_prefix(s);
}

bool zk_sync_is_host_id(const char *s)
{
    if (!s) {
        return false;
    }
    size_t n = strnlen(s, MAX_HOST_ID + 1);
    if (n == 0 || n > MAX_HOST_ID || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Node name "<uuid>" or "<uuid>-<seq>" (1..19 digits). */
static bool parse_node_name(const char *name, char id[UUID_LEN + 1], uint64_t *seq)
{
    size_t n = strnlen(name, MAX_NAME_LEN + 1);
    if (n < UUID_LEN || n > MAX_NAME_LEN || !is_uuid_prefix(name)) {
        return false;
    }
    *seq = 0;
    if (n > UUID_LEN) {
        const char *p = name + UUID_LEN;
        size_t digits = n - UUID_LEN - 1;
        if (*p != '-' || digits == 0 || digits > 19) {
            return false;
        }
        for (size_t i = 1; i <= digits; i++) {
            if (p[i] < '0' || p[i] > '9') {
                return false;
            }
            *seq = *seq * 10 + (uint64_t)(p[i] - '0');
        }
    }
    memcpy(id, name, UUID_LEN);
    id[UUID_LEN] = '\0';
    return true;
}

int zk_sync_parse_doc(const char *json, size_t len, const char *expect_id, size_t max, json_t **out,
                      const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    *out = NULL;
    if (len > max) {
        *why = "document too large";
        return -E2BIG;
    }
    json_error_t err;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!doc) {
        *why = "not valid JSON";
        return -EINVAL;
    }
    int rc = 0;
    json_t *id = json_object_get(doc, "id");
    json_t *svc = json_object_get(doc, "service");
    if (!json_is_object(doc)) {
        *why = "not a JSON object";
        rc = -EINVAL;
    } else if (!json_is_string(id)) {
        *why = "\"id\" missing or not a string";
        rc = -EINVAL;
    } else if (expect_id && strcmp(json_string_value(id), expect_id) != 0) {
        *why = "\"id\" does not match the node name";
        rc = -EINVAL;
    } else if (!json_is_string(svc) || json_string_length(svc) == 0) {
        *why = "\"service\" missing or not a non-empty string";
        rc = -EINVAL;
    }
    if (rc != 0) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

int zk_sync_check_doc(const char *json, size_t len, const char *expect_id, size_t max,
                      const char **why)
{
    json_t *doc;
    int rc = zk_sync_parse_doc(json, len, expect_id, max, &doc, why);
    json_decref(doc);
    return rc;
}

/* ---------- id index (worker-private) ---------- */

static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < UUID_LEN; i++) {
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 29));
}

static struct idrec *idx_find(struct zk_sync *zs, const char *id)
{
    if (zs->idx_cap == 0) {
        return NULL;
    }
    size_t mask = zs->idx_cap - 1;
    for (size_t i = hash_id(id) & mask;; i = (i + 1) & mask) {
        struct idrec *r = &zs->idx[i];
        if (r->state == ID_EMPTY) {
            return NULL;
        }
        if (memcmp(r->id, id, UUID_LEN) == 0) {
            return r;
        }
    }
}

static int idx_grow(struct zk_sync *zs)
{
    size_t ncap = zs->idx_cap ? zs->idx_cap * 2 : 1024;
    struct idrec *n = calloc(ncap, sizeof(*n));
    if (!n) {
        return -ENOMEM;
    }
    for (size_t k = 0; k < zs->idx_cap; k++) {
        struct idrec *r = &zs->idx[k];
        if (r->state == ID_EMPTY) {
            continue;
        }
        size_t i = hash_id(r->id) & (ncap - 1);
        while (n[i].state != ID_EMPTY) {
            i = (i + 1) & (ncap - 1);
        }
        n[i] = *r;
    }
    free(zs->idx);
    zs->idx = n;
    zs->idx_cap = ncap;
    return 0;
}

/* Insert a new record (id must not be present). NULL on ENOMEM. */
static struct idrec *idx_insert(struct zk_sync *zs, const char *id, const char *host, uint64_t seq)
{
    if ((zs->idx_count + 1) * 10 > zs->idx_cap * 7 && idx_grow(zs) != 0) {
        return NULL;
    }
    char *h = strdup(host);
    if (!h) {
        return NULL;
    }
    size_t mask = zs->idx_cap - 1;
    size_t i = hash_id(id) & mask;
    while (zs->idx[i].state != ID_EMPTY) {
        i = (i + 1) & mask;
    }
    struct idrec *r = &zs->idx[i];
    memcpy(r->id, id, UUID_LEN);
    r->id[UUID_LEN] = '\0';
    r->state = ID_LIVE;
    r->seq = seq;
    r->host = h;
    zs->idx_count++;
    return r;
}

/* Delete with backward shift so probe chains stay intact. */
static void idx_delete(struct zk_sync *zs, struct idrec *r)
{
    size_t mask = zs->idx_cap - 1;
    size_t i = (size_t)(r - zs->idx);
    free(r->host);
    if (r->state == ID_HELD) {
        zs->held_count--;
    }
    zs->idx_count--;
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (zs->idx[j].state == ID_EMPTY) {
            break;
        }
        size_t home = hash_id(zs->idx[j].id) & mask;
        /* move j into the hole at i if its home is not in (i, j] cyclically */
        bool in_range = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            zs->idx[i] = zs->idx[j];
            i = j;
        }
    }
    memset(&zs->idx[i], 0, sizeof(zs->idx[i]));
}

/* ---------- state publication ---------- */

static bool cooling(struct zk_sync *zs)
{
    return zs->cool_until != 0 && mono_ms() < zs->cool_until;
}

/* The tree was lost recently: hosts that have not re-announced are not gone yet. */
static bool rebuilding(struct zk_sync *zs)
{
    return zs->region_until != 0 && mono_ms() < zs->region_until;
}

/* Remember the first error of this round (what failed, on which path). */
static void round_fail(struct zk_sync *zs, const char *what, const char *path, int rc)
{
    if (zs->round_error[0] == '\0') {
        snprintf(zs->round_error, sizeof(zs->round_error), "%s %s: %s", what, path, zerror(rc));
    }
}

/* Copy the worker's counters into the shared status; mu held. */
static void publish_counters_locked(struct zk_sync *zs)
{
    struct zk_sync_status *st = &zs->status;
    st->counters = zs->c;
    st->counters.early_creates = zs->early_creates;
    st->counters.local_desired = zs->nlocal;
    st->counters.hosts = zs->nhosts + 1;
    st->counters.remote_instances = zs->idx_count;
    st->counters.held_now = zs->held_count;
}

/* Copy worker state into the shared status; mu held. */
static void publish_status_locked(struct zk_sync *zs)
{
    struct zk_sync_status *st = &zs->status;
    st->state = zs->state;
    st->since_ms = zs->since_ms;
    st->session_since_ms = zs->session_since_ms;
    st->last_sync_ms = zs->last_sync_ms;
    st->cooling = cooling(zs);
    st->rebuilding = rebuilding(zs);
    st->local_applied = zs->applied_gen == zs->local_gen;
    st->synced = zs->state == ZK_SYNC_CONNECTED && zs->synced;
    st->error_since_ms = zs->error_since_ms;
    snprintf(st->last_error, sizeof(st->last_error), "%s", zs->last_error);
    publish_counters_locked(zs);
}

static void publish_status(struct zk_sync *zs)
{
    pthread_mutex_lock(&zs->mu);
    publish_status_locked(zs);
    pthread_mutex_unlock(&zs->mu);
}

static void report_state(struct zk_sync *zs)
{
    zs->last_report_ms = mono_ms();
    publish_status(zs);
    if (zs->cb.on_state) {
        struct zk_sync_status st;
        zk_sync_get_status(zs, &st);
        zs->cb.on_state(zs->arg, &st);
    }
}

static void set_state(struct zk_sync *zs, enum zk_sync_state s)
{
    if (zs->state == s) {
        return;
    }
    zlog(zs, s == ZK_SYNC_CONNECTED ? ZK_SYNC_LOG_INFO : ZK_SYNC_LOG_WARN, "zookeeper %s -> %s",
         zk_sync_state_name(zs->state), zk_sync_state_name(s));
    zs->state = s;
    zs->since_ms = real_ms();
    if (s != ZK_SYNC_CONNECTED) {
        zs->synced = false; /* the first complete round after a reconnect says so */
    }
    report_state(zs);
}

/* ---------- batches of upserts / removes for the daemon ---------- */

/* Open a batch before the first upsert or remove (lazily: a round that
 * changes nothing costs the daemon nothing). */
static void deliver_open(struct zk_sync *zs)
{
    if (zs->delivering) {
        return;
    }
    zs->delivering = true;
    if (zs->cb.on_batch_begin) {
        zs->cb.on_batch_begin(zs->arg);
    }
}

/* Close the open batch, if any: the daemon publishes it as one change. */
static void deliver_close(struct zk_sync *zs)
{
    if (!zs->delivering || zs->delivery_held) {
        return;
    }
    zs->delivering = false;
    zs->c.batches++;
    /* The batch may become visible in the segment inside on_batch_end (the
     * worker commits it when the publisher is idle), before this round
     * ends: the counters that led to it are in the status first. */
    pthread_mutex_lock(&zs->mu);
    publish_counters_locked(zs);
    pthread_mutex_unlock(&zs->mu);
    if (zs->cb.on_batch_end) {
        zs->cb.on_batch_end(zs->arg);
    }
}

/* ---------- ZooKeeper watcher (client completion thread) ---------- */

static bool fast_start(struct zk_sync *zs, zhandle_t *zh, const char *path);

/* Queue an event for the worker (any thread); NULL if out of memory. */
static struct zevent *queue_event(struct zk_sync *zs, zhandle_t *zh, int type, int state,
                                  const char *path, struct fastop *fast, bool quiet)
{
    size_t plen = path ? strlen(path) : 0;
    struct zevent *ev = malloc(sizeof(*ev) + plen + 1);
    if (!ev) {
        return NULL; /* the periodic resync after the next reconnect covers a lost event */
    }
    ev->next = NULL;
    ev->zh = zh;
    ev->type = type;
    ev->state = state;
    ev->fast = fast;
    memcpy(ev->path, path ? path : "", plen + 1);
    pthread_mutex_lock(&zs->mu);
    if (zs->ev_tail) {
        zs->ev_tail->next = ev;
    } else {
        zs->ev_head = ev;
    }
    zs->ev_tail = ev;
    /* One wake-up for everything queued until the worker takes the queue
     * (it drains it all). A quiet event (the own subtree's child watch,
     * fired by our own early creates) waits for the hold's end, when the
     * worker wakes anyway to confirm them. */
    if (!zs->ev_woken && !(quiet && zs->local_hold_until != 0)) {
        zs->ev_woken = true;
        pthread_cond_signal(&zs->wake);
    }
    pthread_mutex_unlock(&zs->mu);
    return ev;
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct zk_sync *zs = ctx;
    if (type == ZOO_CHILD_EVENT && path && fast_start(zs, zh, path)) {
        return; /* the fast listing's result is queued instead (fast_finish) */
    }
    bool own_child = type == ZOO_CHILD_EVENT && path && strcmp(path, zs->own.path) == 0;
    (void)queue_event(zs, zh, type, state, path, NULL, own_child);
}

/* ---------- async batches ---------- */

struct bop {
    struct zk_batch *b;
    struct zk_sync *zs;
    int rc;
    char *data; /* get: copy of the value (NUL-terminated) if <= max_doc */
    size_t len;
    int32_t stat_len;
    int64_t mzxid; /* get / exists: the node's stat */
    int32_t aversion;
    int32_t version;
    int64_t czxid, owner;    /* get / exists: creation zxid, ephemeralOwner */
    int64_t pzxid;           /* list: the parent's pzxid */
    json_t *doc;             /* fast get: data parsed in the completion thread ... */
    const char *why;         /* ... or why it is not a valid document */
    bool parsed;             /* fast get: zk_sync_parse_doc ran (doc or why set) */
    struct fastop *fast;     /* fast get: the fast listing it belongs to */
    size_t max;              /* get: largest value copied (0: max_doc) */
    struct String_vector sv; /* list: the children (owned) */
    struct rhost *host;      /* the host this op belongs to */
    size_t node;             /* index into the node array this op belongs to */
    char path[];
};

/* One wake-up for the whole batch: zk_batch_done signals at 0. */
static void batch_wait(struct zk_sync *zs, struct zk_batch *b)
{
    if (zk_batch_wait(b)) {
        zs->c.worker_wakeups++;
    }
}

/* Record a get's reply in op (a copy of the value, the stat). */
static void get_fill(struct bop *op, int rc, const char *value, int value_len,
                     const struct Stat *stat)
{
    op->rc = rc;
    if (rc == ZOK && stat) {
        op->mzxid = stat->mzxid;
        op->aversion = stat->aversion;
        op->czxid = stat->czxid;
        op->owner = stat->ephemeralOwner;
    }
    if (rc == ZOK) {
        op->stat_len = stat ? stat->dataLength : value_len;
        op->rc = zk_batch_copy_value(value, value_len, stat, op->max ? op->max : op->zs->max_doc,
                                     &op->data, &op->len);
    }
}

static void get_done(int rc, const char *value, int value_len, const struct Stat *stat,
                     const void *data)
{
    struct bop *op = (struct bop *)data;
    get_fill(op, rc, value, value_len, stat);
    zk_batch_done(op->b);
}

static void exists_done(int rc, const struct Stat *stat, const void *data)
{
    struct bop *op = (struct bop *)data;
    op->rc = rc;
    if (rc == ZOK && stat) {
        op->mzxid = stat->mzxid;
        op->aversion = stat->aversion;
        op->version = stat->version;
        op->czxid = stat->czxid;
        op->owner = stat->ephemeralOwner;
    }
    zk_batch_done(op->b);
}

/* Record a listing's reply in op (a copy of the names, the pzxid). */
static void list_fill(struct bop *op, int rc, const struct String_vector *strings,
                      const struct Stat *stat)
{
    op->rc = rc;
    if (rc == ZOK && stat) {
        op->pzxid = stat->pzxid;
    }
    if (rc == ZOK) {
        op->rc = zk_batch_copy_children(strings, &op->sv);
    }
}

static void list_done(int rc, const struct String_vector *strings, const struct Stat *stat,
                      const void *data)
{
    struct bop *op = (struct bop *)data;
    list_fill(op, rc, strings, stat);
    zk_batch_done(op->b);
}

static void create_done(int rc, const char *value, const void *data)
{
    (void)value;
    struct bop *op = (struct bop *)data;
    op->rc = rc;
    zk_batch_done(op->b);
}

static void void_done(int rc, const void *data)
{
    struct bop *op = (struct bop *)data;
    op->rc = rc;
    zk_batch_done(op->b);
}

static struct bop *bop_new(struct zk_sync *zs, struct zk_batch *b, const char *dir,
                           const char *name)
{
    size_t need = strlen(dir) + 1 + strlen(name) + 1;
    struct bop *op = calloc(1, sizeof(*op) + need);
    if (op) {
        op->b = b;
        op->zs = zs;
        snprintf(op->path, need, "%s/%s", dir, name);
    }
    return op;
}

static void bop_free(struct bop *op)
{
    if (op) {
        deallocate_String_vector(&op->sv);
        free(op->data);
        json_decref(op->doc);
        free(op);
    }
}

/* ---------- remote picture ---------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, UUID_LEN + 1);
}

/* First node of h whose name starts with id (or the insertion point). */
static size_t find_group(const struct rhost *h, const char *id)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strncmp(h->nodes[mid].name, id, UUID_LEN) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Synchronous fallback read of one node (rare, see settle_id). */
static int read_node(struct zk_sync *zs, const struct rhost *h, struct rnode *rn)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", h->path, rn->name);
    int len = (int)zs->max_doc + 1;
    char *buf = malloc((size_t)len + 1);
    if (!buf) {
        return ZSYSTEMERROR;
    }
    struct Stat st;
    zs->c.reads++;
    zs->c.worker_wakeups++; /* a synchronous call: one wake-up for its reply */
    int rc = zoo_get(zs->zh, path, 0, buf, &len, &st);
    if (rc == ZOK) {
        rn->mzxid = st.mzxid;
        rn->aversion = st.aversion;
    }
    json_t *doc = NULL;
    bool ok = rc == ZOK && len >= 0 && (size_t)len <= zs->max_doc && st.dataLength == len;
    if (ok) {
        zs->c.docs_parsed++;
        ok = zk_sync_parse_doc(buf, (size_t)len, NULL, zs->max_doc, &doc, NULL) == 0;
    }
    if (!ok) {
        free(buf);
        return rc != ZOK ? rc : ZBADARGUMENTS;
    }
    buf[len] = '\0';
    rn->tmp_json = buf;
    rn->tmp_len = (size_t)len;
    rn->tmp_doc = doc;
    return ZOK;
}

static void remote_upsert(struct zk_sync *zs, const struct rhost *h, const char *id,
                          const struct rnode *rn)
{
    zs->c.upserts++;
    zlog(zs, ZK_SYNC_LOG_DEBUG, "upsert %s/%s", h->name, rn->name);
    deliver_open(zs);
    if (zs->cb.on_remote_upsert_doc) {
        zs->cb.on_remote_upsert_doc(zs->arg, h->name, id, rn->tmp_doc, rn->tmp_json, rn->tmp_len);
    } else if (zs->cb.on_remote_upsert) {
        zs->cb.on_remote_upsert(zs->arg, h->name, id, rn->tmp_json, rn->tmp_len);
    }
}

/*
 * The id has no valid node left in its host: report or hold. Held during
 * cooling-off, and while the tree is being rebuilt if the host itself is
 * absent (it may not have re-announced yet).
 */
static void remote_gone(struct zk_sync *zs, struct idrec *rec, bool host_absent)
{
    if (rec->state == ID_HELD) {
        return;
    }
    if (cooling(zs) || (host_absent && rebuilding(zs))) {
        rec->state = ID_HELD;
        zs->held_count++;
        zs->c.held_removals++;
        zlog(zs, ZK_SYNC_LOG_DEBUG, "hold removal of %s (%s)", rec->id,
             cooling(zs) ? "cooling off" : "host has not re-announced");
        return;
    }
    char id[UUID_LEN + 1], host[MAX_HOST_ID + 1];
    memcpy(id, rec->id, sizeof(id));
    snprintf(host, sizeof(host), "%s", rec->host);
    idx_delete(zs, rec);
    zs->c.removes++;
    deliver_open(zs);
    if (zs->cb.on_remote_remove) {
        zs->cb.on_remote_remove(zs->arg, host, id);
    }
}

/* The valid node with the highest seq for id in h, or NULL. */
static struct rnode *best_node(struct rhost *h, const char *id)
{
    struct rnode *best = NULL;
    for (size_t i = find_group(h, id); i < h->n && strncmp(h->nodes[i].name, id, UUID_LEN) == 0;
         i++) {
        struct rnode *rn = &h->nodes[i];
        if (rn->kind == RN_OK && (!best || rn->seq > best->seq)) {
            best = rn;
        }
    }
    return best;
}

/*
 * Conflict rule: when several hosts hold a valid node for one id, the host
 * with the smallest host id (strcmp order) owns it. The first such host
 * other than `exclude` (zs->hosts is sorted), with its best node in *bn.
 */
static struct rhost *first_claimant(struct zk_sync *zs, const char *id, const struct rhost *exclude,
                                    struct rnode **bn)
{
    for (size_t i = 0; i < zs->nhosts; i++) {
        struct rhost *h = zs->hosts[i];
        if (h == exclude || h->bad || h->missing) {
            continue;
        }
        struct rnode *b = best_node(h, id);
        if (b) {
            *bn = b;
            return h;
        }
    }
    return NULL;
}

/* Give rec to host h (another claimant) and report h's document. */
static int hand_over(struct zk_sync *zs, struct idrec *rec, struct rhost *h, struct rnode *bn)
{
    char *nh = strdup(h->name);
    if (!nh) {
        return ZSYSTEMERROR;
    }
    bool fetched = false;
    if (!bn->tmp_json) {
        int rc = read_node(zs, h, bn);
        if (rc != ZOK) {
            free(nh);
            return rc;
        }
        fetched = true;
    }
    zlog(zs, ZK_SYNC_LOG_INFO, "id %s: host %s's claim goes, host %s's takes over", rec->id,
         rec->host, h->name);
    free(rec->host);
    rec->host = nh;
    rec->seq = bn->seq;
    if (rec->state == ID_HELD) {
        rec->state = ID_LIVE;
        zs->held_count--;
        zs->c.held_restored++;
    }
    remote_upsert(zs, h, rec->id, bn);
    if (fetched) {
        free(bn->tmp_json);
        bn->tmp_json = NULL;
        json_decref(bn->tmp_doc);
        bn->tmp_doc = NULL;
    }
    return ZOK;
}

/*
 * The owner of rec (host `from`) no longer claims it. If rec was contested,
 * the next claimant by the conflict rule takes over; otherwise it is gone.
 */
static int owner_gone(struct zk_sync *zs, struct idrec *rec, struct rhost *from, bool absent)
{
    if (rec->conflicted && rec->state == ID_LIVE) {
        for (;;) {
            struct rnode *bn = NULL;
            struct rhost *o = first_claimant(zs, rec->id, from, &bn);
            if (!o) {
                break;
            }
            int rc = hand_over(zs, rec, o, bn);
            if (rc == ZOK) {
                return ZOK;
            }
            if (rc == ZNONODE || rc == ZNOAUTH || rc == ZBADARGUMENTS) {
                bn->kind = rc == ZNONODE ? RN_DROP : RN_BAD; /* try the next claimant */
                if (rc == ZNONODE) {
                    o->dirty = true;
                }
                continue;
            }
            return rc;
        }
        rec->conflicted = false;
    }
    remote_gone(zs, rec, absent);
    return ZOK;
}

/*
 * Bring the index entry of `id` in line with host h's nodes for it: the
 * valid node with the highest seq is h's claim; among hosts, the conflict
 * rule decides. Returns a ZooKeeper error if a needed fallback read failed
 * (the host then stays dirty).
 */
static int settle_id(struct zk_sync *zs, struct rhost *h, const char *id)
{
    for (;;) {
        struct rnode *best = best_node(h, id);
        struct idrec *rec = idx_find(zs, id);
        if (!best) {
            if (rec && strcmp(rec->host, h->name) == 0) {
                return owner_gone(zs, rec, h, h->missing);
            }
            return ZOK;
        }
        if (rec && strcmp(rec->host, h->name) != 0) {
            if (rec->state == ID_LIVE) {
                bool first = !rec->conflicted;
                rec->conflicted = true;
                zs->c.conflicts++;
                if (strcmp(h->name, rec->host) > 0) {
                    zlog(zs, first ? ZK_SYNC_LOG_WARN : ZK_SYNC_LOG_DEBUG,
                         "id %s claimed by hosts %s and %s: %s keeps it (smallest host id wins)",
                         id, rec->host, h->name, rec->host);
                    return ZOK;
                }
                zlog(zs, ZK_SYNC_LOG_WARN,
                     "id %s claimed by hosts %s and %s: %s takes it (smallest host id wins)", id,
                     rec->host, h->name, h->name);
            }
            int rc = hand_over(zs, rec, h, best);
            if (rc == ZNONODE || rc == ZNOAUTH || rc == ZBADARGUMENTS) {
                best->kind = rc == ZNONODE ? RN_DROP : RN_BAD;
                continue;
            }
            return rc;
        }
        if (rec && rec->seq == best->seq && !best->refetch) {
            if (rec->state == ID_HELD) {
                rec->state = ID_LIVE;
                zs->held_count--;
                zs->c.held_restored++;
            }
            return ZOK;
        }
        if (!best->tmp_json) {
            int rc = read_node(zs, h, best);
            if (rc == ZNONODE || rc == ZNOAUTH || rc == ZBADARGUMENTS) {
                best->kind = rc == ZNONODE ? RN_DROP : RN_BAD;
                continue; /* the next best node of h, if any */
            }
            if (rc != ZOK) {
                return rc;
            }
        }
        if (rec) {
            if (rec->state == ID_HELD) {
                rec->state = ID_LIVE;
                zs->held_count--;
                zs->c.held_restored++;
            }
            rec->seq = best->seq;
        } else if (!idx_insert(zs, id, h->name, best->seq)) {
            zlog(zs, ZK_SYNC_LOG_ERROR, "out of memory indexing %s", id);
            return ZSYSTEMERROR;
        }
        remote_upsert(zs, h, id, best);
        return ZOK;
    }
}

static void free_nodes(struct rnode *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(nodes[i].name);
        free(nodes[i].tmp_json);
        json_decref(nodes[i].tmp_doc);
    }
    free(nodes);
}

/* A successful get (op->rc == ZOK) of node rn: its document (parsed here,
 * or already by the fast path) or why it is skipped. op->data is taken
 * over if the document is good. */
static void take_read(struct zk_sync *zs, struct rnode *rn, struct bop *op)
{
    rn->mzxid = op->mzxid;
    rn->aversion = op->aversion;
    zs->c.read_bytes += op->len;
    if (op->stat_len < 0 || (size_t)op->stat_len > zs->max_doc) {
        rn->kind = RN_BAD;
        zs->c.skipped_too_large++;
        zlog(zs, ZK_SYNC_LOG_WARN, "skip %s: %d bytes > %zu", op->path, (int)op->stat_len,
             zs->max_doc);
        return;
    }
    if (!op->data) {
        rn->kind = RN_BAD;
        zs->c.skipped_bad_data++;
        zlog(zs, ZK_SYNC_LOG_WARN, "skip %s: no data", op->path);
        return;
    }
    if (!op->parsed) {
        char id[UUID_LEN + 1];
        memcpy(id, rn->name, UUID_LEN);
        id[UUID_LEN] = '\0';
        zs->c.docs_parsed++;
        op->parsed = true;
        (void)zk_sync_parse_doc(op->data, op->len, id, zs->max_doc, &op->doc, &op->why);
    }
    if (!op->doc) {
        rn->kind = RN_BAD;
        zs->c.skipped_bad_data++;
        zlog(zs, ZK_SYNC_LOG_WARN, "skip %s: %s", op->path, op->why ? op->why : "bad document");
        return;
    }
    rn->kind = RN_OK;
    free(rn->tmp_json); /* a refetch of a node read this round */
    json_decref(rn->tmp_doc);
    rn->tmp_json = op->data;
    rn->tmp_len = op->len;
    rn->tmp_doc = op->doc;
    op->data = NULL;
    op->doc = NULL;
}

/* Fetch every RN_NEW node of hosts hs[0..nh), in windows of BATCH_MAX async
 * gets that span hosts. A host with a failed read is left dirty. */
static int fetch_new_hosts(struct zk_sync *zs, struct rhost **hs, size_t nh)
{
    int worst = ZOK;
    size_t hi = 0, i = 0;
    while (hi < nh) {
        struct zk_batch b;
        zk_batch_init(&b);
        struct bop *ops[BATCH_MAX];
        size_t nops = 0;
        while (hi < nh && nops < BATCH_MAX) {
            struct rhost *h = hs[hi];
            if (i >= h->n) {
                hi++;
                i = 0;
                continue;
            }
            struct rnode *rn = &h->nodes[i++];
            if (rn->kind != RN_NEW) {
                continue;
            }
            struct bop *op = bop_new(zs, &b, h->path, rn->name);
            if (!op) {
                rn->kind = RN_DROP;
                h->dirty = true;
                worst = ZSYSTEMERROR;
                continue;
            }
            op->node = i - 1;
            op->host = h;
            zk_batch_add(&b);
            zs->c.reads++;
            int rc = zoo_aget(zs->zh, op->path, 0, get_done, op);
            zk_batch_issued(&b, rc, &op->rc);
            ops[nops++] = op;
        }
        batch_wait(zs, &b);
        zk_batch_destroy(&b);
        for (size_t k = 0; k < nops; k++) {
            struct bop *op = ops[k];
            struct rnode *rn = &op->host->nodes[op->node];
            if (op->rc == ZNONODE) {
                rn->kind = RN_DROP; /* deleted between list and get */
            } else if (op->rc == ZNOAUTH) {
                rn->kind = RN_BAD; /* re-read if the audit sees its ACL change */
                zs->c.skipped_unreadable++;
                zlog(zs, ZK_SYNC_LOG_WARN, "skip %s: not readable (%s)", op->path, zerror(op->rc));
            } else if (op->rc != ZOK) {
                rn->kind = RN_DROP; /* retried on the next listing */
                op->host->dirty = true;
                if (worst == ZOK) {
                    round_fail(zs, "read", op->path, op->rc);
                }
                worst = op->rc;
            } else {
                take_read(zs, rn, op);
            }
            free(op->data);
            free(op);
        }
    }
    return worst;
}

static int fetch_new(struct zk_sync *zs, struct rhost *h)
{
    return fetch_new_hosts(zs, &h, 1);
}

/* Fetch h's RN_NEW nodes and settle the ids in touched[0..nt) (sorted or not). */
static int fetch_and_settle(struct zk_sync *zs, struct rhost *h, char (*touched)[UUID_LEN + 1],
                            size_t nt)
{
    int worst = fetch_new(zs, h);
    if (nt > 1) {
        qsort(touched, nt, sizeof(*touched), cmp_id);
    }
    for (size_t k = 0; k < nt; k++) {
        if (k > 0 && memcmp(touched[k], touched[k - 1], UUID_LEN) == 0) {
            continue;
        }
        int src = settle_id(zs, h, touched[k]);
        if (src != ZOK) {
            round_fail(zs, "read", h->path, src);
            worst = src;
        }
    }
    deliver_close(zs); /* everything this listing changed: one batch */
    /* drop transient failures (they look new again next time), free fetched data */
    size_t w = 0;
    pthread_rwlock_wrlock(&zs->pic_lock);
    for (size_t k = 0; k < h->n; k++) {
        struct rnode *rn = &h->nodes[k];
        free(rn->tmp_json);
        rn->tmp_json = NULL;
        json_decref(rn->tmp_doc);
        rn->tmp_doc = NULL;
        rn->refetch = false;
        if (rn->kind == RN_DROP) {
            free(rn->name);
            continue;
        }
        h->nodes[w++] = *rn;
    }
    h->n = w;
    pthread_rwlock_unlock(&zs->pic_lock);
    if (worst != ZOK) {
        h->dirty = true;
    }
    return worst;
}

/*
 * Apply host h's listing (rc and *svp from get_children, which re-armed its
 * child watch; *svp is taken over): diff against memory, new names become
 * RN_NEW. For the own host only the list is kept (it drives the local
 * reconcile). For another host, *touched_out (if the listing applied) gets
 * the ids to settle once the new names are read; the caller frees it. ZOK
 * or the ZooKeeper error; a subtree we may not list (ZNOAUTH) is skipped and
 * counted, not an error. pzxid: the listing's (0: unknown). A fast listing
 * (fast) older than the last one applied (overtaken by the worker's) is
 * dropped, and the host listed again by the worker to be sure; the worker's
 * own listings always apply (a wiped server counts zxids from the start).
 */
static int apply_listing(struct zk_sync *zs, struct rhost *h, bool own, int rc,
                         struct String_vector *svp, int64_t pzxid, bool fast,
                         char (**touched_out)[UUID_LEN + 1], size_t *nt_out)
{
    struct String_vector sv = *svp;
    *svp = (struct String_vector){0, NULL};
    if (touched_out) {
        *touched_out = NULL;
        *nt_out = 0;
    }
    if (rc == ZNOAUTH && !own) {
        h->dirty = false;
        if (!h->unreadable) {
            h->unreadable = true;
            zs->c.skipped_unreadable++;
            zlog(zs, ZK_SYNC_LOG_WARN, "skip host %s: subtree not readable (%s)", h->name,
                 zerror(rc));
        }
        return ZOK; /* its known nodes stay as they were; the audit retries */
    }
    if (rc == ZNONODE) {
        sv.count = 0; /* subtree gone: every node of it is gone */
    } else if (rc != ZOK) {
        round_fail(zs, "list", h->path, rc);
        return rc;
    }
    if (fast && pzxid < h->pzxid) {
        deallocate_String_vector(&sv);
        h->dirty = true;
        return ZOK;
    }
    h->unreadable = false;
    h->missing = rc == ZNONODE;
    h->pzxid = rc == ZOK ? pzxid : 0;
    if (own) {
        zs->own_exists = rc == ZOK;
    }
    h->dirty = false;
    if (sv.count > 0) {
        qsort(sv.data, (size_t)sv.count, sizeof(char *), cmp_str);
    }
    size_t nn = (size_t)(sv.count > 0 ? sv.count : 0);
    struct rnode *out = calloc(nn + 1, sizeof(*out));
    char(*touched)[UUID_LEN + 1] = calloc(nn + h->n + 1, sizeof(*touched));
    if (!out || !touched) {
        free(out);
        free(touched);
        deallocate_String_vector(&sv);
        h->dirty = true;
        round_fail(zs, "list", h->path, ZSYSTEMERROR);
        return ZSYSTEMERROR;
    }
    size_t no = 0, nt = 0, i = 0, j = 0;
    bool changed = false;
    pthread_rwlock_wrlock(&zs->pic_lock); /* names are freed and the array replaced */
    h->listed = true;
    while (i < h->n || j < nn) {
        int c = i >= h->n ? 1 : j >= nn ? -1 : strcmp(h->nodes[i].name, sv.data[j]);
        if (c == 0) {
            out[no++] = h->nodes[i++];
            j++;
        } else if (c < 0) { /* gone from ZooKeeper */
            struct rnode *rn = &h->nodes[i++];
            if (!rn->bad_name) {
                memcpy(touched[nt], rn->name, UUID_LEN);
                touched[nt++][UUID_LEN] = '\0';
            }
            free(rn->name);
            free(rn->tmp_json);
            json_decref(rn->tmp_doc);
            changed = true;
        } else { /* never seen */
            struct rnode rn = {.name = sv.data[j], .kind = RN_NEW};
            sv.data[j++] = NULL; /* ownership moves to rn */
            char id[UUID_LEN + 1];
            changed = true;
            if (!parse_node_name(rn.name, id, &rn.seq)) {
                rn.kind = RN_BAD;
                rn.bad_name = true;
                zs->c.skipped_bad_name++;
                zlog(zs, ZK_SYNC_LOG_WARN, "skip %s/%s: not <uuid>[-<seq>]", h->path, rn.name);
            } else {
                if (own) {
                    rn.kind = RN_OK;
                }
                memcpy(touched[nt++], id, UUID_LEN + 1);
            }
            out[no++] = rn;
        }
    }
    free(h->nodes);
    h->nodes = out;
    h->n = no;
    pthread_rwlock_unlock(&zs->pic_lock);
    deallocate_String_vector(&sv);
    if (own) {
        free(touched);
        if (changed || rc == ZNONODE) {
            zs->local_dirty = true;
        }
        return ZOK;
    }
    *touched_out = touched;
    *nt_out = nt;
    return ZOK;
}

/*
 * List host h (re-arming its child watch), diff against memory, fetch only
 * names never seen, settle every touched id (apply_listing). Used for the
 * own host and single hosts; many hosts go through sync_hosts_batch.
 */
static int sync_host(struct zk_sync *zs, struct rhost *h, bool own)
{
    struct String_vector sv = {0, NULL};
    zs->c.lists++;
    zs->c.worker_wakeups++;
    int rc = zoo_get_children(zs->zh, h->path, 1, &sv);
    char(*touched)[UUID_LEN + 1] = NULL;
    size_t nt = 0;
    rc = apply_listing(zs, h, own, rc, &sv, 0, false, own ? NULL : &touched, &nt);
    if (rc != ZOK || !touched) {
        free(touched);
        return rc;
    }
    int worst = fetch_and_settle(zs, h, touched, nt);
    free(touched);
    return worst;
}

/* ---------- fast path: a child event listed and read in the completion thread ---------- */

/*
 * When the child watch of a known host subtree fires, the client's
 * completion thread lists the subtree at once (re-arming the watch), reads
 * the names the worker has never seen (at most FAST_MAX_NEW; more go the
 * worker's way, with the snapshot) and parses them, and only then queues
 * one event with all of it for the worker, which applies it like its own
 * listing and reads (apply_listing, take_read, fetch_and_settle). So a
 * propagated instance costs the worker one wake-up instead of three
 * (event, listing, reads), and list and get follow each other without a
 * thread hand-over. Anything unusual (a failed request, a host not listed
 * yet, too many new names) falls back to the plain event: the host is
 * marked dirty and listed by the worker.
 */
#define FAST_MAX_NEW (SNAP_MIN_NEW - 1)

struct fastop {
    struct zk_sync *zs;
    zhandle_t *zh;
    struct bop *list;  /* the listing (rc, names, pzxid) */
    struct bop **gets; /* reads of the new names */
    size_t ngets;
    atomic_size_t pending; /* gets not completed yet, + 1 while they are issued */
    size_t nsent;          /* gets sent */
    bool plain;            /* hand over as a plain event (the worker lists) */
    char path[];
};

static void fast_free(struct fastop *f)
{
    if (!f) {
        return;
    }
    bop_free(f->list);
    for (size_t i = 0; i < f->ngets; i++) {
        bop_free(f->gets[i]);
    }
    free(f->gets);
    free(f);
}

static struct rhost *host_by_name(struct zk_sync *zs, const char *name);

/* The host named by path (<hosts_path>/<name>, not our own), under pic_lock. */
static struct rhost *fast_host_locked(struct zk_sync *zs, const char *path)
{
    size_t hp = strlen(zs->hosts_path);
    if (strncmp(path, zs->hosts_path, hp) != 0 || path[hp] != '/') {
        return NULL;
    }
    const char *name = path + hp + 1;
    if (strchr(name, '/') || strcmp(name, zs->host_id) == 0) {
        return NULL;
    }
    struct rhost *h = host_by_name(zs, name);
    return h && !h->bad && h->listed ? h : NULL;
}

/* Whether h has a node of that name (h->nodes is sorted), under pic_lock. */
static bool fast_known_locked(const struct rhost *h, const char *name)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(h->nodes[mid].name, name);
        if (c == 0) {
            return true;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

/* Everything done: hand it to the worker (one wake-up). */
static void fast_finish(struct fastop *f)
{
    atomic_fetch_sub(&f->zs->fast_inflight, 1); /* nothing of it is in flight any more */
    if (!queue_event(f->zs, f->zh, ZOO_CHILD_EVENT, ZOO_CONNECTED_STATE, f->path, f, false)) {
        fast_free(f); /* lost like an event the watcher could not queue */
    }
}

static void fast_get_done(int rc, const char *value, int value_len, const struct Stat *stat,
                          const void *data)
{
    struct bop *op = (struct bop *)data;
    struct fastop *f = op->fast;
    get_fill(op, rc, value, value_len, stat);
    if (op->rc == ZOK && op->data) { /* parsed here, once; take_read uses it */
        char id[UUID_LEN + 1];
        memcpy(id, op->path + strlen(f->path) + 1, UUID_LEN);
        id[UUID_LEN] = '\0';
        op->parsed = true;
        (void)zk_sync_parse_doc(op->data, op->len, id, f->zs->max_doc, &op->doc, &op->why);
    }
    if (atomic_fetch_sub(&f->pending, 1) == 1) {
        fast_finish(f);
    }
}

static void fast_list_done(int rc, const struct String_vector *strings, const struct Stat *stat,
                           const void *data)
{
    struct fastop *f = (struct fastop *)data;
    struct zk_sync *zs = f->zs;
    list_fill(f->list, rc, strings, stat);
    if (f->list->rc != ZOK) {
        f->plain = true;
        fast_finish(f);
        return;
    }
    /* the names the worker has not seen; a name it has seen but not read
     * yet (RN_NEW) is its to read */
    const char *fresh[FAST_MAX_NEW];
    size_t nfresh = 0;
    pthread_rwlock_rdlock(&zs->pic_lock);
    struct rhost *h = fast_host_locked(zs, f->path);
    for (int32_t i = 0; h && i < f->list->sv.count && !f->plain; i++) {
        const char *name = f->list->sv.data[i];
        char id[UUID_LEN + 1];
        uint64_t seq;
        if (!parse_node_name(name, id, &seq) || fast_known_locked(h, name)) {
            continue; /* a bad name is the worker's to skip and count */
        }
        if (nfresh == FAST_MAX_NEW) {
            f->plain = true; /* a burst: the worker reads it (with the host's snapshot) */
        } else {
            fresh[nfresh++] = name; /* f->list owns the string */
        }
    }
    pthread_rwlock_unlock(&zs->pic_lock);
    if (!h) {
        f->plain = true; /* gone meanwhile: the worker sorts it out */
    }
    if (f->plain || nfresh == 0) {
        fast_finish(f);
        return;
    }
    f->gets = calloc(nfresh, sizeof(*f->gets));
    if (!f->gets) {
        f->plain = true;
        fast_finish(f);
        return;
    }
    atomic_store(&f->pending, nfresh + 1);
    for (size_t i = 0; i < nfresh; i++) {
        struct bop *op = bop_new(zs, NULL, f->path, fresh[i]);
        if (!op) {
            atomic_fetch_sub(&f->pending, 1); /* the worker reads it (still RN_NEW) */
            continue;
        }
        op->fast = f;
        f->gets[f->ngets++] = op;
        if (zoo_aget(f->zh, op->path, 0, fast_get_done, op) != ZOK) {
            op->rc = ZSYSTEMERROR; /* not sent: the worker reads it */
            atomic_fetch_sub(&f->pending, 1);
        } else {
            f->nsent++;
        }
    }
    if (atomic_fetch_sub(&f->pending, 1) == 1) {
        fast_finish(f);
    }
}

/* Watcher (completion thread): list a known host's subtree at once. False:
 * not a case for the fast path, queue the plain event. */
static bool fast_start(struct zk_sync *zs, zhandle_t *zh, const char *path)
{
    pthread_rwlock_rdlock(&zs->pic_lock);
    bool known = fast_host_locked(zs, path) != NULL;
    pthread_rwlock_unlock(&zs->pic_lock);
    if (!known) {
        return false;
    }
    /* (seq_cst, with close_session's store then load: either it sees this
     * one in flight or this one sees it closing) */
    atomic_fetch_add(&zs->fast_inflight, 1);
    size_t plen = strlen(path);
    struct fastop *f = atomic_load(&zs->fast_closing) ? NULL : calloc(1, sizeof(*f) + plen + 1);
    if (!f) {
        atomic_fetch_sub(&zs->fast_inflight, 1);
        return false;
    }
    f->zs = zs;
    f->zh = zh;
    memcpy(f->path, path, plen + 1);
    f->list = bop_new(zs, NULL, path, "");
    if (!f->list || zoo_aget_children2(zh, path, 1, fast_list_done, f) != ZOK) {
        fast_free(f);
        atomic_fetch_sub(&zs->fast_inflight, 1);
        return false;
    }
    return true;
}

/*
 * Worker: apply a fast listing and its reads as the worker's own listing
 * would be (one batch), then read whatever it did not cover.
 */
static void fast_apply(struct zk_sync *zs, struct fastop *f)
{
    zs->c.watches_fired++;
    zs->c.lists++;
    zs->c.reads += f->nsent;
    for (size_t i = 0; i < f->ngets; i++) {
        zs->c.docs_parsed += f->gets[i]->parsed;
    }
    pthread_rwlock_rdlock(&zs->pic_lock);
    struct rhost *h = fast_host_locked(zs, f->path);
    pthread_rwlock_unlock(&zs->pic_lock);
    if (!h) {
        zs->hosts_dirty = true; /* as for a plain event on an unknown subtree */
        return;
    }
    if (f->plain || !zs->connected || zs->resync_at) {
        /* a full resync after a reconnect is due (jittered): it lists
         * every host, this one included, as the plain event would wait for */
        h->dirty = true;
        return;
    }
    zs->c.fast_listings++;
    char(*touched)[UUID_LEN + 1] = NULL;
    size_t nt = 0;
    int rc =
        apply_listing(zs, h, false, f->list->rc, &f->list->sv, f->list->pzxid, true, &touched, &nt);
    if (rc != ZOK || !touched) {
        free(touched);
        return;
    }
    for (size_t i = 0; i < f->ngets; i++) {
        struct bop *op = f->gets[i];
        const char *name = op->path + strlen(f->path) + 1;
        size_t k = find_group(h, name);
        for (; k < h->n && strncmp(h->nodes[k].name, name, UUID_LEN) == 0; k++) {
            struct rnode *rn = &h->nodes[k];
            if (strcmp(rn->name, name) == 0 && rn->kind == RN_NEW && op->rc == ZOK) {
                take_read(zs, rn, op); /* else: still RN_NEW, fetch_and_settle reads it */
            }
        }
    }
    (void)fetch_and_settle(zs, h, touched, nt);
    free(touched);
}

/* ---------- many hosts at once, with their snapshots ---------- */

/* One host of a sync_hosts_batch window. */
struct hsync {
    struct rhost *h;
    struct bop *list;
    struct bop **chunk; /* the snapshot's chunks, nchunk of them (chunk[0] first) */
    size_t nchunk;
    struct bop *probe; /* exists on one listed node: its ephemeralOwner */
    int snap;          /* SNAP_NONE, SNAP_HEAD (chunk 0 asked), SNAP_ALL (all asked), SNAP_DONE */
    size_t nnew;       /* names the listing brought (RN_NEW) */
    char (*touched)[UUID_LEN + 1];
    size_t nt;
};

enum { SNAP_NONE, SNAP_HEAD, SNAP_ALL, SNAP_DONE };

/* Async get of dir/name (values up to max bytes); NULL on ENOMEM. */
static struct bop *issue_get(struct zk_sync *zs, struct zk_batch *b, const char *dir,
                             const char *name, size_t max)
{
    struct bop *op = bop_new(zs, b, dir, name);
    if (op) {
        op->max = max;
        zk_batch_add(b);
        int rc = zoo_aget(zs->zh, op->path, 0, get_done, op);
        zk_batch_issued(b, rc, &op->rc);
    }
    return op;
}

/* Ask for host hs's snapshot chunk 0 (SNAP_HEAD). */
static void snap_ask_head(struct zk_sync *zs, struct zk_batch *b, struct hsync *hs)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/%s", zs->snap_path, hs->h->name);
    hs->chunk = calloc(1, sizeof(*hs->chunk));
    if (hs->chunk) {
        hs->nchunk = 1;
        hs->chunk[0] = issue_get(zs, b, dir, "0", ZK_SNAP_CHUNK_MAX);
        zs->c.snap_chunk_reads++;
    }
    hs->snap = hs->chunk && hs->chunk[0] ? SNAP_HEAD : SNAP_DONE;
}

static void snap_skip(struct zk_sync *zs, struct hsync *hs, const char *why)
{
    zs->c.snap_skipped++;
    zlog(zs, ZK_SYNC_LOG_WARN,
         "snapshot of host %s not used (%s): reading its %zu nodes one by one", hs->h->name, why,
         hs->nnew);
    hs->snap = SNAP_DONE;
}

/*
 * Advance host hs's snapshot read by one step; returns the requests issued.
 * Chunk 0 is asked for when the listing brought enough new names (or with
 * the listing, for a host never listed); its header says how many chunks
 * follow. With them goes one exists on a listed node: the snapshot is used
 * only if its chunks belong to the session that owns the host's nodes.
 */
static size_t snap_step(struct zk_sync *zs, struct zk_batch *b, struct hsync *hs)
{
    if (hs->snap == SNAP_NONE) {
        if (hs->nnew < SNAP_MIN_NEW) {
            hs->snap = SNAP_DONE;
            return 0;
        }
        snap_ask_head(zs, b, hs);
        return hs->snap == SNAP_HEAD ? 1 : 0;
    }
    if (hs->snap != SNAP_HEAD) {
        return 0;
    }
    struct bop *head = hs->chunk[0];
    if (hs->nnew == 0 || head->rc == ZNONODE) {
        hs->snap = SNAP_DONE; /* nothing to read, or a writer without snapshots */
        return 0;
    }
    if (head->rc != ZOK || !head->data) {
        snap_skip(zs, hs, head->rc != ZOK ? zerror(head->rc) : "chunk 0 too large");
        return 0;
    }
    struct zk_snap_hdr hdr;
    const char *why = NULL;
    if (zk_snap_parse_chunk(head->data, head->len, &hdr, &why) != 0) {
        snap_skip(zs, hs, why);
        return 0;
    }
    size_t issued = 0;
    struct rnode *sample = NULL;
    for (size_t i = 0; i < hs->h->n && !sample; i++) {
        if (hs->h->nodes[i].kind == RN_NEW) {
            sample = &hs->h->nodes[i];
        }
    }
    if (!sample) {
        hs->snap = SNAP_DONE;
        return 0;
    }
    hs->probe = bop_new(zs, b, hs->h->path, sample->name);
    if (!hs->probe) {
        snap_skip(zs, hs, "out of memory");
        return 0;
    }
    zk_batch_add(b);
    zs->c.reads++;
    if (zoo_aexists(zs->zh, hs->probe->path, 0, exists_done, hs->probe) != ZOK) {
        hs->probe->rc = ZSYSTEMERROR;
        zk_batch_done(b);
    }
    issued++;
    if (hdr.count > 1) {
        struct bop **more = realloc(hs->chunk, hdr.count * sizeof(*more));
        if (!more) {
            snap_skip(zs, hs, "out of memory");
            return issued;
        }
        hs->chunk = more;
        char dir[1024], name[16];
        snprintf(dir, sizeof(dir), "%s/%s", zs->snap_path, hs->h->name);
        for (uint32_t i = 1; i < hdr.count; i++) {
            snprintf(name, sizeof(name), "%u", i);
            hs->chunk[i] = issue_get(zs, b, dir, name, ZK_SNAP_CHUNK_MAX);
            hs->nchunk = i + 1;
            zs->c.snap_chunk_reads++;
            issued++;
            if (!hs->chunk[i]) {
                snap_skip(zs, hs, "out of memory");
                return issued;
            }
        }
    }
    hs->snap = SNAP_ALL;
    return issued;
}

/*
 * Use host hs's snapshot, read in full: every chunk created (never set) by
 * the session that owns the sampled node, decoded and checked
 * (zk_snap_decode); then every new listed name it holds gets its document
 * from it (checked as a read one would be) instead of a read. Names it does
 * not hold stay RN_NEW and are read one by one; entries for names not
 * listed are ignored.
 */
static void snap_use(struct zk_sync *zs, struct hsync *hs)
{
    if (hs->snap != SNAP_ALL) {
        return;
    }
    hs->snap = SNAP_DONE;
    const void **data = calloc(hs->nchunk, sizeof(*data));
    size_t *lens = calloc(hs->nchunk, sizeof(*lens));
    if (!data || !lens) {
        free(data);
        free(lens);
        snap_skip(zs, hs, "out of memory");
        return;
    }
    const char *why = NULL;
    int64_t owner = hs->probe->rc == ZOK ? hs->probe->owner : 0;
    if (hs->probe->rc != ZOK) {
        why = "sampled node not readable";
    } else if (owner == 0) {
        why = "the host's nodes are not ephemeral";
    }
    for (size_t i = 0; i < hs->nchunk; i++) {
        zs->c.read_bytes += hs->chunk[i]->rc == ZOK ? hs->chunk[i]->len : 0;
    }
    for (size_t i = 0; i < hs->nchunk && !why; i++) {
        struct bop *op = hs->chunk[i];
        if (op->rc != ZOK || !op->data) {
            why = op->rc == ZNONODE ? "a chunk is missing" : "a chunk is not readable";
        } else if (op->owner != owner) {
            why = "a chunk does not belong to the session of the host's nodes";
        } else if (op->mzxid != op->czxid) {
            why = "a chunk was changed in place";
        }
        data[i] = op->data;
        lens[i] = op->len;
    }
    struct zk_snap snap = {0};
    if (!why) {
        (void)zk_snap_decode(data, lens, hs->nchunk, &snap, &why);
    }
    free(data);
    free(lens);
    if (why) {
        snap_skip(zs, hs, why);
        return;
    }
    zs->c.snap_bad_entries += snap.bad_entries;
    size_t used = 0;
    for (size_t i = 0; i < hs->h->n; i++) {
        struct rnode *rn = &hs->h->nodes[i];
        if (rn->kind != RN_NEW) {
            continue;
        }
        const struct zk_snap_entry *e = zk_snap_find(&snap, rn->name);
        if (!e) {
            continue;
        }
        char id[UUID_LEN + 1];
        memcpy(id, rn->name, UUID_LEN);
        id[UUID_LEN] = '\0';
        char *doc = malloc(e->doc_len + 1);
        if (!doc) {
            break;
        }
        memcpy(doc, e->doc, e->doc_len);
        doc[e->doc_len] = '\0';
        json_t *parsed = NULL;
        zs->c.docs_parsed++;
        if (zk_sync_parse_doc(doc, e->doc_len, id, zs->max_doc, &parsed, NULL) != 0) {
            free(doc); /* read it one by one: the node itself decides */
            zs->c.snap_bad_entries++;
            continue;
        }
        rn->kind = RN_OK;
        rn->tmp_json = doc;
        rn->tmp_len = e->doc_len;
        rn->tmp_doc = parsed;
        rn->snap_owner = owner;
        rn->mzxid = 0; /* unknown: the audit records it (and checks the owner) */
        used++;
    }
    zs->c.snap_used += used;
    if (snap.bad_entries) {
        zlog(zs, ZK_SYNC_LOG_WARN, "snapshot of host %s: %zu entries with a wrong checksum skipped",
             hs->h->name, snap.bad_entries);
    }
    zlog(zs, ZK_SYNC_LOG_DEBUG, "host %s: %zu of %zu new nodes from its snapshot (generation %llu)",
         hs->h->name, used, hs->nnew, (unsigned long long)snap.gen);
    zk_snap_free(&snap);
}

/*
 * Sync hosts hs[0..n) (dirty, valid) HOST_WINDOW at a time, pipelined: all
 * listings of a window in flight at once (with chunk 0 of the snapshot of
 * a host never listed before), then the snapshots' other chunks and owner
 * probes, then every name no snapshot covered as async gets spanning the
 * hosts; finally each host's ids are settled, in host order, and handed to
 * the daemon as one delivery batch per window.
 */
static void sync_hosts_batch(struct zk_sync *zs, struct rhost **hosts, size_t n)
{
    for (size_t w0 = 0; w0 < n; w0 += HOST_WINDOW) {
        size_t wn = n - w0 < HOST_WINDOW ? n - w0 : HOST_WINDOW;
        struct hsync hs[HOST_WINDOW];
        struct rhost *win[HOST_WINDOW];
        memset(hs, 0, sizeof(hs));
        struct zk_batch b;
        zk_batch_init(&b);
        for (size_t k = 0; k < wn; k++) {
            struct rhost *h = hosts[w0 + k];
            hs[k].h = h;
            win[k] = h;
            hs[k].list = bop_new(zs, &b, h->path, "");
            if (!hs[k].list) {
                continue;
            }
            hs[k].list->path[strlen(hs[k].list->path) - 1] = '\0'; /* the host's own path */
            zk_batch_add(&b);
            zs->c.lists++;
            int rc = zoo_aget_children2(zs->zh, h->path, 1, list_done, hs[k].list);
            zk_batch_issued(&b, rc, &hs[k].list->rc);
            if (zs->snapshots && !h->listed) {
                snap_ask_head(zs, &b, &hs[k]); /* a host never listed: read it with the list */
            }
        }
        batch_wait(zs, &b);
        for (size_t k = 0; k < wn; k++) {
            struct hsync *x = &hs[k];
            if (!x->list) {
                x->h->dirty = true;
                round_fail(zs, "list", x->h->path, ZSYSTEMERROR);
                x->snap = SNAP_DONE;
                continue;
            }
            (void)apply_listing(zs, x->h, false, x->list->rc, &x->list->sv, x->list->pzxid, false,
                                &x->touched, &x->nt);
            for (size_t i = 0; i < x->h->n; i++) {
                x->nnew += x->h->nodes[i].kind == RN_NEW;
            }
            if (!zs->snapshots || !x->touched) {
                x->snap = SNAP_DONE;
            }
        }
        for (;;) {
            size_t issued = 0;
            for (size_t k = 0; k < wn; k++) {
                issued += snap_step(zs, &b, &hs[k]);
            }
            if (issued == 0) {
                break;
            }
            batch_wait(zs, &b);
        }
        for (size_t k = 0; k < wn; k++) {
            snap_use(zs, &hs[k]);
        }
        zk_batch_destroy(&b);
        for (size_t k = 0; k < wn; k++) {
            bop_free(hs[k].list);
            bop_free(hs[k].probe);
            for (size_t i = 0; i < hs[k].nchunk; i++) {
                bop_free(hs[k].chunk[i]);
            }
            free(hs[k].chunk);
        }
        (void)fetch_new_hosts(zs, win, wn);
        zs->delivery_held = true; /* the whole window's changes: one batch */
        for (size_t k = 0; k < wn; k++) {
            if (hs[k].touched) {
                (void)fetch_and_settle(zs, hs[k].h, hs[k].touched, hs[k].nt);
                free(hs[k].touched);
            }
        }
        zs->delivery_held = false;
        deliver_close(zs);
    }
}

/* Sync every dirty, valid host subtree (sync_hosts_batch). */
static void sync_dirty_hosts(struct zk_sync *zs)
{
    struct rhost **todo = calloc(zs->nhosts + 1, sizeof(*todo));
    if (!todo) {
        round_fail(zs, "list", zs->hosts_path, ZSYSTEMERROR);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < zs->nhosts; i++) {
        if (zs->hosts[i]->dirty && !zs->hosts[i]->bad) {
            todo[n++] = zs->hosts[i];
        }
    }
    sync_hosts_batch(zs, todo, n);
    free(todo);
}

static void host_free(struct rhost *h)
{
    if (h) {
        free_nodes(h->nodes, h->n);
        free(h->name);
        free(h->path);
        free(h);
    }
}

/* A host subtree vanished from <root>/hosts: all its ids are gone (or move
 * to another claimant). h is still in zs->hosts and is excluded. */
static void host_gone(struct zk_sync *zs, struct rhost *h)
{
    for (size_t i = 0; i < h->n; i++) {
        if (h->nodes[i].kind != RN_OK) {
            continue;
        }
        struct idrec *rec = idx_find(zs, h->nodes[i].name);
        if (rec && strcmp(rec->host, h->name) == 0) {
            int rc = owner_gone(zs, rec, h, true);
            if (rc != ZOK) {
                /* the claimant stays unread: relist everything next round */
                zs->hosts_dirty = true;
                round_fail(zs, "read", h->path, rc);
            }
        }
    }
}

static struct rhost *host_new(struct zk_sync *zs, const char *name)
{
    struct rhost *h = calloc(1, sizeof(*h));
    size_t plen = strlen(zs->hosts_path) + 1 + strlen(name) + 1;
    if (!h || !(h->name = strdup(name)) || !(h->path = malloc(plen))) {
        host_free(h);
        return NULL;
    }
    snprintf(h->path, plen, "%s/%s", zs->hosts_path, name);
    h->dirty = true;
    h->bad = !zk_sync_is_host_id(name);
    return h;
}

static int ensure_tree(struct zk_sync *zs);

/*
 * List <root>/hosts (re-arming its watch) and diff the set of hosts. A
 * missing tree is created again; a tree created anew (its czxid changed)
 * starts the rebuild period (region_wait_ms).
 */
static int sync_hosts(struct zk_sync *zs)
{
    struct String_vector sv = {0, NULL};
    struct Stat st;
    zs->c.lists++;
    zs->c.worker_wakeups++;
    int rc = zoo_get_children2(zs->zh, zs->hosts_path, 1, &sv, &st);
    if (rc == ZNONODE) {
        if (zs->hosts_czxid != 0) { /* we had seen it: someone deleted the tree */
            zlog(zs, ZK_SYNC_LOG_WARN, "%s is missing; creating it again", zs->hosts_path);
            zs->c.tree_created++;
        }
        rc = ensure_tree(zs);
        if (rc != ZOK) {
            round_fail(zs, "create", zs->hosts_path, rc);
            return rc;
        }
        zs->c.lists++;
        zs->c.worker_wakeups++;
        rc = zoo_get_children2(zs->zh, zs->hosts_path, 1, &sv, &st);
    }
    if (rc != ZOK) {
        round_fail(zs, "list", zs->hosts_path, rc);
        return rc;
    }
    /* czxid alone is not enough: a wiped server counts zxids from the start again */
    bool anew =
        zs->hosts_czxid != 0 && (st.czxid != zs->hosts_czxid || st.ctime != zs->hosts_ctime);
    if (anew && zs->region_wait_ms > 0) {
        zlog(zs, ZK_SYNC_LOG_WARN,
             "%s was created anew: holding removals of hosts that have not re-announced for "
             "up to %d ms",
             zs->hosts_path, zs->region_wait_ms);
        zs->region_until = mono_ms() + zs->region_wait_ms;
        zs->own.dirty = true; /* our nodes went with the old tree */
    }
    zs->hosts_czxid = st.czxid;
    zs->hosts_ctime = st.ctime;
    zs->hosts_dirty = false;
    if (sv.count > 0) {
        qsort(sv.data, (size_t)sv.count, sizeof(char *), cmp_str);
    }
    size_t nn = (size_t)(sv.count > 0 ? sv.count : 0);
    struct rhost **out = calloc(nn + 1, sizeof(*out));
    struct rhost **gone = calloc(zs->nhosts + 1, sizeof(*gone));
    if (!out || !gone) {
        free(out);
        free(gone);
        deallocate_String_vector(&sv);
        zs->hosts_dirty = true;
        round_fail(zs, "list", zs->hosts_path, ZSYSTEMERROR);
        return ZSYSTEMERROR;
    }
    size_t no = 0, i = 0, j = 0, ngone = 0;
    while (i < zs->nhosts || j < nn) {
        if (j < nn && strcmp(sv.data[j], zs->host_id) == 0) {
            j++; /* our own subtree is tracked separately */
            continue;
        }
        int c = i >= zs->nhosts ? 1 : j >= nn ? -1 : strcmp(zs->hosts[i]->name, sv.data[j]);
        if (c == 0) {
            struct rhost *h = zs->hosts[i++];
            if (h->missing) {
                /* its subtree was gone when listed (no child watch could be set
                 * on it): it is back under <root>/hosts, list it again */
                h->dirty = true;
            }
            out[no++] = h;
            j++;
        } else if (c < 0) {
            struct rhost *h = zs->hosts[i++];
            zlog(zs, ZK_SYNC_LOG_INFO, "host %s left", h->name);
            gone[ngone++] = h;
        } else {
            struct rhost *h = host_new(zs, sv.data[j++]);
            if (!h) {
                zs->hosts_dirty = true;
                continue;
            }
            if (h->bad) {
                zs->c.skipped_bad_name++;
                zlog(zs, ZK_SYNC_LOG_WARN, "skip %s: not a valid host id", h->path);
            }
            out[no++] = h;
        }
    }
    /* Hosts that left: their contested ids go to the next claimant among the
     * remaining ones (still in zs->hosts here, each gone one excluded). */
    for (size_t k = 0; k < ngone; k++) {
        gone[k]->missing = true;
    }
    for (size_t k = 0; k < ngone; k++) {
        host_gone(zs, gone[k]);
    }
    deliver_close(zs);
    pthread_rwlock_wrlock(&zs->pic_lock);
    for (size_t k = 0; k < ngone; k++) {
        host_free(gone[k]);
    }
    free(zs->hosts);
    zs->hosts = out;
    zs->nhosts = no;
    zs->cap_hosts = nn + 1;
    pthread_rwlock_unlock(&zs->pic_lock);
    free(gone);
    deallocate_String_vector(&sv);
    if (zs->hosts_dirty) {
        round_fail(zs, "list", zs->hosts_path, ZSYSTEMERROR);
        return ZSYSTEMERROR;
    }
    return ZOK;
}

static struct rhost *host_by_path(struct zk_sync *zs, const char *path)
{
    size_t hp = strlen(zs->hosts_path);
    if (strncmp(path, zs->hosts_path, hp) != 0 || path[hp] != '/') {
        return NULL;
    }
    const char *name = path + hp + 1;
    if (strcmp(name, zs->host_id) == 0) {
        return &zs->own;
    }
    size_t lo = 0, hi = zs->nhosts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(zs->hosts[mid]->name, name);
        if (c == 0) {
            return zs->hosts[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* ---------- tree and local reconcile ---------- */

static int create_persistent(struct zk_sync *zs, const char *path, int flags,
                             struct ACL_vector *acl)
{
    zs->c.worker_wakeups++;
    int rc = zoo_create(zs->zh, path, NULL, -1, acl, flags, NULL, 0);
    return rc == ZNODEEXISTS ? ZOK : rc;
}

/* Create <root> (every component) and <root>/hosts if missing. */
static int ensure_tree(struct zk_sync *zs)
{
    char path[512];
    snprintf(path, sizeof(path), "%s", zs->hosts_path);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            /* <root>/hosts: anyone may add a host subtree; the rest: read-only
             * for others (with credentials; without, everything is open) */
            int rc = create_persistent(zs, path, ZOO_PERSISTENT,
                                       saved == '\0' ? &zs->acl_hosts_v : &zs->acl_node_v);
            *p = saved;
            if (rc != ZOK) {
                return rc;
            }
            if (saved == '\0') {
                break;
            }
        }
    }
    return ZOK;
}

static size_t local_find(struct zk_sync *zs, const char *id, bool *found);
static void snap_mark_dirty(struct zk_sync *zs);

static void lnode_unref_locked(struct lnode *ln)
{
    if (--ln->refs == 0) {
        free(ln);
    }
}

static int cmp_lnode_name(const void *a, const void *b)
{
    return strcmp((*(struct lnode *const *)a)->name, (*(struct lnode *const *)b)->name);
}

/* Run a batch of creates (json != NULL) or deletes on own-subtree names. */
static int run_writes(struct zk_sync *zs, struct lnode **creates, size_t nc, char **deletes,
                      size_t nd)
{
    int worst = ZOK;
    size_t total = nc + nd, i = 0;
    while (i < total) {
        struct zk_batch b;
        zk_batch_init(&b);
        struct bop *ops[BATCH_MAX];
        size_t nops = 0;
        for (; i < total && nops < BATCH_MAX; i++) {
            bool create = i < nc;
            const char *name = create ? creates[i]->name : deletes[i - nc];
            struct bop *op = bop_new(zs, &b, zs->own.path, name);
            if (!op) {
                worst = ZSYSTEMERROR;
                continue;
            }
            zk_batch_add(&b);
            int rc;
            if (create) {
                zs->c.creates++;
                rc = zoo_acreate(zs->zh, op->path, creates[i]->json, (int)creates[i]->len,
                                 &zs->acl_node_v, ZOO_EPHEMERAL, create_done, op);
            } else {
                zs->c.deletes++;
                rc = zoo_adelete(zs->zh, op->path, -1, void_done, op);
            }
            zk_batch_issued(&b, rc, &op->rc);
            op->node = i;
            ops[nops++] = op;
        }
        batch_wait(zs, &b);
        zk_batch_destroy(&b);
        for (size_t k = 0; k < nops; k++) {
            struct bop *op = ops[k];
            bool create = op->node < nc;
            int rc = op->rc;
            if (create && rc == ZNONODE) {
                zs->own_exists = false; /* container removed meanwhile: recreate it */
            }
            if ((create && rc == ZNODEEXISTS) || (!create && rc == ZNONODE)) {
                rc = ZOK; /* already as desired */
            }
            if (rc != ZOK) {
                zlog(zs, rc == ZNOTEMPTY ? ZK_SYNC_LOG_WARN : ZK_SYNC_LOG_INFO, "%s %s: %s",
                     create ? "create" : "delete", op->path, zerror(rc));
                if (worst == ZOK || worst == ZNONODE) {
                    worst = rc;
                }
            }
            free(op);
        }
    }
    return worst;
}

/*
 * After a new session, nodes with our names may still belong to an older
 * session of this host (a restarted daemon): they would vanish when it
 * expires. Delete those so they are created again under this session.
 */
static int check_owners(struct zk_sync *zs, struct lnode **snap, size_t n, char ***stale,
                        size_t *nstale)
{
    const clientid_t *cid = zoo_client_id(zs->zh);
    int64_t me = cid ? cid->client_id : 0;
    *stale = calloc(n + 1, sizeof(char *));
    *nstale = 0;
    if (!*stale) {
        return ZSYSTEMERROR;
    }
    for (size_t i = 0; i < n; i++) {
        size_t g = find_group(&zs->own, snap[i]->id);
        bool present = false;
        for (; g < zs->own.n && strncmp(zs->own.nodes[g].name, snap[i]->id, UUID_LEN) == 0; g++) {
            present |= strcmp(zs->own.nodes[g].name, snap[i]->name) == 0;
        }
        if (!present) {
            continue;
        }
        char path[1024];
        struct Stat st;
        snprintf(path, sizeof(path), "%s/%s", zs->own.path, snap[i]->name);
        zs->c.reads++;
        zs->c.worker_wakeups++;
        int rc = zoo_exists(zs->zh, path, 0, &st);
        if (rc == ZOK && st.ephemeralOwner != me) {
            (*stale)[(*nstale)++] = snap[i]->name;
        } else if (rc != ZOK && rc != ZNONODE) {
            return rc;
        }
    }
    return ZOK;
}

/* After successful writes: the own listing in memory becomes the snapshot's names. */
static int own_set_names(struct zk_sync *zs, struct lnode **snap, size_t n)
{
    struct rnode *nodes = calloc(n + 1, sizeof(*nodes));
    size_t j = 0;
    if (!nodes) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        nodes[i].name = strdup(snap[i]->name);
        nodes[i].seq = snap[i]->seq;
        nodes[i].kind = RN_OK;
        if (!nodes[i].name) {
            free_nodes(nodes, i);
            return -ENOMEM;
        }
        /* keep the armed data watches (both lists are sorted by name) */
        while (j < zs->own.n && strcmp(zs->own.nodes[j].name, nodes[i].name) < 0) {
            j++;
        }
        if (j < zs->own.n && strcmp(zs->own.nodes[j].name, nodes[i].name) == 0) {
            nodes[i].watched = zs->own.nodes[j].watched;
        }
    }
    free_nodes(zs->own.nodes, zs->own.n);
    zs->own.nodes = nodes;
    zs->own.n = n;
    return 0;
}

/*
 * The host subtree is missing (first start, new session after the tree was
 * lost): create the container, then as many nodes as fit in one request
 * with zoo_multi, so other hosts see all of them or none — a host
 * re-announcing after ZooKeeper came back empty never shows a partial set.
 * (The container cannot be part of the multi: the 3.8 C client aborts on a
 * createContainer result.) *done = nodes created that way; on ZNODEEXISTS
 * the caller creates them one by one.
 */
static int announce_atomic(struct zk_sync *zs, struct lnode **creates, size_t nc, size_t *done)
{
    *done = 0;
    int rc = create_persistent(zs, zs->own.path, ZOO_CONTAINER, &zs->acl_node_v);
    if (rc != ZOK || nc < 2) {
        return rc;
    }
    size_t k = 0, bytes = 64;
    while (k < nc && bytes + creates[k]->len + sizeof(creates[k]->name) + 300 < MULTI_MAX_BYTES) {
        bytes += creates[k]->len + sizeof(creates[k]->name) + 300;
        k++;
    }
    zoo_op_t *ops = calloc(k + 1, sizeof(*ops));
    zoo_op_result_t *res = calloc(k + 1, sizeof(*res));
    char(*paths)[1024] = calloc(k + 1, sizeof(*paths));
    if (!ops || !res || !paths) {
        free(ops);
        free(res);
        free(paths);
        return ZSYSTEMERROR;
    }
    for (size_t i = 0; i < k; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", zs->own.path, creates[i]->name);
        zoo_create_op_init(&ops[i], paths[i], creates[i]->json, (int)creates[i]->len,
                           &zs->acl_node_v, ZOO_EPHEMERAL, NULL, 0);
    }
    zs->c.worker_wakeups++;
    rc = zoo_multi(zs->zh, (int)k, ops, res);
    free(ops);
    free(res);
    free(paths);
    if (rc == ZOK) {
        zs->c.creates += k;
        *done = k;
        return ZOK;
    }
    return rc == ZNODEEXISTS ? ZOK : rc;
}

/* Data watch completion on an own node: a version other than 0 means another
 * client rewrote it before the watch was armed. */
struct own_watch {
    struct zk_sync *zs;
    zhandle_t *zh;
    char path[];
};

static void own_watch_done(int rc, const struct Stat *stat, const void *data)
{
    struct own_watch *w = (struct own_watch *)data;
    if (rc == ZOK && stat && stat->version != 0) {
        watcher(w->zh, ZOO_CHANGED_EVENT, ZOO_CONNECTED_STATE, w->path, w->zs);
    }
    atomic_fetch_sub(&w->zs->async_inflight, 1);
    free(w);
}

/* Arm a data watch (exists) on every own node that has none: an in-place
 * rewrite by another client fires it and the node is re-created. */
static void arm_own_watches(struct zk_sync *zs)
{
    for (size_t i = 0; i < zs->own.n; i++) {
        struct rnode *rn = &zs->own.nodes[i];
        if (rn->watched || rn->bad_name) {
            continue;
        }
        /* armed already by publish_local, behind the early create, in this
         * session: not again */
        char id[UUID_LEN + 1];
        uint64_t seq;
        if (parse_node_name(rn->name, id, &seq)) {
            pthread_mutex_lock(&zs->mu);
            bool found;
            size_t at = local_find(zs, id, &found);
            rn->watched = found && zs->local[at]->early_watch &&
                          zs->local[at]->early_gen == zs->early_gen &&
                          strcmp(zs->local[at]->name, rn->name) == 0;
            pthread_mutex_unlock(&zs->mu);
            if (rn->watched) {
                continue;
            }
        }
        size_t need = strlen(zs->own.path) + 1 + strlen(rn->name) + 1;
        struct own_watch *w = malloc(sizeof(*w) + need);
        if (!w) {
            return;
        }
        w->zs = zs;
        w->zh = zs->zh;
        snprintf(w->path, need, "%s/%s", zs->own.path, rn->name);
        atomic_fetch_add(&zs->async_inflight, 1);
        if (zoo_aexists(zs->zh, w->path, 1, own_watch_done, w) == ZOK) {
            rn->watched = true;
        } else {
            atomic_fetch_sub(&zs->async_inflight, 1);
            free(w);
            return;
        }
    }
}

/* Own node `name` was changed in place by another client: publish the same
 * document again under a new name (created first, then the tampered one is
 * deleted), so every reader reads it afresh. */
static void repair_own(struct zk_sync *zs, const char *name)
{
    char id[UUID_LEN + 1];
    uint64_t seq;
    if (!parse_node_name(name, id, &seq)) {
        return;
    }
    for (size_t i = 0; i < zs->own.n; i++) {
        if (strcmp(zs->own.nodes[i].name, name) == 0) {
            zs->own.nodes[i].watched = false;
        }
    }
    pthread_mutex_lock(&zs->mu);
    bool found;
    size_t at = local_find(zs, id, &found);
    if (found && strcmp(zs->local[at]->name, name) == 0) {
        struct lnode *old = zs->local[at];
        struct lnode *ln = malloc(sizeof(*ln) + old->len + 1);
        if (ln) {
            memcpy(ln, old, sizeof(*ln) + old->len + 1);
            ln->refs = 1;
            ln->early = EARLY_NONE; /* a new node, created by the worker */
            ln->early_created = ln->early_watch = false;
            uint64_t nseq = (uint64_t)real_ms();
            ln->seq = nseq <= zs->last_seq ? zs->last_seq + 1 : nseq;
            zs->last_seq = ln->seq;
            snprintf(ln->name, sizeof(ln->name), "%s-%llu", id, (unsigned long long)ln->seq);
            zs->local[at] = ln;
            lnode_unref_locked(old);
            zs->local_gen++;
            zs->local_urgent = true; /* not held: re-created in this round */
            zs->local_hold_until = zs->hold_w = 0;
            zs->c.repairs++;
            pthread_mutex_unlock(&zs->mu);
            zlog(zs, ZK_SYNC_LOG_WARN,
                 "own node %s/%s was changed by another client; publishing it again as %s",
                 zs->own.path, name, ln->name);
            return;
        }
    }
    pthread_mutex_unlock(&zs->mu);
}

/*
 * Make the own subtree equal the desired set: create what is missing
 * (creates before deletes, so an update never leaves a gap), delete what is
 * not desired (withdrawn, replaced, or foreign junk in our subtree).
 */
static int reconcile_local(struct zk_sync *zs)
{
    pthread_mutex_lock(&zs->mu);
    /* everything published so far is handled now: no hold, nothing urgent
     * (and early_done wakes this thread from here on) */
    zs->local_hold_until = zs->hold_w = 0;
    zs->local_urgent = false;
    size_t n = zs->nlocal;
    uint64_t gen = zs->local_gen;
    struct lnode **snap = malloc((n + 1) * sizeof(*snap));
    if (!snap) {
        pthread_mutex_unlock(&zs->mu);
        return ZSYSTEMERROR;
    }
    for (size_t i = 0; i < n; i++) {
        snap[i] = zs->local[i];
        snap[i]->refs++;
    }
    /* Early creates of these nodes still on their way: wait for their
     * replies (the client completes every request), one wake-up for all. */
    for (;;) {
        bool pending = false;
        for (size_t i = 0; i < n && !pending; i++) {
            pending = snap[i]->early == EARLY_PENDING;
        }
        if (!pending) {
            break;
        }
        zs->c.worker_wakeups++;
        zs->early_waiting = true;
        pthread_cond_wait(&zs->wake, &zs->mu);
        zs->early_waiting = false;
    }
    /* Those that succeeded in this session are created; the flag is consumed
     * (later reconciles trust the listing). */
    for (size_t i = 0; i < n; i++) {
        snap[i]->early_created = snap[i]->early == EARLY_OK && snap[i]->early_gen == zs->early_gen;
        snap[i]->early = EARLY_NONE;
    }
    pthread_mutex_unlock(&zs->mu);
    zs->local_dirty = false;

    /* ids sort like names (fixed-length prefix), but sort to be safe */
    qsort(snap, n, sizeof(*snap), cmp_lnode_name);
    struct lnode **creates = calloc(n + 1, sizeof(*creates));
    char **deletes = calloc(zs->own.n + 1, sizeof(*deletes));
    char **stale = NULL;
    size_t nc = 0, nd = 0, nstale = 0;
    int rc = ZOK;
    if (!creates || !deletes) {
        rc = ZSYSTEMERROR;
        goto out;
    }
    if (zs->session_new) {
        rc = check_owners(zs, snap, n, &stale, &nstale);
        if (rc != ZOK) {
            goto out;
        }
        if (nstale > 0) {
            zlog(zs, ZK_SYNC_LOG_INFO, "replacing %zu nodes left by an older session", nstale);
            rc = run_writes(zs, NULL, 0, stale, nstale);
            if (rc != ZOK) {
                goto out;
            }
        }
    }
    size_t i = 0, j = 0, in_zk = 0, nearly = 0;
    while (i < n || j < zs->own.n) {
        int c = i >= n ? 1 : j >= zs->own.n ? -1 : strcmp(snap[i]->name, zs->own.nodes[j].name);
        if (c == 0) {
            bool was_stale = false;
            for (size_t k = 0; k < nstale; k++) {
                was_stale |= stale[k] == snap[i]->name;
            }
            if (was_stale) {
                creates[nc++] = snap[i];
            } else {
                in_zk++;
            }
            i++;
            j++;
        } else if (c < 0) {
            if (snap[i]->early_created) {
                nearly++; /* created early, not listed yet: not again */
                i++;
            } else {
                creates[nc++] = snap[i++];
            }
        } else {
            deletes[nd++] = zs->own.nodes[j++].name;
        }
    }
    zs->c.local_in_zk = in_zk;
    bool watch_armed = zs->own_exists; /* the last own listing found the subtree */
    if (nc == 0 && nd == 0) {
        if (nearly > 0 && own_set_names(zs, snap, n) == 0) {
            /* the early creates made the subtree equal the snapshot; the own
             * child watch they fired confirms it */
            zs->c.local_in_zk = n;
            zs->own.dirty = zs->own.dirty || !watch_armed;
        }
        goto out;
    }
    if (nc > 0 && !zs->own_exists) {
        size_t done = 0;
        rc = announce_atomic(zs, creates, nc, &done);
        if (rc != ZOK) {
            round_fail(zs, "create", zs->own.path, rc);
            goto out;
        }
        zs->own_exists = true;
        memmove(creates, creates + done, (nc - done) * sizeof(*creates));
        nc -= done;
    }
    rc = run_writes(zs, creates, nc, deletes, nd);
    if (rc == ZOK) {
        snap_mark_dirty(zs); /* the set in ZooKeeper changed */
    }
    if (rc == ZOK && own_set_names(zs, snap, n) == 0) {
        /* every write succeeded: the subtree now equals the snapshot. Our own
         * child watch fires for these writes and the listing it triggers
         * confirms it; list now only if no watch is armed yet. */
        zs->c.local_in_zk = n;
        zs->own.dirty = !watch_armed;
    } else {
        zs->own.dirty = true; /* learn the actual state */
    }
out:
    if (rc == ZOK) {
        zs->session_new = false;
        if (!zs->snap_session_ok && !zs->snap_dirty) {
            snap_mark_dirty(zs); /* no snapshot of this session yet */
        }
    } else {
        zs->local_dirty = true;
        zs->retry_at = mono_ms() + RETRY_MS;
    }
    free(creates);
    free(deletes);
    free(stale);
    pthread_mutex_lock(&zs->mu);
    for (size_t k = 0; k < n; k++) {
        lnode_unref_locked(snap[k]);
    }
    bool applied_new = rc == ZOK && gen > zs->applied_gen;
    if (applied_new) {
        zs->applied_gen = gen;
        publish_status_locked(zs); /* waiters see counters that match */
        pthread_cond_broadcast(&zs->applied);
    }
    pthread_mutex_unlock(&zs->mu);
    if (applied_new) {
        /* The set in ZooKeeper now equals a newer desired set, whoever made
         * the writes: this round's run_writes, or early creates (their
         * nodes need no write here, and may even be listed already). */
        snap_mark_dirty(zs);
    }
    free(snap);
    return rc;
}

/* ---------- own aggregate snapshot ---------- */

/* The confirmed own set changed: write the snapshot once it settles
 * (SNAP_QUIET_MS without change, at most SNAP_MAX_DELAY_MS after the first). */
static void snap_mark_dirty(struct zk_sync *zs)
{
    if (!zs->snapshots) {
        return;
    }
    int64_t now = mono_ms();
    if (!zs->snap_dirty) {
        zs->snap_dirty = true;
        zs->snap_first = now;
    }
    zs->snap_last = now;
}

/* Monotonic ms the snapshot write is due, 0 = none. */
static int64_t snap_due(struct zk_sync *zs)
{
    if (!zs->snap_dirty) {
        return 0;
    }
    int64_t quiet = zs->snap_last + SNAP_QUIET_MS, latest = zs->snap_first + SNAP_MAX_DELAY_MS;
    return quiet < latest ? quiet : latest;
}

/* Create <root>/snap (anyone may add a host's directory, like <root>/hosts)
 * and our container <root>/snap/<host>. */
static int snap_ensure_dirs(struct zk_sync *zs)
{
    int rc = create_persistent(zs, zs->snap_path, ZOO_PERSISTENT, &zs->acl_hosts_v);
    if (rc == ZNONODE) {
        rc = ensure_tree(zs); /* the whole root went */
        if (rc == ZOK) {
            rc = create_persistent(zs, zs->snap_path, ZOO_PERSISTENT, &zs->acl_hosts_v);
        }
    }
    if (rc == ZOK) {
        rc = create_persistent(zs, zs->own_snap_path, ZOO_CONTAINER, &zs->acl_node_v);
    }
    return rc;
}

/* Replace chunk path atomically (delete + create in one multi), so it is
 * always a node created, never set, by this session. */
static int snap_replace(struct zk_sync *zs, const char *path, const char *data, size_t len)
{
    zoo_op_t ops[2];
    zoo_op_result_t res[2];
    zoo_delete_op_init(&ops[0], path, -1);
    zoo_create_op_init(&ops[1], path, data, (int)len, &zs->acl_node_v, ZOO_EPHEMERAL, NULL, 0);
    return zoo_multi(zs->zh, 2, ops, res);
}

static int snap_write_chunk(struct zk_sync *zs, size_t i, const char *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%zu", zs->own_snap_path, i);
    bool exists = i < zs->snap_nchunks;
    for (int attempt = 0; attempt < 4; attempt++) {
        int rc = exists ? snap_replace(zs, path, data, len)
                        : zoo_create(zs->zh, path, data, (int)len, &zs->acl_node_v, ZOO_EPHEMERAL,
                                     NULL, 0);
        if (rc == ZOK) {
            return ZOK;
        }
        if (rc == ZNODEEXISTS && !exists) {
            exists = true; /* left by an older session, or by another client */
        } else if (rc == ZNONODE && exists) {
            exists = false; /* gone meanwhile (the multi's delete failed) */
        } else if (rc == ZNONODE) {
            rc = snap_ensure_dirs(zs); /* the container went away */
            if (rc != ZOK) {
                return rc;
            }
        } else {
            return rc;
        }
    }
    return ZSYSTEMERROR;
}

/*
 * Write the own snapshot: every desired (and, at this point, applied)
 * document, encoded in chunks; the chunks after 0 first, chunk 0 (whose
 * header readers look at first) last; chunks left from a larger snapshot
 * are deleted. A failure is logged and retried after SNAP_RETRY_MS; it is
 * not a sync error: readers then read the nodes one by one.
 */
static void snap_write(struct zk_sync *zs)
{
    pthread_mutex_lock(&zs->mu);
    if (zs->applied_gen != zs->local_gen) {
        pthread_mutex_unlock(&zs->mu); /* the reconcile runs first and marks it again */
        return;
    }
    size_t n = zs->nlocal;
    struct lnode **ln = malloc((n + 1) * sizeof(*ln));
    struct zk_snap_entry *e = malloc((n + 1) * sizeof(*e));
    if (!ln || !e) {
        pthread_mutex_unlock(&zs->mu);
        free(ln);
        free(e);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ln[i] = zs->local[i];
        ln[i]->refs++;
    }
    pthread_mutex_unlock(&zs->mu);
    qsort(ln, n, sizeof(*ln), cmp_lnode_name);
    for (size_t i = 0; i < n; i++) {
        e[i] = (struct zk_snap_entry){ln[i]->name, strlen(ln[i]->name), ln[i]->json, ln[i]->len};
    }
    uint64_t gen = (uint64_t)real_ms();
    if (gen <= zs->snap_gen) {
        gen = zs->snap_gen + 1;
    }
    struct zk_snap_chunks ch;
    int erc = zk_snap_encode(e, n, gen, ZK_SNAP_CHUNK_MAX, &ch);
    pthread_mutex_lock(&zs->mu);
    for (size_t i = 0; i < n; i++) {
        lnode_unref_locked(ln[i]);
    }
    pthread_mutex_unlock(&zs->mu);
    free(ln);
    free(e);
    zs->snap_dirty = false;
    if (erc != 0) {
        zlog(zs, ZK_SYNC_LOG_WARN, "own snapshot not written: %s", strerror(-erc));
        return;
    }
    int rc = zs->snap_session_ok ? ZOK : snap_ensure_dirs(zs);
    for (size_t i = ch.count; rc == ZOK && i-- > 1;) {
        rc = snap_write_chunk(zs, i, ch.data[i], ch.len[i]);
    }
    if (rc == ZOK) {
        rc = snap_write_chunk(zs, 0, ch.data[0], ch.len[0]);
    }
    char path[1024];
    for (size_t i = ch.count; rc == ZOK && i < zs->snap_nchunks; i++) {
        snprintf(path, sizeof(path), "%s/%zu", zs->own_snap_path, i);
        int drc = zoo_delete(zs->zh, path, -1);
        if (drc != ZOK && drc != ZNONODE) {
            rc = drc;
        }
    }
    if (rc == ZOK) {
        zs->snap_nchunks = ch.count;
        zs->snap_gen = gen;
        zs->snap_session_ok = true;
        zs->c.snap_writes++;
        if (zs->snap_error[0]) {
            zlog(zs, ZK_SYNC_LOG_INFO, "own snapshot written again");
            zs->snap_error[0] = '\0';
        }
        zlog(zs, ZK_SYNC_LOG_DEBUG, "own snapshot generation %llu: %zu documents, %zu chunks",
             (unsigned long long)gen, n, ch.count);
    } else {
        char err[160];
        snprintf(err, sizeof(err), "%s", zerror(rc));
        zlog(zs, strcmp(err, zs->snap_error) != 0 ? ZK_SYNC_LOG_WARN : ZK_SYNC_LOG_DEBUG,
             "own snapshot not written (%s): other hosts read this host's nodes one by one; "
             "retrying in %d ms",
             err, SNAP_RETRY_MS);
        snprintf(zs->snap_error, sizeof(zs->snap_error), "%s", err);
        zs->snap_dirty = true;
        zs->snap_first = zs->snap_last = mono_ms() + SNAP_RETRY_MS - SNAP_QUIET_MS;
    }
    zk_snap_chunks_free(&ch);
}

/* Audit of the own snapshot: chunk 0 must exist, belong to this session and
 * be unchanged since created; otherwise it is written again. */
static void snap_audit_own(struct zk_sync *zs)
{
    if (!zs->snapshots || !zs->snap_session_ok || zs->snap_dirty) {
        return;
    }
    char path[1024];
    struct Stat st;
    snprintf(path, sizeof(path), "%s/0", zs->own_snap_path);
    int rc = zoo_exists(zs->zh, path, 0, &st);
    const clientid_t *cid = zoo_client_id(zs->zh);
    if (rc == ZNONODE ||
        (rc == ZOK && ((cid && st.ephemeralOwner != cid->client_id) || st.mzxid != st.czxid))) {
        zlog(zs, ZK_SYNC_LOG_WARN, "own snapshot %s was %s by another client; writing it again",
             path, rc == ZNONODE ? "deleted" : "changed");
        zs->c.repairs++;
        snap_mark_dirty(zs);
    }
}

/* ---------- session ---------- */

/*
 * The ZooKeeper C client's own log lines. Its log callback takes no context
 * argument, so this is the one piece of process-wide state here: the lines
 * go to the `log` callback of the first running zk_sync that has one (under
 * client_log_mu), reformatted ("zookeeper client: LEVEL function: message",
 * without the client's local-time stamp) and limited to CLIENT_LOG_LINES per
 * CLIENT_LOG_WINDOW ms; the number suppressed is logged when the next window
 * opens.
 */
static pthread_mutex_t client_log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct zk_sync *client_log_sink;
static int64_t client_log_window;
static unsigned client_log_lines, client_log_dropped;

static void client_log(const char *message)
{
    /* "<time>:<pid>(0x<tid>):ZOO_<LEVEL>@<function>@<line>: <text>" */
    const char *lvl = strstr(message, ":ZOO_");
    enum zk_sync_log_level level = ZK_SYNC_LOG_ERROR;
    char func[64] = "";
    const char *text = message;
    if (lvl) {
        lvl += 5;
        level = strncmp(lvl, "WARN", 4) == 0    ? ZK_SYNC_LOG_WARN
                : strncmp(lvl, "INFO", 4) == 0  ? ZK_SYNC_LOG_INFO
                : strncmp(lvl, "DEBUG", 5) == 0 ? ZK_SYNC_LOG_DEBUG
                                                : ZK_SYNC_LOG_ERROR;
        const char *at = strchr(lvl, '@');
        const char *at2 = at ? strchr(at + 1, '@') : NULL;
        const char *colon = at2 ? strstr(at2, ": ") : NULL;
        if (at && at2 && colon) {
            snprintf(func, sizeof(func), "%.*s", (int)(at2 - at - 1), at + 1);
            text = colon + 2;
        }
    }
    size_t tl = strlen(text);
    while (tl > 0 && (text[tl - 1] == '\n' || text[tl - 1] == '\r')) {
        tl--;
    }
    pthread_mutex_lock(&client_log_mu);
    struct zk_sync *zs = client_log_sink;
    if (!zs) {
        pthread_mutex_unlock(&client_log_mu);
        fprintf(stderr, "zookeeper client: %.*s\n", (int)tl, text);
        return;
    }
    int64_t now = mono_ms();
    if (now - client_log_window >= CLIENT_LOG_WINDOW) {
        if (client_log_dropped > 0) {
            zlog(zs, ZK_SYNC_LOG_WARN, "zookeeper client: %u more lines suppressed in %d s",
                 client_log_dropped, CLIENT_LOG_WINDOW / 1000);
        }
        client_log_window = now;
        client_log_lines = 0;
        client_log_dropped = 0;
    }
    if (client_log_lines < CLIENT_LOG_LINES) {
        client_log_lines++;
        zlog(zs, level, "zookeeper client: %s%s%.*s", func, func[0] ? ": " : "", (int)tl, text);
    } else {
        client_log_dropped++;
    }
    pthread_mutex_unlock(&client_log_mu);
}

/* A refused zoo_add_auth also ends the session: the watcher gets
 * ZOO_AUTH_FAILED_STATE, handled in on_session_event. */
static void auth_done(int rc, const void *data)
{
    (void)rc;
    (void)data;
}

static void open_session(struct zk_sync *zs)
{
    zs->new_session_at = 0;
    const clientid_t *resume = zs->resume.client_id ? &zs->resume : NULL;
    if (resume) {
        zlog(zs, ZK_SYNC_LOG_INFO, "resuming session 0x%llx",
             (unsigned long long)resume->client_id);
    }
    zs->zh =
        zookeeper_init2(zs->connect, watcher, zs->session_timeout_ms, resume, zs, 0, client_log);
    zs->resume.client_id = 0; /* only the first session */
    if (!zs->zh) {
        zlog(zs, ZK_SYNC_LOG_ERROR, "zookeeper_init(%s) failed: %s", zs->connect, strerror(errno));
        zs->new_session_at = mono_ms() + NEW_SESSION_RETRY;
        return;
    }
    /* resolve the server names once a minute, not on every I/O loop */
    zoo_set_servers_resolution_delay(zs->zh, RESOLVE_DELAY_MS);
    if (zs->auth) {
        /* queued before any request; the client re-sends it on reconnects */
        int rc = zoo_add_auth(zs->zh, "digest", zs->auth, (int)strlen(zs->auth), auth_done, zs);
        if (rc != ZOK) {
            zlog(zs, ZK_SYNC_LOG_ERROR, "zoo_add_auth: %s", zerror(rc));
        }
    }
    zs->session_new = true;
    zs->session_fresh = true;
}

/* Early creates (zk_sync_publish_local) on the current handle: allowed only
 * while connected to a session whose first reconcile is done and whose own
 * subtree exists (a missing subtree is announced atomically by the worker). */
static void update_early(struct zk_sync *zs)
{
    zhandle_t *zh = zs->connected && !zs->session_new && zs->own_exists ? zs->zh : NULL;
    pthread_mutex_lock(&zs->mu);
    zs->early_zh = zh;
    pthread_mutex_unlock(&zs->mu);
}

static void close_session(struct zk_sync *zs)
{
    zs->session_since_ms = 0;
    pthread_mutex_lock(&zs->mu);
    zs->early_zh = NULL; /* no publisher uses the handle from here on */
    zs->early_gen++;     /* early creates of this session say nothing about the next */
    pthread_mutex_unlock(&zs->mu);
    if (zs->zh) {
        /* nothing in flight at the close: refuse new fast listings (no new
         * early create or own watch can start: early_zh is cleared above and
         * own watches are this thread's), then wait for what is under way
         * (each ends in its completion: the reply, or the client's own error
         * for it; bounded in case a server hangs) */
        atomic_store(&zs->fast_closing, true);
        for (int i = 0;
             i < 2000 && atomic_load(&zs->fast_inflight) + atomic_load(&zs->async_inflight) > 0;
             i++) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
        if (atomic_load(&zs->fast_inflight) + atomic_load(&zs->async_inflight) > 0) {
            zlog(zs, ZK_SYNC_LOG_WARN,
                 "closing the session with %d fast listings and %d other requests in flight",
                 atomic_load(&zs->fast_inflight), atomic_load(&zs->async_inflight));
        }
        zookeeper_close(zs->zh);
        atomic_store(&zs->fast_closing, false); /* the next handle's */
        zs->zh = NULL;
        /* events still queued came from the closed handle; a new handle may
         * get the same address, so drop them now */
        pthread_mutex_lock(&zs->mu);
        struct zevent *ev = zs->ev_head;
        zs->ev_head = zs->ev_tail = NULL;
        zs->ev_woken = false;
        pthread_mutex_unlock(&zs->mu);
        while (ev) {
            struct zevent *next = ev->next;
            fast_free(ev->fast); /* a fast listing the closing handle completed */
            free(ev);
            ev = next;
        }
    }
    zs->connected = false;
}

static void ext_session(struct zk_sync *zs, bool new_session)
{
    for (size_t i = 0; i < zs->n_ext; i++) {
        if (zs->ext[i].on_session) {
            zs->ext[i].on_session(zs->ext[i].arg, zs->state, new_session);
        }
    }
}

static void on_session_event(struct zk_sync *zs, int state)
{
    if (state == ZOO_CONNECTED_STATE) {
        if (zs->connected) {
            return;
        }
        zs->connected = true;
        zs->disconnected_at = 0;
        zs->local_dirty = true;
        bool new_session = zs->session_fresh;
        if (zs->session_fresh) {
            zs->session_fresh = false;
            zs->c.sessions++;
            zs->session_since_ms = real_ms();
            for (size_t i = 0; i < zs->own.n; i++) {
                zs->own.nodes[i].watched = false; /* watches belong to the old session */
            }
            zs->snap_session_ok = false; /* chunks of an older session: replaced */
            zs->snap_nchunks = 0;
            const clientid_t *cid = zoo_client_id(zs->zh);
            zlog(zs, ZK_SYNC_LOG_INFO, "session 0x%llx established, timeout %d ms",
                 cid ? (unsigned long long)cid->client_id : 0ULL, zoo_recv_timeout(zs->zh));
            if (cid) {
                pthread_mutex_lock(&zs->mu);
                zs->session = *cid;
                pthread_mutex_unlock(&zs->mu);
            }
        } else {
            zs->c.reconnects++;
        }
        int64_t now = mono_ms();
        zs->cool_until = zs->cooloff_ms > 0 ? now + zs->cooloff_ms : 0;
        zs->resync_at = now + (zs->ever_connected ? jitter(zs) : 0);
        if (zs->resync_at == 0) {
            zs->resync_at = 1;
        }
        zs->ever_connected = true;
        set_state(zs, ZK_SYNC_CONNECTED);
        ext_session(zs, new_session);
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
        zs->c.expirations++;
        zlog(zs, ZK_SYNC_LOG_WARN, "session expired; opening a new one");
        close_session(zs);
        zs->new_session_at = mono_ms() + jitter(zs);
        zs->resync_at = 0;
        set_state(zs, ZK_SYNC_EXPIRED);
        ext_session(zs, false);
    } else if (state == ZOO_AUTH_FAILED_STATE) {
        zlog(zs, ZK_SYNC_LOG_ERROR,
             "zookeeper authentication failed (digest credentials refused); new session in %d ms",
             AUTH_RETRY_MS);
        snprintf(zs->last_error, sizeof(zs->last_error), "authentication failed");
        if (!zs->error_since_ms) {
            zs->error_since_ms = real_ms();
        }
        close_session(zs);
        zs->new_session_at = mono_ms() + AUTH_RETRY_MS;
        zs->resync_at = 0;
        set_state(zs, ZK_SYNC_CONNECTING);
        report_state(zs);
        ext_session(zs, false);
    } else {
        if (zs->connected) {
            zs->disconnected_at = mono_ms();
        }
        zs->connected = false;
        if (zs->state == ZK_SYNC_CONNECTED) {
            set_state(zs, ZK_SYNC_DISCONNECTED);
            ext_session(zs, false);
        }
    }
}

static bool is_own_node_path(struct zk_sync *zs, const char *path)
{
    size_t n = strlen(zs->own.path);
    return strncmp(path, zs->own.path, n) == 0 && path[n] == '/';
}

/* Offer a watch event to every extension; true if one of them owns the path. */
static bool ext_watch(struct zk_sync *zs, int type, const char *path)
{
    bool mine = false;
    for (size_t i = 0; i < zs->n_ext; i++) {
        if (zs->ext[i].on_watch && zs->ext[i].on_watch(zs->ext[i].arg, type, path)) {
            mine = true; /* every extension sees it: they may share a base path */
        }
    }
    return mine;
}

static void handle_events(struct zk_sync *zs, struct zevent *ev)
{
    while (ev) {
        struct zevent *next = ev->next;
        if (ev->zh == zs->zh && zs->zh) {
            if (ev->fast) {
                fast_apply(zs, ev->fast);
            } else if (ev->type == ZOO_SESSION_EVENT) {
                on_session_event(zs, ev->state);
            } else if (ext_watch(zs, ev->type, ev->path)) {
                zs->c.watches_fired++;
            } else if (is_own_node_path(zs, ev->path)) {
                /* data watch on an own node: rewritten in place, or deleted */
                zs->c.watches_fired++;
                if (ev->type == ZOO_CHANGED_EVENT) {
                    repair_own(zs, ev->path + strlen(zs->own.path) + 1);
                }
                zs->own.dirty = true;
            } else if (ev->type == ZOO_CHILD_EVENT || ev->type == ZOO_DELETED_EVENT) {
                zs->c.watches_fired++;
                struct rhost *h = host_by_path(zs, ev->path);
                if (strcmp(ev->path, zs->hosts_path) == 0 || !h || ev->type == ZOO_DELETED_EVENT) {
                    zs->hosts_dirty = true;
                }
                if (h) {
                    h->dirty = true;
                }
            }
        }
        fast_free(ev->fast);
        free(ev);
        ev = next;
    }
}

/*
 * A session that could not reconnect for twice its timeout is given up: no
 * server will resume it (a healthy quorum has expired it), and a server
 * restarted with an empty or older data directory refuses a client that has
 * seen a newer zxid forever, so only a fresh handle gets through.
 */
static int64_t give_up_at(struct zk_sync *zs)
{
    if (!zs->zh || zs->connected || !zs->disconnected_at) {
        return 0;
    }
    return zs->disconnected_at + 2 * (int64_t)zs->session_timeout_ms;
}

static void maybe_give_up_session(struct zk_sync *zs)
{
    int64_t at = give_up_at(zs);
    if (!at || mono_ms() < at) {
        return;
    }
    zlog(zs, ZK_SYNC_LOG_WARN, "no server resumed the session for %d ms; opening a new one",
         2 * zs->session_timeout_ms);
    zs->c.sessions_abandoned++;
    close_session(zs);
    zs->disconnected_at = 0;
    zs->new_session_at = mono_ms() + jitter(zs);
    zs->resync_at = 0;
    set_state(zs, ZK_SYNC_EXPIRED);
}

static struct rhost *host_by_name(struct zk_sync *zs, const char *name)
{
    size_t lo = 0, hi = zs->nhosts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(zs->hosts[mid]->name, name);
        if (c == 0) {
            return zs->hosts[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/*
 * Release held removals once cooling-off is over and a full listing is done.
 * While the tree is being rebuilt, an id stays held until its host has
 * re-announced (its subtree is back and listed) or the period has ended.
 */
static void release_held(struct zk_sync *zs)
{
    if (zs->held_count == 0 || cooling(zs) || !zs->connected || zs->resync_at) {
        return;
    }
    bool rebuild = rebuilding(zs);
    for (size_t i = 0; i < zs->idx_cap && zs->held_count > 0;) {
        struct idrec *r = &zs->idx[i];
        if (r->state != ID_HELD) {
            i++;
            continue;
        }
        if (rebuild) {
            struct rhost *h = host_by_name(zs, r->host);
            if (!h || h->missing || h->dirty || h->n == 0) {
                i++; /* not re-announced yet (an empty subtree is not an announcement) */
                continue;
            }
        }
        char id[UUID_LEN + 1], host[MAX_HOST_ID + 1];
        memcpy(id, r->id, sizeof(id));
        snprintf(host, sizeof(host), "%s", r->host);
        idx_delete(zs, r); /* backward shift may move another entry into slot i */
        zs->c.held_reported++;
        zs->c.removes++;
        deliver_open(zs);
        if (zs->cb.on_remote_remove) {
            zs->cb.on_remote_remove(zs->arg, host, id);
        }
    }
    deliver_close(zs);
}

/*
 * Audit: one pipelined exists per known remote node; a node whose mzxid or
 * aversion differs from what was read is read again and its id settled
 * anew (an in-place rewrite by another client). Subtrees we could not list
 * are listed again. Errors leave the rest for the next pass.
 */
static int audit(struct zk_sync *zs)
{
    zs->c.audits++;
    int worst = ZOK;
    for (size_t hi = 0; hi < zs->nhosts; hi++) {
        struct rhost *h = zs->hosts[hi];
        if (h->bad || h->missing) {
            continue;
        }
        if (h->unreadable) {
            h->dirty = true;
            continue;
        }
        char(*touched)[UUID_LEN + 1] = calloc(h->n + 1, sizeof(*touched));
        if (!touched) {
            return ZSYSTEMERROR;
        }
        size_t nt = 0, i = 0;
        int hrc = ZOK;
        while (i < h->n && hrc == ZOK) {
            struct zk_batch b;
            zk_batch_init(&b);
            struct bop *ops[BATCH_MAX];
            size_t nops = 0;
            for (; i < h->n && nops < BATCH_MAX; i++) {
                struct rnode *rn = &h->nodes[i];
                if (rn->bad_name || rn->kind == RN_NEW) {
                    continue;
                }
                struct bop *op = bop_new(zs, &b, h->path, rn->name);
                if (!op) {
                    hrc = ZSYSTEMERROR;
                    break;
                }
                op->node = i;
                zk_batch_add(&b);
                int rc = zoo_aexists(zs->zh, op->path, 0, exists_done, op);
                zk_batch_issued(&b, rc, &op->rc);
                ops[nops++] = op;
            }
            batch_wait(zs, &b);
            zk_batch_destroy(&b);
            for (size_t k = 0; k < nops; k++) {
                struct bop *op = ops[k];
                struct rnode *rn = &h->nodes[op->node];
                if (op->rc == ZOK) {
                    bool known = rn->mzxid != 0;
                    /* a document taken from a snapshot: the node must belong to
                     * the session that wrote the snapshot */
                    bool foreign = rn->snap_owner != 0 && op->owner != rn->snap_owner;
                    rn->snap_owner = 0;
                    if (foreign ||
                        (known && (op->mzxid != rn->mzxid || op->aversion != rn->aversion))) {
                        zs->c.audit_changed++;
                        zlog(zs, ZK_SYNC_LOG_WARN, "%s %s; reading it again", op->path,
                             foreign ? "is not owned by the session of its host's snapshot"
                                     : "changed in place");
                        rn->kind = RN_NEW;
                        rn->refetch = true;
                        memcpy(touched[nt], rn->name, UUID_LEN);
                        touched[nt++][UUID_LEN] = '\0';
                    }
                    rn->mzxid = op->mzxid;
                    rn->aversion = op->aversion;
                } else if (op->rc == ZNONODE) {
                    h->dirty = true; /* the child watch lists it */
                } else if (hrc == ZOK) {
                    hrc = op->rc;
                    round_fail(zs, "audit", op->path, op->rc);
                }
                free(op);
            }
        }
        if (nt > 0) {
            int rc = fetch_and_settle(zs, h, touched, nt);
            if (hrc == ZOK) {
                hrc = rc;
            }
        }
        free(touched);
        if (hrc != ZOK) {
            worst = hrc;
        }
    }
    return worst;
}

/* Remember how the round ended; the status is current every round. */
static void end_round(struct zk_sync *zs, int64_t now, bool full)
{
    if (zs->round_error[0]) {
        zs->c.sync_errors++;
        bool news = !zs->synced && strcmp(zs->last_error, zs->round_error) == 0 ? false : true;
        if (!zs->error_since_ms || zs->synced) {
            zs->error_since_ms = real_ms();
        }
        zlog(zs, news ? ZK_SYNC_LOG_WARN : ZK_SYNC_LOG_DEBUG, "sync round failed: %s (retrying)",
             zs->round_error);
        snprintf(zs->last_error, sizeof(zs->last_error), "%s", zs->round_error);
        zs->synced = false;
        zs->retry_at = now + RETRY_MS;
        if (news || mono_ms() - zs->last_report_ms >= REPORT_MS) {
            report_state(zs);
        }
        return;
    }
    bool recovered = !zs->synced;
    if (recovered && zs->error_since_ms) {
        zlog(zs, ZK_SYNC_LOG_INFO, "sync round complete again (failing since %lld ms)",
             (long long)(real_ms() - zs->error_since_ms));
    }
    zs->c.sync_rounds++;
    zs->c.full_syncs += full;
    zs->synced = true;
    zs->error_since_ms = 0;
    zs->last_error[0] = '\0';
    zs->last_sync_ms = real_ms();
    if (recovered || full || mono_ms() - zs->last_report_ms >= REPORT_MS) {
        report_state(zs);
    }
}

/*
 * One round while connected: every listing that is due, then the local
 * reconcile. An error on one host (or one node) does not stop the round:
 * the others are synced, the own writes are made, and what failed is
 * retried after RETRY_MS.
 */
/* Own early creates awaiting their confirmation until the hold's end:
 * the own listing and the local reconcile wait for it (worker). */
static bool local_held(const struct zk_sync *zs, int64_t now)
{
    return zs->hold_w != 0 && now < zs->hold_w;
}

static void sync_round(struct zk_sync *zs)
{
    int64_t now = mono_ms();
    if ((zs->retry_at && now < zs->retry_at) || (zs->resync_at && now < zs->resync_at)) {
        return; /* backing off, or a jittered full resync is due later and covers all */
    }
    bool full = zs->resync_at != 0;
    zs->retry_at = 0;
    zs->round_error[0] = '\0';
    if (full) {
        zs->hosts_dirty = true;
        zs->own.dirty = true;
        for (size_t i = 0; i < zs->nhosts; i++) {
            zs->hosts[i]->dirty = true;
        }
    }
    bool hosts_ok = true;
    if (zs->hosts_dirty) {
        hosts_ok = sync_hosts(zs) == ZOK;
    }
    bool held = local_held(zs, now);
    if (zs->own.dirty && !held) {
        (void)sync_host(zs, &zs->own, true); /* on error: reconcile from the last listing */
    }
    sync_dirty_hosts(zs);
    if (zs->audit_ms > 0 && zs->next_audit_at && now >= zs->next_audit_at && hosts_ok) {
        zs->next_audit_at = now + zs->audit_ms;
        (void)audit(zs);
        sync_dirty_hosts(zs); /* unreadable subtrees, listed again */
        snap_audit_own(zs);
    }
    struct zk_sync_round xr = {
        .zh = zs->zh, .full = full, .cooling = cooling(zs), .acl = &zs->acl_node_v};
    for (size_t i = 0; i < zs->n_ext; i++) {
        if (zs->ext[i].round) {
            zs->ext[i].round(zs->ext[i].arg, zs, &xr);
        }
    }
    if (zs->local_dirty && !held) {
        int rc = reconcile_local(zs);
        if (rc == ZOK && zs->own.dirty) {
            rc = sync_host(zs, &zs->own, true);
            if (rc == ZOK && zs->local_dirty) {
                rc = reconcile_local(zs); /* normally a no-op that marks applied */
            }
        }
        if (rc != ZOK) {
            round_fail(zs, "write", zs->own.path, rc);
        }
    }
    if (zs->snap_dirty && !zs->local_dirty && mono_ms() >= snap_due(zs)) {
        snap_write(zs);
    }
    arm_own_watches(zs);
    if (full && hosts_ok) { /* every host listed once; failures stay dirty */
        zs->resync_at = 0;
        if (!zs->next_audit_at) {
            zs->next_audit_at = now + zs->audit_ms;
        }
    }
    end_round(zs, now, full);
}

static int64_t next_deadline(struct zk_sync *zs)
{
    int64_t t = mono_ms() + TICK_MS;
    int64_t cand[] = {zs->new_session_at,
                      zs->resync_at,
                      zs->retry_at,
                      zs->held_count ? zs->cool_until : 0,
                      zs->held_count ? zs->region_until : 0,
                      zs->connected && zs->audit_ms > 0 ? zs->next_audit_at : 0,
                      zs->connected ? snap_due(zs) : 0,
                      (zs->local_dirty || zs->own.dirty) && local_held(zs, mono_ms()) ? zs->hold_w
                                                                                      : 0,
                      give_up_at(zs)};
    for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
        if (cand[i] > 0 && cand[i] < t) {
            t = cand[i];
        }
    }
    for (size_t i = 0; i < zs->n_ext; i++) {
        int64_t d = zs->connected && zs->ext[i].deadline ? zs->ext[i].deadline(zs->ext[i].arg) : 0;
        if (d > 0 && d < t) {
            t = d;
        }
    }
    return t;
}

static bool work_pending(struct zk_sync *zs)
{
    if (!zs->connected) {
        return false;
    }
    int64_t now = mono_ms();
    if ((zs->retry_at && now < zs->retry_at) || (zs->resync_at && now < zs->resync_at)) {
        return false;
    }
    if (zs->resync_at) {
        return true;
    }
    if (zs->hosts_dirty || ((zs->own.dirty || zs->local_dirty) && !local_held(zs, now))) {
        return true;
    }
    for (size_t i = 0; i < zs->n_ext; i++) {
        if (zs->ext[i].pending && zs->ext[i].pending(zs->ext[i].arg)) {
            return true;
        }
    }
    if (zs->snap_dirty && now >= snap_due(zs)) {
        return true;
    }
    for (size_t i = 0; i < zs->nhosts; i++) {
        if (zs->hosts[i]->dirty && !zs->hosts[i]->bad) {
            return true;
        }
    }
    return false;
}

static void *worker_main(void *arg)
{
    struct zk_sync *zs = arg;
    if (zs->cb.on_thread_start) {
        zs->cb.on_thread_start(zs->arg);
    }
    open_session(zs);
    bool was_cooling = false;
    for (;;) {
        pthread_mutex_lock(&zs->mu);
        /* a publish/withdraw made while we were busy must not wait for a tick */
        if (zs->applied_gen != zs->local_gen) {
            zs->local_dirty = true;
        }
        zs->hold_w = zs->local_hold_until;
        if (!zs->ev_head && !zs->stop && !work_pending(zs)) {
            int64_t dl = next_deadline(zs);
            struct timespec ts = {.tv_sec = dl / 1000, .tv_nsec = (dl % 1000) * 1000000};
            pthread_cond_timedwait(&zs->wake, &zs->mu, &ts);
            zs->c.worker_wakeups++;
        }
        bool stop = zs->stop;
        struct zevent *ev = zs->ev_head;
        zs->ev_head = zs->ev_tail = NULL;
        zs->ev_woken = false;
        if (zs->applied_gen != zs->local_gen) {
            zs->local_dirty = true;
        }
        zs->hold_w = zs->local_hold_until;
        pthread_mutex_unlock(&zs->mu);
        if (stop) {
            while (ev) {
                struct zevent *n = ev->next;
                fast_free(ev->fast);
                free(ev);
                ev = n;
            }
            break;
        }
        handle_events(zs, ev);
        maybe_give_up_session(zs);
        if (!zs->zh && zs->new_session_at && mono_ms() >= zs->new_session_at) {
            set_state(zs, ZK_SYNC_CONNECTING);
            open_session(zs);
        }
        if (zs->connected) {
            sync_round(zs);
            release_held(zs);
        }
        deliver_close(zs); /* nothing stays open across a wait */
        update_early(zs);
        bool now_cooling = cooling(zs);
        if (was_cooling && !now_cooling) {
            report_state(zs);
        } else {
            publish_status(zs);
        }
        was_cooling = now_cooling;
    }
    close_session(zs);
    if (zs->cb.on_thread_stop) {
        zs->cb.on_thread_stop(zs->arg);
    }
    return NULL;
}

/* ---------- public API ---------- */

static void zs_free(struct zk_sync *zs)
{
    if (!zs) {
        return;
    }
    for (size_t i = 0; i < zs->nhosts; i++) {
        host_free(zs->hosts[i]);
    }
    free(zs->hosts);
    while (zs->ev_head) { /* queued after the worker's last drain (closing the session) */
        struct zevent *n = zs->ev_head->next;
        fast_free(zs->ev_head->fast);
        free(zs->ev_head);
        zs->ev_head = n;
    }
    free_nodes(zs->own.nodes, zs->own.n);
    free(zs->own.path);
    for (size_t i = 0; i < zs->idx_cap; i++) {
        if (zs->idx[i].state != ID_EMPTY) {
            free(zs->idx[i].host);
        }
    }
    free(zs->idx);
    for (size_t i = 0; i < zs->nlocal; i++) {
        free(zs->local[i]);
    }
    free(zs->local);
    free(zs->connect);
    free(zs->root);
    free(zs->host_id);
    free(zs->hosts_path);
    free(zs->snap_path);
    free(zs->own_snap_path);
    if (zs->auth) {
        explicit_bzero(zs->auth, strlen(zs->auth));
        free(zs->auth);
    }
    pthread_rwlock_destroy(&zs->pic_lock);
    pthread_mutex_destroy(&zs->mu);
    pthread_cond_destroy(&zs->wake);
    pthread_cond_destroy(&zs->applied);
    free(zs);
}

static bool valid_root(const char *root)
{
    size_t n = root ? strlen(root) : 0;
    if (n < 2 || n > 200 || root[0] != '/' || root[n - 1] == '/' || strstr(root, "//")) {
        return false;
    }
    return true;
}

int zk_sync_start(const struct zk_sync_config *cfg, const struct zk_sync_callbacks *cb, void *arg,
                  struct zk_sync **out)
{
    *out = NULL;
    const char *bad = NULL;
    if (!cfg || !cfg->connect || !*cfg->connect) {
        bad = "connect string missing";
    } else if (!valid_root(cfg->root)) {
        bad = "root must be an absolute path without trailing '/' (2..200 chars)";
    } else if (!zk_sync_is_host_id(cfg->host_id)) {
        bad = "host id must be 1..255 chars of [A-Za-z0-9._:-]";
    } else if (cfg->session_timeout_ms < 0 || cfg->session_timeout_ms > 600000) {
        bad = "session timeout out of range";
    } else if (cfg->auth &&
               (!strchr(cfg->auth, ':') || cfg->auth[0] == ':' || strlen(cfg->auth) > 1000)) {
        bad = "credentials must be \"user:password\" (a non-empty user)";
    } else if (cfg->n_ext > ZK_SYNC_EXT_MAX || (cfg->n_ext && !cfg->ext)) {
        bad = "too many extensions";
    }
    if (bad) {
        if (cb && cb->log) {
            char msg[160];
            snprintf(msg, sizeof(msg), "bad configuration: %s", bad);
            cb->log(arg, ZK_SYNC_LOG_ERROR, msg);
        } else {
            fprintf(stderr, "zk_sync ERROR bad configuration: %s\n", bad);
        }
        return -EINVAL;
    }
    struct zk_sync *zs = calloc(1, sizeof(*zs));
    if (!zs) {
        return -ENOMEM;
    }
    pthread_mutex_init(&zs->mu, NULL);
    pthread_rwlock_init(&zs->pic_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&zs->wake, &ca);
    pthread_cond_init(&zs->applied, &ca);
    pthread_condattr_destroy(&ca);
    if (cb) {
        zs->cb = *cb;
    }
    zs->arg = arg;
    for (size_t i = 0; i < cfg->n_ext; i++) {
        zs->ext[i] = cfg->ext[i];
    }
    zs->n_ext = cfg->n_ext;
    zs->session_timeout_ms = cfg->session_timeout_ms ? cfg->session_timeout_ms : 10000;
    zs->cooloff_ms = cfg->cooloff_ms < 0 ? 2000 : cfg->cooloff_ms;
    zs->jitter_ms = cfg->jitter_ms >= 0
                        ? cfg->jitter_ms
                        : (zs->session_timeout_ms / 4 < 1000 ? zs->session_timeout_ms / 4 : 1000);
    zs->max_doc = cfg->max_doc_bytes ? cfg->max_doc_bytes : 65536;
    zs->audit_ms = cfg->audit_ms == 0 ? 60000 : cfg->audit_ms < 0 ? 0 : cfg->audit_ms;
    zs->region_wait_ms = cfg->region_wait_ms < 0 ? 0
                         : cfg->region_wait_ms > 0
                             ? cfg->region_wait_ms
                             : 2 * zs->session_timeout_ms + zs->jitter_ms + zs->cooloff_ms;
    if (cfg->auth) {
        /* nodes: all rights for the authenticated identity, read for anyone;
         * <root>/hosts also lets anyone add a host subtree */
        zs->acl_node[0] = (struct ACL){.perms = ZOO_PERM_ALL, .id = ZOO_AUTH_IDS};
        zs->acl_node[1] = (struct ACL){.perms = ZOO_PERM_READ, .id = ZOO_ANYONE_ID_UNSAFE};
        zs->acl_hosts[0] = zs->acl_node[0];
        zs->acl_hosts[1] =
            (struct ACL){.perms = ZOO_PERM_READ | ZOO_PERM_CREATE, .id = ZOO_ANYONE_ID_UNSAFE};
        zs->acl_node_v = (struct ACL_vector){.count = 2, .data = zs->acl_node};
        zs->acl_hosts_v = (struct ACL_vector){.count = 2, .data = zs->acl_hosts};
    } else {
        zs->acl_node_v = ZOO_OPEN_ACL_UNSAFE;
        zs->acl_hosts_v = ZOO_OPEN_ACL_UNSAFE;
    }
    zs->log_level = cfg->log_level;
    zs->rnd = (unsigned)getpid() ^ (unsigned)real_ms();
    if (cfg->resume && cfg->resume->id) {
        zs->resume.client_id = cfg->resume->id;
        memcpy(zs->resume.passwd, cfg->resume->passwd, sizeof(zs->resume.passwd));
    }
    size_t hp = strlen(cfg->root) + sizeof("/hosts");
    size_t op = hp + 1 + strlen(cfg->host_id);
    zs->connect = strdup(cfg->connect);
    zs->auth = cfg->auth ? strdup(cfg->auth) : NULL;
    zs->root = strdup(cfg->root);
    zs->host_id = strdup(cfg->host_id);
    zs->hosts_path = malloc(hp);
    zs->own.path = malloc(op + 1);
    zs->own.name = zs->host_id;
    zs->snapshots = cfg->snapshots >= 0;
    size_t sp = strlen(cfg->root) + sizeof("/snap");
    zs->snap_path = malloc(sp);
    zs->own_snap_path = malloc(sp + 1 + strlen(cfg->host_id));
    if (!zs->connect || !zs->root || !zs->host_id || !zs->hosts_path || !zs->own.path ||
        !zs->snap_path || !zs->own_snap_path || (cfg->auth && !zs->auth)) {
        zs->own.name = NULL;
        zs_free(zs);
        return -ENOMEM;
    }
    snprintf(zs->hosts_path, hp, "%s/hosts", cfg->root);
    snprintf(zs->own.path, op + 1, "%s/%s", zs->hosts_path, cfg->host_id);
    snprintf(zs->snap_path, sp, "%s/snap", cfg->root);
    snprintf(zs->own_snap_path, sp + 1 + strlen(cfg->host_id), "%s/%s", zs->snap_path,
             cfg->host_id);
    zs->state = ZK_SYNC_CONNECTING;
    zs->since_ms = real_ms();
    zs->status.state = ZK_SYNC_CONNECTING;
    zs->status.since_ms = zs->since_ms;
    zs->status.local_applied = true;
    zoo_set_debug_level(cfg->zk_log_level == ZK_SYNC_LOG_DEBUG  ? ZOO_LOG_LEVEL_DEBUG
                        : cfg->zk_log_level == ZK_SYNC_LOG_INFO ? ZOO_LOG_LEVEL_INFO
                        : cfg->zk_log_level == ZK_SYNC_LOG_WARN ? ZOO_LOG_LEVEL_WARN
                                                                : ZOO_LOG_LEVEL_ERROR);
    if (zs->cb.log) {
        pthread_mutex_lock(&client_log_mu);
        if (!client_log_sink) {
            client_log_sink = zs;
        }
        pthread_mutex_unlock(&client_log_mu);
    }
    int rc = pthread_create(&zs->thread, NULL, worker_main, zs);
    if (rc != 0) {
        pthread_mutex_lock(&client_log_mu);
        if (client_log_sink == zs) {
            client_log_sink = NULL;
        }
        pthread_mutex_unlock(&client_log_mu);
        zs->own.name = NULL;
        zs_free(zs);
        return -rc;
    }
    *out = zs;
    return 0;
}

void zk_sync_stop(struct zk_sync *zs)
{
    if (!zs) {
        return;
    }
    pthread_mutex_lock(&zs->mu);
    zs->stop = true;
    pthread_cond_signal(&zs->wake);
    pthread_mutex_unlock(&zs->mu);
    pthread_join(zs->thread, NULL);
    pthread_mutex_lock(&client_log_mu);
    if (client_log_sink == zs) {
        client_log_sink = NULL;
    }
    pthread_mutex_unlock(&client_log_mu);
    while (zs->ev_head) {
        struct zevent *n = zs->ev_head->next;
        fast_free(zs->ev_head->fast);
        free(zs->ev_head);
        zs->ev_head = n;
    }
    zs_free(zs);
}

/* Index of id in the sorted local array, or the insertion point with *found false. */
static size_t local_find(struct zk_sync *zs, const char *id, bool *found)
{
    size_t lo = 0, hi = zs->nlocal;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(zs->local[mid]->id, id, UUID_LEN);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

struct early_op {
    struct zk_sync *zs;
    struct lnode *ln;
};

/* Completion of an early create (client completion thread): record the
 * result for the worker's reconcile. Wake it unless a settle hold is on
 * (the worker confirms the hold's creates at its end); a failure ends the
 * hold. */
static void early_done(int rc, const char *value, const void *data)
{
    (void)value;
    struct early_op *eo = (struct early_op *)data;
    struct zk_sync *zs = eo->zs;
    bool ok = rc == ZOK || rc == ZNODEEXISTS;
    pthread_mutex_lock(&zs->mu);
    eo->ln->early = ok ? EARLY_OK : EARLY_FAILED;
    lnode_unref_locked(eo->ln);
    if (!ok) { /* the worker creates it now */
        zs->local_urgent = true;
        zs->local_hold_until = 0;
    }
    /* No hold: the worker waits for it, or is due anyway. During a hold
     * (one a publish started while reconcile_local waited for early
     * replies) that waiting reconcile still needs the signal: without it,
     * it would wait for good (nothing else ends the hold). */
    if (zs->local_hold_until == 0 || zs->early_waiting) {
        pthread_cond_signal(&zs->wake);
    }
    pthread_mutex_unlock(&zs->mu);
    atomic_fetch_sub(&zs->async_inflight, 1);
    free(eo);
}

int zk_sync_publish_local(struct zk_sync *zs, const char *id, const char *json, size_t len)
{
    if (!zs || !zk_sync_is_uuid(id) || !json) {
        return -EINVAL;
    }
    int rc = zk_sync_check_doc(json, len, id, zs->max_doc, NULL);
    if (rc != 0) {
        return rc;
    }
    struct lnode *ln = malloc(sizeof(*ln) + len + 1);
    if (!ln) {
        return -ENOMEM;
    }
    memcpy(ln->id, id, UUID_LEN + 1);
    memcpy(ln->json, json, len);
    ln->json[len] = '\0';
    ln->len = len;
    ln->refs = 1;
    ln->early = EARLY_NONE; /* (malloc: a reconcile must not wait for garbage) */
    ln->early_gen = 0;
    ln->early_created = ln->early_watch = false;
    pthread_mutex_lock(&zs->mu);
    bool found;
    size_t at = local_find(zs, id, &found);
    if (found && zs->local[at]->len == len && memcmp(zs->local[at]->json, json, len) == 0) {
        pthread_mutex_unlock(&zs->mu);
        free(ln);
        return 0; /* same document: nothing to do */
    }
    if (!found && zs->nlocal == zs->cap_local) {
        size_t ncap = zs->cap_local ? zs->cap_local * 2 : 64;
        struct lnode **n = realloc(zs->local, ncap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&zs->mu);
            free(ln);
            return -ENOMEM;
        }
        zs->local = n;
        zs->cap_local = ncap;
    }
    /* unique within this handle and, via the clock, across restarts */
    uint64_t seq = (uint64_t)real_ms();
    if (seq <= zs->last_seq) {
        seq = zs->last_seq + 1;
    }
    zs->last_seq = seq;
    ln->seq = seq;
    snprintf(ln->name, sizeof(ln->name), "%s-%llu", id, (unsigned long long)seq);
    if (found) {
        lnode_unref_locked(zs->local[at]);
        zs->local[at] = ln;
    } else {
        memmove(&zs->local[at + 1], &zs->local[at], (zs->nlocal - at) * sizeof(*zs->local));
        zs->local[at] = ln;
        zs->nlocal++;
    }
    zs->local_gen++;
    struct early_op *eo = zs->early_zh ? malloc(sizeof(*eo)) : NULL;
    bool early = false;
    if (eo) {
        /* Early create: the node is on its way before the worker wakes (the
         * client copies the data now). The worker's reconcile waits for its
         * reply instead of creating the node again. */
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", zs->own.path, ln->name);
        eo->zs = zs;
        eo->ln = ln;
        ln->refs++;
        ln->early = EARLY_PENDING;
        ln->early_gen = zs->early_gen;
        atomic_fetch_add(&zs->async_inflight, 1);
        if (zoo_acreate(zs->early_zh, path, ln->json, (int)ln->len, &zs->acl_node_v, ZOO_EPHEMERAL,
                        early_done, eo) == ZOK) {
            zs->early_creates++;
            early = true;
            /* The node's data watch (tamper detection) goes right behind
             * the create on the same session: the server answers it before
             * the region's readers, woken by the create, ask for the node,
             * instead of the worker sending it later among their reads. */
            size_t need = strlen(path) + 1;
            struct own_watch *w = malloc(sizeof(*w) + need);
            if (w) {
                w->zs = zs;
                w->zh = zs->early_zh;
                memcpy(w->path, path, need);
                atomic_fetch_add(&zs->async_inflight, 1);
                if (zoo_aexists(zs->early_zh, path, 1, own_watch_done, w) == ZOK) {
                    ln->early_watch = true;
                } else {
                    atomic_fetch_sub(&zs->async_inflight, 1);
                    free(w);
                }
            }
        } else {
            atomic_fetch_sub(&zs->async_inflight, 1);
            ln->early = EARLY_NONE;
            ln->refs--;
            free(eo);
        }
    }
    /* A node on its way needs the worker only once its reply is in: the
     * reply (early_done) and the own child event it fires wake it then, so
     * it does not wake now to wait for that reply while the region reads
     * the node. With a settle hold, the worker is woken only to start the
     * hold (to learn its deadline). Anything else wakes it at once (and
     * this one too if something urgent is pending anyway). */
    bool wake = true;
    if (early && !zs->local_urgent) {
        wake = LOCAL_SETTLE_MS > 0 && zs->local_hold_until == 0;
        if (wake) {
            zs->local_hold_until = mono_ms() + LOCAL_SETTLE_MS;
        }
    } else {
        zs->local_urgent = true;
        zs->local_hold_until = 0;
    }
    if (wake) {
        pthread_cond_signal(&zs->wake);
    }
    pthread_mutex_unlock(&zs->mu);
    return 0;
}

int zk_sync_withdraw_local(struct zk_sync *zs, const char *id)
{
    if (!zs || !zk_sync_is_uuid(id)) {
        return -EINVAL;
    }
    pthread_mutex_lock(&zs->mu);
    bool found;
    size_t at = local_find(zs, id, &found);
    if (!found) {
        pthread_mutex_unlock(&zs->mu);
        return -ENOENT;
    }
    lnode_unref_locked(zs->local[at]);
    memmove(&zs->local[at], &zs->local[at + 1], (zs->nlocal - at - 1) * sizeof(*zs->local));
    zs->nlocal--;
    zs->local_gen++;
    zs->local_urgent = true; /* the node goes now, with anything held */
    zs->local_hold_until = 0;
    pthread_cond_signal(&zs->wake);
    pthread_mutex_unlock(&zs->mu);
    return 0;
}

void zk_sync_wake(struct zk_sync *zs)
{
    pthread_mutex_lock(&zs->mu);
    pthread_cond_signal(&zs->wake);
    pthread_mutex_unlock(&zs->mu);
}

void zk_sync_round_error(struct zk_sync *zs, const char *what, const char *path, int rc)
{
    round_fail(zs, what, path, rc);
}

int zk_sync_get_session(struct zk_sync *zs, struct zk_sync_session *out)
{
    pthread_mutex_lock(&zs->mu);
    out->id = zs->session.client_id;
    memcpy(out->passwd, zs->session.passwd, sizeof(out->passwd));
    pthread_mutex_unlock(&zs->mu);
    return out->id ? 0 : -ENOTCONN;
}

void zk_sync_get_status(struct zk_sync *zs, struct zk_sync_status *out)
{
    pthread_mutex_lock(&zs->mu);
    *out = zs->status;
    out->counters.local_desired = zs->nlocal;
    out->local_applied = zs->applied_gen == zs->local_gen;
    pthread_mutex_unlock(&zs->mu);
}

int zk_sync_wait_local_applied(struct zk_sync *zs, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t dl = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
    ts.tv_sec = dl / 1000;
    ts.tv_nsec = (dl % 1000) * 1000000;
    pthread_mutex_lock(&zs->mu);
    uint64_t target = zs->local_gen;
    int rc = 0;
    while (zs->applied_gen < target && rc == 0) {
        rc = pthread_cond_timedwait(&zs->applied, &zs->mu, &ts);
    }
    bool ok = zs->applied_gen >= target;
    pthread_mutex_unlock(&zs->mu);
    return ok ? 0 : -ETIMEDOUT;
}
