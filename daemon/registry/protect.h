/* SPDX-License-Identifier: MIT */
/*
 * protect.h — protection against mass removals from the region.
 *
 * Remote removals (from the ZooKeeper layer) go through here instead of
 * straight into the registry. Removals of one service that arrive as one
 * "step" — with no gap longer than PROTECT_STEP_GAP_MS between them, and
 * for at most PROTECT_STEP_MAX_MS — are judged together: if they would
 * empty a service that had instances, or remove more than `shrink` of its
 * instances, they are held (a warning is logged, counters and the held
 * count go up) instead of applied. Held removals are applied when they
 * persist for hold_ms, or when an operator confirms them
 * (protect_confirm). A held instance that is announced again
 * (protect_seen) is no longer removed. See docs/DAEMON.md, "Protection".
 *
 * With shrink == 0 protection is off and removals are applied at once, on
 * the caller's thread. Otherwise they are applied by protect's own thread,
 * PROTECT_STEP_GAP_MS after the step ended at the earliest.
 *
 * Functions return 0 or a negative errno value unless said otherwise. All
 * are thread-safe.
 */
#ifndef DISC_PROTECT_H
#define DISC_PROTECT_H

#include <jansson.h>
#include <stdint.h>

#include "registry.h"

#define PROTECT_STEP_GAP_MS 300  /* quiet time that ends a step */
#define PROTECT_STEP_MAX_MS 2000 /* a step is judged after this long at the latest */

struct protect;

struct protect_config {
    double shrink;    /* 0..1; 0 disables protection */
    uint32_t hold_ms; /* held removals are applied after this long (0: at once) */
    /* Told (on protect's thread or a protect_confirm caller, no protect lock
     * held) that the number of held removals changed. May be NULL. */
    void (*on_held_changed)(void *arg, uint32_t held);
    void *arg;
};

struct protect_stats {
    uint32_t held_now;          /* removals currently held */
    uint32_t services_held;     /* services with held removals */
    uint64_t steps_held;        /* steps that were held */
    uint64_t removals_held;     /* removals that were held */
    uint64_t applied_expired;   /* held removals applied after hold_ms */
    uint64_t applied_confirmed; /* held removals applied by protect_confirm */
    uint64_t restored;          /* held removals dropped: the instance came back */
};

/* Start (a thread when shrink > 0). -EINVAL (shrink outside 0..1), -ENOMEM, ... */
int protect_start(const struct protect_config *cfg, struct registry *reg, struct protect **out);

/* A remote removal of instance id (of host host_id, for logs). Applied
 * at once when protection is off or the id is not in the registry. */
void protect_remove(struct protect *p, const char *host_id, const char *id);

/* Instance id was (re)announced: forget a pending or held removal of it. */
void protect_seen(struct protect *p, const char *id);

/* Apply the held (and pending) removals of service, or of every service
 * when service is NULL. Returns how many were applied. */
uint32_t protect_confirm(struct protect *p, const char *service);

/* Removals currently held. */
uint32_t protect_held(struct protect *p);

/* Fill *st. */
void protect_get_stats(struct protect *p, struct protect_stats *st);

/* The "protection" object of the status response (new reference or NULL):
 * settings, counters and the held services with their counts. */
json_t *protect_status_json(struct protect *p);

/* Stop the thread; pending and held removals are dropped (not applied).
 * NULL is a no-op. */
void protect_stop(struct protect *p);

/* Free (after protect_stop). NULL is a no-op. */
void protect_free(struct protect *p);

#endif /* DISC_PROTECT_H */
