/* SPDX-License-Identifier: MIT */
/*
 * layout.h — the on-memory format of a discshm segment (internal).
 *
 * Shared by the reader library and the writer (discd's publisher). Every
 * structure uses fixed-width types and explicit padding so that 32- and
 * 64-bit processes agree; every reference is a 32-bit offset from the start
 * of the data object (0 = none). Nothing here is a pointer.
 *
 * Objects per registry name N, in the registry directory D (a directory
 * only the writer's uid can write, see regdir.h; default /run/discshm for
 * root, $XDG_RUNTIME_DIR/discshm otherwise):
 *   D/N        data: header + arena. Mode 0644, fully allocated
 *              (posix_fallocate) before it is renamed into place; only the
 *              writer maps it writable, readers map it PROT_READ.
 *   D/N.lock   mode 0600: an OFD lock held by the one live writer.
 * Readers write nothing shared: there is no reader-slot object (ABI 2).
 *
 * See docs/DESIGN.md for the protocol; the short version:
 *   writer publish: write records -> store root (release) -> store gen
 *                   (release) -> bump change_seq + FUTEX_WAKE.
 *   reader begin:   a = load gen (acquire); root = load root (acquire).
 *   reader end:     acquire fence; valid iff a >= reclaimed_upto.
 *   writer reuse:   memory retired by publish t is reused once it was
 *                   retired at least T ago (--reclaim-after), or earlier
 *                   when retired bytes exceed the budget; either way
 *                   reclaimed_upto is raised to t and fenced before any
 *                   byte is reused, so a section that could have seen the
 *                   reuse fails its end check and is retried.
 */
#ifndef DISCSHM_LAYOUT_H
#define DISCSHM_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DISC_MAGIC       0x31305348534944ULL   /* "DISHS01\0" little-endian */
#define DISC_IMAGE_MAGIC 0x31304d4948534944ULL /* "DISHIM01": a file-cache image */
#define DISC_ABI_MAJOR                                                                             \
    3 /* 2: no reader slots; objects in a registry directory;                                      \
         3: open-addressed tables (no buckets), tables shrink */
#define DISC_ABI_MINOR   0
#define DISC_HEADER_SIZE 4096u
#define DISC_ALIGN       8u /* every record starts 8-byte aligned */

/* Limits that bound every loop a reader runs over shared memory. */
#define DISC_PAGE_SLOTS 128u    /* slots per table page (1 KiB of slots) */
#define DISC_MAX_PAGES  131072u /* => at most 16M slots */
#define DISC_PROBE_MAX                                                                             \
    1024u                          /* an entry sits fewer than this many slots                     \
                                      after its home slot (writer-enforced) */
#define DISC_SVC_INST_MAX 1000000u /* instances in one service */
#define DISC_REC_MAX      65535u   /* instance record bytes */

enum disc_seg_status {
    DISC_SEG_ALIVE = 1,
    DISC_SEG_RECYCLED = 2, /* replaced: successor_id names the new segment */
    DISC_SEG_GONE = 3,     /* the writer removed the objects and stopped */
};

/* Header feature bits. */
#define DISC_FEAT_CHECKSUMS 0x1ull /* records carry a checksum */
#define DISC_FEAT_CHECKSUM_WORD                                                                    \
    0x2ull /* the checksums (records and a file-cache image's) are disc_checksum;                  \
              without this bit they are disc_checksum_fnv1a (discd before it) */

/* Record type tags (first word of every record) so a stray offset that
 * lands on the wrong kind of record is caught. */
enum disc_rec_type {
    DISC_REC_SNAPSHOT = 0x534e4150u, /* "SNAP" */
    DISC_REC_HTAB = 0x48544142u,     /* "HTAB" */
    DISC_REC_HPAGE = 0x48504147u,    /* "HPAG" */
    DISC_REC_SERVICE = 0x53564320u,  /* "SVC " */
    DISC_REC_INSTANCE = 0x494e5354u, /* "INST" */
};

/* The header: first DISC_HEADER_SIZE bytes of the data object. Fields the
 * writer changes after creation are atomics; the rest is written once
 * before the object is renamed into place. */
struct disc_hdr {
    uint64_t magic;
    uint16_t abi_major;
    uint16_t abi_minor;
    uint32_t header_size;
    uint64_t features;
    uint64_t segment_size;     /* bytes of the data object (== st_size) */
    uint64_t segment_id;       /* random, never 0 */
    uint64_t hash_seed;        /* random per segment */
    uint32_t arena_off;        /* first arena byte */
    uint32_t arena_end;        /* one past the last usable arena byte; the
                                  bytes from arena_end to segment_size are
                                  never written, so they stay zero and any
                                  string scan inside the mapping terminates */
    uint32_t reclaim_after_ms; /* informational: the writer's T (sections
                                  longer than this may have to retry) */
    uint32_t writer_pid;

    /* --- line 1: what readers load on every read ------------------------ */
    alignas(64) _Atomic uint64_t root; /* gen(low 32 bits) << 32 | snapshot offset */
    _Atomic uint64_t gen;              /* generation of the newest snapshot */
    _Atomic uint64_t reclaimed_upto;   /* memory retired by publishes <= this
                                          may have been reused */
    _Atomic uint64_t early_upto;       /* informational: highest generation
                                          reclaimed before T (budget) */
    _Atomic uint32_t status;           /* enum disc_seg_status */
    _Atomic uint32_t change_seq;       /* futex word: bumped on every publish */
    uint8_t pad1_[64 - 8 * 4 - 4 * 2];

    /* --- line 2: writer liveness and registry state ----------------------- */
    alignas(64) _Atomic int64_t heartbeat_mono_ns; /* CLOCK_MONOTONIC */
    _Atomic uint32_t state_flags;                  /* DISC_ST_* bits the writer owns */
    _Atomic uint32_t degraded_reason;              /* enum disc_degraded_reason */
    _Atomic int64_t degraded_since_ms;
    _Atomic int64_t last_sync_ms;
    _Atomic uint64_t used_bytes;
    _Atomic uint64_t overtakes;
    _Atomic uint32_t held_changes;
    uint32_t pad2_;
    _Atomic uint64_t successor_id; /* segment_id of the replacement, once RECYCLED */
    int64_t created_ms;            /* CLOCK_REALTIME */
    /* File-cache images only (see segw_export): 0 in live segments. */
    uint64_t image_bytes;    /* file size */
    uint32_t image_checksum; /* disc_checksum over the file, this field as 0 */
    uint32_t image_pad_;
    /* Writer liveness (0 from writers that predate them). */
    _Atomic int64_t stopped_ms; /* CLOCK_REALTIME of a clean shutdown; 0 while running */
    uint32_t dead_after_ms;     /* heartbeat age at which readers call the writer dead */
    uint32_t live_pad_;
};
_Static_assert(offsetof(struct disc_hdr, arena_off) == 48, "line 0 layout");
_Static_assert(offsetof(struct disc_hdr, root) == 64, "root on line 1");
_Static_assert(offsetof(struct disc_hdr, heartbeat_mono_ns) == 128, "heartbeat on line 2");
_Static_assert(sizeof(struct disc_hdr) <= DISC_HEADER_SIZE, "header fits its page");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && alignof(_Atomic uint64_t) == 8, "64-bit atomics");

/* Snapshot: what root points to. */
struct disc_snapshot {
    uint32_t type; /* DISC_REC_SNAPSHOT */
    uint32_t size;
    uint64_t gen;
    int64_t published_ms; /* CLOCK_REALTIME */
    uint32_t svc_table;   /* struct disc_htab: service name -> service record */
    uint32_t id_table;    /* struct disc_htab: instance id -> instance record */
    uint32_t n_services;
    uint32_t n_instances;
    uint32_t flags;    /* DISC_ST_FROM_CACHE etc. for this snapshot */
    uint32_t checksum; /* disc_checksum over the record with this field 0 */
};
_Static_assert(sizeof(struct disc_snapshot) == 48, "snapshot size");

/*
 * Hash table (ABI 3): ONE open-addressed array of nslots slots, linear
 * probing, each slot an inline (hash32, record offset) pair. The array is
 * cut into pages of DISC_PAGE_SLOTS slots so the writer copies on write
 * by page: a commit copies the directory once and each page it changes
 * once. A lookup of key k with hash h reads slots h & (nslots - 1),
 * +1, ... (wrapping) until it finds its key or an empty slot (off 0, or a
 * whole page absent). The writer keeps every entry fewer than
 * DISC_PROBE_MAX slots after its home slot (a longer run is damage), the
 * load at most 1/2 (it doubles the table past that) and, after mass
 * removals, at least 1/8 (it halves the table below that, down to one
 * page). Removal shifts the following run back (no tombstones).
 *
 * A lookup therefore reads: snapshot -> table (header and one directory
 * entry: often one line) -> one slot line -> the
 * record. With the snapshot and directory hot, the dependent misses of a
 * random lookup are the slot line, the service record and the instance.
 */
struct disc_htab {
    uint32_t type; /* DISC_REC_HTAB */
    uint32_t size;
    uint32_t nslots;   /* power of two, multiple of DISC_PAGE_SLOTS */
    uint32_t count;    /* entries */
    uint32_t npages;   /* nslots / DISC_PAGE_SLOTS */
    uint32_t checksum; /* over the record (directory included), this field 0;
                          set when a commit seals the table */
    uint32_t pages[];  /* npages offsets of struct disc_hpage (0 = all empty) */
};
_Static_assert(sizeof(struct disc_htab) == 24, "htab size");

struct disc_slot {
    uint32_t hash; /* low 32 bits of the key hash */
    uint32_t off;  /* record offset; 0 = empty slot */
};
_Static_assert(sizeof(struct disc_slot) == 8, "slot size");

struct disc_hpage {
    uint32_t type; /* DISC_REC_HPAGE */
    uint32_t size;
    uint32_t checksum; /* over the page, this field 0; set when a commit seals it */
    uint32_t pad_;
    struct disc_slot slot[DISC_PAGE_SLOTS];
};
_Static_assert(sizeof(struct disc_hpage) == 16 + 8 * DISC_PAGE_SLOTS, "page size");

/* Service record: immutable; a change writes a new one. */
struct disc_service_rec {
    uint32_t type; /* DISC_REC_SERVICE */
    uint32_t size;
    uint32_t checksum; /* disc_checksum over the record with this field 0 */
    uint32_t n_instances;
    uint16_t name_len;
    uint16_t pad0_;
    uint32_t name_off; /* relative to the record start */
    uint32_t pad1_[2];
    uint32_t instances[]; /* n_instances offsets of struct disc_inst_rec,
                             sorted by instance id; then the name */
};
_Static_assert(sizeof(struct disc_service_rec) == 32, "service record size");

/* A string inside an instance record: offset relative to the record start
 * and length; the byte at off+len is NUL. */
struct disc_str {
    uint16_t off;
    uint16_t len;
};

struct disc_tag_rec {
    struct disc_str key, value;
};

struct disc_endpoint_rec {
    struct disc_str name, request_type, response_type;
    uint32_t mean_us;
    uint32_t p95_us;
    uint32_t pad_;
};
_Static_assert(sizeof(struct disc_endpoint_rec) == 24, "endpoint record size");

/* Instance record: immutable; shared by every snapshot and service record
 * that contains the instance. */
struct disc_inst_rec {
    uint32_t type; /* DISC_REC_INSTANCE */
    uint32_t size; /* <= DISC_REC_MAX */
    uint32_t checksum;
    uint32_t weight;
    int64_t registered_at_ms;
    uint8_t addr_kind, health, origin, pad0_;
    uint16_t n_tags, n_endpoints;
    struct disc_str id, service, version, host, az, address;
    uint32_t tags_off;      /* relative: n_tags struct disc_tag_rec */
    uint32_t endpoints_off; /* relative: n_endpoints struct disc_endpoint_rec */
    uint32_t owner_uid;     /* uid that registered it (DISC_OWNER_UNKNOWN: not known) */
    uint32_t pad1_;
    /* then the arrays, then the string bytes */
};
_Static_assert(sizeof(struct disc_inst_rec) == 72, "instance record size");

/*
 * Record checksums (DISC_FEAT_CHECKSUM_WORD): 32 bits over the `size`
 * bytes of a record, the 4 bytes at `checksum_at` (its checksum field)
 * taken as zero. The record is read as little-endian 64-bit words (any
 * alignment; a tail of 1-7 bytes is one zero-padded word) dealt in turn
 * to four 64-bit lanes; a lane takes a word w as
 * l = rotl((l ^ w) * M1, 32) * M2, and the lanes and the size are folded
 * and mixed into 32 bits at the end. The four independent chains keep the
 * multiplier busy: ~0.7-1 instructions a byte, where FNV-1a takes 4-10
 * (a multiply per byte, each waiting for the one before).
 *
 * What it detects: a lane step is a bijection of the lane for a given
 * word and one-to-one in the word, and the fold is one-to-one in each
 * lane, so any change confined to one 8-byte word (every single-bit and
 * single-byte error among them) changes the 64-bit folded state, and the
 * two multiplies with a rotation between them leave no low-weight
 * difference that a later word can cancel (a single multiply per word
 * would: a flip of the top bit stays one bit). What is missed is missed
 * at the 32-bit result, with probability ~2^-32 for any damage; measured
 * on records of 48 B-8 KiB: every 1-bit flip, every 2- and 3-bit flip of
 * a 48-byte snapshot, every truncation and word swap tried, and 2M random
 * 2-7 byte changes were all caught (as FNV-1a catches them).
 */
#define DISC_CK_MUL1 0x9e3779b97f4a7c15ull
#define DISC_CK_MUL2 0x3172f4432a438f2bull

static inline uint64_t disc__ck_step(uint64_t l, uint64_t w)
{
    uint64_t x = (l ^ w) * DISC_CK_MUL1;
    return ((x << 32) | (x >> 32)) * DISC_CK_MUL2;
}

/* Little-endian 8 bytes at p (compilers make this one load). */
static inline uint64_t disc__ck_ld(const unsigned char *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

/* The bytes of the word at i to keep: all but those inside the checksum
 * field [at, at + 4). */
static inline uint64_t disc__ck_keep(uint32_t i, uint32_t at)
{
    if (at - i < 8u) /* the field starts in this word */
        return ~(0xffffffffull << (8u * (at - i)));
    if (i - at < 4u) /* it started in the word before */
        return ~(0xffffffffull >> (8u * (i - at)));
    return ~0ull;
}

/* The n (1..7) bytes at p + i as a little-endian word, zero-padded. */
static inline uint64_t disc__ck_ld_short(const unsigned char *p, uint32_t i, uint32_t n)
{
    uint64_t w = 0;
    for (uint32_t b = 0; b < n; b++)
        w |= (uint64_t)p[i + b] << (8u * b);
    return w;
}

/* Word j (0..3) of the tail of n bytes at p + i, the field taken as zero. */
static inline uint64_t disc__ck_tail(const unsigned char *p, uint32_t i, uint32_t n, uint32_t j,
                                     uint32_t at)
{
    uint32_t o = i + 8u * j, left = n - 8u * j;
    uint64_t w = left >= 8u ? disc__ck_ld(p + o) : disc__ck_ld_short(p, o, left);
    return w & disc__ck_keep(o, at);
}

struct disc__ck {
    uint64_t l0, l1, l2, l3;
};

/* The 32-byte blocks at p + from .. p + to, a word to each lane. */
static inline void disc__ck_blocks(struct disc__ck *c, const unsigned char *p, uint32_t from,
                                   uint32_t to)
{
    uint64_t l0 = c->l0, l1 = c->l1, l2 = c->l2, l3 = c->l3;
    for (uint32_t i = from; i < to; i += 32u) {
        l0 = disc__ck_step(l0, disc__ck_ld(p + i));
        l1 = disc__ck_step(l1, disc__ck_ld(p + i + 8u));
        l2 = disc__ck_step(l2, disc__ck_ld(p + i + 16u));
        l3 = disc__ck_step(l3, disc__ck_ld(p + i + 24u));
    }
    c->l0 = l0, c->l1 = l1, c->l2 = l2, c->l3 = l3;
}

static inline uint32_t disc_checksum(const void *rec, uint32_t size, uint32_t checksum_at)
{
    const unsigned char *p = rec;
    struct disc__ck c = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull,
                         0x082efa98ec4e6c89ull};
    /* Whole 32-byte blocks, a word to each lane; the one or two that hold
     * the checksum field have it masked out. */
    uint32_t at = checksum_at < size ? checksum_at : size; /* at size: no field */
    uint32_t end = size & ~31u, f0 = (at & ~31u) < end ? at & ~31u : end;
    uint64_t after = (((uint64_t)at + 3u) | 31u) + 1u; /* the block after the field's end */
    uint32_t f1 = after < end ? (uint32_t)after : end;
    disc__ck_blocks(&c, p, 0, f0);
    for (uint32_t i = f0; i < f1; i += 32u) {
        c.l0 = disc__ck_step(c.l0, disc__ck_ld(p + i) & disc__ck_keep(i, at));
        c.l1 = disc__ck_step(c.l1, disc__ck_ld(p + i + 8u) & disc__ck_keep(i + 8u, at));
        c.l2 = disc__ck_step(c.l2, disc__ck_ld(p + i + 16u) & disc__ck_keep(i + 16u, at));
        c.l3 = disc__ck_step(c.l3, disc__ck_ld(p + i + 24u) & disc__ck_keep(i + 24u, at));
    }
    disc__ck_blocks(&c, p, f1, end);
    /* the tail (< 32 bytes): up to four words, the last zero-padded */
    uint32_t n = size - end;
    if (n > 0u)
        c.l0 = disc__ck_step(c.l0, disc__ck_tail(p, end, n, 0, at));
    if (n > 8u)
        c.l1 = disc__ck_step(c.l1, disc__ck_tail(p, end, n, 1, at));
    if (n > 16u)
        c.l2 = disc__ck_step(c.l2, disc__ck_tail(p, end, n, 2, at));
    if (n > 24u)
        c.l3 = disc__ck_step(c.l3, disc__ck_tail(p, end, n, 3, at));
    uint64_t h = (uint64_t)size * 0x244ececbe71b9593ull;
    h = disc__ck_step(h, c.l0);
    h = disc__ck_step(h, c.l1);
    h = disc__ck_step(h, c.l2);
    h = disc__ck_step(h, c.l3);
    h ^= h >> 29;
    h *= 0x261db1d53bce14abull;
    h ^= h >> 32;
    return (uint32_t)h;
}

/* 32-bit FNV-1a over a record, its checksum field taken as zero: the
 * checksum of objects whose header lacks DISC_FEAT_CHECKSUM_WORD (written
 * by discd before it). Readers verify those with it; nothing writes it. */
static inline uint32_t disc_checksum_fnv1a(const void *rec, uint32_t size, uint32_t checksum_at)
{
    const unsigned char *p = rec;
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < size; i++) {
        unsigned char c = (i >= checksum_at && i < checksum_at + 4) ? 0 : p[i];
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* Seeded 64-bit hash of a byte string. Not cryptographic: the seed is
 * random per segment, which is enough against accidental clustering. */
static inline uint64_t disc_hash(const void *key, size_t len, uint64_t seed)
{
    const unsigned char *p = key;
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = seed ^ (len * m);
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v *= 0xbf58476d1ce4e5b9ull;
        v ^= v >> 31;
        h = (h ^ v) * m;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t t = 0;
    memcpy(&t, p, len);
    h = (h ^ (t * 0x94d049bb133111ebull)) * m;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

static inline uint32_t disc_align_up(uint32_t v)
{
    return (v + (DISC_ALIGN - 1)) & ~(DISC_ALIGN - 1);
}

/* Serial number comparison is not needed: generations are 64-bit and start
 * at 1. */

#endif /* DISCSHM_LAYOUT_H */
