/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_baddoc.c — a foreign "host" (zk_sync in the test process, a real
 * ZooKeeper client) publishes instance documents that pass zk_sync's own
 * checks but not discd's instance model. discd skips and counts them,
 * keeps serving, and still takes the valid one.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "zk_server.h"
#include "zkc.h"
#include "zkd_peer.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a;
static struct zk_sync *rogue;

static void teardown(void)
{
    zk_sync_stop(rogue);
    rogue = NULL;
    zkd_teardown(&zk, &a, NULL);
}

static void publish(const char *id, const char *fmt_rest)
{
    char doc[512];
    snprintf(doc, sizeof(doc), "{\"id\":\"%s\",\"service\":\"zkd-rogue\",\"host\":\"rogue\"%s}", id,
             fmt_rest);
    int rc = zk_sync_publish_local(rogue, id, doc, strlen(doc));
    cr_assert_eq(rc, 0, "zk_sync_publish_local(%s): %d", doc, rc);
}

Test(zkd_baddoc, invalid_documents_are_skipped_and_counted, .fini = teardown)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "baddoc");
    zkd_start(&a, "zkba", zk.connect, root);
    struct disc_status st;
    cr_assert(zkd_wait_synced(&a, 15000, &st), "a: flags %#x", st.flags);
    cr_assert_eq(zkd_counter(&a, "skipped_invalid"), 0);

    rogue = zkd_peer_start(zk.connect, root, "rogue");
    char good[37], no_addr[37], bad_type[37];
    zkc_new_id(good);
    zkc_new_id(no_addr);
    zkc_new_id(bad_type);
    publish(no_addr, "");                                               /* "address" missing */
    publish(bad_type, ",\"address\":\"10.9.0.2:80\",\"weight\":\"x\""); /* weight not a number */
    publish(good, ",\"address\":\"10.9.0.1:80\"");
    cr_assert_eq(zk_sync_wait_local_applied(rogue, 15000 * dt_slow()), 0,
                 "rogue nodes not written");

    cr_assert(zkd_wait_count(&a, "zkd-rogue", 1, 10000),
              "the valid foreign document was not taken");
    zkd_expect_instance(&a, "zkd-rogue", good, DISC_ORIGIN_REMOTE, "rogue");
    long long deadline = proc_now_ms() + 10000LL * dt_slow();
    while (zkd_counter(&a, "skipped_invalid") != 2 && proc_now_ms() < deadline)
        proc_sleep_ms(20);
    cr_assert_eq(zkd_counter(&a, "skipped_invalid"), 2, "invalid documents not counted");
    cr_assert_eq(zkd_count(&a, "zkd-rogue"), 1);

    /* discd keeps syncing: the foreign host's withdrawal propagates. */
    cr_assert_eq(zk_sync_withdraw_local(rogue, good), 0);
    cr_assert(zkd_wait_count(&a, "zkd-rogue", 0, 10000), "withdrawal not propagated");
    zk_sync_stop(rogue);
    rogue = NULL;
    zkd_finish(&a);
}
