/* SPDX-License-Identifier: MIT */
/*
 * test_zk_degraded.c — zk_sync when ZooKeeper misbehaves (issue 5): an
 * ensemble that comes back empty must not empty anyone's picture during the
 * cooling-off period; instances re-announced during the period are never
 * dropped; a hung (SIGSTOPped) server converges like a stopped one.
 * Every host is a separate zk_agent process.
 */
#include "zk_agent_client.h"
#include "zk_server.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROOT    "/disc-degraded"
#define SESSION 3000
#define COOLOFF 4000
#define WAIT    20000

static struct zk_cluster zk;
static struct agent ag[3];
static char tmp[64];

static void setup(void)
{
    int rc = agents_setup(&zk, 1, 30000, "zkdeg", tmp, sizeof(tmp));
    cr_assert_eq(rc, 0, "zookeeper did not start: %s", strerror(-rc));
}

static void teardown(void)
{
    cr_expect_eq(agents_teardown(&zk, ag, sizeof(ag) / sizeof(ag[0]), tmp), 0,
                 "an agent exited badly (see its log above)");
}

TestSuite(zk_degraded, .init = setup, .fini = teardown, .timeout = 120);

static void start_agent(int i, const char *host, int cooloff_ms)
{
    int rc = agent_start(&ag[i], ZK_AGENT_PATH, zk.connect, ROOT, host, SESSION, cooloff_ms, tmp);
    cr_assert_eq(rc, 0, "agent %s: %s", host, strerror(-rc));
}

static void publish(struct agent *a, const char *id)
{
    char d[256], resp[64];
    snprintf(d, sizeof(d), "{\"id\":\"%s\",\"service\":\"svc.deg\"}", id);
    int rc = agent_cmd(a, resp, sizeof(resp), 5000, "pub %s %s", id, d);
    cr_assert(rc == 0 && strcmp(resp, "ok") == 0, "pub on %s: %d %s", a->host, rc, resp);
}

static void withdraw(struct agent *a, const char *id)
{
    char resp[64];
    int rc = agent_cmd(a, resp, sizeof(resp), 5000, "wd %s", id);
    cr_assert(rc == 0 && strcmp(resp, "ok") == 0, "wd on %s: %d %s", a->host, rc, resp);
}

static void dump_all(void)
{
    for (int i = 0; i < 3; i++) {
        agent_dump_log(&ag[i]);
    }
    zk_cluster_dump_logs(&zk);
}

static void expect_ids(struct agent *a, const char *want)
{
    char last[8192];
    int rc = agent_wait_ids(a, want, WAIT, last, sizeof(last));
    if (rc != 0) {
        dump_all();
    }
    cr_assert_eq(rc, 0, "host %s sees %s", a->host, last);
}

/* Poll a stat until it reaches at least min. Returns the value seen. */
static long long wait_stat(struct agent *a, const char *key, long long min, int timeout_ms)
{
    long long v = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        v = agent_stat(a, key);
        if (v >= min) {
            return v;
        }
        usleep(50000);
    }
    dump_all();
    cr_assert_fail("host %s: %s stayed at %lld (< %lld)", a->host, key, v, min);
    return v;
}

static void restart_empty(void)
{
    cr_assert_eq(zk_node_stop(&zk, 0, 5000), 0);
    cr_assert_eq(zk_node_wipe_data(&zk, 0), 0);
}

/* Host A publishes a1 and a2, which host B (cooling-off COOLOFF) sees; then
 * ZooKeeper restarts with no data while A is dead (it will not re-announce)
 * and B holds both removals. With new_a, a new host A process (ag[2]) starts
 * while ZooKeeper is down, so that only its announcing falls within the
 * period. *t0 is taken just before ZooKeeper is back: no hold starts
 * earlier (the test may see the hold seconds later on a loaded machine). */
static void two_removals_held(char a1[37], char a2[37], char *want, size_t len, bool new_a,
                              struct timespec *t0)
{
    start_agent(0, "host-a", 0);
    start_agent(1, "host-b", COOLOFF);
    agent_uuid(a1);
    agent_uuid(a2);
    publish(&ag[0], a1);
    publish(&ag[0], a2);
    snprintf(want, len, "%s %s", a1, a2);
    expect_ids(&ag[1], want);

    restart_empty();
    agent_kill(&ag[0]);
    if (new_a)
        start_agent(2, "host-a", 0);
    clock_gettime(CLOCK_MONOTONIC, t0);
    cr_assert_eq(zk_node_start(&zk, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, 0, 30000), 0);

    /* B's old session cannot be resumed on the empty server: new session,
     * full resync, both ids missing -> held */
    wait_stat(&ag[1], "held_now", 2, WAIT);
}

Test(zk_degraded, empty_restart_holds_removals_for_the_cooloff_period)
{
    char a1[37], a2[37], want[128];
    struct timespec t0, t1;
    two_removals_held(a1, a2, want, sizeof(want), false, &t0);
    /* held: still visible */
    char last[512];
    cr_assert_eq(agent_wait_ids(&ag[1], want, 0, last, sizeof(last)), 0, "%s", last);
    /* the empty server refuses the old session (newer zxid): B gave it up */
    cr_assert_eq(agent_stat(&ag[1], "sessions"), 2);
    cr_assert_eq(agent_stat(&ag[1], "abandoned"), 1);
    cr_assert_eq(agent_removed(&ag[1], a1), 0);

    /* still gone after the period: reported */
    expect_ids(&ag[1], "");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert_geq(ms, COOLOFF, "held removals reported after only %ld ms", ms);
    cr_assert_eq(agent_stat(&ag[1], "held_reported"), 2);
    cr_assert_eq(agent_removed(&ag[1], a1), 1);
    cr_assert_eq(agent_removed(&ag[1], a2), 1);
}

Test(zk_degraded, reannounced_during_cooloff_is_never_dropped)
{
    char a1[37], a2[37], want[128];
    struct timespec t0;
    two_removals_held(a1, a2, want, sizeof(want), true, &t0);

    /* host A is back within the period and re-announces only a1 */
    publish(&ag[2], a1);
    wait_stat(&ag[1], "held_restored", 1, WAIT);
    expect_ids(&ag[1], a1);
    cr_assert_eq(agent_removed(&ag[1], a1), 0, "a re-announced instance was dropped");
    cr_assert_eq(agent_removed(&ag[1], a2), 1);
    cr_assert_eq(agent_stat(&ag[1], "held_reported"), 1);
}

Test(zk_degraded, hung_server_converges_after_resume)
{
    start_agent(0, "host-a", 0);
    start_agent(1, "host-b", 1000);
    char a1[37], a2[37], b1[37];
    agent_uuid(a1);
    agent_uuid(a2);
    agent_uuid(b1);
    publish(&ag[0], a1);
    publish(&ag[1], b1);
    expect_ids(&ag[1], a1);
    expect_ids(&ag[0], b1);

    cr_assert_eq(zk_node_pause(&zk, 0), 0);
    withdraw(&ag[0], a1); /* accepted while the server hangs */
    publish(&ag[0], a2);
    usleep((SESSION + 1500) * 1000);
    cr_assert_eq(zk_node_resume(&zk, 0), 0);

    expect_ids(&ag[1], a2);
    expect_ids(&ag[0], b1);
    char resp[64];
    cr_assert_eq(agent_cmd(&ag[0], resp, sizeof(resp), 15000, "wait 10000"), 0);
    cr_assert_str_eq(resp, "ok");
    cr_assert_eq(agent_stat(&ag[0], "local_in_zk"), 1);
    cr_assert_eq(agent_removed(&ag[1], a1), 1);
}
