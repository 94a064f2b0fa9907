/* SPDX-License-Identifier: MIT */
/*
 * test_zkd_batch.c — region propagation in batches (issue 9, "Speed"),
 * checked with counters, never with clocks. Real discd processes on a real
 * ZooKeeper; a plain ZooKeeper client in the test (zkc.c) plays another
 * host:
 *   - a burst of N instances announced by one host at once (a process of
 *     its own, one zoo_multi, as a re-announcing discd does) reaches discd B's segment in far fewer
 *     than N zk worker wake-ups, batches and publisher commits; each
 *     document is read once and parsed once (docs_parsed == reads == N);
 *     the burst's removal (the host's session ends) is batched the same way;
 *   - under churn (discd A registering and deregistering, its nodes created
 *     early from the control thread, the plain client adding and deleting
 *     nodes of its own host, interleaved) B's segment ends with exactly the
 *     live set of each host, by id;
 *     then single registrations on A, each awaited in B's segment, take
 *     B's fast path (listed, read and parsed in the client's completion
 *     thread): one listing, one read, one parse and one worker wake-up
 *     each, not three;
 *   - registrations on A from 4 processes at once (early creates completing
 *     while A's worker waits for others' replies): A's worker confirms
 *     them all and a later deregistration still reaches B;
 *   - a fresh discd importing a Curator tree (import = curator) of N
 *     instances over N/10 services reads each node once and publishes the
 *     import in far fewer than N delivery batches and publisher commits
 *     (pipelined reads that span services, one batch per window).
 * Plain build: about 25 s.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "zk_server.h"
#include "zkc.h"
#include "zkd_util.h"

#define BURST 300

static struct zk_cluster zk;
static struct zkd a, b;
static zhandle_t *cli;

static void teardown(void)
{
    zkc_close(cli);
    cli = NULL;
    zkd_teardown(&zk, &a, &b, NULL);
}

struct snap {
    long long wakeups, batches, parsed, reads, upserts, removes, commits;
};

static struct snap snap_of(struct zkd *z)
{
    return (struct snap){
        zkd_counter(z, "worker_wakeups"),
        zkd_counter(z, "batches"),
        zkd_counter(z, "docs_parsed"),
        zkd_counter(z, "reads"),
        zkd_counter(z, "upserts"),
        zkd_counter(z, "removes"),
        dt_status_int(&z->proc, "publisher.commits"),
    };
}

static void setup(char *root, size_t len, const char *tag, bool with_a)
{
    zkd_zookeeper(&zk, root, len, tag);
    struct disc_status st;
    if (with_a) {
        zkd_start(&a, "zkba", zk.connect, root);
        cr_assert(zkd_wait_synced(&a, 15000, &st), "a: flags %#x", st.flags);
    }
    zkd_start(&b, "zkbb", zk.connect, root);
    cr_assert(zkd_wait_synced(&b, 15000, &st), "b: flags %#x", st.flags);
    /* a session of its own: its ephemeral nodes go when it closes */
    cli = zkc_open(zk.connect, NULL, 10000);
    cr_assert(cli, "plain ZooKeeper client did not connect");
}

static int doc_for(char *buf, size_t len, const char *id, const char *svc, int i)
{
    return snprintf(buf, len,
                    "{\"id\":\"%s\",\"service\":\"%s\",\"host\":\"other\",\"address\":"
                    "\"10.1.%d.%d:%d\"}",
                    id, svc, (i / 250) % 250, i % 250, 1000 + i);
}

/* Announce n instances of svc under host `host` in one zoo_multi (container
 * + ephemeral nodes) on session zh. Fills ids. 0 or the ZooKeeper error. */
static int announce(zhandle_t *zh, const char *root, const char *host, const char *svc, int n,
                    char ids[][37])
{
    char hpath[256];
    snprintf(hpath, sizeof(hpath), "%s/hosts/%s", root, host);
    zoo_op_t *ops = calloc((size_t)n + 1, sizeof(*ops));
    zoo_op_result_t *res = calloc((size_t)n + 1, sizeof(*res));
    char(*paths)[320] = calloc((size_t)n + 1, sizeof(*paths));
    char(*docs)[256] = calloc((size_t)n + 1, sizeof(*docs));
    if (!ops || !res || !paths || !docs) {
        return ZSYSTEMERROR;
    }
    zoo_create_op_init(&ops[0], hpath, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, NULL, 0);
    for (int i = 0; i < n; i++) {
        snprintf(paths[i + 1], sizeof(paths[0]), "%s/%.36s-1", hpath, ids[i]);
        int len = doc_for(docs[i + 1], sizeof(docs[0]), ids[i], svc, i);
        zoo_create_op_init(&ops[i + 1], paths[i + 1], docs[i + 1], len, &ZOO_OPEN_ACL_UNSAFE,
                           ZOO_EPHEMERAL, NULL, 0);
    }
    int rc = zoo_multi(zh, n + 1, ops, res);
    free(ops);
    free(res);
    free(paths);
    free(docs);
    return rc;
}

/* The burst host: a process of its own (as another host is) with its own
 * session. It announces, says so on `ready`, and keeps its session until
 * `hold` is closed. (Its own process also keeps the C client's allocations
 * for a 301-op multi, which LeakSanitizer reports inside libzookeeper_mt,
 * out of the test process.) It is this executable again, exec'd with
 * BURST_ENV set: the test process already runs ZooKeeper client threads,
 * and a forked child of a multi-threaded process may not start threads of
 * its own (TSan refuses it), so the child execs before doing anything. */
#define BURST_ENV "DISC_TEST_BURST_HOST"

static void burst_host_run(const char *spec)
{
    char connect[256], root[200];
    int n = 0, rfd = -1, hfd = -1, off = 0;
    if (sscanf(spec, "%255[^|]|%199[^|]|%d|%d|%d|%n", connect, root, &n, &rfd, &hfd, &off) != 5 ||
        n <= 0 || strlen(spec + off) != (size_t)n * 37) {
        _exit(2);
    }
    char(*ids)[37] = calloc((size_t)n, sizeof(*ids));
    if (!ids) {
        _exit(2);
    }
    for (int i = 0; i < n; i++) {
        memcpy(ids[i], spec + off + (size_t)i * 37, 36);
        ids[i][36] = '\0';
    }
    zhandle_t *zh = zkc_open(connect, NULL, 10000);
    char ok = zh && announce(zh, root, "burst-host", "burst.svc", n, ids) == ZOK;
    if (write(rfd, &ok, 1) != 1 || !ok) {
        _exit(1);
    }
    char c;
    while (read(hfd, &c, 1) > 0) {
    }
    zookeeper_close(zh); /* the session ends: the host's nodes go at once */
    free(ids);
    _exit(0);
}

/* Runs before Criterion's main in the exec'd burst host only. */
__attribute__((constructor)) static void burst_host_child(void)
{
    const char *spec = getenv(BURST_ENV);
    if (spec) {
        burst_host_run(spec);
    }
}

static pid_t burst_host(const char *connect, const char *root, char ids[][37], int n, int *hold_fd)
{
    int ready[2], hold[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(hold), 0);
    size_t len = strlen(connect) + strlen(root) + 64 + (size_t)n * 37;
    char *spec = malloc(len);
    cr_assert_not_null(spec);
    int off = snprintf(spec, len, "%s|%s|%d|%d|%d|", connect, root, n, ready[1], hold[0]);
    for (int i = 0; i < n; i++) {
        zkc_new_id(ids[i]);
        off += snprintf(spec + off, len - (size_t)off, "%s,", ids[i]);
    }
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert_gt(sl, 0);
    self[sl] = '\0';
    cr_assert_eq(setenv(BURST_ENV, spec, 1), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        close(hold[1]);
        execl(self, "burst-host", (char *)NULL);
        _exit(127);
    }
    unsetenv(BURST_ENV);
    free(spec);
    close(ready[1]);
    close(hold[0]);
    char ok = 0;
    cr_assert_eq(read(ready[0], &ok, 1), 1, "burst host died");
    cr_assert(ok, "burst host could not announce");
    close(ready[0]);
    *hold_fd = hold[1];
    return pid;
}

Test(zkd_batch, burst_is_one_batch, .fini = teardown, .timeout = 120)
{
    char root[128];
    setup(root, sizeof(root), "batch", false);
    sleep(1); /* let B's start-up rounds settle before taking the counters */
    struct snap s0 = snap_of(&b);
    static char ids[BURST][37];
    int hold = -1;
    pid_t host = burst_host(zk.connect, root, ids, BURST, &hold);
    cr_assert(zkd_wait_count(&b, "burst.svc", BURST, 20000), "B has %d of %d",
              zkd_count(&b, "burst.svc"), BURST);
    struct snap s1 = snap_of(&b);
    long long up = s1.upserts - s0.upserts, rd = s1.reads - s0.reads, pa = s1.parsed - s0.parsed,
              wk = s1.wakeups - s0.wakeups, ba = s1.batches - s0.batches,
              co = s1.commits - s0.commits;
    cr_log_info("burst of %d: %lld upserts, %lld reads, %lld parses, %lld worker wake-ups, %lld "
                "batches, %lld commits",
                BURST, up, rd, pa, wk, ba, co);
    cr_expect_eq(up, BURST, "every instance upserted once");
    cr_expect_eq(rd, BURST, "every node read once");
    cr_expect_eq(pa, BURST, "every document parsed once (zk_sync), not again by the daemon");
    /* One watch event, one listing of the hosts, one of the new host, two
     * windows of async gets: a handful of wake-ups, not one per reply. The
     * idle worker's 1 s tick and status requests add a few more. */
    cr_expect_lt(wk, BURST / 10, "zk worker wake-ups: %lld for %d instances", wk, BURST);
    cr_expect_lt(ba, BURST / 30, "batches: %lld for %d instances", ba, BURST);
    cr_expect_lt(co, BURST / 30, "publisher commits: %lld for %d instances", co, BURST);
    cr_expect_geq(co, 1);

    /* The host goes away (session closed): its removals come as a batch too. */
    close(hold);
    int status = 0;
    cr_assert_eq(waitpid(host, &status, 0), host);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "burst host failed");
    cr_assert(zkd_wait_count(&b, "burst.svc", 0, 30000), "B still has %d",
              zkd_count(&b, "burst.svc"));
    struct snap s2 = snap_of(&b);
    long long rm = s2.removes - s1.removes, co2 = s2.commits - s1.commits,
              wk2 = s2.wakeups - s1.wakeups;
    cr_log_info("removal of %d: %lld removes, %lld commits, %lld wake-ups", BURST, rm, co2, wk2);
    cr_expect_eq(rm, BURST);
    cr_expect_lt(co2, BURST / 30, "publisher commits for the removal: %lld", co2);
    cr_expect_lt(wk2, BURST / 10, "zk worker wake-ups for the removal: %lld", wk2);
}

/* The ids of svc in z's segment, sorted, into out (at most max). */
static int segment_ids(struct zkd *z, const char *svc, char out[][37], int max)
{
    static char buf[1 << 20];
    struct disc_instance *list = NULL;
    int n = disc_lookup(z->h, svc, buf, sizeof(buf), &list, NULL);
    if (n == -ENOENT) {
        return 0;
    }
    cr_assert_geq(n, 0, "lookup %s: %d", svc, n);
    cr_assert_leq(n, max);
    for (int i = 0; i < n; i++) {
        snprintf(out[i], 37, "%s", list[i].id);
    }
    qsort(out, (size_t)n, 37, (int (*)(const void *, const void *))strcmp);
    return n;
}

static int cmp_id(const void *x, const void *y)
{
    return strcmp(x, y);
}

/* Poll until svc's ids in z's segment equal want[0..n) (sorted). */
static bool wait_exact(struct zkd *z, const char *svc, char want[][37], int n, int timeout_ms)
{
    static char got[400][37];
    qsort(want, (size_t)n, 37, cmp_id);
    long long until = proc_now_ms() + (long long)timeout_ms * dt_slow();
    for (;;) {
        int m = segment_ids(z, svc, got, 400);
        if (m == n && memcmp(got, want, (size_t)n * 37) == 0) {
            return true;
        }
        if (proc_now_ms() > until) {
            cr_log_error("%s: segment has %d ids, want %d", svc, m, n);
            return false;
        }
        proc_sleep_ms(50);
    }
}

Test(zkd_batch, churn_delivers_exact_set, .fini = teardown, .timeout = 150)
{
    char root[128];
    setup(root, sizeof(root), "churn", true);
    char hpath[256];
    snprintf(hpath, sizeof(hpath), "%s/hosts/churn-host", root);
    cr_assert_eq(zkc_create_parents(cli, hpath), 0);
    static char a_ids[400][37], z_ids[400][37];
    int na = 0, nz = 0;
    srand(4242);
    for (int round = 0; round < 200; round++) {
        int op = rand() % 4;
        if (op == 0 && na > 0) { /* A deregisters one */
            int k = rand() % na;
            zkd_deregister(&a, a_ids[k]);
            memcpy(a_ids[k], a_ids[--na], 37);
        } else if (op == 1 && na < 300) { /* A registers one */
            char id[DISC_ID_LEN + 1], addr[64];
            snprintf(addr, sizeof(addr), "10.2.0.%d:%d", round % 250, 2000 + round);
            zkd_register(&a, "churn.a", addr, id);
            memcpy(a_ids[na++], id, 37);
        } else if (op == 2 && nz > 0) { /* the other host deletes a few at once */
            for (int j = 0; j < 3 && nz > 0; j++) {
                int k = rand() % nz;
                char node[512];
                snprintf(node, sizeof(node), "%s/%s-1", hpath, z_ids[k]);
                cr_assert_eq(zkc_delete(cli, node), 0);
                memcpy(z_ids[k], z_ids[--nz], 37);
            }
        } else if (nz < 300) { /* the other host adds a few at once */
            for (int j = 0; j < 4 && nz < 300; j++) {
                char node[512], doc[256];
                zkc_new_id(z_ids[nz]);
                snprintf(node, sizeof(node), "%s/%s-1", hpath, z_ids[nz]);
                doc_for(doc, sizeof(doc), z_ids[nz], "churn.z", round * 4 + j);
                cr_assert_eq(zkc_create(cli, node, doc, ZOO_PERM_ALL, ZOO_EPHEMERAL), 0);
                nz++;
            }
        }
    }
    cr_assert(wait_exact(&b, "churn.a", a_ids, na, 20000), "B: A's set");
    cr_assert(wait_exact(&b, "churn.z", z_ids, nz, 20000), "B: the other host's set");
    cr_assert(wait_exact(&a, "churn.z", z_ids, nz, 20000), "A: the other host's set");
    long long parsed = zkd_counter(&b, "docs_parsed"), reads = zkd_counter(&b, "reads");
    cr_expect_leq(parsed, reads, "B parsed %lld documents for %lld reads", parsed, reads);
    /* A's registrations after the first went out as early creates (from the
     * control thread); the exact sets above show they converge like the
     * worker's own, deregistrations racing them included. */
    cr_expect_gt(zkd_counter(&a, "early_creates"), 0);
    /* B took the churn's events the fast way (the exact sets above: with
     * deletes and creates racing its listings and reads) */
    cr_expect_gt(zkd_counter(&b, "fast_listings"), 0);

    /* One at a time: each registration on A is one child event at B, taken
     * by the fast path: one listing, one read, one parse, one wake-up of
     * B's worker (the plain path took three: event, listing, read). */
    enum { K = 20 };
    /* The churn may have left A with no instance: ZooKeeper's container
     * sweep then deletes A's empty subtree, and the first registration
     * re-creates it, which B learns from <root>/hosts, not from A's child
     * watch. One instance first keeps the subtree. */
    char keep[DISC_ID_LEN + 1];
    zkd_register(&a, "single.a", "10.3.1.1:3999", keep);
    cr_assert(zkd_wait_count(&b, "single.a", 1, 20000), "B did not get A's first instance");
    struct snap s0 = snap_of(&b);
    long long f0 = zkd_counter(&b, "fast_listings"), l0 = zkd_counter(&b, "lists"),
              i0 = dt_status_int(&b.proc, "publisher.inline_commits");
    long long ae0 = zkd_counter(&a, "early_creates"), aw0 = zkd_counter(&a, "worker_wakeups");
    for (int i = 0; i < K; i++) {
        char id[DISC_ID_LEN + 1], addr[64];
        snprintf(addr, sizeof(addr), "10.3.0.%d:%d", i, 3000 + i);
        zkd_register(&a, "single.a", addr, id);
        cr_assert(zkd_wait_count(&b, "single.a", i + 2, 20000), "B has %d of %d",
                  zkd_count(&b, "single.a"), i + 2);
    }
    struct snap s1 = snap_of(&b);
    long long fast = zkd_counter(&b, "fast_listings") - f0, lists = zkd_counter(&b, "lists") - l0,
              wk = s1.wakeups - s0.wakeups;
    long long awk = zkd_counter(&a, "worker_wakeups") - aw0;
    cr_log_info("%d single registrations: B %lld fast listings, %lld lists, %lld reads, %lld "
                "parses, %lld worker wake-ups",
                K, fast, lists, s1.reads - s0.reads, s1.parsed - s0.parsed, wk);
    cr_expect_eq(fast, K, "fast listings: %lld for %d registrations", fast, K);
    cr_expect_eq(lists, K, "B listed %lld times for %d registrations", lists, K);
    cr_expect_eq(s1.reads - s0.reads, K, "one read each");
    cr_expect_eq(s1.parsed - s0.parsed, K, "one parse each");
    /* K wake-ups, plus the idle worker's 1 s tick; the plain path: 3 K */
    cr_expect_lt(wk, 2 * K, "B's zk worker woke %lld times for %d registrations", wk, K);
    /* B's worker commits each batch itself (the publisher is idle between
     * two registrations, which wait for each other): no hand-off to the
     * publisher thread. A commit within 2 ms (--publish-coalesce) of the
     * previous one goes to the publisher thread, hence not all K. */
    long long inl = dt_status_int(&b.proc, "publisher.inline_commits") - i0;
    cr_log_info("B: %lld of %d commits made inline by the zk worker", inl, K);
    cr_expect_geq(inl, K / 2, "B's worker committed %lld of %d batches itself", inl, K);

    /* A: the registration does not wake A's worker; the early create's
     * reply and the own child event it fires do, once the node exists
     * (then the own listing). It used to wake at the registration too and
     * wait for the reply: 3.3-3.5 wake-ups a registration. */
    cr_log_info("A: %lld zk worker wake-ups for %d single registrations", awk, K);
    cr_expect_lt(awk, 3 * K, "A's zk worker woke %lld times for %d registrations", awk, K);
    /* A: the worker confirms its early creates afterwards: local_applied
     * comes back with every single one counted in ZooKeeper. */
    bool applied = false;
    for (int t = 0; t < 200 * dt_slow() && !applied; t++) {
        usleep(50000);
        json_t *r = dt_call1(&a.proc, "{\"op\":\"status\"}");
        cr_assert(dt_ok(r), "status failed");
        applied = json_is_true(json_object_get(json_object_get(r, "zookeeper"), "local_applied"));
        json_decref(r);
    }
    cr_expect(applied, "A never confirmed its early creates");
    long long in_zk = zkd_counter(&a, "local_in_zk");
    cr_expect_geq(in_zk, K + 1, "A counts %lld own nodes in ZooKeeper, want >= %d", in_zk, K + 1);
    cr_log_info("A: %lld early creates, %lld zk worker wake-ups for %d registrations",
                zkd_counter(&a, "early_creates") - ae0, zkd_counter(&a, "worker_wakeups") - aw0, K);
}

/* Counter `key` of B's first import source (status.zookeeper.import[0]). */
static long long import_counter(struct zkd *z, const char *key)
{
    return dt_status_int(&z->proc, "zookeeper.import.0.%s", key);
}

#define IMPORT_N   600
#define IMPORT_SVC 60

/* A's zookeeper.local_applied: its worker confirmed every local change. */
static bool local_applied(struct zkd *z)
{
    json_t *r = dt_call1(&z->proc, "{\"op\":\"status\"}");
    cr_assert(dt_ok(r), "status failed");
    bool v = json_is_true(json_object_get(json_object_get(r, "zookeeper"), "local_applied"));
    json_decref(r);
    return v;
}

/* Registrations from several processes at once: early creates complete
 * while A's worker waits for others' replies and new ones start holds.
 * A's worker confirms them all and keeps working: a deregistration (which
 * only the worker carries to ZooKeeper) still reaches B. */
Test(zkd_batch, concurrent_registrations_keep_the_worker_going, .fini = teardown, .timeout = 120)
{
    char root[128];
    setup(root, sizeof(root), "conc", true);
    enum { PROCS = 4, EACH = 60 };
    pid_t kids[PROCS];
    for (int k = 0; k < PROCS; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0, "fork");
        if (kids[k] == 0) {
            int bad = 0;
            for (int i = 0; i < EACH; i++) {
                char line[256];
                snprintf(line, sizeof(line),
                         "{\"op\":\"register\",\"instance\":{\"service\":\"conc.svc\","
                         "\"address\":\"10.3.%d.%d:80\"},\"check\":{\"type\":\"none\"}}",
                         k, i);
                char *r = discd_proc_request(&a.proc, line, 10000 * dt_slow());
                bad += !r || (!strstr(r, "\"ok\":true") && !strstr(r, "\"ok\": true"));
                free(r);
            }
            _exit(bad ? 1 : 0);
        }
    }
    for (int k = 0; k < PROCS; k++) {
        int st = 0;
        cr_assert_eq(waitpid(kids[k], &st, 0), kids[k]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "registering process %d failed", k);
    }
    cr_assert(zkd_wait_count(&b, "conc.svc", PROCS * EACH, 20000), "B has %d of %d",
              zkd_count(&b, "conc.svc"), PROCS * EACH);
    long long end = proc_now_ms() + 20000LL * dt_slow();
    while (!local_applied(&a) && proc_now_ms() < end)
        proc_sleep_ms(20);
    cr_assert(local_applied(&a), "A's worker never confirmed the registrations");
    char id[DISC_ID_LEN + 1];
    zkd_register(&a, "conc.one", "10.3.9.9:80", id);
    cr_assert(zkd_wait_count(&b, "conc.one", 1, 10000));
    zkd_deregister(&a, id);
    cr_assert(zkd_wait_count(&b, "conc.one", 0, 10000), "a deregistration did not reach B");
    zkd_finish(&b);
    zkd_finish(&a);
}

Test(zkd_batch, import_is_batched, .fini = teardown, .timeout = 120)
{
    cr_assert_eq(zk_cluster_start(&zk, 1, 60000 * dt_slow()), 0, "ZooKeeper did not start");
    cli = zkc_open(zk.connect, NULL, 10000);
    cr_assert(cli, "plain ZooKeeper client did not connect");
    /* The tree as Curator's ServiceDiscovery writes it (persistent here). */
    char path[256], doc[512], id[37];
    for (int k = 0; k < IMPORT_SVC; k++) {
        snprintf(path, sizeof(path), "/services/imp-%02d", k);
        cr_assert_eq(zkc_create_parents(cli, path), 0);
    }
    for (int i = 0; i < IMPORT_N; i++) {
        zkc_new_id(id);
        int k = i % IMPORT_SVC;
        snprintf(path, sizeof(path), "/services/imp-%02d/%s", k, id);
        snprintf(doc, sizeof(doc),
                 "{\"name\":\"imp-%02d\",\"id\":\"%s\",\"address\":\"10.3.%d.%d\","
                 "\"port\":%d,\"sslPort\":null,\"payload\":null,\"registrationTimeUTC\":"
                 "1700000000000,\"serviceType\":\"DYNAMIC\",\"uriSpec\":null}",
                 k, id, i / 250, i % 250, 3000 + i);
        cr_assert_eq(zkc_create(cli, path, doc, ZOO_PERM_ALL, 0), 0, "create %s", path);
    }
    char root[128];
    zkd_root(root, sizeof(root), "import");
    zkd_start_extra(&b, "zkbi", zk.connect, root, "--import=curator");
    for (int k = 0; k < IMPORT_SVC; k++) {
        char svc[16];
        snprintf(svc, sizeof(svc), "imp-%02d", k);
        cr_assert(zkd_wait_count(&b, svc, IMPORT_N / IMPORT_SVC, 30000), "B has %d of %s",
                  zkd_count(&b, svc), svc);
    }
    /* the worker publishes its counters at the end of its round */
    long long until = proc_now_ms() + 10000LL * dt_slow();
    while (import_counter(&b, "upserts") < IMPORT_N && proc_now_ms() < until) {
        proc_sleep_ms(50);
    }
    long long up = import_counter(&b, "upserts"), rd = import_counter(&b, "reads"),
              ba = import_counter(&b, "batches"), co = dt_status_int(&b.proc, "publisher.commits");
    cr_log_info("import of %d instances over %d services: %lld reads, %lld upserts, %lld "
                "batches, %lld publisher commits",
                IMPORT_N, IMPORT_SVC, rd, up, ba, co);
    cr_expect_eq(up, IMPORT_N, "every instance upserted once");
    cr_expect_eq(rd, IMPORT_N, "every node read once");
    /* 600 reads are three windows of 256 pipelined gets: three batches, and
     * a batch is one commit (the root is empty: nothing else changes; 2
     * spare for discd's own start-up). Delivered one by one, the same import
     * took 11 commits here (the publisher coalescing what it found). */
    cr_expect_geq(ba, 1);
    cr_expect_leq(ba, IMPORT_N / 100, "import batches: %lld for %d instances", ba, IMPORT_N);
    cr_expect_leq(co, ba + 2, "publisher commits: %lld for %lld import batches", co, ba);
}
