/* SPDX-License-Identifier: MIT */
/*
 * seg_htab.c — copy-on-write hash tables in the arena.
 *
 * A table is a directory of pages; a page holds 256 bucket offsets; a bucket
 * is a small immutable array of (hash, record) pairs. Changing one key writes
 * a new bucket, and — once per commit — a new copy of its page and of the
 * directory. Everything a published snapshot can reach is left untouched and
 * retired instead, so readers walking an older snapshot never see a write.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "seg_internal.h"

static inline struct disc_htab *tab_at(const struct sega *a, uint32_t off)
{
    return SEG_AT(a, struct disc_htab, off);
}

static uint32_t tab_bytes(uint32_t npages)
{
    return (uint32_t)sizeof(struct disc_htab) + 4u * npages;
}

static uint32_t bucket_bytes(uint32_t n)
{
    return (uint32_t)sizeof(struct disc_bucket) + n * (uint32_t)sizeof(struct disc_bucket_ent);
}

static int fresh_reset(struct wtab *t, uint32_t npages)
{
    if (t->page_fresh_cap < npages) {
        uint8_t *p = realloc(t->page_fresh, npages);
        if (!p)
            return -ENOMEM;
        t->page_fresh = p;
        t->page_fresh_cap = npages;
    }
    memset(t->page_fresh, 0, t->page_fresh_cap);
    return 0;
}

int wtab_create(struct sega *a, struct wtab *t, uint32_t nbuckets)
{
    if (nbuckets < DISC_PAGE_BUCKETS || (nbuckets & (nbuckets - 1)))
        return -EINVAL;
    uint32_t npages = nbuckets / DISC_PAGE_BUCKETS;
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
    h->nbuckets = nbuckets;
    h->npages = npages;
    t->off = off;
    t->tab_fresh = true;
    return 0;
}

void wtab_destroy(struct wtab *t)
{
    free(t->page_fresh);
    memset(t, 0, sizeof(*t));
}

void wtab_seal(struct sega *a, struct wtab *t)
{
    if (!t->tab_fresh)
        return; /* nothing copied: every part still carries its checksum */
    struct disc_htab *h = tab_at(a, t->off);
    for (uint32_t pi = 0; pi < h->npages && pi < t->page_fresh_cap; pi++) {
        if (!t->page_fresh[pi] || !h->pages[pi])
            continue;
        struct disc_hpage *p = SEG_AT(a, struct disc_hpage, h->pages[pi]);
        p->checksum = 0;
        p->checksum = disc_checksum(p, p->size, offsetof(struct disc_hpage, checksum));
    }
    h->checksum = disc_checksum(h, h->size, offsetof(struct disc_htab, checksum));
}

void wtab_commit_done(struct wtab *t)
{
    t->tab_fresh = false;
    if (t->page_fresh)
        memset(t->page_fresh, 0, t->page_fresh_cap);
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
    t->page_fresh[pi] = 1;
    *out = p;
    return 0;
}

static const struct disc_bucket *bucket_of(const struct sega *a, const struct wtab *t,
                                           uint32_t hash32, uint32_t *bidx)
{
    const struct disc_htab *h = tab_at(a, t->off);
    uint32_t b = hash32 & (h->nbuckets - 1);
    *bidx = b;
    uint32_t poff = h->pages[b / DISC_PAGE_BUCKETS];
    if (!poff)
        return NULL;
    uint32_t boff = SEG_AT(a, struct disc_hpage, poff)->bucket[b % DISC_PAGE_BUCKETS];
    return boff ? SEG_AT(a, struct disc_bucket, boff) : NULL;
}

static int find_in_bucket(const struct sega *a, const struct disc_bucket *bk, uint32_t hash32,
                          wtab_key_fn keyf, const char *key, uint32_t len)
{
    for (uint32_t i = 0; bk && i < bk->n; i++) {
        if (bk->e[i].hash != hash32)
            continue;
        uint32_t klen;
        const char *k = keyf(a->base, bk->e[i].off, &klen);
        if (klen == len && memcmp(k, key, len) == 0)
            return (int)i;
    }
    return -1;
}

uint32_t wtab_find(const struct sega *a, const struct wtab *t, uint64_t seed, wtab_key_fn keyf,
                   const char *key, uint32_t len)
{
    uint32_t h32 = (uint32_t)disc_hash(key, len, seed), b;
    const struct disc_bucket *bk = bucket_of(a, t, h32, &b);
    int i = find_in_bucket(a, bk, h32, keyf, key, len);
    return i < 0 ? 0 : bk->e[i].off;
}

uint32_t wtab_count(const struct sega *a, const struct wtab *t)
{
    return tab_at(a, t->off)->count;
}

void wtab_foreach(const struct sega *a, const struct wtab *t, void (*fn)(uint32_t, void *),
                  void *arg)
{
    const struct disc_htab *h = tab_at(a, t->off);
    for (uint32_t pi = 0; pi < h->npages; pi++) {
        if (!h->pages[pi])
            continue;
        const struct disc_hpage *p = SEG_AT(a, struct disc_hpage, h->pages[pi]);
        for (uint32_t bi = 0; bi < DISC_PAGE_BUCKETS; bi++) {
            if (!p->bucket[bi])
                continue;
            const struct disc_bucket *bk = SEG_AT(a, struct disc_bucket, p->bucket[bi]);
            for (uint32_t i = 0; i < bk->n; i++)
                fn(bk->e[i].off, arg);
        }
    }
}

/* Replace bucket b with a copy that drops entry `drop` (-1: none) and
 * appends `add` (when add.off != 0). */
static int rewrite_bucket(struct sega *a, struct wtab *t, uint32_t b, const struct disc_bucket *old,
                          int drop, struct disc_bucket_ent add)
{
    uint32_t n_old = old ? old->n : 0;
    uint32_t n = n_old - (drop >= 0 ? 1 : 0) + (add.off ? 1 : 0);
    if (n > DISC_BUCKET_MAX)
        return -E2BIG;
    uint32_t old_off = 0;
    if (old)
        old_off = (uint32_t)((const unsigned char *)old - a->base);
    struct disc_hpage *p;
    int rc = cow_page(a, t, b / DISC_PAGE_BUCKETS, &p);
    if (rc < 0)
        return rc;
    uint32_t noff = 0;
    if (n) {
        noff = sega_alloc(a, bucket_bytes(n));
        if (!noff)
            return -ENOSPC;
        struct disc_bucket *nb = SEG_AT(a, struct disc_bucket, noff);
        const struct disc_bucket *ob = old_off ? SEG_AT(a, struct disc_bucket, old_off) : NULL;
        nb->type = DISC_REC_BUCKET;
        nb->size = bucket_bytes(n);
        uint32_t j = 0;
        for (uint32_t i = 0; i < n_old; i++)
            if ((int)i != drop)
                nb->e[j++] = ob->e[i];
        if (add.off)
            nb->e[j++] = add;
        nb->n = j;
        nb->checksum = disc_checksum(nb, nb->size, offsetof(struct disc_bucket, checksum));
    }
    if (old_off && sega_retire(a, old_off, bucket_bytes(n_old)) < 0)
        return -ENOMEM;
    p->bucket[b % DISC_PAGE_BUCKETS] = noff;
    return 0;
}

struct grow_ent {
    uint32_t bucket;
    struct disc_bucket_ent e;
};

static int cmp_grow(const void *x, const void *y)
{
    const struct grow_ent *a = x, *b = y;
    return a->bucket < b->bucket ? -1 : a->bucket > b->bucket;
}

struct collect {
    struct grow_ent *v;
    uint32_t n;
    const struct sega *a;
};

/* Rebuild the table with twice the buckets; every old part is retired. */
static int grow(struct sega *a, struct wtab *t)
{
    const struct disc_htab *oh = tab_at(a, t->off);
    uint32_t nb = oh->nbuckets * 2, count = oh->count, old_off = t->off;
    if (nb / DISC_PAGE_BUCKETS > DISC_MAX_PAGES)
        return 0; /* at the size limit: keep the load factor higher */
    struct grow_ent *v = malloc((size_t)(count ? count : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    uint32_t n = 0;
    for (uint32_t pi = 0; pi < oh->npages; pi++) {
        if (!oh->pages[pi])
            continue;
        const struct disc_hpage *p = SEG_AT(a, struct disc_hpage, oh->pages[pi]);
        for (uint32_t bi = 0; bi < DISC_PAGE_BUCKETS; bi++) {
            if (!p->bucket[bi])
                continue;
            const struct disc_bucket *bk = SEG_AT(a, struct disc_bucket, p->bucket[bi]);
            for (uint32_t i = 0; i < bk->n && n < count; i++) {
                v[n].bucket = bk->e[i].hash & (nb - 1);
                v[n].e = bk->e[i];
                n++;
            }
        }
    }
    qsort(v, n, sizeof(*v), cmp_grow);

    struct wtab nt = {0};
    int rc = wtab_create(a, &nt, nb);
    if (rc < 0)
        goto out;
    struct disc_htab *nh = tab_at(a, nt.off);
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && v[j].bucket == v[i].bucket)
            j++;
        struct disc_hpage *p;
        if ((rc = cow_page(a, &nt, v[i].bucket / DISC_PAGE_BUCKETS, &p)) < 0)
            goto out;
        uint32_t boff = sega_alloc(a, bucket_bytes(j - i));
        if (!boff) {
            rc = -ENOSPC;
            goto out;
        }
        struct disc_bucket *bk = SEG_AT(a, struct disc_bucket, boff);
        bk->type = DISC_REC_BUCKET;
        bk->size = bucket_bytes(j - i);
        bk->n = j - i;
        for (uint32_t k = i; k < j; k++)
            bk->e[k - i] = v[k].e;
        bk->checksum = disc_checksum(bk, bk->size, offsetof(struct disc_bucket, checksum));
        p->bucket[v[i].bucket % DISC_PAGE_BUCKETS] = boff;
        i = j;
    }
    nh->count = n;

    /* Retire the old table; its parts were published unless fresh. */
    for (uint32_t pi = 0; pi < oh->npages; pi++) {
        if (!oh->pages[pi])
            continue;
        const struct disc_hpage *p = SEG_AT(a, struct disc_hpage, oh->pages[pi]);
        for (uint32_t bi = 0; bi < DISC_PAGE_BUCKETS; bi++)
            if (p->bucket[bi])
                sega_retire(a, p->bucket[bi],
                            bucket_bytes(SEG_AT(a, struct disc_bucket, p->bucket[bi])->n));
        sega_retire(a, oh->pages[pi], sizeof(struct disc_hpage));
    }
    sega_retire(a, old_off, tab_bytes(oh->npages));
    free(t->page_fresh);
    *t = nt;
    rc = 0;
out:
    if (rc < 0)
        wtab_destroy(&nt); /* arena blocks are returned by sega_commit_fail */
    free(v);
    return rc;
}

int wtab_set(struct sega *a, struct wtab *t, uint64_t seed, wtab_key_fn keyf, const char *key,
             uint32_t len, uint32_t rec_off)
{
    uint32_t h32 = (uint32_t)disc_hash(key, len, seed), b;
    const struct disc_bucket *bk = bucket_of(a, t, h32, &b);
    int i = find_in_bucket(a, bk, h32, keyf, key, len);
    struct disc_bucket_ent add = {h32, rec_off};
    int rc = rewrite_bucket(a, t, b, bk, i, add);
    if (rc < 0)
        return rc;
    if (i < 0) {
        struct disc_htab *h = tab_at(a, t->off); /* fresh after rewrite_bucket */
        h->count++;
        if (h->count > h->nbuckets)
            return grow(a, t);
    }
    return 0;
}

int wtab_del(struct sega *a, struct wtab *t, uint64_t seed, wtab_key_fn keyf, const char *key,
             uint32_t len)
{
    uint32_t h32 = (uint32_t)disc_hash(key, len, seed), b;
    const struct disc_bucket *bk = bucket_of(a, t, h32, &b);
    int i = find_in_bucket(a, bk, h32, keyf, key, len);
    if (i < 0)
        return -ENOENT;
    struct disc_bucket_ent none = {0, 0};
    int rc = rewrite_bucket(a, t, b, bk, i, none);
    if (rc < 0)
        return rc;
    tab_at(a, t->off)->count--;
    return 0;
}
