/* SPDX-License-Identifier: MIT */
/*
 * test_zk_snapshot.c — the aggregate snapshot format (daemon/zk/zk_snapshot.c):
 * round trips over one and many chunks, and every way a chunk read from
 * ZooKeeper can be wrong (a flipped byte anywhere, a chunk of another
 * generation, a missing or reordered chunk, a newer format version, an entry
 * whose CRC is wrong under valid chunk checksums) is refused or counted.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zk_snapshot.h"

struct docs {
    size_t n;
    char (*names)[64];
    char (*docs)[256];
    struct zk_snap_entry *e;
};

/* n entries "<uuid-like>-<i>" in increasing order, each with its own document. */
static void make_docs(struct docs *d, size_t n)
{
    d->n = n;
    d->names = calloc(n + 1, sizeof(*d->names));
    d->docs = calloc(n + 1, sizeof(*d->docs));
    d->e = calloc(n + 1, sizeof(*d->e));
    cr_assert(d->names && d->docs && d->e);
    for (size_t i = 0; i < n; i++) {
        snprintf(d->names[i], sizeof(d->names[i]), "%08zx-0000-4000-8000-000000000000-%zu", i,
                 1000 + i);
        snprintf(d->docs[i], sizeof(d->docs[i]),
                 "{\"id\":\"%08zx-0000-4000-8000-000000000000\",\"service\":\"s%zu\"}", i, i % 7);
        d->e[i] = (struct zk_snap_entry){d->names[i], strlen(d->names[i]), d->docs[i],
                                         strlen(d->docs[i])};
    }
}

static void free_docs(struct docs *d)
{
    free(d->names);
    free(d->docs);
    free(d->e);
}

/* n documents (make_docs) encoded as generation gen in chunks of at most
 * chunk bytes. */
static void encode_docs(struct docs *d, size_t n, uint64_t gen, size_t chunk,
                        struct zk_snap_chunks *c)
{
    make_docs(d, n);
    cr_assert_eq(zk_snap_encode(d->e, d->n, gen, chunk, c), 0);
}

static void free_encoded(struct docs *d, struct zk_snap_chunks *c)
{
    zk_snap_chunks_free(c);
    free_docs(d);
}

static int decode(struct zk_snap_chunks *c, struct zk_snap *s)
{
    const char *why = NULL;
    int rc = zk_snap_decode((const void *const *)c->data, c->len, c->count, s, &why);
    if (rc != 0) {
        cr_assert(why != NULL, "an error without a reason");
    }
    return rc;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

/* Recompute the whole-snapshot CRC and every chunk CRC (what a forger who
 * knows the format would do). */
static void refresh_crcs(struct zk_snap_chunks *c)
{
    uLong total = crc32(0, NULL, 0);
    for (size_t i = 0; i < c->count; i++) {
        total = crc32(total, (unsigned char *)c->data[i] + ZK_SNAP_HDR_LEN,
                      (uInt)(c->len[i] - ZK_SNAP_HDR_LEN));
    }
    for (size_t i = 0; i < c->count; i++) {
        unsigned char *p = (unsigned char *)c->data[i];
        put32(p + 32, (uint32_t)total);
        uLong k = crc32(0, p, 40);
        k = crc32(k, p + ZK_SNAP_HDR_LEN, (uInt)(c->len[i] - ZK_SNAP_HDR_LEN));
        put32(p + 40, (uint32_t)k);
    }
}

Test(zk_snapshot, round_trip_many_chunks)
{
    struct docs d;
    struct zk_snap_chunks c;
    encode_docs(&d, 1000, 42, 4096, &c);
    cr_assert_gt(c.count, 10, "1000 documents should take many 4 KiB chunks, got %zu", c.count);
    for (size_t i = 0; i < c.count; i++) {
        cr_assert_leq(c.len[i], 4096);
    }
    struct zk_snap s;
    cr_assert_eq(decode(&c, &s), 0);
    cr_assert_eq(s.n, d.n);
    cr_assert_eq(s.gen, 42);
    cr_assert_eq(s.bad_entries, 0);
    for (size_t i = 0; i < d.n; i++) {
        const struct zk_snap_entry *e = zk_snap_find(&s, d.names[i]);
        cr_assert(e, "%s not found", d.names[i]);
        cr_assert_eq(e->doc_len, strlen(d.docs[i]));
        cr_assert_eq(memcmp(e->doc, d.docs[i], e->doc_len), 0);
    }
    cr_assert_null(zk_snap_find(&s, "00000000-0000-4000-8000-000000000000-1"));
    cr_assert_null(zk_snap_find(&s, "zzz"));
    zk_snap_free(&s);
    free_encoded(&d, &c);
}

Test(zk_snapshot, one_chunk_and_empty)
{
    struct docs d;
    struct zk_snap_chunks c;
    encode_docs(&d, 3, 1, ZK_SNAP_CHUNK_MAX, &c);
    cr_assert_eq(c.count, 1);
    struct zk_snap s;
    cr_assert_eq(decode(&c, &s), 0);
    cr_assert_eq(s.n, 3);
    zk_snap_free(&s);
    zk_snap_chunks_free(&c);

    cr_assert_eq(zk_snap_encode(NULL, 0, 7, ZK_SNAP_CHUNK_MAX, &c), 0);
    cr_assert_eq(c.count, 1);
    cr_assert_eq(c.len[0], ZK_SNAP_HDR_LEN);
    cr_assert_eq(decode(&c, &s), 0);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(s.gen, 7);
    zk_snap_free(&s);
    free_encoded(&d, &c);
}

Test(zk_snapshot, encode_refuses_bad_input)
{
    struct docs d;
    make_docs(&d, 3);
    struct zk_snap_chunks c;
    cr_assert_eq(zk_snap_encode(d.e, d.n, 1, ZK_SNAP_HDR_LEN, &c), -EINVAL);
    cr_assert_eq(zk_snap_encode(d.e, d.n, 1, ZK_SNAP_CHUNK_MAX + 1, &c), -EINVAL);
    struct zk_snap_entry swapped[2] = {d.e[1], d.e[0]};
    cr_assert_eq(zk_snap_encode(swapped, 2, 1, 4096, &c), -EINVAL, "unsorted accepted");
    struct zk_snap_entry dup[2] = {d.e[0], d.e[0]};
    cr_assert_eq(zk_snap_encode(dup, 2, 1, 4096, &c), -EINVAL, "duplicate name accepted");
    struct zk_snap_entry empty = {"", 0, "{}", 2};
    cr_assert_eq(zk_snap_encode(&empty, 1, 1, 4096, &c), -EINVAL);
    free_docs(&d);
    /* more than ZK_SNAP_MAX_CHUNKS chunks (one payload byte per chunk) */
    make_docs(&d, 40);
    cr_assert_eq(zk_snap_encode(d.e, d.n, 1, ZK_SNAP_HDR_LEN + 1, &c), -E2BIG);
    free_docs(&d);
}

Test(zk_snapshot, every_flipped_byte_is_refused)
{
    struct docs d;
    struct zk_snap_chunks c;
    encode_docs(&d, 40, 9, 1024, &c);
    cr_assert_gt(c.count, 2);
    for (size_t k = 0; k < c.count; k++) {
        for (size_t i = 0; i < c.len[k]; i++) {
            c.data[k][i] ^= 0x21;
            struct zk_snap s;
            int rc = decode(&c, &s);
            cr_assert(rc == -EINVAL || rc == -ENOTSUP,
                      "chunk %zu byte %zu flipped: decode returned %d", k, i, rc);
            c.data[k][i] ^= 0x21;
        }
    }
    struct zk_snap s;
    cr_assert_eq(decode(&c, &s), 0, "restored chunks must decode again");
    zk_snap_free(&s);
    free_encoded(&d, &c);
}

Test(zk_snapshot, chunks_must_belong_together)
{
    struct docs d;
    make_docs(&d, 60);
    struct zk_snap_chunks a, b;
    cr_assert_eq(zk_snap_encode(d.e, d.n, 1, 1024, &a), 0);
    cr_assert_eq(zk_snap_encode(d.e, d.n, 2, 1024, &b), 0);
    cr_assert_eq(a.count, b.count);
    cr_assert_gt(a.count, 2);
    struct zk_snap s;
    /* a chunk of the next generation mixed in (a rewrite seen half-way) */
    char *t = a.data[1];
    a.data[1] = b.data[1];
    cr_assert_eq(decode(&a, &s), -EINVAL);
    a.data[1] = t;
    /* a missing chunk (a partial snapshot) */
    a.count--;
    cr_assert_eq(decode(&a, &s), -EINVAL);
    a.count++;
    /* reordered chunks */
    size_t tl = a.len[0];
    t = a.data[0];
    a.data[0] = a.data[1];
    a.len[0] = a.len[1];
    a.data[1] = t;
    a.len[1] = tl;
    cr_assert_eq(decode(&a, &s), -EINVAL);
    zk_snap_chunks_free(&a);
    zk_snap_chunks_free(&b);
    free_docs(&d);
}

Test(zk_snapshot, newer_version_is_not_supported)
{
    struct docs d;
    struct zk_snap_chunks c;
    encode_docs(&d, 2, 1, 4096, &c);
    c.data[0][4] = 2; /* format version 2 */
    struct zk_snap_hdr h;
    const char *why = NULL;
    cr_assert_eq(zk_snap_parse_chunk(c.data[0], c.len[0], &h, &why), -ENOTSUP);
    cr_assert(why && strstr(why, "version"), "reason: %s", why ? why : "(none)");
    struct zk_snap s;
    cr_assert_eq(decode(&c, &s), -ENOTSUP);
    free_encoded(&d, &c);
}

Test(zk_snapshot, forged_entry_under_valid_checksums_is_dropped)
{
    struct docs d;
    struct zk_snap_chunks c;
    encode_docs(&d, 5, 3, 4096, &c);
    /* change the third document's bytes in place, fix the chunk and whole CRCs
     * but not the entry's own CRC */
    char *at = memmem(c.data[0], c.len[0], d.docs[2], strlen(d.docs[2]));
    cr_assert(at);
    at[strlen(d.docs[2]) - 3] = 'X';
    refresh_crcs(&c);
    struct zk_snap s;
    cr_assert_eq(decode(&c, &s), 0);
    cr_assert_eq(s.bad_entries, 1);
    cr_assert_eq(s.n, 4);
    cr_assert_null(zk_snap_find(&s, d.names[2]), "forged entry served");
    cr_assert_not_null(zk_snap_find(&s, d.names[3]));
    zk_snap_free(&s);
    free_encoded(&d, &c);
}

Test(zk_snapshot, malformed_payload_under_valid_checksums)
{
    struct docs d;
    struct zk_snap_chunks c;
    encode_docs(&d, 3, 3, 4096, &c);
    /* a document length that runs past the end */
    unsigned char *p = (unsigned char *)c.data[0] + ZK_SNAP_HDR_LEN;
    size_t nl = p[0] | (p[1] << 8);
    put32(p + 2 + nl, 0x7fffffff);
    refresh_crcs(&c);
    struct zk_snap s;
    cr_assert_eq(decode(&c, &s), -EINVAL);
    zk_snap_chunks_free(&c);

    /* entries out of order */
    cr_assert_eq(zk_snap_encode(d.e, d.n, 3, 4096, &c), 0);
    p = (unsigned char *)c.data[0] + ZK_SNAP_HDR_LEN;
    p[2] = 'f'; /* first name now sorts after the second */
    p[3] = 'f';
    refresh_crcs(&c);
    cr_assert_eq(decode(&c, &s), -EINVAL);
    free_encoded(&d, &c);
}
