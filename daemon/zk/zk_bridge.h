/* SPDX-License-Identifier: MIT */
/*
 * zk_bridge.h — plugs the ZooKeeper layer (zk_sync.h) into discd: remote
 * instances go into the registry, local additions/removals go to
 * ZooKeeper, the connection state goes to the segment header, and the
 * control socket's status gets a "zookeeper" object. See docs/ZOOKEEPER.md
 * ("Plugging into discd").
 *
 * Functions return 0 or a negative errno value.
 */
#ifndef DISC_ZK_BRIDGE_H
#define DISC_ZK_BRIDGE_H

#include <stdint.h>

#include "config.h"
#include "control.h"
#include "publisher.h"
#include "registry.h"
#include "zk_sync.h"

struct zk_bridge;

/* Keeping the ZooKeeper session across a restart (daemon/state/): resume a
 * saved session, and save each newly established one. Optional. */
struct zk_bridge_persist {
    const struct zk_sync_session *resume;                           /* NULL: open a new session */
    void (*save)(void *arg, const struct zk_sync_session *session); /* worker thread */
    void *arg;
};

/*
 * Start zk_sync with cfg's zk, zk_root, host_id and zk_session_timeout_ms
 * (cooling-off 2 x check_interval_ms, default jitter) and add a registry
 * listener that publishes local instances. Call after registry_new and
 * publisher_start and before the control socket serves requests, so no
 * local registration is missed. Never waits for ZooKeeper. persist may be
 * NULL (a new session, nothing saved).
 * -EINVAL (bad config, logged), -ENOSPC (no listener slot), -ENOMEM, ...
 */
int zk_bridge_start(const struct discd_config *cfg, struct registry *reg, struct publisher *pub,
                    const struct zk_bridge_persist *persist, struct zk_bridge **out);

/* Install the status hook on the control socket ("zookeeper" object). */
void zk_bridge_attach_control(struct zk_bridge *zb, struct control *ctl);

/*
 * Close the session (this host's nodes leave the region at once) and stop
 * calling into the registry / publisher. Call after the control socket and
 * the health checker have stopped, before publisher_stop / registry_free.
 * The listener stays installed but becomes a no-op. NULL is a no-op.
 */
void zk_bridge_stop(struct zk_bridge *zb);

/* Free what zk_bridge_stop left (after registry_free). NULL is a no-op. */
void zk_bridge_free(struct zk_bridge *zb);

/* zk_sync's state and counters (zk_sync_get_status). -ESRCH once stopped. */
struct zk_sync_status;
int zk_bridge_get_status(struct zk_bridge *zb, struct zk_sync_status *st);

/* The import engine (import = ... lines), NULL when none is configured;
 * valid until zk_bridge_free. */
struct zk_import;
struct zk_import *zk_bridge_import(struct zk_bridge *zb);

/* Remote documents refused by the instance model so far. */
uint64_t zk_bridge_rejected(struct zk_bridge *zb);

#endif /* DISC_ZK_BRIDGE_H */
