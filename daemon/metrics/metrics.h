/* SPDX-License-Identifier: MIT */
/*
 * metrics.h — discd's metrics part: the Prometheus text exposition (format
 * 0.0.4) of the counters and gauges the other parts keep, served on an
 * optional HTTP listener (libmicrohttpd, --metrics-listen) and through the
 * control socket's "metrics" op (discctl metrics).
 *
 * The parts count for themselves, with relaxed atomics or under the locks
 * they already take (publisher stats, health_get_stats, control_op_stats,
 * zk_bridge_get_status); this part only reads them when a scrape asks, so
 * counting costs one atomic add and nothing runs between scrapes. The one
 * primitive parts embed is the latency histogram below. Metric names,
 * types and labels: docs/DAEMON.md, "Metrics".
 */
#ifndef DISC_METRICS_H
#define DISC_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Histogram (embedded by parts) ---------------------------------------- */

/* Upper bounds in microseconds of the finite buckets; one more for +Inf. */
#define METRICS_HIST_BUCKETS 14
extern const uint64_t metrics_hist_bounds_us[METRICS_HIST_BUCKETS];

/* A latency histogram: observe from any thread (relaxed atomics), read by
 * a scrape. Zero-initialised memory is an empty histogram. Buckets are not
 * cumulative here; the exposition makes them so. */
struct metrics_hist {
    _Atomic uint64_t bucket[METRICS_HIST_BUCKETS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

/* Record one observation of `us` microseconds. */
void metrics_hist_observe(struct metrics_hist *h, uint64_t us);

/* ---- The exposition -------------------------------------------------------- */

struct registry;
struct publisher;
struct health;
struct control;
struct zk_bridge;

/* What a scrape reads. Any pointer may be NULL (that part's metrics are
 * then left out, except the ZooKeeper ones, which say "not configured"). */
struct metrics_sources {
    struct registry *reg;
    struct publisher *pub;
    struct health *health;
    struct zk_bridge *zk;
    const char *registry_name; /* copied */
    const char *version;       /* copied */
};

struct metrics;

/* Create the renderer. NULL with errno on failure. */
struct metrics *metrics_new(const struct metrics_sources *src);

/* Add the control socket once it runs (its request counters). Until then
 * the HTTP listener answers 503 (discd is starting). Thread-safe. */
void metrics_set_control(struct metrics *m, struct control *ctl);

/*
 * Render every metric as Prometheus text into a malloc'd NUL-terminated
 * string (*len bytes, without the NUL), with ctl's request counters (NULL:
 * the control set with metrics_set_control, if any). Any thread; takes only
 * short locks. NULL with errno on failure.
 */
char *metrics_render(struct metrics *m, struct control *ctl, size_t *len);

/*
 * Serve GET /metrics (and GET /) on `listen`, "IPv4:PORT" or "[IPv6]:PORT"
 * (numeric only; PORT 0 picks a free port), with libmicrohttpd's own
 * thread. Other paths answer 404, other methods 405, and every request 503
 * until metrics_set_control (start-up). Returns 0 and logs the
 * bound address, or -errno with a message in err (256 bytes).
 */
int metrics_http_start(struct metrics *m, const char *listen, char *err);

/* The port the listener is bound to (0 if none). */
unsigned metrics_http_port(const struct metrics *m);

/* Stop the listener (waits for requests in progress). No-op without one. */
void metrics_http_stop(struct metrics *m);

/* Stop the listener if running and free. NULL is a no-op. */
void metrics_free(struct metrics *m);

/* Check a --metrics-listen value without binding: 0 or -EINVAL with a
 * message in err (256 bytes). "" is valid (no listener). */
int metrics_check_listen(const char *listen, char *err);

#endif /* DISC_METRICS_H */
