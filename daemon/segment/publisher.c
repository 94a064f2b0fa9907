/* SPDX-License-Identifier: MIT */
/* publisher.c — drains registry changes into the segment (see publisher.h). */
#include "publisher.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct publisher {
    struct registry *reg;
    struct seg_writer *w;
    uint32_t coalesce_ms, coalesce_max, tick_ms;
    char *cache_file; /* NULL: no file cache */
    uint32_t cache_interval_ms;
    bool cache_dirty;       /* committed since the last export */
    int64_t next_export_us; /* rate limit */
    int last_cache_error;   /* log a failure once per streak */
    pthread_t thread;
    /* The writer and everything below "publisher thread only" belong to
     * whoever holds wmu: the publisher thread for its turns, or a thread
     * allowed to commit inline (publisher_allow_inline) for an idle one. */
    pthread_mutex_t wmu;
    pthread_t inline_threads[PUBLISHER_INLINE_MAX]; /* (mu) allowed to commit inline */
    size_t n_inline;                                /* (mu) */
    _Atomic int64_t last_commit_us;                 /* end of the last turn that committed */
    bool kick;                                      /* (mu) the thread has a carry to publish */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool stop;
    /* pending header state, applied by the thread (mu) */
    bool state_dirty, snap_dirty;
    uint32_t st_flags, st_reason, st_held, snap_flags;
    int64_t st_since, st_sync;
    struct publisher_stats stats;   /* mu */
    struct metrics_hist latency;    /* stage+commit durations of publishes */
    pthread_mutex_t lmu;            /* held while the listener runs */
    publisher_listener_fn listener; /* lmu */
    void *listener_arg;
    /* publisher thread only: changes taken from the registry, not yet published */
    struct registry_change **carry;
    size_t n_carry, cap_carry;
    uint64_t taken_seq; /* newest seq taken */
    int stuck_error;    /* last publish_carry could not publish everything */
    bool stuck_logged;
    struct publisher_reject *rej; /* refusals of this turn */
    size_t n_rej, cap_rej;
    /* growth (publisher thread only) */
    uint64_t max_bytes;
    int64_t grow_retry_us; /* no roll-over attempt before this (file system full) */
    char full_cause[160];  /* why the segment cannot grow, for refusals */
    /* deferred install (mu) */
    bool installed, install_req;
    bool report_owed; /* publisher thread: progress not told yet (not installed) */
    int install_rc;
    pthread_cond_t done; /* CLOCK_MONOTONIC: install finished */
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void wait_until_us(struct publisher *p, int64_t deadline_us)
{
    struct timespec ts = {(time_t)(deadline_us / 1000000), (long)(deadline_us % 1000000) * 1000};
    pthread_cond_timedwait(&p->cond, &p->mu, &ts);
}

static bool is_local_put(const struct registry_change *c)
{
    return c->put && c->put->origin == DISC_ORIGIN_LOCAL;
}

static void free_change(struct registry_change *c)
{
    c->next = NULL;
    registry_free_changes(c);
}

static void add_reject(struct publisher *p, const struct registry_change *c, int error)
{
    if (p->n_rej == p->cap_rej) {
        size_t ncap = p->cap_rej ? p->cap_rej * 2 : 16;
        struct publisher_reject *n = realloc(p->rej, ncap * sizeof(*n));
        if (!n) { /* the instance is then removed without its client being told why */
            log_error("publisher: out of memory reporting the refusal of %s", c->put->id);
            return;
        }
        p->rej = n;
        p->cap_rej = ncap;
    }
    struct publisher_reject *r = &p->rej[p->n_rej++];
    r->seq = c->seq;
    r->error = error;
    snprintf(r->id, sizeof(r->id), "%s", c->put->id);
    log_error("publisher: instance %s (%s) not published: %s%s%s", c->put->id, c->put->service,
              error == -ENOSPC ? "the segment is full" : strerror(-error),
              error == -ENOSPC && p->full_cause[0] ? ": " : "",
              error == -ENOSPC ? p->full_cause : "");
    pthread_mutex_lock(&p->mu);
    p->stats.rejected++;
    pthread_mutex_unlock(&p->mu);
}

/* Remove carry[i] (published or refused) keeping the order. */
static void carry_remove(struct publisher *p, size_t i)
{
    free_change(p->carry[i]);
    memmove(&p->carry[i], &p->carry[i + 1], (p->n_carry - i - 1) * sizeof(p->carry[0]));
    p->n_carry--;
}

/* Move the registry's queued changes to the end of the carry list, refusing
 * at once records the writer would never take (too large, bad fields).
 * Returns how many were taken. */
static size_t take_changes(struct publisher *p)
{
    size_t n = 0;
    struct registry_change *list = registry_take_changes(p->reg, &n);
    if (n > p->cap_carry - p->n_carry) {
        size_t ncap = p->cap_carry ? p->cap_carry : 64;
        while (ncap - p->n_carry < n)
            ncap *= 2;
        struct registry_change **nc = realloc(p->carry, ncap * sizeof(*nc));
        if (!nc) { /* cannot track them: publish nothing now, keep nothing lost */
            log_error("publisher: out of memory taking %zu changes; retrying", n);
            registry_free_changes(list); /* (cannot happen in practice: tiny) */
            return 0;
        }
        p->carry = nc;
        p->cap_carry = ncap;
    }
    while (list) {
        struct registry_change *c = list;
        list = list->next;
        c->next = NULL;
        if (c->seq > p->taken_seq)
            p->taken_seq = c->seq;
        if (c->put) {
            struct segw_instance si;
            instance_to_segw(c->put, &si);
            long size = segw_record_size(&si);
            if (size < 0) {
                if (is_local_put(c)) {
                    add_reject(p, c, (int)size);
                } else {
                    log_error("publisher: remote instance %s (%s) not published: %s", c->put->id,
                              c->put->service, strerror((int)-size));
                    pthread_mutex_lock(&p->mu);
                    p->stats.dropped_remote++;
                    pthread_mutex_unlock(&p->mu);
                }
                free_change(c);
                continue;
            }
        }
        p->carry[p->n_carry++] = c;
    }
    if (n > 0) {
        pthread_mutex_lock(&p->mu);
        p->stats.changes += n;
        pthread_mutex_unlock(&p->mu);
    }
    return n;
}

/* Stage carry[0, upto). 0, or -ENOSPC / -ENOMEM (the caller unstages). */
static int stage_prefix(struct publisher *p, size_t upto)
{
    for (size_t i = 0; i < upto; i++) {
        struct registry_change *c = p->carry[i];
        int rc;
        if (c->put) {
            struct segw_instance si;
            instance_to_segw(c->put, &si);
            rc = segw_put(p->w, &si);
        } else {
            rc = segw_del(p->w, c->del_id);
            if (rc == -ENOENT) /* never published (e.g. refused): nothing to remove */
                rc = 0;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Index just past the prefix holding the first `want` local puts (and every
 * other change before the next local put): [0, result). */
static size_t prefix_end(const struct publisher *p, size_t want)
{
    size_t seen = 0;
    for (size_t i = 0; i < p->n_carry; i++) {
        if (is_local_put(p->carry[i])) {
            if (seen == want)
                return i;
            seen++;
        }
    }
    return p->n_carry;
}

/* Do the puts of carry[0, upto) (only the local ones if local_only), plus
 * reserves x the arena's reserve (1/32 of it, at least
 * PUBLISHER_RESERVE_MIN), fit in the arena as it is (counting retired
 * memory as used: it is not allocatable yet)? */
static bool carry_fits(struct publisher *p, size_t upto, bool local_only, uint64_t reserves)
{
    struct segw_stats st;
    segw_stats(p->w, &st);
    uint64_t reserve =
        st.arena_bytes / 32 > PUBLISHER_RESERVE_MIN ? st.arena_bytes / 32 : PUBLISHER_RESERVE_MIN;
    uint64_t need = reserves * reserve;
    for (size_t i = 0; i < upto; i++) {
        if (!p->carry[i]->put || (local_only && !is_local_put(p->carry[i])))
            continue;
        struct segw_instance si;
        instance_to_segw(p->carry[i]->put, &si);
        long n = segw_record_size(&si);
        need += n > 0 ? (uint64_t)n : 0;
    }
    return st.used_bytes + need <= st.arena_bytes;
}

/* Do the local puts of carry[0, upto) leave the reserve of the arena free? */
static bool fits_above_reserve(struct publisher *p, size_t upto)
{
    return carry_fits(p, upto, true, 1);
}

/*
 * The arena cannot take carry[0, upto): roll over to a larger segment.
 * The new size doubles the current one, and doubles again while the live
 * records plus the batch plus the reserve would fill more than half of it
 * (so one roll is enough for the batch and leaves room to grow), capped
 * at max_bytes. 0 when grown; -ENOSPC (with full_cause set) when it cannot.
 */
static int try_grow(struct publisher *p, size_t upto)
{
    struct segw_stats st;
    segw_stats(p->w, &st);
    if (st.segment_bytes >= p->max_bytes) {
        snprintf(p->full_cause, sizeof(p->full_cause), "it is at --max-segment-size (%llu bytes)",
                 (unsigned long long)p->max_bytes);
        return -ENOSPC;
    }
    int64_t t0 = mono_us();
    if (t0 < p->grow_retry_us)
        return -ENOSPC; /* full_cause still says why the last attempt failed */
    uint64_t need = st.used_bytes - st.retired_bytes + PUBLISHER_RESERVE_MIN;
    for (size_t i = 0; i < upto; i++) {
        if (!p->carry[i]->put)
            continue;
        struct segw_instance si;
        instance_to_segw(p->carry[i]->put, &si);
        long n = segw_record_size(&si);
        need += n > 0 ? (uint64_t)n + 64 : 0; /* + its share of tables and service records */
    }
    uint64_t size = segw_grow_size(st.segment_bytes, need, p->max_bytes);
    int rc = segw_grow(p->w, size);
    int64_t t1 = mono_us();
    pthread_mutex_lock(&p->mu);
    if (rc == 0) {
        p->stats.grows++;
        p->stats.last_grow_us = (uint64_t)(t1 - t0);
    } else {
        p->stats.grow_errors++;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == 0) {
        log_info("publisher: segment grown from %llu to %llu bytes (%u instances copied in %lld "
                 "us); readers move to it at their next read",
                 (unsigned long long)st.segment_bytes, (unsigned long long)size, st.n_instances,
                 (long long)(t1 - t0));
        p->full_cause[0] = 0;
        return 0;
    }
    snprintf(p->full_cause, sizeof(p->full_cause),
             "cannot grow it from %llu to %llu bytes in %s: %s",
             (unsigned long long)st.segment_bytes, (unsigned long long)size, segw_dir(p->w),
             strerror(-rc));
    log_error("publisher: %s; the current segment keeps serving", p->full_cause);
    p->grow_retry_us = t1 + 5000000; /* a full file system: do not copy again at once */
    return -ENOSPC;
}

/*
 * Publish the carry list, in order. When the arena cannot take it all,
 * publish the longest prefix (halving its local puts) that fits; a local put
 * that does not fit alone is refused; if changes that are not local puts do
 * not fit, every local put left is refused and the rest stays for the next
 * turn (stuck). Returns the number of commits made.
 */
static int publish_carry(struct publisher *p, int64_t *last_gen)
{
    int commits = 0;
    p->stuck_error = 0;
    while (p->n_carry > 0) {
        size_t locals = 0;
        for (size_t i = 0; i < p->n_carry; i++)
            locals += is_local_put(p->carry[i]);
        size_t want = locals;
        for (;;) {
            size_t upto = prefix_end(p, want);
            if (upto == 0) { /* carry[0] is a local put that does not fit by itself */
                add_reject(p, p->carry[0], -ENOSPC);
                carry_remove(p, 0);
                break;
            }
            /* New registrations may not eat into the reserve that keeps
             * removals (which need new tables) publishable. */
            int64_t gen = want > 0 && !fits_above_reserve(p, upto) ? -ENOSPC : 0;
            if (gen == 0)
                gen = stage_prefix(p, upto);
            if (gen == 0)
                gen = segw_pending(p->w) > 0 ? segw_commit(p->w) : 0;
            if (gen >= 0) {
                if (gen > 0) {
                    commits++;
                    *last_gen = gen;
                }
                for (size_t i = 0; i < upto; i++)
                    free_change(p->carry[i]);
                memmove(p->carry, p->carry + upto, (p->n_carry - upto) * sizeof(p->carry[0]));
                p->n_carry -= upto;
                break;
            }
            segw_unstage(p->w);
            if (gen == -ENOSPC && try_grow(p, upto) == 0)
                continue; /* the same batch again, in the larger segment */
            if (gen != -ENOSPC) {
                p->stuck_error = (int)gen;
                log_error("publisher: commit of %zu changes failed: %s (kept, will retry)", upto,
                          strerror((int)-gen));
                return commits;
            }
            if (want > 0) {
                want /= 2;
                continue;
            }
            /* Even without new registrations the segment is full: refuse every
             * local put still queued, keep the rest for later turns. */
            for (size_t i = p->n_carry; i-- > 0;) {
                if (is_local_put(p->carry[i])) {
                    add_reject(p, p->carry[i], -ENOSPC);
                    carry_remove(p, i);
                }
            }
            p->stuck_error = -ENOSPC;
            if (!p->stuck_logged)
                log_error("publisher: the segment is full: %zu removals/remote changes cannot be "
                          "published (kept, retried every tick); registrations are refused "
                          "until space is free (%s)",
                          p->n_carry, p->full_cause[0] ? p->full_cause : "it cannot grow");
            p->stuck_logged = true;
            return commits;
        }
    }
    if (p->stuck_logged)
        log_info("publisher: the segment has room again; every kept change is published");
    p->stuck_logged = false;
    return commits;
}

/* Tell the listener (or, without one, remove refused instances here). */
static void report(struct publisher *p)
{
    struct publisher_progress pr = {
        .done_seq = p->n_carry ? p->carry[0]->seq - 1 : p->taken_seq,
        .generation = segw_generation(p->w),
        .stuck_seq = p->n_carry ? p->taken_seq : 0,
        .stuck_error = p->n_carry ? (p->stuck_error ? p->stuck_error : -EAGAIN) : 0,
    };
    p->report_owed = false;
    pthread_mutex_lock(&p->lmu);
    if (p->listener) {
        p->listener(p->listener_arg, &pr, p->rej, p->n_rej);
        pthread_mutex_unlock(&p->lmu);
    } else {
        pthread_mutex_unlock(&p->lmu);
        for (size_t i = 0; i < p->n_rej; i++)
            registry_remove_local(p->reg, p->rej[i].id, "not published: the segment is full", NULL);
    }
    p->n_rej = 0;
}

static void apply_state(struct publisher *p)
{
    pthread_mutex_lock(&p->mu);
    bool st = p->state_dirty, snap = p->snap_dirty;
    uint32_t flags = p->st_flags, reason = p->st_reason, held = p->st_held;
    uint32_t sflags = p->snap_flags;
    int64_t since = p->st_since, sync = p->st_sync;
    p->state_dirty = p->snap_dirty = false;
    pthread_mutex_unlock(&p->mu);
    if (st)
        segw_set_state(p->w, flags, reason, since, sync, held);
    if (snap)
        segw_set_snapshot_flags(p->w, sflags);
}

/* Write the file cache when something changed and the rate limit allows
 * (or unconditionally when final). Runs on the publisher thread, between
 * commits, so the image is one consistent generation. */
static void maybe_export(struct publisher *p, int64_t now, bool final)
{
    if (!p->cache_file || !p->cache_dirty || (!final && now < p->next_export_us))
        return;
    int64_t rc = segw_export(p->w, p->cache_file);
    p->next_export_us = now + (int64_t)p->cache_interval_ms * 1000;
    pthread_mutex_lock(&p->mu);
    if (rc < 0)
        p->stats.cache_errors++;
    else
        p->stats.cache_writes++;
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) {
        if (p->last_cache_error != (int)rc)
            log_error("publisher: cannot write file cache %s: %s (will retry)", p->cache_file,
                      strerror((int)-rc));
        p->last_cache_error = (int)rc;
        return;
    }
    if (p->last_cache_error)
        log_info("publisher: file cache %s written again", p->cache_file);
    p->last_cache_error = 0;
    p->cache_dirty = false;
    log_debug("publisher: file cache %s: %lld bytes, generation %llu", p->cache_file, (long long)rc,
              (unsigned long long)segw_generation(p->w));
}

/* Put the deferred segment in place (after this turn's commit) and tell
 * publisher_install. */
static void install(struct publisher *p)
{
    int rc = segw_install(p->w);
    if (rc < 0)
        log_error("publisher: cannot put the segment in place in %s: %s", segw_dir(p->w),
                  strerror(-rc));
    pthread_mutex_lock(&p->mu);
    p->installed = true; /* even on error: nothing is held back forever */
    p->install_rc = rc;
    pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->mu);
}

/*
 * One turn, wmu held: take what the registry queued, publish it (with
 * whatever a previous turn kept), put a deferred segment in place when asked,
 * tell the listener and count. coalesced: the changes are part of a stream
 * (counted as such); inline_turn: made on the thread that changed the
 * registry (publisher_allow_inline); taken: changes the caller already moved
 * to the carry. Returns the generation committed (0: none).
 */
static int64_t run_turn(struct publisher *p, bool coalesced, bool want_install, bool inline_turn,
                        size_t taken)
{
    apply_state(p);
    int64_t t0 = mono_us();
    size_t n = taken + take_changes(p);
    int64_t gen = 0;
    int commits = 0;
    if (p->n_carry > 0)
        commits = publish_carry(p, &gen);
    if (want_install)
        install(p);
    if ((n > 0 || commits > 0 || p->n_rej > 0 || p->report_owed) && p->installed)
        report(p);
    else if (n > 0 || commits > 0 || p->n_rej > 0)
        p->report_owed = true; /* told once the segment is in place */
    int64_t t1 = mono_us();
    if (commits > 0)
        atomic_store_explicit(&p->last_commit_us, t1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    if (gen > 0) {
        p->stats.commits += (uint64_t)commits;
        if (coalesced)
            p->stats.coalesced_commits += (uint64_t)commits;
        else
            p->stats.idle_commits += (uint64_t)commits;
        if (inline_turn)
            p->stats.inline_commits += (uint64_t)commits;
        p->stats.generation = (uint64_t)gen;
        p->stats.last_commit_us = (uint64_t)(t1 - t0);
        segw_stats(p->w, &p->stats.seg); /* arena and reclaim figures for status/metrics */
    }
    if (p->stuck_error)
        p->stats.commit_errors++;
    pthread_mutex_unlock(&p->mu);
    if (gen > 0) {
        metrics_hist_observe(&p->latency, (uint64_t)(t1 - t0));
        log_debug("publisher: generation %lld: %zu changes in %lld us%s", (long long)gen, n,
                  (long long)(t1 - t0), inline_turn ? " (on the changing thread)" : "");
        p->cache_dirty = true;
    }
    return gen;
}

/*
 * Room for the inline path: the local puts taken, the reserve and as much
 * again for the tables a commit copies fit in the arena as it is, so the
 * commit cannot need a roll-over (which copies every record and belongs on
 * the publisher thread) nor a refusal.
 */
static bool inline_fits(struct publisher *p)
{
    return carry_fits(p, p->n_carry, false, 2);
}

/* Whether the calling thread may commit inline (mu held). */
static bool inline_allowed_locked(const struct publisher *p)
{
    for (size_t i = 0; i < p->n_inline; i++)
        if (pthread_equal(pthread_self(), p->inline_threads[i]))
            return true;
    return false;
}

/*
 * The registry's notify callback, on the thread that changed it. On a
 * thread allowed to (publisher_allow_inline), a change that finds the
 * publisher idle is committed right here: no hand-off to the publisher
 * thread, no wake-up between the change and its visibility. Otherwise (a
 * stream, a turn under way, a deferred segment, kept changes, an arena that
 * may need to grow) the publisher thread is woken as before.
 */
static void on_registry_change(void *arg)
{
    struct publisher *p = arg;
    pthread_mutex_lock(&p->mu);
    bool allowed = inline_allowed_locked(p);
    pthread_mutex_unlock(&p->mu);
    /* Several threads may be allowed; wmu keeps one writer at a time, and a
     * thread that finds it taken (a turn or another inline commit under
     * way) hands its change to the publisher thread, which takes the queue
     * in order. */
    if (allowed && pthread_mutex_trylock(&p->wmu) == 0) {
        int64_t now = mono_us();
        bool idle = now - atomic_load_explicit(&p->last_commit_us, memory_order_relaxed) >=
                    (int64_t)p->coalesce_ms * 1000;
        pthread_mutex_lock(&p->mu);
        bool ready = p->installed && !p->stop && !(p->install_req && !p->installed);
        pthread_mutex_unlock(&p->mu);
        bool done = false;
        if (idle && ready && p->n_carry == 0 && !p->stuck_error) {
            size_t taken = take_changes(p);
            if (inline_fits(p)) {
                run_turn(p, false, false, true, taken);
                done = true;
            } else if (taken > 0) {
                p->report_owed = true; /* the thread's turn publishes and reports them */
            }
        }
        pthread_mutex_unlock(&p->wmu);
        if (done)
            return;
        /* changes taken but left for the thread: it publishes the carry */
        pthread_mutex_lock(&p->mu);
        p->kick = true;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_lock(&p->mu);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    pthread_setname_np(pthread_self(), "disc-publish"); /* for top, perf and traces */
    int64_t next_tick = mono_us() + (int64_t)p->tick_ms * 1000;
    /* A change that finds the publisher idle — nothing committed for the
     * last coalesce_ms — is published at once. One that comes sooner is
     * part of a stream: it joins the next commit, made coalesce_ms after
     * the previous one ended (or once coalesce_max changes are queued). */
    const int64_t window_us = (int64_t)p->coalesce_ms * 1000;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && !p->state_dirty && !p->snap_dirty && !p->kick &&
               !(p->install_req && !p->installed) && registry_pending_changes(p->reg) == 0 &&
               mono_us() < next_tick)
            wait_until_us(p, next_tick);
        size_t pending = registry_pending_changes(p->reg);
        int64_t until = atomic_load_explicit(&p->last_commit_us, memory_order_relaxed) + window_us;
        bool coalesced = pending > 0 && mono_us() < until; /* not idle: part of a stream */
        while (coalesced && !p->stop && pending > 0 && pending < p->coalesce_max &&
               mono_us() < until) {
            wait_until_us(p, until);
            pending = registry_pending_changes(p->reg);
        }
        bool stopping = p->stop, want_install = p->install_req && !p->installed;
        p->kick = false;
        pthread_mutex_unlock(&p->mu);

        pthread_mutex_lock(&p->wmu);
        run_turn(p, coalesced, want_install, false, 0);
        int64_t t1 = mono_us();
        bool ticked = t1 >= next_tick;
        if (ticked) {
            segw_tick(p->w);
            next_tick = t1 + (int64_t)p->tick_ms * 1000;
            pthread_mutex_lock(&p->mu);
            p->stats.ticks++;
            segw_stats(p->w, &p->stats.seg);
            pthread_mutex_unlock(&p->mu);
        }
        maybe_export(p, t1, stopping);
        pthread_mutex_unlock(&p->wmu);
        if (stopping)
            break;
    }
    return NULL;
}

int publisher_start(struct registry *reg, const struct publisher_config *cfg,
                    struct publisher **out)
{
    struct publisher *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->reg = reg;
    p->coalesce_ms = cfg->coalesce_ms;
    p->coalesce_max = cfg->coalesce_max ? cfg->coalesce_max : 1024;
    p->tick_ms = cfg->tick_ms ? cfg->tick_ms : 250;
    p->max_bytes = cfg->max_segment_bytes ? cfg->max_segment_bytes : SEGW_MAX_SEGMENT_BYTES;
    if (p->max_bytes > SEGW_MAX_SEGMENT_BYTES)
        p->max_bytes = SEGW_MAX_SEGMENT_BYTES;
    /* Readers call the writer dead after 8 missed ticks, at least 2 s
     * (documented with DISC_WRITER_DEAD_MS in discshm.h). */
    struct segw_config scfg = cfg->segw;
    scfg.dead_after_ms = p->tick_ms * 8 > 2000 ? p->tick_ms * 8 : 2000;
    p->cache_interval_ms = cfg->cache_interval_ms ? cfg->cache_interval_ms : 2000;
    if (cfg->cache_file && *cfg->cache_file && !(p->cache_file = strdup(cfg->cache_file))) {
        free(p);
        return -ENOMEM;
    }
    int rc = segw_open(cfg->name, &scfg, &p->w);
    if (rc < 0) {
        free(p->cache_file);
        free(p);
        return rc;
    }
    p->stats.generation = segw_generation(p->w);
    segw_stats(p->w, &p->stats.seg);
    p->installed = !scfg.defer_install;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_cond_init(&p->done, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->wmu, NULL);
    pthread_mutex_init(&p->lmu, NULL);
    atomic_init(&p->last_commit_us, mono_us() - (int64_t)p->coalesce_ms * 1000);
    registry_set_notify(reg, on_registry_change, p);
    rc = pthread_create(&p->thread, NULL, publisher_main, p);
    if (rc != 0) {
        registry_set_notify(reg, NULL, NULL);
        segw_close(p->w, false);
        pthread_cond_destroy(&p->cond);
        pthread_cond_destroy(&p->done);
        pthread_mutex_destroy(&p->mu);
        pthread_mutex_destroy(&p->wmu);
        pthread_mutex_destroy(&p->lmu);
        free(p->cache_file);
        free(p);
        return -rc;
    }
    *out = p;
    return 0;
}

void publisher_stop(struct publisher *p, bool unlink)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    registry_set_notify(p->reg, NULL, NULL);
    segw_mark_stopped(p->w); /* readers say "dead since" now, not a threshold later */
    for (size_t i = 0; i < p->n_carry; i++)
        free_change(p->carry[i]);
    free(p->carry);
    free(p->rej);
    segw_close(p->w, unlink);
    pthread_cond_destroy(&p->cond);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->wmu);
    pthread_mutex_destroy(&p->lmu);
    free(p->cache_file);
    free(p);
}

int publisher_allow_inline(struct publisher *p, bool on)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    size_t i = 0;
    while (i < p->n_inline && !pthread_equal(pthread_self(), p->inline_threads[i]))
        i++;
    if (!on && i < p->n_inline)
        p->inline_threads[i] = p->inline_threads[--p->n_inline];
    else if (on && i == p->n_inline && p->n_inline == PUBLISHER_INLINE_MAX)
        rc = -ENOSPC;
    else if (on && i == p->n_inline)
        p->inline_threads[p->n_inline++] = pthread_self();
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int publisher_install(struct publisher *p)
{
    pthread_mutex_lock(&p->mu);
    p->install_req = true;
    pthread_cond_signal(&p->cond);
    while (!p->installed && !p->stop)
        pthread_cond_wait(&p->done, &p->mu);
    int rc = p->installed ? p->install_rc : -ECANCELED;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void publisher_announce_stop(struct publisher *p)
{
    if (p)
        segw_mark_stopped(p->w);
}

void publisher_set_listener(struct publisher *p, publisher_listener_fn fn, void *arg)
{
    pthread_mutex_lock(&p->lmu);
    p->listener = fn;
    p->listener_arg = arg;
    pthread_mutex_unlock(&p->lmu);
}

void publisher_get_stats(struct publisher *p, struct publisher_stats *st)
{
    pthread_mutex_lock(&p->mu);
    *st = p->stats;
    pthread_mutex_unlock(&p->mu);
}

const struct metrics_hist *publisher_latency(struct publisher *p)
{
    return &p->latency;
}

void publisher_set_state(struct publisher *p, uint32_t flags, uint32_t degraded_reason,
                         int64_t degraded_since_ms, int64_t last_sync_ms, uint32_t held_changes)
{
    pthread_mutex_lock(&p->mu);
    p->st_flags = flags;
    p->st_reason = degraded_reason;
    p->st_since = degraded_since_ms;
    p->st_sync = last_sync_ms;
    p->st_held = held_changes;
    p->state_dirty = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

void publisher_set_snapshot_flags(struct publisher *p, uint32_t flags)
{
    pthread_mutex_lock(&p->mu);
    p->snap_flags = flags;
    p->snap_dirty = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}
