/* SPDX-License-Identifier: MIT */
/*
 * pick.c — choosing one instance among those matching a filter.
 *
 * Weighted random: one pass sums the weights, a second finds the instance
 * whose cumulative weight range holds the random draw. The draw comes from
 * the picker's own splitmix64 stream (one atomic add: lock-free).
 *
 * Smooth weighted round robin (nginx): every pick adds each candidate's
 * weight to its current value, takes the largest, and subtracts the total
 * from the winner. The current values are indexed by candidate position;
 * a 64-bit signature of (id, weight) over the candidates in order tells us
 * when the set changed, and then the values restart from zero.
 *
 * Consistent hash: weighted rendezvous hashing. Each candidate scores
 * -ln(u)/w with u = H(key, id) in (0,1); the smallest wins. -ln(u)/w is an
 * exponential variable with rate w, so the winner is candidate i with
 * probability w_i / sum(w) — weights are honoured with no virtual nodes —
 * and removing a candidate only moves the keys it won. O(n) per pick,
 * which is fine for the tens of instances a service has; a ring would
 * need a per-set table (memory, rebuilds) to save that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reader_internal.h"

#define RETRIES 64

/* Fixed seeds: consistent-hash results must not depend on the segment's
 * random hash seed, or a writer restart would move every key. */
#define KEY_SEED 0x6b6579736565640full
#define ID_SEED  0x69647365656430aaull

struct disc_picker {
    enum disc_pick_policy policy;
    uint32_t cap;         /* round robin: entries in cw */
    _Atomic uint64_t rng; /* random: splitmix64 state */
    pthread_mutex_t lock; /* round robin: guards sig, n, cw */
    uint64_t sig;         /* signature of the candidate set cw belongs to */
    uint32_t n;           /* candidates in that set */
    int64_t *cw;          /* current weights, by candidate position */
};

_Static_assert(DISC_INSTANCE_BUF_MAX >= 2 * sizeof(struct disc_instance) + DISC_REC_MAX + 8,
               "DISC_INSTANCE_BUF_MAX holds any one instance");

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

DISC_API int disc_picker_create(enum disc_pick_policy policy, uint64_t seed,
                                uint32_t max_candidates, disc_picker **out)
{
    if (!out ||
        (policy != DISC_PICK_RANDOM && policy != DISC_PICK_ROUND_ROBIN && policy != DISC_PICK_HASH))
        return -EINVAL;
    if (max_candidates > DISC_PICK_RR_MAX)
        return -EINVAL;
    disc_picker *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->policy = policy;
    atomic_init(&p->rng, seed);
    if (policy == DISC_PICK_ROUND_ROBIN) {
        p->cap = max_candidates ? max_candidates : DISC_PICK_RR_DEFAULT;
        p->cw = calloc(p->cap, sizeof(*p->cw));
        if (!p->cw || pthread_mutex_init(&p->lock, NULL) != 0) {
            free(p->cw);
            free(p);
            return -ENOMEM;
        }
    }
    *out = p;
    return 0;
}

DISC_API void disc_picker_destroy(disc_picker *p)
{
    if (!p)
        return;
    if (p->policy == DISC_PICK_ROUND_ROBIN) {
        pthread_mutex_destroy(&p->lock);
        free(p->cw);
    }
    free(p);
}

DISC_API enum disc_pick_policy disc_picker_policy(const disc_picker *p)
{
    return p ? p->policy : 0;
}

/* ---- weighted random ----------------------------------------------------------------- */

static int pick_random(struct disc_read *rd, const struct disc_filter *f, disc_picker *p,
                       struct disc_instance *out)
{
    struct disc_filter_iter it;
    struct disc_instance in;
    uint64_t total = 0;
    int rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        total += in.weight;
        rc = 0;
    }
    if (rc < 0)
        return rc;
    if (total == 0)
        return -ENOENT;
    /* splitmix64: the Weyl step is the atomic add, the rest is local. */
    uint64_t r =
        mix64(atomic_fetch_add_explicit(&p->rng, 0x9e3779b97f4a7c15ull, memory_order_relaxed) +
              0x9e3779b97f4a7c15ull);
    uint64_t target = r % total, acc = 0; /* bias <= total / 2^64 */
    rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        acc += in.weight;
        if (target < acc) {
            *out = in;
            return 0;
        }
        rc = 0;
    }
    return rc < 0 ? rc : -EBADMSG; /* the set shrank between passes: overtaken */
}

/* ---- smooth weighted round robin --------------------------------------------------- */

static uint64_t id_hash(const struct disc_instance *in)
{
    return disc_hash(in->id, DISC_ID_LEN, ID_SEED);
}

static int pick_round_robin(struct disc_read *rd, const struct disc_filter *f, disc_picker *p,
                            struct disc_instance *out)
{
    struct disc_filter_iter it;
    struct disc_instance in, best = {0};
    uint64_t total = 0, sig = 0x5157525253494721ull;
    uint32_t n = 0;
    int rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        if (n == p->cap)
            return -E2BIG;
        total += in.weight;
        sig = mix64(sig ^ id_hash(&in)) + in.weight;
        n++;
        rc = 0;
    }
    if (rc < 0)
        return rc;
    if (total == 0)
        return -ENOENT;

    pthread_mutex_lock(&p->lock);
    if (sig != p->sig || n != p->n) {
        memset(p->cw, 0, (size_t)n * sizeof(*p->cw));
        p->sig = sig;
        p->n = n;
    }
    int64_t best_cw = 0;
    uint32_t i = 0, bi = UINT32_MAX;
    rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        rc = 0;
        if (i >= n)
            break;
        if (in.weight) {
            p->cw[i] += in.weight;
            if (bi == UINT32_MAX || p->cw[i] > best_cw) {
                bi = i;
                best_cw = p->cw[i];
                best = in;
            }
        }
        i++;
    }
    if (rc == 0 && (i != n || bi == UINT32_MAX))
        rc = -EBADMSG; /* the set changed between passes: overtaken */
    if (rc < 0)
        p->sig = 0; /* the values added above belong to no set: restart */
    if (rc == 0)
        p->cw[bi] -= (int64_t)total;
    pthread_mutex_unlock(&p->lock);
    if (rc == 0)
        *out = best;
    return rc;
}

/* ---- consistent hash ------------------------------------------------------------------ */

/* Natural log of x in (0, 1], libc only (no libm): x = m * 2^e with m in
 * [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t), t = (m-1)/(m+1), |t| < 0.172;
 * ten odd terms of the series leave an error below 1e-17. Same code and
 * IEEE arithmetic everywhere, so every process ranks keys identically. */
static double ln_unit(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof(m));
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double t = (m - 1.0) / (m + 1.0), t2 = t * t, s = 1.0 / 19;
    for (int k = 17; k >= 1; k -= 2)
        s = s * t2 + 1.0 / k;
    return e * 0.69314718055994530942 + 2.0 * t * s;
}

static int pick_hash(struct disc_read *rd, const struct disc_filter *f, const void *key,
                     size_t key_len, struct disc_instance *out)
{
    uint64_t kh = disc_hash(key, key_len, KEY_SEED);
    struct disc_filter_iter it;
    struct disc_instance in;
    double best_score = 0;
    int found = 0;
    int rc = disc_read_filter_begin(rd, f, &it);
    while (rc == 0 && (rc = disc_read_filter_next(rd, &it, &in)) == 1) {
        rc = 0;
        if (!in.weight)
            continue;
        uint64_t h = mix64(kh ^ mix64(id_hash(&in)));
        double u = ((double)(h >> 12) + 0.5) * 0x1p-52; /* in (0, 1) */
        double score = -ln_unit(u) / (double)in.weight;
        if (!found || score < best_score || (score == best_score && strcmp(in.id, out->id) < 0)) {
            best_score = score;
            *out = in;
            found = 1;
        }
    }
    if (rc < 0)
        return rc;
    return found ? 0 : -ENOENT;
}

/* ---- entry points ------------------------------------------------------------------------ */

DISC_API int disc_read_pick(struct disc_read *rd, const struct disc_filter *f, disc_picker *p,
                            const void *key, size_t key_len, struct disc_instance *out)
{
    if (!rd || !rd->map_ || !p || !out)
        return -EINVAL;
    /* Pickers choose for traffic: with no health condition they take only
     * instances in rotation (not critical, not in maintenance). */
    struct disc_filter in_rotation;
    if (!f || !f->health_mask) {
        if (f)
            in_rotation = *f;
        else
            disc_filter_init(&in_rotation);
        in_rotation.health_mask = DISC_HEALTH_NOT_CRITICAL;
        f = &in_rotation;
    }
    switch (p->policy) {
    case DISC_PICK_RANDOM:
        return pick_random(rd, f, p, out);
    case DISC_PICK_ROUND_ROBIN:
        return pick_round_robin(rd, f, p, out);
    case DISC_PICK_HASH:
        if (!key)
            return -EINVAL;
        return pick_hash(rd, f, key, key_len, out);
    }
    return -EINVAL;
}

static size_t align8(size_t v)
{
    return (v + 7) & ~(size_t)7;
}

DISC_API int disc_pick(disc_handle *h, const struct disc_filter *f, disc_picker *p, const void *key,
                       size_t key_len, void *buf, size_t buflen, struct disc_instance **inst,
                       size_t *needed)
{
    if (!h || !p || !inst || (!buf && buflen))
        return -EINVAL;
    if (p->policy == DISC_PICK_HASH && !key)
        return -EINVAL;
    int rc = disc_filter_check(f);
    if (rc < 0)
        return rc;
    struct disc_read rd;
    for (int tries = 0; tries < RETRIES; tries++) {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        struct disc_instance chosen;
        rc = disc_read_pick(&rd, f, p, key, key_len, &chosen);
        if (rc == 0) {
            size_t head = align8(sizeof(struct disc_instance));
            size_t need = head + align8(chosen.rec_size_);
            if (needed)
                *needed = need;
            if (need > buflen || !buf) {
                rc = -ENOBUFS;
            } else {
                unsigned char *rec = (unsigned char *)buf + head;
                memcpy(rec, chosen.rec_, chosen.rec_size_);
                rc = disc__fill_view(rec, chosen.rec_size_, rd.flags_, buf);
                if (rc == 0)
                    *inst = buf;
            }
        }
        if (disc_read_end(&rd) == 0)
            return rc;
    }
    return -EAGAIN;
}
