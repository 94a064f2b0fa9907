/* SPDX-License-Identifier: MIT */
/* publisher.c — drains registry changes into the segment (see publisher.h). */
#include "publisher.h"

#include <errno.h>
#include <pthread.h>
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
    pthread_mutex_t mu;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool stop;
    /* pending header state, applied by the thread (mu) */
    bool state_dirty, snap_dirty;
    uint32_t st_flags, st_reason, st_held, snap_flags;
    int64_t st_since, st_sync;
    struct publisher_stats stats; /* mu */
    struct metrics_hist latency;  /* stage+commit durations of publishes */
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

static void on_registry_change(void *arg)
{
    struct publisher *p = arg;
    pthread_mutex_lock(&p->mu);
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

/* Stage every queued change; returns how many. */
static size_t stage_changes(struct publisher *p, struct registry_change **keep)
{
    size_t n = 0;
    struct registry_change *list = registry_take_changes(p->reg, &n);
    for (struct registry_change *c = list; c; c = c->next) {
        int rc;
        if (c->put) {
            struct segw_instance si;
            instance_to_segw(c->put, &si);
            rc = segw_put(p->w, &si);
            if (rc < 0)
                log_error("publisher: segw_put %s (%s) failed: %s", c->put->id, c->put->service,
                          strerror(-rc));
        } else {
            rc = segw_del(p->w, c->del_id);
            if (rc < 0 && rc != -ENOENT)
                log_error("publisher: segw_del %s failed: %s", c->del_id, strerror(-rc));
        }
    }
    /* The writer may refer to instance strings until commit: keep them. */
    *keep = list;
    return n;
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

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    int64_t next_tick = mono_us() + (int64_t)p->tick_ms * 1000;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && !p->state_dirty && !p->snap_dirty &&
               registry_pending_changes(p->reg) == 0 && mono_us() < next_tick)
            wait_until_us(p, next_tick);
        /* Coalesce: let a burst complete before publishing it. */
        if (!p->stop && p->coalesce_ms > 0) {
            size_t pending = registry_pending_changes(p->reg);
            int64_t until = mono_us() + (int64_t)p->coalesce_ms * 1000;
            while (!p->stop && pending > 0 && pending < p->coalesce_max && mono_us() < until) {
                wait_until_us(p, until);
                pending = registry_pending_changes(p->reg);
            }
        }
        bool stopping = p->stop;
        pthread_mutex_unlock(&p->mu);

        apply_state(p);
        int64_t t0 = mono_us();
        struct registry_change *done = NULL;
        size_t n = stage_changes(p, &done);
        int64_t gen = 0;
        if (segw_pending(p->w) > 0) {
            gen = segw_commit(p->w);
            if (gen < 0)
                log_error("publisher: commit of %zu changes failed: %s (kept, will retry)",
                          segw_pending(p->w), strerror((int)-gen));
        }
        registry_free_changes(done);
        int64_t t1 = mono_us();
        pthread_mutex_lock(&p->mu);
        p->stats.changes += n;
        if (gen > 0) {
            p->stats.commits++;
            p->stats.generation = (uint64_t)gen;
            p->stats.last_commit_us = (uint64_t)(t1 - t0);
        } else if (gen < 0) {
            p->stats.commit_errors++;
        }
        pthread_mutex_unlock(&p->mu);
        if (gen > 0)
            metrics_hist_observe(&p->latency, (uint64_t)(t1 - t0));
        if (gen > 0)
            log_debug("publisher: generation %lld: %zu changes in %lld us", (long long)gen, n,
                      (long long)(t1 - t0));
        if (gen > 0)
            p->cache_dirty = true;
        bool ticked = t1 >= next_tick;
        if (ticked) {
            segw_tick(p->w);
            next_tick = t1 + (int64_t)p->tick_ms * 1000;
            pthread_mutex_lock(&p->mu);
            p->stats.ticks++;
            pthread_mutex_unlock(&p->mu);
        }
        if (gen > 0 || ticked) { /* arena and reclaim figures for status/metrics */
            pthread_mutex_lock(&p->mu);
            segw_stats(p->w, &p->stats.seg);
            pthread_mutex_unlock(&p->mu);
        }
        maybe_export(p, t1, stopping);
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    registry_set_notify(reg, on_registry_change, p);
    rc = pthread_create(&p->thread, NULL, publisher_main, p);
    if (rc != 0) {
        registry_set_notify(reg, NULL, NULL);
        segw_close(p->w, false);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->mu);
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
    segw_close(p->w, unlink);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p->cache_file);
    free(p);
}

void publisher_announce_stop(struct publisher *p)
{
    if (p)
        segw_mark_stopped(p->w);
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
