/* SPDX-License-Identifier: MIT */
/*
 * test_alloc.c — the writer's arena allocator and the shm layout helpers.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seg_internal.h"

#define ARENA (1u << 20)
static unsigned char *mem;
static struct sega a;

static void setup(void)
{
    mem = aligned_alloc(64, ARENA);
    cr_assert_not_null(mem);
    cr_assert_eq(sega_init(&a, mem, 4096, ARENA, true), 0);
}

static void teardown(void)
{
    sega_destroy(&a);
    free(mem);
}

TestSuite(alloc, .init = setup, .fini = teardown);

Test(alloc, blocks_are_aligned_and_disjoint)
{
    uint32_t off[200], sz[200];
    for (int i = 0; i < 200; i++) {
        sz[i] = 1 + (uint32_t)(i * 37) % 6000;
        off[i] = sega_alloc(&a, sz[i]);
        cr_assert_neq(off[i], 0);
        cr_assert_eq(off[i] % 8, 0);
        cr_assert_geq(off[i], 4096);
        cr_assert_leq(off[i] + sega_block_size(sz[i]), ARENA);
    }
    for (int i = 0; i < 200; i++)
        for (int j = i + 1; j < 200; j++) {
            uint32_t ei = off[i] + sega_block_size(sz[i]), ej = off[j] + sega_block_size(sz[j]);
            cr_assert(ei <= off[j] || ej <= off[i], "blocks %d and %d overlap", i, j);
        }
}

Test(alloc, block_sizes)
{
    cr_assert_eq(sega_block_size(1), 8);
    cr_assert_eq(sega_block_size(8), 8);
    cr_assert_eq(sega_block_size(9), 16);
    cr_assert_eq(sega_block_size(4096), 4096);
    cr_assert_eq(sega_block_size(4097), 8192);
    cr_assert_eq(sega_block_size(70000), 131072);
}

Test(alloc, retired_memory_waits_for_reclaim)
{
    uint32_t x = sega_alloc(&a, 100);
    sega_commit_begin(&a);
    cr_assert_eq(sega_retire(&a, x, 100), 0);
    sega_commit_ok(&a, 5, 0);
    cr_assert_eq(a.retired_bytes, 104);
    /* not reusable yet */
    for (int i = 0; i < 50; i++)
        cr_assert_neq(sega_alloc(&a, 100), x);
    cr_assert_eq(sega_reclaim(&a, 4), 0, "a batch tagged 5 survives reclaim up to 4");
    cr_assert_eq(sega_reclaim(&a, 5), 104);
    cr_assert_eq(a.retired_bytes, 0);
    cr_assert_eq(mem[x], 0xDB, "reclaimed memory is poisoned");
    cr_assert_eq(sega_alloc(&a, 100), x, "reclaimed block is reused");
}

/* Batches stay oldest first while reclaim takes them from the front and
 * commits add them at the back, through the array's growth and the
 * moves down of its live part (the front is an index, not a memmove per
 * reclaim): with a window of w batches live, after commit t the oldest is
 * t - w + 1, every one is there in order, and reclaiming all gives back
 * every retired byte exactly once. */
Test(alloc, batches_stay_in_order_as_reclaim_takes_the_front)
{
    static const uint32_t windows[] = {1, 3, 40, 63, 64, 65, 200};
    uint64_t tag = 0;
    for (unsigned wi = 0; wi < sizeof(windows) / sizeof(windows[0]); wi++) {
        uint32_t w = windows[wi];
        uint64_t first = tag + 1;
        for (uint32_t k = 0; k < 3 * w + 150; k++) {
            uint32_t x = sega_alloc(&a, 8 + 8 * (k % 5));
            cr_assert(x);
            sega_commit_begin(&a);
            cr_assert_eq(sega_retire(&a, x, 8 + 8 * (k % 5)), 0);
            tag++;
            sega_commit_ok(&a, tag, (int64_t)tag);
            if (tag >= first + w)
                cr_assert_eq(sega_reclaim(&a, tag - w), 8 + 8 * ((k - w) % 5),
                             "window %u: reclaim up to %lu takes exactly the oldest batch", w,
                             (unsigned long)(tag - w));
            uint32_t live = (uint32_t)(tag - first + 1 < w ? tag - first + 1 : w);
            cr_assert_eq(a.nbatches, live, "window %u after tag %lu", w, (unsigned long)tag);
            for (uint32_t i = 0; i < live; i++) {
                const struct sega_batch *b = sega_batch_at(&a, i);
                cr_assert_eq(b->tag, tag - live + 1 + i, "window %u: batch %u of %u", w, i, live);
                cr_assert_eq(b->retired_ns, (int64_t)b->tag);
                cr_assert_eq(b->n, 1);
            }
            cr_assert_leq(a.b0 + a.nbatches, a.capbatches);
        }
        uint64_t left = a.retired_bytes;
        cr_assert_eq(sega_reclaim(&a, tag), left);
        cr_assert_eq(a.nbatches, 0);
        cr_assert_eq(a.retired_bytes, 0);
    }
}

Test(alloc, failed_commit_gives_back_and_unretires)
{
    uint32_t live = sega_alloc(&a, 64);
    uint64_t used0 = sega_used(&a);
    sega_commit_begin(&a);
    uint32_t t1 = sega_alloc(&a, 64), t2 = sega_alloc(&a, 5000);
    cr_assert(t1 && t2);
    cr_assert_eq(sega_retire(&a, live, 64), 0);
    sega_commit_fail(&a);
    cr_assert_eq(a.retired_bytes, 0, "the retirement of a still-published block is undone");
    cr_assert_eq(sega_used(&a), used0, "allocations of the failed commit are free again");
    sega_commit_ok(&a, 9, 0);
    cr_assert_eq(a.nbatches, 0);
}

Test(alloc, exhaustion_then_split_reuse)
{
    uint32_t n = 0, big[256];
    while (n < 256 && (big[n] = sega_alloc(&a, 4096)))
        n++;
    cr_assert_lt(n, 256);
    cr_assert_eq(sega_alloc(&a, 4096), 0, "full arena returns 0");
    sega_free_now(&a, big[0], 4096);
    uint32_t s1 = sega_alloc(&a, 1000);
    cr_assert_eq(s1, big[0], "a larger free block is split when bump space is gone");
    uint32_t s2 = sega_alloc(&a, 1000);
    cr_assert_eq(s2, big[0] + 1000, "the remainder serves the next request");
}

Test(layout, hash_is_seeded_and_spreads)
{
    cr_assert_neq(disc_hash("svc", 3, 1), disc_hash("svc", 3, 2));
    cr_assert_eq(disc_hash("svc", 3, 7), disc_hash("svc", 3, 7));
    unsigned counts[64] = {0};
    char k[32];
    for (int i = 0; i < 64000; i++) {
        int n = snprintf(k, sizeof(k), "service-%d", i);
        counts[disc_hash(k, (size_t)n, 42) & 63]++;
    }
    for (int b = 0; b < 64; b++)
        cr_assert(counts[b] > 800 && counts[b] < 1200, "bucket %d has %u", b, counts[b]);
}

Test(layout, checksum_detects_a_flip)
{
    unsigned char rec[64];
    for (int i = 0; i < 64; i++)
        rec[i] = (unsigned char)i;
    uint32_t c = disc_checksum(rec, 64, 8);
    rec[8] ^= 0xff; /* inside the checksum field: ignored */
    cr_assert_eq(disc_checksum(rec, 64, 8), c);
    rec[20] ^= 1;
    cr_assert_neq(disc_checksum(rec, 64, 8), c);
}

/* The field-as-zero rule for every size up to 100 bytes and every field
 * position (aligned or not, across the 32-byte blocks and in the tail):
 * the checksum with the field anywhere in the record equals the checksum
 * of the record with those bytes zeroed and no field; and the same bytes
 * at any alignment give the same checksum. */
Test(layout, checksum_field_is_taken_as_zero_at_any_position)
{
    unsigned char buf[128 + 8], z[128];
    for (unsigned i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 37 + 11);
    for (uint32_t n = 0; n <= 100; n++) {
        for (unsigned shift = 1; shift < 8; shift++)
            cr_assert_eq(disc_checksum(buf + shift, n, 4),
                         disc_checksum(memmove(z, buf + shift, n), n, 4), "size %u, shift %u", n,
                         shift);
        for (uint32_t at = 0; at + 4 <= n; at++) {
            memcpy(z, buf, n);
            memset(z + at, 0, 4);
            uint32_t c = disc_checksum(buf, n, at);
            cr_assert_eq(c, disc_checksum(z, n, at), "size %u, field at %u", n, at);
            cr_assert_eq(c, disc_checksum(z, n, UINT32_MAX), "size %u, field at %u", n, at);
            cr_assert_eq(disc_checksum_fnv1a(buf, n, at), disc_checksum_fnv1a(z, n, n),
                         "fnv: size %u, field at %u", n, at);
        }
    }
}

/* What the word-wise checksum is trusted to catch (docs/DESIGN.md,
 * "Validation"): every 1-bit flip of records of many sizes, every 2-bit
 * flip of a 64-byte record, every truncation and extension with zeros,
 * and the swap of any two different words. */
Test(layout, checksum_catches_flips_truncations_and_swaps)
{
    static unsigned char rec[1100];
    for (unsigned i = 0; i < sizeof(rec); i++)
        rec[i] = (unsigned char)((i * 2654435761u) >> 13);
    const uint32_t sizes[] = {1, 7, 8, 9, 31, 32, 33, 48, 64, 72, 250, 1040, 1100 - 4};
    for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint32_t n = sizes[k], c = disc_checksum(rec, n, UINT32_MAX);
        for (uint32_t bit = 0; bit < 8 * n; bit++) {
            rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            cr_assert_neq(disc_checksum(rec, n, UINT32_MAX), c, "size %u, bit %u", n, bit);
            rec[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        for (uint32_t m = 0; m < n + 4; m++) /* shorter, or longer by zeros */
            if (m != n) {
                memset(rec + n, 0, 4);
                cr_assert_neq(disc_checksum(rec, m, UINT32_MAX), c, "size %u as %u", n, m);
            }
    }
    uint32_t c = disc_checksum(rec, 64, 8);
    for (uint32_t x = 0; x < 512; x++)
        for (uint32_t y = x + 1; y < 512; y++) {
            if ((x / 8 >= 8 && x / 8 < 12) || (y / 8 >= 8 && y / 8 < 12))
                continue; /* the field */
            rec[x / 8] ^= (unsigned char)(1u << (x % 8));
            rec[y / 8] ^= (unsigned char)(1u << (y % 8));
            cr_assert_neq(disc_checksum(rec, 64, 8), c, "bits %u and %u", x, y);
            rec[x / 8] ^= (unsigned char)(1u << (x % 8));
            rec[y / 8] ^= (unsigned char)(1u << (y % 8));
        }
    c = disc_checksum(rec, 1040, 8);
    for (uint32_t i = 16; i + 8 <= 1040; i += 8)
        for (uint32_t j = i + 8; j + 8 <= 1040; j += 8) {
            unsigned char wi[8], wj[8];
            memcpy(wi, rec + i, 8);
            memcpy(wj, rec + j, 8);
            if (!memcmp(wi, wj, 8))
                continue;
            memcpy(rec + i, wj, 8);
            memcpy(rec + j, wi, 8);
            cr_assert_neq(disc_checksum(rec, 1040, 8), c, "words at %u and %u swapped", i, j);
            memcpy(rec + i, wi, 8);
            memcpy(rec + j, wj, 8);
        }
}

/* The checksums are part of the on-memory format: segments and file-cache
 * images written by one build are verified by another. These values pin
 * both kinds, so a change to either function fails here first (a change
 * needs a new feature bit or ABI major, docs/DESIGN.md). */
Test(layout, checksum_values_are_the_format)
{
    unsigned char rec[100];
    for (int i = 0; i < 100; i++)
        rec[i] = (unsigned char)i;
    cr_expect_eq(disc_checksum(rec, 100, 8), 0xe242f1a2u, "word: %#x", disc_checksum(rec, 100, 8));
    cr_expect_eq(disc_checksum(rec, 0, 0), 0x03438e75u, "word, empty: %#x",
                 disc_checksum(rec, 0, 0));
    cr_expect_eq(disc_checksum_fnv1a(rec, 100, 8), 0x2696fda5u, "fnv: %#x",
                 disc_checksum_fnv1a(rec, 100, 8));
}

Test(layout, header_and_records)
{
    cr_assert_eq(offsetof(struct disc_hdr, root) % 64, 0);
    cr_assert_eq(offsetof(struct disc_hdr, change_seq) % 4, 0);
    cr_assert_eq(offsetof(struct disc_hdr, heartbeat_mono_ns) % 64, 0);
    cr_assert_eq(sizeof(struct disc_inst_rec) % 8, 0);
    cr_assert_eq(sizeof(struct disc_service_rec) % 8, 0);
    cr_assert_eq(sizeof(struct disc_snapshot) % 8, 0);
}

/* ---- wtab_replace_at: a slot remembered from a find, checked before use ---- */

/* A test record: its key's length, then the key and a NUL. */
static const char *tkey(const unsigned char *base, uint32_t off, uint32_t *len)
{
    memcpy(len, base + off, 4);
    return (const char *)base + off + 4;
}

static uint32_t trec(const char *key)
{
    uint32_t len = (uint32_t)strlen(key), off = sega_alloc(&a, 4 + len + 1);
    cr_assert(off);
    memcpy(mem + off, &len, 4);
    memcpy(mem + off + 4, key, len + 1);
    return off;
}

/* Three keys of one hash sit in one run (slots 5, 6, 7). A replace at the
 * slot a find gave works while the slot still holds that entry; once a
 * deletion shifted the run back (or for another record) it is refused
 * with -ESTALE and changes nothing, and wtab_set_h then does it. */
Test(alloc, replace_at_a_remembered_slot_only_while_it_holds_the_entry)
{
    struct wtab t = {0};
    cr_assert_eq(wtab_create(&a, &t, DISC_PAGE_SLOTS), 0);
    const char *k[3] = {"alpha", "beta", "gamma"};
    uint32_t off[3], slot[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(wtab_set_h(&a, &t, 5, tkey, k[i], (uint32_t)strlen(k[i]), off[i] = trec(k[i])),
                     0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(wtab_find_slot_h(&a, &t, 5, tkey, k[i], (uint32_t)strlen(k[i]), &slot[i]),
                     off[i]);
        cr_assert_eq(slot[i], 5u + (uint32_t)i);
    }
    uint32_t none;
    cr_assert_eq(wtab_find_slot_h(&a, &t, 5, tkey, "delta", 5, &none), 0);
    cr_assert_eq(none, UINT32_MAX);

    uint32_t b2 = trec("beta");
    cr_assert_eq(wtab_replace_at(&a, &t, slot[1], 5, off[2], b2), -ESTALE, "another record's slot");
    cr_assert_eq(wtab_replace_at(&a, &t, slot[1], 6, off[1], b2), -ESTALE, "another hash");
    cr_assert_eq(wtab_replace_at(&a, &t, slot[1], 5, off[1], b2), 0);
    cr_assert_eq(wtab_find_h(&a, &t, 5, tkey, "beta", 4), b2);

    /* deleting alpha shifts beta to 5 and gamma to 6: gamma's slot 7 is stale */
    cr_assert_eq(wtab_del_h(&a, &t, 5, tkey, "alpha", 5), 0);
    uint32_t g2 = trec("gamma");
    cr_assert_eq(wtab_replace_at(&a, &t, slot[2], 5, off[2], g2), -ESTALE);
    cr_assert_eq(wtab_find_h(&a, &t, 5, tkey, "gamma", 5), off[2],
                 "a refused replace changes nothing");
    cr_assert_eq(wtab_set_h(&a, &t, 5, tkey, "gamma", 5, g2), 0);
    cr_assert_eq(wtab_find_slot_h(&a, &t, 5, tkey, "gamma", 5, &slot[2]), g2);
    cr_assert_eq(slot[2], 6);
    cr_assert_eq(wtab_count(&a, &t), 2);
    wtab_destroy(&t);
}
