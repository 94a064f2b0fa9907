/* SPDX-License-Identifier: MIT */
/*
 * control.h — discd's control socket: the newline-delimited JSON protocol of
 * docs/PROTOCOL.md on a unix stream socket, served by one epoll thread.
 *
 * The thread owns every local registration's lifecycle: register,
 * deregister, session checks (pings on the registering connection),
 * removals requested by the health checker. Remote instances are only
 * read here (query/dump/services/...).
 *
 * Limits (see docs/PROTOCOL.md): a request line may be at most
 * CONTROL_MAX_LINE bytes (else a too_large error and the connection is
 * closed); at most max_connections connections (one more is accepted,
 * told "limit" and closed); a connection that does not read its responses
 * stops being read once CONTROL_OUT_HIGH bytes are pending. Idle
 * connections cost no CPU: there are no timers except pings for
 * connections that own session instances.
 */
#ifndef DISC_CONTROL_H
#define DISC_CONTROL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "instance.h"
#include "policy.h"
#include "publisher.h"
#include "registry.h"

#define CONTROL_MAX_LINE 65536u       /* bytes per request line, without "\n" */
#define CONTROL_OUT_HIGH (1u << 20)   /* stop reading requests above this backlog */
#define CONTROL_OUT_MAX  (512u << 20) /* drop a connection whose backlog exceeds this */

struct control;
struct health;

struct control_config {
    const char *socket_path;
    uint32_t socket_mode; /* chmod of the socket */
    int64_t socket_gid;   /* chown group of the socket; -1: leave it */
    /* registration policy lines (policy.h); 0 lines: the built-in defaults */
    const char (*register_rules)[POLICY_TEXT_MAX];
    size_t n_register_rules;
    const char (*register_limits)[POLICY_TEXT_MAX];
    size_t n_register_limits;
    uint32_t max_connections;
    const char *registry_name;         /* for status */
    const char *version;               /* for status */
    bool zk_configured;                /* for status when no zk hook is set */
    struct instance_defaults defaults; /* copied */
    /* Persistence (docs/DESIGN.md, "Persistence"); all optional. */
    struct instance *const *restore; /* local instances restored from the state file */
    size_t n_restore;
    uint32_t session_grace_ms; /* restored session instances wait this long for their client */
    const char *services_dir;  /* static definitions; NULL: none */
    void (*sync)(void *arg);   /* make journaled changes durable before acknowledging them */
    void *sync_arg;
    /* The "metrics" op: the Prometheus text (malloc'd, *len bytes) rendered
     * with this control's counters, or NULL. Called on the control thread.
     * NULL: the op answers an "internal" error. */
    char *(*metrics)(void *arg, struct control *c, size_t *len);
    void *metrics_arg;
};

/*
 * Create the socket (replacing a stale socket file; -EADDRINUSE if a live
 * server answers on it) and start the control thread. health may be NULL
 * (tcp/http/ttl registrations are then refused). Returns 0 and *out, or
 * -errno with a message in err (256 bytes).
 */
int control_start(const struct control_config *cfg, struct registry *reg, struct publisher *pub,
                  struct health *health, struct control **out, char *err);

/* Stop the control thread (no more requests, no more health_* calls) but
 * keep the object: control_request_removal stays safe to call. */
void control_halt(struct control *c);

/* Stop the thread (if not halted yet), close every connection and the socket (unlinking it),
 * free. Session instances stay registered. NULL is a no-op. */
void control_stop(struct control *c);

/* Replace the registration defaults (SIGHUP). Thread-safe. */
void control_set_defaults(struct control *c, const struct instance_defaults *def);

/*
 * Replace the registration policy (SIGHUP) with one built from these
 * register-rule / register-limit lines (see policy.h; none = the built-in
 * defaults). Registrations already accepted stay; the new rules and limits
 * apply from the next request on. Thread-safe. 0, or -EINVAL with a message
 * in err (256 bytes) and the old policy kept.
 */
int control_set_policy(struct control *c, const char (*rules)[POLICY_TEXT_MAX], size_t n_rules,
                       const char (*limits)[POLICY_TEXT_MAX], size_t n_limits, char *err);

/*
 * Ask the control thread to remove local instance `id` (e.g. the health
 * checker's on_fail). Thread-safe, never blocks on the control thread.
 * The removal is done asynchronously; unknown ids are ignored.
 */
void control_request_removal(struct control *c, const char *id, const char *reason);

/*
 * Tell the control thread that the health checker's judgement of local
 * instance `id` changed (DISC_HEALTH_PASSING / _WARNING / _CRITICAL; reason
 * for the log). It publishes the new health (an instance in maintenance
 * stays in maintenance). Thread-safe, never blocks; requests and removals
 * are applied in the order they were made.
 */
void control_request_health(struct control *c, const char *id, uint8_t health, const char *reason);

/* Optional hook filling the "zookeeper" object of the status response
 * (called on the control thread; returns a new reference or NULL). */
void control_set_zk_status(struct control *c, json_t *(*fn)(void *arg), void *arg);

/* Optional hook for the "confirm" op (protection, docs/DAEMON.md): apply the
 * held removals of service (NULL: all); returns how many. Called on the
 * control thread, only for root or the daemon's own uid. Without a hook
 * confirm answers ok with "confirmed": 0. */
void control_set_confirm(struct control *c, int (*fn)(void *arg, const char *service), void *arg);

/* Request counters of op number i (0, 1, ...): its name, requests handled
 * and error responses among them. The last entry, "invalid", counts lines
 * that named no valid op (bad JSON, no op, unknown op). Returns false past
 * the last entry. Thread-safe (relaxed atomics). */
bool control_op_stats(struct control *c, size_t i, const char **name, uint64_t *requests,
                      uint64_t *errors);

/* Session checks: pings answered or missed (run), and missed (failed). */
void control_session_stats(struct control *c, uint64_t *run, uint64_t *failed);
/* Ask the control thread to re-read the static service definitions
 * (SIGHUP); the outcome is logged. Thread-safe, never blocks. */
void control_request_reload(struct control *c);

/* Number of open control connections. Thread-safe. */
uint32_t control_connections(struct control *c);

#endif /* DISC_CONTROL_H */
