/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_export — the Curator export (export-curator, daemon/zk/export.c)
 * seen with a plain ZooKeeper client, real ZooKeeper and two real discd
 * (no JVM, so it also runs under the sanitizers; the Java side is
 * tests/interop/curator/test_curator_interop):
 *
 * - a registration appears as BASE/<service>/<id>, ephemeral, with the
 *   Curator fields and id = node name; deregistration removes it;
 * - a failing check (ttl, kept critical by deregister_after_ms) withdraws
 *   it and a pass brings it back; maintenance withdraws it too;
 * - a node another client deletes or rewrites is put back, also when the
 *   rewrite lands right after discd re-created it (before its watch);
 * - with import and export on one base, the other discd shows the instance
 *   once (from the native tree) and counts the export as ignored;
 * - after its session expired, discd puts every export back in a few waves
 *   of pipelined calls (not a round trip per node), replacing a node
 *   another client created with one of its ids and the service node
 *   another client deleted meanwhile.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_run.h"
#include "daemon_util.h"
#include "zk_server.h"
#include "zkc.h"
#include "zkd_util.h"

static struct zk_cluster zk;
static struct zkd a, b;
static zhandle_t *cli;
static char root[128];
static struct zkd_conf conf;

static void setup(void)
{
    zkd_zookeeper(&zk, root, sizeof(root), "export");
    cli = zkc_open(zk.connect, NULL, 10000);
    cr_assert(cli);
}

static void teardown(void)
{
    if (a.proc.proc.pid)
        proc_signal(&a.proc.proc, SIGCONT); /* stopped by a failed expiry test */
    zkc_close(cli);
    zkd_teardown(&zk, &a, &b, NULL);
    zkd_conf_remove(&conf);
    ctl_run_release_all();
}

TestSuite(zkd_export, .init = setup, .fini = teardown);

/* Poll until path exists (want true) or not; returns whether reached. */
static bool wait_node(const char *path, bool want, int timeout_ms)
{
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        bool there = zoo_exists(cli, path, 0, NULL) == ZOK;
        if (there == want)
            return true;
        if (proc_now_ms() > end)
            return false;
        proc_sleep_ms(50);
    }
}

static json_t *node_doc(const char *path, struct Stat *st)
{
    char buf[4096];
    cr_assert_eq(zkc_get(cli, path, buf, sizeof(buf), NULL), ZOK, "get %s", path);
    cr_assert_eq(zoo_exists(cli, path, 0, st), ZOK);
    json_t *d = json_loads(buf, 0, NULL);
    cr_assert(d, "%s: not JSON: %s", path, buf);
    return d;
}

static long long import_ignored_now(struct zkd *z)
{
    return dt_status_int(&z->proc, "zookeeper.import.0.ignored_now");
}

/* `discctl status` of z contains want (polled: counters follow rounds). */
static bool discctl_status_has(struct zkd *z, const char *want, int timeout_ms)
{
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        struct ctl_result r =
            ctl_run(&z->proc, 10000 * dt_slow(), (const char *const[]){"status", NULL});
        bool found = strstr(r.out, want) != NULL;
        if (!found && proc_now_ms() > end)
            fprintf(stderr, "discctl status:\n%s\n", r.out);
        ctl_result_free(&r);
        if (found)
            return true;
        if (proc_now_ms() > end)
            return false;
        proc_sleep_ms(100);
    }
}

/* Rewrites path with garbage from the client's own event thread the moment
 * discd re-creates it: the watcher sees the test's delete, arms an exists
 * watch at once (asynchronously, before discd can have re-created it), and
 * on the creation issues an asynchronous set. state: 0 waiting, 1 set
 * issued, 2 set completed, -1 missed (re-created before the watch was
 * armed: the round does not count). */
struct rewrite_on_create {
    const char *path;
    pthread_mutex_t mu;
    int state, rc;
};

static void rw_state(struct rewrite_on_create *rw, int state, int rc)
{
    pthread_mutex_lock(&rw->mu);
    rw->state = state;
    rw->rc = rc;
    pthread_mutex_unlock(&rw->mu);
}

static void rewrite_done(int rc, const struct Stat *st, const void *data)
{
    (void)st;
    rw_state((struct rewrite_on_create *)data, 2, rc);
}

static void armed(int rc, const struct Stat *st, const void *data)
{
    (void)st;
    if (rc != ZNONODE)
        rw_state((struct rewrite_on_create *)data, -1, rc);
}

static void rewrite_on_create(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)state;
    (void)path;
    struct rewrite_on_create *rw = ctx;
    pthread_mutex_lock(&rw->mu);
    bool missed = rw->state < 0;
    pthread_mutex_unlock(&rw->mu);
    if (missed)
        return;
    if (type == ZOO_DELETED_EVENT) {
        int rc = zoo_awexists(zh, rw->path, rewrite_on_create, rw, armed, rw);
        if (rc != ZOK)
            rw_state(rw, -1, rc);
    } else if (type == ZOO_CREATED_EVENT) {
        rw_state(rw, 1, ZOK);
        static const char garbage[] = "{\"garbage\":2}";
        int rc = zoo_aset(zh, rw->path, garbage, (int)strlen(garbage), -1, rewrite_done, rw);
        if (rc != ZOK)
            rewrite_done(rc, NULL, rw);
    }
}

static void ok_call(struct zkd *z, const char *fmt, const char *id)
{
    json_t *r = dt_callf(&z->proc, fmt, id);
    cr_assert(dt_ok(r), "request failed: %s", dt_err_code(r));
    json_decref(r);
}

Test(zkd_export, exported_nodes_follow_registration_health_and_repairs)
{
    zkd_conf_write(
        &conf, "import = curator /x/services\nexport-curator = /x/services\nzk-cooloff = 200\n");
    zkd_start_conf(&a, "a", zk.connect, root, &conf);
    zkd_start_conf(&b, "b", zk.connect, root, &conf);

    /* registered: exported with Curator's fields, id = node name */
    char id[DISC_ID_LEN + 1], path[300];
    zkd_register(&a, "cpp", "127.0.0.1:7000", id);
    snprintf(path, sizeof(path), "/x/services/cpp/%s", id);
    cr_assert(wait_node(path, true, 10000), "%s not exported", path);
    struct Stat zs;
    json_t *d = node_doc(path, &zs);
    cr_expect_neq(zs.ephemeralOwner, 0, "ephemeral");
    cr_expect_str_eq(json_string_value(json_object_get(d, "name")), "cpp");
    cr_expect_str_eq(json_string_value(json_object_get(d, "id")), id);
    cr_expect_str_eq(json_string_value(json_object_get(d, "address")), "127.0.0.1");
    cr_expect_eq(json_integer_value(json_object_get(d, "port")), 7000);
    cr_expect_str_eq(json_string_value(json_object_get(d, "serviceType")), "DYNAMIC");
    cr_expect(json_is_true(json_object_get(d, "enabled")));
    cr_expect(json_is_null(json_object_get(d, "payload")));
    cr_expect(json_is_object(json_object_get(d, "discshm")), "marked as discd's export");
    json_decref(d);

    cr_expect(discctl_status_has(&a, "export curator /x/services: 1 of 1 local instances exported",
                                 10000));

    /* nothing twice: b shows the native instance once, both ignore the export */
    cr_assert(zkd_wait_count(&b, "cpp", 1, 10000));
    long long end = proc_now_ms() + 10000LL * dt_slow();
    while ((import_ignored_now(&a) < 1 || import_ignored_now(&b) < 1) && proc_now_ms() < end)
        proc_sleep_ms(50);
    cr_expect_eq(import_ignored_now(&a), 1);
    cr_expect_eq(import_ignored_now(&b), 1);
    cr_expect_eq(zkd_count(&a, "cpp"), 1);
    cr_expect_eq(zkd_count(&b, "cpp"), 1);

    /* another client deletes it: put back; rewrites it: rewritten back */
    cr_assert_eq(zkc_delete(cli, path), ZOK);
    cr_assert(wait_node(path, true, 10000), "deleted export not re-created");
    cr_assert_eq(zkc_set(cli, path, "{\"garbage\":1}"), ZOK);
    end = proc_now_ms() + 10000LL * dt_slow();
    for (;;) {
        d = node_doc(path, &zs);
        bool fixed = json_is_string(json_object_get(d, "id"));
        json_decref(d);
        if (fixed || proc_now_ms() > end)
            break;
        proc_sleep_ms(50);
    }
    d = node_doc(path, &zs);
    cr_expect_str_eq(json_string_value(json_object_get(d, "id")) ?: "", id,
                     "rewritten export not restored");
    json_decref(d);

    /* the tightest race: rewritten the moment discd has re-created it,
     * before discd's own watch on it can be armed */
    int counted = 0;
    /* one each, never reused: a watch of a missed attempt may still fire */
    static struct rewrite_on_create rws[20];
    for (int attempt = 0; attempt < 20 && counted < 5; attempt++) {
        struct rewrite_on_create *rwp = &rws[attempt];
        rwp->path = path;
        pthread_mutex_init(&rwp->mu, NULL);
        char buf[4096];
        cr_assert_eq(zoo_wexists(cli, path, rewrite_on_create, rwp, NULL), ZOK);
        cr_assert_eq(zkc_delete(cli, path), ZOK);
        long long until = proc_now_ms() + 10000LL * dt_slow();
        pthread_mutex_lock(&rwp->mu);
        while (rwp->state >= 0 && rwp->state < 2 && proc_now_ms() < until) {
            pthread_mutex_unlock(&rwp->mu);
            proc_sleep_ms(5);
            pthread_mutex_lock(&rwp->mu);
        }
        int state = rwp->state, set_rc = rwp->rc;
        rwp->state = -1; /* a late event of this round does nothing */
        pthread_mutex_unlock(&rwp->mu);
        cr_assert_neq(state, 0, "attempt %d: the deleted export was not re-created", attempt);
        cr_assert_neq(state, 1, "attempt %d: the rewrite did not complete", attempt);
        if (state == 2) {
            cr_assert_eq(set_rc, ZOK, "attempt %d: rewrite: %s", attempt, zerror(set_rc));
            counted++;
        }
        until = proc_now_ms() + 10000LL * dt_slow();
        bool fixed = false;
        while (!fixed && proc_now_ms() < until) {
            if (zkc_get(cli, path, buf, sizeof(buf), NULL) == ZOK) {
                d = json_loads(buf, 0, NULL);
                fixed = json_is_string(json_object_get(d, "id"));
                json_decref(d);
            }
            if (!fixed)
                proc_sleep_ms(20);
        }
        cr_assert(fixed, "attempt %d: export rewritten right after its re-creation stays garbage",
                  attempt);
    }
    cr_expect_eq(counted, 5, "only %d of 20 rewrites landed between re-creation and check",
                 counted);

    /* maintenance withdraws, maint off restores; the withdrawal comes right
     * after another client's rewrite, while discd's repair is pending */
    cr_assert_eq(zkc_set(cli, path, "{\"garbage\":3}"), ZOK);
    ok_call(&a, "{\"op\":\"maint\",\"id\":\"%s\",\"enable\":true}", id);
    cr_expect(wait_node(path, false, 10000), "export of an instance in maintenance stays");
    ok_call(&a, "{\"op\":\"maint\",\"id\":\"%s\",\"enable\":false}", id);
    cr_expect(wait_node(path, true, 10000), "export not back after maintenance");

    /* a failing check (kept critical) withdraws; passing again restores */
    json_t *r = dt_callf(&a.proc, "{\"op\":\"register\",\"instance\":{\"service\":\"ttl\","
                                  "\"address\":\"127.0.0.1:7001\"},\"check\":{\"type\":\"ttl\","
                                  "\"ttl_ms\":300,\"deregister_after_ms\":60000}}");
    cr_assert(dt_ok(r));
    char tid[64], tpath[300];
    snprintf(tid, sizeof(tid), "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
    snprintf(tpath, sizeof(tpath), "/x/services/ttl/%s", tid);
    cr_expect(wait_node(tpath, true, 10000), "ttl instance not exported");
    cr_expect(wait_node(tpath, false, 10000), "critical instance still exported");
    cr_expect_eq(zkd_count(&a, "ttl"), 1, "critical, not removed: deregister_after_ms");
    ok_call(&a, "{\"op\":\"pass\",\"id\":\"%s\"}", tid);
    cr_expect(wait_node(tpath, true, 10000), "passing instance not exported again");

    /* deregistration removes the node */
    zkd_deregister(&a, id);
    cr_expect(wait_node(path, false, 10000), "deregistered instance still exported");
    cr_expect(zkd_wait_count(&b, "cpp", 0, 10000));
    zkd_finish(&a);
    cr_expect(wait_node(tpath, false, 10000), "exports of a stopped discd stay");
    zkd_finish(&b);
}

/* Counter `key` of z's status.zookeeper.export. */
static long long export_counter(struct zkd *z, const char *key)
{
    return dt_status_int(&z->proc, "zookeeper.export.%s", key);
}

/* Poll until every service node under /y/services has `per` children. */
static bool wait_counts(int nsvc, int per, int timeout_ms)
{
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        int good = 0;
        for (int k = 0; k < nsvc; k++) {
            char sp[64];
            snprintf(sp, sizeof(sp), "/y/services/re%d", k);
            int c = zkc_count(cli, sp);
            good += c == per || (per == 0 && c == ZNONODE);
        }
        if (good == nsvc)
            return true;
        if (proc_now_ms() > end)
            return false;
        proc_sleep_ms(50);
    }
}

#define RE_N   200
#define RE_SVC 4

Test(zkd_export, reexport_after_session_expiry_is_pipelined, .timeout = 120)
{
    zkd_conf_write(&conf, "export-curator = /y/services\n");
    zkd_start_conf(&a, "a", zk.connect, root, &conf);
    static char ids[RE_N][DISC_ID_LEN + 1];
    for (int i = 0; i < RE_N; i++) {
        char svc[16], addr[32];
        snprintf(svc, sizeof(svc), "re%d", i % RE_SVC);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 8000 + i);
        zkd_register(&a, svc, addr, ids[i]);
    }
    cr_assert(wait_counts(RE_SVC, RE_N / RE_SVC, 20000), "not every instance exported");
    long long end = proc_now_ms() + 10000LL * dt_slow();
    while (export_counter(&a, "exported") < RE_N && proc_now_ms() < end)
        proc_sleep_ms(50);
    cr_assert_eq(export_counter(&a, "exported"), RE_N);
    long long c0 = export_counter(&a, "creates"), w0 = export_counter(&a, "waves"),
              r0 = export_counter(&a, "repairs");

    /* Stopped past its session timeout: the session expires, its
     * ephemeral exports go. Meanwhile another client takes one of the ids
     * (a node of its own session, other data) and deletes an emptied
     * service node. */
    cr_assert_eq(proc_signal(&a.proc.proc, SIGSTOP), 0);
    bool gone = wait_counts(RE_SVC, 0, ZKD_SESSION_MS + 20000);
    char taken[128];
    snprintf(taken, sizeof(taken), "/y/services/re0/%s", ids[0]);
    /* (ZooKeeper's container sweep may remove the emptied re0 at any time:
     * the other client makes it again) */
    int crc = gone ? ZNONODE : ZOK;
    for (int i = 0; i < 5 && crc == ZNONODE; i++) {
        crc = zkc_create_parents(cli, "/y/services/re0");
        if (crc == ZOK)
            crc = zkc_create(cli, taken, "{\"id\":\"not yours\"}", ZOO_PERM_ALL, ZOO_EPHEMERAL);
    }
    int drc = gone ? zkc_delete(cli, "/y/services/re1") : ZOK;
    cr_assert_eq(proc_signal(&a.proc.proc, SIGCONT), 0);
    cr_assert(gone, "the exports outlived the session");
    cr_assert_eq(crc, ZOK, "create %s: %d", taken, crc);
    /* (ZooKeeper may have removed the empty container already) */
    cr_assert(drc == ZOK || drc == ZNONODE, "delete /y/services/re1: %d", drc);

    /* a new session: every node back, ours (the taken node counts among
     * the children until discd replaces it) */
    cr_assert(wait_counts(RE_SVC, RE_N / RE_SVC, 30000), "not every export came back");
    end = proc_now_ms() + 10000LL * dt_slow();
    for (;;) {
        char buf[4096];
        struct Stat zs;
        bool ours = false;
        if (zkc_get(cli, taken, buf, sizeof(buf), NULL) == ZOK &&
            zoo_exists(cli, taken, 0, &zs) == ZOK) {
            json_t *d = json_loads(buf, 0, NULL);
            const char *got = json_string_value(json_object_get(d, "id"));
            ours = got && strcmp(got, ids[0]) == 0 &&
                   zs.ephemeralOwner != zoo_client_id(cli)->client_id;
            json_decref(d);
        }
        if (ours || proc_now_ms() > end) {
            cr_assert(ours, "the node another client took was not replaced");
            break;
        }
        proc_sleep_ms(50);
    }
    cr_assert(wait_counts(RE_SVC, RE_N / RE_SVC, 10000), "not every export came back");
    end = proc_now_ms() + 10000LL * dt_slow();
    while (export_counter(&a, "exported") < RE_N && proc_now_ms() < end)
        proc_sleep_ms(50);
    long long cr = export_counter(&a, "creates") - c0, wv = export_counter(&a, "waves") - w0,
              rp = export_counter(&a, "repairs") - r0;
    long long full_ms = export_counter(&a, "last_full_ms"),
              full_n = export_counter(&a, "last_full_nodes");
    cr_log_info("re-export of %d after session expiry: %lld creates, %lld waves, %lld repairs, "
                "last full reconcile %lld nodes in %lld ms",
                RE_N, cr, wv, rp, full_n, full_ms);
    cr_expect_eq(export_counter(&a, "exported"), RE_N);
    cr_expect_geq(cr, RE_N, "every node created again");
    cr_expect_geq(rp, 1, "the taken node was a repair");
    /* create, then exists (the watch): two waves for the window of 200,
     * a few more for the taken node (get, delete, create, exists) and the
     * deleted service node (create again); 5 or 6 here, more if a round is
     * retried. One call per node in turn would be 400 round trips. */
    cr_expect_leq(wv, RE_N / 10, "waves of calls: %lld for %d nodes", wv, RE_N);
    cr_expect_gt(full_n, 0);
    zkd_finish(&a);
}
