/* SPDX-License-Identifier: MIT */
/*
 * publisher.h — the thread that owns the shared-memory segment writer.
 *
 * It opens the segment (segw_open) for the registry name, then loops:
 * wait for registry changes, stage them all with segw_put / segw_del and
 * publish them with one segw_commit. A change that finds the publisher idle
 * (nothing committed for the last coalesce_ms) is published at once (on the
 * changing thread itself if it is allowed to, publisher_allow_inline); one
 * that comes sooner is part of a stream and joins the next commit, made
 * coalesce_ms after the previous one (or once coalesce_max changes are
 * queued). It calls segw_tick at least every tick_ms (writer heartbeat +
 * reclaim) even when nothing changes.
 */
#ifndef DISC_PUBLISHER_H
#define DISC_PUBLISHER_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "registry.h"
#include "segwriter.h"

struct publisher;

struct publisher_config {
    const char *name;           /* registry (shm) name */
    uint32_t coalesce_ms;       /* min time between commits of a stream; 0 = never wait */
    uint32_t coalesce_max;      /* publish at once when this many changes are queued; 0 = 1024 */
    uint32_t tick_ms;           /* heartbeat period; 0 = 250 */
    const char *cache_file;     /* file-cache image path (segw_export); NULL/"" = none */
    uint32_t cache_interval_ms; /* at most one export per interval after changes; 0 = 2000 */
    uint64_t max_segment_bytes; /* roll over to larger segments up to this; 0 =
                                   SEGW_MAX_SEGMENT_BYTES; <= segw.segment_bytes: never */
    struct segw_config segw;    /* segw.defer_install: see publisher_install */
};

#define PUBLISHER_RESERVE_MIN (64u * 1024u)

/* What the publisher has done with the registry's changes (by seq, see
 * registry_last_seq), reported after every turn that changed something. */
struct publisher_progress {
    uint64_t done_seq;   /* every change with seq <= done_seq is published or rejected */
    uint64_t generation; /* segment generation containing everything published so far */
    uint64_t stuck_seq;  /* > done_seq: changes up to here are kept but not visible:
                            the segment is full even without new registrations */
    int stuck_error;     /* -errno of that failed commit (e.g. -ENOSPC) */
};

/* A local registration (or update) the segment could not take: it is not
 * published, and the listener (the control thread) must remove it from the
 * registry and tell its client. */
struct publisher_reject {
    uint64_t seq;
    char id[DISC_ID_LEN + 1];
    int error; /* -ENOSPC: arena full; other -errno: segw_put refused the record */
};

/* Called on the publisher thread (no publisher lock held); keep it short. */
typedef void (*publisher_listener_fn)(void *arg, const struct publisher_progress *pr,
                                      const struct publisher_reject *rej, size_t n_rej);

/* Counters for `status` and tests (a consistent-enough snapshot). */
struct publisher_stats {
    uint64_t generation;
    uint64_t commits;
    uint64_t idle_commits;      /* of those, made at once (the publisher was idle) */
    uint64_t coalesced_commits; /* made for changes of a stream (committed within coalesce_ms) */
    uint64_t inline_commits;    /* of the idle ones, made on a changing thread (allow_inline) */
    uint64_t changes;           /* changes staged in total */
    uint64_t commit_errors;     /* failed segw_commit calls (e.g. -ENOSPC) */
    uint64_t last_commit_us;    /* duration of the last stage+commit */
    uint64_t cache_writes;      /* file-cache images written */
    uint64_t cache_errors;      /* failed attempts (logged) */
    struct segw_stats seg;      /* the writer's, as of the last commit or tick */
    uint64_t ticks;          /* heartbeat refreshes (segw_tick): advances while the thread runs */
    uint64_t rejected;       /* local changes refused (segment full or bad record) */
    uint64_t grows;          /* roll-overs to a larger segment */
    uint64_t grow_errors;    /* roll-overs that failed (at the maximum, file system full) */
    uint64_t last_grow_us;   /* duration of the last roll-over (copy + rename) */
    uint64_t dropped_remote; /* remote changes the segment could not take (logged) */
};

/*
 * Open the segment (in the calling thread, so errors are reported here) and
 * start the publisher thread, which drains `reg`'s change queue (the
 * publisher installs itself as the registry's notify callback).
 * Returns 0 and *out, -EBUSY when another live writer holds the registry
 * name, or another -errno from segw_open / thread creation.
 */
int publisher_start(struct registry *reg, const struct publisher_config *cfg,
                    struct publisher **out);

/*
 * With cfg->segw.defer_install the segment stays under its hidden name (so
 * readers keep the predecessor's picture) and nothing is reported to the
 * listener until this call: the publisher then commits everything queued
 * so far (e.g. the restored state) and renames the segment into place.
 * Returns once it is in place: 0, or the -errno of the rename (logged).
 * Thread-safe; a no-op without defer_install or when done already.
 */
int publisher_install(struct publisher *p);

/* Threads that may be allowed to commit inline at the same time. */
#define PUBLISHER_INLINE_MAX 4

/*
 * Let the calling thread commit its own registry changes (the control
 * thread's registrations and removals, the ZooKeeper worker's remote
 * batches): a change it makes while the publisher is idle (nothing
 * committed for coalesce_ms, no turn under way, the segment in place,
 * nothing kept back, room in the arena without a roll-over) is staged,
 * committed and reported to the listener on this thread, inside the
 * registry call that made it, before the registry's listeners run; readers
 * see it without a hand-off to the publisher thread. Anything else (a
 * stream, a growth) still goes to the publisher thread, in order. Up to
 * PUBLISHER_INLINE_MAX threads may be allowed at once; the writer lock keeps
 * one writer at a time (a thread that finds it taken hands its change to
 * the publisher thread instead of waiting). The listener
 * (publisher_set_listener) may then run on any of these threads, so none
 * may hold a lock the listener takes when it changes the registry.
 * on: allow the calling thread (-ENOSPC: PUBLISHER_INLINE_MAX threads are
 * allowed already; its changes then go to the publisher thread); off: not
 * any more (call it before the thread exits, from that thread). 0 or
 * -ENOSPC.
 */
int publisher_allow_inline(struct publisher *p, bool on);

/* Publish what is still queued, stop the thread, close the writer
 * (unlink: remove the shm objects) and free. NULL is a no-op. */
void publisher_stop(struct publisher *p, bool unlink);

/* Mark the segment "writer stopped" now (segw_mark_stopped), so readers
 * report the writer dead while the daemon is still shutting down;
 * publisher_stop does it too. Thread-safe. */
void publisher_announce_stop(struct publisher *p);
/*
 * Set the listener told about progress and rejected local changes
 * (NULL: none; the publisher then removes rejected local instances from the
 * registry itself). Thread-safe.
 *
 * Arena full: the publisher first rolls over to a larger segment (double
 * the size, more if the batch needs it, up to max_segment_bytes; see
 * segw_grow), so registrations fail only at the maximum or when the file
 * system cannot hold the larger segment (logged with the cause; a failed
 * roll is not retried for a few seconds unless the maximum was reached).
 * Then: new local registrations must leave a reserve free (1/32 of the
 * arena, at least PUBLISHER_RESERVE_MIN bytes) so that removals, which need
 * new table copies, can still be published; a batch that does not fit is
 * published in smaller prefixes
 * (in change order); a local put that does not fit even alone is rejected.
 * If even the non-local changes do not fit, every local put still queued is
 * rejected, the rest is kept and retried every tick (stuck_seq).
 */
void publisher_set_listener(struct publisher *p, publisher_listener_fn fn, void *arg);

/* Fill *st. Thread-safe. */
void publisher_get_stats(struct publisher *p, struct publisher_stats *st);

/* Durations of stage+commit of every publish (for metrics). Valid until
 * publisher_stop. */
const struct metrics_hist *publisher_latency(struct publisher *p);

/* Forward writer-owned status words to the header (segw_set_state) and the
 * snapshot flags (segw_set_snapshot_flags); applied by the publisher thread
 * on its next turn, which is immediate. Thread-safe. For the ZooKeeper layer. */
void publisher_set_state(struct publisher *p, uint32_t flags, uint32_t degraded_reason,
                         int64_t degraded_since_ms, int64_t last_sync_ms, uint32_t held_changes);
void publisher_set_snapshot_flags(struct publisher *p, uint32_t flags);

#endif /* DISC_PUBLISHER_H */
