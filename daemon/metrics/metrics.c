/* SPDX-License-Identifier: MIT */
/* metrics.c — Prometheus text exposition and its HTTP listener (see metrics.h). */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "control.h"
#include "discshm.h"
#include "health.h"
#include "log.h"
#include "publisher.h"
#include "registry.h"
#include "import.h"
#include "zk_bridge.h"
#include "zk_sync.h"

const uint64_t metrics_hist_bounds_us[METRICS_HIST_BUCKETS] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000,
};

void metrics_hist_observe(struct metrics_hist *h, uint64_t us)
{
    size_t b = 0;
    while (b < METRICS_HIST_BUCKETS && us > metrics_hist_bounds_us[b])
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

struct metrics {
    struct metrics_sources src;
    char registry_name[201];
    char version[32];
    int64_t started_real_ms;
    _Atomic(struct control *) ctl;
    struct MHD_Daemon *httpd;
    unsigned port;
};

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct metrics *metrics_new(const struct metrics_sources *src)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->src = *src;
    snprintf(m->registry_name, sizeof(m->registry_name), "%s",
             src->registry_name ? src->registry_name : "");
    snprintf(m->version, sizeof(m->version), "%s", src->version ? src->version : "");
    m->src.registry_name = m->registry_name;
    m->src.version = m->version;
    m->started_real_ms = real_ms();
    atomic_init(&m->ctl, NULL);
    return m;
}

void metrics_set_control(struct metrics *m, struct control *ctl)
{
    atomic_store(&m->ctl, ctl);
}

/* ---- text output ----------------------------------------------------------------- */

/* "# HELP" and "# TYPE" lines of one metric family. */
static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the format requires. */
static void label_value(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void sample_u(FILE *f, const char *name, uint64_t v)
{
    fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* name{label="value"} v */
static void sample_lu(FILE *f, const char *name, const char *label, const char *value, uint64_t v)
{
    fprintf(f, "%s{%s=\"", name, label);
    label_value(f, value);
    fprintf(f, "\"} %llu\n", (unsigned long long)v);
}

static void sample_d(FILE *f, const char *name, double v)
{
    fprintf(f, "%s %.3f\n", name, v);
}

/* A family of one unlabelled sample: its "# HELP" and "# TYPE" lines, then
 * the sample. */
static void metric_u(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
    family(f, name, type, help);
    sample_u(f, name, v);
}

/* The same with a sample of three decimals. */
static void metric_d(FILE *f, const char *name, const char *type, const char *help, double v)
{
    family(f, name, type, help);
    sample_d(f, name, v);
}

static void histogram(FILE *f, const char *name, const char *help, const struct metrics_hist *h)
{
    family(f, name, "histogram", help);
    /* Read the count last: a concurrent observation may make the buckets
     * run ahead of it, never behind, and +Inf is written as the count. */
    uint64_t cum = 0;
    for (size_t b = 0; b < METRICS_HIST_BUCKETS; b++) {
        cum += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, (double)metrics_hist_bounds_us[b] / 1e6,
                (unsigned long long)cum);
    }
    uint64_t sum = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (count < cum)
        count = cum;
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
    fprintf(f, "%s_sum %.6f\n", name, (double)sum / 1e6);
    fprintf(f, "%s_count %llu\n", name, (unsigned long long)count);
}

static const char *const origin_names[] = {
    [DISC_ORIGIN_LOCAL] = "local", [DISC_ORIGIN_REMOTE] = "remote", [DISC_ORIGIN_CACHE] = "cache"};
static const char *const health_names[] = {[DISC_HEALTH_UNKNOWN] = "unknown",
                                           [DISC_HEALTH_PASSING] = "passing",
                                           [DISC_HEALTH_WARNING] = "warning",
                                           [DISC_HEALTH_CRITICAL] = "critical",
                                           [DISC_HEALTH_MAINTENANCE] = "maintenance"};

static void render_registry(struct metrics *m, FILE *f)
{
    if (!m->src.reg)
        return;
    uint32_t n[4][5];
    registry_count_by(m->src.reg, n);
    family(f, "discd_instances", "gauge",
           "Instances in discd's registry by origin (local, remote, cache) and health.");
    for (int o = 1; o <= 3; o++)
        for (int h = 0; h <= 4; h++)
            fprintf(f, "discd_instances{origin=\"%s\",health=\"%s\"} %llu\n", origin_names[o],
                    health_names[h], (unsigned long long)n[o][h]);
}

static void render_publisher(struct metrics *m, FILE *f)
{
    if (!m->src.pub)
        return;
    struct publisher_stats ps;
    publisher_get_stats(m->src.pub, &ps);
    metric_u(f, "discd_services", "gauge", "Services in the published snapshot.",
             ps.seg.n_services);
    metric_u(f, "discd_segment_instances", "gauge", "Instances in the published snapshot.",
             ps.seg.n_instances);
    metric_u(f, "discd_segment_generation", "gauge", "Generation of the published snapshot.",
             ps.generation);
    metric_u(f, "discd_publishes_total", "counter", "Snapshots published (segment commits).",
             ps.commits);
    metric_u(f, "discd_publish_changes_total", "counter", "Registry changes staged for publishing.",
             ps.changes);
    metric_u(f, "discd_publish_errors_total", "counter",
             "Publisher turns that could not publish every queued change (e.g. the arena was "
             "full); what is kept is retried.",
             ps.commit_errors);
    metric_u(f, "discd_publish_rejected_total", "counter",
             "Local registrations refused because the segment could not take them "
             "(segment_full; the client was told, nothing was kept).",
             ps.rejected);
    metric_u(f, "discd_publish_dropped_remote_total", "counter",
             "Remote instances the segment could not take (logged).", ps.dropped_remote);
    metric_u(f, "discd_publish_unchanged_puts_total", "counter",
             "Changes whose record was exactly the one already published for their id (e.g. a "
             "maintenance reason changed, a resync, a reload): the commit rewrote nothing for "
             "them.",
             ps.seg.unchanged_puts);
    histogram(f, "discd_publish_duration_seconds",
              "Time to stage and commit one snapshot (the publisher thread's work per publish).",
              publisher_latency(m->src.pub));
    family(f, "discd_segment_bytes", "gauge",
           "Segment arena bytes: size (usable arena), used (live and retired records), "
           "retired (replaced records waiting for readers to move on).");
    sample_lu(f, "discd_segment_bytes", "kind", "size", ps.seg.arena_bytes);
    sample_lu(f, "discd_segment_bytes", "kind", "used", ps.seg.used_bytes);
    sample_lu(f, "discd_segment_bytes", "kind", "retired", ps.seg.retired_bytes);
    metric_u(f, "discd_segment_reclaimed_bytes_total", "counter",
             "Retired bytes made reusable after their grace period.", ps.seg.reclaimed_bytes);
    metric_u(f, "discd_segment_overtakes_total", "counter",
             "Times the writer overtook a stalled reader to reclaim memory.", ps.seg.overtakes);
    metric_u(f, "discd_cache_writes_total", "counter", "File-cache images written.",
             ps.cache_writes);
    metric_u(f, "discd_cache_write_errors_total", "counter", "Failed file-cache writes.",
             ps.cache_errors);
}

static void render_checks(struct metrics *m, struct control *ctl, FILE *f)
{
    struct health_stats hs;
    health_get_stats(m->src.health, &hs); /* zeroes for NULL */
    uint64_t srun = 0, sfail = 0;
    if (ctl)
        control_session_stats(ctl, &srun, &sfail);
    static const struct {
        const char *name;
        int kind;
    } kinds[] = {{"tcp", HEALTH_TCP}, {"http", HEALTH_HTTP}, {"ttl", HEALTH_TTL}};
    family(f, "discd_checks_total", "counter",
           "Health checks that produced a result, by kind (session: pings answered or "
           "missed; ttl: examinations of the last pass).");
    sample_lu(f, "discd_checks_total", "kind", "session", srun);
    for (size_t i = 0; i < 3; i++)
        sample_lu(f, "discd_checks_total", "kind", kinds[i].name, hs.run[kinds[i].kind]);
    family(f, "discd_check_failures_total", "counter",
           "Health checks that failed (misses), by kind.");
    sample_lu(f, "discd_check_failures_total", "kind", "session", sfail);
    for (size_t i = 0; i < 3; i++)
        sample_lu(f, "discd_check_failures_total", "kind", kinds[i].name, hs.failed[kinds[i].kind]);
    family(f, "discd_tcp_checks_total", "counter",
           "tcp checks by how they were made: sock_diag (a local target judged from the "
           "listener listing, check-tcp-local = diag) or connect.");
    sample_lu(f, "discd_tcp_checks_total", "via", "sock_diag", hs.tcp_diag);
    sample_lu(f, "discd_tcp_checks_total", "via", "connect", hs.tcp_connect);
    if (m->src.health) {
        metric_u(f, "discd_checked_instances", "gauge",
                 "Instances with a tcp, http or ttl check being run.", health_count(m->src.health));
    }
}

static void render_control(struct control *ctl, FILE *f)
{
    if (!ctl)
        return;
    const char *name;
    uint64_t req, err;
    family(f, "discd_control_requests_total", "counter",
           "Control-socket requests by op (\"invalid\": no valid op).");
    for (size_t i = 0; control_op_stats(ctl, i, &name, &req, &err); i++)
        sample_lu(f, "discd_control_requests_total", "op", name, req);
    family(f, "discd_control_errors_total", "counter",
           "Control-socket requests answered with an error, by op.");
    for (size_t i = 0; control_op_stats(ctl, i, &name, &req, &err); i++)
        sample_lu(f, "discd_control_errors_total", "op", name, err);
    metric_u(f, "discd_control_connections", "gauge", "Open control-socket connections.",
             control_connections(ctl));
}

/* One sample with labels source="..." and a second label. */
static void sample_src(FILE *f, const char *name, const char *source, const char *label,
                       const char *value, uint64_t v)
{
    fprintf(f, "%s{source=\"", name);
    label_value(f, source);
    if (label) {
        fprintf(f, "\",%s=\"", label);
        label_value(f, value);
    }
    fprintf(f, "\"} %llu\n", (unsigned long long)v);
}

/* Foreign registries (import = ...), one set of samples per source. The
 * families are there without samples when nothing is imported. */
static void render_import(struct metrics *m, FILE *f)
{
    struct zk_import *im = m->src.zk ? zk_bridge_import(m->src.zk) : NULL;
    size_t n = zk_import_sources(im);
    family(f, "discd_import_instances", "gauge",
           "Instances imported from a foreign registry now, by source (import = ...).");
    struct fmt_source s;
    struct zk_import_counters c;
    for (size_t i = 0; i < n && zk_import_get(im, i, &s, &c) == 0; i++)
        sample_src(f, "discd_import_instances", s.name, NULL, NULL, c.instances);
    family(f, "discd_import_operations_total", "counter",
           "ZooKeeper requests and events of an import source, by kind.");
    for (size_t i = 0; i < n && zk_import_get(im, i, &s, &c) == 0; i++) {
        sample_src(f, "discd_import_operations_total", s.name, "op", "list", c.lists);
        sample_src(f, "discd_import_operations_total", s.name, "op", "read", c.reads);
        sample_src(f, "discd_import_operations_total", s.name, "op", "watch_fired",
                   c.watches_fired);
        sample_src(f, "discd_import_operations_total", s.name, "op", "error", c.errors);
    }
    family(f, "discd_import_changes_total", "counter",
           "Imported instances added/changed or removed, by source.");
    for (size_t i = 0; i < n && zk_import_get(im, i, &s, &c) == 0; i++) {
        sample_src(f, "discd_import_changes_total", s.name, "change", "upsert", c.upserts);
        sample_src(f, "discd_import_changes_total", s.name, "change", "remove", c.removes);
        sample_src(f, "discd_import_changes_total", s.name, "change", "changed_in_place",
                   c.changed_in_place);
    }
    family(f, "discd_import_skipped_total", "counter",
           "Foreign nodes skipped, by source and reason (bad_name: not the format's instance "
           "node; bad_data: cannot be mapped or refused by the instance model; too_large; "
           "unreadable: ZooKeeper refused the read).");
    for (size_t i = 0; i < n && zk_import_get(im, i, &s, &c) == 0; i++) {
        sample_src(f, "discd_import_skipped_total", s.name, "reason", "bad_name",
                   c.skipped_bad_name);
        sample_src(f, "discd_import_skipped_total", s.name, "reason", "bad_data",
                   c.skipped_bad_data);
        sample_src(f, "discd_import_skipped_total", s.name, "reason", "too_large",
                   c.skipped_too_large);
        sample_src(f, "discd_import_skipped_total", s.name, "reason", "unreadable",
                   c.skipped_unreadable);
    }
    family(f, "discd_import_held_removals", "gauge",
           "Removals of imported instances held by the cooling-off period, by source.");
    for (size_t i = 0; i < n && zk_import_get(im, i, &s, &c) == 0; i++)
        sample_src(f, "discd_import_held_removals", s.name, NULL, NULL, c.held_now);
}

static void render_zk(struct metrics *m, FILE *f)
{
    struct zk_sync_status st;
    bool have = m->src.zk && zk_bridge_get_status(m->src.zk, &st) == 0;
    metric_u(f, "discd_zookeeper_configured", "gauge", "1 when discd syncs with ZooKeeper (--zk).",
             m->src.zk != NULL);
    family(f, "discd_zookeeper_state", "gauge",
           "1 for the current ZooKeeper connection state, 0 for the others.");
    for (int s = ZK_SYNC_CONNECTING; s <= ZK_SYNC_EXPIRED; s++)
        sample_lu(f, "discd_zookeeper_state", "state", zk_sync_state_name((enum zk_sync_state)s),
                  have && st.state == (enum zk_sync_state)s);
    int64_t now = real_ms();
    metric_d(f, "discd_zookeeper_session_age_seconds", "gauge",
             "Age of the current ZooKeeper session (0 when there is none).",
             have && st.session_since_ms > 0 && now > st.session_since_ms
                 ? (double)(now - st.session_since_ms) / 1000.0
                 : 0.0);
    metric_d(f, "discd_zookeeper_last_sync_age_seconds", "gauge",
             "Time since the last complete listing of the region (0 when there was none).",
             have && st.last_sync_ms > 0 && now > st.last_sync_ms
                 ? (double)(now - st.last_sync_ms) / 1000.0
                 : 0.0);
    const struct zk_sync_counters *k = &st.counters;
    struct zk_sync_counters zero = {0};
    if (!have)
        k = &zero;
    metric_u(f, "discd_zookeeper_sessions_total", "counter", "ZooKeeper sessions established.",
             k->sessions);
    metric_u(f, "discd_zookeeper_expirations_total", "counter",
             "ZooKeeper sessions lost to expiry.", k->expirations);
    metric_u(f, "discd_zookeeper_reconnects_total", "counter",
             "Reconnections within a ZooKeeper session.", k->reconnects);
    family(f, "discd_zookeeper_syncs_total", "counter",
           "Completed sync rounds with ZooKeeper, by kind (watch: after a watch fired; full: "
           "a resync of the whole tree).");
    sample_lu(f, "discd_zookeeper_syncs_total", "kind", "watch", k->sync_rounds - k->full_syncs);
    sample_lu(f, "discd_zookeeper_syncs_total", "kind", "full", k->full_syncs);
    family(f, "discd_zookeeper_operations_total", "counter",
           "ZooKeeper requests and events by kind.");
    sample_lu(f, "discd_zookeeper_operations_total", "op", "list", k->lists);
    sample_lu(f, "discd_zookeeper_operations_total", "op", "read", k->reads);
    sample_lu(f, "discd_zookeeper_operations_total", "op", "create", k->creates);
    sample_lu(f, "discd_zookeeper_operations_total", "op", "delete", k->deletes);
    sample_lu(f, "discd_zookeeper_operations_total", "op", "watch_fired", k->watches_fired);
    family(f, "discd_zookeeper_remote_changes_total", "counter",
           "Other hosts' instances added/changed or removed by sync.");
    sample_lu(f, "discd_zookeeper_remote_changes_total", "change", "upsert", k->upserts);
    sample_lu(f, "discd_zookeeper_remote_changes_total", "change", "remove", k->removes);
    metric_u(f, "discd_zookeeper_worker_wakeups_total", "counter",
             "Times the ZooKeeper worker thread was woken (events or local changes, a batch of "
             "async replies, or one synchronous request).",
             k->worker_wakeups);
    metric_u(f, "discd_zookeeper_batches_total", "counter",
             "Batches of remote changes handed to the registry (one segment commit each).",
             k->batches);
    metric_u(f, "discd_zookeeper_documents_parsed_total", "counter",
             "Region documents parsed (once per read).", k->docs_parsed);
    metric_u(f, "discd_zookeeper_hosts", "gauge", "Host subtrees watched (this host included).",
             k->hosts);
    metric_u(f, "discd_zookeeper_held_removals", "gauge",
             "Remote removals held by the cooling-off period.", k->held_now);
    family(f, "discd_bad_documents_total", "counter",
           "Region documents skipped, by reason (bad_name: node name; bad_data: not an "
           "instance object; too_large; invalid: refused by the instance model; conflict: id "
           "owned by another host).");
    sample_lu(f, "discd_bad_documents_total", "reason", "bad_name", k->skipped_bad_name);
    sample_lu(f, "discd_bad_documents_total", "reason", "bad_data", k->skipped_bad_data);
    sample_lu(f, "discd_bad_documents_total", "reason", "too_large", k->skipped_too_large);
    sample_lu(f, "discd_bad_documents_total", "reason", "invalid",
              m->src.zk ? zk_bridge_rejected(m->src.zk) : 0);
    sample_lu(f, "discd_bad_documents_total", "reason", "conflict", k->conflicts);
    render_import(m, f);
}

char *metrics_render(struct metrics *m, struct control *ctl, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    family(f, "discd_info", "gauge", "Always 1; the labels name the build and the registry.");
    fprintf(f, "discd_info{version=\"");
    label_value(f, m->version);
    fprintf(f, "\",registry=\"");
    label_value(f, m->registry_name);
    fprintf(f, "\"} 1\n");
    metric_d(f, "discd_start_time_seconds", "gauge", "Start time of discd, Unix seconds.",
             (double)m->started_real_ms / 1000.0);
    if (!ctl)
        ctl = atomic_load(&m->ctl);
    render_registry(m, f);
    render_publisher(m, f);
    render_checks(m, ctl, f);
    render_control(ctl, f);
    render_zk(m, f);
    if (ferror(f)) {
        fclose(f);
        free(buf);
        errno = ENOMEM;
        return NULL;
    }
    if (fclose(f) != 0) {
        free(buf);
        errno = ENOMEM;
        return NULL;
    }
    *len = n;
    return buf;
}

/* ---- HTTP listener ------------------------------------------------------------------ */

/* Parse "A.B.C.D:PORT" or "[v6]:PORT". 0 or -EINVAL with err. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, char *err)
{
    memset(ss, 0, sizeof(*ss));
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1]) {
        snprintf(err, 256, "'%s' is not ADDR:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)", s);
        return -EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port > 65535 || colon[1] < '0' || colon[1] > '9') {
        snprintf(err, 256, "'%s': the port must be a number 0..65535", s);
        return -EINVAL;
    }
    char host[64];
    size_t hl = (size_t)(colon - s);
    bool v6 = s[0] == '[';
    if (v6) {
        if (hl < 3 || s[hl - 1] != ']') {
            snprintf(err, 256, "'%s': an IPv6 address goes in brackets: [::1]:PORT", s);
            return -EINVAL;
        }
        s++;
        hl -= 2;
    }
    if (hl >= sizeof(host)) {
        snprintf(err, 256, "'%s': the address is too long", s);
        return -EINVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            snprintf(err, 256, "'%s' is not a numeric IPv6 address", host);
            return -EINVAL;
        }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            snprintf(err, 256, "'%s' is not a numeric IPv4 address (host names are not resolved)",
                     host);
            return -EINVAL;
        }
    }
    return 0;
}

int metrics_check_listen(const char *listen, char *err)
{
    struct sockaddr_storage ss;
    return listen && *listen ? parse_listen(listen, &ss, err) : 0;
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *type,
                                 char *text, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    struct metrics *m = cls;
    static const char plain[] = "text/plain; charset=utf-8";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static char msg[] = "only GET and HEAD are served here\n";
        return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, plain, msg, sizeof(msg) - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") != 0 && strcmp(url, "/") != 0) {
        static char msg[] = "not found: metrics are at /metrics\n";
        return send_text(conn, MHD_HTTP_NOT_FOUND, plain, msg, sizeof(msg) - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    if (!atomic_load(&m->ctl)) {
        static char msg[] = "discd is starting: metrics are served once its control socket runs\n";
        return send_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, plain, msg, sizeof(msg) - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    size_t len = 0;
    char *text = metrics_render(m, NULL, &len);
    if (!text) {
        static char msg[] = "cannot render the metrics: out of memory\n";
        log_warn("metrics: cannot render a scrape: out of memory");
        return send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, plain, msg, sizeof(msg) - 1,
                         MHD_RESPMEM_PERSISTENT);
    }
    return send_text(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                     MHD_RESPMEM_MUST_FREE);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_warn("metrics: libmicrohttpd: %s", msg);
}

int metrics_http_start(struct metrics *m, const char *listen, char *err)
{
    struct sockaddr_storage ss;
    int rc = parse_listen(listen, &ss, err);
    if (rc < 0)
        return rc;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* A scraper needs one or two connections; bound what a local client can
     * hold open and for how long. */
    m->httpd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
                                mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT,
                                10u, MHD_OPTION_END);
    if (!m->httpd) {
        int e = errno ? errno : EADDRINUSE;
        snprintf(err, 256, "listening on %s: %s", listen, strerror(e));
        return -e;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : 0;
    char addr[64] = "";
    if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
    else
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
    log_info("metrics: serving http://%s%s%s:%u/metrics", ss.ss_family == AF_INET6 ? "[" : "", addr,
             ss.ss_family == AF_INET6 ? "]" : "", m->port);
    return 0;
}

unsigned metrics_http_port(const struct metrics *m)
{
    return m && m->httpd ? m->port : 0;
}

void metrics_http_stop(struct metrics *m)
{
    if (m && m->httpd) {
        MHD_stop_daemon(m->httpd);
        m->httpd = NULL;
        m->port = 0;
    }
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    metrics_http_stop(m);
    free(m);
}
