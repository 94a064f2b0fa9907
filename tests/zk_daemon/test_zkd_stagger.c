/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_stagger.c — ZooKeeper comes back empty and the hosts reconnect
 * at different times (issue 9, problem 5). Three discd; ZooKeeper is
 * stopped, wiped and restarted while host c is SIGSTOPped, and c is only
 * let go once a and b have reconnected, synced and left their cooling-off
 * period. Cooling-off is judged region-wide (the tree was created anew, so
 * a host that has not re-announced yet is not gone): a and b must show c's
 * instance at every poll, and all three converge. Protection is off on a
 * and b, so what is tested is the ZooKeeper layer's own judgement. Three
 * runs.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zk_server.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b, c;

static void teardown(void)
{
    if (getenv("DISC_TEST_VERBOSE")) {
        proc_dump_log(&a.proc.proc);
        proc_dump_log(&c.proc.proc);
    }
    zkd_teardown(&zk, &a, &b, &c, NULL);
}

/* Poll for ms: a and b must show svc's n instances at every poll. */
static void never_less(const char *svc, int n, int ms, const char *phase)
{
    long long end = proc_now_ms() + ms;
    while (proc_now_ms() < end) {
        cr_assert_eq(zkd_count(&a, svc), n, "%s: a shows %d of %d", phase, zkd_count(&a, svc), n);
        cr_assert_eq(zkd_count(&b, svc), n, "%s: b shows %d of %d", phase, zkd_count(&b, svc), n);
        proc_sleep_ms(5);
    }
}

#define RUNS 3

Test(zkd_stagger, late_host_never_lost_after_empty_restart, .fini = teardown, .timeout = 400)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "stagger");
    zkd_start_extra(&a, "zksa", zk.connect, root, "--protect-shrink=0");
    zkd_start_extra(&b, "zksb", zk.connect, root, "--protect-shrink=0");
    zkd_start(&c, "zksc", zk.connect, root);
    struct disc_status st;
    zkd_all_synced(15000, &a, &b, &c, NULL);
    char id[DISC_ID_LEN + 1], ida[DISC_ID_LEN + 1];
    zkd_register(&a, "stg", "10.7.0.1:80", ida);
    zkd_register(&c, "stg", "10.7.0.3:80", id);
    zkd_register(&c, "stg", "10.7.0.3:81", id);
    cr_assert(zkd_wait_count(&a, "stg", 3, 10000));
    cr_assert(zkd_wait_count(&b, "stg", 3, 10000));

    for (int run = 0; run < RUNS; run++) {
        cr_assert_eq(zk_node_stop(&zk, 0, 10000), 0);
        /* c has seen the outage (its session give-up timer runs from here,
         * like everyone's), then it stalls */
        cr_assert(zkd_wait_flags(&c, DISC_ST_ZK_CONNECTED, 0, 15000, &st), "c: flags %#x",
                  st.flags);
        cr_assert_eq(proc_signal(&c.proc.proc, SIGSTOP), 0);
        cr_assert_eq(zk_node_wipe_data(&zk, 0), 0);
        cr_assert_eq(zk_node_start(&zk, 0), 0);
        cr_assert_eq(zk_node_wait_ready(&zk, 0, 30000 * dt_slow()), 0);
        /* a and b come back (their old sessions are refused: new ones) and
         * finish cooling off; c is still stopped. */
        long long end = proc_now_ms() + 40000LL * dt_slow();
        bool back = false;
        while (!back && proc_now_ms() < end) {
            never_less("stg", 3, 50, "a, b reconnecting");
            struct disc_status sa, sb;
            cr_assert_eq(disc_status(a.h, &sa), 0);
            cr_assert_eq(disc_status(b.h, &sb), 0);
            const uint32_t m = DISC_ST_ZK_CONNECTED | DISC_ST_DEGRADED | DISC_ST_COOLING_OFF;
            back = (sa.flags & m) == DISC_ST_ZK_CONNECTED && (sb.flags & m) == DISC_ST_ZK_CONNECTED;
        }
        cr_assert(back, "run %d: a and b did not reconnect and sync", run);
        never_less("stg", 3, 700, "after a's and b's cooling-off, c still away");
        cr_assert_eq(proc_signal(&c.proc.proc, SIGCONT), 0);
        /* c reconnects late and re-announces; nothing of it ever vanishes */
        end = proc_now_ms() + 30000LL * dt_slow();
        bool synced = false;
        while (!synced && proc_now_ms() < end) {
            never_less("stg", 3, 50, "c coming back");
            synced = zkd_wait_synced(&c, 1, &st);
        }
        cr_assert(synced, "run %d: c did not sync again", run);
        never_less("stg", 3, 1500, "after c's return");
        cr_assert(zkd_wait_count(&c, "stg", 3, 10000), "run %d: c shows %d", run,
                  zkd_count(&c, "stg"));
    }
    /* And removals still work afterwards. */
    zkd_deregister(&a, ida);
    cr_assert(zkd_wait_count(&b, "stg", 2, 10000), "a's deregistration not propagated");
    zkd_finish(&c);
    cr_assert(zkd_wait_count(&b, "stg", 0, 20000), "c's instances not removed when c left");
    zkd_finish(&a);
    zkd_finish(&b);
}
