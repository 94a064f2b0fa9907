/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_foreign.c — discd converges whatever another ZooKeeper client
 * does to its tree (issue 9, problems 1-4 and 6). A plain ZooKeeper client
 * in the test process (zkc.c, what zkCli does) acts on the tree of real
 * discd processes; the segments are read through libdiscshm:
 *   - an unreadable node (ACL without read) is skipped and counted and
 *     blocks nothing: other hosts' and the host's own writes go on;
 *   - `deleteall <root>/hosts` is repaired and every host re-announces;
 *   - an id forged under another host is resolved by the documented rule
 *     (smallest host id wins) the same way on a running and a fresh discd,
 *     and the real instance comes back when the forgery goes;
 *   - a node rewritten in place is re-created by its owner, and a foreign
 *     node rewritten in place is read again by the audit;
 *   - the header's last sync is current on an idle host, and a connected
 *     host whose writes fail says so (DEGRADED, zookeeper-sync-failing,
 *     status.zookeeper.last_error) until the cause goes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_run.h"
#include "zk_server.h"
#include "zkc.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b, c;
static zhandle_t *cli;

static void teardown(void)
{
    zkc_close(cli);
    cli = NULL;
    zkd_teardown(&zk, &a, &b, &c, NULL);
    ctl_run_release_all();
}

/* ZooKeeper, a root, and discd a and b (audit every second), both synced. */
static void setup_two(char *root, size_t len, const char *tag)
{
    zkd_zookeeper(&zk, root, len, tag);
    zkd_start_extra(&a, "zkfa", zk.connect, root, "--zk-audit-interval=1000");
    zkd_start_extra(&b, "zkfb", zk.connect, root, "--zk-audit-interval=1000");
    zkd_all_synced(15000, &a, &b, NULL);
    cli = zkc_open(zk.connect, NULL, 10000);
    cr_assert(cli, "plain ZooKeeper client did not connect");
}

/* status.zookeeper (new reference). */
static json_t *zk_status(struct zkd *z)
{
    json_t *r = dt_call1(&z->proc, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    json_t *v = json_object_get(r, "zookeeper");
    cr_assert(json_is_object(v), "status.zookeeper missing");
    json_incref(v);
    json_decref(r);
    return v;
}

/* Wait until the one instance of svc in z has address want. */
static bool wait_addr(struct zkd *z, const char *svc, const char *want, int timeout_ms)
{
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        char buf[8192];
        struct disc_instance *list = NULL;
        int n = disc_lookup(z->h, svc, buf, sizeof(buf), &list, NULL);
        if (n == 1 && strcmp(list[0].address, want) == 0)
            return true;
        if (proc_now_ms() > end) {
            cr_log_error("%s: %d instances of %s, first address %s; want %s", z->host_id, n, svc,
                         n > 0 ? list[0].address : "-", want);
            return false;
        }
        proc_sleep_ms(10);
    }
}

static void doc(char *out, size_t len, const char *id, const char *svc, const char *addr)
{
    snprintf(out, len, "{\"id\":\"%s\",\"service\":\"%s\",\"host\":\"foreign\",\"address\":\"%s\"}",
             id, svc, addr);
}

Test(zkd_foreign, unreadable_node_blocks_nothing, .fini = teardown)
{
    char root[128], path[512], d[512], hosts[256];
    setup_two(root, sizeof(root), "noread");
    snprintf(hosts, sizeof(hosts), "%s/hosts/0x", root);
    cr_assert_eq(zkc_create(cli, hosts, NULL, ZOO_PERM_ALL, 0), ZOK);
    char bad[37];
    zkc_new_id(bad);
    snprintf(path, sizeof(path), "%s/%s-1", hosts, bad);
    doc(d, sizeof(d), bad, "zkf-noread", "10.9.9.9:9");
    /* world:anyone:cdwa — everything but read */
    cr_assert_eq(zkc_create(cli, path, d, ZOO_PERM_ALL & ~ZOO_PERM_READ, 0), ZOK);

    /* Both hosts keep syncing: their own writes and each other's. */
    char ida[DISC_ID_LEN + 1], idb[DISC_ID_LEN + 1];
    zkd_register(&a, "zkf-live", "10.1.0.1:80", ida);
    zkd_register(&b, "zkf-live", "10.1.0.2:80", idb);
    cr_assert(zkd_wait_count(&a, "zkf-live", 2, 10000), "a: %d of 2", zkd_count(&a, "zkf-live"));
    cr_assert(zkd_wait_count(&b, "zkf-live", 2, 10000), "b: %d of 2", zkd_count(&b, "zkf-live"));
    cr_assert_eq(zkd_count(&a, "zkf-noread"), 0);
    long long deadline = proc_now_ms() + 10000LL * dt_slow();
    while (zkd_counter(&b, "skipped_unreadable") < 1 && proc_now_ms() < deadline)
        proc_sleep_ms(50);
    cr_assert_geq(zkd_counter(&b, "skipped_unreadable"), 1, "the unreadable node was not counted");
    /* ... and it is not an error: synced, header not degraded, sync current */
    struct disc_status st;
    cr_assert(zkd_wait_synced(&b, 5000, &st));
    json_t *s = zk_status(&b);
    cr_assert(json_is_true(json_object_get(s, "synced")), "b not synced: %s",
              json_string_value(json_object_get(s, "last_error")));
    json_decref(s);
    /* A withdrawal goes through too. */
    zkd_deregister(&a, ida);
    cr_assert(zkd_wait_count(&b, "zkf-live", 1, 10000), "withdrawal not propagated");
    zkd_finish(&a);
    zkd_finish(&b);
}

Test(zkd_foreign, deleted_tree_is_recreated, .fini = teardown)
{
    char root[128], hosts[256], own[512];
    setup_two(root, sizeof(root), "delall");
    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "zkf-tree", "10.2.0.1:80", id);
    zkd_register(&a, "zkf-tree", "10.2.0.1:81", id);
    zkd_register(&b, "zkf-tree", "10.2.0.2:80", id);
    cr_assert(zkd_wait_count(&a, "zkf-tree", 3, 10000));
    cr_assert(zkd_wait_count(&b, "zkf-tree", 3, 10000));

    snprintf(hosts, sizeof(hosts), "%s/hosts", root);
    int rc = zkc_deleteall(cli, hosts);
    cr_assert_eq(rc, ZOK, "deleteall: %s", zerror(rc));
    /* The tree comes back with every host's nodes, and the segments agree. */
    snprintf(own, sizeof(own), "%s/%s", hosts, a.host_id);
    long long deadline = proc_now_ms() + 15000LL * dt_slow();
    while (zkc_count(cli, own) != 2 && proc_now_ms() < deadline)
        proc_sleep_ms(20);
    cr_assert_eq(zkc_count(cli, own), 2, "a's nodes were not re-created");
    snprintf(own, sizeof(own), "%s/%s", hosts, b.host_id);
    while (zkc_count(cli, own) != 1 && proc_now_ms() < deadline)
        proc_sleep_ms(20);
    cr_assert_eq(zkc_count(cli, own), 1, "b's node was not re-created");
    cr_assert(zkd_wait_count(&a, "zkf-tree", 3, 10000), "a: %d", zkd_count(&a, "zkf-tree"));
    cr_assert(zkd_wait_count(&b, "zkf-tree", 3, 10000), "b: %d", zkd_count(&b, "zkf-tree"));
    cr_assert_geq(zkd_counter(&a, "tree_created") + zkd_counter(&b, "tree_created"), 1);
    /* Still live: a new registration propagates. */
    zkd_register(&b, "zkf-tree", "10.2.0.2:81", id);
    cr_assert(zkd_wait_count(&a, "zkf-tree", 4, 10000), "a: %d", zkd_count(&a, "zkf-tree"));
    zkd_finish(&a);
    zkd_finish(&b);
}

/* A forged copy of a's instance under host `forger`. */
static void forge(const char *root, const char *forger, const char *id, const char *addr,
                  char *path, size_t len)
{
    char dir[256], d[512];
    snprintf(dir, sizeof(dir), "%s/hosts/%s", root, forger);
    int rc = zkc_create(cli, dir, NULL, ZOO_PERM_ALL, 0);
    cr_assert(rc == ZOK || rc == ZNODEEXISTS);
    snprintf(path, len, "%s/%s-1", dir, id);
    doc(d, sizeof(d), id, "zkf-dup", addr);
    cr_assert_eq(zkc_create(cli, path, d, ZOO_PERM_ALL, 0), ZOK);
}

Test(zkd_foreign, duplicate_id_rule_and_reevaluation, .fini = teardown)
{
    char root[128], fpath[512], lpath[512];
    setup_two(root, sizeof(root), "dup");
    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "zkf-dup", "10.3.0.1:80", id);
    cr_assert(wait_addr(&b, "zkf-dup", "10.3.0.1:80", 10000));

    /* A claim from a host id that sorts after a's loses, on b and on a
     * fresh discd that finds both at once. */
    forge(root, "zzzz-late", id, "10.6.6.6:1", lpath, sizeof(lpath));
    proc_sleep_ms(500);
    cr_assert(wait_addr(&b, "zkf-dup", "10.3.0.1:80", 100), "b: the later host id took it");
    /* One from a host id that sorts first wins, on b ... */
    forge(root, "0000-first", id, "10.6.6.6:2", fpath, sizeof(fpath));
    cr_assert(wait_addr(&b, "zkf-dup", "10.6.6.6:2", 10000), "b: rule not applied");
    /* ... and the same on a fresh discd, whatever it discovers first. */
    zkd_start(&c, "zkfc", zk.connect, root);
    struct disc_status st;
    cr_assert(zkd_wait_synced(&c, 15000, &st));
    cr_assert(wait_addr(&c, "zkf-dup", "10.6.6.6:2", 10000), "c: rule not applied");
    cr_assert_geq(zkd_counter(&b, "conflicts"), 2);

    /* The forgeries go: the real instance is shown again everywhere. */
    cr_assert_eq(zkc_delete(cli, fpath), ZOK);
    cr_assert(wait_addr(&b, "zkf-dup", "10.3.0.1:80", 10000), "b: real instance not back");
    cr_assert(wait_addr(&c, "zkf-dup", "10.3.0.1:80", 10000), "c: real instance not back");
    cr_assert_eq(zkc_delete(cli, lpath), ZOK);
    proc_sleep_ms(300);
    cr_assert(wait_addr(&b, "zkf-dup", "10.3.0.1:80", 100));
    /* A restarted reader never "forgot" it either. */
    zkd_finish(&c);
    zkd_start(&c, "zkfc", zk.connect, root);
    cr_assert(zkd_wait_synced(&c, 15000, &st));
    cr_assert(wait_addr(&c, "zkf-dup", "10.3.0.1:80", 10000), "fresh c lost the real instance");
    zkd_finish(&c);
    zkd_finish(&a);
    zkd_finish(&b);
}

Test(zkd_foreign, rewritten_in_place, .fini = teardown)
{
    char root[128], dir[256], node[128], path[512], data[1024];
    setup_two(root, sizeof(root), "rewrite");
    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "zkf-rw", "10.4.0.1:80", id);
    cr_assert(wait_addr(&b, "zkf-rw", "10.4.0.1:80", 10000));
    snprintf(dir, sizeof(dir), "%s/hosts/%s", root, a.host_id);
    cr_assert_eq(zkc_find_child(cli, dir, id, node, sizeof(node)), ZOK);
    snprintf(path, sizeof(path), "%s/%s", dir, node);
    char orig[1024];
    cr_assert_eq(zkc_get(cli, path, orig, sizeof(orig), NULL), ZOK);

    /* Another client rewrites a's node: a publishes it again, by name and content. */
    cr_assert_eq(zkc_set(cli, path, "garbage{"), ZOK);
    long long deadline = proc_now_ms() + 10000LL * dt_slow();
    char now_name[128] = "";
    while (proc_now_ms() < deadline) {
        if (zkc_find_child(cli, dir, id, now_name, sizeof(now_name)) == ZOK &&
            strcmp(now_name, node) != 0 && zkc_count(cli, dir) == 1)
            break;
        proc_sleep_ms(20);
    }
    cr_assert_str_neq(now_name, node, "a did not repair its node");
    cr_assert_eq(zkc_count(cli, dir), 1, "the rewritten node was not removed");
    snprintf(path, sizeof(path), "%s/%s", dir, now_name);
    int version = -1;
    cr_assert_eq(zkc_get(cli, path, data, sizeof(data), &version), ZOK);
    cr_assert_str_eq(data, orig, "repaired node has other content");
    cr_assert_eq(version, 0);
    cr_assert_geq(zkd_counter(&a, "repairs"), 1);
    cr_assert(wait_addr(&b, "zkf-rw", "10.4.0.1:80", 10000), "b lost the instance");
    zkd_start_extra(&c, "zkfc", zk.connect, root, "--zk-audit-interval=1000");
    struct disc_status st;
    cr_assert(zkd_wait_synced(&c, 15000, &st));
    cr_assert(wait_addr(&c, "zkf-rw", "10.4.0.1:80", 10000), "fresh c does not show it");

    /* A node of a foreign writer (no discd watches it) rewritten in place:
     * the audit (every second here) reads it again. */
    char fid[37], fdir[256], fpath[512], d[512];
    zkc_new_id(fid);
    snprintf(fdir, sizeof(fdir), "%s/hosts/foreign-w", root);
    cr_assert_eq(zkc_create(cli, fdir, NULL, ZOO_PERM_ALL, 0), ZOK);
    snprintf(fpath, sizeof(fpath), "%s/%s-1", fdir, fid);
    doc(d, sizeof(d), fid, "zkf-frw", "10.4.1.1:1");
    cr_assert_eq(zkc_create(cli, fpath, d, ZOO_PERM_ALL, 0), ZOK);
    cr_assert(wait_addr(&b, "zkf-frw", "10.4.1.1:1", 10000));
    doc(d, sizeof(d), fid, "zkf-frw", "10.4.1.2:2");
    cr_assert_eq(zkc_set(cli, fpath, d), ZOK);
    cr_assert(wait_addr(&b, "zkf-frw", "10.4.1.2:2", 10000), "b: in-place change not seen");
    cr_assert(wait_addr(&c, "zkf-frw", "10.4.1.2:2", 10000), "c: in-place change not seen");
    cr_assert_geq(zkd_counter(&b, "audit_changed"), 1);
    /* Rewritten into garbage: dropped everywhere, like a fresh reader would. */
    cr_assert_eq(zkc_set(cli, fpath, "garbage{"), ZOK);
    cr_assert(zkd_wait_count(&b, "zkf-frw", 0, 10000), "b kept a document that is now garbage");
    zkd_finish(&c);
    zkd_finish(&a);
    zkd_finish(&b);
}

Test(zkd_foreign, sync_state_current_and_stuck_reported, .fini = teardown)
{
    char root[128], hosts[256], own[512], node[128], path[1024];
    setup_two(root, sizeof(root), "state");
    /* Idle and connected: the header's last sync stays recent. */
    struct disc_status st;
    for (int i = 0; i < 6; i++) {
        proc_sleep_ms(500);
        cr_assert_eq(disc_status(b.h, &st), 0);
        long long now = proc_real_ms();
        cr_assert_lt(now - st.last_sync_ms, 2500LL * dt_slow(),
                     "last sync %lld ms ago on an idle host", now - st.last_sync_ms);
    }

    /* b's writes fail: its subtree is made read-only for everyone, then its
     * node is rewritten, so b must create a new node and cannot. */
    char id[DISC_ID_LEN + 1];
    snprintf(hosts, sizeof(hosts), "%s/hosts", root);
    snprintf(own, sizeof(own), "%s/%s", hosts, b.host_id);
    zkd_register(&b, "zkf-stuck", "10.5.0.1:80", id);
    cr_assert(zkd_wait_count(&a, "zkf-stuck", 1, 10000));
    cr_assert_eq(zkc_find_child(cli, own, id, node, sizeof(node)), ZOK);
    snprintf(path, sizeof(path), "%s/%s", own, node);
    /* read and admin (to undo it) only: no create, no delete */
    cr_assert_eq(zkc_set_world_acl(cli, own, ZOO_PERM_READ | ZOO_PERM_ADMIN), ZOK);
    cr_assert_eq(zkc_set(cli, path, "garbage{"), ZOK);

    cr_assert(zkd_wait_flags(&b, DISC_ST_DEGRADED | DISC_ST_ZK_CONNECTED,
                             DISC_ST_DEGRADED | DISC_ST_ZK_CONNECTED, 10000, &st),
              "b: flags %#x", st.flags);
    cr_assert_eq(st.degraded_reason, (uint32_t)DISC_DEG_ZK_SYNC_FAILING, "reason %u",
                 st.degraded_reason);
    cr_assert_gt(st.degraded_since_ms, 0);
    json_t *s = zk_status(&b);
    cr_assert(json_is_false(json_object_get(s, "synced")));
    const char *err = json_string_value(json_object_get(s, "last_error"));
    cr_assert(err && strstr(err, b.host_id) && strstr(err, "not authenticated"), "last_error: %s",
              err ? err : "(none)");
    cr_assert_gt(json_integer_value(json_object_get(s, "error_since_ms")), 0);
    json_decref(s);
    /* discctl status tells it apart from a synced host. */
    struct ctl_result r =
        ctl_run(&b.proc, 10000 * dt_slow(), (const char *const[]){"status", NULL});
    cr_assert_geq(r.code, 0, "discctl status did not exit");
    cr_assert(strstr(r.out, "zookeeper-sync-failing") && strstr(r.out, "STUCK"), "discctl: %s",
              r.out);
    ctl_result_free(&r);

    /* The cause goes: b re-creates its node and is synced again. */
    cr_assert_eq(zkc_set_world_acl(cli, own, ZOO_PERM_ALL), ZOK);
    cr_assert(zkd_wait_synced(&b, 10000, &st), "b: flags %#x reason %u", st.flags,
              st.degraded_reason);
    long long deadline = proc_now_ms() + 10000LL * dt_slow();
    char now_name[128] = "";
    while (proc_now_ms() < deadline &&
           (zkc_count(cli, own) != 1 || zkc_find_child(cli, own, id, now_name, sizeof(now_name)) ||
            strcmp(now_name, node) == 0))
        proc_sleep_ms(20);
    cr_assert_eq(zkc_count(cli, own), 1, "b's subtree not repaired");
    cr_assert_str_neq(now_name, node, "b's node not re-created");
    cr_assert(zkd_wait_count(&a, "zkf-stuck", 1, 10000));
    zkd_finish(&a);
    zkd_finish(&b);
}
