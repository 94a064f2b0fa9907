/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_cache.c — discd's file cache in ZooKeeper mode: a discd
 * restarted while ZooKeeper is down publishes the region picture it saved,
 * flagged as coming from the cache, at once; when ZooKeeper is back it is
 * replaced by live data (confirmed instances become REMOTE, the rest go).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zk_server.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b, b2;
static char root[128], cache[4400], arg[4500];

static void setup(void)
{
    zkd_zookeeper(&zk, root, sizeof(root), "cache");
    /* in the registry directory: readers refuse a cache in /tmp, which
     * others can write (tests/common/registry_dir.c) */
    snprintf(cache, sizeof(cache), "%s/disc-zkcache-%d.cache", getenv("DISCSHM_DIR"),
             (int)getpid());
    unlink(cache);
    snprintf(arg, sizeof(arg), "--cache-file=%s", cache);
    zkd_start(&a, "zkca", zk.connect, root);
    zkd_start_extra(&b, "zkcb", zk.connect, root, arg);
    zkd_all_synced(15000, &a, &b, NULL);
}

static void teardown(void)
{
    zkd_teardown(&zk, &a, &b, &b2, NULL);
    unlink(cache);
}

static int cache_count(const char *svc)
{
    disc_handle *h;
    if (disc_open_file(cache, 0, &h) < 0)
        return -1;
    int n = disc_count(h, svc);
    disc_close(h);
    return n;
}

Test(zkd_cache, restart_while_zookeeper_down_serves_the_cache, .init = setup, .fini = teardown,
     .timeout = 120)
{
    char keep[DISC_ID_LEN + 1], gone[DISC_ID_LEN + 1];
    zkd_register(&a, "cache-svc", "127.0.0.1:7201", keep);
    zkd_register(&a, "cache-svc", "127.0.0.1:7202", gone);
    cr_assert(zkd_wait_count(&b, "cache-svc", 2, 10000));
    long long end = proc_now_ms() + 10000 * dt_slow();
    while (cache_count("cache-svc") != 2 && proc_now_ms() < end)
        proc_sleep_ms(50);
    cr_assert_eq(cache_count("cache-svc"), 2, "B saved the region picture");

    /* ZooKeeper down, B killed, B restarted: the cache, at once. */
    cr_assert_eq(zk_node_stop(&zk, 0, 10000), 0);
    zkd_abort(&b);
    zkd_start_extra(&b2, "zkcb2", zk.connect, root, arg);
    cr_assert(zkd_wait_count(&b2, "cache-svc", 2, 1000),
              "the cache is published before ZooKeeper answers (have %d)",
              zkd_count(&b2, "cache-svc"));
    struct disc_status st;
    if (!zkd_wait_flags(&b2, DISC_ST_FROM_CACHE | DISC_ST_DEGRADED,
                        DISC_ST_FROM_CACHE | DISC_ST_DEGRADED, 5000, &st))
        proc_dump_log(&b2.proc.proc);
    cr_assert(st.flags & DISC_ST_FROM_CACHE, "flags %#x", st.flags);
    cr_assert(st.flags & DISC_ST_DEGRADED, "flags %#x", st.flags);
    static char buf[1 << 16];
    struct disc_instance *list;
    size_t need;
    cr_assert_eq(disc_lookup(b2.h, "cache-svc", buf, sizeof(buf), &list, &need), 2);
    cr_assert_eq(list[0].origin, DISC_ORIGIN_CACHE);

    /* While ZooKeeper is down, A loses one instance (it will not be in ZooKeeper
     * when it returns). A keeps both until ZooKeeper is back. */
    zkd_deregister(&a, gone);

    /* ZooKeeper back: B2 syncs; the confirmed instance is REMOTE, the other
     * goes after cooling-off, and the snapshot is no longer from the cache. */
    cr_assert_eq(zk_node_start(&zk, 0), 0);
    cr_assert_eq(zk_node_wait_ready(&zk, 0, 30000 * dt_slow()), 0);
    cr_assert(zkd_wait_synced(&b2, 30000, &st));
    cr_assert(zkd_wait_flags(&b2, DISC_ST_FROM_CACHE, 0, 20000, &st),
              "still flagged from cache: %#x", st.flags);
    cr_assert(zkd_wait_count(&b2, "cache-svc", 1, 20000), "unconfirmed cache entry dropped");
    zkd_expect_instance(&b2, "cache-svc", keep, DISC_ORIGIN_REMOTE, a.host_id);
    zkd_finish(&a);
    zkd_finish(&b2);
}
