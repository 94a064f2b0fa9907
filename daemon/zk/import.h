/* SPDX-License-Identifier: MIT */
/*
 * import.h — importing foreign registries (Dubbo, ServerSets, Kitex/Hertz,
 * Curator: daemon/zk/formats/) from ZooKeeper, read-only, on zk_sync's
 * session and worker thread (a zk_sync extension, zk_sync.h).
 *
 * Per source (format + base path), the same watch discipline as the native
 * tree: one-shot child watches on the base and on every service node,
 * re-armed by the listing they trigger; only names never seen are read
 * (pipelined async gets, in windows that span services; each window's
 * changes are delivered as one batch); formats whose data matters get a data watch per
 * node (an in-place change, as Curator's update makes, is read again) and,
 * after a new session, one pipelined exists per node to find changes made
 * while the watches were gone. Bad names, bad data and unreadable nodes are
 * skipped and counted per source and never block anything. Removals are
 * held during zk_sync's cooling-off period; the daemon passes them through
 * protection (protect.h). While ZooKeeper is unreachable nothing is
 * removed.
 *
 * Callbacks run on zk_sync's worker thread. Functions return 0 or a
 * negative errno value.
 */
#ifndef DISC_ZK_IMPORT_H
#define DISC_ZK_IMPORT_H

#include <jansson.h>
#include <stdint.h>

#include "format.h"
#include "zk_sync.h"

struct zk_import;

/* Counters of one source (monotonic unless marked current). */
struct zk_import_counters {
    uint64_t lists;              /* zoo_get_children */
    uint64_t reads;              /* zoo_get (instance data) */
    uint64_t watches_fired;      /* events on this source's paths */
    uint64_t upserts;            /* instances reported (new or changed) */
    uint64_t removes;            /* removals reported */
    uint64_t changed_in_place;   /* nodes read again after a data change */
    uint64_t skipped_bad_name;   /* children that are not the format's instance nodes */
    uint64_t skipped_bad_data;   /* parse failed or the instance model refused it */
    uint64_t skipped_too_large;  /* data above max_doc_bytes */
    uint64_t skipped_unreadable; /* nodes or service nodes we may not read (ZNOAUTH) */
    uint64_t held_removals;      /* removals held by the cooling-off period */
    uint64_t errors;             /* listings / reads that failed (retried) */
    uint64_t batches;            /* delivery batches (on_batch_begin .. end) with changes */
    uint64_t ignored; /* nodes the format does not import (Curator: discd's own export) */
    /* current */
    uint64_t services;    /* service nodes watched */
    uint64_t instances;   /* instances reported now (held ones included) */
    uint64_t bad_now;     /* nodes currently skipped (bad name, data or unreadable) */
    uint64_t ignored_now; /* nodes currently not imported by the format's rule */
    uint64_t held_now;    /* removals held now */
};

struct zk_import_callbacks {
    /* Instance `id` of source `src` appeared or changed: doc is the native
     * instance document (borrowed). Return 0, or <0 if the instance model
     * refuses it (the node is then counted as bad data and not reported
     * again until it changes). */
    int (*on_upsert)(void *arg, const struct fmt_source *src, const char *id, json_t *doc);
    /* Instance id of source src is gone (after cooling-off). */
    void (*on_remove)(void *arg, const struct fmt_source *src, const char *id);
    /* Optional: upserts and removals come in batches, at most one window of
     * pipelined reads (256) each, never open across a wait for ZooKeeper:
     * on_batch_begin before the first change of a batch, on_batch_end after
     * its last (the daemon publishes a batch in one segment commit). */
    void (*on_batch_begin)(void *arg);
    void (*on_batch_end)(void *arg);
    /* One log line, level as zk_sync_log_level. */
    void (*log)(void *arg, enum zk_sync_log_level level, const char *msg);
    void *arg;
};

/*
 * Make the engine for sources src[0..n) (copied; check them first with
 * fmt_sources_check). exclude[0..n_exclude): discd's own paths (its
 * zk-root; an export base that no source shares): never taken for a
 * foreign service (e.g. by a Kitex source on "/"), and watch events there
 * are not the engine's. Every source's base is likewise never a service of
 * another source. max_doc_bytes 0: 65536. *ext receives the zk_sync
 * extension to pass in zk_sync_config.ext. -EINVAL, -ENOMEM.
 */
int zk_import_new(const struct fmt_source *src, size_t n, const char *const *exclude,
                  size_t n_exclude, size_t max_doc_bytes, const struct zk_import_callbacks *cb,
                  struct zk_import **out, struct zk_sync_ext *ext);

/* Free (after zk_sync_stop). NULL is a no-op. */
void zk_import_free(struct zk_import *im);

/* Number of sources. */
size_t zk_import_sources(const struct zk_import *im);

/* Source i's configuration and counters (any thread). -ERANGE. */
int zk_import_get(struct zk_import *im, size_t i, struct fmt_source *src,
                  struct zk_import_counters *out);

/* The "import" array of the status response: one object per source with
 * its format, base, name and counters. New reference or NULL. */
json_t *zk_import_status_json(struct zk_import *im);

#endif /* DISC_ZK_IMPORT_H */
