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

Test(layout, header_and_records)
{
    cr_assert_eq(offsetof(struct disc_hdr, root) % 64, 0);
    cr_assert_eq(offsetof(struct disc_hdr, change_seq) % 4, 0);
    cr_assert_eq(offsetof(struct disc_hdr, heartbeat_mono_ns) % 64, 0);
    cr_assert_eq(sizeof(struct disc_inst_rec) % 8, 0);
    cr_assert_eq(sizeof(struct disc_service_rec) % 8, 0);
    cr_assert_eq(sizeof(struct disc_snapshot) % 8, 0);
}
