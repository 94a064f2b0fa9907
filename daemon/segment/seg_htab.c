/* SPDX-License-Identifier: MIT */
/*
 * seg_htab.c — copy-on-write open-addressed hash tables in the arena.
 *
 * A table is one array of (hash32, record offset) slots with linear
 * probing, cut into pages of DISC_PAGE_SLOTS slots reached through a
 * directory (layout.h). Changing one key copies — once per commit — the
 * directory and the page(s) whose slots change. Everything a published
 * snapshot can reach is left untouched and retired instead, so readers
 * walking an older snapshot never see a write.
 *
 * Invariants readers rely on (and check): every entry sits fewer than
 * DISC_PROBE_MAX slots after its home slot (hash & (nslots - 1)) with no
 * empty slot in between; the load is at most 1/2. Removal shifts the rest
 * of the run back (Knuth's algorithm R), so there are no tombstones. The
 * table doubles past load 1/2 and halves below load 1/8 (never below one
 * page): the gap between the two is the hysteresis that keeps a table
 * that hovers around one size from resizing on every change.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "seg_internal.h"

#define MIN_SLOTS DISC_PAGE_SLOTS

static inline struct disc_htab *tab_at(const struct sega *a, uint32_t off)
{
    return SEG_AT(a, struct disc_htab, off);
}

static uint32_t tab_bytes(uint32_t npages)
{
    return (uint32_t)sizeof(struct disc_htab) + 4u * npages;
}

static int fresh_reset(struct wtab *t, uint32_t npages)
{
    if (t->page_fresh_cap < npages) {
        uint8_t *p = realloc(t->page_fresh, npages);
        if (!p)
            return -ENOMEM;
        t->page_fresh = p;
        uint32_t *l = realloc(t->fresh_list, (size_t)npages * sizeof(*l));
        if (!l)
            return -ENOMEM;
        t->fresh_list = l;
        t->page_fresh_cap = npages;
    }
    memset(t->page_fresh, 0, t->page_fresh_cap);
    t->n_fresh = 0;
    return 0;
}

int wtab_create(struct sega *a, struct wtab *t, uint32_t nslots)
{
    if (nslots < MIN_SLOTS || (nslots & (nslots - 1)))
        return -EINVAL;
    uint32_t npages = nslots / DISC_PAGE_SLOTS;
    if (npages > DISC_MAX_PAGES)
        return -E2BIG;
    if (fresh_reset(t, npages) < 0)
        return -ENOMEM;
    uint32_t off = sega_alloc(a, tab_bytes(npages));
    if (!off)
        return -ENOSPC;
    struct disc_htab *h = tab_at(a, off);
    memset(h, 0, tab_bytes(npages));
    h->type = DISC_REC_HTAB;
    h->size = tab_bytes(npages);
    h->nslots = nslots;
    h->npages = npages;
    t->off = off;
    t->tab_fresh = true;
    return 0;
}

void wtab_destroy(struct wtab *t)
{
    free(t->page_fresh);
    free(t->fresh_list);
    memset(t, 0, sizeof(*t));
}

/* Checksums of a commit's copies: every page it copied (1 KiB each; the
 * list of them, not a scan of the directory's 2048 entries over 100k
 * instances) and the directory of each table it changed (8 KiB for 2048
 * pages). Each is disc_checksum, whose four lanes already keep the
 * multiplier busy, so the parts are simply done one after another. */
void wtab_seal(struct sega *a, struct wtab *const *tabs, unsigned ntabs)
{
    for (unsigned ti = 0; ti < ntabs; ti++) {
        struct wtab *t = tabs[ti];
        if (!t->tab_fresh)
            continue; /* nothing copied: every part still carries its checksum */
        struct disc_htab *h = tab_at(a, t->off);
        for (uint32_t k = 0; k < t->n_fresh; k++) {
            uint32_t pi = t->fresh_list[k];
            if (pi >= h->npages || !h->pages[pi])
                continue;
            struct disc_hpage *pg = SEG_AT(a, struct disc_hpage, h->pages[pi]);
            pg->checksum = disc_checksum(pg, pg->size, offsetof(struct disc_hpage, checksum));
        }
        h->checksum = disc_checksum(h, h->size, offsetof(struct disc_htab, checksum));
    }
}

void wtab_commit_done(struct wtab *t)
{
    t->tab_fresh = false;
    for (uint32_t k = 0; k < t->n_fresh; k++)
        t->page_fresh[t->fresh_list[k]] = 0;
    t->n_fresh = 0;
}

static int cow_tab(struct sega *a, struct wtab *t)
{
    if (t->tab_fresh)
        return 0;
    struct disc_htab *old = tab_at(a, t->off);
    uint32_t bytes = tab_bytes(old->npages);
    if (fresh_reset(t, old->npages) < 0)
        return -ENOMEM;
    uint32_t off = sega_alloc(a, bytes);
    if (!off)
        return -ENOSPC;
    memcpy(a->base + off, old, bytes);
    if (sega_retire(a, t->off, bytes) < 0) {
        sega_free_now(a, off, bytes);
        return -ENOMEM;
    }
    t->off = off;
    t->tab_fresh = true;
    return 0;
}

/* A private (this-commit) copy of page pi, created empty if absent. */
static int cow_page(struct sega *a, struct wtab *t, uint32_t pi, struct disc_hpage **out)
{
    int rc = cow_tab(a, t);
    if (rc < 0)
        return rc;
    struct disc_htab *h = tab_at(a, t->off);
    if (h->pages[pi] && t->page_fresh[pi]) {
        *out = SEG_AT(a, struct disc_hpage, h->pages[pi]);
        return 0;
    }
    uint32_t off = sega_alloc(a, sizeof(struct disc_hpage));
    if (!off)
        return -ENOSPC;
    struct disc_hpage *p = SEG_AT(a, struct disc_hpage, off);
    if (h->pages[pi]) {
        memcpy(p, a->base + h->pages[pi], sizeof(*p));
        if (sega_retire(a, h->pages[pi], sizeof(*p)) < 0) {
            sega_free_now(a, off, sizeof(*p));
            return -ENOMEM;
        }
    } else {
        memset(p, 0, sizeof(*p)); /* the checksum is set by wtab_seal */
        p->type = DISC_REC_HPAGE;
        p->size = sizeof(*p);
    }
    h->pages[pi] = off;
    if (!t->page_fresh[pi])
        t->fresh_list[t->n_fresh++] = pi;
    t->page_fresh[pi] = 1;
    *out = p;
    return 0;
}

/* Slot s of table h as it is now (an absent page reads as empty slots). */
static struct disc_slot slot_get(const struct sega *a, const struct disc_htab *h, uint32_t s)
{
    uint32_t poff = h->pages[s / DISC_PAGE_SLOTS];
    if (!poff)
        return (struct disc_slot){0, 0};
    return SEG_AT(a, const struct disc_hpage, poff)->slot[s % DISC_PAGE_SLOTS];
}

static int slot_put(struct sega *a, struct wtab *t, uint32_t s, struct disc_slot v)
{
    struct disc_hpage *p;
    int rc = cow_page(a, t, s / DISC_PAGE_SLOTS, &p);
    if (rc == 0)
        p->slot[s % DISC_PAGE_SLOTS] = v;
    return rc;
}

/* The slot holding key, or -1; *empty gets the first empty slot of the
 * run (or UINT32_MAX when the run is DISC_PROBE_MAX long). */
static int64_t probe(const struct sega *a, const struct disc_htab *h, uint32_t hash32,
                     wtab_key_fn keyf, const char *key, uint32_t len, uint32_t *empty)
{
    uint32_t mask = h->nslots - 1, s = hash32 & mask;
    *empty = UINT32_MAX;
    for (uint32_t d = 0; d < DISC_PROBE_MAX && d < h->nslots; d++, s = (s + 1) & mask) {
        struct disc_slot e = slot_get(a, h, s);
        if (!e.off) {
            *empty = s;
            return -1;
        }
        if (e.hash != hash32 || !keyf)
            continue;
        uint32_t klen;
        const char *k = keyf(a->base, e.off, &klen);
        if (klen == len && memcmp(k, key, len) == 0)
            return s;
    }
    return -1;
}

uint32_t wtab_hash(uint64_t seed, const char *key, uint32_t len)
{
    return (uint32_t)disc_hash(key, len, seed);
}

uint32_t wtab_find_h(const struct sega *a, const struct wtab *t, uint32_t h32, wtab_key_fn keyf,
                     const char *key, uint32_t len)
{
    const struct disc_htab *h = tab_at(a, t->off);
    uint32_t empty;
    int64_t s = probe(a, h, h32, keyf, key, len, &empty);
    return s < 0 ? 0 : slot_get(a, h, (uint32_t)s).off;
}

uint32_t wtab_find_slot_h(const struct sega *a, const struct wtab *t, uint32_t h32,
                          wtab_key_fn keyf, const char *key, uint32_t len, uint32_t *slot)
{
    const struct disc_htab *h = tab_at(a, t->off);
    uint32_t empty;
    int64_t s = probe(a, h, h32, keyf, key, len, &empty);
    *slot = s < 0 ? UINT32_MAX : (uint32_t)s;
    return s < 0 ? 0 : slot_get(a, h, (uint32_t)s).off;
}

int wtab_replace_at(struct sega *a, struct wtab *t, uint32_t slot, uint32_t h32, uint32_t old_off,
                    uint32_t new_off)
{
    const struct disc_htab *h = tab_at(a, t->off);
    if (!old_off || slot >= h->nslots)
        return -ESTALE;
    struct disc_slot e = slot_get(a, h, slot);
    /* A record sits in one slot of a table: a slot holding it is its key's */
    if (e.off != old_off || e.hash != h32)
        return -ESTALE;
    return slot_put(a, t, slot, (struct disc_slot){h32, new_off});
}

uint32_t wtab_find(const struct sega *a, const struct wtab *t, uint64_t seed, wtab_key_fn keyf,
                   const char *key, uint32_t len)
{
    return wtab_find_h(a, t, wtab_hash(seed, key, len), keyf, key, len);
}

void wtab_prefetch_h(const struct sega *a, const struct wtab *t, uint32_t h32, int stage)
{
    const struct disc_htab *h = tab_at(a, t->off);
    uint32_t s = h32 & (h->nslots - 1);
    uint32_t poff = h->pages[s / DISC_PAGE_SLOTS];
    if (!poff)
        return;
    const struct disc_slot *sl =
        &SEG_AT(a, const struct disc_hpage, poff)->slot[s % DISC_PAGE_SLOTS];
    if (stage == 0) {
        __builtin_prefetch(sl);
        return;
    }
    /* the record of the first slot of the run whose hash matches (the key
     * usually sits in its home slot at load <= 1/2) */
    for (uint32_t d = 0; d < 4 && s + d < h->nslots && (s + d) % DISC_PAGE_SLOTS >= d; d++) {
        if (!sl[d].off)
            return;
        if (sl[d].hash == h32) {
            __builtin_prefetch(a->base + sl[d].off);
            __builtin_prefetch(a->base + sl[d].off + 64);
            return;
        }
    }
}

uint32_t wtab_count(const struct sega *a, const struct wtab *t)
{
    return tab_at(a, t->off)->count;
}

uint32_t wtab_slots(const struct sega *a, const struct wtab *t)
{
    return tab_at(a, t->off)->nslots;
}

void wtab_foreach(const struct sega *a, const struct wtab *t, void (*fn)(uint32_t, void *),
                  void *arg)
{
    const struct disc_htab *h = tab_at(a, t->off);
    for (uint32_t pi = 0; pi < h->npages; pi++) {
        if (!h->pages[pi])
            continue;
        const struct disc_hpage *p = SEG_AT(a, struct disc_hpage, h->pages[pi]);
        for (uint32_t i = 0; i < DISC_PAGE_SLOTS; i++)
            if (p->slot[i].off)
                fn(p->slot[i].off, arg);
    }
}

/* Rebuild the table with nslots slots; every old part is retired. */
static int resize(struct sega *a, struct wtab *t, uint32_t nslots)
{
    const struct disc_htab *oh = tab_at(a, t->off);
    uint32_t old_off = t->off;
    struct wtab nt = {0};
    int rc = wtab_create(a, &nt, nslots);
    if (rc < 0)
        goto out;
    uint32_t n = 0, mask = nslots - 1;
    for (uint32_t pi = 0; pi < oh->npages; pi++) {
        if (!oh->pages[pi])
            continue;
        const struct disc_hpage *p = SEG_AT(a, struct disc_hpage, oh->pages[pi]);
        for (uint32_t i = 0; i < DISC_PAGE_SLOTS; i++) {
            struct disc_slot e = p->slot[i];
            if (!e.off)
                continue;
            const struct disc_htab *nh = tab_at(a, nt.off);
            uint32_t s = e.hash & mask, d = 0;
            while (slot_get(a, nh, s).off && d < DISC_PROBE_MAX) {
                s = (s + 1) & mask;
                d++;
            }
            if (d >= DISC_PROBE_MAX) {
                rc = -E2BIG;
                goto out;
            }
            if ((rc = slot_put(a, &nt, s, e)) < 0)
                goto out;
            n++;
        }
    }
    tab_at(a, nt.off)->count = n;

    /* Retire the old table and its pages. */
    for (uint32_t pi = 0; pi < oh->npages; pi++)
        if (oh->pages[pi])
            sega_retire(a, oh->pages[pi], sizeof(struct disc_hpage));
    sega_retire(a, old_off, tab_bytes(oh->npages));
    free(t->page_fresh);
    free(t->fresh_list);
    *t = nt;
    return 0;
out:
    wtab_destroy(&nt); /* arena blocks are returned by sega_commit_fail */
    return rc;
}

int wtab_set(struct sega *a, struct wtab *t, uint64_t seed, wtab_key_fn keyf, const char *key,
             uint32_t len, uint32_t rec_off)
{
    return wtab_set_h(a, t, wtab_hash(seed, key, len), keyf, key, len, rec_off);
}

int wtab_set_h(struct sega *a, struct wtab *t, uint32_t h32, wtab_key_fn keyf, const char *key,
               uint32_t len, uint32_t rec_off)
{
    uint32_t empty;
    const struct disc_htab *h = tab_at(a, t->off);
    int64_t s = probe(a, h, h32, keyf, key, len, &empty);
    if (s >= 0)
        return slot_put(a, t, (uint32_t)s, (struct disc_slot){h32, rec_off});
    if (empty == UINT32_MAX) {
        /* A run DISC_PROBE_MAX long: only keys chosen to collide make one
         * (the seed is random per segment). Refused, like a full bucket. */
        return -E2BIG;
    }
    int rc = slot_put(a, t, empty, (struct disc_slot){h32, rec_off});
    if (rc < 0)
        return rc;
    struct disc_htab *nh = tab_at(a, t->off); /* fresh after slot_put */
    nh->count++;
    if (nh->count > nh->nslots / 2 && nh->npages < DISC_MAX_PAGES)
        return resize(a, t, nh->nslots * 2);
    return 0;
}

int wtab_del(struct sega *a, struct wtab *t, uint64_t seed, wtab_key_fn keyf, const char *key,
             uint32_t len)
{
    return wtab_del_h(a, t, wtab_hash(seed, key, len), keyf, key, len);
}

int wtab_del_h(struct sega *a, struct wtab *t, uint32_t h32, wtab_key_fn keyf, const char *key,
               uint32_t len)
{
    uint32_t empty;
    const struct disc_htab *h = tab_at(a, t->off);
    int64_t found = probe(a, h, h32, keyf, key, len, &empty);
    if (found < 0)
        return -ENOENT;
    /* Shift the rest of the run back: an entry moves into the hole unless
     * its home slot lies cyclically in (hole, its slot]. */
    uint32_t mask = h->nslots - 1, hole = (uint32_t)found, j = hole;
    int rc;
    for (uint32_t d = 0; d < DISC_PROBE_MAX; d++) {
        j = (j + 1) & mask;
        struct disc_slot e = slot_get(a, tab_at(a, t->off), j);
        if (!e.off)
            break;
        uint32_t home = e.hash & mask;
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        if ((rc = slot_put(a, t, hole, e)) < 0)
            return rc;
        hole = j;
    }
    if ((rc = slot_put(a, t, hole, (struct disc_slot){0, 0})) < 0)
        return rc;
    struct disc_htab *nh = tab_at(a, t->off);
    nh->count--;
    if (nh->nslots > MIN_SLOTS && nh->count < nh->nslots / 8)
        return resize(a, t, nh->nslots / 2);
    return 0;
}
