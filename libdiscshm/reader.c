/* SPDX-License-Identifier: MIT */
/*
 * reader.c — mapping a segment, reader slots and read sections.
 *
 * Read-section protocol (the writer side is daemon/segment/seg_writer.c):
 *   begin: a = load gen (acquire)
 *          CAS slot 0 -> a         claims one of our slots and announces a;
 *                                  a full barrier: the announcement is
 *                                  ordered before we read root
 *          root = load (seq_cst)   a snapshot >= a: the writer stores root
 *                                  before gen
 *   ... bounds-checked reads of immutable records ...
 *   end:   acquire fence           our reads happen before the check
 *          ok = a >= reclaimed_upto
 *          slot := 0 (release)
 * Memory reachable from a snapshot >= a was retired at a generation > a,
 * and the writer raises reclaimed_upto to t (and fences) before it reuses
 * memory retired at t. So a section either read memory that was not
 * reused, or learns at its end that it may have. The slots only make the
 * writer wait for live sections; correctness never depends on what other
 * processes write into the (world-writable) slots object. A writer that
 * overtakes a stalled reader simply reclaims past its slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "reader_internal.h"

#define OPEN_TRIES  8
#define BEGIN_TRIES 64

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static void map_unmap(struct disc_map *m)
{
    if (m->base)
        munmap((void *)m->base, m->size);
    if (m->slots_map)
        munmap(m->slots_map, m->slots_bytes);
    if (m->slots_fd >= 0)
        close(m->slots_fd); /* drops our OFD slot locks */
    m->base = NULL;
    m->slots_map = NULL;
    m->slots = NULL;
    m->slots_fd = -1;
    m->unmapped = 1;
}

static void map_free(struct disc_map *m)
{
    if (m) {
        map_unmap(m);
        free(m);
    }
}

/* Check everything in the header a reader depends on. */
static int check_header(const struct disc_hdr *h, uint64_t st_size, uint64_t magic)
{
    if (h->magic != magic)
        return -EBADMSG;
    if (h->abi_major != DISC_ABI_MAJOR)
        return -EPROTONOSUPPORT;
    if (h->header_size < sizeof(struct disc_hdr) || h->header_size > st_size ||
        h->segment_size != st_size || h->arena_off < h->header_size ||
        h->arena_off > h->arena_end || h->arena_end > st_size || h->nslots == 0 ||
        h->nslots > (1u << 20))
        return -EBADMSG;
    /* The bytes after arena_end are never written: a string scan that
     * starts inside the mapping always meets a NUL before its end. */
    if (st_size - h->arena_end < 1)
        return -EBADMSG;
    return 0;
}

static int map_open(const char *name, struct disc_map **out)
{
    char path[NAME_MAX + 32];
    struct disc_map *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->slots_fd = -1;
    int rc;

    snprintf(path, sizeof(path), "/%s", name);
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    if (st.st_size < (off_t)DISC_HEADER_SIZE || (uint64_t)st.st_size > UINT32_MAX + 4096ull) {
        close(fd);
        rc = -EBADMSG;
        goto fail;
    }
    m->size = (uint64_t)st.st_size;
    /* PROT_READ: a reader cannot change what other readers see. */
    void *p = mmap(NULL, m->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    m->base = p;
    m->hdr = p;
    if ((rc = check_header(m->hdr, m->size, DISC_MAGIC)) < 0)
        goto fail;
    m->arena_off = m->hdr->arena_off;
    m->arena_end = m->hdr->arena_end;
    m->seed = m->hdr->hash_seed;
    m->segment_id = m->hdr->segment_id;
    m->nslots = m->hdr->nslots;

    snprintf(path, sizeof(path), "/%s.readers", name);
    m->slots_fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
    if (m->slots_fd < 0) {
        rc = errno == ENOENT ? -EAGAIN : -errno;
        goto fail;
    }
    if (fstat(m->slots_fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    m->slots_bytes = DISC_SLOTS_HDR + (uint64_t)m->nslots * DISC_SLOT_SIZE;
    if ((uint64_t)st.st_size < m->slots_bytes) {
        rc = -EAGAIN; /* not ours (a restart in between) or damaged */
        goto fail;
    }
    p = mmap(NULL, m->slots_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m->slots_fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    m->slots_map = p;
    const struct disc_slots_hdr *sh = p;
    if (sh->magic != DISC_SLOTS_MAGIC || sh->segment_id != m->segment_id ||
        sh->nslots != m->nslots) {
        rc = -EAGAIN; /* data and slots of different writers: retry */
        goto fail;
    }
    m->slots = (struct disc_slot *)((unsigned char *)p + DISC_SLOTS_HDR);
    *out = m;
    return 0;
fail:
    map_free(m);
    return rc;
}

/* Map a file-cache image (see segw_export): read-only, no reader slots
 * (nothing ever reclaims in a file), whole-file checksum verified once. */
static int map_open_file(const char *path, struct disc_map **out)
{
    struct disc_map *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->slots_fd = -1;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        free(m);
        return rc;
    }
    struct stat st;
    rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
    if (rc < 0) {
        close(fd);
        free(m);
        return rc;
    }
    if (st.st_size < (off_t)DISC_HEADER_SIZE + 4096 || (uint64_t)st.st_size > UINT32_MAX) {
        close(fd);
        free(m);
        return -EBADMSG;
    }
    m->size = (uint64_t)st.st_size;
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        free(m);
        return -ENOMEM;
    }
    m->base = p;
    m->hdr = p;
    if ((rc = check_header(m->hdr, m->size, DISC_IMAGE_MAGIC)) < 0)
        goto fail;
    rc = -EBADMSG; /* truncated or damaged file */
    if (m->hdr->image_bytes != m->size ||
        disc_checksum(p, (uint32_t)m->size, offsetof(struct disc_hdr, image_checksum)) !=
            m->hdr->image_checksum)
        goto fail;
    m->arena_off = m->hdr->arena_off;
    m->arena_end = m->hdr->arena_end;
    m->seed = m->hdr->hash_seed;
    m->segment_id = m->hdr->segment_id;
    *out = m;
    return 0;
fail:
    map_free(m);
    return rc;
}

/* Open with retries across a concurrent writer restart. */
static int map_open_retry(const char *name, struct disc_map **out)
{
    int rc = -EAGAIN;
    for (int i = 0; i < OPEN_TRIES && rc == -EAGAIN; i++) {
        rc = map_open(name, out);
        if (rc == -EAGAIN) {
            struct timespec ts = {0, 1000000L << (i < 5 ? i : 5)};
            nanosleep(&ts, NULL);
        }
    }
    return rc;
}

static int handle_new(const char *name, unsigned flags, struct disc_map *m, disc_handle **out)
{
    disc_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->flags = flags;
    h->rng = (uint32_t)getpid() * 2654435761u ^ (uint32_t)(uintptr_t)h;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return -ENOMEM;
    }
    atomic_init(&h->cur, m);
    *out = h;
    return 0;
}

DISC_API int disc_open_file(const char *path, unsigned flags, disc_handle **out)
{
    if (!path || !out || (flags & ~DISC_OPEN_VERIFY))
        return -EINVAL;
    struct disc_map *m;
    int rc = map_open_file(path, &m);
    if (rc == 0 && (rc = handle_new("", flags, m, out)) < 0)
        map_free(m);
    return rc;
}

/* Where discd keeps the file cache of registry `name` by default. */
static void default_cache_path(const char *name, char *buf, size_t len)
{
    const char *env = getenv(DISC_CACHE_ENV);
    if (env && *env)
        snprintf(buf, len, "%s", env);
    else
        snprintf(buf, len, "%s/%s.cache", DISC_DEFAULT_CACHE_DIR, name);
}

DISC_API int disc_open(const char *name, unsigned flags, disc_handle **out)
{
    if (!out || (flags & ~(DISC_OPEN_VERIFY | DISC_OPEN_CACHE_FALLBACK)))
        return -EINVAL;
    if (!name)
        name = getenv(DISC_NAME_ENV);
    if (!name || !*name)
        name = DISC_DEFAULT_NAME;
    if (strlen(name) > 200)
        return -ENAMETOOLONG;
    if (!valid_name(name))
        return -EINVAL;
    struct disc_map *m;
    int rc = map_open_retry(name, &m);
    if (rc == -ENOENT && (flags & DISC_OPEN_CACHE_FALLBACK)) {
        /* No segment (discd not started yet, e.g. after a reboot): the last
         * picture discd saved, flagged DISC_ST_FROM_CACHE by disc_status. */
        char path[4096];
        default_cache_path(name, path, sizeof(path));
        int frc = map_open_file(path, &m);
        if (frc < 0)
            return rc; /* report the missing segment, not the cache */
        rc = 0;
    }
    if (rc < 0)
        return rc;
    if ((rc = handle_new(name, flags & DISC_OPEN_VERIFY, m, out)) < 0)
        map_free(m);
    return rc;
}

DISC_API void disc_close(disc_handle *h)
{
    if (!h)
        return;
    map_free(atomic_load(&h->cur));
    for (struct disc_map *m = h->retired, *n; m; m = n) {
        n = m->next;
        map_free(m);
    }
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static int map_idle(struct disc_map *m)
{
    if (atomic_load(&m->slotless) != 0)
        return 0;
    int n = atomic_load(&m->nlocal);
    for (int i = 0; i < n; i++)
        if (atomic_load(&m->slots[m->local[i]].gen) != 0)
            return 0;
    return 1;
}

/* Unmap retired maps no section uses any more. Caller holds h->lock.
 * `retired` was stored (seq_cst) before we load the slot words / slotless
 * (seq_cst); a section sets one of them (seq_cst RMW) before it loads
 * `retired`: one side sees the other, so nobody reads an unmapped segment.
 * (A slot word another process forced non-zero only delays the unmap.) */
static void sweep_retired(disc_handle *h)
{
    for (struct disc_map *m = h->retired; m; m = m->next)
        if (!m->unmapped && map_idle(m))
            map_unmap(m);
}

/* The segment behind m was recycled: map its successor. */
static int follow(disc_handle *h, struct disc_map *m)
{
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    if (atomic_load(&h->cur) == m) {
        struct disc_map *nm;
        rc = map_open_retry(h->name, &nm);
        if (rc == 0 && nm->segment_id == m->segment_id) {
            /* Still the old object (successor not renamed in yet). */
            map_free(nm);
            rc = -EAGAIN;
        } else if (rc == 0) {
            atomic_store(&m->retired, 1);
            m->next = h->retired;
            h->retired = m;
            atomic_store_explicit(&h->cur, nm, memory_order_release);
        }
    }
    sweep_retired(h);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* Claim one more shared slot for this map: an OFD lock on its byte. */
static int claim_slot(disc_handle *h, struct disc_map *m)
{
    int rc = -EBUSY;
    if (m->slots_fd < 0)
        return rc; /* a file-cache image has no slots */
    pthread_mutex_lock(&h->lock);
    int n = atomic_load(&m->nlocal);
    if (n >= DISC_LOCAL_SLOTS)
        goto out;
    h->rng = h->rng * 1103515245u + 12345u;
    uint32_t start = (h->rng >> 8) % m->nslots;
    for (uint32_t k = 0; k < m->nslots; k++) {
        uint32_t idx = (start + k) % m->nslots;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = idx, .l_len = 1};
        if (fcntl(m->slots_fd, F_OFD_SETLK, &fl) == 0) {
            /* The previous owner may have died mid-section. */
            atomic_store(&m->slots[idx].gen, 0);
            m->local[n] = (int)idx;
            /* local[n] is written before nlocal makes it visible */
            atomic_store_explicit(&m->nlocal, n + 1, memory_order_release);
            rc = 0;
            goto out;
        }
    }
out:
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* Claim one of this map's slots for a section by moving it from idle (0)
 * to the announced generation a: a seq_cst RMW, so the announcement is a
 * full barrier before root is read. Returns the local index, or -1 when all
 * are busy and no more can be claimed (the section runs slotless). */
static int take_local(disc_handle *h, struct disc_map *m, uint64_t a)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int n = atomic_load_explicit(&m->nlocal, memory_order_acquire);
        for (int i = 0; i < n; i++) {
            uint64_t idle = 0;
            if (atomic_compare_exchange_strong(&m->slots[m->local[i]].gen, &idle, a))
                return i;
        }
        if (claim_slot(h, m) < 0)
            break;
    }
    return -1;
}

DISC_API int disc_read_begin(disc_handle *h, struct disc_read *rd)
{
    if (!h || !rd)
        return -EINVAL;
    for (int tries = 0; tries < BEGIN_TRIES; tries++) {
        struct disc_map *m = atomic_load_explicit(&h->cur, memory_order_acquire);
        const struct disc_hdr *hdr = m->hdr;
        if (atomic_load_explicit(&hdr->status, memory_order_acquire) == DISC_SEG_RECYCLED) {
            int rc = follow(h, m);
            if (rc < 0 && rc != -EAGAIN)
                return rc;
            continue;
        }
        uint64_t a = atomic_load_explicit(&hdr->gen, memory_order_acquire);
        /* A busy slot (or the slotless count) keeps m mapped. */
        int local = take_local(h, m, a);
        if (local < 0)
            atomic_fetch_add(&m->slotless, 1);
        if (atomic_load(&m->retired)) {
            if (local >= 0)
                atomic_store_explicit(&m->slots[m->local[local]].gen, 0, memory_order_release);
            else
                atomic_fetch_sub_explicit(&m->slotless, 1, memory_order_release);
            continue;
        }
        /* seq_cst: ordered after the announcement (see the top of this file) */
        uint64_t root = atomic_load(&hdr->root);
        rd->h_ = h;
        rd->map_ = m;
        rd->base_ = m->base;
        rd->size_ = m->size;
        rd->gen_ = a;
        rd->snap_ = (uint32_t)root;
        rd->slot_ = local;
        rd->flags_ = h->flags;
        rd->work_ = 0; /* the work budget is computed on first use (lookup.c) */
        if (!disc__rec(m, rd->snap_, sizeof(struct disc_snapshot), DISC_REC_SNAPSHOT)) {
            int rc = disc_read_end(rd);
            if (rc == -EAGAIN)
                continue;
            return -EBADMSG;
        }
        return 0;
    }
    return -EAGAIN;
}

DISC_API int disc_read_end(struct disc_read *rd)
{
    struct disc_map *m = rd->map_;
    if (!m)
        return -EINVAL;
    /* Everything we read happens before we look at the writer's words. */
    atomic_thread_fence(memory_order_acquire);
    uint64_t limit = atomic_load_explicit(&m->hdr->reclaimed_upto, memory_order_relaxed);
    if (rd->slot_ >= 0) {
        /* release: our reads are done before the writer may see us idle */
        atomic_store_explicit(&m->slots[m->local[rd->slot_]].gen, 0, memory_order_release);
    } else {
        atomic_fetch_sub_explicit(&m->slotless, 1, memory_order_release);
    }
    rd->map_ = NULL;
    return rd->gen_ >= limit ? 0 : -EAGAIN;
}

DISC_API uint64_t disc_read_generation(const struct disc_read *rd)
{
    const struct disc_map *m = rd->map_;
    const struct disc_snapshot *s =
        m ? disc__rec(m, rd->snap_, sizeof(struct disc_snapshot), DISC_REC_SNAPSHOT) : NULL;
    return s ? s->gen : rd->gen_;
}

/* ---- status and change notification ----------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

DISC_API int disc_status(disc_handle *h, struct disc_status *st)
{
    if (!h || !st)
        return -EINVAL;
    memset(st, 0, sizeof(*st));
    struct disc_read rd;
    int rc, tries = 0;
    do {
        if ((rc = disc_read_begin(h, &rd)) < 0)
            return rc;
        struct disc_map *m = rd.map_;
        const struct disc_hdr *hdr = m->hdr;
        const struct disc_snapshot *s =
            disc__rec(m, rd.snap_, sizeof(struct disc_snapshot), DISC_REC_SNAPSHOT);
        uint32_t flags = atomic_load_explicit(&hdr->state_flags, memory_order_acquire);
        st->generation = s ? s->gen : rd.gen_;
        st->n_services = s ? s->n_services : 0;
        st->n_instances = s ? s->n_instances : 0;
        st->published_at_ms = s ? s->published_ms : 0;
        if (s && (s->flags & DISC_ST_FROM_CACHE))
            flags |= DISC_ST_FROM_CACHE;
        st->change_seq = atomic_load_explicit(&hdr->change_seq, memory_order_acquire);
        st->abi_major = hdr->abi_major;
        st->abi_minor = hdr->abi_minor;
        st->writer_pid = (int32_t)hdr->writer_pid;
        st->degraded_reason = atomic_load_explicit(&hdr->degraded_reason, memory_order_relaxed);
        st->degraded_since_ms = atomic_load_explicit(&hdr->degraded_since_ms, memory_order_relaxed);
        st->last_sync_ms = atomic_load_explicit(&hdr->last_sync_ms, memory_order_relaxed);
        st->segment_bytes = m->size;
        st->used_bytes = atomic_load_explicit(&hdr->used_bytes, memory_order_relaxed);
        st->overtakes = atomic_load_explicit(&hdr->overtakes, memory_order_relaxed);
        st->held_changes = atomic_load_explicit(&hdr->held_changes, memory_order_relaxed);
        struct disc_liveness lv;
        int live = disc__writer_liveness(m, &lv);
        st->heartbeat_age_ms = lv.age_ms;
        st->writer_dead_after_ms = lv.dead_after_ms;
        st->writer_dead_since_ms = lv.dead_since_ms;
        if (live == DISC_WRITER_ALIVE_) {
            flags |= DISC_ST_WRITER_ALIVE;
        } else {
            /* A dead writer is the reason: whatever it said before is frozen. */
            if (!(flags & DISC_ST_DEGRADED) || st->degraded_since_ms <= 0)
                st->degraded_since_ms = lv.dead_since_ms;
            flags |= DISC_ST_DEGRADED;
            if (live == DISC_WRITER_STOPPED_)
                flags |= DISC_ST_WRITER_STOPPED;
            st->degraded_reason =
                live == DISC_WRITER_STOPPED_ ? DISC_DEG_WRITER_STOPPED : DISC_DEG_WRITER_DEAD;
        }
        st->flags = flags;
        st->stale = disc_read_stale(&rd);
        rc = s ? 0 : -EBADMSG;
    } while (disc_read_end(&rd) == -EAGAIN && ++tries < BEGIN_TRIES);
    return rc;
}

DISC_API int disc_wait_change(disc_handle *h, uint32_t *seen, int timeout_ms)
{
    if (!h || !seen)
        return -EINVAL;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        struct disc_map *m = atomic_load_explicit(&h->cur, memory_order_acquire);
        /* Pin the map like a slotless section so it stays mapped. */
        atomic_fetch_add(&m->slotless, 1);
        if (atomic_load(&m->retired)) {
            atomic_fetch_sub(&m->slotless, 1);
            continue;
        }
        const struct disc_hdr *hdr = m->hdr;
        if (atomic_load_explicit(&hdr->status, memory_order_acquire) == DISC_SEG_RECYCLED) {
            atomic_fetch_sub(&m->slotless, 1);
            int rc = follow(h, m);
            if (rc == 0) {
                m = atomic_load(&h->cur);
                *seen = atomic_load_explicit(&m->hdr->change_seq, memory_order_acquire);
                return 0;
            }
            if (rc != -EAGAIN)
                return rc;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
            continue;
        }
        uint32_t cur = atomic_load_explicit(&hdr->change_seq, memory_order_acquire);
        if (cur != *seen) {
            atomic_fetch_sub(&m->slotless, 1);
            *seen = cur;
            return 0;
        }
        int64_t left = deadline - mono_ns();
        if (left <= 0) {
            atomic_fetch_sub(&m->slotless, 1);
            return -ETIMEDOUT;
        }
        if (left > 200000000)
            left = 200000000; /* re-check RECYCLED now and then */
        struct timespec ts = {left / 1000000000, left % 1000000000};
        /* A shared (not PRIVATE) futex: the writer wakes it through its own
         * mapping of the same object. Waiting needs only read access. */
        syscall(SYS_futex, (const uint32_t *)&hdr->change_seq, FUTEX_WAIT, cur, &ts, NULL, 0);
        atomic_fetch_sub(&m->slotless, 1);
    }
}

DISC_API const char *disc_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case -ENOENT:
        return "not found (no such registry, service or instance)";
    case -EBADMSG:
        return "registry segment failed validation (corrupt or truncated)";
    case -EPROTONOSUPPORT:
        return "registry segment has an incompatible ABI version";
    case -EAGAIN:
        return "registry changed too fast to read consistently; try again";
    case -ENOBUFS:
        return "buffer too small";
    case -ETIMEDOUT:
        return "timed out";
    case -EINVAL:
        return "invalid argument";
    case -ENAMETOOLONG:
        return "name too long";
    case -ENOMEM:
        return "out of memory";
    case -EACCES:
        return "permission denied";
    default:
        return rc < 0 ? strerror(-rc) : "unknown";
    }
}
