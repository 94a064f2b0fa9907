/* SPDX-License-Identifier: MIT */
/*
 * segwriter.h — the publishing side of a discshm segment (internal to discd,
 * also linked by tests and benchmarks as the static library `discpub`).
 *
 * One seg_writer owns one registry name. It is single-threaded: exactly one
 * thread (discd's publisher) may call into a given writer. Changes are staged
 * with segw_put / segw_del and become visible to readers all at once at
 * segw_commit (one root swap). Memory of replaced records is reused only
 * after it was retired for reclaim_after_ms, or earlier when the retired
 * bytes exceed the budget (see docs/DESIGN.md).
 */
#ifndef DISC_SEGWRITER_H
#define DISC_SEGWRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "discshm.h"

struct seg_writer;

struct segw_config {
    uint64_t segment_bytes;    /* initial data object size; 0 = 4 MiB, fully allocated
                                  (segw_grow rolls to a larger one) */
    uint32_t reclaim_after_ms; /* reuse retired memory after this; 0 = 1000 */
    uint64_t retired_budget;   /* reuse earlier when retired bytes exceed; 0 = arena/4 */
    const char *dir;           /* registry directory; NULL = $DISCSHM_DIR, else
                                  /run/discshm (root) or $XDG_RUNTIME_DIR/discshm */
    bool poison;               /* fill reclaimed memory with 0xDB (test builds) */
    bool no_lock;              /* skip the one-writer lock (tests that fake restarts) */
    uint32_t dead_after_ms;    /* heartbeat age readers call dead; 0 = DISC_WRITER_DEAD_MS */
    bool defer_install;        /* segw_open builds the segment but leaves it under its
                                  hidden name; segw_install puts it in place */
    char *err;                 /* optional: why segw_open failed, one line */
    size_t errlen;
};

/* A tag and an endpoint as the writer receives them. */
struct segw_tag {
    const char *key;
    const char *value;
};

struct segw_endpoint {
    const char *name;
    const char *request_type;
    const char *response_type;
    uint32_t mean_us;
    uint32_t p95_us;
};

/* One instance to publish. Strings must respect the DISC_*_MAX limits of
 * discshm.h (segw_put returns -ENAMETOOLONG / -E2BIG otherwise). */
struct segw_instance {
    const char *id; /* textual UUID, DISC_ID_LEN chars */
    const char *service;
    const char *version;
    const char *host;
    const char *az;
    const char *address;
    uint8_t addr_kind; /* enum disc_addr_kind */
    uint8_t health;    /* enum disc_health */
    uint8_t origin;    /* enum disc_origin */
    uint32_t weight;
    int64_t registered_at_ms;
    uint32_t owner_uid; /* uid that registered it; DISC_OWNER_UNKNOWN if not known */
    const struct segw_tag *tags;
    uint16_t n_tags;
    const struct segw_endpoint *endpoints;
    uint16_t n_endpoints;
};

/* Counters for status output and tests. */
struct segw_stats {
    uint64_t generation;
    uint64_t commits;
    uint64_t arena_bytes;    /* usable arena size */
    uint64_t used_bytes;     /* live + retired, not yet reusable */
    uint64_t retired_bytes;  /* waiting for a grace period */
    uint64_t reclaimed_upto; /* generation */
    uint64_t overtakes;      /* reclaims before reclaim_after_ms (budget exceeded) */
    uint32_t n_services;
    uint32_t n_instances;
    /* retired bytes made reusable, in total */
    uint64_t reclaimed_bytes;
    uint64_t segment_bytes; /* size of the current data object */
    uint64_t grows;         /* roll-overs to a larger segment (segw_grow) */
    /* slots of the service and id tables (they double past load 1/2 and
     * halve below 1/8, see seg_htab.c) */
    uint32_t svc_slots;
    uint32_t id_slots;
    /* puts of exactly the record already published for their id, which
     * segw_commit dropped (nothing rewritten for them) */
    uint64_t unchanged_puts;
};

/*
 * Create a fresh segment for registry `name` in the registry directory
 * (cfg->dir; created 0755 if missing, its parent must exist), fully
 * allocated (posix_fallocate: -ENOSPC if the file system is full), rename
 * it into place as <dir>/<name>, and mark any predecessor RECYCLED so its
 * readers follow. Takes the one-writer lock <dir>/<name>.lock (mode 0600):
 * -EBUSY if another live writer holds it. -EPERM if the directory is not
 * one only this uid can write (cfg->err says why), -EINVAL for a bad
 * name, other -errno from the system. A failed open removes everything it
 * created (temporary object, lock file, directory).
 */
int segw_open(const char *name, const struct segw_config *cfg, struct seg_writer **out);

/*
 * With cfg->defer_install, segw_open leaves the new segment under its hidden
 * temporary name, so readers keep the predecessor (e.g. the last picture of
 * a discd that crashed) until the state restored into the new one is
 * committed. segw_install renames it into place and marks the predecessor
 * RECYCLED. 0 (also when installed already) or -errno. Until then commits
 * and segw_grow work as usual, unseen.
 */
int segw_install(struct seg_writer *w);

/*
 * Roll over to a larger segment of `bytes` (rounded down to pages, at most
 * 4 GiB - 4096): create it fully allocated under a hidden name in the
 * registry directory (same mode and owner rules as segw_open), copy the
 * published registry into it (compact, fresh tables), publish it as the
 * next generation, rename it over <dir>/<name> and mark the old one
 * RECYCLED with the new id, so readers follow at their next section. The
 * old segment is never written again: readers still in it read a valid
 * last snapshot. Nothing may be staged (-EBUSY; segw_unstage first).
 * -EINVAL if bytes is not larger than the current size or too large,
 * -ENOSPC when the file system cannot hold the new one (the old one keeps
 * serving), other -errno. Costs one copy of every live record.
 */
int segw_grow(struct seg_writer *w, uint64_t bytes);

/*
 * The growth policy: the size to roll over to from a segment of `cur` bytes
 * when `need` bytes must fit (live records plus what is to be added):
 * double, and double again while need plus a reserve of 1/32 would fill
 * more than half of it, capped at max. Returns cur when cur >= max.
 */
uint64_t segw_grow_size(uint64_t cur, uint64_t need, uint64_t max);

/* Largest segment the format allows (32-bit offsets). */
#define SEGW_MAX_SEGMENT_BYTES ((4ull << 30) - 4096)

/* Close the writer. unlink=true marks the segment GONE (open readers then
 * report DISC_ST_GONE and stop serving it) and removes every object,
 * including the lock (and the directory if this writer created it and it
 * is empty); false leaves them for the next writer to recycle. */
void segw_close(struct seg_writer *w, bool unlink);

/* Stage an add or replace of an instance (by id). Validates it; nothing is
 * staged on error (-EINVAL, -ENAMETOOLONG, -E2BIG). */
int segw_put(struct seg_writer *w, const struct segw_instance *inst);

/* Bytes the instance record of `inst` takes in the arena (what segw_put
 * would allocate), or -EINVAL / -ENAMETOOLONG / -E2BIG as segw_put. */
long segw_record_size(const struct segw_instance *inst);

/* Drop every staged change that is not committed yet (records staged but
 * never published are freed at once); the published snapshot is untouched.
 * Used to re-stage a smaller batch after -ENOSPC. */
void segw_unstage(struct seg_writer *w);

/* Stage the removal of an instance. -ENOENT if it is neither published nor
 * staged. */
int segw_del(struct seg_writer *w, const char *id);

/* Stage the removal of every instance (e.g. before republishing a full
 * picture). */
void segw_clear(struct seg_writer *w);

/* Number of staged changes not yet committed. */
size_t segw_pending(const struct seg_writer *w);

/*
 * Publish every staged change with one root swap, wake waiters, and try to
 * reclaim retired memory. Returns the new generation (> 0), 0 if nothing was
 * staged, or -ENOSPC if the arena is full (nothing published; the staged
 * changes are kept), or another -errno. A put of exactly the record
 * already published for its id (every field the same) rewrites nothing
 * (segw_stats: unchanged_puts); the commit still publishes a generation.
 */
int64_t segw_commit(struct seg_writer *w);

/* Heartbeat + reclaim; call at least every few hundred ms. */
void segw_tick(struct seg_writer *w);

/* Writer-owned status words in the header (see DISC_ST_* in discshm.h). */
void segw_set_state(struct seg_writer *w, uint32_t flags, uint32_t degraded_reason,
                    int64_t degraded_since_ms, int64_t last_sync_ms, uint32_t held_changes);

/* Tell readers at once that this writer has shut down cleanly (they report
 * it dead: DISC_ST_WRITER_STOPPED) and wake waiters. Call before segw_close
 * on an orderly exit. It touches only header atomics, under a lock it
 * shares with segw_grow's swap of the header, so unlike the other calls it
 * is safe from any thread; a second call does nothing. */
void segw_mark_stopped(struct seg_writer *w);

/* Mark the snapshots from now on with DISC_ST_FROM_CACHE (or not). When the
 * flags change and nothing is staged, a new snapshot of the same tables is
 * published at once. */
void segw_set_snapshot_flags(struct seg_writer *w, uint32_t flags);

void segw_stats(const struct seg_writer *w, struct segw_stats *st);

/*
 * Write the published registry to `path` as a file-cache image: a compact,
 * read-only copy of the segment (DISC_IMAGE_MAGIC, snapshot flagged
 * DISC_ST_FROM_CACHE, a checksum over the whole file) that disc_open_file()
 * and disc_open(..., DISC_OPEN_CACHE_FALLBACK) can read. Written atomically:
 * a temporary file beside `path`, fsync, rename, fsync of the directory.
 * Returns the file size or -errno; the previous image is untouched on error.
 */
int64_t segw_export(struct seg_writer *w, const char *path);

/* The registry directory in use (absolute or as configured). */
const char *segw_dir(const struct seg_writer *w);

/* Generation of the last commit. */
uint64_t segw_generation(const struct seg_writer *w);

#endif /* DISC_SEGWRITER_H */
