/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_region.c — three real discd processes (distinct host ids,
 * registry names and sockets) on one standalone ZooKeeper: registration,
 * deregistration, check failure and a crashed host propagate to every
 * other host's segment, read through libdiscshm.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "zk_server.h"
#include "zkd_util.h"

#define NHOSTS 3

static struct zk_cluster zk;
static struct zkd hosts[NHOSTS];

static void setup(void)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "region");
    static const char *const tags[NHOSTS] = {"zkra", "zkrb", "zkrc"};
    for (int i = 0; i < NHOSTS; i++)
        zkd_start(&hosts[i], tags[i], zk.connect, root);
    for (int i = 0; i < NHOSTS; i++) {
        struct disc_status st;
        cr_assert(zkd_wait_synced(&hosts[i], 15000, &st),
                  "%s never synced with ZooKeeper (flags %#x)", hosts[i].host_id, st.flags);
    }
}

static void teardown(void)
{
    for (int i = 0; i < NHOSTS; i++)
        zkd_abort(&hosts[i]);
    zk_cluster_destroy(&zk);
}

/* Every host's picture of svc has `want` instances (polling each in turn). */
static void expect_everywhere(const char *svc, int want, int timeout_ms)
{
    for (int i = 0; i < NHOSTS; i++)
        cr_assert(zkd_wait_count(&hosts[i], svc, want, timeout_ms),
                  "%s: %s has %d instances, want %d", hosts[i].host_id, svc,
                  zkd_count(&hosts[i], svc), want);
}

Test(zkd_region, register_deregister_and_check_failure, .init = setup, .fini = teardown)
{
    /* The segment header carries the ZooKeeper state. */
    struct disc_status st;
    cr_assert_eq(disc_status(hosts[1].h, &st), 0);
    cr_assert(st.flags & DISC_ST_ZK_CONFIGURED);
    cr_assert(st.flags & DISC_ST_ZK_CONNECTED);
    cr_assert_eq(st.flags & DISC_ST_DEGRADED, 0u);
    cr_assert_gt(st.last_sync_ms, 0);
    char state[32];
    zkd_zk_state(&hosts[1], state, sizeof(state));
    cr_assert_str_eq(state, "connected");

    /* Registered on A: visible in B's and C's segments as REMOTE, host A. */
    char id[DISC_ID_LEN + 1];
    zkd_register(&hosts[0], "zkd-web", "10.0.0.1:80", id);
    expect_everywhere("zkd-web", 1, 10000);
    zkd_expect_instance(&hosts[0], "zkd-web", id, DISC_ORIGIN_LOCAL, hosts[0].host_id);
    zkd_expect_instance(&hosts[1], "zkd-web", id, DISC_ORIGIN_REMOTE, hosts[0].host_id);
    zkd_expect_instance(&hosts[2], "zkd-web", id, DISC_ORIGIN_REMOTE, hosts[0].host_id);

    /* Two hosts register the same service: each sees both. */
    char id_b[DISC_ID_LEN + 1];
    zkd_register(&hosts[1], "zkd-web", "10.0.0.2:80", id_b);
    expect_everywhere("zkd-web", 2, 10000);

    /* Deregistration disappears everywhere. */
    zkd_deregister(&hosts[0], id);
    expect_everywhere("zkd-web", 1, 10000);
    zkd_deregister(&hosts[1], id_b);
    expect_everywhere("zkd-web", 0, 10000);

    /* A ttl check that lapses: kept alive with passes until every host sees
     * it, then left to fail. */
    json_t *r = dt_call1(&hosts[2].proc,
                         "{\"op\":\"register\",\"instance\":{\"service\":\"zkd-ttl\",\"address\":"
                         "\"10.0.0.3:80\"},\"check\":{\"type\":\"ttl\",\"ttl_ms\":1500,"
                         "\"interval_ms\":100,\"misses\":1}}");
    cr_assert(dt_ok(r), "ttl register failed");
    char pass[128];
    snprintf(pass, sizeof(pass), "{\"op\":\"pass\",\"id\":\"%s\"}",
             json_string_value(json_object_get(r, "id")));
    json_decref(r);
    long long deadline = proc_now_ms() + 10000LL * dt_slow();
    bool seen = false;
    while (!seen && proc_now_ms() < deadline) {
        json_t *p = dt_call1(&hosts[2].proc, pass);
        cr_assert(dt_ok(p), "pass failed (instance removed too early?)");
        json_decref(p);
        seen = zkd_count(&hosts[0], "zkd-ttl") == 1 && zkd_count(&hosts[1], "zkd-ttl") == 1;
        proc_sleep_ms(50);
    }
    cr_assert(seen, "ttl instance never reached the other hosts");
    /* No more passes: the check fails after ~1.5 s, everywhere. */
    expect_everywhere("zkd-ttl", 0, 10000);

    for (int i = 0; i < NHOSTS; i++)
        zkd_finish(&hosts[i]);
}

Test(zkd_region, killed_host_removed_after_session_expiry, .init = setup, .fini = teardown)
{
    char id[DISC_ID_LEN + 1];
    zkd_register(&hosts[2], "zkd-crash", "10.0.0.9:80", id);
    expect_everywhere("zkd-crash", 1, 10000);

    long long killed_at = proc_now_ms();
    discd_proc_kill(&hosts[2].proc);
    /* The session outlives the process by up to its timeout: the instance
     * must not vanish at once (it is removed by expiry, not by us). */
    proc_sleep_ms(1000);
    if (proc_now_ms() - killed_at < ZKD_SESSION_MS / 2) {
        cr_assert_eq(zkd_count(&hosts[0], "zkd-crash"), 1, "removed before the session expired");
        cr_assert_eq(zkd_count(&hosts[1], "zkd-crash"), 1, "removed before the session expired");
    }
    /* Then it goes: session timeout + ZooKeeper's tick slack + sync. */
    for (int i = 0; i < 2; i++)
        cr_assert(zkd_wait_count(&hosts[i], "zkd-crash", 0, ZKD_SESSION_MS + 10000),
                  "%s still has the killed host's instance", hosts[i].host_id);
    cr_assert_geq(proc_now_ms() - killed_at, ZKD_SESSION_MS / 2,
                  "removed faster than a session expiry");

    /* The survivors keep working between themselves. */
    char id2[DISC_ID_LEN + 1];
    zkd_register(&hosts[0], "zkd-after", "10.0.0.1:81", id2);
    cr_assert(zkd_wait_count(&hosts[1], "zkd-after", 1, 10000));
    zkd_expect_instance(&hosts[1], "zkd-after", id2, DISC_ORIGIN_REMOTE, hosts[0].host_id);

    for (int i = 0; i < NHOSTS; i++)
        zkd_finish(&hosts[i]);
}
