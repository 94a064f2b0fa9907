/* SPDX-License-Identifier: MIT */
/*
 * registry.h — discd's in-memory registry, shared by all daemon threads.
 *
 * A liburcu lock-free hash table (cds_lfht, memb flavour) from instance id
 * to an immutable struct instance. Readers (any thread) walk it inside an
 * RCU read section without locks; writers are serialised by one mutex and
 * free removed entries with call_rcu. Threads are registered with liburcu
 * automatically on their first registry call and unregistered when they
 * exit, so threads created by libraries (ZooKeeper completions, the health
 * checker) may call in directly.
 *
 * Two kinds of entries:
 *   local  — registered through this daemon's socket (origin LOCAL);
 *            counted against max_local.
 *   remote — learned from the region (ZooKeeper) or the file cache
 *            (origin REMOTE / CACHE); put/replace/remove by the sync layer.
 * A remote put never replaces a local entry with the same id.
 *
 * Every change is also appended, in order, to a change queue that the
 * publisher drains (registry_take_changes) to stage segment updates; the
 * notify callback tells it that there is work. Listeners (the ZooKeeper
 * layer) are told about local additions and removals.
 *
 * Functions return 0 or a negative errno value unless said otherwise.
 */
#ifndef DISC_REGISTRY_H
#define DISC_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "instance.h"

struct registry;

struct registry_config {
    uint32_t max_local;  /* local instances; 0 = 100000 */
    uint32_t max_remote; /* remote instances; 0 = 2000000 */
};

/* One queued change for the publisher. */
struct registry_change {
    struct registry_change *next;
    uint64_t seq;                 /* 1, 2, ... in queue order (registry_last_seq) */
    struct instance *put;         /* add/replace: a reference; NULL for a removal */
    char del_id[DISC_ID_LEN + 1]; /* removal: the id */
};

/* Told about local changes (e.g. the ZooKeeper layer creates / deletes the
 * instance's node). Called on the thread that made the change, after it is
 * in the table, with no registry lock held; keep them short. Either
 * callback may be NULL. */
struct registry_listener {
    void (*local_added)(struct instance *inst, void *arg);
    void (*local_removed)(struct instance *inst, const char *reason, void *arg);
    /* A local instance was replaced by a copy whose maintenance state
     * changed (registry_replace_local with tell); e.g. to persist it. */
    void (*local_replaced)(struct instance *inst, void *arg);
    /* Every registry_replace_local (with or without tell): the instance's
     * health or maintenance state may have changed; e.g. to stop exporting
     * an instance whose check fails. Optional. */
    void (*local_health)(struct instance *inst, void *arg);
    void *arg;
    /* Called before the listeners without it (in the order added): for one
     * whose work starts a wait elsewhere, e.g. the ZooKeeper bridge's early
     * create, which then travels while the state journal is written. */
    bool first;
};

#define REGISTRY_LISTENERS_MAX 4

/* Create an empty registry. NULL with errno on failure. */
struct registry *registry_new(const struct registry_config *cfg);

/* Remove everything, wait for pending RCU callbacks and free. No other
 * thread may use the registry any more. NULL is a no-op. */
void registry_free(struct registry *r);

/* Set the function called (with no lock held) after a change was queued. */
void registry_set_notify(struct registry *r, void (*notify)(void *arg), void *arg);

/* Add a listener (at most REGISTRY_LISTENERS_MAX), after the others, or
 * after the other `first` ones if it is one. -ENOSPC when full. Add
 * listeners before other threads start changing the registry. */
int registry_add_listener(struct registry *r, const struct registry_listener *l);

/* Add a local instance (origin must be LOCAL). The registry takes its own
 * reference. -EEXIST (id taken), -ENOSPC (max_local reached), -EINVAL. */
int registry_add_local(struct registry *r, struct instance *inst);

/* Replace the local instance with inst's id by inst (a copy with another
 * health or maintenance state, see instance_clone); the registry takes its
 * own reference and publishes it. With tell, listeners' local_replaced is
 * called. -ENOENT (no such id), -EPERM (it is remote), -EINVAL. */
int registry_replace_local(struct registry *r, struct instance *inst, bool tell);

/* Remove a local instance. If removed is non-NULL it receives a reference
 * to the removed instance. -ENOENT (no such id), -EPERM (it is remote). */
int registry_remove_local(struct registry *r, const char *id, const char *reason,
                          struct instance **removed);

/* Add or replace a remote instance (origin REMOTE or CACHE). -EPERM if a
 * local instance has that id, -ENOSPC (max_remote reached), -EINVAL. */
int registry_put_remote(struct registry *r, struct instance *inst);

/* Remove a remote instance. -ENOENT, -EPERM (it is local). */
int registry_remove_remote(struct registry *r, const char *id);

/* A reference to the instance with this id (release with instance_unref),
 * or NULL. */
struct instance *registry_get(struct registry *r, const char *id);

/* Origin masks for registry_foreach. */
#define REGISTRY_LOCAL  0x1u
#define REGISTRY_REMOTE 0x2u /* remote and cache */
#define REGISTRY_ALL    0x3u

/*
 * Call fn for every instance whose origin is in mask, inside one RCU read
 * section (fn must not block and must not call registry write functions;
 * take instance_ref to keep an instance). Stops early and returns fn's value
 * when fn returns non-zero; otherwise 0. Order is unspecified.
 */
int registry_foreach(struct registry *r, unsigned mask, int (*fn)(struct instance *, void *),
                     void *arg);

/* Sequence number of the newest queued change (0: none yet). A change made
 * by the calling thread before this call has a seq <= the value returned,
 * so "published up to seq" covers it. */
uint64_t registry_last_seq(struct registry *r);

/* What one uid's local instances hold: how many, and their record bytes
 * (instance_record_bytes, the arena bytes segw_put allocates for each). */
struct registry_usage {
    uint32_t instances;
    uint64_t bytes;
};

/* Usage of local instances owned by uid (zeros if none). Exact: kept under
 * the writer lock by every local add and removal. */
void registry_owner_usage(struct registry *r, uint32_t uid, struct registry_usage *out);

/* Counts (exact; maintained under the writer lock). */
uint32_t registry_count_local(struct registry *r);
uint32_t registry_count_remote(struct registry *r);

/* Instances by origin and health: out[origin][health] for origin 1..3
 * (enum disc_origin) and health 0..4 (enum disc_health); out[0][0] counts
 * any out-of-range value. Exact (maintained under the writer lock), O(1). */
void registry_count_by(struct registry *r, uint32_t out[4][5]);

/* Detach the queued changes (oldest first); *n receives their number. */
struct registry_change *registry_take_changes(struct registry *r, size_t *n);

/* Number of queued changes not yet taken (and not held by an open batch). */
size_t registry_pending_changes(struct registry *r);

/*
 * Batches (the ZooKeeper layer's remote changes): every change queued after
 * registry_batch_begin, by any thread, is held from the publisher (neither
 * taken nor counted as pending) until registry_batch_end, which notifies
 * the publisher once; so a batch becomes visible in one segment commit and
 * costs one wake-up of the publisher. Changes are still published in queue
 * order. The table itself (registry_get, foreach) sees each change at once.
 * Batches do not nest (a second begin is ignored); keep them short: no
 * waiting inside one. Call begin and end on the same thread.
 */
void registry_batch_begin(struct registry *r);
void registry_batch_end(struct registry *r);

/* Free a list returned by registry_take_changes. */
void registry_free_changes(struct registry_change *list);

/* Register the calling thread with liburcu if it is not yet (registry
 * functions do this themselves; exposed for threads that want to do it up
 * front). */
void registry_thread_online(void);

/* Unregister the calling thread now (otherwise done at thread exit). */
void registry_thread_offline(void);

#endif /* DISC_REGISTRY_H */
