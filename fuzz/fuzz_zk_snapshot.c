/* SPDX-License-Identifier: MIT */
/*
 * fuzz_zk_snapshot.c — libFuzzer harness: the chunks of a ZooKeeper aggregate
 * snapshot (nodes under <root>/snap/<host>/, written by any ZooKeeper
 * client) through zk_snap_parse_chunk and zk_snap_decode, as zk_sync reads
 * them (daemon/zk/zk_snapshot.c).
 *
 * Input: byte 0 chooses the number of chunks (1 + (b & 3)) and, with bit 2
 * set, makes the harness fix each chunk's length fields and CRCs (and the
 * whole-snapshot size and CRC) before decoding, so that the fuzzer reaches
 * the entry parser instead of stopping at a checksum. The rest is cut into
 * that many chunks, each as long as its header's length field says (the
 * last one takes what is left), so real chunks written one after the other
 * (the seeds) come apart as they were. Every entry of a decoded snapshot must be found
 * again by zk_snap_find under its own name, and lie inside the decoded
 * buffer; anything else traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zk_snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t k = 1 + (data[0] & 3);
    int fix = data[0] & 4;
    data++;
    size--;
    unsigned char *chunk[4] = {0};
    size_t lens[4] = {0};
    uint64_t total = 0;
    size_t off = 0;
    for (size_t i = 0; i < k; i++) {
        size_t left = size - off, want = left;
        if (i + 1 < k && left >= ZK_SNAP_HDR_LEN) {
            const uint8_t *p = data + off + 36;
            size_t l = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
            if (l <= left - ZK_SNAP_HDR_LEN) {
                want = ZK_SNAP_HDR_LEN + l;
            }
        }
        lens[i] = want;
        chunk[i] = malloc(lens[i] ? lens[i] : 1);
        if (!chunk[i]) {
            abort();
        }
        memcpy(chunk[i], data + off, lens[i]);
        off += want;
        if (lens[i] >= ZK_SNAP_HDR_LEN) {
            total += lens[i] - ZK_SNAP_HDR_LEN;
        }
    }
    if (fix) {
        uLong tcrc = crc32(0, NULL, 0);
        for (size_t i = 0; i < k; i++) {
            if (lens[i] >= ZK_SNAP_HDR_LEN) {
                tcrc = crc32(tcrc, chunk[i] + ZK_SNAP_HDR_LEN, (uInt)(lens[i] - ZK_SNAP_HDR_LEN));
            }
        }
        for (size_t i = 0; i < k; i++) {
            if (lens[i] < ZK_SNAP_HDR_LEN) {
                continue;
            }
            put64(chunk[i] + 24, total);
            put32(chunk[i] + 32, (uint32_t)tcrc);
            put32(chunk[i] + 36, (uint32_t)(lens[i] - ZK_SNAP_HDR_LEN));
            uLong c = crc32(0, chunk[i], 40);
            c = crc32(c, chunk[i] + ZK_SNAP_HDR_LEN, (uInt)(lens[i] - ZK_SNAP_HDR_LEN));
            put32(chunk[i] + 40, (uint32_t)c);
        }
    }
    for (size_t i = 0; i < k; i++) {
        struct zk_snap_hdr h;
        (void)zk_snap_parse_chunk(chunk[i], lens[i], &h, NULL);
    }
    struct zk_snap s;
    const char *why = NULL;
    int rc = zk_snap_decode((const void *const *)chunk, lens, k, &s, &why);
    if (rc == 0) {
        for (size_t i = 0; i < s.n; i++) {
            const struct zk_snap_entry *e = &s.e[i];
            if (e->name < s.buf || e->doc < s.buf || e->name + e->name_len > s.buf + s.len ||
                e->doc + e->doc_len > s.buf + s.len || e->name_len == 0 ||
                e->name_len > ZK_SNAP_NAME_MAX) {
                __builtin_trap();
            }
            char name[ZK_SNAP_NAME_MAX + 1];
            memcpy(name, e->name, e->name_len);
            name[e->name_len] = '\0';
            /* a name with a NUL inside is looked up by its prefix: may miss */
            if (strlen(name) == e->name_len && zk_snap_find(&s, name) != e) {
                __builtin_trap();
            }
        }
        zk_snap_free(&s);
    } else if (!why) {
        __builtin_trap();
    }
    for (size_t i = 0; i < k; i++) {
        free(chunk[i]);
    }
    return 0;
}
