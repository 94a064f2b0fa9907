/* SPDX-License-Identifier: MIT */
/*
 * reader.c — opening and mapping a registry, read sections, following a
 * restarted writer.
 *
 * Read-section protocol (the writer side is daemon/segment/seg_writer.c):
 *   begin: pin the map             process-local: a CAS on one of the map's
 *                                  pin lines (see reader_internal.h); only
 *                                  then is any byte of the mapping touched
 *          a = load gen (acquire)
 *          root = load (acquire)   a snapshot >= a: the writer stores root
 *                                  before gen
 *   ... bounds-checked reads of immutable records ...
 *   end:   acquire fence           our reads happen before the check
 *          ok = a >= reclaimed_upto
 *          unpin (release)
 * Memory reachable from a snapshot >= a was retired at a generation > a,
 * and the writer raises reclaimed_upto to t (and fences) before it reuses
 * memory retired at t. So a section either read memory that was not
 * reused, or learns at its end that it may have. The writer reuses memory
 * only after it was retired for T (its --reclaim-after, default 1 s) or
 * when short of memory, so honest sections almost never retry — and the
 * reader writes nothing that another process can see or change.
 *
 * Map liveness is process-local: a thread pins a map before it reads its
 * header, a map that was replaced (retired) is unmapped only by a thread
 * holding the handle's lock that finds no pin on it. The pin (a seq_cst
 * RMW) is ordered before the reader's load of `retired`; the unmapper's
 * store of `retired` (seq_cst) before its loads of the pins: one of the two
 * sees the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "reader_internal.h"
#include "regdir.h"

#define OPEN_TRIES    8
#define BEGIN_TRIES   64
#define GONE_RETRY_NS 100000000 /* reopen attempts on a gone registry: 10/s */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void map_unmap(struct disc_map *m)
{
    if (m->base)
        munmap((void *)m->base, m->size);
    if (m->fd >= 0)
        close(m->fd);
    m->base = NULL;
    m->hdr = NULL;
    m->fd = -1;
    m->unmapped = 1;
}

static void map_free(struct disc_map *m)
{
    if (m) {
        map_unmap(m);
        free(m);
    }
}

static struct disc_map *map_new(void)
{
    /* 64-byte aligned so each pin line is its own cache line */
    struct disc_map *m = aligned_alloc(64, (sizeof(struct disc_map) + 63) & ~(size_t)63);
    if (m) {
        memset(m, 0, sizeof(*m));
        m->fd = -1;
    }
    return m;
}

uint32_t disc__record_ck(unsigned flags, const void *rec, uint32_t size, uint32_t checksum_at)
{
    return (flags & DISC__FL_CK_FNV) ? disc_checksum_fnv1a(rec, size, checksum_at)
                                     : disc_checksum(rec, size, checksum_at);
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
        h->arena_off > h->arena_end || h->arena_end > st_size)
        return -EBADMSG;
    /* The bytes after arena_end are never written: a string scan that
     * starts inside the mapping always meets a NUL before its end. */
    if (st_size - h->arena_end < 1)
        return -EBADMSG;
    return 0;
}

/* Map the checked object fd (size st_size) PROT_READ and validate its
 * header. Takes fd (kept for live segments, closed for images). */
static int map_fd(int fd, uint64_t st_size, uint64_t magic, struct disc_map **out)
{
    struct disc_map *m = map_new();
    if (!m) {
        close(fd);
        return -ENOMEM;
    }
    int rc;
    if (st_size < (uint64_t)DISC_HEADER_SIZE + (magic == DISC_IMAGE_MAGIC ? 4096 : 0) ||
        st_size > UINT32_MAX + 4096ull) {
        close(fd);
        rc = -EBADMSG;
        goto fail;
    }
    m->size = st_size;
    /* PROT_READ: a reader cannot change what other readers see. A file-cache
     * image is mapped privately (nobody changes it under us). */
    void *p =
        mmap(NULL, m->size, PROT_READ, magic == DISC_IMAGE_MAGIC ? MAP_PRIVATE : MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    if (magic == DISC_IMAGE_MAGIC)
        close(fd);
    else
        m->fd = fd;
    m->base = p;
    m->hdr = p;
    if ((rc = check_header(m->hdr, m->size, magic)) < 0)
        goto fail;
    /* Which checksum the object's records (and an image's whole file)
     * carry: the header says, and it is written once, before the object
     * is renamed into place (an image is a private copy). */
    m->ck_flags = (m->hdr->features & DISC_FEAT_CHECKSUM_WORD) ? 0 : DISC__FL_CK_FNV;
    if (magic == DISC_IMAGE_MAGIC) {
        rc = -EBADMSG; /* truncated or damaged file */
        if (m->hdr->image_bytes != m->size ||
            disc__record_ck(m->ck_flags, p, (uint32_t)m->size,
                            offsetof(struct disc_hdr, image_checksum)) != m->hdr->image_checksum)
            goto fail;
    }
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

/* Open and check the registry directory `dir` and `name` in it. *owner is
 * the expected owner if owner_set, else it becomes the directory's owner. */
static int map_open_in(const char *dir, const char *name, uint32_t *owner, int owner_set, char *err,
                       size_t errlen, struct disc_map **out)
{
    int dfd = disc__open_dir(dir, owner, owner_set, err, errlen);
    if (dfd < 0)
        return dfd;
    struct stat st;
    int fd = disc__open_obj(dfd, dir, name, *owner, err, errlen, &st);
    close(dfd);
    if (fd < 0)
        return fd;
    int rc = map_fd(fd, (uint64_t)st.st_size, DISC_MAGIC, out);
    if (rc == -EBADMSG || rc == -EPROTONOSUPPORT)
        disc__msg(err, errlen, "%s/%s: %s", dir, name, disc_strerror(rc));
    return rc;
}

/* Map the file-cache image at `path` after the same ownership checks. */
static int map_open_image(const char *path, uint32_t *owner, int owner_set, char *err,
                          size_t errlen, struct disc_map **out)
{
    char dir[4096];
    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
        return -ENAMETOOLONG;
    char *slash = strrchr(dir, '/');
    const char *base = path;
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        base = path + (slash - dir) + 1;
        if (slash == dir)
            slash[1] = 0;
        else
            *slash = 0;
    }
    if (!*base)
        return -EINVAL;
    int dfd = disc__open_dir(dir, owner, owner_set, err, errlen);
    if (dfd < 0)
        return dfd;
    struct stat st;
    int fd = disc__open_obj(dfd, strcmp(dir, "/") ? dir : "", base, *owner, err, errlen, &st);
    close(dfd);
    if (fd < 0)
        return fd;
    int rc = map_fd(fd, (uint64_t)st.st_size, DISC_IMAGE_MAGIC, out);
    if (rc == -EBADMSG || rc == -EPROTONOSUPPORT)
        disc__msg(err, errlen, "%s: %s", path, disc_strerror(rc));
    return rc;
}

/* Reopen the handle's registry (same directory, same expected owner) with
 * retries across a concurrent writer restart. */
static int map_reopen(disc_handle *h, struct disc_map **out)
{
    int rc = -EAGAIN;
    for (int i = 0; i < OPEN_TRIES && rc == -EAGAIN; i++) {
        uint32_t owner = h->owner;
        rc = map_open_in(h->dir, h->name, &owner, 1, NULL, 0, out);
        if (rc == -EBADMSG && i + 1 < OPEN_TRIES)
            rc = -EAGAIN; /* a half-replaced object cannot happen (rename), but be patient */
        if (rc == -EAGAIN) {
            struct timespec ts = {0, 1000000L << (i < 5 ? i : 5)};
            nanosleep(&ts, NULL);
        }
    }
    return rc;
}

static int handle_new(const char *name, const char *dir, uint32_t owner, unsigned flags,
                      struct disc_map *m, disc_handle **out)
{
    disc_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->dir, sizeof(h->dir), "%s", dir);
    h->flags = flags;
    h->owner = owner;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return -ENOMEM;
    }
    atomic_init(&h->cur, m);
    *out = h;
    return 0;
}

/* The expected owner: the option, else $DISCSHM_OWNER, else (0 returned
 * in *set) the directory's owner. */
static int resolve_owner(const struct disc_open_opts *o, uint32_t *owner, int *set, char *err,
                         size_t errlen)
{
    *set = 0;
    if (o && o->owner_set) {
        *owner = o->owner;
        *set = 1;
        return 0;
    }
    int rc = disc__owner_env(owner);
    if (rc < 0) {
        disc__msg(err, errlen, "$%s is not a decimal uid", DISC_OWNER_ENV);
        return rc;
    }
    *set = rc;
    return 0;
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

DISC_API int disc_open_ex(const struct disc_open_opts *o, disc_handle **out)
{
    static const struct disc_open_opts defaults;
    if (!o)
        o = &defaults;
    char *err = o->err;
    size_t errlen = err ? o->errlen : 0;
    if (err && errlen)
        err[0] = 0;
    if (!out)
        return -EINVAL;
    uint32_t owner;
    int owner_set, rc;
    struct disc_map *m = NULL;
    if ((rc = resolve_owner(o, &owner, &owner_set, err, errlen)) < 0)
        return rc;

    if (o->file) {
        if (o->flags & ~DISC_OPEN_VERIFY)
            return -EINVAL;
        if ((rc = map_open_image(o->file, &owner, owner_set, err, errlen, &m)) < 0)
            return rc;
        if ((rc = handle_new("", "", owner, o->flags, m, out)) < 0)
            map_free(m);
        return rc;
    }

    if (o->flags & ~(DISC_OPEN_VERIFY | DISC_OPEN_CACHE_FALLBACK))
        return -EINVAL;
    const char *name = o->name;
    if (!name)
        name = getenv(DISC_NAME_ENV);
    if (!name || !*name)
        name = DISC_DEFAULT_NAME;
    if (strlen(name) > 200)
        return -ENAMETOOLONG;
    if (!disc__name_ok(name)) {
        disc__msg(err, errlen, "invalid registry name \"%s\"", name);
        return -EINVAL;
    }
    char dir[4096];
    rc = -ENOENT;
    for (int i = 0;; i++) {
        if (o->dir) {
            if (i > 0)
                break;
            if (snprintf(dir, sizeof(dir), "%s", o->dir) >= (int)sizeof(dir))
                return -ENAMETOOLONG;
        } else if (!disc__dir_candidate(i, dir, sizeof(dir))) {
            break;
        }
        uint32_t own = owner;
        rc = map_open_in(dir, name, &own, owner_set, err, errlen, &m);
        if (rc == -ENOENT)
            continue; /* no such directory or registry there: next candidate */
        if (rc == 0)
            owner = own;
        break;
    }
    if (rc == -ENOENT && (o->flags & DISC_OPEN_CACHE_FALLBACK)) {
        /* No segment (discd not started yet, e.g. after a reboot): the last
         * picture discd saved, flagged DISC_ST_FROM_CACHE by disc_status. */
        char path[4096], ferr[512];
        if (o->cache)
            snprintf(path, sizeof(path), "%s", o->cache);
        else
            default_cache_path(name, path, sizeof(path));
        uint32_t own = owner;
        int frc = map_open_image(path, &own, owner_set, ferr, sizeof(ferr), &m);
        if (frc == -EPERM) {
            /* an untrusted cache is worth knowing about */
            disc__msg(err, errlen, "%s", ferr);
            return frc;
        }
        if (frc < 0)
            return rc; /* report the missing segment, not the cache */
        if ((rc = handle_new(name, "", own, o->flags & DISC_OPEN_VERIFY, m, out)) < 0)
            map_free(m);
        return rc;
    }
    if (rc == -ENOENT)
        disc__msg(err, errlen, "no registry \"%s\" (looked in %s%s)", name,
                  o->dir                 ? o->dir
                  : getenv(DISC_DIR_ENV) ? "$" DISC_DIR_ENV
                                         : "the default directories",
                  "");
    if (rc < 0)
        return rc;
    if ((rc = handle_new(name, dir, owner, o->flags & DISC_OPEN_VERIFY, m, out)) < 0)
        map_free(m);
    return rc;
}

DISC_API int disc_open(const char *name, unsigned flags, disc_handle **out)
{
    struct disc_open_opts o = {.name = name, .flags = flags};
    return disc_open_ex(&o, out);
}

DISC_API int disc_open_file(const char *path, unsigned flags, disc_handle **out)
{
    if (!path)
        return -EINVAL;
    struct disc_open_opts o = {.file = path, .flags = flags};
    return disc_open_ex(&o, out);
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

/* ---- pins ---------------------------------------------------------------- */

static unsigned pin_home(void)
{
    uint64_t x = (uint64_t)(uintptr_t)pthread_self();
    x ^= x >> 21;
    x *= 0x9e3779b97f4a7c15ull;
    return (unsigned)(x >> 60); /* 0..15 == DISC_PIN_LINES - 1 */
}
_Static_assert(DISC_PIN_LINES == 16, "pin_home yields 4 bits");

/* Pin m: a seq_cst RMW (ordered before the caller's load of m->retired).
 * Returns the line held, or -1 when counted in overflow. */
static int pin(struct disc_map *m)
{
    unsigned home = pin_home();
    for (unsigned k = 0; k < DISC_PIN_PROBE; k++) {
        unsigned i = (home + k) & (DISC_PIN_LINES - 1);
        uint32_t idle = 0;
        if (atomic_compare_exchange_strong(&m->pins[i].busy, &idle, 1))
            return (int)i;
    }
    atomic_fetch_add(&m->overflow, 1);
    return -1;
}

static void unpin(struct disc_map *m, int line)
{
    if (line >= 0)
        atomic_store_explicit(&m->pins[line].busy, 0, memory_order_release);
    else
        atomic_fetch_sub_explicit(&m->overflow, 1, memory_order_release);
}

static int map_pinned(struct disc_map *m)
{
    if (atomic_load(&m->overflow) != 0)
        return 1;
    for (int i = 0; i < DISC_PIN_LINES; i++)
        if (atomic_load(&m->pins[i].busy) != 0)
            return 1;
    return 0;
}

/* Unmap retired maps nobody pins. Caller holds h->lock. `retired` was
 * stored (seq_cst) before we load the pins (seq_cst); a section pins
 * (seq_cst RMW) before it loads `retired`: one side sees the other. */
static void sweep_retired(disc_handle *h)
{
    for (struct disc_map *m = h->retired; m; m = m->next)
        if (!m->unmapped && !map_pinned(m))
            map_unmap(m);
}

/* ---- gone registries and restarts ------------------------------------------- */

/* Has the data object behind m been removed? (fstat: a syscall, so callers
 * ration it.) */
static int object_removed(const struct disc_map *m)
{
    struct stat st;
    return m->fd >= 0 && fstat(m->fd, &st) == 0 && st.st_nlink == 0;
}

/* The segment behind m was recycled or removed: map its successor if there
 * is one. 0: followed (or someone else did), -EAGAIN: try again, -ENOENT:
 * no successor (m is then marked gone), other -errno. */
static int follow(disc_handle *h, struct disc_map *m)
{
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    if (atomic_load(&h->cur) == m && !h->dir[0]) {
        rc = -ENOENT; /* a file-cache image has no successor */
    } else if (atomic_load(&h->cur) == m) {
        int64_t now = mono_ns();
        if (atomic_load(&m->gone) && now < m->next_retry_ns) {
            rc = -ENOENT;
        } else {
            struct disc_map *nm;
            rc = map_reopen(h, &nm);
            if (rc == 0 && nm->segment_id == m->segment_id) {
                /* Still the same object (successor not renamed in yet). */
                map_free(nm);
                rc = -EAGAIN;
            } else if (rc == 0) {
                atomic_store(&m->retired, 1);
                m->next = h->retired;
                h->retired = m;
                atomic_store_explicit(&h->cur, nm, memory_order_release);
            } else if (rc == -ENOENT) {
                atomic_store(&m->gone, 1);
                m->next_retry_ns = now + GONE_RETRY_NS;
            }
        }
    }
    sweep_retired(h);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* Is the writer of a removed segment gone too (so the data will never
 * change again)? It removed the objects itself, stopped, or stopped
 * heartbeating (the rule of disc_status, stale.c). */
static int writer_gone(const struct disc_map *m)
{
    if (atomic_load_explicit(&m->hdr->status, memory_order_acquire) == DISC_SEG_GONE)
        return 1;
    struct disc_liveness lv;
    return disc__writer_liveness(m, &lv) != DISC_WRITER_ALIVE_;
}

/* ---- read sections ------------------------------------------------------------ */

/* allow_gone: disc_status reads a gone registry's last picture to report it. */
static int read_begin(disc_handle *h, struct disc_read *rd, int allow_gone)
{
    if (!h || !rd)
        return -EINVAL;
    for (int tries = 0; tries < BEGIN_TRIES; tries++) {
        struct disc_map *m = atomic_load_explicit(&h->cur, memory_order_acquire);
        int line = pin(m);
        if (atomic_load(&m->retired)) {
            unpin(m, line); /* replaced meanwhile: take the new one */
            continue;
        }
        /* Pinned and not retired: m stays mapped until we unpin. */
        const struct disc_hdr *hdr = m->hdr;
        uint32_t status = atomic_load_explicit(&hdr->status, memory_order_acquire);
        if (line >= 0 && ++m->pins[line].sections % DISC_GONE_CHECK_EVERY == 0 &&
            !atomic_load_explicit(&m->gone, memory_order_relaxed) && object_removed(m))
            atomic_store(&m->gone, 1);
        if (status != DISC_SEG_ALIVE || atomic_load_explicit(&m->gone, memory_order_relaxed)) {
            int dead = status == DISC_SEG_RECYCLED || writer_gone(m);
            unpin(m, line);
            int rc = follow(h, m);
            if (rc == 0 || rc == -EAGAIN)
                continue;
            if (rc != -ENOENT)
                return rc;
            if (dead && !allow_gone)
                return -ENOENT; /* removed, and nobody will ever update it */
            line = pin(m);
            if (atomic_load(&m->retired)) {
                unpin(m, line);
                continue;
            }
            /* a live writer whose object was unlinked: serve, flagged */
        }
        uint64_t a = atomic_load_explicit(&hdr->gen, memory_order_acquire);
        uint64_t root = atomic_load_explicit(&hdr->root, memory_order_acquire);
        rd->h_ = h;
        rd->map_ = m;
        rd->base_ = m->base;
        rd->root_ = root;
        rd->gen_ = a;
        rd->svc_ = 0;
        rd->svc_n_ = 0;
        rd->slot_ = (int16_t)line;
        rd->flags_ = (uint16_t)(h->flags | m->ck_flags);
        rd->work_ = 0; /* the work budget is computed on first use (lookup.c) */
        /* The snapshot's offset and type: checked here unless a section of
         * this map already validated the snapshot of this very root word
         * (the geometry cache holds it; the bounds of an offset never
         * change, and the type cannot while the root still names it). */
        if (!disc__geo_known(m, root) &&
            !disc__rec(m, (uint32_t)rd->root_, sizeof(struct disc_snapshot), DISC_REC_SNAPSHOT)) {
            int rc = disc_read_end(rd);
            if (rc == -EAGAIN)
                continue;
            return -EBADMSG;
        }
        return 0;
    }
    return -EAGAIN;
}

DISC_API int disc_read_begin(disc_handle *h, struct disc_read *rd)
{
    return read_begin(h, rd, 0);
}

DISC_API int disc_read_end(struct disc_read *rd)
{
    struct disc_map *m = rd ? rd->map_ : NULL;
    if (!m)
        return -EINVAL;
    /* Everything we read happens before we look at the writer's word. */
    atomic_thread_fence(memory_order_acquire);
    uint64_t limit = atomic_load_explicit(&m->hdr->reclaimed_upto, memory_order_relaxed);
    unpin(m, rd->slot_); /* release: our reads are done before an unmap */
    rd->map_ = NULL;
    return rd->gen_ >= limit ? 0 : -EAGAIN;
}

DISC_API uint64_t disc_read_generation(const struct disc_read *rd)
{
    const struct disc_map *m = rd->map_;
    const struct disc_snapshot *s =
        m ? disc__rec(m, (uint32_t)rd->root_, sizeof(struct disc_snapshot), DISC_REC_SNAPSHOT)
          : NULL;
    return s ? s->gen : rd->gen_;
}

/* ---- status and change notification ----------------------------------------- */

DISC_API int disc_status(disc_handle *h, struct disc_status *st)
{
    if (!h || !st)
        return -EINVAL;
    memset(st, 0, sizeof(*st));
    struct disc_read rd;
    int rc, tries = 0, followed = 0;
    do {
        if ((rc = read_begin(h, &rd, 1)) < 0)
            return rc;
        struct disc_map *m = rd.map_;
        /* loaded once: another thread may mark m gone meanwhile, after it
         * followed to a successor that this section does not read */
        int gone = atomic_load(&m->gone);
        if (!gone && object_removed(m)) {
            atomic_store(&m->gone, 1);
            gone = 1;
        }
        if (gone && followed != 1) {
            /* Removed (or another thread found it so after our begin):
             * look for a successor before reporting it gone. Gone is
             * reported only when follow finds none (-ENOENT). */
            disc_read_end(&rd);
            int frc = follow(h, m);
            if (frc < 0 && frc != -ENOENT && frc != -EAGAIN)
                return frc;
            followed = frc == -ENOENT;
            tries++;
            continue;
        }
        const struct disc_hdr *hdr = m->hdr;
        const struct disc_snapshot *s =
            disc__rec(m, (uint32_t)rd.root_, sizeof(struct disc_snapshot), DISC_REC_SNAPSHOT);
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
        if (gone) {
            /* removed: the strongest reason there is */
            flags |= DISC_ST_GONE | DISC_ST_DEGRADED;
            st->degraded_reason = DISC_DEG_REMOVED;
        }
        st->flags = flags;
        st->stale = disc_read_stale(&rd);
        rc = s ? 0 : -EBADMSG;
        if (disc_read_end(&rd) != -EAGAIN)
            break;
    } while (++tries < BEGIN_TRIES);
    /* a good moment to unmap what other threads left pinned at the last follow */
    if (pthread_mutex_trylock(&h->lock) == 0) { /* h->retired is the lock's */
        if (h->retired)
            sweep_retired(h);
        pthread_mutex_unlock(&h->lock);
    }
    return rc;
}

DISC_API int disc_wait_change(disc_handle *h, uint32_t *seen, int timeout_ms)
{
    if (!h || !seen)
        return -EINVAL;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        struct disc_map *m = atomic_load_explicit(&h->cur, memory_order_acquire);
        /* Pin the map (without a line: a wait is long) so it stays mapped. */
        atomic_fetch_add(&m->overflow, 1);
        if (atomic_load(&m->retired)) {
            atomic_fetch_sub(&m->overflow, 1);
            continue;
        }
        const struct disc_hdr *hdr = m->hdr;
        uint32_t status = atomic_load_explicit(&hdr->status, memory_order_acquire);
        int was_gone = atomic_load(&m->gone);
        if (status != DISC_SEG_ALIVE || was_gone) {
            atomic_fetch_sub(&m->overflow, 1);
            int rc = follow(h, m);
            if (rc == 0) {
                m = atomic_load(&h->cur);
                atomic_fetch_add(&m->overflow, 1);
                if (!atomic_load(&m->retired))
                    *seen = atomic_load_explicit(&m->hdr->change_seq, memory_order_acquire);
                atomic_fetch_sub(&m->overflow, 1);
                return 0;
            }
            if (rc == -ENOENT && !was_gone)
                return 0; /* just found gone: worth waking for (see DISC_ST_GONE) */
            if (rc != -EAGAIN && rc != -ENOENT)
                return rc;
            /* gone (or a restart in progress): look again every 100 ms */
            int64_t left = deadline - mono_ns();
            if (left <= 0)
                return -ETIMEDOUT;
            struct timespec ts = {0, left < 100000000 ? left : 100000000};
            nanosleep(&ts, NULL);
            continue;
        }
        uint32_t cur = atomic_load_explicit(&hdr->change_seq, memory_order_acquire);
        if (cur != *seen) {
            atomic_fetch_sub(&m->overflow, 1);
            *seen = cur;
            return 0;
        }
        int64_t left = deadline - mono_ns();
        if (left <= 0) {
            atomic_fetch_sub(&m->overflow, 1);
            return -ETIMEDOUT;
        }
        if (left > 200000000)
            left = 200000000; /* re-check RECYCLED and removal now and then */
        struct timespec ts = {left / 1000000000, left % 1000000000};
        /* A shared (not PRIVATE) futex: the writer wakes it through its own
         * mapping of the same object. Waiting needs only read access. */
        long w =
            syscall(SYS_futex, (const uint32_t *)&hdr->change_seq, FUTEX_WAIT, cur, &ts, NULL, 0);
        if (w < 0 && errno == ETIMEDOUT && object_removed(m))
            atomic_store(&m->gone, 1);
        atomic_fetch_sub(&m->overflow, 1);
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
        return "registry memory was reused during the read; try again";
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
    case -EPERM:
        return "registry not trusted: an object or directory has the wrong owner, type or mode "
               "(disc_open_ex reports which)";
    default:
        return rc < 0 ? strerror(-rc) : "unknown";
    }
}
