/* SPDX-License-Identifier: MIT */
/*
 * seg_alloc.c — the writer-private arena allocator.
 *
 * All metadata lives in the writer's heap; the arena holds only records.
 * Blocks that readers may still see are never put on a free list directly:
 * they are retired into the batch of the commit in progress, and the batch
 * is reclaimed (seg_writer.c decides when) after its grace period.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "seg_internal.h"

#define POISON_BYTE 0xDB

static int vec_push(struct sega_vec *v, uint32_t x)
{
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 16;
        uint32_t *nv = realloc(v->v, (size_t)cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

static int blocks_push(struct sega_block **arr, uint32_t *n, uint32_t *cap, uint32_t off,
                       uint32_t size)
{
    if (*n == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 64;
        struct sega_block *na = realloc(*arr, (size_t)nc * sizeof(*na));
        if (!na)
            return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[*n].off = off;
    (*arr)[*n].size = size;
    (*n)++;
    return 0;
}

static unsigned log2_ceil(uint32_t x)
{
    unsigned l = 0;
    while ((1u << l) < x)
        l++;
    return l;
}

uint32_t sega_block_size(uint32_t size)
{
    uint32_t s = disc_align_up(size ? size : DISC_ALIGN);
    if (s <= SEGA_SMALL_MAX)
        return s;
    return 1u << log2_ceil(s);
}

int sega_init(struct sega *a, unsigned char *base, uint32_t arena_off, uint32_t arena_end,
              bool poison)
{
    memset(a, 0, sizeof(*a));
    a->base = base;
    a->arena_off = disc_align_up(arena_off);
    a->arena_end = arena_end & ~(DISC_ALIGN - 1);
    a->top = a->arena_off;
    a->poison = poison;
    return a->arena_off < a->arena_end ? 0 : -EINVAL;
}

void sega_destroy(struct sega *a)
{
    for (unsigned i = 0; i < SEGA_NSMALL; i++)
        free(a->small[i].v);
    for (unsigned i = 0; i < SEGA_NLARGE; i++)
        free(a->large[i].v);
    for (uint32_t i = 0; i < a->nbatches; i++)
        free(a->batches[a->b0 + i].blocks);
    free(a->batches);
    free(a->open.blocks);
    free(a->log);
    memset(a, 0, sizeof(*a));
}

/* Put a free block of exactly `size` (a valid block size or a small
 * remainder) on its list. */
static void put_free(struct sega *a, uint32_t off, uint32_t size)
{
    struct sega_vec *v =
        size <= SEGA_SMALL_MAX ? &a->small[size / DISC_ALIGN] : &a->large[log2_ceil(size)];
    if (vec_push(v, off) == 0)
        a->free_bytes += size;
    /* On ENOMEM the block is lost to this writer's lifetime: it stays
     * unreferenced arena space, which is safe. */
}

/* Split a free block [off, off+have) into the requested `want` bytes and
 * free remainders. */
static uint32_t take_split(struct sega *a, uint32_t off, uint32_t have, uint32_t want)
{
    uint32_t rest = have - want, at = off + want;
    while (rest > 0) {
        uint32_t piece;
        if (rest <= SEGA_SMALL_MAX)
            piece = rest;
        else
            piece = 1u << (31 - __builtin_clz(rest)); /* largest power of two <= rest */
        put_free(a, at, piece);
        at += piece;
        rest -= piece;
    }
    return off;
}

static uint32_t pop(struct sega *a, struct sega_vec *v, uint32_t size)
{
    uint32_t off = v->v[--v->n];
    a->free_bytes -= size;
    return off;
}

uint32_t sega_alloc(struct sega *a, uint32_t size)
{
    if (size == 0 || size > (1u << 30))
        return 0;
    uint32_t bs = sega_block_size(size), off = 0;
    if (bs <= SEGA_SMALL_MAX) {
        struct sega_vec *v = &a->small[bs / DISC_ALIGN];
        if (v->n)
            off = pop(a, v, bs);
    } else {
        struct sega_vec *v = &a->large[log2_ceil(bs)];
        if (v->n)
            off = pop(a, v, bs);
    }
    if (!off && (uint64_t)a->top + bs <= a->arena_end) {
        off = a->top;
        a->top += bs;
    }
    if (!off) {
        /* Bump space is gone: split a larger free block (first fit by class). */
        if (bs <= SEGA_SMALL_MAX) {
            for (uint32_t c = bs / DISC_ALIGN + 1; c < SEGA_NSMALL && !off; c++)
                if (a->small[c].n)
                    off = take_split(a, pop(a, &a->small[c], c * DISC_ALIGN), c * DISC_ALIGN, bs);
        }
        for (unsigned l = log2_ceil(bs > SEGA_SMALL_MAX ? bs : SEGA_SMALL_MAX + 1);
             l < SEGA_NLARGE && !off; l++)
            if (a->large[l].n)
                off = take_split(a, pop(a, &a->large[l], 1u << l), 1u << l, bs);
    }
    if (off && a->logging && blocks_push(&a->log, &a->nlog, &a->caplog, off, bs) < 0) {
        put_free(a, off, bs);
        return 0;
    }
    return off;
}

void sega_free_now(struct sega *a, uint32_t off, uint32_t size)
{
    uint32_t bs = sega_block_size(size);
    if (a->poison)
        memset(a->base + off, POISON_BYTE, bs);
    put_free(a, off, bs);
}

int sega_retire(struct sega *a, uint32_t off, uint32_t size)
{
    uint32_t bs = sega_block_size(size);
    int rc = blocks_push(&a->open.blocks, &a->open.n, &a->open.cap, off, bs);
    if (rc == 0) {
        a->open.bytes += bs;
        a->retired_bytes += bs;
    }
    return rc;
}

void sega_commit_begin(struct sega *a)
{
    a->nlog = 0;
    a->logging = true;
    a->open_mark = a->open.n;
    a->open_mark_bytes = a->open.bytes;
}

void sega_commit_ok(struct sega *a, uint64_t tag, int64_t now_ns)
{
    a->logging = false;
    a->nlog = 0;
    if (a->open.n == 0)
        return;
    if (a->b0 + a->nbatches == a->capbatches) {
        if (a->b0 > 0 && a->b0 >= a->capbatches / 2) {
            /* The reclaimed front is at least half the array: move the live
             * batches down (each move follows >= cap/2 appends). */
            memmove(a->batches, a->batches + a->b0, (size_t)a->nbatches * sizeof(*a->batches));
            a->b0 = 0;
        } else {
            uint32_t nc = a->capbatches ? a->capbatches * 2 : 64;
            struct sega_batch *nb = realloc(a->batches, (size_t)nc * sizeof(*nb));
            if (!nb) {
                /* Keep the blocks in the open batch; they join the next one. */
                return;
            }
            a->batches = nb;
            a->capbatches = nc;
        }
    }
    a->open.tag = tag;
    a->open.retired_ns = now_ns;
    a->batches[a->b0 + a->nbatches++] = a->open;
    memset(&a->open, 0, sizeof(a->open));
}

void sega_commit_fail(struct sega *a)
{
    a->logging = false;
    for (uint32_t i = 0; i < a->nlog; i++)
        sega_free_now(a, a->log[i].off, a->log[i].size);
    a->nlog = 0;
    /* What this commit retired is still published: un-retire it. */
    a->retired_bytes -= a->open.bytes - a->open_mark_bytes;
    a->open.n = a->open_mark;
    a->open.bytes = a->open_mark_bytes;
}

uint64_t sega_reclaim(struct sega *a, uint64_t upto)
{
    uint64_t bytes = 0;
    uint32_t done = 0;
    while (done < a->nbatches && a->batches[a->b0 + done].tag <= upto) {
        struct sega_batch *b = &a->batches[a->b0 + done];
        for (uint32_t i = 0; i < b->n; i++) {
            if (a->poison)
                memset(a->base + b->blocks[i].off, POISON_BYTE, b->blocks[i].size);
            put_free(a, b->blocks[i].off, b->blocks[i].size);
        }
        bytes += b->bytes;
        free(b->blocks);
        done++;
    }
    if (done) {
        a->nbatches -= done;
        a->b0 = a->nbatches ? a->b0 + done : 0;
        a->retired_bytes -= bytes;
    }
    return bytes;
}

uint64_t sega_used(const struct sega *a)
{
    return (uint64_t)(a->top - a->arena_off) - a->free_bytes;
}
