/* SPDX-License-Identifier: MIT */
/*
 * test_registry_batch.c — the registry's batches (registry_batch_begin /
 * registry_batch_end), in-process: what the ZooKeeper layer uses to hand one
 * listing's remote changes to the publisher as one commit with one wake-up.
 *   - changes made inside a batch are in the table at once but held from the
 *     publisher (not pending, not taken) and notify nobody until the end,
 *     which notifies once;
 *   - changes queued before the batch stay takeable during it;
 *   - another thread's change during the batch is held too (queue order is
 *     kept) and taken after the end, in order.
 * And the order listeners are told of a local change in (`first` ones first).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "instance.h"
#include "registry.h"

static atomic_int notified;

static void on_notify(void *arg)
{
    (void)arg;
    atomic_fetch_add(&notified, 1);
}

static struct instance *remote(int i)
{
    char doc[256];
    snprintf(doc, sizeof(doc),
             "{\"id\":\"00000000-0000-4000-8000-%012d\",\"service\":\"svc\",\"host\":\"h\","
             "\"address\":\"10.0.0.1:%d\"}",
             i, 1000 + i);
    json_t *j = json_loads(doc, 0, NULL);
    cr_assert(j);
    struct instance *inst = NULL;
    struct instance_error err;
    cr_assert_eq(instance_from_document(j, &inst, &err), 0, "%s", err.message);
    json_decref(j);
    return inst;
}

static void put(struct registry *r, int i)
{
    struct instance *inst = remote(i);
    cr_assert_eq(registry_put_remote(r, inst), 0);
    instance_unref(inst);
}

static void *other_thread(void *arg)
{
    put(arg, 100);
    registry_thread_offline();
    return NULL;
}

/* Take everything and check the seqs run first..first+n-1. */
static void take_expect(struct registry *r, size_t n, uint64_t first)
{
    size_t got = 0;
    struct registry_change *list = registry_take_changes(r, &got);
    cr_assert_eq(got, n);
    uint64_t seq = first;
    size_t k = 0;
    for (struct registry_change *c = list; c; c = c->next, k++)
        cr_assert_eq(c->seq, seq++, "change %zu has seq %llu", k, (unsigned long long)c->seq);
    cr_assert_eq(k, n);
    registry_free_changes(list);
}

Test(registry_batch, one_notify_per_batch)
{
    struct registry_config cfg = {0};
    struct registry *r = registry_new(&cfg);
    cr_assert(r);
    registry_set_notify(r, on_notify, NULL);
    put(r, 1); /* before the batch: notified and takeable */
    cr_assert_eq(atomic_load(&notified), 1);
    registry_batch_begin(r);
    for (int i = 2; i <= 51; i++)
        put(r, i);
    cr_assert_eq(atomic_load(&notified), 1, "no wake-up inside the batch");
    cr_assert_eq(registry_count_remote(r), 51, "the table has every change at once");
    cr_assert_eq(registry_pending_changes(r), 1, "only the change from before the batch");
    take_expect(r, 1, 1);
    cr_assert_eq(registry_pending_changes(r), 0);
    size_t n = 99;
    cr_assert_null(registry_take_changes(r, &n), "nothing takeable while the batch is open");
    cr_assert_eq(n, 0);

    /* another thread's change during the batch: held too, order kept */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, other_thread, r), 0);
    pthread_join(t, NULL);
    cr_assert_eq(registry_pending_changes(r), 0);

    registry_batch_end(r);
    cr_assert_eq(atomic_load(&notified), 3, "one notify at the end (+1 from the other thread)");
    cr_assert_eq(registry_pending_changes(r), 51);
    take_expect(r, 51, 2);

    /* an empty batch notifies nobody; after it, changes notify as before */
    registry_batch_begin(r);
    registry_batch_end(r);
    cr_assert_eq(atomic_load(&notified), 3);
    put(r, 200);
    cr_assert_eq(atomic_load(&notified), 4);
    take_expect(r, 1, 53);
    registry_free(r);
}

/* Listeners: those marked `first` are told before the others, each group in
 * the order added (the ZooKeeper bridge's early create before the journal). */
static char order[8];
static int n_order;

static void heard(struct instance *inst, void *arg)
{
    (void)inst;
    if (n_order < (int)sizeof(order) - 1)
        order[n_order++] = *(const char *)arg;
}

Test(registry_batch, first_listeners_are_told_first)
{
    struct registry_config cfg = {0};
    struct registry *r = registry_new(&cfg);
    cr_assert(r);
    static const char tags[] = "abcd";
    const bool first[] = {false, true, false, true};
    for (int i = 0; i < 4; i++) {
        struct registry_listener l = {
            .local_added = heard, .arg = (void *)&tags[i], .first = first[i]};
        cr_assert_eq(registry_add_listener(r, &l), 0);
    }
    struct instance *inst = remote(7);
    inst->origin = DISC_ORIGIN_LOCAL;
    cr_assert_eq(registry_add_local(r, inst), 0);
    instance_unref(inst);
    cr_assert_str_eq(order, "bdac", "listeners told in the order %s", order);
    registry_free(r);
}
