/* SPDX-License-Identifier: MIT */
/*
 * bench_import.c — initial sync of a fresh discd from a foreign Apache
 * Curator x-discovery tree (import = curator), beside the native tree of
 * the same size measured in the same run on the same ZooKeeper (issue 12).
 *
 *   bench_import [-n instances] [-s services] [-H hosts] [-r runs]
 *                [-e exports] [--quick] [--md FILE] [--json FILE]
 *                (bench_report.h)
 * Defaults: 10000 instances, 1000 services (Curator), 100 hosts (native),
 * 3 runs, 1000 exports; --quick: 1000 / 100 / 10, 1 run, 200 exports.
 *
 * Writes both trees once with a plain pipelined C client (persistent
 * nodes, so they outlive this session): Curator documents as Curator's
 * JsonInstanceSerializer writes them under /services/<service>/<uuid>, and
 * native documents under <root>/hosts/<host>/<uuid>-1. Then, per run, starts
 * a fresh discd (new registry, new session) on each tree and measures from
 * the spawn until its segment holds every instance (a libdiscshm reader
 * waiting on the futex), and the ZooKeeper lists and reads discd made,
 * its delivery batches and its publisher's segment commits (its status
 * counters).
 *
 * Export (export-curator = BASE): a discd exporting E local instances is
 * stopped past its session timeout (the session expires, the exports go)
 * and continued; the time of its full reconcile after the new session
 * (the export's own clock: status zookeeper.export.last_full_ms, the
 * reconnection and its random jitter excluded), its waves of pipelined
 * calls, beside a plain C client on the same ZooKeeper in the same run
 * doing what the export does per node (create, then exists with a watch):
 * one synchronous call after the other (what the export did before), and
 * pipelined.
 */
#include "bench_discd.h"
#include "bench_report.h"
#include "bench_zkraw.h"
#include "discd_proc.h"
#include "discshm.h"
#include "zk_server.h"

#include <errno.h>
#include <signal.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#define NATIVE_ROOT "/bench-native"
#define EMPTY_ROOT  "/bench-empty"
#define CURATOR     "/services"
#define INFLIGHT    1000
#define EXPORT_BASE "/bench-export"
#define RAW_BASE    "/bench-raw"
#define SESSION_MS  4000

static struct zk_cluster zk;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_import: %s\n", what);
    exit(1);
}

/* ---- writing the trees: pipelined async creates ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight, failed;
} pipe_ = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

/* A request of the pipeline completed with rc (ok: ZOK, or also
 * ZNODEEXISTS when exist_ok). */
static void pipe_done(int rc, bool exist_ok)
{
    pthread_mutex_lock(&pipe_.mu);
    pipe_.inflight--;
    if (rc != ZOK && !(exist_ok && rc == ZNODEEXISTS))
        pipe_.failed++;
    pthread_cond_signal(&pipe_.cv);
    pthread_mutex_unlock(&pipe_.mu);
}

/* Wait until fewer than max requests are in flight and count one more. */
static void pipe_take(int max)
{
    pthread_mutex_lock(&pipe_.mu);
    while (pipe_.inflight >= max)
        pthread_cond_wait(&pipe_.cv, &pipe_.mu);
    pipe_.inflight++;
    pthread_mutex_unlock(&pipe_.mu);
}

static void created(int rc, const char *value, const void *data)
{
    (void)value;
    (void)data;
    pipe_done(rc, true);
}

static void create_async(zhandle_t *zh, const char *path, const char *data)
{
    pipe_take(INFLIGHT);
    if (zoo_acreate(zh, path, data, data ? (int)strlen(data) : -1, &ZOO_OPEN_ACL_UNSAFE, 0, created,
                    NULL) != ZOK)
        die("zoo_acreate failed");
}

static void drain(void)
{
    pthread_mutex_lock(&pipe_.mu);
    while (pipe_.inflight > 0)
        pthread_cond_wait(&pipe_.cv, &pipe_.mu);
    int failed = pipe_.failed;
    pthread_mutex_unlock(&pipe_.mu);
    if (failed)
        die("some creates failed");
}

static double write_curator(zhandle_t *zh, int n, int services)
{
    double t0 = now_ms();
    char path[512], doc[1024], id[37];
    create_async(zh, CURATOR, NULL);
    drain();
    for (int s = 0; s < services; s++) {
        snprintf(path, sizeof(path), CURATOR "/svc-%04d", s);
        create_async(zh, path, NULL);
    }
    drain();
    for (int i = 0; i < n; i++) {
        zkraw_new_id(id);
        int s = i % services;
        snprintf(path, sizeof(path), CURATOR "/svc-%04d/%s", s, id);
        snprintf(doc, sizeof(doc),
                 "{\"name\":\"svc-%04d\",\"id\":\"%s\",\"address\":\"10.%d.%d.%d\",\"port\":8080,"
                 "\"sslPort\":null,\"payload\":{\"@class\":\"java.util.LinkedHashMap\","
                 "\"zone\":\"az%d\"},\"registrationTimeUTC\":1700000000000,\"serviceType\":"
                 "\"DYNAMIC\",\"uriSpec\":{\"parts\":[{\"value\":\"scheme\",\"variable\":true},"
                 "{\"value\":\"://\",\"variable\":false},{\"value\":\"address\",\"variable\":true},"
                 "{\"value\":\":\",\"variable\":false},{\"value\":\"port\",\"variable\":true}]},"
                 "\"enabled\":true}",
                 s, id, (i >> 16) & 255, (i >> 8) & 255, i & 255, i % 3);
        create_async(zh, path, doc);
    }
    drain();
    return now_ms() - t0;
}

static double write_native(zhandle_t *zh, int n, int hosts, int services)
{
    double t0 = now_ms();
    char path[512], doc[1024], id[37];
    create_async(zh, NATIVE_ROOT, NULL);
    create_async(zh, EMPTY_ROOT, NULL);
    drain();
    create_async(zh, NATIVE_ROOT "/hosts", NULL);
    drain();
    for (int h = 0; h < hosts; h++) {
        snprintf(path, sizeof(path), NATIVE_ROOT "/hosts/h%03d", h);
        create_async(zh, path, NULL);
    }
    drain();
    for (int i = 0; i < n; i++) {
        zkraw_new_id(id);
        int h = i % hosts;
        snprintf(path, sizeof(path), NATIVE_ROOT "/hosts/h%03d/%s-1", h, id);
        snprintf(doc, sizeof(doc),
                 "{\"id\":\"%s\",\"service\":\"svc-%04d\",\"host\":\"h%03d\",\"az\":\"az%d\","
                 "\"address\":\"10.%d.%d.%d:8080\",\"weight\":10,\"registered_at_ms\":"
                 "1700000000000}",
                 id, i % services, h, i % 3, (i >> 16) & 255, (i >> 8) & 255, i & 255);
        create_async(zh, path, doc);
    }
    drain();
    return now_ms() - t0;
}

/* ---- one fresh discd ---- */

struct run {
    double ms;
    long long lists, reads;
    long long batches, commits; /* delivery batches (zk_sync or import), publisher commits */
};

static json_t *status_of(const struct discd_proc *d)
{
    char *r = discd_proc_request(d, "{\"op\":\"status\"}", 5000);
    json_t *v = r ? json_loads(r, 0, NULL) : NULL;
    free(r);
    if (!v)
        die("status failed");
    return v;
}

static struct run sync_once(const char *tag, int n, bool curator)
{
    struct discd_proc d;
    char a_zk[512], a_root[300], a_host[96];
    snprintf(a_zk, sizeof(a_zk), "--zk=%s", zk.connect);
    snprintf(a_root, sizeof(a_root), "--zk-root=%s", curator ? EMPTY_ROOT : NATIVE_ROOT);
    snprintf(a_host, sizeof(a_host), "--host-id=%s-%d", tag, (int)getpid());
    char *const args[] = {a_zk,
                          a_root,
                          a_host,
                          "--log-level",
                          "warn",
                          "--protect-shrink=0",
                          curator ? "--import=curator" : NULL,
                          NULL};
    if (discd_proc_init(&d, tag) != 0)
        die("discd_proc_init");
    double t0 = now_ms();
    if (discd_proc_start(&d, args, 20000) != 0)
        die("discd did not start (is DISC_BUILD_DIR right?)");
    disc_handle *h = NULL;
    if (disc_open(d.name, 0, &h) != 0)
        die("cannot open discd's segment");
    struct disc_status st;
    uint32_t seen = 0;
    for (;;) {
        if (disc_status(h, &st) != 0)
            die("disc_status");
        if ((int)st.n_instances >= n)
            break;
        if (now_ms() - t0 > 120000)
            die("discd did not see every instance in 120 s");
        disc_wait_change(h, &seen, 100);
    }
    struct run r = {.ms = now_ms() - t0};
    /* the status counters are published by the worker after its round */
    json_t *s = NULL;
    for (int tries = 0; tries < 100; tries++) {
        json_decref(s);
        s = status_of(&d);
        json_t *z = json_object_get(s, "zookeeper");
        json_t *c = curator ? json_array_get(json_object_get(z, "import"), 0)
                            : json_object_get(z, "counters");
        r.lists = json_integer_value(json_object_get(c, "lists"));
        r.reads = json_integer_value(json_object_get(c, "reads"));
        r.batches = json_integer_value(json_object_get(c, "batches"));
        r.commits = json_integer_value(json_object_get(json_object_get(s, "publisher"), "commits"));
        if (r.reads >= n)
            break;
        usleep(50000);
    }
    json_decref(s);
    disc_close(h);
    discd_proc_stop(&d, 10000);
    discd_proc_cleanup(&d);
    return r;
}

/* ---- re-export after session expiry ---- */

struct xrun {
    double ms;         /* the export's full reconcile (its own clock) */
    long long waves;   /* waves of pipelined calls in it */
    long long creates; /* nodes it created */
};

static long long export_counter(const struct discd_proc *d, const char *key)
{
    json_t *s = status_of(d);
    json_t *v = json_object_get(json_object_get(json_object_get(s, "zookeeper"), "export"), key);
    long long r = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(s);
    return r;
}

/* Children under EXPORT_BASE/<service> for every service. */
static int exported_nodes(zhandle_t *zh, int services)
{
    int total = 0;
    for (int s = 0; s < services; s++) {
        char p[256];
        snprintf(p, sizeof(p), EXPORT_BASE "/x-%03d", s);
        struct String_vector sv = {0, NULL};
        if (zoo_get_children(zh, p, 0, &sv) == ZOK) {
            total += sv.count;
            deallocate_String_vector(&sv);
        }
    }
    return total;
}

static bool wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    double t0 = now_ms();
    while (!cond(arg)) {
        if (now_ms() - t0 > timeout_ms)
            return false;
        usleep(20000);
    }
    return true;
}

struct xwait {
    const struct discd_proc *d;
    zhandle_t *zh;
    int n, services;
    long long full_before;
};

static bool all_exported(void *a)
{
    struct xwait *w = a;
    return export_counter(w->d, "exported") >= w->n && exported_nodes(w->zh, w->services) >= w->n;
}

static bool none_exported(void *a)
{
    struct xwait *w = a;
    return exported_nodes(w->zh, w->services) == 0;
}

static bool reexported(void *a)
{
    struct xwait *w = a;
    return all_exported(a) && export_counter(w->d, "last_full_nodes") >= w->n &&
           export_counter(w->d, "creates") >= w->full_before + w->n;
}

/* One discd exporting n instances over `services` services; `runs`
 * expiries, each a row in out[]. */
static void reexport_runs(zhandle_t *zh, int n, int services, int runs, struct xrun *out)
{
    struct discd_proc d;
    char a_zk[512], a_host[96], a_to[64];
    snprintf(a_zk, sizeof(a_zk), "--zk=%s", zk.connect);
    snprintf(a_host, sizeof(a_host), "--host-id=export-%d", (int)getpid());
    snprintf(a_to, sizeof(a_to), "--zk-session-timeout=%d", SESSION_MS);
    char *const args[] = {a_zk,   "--zk-root=/bench-export-root",  a_host, a_to, "--log-level",
                          "warn", "--export-curator=" EXPORT_BASE, NULL};
    if (discd_proc_init(&d, "export") != 0 || discd_proc_start(&d, args, 20000) != 0)
        die("export discd did not start");
    for (int i = 0; i < n; i++) {
        char req[256];
        snprintf(req, sizeof(req),
                 "{\"op\":\"register\",\"instance\":{\"service\":\"x-%03d\",\"address\":"
                 "\"10.9.%d.%d:%d\"},\"check\":{\"type\":\"none\"}}",
                 i % services, (i >> 8) & 255, i & 255, 1000 + i % 50000);
        char *r = discd_proc_request(&d, req, 5000);
        if (!r || !strstr(r, "\"ok\":true"))
            die("register failed");
        free(r);
    }
    struct xwait w = {.d = &d, .zh = zh, .n = n, .services = services};
    if (!wait_until(all_exported, &w, 60000))
        die("the exports did not appear");
    for (int i = 0; i < runs; i++) {
        long long waves0 = export_counter(&d, "waves");
        w.full_before = export_counter(&d, "creates");
        if (proc_signal(&d.proc, SIGSTOP) != 0)
            die("SIGSTOP");
        bool gone = wait_until(none_exported, &w, SESSION_MS + 30000);
        if (proc_signal(&d.proc, SIGCONT) != 0 || !gone)
            die("the session did not expire");
        if (!wait_until(reexported, &w, 60000))
            die("the exports did not come back");
        out[i].ms = (double)export_counter(&d, "last_full_ms");
        out[i].waves = export_counter(&d, "waves") - waves0;
        out[i].creates = export_counter(&d, "creates") - w.full_before;
    }
    discd_proc_stop(&d, 10000);
    discd_proc_cleanup(&d);
}

/* The plain client's baseline: n nodes created (ephemeral) and watched
 * with exists, either one synchronous call after the other or pipelined
 * (every create, then every exists). Returns ms; the nodes are deleted
 * afterwards (not timed). */
static void created_cb(int rc, const char *value, const void *data)
{
    (void)value;
    (void)data;
    pipe_done(rc, false);
}

static void exists_cb(int rc, const struct Stat *st, const void *data)
{
    (void)st;
    (void)data;
    pipe_done(rc, false);
}

static double raw_create_watch(zhandle_t *zh, int n, bool pipelined)
{
    char path[256], doc[400];
    snprintf(doc, sizeof(doc), "%0300d", 0); /* about an exported document's size */
    double t0 = now_ms();
    if (!pipelined) {
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof(path), RAW_BASE "/n%06d", i);
            struct Stat st;
            if (zoo_create(zh, path, doc, (int)strlen(doc), &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                           NULL, 0) != ZOK ||
                zoo_exists(zh, path, 1, &st) != ZOK)
                die("raw create/exists failed");
        }
    } else {
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof(path), RAW_BASE "/n%06d", i);
            pipe_take(256);
            if (zoo_acreate(zh, path, doc, (int)strlen(doc), &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                            created_cb, NULL) != ZOK)
                die("zoo_acreate failed");
        }
        drain();
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof(path), RAW_BASE "/n%06d", i);
            pipe_take(256);
            if (zoo_aexists(zh, path, 1, exists_cb, NULL) != ZOK)
                die("zoo_aexists failed");
        }
        drain();
    }
    double ms = now_ms() - t0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), RAW_BASE "/n%06d", i);
        zoo_delete(zh, path, -1);
    }
    return ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_xrun(const void *a, const void *b)
{
    double x = ((const struct xrun *)a)->ms, y = ((const struct xrun *)b)->ms;
    return x < y ? -1 : x > y;
}

static int cmp_run(const void *a, const void *b)
{
    double x = ((const struct run *)a)->ms, y = ((const struct run *)b)->ms;
    return x < y ? -1 : x > y;
}

static void cleanup(void)
{
    zk_cluster_destroy(&zk);
    bench_discd_env_cleanup();
}

int main(int argc, char **argv)
{
    struct bench_opts bo;
    if (bench_parse_args(&argc, argv, &bo) != 0)
        return 2;
    int n = 0, services = 0, hosts = 0, runs = 0, exports = 0, opt;
    while ((opt = getopt(argc, argv, "n:s:H:r:e:")) != -1) {
        switch (opt) {
        case 'n':
            n = atoi(optarg);
            break;
        case 's':
            services = atoi(optarg);
            break;
        case 'H':
            hosts = atoi(optarg);
            break;
        case 'r':
            runs = atoi(optarg);
            break;
        case 'e':
            exports = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bench_import [-n N] [-s S] [-H H] [-r R] [-e E] [--quick] "
                            "[--md F] [--json F]\n");
            return 2;
        }
    }
    n = n > 0 ? n : bo.quick ? 1000 : 10000;
    services = services > 0 ? services : bo.quick ? 100 : 1000;
    hosts = hosts > 0 ? hosts : bo.quick ? 10 : 100;
    runs = runs > 0 ? runs : bo.quick ? 1 : 3;
    exports = exports > 0 ? exports : bo.quick ? 200 : 1000;
    if (runs > 16)
        runs = 16;

    if (bench_discd_env() != 0)
        die("cannot prepare the benchmark directory");
    zkraw_server_start(&zk);
    atexit(cleanup);
    zhandle_t *zh = zkraw_connect(zk.connect, 30000);
    double w_cur = write_curator(zh, n, services);
    double w_nat = write_native(zh, n, hosts, services);
    zkraw_close(zh); /* the trees are persistent */
    zh = zkraw_connect(zk.connect, 30000);
    create_async(zh, RAW_BASE, NULL);
    drain();

    struct run nat[16], cur[16];
    for (int i = 0; i < runs; i++) { /* interleaved: load changes hit both alike */
        nat[i] = sync_once("native", n, false);
        cur[i] = sync_once("curator", n, true);
    }
    int xservices = exports >= 100 ? 10 : 1;
    struct xrun xr[16];
    double raw_sync[16], raw_pipe[16];
    reexport_runs(zh, exports, xservices, runs, xr);
    for (int i = 0; i < runs; i++) { /* same ZooKeeper, same run */
        raw_sync[i] = raw_create_watch(zh, exports, false);
        raw_pipe[i] = raw_create_watch(zh, exports, true);
    }
    zkraw_close(zh);
    qsort(xr, (size_t)runs, sizeof(xr[0]), cmp_xrun);
    qsort(raw_sync, (size_t)runs, sizeof(raw_sync[0]), cmp_double);
    qsort(raw_pipe, (size_t)runs, sizeof(raw_pipe[0]), cmp_double);
    struct xrun mx = xr[runs / 2];
    double msync = raw_sync[runs / 2], mpipe = raw_pipe[runs / 2];
    qsort(nat, (size_t)runs, sizeof(nat[0]), cmp_run);
    qsort(cur, (size_t)runs, sizeof(cur[0]), cmp_run);
    struct run mn = nat[runs / 2], mc = cur[runs / 2];

    struct bench_report *rep = bench_report_open(
        "bench_import", "Curator import: initial sync of a fresh discd (issue 12)", &bo, 0, NULL);
    if (!rep)
        return 1;
    char title[160];
    snprintf(title, sizeof(title), "%d instances", n);
    printf("initial sync into a fresh discd, %s, median of %d runs (spawn to every instance in "
           "the segment)\n",
           title, runs);
    bench_md(rep,
             "A fresh discd (new registry, new session) started on a tree already in ZooKeeper; "
             "time from its spawn until its segment holds every instance (libdiscshm reader on "
             "the futex), median of %d runs, interleaved; ZooKeeper calls from discd's status "
             "counters. Both trees were written once by a pipelined C client (Curator tree "
             "%.0f ms, native tree %.0f ms).\n\n",
             runs, w_cur, w_nat);
    bench_md(rep, "| tree | instances | parents | sync (median) | min | max | lists | reads | "
                  "batches | commits |\n");
    bench_md(rep, "|---|---|---|---|---|---|---|---|---|---|\n");
    bench_md(rep,
             "| native `<root>/hosts/<host>/<uuid>-<seq>` (baseline) | %d | %d hosts | %.0f ms "
             "| %.0f ms | %.0f ms | %lld | %lld | %lld | %lld |\n",
             n, hosts, mn.ms, nat[0].ms, nat[runs - 1].ms, mn.lists, mn.reads, mn.batches,
             mn.commits);
    bench_md(rep,
             "| Curator `/services/<service>/<id>` (import = curator) | %d | %d services | %.0f "
             "ms | %.0f ms | %.0f ms | %lld | %lld | %lld | %lld |\n",
             n, services, mc.ms, cur[0].ms, cur[runs - 1].ms, mc.lists, mc.reads, mc.batches,
             mc.commits);
    double ratio = mn.ms > 0 ? mc.ms / mn.ms : 0;
    bench_md(rep,
             "\nCurator / native sync time: %.2f. Reads per instance: native %.2f, Curator %.2f "
             "(every node is read once; a Curator tree costs one list per service node plus the "
             "base, the native tree one per host plus `hosts`). Segment commits per instance: "
             "native %.4f, Curator %.4f (`batches`: the changes delivered to the registry as one "
             "batch each, `commits`: the publisher's segment commits since discd's start; the "
             "import delivers one batch per window of 256 pipelined reads).\n",
             ratio, (double)mn.reads / n, (double)mc.reads / n, (double)mn.commits / n,
             (double)mc.commits / n);
    printf("native  %d / %d hosts:    %.0f ms, %lld lists, %lld reads, %lld batches, %lld "
           "commits\n",
           n, hosts, mn.ms, mn.lists, mn.reads, mn.batches, mn.commits);
    printf("curator %d / %d services: %.0f ms, %lld lists, %lld reads, %lld batches, %lld commits "
           "(ratio %.2f)\n",
           n, services, mc.ms, mc.lists, mc.reads, mc.batches, mc.commits, ratio);
    char jn[BENCH_JNUM_LEN];
    bench_row(rep, "native initial sync", "ms", mn.ms, nat[runs - 1].ms,
              "\"instances\": %d, \"hosts\": %d, \"lists\": %lld, \"reads\": %lld, "
              "\"batches\": %lld, \"commits\": %lld",
              n, hosts, mn.lists, mn.reads, mn.batches, mn.commits);
    bench_row(rep, "curator import initial sync", "ms", mc.ms, cur[runs - 1].ms,
              "\"instances\": %d, \"services\": %d, \"lists\": %lld, \"reads\": %lld, "
              "\"batches\": %lld, \"commits\": %lld, \"ratio_to_native\": %s",
              n, services, mc.lists, mc.reads, mc.batches, mc.commits, bench_jnum(jn, ratio));
    bench_md(rep,
             "\n### Curator export: re-export after session expiry\n\n"
             "A discd exporting %d local instances (`export-curator`, %d services) stopped past "
             "its %d ms session timeout and continued: the export's full reconcile after the new "
             "session (its own clock, `last_full_ms`; reconnection and jitter excluded), median "
             "of %d, beside a plain C client creating and watching (`exists`) %d ephemeral nodes "
             "on the same ZooKeeper in the same run.\n\n",
             exports, xservices, SESSION_MS, runs, exports);
    bench_md(rep, "| what | nodes | time (median) | min | max | waves | ratio to raw sync |\n");
    bench_md(rep, "|---|---|---|---|---|---|---|\n");
    bench_md(rep,
             "| raw client: create + exists, one call after the other (the export's old way) | "
             "%d | %.0f ms | %.0f ms | %.0f ms | %d | 1.00 |\n",
             exports, msync, raw_sync[0], raw_sync[runs - 1], 2 * exports);
    bench_md(rep,
             "| raw client: creates, then exists, pipelined (256 outstanding) | %d | %.0f ms | "
             "%.0f ms | %.0f ms | - | %.2f |\n",
             exports, mpipe, raw_pipe[0], raw_pipe[runs - 1], msync > 0 ? mpipe / msync : 0);
    bench_md(rep,
             "| discd export: full reconcile after session expiry | %d | %.0f ms | %.0f ms | "
             "%.0f ms | %lld | %.2f |\n",
             exports, mx.ms, xr[0].ms, xr[runs - 1].ms, mx.waves, msync > 0 ? mx.ms / msync : 0);
    printf(
        "re-export %d after session expiry: %.0f ms, %lld waves, %lld creates; raw sync %.0f ms, "
        "raw pipelined %.0f ms\n",
        exports, mx.ms, mx.waves, mx.creates, msync, mpipe);
    bench_row(rep, "curator re-export after session expiry", "ms", mx.ms, xr[runs - 1].ms,
              "\"nodes\": %d, \"waves\": %lld, \"creates\": %lld, \"ratio_to_raw_sync\": %s",
              exports, mx.waves, mx.creates, bench_jnum(jn, msync > 0 ? mx.ms / msync : 0));
    bench_row(rep, "raw create+exists, sequential", "ms", msync, raw_sync[runs - 1],
              "\"nodes\": %d", exports);
    bench_row(rep, "raw create+exists, pipelined", "ms", mpipe, raw_pipe[runs - 1], "\"nodes\": %d",
              exports);
    /* issue 12 sets no time target; every node must be read exactly once */
    bench_target(rep, "curator import reads per instance", (double)mc.reads / n, "<=", 1.0);
    /* delivered in batches (one per window of pipelined reads), not one
     * registry notification per instance: at most one commit per 100 */
    bench_target(rep, "curator import segment commits per instance", (double)mc.commits / n,
                 "<=", 0.01);
    return bench_report_close(rep) == 0 ? 0 : 1;
}
