/* SPDX-License-Identifier: MIT */
/*
 * export.h — publish this host's local instances in Apache Curator
 * x-discovery form (formats/curator.h) under a base path, so Java
 * ServiceDiscovery clients (queryForInstances, ServiceCache,
 * ServiceProvider) find C services with no change on their side.
 *
 * A zk_sync extension (zk_sync.h): it runs on discd's one session and
 * worker thread, beside the native tree and the imports.
 *
 *   <base>                 persistent, world:anyone:cdrwa (as Curator makes it)
 *   <base>/<service>       container,  world:anyone:cdrwa (as Curator makes it)
 *   <base>/<service>/<id>  ephemeral, owned by discd's session, zk_sync's
 *                          ACL for its own nodes; data: curator_export_doc,
 *                          "id" = the node name = discd's instance id
 *
 * The daemon decides what is exported (zk_bridge.c: local instances with a
 * tcp address whose health is not critical or maintenance) and calls
 * zk_export_put / zk_export_remove from any thread; the worker reconciles
 * ZooKeeper with that set in its rounds: creates what is missing (parents
 * first), deletes what was withdrawn, rewrites a node whose data differs,
 * replaces a node an older session of this host left behind, and re-creates
 * a node another client deleted (one exists watch per exported node). After
 * a new session every node is created again. The calls are asynchronous and
 * pipelined (up to 256 outstanding, zk_batch.h; each node's result handled
 * on its own), so re-creating N nodes costs about 2 * N / 256 waits for
 * ZooKeeper, not N round trips. Nothing fails for lack of ZooKeeper:
 * changes wait for the next session.
 *
 * Functions return 0 or a negative errno value.
 */
#ifndef DISC_ZK_EXPORT_H
#define DISC_ZK_EXPORT_H

#include <jansson.h>
#include <stdint.h>

#include "zk_sync.h"

struct zk_export;

struct zk_export_counters {
    uint64_t creates;         /* nodes created */
    uint64_t deletes;         /* nodes deleted (withdrawn) */
    uint64_t rewrites;        /* nodes whose data differed, rewritten */
    uint64_t repairs;         /* nodes re-created after another client or an old session */
    uint64_t errors;          /* failed ZooKeeper calls (retried) */
    uint64_t desired;         /* current: instances to export */
    uint64_t exported;        /* current: nodes in place, as last confirmed */
    uint64_t waves;           /* waves of pipelined calls, one wait for ZooKeeper each */
    uint64_t last_full_ms;    /* the last full reconcile after a new session: its time */
    uint64_t last_full_nodes; /* ... and the nodes it put in place */
};

/*
 * Make the exporter for base (an absolute path, no trailing '/') and this
 * host's id (put in every document's mark). *ext receives the zk_sync
 * extension for zk_sync_config.ext. -EINVAL, -ENOMEM.
 */
int zk_export_new(const char *base, const char *host_id, struct zk_export **out,
                  struct zk_sync_ext *ext);

/* Tell the exporter its zk_sync (after zk_sync_start), so puts and removes
 * wake the worker. Before that they are picked up by the first round. */
void zk_export_attach(struct zk_export *ex, struct zk_sync *zs);

/*
 * Export (or update) instance id of service at host:port (host without
 * brackets for IPv6) registered at registered_at_ms. Any thread; never
 * waits for ZooKeeper. -EINVAL (bad id, service or port), -ENOMEM.
 */
int zk_export_put(struct zk_export *ex, const char *id, const char *service, const char *host,
                  unsigned port, int64_t registered_at_ms);

/* Stop exporting id (no-op if it is not exported). Any thread. */
void zk_export_remove(struct zk_export *ex, const char *id);

/* Counters (any thread). */
void zk_export_get(struct zk_export *ex, struct zk_export_counters *out);

/* The "export" object of the status response: {"format":"curator",
 * "base":..., counters}. New reference or NULL. */
json_t *zk_export_status_json(struct zk_export *ex);

/* Free (after zk_sync_stop). NULL is a no-op. */
void zk_export_free(struct zk_export *ex);

#endif /* DISC_ZK_EXPORT_H */
