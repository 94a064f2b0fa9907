/* SPDX-License-Identifier: MIT */
/*
 * test_zk_ensemble.c — zk_sync on a real 3-node ZooKeeper ensemble: kill the
 * leader, kill a follower, restart them; after every step a change made on
 * one host reaches the other (watches keep firing) and no instance is lost
 * or ever reported removed. Hosts are separate zk_agent processes.
 */
#include "zk_agent_client.h"
#include "zk_server.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROOT    "/disc-ensemble"
#define SESSION 8000 /* survives an election (~1 s) with margin on a busy 2-core box */
#define WAIT    25000
#define NIDS    12

static struct zk_cluster zk;
static struct agent ag[2];
static char tmp[64];

static void setup(void)
{
    int rc = agents_setup(&zk, 3, 60000, "zkens", tmp, sizeof(tmp));
    cr_assert_eq(rc, 0, "ensemble did not start: %s", strerror(-rc));
}

static void teardown(void)
{
    cr_expect_eq(agents_teardown(&zk, ag, sizeof(ag) / sizeof(ag[0]), tmp), 0,
                 "an agent exited badly (see its log above)");
}

TestSuite(zk_ensemble, .init = setup, .fini = teardown, .timeout = 150);

static char ids[NIDS][37];
static bool published[NIDS];

static void publish(int i)
{
    char d[256], resp[64];
    snprintf(d, sizeof(d), "{\"id\":\"%s\",\"service\":\"svc.ens\",\"n\":%d}", ids[i], i);
    int rc = agent_cmd(&ag[0], resp, sizeof(resp), 5000, "pub %s %s", ids[i], d);
    cr_assert(rc == 0 && strcmp(resp, "ok") == 0, "pub: %d %s", rc, resp);
    published[i] = true;
}

static void withdraw(int i)
{
    char resp[64];
    int rc = agent_cmd(&ag[0], resp, sizeof(resp), 5000, "wd %s", ids[i]);
    cr_assert(rc == 0 && strcmp(resp, "ok") == 0, "wd: %d %s", rc, resp);
    published[i] = false;
}

/* Host B must see exactly the ids host A publishes. */
static void expect_converged(const char *step)
{
    char want[NIDS * 38 + 1] = "", last[8192];
    size_t off = 0;
    for (int i = 0; i < NIDS; i++) {
        if (published[i]) {
            off += (size_t)snprintf(want + off, sizeof(want) - off, "%s ", ids[i]);
        }
    }
    int rc = agent_wait_ids(&ag[1], want, WAIT, last, sizeof(last));
    if (rc != 0) {
        agent_dump_log(&ag[0]);
        agent_dump_log(&ag[1]);
        zk_cluster_dump_logs(&zk);
    }
    cr_assert_eq(rc, 0, "after %s host-b sees %s", step, last);
}

/* No published id was ever reported removed by B (nothing lost, no flapping). */
static void expect_never_removed(void)
{
    for (int i = 0; i < NIDS; i++) {
        char resp[128];
        if (!published[i]) {
            continue;
        }
        cr_assert_eq(agent_cmd(&ag[1], resp, sizeof(resp), 5000, "removed %s", ids[i]), 0);
        cr_assert_str_eq(resp, "removed 0", "id %d was reported removed", i);
    }
}

Test(zk_ensemble, leader_and_follower_failures_lose_nothing)
{
    for (int i = 0; i < NIDS; i++) {
        agent_uuid(ids[i]);
    }
    cr_assert_eq(agent_start(&ag[0], ZK_AGENT_PATH, zk.connect, ROOT, "host-a", SESSION, 2000, tmp),
                 0);
    cr_assert_eq(agent_start(&ag[1], ZK_AGENT_PATH, zk.connect, ROOT, "host-b", SESSION, 2000, tmp),
                 0);
    for (int i = 0; i < 4; i++) {
        publish(i);
    }
    expect_converged("start");

    int leader = zk_cluster_leader(&zk, 10000);
    cr_assert_geq(leader, 0);
    cr_assert_eq(zk_node_kill(&zk, leader), 0);
    publish(4);
    publish(5);
    withdraw(0);
    cr_assert_geq(zk_cluster_leader(&zk, 20000), 0, "no new leader");
    expect_converged("leader killed");

    cr_assert_eq(zk_node_start(&zk, leader), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, leader, 40000), 0);
    publish(6);
    expect_converged("old leader restarted");

    int now_leader = zk_cluster_leader(&zk, 10000);
    cr_assert_geq(now_leader, 0);
    int follower = (now_leader + 1) % 3;
    cr_assert_eq(zk_node_kill(&zk, follower), 0);
    publish(7);
    withdraw(1);
    expect_converged("follower killed");

    cr_assert_eq(zk_node_start(&zk, follower), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, follower, 40000), 0);
    publish(8);
    publish(9);
    expect_converged("follower restarted");

    expect_never_removed();
    cr_assert_eq(agent_stat(&ag[0], "expirations"), 0, "session must survive the failovers");
    cr_assert_eq(agent_stat(&ag[1], "expirations"), 0);
    /* host-a confirms its early creates together, a moment after B sees them */
    char resp[64];
    cr_assert_eq(agent_cmd(&ag[0], resp, sizeof(resp), 15000, "wait 10000"), 0);
    cr_assert_str_eq(resp, "ok");
    cr_assert_eq(agent_stat(&ag[0], "local_in_zk"), 8);
}
