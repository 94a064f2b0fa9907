/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_expiry.c — a discd stopped (SIGSTOP) past its ZooKeeper session
 * timeout loses its session and its ephemeral nodes; after SIGCONT it opens
 * a new session and re-creates every local node, so the other host sees
 * its instance again. Its own segment never loses the local registration.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "zk_server.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b;

static void setup(void)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "expiry");
    zkd_start(&a, "zkea", zk.connect, root);
    zkd_start(&b, "zkeb", zk.connect, root);
    zkd_all_synced(15000, &a, &b, NULL);
}

static void teardown(void)
{
    if (a.proc.proc.pid)
        proc_signal(&a.proc.proc, SIGCONT);
    zkd_teardown(&zk, &a, &b, NULL);
}

Test(zkd_expiry, stopped_past_session_timeout_recreates_nodes, .init = setup, .fini = teardown,
     .timeout = 120)
{
    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "expiry-svc", "127.0.0.1:7100", id);
    cr_assert(zkd_wait_count(&b, "expiry-svc", 1, 10000), "B sees A's instance");

    /* Stop A well past its session timeout: ZooKeeper expires the session
     * and deletes A's ephemeral nodes; B drops the instance (after its
     * protection hold). */
    cr_assert_eq(proc_signal(&a.proc.proc, SIGSTOP), 0);
    cr_assert(zkd_wait_count(&b, "expiry-svc", 0, ZKD_SESSION_MS + 15000),
              "B still shows the instance of a host whose session expired");

    /* A resumes: new session, local nodes re-created. */
    cr_assert_eq(proc_signal(&a.proc.proc, SIGCONT), 0);
    cr_assert(zkd_wait_count(&b, "expiry-svc", 1, 15000),
              "A did not re-create its node after the session expired");
    zkd_expect_instance(&b, "expiry-svc", id, DISC_ORIGIN_REMOTE, a.host_id);
    cr_assert_eq(zkd_count(&a, "expiry-svc"), 1, "A never lost its local registration");
    zkd_expect_instance(&a, "expiry-svc", id, DISC_ORIGIN_LOCAL, a.host_id);

    /* and it keeps working afterwards */
    char id2[DISC_ID_LEN + 1];
    zkd_register(&a, "expiry-svc", "127.0.0.1:7101", id2);
    cr_assert(zkd_wait_count(&b, "expiry-svc", 2, 10000));
    zkd_finish(&a);
    zkd_finish(&b);
}
