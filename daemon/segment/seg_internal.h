/* SPDX-License-Identifier: MIT */
/*
 * seg_internal.h — private state of the segment writer (discpub).
 * Nothing here lives in shared memory except what `base` points to.
 */
#ifndef DISC_SEG_INTERNAL_H
#define DISC_SEG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "segwriter.h"

/* ---- Allocator (seg_alloc.c) ----------------------------------------------
 * Writer-private free lists over the arena. Blocks are 8-byte aligned;
 * sizes up to SEGA_SMALL_MAX have exact classes, larger ones are rounded up
 * to a power of two. Freed memory is not reusable until the grace period of
 * the publish that retired it has passed (see seg_writer.c). */

#define SEGA_SMALL_MAX 4096u
#define SEGA_NSMALL    (SEGA_SMALL_MAX / DISC_ALIGN + 1)
#define SEGA_NLARGE    32u

struct sega_vec {
    uint32_t *v;
    uint32_t n, cap;
};

struct sega_block {
    uint32_t off, size;
};

/* Blocks retired by one publish. */
struct sega_batch {
    uint64_t tag;       /* generation whose publish unlinked them */
    int64_t retired_ns; /* CLOCK_MONOTONIC when that publish happened */
    uint64_t bytes;
    struct sega_block *blocks;
    uint32_t n, cap;
};

struct sega {
    unsigned char *base;
    uint32_t arena_off, arena_end;
    uint32_t top; /* bump pointer */
    struct sega_vec small[SEGA_NSMALL];
    struct sega_vec large[SEGA_NLARGE];
    uint64_t free_bytes;    /* in free lists */
    uint64_t retired_bytes; /* in batches */
    /* Batches: batches[b0 .. b0 + nbatches) closed and tagged, oldest
     * first (sega_batch_at); `open` collects the blocks retired by the
     * commit in progress. Reclaiming advances b0: ~1000 batches live inside
     * T at 1000 commits/s, and moving them down after every reclaim was
     * ~5% of a small commit's CPU. */
    struct sega_batch *batches;
    uint32_t b0, nbatches, capbatches;
    struct sega_batch open;
    /* Allocations made by the commit in progress, so a failed commit can
     * give them back (they were never published). */
    struct sega_block *log;
    uint32_t nlog, caplog;
    uint32_t open_mark; /* open.n when the commit began */
    uint64_t open_mark_bytes;
    bool logging;
    bool poison;
};

int sega_init(struct sega *a, unsigned char *base, uint32_t arena_off, uint32_t arena_end,
              bool poison);
void sega_destroy(struct sega *a);
/* Rounded size a request of `size` bytes occupies. */
uint32_t sega_block_size(uint32_t size);
/* Offset of a new block of at least `size` bytes, or 0 when full. */
uint32_t sega_alloc(struct sega *a, uint32_t size);
/* Give back a block that no reader can have seen (never published). */
void sega_free_now(struct sega *a, uint32_t off, uint32_t size);
/* Retire a published block: reusable after the grace period of the commit
 * in progress. -ENOMEM if bookkeeping fails (the block then leaks). */
int sega_retire(struct sega *a, uint32_t off, uint32_t size);
/* Commit bookkeeping: begin logging allocations; on success close the open
 * batch with `tag`; on failure free every logged allocation and forget the
 * retirements made since begin. */
void sega_commit_begin(struct sega *a);
void sega_commit_ok(struct sega *a, uint64_t tag, int64_t now_ns);
void sega_commit_fail(struct sega *a);
/* Make every batch with tag <= upto reusable. Returns bytes reclaimed. */
uint64_t sega_reclaim(struct sega *a, uint64_t upto);
uint64_t sega_used(const struct sega *a);
/* The i-th oldest closed batch (i < nbatches). */
static inline const struct sega_batch *sega_batch_at(const struct sega *a, uint32_t i)
{
    return &a->batches[a->b0 + i];
}

/* ---- Copy-on-write open-addressed hash tables (seg_htab.c) ----------------
 * One array of (hash, offset) slots, linear probing, copied on write by
 * page; doubles past load 1/2, halves below 1/8. The writer's handle on
 * one table. `off` is the table as it will be in the
 * next snapshot; fresh[] marks what this commit already copied (so it is
 * private and may be edited in place). */
struct wtab {
    uint32_t off;
    bool tab_fresh;
    uint8_t *page_fresh;  /* per directory page */
    uint32_t *fresh_list; /* the n_fresh pages marked in page_fresh */
    uint32_t n_fresh;
    uint32_t page_fresh_cap; /* of both */
};

/* Returns a pointer to the NUL-terminated key of the record at rec_off and
 * its length. */
typedef const char *(*wtab_key_fn)(const unsigned char *base, uint32_t rec_off, uint32_t *len);

/* A new empty table of nslots slots (a power of two >= DISC_PAGE_SLOTS). */
int wtab_create(struct sega *a, struct wtab *t, uint32_t nslots);
/* Record offset stored under key, or 0. */
uint32_t wtab_find(const struct sega *a, const struct wtab *t, uint64_t seed, wtab_key_fn keyf,
                   const char *key, uint32_t len);
/* A hint before a batch of finds of keys whose hashes are h32 (wtab_hash,
 * below): stage 0 prefetches the key's home slot
 * line, stage 1 (after every stage 0 of the batch) the record of a slot
 * near home whose hash matches. Issued for a whole batch, the misses of
 * its finds overlap instead of following one another. Reads nothing a
 * find would not. */
void wtab_prefetch_h(const struct sega *a, const struct wtab *t, uint32_t h32, int stage);
/* Insert or replace key -> rec_off. -ENOSPC, -ENOMEM; -E2BIG when the
 * key's probe run is already DISC_PROBE_MAX long (colliding keys). */
int wtab_set(struct sega *a, struct wtab *t, uint64_t seed, wtab_key_fn keyf, const char *key,
             uint32_t len, uint32_t rec_off);
/* Remove key; -ENOENT if absent. */
int wtab_del(struct sega *a, struct wtab *t, uint64_t seed, wtab_key_fn keyf, const char *key,
             uint32_t len);
/* Find, set and delete with the key's hash given (wtab_hash: the low 32
 * bits of disc_hash under the segment's seed), for a commit that looks
 * one key up several times (prefetch, find, set). */
uint32_t wtab_hash(uint64_t seed, const char *key, uint32_t len);
uint32_t wtab_find_h(const struct sega *a, const struct wtab *t, uint32_t h32, wtab_key_fn keyf,
                     const char *key, uint32_t len);
int wtab_set_h(struct sega *a, struct wtab *t, uint32_t h32, wtab_key_fn keyf, const char *key,
               uint32_t len, uint32_t rec_off);
int wtab_del_h(struct sega *a, struct wtab *t, uint32_t h32, wtab_key_fn keyf, const char *key,
               uint32_t len);
/* wtab_find_h that also gives the slot holding the key (UINT32_MAX when
 * absent), for wtab_replace_at. */
uint32_t wtab_find_slot_h(const struct sega *a, const struct wtab *t, uint32_t h32,
                          wtab_key_fn keyf, const char *key, uint32_t len, uint32_t *slot);
/* Point the entry (h32, old_off) at `slot` (from wtab_find_slot_h) to
 * new_off without probing for its key again: -ESTALE when the slot no
 * longer holds exactly that entry (a deletion since shifted it, a resize
 * moved it; the caller then uses wtab_set_h), else as wtab_set_h. */
int wtab_replace_at(struct sega *a, struct wtab *t, uint32_t slot, uint32_t h32, uint32_t old_off,
                    uint32_t new_off);
/* Set the checksums of the parts this commit copied in each of the ntabs
 * tables (a table and its fresh pages). Call before the
 * snapshot that publishes the tables is written. */
void wtab_seal(struct sega *a, struct wtab *const *tabs, unsigned ntabs);
/* Forget per-commit freshness (call after publishing). */
void wtab_commit_done(struct wtab *t);
/* Visit every entry (record offset). */
void wtab_foreach(const struct sega *a, const struct wtab *t, void (*fn)(uint32_t rec_off, void *),
                  void *arg);
uint32_t wtab_count(const struct sega *a, const struct wtab *t);
uint32_t wtab_slots(const struct sega *a, const struct wtab *t);
void wtab_destroy(struct wtab *t);

/* Typed access into the writer's own mapping. */
#define SEG_AT(a, type, off) ((type *)((a)->base + (off)))

#endif /* DISC_SEG_INTERNAL_H */
