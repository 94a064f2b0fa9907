/* SPDX-License-Identifier: MIT */
/*
 * zk_snapshot.h — the per-host aggregate snapshot of instance documents
 * (docs/ZOOKEEPER.md, "Aggregate snapshots"): encode a host's documents into
 * chunks that each fit one ZooKeeper node, and check and decode chunks read
 * back. Pure code, no ZooKeeper calls; the bytes decoded here come from other
 * ZooKeeper clients and are untrusted (fuzz/fuzz_zk_snapshot.c).
 *
 * Chunk node data (integers little-endian):
 *   0  4  magic "DZSN"
 *   4  2  format version (ZK_SNAP_VERSION)
 *   6  2  header length (ZK_SNAP_HDR_LEN)
 *   8  8  generation (the writer's counter; every chunk of one snapshot has it)
 *  16  4  chunk index
 *  20  4  chunk count
 *  24  8  payload bytes of the whole snapshot (all chunks)
 *  32  4  CRC-32 of the whole payload (all chunks' payloads concatenated)
 *  36  4  payload bytes in this chunk
 *  40  4  CRC-32 of bytes 0..40 and this chunk's payload
 *  44  .. payload bytes
 * The payload (chunks concatenated in index order) is a sequence of entries,
 * strictly increasing by name:
 *   u16 name length, name (the instance node's name "<uuid>-<seq>"),
 *   u32 document length, document (the node's data), u32 CRC-32 of name+document.
 *
 * Functions return 0 or a negative errno value; `why` (if not NULL) gets a
 * static string naming what was wrong.
 */
#ifndef DISC_ZK_SNAPSHOT_H
#define DISC_ZK_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define ZK_SNAP_VERSION    1
#define ZK_SNAP_HDR_LEN    44
#define ZK_SNAP_CHUNK_MAX  (512 * 1024) /* whole node data, well under jute.maxbuffer */
#define ZK_SNAP_MAX_CHUNKS 1024         /* up to 512 MiB per host */
#define ZK_SNAP_NAME_MAX   255

/* One document: the instance node's name and data. */
struct zk_snap_entry {
    const char *name;
    size_t name_len;
    const char *doc;
    size_t doc_len;
};

/* A chunk's header, as read by zk_snap_parse_chunk. */
struct zk_snap_hdr {
    uint16_t version;
    uint64_t gen;
    uint32_t index, count;
    uint64_t total;     /* payload bytes of the whole snapshot */
    uint32_t total_crc; /* CRC-32 of the whole payload */
    uint32_t len;       /* payload bytes in this chunk */
};

/* An encoded snapshot: chunk i is data[i][0..len[i]). */
struct zk_snap_chunks {
    size_t count;
    char **data;
    size_t *len;
};

/* A decoded snapshot: entries point into buf, sorted by name. */
struct zk_snap {
    char *buf;
    size_t len;
    struct zk_snap_entry *e;
    size_t n;
    size_t bad_entries; /* entries dropped for a wrong CRC */
    uint64_t gen;
};

/*
 * Encode entries e[0..n) (names strictly increasing, each 1..ZK_SNAP_NAME_MAX
 * bytes) as generation gen in chunks of at most chunk_max bytes
 * (ZK_SNAP_HDR_LEN + 1 .. ZK_SNAP_CHUNK_MAX). No entries: one empty chunk.
 * -EINVAL (unsorted, bad name, bad chunk_max), -E2BIG (more than
 * ZK_SNAP_MAX_CHUNKS chunks), -ENOMEM. Free *out with zk_snap_chunks_free.
 */
int zk_snap_encode(const struct zk_snap_entry *e, size_t n, uint64_t gen, size_t chunk_max,
                   struct zk_snap_chunks *out);

/* Free what zk_snap_encode allocated (and zero *c). NULL-safe. */
void zk_snap_chunks_free(struct zk_snap_chunks *c);

/*
 * Check one chunk's bytes: magic, version, header length, sizes and its CRC.
 * Fills *h. -EINVAL (malformed or CRC mismatch), -ENOTSUP (another format
 * version: a newer writer; the caller falls back to per-instance reads).
 */
int zk_snap_parse_chunk(const void *buf, size_t len, struct zk_snap_hdr *h, const char **why);

/*
 * Check and decode a whole snapshot from its chunks (chunk[i] of lens[i]
 * bytes, i = 0..count): every chunk valid, same generation, count, total and
 * total CRC, index i at position i, payloads adding up to the total, the
 * whole CRC, and well-formed entries in strictly increasing name order.
 * Entries whose own CRC is wrong are left out and counted in bad_entries.
 * Free *out with zk_snap_free. -EINVAL, -ENOTSUP, -ENOMEM.
 */
int zk_snap_decode(const void *const *chunk, const size_t *lens, size_t count, struct zk_snap *out,
                   const char **why);

/* The entry named name (NUL-terminated), or NULL. */
const struct zk_snap_entry *zk_snap_find(const struct zk_snap *s, const char *name);

/* Free a decoded snapshot (and zero *s). NULL-safe. */
void zk_snap_free(struct zk_snap *s);

#endif /* DISC_ZK_SNAPSHOT_H */
