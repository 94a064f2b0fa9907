/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_protect.c — protection (docs/DAEMON.md, "Protection") with two
 * real discd on a standalone ZooKeeper. Host a registers 5 instances of
 * one service and 2 of another; b sees them. A deregistration of 1 of 5 (a
 * small shrink) reaches b at once. Then a is SIGKILLed: when its session
 * expires, b holds every removal (counts unchanged, held count in the
 * segment header and the status op, a warning in its log); `discctl
 * confirm` applies one service's removals at once, the other's are applied
 * when the hold period has passed. A second test uses a foreign host (zk_sync
 * in the test process) to withdraw and re-announce the same ids: the hold
 * is dropped and nothing is removed.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_run.h"
#include "zk_server.h"
#include "zkc.h"
#include "zkd_peer.h"
#include "zkd_util.h"

#define HOLD_MS 5000

static struct zk_cluster zk;
static struct zkd a, b;
static struct zk_sync *foreign;

static void teardown(void)
{
    zk_sync_stop(foreign);
    foreign = NULL;
    zkd_teardown(&zk, &a, &b, NULL);
    ctl_run_release_all();
}

/* zkd_start with protection settings (default shrink 0.5, HOLD_MS). */
static void start_protected(struct zkd *z, const char *tag, const char *root)
{
    memset(z, 0, sizeof(*z));
    snprintf(z->host_id, sizeof(z->host_id), "%s-%d", tag, (int)getpid());
    char a_zk[512], a_root[300], a_host[96], a_to[64], a_hold[64];
    snprintf(a_zk, sizeof(a_zk), "--zk=%s", zk.connect);
    snprintf(a_root, sizeof(a_root), "--zk-root=%s", root);
    snprintf(a_host, sizeof(a_host), "--host-id=%s", z->host_id);
    snprintf(a_to, sizeof(a_to), "--zk-session-timeout=%d", ZKD_SESSION_MS);
    snprintf(a_hold, sizeof(a_hold), "--protect-hold=%d", HOLD_MS * dt_slow());
    char *const args[] = {a_zk, a_root, a_host, a_to, a_hold, NULL};
    dt_start(&z->proc, tag, args);
    z->h = dt_open_reader(&z->proc);
}

/* status.zookeeper.protection of z (new reference). */
static json_t *protection(struct zkd *z)
{
    json_t *r = dt_call1(&z->proc, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    json_t *p = json_object_get(json_object_get(r, "zookeeper"), "protection");
    cr_assert(json_is_object(p), "status.zookeeper.protection missing");
    json_incref(p);
    json_decref(r);
    return p;
}

static long long prot_int(json_t *p, const char *key)
{
    json_t *v = json_object_get(p, key);
    cr_assert(json_is_integer(v), "protection.%s missing", key);
    return json_integer_value(v);
}

Test(zkd_protect, mass_removal_held_until_confirmed_or_expired, .fini = teardown)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "protect");
    start_protected(&a, "zkpa", root);
    start_protected(&b, "zkpb", root);
    struct disc_status st;
    zkd_all_synced(15000, &a, &b, NULL);

    char s_ids[5][DISC_ID_LEN + 1], t_ids[2][DISC_ID_LEN + 1];
    for (int i = 0; i < 5; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.7.0.%d:80", i + 1);
        zkd_register(&a, "zkp-s", addr, s_ids[i]);
    }
    zkd_register(&a, "zkp-t", "10.7.1.1:80", t_ids[0]);
    zkd_register(&a, "zkp-t", "10.7.1.2:80", t_ids[1]);
    cr_assert(zkd_wait_count(&b, "zkp-s", 5, 10000), "b: zkp-s = %d", zkd_count(&b, "zkp-s"));
    cr_assert(zkd_wait_count(&b, "zkp-t", 2, 10000), "b: zkp-t = %d", zkd_count(&b, "zkp-t"));

    /* Control: 1 of 5 is below the threshold, applied without a hold. */
    long long t0 = proc_now_ms();
    zkd_deregister(&a, s_ids[0]);
    cr_assert(zkd_wait_count(&b, "zkp-s", 4, 3000), "a small shrink was not applied at once");
    cr_assert_lt(proc_now_ms() - t0, HOLD_MS * dt_slow(), "small shrink waited for the hold");
    cr_assert_eq(disc_status(b.h, &st), 0);
    cr_assert_eq(st.held_changes, 0u);
    cr_assert_eq(st.flags & DISC_ST_HELD_CHANGES, 0u);
    json_t *p = protection(&b);
    cr_assert(json_is_true(json_object_get(p, "enabled")));
    cr_assert_eq(prot_int(p, "held_now"), 0);
    cr_assert_eq(prot_int(p, "steps_held"), 0);
    json_decref(p);

    /* a crashes: after its session expires b would lose everything of a. */
    discd_proc_kill(&a.proc);
    long long deadline = proc_now_ms() + (ZKD_SESSION_MS + 15000LL) * dt_slow();
    bool held = false;
    while (!held && proc_now_ms() < deadline) {
        cr_assert_eq(disc_status(b.h, &st), 0);
        held = st.held_changes == 6;
        /* Never lost in the meantime. */
        cr_assert_eq(zkd_count(&b, "zkp-s"), 4, "b lost zkp-s instances before the hold");
        cr_assert_eq(zkd_count(&b, "zkp-t"), 2, "b lost zkp-t instances before the hold");
        if (!held)
            proc_sleep_ms(20);
    }
    cr_assert(held, "b never held the 6 removals (held_changes %u)", st.held_changes);
    long long held_at = proc_now_ms();
    cr_assert_neq(st.flags & DISC_ST_HELD_CHANGES, 0u, "flags %#x", st.flags);
    cr_assert_eq(zkd_count(&b, "zkp-s"), 4);
    cr_assert_eq(zkd_count(&b, "zkp-t"), 2);
    p = protection(&b);
    cr_assert_eq(prot_int(p, "held_now"), 6);
    cr_assert_eq(prot_int(p, "services_held"), 2);
    cr_assert_eq(prot_int(p, "removals_held"), 6);
    json_t *hs = json_object_get(p, "held");
    cr_assert_eq(json_integer_value(json_object_get(hs, "zkp-s")), 4);
    cr_assert_eq(json_integer_value(json_object_get(hs, "zkp-t")), 2);
    json_decref(p);

    /* Bad confirm requests change nothing. */
    json_t *r = dt_call1(&b.proc, "{\"op\":\"confirm\",\"service\":5}");
    cr_assert_str_eq(dt_err_code(r), "bad_request");
    json_decref(r);
    struct ctl_result c = ctl_run(&b.proc, 10000 * dt_slow(),
                                  (const char *const[]){"confirm", "no such/service", NULL});
    cr_assert_eq(c.code, 1, "%s%s", c.out, c.err);
    ctl_result_free(&c);
    cr_assert_eq(zkd_count(&b, "zkp-s"), 4);

    /* The operator confirms one service: applied at once. */
    c = ctl_run(&b.proc, 10000 * dt_slow(), (const char *const[]){"confirm", "zkp-s", NULL});
    cr_assert_eq(c.code, 0, "discctl: %s%s", c.out, c.err);
    cr_assert(strstr(c.out, "4 held removal(s) of zkp-s applied"), "discctl said: %s", c.out);
    ctl_result_free(&c);
    cr_assert(zkd_wait_count(&b, "zkp-s", 0, 2000), "zkp-s not removed after confirm");
    cr_assert_eq(zkd_count(&b, "zkp-t"), 2, "confirm of zkp-s applied zkp-t's removals");
    cr_assert_eq(disc_status(b.h, &st), 0);
    cr_assert_eq(st.held_changes, 2u);

    /* The other one is applied when the hold period has passed. */
    cr_assert(zkd_wait_count(&b, "zkp-t", 0, HOLD_MS + 5000), "zkp-t never removed");
    cr_assert_geq(proc_now_ms() - held_at, HOLD_MS * dt_slow() - 1000,
                  "zkp-t removed before the hold period");
    cr_assert(zkd_wait_flags(&b, DISC_ST_HELD_CHANGES, 0, 2000, &st), "flag still set");
    cr_assert_eq(st.held_changes, 0u);
    p = protection(&b);
    cr_assert_eq(prot_int(p, "held_now"), 0);
    cr_assert_eq(prot_int(p, "applied_confirmed"), 4);
    cr_assert_eq(prot_int(p, "applied_expired"), 2);
    json_decref(p);

    /* The warning names the service and the counts. */
    FILE *f = fopen(b.proc.log, "r");
    cr_assert(f);
    char line[1024];
    bool warned = false;
    while (!warned && fgets(line, sizeof(line), f))
        warned = strstr(line, "holding 4 removal(s) of service zkp-s (4 -> 0 instances") != NULL;
    fclose(f);
    cr_assert(warned, "no protection warning for zkp-s in b's log");

    zkd_finish(&b);
    discd_proc_cleanup(&a.proc);
    disc_close(a.h);
    a.h = NULL;
}

static void foreign_publish(const char *id, int i)
{
    char doc[256];
    snprintf(doc, sizeof(doc),
             "{\"id\":\"%s\",\"service\":\"zkp-r\",\"host\":\"foreign\",\"address\":"
             "\"10.8.0.%d:80\"}",
             id, i + 1);
    cr_assert_eq(zk_sync_publish_local(foreign, id, doc, strlen(doc)), 0);
}

Test(zkd_protect, reannounced_instances_drop_the_hold, .fini = teardown)
{
    char root[128];
    zkd_zookeeper(&zk, root, sizeof(root), "protect2");
    start_protected(&b, "zkpc", root);
    struct disc_status st;
    cr_assert(zkd_wait_synced(&b, 15000, &st), "b: flags %#x", st.flags);
    foreign = zkd_peer_start(zk.connect, root, "foreign");
    char ids[4][37];
    for (int i = 0; i < 4; i++) {
        zkc_new_id(ids[i]);
        foreign_publish(ids[i], i);
    }
    cr_assert_eq(zk_sync_wait_local_applied(foreign, 15000 * dt_slow()), 0);
    cr_assert(zkd_wait_count(&b, "zkp-r", 4, 10000), "b: zkp-r = %d", zkd_count(&b, "zkp-r"));

    /* Control: 1 of 4 is below the threshold, applied at once. */
    cr_assert_eq(zk_sync_withdraw_local(foreign, ids[3]), 0);
    cr_assert(zkd_wait_count(&b, "zkp-r", 3, 3000), "a small shrink was not applied at once");
    cr_assert_eq(disc_status(b.h, &st), 0);
    cr_assert_eq(st.held_changes, 0u);

    /* All 3 left withdrawn in one step: held. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(zk_sync_withdraw_local(foreign, ids[i]), 0);
    cr_assert_eq(zk_sync_wait_local_applied(foreign, 15000 * dt_slow()), 0);
    long long deadline = proc_now_ms() + 5000LL * dt_slow();
    for (;;) {
        cr_assert_eq(disc_status(b.h, &st), 0);
        cr_assert_eq(zkd_count(&b, "zkp-r"), 3, "removed instead of held");
        if (st.held_changes == 3 || proc_now_ms() >= deadline)
            break;
        proc_sleep_ms(10);
    }
    cr_assert_eq(st.held_changes, 3u, "not held");
    long long held_at = proc_now_ms();

    /* The same ids come back: the hold is dropped, nothing is removed. */
    for (int i = 0; i < 3; i++)
        foreign_publish(ids[i], i);
    cr_assert_eq(zk_sync_wait_local_applied(foreign, 15000 * dt_slow()), 0);
    cr_assert(zkd_wait_flags(&b, DISC_ST_HELD_CHANGES, 0, 5000, &st), "hold not dropped");
    cr_assert_eq(st.held_changes, 0u);
    json_t *p = protection(&b);
    cr_assert_eq(prot_int(p, "restored"), 3);
    cr_assert_eq(prot_int(p, "applied_expired"), 0);
    json_decref(p);
    /* Past the hold period: still all there. */
    while (proc_now_ms() - held_at < HOLD_MS * dt_slow() + 1000) {
        cr_assert_eq(zkd_count(&b, "zkp-r"), 3, "a re-announced instance was removed");
        proc_sleep_ms(50);
    }
    zk_sync_stop(foreign);
    foreign = NULL;
    zkd_finish(&b);
}
