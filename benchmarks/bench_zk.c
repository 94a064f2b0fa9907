/* SPDX-License-Identifier: MIT */
/*
 * bench_zk.c — ZooKeeper layer latency on loopback, against raw ZooKeeper
 * baselines measured in the same run on the same server.
 *
 *   bench_zk [-n instances] [-s I:H[,I:H...]] [--quick] [--md FILE] [--json FILE]
 * (bench_report.h). -s: the initial-sync curve, instances:hosts, default
 * 10000:100,100000:1000,1000000:10000; --quick: -n 100 -s 10000:100.
 * $DISC_ZK_HEAP (default 1g, 3g with a 1M point) is the server's heap.
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
 *   5. initial sync, for each point of the curve: one raw session writes I
 *      instances over H hosts plus each host's aggregate snapshot (as
 *      zk_sync writes it); raw baselines list every host subtree and read
 *      every snapshot chunk (pipelined); then a fresh zk_sync reads it all
 *      with snapshots and (up to 100k) with the old per-instance layout:
 *      time to the last instance delivered, lists, gets, chunks, bytes,
 *      CPU and RSS of this process; target of issue 9 at 100k/1000.
 * Prints a markdown table (microseconds).
 */
#include "bench_report.h"
#include "bench_zkraw.h"
#include "discshm.h"
#include "segwriter.h"
#include "zk_server.h"
#include "zk_snapshot.h"
#include "zk_sync.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
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

/* ---- a tiny "wait for one event" primitive for the zk_sync callbacks ---- */
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

static int doc_for(char *buf, size_t len, const char *id, int i)
{
    return snprintf(buf, len,
                    "{\"id\":\"%s\",\"service\":\"bench.svc%d\",\"version\":\"1.0\","
                    "\"address\":\"10.0.0.%d:%d\",\"weight\":10,\"tags\":{\"az\":\"a\"}}",
                    id, i % 50, i % 250, 8000 + i % 1000);
}

/* 1 + 2: raw watch latency and the raw list+get read path (bench_zkraw.h) */
static void bench_raw(const char *connect, int n)
{
    zhandle_t *w = zkraw_connect(connect, 10000), *p = zkraw_connect(connect, 10000);
    zkraw_mkpath(p, ROOT "/raw");
    double *notify = calloc((size_t)n, sizeof(double)), *path = calloc((size_t)n, sizeof(double));
    char id[37], node[256], doc[512];
    for (int i = 0; i < n; i++) {
        zkraw_new_id(id);
        snprintf(node, sizeof(node), ROOT "/raw/%s-1", id);
        int len = doc_for(doc, sizeof(doc), id, i);
        zkraw_round(w, p, ROOT "/raw", node, doc, len, &notify[i], &path[i]);
        if (i % 100 == 99) { /* keep the directory small, like one host's subtree */
            zkraw_clear_dir(p, ROOT "/raw");
        }
    }
    report("raw ZooKeeper: create -> child watch fires", notify, n);
    report("raw ZooKeeper: create -> watch -> get_children -> get", path, n);
    free(notify);
    free(path);
    zkraw_close(w);
    zkraw_close(p);
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
        zkraw_new_id(id);
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
    zhandle_t *zh = zkraw_connect(connect, 10000);
    char dir[128], node[256], doc[512], id[37], first[256] = "";
    int sizes[] = {10, 1000};
    for (size_t s = 0; s < 2; s++) {
        snprintf(dir, sizeof(dir), ROOT "/reads%d", sizes[s]);
        zkraw_mkpath(zh, dir);
        for (int i = 0; i < sizes[s]; i++) {
            zkraw_new_id(id);
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
    zkraw_close(zh);
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
        zkraw_new_id(id);
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

/* 5: initial sync of `total` instances over `hosts` subtrees, each host with
 * its aggregate snapshot, against raw baselines on the same data */
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

/* completions of the raw pipelined requests: count replies and bytes */
struct raw_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long done, bytes, errors;
};

static void raw_pipe_done(struct raw_pipe *p, int rc, long bytes)
{
    pthread_mutex_lock(&p->mu);
    p->done++;
    p->bytes += bytes;
    p->errors += rc != ZOK;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void raw_pipe_wait(struct raw_pipe *p, long outstanding_max, long issued)
{
    pthread_mutex_lock(&p->mu);
    while (issued - p->done > outstanding_max) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

static void create_done(int rc, const char *value, const void *data)
{
    (void)value;
    raw_pipe_done((struct raw_pipe *)data, rc, 0);
}

static void list_done_raw(int rc, const struct String_vector *sv, const void *data)
{
    long bytes = 0;
    for (int i = 0; rc == ZOK && sv && i < sv->count; i++) {
        bytes += (long)strlen(sv->data[i]) + 4;
    }
    raw_pipe_done((struct raw_pipe *)data, rc, bytes);
}

static void get_done_raw(int rc, const char *value, int len, const struct Stat *st,
                         const void *data)
{
    (void)value;
    (void)st;
    raw_pipe_done((struct raw_pipe *)data, rc, rc == ZOK ? len : 0);
}

struct entry_buf {
    char name[64];
    char doc[256];
};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry_buf *)a)->name, ((const struct entry_buf *)b)->name);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* One fresh zk_sync under root until its first full listing with every
 * instance delivered; fills a result row. */
struct sync_run {
    double ms, cpu_ms, rss_mb;
    double session_ms; /* of ms: until the session was established */
    int seen;
    struct zk_sync_counters c;
};

static void run_fresh(const char *connect, const char *root, int total, bool snapshots,
                      struct sync_run *r)
{
    struct zk_sync_callbacks cb = {.on_remote_upsert = count_upsert};
    struct zk_sync_config cfg = {
        .connect = connect,
        .root = root,
        .host_id = "bench-fresh",
        .session_timeout_ms = 30000,
        .cooloff_ms = 0,
        .jitter_ms = 0,
        .log_level = ZK_SYNC_LOG_WARN,
        .zk_log_level = ZK_SYNC_LOG_ERROR,
        .audit_ms = -1,
        .snapshots = snapshots ? 0 : -1,
    };
    pthread_mutex_lock(&sig.mu);
    initial_seen = 0;
    pthread_mutex_unlock(&sig.mu);
    long rss0 = rss_kb();
    double c0 = cpu_ms(), t0 = now_us();
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    double rt0 = (double)rt.tv_sec * 1e3 + (double)rt.tv_nsec / 1e6;
    struct zk_sync *zs;
    if (zk_sync_start(&cfg, &cb, NULL, &zs) != 0) {
        exit(1);
    }
    struct zk_sync_status st;
    for (int i = 0; i < 600000; i++) {
        zk_sync_get_status(zs, &st);
        pthread_mutex_lock(&sig.mu);
        int seen = initial_seen;
        pthread_mutex_unlock(&sig.mu);
        if (st.last_sync_ms && seen >= total) {
            break;
        }
        usleep(1000);
    }
    r->ms = (now_us() - t0) / 1000;
    r->cpu_ms = cpu_ms() - c0;
    r->rss_mb = (double)(rss_kb() - rss0) / 1024;
    zk_sync_get_status(zs, &st);
    r->c = st.counters;
    r->session_ms = st.session_since_ms ? (double)st.session_since_ms - rt0 : NAN;
    pthread_mutex_lock(&sig.mu);
    r->seen = initial_seen;
    pthread_mutex_unlock(&sig.mu);
    zk_sync_stop(zs);
}

struct init_point {
    int total, hosts;
    double write_s;
    double list_ms, agg_ms;
    long list_reqs, agg_reqs, agg_bytes, list_bytes;
    struct sync_run snap, old;
    bool old_run;
};

static struct init_point points[8];
static int npoints;

static void bench_initial(const char *connect, int total, int hosts, bool old_layout)
{
    struct init_point *pt = &points[npoints++];
    memset(pt, 0, sizeof(*pt));
    pt->total = total;
    pt->hosts = hosts;
    char root[64], path[512];
    snprintf(root, sizeof(root), ROOT "/init%d", total);
    /* a long session: with 1M nodes the server pauses for seconds (garbage
     * collection, its own snapshots) and a 10 s session would expire */
    zhandle_t *zh = zkraw_connect(connect, 40000);
    zoo_set_servers_resolution_delay(zh, 60000);
    zkraw_mkpath(zh, root);
    snprintf(path, sizeof(path), "%s/hosts", root);
    zkraw_mkpath(zh, path);
    snprintf(path, sizeof(path), "%s/snap", root);
    zkraw_mkpath(zh, path);
    struct raw_pipe p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    long issued = 0, nchunks = 0;
    double t0 = now_us();
    int per_max = total / hosts + 1;
    struct entry_buf *eb = calloc((size_t)per_max, sizeof(*eb));
    struct zk_snap_entry *e = calloc((size_t)per_max, sizeof(*e));
    struct zk_snap_chunks *keep = calloc((size_t)hosts, sizeof(*keep));
    for (int h = 0; h < hosts; h++) {
        snprintf(path, sizeof(path), "%s/hosts/init-%05d", root, h);
        zkraw_mkpath(zh, path);
        snprintf(path, sizeof(path), "%s/snap/init-%05d", root, h);
        zkraw_mkpath(zh, path);
        int n = 0;
        for (int i = h; i < total; i += hosts) {
            char id[37];
            zkraw_new_id(id);
            snprintf(eb[n].name, sizeof(eb[n].name), "%s-1", id);
            doc_for(eb[n].doc, sizeof(eb[n].doc), id, i);
            n++;
        }
        qsort(eb, (size_t)n, sizeof(*eb), cmp_entry);
        for (int k = 0; k < n; k++) {
            snprintf(path, sizeof(path), "%s/hosts/init-%05d/%s", root, h, eb[k].name);
            e[k] = (struct zk_snap_entry){eb[k].name, strlen(eb[k].name), eb[k].doc,
                                          strlen(eb[k].doc)};
            zoo_acreate(zh, path, eb[k].doc, (int)e[k].doc_len, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                        create_done, &p);
            raw_pipe_wait(&p, 1000, ++issued);
        }
        /* the snapshot as zk_sync writes it: same session as the nodes */
        if (zk_snap_encode(e, (size_t)n, 1, ZK_SNAP_CHUNK_MAX, &keep[h]) != 0) {
            exit(1);
        }
        for (size_t c = 0; c < keep[h].count; c++) {
            snprintf(path, sizeof(path), "%s/snap/init-%05d/%zu", root, h, c);
            zoo_acreate(zh, path, keep[h].data[c], (int)keep[h].len[c], &ZOO_OPEN_ACL_UNSAFE,
                        ZOO_EPHEMERAL, create_done, &p);
            raw_pipe_wait(&p, 2000, ++issued);
            nchunks++;
        }
    }
    raw_pipe_wait(&p, 0, issued);
    if (p.errors) {
        fprintf(stderr, "initial: %ld creates failed\n", p.errors);
        exit(1);
    }
    pt->write_s = (now_us() - t0) / 1e6;

    /* baseline 1: list every host subtree, pipelined (what any reader must do) */
    p.done = p.bytes = p.errors = 0;
    issued = 0;
    t0 = now_us();
    for (int h = 0; h < hosts; h++) {
        snprintf(path, sizeof(path), "%s/hosts/init-%05d", root, h);
        zoo_aget_children(zh, path, 0, list_done_raw, &p);
        raw_pipe_wait(&p, 1000, ++issued);
    }
    raw_pipe_wait(&p, 0, issued);
    pt->list_ms = (now_us() - t0) / 1000;
    pt->list_reqs = issued;
    pt->list_bytes = p.bytes;

    /* baseline 2: read every aggregate chunk raw, pipelined */
    p.done = p.bytes = p.errors = 0;
    issued = 0;
    t0 = now_us();
    for (int h = 0; h < hosts; h++) {
        for (size_t c = 0; c < keep[h].count; c++) {
            snprintf(path, sizeof(path), "%s/snap/init-%05d/%zu", root, h, c);
            zoo_aget(zh, path, 0, get_done_raw, &p);
            raw_pipe_wait(&p, 1000, ++issued);
        }
    }
    raw_pipe_wait(&p, 0, issued);
    pt->agg_ms = (now_us() - t0) / 1000;
    pt->agg_reqs = issued;
    pt->agg_bytes = p.bytes;
    for (int h = 0; h < hosts; h++) {
        zk_snap_chunks_free(&keep[h]);
    }
    free(keep);
    free(eb);
    free(e);

    run_fresh(connect, root, total, true, &pt->snap);
    if (old_layout) {
        pt->old_run = true;
        run_fresh(connect, root, total, false, &pt->old);
    }
    zkraw_close(zh); /* its ephemeral nodes go with it */
}

/* The curve as a markdown table (stdout and the --md section), JSON rows,
 * ratios to the raw baselines of the same run and issue 9's target. */
static void report_initial(void)
{
    out("\nInitial sync: a fresh zk_sync (in this process, counting callback) from start until "
        "its first complete listing with every instance delivered. Each host's instances and "
        "its aggregate snapshot were written beforehand by one raw session. CPU and RSS: this "
        "process (zk_sync worker and ZooKeeper client threads). Raw rows: the same data read "
        "with plain pipelined requests in the same run.\n\n");
    out("| instances / hosts | reader | ms | of which session set-up | lists | gets+probes "
        "| snapshot chunks | MB read | from snapshots | CPU ms | RSS MB |\n");
    out("|---|---|---|---|---|---|---|---|---|---|---|\n");
    char b1[BENCH_JNUM_LEN], b2[BENCH_JNUM_LEN], b3[BENCH_JNUM_LEN];
    for (int i = 0; i < npoints; i++) {
        struct init_point *pt = &points[i];
        const struct sync_run *runs[2] = {&pt->snap, &pt->old};
        for (int k = 0; k < (pt->old_run ? 2 : 1); k++) {
            const struct sync_run *r = runs[k];
            const char *what = k == 0 ? "zk_sync, snapshots" : "zk_sync, per-instance (old layout)";
            out("| %d / %d | %s | %.0f | %.0f | %llu | %llu | %llu | %.1f | %llu | %.0f | %.0f |\n",
                pt->total, pt->hosts, what, r->ms, r->session_ms, (unsigned long long)r->c.lists,
                (unsigned long long)r->c.reads, (unsigned long long)r->c.snap_chunk_reads,
                (double)r->c.read_bytes / 1e6, (unsigned long long)r->c.snap_used, r->cpu_ms,
                r->rss_mb);
            char rn[160];
            snprintf(rn, sizeof(rn), "initial sync %d/%d: %s", pt->total, pt->hosts, what);
            bench_row(rep, rn, "ms", r->ms, NAN,
                      "\"seen\": %d, \"lists\": %llu, \"gets\": %llu, \"snapshot_chunks\": %llu, "
                      "\"bytes\": %llu, \"from_snapshots\": %llu, \"cpu_ms\": %s, \"rss_mb\": %s, "
                      "\"session_ms\": %s",
                      r->seen, (unsigned long long)r->c.lists, (unsigned long long)r->c.reads,
                      (unsigned long long)r->c.snap_chunk_reads,
                      (unsigned long long)r->c.read_bytes, (unsigned long long)r->c.snap_used,
                      bench_jnum(b1, r->cpu_ms), bench_jnum(b2, r->rss_mb),
                      bench_jnum(b3, r->session_ms));
        }
        out("| %d / %d | raw: list every host subtree, pipelined | %.0f | - | %ld | 0 | 0 | %.1f "
            "| - | - | - |\n",
            pt->total, pt->hosts, pt->list_ms, pt->list_reqs, (double)pt->list_bytes / 1e6);
        out("| %d / %d | raw: get every snapshot chunk, pipelined | %.0f | - | 0 | 0 | %ld | %.1f "
            "| - | - | - |\n",
            pt->total, pt->hosts, pt->agg_ms, pt->agg_reqs, (double)pt->agg_bytes / 1e6);
        char rn[160];
        snprintf(rn, sizeof(rn), "initial sync %d/%d: raw list every host", pt->total, pt->hosts);
        bench_row(rep, rn, "ms", pt->list_ms, NAN, "\"requests\": %ld, \"bytes\": %ld",
                  pt->list_reqs, pt->list_bytes);
        snprintf(rn, sizeof(rn), "initial sync %d/%d: raw get every snapshot chunk", pt->total,
                 pt->hosts);
        bench_row(rep, rn, "ms", pt->agg_ms, NAN, "\"requests\": %ld, \"bytes\": %ld", pt->agg_reqs,
                  pt->agg_bytes);
    }
    out("\n");
    for (int i = 0; i < npoints; i++) {
        struct init_point *pt = &points[i];
        out("- %d / %d (written in %.1f s): snapshots %.0f ms = %.2fx the raw list + raw "
            "snapshot read (%.0f ms)",
            pt->total, pt->hosts, pt->write_s, pt->snap.ms,
            pt->snap.ms / (pt->list_ms + pt->agg_ms), pt->list_ms + pt->agg_ms);
        if (pt->old_run) {
            out("; per-instance layout %.0f ms = %.1fx the snapshot time", pt->old.ms,
                pt->old.ms / pt->snap.ms);
        }
        if (pt->snap.seen != pt->total || (pt->old_run && pt->old.seen != pt->total)) {
            out("; INCOMPLETE: saw %d / %d of %d", pt->snap.seen, pt->old.seen, pt->total);
        }
        out("\n");
    }
    for (int i = 0; i < npoints; i++) {
        struct init_point *pt = &points[i];
        if (pt->total == 100000 && pt->hosts == 1000) {
            bench_target(rep, "initial sync 100k instances / 1000 hosts, ms (issue 9)",
                         pt->snap.seen == pt->total ? pt->snap.ms : NAN, "<=", 2000);
        }
    }
}

/* The server and its directory go away on every exit path, exit(1) included. */
static struct zk_cluster zk;

static void cleanup(void)
{
    zk_cluster_destroy(&zk);
}

int main(int argc, char **argv)
{
    int n = 1000, opt;
    const char *sizes = NULL;
    int argc0 = argc;
    char **argv0 = malloc(sizeof(char *) * (size_t)(argc + 1));
    memcpy(argv0, argv, sizeof(char *) * (size_t)(argc + 1));
    struct bench_opts opts;
    if (bench_parse_args(&argc, argv, &opts) < 0) {
        return 2;
    }
    if (opts.quick) {
        n = 100;
    }
    while ((opt = getopt(argc, argv, "n:s:")) != -1) {
        if (opt == 'n') {
            n = atoi(optarg);
        } else if (opt == 's') {
            sizes = optarg;
        } else {
            fprintf(stderr,
                    "usage: %s [-n instances] [-s I:H[,I:H...]] [--quick] [--md FILE] "
                    "[--json FILE]\n"
                    "  -s  initial-sync points, instances:hosts (default "
                    "10000:100,100000:1000,1000000:10000; --quick: 10000:100)\n",
                    argv[0]);
            return 2;
        }
    }
    if (!sizes) {
        sizes = opts.quick ? "10000:100" : "10000:100,100000:1000,1000000:10000";
    }
    if (n < 10) {
        return 2;
    }
    if (!getenv("DISC_ZK_HEAP")) {
        /* the test harness's 128 MiB heap makes the server collect garbage
         * all the time from ~100k nodes on; give it room (1M nodes: 3 GiB) */
        setenv("DISC_ZK_HEAP", strstr(sizes, "000000:") ? "3g" : "1g", 1);
    }
    zkraw_server_start(&zk);
    atexit(cleanup);
    rep = bench_report_open("bench_zk", "ZooKeeper layer: propagation, reads, initial sync", &opts,
                            argc0, argv0);
    if (!rep) {
        return 1;
    }
    zhandle_t *zh = zkraw_connect(zk.connect, 10000);
    zkraw_mkpath(zh, ROOT);
    zkraw_close(zh);
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
    bench_shm(n, 10000);
    for (const char *p = sizes; p && *p && npoints < (int)(sizeof(points) / sizeof(points[0]));) {
        int total = 0, hosts = 0;
        if (sscanf(p, "%d:%d", &total, &hosts) != 2 || total < 1 || hosts < 1 || hosts > 99999) {
            fprintf(stderr, "bad -s entry at '%s'\n", p);
            return 2;
        }
        fprintf(stderr, "bench_zk: initial sync of %d instances / %d hosts\n", total, hosts);
        /* the old per-instance layout takes ~100 us per instance: up to 100k */
        bench_initial(zk.connect, total, hosts, total <= 100000);
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    report_initial();
    free(argv0);
    return bench_report_close(rep) < 0 ? 1 : 0;
}
