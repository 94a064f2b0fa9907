/* SPDX-License-Identifier: MIT */
/*
 * reader_internal.h — private structures of libdiscshm.
 */
#ifndef DISCSHM_READER_INTERNAL_H
#define DISCSHM_READER_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "discshm.h"
#include "layout.h"

#define DISC_API __attribute__((visibility("default")))

/* Process-local pins: a thread inside a read section on a map holds one
 * line (CAS 0 -> 1), chosen by a hash of its thread id; with all probed
 * lines busy it counts itself in `overflow`. A retired map is unmapped only
 * when every line is 0 and overflow is 0. Nothing here is shared with
 * other processes. */
#define DISC_PIN_LINES 16
#define DISC_PIN_PROBE 4
/* Every this many sections on a pin line, the section start also checks
 * (fstat) whether the data object was removed: see DISC_ST_GONE. */
#define DISC_GONE_CHECK_EVERY 4096u

struct disc_pin {
    _Atomic uint32_t busy;
    uint32_t sections; /* written only by the thread holding the line */
    unsigned char pad_[56];
};

/* A hash table's offset and validated slot count (lookup.c): the record
 * at off is a table whose directory holds nslots / DISC_PAGE_SLOTS page
 * offsets in bounds. nslots 0: the table failed validation (every use of
 * it is -EBADMSG). */
struct disc_tabv {
    uint32_t off, nslots;
};

/* What a read section needs of its snapshot, validated once (lookup.c,
 * geo_fill): the snapshot's generation, its service count, both tables,
 * and the first part of the work budget (units + 1). Four words. */
struct disc_geo {
    uint64_t gen;
    struct disc_tabv svc, id;
    uint32_t n_services;
    uint32_t budget;
};
#define DISC_GEO_WORDS (sizeof(struct disc_geo) / 8)
_Static_assert(sizeof(struct disc_geo) % 8 == 0, "geo is whole words");

/* Per map, the geometry of the last snapshot a section validated, keyed by
 * the root word it was read from (docs/DESIGN.md, "The geometry cache").
 * Process-local, shared by the threads that share the handle: a seqlock
 * (seq odd while one thread writes; a writer that loses the race to make it
 * odd just does not store). Every field is an atomic, so a reader can never
 * see a torn word, only a torn set, which the seq check rejects. Nothing in
 * it is read from or written to shared memory. */
struct disc_geo_cache {
    _Atomic uint32_t seq;
    uint32_t pad_;
    _Atomic uint64_t root; /* 0: nothing cached */
    _Atomic uint64_t w[DISC_GEO_WORDS];
};

/* One mapping of one segment. A handle replaces its map when the segment is
 * RECYCLED; the old map is unmapped once no section uses it, but the struct
 * itself stays allocated until disc_close, so a thread that loaded the old
 * pointer can still pin it and see its `retired` word safely. */
struct disc_map {
    struct disc_pin pins[DISC_PIN_LINES]; /* first: 64-byte aligned */
    _Atomic uint32_t overflow;            /* sections/waits pinned without a line */
    _Atomic int retired;                  /* replaced by a newer map */
    _Atomic int gone;                     /* object removed, no successor found */
    int unmapped;                         /* retired and unmapped (struct kept until close) */
    const unsigned char *base;            /* PROT_READ mapping of the data object */
    uint64_t size;
    const struct disc_hdr *hdr;
    uint32_t arena_off, arena_end; /* validated copies: never re-read */
    uint64_t seed;
    uint64_t segment_id;
    int fd;                /* the data object, for staleness checks (-1: image) */
    int64_t next_retry_ns; /* gone: earliest next reopen attempt (under lock) */
    unsigned ck_flags;     /* DISC__FL_CK_FNV when its checksums are FNV-1a */
    struct disc_map *next; /* retired list */
    /* its own line: written once per new snapshot, read by every lookup */
    alignas(64) struct disc_geo_cache geo;
};

struct disc_handle {
    _Atomic(struct disc_map *) cur;
    pthread_mutex_t lock; /* reopen and unmapping; never on the read path */
    struct disc_map *retired;
    unsigned flags;
    uint32_t owner; /* the expected owner, fixed at open */
    char name[256];
    char dir[4096];
};

/*
 * Loads from shared memory. The rule (docs/DESIGN.md, "Reading untrusted
 * memory"): every field is loaded exactly once into a local, the local is
 * validated, and only the local is used afterwards. The loads are relaxed
 * atomics so the compiler can neither re-fetch a field after its check nor
 * tear it; on x86-64 and arm64 they are plain loads.
 */
static inline uint32_t disc__ld32(const void *p)
{
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
}

static inline uint8_t disc__ld8(const void *p)
{
    return __atomic_load_n((const uint8_t *)p, __ATOMIC_RELAXED);
}

/* Copy `bytes` from shared memory into a local. The compiler barrier after
 * the copy makes the compiler treat the source as changed, so it can never
 * satisfy a later use of the local by reading the source again. */
static inline void disc__ldcpy(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
    __asm__ __volatile__("" : : : "memory");
}

/* Bounds-checked access to a record of `type` at `off` with at least
 * `min` bytes; NULL if anything is off. *size_out (when non-NULL) gets the
 * record's size as loaded for the check: use it, never re-read the field. */
static inline const void *disc__rec_sz(const struct disc_map *m, uint32_t off, uint32_t min,
                                       uint32_t type, uint32_t *size_out)
{
    if (off < m->arena_off || (off & (DISC_ALIGN - 1)) || (uint64_t)off + min > m->arena_end)
        return NULL;
    const uint32_t *p = (const uint32_t *)(m->base + off);
    uint32_t t = disc__ld32(&p[0]), size = disc__ld32(&p[1]);
    if (t != type || size < min || (uint64_t)off + size > m->arena_end)
        return NULL;
    if (size_out)
        *size_out = size;
    return p;
}

static inline const void *disc__rec(const struct disc_map *m, uint32_t off, uint32_t min,
                                    uint32_t type)
{
    return disc__rec_sz(m, off, min, type, NULL);
}

/* The cached geometry of the snapshot at root word `root` of map m, for
 * a section that loaded generation a: 1 and *g, or 0 (not cached). The
 * generation check makes a root word that repeats after 2^32 publishes
 * (the word holds the generation's low 32 bits) a miss. */
static inline int disc__geo_get(struct disc_map *m, uint64_t root, uint64_t a, struct disc_geo *g)
{
    struct disc_geo_cache *c = &m->geo;
    uint32_t s = atomic_load_explicit(&c->seq, memory_order_acquire);
    uint64_t r = atomic_load_explicit(&c->root, memory_order_acquire);
    _Static_assert(DISC_GEO_WORDS == 4, "unrolled by hand");
    /* acquire loads (plain loads on x86-64): the second load of seq below
     * cannot move above them, and one that sees a newer word's store sees
     * the seq that preceded it */
    uint64_t w[4] = {atomic_load_explicit(&c->w[0], memory_order_acquire),
                     atomic_load_explicit(&c->w[1], memory_order_acquire),
                     atomic_load_explicit(&c->w[2], memory_order_acquire),
                     atomic_load_explicit(&c->w[3], memory_order_acquire)};
    if ((s & 1) || r != root || atomic_load_explicit(&c->seq, memory_order_relaxed) != s)
        return 0;
    memcpy(g, w, sizeof(*g));
    return g->gen >= a && g->gen - a <= UINT32_MAX;
}

/* Cache g as the geometry of root word `root` (unless another thread is
 * storing right now: then this one does not). */
static inline void disc__geo_put(struct disc_map *m, uint64_t root, const struct disc_geo *g)
{
    struct disc_geo_cache *c = &m->geo;
    uint32_t s = atomic_load_explicit(&c->seq, memory_order_relaxed);
    if ((s & 1) || !atomic_compare_exchange_strong_explicit(
                       &c->seq, &s, s + 1, memory_order_relaxed, memory_order_relaxed))
        return;
    /* release stores (plain stores on x86-64): each is ordered after the
     * CAS that made seq odd (no fence: ThreadSanitizer does not model
     * fences, and the library's atomics stay visible to it) */
    uint64_t w[DISC_GEO_WORDS];
    memcpy(w, g, sizeof(*g));
    atomic_store_explicit(&c->root, root, memory_order_release);
    for (unsigned i = 0; i < DISC_GEO_WORDS; i++)
        atomic_store_explicit(&c->w[i], w[i], memory_order_release);
    atomic_store_explicit(&c->seq, s + 2, memory_order_release);
}

/* 1 if a section of m validated the snapshot record of root word `root`
 * (its offset, alignment and type) before: the cache holds that root. */
static inline int disc__geo_known(struct disc_map *m, uint64_t root)
{
    return atomic_load_explicit(&m->geo.root, memory_order_relaxed) == root;
}

/* A bit of a section's flags (struct disc_read's flags_; never a public
 * DISC_OPEN_* value, which disc_open checks): the section's map carries
 * FNV-1a checksums (its header lacks DISC_FEAT_CHECKSUM_WORD: written by
 * a discd from before the word-wise checksum), so verifying reads check
 * them with disc_checksum_fnv1a. */
#define DISC__FL_CK_FNV 0x8000u
_Static_assert(!(DISC__FL_CK_FNV & (DISC_OPEN_VERIFY | DISC_OPEN_CACHE_FALLBACK)) &&
                   DISC__FL_CK_FNV <= UINT16_MAX,
               "a flag of its own, in struct disc_read's 16-bit flags_");

/* The checksum of a record as the section's map has it: FNV-1a when
 * `flags` has DISC__FL_CK_FNV, else disc_checksum. Out of line
 * (reader.c): only verifying reads call it. */
uint32_t disc__record_ck(unsigned flags, const void *rec, uint32_t size, uint32_t checksum_at);

/* Validate the instance record at rec (avail readable bytes) and fill a view
 * of it (lookup.c). Used to re-check records after copying them out. */
int disc__fill_view(const unsigned char *rec, uint64_t avail, unsigned flags,
                    struct disc_instance *out);

/* 0 if instance i of the service is not the same record as instance i - 1,
 * else -EBADMSG (lookup.c). */
int disc__inst_not_repeated(struct disc_read *rd, const struct disc_service_view *sv, uint32_t i);

int disc__charge_slow(struct disc_read *rd, uint32_t units);

static inline int disc__charge(struct disc_read *rd, uint32_t units)
{
    uint32_t left = rd->work_ & 0x7fffffffu; /* units left + 1; 0: not granted yet */
    if (__builtin_expect(left > units, 1)) {
        rd->work_ -= units;
        return 0;
    }
    return disc__charge_slow(rd, units);
}

/* Length of a string in shared memory, or max + 1 if it is longer than max
 * (it was validated shorter: someone changed it since, or it is damaged). */
static inline size_t disc__slen(const char *s, size_t max)
{
    return strnlen(s, max + 1);
}

/* Writer liveness of a map (stale.c): DISC_WRITER_ALIVE_, _DEAD_ (no
 * heartbeat for dead_after_ms) or _STOPPED_ (clean shutdown). */
enum { DISC_WRITER_ALIVE_ = 0, DISC_WRITER_DEAD_ = 1, DISC_WRITER_STOPPED_ = 2 };
struct disc_liveness {
    int64_t age_ms;        /* since the last heartbeat */
    int64_t dead_since_ms; /* CLOCK_REALTIME; 0 while alive */
    uint32_t dead_after_ms;
};
int disc__writer_liveness(const struct disc_map *m, struct disc_liveness *lv);

#endif /* DISCSHM_READER_INTERNAL_H */
