/* SPDX-License-Identifier: MIT */
/*
 * test_mixed_version.c — a rolling upgrade across the ZooKeeper aggregate
 * snapshot layout (docs/ZOOKEEPER.md, "Rolling upgrade"), with real
 * binaries: an old discd, built from the last commit before
 * daemon/zk/zk_snapshot.c by scripts/build-old-discd.sh (the ctest fixture
 * mixed_version_old_discd), and this tree's discd, on one ZooKeeper root.
 *
 * Each segment is read by zkd_segdump in a process of its own, linked
 * against the libdiscshm of its discd's tree (the old tree's segment layout
 * is older than this library's). Checked, both ways:
 *   - each host's instances appear in the other's segment with the same
 *     content (every field libdiscshm returns, origin REMOTE there);
 *   - a deregistration, and a SIGKILL followed by session expiry, remove
 *     them from the other's segment;
 *   - the new discd writes its snapshot; the old writes none;
 *   - a restarted new discd reads the old host (which has no snapshot) one
 *     node at a time and holds exactly its instances; a restarted old discd
 *     reads the new host with its snapshot beside it and holds exactly the
 *     region's instances;
 *   - the old discd's log has no error (but the ZooKeeper client's report
 *     that a session it tried to resume has expired) and nothing about the
 *     snapshot nodes, and its counters of skipped nodes and failed rounds
 *     stay 0.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zk_server.h"
#include "zkc.h"
#include "zkd_util.h"

#define MAX_INST 16

static struct zk_cluster zk;
static struct zkd oldd, newd;
static zhandle_t *cli;
static char root[128];
static char old_bin[4096], old_dump[4096], new_dump[4096];

static void teardown(void)
{
    zkc_close(cli);
    cli = NULL;
    zkd_teardown(&zk, &oldd, &newd, NULL);
}

/* The binaries the fixture built (scripts/build-old-discd.sh). */
static void find_binaries(void)
{
    const char *b = getenv("DISC_BUILD_DIR");
    cr_assert(b, "DISC_BUILD_DIR is not set (run through ctest)");
    snprintf(old_bin, sizeof(old_bin), "%s/mixed-version-old/current/discd", b);
    snprintf(old_dump, sizeof(old_dump), "%s/mixed-version-old/current/zkd_segdump", b);
    snprintf(new_dump, sizeof(new_dump), "%s/tests/zk_daemon/zkd_segdump", b);
    cr_assert(access(old_bin, X_OK) == 0 && access(old_dump, X_OK) == 0,
              "%s or %s missing: the ctest fixture mixed_version_old_discd builds them "
              "(scripts/build-old-discd.sh); run `ctest -R test_mixed_version`, which runs it",
              old_bin, old_dump);
    cr_assert(access(new_dump, X_OK) == 0, "%s missing", new_dump);
}

/*
 * Criterion's main, preceded by one check: when the fixture found no
 * history to build the old discd from (a source tarball, a shallow clone:
 * see scripts/build-old-discd.sh), say so and exit 77, which ctest reports
 * as skipped, not passed.
 */
int main(int argc, char *argv[])
{
    const char *b = getenv("DISC_BUILD_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/mixed-version-old/unavailable", b ? b : ".");
    FILE *f = fopen(path, "r");
    if (f) {
        char why[1024] = "";
        if (!fgets(why, sizeof(why), f))
            why[0] = '\0';
        fclose(f);
        printf("SKIPPED: no old discd to run: %s", why);
        return 77;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int rc = 0;
    if (criterion_handle_args(argc, argv, true))
        rc = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return rc;
}

/* An instance the region should hold. */
struct inst {
    char id[DISC_ID_LEN + 1];
    const struct zkd *owner;
    char content[1024]; /* zkd_segdump's line after the origin, as its owner publishes it */
    bool live;
};
static struct inst insts[MAX_INST];
static int n_insts;

/* One segment as zkd_segdump printed it. */
struct seg {
    char status[256];
    int writer; /* the pid of the discd that publishes it */
    int n;
    char id[MAX_INST * 2][DISC_ID_LEN + 1];
    int origin[MAX_INST * 2];
    char content[MAX_INST * 2][1024];
};

static const char *dumper(const struct zkd *z)
{
    return z == &oldd ? old_dump : new_dump;
}

/* Run z's dumper in a process of its own; 0, or -1 (it failed: *why says). */
static int seg_read(const struct zkd *z, struct seg *s, char *why, size_t why_len)
{
    char out[400];
    snprintf(out, sizeof(out), "%s/segdump.txt", z->proc.dir);
    unlink(out);
    struct proc p;
    char *argv[] = {(char *)dumper(z), (char *)z->proc.name, NULL};
    cr_assert_eq(proc_spawn(&p, argv, NULL, out), 0);
    cr_assert_eq(proc_wait(&p, 10000 * dt_slow()), 0, "zkd_segdump hung");
    FILE *f = fopen(out, "r");
    cr_assert(f, "%s: %s", out, strerror(errno));
    memset(s, 0, sizeof(*s));
    char line[2048];
    int rc = proc_exit_code(&p) == 0 ? 0 : -1;
    if (rc < 0)
        snprintf(why, why_len, "zkd_segdump %s exited %d: ", z->proc.name, proc_exit_code(&p));
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (rc < 0) {
            strncat(why, line, why_len - strlen(why) - 1);
        } else if (strncmp(line, "status ", 7) == 0) {
            snprintf(s->status, sizeof(s->status), "%.200s", line);
            s->writer = atoi(line + strlen("status writer="));
        } else {
            cr_assert_lt(s->n, MAX_INST * 2, "%s: too many instances", z->host_id);
            char *sp1 = strchr(line, ' ');
            char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
            cr_assert(sp1 && sp2 && sp1 - line == DISC_ID_LEN, "bad dump line '%s'", line);
            memcpy(s->id[s->n], line, DISC_ID_LEN);
            s->origin[s->n] = atoi(sp1 + 1);
            snprintf(s->content[s->n], sizeof(s->content[0]), "%s", sp2 + 1);
            s->n++;
        }
    }
    fclose(f);
    unlink(out);
    return rc;
}

/* Whether z's segment holds exactly the live instances, each with its
 * owner's content and the origin z must give it; if not, *why says how. */
static bool seg_matches(const struct zkd *z, char *why, size_t len)
{
    struct seg s;
    if (seg_read(z, &s, why, len) < 0)
        return false;
    /* Not the segment a stopped discd left behind, which its restarted
     * successor replaces only once it has started. */
    if (s.writer != z->proc.proc.pid) {
        snprintf(why, len, "%s: the segment is written by pid %d, not by its discd (pid %d)",
                 z->host_id, s.writer, (int)z->proc.proc.pid);
        return false;
    }
    int live = 0;
    for (int i = 0; i < n_insts; i++) {
        const struct inst *in = &insts[i];
        live += in->live;
        int k = 0;
        while (k < s.n && strcmp(s.id[k], in->id) != 0)
            k++;
        if (!in->live) {
            if (k < s.n) {
                snprintf(why, len, "%s still holds removed %s", z->host_id, in->id);
                return false;
            }
            continue;
        }
        if (k == s.n) {
            snprintf(why, len, "%s lacks %s of %s", z->host_id, in->id, in->owner->host_id);
            return false;
        }
        int want = in->owner == z ? DISC_ORIGIN_LOCAL : DISC_ORIGIN_REMOTE;
        if (s.origin[k] != want || strcmp(s.content[k], in->content) != 0) {
            snprintf(why, len, "%s holds %s as origin %d '%s', want origin %d '%s'", z->host_id,
                     in->id, s.origin[k], s.content[k], want, in->content);
            return false;
        }
    }
    if (s.n != live) {
        snprintf(why, len, "%s holds %d instances, want %d (%s)", z->host_id, s.n, live, s.status);
        return false;
    }
    return true;
}

/* Wait until z's segment holds exactly the live instances (asserts). */
static void wait_exact(const struct zkd *z, int timeout_ms, const char *what)
{
    char why[4096] = "";
    long long end = proc_now_ms() + (long long)timeout_ms * dt_slow();
    while (!seg_matches(z, why, sizeof(why))) {
        if (proc_now_ms() > end)
            cr_assert_fail("%s: %s", what, why);
        proc_sleep_ms(50);
    }
}

/* Register on z an instance with every kind of field set, and record the
 * content its own segment publishes (checked against what was sent). */
static struct inst *add(struct zkd *z, const char *svc, int k)
{
    cr_assert_lt(n_insts, MAX_INST);
    struct inst *in = &insts[n_insts++];
    char addr[64], version[16];
    snprintf(addr, sizeof(addr), "10.77.%d.%d:%d", z == &oldd ? 1 : 2, k, 8000 + k);
    snprintf(version, sizeof(version), "%d.%d.%d", z == &oldd ? 1 : 2, k, k * 7);
    json_t *r = dt_callf(
        &z->proc,
        "{\"op\":\"register\",\"instance\":{\"service\":\"%s\",\"version\":\"%s\",\"az\":"
        "\"az-%d\",\"address\":\"%s\",\"weight\":%d,\"tags\":{\"shard\":\"s%d\",\"writer\":\"%s\"},"
        "\"endpoints\":[{\"name\":\"get\",\"request\":\"GetReq\",\"response\":\"GetResp\","
        "\"mean_us\":%d,\"p95_us\":%d},{\"name\":\"put\"}]},\"check\":{\"type\":\"none\"}}",
        svc, version, k % 3, addr, 10 + k, k, z == &oldd ? "old" : "new", 100 + k, 900 + k);
    cr_assert(dt_ok(r), "register %s on %s failed", svc, z->host_id);
    snprintf(in->id, sizeof(in->id), "%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
    in->owner = z;
    in->live = true;
    struct seg s;
    char why[1024] = "";
    cr_assert_eq(seg_read(z, &s, why, sizeof(why)), 0, "%s", why);
    for (int i = 0; i < s.n; i++) {
        if (strcmp(s.id[i], in->id) == 0) {
            cr_assert_eq(s.origin[i], DISC_ORIGIN_LOCAL);
            snprintf(in->content, sizeof(in->content), "%s", s.content[i]);
        }
    }
    const char *c = in->content;
    char want[512];
    snprintf(want, sizeof(want), "service=%s host=%s version=%s az=az-%d kind=1 address=%s", svc,
             z->host_id, version, k % 3, addr);
    cr_assert(strstr(c, want), "%s: '%s' lacks '%s'", z->host_id, c, want);
    snprintf(want, sizeof(want), "endpoints=[get:GetReq:GetResp:%d:%d,put:::0:0]", 100 + k,
             900 + k);
    cr_assert(strstr(c, want), "%s: '%s' lacks '%s'", z->host_id, c, want);
    snprintf(want, sizeof(want), "shard=s%d", k);
    cr_assert(strstr(c, want), "%s: '%s' lacks '%s'", z->host_id, c, want);
    return in;
}

static void drop(struct zkd *z, struct inst *in)
{
    zkd_deregister(z, in->id);
    in->live = false;
}

/* Lines of z's log (all its runs) at level ERROR ("... discd[pid] ERROR
 * ..." in a file), but for the ZooKeeper client's report that the session
 * a restarted discd tried to resume has expired (discd then opens a new one;
 * a SIGTERM closes the session it records). */
static int log_errors(const struct zkd *z)
{
    FILE *f = fopen(z->proc.log, "r");
    cr_assert(f, "%s: %s", z->proc.log, strerror(errno));
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, "] ERROR ") &&
             !(strstr(line, "zookeeper client: check_events:") && strstr(line, " has expired."));
    fclose(f);
    return n;
}

/* z's status has no snap_* counter: the binary predates snapshots. */
static bool has_snapshot_counters(struct zkd *z)
{
    json_t *r = dt_call1(&z->proc, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "%s: status failed", z->host_id);
    json_t *c = json_object_get(json_object_get(r, "zookeeper"), "counters");
    cr_assert(json_is_object(c), "%s: no status.zookeeper.counters", z->host_id);
    bool has = json_object_get(c, "snap_writes") != NULL;
    json_decref(r);
    return has;
}

/* The old discd has skipped nothing and no round failed. */
static void old_clean(const char *when)
{
    static const char *const keys[] = {"skipped_bad_name", "skipped_bad_data", "skipped_too_large",
                                       "skipped_unreadable", "sync_errors"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert_eq(zkd_counter(&oldd, keys[i]), 0, "old discd, %s: %s = %lld", when, keys[i],
                     zkd_counter(&oldd, keys[i]));
    if (dt_log_has(&oldd.proc, "/snap") || log_errors(&oldd))
        proc_dump_log(&oldd.proc.proc);
    cr_assert_eq(dt_log_has(&oldd.proc, "/snap"), 0, "old discd, %s: its log mentions /snap", when);
    cr_assert_eq(log_errors(&oldd), 0, "old discd, %s: its log has errors (above)", when);
}

/* The number of snapshot chunks of host (ZNONODE: none). */
static int snap_chunks(const struct zkd *z)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/snap/%s", root, z->host_id);
    return zkc_count(cli, path);
}

static void wait_snapshot(const struct zkd *z)
{
    long long end = proc_now_ms() + 10000LL * dt_slow();
    while (snap_chunks(z) < 1) {
        cr_assert(proc_now_ms() < end, "%s wrote no snapshot", z->host_id);
        proc_sleep_ms(50);
    }
}

Test(mixed_version, old_and_new_discd_share_a_region, .fini = teardown, .timeout = 240)
{
    find_binaries();
    zkd_zookeeper(&zk, root, sizeof(root), "mixver");
    cli = zkc_open(zk.connect, NULL, 10000);
    cr_assert(cli, "plain ZooKeeper client did not connect");

    zkd_start_binary(&oldd, old_bin, "mvold", zk.connect, root, NULL);
    zkd_start(&newd, "mvnew", zk.connect, root);
    cr_assert_not(has_snapshot_counters(&oldd), "%s is not a discd from before snapshots", old_bin);
    cr_assert(has_snapshot_counters(&newd));

    /* Each side registers; one service has instances on both hosts. */
    struct inst *o[3], *n[3];
    for (int k = 0; k < 3; k++) {
        o[k] = add(&oldd, "mv-old", k + 1);
        n[k] = add(&newd, "mv-new", k + 1);
    }
    struct inst *o_shared = add(&oldd, "mv-shared", 4);
    struct inst *n_shared = add(&newd, "mv-shared", 5);
    (void)o_shared;
    (void)n_shared;
    wait_exact(&oldd, 15000, "the old discd reads the new one's instances");
    wait_exact(&newd, 15000, "the new discd reads the old one's instances");

    /* The new discd keeps a snapshot beside <root>/hosts; the old none. */
    wait_snapshot(&newd);
    cr_assert_eq(snap_chunks(&oldd), ZNONODE, "the old discd wrote a snapshot");
    char hosts[300];
    snprintf(hosts, sizeof(hosts), "%s/hosts", root);
    cr_assert_eq(zkc_count(cli, hosts), 2);
    old_clean("with the new discd's snapshot in the tree");

    /* Deregistrations propagate both ways. */
    drop(&oldd, o[0]);
    wait_exact(&newd, 10000, "an old host's deregistration reaches the new discd");
    drop(&newd, n[0]);
    wait_exact(&oldd, 10000, "a new host's deregistration reaches the old discd");
    wait_exact(&oldd, 1000, "the old discd after the deregistrations");
    wait_exact(&newd, 1000, "the new discd after the deregistrations");

    /* The new discd restarts: its initial sync reads the old host, which has
     * no snapshot, node by node (and its own instances are restored). */
    cr_assert_eq(discd_proc_stop(&newd.proc, 10000), 0);
    zkd_restart(&newd, zk.connect, root);
    /* synced first: until its first sync the restarted discd may already
     * show the instances from its file cache, read before any node */
    struct disc_status st;
    cr_assert(zkd_wait_synced(&newd, 20000, &st), "the restarted new discd did not sync");
    wait_exact(&newd, 15000, "a restarted new discd reads the old host");
    long long reads = zkd_counter(&newd, "reads");
    cr_assert_geq(reads, 3, "the old host's 3 instances were not read node by node (reads %lld)",
                  reads);
    cr_assert_eq(zkd_counter(&newd, "snap_skipped"), 0, "a host without snapshot was counted");
    cr_assert_eq(zkd_counter(&newd, "skipped_bad_data"), 0);
    char why[512];
    cr_assert_eq(zkd_counter(&newd, "sync_errors"), 0, "a sync round failed: %s",
                 zkd_last_error(&newd, why, sizeof(why)));
    wait_exact(&oldd, 15000, "the old discd sees the restarted new one's instances again");

    /* The old discd restarts: its initial sync lists <root>/hosts with the
     * new host's snapshot beside it. */
    wait_snapshot(&newd);
    cr_assert_eq(discd_proc_stop(&oldd.proc, 10000), 0);
    zkd_restart(&oldd, zk.connect, root);
    wait_exact(&oldd, 15000, "a restarted old discd reads the new host");
    wait_exact(&newd, 15000, "the new discd sees the restarted old one's instances again");
    old_clean("after its initial sync beside the snapshot");

    /* SIGKILL: the killed host's instances go from the other's segment once
     * its session expires; restarted, it announces them again. */
    discd_proc_kill(&oldd.proc);
    for (int i = 0; i < n_insts; i++)
        if (insts[i].owner == &oldd)
            insts[i].live = false;
    wait_exact(&newd, ZKD_SESSION_MS + 15000, "the old host's expiry reaches the new discd");
    for (int i = 0; i < n_insts; i++)
        if (insts[i].owner == &oldd && &insts[i] != o[0])
            insts[i].live = true;
    zkd_restart(&oldd, zk.connect, root);
    wait_exact(&oldd, 15000, "the old discd restarted after a crash");
    wait_exact(&newd, 15000, "the new discd sees the old host back");

    discd_proc_kill(&newd.proc);
    for (int i = 0; i < n_insts; i++)
        if (insts[i].owner == &newd)
            insts[i].live = false;
    wait_exact(&oldd, ZKD_SESSION_MS + 15000, "the new host's expiry reaches the old discd");
    old_clean("at the end");

    zkd_finish(&oldd);
    zkd_abort(&newd);
}
