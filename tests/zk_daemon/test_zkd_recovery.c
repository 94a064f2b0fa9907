/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_recovery.c — ZooKeeper stopped for longer than the session
 * timeout while one host deregisters, registers and has a check fail; then
 * ZooKeeper comes back EMPTY (data wiped). Every phase asserts the exact
 * instance sets both hosts' segments show (read by this test process):
 *   outage:   A shows its new truth at once, B keeps the last picture;
 *   recovery: B is never emptied while the region re-announces (cooling-off
 *             and protection), and both converge to exactly A's truth.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zk_server.h"
#include "zkd_util.h"

#define SVC "rec-svc"

static struct zk_cluster zk;
static struct zkd a, b;

static void teardown(void)
{
    zkd_teardown(&zk, &a, &b, NULL);
}

static int cmp_id(const void *x, const void *y)
{
    return strcmp(x, y);
}

/* The sorted ids of SVC in z's segment, joined by ',' ("" when none). */
static void ids_of(struct zkd *z, char *out, size_t len)
{
    static char buf[1 << 16];
    struct disc_instance *list;
    size_t need;
    char ids[16][DISC_ID_LEN + 1];
    int n = disc_lookup(z->h, SVC, buf, sizeof(buf), &list, &need);
    out[0] = 0;
    if (n <= 0)
        return;
    for (int i = 0; i < n && i < 16; i++)
        memcpy(ids[i], list[i].id, DISC_ID_LEN + 1);
    qsort(ids, (size_t)(n < 16 ? n : 16), sizeof(ids[0]), cmp_id);
    for (int i = 0; i < n && i < 16; i++) {
        strncat(out, ids[i], len - strlen(out) - 1);
        if (i + 1 < n)
            strncat(out, ",", len - strlen(out) - 1);
    }
}

static void set_of(char *out, size_t len, int n, const char *const *ids)
{
    char tmp[16][DISC_ID_LEN + 1];
    for (int i = 0; i < n; i++)
        snprintf(tmp[i], sizeof(tmp[i]), "%s", ids[i]);
    qsort(tmp, (size_t)n, sizeof(tmp[0]), cmp_id);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        strncat(out, tmp[i], len - strlen(out) - 1);
        if (i + 1 < n)
            strncat(out, ",", len - strlen(out) - 1);
    }
}

/* Poll until z shows exactly `want`; returns 1 on success. If never_empty,
 * fail as soon as z shows no instance at all. */
static int wait_set(struct zkd *z, const char *want, int timeout_ms, int never_empty)
{
    char got[1024];
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        ids_of(z, got, sizeof(got));
        if (strcmp(got, want) == 0)
            return 1;
        cr_assert(!never_empty || got[0], "%s was emptied during recovery", z->host_id);
        if (proc_now_ms() > end) {
            cr_log_error("%s shows [%s], want [%s]", z->host_id, got, want);
            return 0;
        }
        proc_sleep_ms(20);
    }
}

static void register_ttl(struct zkd *z, char id[DISC_ID_LEN + 1])
{
    json_t *r = dt_callf(&z->proc, "{\"op\":\"register\",\"instance\":{\"service\":\"" SVC
                                   "\",\"address\":\"127.0.0.1:7303\"},"
                                   "\"check\":{\"type\":\"ttl\",\"ttl_ms\":4000}}");
    cr_assert(dt_ok(r), "ttl register failed");
    snprintf(id, DISC_ID_LEN + 1, "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
}

Test(zkd_recovery, outage_with_changes_then_empty_zookeeper, .fini = teardown, .timeout = 180)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "recovery");
    zkd_start_extra(&a, "zkqa", zk.connect, root, NULL);
    zkd_start_extra(&b, "zkqb", zk.connect, root, "--zk-cooloff=3000");
    struct disc_status st;
    zkd_all_synced(15000, &a, &b, NULL);

    char keep[DISC_ID_LEN + 1], drop[DISC_ID_LEN + 1], ttl[DISC_ID_LEN + 1], fresh[DISC_ID_LEN + 1];
    zkd_register(&a, SVC, "127.0.0.1:7301", keep);
    zkd_register(&a, SVC, "127.0.0.1:7302", drop);
    register_ttl(&a, ttl);
    char before[1024], after[1024];
    set_of(before, sizeof(before), 3, (const char *const[]){keep, drop, ttl});
    cr_assert(wait_set(&a, before, 5000, 0));
    cr_assert(wait_set(&b, before, 10000, 0), "phase 1: B sees A's three instances");

    /* Outage longer than the session timeout, with changes on A. */
    cr_assert_eq(zk_node_stop(&zk, 0, 10000), 0);
    zkd_deregister(&a, drop);
    zkd_register(&a, SVC, "127.0.0.1:7304", fresh);
    set_of(after, sizeof(after), 2, (const char *const[]){keep, fresh});
    cr_assert(wait_set(&a, after, 15000, 0), "phase 2: A applies its changes locally at once "
                                             "(deregister, register, ttl lapse)");
    proc_sleep_ms(ZKD_SESSION_MS + 1000);
    cr_assert(wait_set(&b, before, 100, 0), "phase 2: B keeps the last picture");
    cr_assert(zkd_wait_flags(&b, DISC_ST_DEGRADED, DISC_ST_DEGRADED, 5000, &st));

    /* ZooKeeper returns empty. */
    cr_assert_eq(zk_node_wipe_data(&zk, 0), 0);
    cr_assert_eq(zk_node_start(&zk, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, 0, 30000 * dt_slow()), 0);
    cr_assert(wait_set(&b, after, 60000, 1), "phase 3: B converges to A's truth, never empty");
    cr_assert(wait_set(&a, after, 1000, 0), "phase 3: A unchanged");
    cr_assert(zkd_wait_synced(&b, 30000, &st));
    cr_assert(wait_set(&b, after, 4000, 1), "phase 3: stays converged");
    zkd_finish(&a);
    zkd_finish(&b);
}
