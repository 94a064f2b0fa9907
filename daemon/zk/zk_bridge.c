/* SPDX-License-Identifier: MIT */
/*
 * zk_bridge.c — glue between zk_sync (ZooKeeper) and the daemon's registry,
 * publisher and control socket. See zk_bridge.h and docs/ZOOKEEPER.md.
 */
#include "zk_bridge.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "discshm.h"
#include "export.h"
#include "import.h"
#include "instance.h"
#include "cache_load.h"
#include "log.h"
#include "protect.h"
#include "zk_sync.h"

struct zk_bridge {
    struct registry *reg;
    struct publisher *pub;
    /* Guards zs for the registry listener, which runs on the control and
     * health threads; NULL once stopped so a late local change is a no-op. */
    pthread_mutex_t mu;
    struct zk_sync *zs;
    atomic_uint_fast64_t rejected; /* remote documents the instance model refused */
    struct protect *prot;          /* remote removals go through protection */
    /* Last connection state, re-published when protection's held count changes. */
    pthread_mutex_t st_mu;
    uint32_t st_flags, st_reason, st_zk_held;
    int64_t st_since_ms, st_last_sync_ms;
    struct zk_bridge_persist persist; /* resume pointer not kept */
    int64_t saved_session;            /* session id last passed to persist.save */
    struct zk_import *import;         /* foreign registries (import = ...), NULL: none */
    struct zk_export *export;         /* Curator export (export-curator = BASE), NULL: none */
    bool purged;        /* file-cache entries not confirmed by the region dropped once */
    bool authenticated; /* digest credentials configured (zk-auth-file) */
};

/* Header state = zk_sync's state + protection's held removals. */
static void publish_state(struct zk_bridge *zb)
{
    uint32_t held = protect_held(zb->prot);
    pthread_mutex_lock(&zb->st_mu);
    uint32_t all = zb->st_zk_held + held;
    publisher_set_state(zb->pub, zb->st_flags | (held ? DISC_ST_HELD_CHANGES : 0), zb->st_reason,
                        zb->st_since_ms, zb->st_last_sync_ms, all);
    pthread_mutex_unlock(&zb->st_mu);
}

static void on_held_changed(void *arg, uint32_t held)
{
    (void)held;
    publish_state(arg);
}

/* ---- zk_sync callbacks (all on zk_sync's worker thread) ---------------- */

/* The worker commits its own batches into the segment when the publisher
 * is idle (publisher_allow_inline): a remote instance is visible to readers
 * without a hand-off to the publisher thread. Its callbacks hold no lock
 * when a batch ends, and the publisher's listener (the control thread's
 * on_publish) takes none of the worker's. */
static void cb_thread_start(void *arg)
{
    struct zk_bridge *zb = arg;
    registry_thread_online();
    if (publisher_allow_inline(zb->pub, true) < 0)
        log_warn("zk: the worker's changes go through the publisher thread (%d threads commit "
                 "inline already)",
                 PUBLISHER_INLINE_MAX);
}

static void cb_thread_stop(void *arg)
{
    struct zk_bridge *zb = arg;
    publisher_allow_inline(zb->pub, false);
    registry_thread_offline();
}

static void cb_log(void *arg, enum zk_sync_log_level level, const char *msg)
{
    (void)arg;
    log_msg((enum log_level)level, "zk: %s", msg);
}

/* doc: parsed and checked once by zk_sync (zk_sync_parse_doc); the
 * instance model validates it fully here, without parsing it again. */
static void cb_remote_upsert(void *arg, const char *host_id, const char *id, const json_t *doc,
                             const char *json, size_t len)
{
    struct zk_bridge *zb = arg;
    (void)json;
    (void)len;
    struct instance *inst = NULL;
    struct instance_error ierr = {0};
    int rc = instance_from_document(doc, &inst, &ierr);
    if (rc < 0) {
        atomic_fetch_add(&zb->rejected, 1);
        log_warn("zk: instance %s of host %s skipped: %s%s%s", id, host_id, ierr.message,
                 ierr.field[0] ? " at " : "", ierr.field);
        return;
    }
    /* Whatever the document says, it came from the region. */
    inst->origin = DISC_ORIGIN_REMOTE;
    rc = registry_put_remote(zb->reg, inst);
    instance_unref(inst);
    protect_seen(zb->prot, id); /* announced again: a held removal is void */
    if (rc == -EPERM)
        log_debug("zk: instance %s of host %s ignored: a local instance has that id", id, host_id);
    else if (rc < 0)
        log_warn("zk: instance %s of host %s not stored: %s", id, host_id, strerror(-rc));
}

/* One listing's changes reach the segment in one commit (registry batch). */
static void cb_batch_begin(void *arg)
{
    struct zk_bridge *zb = arg;
    registry_batch_begin(zb->reg);
}

static void cb_batch_end(void *arg)
{
    struct zk_bridge *zb = arg;
    registry_batch_end(zb->reg);
}

/* ---- import (daemon/zk/import.h), on zk_sync's worker thread ---------------- */

static int cb_import_upsert(void *arg, const struct fmt_source *src, const char *id, json_t *doc)
{
    struct zk_bridge *zb = arg;
    struct instance *inst = NULL;
    struct instance_error ierr = {0};
    int rc = instance_from_document(doc, &inst, &ierr);
    if (rc < 0) {
        log_warn("zk: import %s: instance %s skipped: %s%s%s", src->name, id, ierr.message,
                 ierr.field[0] ? " at " : "", ierr.field);
        return rc;
    }
    inst->origin = DISC_ORIGIN_REMOTE;
    rc = registry_put_remote(zb->reg, inst);
    instance_unref(inst);
    protect_seen(zb->prot, id);
    if (rc == -EPERM)
        log_debug("zk: import %s: instance %s ignored: a local instance has that id", src->name,
                  id);
    else if (rc < 0)
        log_warn("zk: import %s: instance %s not stored: %s", src->name, id, strerror(-rc));
    return rc == -EPERM ? 0 : rc;
}

static void cb_import_remove(void *arg, const struct fmt_source *src, const char *id)
{
    struct zk_bridge *zb = arg;
    protect_remove(zb->prot, src->name, id); /* applied now, later, or held */
}

/* Parse the import lines (config_finalize checked them) and make the engine. */
static int start_import(struct zk_bridge *zb, const struct discd_config *cfg,
                        struct zk_sync_ext *ext)
{
    struct fmt_source src[CONFIG_IMPORT_MAX];
    char err[CONFIG_ERR_MAX];
    for (uint32_t i = 0; i < cfg->n_imports; i++) {
        if (fmt_source_parse(cfg->imports[i], &src[i], err, sizeof(err)) < 0) {
            log_error("zk: %s", err);
            return -EINVAL;
        }
    }
    if (fmt_sources_check(src, cfg->n_imports, cfg->zk_root, err, sizeof(err)) < 0) {
        log_error("zk: %s", err);
        return -EINVAL;
    }
    const char *own[] = {cfg->zk_root};
    struct zk_import_callbacks icb = {
        .on_upsert = cb_import_upsert,
        .on_remove = cb_import_remove,
        .on_batch_begin = cb_batch_begin,
        .on_batch_end = cb_batch_end,
        .log = cb_log,
        .arg = zb,
    };
    int rc = zk_import_new(src, cfg->n_imports, own, 1, 0, &icb, &zb->import, ext);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < cfg->n_imports; i++)
        log_info("zk: import %s: %s under %s", src[i].name, src[i].fmt->name, src[i].base);
    return 0;
}

static void cb_remote_remove(void *arg, const char *host_id, const char *id)
{
    struct zk_bridge *zb = arg;
    protect_remove(zb->prot, host_id, id); /* applied now, later, or held */
}

static uint32_t degraded_reason(const struct zk_sync_status *st)
{
    switch (st->state) {
    case ZK_SYNC_CONNECTED:
        return DISC_DEG_NONE;
    case ZK_SYNC_EXPIRED:
        return DISC_DEG_ZK_EXPIRED;
    case ZK_SYNC_CONNECTING:
        return st->last_sync_ms == 0 ? DISC_DEG_ZK_UNREACHABLE : DISC_DEG_ZK_DISCONNECTED;
    case ZK_SYNC_DISCONNECTED:
    default:
        return DISC_DEG_ZK_DISCONNECTED;
    }
}

static void cb_state(void *arg, const struct zk_sync_status *st)
{
    struct zk_bridge *zb = arg;
    bool up = st->state == ZK_SYNC_CONNECTED;
    if (up && zb->persist.save) {
        struct zk_sync_session session;
        pthread_mutex_lock(&zb->mu);
        bool have = zb->zs && zk_sync_get_session(zb->zs, &session) == 0;
        pthread_mutex_unlock(&zb->mu);
        if (have && session.id != zb->saved_session) { /* on_state runs every second */
            zb->saved_session = session.id;
            zb->persist.save(zb->persist.arg, &session); /* a restart resumes it */
        }
    }
    /* connected but the rounds fail: the picture may be stale, say so */
    bool stuck = up && !st->synced && st->error_since_ms > 0;
    uint32_t flags = DISC_ST_ZK_CONFIGURED | (up ? DISC_ST_ZK_CONNECTED : DISC_ST_DEGRADED) |
                     (stuck ? DISC_ST_DEGRADED : 0) | (st->cooling ? DISC_ST_COOLING_OFF : 0);
    pthread_mutex_lock(&zb->st_mu);
    zb->st_flags = flags;
    zb->st_reason = stuck ? DISC_DEG_ZK_SYNC_FAILING : degraded_reason(st);
    zb->st_since_ms = stuck ? st->error_since_ms : up ? 0 : st->since_ms;
    zb->st_last_sync_ms = st->last_sync_ms;
    zb->st_zk_held = (uint32_t)st->counters.held_now;
    pthread_mutex_unlock(&zb->st_mu);
    /* Synced and out of cooling-off: the region has re-announced everything
     * it still has, so file-cache entries left unconfirmed are gone. */
    if (up && !zb->purged && st->last_sync_ms > 0 && !st->cooling) {
        zb->purged = true;
        int n = cache_purge(zb->reg);
        if (n > 0)
            log_info("file cache: %d instances not confirmed by ZooKeeper removed", n);
        publisher_set_snapshot_flags(zb->pub, 0);
    }
    publish_state(zb);
}

/* ---- registry listener (control / health threads) ---------------------- */

static void export_local(struct zk_bridge *zb, struct instance *inst);

static void on_local_added(struct instance *inst, void *arg)
{
    struct zk_bridge *zb = arg;
    json_t *doc = instance_to_json(inst, 0);
    char *s = NULL;
    if (doc) {
        /* Nodes are immutable: leave out what changes without meaning. */
        json_object_del(doc, "health");
        json_object_del(doc, "origin");
        s = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
    }
    if (!s) {
        log_error("zk: cannot publish instance %s: out of memory", inst->id);
        return;
    }
    int rc = 0;
    pthread_mutex_lock(&zb->mu);
    if (zb->zs)
        rc = zk_sync_publish_local(zb->zs, inst->id, s, strlen(s));
    pthread_mutex_unlock(&zb->mu);
    if (rc < 0)
        log_error("zk: cannot publish instance %s: %s", inst->id, strerror(-rc));
    free(s);
    export_local(zb, inst);
}

static void on_local_removed(struct instance *inst, const char *reason, void *arg)
{
    struct zk_bridge *zb = arg;
    (void)reason;
    int rc = 0;
    pthread_mutex_lock(&zb->mu);
    if (zb->zs)
        rc = zk_sync_withdraw_local(zb->zs, inst->id);
    if (zb->zs && zb->export)
        zk_export_remove(zb->export, inst->id);
    pthread_mutex_unlock(&zb->mu);
    if (rc < 0 && rc != -ENOENT)
        log_warn("zk: cannot withdraw instance %s: %s", inst->id, strerror(-rc));
}

/*
 * Curator export (export.h): a local instance is exported while it has a
 * tcp address and its health is not critical or maintenance (a failed
 * check or `discctl maint` takes it out, as deregistration does). A unix
 * socket cannot be written as Curator's address and port: not exported,
 * logged once per instance.
 */
static void export_local(struct zk_bridge *zb, struct instance *inst)
{
    if (!zb->export)
        return;
    bool out_of_rotation =
        inst->health == DISC_HEALTH_CRITICAL || inst->health == DISC_HEALTH_MAINTENANCE;
    char host[DISC_ADDRESS_MAX + 1] = "";
    long port = 0;
    if (inst->addr_kind == DISC_ADDR_TCP) {
        const char *a = inst->address, *colon = strrchr(a, ':');
        size_t hl = colon ? (size_t)(colon - a) : 0;
        if (hl >= 2 && a[0] == '[' && a[hl - 1] == ']') { /* [v6]:port */
            a++;
            hl -= 2;
        }
        if (colon && hl > 0 && hl < sizeof(host)) {
            memcpy(host, a, hl);
            host[hl] = '\0';
            port = strtol(colon + 1, NULL, 10);
        }
    }
    int rc = 0;
    pthread_mutex_lock(&zb->mu);
    if (zb->zs) {
        if (out_of_rotation || !host[0])
            zk_export_remove(zb->export, inst->id);
        else
            rc = zk_export_put(zb->export, inst->id, inst->service, host, (unsigned)port,
                               inst->registered_at_ms);
    }
    pthread_mutex_unlock(&zb->mu);
    if (!host[0] && inst->origin == DISC_ORIGIN_LOCAL)
        log_debug("zk: export: instance %s (%s) not exported: address %s is not host:port",
                  inst->id, inst->service, inst->address);
    if (rc < 0)
        log_warn("zk: export: instance %s (%s) not exported: %s", inst->id, inst->service,
                 strerror(-rc));
}

static void on_local_export(struct instance *inst, void *arg)
{
    export_local(arg, inst);
}

/* ---- status --------------------------------------------------------------- */

static json_t *status_json(void *arg)
{
    struct zk_bridge *zb = arg;
    struct zk_sync_status st;
    pthread_mutex_lock(&zb->mu);
    bool running = zb->zs != NULL;
    if (running)
        zk_sync_get_status(zb->zs, &st);
    pthread_mutex_unlock(&zb->mu);
    if (!running)
        return json_pack("{s:b, s:s}", "configured", 1, "state", "stopped");
    const struct zk_sync_counters *k = &st.counters;
    json_t *counters = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
        "sessions", (json_int_t)k->sessions, "expirations", (json_int_t)k->expirations,
        "reconnects", (json_int_t)k->reconnects, "watches_fired", (json_int_t)k->watches_fired,
        "lists", (json_int_t)k->lists, "reads", (json_int_t)k->reads, "creates",
        (json_int_t)k->creates, "deletes", (json_int_t)k->deletes, "skipped_bad_name",
        (json_int_t)k->skipped_bad_name, "skipped_bad_data", (json_int_t)k->skipped_bad_data,
        "skipped_too_large", (json_int_t)k->skipped_too_large, "skipped_invalid",
        (json_int_t)atomic_load(&zb->rejected), "conflicts", (json_int_t)k->conflicts, "held_now",
        (json_int_t)k->held_now, "hosts", (json_int_t)k->hosts, "remote_instances",
        (json_int_t)k->remote_instances, "local_in_zk", (json_int_t)k->local_in_zk);
    if (counters)
        json_object_update_new(counters,
                               json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "skipped_unreadable",
                                         (json_int_t)k->skipped_unreadable, "tree_created",
                                         (json_int_t)k->tree_created, "repairs",
                                         (json_int_t)k->repairs, "audits", (json_int_t)k->audits,
                                         "audit_changed", (json_int_t)k->audit_changed,
                                         "sync_errors", (json_int_t)k->sync_errors));
    json_object_update_new(
        counters, json_pack("{s:I, s:I, s:I, s:I, s:I}", "upserts", (json_int_t)k->upserts,
                            "removes", (json_int_t)k->removes, "docs_parsed",
                            (json_int_t)k->docs_parsed, "worker_wakeups",
                            (json_int_t)k->worker_wakeups, "batches", (json_int_t)k->batches));
    json_object_set_new(counters, "early_creates", json_integer((json_int_t)k->early_creates));
    json_object_set_new(counters, "fast_listings", json_integer((json_int_t)k->fast_listings));
    if (counters)
        json_object_update_new(counters, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "snap_writes",
                                                   (json_int_t)k->snap_writes, "snap_chunk_reads",
                                                   (json_int_t)k->snap_chunk_reads, "snap_used",
                                                   (json_int_t)k->snap_used, "snap_skipped",
                                                   (json_int_t)k->snap_skipped, "snap_bad_entries",
                                                   (json_int_t)k->snap_bad_entries, "read_bytes",
                                                   (json_int_t)k->read_bytes));
    json_t *out = json_pack("{s:b, s:s, s:I, s:I, s:b, s:b, s:o*, s:o*}", "configured", 1, "state",
                            zk_sync_state_name(st.state), "since_ms", (json_int_t)st.since_ms,
                            "last_sync_ms", (json_int_t)st.last_sync_ms, "cooling", st.cooling,
                            "local_applied", st.local_applied, "counters", counters, "protection",
                            protect_status_json(zb->prot));
    if (out)
        json_object_update_new(
            out, json_pack("{s:b, s:b, s:s, s:I, s:b}", "synced", st.synced, "rebuilding",
                           st.rebuilding, "last_error", st.last_error, "error_since_ms",
                           (json_int_t)st.error_since_ms, "authenticated", zb->authenticated));
    if (out && zb->import)
        json_object_set_new(out, "import", zk_import_status_json(zb->import));
    if (out && zb->export)
        json_object_set_new(out, "export", zk_export_status_json(zb->export));
    return out;
}

static int confirm_hook(void *arg, const char *service)
{
    struct zk_bridge *zb = arg;
    return (int)protect_confirm(zb->prot, service);
}

/* ---- life cycle -------------------------------------------------------------- */

/*
 * Read the digest credentials "user:password" (first line) from path into
 * buf. The file must be a regular file of discd's effective uid that no one
 * else may read or write: it holds a password. -EPERM (with the reason
 * logged) otherwise, -EINVAL for a bad format, -errno if it cannot be read.
 */
static int load_auth_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        log_error("zk-auth-file %s: cannot open: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_error("zk-auth-file %s: not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    if (st.st_uid != geteuid()) {
        log_error("zk-auth-file %s: owned by uid %u, not by discd's uid %u; refusing credentials "
                  "another user controls",
                  path, (unsigned)st.st_uid, (unsigned)geteuid());
        close(fd);
        return -EPERM;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        log_error("zk-auth-file %s: mode %04o lets group or others access it; it holds a password: "
                  "chmod 600 %s",
                  path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -EPERM;
    }
    ssize_t n = read(fd, buf, len - 1);
    int e = errno;
    close(fd);
    if (n < 0) {
        log_error("zk-auth-file %s: %s", path, strerror(e));
        return -e;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    char *colon = strchr(buf, ':');
    if (!colon || colon == buf || colon[1] == '\0' || (size_t)n >= len - 1) {
        log_error("zk-auth-file %s: want one line \"user:password\" (non-empty user and password)",
                  path);
        explicit_bzero(buf, len);
        return -EINVAL;
    }
    return 0;
}

int zk_bridge_start(const struct discd_config *cfg, struct registry *reg, struct publisher *pub,
                    const struct zk_bridge_persist *persist, struct zk_bridge **out)
{
    char auth[1024] = "";
    if (cfg->zk_auth_file[0]) {
        int arc = load_auth_file(cfg->zk_auth_file, auth, sizeof(auth));
        if (arc < 0)
            return arc;
    } else {
        log_warn("zk: no zk-auth-file: this host's ZooKeeper nodes are writable by any client");
    }
    struct zk_bridge *zb = calloc(1, sizeof(*zb));
    if (!zb) {
        explicit_bzero(auth, sizeof(auth));
        return -ENOMEM;
    }
    zb->authenticated = auth[0] != '\0';
    zb->reg = reg;
    zb->pub = pub;
    if (persist) {
        zb->persist = *persist;
        zb->persist.resume = NULL;
    }
    pthread_mutex_init(&zb->mu, NULL);
    pthread_mutex_init(&zb->st_mu, NULL);
    atomic_init(&zb->rejected, 0);
    zb->st_flags = DISC_ST_ZK_CONFIGURED | DISC_ST_DEGRADED;
    zb->st_reason = DISC_DEG_ZK_UNREACHABLE;
    uint32_t cooloff_ms = cfg->zk_cooloff_ms ? cfg->zk_cooloff_ms : 2 * cfg->check_interval_ms;
    struct protect_config pc = {
        .shrink = cfg->protect_shrink,
        .hold_ms = cfg->protect_hold_ms ? cfg->protect_hold_ms : cooloff_ms,
        .on_held_changed = on_held_changed,
        .arg = zb,
    };
    int prc = protect_start(&pc, reg, &zb->prot);
    if (prc < 0) {
        explicit_bzero(auth, sizeof(auth));
        pthread_mutex_destroy(&zb->st_mu);
        pthread_mutex_destroy(&zb->mu);
        free(zb);
        return prc;
    }

    /* Tell readers at once that this registry is ZooKeeper-backed but not
     * synced yet (the first on_state overwrites it). */
    publisher_set_state(pub, DISC_ST_ZK_CONFIGURED | DISC_ST_DEGRADED, DISC_DEG_ZK_UNREACHABLE, 0,
                        0, 0);

    /* Extensions on the same session and worker thread (zk_sync.h). */
    struct zk_sync_ext ext[ZK_SYNC_EXT_MAX];
    size_t n_ext = 0;
    if (cfg->n_imports > 0) {
        int irc = start_import(zb, cfg, &ext[n_ext]);
        if (irc < 0) {
            explicit_bzero(auth, sizeof(auth));
            protect_free(zb->prot);
            pthread_mutex_destroy(&zb->st_mu);
            pthread_mutex_destroy(&zb->mu);
            free(zb);
            return irc;
        }
        n_ext++;
    }
    if (cfg->export_curator[0]) {
        int erc = zk_export_new(cfg->export_curator, cfg->host_id, &zb->export, &ext[n_ext]);
        if (erc < 0) {
            log_error("zk: export-curator %s: %s", cfg->export_curator, strerror(-erc));
            explicit_bzero(auth, sizeof(auth));
            zk_import_free(zb->import);
            protect_free(zb->prot);
            pthread_mutex_destroy(&zb->st_mu);
            pthread_mutex_destroy(&zb->mu);
            free(zb);
            return erc;
        }
        n_ext++;
        log_info("zk: export: local instances in Curator x-discovery form under %s",
                 cfg->export_curator);
    }
    struct zk_sync_config zc = {
        .connect = cfg->zk,
        .root = cfg->zk_root,
        .host_id = cfg->host_id,
        .session_timeout_ms = (int)cfg->zk_session_timeout_ms,
        .cooloff_ms = (int)cooloff_ms,
        .jitter_ms = -1,
        .log_level = (enum zk_sync_log_level)cfg->log_level,
        .zk_log_level = ZK_SYNC_LOG_ERROR,
        .resume = persist ? persist->resume : NULL,
        .auth = auth[0] ? auth : NULL,
        .audit_ms = cfg->zk_audit_ms ? (int)cfg->zk_audit_ms : -1,
        .ext = ext,
        .n_ext = n_ext,
        .snapshots = cfg->zk_snapshots ? 0 : -1,
    };
    struct zk_sync_callbacks cb = {
        .on_remote_upsert_doc = cb_remote_upsert,
        .on_batch_begin = cb_batch_begin,
        .on_batch_end = cb_batch_end,
        .on_remote_remove = cb_remote_remove,
        .on_state = cb_state,
        .on_thread_start = cb_thread_start,
        .on_thread_stop = cb_thread_stop,
        .log = cb_log,
    };
    struct zk_sync *zs = NULL;
    int rc = zk_sync_start(&zc, &cb, zb, &zs);
    pthread_mutex_lock(&zb->mu); /* the worker's callbacks may already run */
    zb->zs = zs;
    if (zb->export && zs)
        zk_export_attach(zb->export, zs);
    pthread_mutex_unlock(&zb->mu);
    explicit_bzero(auth, sizeof(auth)); /* zk_sync keeps its own copy */
    if (rc < 0) {
        zk_export_free(zb->export);
        zk_import_free(zb->import);
        protect_free(zb->prot);
        pthread_mutex_destroy(&zb->st_mu);
        pthread_mutex_destroy(&zb->mu);
        free(zb);
        return rc;
    }
    struct registry_listener l = {
        .local_added = on_local_added,
        .local_removed = on_local_removed,
        .local_health = zb->export ? on_local_export : NULL,
        .arg = zb,
        .first = true, /* the node is on its way while the state journal is written */
    };
    rc = registry_add_listener(reg, &l);
    if (rc < 0) {
        zk_sync_stop(zb->zs);
        zk_export_free(zb->export);
        zk_import_free(zb->import);
        protect_free(zb->prot);
        pthread_mutex_destroy(&zb->st_mu);
        pthread_mutex_destroy(&zb->mu);
        free(zb);
        return rc;
    }
    *out = zb;
    return 0;
}

void zk_bridge_attach_control(struct zk_bridge *zb, struct control *ctl)
{
    if (zb && ctl) {
        control_set_zk_status(ctl, status_json, zb);
        control_set_confirm(ctl, confirm_hook, zb);
    }
}

void zk_bridge_stop(struct zk_bridge *zb)
{
    if (!zb)
        return;
    pthread_mutex_lock(&zb->mu);
    struct zk_sync *zs = zb->zs;
    zb->zs = NULL;
    if (zb->export)
        zk_export_attach(zb->export, NULL); /* no more wake-ups of zs */
    pthread_mutex_unlock(&zb->mu);
    /* Outside the lock: stopping waits for the worker, whose callbacks
     * never take zb->mu, but keep the listener path free anyway. */
    zk_sync_stop(zs);
    protect_stop(zb->prot); /* after the worker: no more removals come in */
    /* Stopping closed the session (its nodes left the region): a saved id
     * would only make the next start try to resume a closed session, which
     * the server refuses with an error in the log. Forget it. */
    if (zs && zb->saved_session && zb->persist.save) {
        struct zk_sync_session none = {0};
        zb->saved_session = 0;
        zb->persist.save(zb->persist.arg, &none);
    }
}

void zk_bridge_free(struct zk_bridge *zb)
{
    if (!zb)
        return;
    zk_bridge_stop(zb);
    zk_import_free(zb->import); /* after zk_sync_stop: no hook runs any more */
    zk_export_free(zb->export);
    protect_free(zb->prot);
    pthread_mutex_destroy(&zb->st_mu);
    pthread_mutex_destroy(&zb->mu);
    free(zb);
}

struct zk_import *zk_bridge_import(struct zk_bridge *zb)
{
    return zb ? zb->import : NULL;
}

uint64_t zk_bridge_rejected(struct zk_bridge *zb)
{
    return zb ? (uint64_t)atomic_load(&zb->rejected) : 0;
}

int zk_bridge_get_status(struct zk_bridge *zb, struct zk_sync_status *st)
{
    pthread_mutex_lock(&zb->mu);
    bool running = zb->zs != NULL;
    if (running)
        zk_sync_get_status(zb->zs, st);
    pthread_mutex_unlock(&zb->mu);
    return running ? 0 : -ESRCH;
}
