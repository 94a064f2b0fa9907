/* SPDX-License-Identifier: MIT */
/* protect.c — holds mass removals from the region; see protect.h. */
#include "protect.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "instance.h"
#include "log.h"

#define TICK_MS 100

/* One remote removal not applied yet. */
struct pend {
    struct pend *next;
    char id[DISC_ID_LEN + 1];
    char *service;
    int64_t arrived_ms;
    int64_t held_since_ms; /* 0: pending (its step is not judged yet) */
};

struct protect {
    struct registry *reg;
    double shrink;
    uint32_t hold_ms;
    void (*on_held_changed)(void *arg, uint32_t held);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, stop;
    struct pend *list;
    struct protect_stats st;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void apply_removal(struct protect *p, const char *id)
{
    int rc = registry_remove_remote(p->reg, id);
    /* -ENOENT: gone already; -EPERM: a local instance has that id. */
    if (rc < 0 && rc != -ENOENT && rc != -EPERM)
        log_warn("protection: removing instance %s: %s", id, strerror(-rc));
}

static void pend_free(struct pend *e)
{
    free(e->service);
    free(e);
}

/* Recount held_now / services_held (under mu). */
static void recount(struct protect *p)
{
    uint32_t held = 0, services = 0;
    for (struct pend *e = p->list; e; e = e->next) {
        if (!e->held_since_ms)
            continue;
        held++;
        bool first = true;
        for (struct pend *f = p->list; f != e; f = f->next)
            if (f->held_since_ms && strcmp(f->service, e->service) == 0)
                first = false;
        services += first;
    }
    p->st.held_now = held;
    p->st.services_held = services;
}

/* Services whose step is due, with their instance counts. */
struct due {
    char *service;
    uint32_t count;   /* instances in the registry now */
    uint32_t pending; /* removals in this step */
    uint32_t held;    /* removals of this service held already */
    int64_t first_ms, last_ms;
};

struct due_set {
    struct due *v;
    size_t n, cap;
};

static struct due *due_find(struct due_set *d, const char *service)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i].service, service) == 0)
            return &d->v[i];
    return NULL;
}

static int count_fn(struct instance *inst, void *arg)
{
    struct due *x = due_find(arg, inst->service);
    if (x)
        x->count++;
    return 0;
}

/* Judge the steps that are due and apply expired holds (under mu). */
static void tick(struct protect *p, int64_t now)
{
    struct due_set d = {0};
    for (struct pend *e = p->list; e; e = e->next) {
        struct due *x = due_find(&d, e->service);
        if (!x) {
            if (d.n == d.cap) {
                size_t cap = d.cap ? d.cap * 2 : 8;
                struct due *v = realloc(d.v, cap * sizeof(*v));
                if (!v)
                    break; /* judged on a later tick */
                d.v = v;
                d.cap = cap;
            }
            x = &d.v[d.n++];
            *x = (struct due){.service = e->service};
        }
        if (e->held_since_ms) {
            x->held++;
            continue;
        }
        x->pending++;
        if (e->arrived_ms < x->first_ms || !x->first_ms)
            x->first_ms = e->arrived_ms;
        if (e->arrived_ms > x->last_ms)
            x->last_ms = e->arrived_ms;
    }
    bool any_due = false;
    for (size_t i = 0; i < d.n; i++) {
        struct due *x = &d.v[i];
        bool due = x->pending && (now - x->last_ms >= PROTECT_STEP_GAP_MS ||
                                  now - x->first_ms >= PROTECT_STEP_MAX_MS);
        if (!due)
            x->pending = 0; /* not judged this tick */
        any_due |= due;
    }
    if (any_due)
        registry_foreach(p->reg, REGISTRY_ALL, count_fn, &d);

    for (size_t i = 0; i < d.n; i++) {
        struct due *x = &d.v[i];
        if (!x->pending)
            continue;
        /* Instances left once this step and the earlier held ones apply. */
        uint32_t gone = x->pending + x->held;
        uint32_t left = x->count > gone ? x->count - gone : 0;
        bool hold =
            x->count > 0 && (x->held > 0 || left == 0 || (double)x->pending > p->shrink * x->count);
        /* x->service points into one of the entries this loop may free. */
        char svc[DISC_SERVICE_MAX + 1];
        snprintf(svc, sizeof(svc), "%s", x->service);
        for (struct pend **pp = &p->list; *pp;) {
            struct pend *e = *pp;
            if (e->held_since_ms || strcmp(e->service, svc) != 0) {
                pp = &e->next;
                continue;
            }
            if (hold) {
                e->held_since_ms = now;
                pp = &e->next;
                continue;
            }
            apply_removal(p, e->id);
            *pp = e->next;
            pend_free(e);
        }
        if (hold) {
            p->st.steps_held++;
            p->st.removals_held += x->pending;
            log_warn("protection: holding %u removal(s) of service %s (%u -> %u instances, "
                     "more than %.0f%% in one step); applied in %u ms unless they come back, "
                     "or now with `discctl confirm %s`",
                     x->pending, svc, x->count, left, p->shrink * 100.0, p->hold_ms, svc);
        }
    }
    free(d.v); /* services point into entries: free after the loop */

    /* Holds that persisted long enough. */
    uint32_t applied = 0;
    for (struct pend **pp = &p->list; *pp;) {
        struct pend *e = *pp;
        if (!e->held_since_ms || now - e->held_since_ms < (int64_t)p->hold_ms) {
            pp = &e->next;
            continue;
        }
        log_info("protection: applying held removal of %s (service %s) after %lld ms", e->id,
                 e->service, (long long)(now - e->held_since_ms));
        apply_removal(p, e->id);
        applied++;
        *pp = e->next;
        pend_free(e);
    }
    p->st.applied_expired += applied;
}

static void *thread_main(void *arg)
{
    struct protect *p = arg;
    registry_thread_online();
    pthread_mutex_lock(&p->mu);
    uint32_t last_held = 0;
    while (!p->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        if (p->stop)
            break;
        tick(p, now_ms());
        recount(p);
        uint32_t held = p->st.held_now;
        if (held != last_held && p->on_held_changed) {
            last_held = held;
            pthread_mutex_unlock(&p->mu);
            p->on_held_changed(p->arg, held);
            pthread_mutex_lock(&p->mu);
        }
        last_held = held;
    }
    pthread_mutex_unlock(&p->mu);
    registry_thread_offline();
    return NULL;
}

int protect_start(const struct protect_config *cfg, struct registry *reg, struct protect **out)
{
    if (!cfg || !reg || !out || !(cfg->shrink >= 0.0 && cfg->shrink <= 1.0))
        return -EINVAL;
    struct protect *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->reg = reg;
    p->shrink = cfg->shrink;
    p->hold_ms = cfg->hold_ms;
    p->on_held_changed = cfg->on_held_changed;
    p->arg = cfg->arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (p->shrink > 0.0) {
        int rc = pthread_create(&p->thread, NULL, thread_main, p);
        if (rc) {
            pthread_cond_destroy(&p->cv);
            pthread_mutex_destroy(&p->mu);
            free(p);
            return -rc;
        }
        p->running = true;
    }
    *out = p;
    return 0;
}

void protect_remove(struct protect *p, const char *host_id, const char *id)
{
    (void)host_id;
    if (p->shrink <= 0.0) {
        apply_removal(p, id);
        return;
    }
    struct instance *inst = registry_get(p->reg, id);
    if (!inst) {
        apply_removal(p, id); /* nothing to protect */
        return;
    }
    struct pend *e = calloc(1, sizeof(*e));
    char *service = strdup(inst->service);
    instance_unref(inst);
    if (!e || !service) {
        free(e);
        free(service);
        log_error("protection: out of memory; removing %s unprotected", id);
        apply_removal(p, id);
        return;
    }
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->service = service;
    e->arrived_ms = now_ms();
    pthread_mutex_lock(&p->mu);
    bool dup = false;
    for (struct pend *f = p->list; f && !dup; f = f->next)
        dup = strcmp(f->id, id) == 0;
    if (!dup && !p->stop) {
        e->next = p->list;
        p->list = e;
        e = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (e)
        pend_free(e);
}

void protect_seen(struct protect *p, const char *id)
{
    if (p->shrink <= 0.0)
        return;
    pthread_mutex_lock(&p->mu);
    for (struct pend **pp = &p->list; *pp; pp = &(*pp)->next) {
        struct pend *e = *pp;
        if (strcmp(e->id, id) != 0)
            continue;
        if (e->held_since_ms) {
            p->st.restored++;
            log_info("protection: instance %s (service %s) is back; its removal is dropped", id,
                     e->service);
        }
        *pp = e->next;
        pend_free(e);
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

uint32_t protect_confirm(struct protect *p, const char *service)
{
    uint32_t applied = 0;
    pthread_mutex_lock(&p->mu);
    for (struct pend **pp = &p->list; *pp;) {
        struct pend *e = *pp;
        if (service && strcmp(e->service, service) != 0) {
            pp = &e->next;
            continue;
        }
        apply_removal(p, e->id);
        applied++;
        *pp = e->next;
        pend_free(e);
    }
    p->st.applied_confirmed += applied;
    recount(p);
    uint32_t held = p->st.held_now;
    pthread_mutex_unlock(&p->mu);
    if (applied)
        log_warn("protection: operator confirmed %u removal(s) of %s", applied,
                 service ? service : "all services");
    if (p->on_held_changed)
        p->on_held_changed(p->arg, held);
    return applied;
}

uint32_t protect_held(struct protect *p)
{
    pthread_mutex_lock(&p->mu);
    uint32_t n = p->st.held_now;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void protect_get_stats(struct protect *p, struct protect_stats *st)
{
    pthread_mutex_lock(&p->mu);
    *st = p->st;
    pthread_mutex_unlock(&p->mu);
}

json_t *protect_status_json(struct protect *p)
{
    json_t *held = json_object();
    if (!held)
        return NULL;
    pthread_mutex_lock(&p->mu);
    struct protect_stats st = p->st;
    for (struct pend *e = p->list; e; e = e->next) {
        if (!e->held_since_ms)
            continue;
        json_t *n = json_object_get(held, e->service);
        json_object_set_new(held, e->service, json_integer(n ? json_integer_value(n) + 1 : 1));
    }
    pthread_mutex_unlock(&p->mu);
    return json_pack(
        "{s:b, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "enabled", p->shrink > 0.0,
        "shrink", p->shrink, "hold_ms", (json_int_t)p->hold_ms, "held_now", (json_int_t)st.held_now,
        "services_held", (json_int_t)st.services_held, "steps_held", (json_int_t)st.steps_held,
        "removals_held", (json_int_t)st.removals_held, "applied_expired",
        (json_int_t)st.applied_expired, "applied_confirmed", (json_int_t)st.applied_confirmed,
        "restored", (json_int_t)st.restored, "held", held);
}

void protect_stop(struct protect *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    bool running = p->running;
    p->running = false;
    pthread_mutex_unlock(&p->mu);
    if (running)
        pthread_join(p->thread, NULL);
    pthread_mutex_lock(&p->mu);
    while (p->list) {
        struct pend *e = p->list;
        p->list = e->next;
        pend_free(e);
    }
    pthread_mutex_unlock(&p->mu);
}

void protect_free(struct protect *p)
{
    if (!p)
        return;
    protect_stop(p);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
