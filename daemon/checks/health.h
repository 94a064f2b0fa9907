/* SPDX-License-Identifier: MIT */
/*
 * health.h — active health checks of local instances (tcp, http, ttl).
 *
 * One checker thread runs every check. Session checks are not here: they
 * belong to the control connection that registered the instance
 * (daemon/control/control.c). The checker never touches the registry itself: when
 * an instance has missed `misses` consecutive checks it calls the on_fail
 * callback (from the checker thread) and forgets the instance — or, with
 * deregister_after_ms, it calls on_state(CRITICAL) and keeps checking:
 * passing again calls on_state(PASSING), staying critical that long calls
 * on_fail. A ttl check is fed with health_ttl_report (pass, warn, fail).
 */
#ifndef DISC_HEALTH_H
#define DISC_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "discshm.h"

enum health_kind {
    HEALTH_NONE = 0,    /* no check: the instance stays until deregistered */
    HEALTH_SESSION = 1, /* handled by the control connection, not here */
    HEALTH_TCP = 2,     /* connect() to target succeeds within timeout (local: see tcp_local) */
    HEALTH_HTTP = 3,    /* GET http://target<path> answers 2xx within timeout */
    HEALTH_TTL = 4,     /* the instance calls "pass" at least every ttl_ms */
};

#define HEALTH_PATH_MAX 255

struct health_check_def {
    enum health_kind kind;
    uint32_t interval_ms; /* between checks (tcp/http); ttl: how often expiry is examined */
    uint32_t timeout_ms;  /* per check (tcp/http) */
    uint32_t misses;      /* consecutive failures before removal (>= 1) */
    uint32_t ttl_ms;      /* HEALTH_TTL only */
    char target[DISC_ADDRESS_MAX + 1]; /* tcp/http: "host:port" (default: the instance address) */
    char path[HEALTH_PATH_MAX + 1];    /* http: request path, default "/" */
    uint32_t deregister_after_ms;      /* 0: remove after `misses`; else keep critical this long */
};

#define HEALTH_NOTE_MAX 255

struct health;

/* Called from the checker thread when instance `id` failed its check
 * `misses` times in a row (reason is a short text for the log). */
typedef void (*health_fail_fn)(const char *id, const char *reason, void *arg);

/* Called from the checker thread when the judgement of instance `id`
 * changes: DISC_HEALTH_PASSING, _WARNING (a ttl "warn") or _CRITICAL;
 * reason says why (the check's output or the reported note). */
typedef void (*health_state_fn)(const char *id, uint8_t health, const char *reason, void *arg);

/* Start the checker thread. Returns NULL with errno set on failure. */
struct health *health_start(health_fail_fn on_fail, void *arg);

/* Set the state callback (NULL: none) and its arg. Call before health_add. */
void health_set_state_cb(struct health *h, health_state_fn on_state, void *arg);

/* Stop the thread and free everything. NULL is a no-op. */
void health_stop(struct health *h);

/* Begin checking instance `id`. The definition is copied. -EEXIST, -EINVAL
 * (kind NONE/SESSION or bad values), -ENOMEM. Thread-safe. */
int health_add(struct health *h, const char *id, const struct health_check_def *def);

/* health_add without waking the checker thread: the check starts at the
 * next health_kick (or the thread's next turn). discd's control thread
 * adds a registration's check this way and kicks after the registration
 * is published, so the checker (and its first check) does not run before
 * the commit that wakes the readers. Thread-safe. */
int health_add_quiet(struct health *h, const char *id, const struct health_check_def *def);

/* Wake the checker thread to take what health_add_quiet queued. NULL is a
 * no-op. Thread-safe. */
void health_kick(struct health *h);

/* Why health_add refused a definition with -EINVAL: a sentence naming the
 * offending setting, or NULL if it is acceptable. Thread-safe. */
const char *health_explain(const char *id, const struct health_check_def *def);

/* Stop checking `id`. -ENOENT if unknown. Thread-safe. */
int health_remove(struct health *h, const char *id);

/* Record a TTL pass for `id`. -ENOENT if unknown, -EINVAL if not a TTL check. */
int health_pass(struct health *h, const char *id);

/* Feed a TTL check: DISC_HEALTH_PASSING (pass: the ttl starts again),
 * _WARNING (warn: also restarts the ttl; published as warning) or
 * _CRITICAL (fail: counts as all `misses` at once). note (may be NULL, at
 * most HEALTH_NOTE_MAX bytes) is kept and shown by health_status. The
 * checker examines the instance at once. -ENOENT, -EINVAL (not ttl, bad
 * health). Thread-safe. */
int health_ttl_report(struct health *h, const char *id, uint8_t health, const char *note);

/* The checker's current judgement of `id` (DISC_HEALTH_PASSING, _WARNING,
 * _CRITICAL) and its note: the last reported ttl note, or the output of the
 * last failed check ("" if none). -ENOENT. Thread-safe. */
int health_status(struct health *h, const char *id, uint8_t *health, char *note, size_t len);

/* How tcp checks of local targets are made (config key check-tcp-local).
 * DIAG (the default): a target whose address is local to discd's network
 * namespace (loopback or an address of a local interface) is judged from
 * one NETLINK_SOCK_DIAG listing of the listening sockets per tick
 * (sockdiag.h): it passes when the listener the kernel would pick exists
 * and its accept queue is not full. Other targets, unix sockets, listeners
 * bound to a device, and every target when sock_diag is unavailable, are
 * connected to. CONNECT: every tcp check connects. */
enum health_tcp_local {
    HEALTH_TCP_LOCAL_DIAG = 0,
    HEALTH_TCP_LOCAL_CONNECT = 1,
};

/* Set the mode for checks started from now on. Thread-safe. */
void health_set_tcp_local(struct health *h, enum health_tcp_local mode);

/* A sentence saying how local tcp checks are made now: "sock_diag (...)"
 * with the size and cost of the last listing and how long it serves
 * checks, "connect (check-tcp-local = connect)" or "connect (sock_diag
 * unavailable: REASON)". Thread-safe. */
void health_tcp_local_state(struct health *h, char *buf, size_t len);

/* How the last tcp check of `id` was made: "sock_diag", "connect", or ""
 * (none yet, or not a tcp check). -ENOENT. Thread-safe. */
int health_tcp_via(struct health *h, const char *id, const char **via);

/* Number of instances being checked. */
uint32_t health_count(struct health *h);

/* Check results since health_start, indexed by enum health_kind (tcp, http,
 * ttl; the others stay 0). A ttl "check" is one examination of the last
 * pass. Counted with relaxed atomics by the checker thread. */
struct health_stats {
    uint64_t run[HEALTH_TTL + 1];    /* checks that produced a result */
    uint64_t failed[HEALTH_TTL + 1]; /* of those, misses */
    uint64_t reported;               /* instances reported to on_fail */
    uint64_t tcp_diag;               /* tcp checks answered by sock_diag */
    uint64_t tcp_connect;            /* tcp checks made by connecting */
};

/* Fill *st. Thread-safe. */
void health_get_stats(struct health *h, struct health_stats *st);

#endif /* DISC_HEALTH_H */
