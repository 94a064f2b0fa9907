/* SPDX-License-Identifier: MIT */
/*
 * test_zk_harness.c — the ZooKeeper test harness itself: a standalone server
 * and a 3-node ensemble start on loopback, answer four-letter words, survive
 * node kill / pause / restart, and leave no process behind.
 */
#include "zk_server.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct zk_cluster cluster;

static void teardown(void)
{
    zk_cluster_destroy(&cluster);
}

TestSuite(zk_harness, .fini = teardown);

Test(zk_harness, standalone_start_stop_restart)
{
    cr_assert_eq(zk_cluster_start(&cluster, 1, 30000), 0);
    char buf[1024];
    cr_assert_gt(zk_four_letter(cluster.nodes[0].client_port, "ruok", buf, sizeof(buf), 10000), 0);
    cr_assert_str_eq(buf, "imok");
    /* Started means serving sessions now, not only listening (imok comes
     * first): srvr must name the mode at once, without a wait. */
    cr_assert_gt(zk_four_letter(cluster.nodes[0].client_port, "srvr", buf, sizeof(buf), 10000), 0);
    cr_assert(strstr(buf, "Mode: standalone"), "started but not serving: %s", buf);

    pid_t pid = cluster.nodes[0].pid;
    cr_assert_eq(zk_node_stop(&cluster, 0, 5000), 0);
    cr_assert_eq(kill(pid, 0), -1, "stopped JVM must be reaped");
    cr_assert_lt(zk_four_letter(cluster.nodes[0].client_port, "ruok", buf, sizeof(buf), 300), 0);

    cr_assert_eq(zk_node_start(&cluster, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&cluster, 0, 30000), 0);

    /* A paused server accepts TCP (kernel backlog) but never answers. */
    cr_assert_eq(zk_node_pause(&cluster, 0), 0);
    int rc = zk_four_letter(cluster.nodes[0].client_port, "ruok", buf, sizeof(buf), 300);
    cr_assert_eq(rc, -ETIMEDOUT, "paused server answered (%d)", rc);
    cr_assert_eq(zk_node_resume(&cluster, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&cluster, 0, 10000), 0);

    char dir[sizeof(cluster.base_dir)];
    strcpy(dir, cluster.base_dir);
    pid = cluster.nodes[0].pid;
    zk_cluster_destroy(&cluster);
    struct stat st;
    cr_assert_neq(stat(dir, &st), 0, "destroy must remove %s", dir);
    cr_assert_eq(kill(pid, 0), -1);
}

Test(zk_harness, ensemble_leader_failover)
{
    cr_assert_eq(zk_cluster_start(&cluster, 3, 60000), 0);
    int leader = zk_cluster_leader(&cluster, 20000);
    cr_assert_geq(leader, 0);
    cr_assert_eq(zk_node_kill(&cluster, leader), 0);
    int next = zk_cluster_leader(&cluster, 20000);
    cr_assert_geq(next, 0, "no new leader after killing node %d", leader + 1);
    cr_assert_neq(next, leader);
    cr_assert_eq(zk_node_start(&cluster, leader), 0);
    cr_assert_eq(zk_node_wait_ready(&cluster, leader, 30000), 0);
    /* Ready (ruok) comes before it has joined: it may say "not currently
     * serving requests" for a while, then it must follow the new leader. */
    char buf[1024] = "";
    for (int i = 0; i < 200 && !strstr(buf, "Mode: follower"); i++) {
        if (zk_four_letter(cluster.nodes[leader].client_port, "srvr", buf, sizeof(buf), 10000) <= 0)
            buf[0] = '\0';
        if (!strstr(buf, "Mode: follower"))
            usleep(100000);
    }
    cr_assert(strstr(buf, "Mode: follower"), "restarted node: %s", buf);
}
