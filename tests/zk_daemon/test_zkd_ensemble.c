/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_ensemble.c — two real discd processes on a 3-node ZooKeeper
 * ensemble: kill the leader, then a follower (quorum lost), restart both.
 * No instance is ever lost from either segment, and registrations keep
 * propagating.
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

/* Services registered so far, all of which must stay visible on both hosts. */
static const char *kept[8];
static int n_kept;

static void check_kept(const char *when)
{
    for (int i = 0; i < n_kept; i++) {
        cr_assert_eq(zkd_count(&a, kept[i]), 1, "a lost %s %s", kept[i], when);
        cr_assert_eq(zkd_count(&b, kept[i]), 1, "b lost %s %s", kept[i], when);
    }
}

/* Wait until svc is on both hosts, checking that nothing earlier vanishes. */
static void wait_both(const char *svc, int timeout_ms, const char *when)
{
    long long deadline = proc_now_ms() + (long long)timeout_ms * dt_slow();
    while (!(zkd_count(&a, svc) == 1 && zkd_count(&b, svc) == 1)) {
        check_kept(when);
        cr_assert_lt(proc_now_ms(), deadline, "%s did not propagate %s (a %d, b %d)", svc, when,
                     zkd_count(&a, svc), zkd_count(&b, svc));
        proc_sleep_ms(10);
    }
    kept[n_kept++] = svc;
}

/* Watch both pictures for ms, asserting nothing is lost. */
static void hold(int ms, const char *when)
{
    long long until = proc_now_ms() + ms;
    while (proc_now_ms() < until) {
        check_kept(when);
        proc_sleep_ms(20);
    }
}

Test(zkd_ensemble, leader_and_follower_failures, .fini = teardown)
{
    cr_assert_eq(zk_cluster_start(&zk, 3, 90000 * dt_slow()), 0, "ensemble did not start");
    char root[128];
    zkd_root(root, sizeof(root), "ens");
    zkd_start(&a, "zkea", zk.connect, root);
    zkd_start(&b, "zkeb", zk.connect, root);
    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "zke-1", "10.2.0.1:80", id);
    zkd_register(&b, "zke-2", "10.2.0.2:80", id);
    wait_both("zke-1", 20000, "at start");
    wait_both("zke-2", 20000, "at start");

    /* Kill the leader: two nodes keep the quorum. */
    int leader = zk_cluster_leader(&zk, 10000);
    cr_assert_geq(leader, 0, "no leader");
    cr_assert_eq(zk_node_kill(&zk, leader), 0);
    zkd_register(&a, "zke-3", "10.2.0.1:81", id);
    wait_both("zke-3", 30000, "after the leader was killed");

    /* Kill a follower: quorum lost. Registrations are still local at once. */
    int follower = (leader + 1) % 3;
    cr_assert_eq(zk_node_kill(&zk, follower), 0);
    zkd_register(&b, "zke-4", "10.2.0.2:81", id);
    cr_assert(zkd_wait_count(&b, "zke-4", 1, 2000), "not visible locally without quorum");
    hold(1500, "without quorum");

    /* Restart both: quorum back; the registration made without it arrives. */
    cr_assert_eq(zk_node_start(&zk, leader), 0);
    cr_assert_eq(zk_node_start(&zk, follower), 0);
    cr_assert_eq(zk_cluster_wait_ready(&zk, 90000 * dt_slow()), 0, "ensemble did not recover");
    wait_both("zke-4", 40000, "after the restart");
    hold(ZKD_SESSION_MS, "after the restart"); /* past cooling-off and any expiry */

    /* New registrations keep propagating, both ways. */
    zkd_register(&a, "zke-5", "10.2.0.1:82", id);
    wait_both("zke-5", 20000, "at the end");
    zkd_register(&b, "zke-6", "10.2.0.2:82", id);
    wait_both("zke-6", 20000, "at the end");

    struct disc_status st;
    cr_assert(zkd_wait_flags(&a, DISC_ST_ZK_CONNECTED | DISC_ST_DEGRADED, DISC_ST_ZK_CONNECTED,
                             10000, &st));
    zkd_finish(&a);
    zkd_finish(&b);
}
