/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_outage.c — two real discd processes on a standalone ZooKeeper
 * that is stopped and restarted: the segment header reports the outage
 * (DEGRADED, ZK_DISCONNECTED), the registry keeps its last picture, a
 * registration made during the outage is visible locally at once and
 * reaches the other host once ZooKeeper is back.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "zk_server.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b;

static void teardown(void)
{
    zkd_teardown(&zk, &a, &b, NULL);
}

#define CONNECTED_MASK (DISC_ST_ZK_CONFIGURED | DISC_ST_ZK_CONNECTED | DISC_ST_DEGRADED)
#define CONNECTED      (DISC_ST_ZK_CONFIGURED | DISC_ST_ZK_CONNECTED)
#define DEGRADED       (DISC_ST_ZK_CONFIGURED | DISC_ST_DEGRADED)

Test(zkd_outage, zookeeper_down_and_back, .fini = teardown)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "outage");
    zkd_start(&a, "zkoa", zk.connect, root);
    zkd_start(&b, "zkob", zk.connect, root);
    struct disc_status st;
    cr_assert(zkd_wait_synced(&a, 15000, &st), "a: flags %#x", st.flags);
    cr_assert(zkd_wait_synced(&b, 15000, &st), "b: flags %#x", st.flags);
    cr_assert_gt(st.last_sync_ms, 0, "connected but never synced");
    cr_assert_eq(st.degraded_reason, (uint32_t)DISC_DEG_NONE);

    char before[DISC_ID_LEN + 1];
    zkd_register(&a, "zko-before", "10.1.0.1:80", before);
    cr_assert(zkd_wait_count(&b, "zko-before", 1, 10000), "not propagated while connected");

    /* ZooKeeper goes away. */
    long long stopped_at_ms = proc_now_ms();
    cr_assert_eq(zk_node_stop(&zk, 0, 10000), 0);
    cr_assert(zkd_wait_flags(&b, CONNECTED_MASK, DEGRADED, 15000, &st),
              "b never reported the outage (flags %#x)", st.flags);
    cr_assert_eq(st.degraded_reason, (uint32_t)DISC_DEG_ZK_DISCONNECTED, "reason %u",
                 st.degraded_reason);
    cr_assert_gt(st.degraded_since_ms, 0);
    cr_assert_gt(st.last_sync_ms, 0, "the last sync time must survive the outage");
    int64_t last_sync = st.last_sync_ms;
    char state[32];
    zkd_zk_state(&b, state, sizeof(state));
    cr_assert(strcmp(state, "disconnected") == 0 || strcmp(state, "connecting") == 0 ||
                  strcmp(state, "expired") == 0,
              "status.zookeeper.state = %s during the outage", state);
    /* The registry keeps its last picture. */
    zkd_expect_instance(&b, "zko-before", before, DISC_ORIGIN_REMOTE, a.host_id);

    /* A registration during the outage: local at once, remote later. */
    char during[DISC_ID_LEN + 1];
    zkd_register(&a, "zko-during", "10.1.0.1:81", during);
    cr_assert(zkd_wait_count(&a, "zko-during", 1, 2000), "not visible locally during the outage");
    zkd_expect_instance(&a, "zko-during", during, DISC_ORIGIN_LOCAL, a.host_id);
    proc_sleep_ms(300);
    cr_assert_eq(zkd_count(&b, "zko-during"), 0, "reached b without ZooKeeper?");
    cr_assert_eq(disc_status(b.h, &st), 0);
    cr_assert_eq(st.last_sync_ms, last_sync, "last_sync_ms advanced without ZooKeeper");

    /* ZooKeeper comes back (same data dir). */
    cr_assert_eq(zk_node_start(&zk, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, 0, 60000 * dt_slow()), 0);
    long long deadline = proc_now_ms() + 30000LL * dt_slow();
    while (zkd_count(&b, "zko-during") != 1 && proc_now_ms() < deadline) {
        /* Never lost in the meantime (cooling-off holds removals). */
        cr_assert_eq(zkd_count(&b, "zko-before"), 1, "b lost a's instance during recovery");
        proc_sleep_ms(10);
    }
    cr_assert_eq(zkd_count(&b, "zko-during"), 1,
                 "registration made during the outage never "
                 "reached b");
    zkd_expect_instance(&b, "zko-during", during, DISC_ORIGIN_REMOTE, a.host_id);
    cr_assert(zkd_wait_flags(&b, CONNECTED_MASK, CONNECTED, 15000, &st), "b: flags %#x", st.flags);
    cr_assert_gt(st.last_sync_ms, last_sync, "no sync after the restart");
    cr_assert_eq(zkd_count(&b, "zko-before"), 1);
    cr_log_info("outage: %lld ms from stop to recovery", proc_now_ms() - stopped_at_ms);

    /* And it keeps propagating, both ways. */
    char after[DISC_ID_LEN + 1];
    zkd_register(&b, "zko-after", "10.1.0.2:80", after);
    cr_assert(zkd_wait_count(&a, "zko-after", 1, 10000), "new registration not propagated");
    zkd_deregister(&a, before);
    cr_assert(zkd_wait_count(&b, "zko-before", 0, 10000), "deregistration not propagated");

    zkd_finish(&a);
    zkd_finish(&b);
}
