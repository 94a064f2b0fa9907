/* SPDX-License-Identifier: MIT */
/* registry.c — the daemon's RCU-protected instance table (see registry.h). */
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

struct reg_node {
    struct cds_lfht_node node;
    struct instance *inst;
    struct rcu_head rcu;
};

struct owner_use {
    uint32_t uid;
    uint32_t instances;
    uint64_t bytes;
};

struct registry {
    struct cds_lfht *ht;
    pthread_mutex_t wlock; /* serialises writers, counts and the change queue */
    uint32_t max_local, max_remote;
    uint32_t n_local, n_remote;
    uint32_t n_by[4][5]; /* [origin][health] (registry_count_by); out-of-range values in [0][0] */
    struct registry_change *q_head, *q_tail;
    size_t q_len;
    uint64_t last_seq;        /* seq of the newest queued change */
    struct owner_use *owners; /* per-uid usage of local instances (unsorted) */
    size_t n_owners, cap_owners;
    void (*notify)(void *);
    void *notify_arg;
    /* An open batch (registry_batch_begin): changes with seq > batch_seq0
     * are held from the publisher until registry_batch_end. */
    bool batch_open;
    pthread_t batch_owner;
    uint64_t batch_seq0;
    size_t batch_held; /* queued changes with seq > batch_seq0 */
    struct registry_listener listeners[REGISTRY_LISTENERS_MAX];
    int n_listeners;
};

/* ---- liburcu thread registration ----
 * liburcu's reader registry is per process; these are the only statics. */
static pthread_once_t online_once = PTHREAD_ONCE_INIT;
static pthread_key_t online_key;
static _Thread_local bool thread_online;

static void thread_exit_offline(void *unused)
{
    (void)unused;
    if (thread_online) {
        urcu_memb_unregister_thread();
        thread_online = false;
    }
}

static void make_online_key(void)
{
    pthread_key_create(&online_key, thread_exit_offline);
}

void registry_thread_online(void)
{
    if (thread_online)
        return;
    pthread_once(&online_once, make_online_key);
    urcu_memb_register_thread();
    pthread_setspecific(online_key, (void *)1);
    thread_online = true;
}

void registry_thread_offline(void)
{
    if (!thread_online)
        return;
    urcu_memb_unregister_thread();
    pthread_setspecific(online_key, NULL);
    thread_online = false;
}

/* ---- hashing ---- */

static unsigned long hash_id(const char *id)
{
    /* FNV-1a: ids are random UUIDs, so no adversarial distribution concern. */
    uint64_t h = 1469598103934665603ull;
    for (; *id; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211ull;
    }
    return (unsigned long)h;
}

static int match_id(struct cds_lfht_node *node, const void *key)
{
    const struct reg_node *n = caa_container_of(node, struct reg_node, node);
    return strcmp(n->inst->id, (const char *)key) == 0;
}

/*
 * ThreadSanitizer cannot see liburcu's grace periods (its own inline-asm
 * barriers and futexes in an uninstrumented library): a read section's
 * loads of a node, then the node freed by call_rcu and its memory reused,
 * would look like a race between our threads. Tell it what the grace
 * period guarantees: every read section ends (release) before a node
 * retired during it is freed (acquire on the same token). (Publication is
 * covered by node_inst's acquire of the release in write_begin.) Outside
 * TSan builds these compile to nothing.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char tsan_grace_token; /* only its address is used */
static void read_unlock(void)
{
    __tsan_release(&tsan_grace_token);
    urcu_memb_read_unlock();
}
static void grace_period_passed(void)
{
    __tsan_acquire(&tsan_grace_token);
}
#else
static void read_unlock(void)
{
    urcu_memb_read_unlock();
}
static void grace_period_passed(void)
{
}
#endif

static void free_node_rcu(struct rcu_head *head)
{
    grace_period_passed();
    struct reg_node *n = caa_container_of(head, struct reg_node, rcu);
    instance_unref(n->inst);
    free(n);
}

static bool is_local(const struct instance *inst)
{
    return inst->origin == DISC_ORIGIN_LOCAL;
}

/* ---- lifecycle ---- */

struct registry *registry_new(const struct registry_config *cfg)
{
    registry_thread_online();
    struct registry *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->max_local = cfg && cfg->max_local ? cfg->max_local : 100000;
    r->max_remote = cfg && cfg->max_remote ? cfg->max_remote : 2000000;
    r->ht = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                                &urcu_memb_flavor, NULL);
    if (!r->ht) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&r->wlock, NULL);
    return r;
}

/* The node of a table entry, NULL at the end. (liburcu's
 * cds_lfht_for_each_entry computes container_of(NULL) at the end, which
 * UBSan reports as pointer arithmetic on NULL; found by fuzz_cache_load.) */
static struct reg_node *node_of(struct cds_lfht_node *hn)
{
    return hn ? caa_container_of(hn, struct reg_node, node) : NULL;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    registry_thread_online();
    struct cds_lfht_iter it;
    struct reg_node *n;
    pthread_mutex_lock(&r->wlock);
    urcu_memb_read_lock();
    for (cds_lfht_first(r->ht, &it); (n = node_of(cds_lfht_iter_get_node(&it))) != NULL;
         cds_lfht_next(r->ht, &it)) {
        if (cds_lfht_del(r->ht, &n->node) == 0)
            urcu_memb_call_rcu(&n->rcu, free_node_rcu);
    }
    read_unlock();
    pthread_mutex_unlock(&r->wlock);
    urcu_memb_barrier();
    cds_lfht_destroy(r->ht, NULL);
    registry_free_changes(r->q_head);
    free(r->owners);
    pthread_mutex_destroy(&r->wlock);
    free(r);
}

void registry_set_notify(struct registry *r, void (*notify)(void *arg), void *arg)
{
    pthread_mutex_lock(&r->wlock);
    r->notify = notify;
    r->notify_arg = arg;
    pthread_mutex_unlock(&r->wlock);
}

int registry_add_listener(struct registry *r, const struct registry_listener *l)
{
    int rc = -ENOSPC;
    pthread_mutex_lock(&r->wlock);
    if (r->n_listeners < REGISTRY_LISTENERS_MAX) {
        int at = r->n_listeners;
        while (l->first && at > 0 && !r->listeners[at - 1].first)
            at--;
        memmove(&r->listeners[at + 1], &r->listeners[at],
                (size_t)(r->n_listeners - at) * sizeof(r->listeners[0]));
        r->listeners[at] = *l;
        r->n_listeners++;
        rc = 0;
    }
    pthread_mutex_unlock(&r->wlock);
    return rc;
}

/* ---- change queue (wlock held) ---- */

/* Queue a change; on allocation failure the change is still in the table and
 * the publisher would miss it, so the allocation happens before mutating. */
static struct registry_change *change_alloc(void)
{
    return calloc(1, sizeof(struct registry_change));
}

static void queue_put(struct registry *r, struct registry_change *c, struct instance *inst)
{
    c->seq = ++r->last_seq;
    c->put = instance_ref(inst);
    c->next = NULL;
    if (r->q_tail)
        r->q_tail->next = c;
    else
        r->q_head = c;
    r->q_tail = c;
    r->q_len++;
    r->batch_held += r->batch_open;
}

static void queue_del(struct registry *r, struct registry_change *c, const char *id)
{
    c->seq = ++r->last_seq;
    c->put = NULL;
    c->next = NULL;
    memcpy(c->del_id, id, sizeof(c->del_id) - 1);
    c->del_id[sizeof(c->del_id) - 1] = '\0';
    if (r->q_tail)
        r->q_tail->next = c;
    else
        r->q_head = c;
    r->q_tail = c;
    r->q_len++;
    r->batch_held += r->batch_open;
}

/* ---- per-owner usage (wlock held) ---- */

static struct owner_use *owner_find(struct registry *r, uint32_t uid)
{
    for (size_t i = 0; i < r->n_owners; i++)
        if (r->owners[i].uid == uid)
            return &r->owners[i];
    return NULL;
}

/* Make room for one more owner entry before mutating (so the add cannot
 * fail half-way). */
static int owner_reserve(struct registry *r)
{
    if (r->n_owners < r->cap_owners)
        return 0;
    size_t ncap = r->cap_owners ? r->cap_owners * 2 : 16;
    struct owner_use *n = realloc(r->owners, ncap * sizeof(*n));
    if (!n)
        return -ENOMEM;
    r->owners = n;
    r->cap_owners = ncap;
    return 0;
}

static void owner_account(struct registry *r, const struct instance *inst, int sign)
{
    struct owner_use *u = owner_find(r, inst->owner_uid);
    if (!u) {
        if (sign < 0 || r->n_owners == r->cap_owners)
            return; /* reserved by the caller for additions */
        u = &r->owners[r->n_owners++];
        *u = (struct owner_use){.uid = inst->owner_uid};
    }
    uint64_t bytes = instance_record_bytes(inst);
    if (sign > 0) {
        u->instances++;
        u->bytes += bytes;
    } else {
        u->instances -= u->instances ? 1 : 0;
        u->bytes -= u->bytes >= bytes ? bytes : u->bytes;
        if (u->instances == 0) /* drop the entry: uids come and go */
            *u = r->owners[--r->n_owners];
    }
}

/* Unlock the writer lock and poke the publisher (not inside the calling
 * thread's own batch: registry_batch_end does it once). */
static void unlock_and_notify(struct registry *r)
{
    void (*notify)(void *) = r->notify;
    void *arg = r->notify_arg;
    if (r->batch_open && pthread_equal(r->batch_owner, pthread_self()))
        notify = NULL;
    pthread_mutex_unlock(&r->wlock);
    if (notify)
        notify(arg);
}

/* ---- writers ---- */

static struct reg_node *lookup_locked(struct registry *r, const char *id)
{
    struct cds_lfht_iter it;
    cds_lfht_lookup(r->ht, hash_id(id), match_id, id, &it);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
    return node ? caa_container_of(node, struct reg_node, node) : NULL;
}

/* Count inst under its origin and health (wlock held). */
static void count_by(struct registry *r, const struct instance *inst, int delta)
{
    bool ok = inst->origin < 4 && inst->health < 5;
    r->n_by[ok ? inst->origin : 0][ok ? inst->health : 0] += (uint32_t)delta;
}

/* Begin writing inst: a hash node holding a reference to it and the change
 * record that will announce it, then wlock taken; or -ENOMEM, nothing made
 * and no lock. */
static int write_begin(struct registry *r, struct instance *inst, struct reg_node **n,
                       struct registry_change **c)
{
    registry_thread_online();
    *n = calloc(1, sizeof(**n));
    *c = change_alloc();
    if (!*n || !*c) {
        free(*n);
        free(*c);
        return -ENOMEM;
    }
    /* release: a reader that finds the node in the table (node_inst) sees
     * it and the instance whole (cds_lfht publishes the node with its own
     * barriers, which ThreadSanitizer does not see) */
    __atomic_store_n(&(*n)->inst, instance_ref(inst), __ATOMIC_RELEASE);
    pthread_mutex_lock(&r->wlock);
    return 0;
}

/* A lock-free reader's view of the instance of a node found in the table. */
static struct instance *node_inst(struct reg_node *n)
{
    return __atomic_load_n(&n->inst, __ATOMIC_ACQUIRE);
}

/* A write refused with rc (wlock held): unlock, drop what write_begin
 * made, return rc. */
static int refuse_locked(struct registry *r, struct reg_node *n, struct registry_change *c, int rc)
{
    pthread_mutex_unlock(&r->wlock);
    instance_unref(n->inst);
    free(n);
    free(c);
    return rc;
}

/* Put n in the table in place of the node with its id, if any (wlock and
 * the RCU read lock held); counts move to n's instance. Returns the node
 * replaced (out of the table; the caller passes it to retire_node), or
 * NULL. */
static struct reg_node *replace_node_locked(struct registry *r, struct reg_node *n)
{
    const char *id = n->inst->id;
    struct cds_lfht_node *prev = cds_lfht_add_replace(r->ht, hash_id(id), match_id, id, &n->node);
    struct reg_node *pn = prev ? caa_container_of(prev, struct reg_node, node) : NULL;
    if (pn)
        count_by(r, pn->inst, -1);
    count_by(r, n->inst, 1);
    return pn;
}

/*
 * Free a node taken out of the table once no reader can hold it (after a
 * grace period). Called after unlock_and_notify, not before: call_rcu
 * wakes liburcu's worker thread (a futex wake and, on a busy CPU, a
 * switch to it), which on the control thread would otherwise run before
 * an idle change's commit wakes the readers waiting for it.
 */
static void retire_node(struct reg_node *n)
{
    if (n)
        urcu_memb_call_rcu(&n->rcu, free_node_rcu);
}

/* Copy the listeners (wlock held), to call them after unlocking; returns
 * how many there are. */
static int listeners_copy(struct registry *r, struct registry_listener *ls)
{
    memcpy(ls, r->listeners, sizeof(r->listeners));
    return r->n_listeners;
}

int registry_add_local(struct registry *r, struct instance *inst)
{
    if (!inst || !is_local(inst))
        return -EINVAL;
    struct reg_node *n;
    struct registry_change *c;
    if (write_begin(r, inst, &n, &c) < 0)
        return -ENOMEM;
    int rc = 0;
    if (r->n_local >= r->max_local) {
        rc = -ENOSPC;
    } else if (owner_reserve(r) < 0) {
        rc = -ENOMEM;
    } else {
        urcu_memb_read_lock();
        struct cds_lfht_node *got =
            cds_lfht_add_unique(r->ht, hash_id(inst->id), match_id, inst->id, &n->node);
        read_unlock();
        if (got != &n->node)
            rc = -EEXIST;
    }
    if (rc < 0)
        return refuse_locked(r, n, c, rc);
    r->n_local++;
    count_by(r, inst, 1);
    owner_account(r, inst, +1);
    queue_put(r, c, inst);
    struct registry_listener ls[REGISTRY_LISTENERS_MAX];
    int nl = listeners_copy(r, ls);
    unlock_and_notify(r);
    for (int i = 0; i < nl; i++) {
        if (ls[i].local_added)
            ls[i].local_added(inst, ls[i].arg);
    }
    return 0;
}

/* Remove id if its locality matches want_local. */
static int remove_entry(struct registry *r, const char *id, bool want_local, const char *reason,
                        struct instance **removed)
{
    registry_thread_online();
    struct registry_change *c = change_alloc();
    if (!c)
        return -ENOMEM;
    pthread_mutex_lock(&r->wlock);
    urcu_memb_read_lock();
    struct reg_node *n = lookup_locked(r, id);
    int rc = 0;
    if (!n)
        rc = -ENOENT;
    else if (is_local(n->inst) != want_local)
        rc = -EPERM;
    else if (cds_lfht_del(r->ht, &n->node) != 0)
        rc = -ENOENT;
    struct instance *inst = rc == 0 ? instance_ref(n->inst) : NULL;
    read_unlock();
    if (rc < 0) {
        pthread_mutex_unlock(&r->wlock);
        free(c);
        return rc;
    }
    if (want_local) {
        r->n_local--;
        owner_account(r, inst, -1);
    } else
        r->n_remote--;
    count_by(r, inst, -1);
    queue_del(r, c, inst->id);
    struct registry_listener ls[REGISTRY_LISTENERS_MAX];
    int nl = listeners_copy(r, ls);
    if (!want_local)
        nl = 0;
    unlock_and_notify(r);
    retire_node(n);
    for (int i = 0; i < nl; i++) {
        if (ls[i].local_removed)
            ls[i].local_removed(inst, reason ? reason : "removed", ls[i].arg);
    }
    if (removed)
        *removed = inst;
    else
        instance_unref(inst);
    return 0;
}

int registry_remove_local(struct registry *r, const char *id, const char *reason,
                          struct instance **removed)
{
    return remove_entry(r, id, true, reason, removed);
}

int registry_remove_remote(struct registry *r, const char *id)
{
    return remove_entry(r, id, false, NULL, NULL);
}

int registry_replace_local(struct registry *r, struct instance *inst, bool tell)
{
    if (!inst || !is_local(inst))
        return -EINVAL;
    struct reg_node *n;
    struct registry_change *c;
    if (write_begin(r, inst, &n, &c) < 0)
        return -ENOMEM;
    urcu_memb_read_lock();
    struct reg_node *old = lookup_locked(r, inst->id);
    int rc = !old ? -ENOENT : !is_local(old->inst) ? -EPERM : 0;
    if (rc == 0)
        old = replace_node_locked(r, n); /* e.g. a health transition */
    read_unlock();
    if (rc < 0)
        return refuse_locked(r, n, c, rc);
    queue_put(r, c, inst);
    struct registry_listener ls[REGISTRY_LISTENERS_MAX];
    int nl = listeners_copy(r, ls);
    unlock_and_notify(r);
    retire_node(old);
    for (int i = 0; i < nl; i++) {
        if (tell && ls[i].local_replaced)
            ls[i].local_replaced(inst, ls[i].arg);
        if (ls[i].local_health)
            ls[i].local_health(inst, ls[i].arg);
    }
    return 0;
}

int registry_put_remote(struct registry *r, struct instance *inst)
{
    if (!inst || is_local(inst))
        return -EINVAL;
    struct reg_node *n;
    struct registry_change *c;
    if (write_begin(r, inst, &n, &c) < 0)
        return -ENOMEM;
    urcu_memb_read_lock();
    struct reg_node *old = lookup_locked(r, inst->id);
    int rc = 0;
    if (old && is_local(old->inst))
        rc = -EPERM;
    else if (!old && r->n_remote >= r->max_remote)
        rc = -ENOSPC;
    struct reg_node *prev = NULL;
    if (rc == 0 && !(prev = replace_node_locked(r, n)))
        r->n_remote++;
    read_unlock();
    if (rc < 0)
        return refuse_locked(r, n, c, rc);
    queue_put(r, c, inst);
    unlock_and_notify(r);
    retire_node(prev);
    return 0;
}

/* ---- readers ---- */

struct instance *registry_get(struct registry *r, const char *id)
{
    registry_thread_online();
    struct cds_lfht_iter it;
    struct instance *inst = NULL;
    urcu_memb_read_lock();
    cds_lfht_lookup(r->ht, hash_id(id), match_id, id, &it);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
    if (node)
        inst = instance_ref(node_inst(caa_container_of(node, struct reg_node, node)));
    read_unlock();
    return inst;
}

int registry_foreach(struct registry *r, unsigned mask, int (*fn)(struct instance *, void *),
                     void *arg)
{
    registry_thread_online();
    struct cds_lfht_iter it;
    struct reg_node *n;
    int rc = 0;
    urcu_memb_read_lock();
    for (cds_lfht_first(r->ht, &it); (n = node_of(cds_lfht_iter_get_node(&it))) != NULL;
         cds_lfht_next(r->ht, &it)) {
        struct instance *inst = node_inst(n);
        unsigned kind = is_local(inst) ? REGISTRY_LOCAL : REGISTRY_REMOTE;
        if ((mask & kind) && (rc = fn(inst, arg)) != 0)
            break;
    }
    read_unlock();
    return rc;
}

uint64_t registry_last_seq(struct registry *r)
{
    pthread_mutex_lock(&r->wlock);
    uint64_t seq = r->last_seq;
    pthread_mutex_unlock(&r->wlock);
    return seq;
}

void registry_owner_usage(struct registry *r, uint32_t uid, struct registry_usage *out)
{
    pthread_mutex_lock(&r->wlock);
    struct owner_use *u = owner_find(r, uid);
    out->instances = u ? u->instances : 0;
    out->bytes = u ? u->bytes : 0;
    pthread_mutex_unlock(&r->wlock);
}

uint32_t registry_count_local(struct registry *r)
{
    pthread_mutex_lock(&r->wlock);
    uint32_t n = r->n_local;
    pthread_mutex_unlock(&r->wlock);
    return n;
}

uint32_t registry_count_remote(struct registry *r)
{
    pthread_mutex_lock(&r->wlock);
    uint32_t n = r->n_remote;
    pthread_mutex_unlock(&r->wlock);
    return n;
}

struct registry_change *registry_take_changes(struct registry *r, size_t *n)
{
    pthread_mutex_lock(&r->wlock);
    struct registry_change *list = r->q_head;
    size_t take = r->q_len - r->batch_held;
    if (n)
        *n = take;
    if (take == 0) {
        list = NULL;
    } else if (r->batch_held == 0) {
        r->q_head = r->q_tail = NULL;
        r->q_len = 0;
    } else { /* a batch is open: keep its changes (the queue's tail) */
        struct registry_change *last = list;
        for (size_t i = 1; i < take; i++)
            last = last->next;
        r->q_head = last->next;
        last->next = NULL;
        r->q_len -= take;
    }
    pthread_mutex_unlock(&r->wlock);
    return list;
}

size_t registry_pending_changes(struct registry *r)
{
    pthread_mutex_lock(&r->wlock);
    size_t n = r->q_len - r->batch_held;
    pthread_mutex_unlock(&r->wlock);
    return n;
}

void registry_batch_begin(struct registry *r)
{
    pthread_mutex_lock(&r->wlock);
    if (!r->batch_open) {
        r->batch_open = true;
        r->batch_owner = pthread_self();
        r->batch_seq0 = r->last_seq;
        r->batch_held = 0;
    }
    pthread_mutex_unlock(&r->wlock);
}

void registry_batch_end(struct registry *r)
{
    pthread_mutex_lock(&r->wlock);
    bool any = r->batch_open && r->batch_held > 0;
    void (*notify)(void *) = r->notify;
    void *arg = r->notify_arg;
    r->batch_open = false;
    r->batch_held = 0;
    pthread_mutex_unlock(&r->wlock);
    if (any && notify)
        notify(arg);
}

void registry_free_changes(struct registry_change *list)
{
    while (list) {
        struct registry_change *next = list->next;
        instance_unref(list->put);
        free(list);
        list = next;
    }
}

void registry_count_by(struct registry *r, uint32_t out[4][5])
{
    pthread_mutex_lock(&r->wlock);
    memcpy(out, r->n_by, sizeof(r->n_by));
    pthread_mutex_unlock(&r->wlock);
}
