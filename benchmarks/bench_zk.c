/* SPDX-License-Identifier: MIT */
/*
 * bench_zk.c — ZooKeeper layer latency on loopback, against raw ZooKeeper
 * baselines measured in the same run on the same server.
 *
 *   bench_zk [-n instances] [-i initial-instances] [-H initial-hosts]
 *            [--quick] [--md FILE] [--json FILE]   (bench_report.h)
 * --quick: -n 100 -i 1000 -H 10 unless given.
 *
 * Starts its own standalone ZooKeeper (tests/harness/zk_server.c) and
 * measures, one operation at a time:
 *   1. raw watch notification: zoo_create on one session -> child watch event
 *      on another session;
 *   2. raw "seed design" read path: create -> watch -> get_children -> get;
 *   3. zk_sync propagation: zk_sync_publish_local on host A -> on_remote_upsert
 *      on host B (two zk_sync handles in this process, separate sessions);
 *   4. zoo_get of one instance node and zoo_get_children of a host subtree
 *      (10 and 1000 children);
 *   5. initial sync: a fresh zk_sync reading I instances spread over H hosts
 *      (time, lists, reads).
 * Prints a markdown table (microseconds).
 */
#include "bench_report.h"
#include "discshm.h"
#include "segwriter.h"
#include "zk_server.h"
#include "zk_sync.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <zookeeper/zookeeper.h>

#define ROOT "/bench"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static struct bench_report *rep;

/* printf to stdout and to the --md section alike. */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fputs(line, stdout);
    if (rep)
        bench_md(rep, "%s", line);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += v[i];
    }
    out("| %-58s | %6d | %8.0f | %8.0f | %8.0f | %8.0f |\n", what, n, v[n / 2],
        v[(int)((double)n * 0.99)], v[n - 1], sum / n);
    bench_row(rep, what, "us", v[n / 2], v[(int)((double)n * 0.99)],
              "\"n\": %d, \"max\": %.1f, \"mean\": %.1f", n, v[n - 1], sum / n);
    fflush(stdout);
}

/* ---- a tiny "wait for one event" primitive shared by watcher and callbacks ---- */
struct signal1 {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;
    double at_us;
    char want[64]; /* zk_sync: id we wait for */
};

static struct signal1 sig = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, ""};

static void fire(void)
{
    pthread_mutex_lock(&sig.mu);
    sig.count++;
    sig.at_us = now_us();
    pthread_cond_signal(&sig.cv);
    pthread_mutex_unlock(&sig.mu);
}

static int wait_fire(int target, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&sig.mu);
    int rc = 0;
    while (sig.count < target && rc == 0) {
        rc = pthread_cond_timedwait(&sig.cv, &sig.mu, &dl);
    }
    int ok = sig.count >= target;
    pthread_mutex_unlock(&sig.mu);
    return ok ? 0 : -ETIMEDOUT;
}

static void raw_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    (void)ctx;
    if (type == ZOO_CHILD_EVENT) {
        fire();
    }
}

static zhandle_t *connect_raw(const char *connect)
{
    zhandle_t *zh = zookeeper_init(connect, raw_watcher, 10000, NULL, NULL, 0);
    for (int i = 0; zh && i < 500 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++) {
        usleep(10000);
    }
    if (!zh || zoo_state(zh) != ZOO_CONNECTED_STATE) {
        fprintf(stderr, "cannot connect to %s\n", connect);
        exit(1);
    }
    return zh;
}

static void mkpath(zhandle_t *zh, const char *path)
{
    int rc = zoo_create(zh, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) {
        fprintf(stderr, "create %s: %s\n", path, zerror(rc));
        exit(1);
    }
}

static void new_id(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

static int doc_for(char *buf, size_t len, const char *id, int i)
{
    return snprintf(buf, len,
                    "{\"id\":\"%s\",\"service\":\"bench.svc%d\",\"version\":\"1.0\","
                    "\"address\":\"10.0.0.%d:%d\",\"weight\":10,\"tags\":{\"az\":\"a\"}}",
                    id, i % 50, i % 250, 8000 + i % 1000);
}

/* 1 + 2: raw watch latency and the raw list+get read path */
static void bench_raw(const char *connect, int n)
{
    zhandle_t *w = connect_raw(connect), *p = connect_raw(connect);
    mkpath(p, ROOT "/raw");
    double *notify = calloc((size_t)n, sizeof(double)), *path = calloc((size_t)n, sizeof(double));
    char id[37], node[256], doc[512], buf[1024];
    for (int i = 0; i < n; i++) {
        struct String_vector sv;
        int target = sig.count + 1;
        if (zoo_get_children(w, ROOT "/raw", 1, &sv) != ZOK) {
            exit(1);
        }
        deallocate_String_vector(&sv);
        new_id(id);
        snprintf(node, sizeof(node), ROOT "/raw/%s-1", id);
        int len = doc_for(doc, sizeof(doc), id, i);
        double t0 = now_us();
        if (zoo_create(p, node, doc, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0) != ZOK ||
            wait_fire(target, 10000) != 0) {
            fprintf(stderr, "raw create/watch failed\n");
            exit(1);
        }
        notify[i] = sig.at_us - t0;
        /* what a watcher does next in the seed design: list, then get the new one */
        if (zoo_get_children(w, ROOT "/raw", 0, &sv) != ZOK) {
            exit(1);
        }
        deallocate_String_vector(&sv);
        int blen = sizeof(buf);
        if (zoo_get(w, node, 0, buf, &blen, NULL) != ZOK) {
            exit(1);
        }
        path[i] = now_us() - t0;
        if (i % 100 == 99) { /* keep the directory small, like one host's subtree */
            if (zoo_get_children(p, ROOT "/raw", 0, &sv) == ZOK) {
                for (int k = 0; k < sv.count; k++) {
                    snprintf(node, sizeof(node), ROOT "/raw/%s", sv.data[k]);
                    zoo_delete(p, node, -1);
                }
                deallocate_String_vector(&sv);
            }
        }
    }
    report("raw ZooKeeper: create -> child watch fires", notify, n);
    report("raw ZooKeeper: create -> watch -> get_children -> get", path, n);
    free(notify);
    free(path);
    zookeeper_close(w);
    zookeeper_close(p);
}

/* 3: zk_sync propagation A -> B */
static void on_upsert(void *arg, const char *host, const char *id, const char *json, size_t len)
{
    (void)arg;
    (void)host;
    (void)json;
    (void)len;
    pthread_mutex_lock(&sig.mu);
    bool match = strcmp(id, sig.want) == 0;
    pthread_mutex_unlock(&sig.mu);
    if (match) {
        fire();
    }
}

static struct zk_sync *start_sync(const char *connect, const char *host,
                                  const struct zk_sync_callbacks *cb, int timeout_ms)
{
    struct zk_sync_config cfg = {
        .connect = connect,
        .root = ROOT,
        .host_id = host,
        .session_timeout_ms = 10000,
        .cooloff_ms = 0,
        .jitter_ms = 0,
        .log_level = ZK_SYNC_LOG_WARN,
        .zk_log_level = ZK_SYNC_LOG_ERROR,
    };
    struct zk_sync *zs;
    if (zk_sync_start(&cfg, cb, NULL, &zs) != 0) {
        exit(1);
    }
    for (int i = 0; i < timeout_ms / 10; i++) {
        struct zk_sync_status st;
        zk_sync_get_status(zs, &st);
        if (st.state == ZK_SYNC_CONNECTED && st.last_sync_ms) {
            return zs;
        }
        usleep(10000);
    }
    fprintf(stderr, "zk_sync %s did not connect\n", host);
    exit(1);
}

static void bench_sync(const char *connect, int n)
{
    struct zk_sync_callbacks cb = {.on_remote_upsert = on_upsert};
    struct zk_sync *a = start_sync(connect, "bench-a", NULL, 10000);
    struct zk_sync *b = start_sync(connect, "bench-b", &cb, 10000);
    double *lat = calloc((size_t)n, sizeof(double));
    char id[37], doc[512];
    struct zk_sync_status st0, st1;
    zk_sync_get_status(b, &st0);
    for (int i = 0; i < n; i++) {
        new_id(id);
        int len = doc_for(doc, sizeof(doc), id, i);
        pthread_mutex_lock(&sig.mu);
        snprintf(sig.want, sizeof(sig.want), "%s", id);
        int target = sig.count + 1;
        pthread_mutex_unlock(&sig.mu);
        double t0 = now_us();
        if (zk_sync_publish_local(a, id, doc, (size_t)len) != 0 || wait_fire(target, 10000) != 0) {
            fprintf(stderr, "zk_sync propagation failed at %d\n", i);
            exit(1);
        }
        lat[i] = sig.at_us - t0;
    }
    zk_sync_get_status(b, &st1);
    report("zk_sync: publish_local on A -> on_remote_upsert on B", lat, n);
    out("|   B per propagated instance: %.2f lists, %.2f reads, %.2f watch events |\n",
        (double)(st1.counters.lists - st0.counters.lists) / n,
        (double)(st1.counters.reads - st0.counters.reads) / n,
        (double)(st1.counters.watches_fired - st0.counters.watches_fired) / n);
    zk_sync_stop(b);
    zk_sync_stop(a);
    free(lat);
}

/* 4: single reads */
static void bench_reads(const char *connect, int n)
{
    zhandle_t *zh = connect_raw(connect);
    char dir[128], node[256], doc[512], id[37], first[256] = "";
    int sizes[] = {10, 1000};
    for (size_t s = 0; s < 2; s++) {
        snprintf(dir, sizeof(dir), ROOT "/reads%d", sizes[s]);
        mkpath(zh, dir);
        for (int i = 0; i < sizes[s]; i++) {
            new_id(id);
            snprintf(node, sizeof(node), "%s/%s-1", dir, id);
            int len = doc_for(doc, sizeof(doc), id, i);
            zoo_create(zh, node, doc, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0);
            if (!first[0]) {
                snprintf(first, sizeof(first), "%s", node);
            }
        }
    }
    double *lat = calloc((size_t)n, sizeof(double));
    char buf[1024];
    for (int i = 0; i < n; i++) {
        int blen = sizeof(buf);
        double t0 = now_us();
        zoo_get(zh, first, 0, buf, &blen, NULL);
        lat[i] = now_us() - t0;
    }
    report("zoo_get of one instance node (~150 B)", lat, n);
    for (size_t s = 0; s < 2; s++) {
        snprintf(dir, sizeof(dir), ROOT "/reads%d", sizes[s]);
        for (int i = 0; i < n; i++) {
            struct String_vector sv;
            double t0 = now_us();
            zoo_get_children(zh, dir, 0, &sv);
            lat[i] = now_us() - t0;
            deallocate_String_vector(&sv);
        }
        char what[96];
        snprintf(what, sizeof(what), "zoo_get_children of a host subtree, %d children", sizes[s]);
        report(what, lat, n);
    }
    free(lat);
    zookeeper_close(zh);
}

/* 4b: the same questions answered from the shared-memory segment, in the
 * same run: a registry of `total` instances (10 per service) published with
 * discpub, read with libdiscshm. Also reports segment bytes per instance. */
static void bench_shm(int n, int total)
{
    char name[64], id[37], svc[32], addr[32];
    snprintf(name, sizeof(name), "bench-zk-shm-%d", (int)getpid());
    struct seg_writer *w;
    struct segw_config cfg = {.segment_bytes = 1ull << 30};
    if (segw_open(name, &cfg, &w) < 0) {
        fprintf(stderr, "segw_open failed\n");
        return;
    }
    struct segw_tag tag = {"zone", "a"};
    struct segw_endpoint ep = {"get", "GetReq", "GetResp", 120, 900};
    for (int i = 0; i < total; i++) {
        new_id(id);
        snprintf(svc, sizeof(svc), "service-%d", i / 10);
        snprintf(addr, sizeof(addr), "10.1.%d.%d:8080", (i / 250) % 250, i % 250);
        struct segw_instance in = {.id = id,
                                   .service = svc,
                                   .version = "1.2.3",
                                   .host = "host-1",
                                   .az = "az-1",
                                   .address = addr,
                                   .addr_kind = DISC_ADDR_TCP,
                                   .weight = 10,
                                   .origin = DISC_ORIGIN_REMOTE,
                                   .tags = &tag,
                                   .n_tags = 1,
                                   .endpoints = &ep,
                                   .n_endpoints = 1};
        segw_put(w, &in);
    }
    segw_commit(w);
    struct segw_stats st;
    segw_tick(w);
    segw_stats(w, &st);
    disc_handle *h;
    if (disc_open(name, 0, &h) < 0) {
        segw_close(w, true);
        return;
    }
    static char buf[1 << 16];
    struct disc_instance *list;
    size_t need;
    double *lat = calloc((size_t)n, sizeof(double));
    /* each sample is a batch of 100 lookups: clock resolution */
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        for (int k = 0; k < 100; k++) {
            snprintf(svc, sizeof(svc), "service-%d", (i * 100 + k) % (total / 10));
            disc_lookup(h, svc, buf, sizeof(buf), &list, &need);
        }
        lat[i] = (now_us() - t0) / 100;
    }
    qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
    out("| %-58s | %6d | %8.2f | %8.2f | %8.2f | %8s |\n",
        "libdiscshm disc_lookup of one service (10 instances)", n, lat[n / 2],
        lat[(int)((double)n * 0.99)], lat[n - 1], "-");
    bench_row(rep, "libdiscshm disc_lookup of one service (10 instances)", "us", lat[n / 2],
              lat[(int)((double)n * 0.99)], "\"n\": %d, \"bytes_per_instance\": %.0f", n,
              (double)st.used_bytes / total);
    out("|   segment: %d instances in %d services, %.0f bytes/instance in use |\n", total,
        total / 10, (double)st.used_bytes / total);
    free(lat);
    disc_close(h);
    segw_close(w, true);
}

/* 5: initial sync of `total` instances over `hosts` subtrees */
static int initial_seen;
static void count_upsert(void *arg, const char *host, const char *id, const char *json, size_t len)
{
    (void)arg;
    (void)host;
    (void)id;
    (void)json;
    (void)len;
    pthread_mutex_lock(&sig.mu);
    initial_seen++;
    pthread_mutex_unlock(&sig.mu);
}

static void create_done(int rc, const char *value, const void *data)
{
    (void)rc;
    (void)value;
    (void)data;
    fire();
}

static void bench_initial(const char *connect, int total, int hosts)
{
    zhandle_t *zh = connect_raw(connect);
    mkpath(zh, ROOT "/hosts");
    char path[256], doc[512], id[37];
    for (int h = 0; h < hosts; h++) {
        snprintf(path, sizeof(path), ROOT "/hosts/init-%04d", h);
        mkpath(zh, path);
    }
    int base = sig.count;
    double t0 = now_us();
    for (int i = 0; i < total; i++) {
        new_id(id);
        snprintf(path, sizeof(path), ROOT "/hosts/init-%04d/%s-1", i % hosts, id);
        int len = doc_for(doc, sizeof(doc), id, i);
        zoo_acreate(zh, path, doc, len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, create_done, NULL);
        if (i % 2000 == 1999) {
            wait_fire(base + i + 1, 60000); /* bound the client's outstanding queue */
        }
    }
    wait_fire(base + total, 120000);
    double created = now_us() - t0;
    struct zk_sync_callbacks cb = {.on_remote_upsert = count_upsert};
    t0 = now_us();
    struct zk_sync *c = start_sync(connect, "bench-fresh", &cb, 300000);
    double synced = now_us() - t0;
    struct zk_sync_status st;
    zk_sync_get_status(c, &st);
    pthread_mutex_lock(&sig.mu);
    int seen = initial_seen;
    pthread_mutex_unlock(&sig.mu);
    out("| initial sync: %d instances / %d hosts (written in %.0f ms) | seen %d | %.0f ms total,"
        " %.1f us/instance | %llu lists | %llu reads |\n",
        total, hosts, created / 1000, seen, synced / 1000, synced / total,
        (unsigned long long)st.counters.lists, (unsigned long long)st.counters.reads);
    char rn[128];
    snprintf(rn, sizeof(rn), "initial sync: %d instances / %d hosts", total, hosts);
    bench_row(rep, rn, "ms", synced / 1000, NAN,
              "\"seen\": %d, \"us_per_instance\": %.1f, \"lists\": %llu, \"reads\": %llu", seen,
              synced / total, (unsigned long long)st.counters.lists,
              (unsigned long long)st.counters.reads);
    zk_sync_stop(c);
    zookeeper_close(zh); /* its ephemeral nodes go with it */
}

/* The server and its directory go away on every exit path, exit(1) included. */
static struct zk_cluster zk;

static void cleanup(void)
{
    zk_cluster_destroy(&zk);
}

int main(int argc, char **argv)
{
    int n = 1000, initial = 10000, hosts = 100, opt;
    int argc0 = argc;
    char **argv0 = malloc(sizeof(char *) * (size_t)(argc + 1));
    memcpy(argv0, argv, sizeof(char *) * (size_t)(argc + 1));
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0) {
        return 2;
    }
    if (opts.quick) {
        n = 100;
        initial = 1000;
        hosts = 10;
    }
    while ((opt = getopt(argc, argv, "n:i:H:")) != -1) {
        if (opt == 'n') {
            n = atoi(optarg);
        } else if (opt == 'i') {
            initial = atoi(optarg);
        } else if (opt == 'H') {
            hosts = atoi(optarg);
        } else {
            fprintf(stderr,
                    "usage: %s [-n instances] [-i initial] [-H hosts] [--quick] [--md FILE] "
                    "[--json FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 10 || hosts < 1 || initial < 0) {
        return 2;
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    int rc = zk_cluster_start(&zk, 1, 60000);
    if (rc != 0) {
        fprintf(stderr, "zookeeper: %s\n", strerror(-rc));
        return 1;
    }
    atexit(cleanup);
    rep = bench_report_open("bench_zk", "ZooKeeper layer: propagation, reads, initial sync", &opts,
                            argc0, argv0);
    if (!rep) {
        return 1;
    }
    zhandle_t *zh = connect_raw(zk.connect);
    mkpath(zh, ROOT);
    zookeeper_close(zh);
    out("ZooKeeper 3.8 standalone on 127.0.0.1 (JVM started by the benchmark), C client "
        "(THREADED), %ld CPUs\n\n",
        sysconf(_SC_NPROCESSORS_ONLN));
    out("| %-58s | %6s | %8s | %8s | %8s | %8s |\n", "operation (microseconds)", "n", "p50", "p99",
        "max", "mean");
    out("|%s|--------|----------|----------|----------|----------|\n",
        "------------------------------------------------------------");
    bench_raw(zk.connect, n);
    bench_sync(zk.connect, n);
    bench_reads(zk.connect, n);
    bench_shm(n, initial > 1000 ? initial : 10000);
    if (initial > 0) {
        out("\n");
        bench_initial(zk.connect, initial, hosts);
    }
    free(argv0);
    return bench_report_close(rep) < 0 ? 1 : 0;
}
