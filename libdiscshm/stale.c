/* SPDX-License-Identifier: MIT */
/*
 * stale.c — writer liveness and staleness (disc_stale, disc_read_stale,
 * disc_status_reason_str). The liveness rule is shared with disc_status.
 */
#include <errno.h>
#include <time.h>

#include "reader_internal.h"

/* The threshold a sane writer could have stored (it writes 8 ticks of
 * 10..2000 ms, at least 2000 ms); anything else is treated as unset. */
#define DEAD_AFTER_MIN 100u
#define DEAD_AFTER_MAX 3600000u

static int64_t clock_ms(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int disc__writer_liveness(const struct disc_map *m, struct disc_liveness *lv)
{
    const struct disc_hdr *hdr = m->hdr;
    uint32_t after = hdr->dead_after_ms;
    if (after < DEAD_AFTER_MIN || after > DEAD_AFTER_MAX)
        after = DISC_WRITER_DEAD_MS;
    int64_t hb = atomic_load_explicit(&hdr->heartbeat_mono_ns, memory_order_acquire);
    int64_t stopped = atomic_load_explicit(&hdr->stopped_ms, memory_order_acquire);
    lv->dead_after_ms = after;
    lv->age_ms = clock_ms(CLOCK_MONOTONIC) - hb / 1000000;
    lv->dead_since_ms = 0;
    if (stopped > 0) {
        lv->dead_since_ms = stopped;
        return DISC_WRITER_STOPPED_;
    }
    if (lv->age_ms >= (int64_t)after) {
        /* The last heartbeat, as wall-clock time. */
        lv->dead_since_ms = clock_ms(CLOCK_REALTIME) - lv->age_ms;
        return DISC_WRITER_DEAD_;
    }
    return DISC_WRITER_ALIVE_;
}

DISC_API uint32_t disc_read_stale(const struct disc_read *rd)
{
    const struct disc_map *m = rd ? rd->map_ : NULL;
    if (!m)
        return 0;
    struct disc_liveness lv;
    uint32_t bits = 0;
    if (disc__writer_liveness(m, &lv) != DISC_WRITER_ALIVE_)
        bits |= DISC_STALE_WRITER_DEAD;
    if (atomic_load_explicit(&m->hdr->state_flags, memory_order_acquire) & DISC_ST_DEGRADED)
        bits |= DISC_STALE_DEGRADED;
    const struct disc_snapshot *s =
        disc__rec(m, (uint32_t)rd->root_, sizeof(struct disc_snapshot), DISC_REC_SNAPSHOT);
    if (s && (s->flags & DISC_ST_FROM_CACHE))
        bits |= DISC_STALE_FROM_CACHE;
    return bits;
}

DISC_API int disc_stale(disc_handle *h)
{
    if (!h)
        return -EINVAL;
    struct disc_read rd;
    for (int tries = 0; tries < 64; tries++) {
        int rc = disc_read_begin(h, &rd);
        if (rc < 0)
            return rc;
        uint32_t bits = disc_read_stale(&rd);
        if (disc_read_end(&rd) == 0)
            return (int)bits;
    }
    return -EAGAIN;
}

DISC_API const char *disc_status_reason_str(uint32_t reason)
{
    switch (reason) {
    case DISC_DEG_NONE:
        return "none";
    case DISC_DEG_ZK_DISCONNECTED:
        return "zookeeper-disconnected";
    case DISC_DEG_ZK_EXPIRED:
        return "zookeeper-session-expired";
    case DISC_DEG_ZK_UNREACHABLE:
        return "zookeeper-unreachable";
    case DISC_DEG_WRITER_DEAD:
        return "writer-dead";
    case DISC_DEG_WRITER_STOPPED:
        return "writer-stopped";
    case DISC_DEG_ZK_SYNC_FAILING:
        return "zookeeper-sync-failing";
    case DISC_DEG_REMOVED:
        return "registry-removed";
    default:
        return "unknown";
    }
}
