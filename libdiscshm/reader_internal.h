/*
 * reader_internal.h — private structures of libdiscshm.
 */
#ifndef DISCSHM_READER_INTERNAL_H
#define DISCSHM_READER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "discshm.h"
#include "layout.h"

#define DISC_API __attribute__((visibility("default")))

/* Reader slots a handle may claim: one per thread concurrently inside a
 * read section on this handle. Beyond that, sections run slotless (see
 * reader.c). */
#define DISC_LOCAL_SLOTS 64

/* One mapping of one segment. A handle replaces its map when the segment is
 * RECYCLED; the old map is unmapped once no section uses it, but the struct
 * itself stays allocated until disc_close, so a thread that loaded the old
 * pointer can still look at its retired word safely. */
struct disc_map {
    const unsigned char *base; /* PROT_READ mapping of the data object */
    uint64_t size;
    const struct disc_hdr *hdr;
    uint32_t arena_off, arena_end; /* validated copies: never re-read */
    uint64_t seed;
    uint64_t segment_id;
    int slots_fd;
    void *slots_map;         /* mapping of the slots object (header + lines) */
    struct disc_slot *slots; /* reader-writable slot lines */
    uint64_t slots_bytes;
    uint32_t nslots;
    _Atomic int nlocal;          /* local slots claimed so far */
    int local[DISC_LOCAL_SLOTS]; /* index into slots[] of local slot i */
    _Atomic uint32_t slotless;   /* sections running without a slot */
    _Atomic int retired;         /* replaced by a newer map */
    int unmapped;                /* retired and unmapped (struct kept until close) */
    struct disc_map *next;       /* retired list */
};

struct disc_handle {
    _Atomic(struct disc_map *) cur;
    pthread_mutex_t lock; /* reopen and slot claims; never on the read path */
    struct disc_map *retired;
    unsigned flags;
    uint32_t rng;
    char name[256];
};

/* Bounds-checked access to a record of `type` at `off` with at least
 * `min` bytes; NULL if anything is off. */
static inline const void *disc__rec(const struct disc_map *m, uint32_t off, uint32_t min,
                                    uint32_t type)
{
    if (off < m->arena_off || (off & (DISC_ALIGN - 1)) || (uint64_t)off + min > m->arena_end)
        return NULL;
    const uint32_t *p = (const uint32_t *)(m->base + off);
    uint32_t t = p[0], size = p[1];
    if (t != type || size < min || (uint64_t)off + size > m->arena_end)
        return NULL;
    return p;
}

/* Validate the instance record at rec (avail readable bytes) and fill a view
 * of it (lookup.c). Used to re-check records after copying them out. */
int disc__fill_view(const unsigned char *rec, uint64_t avail, unsigned flags,
                    struct disc_instance *out);

#endif /* DISCSHM_READER_INTERNAL_H */
