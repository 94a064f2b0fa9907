/* SPDX-License-Identifier: MIT */
/*
 * reader_internal.h — private structures of libdiscshm.
 */
#ifndef DISCSHM_READER_INTERNAL_H
#define DISCSHM_READER_INTERNAL_H

#include <pthread.h>
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
    struct disc_map *next; /* retired list */
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
