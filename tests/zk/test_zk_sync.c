/* SPDX-License-Identifier: MIT */
/*
 * test_zk_sync.c — zk_sync against a real standalone ZooKeeper, with every
 * simulated host in its own process (zk_agent): propagation, updates,
 * withdrawal, SIGKILL (session expiry), SIGSTOP past the session timeout,
 * ZooKeeper down while hosts publish and withdraw, malformed nodes.
 */
#include "zk_agent_client.h"
#include "zk_server.h"
#include "zk_sync.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#define ROOT    "/disc-test"
#define SESSION 3000 /* ms: short, so expiry tests stay quick */
#define WAIT    15000

static struct zk_cluster zk;
static struct agent ag[3];
static char tmp[64];

static void setup(void)
{
    int rc = agents_setup(&zk, 1, 30000, "zksync", tmp, sizeof(tmp));
    cr_assert_eq(rc, 0, "zookeeper did not start: %s", strerror(-rc));
}

static void teardown(void)
{
    cr_expect_eq(agents_teardown(&zk, ag, sizeof(ag) / sizeof(ag[0]), tmp), 0,
                 "an agent exited badly (see its log above)");
}

TestSuite(zk_sync, .init = setup, .fini = teardown, .timeout = 90);

static void start_agent(int i, const char *host, int cooloff_ms)
{
    int rc = agent_start(&ag[i], ZK_AGENT_PATH, zk.connect, ROOT, host, SESSION, cooloff_ms, tmp);
    cr_assert_eq(rc, 0, "agent %s: %s", host, strerror(-rc));
}

static void doc(char *out, size_t len, const char *id, const char *service, const char *version)
{
    snprintf(out, len, "{\"id\":\"%s\",\"service\":\"%s\",\"version\":\"%s\"}", id, service,
             version);
}

static void expect_ok(struct agent *a, const char *what, int rc, const char *resp)
{
    cr_assert_eq(rc, 0, "%s on %s: %s", what, a->host, strerror(-rc));
    cr_assert_str_eq(resp, "ok", "%s on %s: %s", what, a->host, resp);
}

static void publish(struct agent *a, const char *id, const char *version)
{
    char d[256], resp[64];
    doc(d, sizeof(d), id, "svc.test", version);
    int rc = agent_cmd(a, resp, sizeof(resp), 5000, "pub %s %s", id, d);
    expect_ok(a, "pub", rc, resp);
}

static void withdraw(struct agent *a, const char *id)
{
    char resp[64];
    int rc = agent_cmd(a, resp, sizeof(resp), 5000, "wd %s", id);
    expect_ok(a, "wd", rc, resp);
}

static void expect_ids(struct agent *a, const char *want)
{
    char last[8192];
    int rc = agent_wait_ids(a, want, WAIT, last, sizeof(last));
    if (rc != 0) {
        for (int i = 0; i < 3; i++) {
            agent_dump_log(&ag[i]);
        }
        zk_cluster_dump_logs(&zk);
    }
    cr_assert_eq(rc, 0, "host %s sees %s", a->host, last);
}

Test(zk_sync, publish_update_withdraw_across_three_processes)
{
    start_agent(0, "host-a", 0);
    start_agent(1, "host-b", 0);
    start_agent(2, "host-c", 0);
    char id1[37], id2[37], id3[37], want[256];
    agent_uuid(id1);
    agent_uuid(id2);
    agent_uuid(id3);

    publish(&ag[0], id1, "1");
    publish(&ag[0], id2, "1");
    snprintf(want, sizeof(want), "%s %s", id1, id2);
    expect_ids(&ag[1], want);
    expect_ids(&ag[2], want);

    publish(&ag[1], id3, "1");
    snprintf(want, sizeof(want), "%s %s %s", id1, id2, id3);
    expect_ids(&ag[2], want);
    expect_ids(&ag[0], id3); /* a host's own instances are not reported back to it */

    /* update: a new node name; readers get the new document, never a removal */
    publish(&ag[0], id1, "2");
    char resp[512], expect[512], d[256];
    doc(d, sizeof(d), id1, "svc.test", "2");
    snprintf(expect, sizeof(expect), "doc host-a %s", d);
    bool updated = false;
    for (int i = 0; i < 300 && !updated; i++) {
        cr_assert_eq(agent_cmd(&ag[1], resp, sizeof(resp), 5000, "doc %s", id1), 0);
        updated = strcmp(resp, expect) == 0;
        if (!updated) {
            usleep(50000);
        }
    }
    cr_assert(updated, "host-b has %s, want %s", resp, expect);
    cr_assert_eq(agent_removed(&ag[1], id1), 0);
    cr_assert_eq(agent_removed(&ag[2], id1), 0);

    withdraw(&ag[0], id2);
    snprintf(want, sizeof(want), "%s %s", id1, id3);
    expect_ids(&ag[2], want);
    expect_ids(&ag[1], id1);
    cr_assert_eq(agent_removed(&ag[1], id2), 1);
    cr_assert_eq(agent_stat(&ag[0], "local_in_zk"), 1);
    cr_assert_eq(agent_stat(&ag[1], "skipped_bad_data"), 0);
}

Test(zk_sync, sigkill_removes_instances_after_session_expiry)
{
    start_agent(0, "host-a", 0);
    start_agent(1, "host-b", 0);
    char id1[37], id2[37], want[128], resp[64];
    agent_uuid(id1);
    agent_uuid(id2);
    publish(&ag[0], id1, "1");
    publish(&ag[1], id2, "1");
    cr_assert_eq(agent_cmd(&ag[0], resp, sizeof(resp), 10000, "wait 8000"), 0);
    expect_ids(&ag[1], id1);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    agent_kill(&ag[0]);
    expect_ids(&ag[1], "");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    /* gone only when the session expires, not before */
    cr_assert_geq(ms, SESSION / 2, "removed after %ld ms, before the session could expire", ms);
    cr_assert_eq(agent_removed(&ag[1], id1), 1);

    /* the survivor keeps publishing and a new host sees it */
    start_agent(2, "host-c", 0);
    expect_ids(&ag[2], id2);
    snprintf(want, sizeof(want), "%s", id2);
    expect_ids(&ag[2], want);
}

Test(zk_sync, sigstop_past_session_timeout_recreates_nodes)
{
    start_agent(0, "host-a", 0);
    start_agent(1, "host-b", 0);
    char id1[37], id2[37], want[128], resp[64];
    agent_uuid(id1);
    agent_uuid(id2);
    publish(&ag[0], id1, "1");
    publish(&ag[0], id2, "1");
    snprintf(want, sizeof(want), "%s %s", id1, id2);
    expect_ids(&ag[1], want);

    cr_assert_eq(agent_signal(&ag[0], SIGSTOP), 0);
    expect_ids(&ag[1], ""); /* session expired while stopped */
    cr_assert_eq(agent_signal(&ag[0], SIGCONT), 0);
    expect_ids(&ag[1], want); /* new session, every local node re-created */
    cr_assert_eq(agent_cmd(&ag[0], resp, sizeof(resp), 10000, "wait 8000"), 0);
    cr_assert_str_eq(resp, "ok");
    cr_assert_eq(agent_stat(&ag[0], "expirations"), 1);
    cr_assert_eq(agent_stat(&ag[0], "sessions"), 2);
    cr_assert_eq(agent_stat(&ag[0], "local_in_zk"), 2);
}

Test(zk_sync, zookeeper_down_while_publishing_and_withdrawing_converges)
{
    start_agent(0, "host-a", 500);
    start_agent(1, "host-b", 500);
    char a1[37], a2[37], a3[37], b1[37], b2[37], want[256];
    agent_uuid(a1);
    agent_uuid(a2);
    agent_uuid(a3);
    agent_uuid(b1);
    agent_uuid(b2);
    publish(&ag[0], a1, "1");
    publish(&ag[0], a2, "1");
    publish(&ag[1], b1, "1");
    snprintf(want, sizeof(want), "%s %s", a1, a2);
    expect_ids(&ag[1], want);
    expect_ids(&ag[0], b1);

    cr_assert_eq(zk_node_stop(&zk, 0, 5000), 0);
    /* no fail-fast: both hosts accept changes while ZooKeeper is down */
    publish(&ag[0], a3, "1");
    withdraw(&ag[0], a1);
    publish(&ag[0], a2, "2");
    publish(&ag[1], b2, "1");
    withdraw(&ag[1], b1);
    usleep((SESSION + 1000) * 1000); /* down for longer than the session timeout */
    cr_assert_eq(zk_node_start(&zk, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, 0, 30000), 0);

    snprintf(want, sizeof(want), "%s %s", a2, a3);
    expect_ids(&ag[1], want);
    expect_ids(&ag[0], b2);
    char resp[512], d[256], expect[512];
    doc(d, sizeof(d), a2, "svc.test", "2");
    snprintf(expect, sizeof(expect), "doc host-a %s", d);
    cr_assert_eq(agent_cmd(&ag[1], resp, sizeof(resp), 5000, "doc %s", a2), 0);
    cr_assert_str_eq(resp, expect);
    /* withdrawn while down: never resurrected, nothing extra left behind */
    usleep(1000 * 1000);
    expect_ids(&ag[1], want);
    expect_ids(&ag[0], b2);
    cr_assert_eq(agent_stat(&ag[0], "local_in_zk"), 2);
    cr_assert_eq(agent_stat(&ag[1], "local_in_zk"), 1);
}

/* Write nodes straight into ZooKeeper with the C client, as a foreign writer. */
static void zput(zhandle_t *zh, const char *path, const char *data, int len, int flags)
{
    int rc = zoo_create(zh, path, data, len, &ZOO_OPEN_ACL_UNSAFE, flags, NULL, 0);
    cr_assert(rc == ZOK || rc == ZNODEEXISTS, "create %s: %s", path, zerror(rc));
}

static zhandle_t *zconnect(void)
{
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zhandle_t *zh = zookeeper_init(zk.connect, NULL, 10000, NULL, NULL, 0);
    cr_assert(zh);
    for (int i = 0; i < 200 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++) {
        usleep(20000);
    }
    cr_assert_eq(zoo_state(zh), ZOO_CONNECTED_STATE);
    return zh;
}

Test(zk_sync, malformed_nodes_are_skipped_and_counted)
{
    start_agent(0, "host-b", 0);
    char good[37], good2[37], u[5][37], path[512], d[256];
    agent_uuid(good);
    agent_uuid(good2);
    for (int i = 0; i < 5; i++) {
        agent_uuid(u[i]);
    }
    zhandle_t *zh = zconnect();
    zput(zh, ROOT, NULL, -1, ZOO_PERSISTENT);
    zput(zh, ROOT "/hosts", NULL, -1, ZOO_PERSISTENT);
    zput(zh, ROOT "/hosts/evil", NULL, -1, ZOO_PERSISTENT);
    zput(zh, ROOT "/hosts/bad host!", NULL, -1, ZOO_PERSISTENT);      /* bad host id */
    zput(zh, ROOT "/hosts/evil/not-a-uuid", "{}", 2, ZOO_PERSISTENT); /* bad name */
    zput(zh, ROOT "/hosts/evil/ABCDEF00-0000-0000-0000-000000000000-1", "{}", 2, ZOO_PERSISTENT);
    const char *bad_docs[4] = {"{not json", "[1,2,3]", "{\"id\":\"%s\",\"service\":5}",
                               "{\"id\":\"0fffffff-ffff-ffff-ffff-ffffffffffff\","
                               "\"service\":\"x\"}"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), ROOT "/hosts/evil/%s-1", u[i]);
        snprintf(d, sizeof(d), bad_docs[i], u[i]);
        zput(zh, path, d, (int)strlen(d), ZOO_PERSISTENT);
    }
    int big_len = 100 * 1024; /* > 64 KiB, < jute.maxbuffer */
    char *big = malloc((size_t)big_len);
    cr_assert(big);
    int hdr = snprintf(big, 128, "{\"id\":\"%s\",\"service\":\"big\",\"pad\":\"", u[4]);
    memset(big + hdr, 'x', (size_t)(big_len - hdr - 2));
    memcpy(big + big_len - 2, "\"}", 2);
    snprintf(path, sizeof(path), ROOT "/hosts/evil/%s-1", u[4]);
    zput(zh, path, big, big_len, ZOO_PERSISTENT);
    free(big);
    doc(d, sizeof(d), good, "svc.good", "1");
    snprintf(path, sizeof(path), ROOT "/hosts/evil/%s-1", good);
    zput(zh, path, d, (int)strlen(d), ZOO_PERSISTENT);

    expect_ids(&ag[0], good);
    cr_assert_eq(agent_stat(&ag[0], "skipped_bad_name"), 3); /* 2 names + 1 host id */
    cr_assert_eq(agent_stat(&ag[0], "skipped_bad_data"), 4);
    cr_assert_eq(agent_stat(&ag[0], "skipped_too_large"), 1);

    /* watches keep firing after the junk; junk is read once, not on every change */
    long long reads = agent_stat(&ag[0], "reads");
    doc(d, sizeof(d), good2, "svc.good", "1");
    snprintf(path, sizeof(path), ROOT "/hosts/evil/%s-1", good2);
    zput(zh, path, d, (int)strlen(d), ZOO_EPHEMERAL);
    char want[128];
    snprintf(want, sizeof(want), "%s %s", good, good2);
    expect_ids(&ag[0], want);
    cr_assert_eq(agent_stat(&ag[0], "reads"), reads + 1);
    cr_assert_eq(agent_stat(&ag[0], "skipped_bad_data"), 4);
    zookeeper_close(zh);
    /* the foreign session closed: its ephemeral node goes, the agent survives */
    expect_ids(&ag[0], good);
}

/* In-process: bad input gets a clear error and changes nothing. */
Test(zk_sync, bad_input_is_refused_and_changes_nothing)
{
    struct zk_sync *zs = NULL;
    struct zk_sync_config cfg = {.connect = zk.connect, .root = ROOT, .host_id = "host-x"};
    struct zk_sync_config bad = cfg;
    bad.root = "relative";
    cr_assert_eq(zk_sync_start(&bad, NULL, NULL, &zs), -EINVAL);
    bad = cfg;
    bad.root = "/trailing/";
    cr_assert_eq(zk_sync_start(&bad, NULL, NULL, &zs), -EINVAL);
    bad = cfg;
    bad.host_id = "has space";
    cr_assert_eq(zk_sync_start(&bad, NULL, NULL, &zs), -EINVAL);
    bad = cfg;
    bad.connect = "";
    cr_assert_eq(zk_sync_start(&bad, NULL, NULL, &zs), -EINVAL);
    cr_assert_null(zs);

    cr_assert_eq(zk_sync_start(&cfg, NULL, NULL, &zs), 0);
    char id[37], other[37], d[256];
    agent_uuid(id);
    agent_uuid(other);
    doc(d, sizeof(d), id, "svc", "1");
    cr_assert_eq(zk_sync_publish_local(zs, "not-a-uuid", d, strlen(d)), -EINVAL);
    char upper[37];
    for (int i = 0; i < 37; i++) {
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
    }
    cr_assert_eq(zk_sync_publish_local(zs, upper, d, strlen(d)), -EINVAL);
    cr_assert_eq(zk_sync_publish_local(zs, other, d, strlen(d)), -EINVAL, "id mismatch");
    const char *nojson = "{\"id\":";
    cr_assert_eq(zk_sync_publish_local(zs, id, nojson, strlen(nojson)), -EINVAL);
    char nosvc[128];
    snprintf(nosvc, sizeof(nosvc), "{\"id\":\"%s\",\"service\":\"\"}", id);
    cr_assert_eq(zk_sync_publish_local(zs, id, nosvc, strlen(nosvc)), -EINVAL);
    size_t big_len = 70000;
    char *big = malloc(big_len);
    cr_assert(big);
    int hdr = snprintf(big, 128, "{\"id\":\"%s\",\"service\":\"s\",\"p\":\"", id);
    memset(big + hdr, 'x', big_len - (size_t)hdr - 2);
    memcpy(big + big_len - 2, "\"}", 2);
    cr_assert_eq(zk_sync_publish_local(zs, id, big, big_len), -E2BIG);
    free(big);
    cr_assert_eq(zk_sync_withdraw_local(zs, id), -ENOENT);
    cr_assert_eq(zk_sync_withdraw_local(zs, "x"), -EINVAL);

    struct zk_sync_status st;
    zk_sync_get_status(zs, &st);
    cr_assert_eq(st.counters.local_desired, 0);
    cr_assert(st.local_applied);

    /* a valid one still works after all that, and is really in ZooKeeper */
    cr_assert_eq(zk_sync_publish_local(zs, id, d, strlen(d)), 0);
    cr_assert_eq(zk_sync_publish_local(zs, id, d, strlen(d)), 0, "same document: no-op");
    cr_assert_eq(zk_sync_wait_local_applied(zs, 10000), 0);
    zk_sync_get_status(zs, &st);
    cr_assert_eq(st.counters.local_desired, 1);
    cr_assert_eq(st.counters.local_in_zk, 1);
    cr_assert_eq(st.counters.creates, 1, "republishing the same document must not write");
    zhandle_t *zh = zconnect();
    struct String_vector sv;
    cr_assert_eq(zoo_get_children(zh, ROOT "/hosts/host-x", 0, &sv), ZOK);
    cr_assert_eq(sv.count, 1);
    cr_assert_eq(strncmp(sv.data[0], id, 36), 0);
    cr_assert_eq(sv.data[0][36], '-');
    deallocate_String_vector(&sv);
    zk_sync_stop(zs);
    /* the session is closed: the ephemeral node is gone at once */
    cr_assert_eq(zoo_get_children(zh, ROOT "/hosts/host-x", 0, &sv), ZOK);
    cr_assert_eq(sv.count, 0);
    deallocate_String_vector(&sv);
    zookeeper_close(zh);
}
