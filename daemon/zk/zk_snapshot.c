/* SPDX-License-Identifier: MIT */
/*
 * zk_snapshot.c — encode and check per-host aggregate snapshots (format in
 * zk_snapshot.h). CRC-32 is zlib's.
 */
#include "zk_snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char MAGIC[4] = {'D', 'Z', 'S', 'N'};

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

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

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* zlib's crc32 takes a uInt length: feed large buffers in pieces. */
static uint32_t crc_add(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uLong c = crc;
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

static int set_why(const char **why, const char *msg, int rc)
{
    if (why) {
        *why = msg;
    }
    return rc;
}

void zk_snap_chunks_free(struct zk_snap_chunks *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->count; i++) {
        free(c->data ? c->data[i] : NULL);
    }
    free(c->data);
    free(c->len);
    memset(c, 0, sizeof(*c));
}

int zk_snap_encode(const struct zk_snap_entry *e, size_t n, uint64_t gen, size_t chunk_max,
                   struct zk_snap_chunks *out)
{
    memset(out, 0, sizeof(*out));
    if (chunk_max <= ZK_SNAP_HDR_LEN || chunk_max > ZK_SNAP_CHUNK_MAX) {
        return -EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].name_len == 0 || e[i].name_len > ZK_SNAP_NAME_MAX || e[i].doc_len > UINT32_MAX) {
            return -EINVAL;
        }
        if (i > 0) {
            size_t m = e[i].name_len < e[i - 1].name_len ? e[i].name_len : e[i - 1].name_len;
            int c = memcmp(e[i - 1].name, e[i].name, m);
            if (c > 0 || (c == 0 && e[i - 1].name_len >= e[i].name_len)) {
                return -EINVAL; /* not strictly increasing */
            }
        }
        total += 2 + e[i].name_len + 4 + e[i].doc_len + 4;
    }
    size_t per = chunk_max - ZK_SNAP_HDR_LEN;
    size_t count = total == 0 ? 1 : (total + per - 1) / per;
    if (count > ZK_SNAP_MAX_CHUNKS) {
        return -E2BIG;
    }
    unsigned char *payload = malloc(total ? total : 1);
    if (!payload) {
        return -ENOMEM;
    }
    unsigned char *p = payload;
    for (size_t i = 0; i < n; i++) {
        put16(p, (uint16_t)e[i].name_len);
        memcpy(p + 2, e[i].name, e[i].name_len);
        p += 2 + e[i].name_len;
        put32(p, (uint32_t)e[i].doc_len);
        memcpy(p + 4, e[i].doc, e[i].doc_len);
        p += 4 + e[i].doc_len;
        uint32_t c = crc_add(0, e[i].name, e[i].name_len);
        put32(p, crc_add(c, e[i].doc, e[i].doc_len));
        p += 4;
    }
    uint32_t total_crc = crc_add(0, payload, total);
    out->data = calloc(count, sizeof(*out->data));
    out->len = calloc(count, sizeof(*out->len));
    if (!out->data || !out->len) {
        free(payload);
        zk_snap_chunks_free(out);
        return -ENOMEM;
    }
    out->count = count;
    for (size_t i = 0; i < count; i++) {
        size_t off = i * per;
        size_t len = total - off < per ? total - off : per;
        if (total == 0) {
            len = 0;
        }
        unsigned char *c = malloc(ZK_SNAP_HDR_LEN + len);
        if (!c) {
            free(payload);
            zk_snap_chunks_free(out);
            return -ENOMEM;
        }
        memcpy(c, MAGIC, 4);
        put16(c + 4, ZK_SNAP_VERSION);
        put16(c + 6, ZK_SNAP_HDR_LEN);
        put64(c + 8, gen);
        put32(c + 16, (uint32_t)i);
        put32(c + 20, (uint32_t)count);
        put64(c + 24, total);
        put32(c + 32, total_crc);
        put32(c + 36, (uint32_t)len);
        memcpy(c + ZK_SNAP_HDR_LEN, payload + off, len);
        uint32_t crc = crc_add(0, c, 40);
        put32(c + 40, crc_add(crc, c + ZK_SNAP_HDR_LEN, len));
        out->data[i] = (char *)c;
        out->len[i] = ZK_SNAP_HDR_LEN + len;
    }
    free(payload);
    return 0;
}

int zk_snap_parse_chunk(const void *buf, size_t len, struct zk_snap_hdr *h, const char **why)
{
    const unsigned char *c = buf;
    memset(h, 0, sizeof(*h));
    if (!buf || len < 8 || memcmp(c, MAGIC, 4) != 0) {
        return set_why(why, "not a snapshot chunk (magic)", -EINVAL);
    }
    h->version = get16(c + 4);
    if (h->version != ZK_SNAP_VERSION) {
        return set_why(why, "unknown snapshot format version", -ENOTSUP);
    }
    if (len < ZK_SNAP_HDR_LEN || get16(c + 6) != ZK_SNAP_HDR_LEN) {
        return set_why(why, "truncated chunk header", -EINVAL);
    }
    h->gen = get64(c + 8);
    h->index = get32(c + 16);
    h->count = get32(c + 20);
    h->total = get64(c + 24);
    h->total_crc = get32(c + 32);
    h->len = get32(c + 36);
    if (len > ZK_SNAP_CHUNK_MAX || (size_t)h->len != len - ZK_SNAP_HDR_LEN) {
        return set_why(why, "chunk length does not match its header", -EINVAL);
    }
    if (h->count == 0 || h->count > ZK_SNAP_MAX_CHUNKS || h->index >= h->count) {
        return set_why(why, "bad chunk index or count", -EINVAL);
    }
    if (h->total > (uint64_t)h->count * (ZK_SNAP_CHUNK_MAX - ZK_SNAP_HDR_LEN) ||
        h->len > h->total) {
        return set_why(why, "bad snapshot size", -EINVAL);
    }
    uint32_t crc = crc_add(0, c, 40);
    if (crc_add(crc, c + ZK_SNAP_HDR_LEN, h->len) != get32(c + 40)) {
        return set_why(why, "chunk checksum mismatch", -EINVAL);
    }
    return 0;
}

void zk_snap_free(struct zk_snap *s)
{
    if (s) {
        free(s->buf);
        free(s->e);
        memset(s, 0, sizeof(*s));
    }
}

static int name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = memcmp(a, b, m);
    return c != 0 ? c : al < bl ? -1 : al > bl ? 1 : 0;
}

int zk_snap_decode(const void *const *chunk, const size_t *lens, size_t count, struct zk_snap *out,
                   const char **why)
{
    memset(out, 0, sizeof(*out));
    if (count == 0 || count > ZK_SNAP_MAX_CHUNKS) {
        return set_why(why, "bad chunk count", -EINVAL);
    }
    struct zk_snap_hdr h0;
    for (size_t i = 0; i < count; i++) {
        struct zk_snap_hdr h;
        int rc = zk_snap_parse_chunk(chunk[i], lens[i], &h, why);
        if (rc != 0) {
            return rc;
        }
        if (i == 0) {
            h0 = h;
            if (h.count != count) {
                return set_why(why, "chunk count differs from the chunks read", -EINVAL);
            }
        } else if (h.gen != h0.gen || h.count != h0.count || h.total != h0.total ||
                   h.total_crc != h0.total_crc) {
            return set_why(why, "chunks of different generations", -EINVAL);
        }
        if (h.index != i) {
            return set_why(why, "chunk index out of place", -EINVAL);
        }
    }
    size_t sum = 0;
    for (size_t i = 0; i < count; i++) {
        sum += lens[i] - ZK_SNAP_HDR_LEN;
    }
    if (sum != h0.total) {
        return set_why(why, "chunks do not add up to the snapshot size", -EINVAL);
    }
    unsigned char *buf = malloc(sum ? sum : 1);
    if (!buf) {
        return set_why(why, "out of memory", -ENOMEM);
    }
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = lens[i] - ZK_SNAP_HDR_LEN;
        memcpy(buf + off, (const unsigned char *)chunk[i] + ZK_SNAP_HDR_LEN, n);
        off += n;
    }
    if (crc_add(0, buf, sum) != h0.total_crc) {
        free(buf);
        return set_why(why, "snapshot checksum mismatch", -EINVAL);
    }
    /* entries: each at least 10 bytes */
    size_t cap = sum / 10 + 1, n = 0;
    struct zk_snap_entry *e = malloc(cap * sizeof(*e));
    if (!e) {
        free(buf);
        return set_why(why, "out of memory", -ENOMEM);
    }
    size_t bad = 0;
    const char *prev = NULL;
    size_t prev_len = 0;
    off = 0;
    while (off < sum) {
        if (sum - off < 2) {
            goto malformed;
        }
        size_t nl = get16(buf + off);
        if (nl == 0 || nl > ZK_SNAP_NAME_MAX || sum - off - 2 < nl + 4) {
            goto malformed;
        }
        const char *name = (const char *)buf + off + 2;
        off += 2 + nl;
        size_t dl = get32(buf + off);
        if (sum - off - 4 < dl || sum - off - 4 - dl < 4) {
            goto malformed;
        }
        const char *doc = (const char *)buf + off + 4;
        off += 4 + dl;
        uint32_t crc = crc_add(crc_add(0, name, nl), doc, dl);
        uint32_t want = get32(buf + off);
        off += 4;
        if (prev && name_cmp(prev, prev_len, name, nl) >= 0) {
            goto malformed;
        }
        prev = name;
        prev_len = nl;
        if (crc != want) {
            bad++;
            continue;
        }
        e[n++] = (struct zk_snap_entry){.name = name, .name_len = nl, .doc = doc, .doc_len = dl};
    }
    out->buf = (char *)buf;
    out->len = sum;
    out->e = e;
    out->n = n;
    out->bad_entries = bad;
    out->gen = h0.gen;
    return 0;
malformed:
    free(buf);
    free(e);
    return set_why(why, "malformed snapshot entry", -EINVAL);
}

const struct zk_snap_entry *zk_snap_find(const struct zk_snap *s, const char *name)
{
    size_t nl = strlen(name), lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(s->e[mid].name, s->e[mid].name_len, name, nl);
        if (c == 0) {
            return &s->e[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}
